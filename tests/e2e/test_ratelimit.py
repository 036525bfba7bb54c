"""Rate limits (AGENTD_RATE_LIMIT, AGENTD_RATE_LIMIT_TURNS): a burst then 429
rate_limited with Retry-After and RateLimit-* headers, recovery after the
wait; budgets per principal with AGENTD_AUTH=on, per client address for
anonymous requests (X-Forwarded-For is not trusted); model-consuming calls
(/chat, A2A SendMessage) on their own smaller budget; probes exempt."""

import http.client
import json
import time
import uuid

from agentd_harness import assert_error_response, metric_value, parse_metrics, run_cli
from ucp_client import Client, db_query, full_body, unique_profile

UCP_EXT = "https://ucp.dev/specification/reference?v=2026-01-11"


def from_addr(srv, source, path, headers=None):
    """GET path over a connection from the given loopback source address."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5, source_address=(source, 0))
    try:
        c.request("GET", path, headers=headers or {})
        resp = c.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        c.close()


def rpc(srv, method, params, headers=None, rid=7):
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    h = {"Content-Type": "application/json", "A2A-Version": "1.0", "X-A2A-Extensions": UCP_EXT,
         **(headers or {})}
    return srv.request("POST", "/", data=json.dumps(body), headers=h, timeout=20)


def a2a_message(text):
    return {"message": {"role": "ROLE_USER", "messageId": str(uuid.uuid4()),
                        "parts": [{"text": text}]}}


def limited(srv, bucket):
    return metric_value(parse_metrics(srv.get("/metrics").text), "agentd_rate_limited_total",
                        bucket=bucket) or 0.0


def test_burst_then_429_with_headers_then_recovery(agentd):
    srv = agentd(env={"AGENTD_RATE_LIMIT": "10/s,3"})
    for i in range(3):
        r = srv.request("GET", "/chat/sessions")
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Limit"] == "3"
        assert r.headers["RateLimit-Remaining"] == str(2 - i)
        assert int(r.headers["RateLimit-Reset"]) >= 1
    r = srv.request("GET", "/chat/sessions")
    assert_error_response(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "1"
    assert r.headers["RateLimit-Limit"] == "3"
    assert r.headers["RateLimit-Remaining"] == "0"
    assert int(r.headers["RateLimit-Reset"]) >= 1
    # probes, discovery and metrics are never charged
    for path in ("/healthz", "/readyz", "/metrics", "/.well-known/agent-card.json"):
        assert srv.get(path).status_code == 200, path
    assert limited(srv, "requests") == 1.0
    time.sleep(int(r.headers["Retry-After"]))
    assert srv.request("GET", "/chat/sessions").status_code == 200


def test_anonymous_budget_is_per_client_address_and_ignores_forwarded_for(agentd):
    srv = agentd(env={"AGENTD_RATE_LIMIT": "1/m,2"})
    for _ in range(2):
        assert from_addr(srv, "127.0.0.1", "/chat/sessions")[0] == 200
    status, headers, _ = from_addr(srv, "127.0.0.1", "/chat/sessions",
                                   {"X-Forwarded-For": "203.0.113.9"})
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    # another address has its own budget
    assert from_addr(srv, "127.0.0.2", "/chat/sessions")[0] == 200
    assert from_addr(srv, "127.0.0.2", "/chat/sessions")[0] == 200
    assert from_addr(srv, "127.0.0.2", "/chat/sessions")[0] == 429


def test_budget_is_per_principal_with_auth_on(agentd):
    srv = agentd(env={"AGENTD_AUTH": "on", "AGENTD_RATE_LIMIT": "1/m,2"})
    a = {"Authorization": "Bearer " + srv.create_key("alice")}
    b = {"Authorization": "Bearer " + srv.create_key("bob")}
    for _ in range(2):
        assert srv.request("GET", "/chat/sessions", headers=a).status_code == 200
    assert_error_response(srv.request("GET", "/chat/sessions", headers=a), 429, "rate_limited")
    # same address, another principal: its own budget
    r = srv.request("GET", "/chat/sessions", headers=b)
    assert r.status_code == 200, r.text
    assert r.headers["RateLimit-Remaining"] == "1"
    # authentication runs first: no credentials is still 401, not 429
    assert_error_response(srv.request("GET", "/chat/sessions"), 401, "unauthorized")


def test_turns_have_their_own_budget(agentd):
    srv = agentd(env={"AGENTD_RATE_LIMIT": "100/s,100", "AGENTD_RATE_LIMIT_TURNS": "1/m,2"})
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=20)
    assert r.status_code == 200, r.text
    assert r.headers["RateLimit-Limit"] == "2"  # the tighter budget speaks
    assert r.headers["RateLimit-Remaining"] == "1"
    doc = rpc(srv, "SendMessage", a2a_message("hello")).json()
    assert "result" in doc, doc
    task_id = doc["result"]["task"]["id"]
    # the third model call is refused, on each front in its own shape
    r = srv.request("POST", "/chat", json={"message": "hello again"}, timeout=20)
    assert_error_response(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    r = rpc(srv, "SendMessage", a2a_message("again"), rid="req-9")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    doc = r.json()
    assert doc["jsonrpc"] == "2.0" and doc["id"] == "req-9", doc
    assert doc["error"]["data"]["code"] == "rate_limited", doc
    assert isinstance(doc["error"]["code"], int) and doc["error"]["message"], doc
    # calls that run no model are not charged to the turns budget
    doc = rpc(srv, "GetTask", {"id": task_id}).json()
    assert "result" in doc, doc
    assert srv.request("GET", "/chat/sessions").status_code == 200
    assert limited(srv, "turns") == 2.0
    assert limited(srv, "requests") == 0.0


def test_a2a_refusal_is_a_json_rpc_error(agentd):
    srv = agentd(env={"AGENTD_RATE_LIMIT": "1/m,1"})
    assert rpc(srv, "GetTask", {"id": "nope"}).status_code == 200
    r = rpc(srv, "GetTask", {"id": "nope"}, rid=42)
    assert r.status_code == 429
    doc = r.json()
    assert doc["id"] == 42 and doc["error"]["data"]["code"] == "rate_limited", doc
    assert r.headers["RateLimit-Remaining"] == "0"


def test_bad_rate_limit_is_a_config_problem():
    p = run_cli(["check-config"], env={"AGENTD_RATE_LIMIT": "lots", "AGENTD_RATE_LIMIT_TURNS": "5/d"})
    assert p.returncode != 0
    assert "AGENTD_RATE_LIMIT:" in p.stderr + p.stdout
    assert "AGENTD_RATE_LIMIT_TURNS:" in p.stderr + p.stdout


def test_defaults_off_in_development_on_in_production():
    p = run_cli(["check-config"], env={})
    assert "AGENTD_RATE_LIMIT=off" in p.stdout, p.stdout
    p = run_cli(["check-config"], env={"AGENTD_ENV": "production", "AGENTD_AUTH": "on",
                                       "AGENTD_PUBLIC_URL": "https://shop.example"})
    assert "AGENTD_RATE_LIMIT=20/s,40" in p.stdout, p.stdout
    assert "AGENTD_RATE_LIMIT_TURNS=30/m,10" in p.stdout, p.stdout


# ---- per-principal caps on stored state ----

def test_session_cap_refuses_new_sessions_and_stores_nothing(agentd):
    srv = agentd(env={"AGENTD_QUOTA_SESSIONS": "2"})
    ids = []
    for i in range(2):
        r = srv.request("POST", "/chat", json={"message": f"hello {i}"}, timeout=20)
        assert r.status_code == 200, r.text
        ids.append(r.json()["session_id"])
    r = srv.request("POST", "/chat", json={"message": "one more"}, timeout=20)
    assert_error_response(r, 429, "quota_exceeded")
    listed = srv.request("GET", "/chat/sessions").json()
    assert sorted(s["session_id"] for s in listed["sessions"]) == sorted(ids), listed
    # an existing session still takes turns
    r = srv.request("POST", "/chat", json={"message": "again", "session_id": ids[0]}, timeout=20)
    assert r.status_code == 200, r.text


def test_idempotency_cap_refuses_new_keys_but_replays_held_ones(agentd):
    srv = agentd(env={"AGENTD_QUOTA_IDEMPOTENCY_KEYS": "3"})
    client = Client(srv, unique_profile("quota"))
    body = full_body([("BISC-001", 1)])
    keys = [f"key-{uuid.uuid4().hex}" for _ in range(4)]
    first = None
    for k in keys[:3]:
        r = client.create(body, key=k)
        assert r.status_code == 201, r.text
        first = first or r
    r = client.create(body, key=keys[3])
    assert r.status_code == 429, r.text
    msg = r.json()["messages"][0]  # the UCP front's own error shape
    assert msg["type"] == "error" and msg["code"] == "quota_exceeded", r.text
    n = db_query(srv, "SELECT count(*) FROM idempotency", )[0][0]
    assert n == 3
    again = client.create(body, key=keys[0])
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.content == first.content
    # without a key nothing is stored for idempotency: still served
    assert client.create(body).status_code == 201


def test_a2a_over_a_cap_is_a_json_rpc_error_with_the_code(agentd):
    srv = agentd(env={"AGENTD_QUOTA_SESSIONS": "1"})
    doc = rpc(srv, "SendMessage", a2a_message("hello")).json()
    assert "result" in doc, doc
    doc = rpc(srv, "SendMessage", a2a_message("a new conversation")).json()
    assert doc["error"]["data"]["code"] == "quota_exceeded", doc
    assert db_query(srv, "SELECT count(*) FROM sessions")[0][0] == 1


def test_a_replayed_answer_carries_the_current_budget_not_the_stored_one(agentd):
    srv = agentd(env={"AGENTD_RATE_LIMIT": "1/m,10"})
    client = Client(srv, unique_profile("replay"))
    body = full_body([("BISC-001", 1)])
    key = f"key-{uuid.uuid4().hex}"
    first = client.create(body, key=key)
    assert first.status_code == 201, first.text
    assert first.headers["RateLimit-Remaining"] == "9"
    again = client.create(body, key=key)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.headers["RateLimit-Remaining"] == "8"
