"""Authentication (AGENTD_AUTH=on, API keys) and one principal across the
fronts: every protected route refuses a request without credentials, public
routes stay open, bad and revoked keys are refused (401), a key without the
route's scope gets 403, another principal's session, task, checkout and
order are 404, an order placed over /chat is readable over UCP by the same
principal, and no log line holds a key."""

import json
import re
import uuid

import pytest

from agentd_harness import assert_error_response, metric_value, parse_metrics, run_cli
from ucp_client import Client, check_checkout, check_error, full_body, lines, unique_profile

SECRET = "sim-secret-for-auth-tests"
UCP_EXT = "https://ucp.dev/specification/reference?v=2026-01-11"
PAYMENT_KEY = "a2a.ucp.checkout.payment_data"
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"
PAY = {PAYMENT_KEY: {"handler_id": "mock_payment_handler",
                     "credential": {"type": "token", "token": "success_token"}}}
KEY_RE = re.compile(r"^agd_[0-9a-f]{12}_[0-9a-f]{64}$")
PUBLIC = {"/healthz", "/readyz", "/metrics",
          "/orders/x/status"}  # the permalink page: its token is its key


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd(env={"AGENTD_AUTH": "on", "AGENTD_SIMULATION_SECRET": SECRET})


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def chat(srv, key, message, session_id=None, data=None):
    body = {"message": message}
    if session_id:
        body["session_id"] = session_id
    if data:
        body["data"] = data
    return srv.request("POST", "/chat", json=body, headers=bearer(key), timeout=20)


def rpc(srv, key, method, params):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    h = {"Content-Type": "application/json", "A2A-Version": "1.0", "X-A2A-Extensions": UCP_EXT,
         **bearer(key)}
    r = srv.request("POST", "/", data=json.dumps(body), headers=h, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


def a2a_send(srv, key, text):
    msg = {"role": "ROLE_USER", "messageId": str(uuid.uuid4()), "parts": [{"text": text}]}
    doc = rpc(srv, key, "SendMessage", {"message": msg})
    assert "result" in doc, doc
    return doc["result"]["task"]


def assert_401(r, token_given):
    assert_error_response(r, 401, "unauthorized")
    want = 'Bearer realm="agentd"' + (', error="invalid_token"' if token_given else "")
    assert r.headers["WWW-Authenticate"] == want


def auth_failures(srv, reason):
    return metric_value(parse_metrics(srv.get("/metrics").text), "agentd_auth_failures_total",
                        reason=reason) or 0.0


# ---- keys on the command line ----

def test_keys_create_prints_the_key_alone_first_and_list_never_shows_it(srv):
    p = srv.keys_cli("create", "--principal", "cli-user", "--scopes", "chat,ucp")
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert KEY_RE.match(out[0]), out[0]
    key = out[0]
    key_id = key.split("_")[1]
    assert f"id: {key_id}" in out and "scopes: chat,ucp" in out
    p = srv.keys_cli("list")
    assert p.returncode == 0
    assert key_id in p.stdout and "cli-user" in p.stdout
    assert key.split("_")[2] not in p.stdout, "a secret in keys list"
    p = srv.keys_cli("list", "--principal", "nobody-here")
    assert p.returncode == 0 and key_id not in p.stdout
    # the database holds only a hash
    import sqlite3
    con = sqlite3.connect(srv.data_dir / "agentd.db")
    rows = con.execute("SELECT id, hash, scopes FROM api_keys WHERE id = ?", (key_id,)).fetchall()
    con.close()
    assert rows and rows[0][1] != key and key.split("_")[2] not in rows[0][1]
    assert rows[0][2] == "chat,ucp"
    # usage errors are 2 and say why
    for args in (["create"], ["create", "--principal", "anonymous"],
                 ["create", "--principal", "x", "--scopes", "root"], ["bogus"], ["revoke"]):
        p = srv.keys_cli(*args)
        assert p.returncode == 2 and p.stderr, (args, p.stdout)
    p = srv.keys_cli("revoke", "000000000000")
    assert p.returncode == 1 and "no active key" in p.stderr


# ---- which routes ask ----

def test_every_protected_route_needs_credentials(srv):
    admin = srv.create_key("route-walker", scopes="admin")
    r = srv.get("/testing/routes", headers={**bearer(admin), "Simulation-Secret": SECRET})
    assert r.status_code == 200, r.text
    routes = r.json()["routes"]
    assert len(routes) > 15
    checked = 0
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x", route["path"])
        public = path in PUBLIC or path.startswith("/.well-known/")
        for method in route["methods"]:
            if method == "HEAD":
                continue
            r = srv.request(method, path, data=b"{}", headers={"Content-Type": "application/json"})
            if public:
                assert r.status_code != 401, (method, path, r.text)
            else:
                assert_401(r, token_given=False)
                checked += 1
    assert checked > 15


def test_public_routes_stay_open(srv):
    for path in ("/healthz", "/readyz", "/.well-known/agent-card.json", "/.well-known/agent.json",
                 "/.well-known/ucp", "/metrics"):
        r = srv.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)


def test_bad_credentials_are_401(srv):
    good = srv.create_key("bad-cred-owner")
    forged = good[:-1] + ("0" if good[-1] != "0" else "1")   # right id, wrong secret
    unknown = "agd_" + "0" * 12 + "_" + "1" * 64
    before = auth_failures(srv, "invalid")
    for h in (bearer("nonsense"), bearer(forged), bearer(unknown), {"X-API-Key": forged},
              {"Authorization": f"Basic {good}"}, bearer("eyJhbGciOiJub25lIn0.e30.")):
        assert_401(srv.request("GET", "/chat/sessions", headers=h), token_given=True)
    assert auth_failures(srv, "invalid") == before + 6
    assert_401(srv.request("GET", "/chat/sessions"), token_given=False)
    # both ways of sending a good key work
    assert srv.request("GET", "/chat/sessions", headers=bearer(good)).status_code == 200
    assert srv.request("GET", "/chat/sessions", headers={"X-API-Key": good}).status_code == 200
    assert srv.request("GET", "/chat/sessions",
                       headers={"Authorization": f"bearer {good}"}).status_code == 200


def test_revoked_key_is_refused_on_the_next_request(srv):
    key = srv.create_key("revokee")
    assert srv.request("GET", "/chat/sessions", headers=bearer(key)).status_code == 200
    before = auth_failures(srv, "revoked")
    p = srv.keys_cli("revoke", key.split("_")[1])
    assert p.returncode == 0, p.stderr
    assert_401(srv.request("GET", "/chat/sessions", headers=bearer(key)), token_given=True)
    assert auth_failures(srv, "revoked") == before + 1
    other = srv.create_key("revokee")   # the principal keeps its other keys
    assert srv.request("GET", "/chat/sessions", headers=bearer(other)).status_code == 200


def test_a_key_without_the_routes_scope_is_403(srv):
    ucp_only = srv.create_key("scoped", scopes="ucp")
    r = chat(srv, ucp_only, "hi")
    assert_error_response(r, 403, "forbidden")
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert 'scope="chat"' in r.headers["WWW-Authenticate"]
    c = Client(srv, unique_profile("scoped"), key=ucp_only)
    assert c.create(full_body()).status_code == 201
    default = srv.create_key("plain-user")
    assert_error_response(srv.request("GET", "/health", headers=bearer(default)), 403,
                          "forbidden")
    admin = srv.create_key("operator", scopes="admin")
    assert srv.request("GET", "/health", headers=bearer(admin)).status_code == 200
    assert_error_response(chat(srv, admin, "hi"), 403, "forbidden")


# ---- one principal across fronts; others see nothing ----

def test_an_order_placed_over_chat_is_the_principals_over_ucp(srv):
    alice, bob = srv.principal_key("alice"), srv.principal_key("bob")
    r = chat(srv, alice, "add 2 BISC-001")
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    for msg in (SHIP_TO, "standard shipping"):
        assert chat(srv, alice, msg, sid).status_code == 200
    d = chat(srv, alice, "pay", sid, data=PAY).json()
    co = d["checkout"]
    assert co["status"] == "completed", co.get("messages")
    oid, chk = co["order"]["id"], co["id"]

    # the same principal over UCP, whatever platform profile it presents
    for profile in (unique_profile("alice-a"), unique_profile("alice-b")):
        mine = Client(srv, profile, key=alice)
        r = mine.order(oid)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == oid
        assert check_checkout(mine.get(chk).json())["status"] == "completed"
    # another principal: nothing, not even that it exists
    theirs = Client(srv, unique_profile("alice-a"), key=bob)   # the same profile URL, too
    r = theirs.order(oid)
    check_error(r, 404, "not_found")
    assert "BISC-001" not in r.text and "jane@example.com" not in r.text
    check_error(theirs.get(chk), 404, "not_found")
    # nor the session, its events, or a turn on it (a client-sent id is no identity)
    assert srv.request("GET", f"/chat/sessions/{sid}", headers=bearer(bob)).status_code == 404
    assert srv.request("GET", f"/chat/sessions/{sid}/events",
                       headers=bearer(bob)).status_code == 404
    assert srv.request("DELETE", f"/chat/sessions/{sid}", headers=bearer(bob)).status_code == 404
    assert chat(srv, bob, "what's in my cart", sid).status_code == 404
    listed = srv.request("GET", "/chat/sessions", headers=bearer(bob)).json()["sessions"]
    assert sid not in [s["session_id"] for s in listed]
    assert srv.request("GET", f"/chat/sessions/{sid}", headers=bearer(alice)).status_code == 200


def test_another_principals_checkout_does_not_exist(srv):
    owner = Client(srv, unique_profile("owner"))            # its own principal
    doc = owner.ready([("BISC-001", 1)])
    cid = doc["id"]
    intruder = Client(srv, owner.profile, key=srv.principal_key("intruder"))
    check_error(intruder.get(cid), 404, "not_found")
    check_error(intruder.update(cid, {"line_items": lines(("BISC-001", 9))}), 404, "not_found")
    check_error(intruder.complete(cid), 404, "not_found")
    check_error(intruder.cancel(cid), 404, "not_found")
    # the same principal under another protocol version is the same owner
    same = Client(srv, owner.profile, version="2026-01-11", key=owner.key)
    assert same.get(cid).status_code == 200
    g = check_checkout(owner.get(cid).json())
    assert g["status"] == "ready_for_complete" and g["line_items"][0]["quantity"] == 1
    # an order, too
    done = owner.purchase([("BISC-001", 1)])
    check_error(intruder.order(done["order"]["id"]), 404, "not_found")
    check_error(owner.order("ord_" + "0" * 24), 404, "not_found")


def test_another_principals_task_is_not_found(srv):
    alice, bob = srv.principal_key("alice"), srv.principal_key("bob")
    t = a2a_send(srv, alice, "show me cookies")
    tid, ctx = t["id"], t["contextId"]
    assert "result" in rpc(srv, alice, "GetTask", {"id": tid})
    for method, params in (("GetTask", {"id": tid}), ("CancelTask", {"id": tid})):
        doc = rpc(srv, bob, method, params)
        assert "result" not in doc and doc["error"]["code"] == -32001, doc
    doc = rpc(srv, bob, "ListTasks", {"contextId": ctx})
    assert doc.get("result", {}).get("tasks", []) == [], doc
    # bob cannot continue alice's context by naming it
    msg = {"role": "ROLE_USER", "messageId": str(uuid.uuid4()), "contextId": ctx,
           "parts": [{"text": "add 1 BISC-001"}]}
    doc = rpc(srv, bob, "SendMessage", {"message": msg})
    assert "error" in doc, doc
    assert rpc(srv, alice, "GetTask", {"id": tid})["result"]["status"]["state"] != \
        "TASK_STATE_CANCELED"


def test_idempotency_keys_are_per_principal(srv):
    a = Client(srv, unique_profile("idem-a"))
    b = Client(srv, unique_profile("idem-b"))
    key = "key-" + uuid.uuid4().hex
    ra, rb = a.create(full_body(), key=key), b.create(full_body(), key=key)
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"] and "Idempotent-Replayed" not in rb.headers


def test_no_log_line_holds_a_key_after_a_purchase(srv):
    key = srv.create_key("log-check")
    c = Client(srv, unique_profile("log-check"), key=key)
    c.purchase([("BISC-001", 1)])
    chat(srv, key, "show me cookies")
    srv.request("GET", "/chat/sessions", headers=bearer(key[:-2] + "00"))   # a failure logged
    secret = key.split("_")[2]
    text = srv.log_text()
    assert "auth failure" in text
    assert key not in text and secret not in text
    assert secret[:16] not in text


# ---- what is described ----

def test_card_and_openapi_describe_the_keys(srv):
    card = srv.get("/.well-known/agent-card.json").json()
    schemes = card["securitySchemes"]
    assert schemes["bearer"]["httpAuthSecurityScheme"]["scheme"].lower() == "bearer"   # 1.0
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"  # 0.3
    assert schemes["apiKey"]["apiKeySecurityScheme"] == {
        "location": "header", "name": "X-API-Key",
        "description": schemes["apiKey"]["apiKeySecurityScheme"]["description"]}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    assert {"bearer": ["a2a"]} in card["security"]
    assert {"schemes": {"bearer": {"list": ["a2a"]}}} in card["securityRequirements"]

    key = srv.principal_key("alice")
    doc = srv.get("/openapi.json", headers=bearer(key)).json()
    assert set(doc["components"]["securitySchemes"]) >= {"bearer", "apiKey"}
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/.well-known/ucp"]["get"]["security"] == []
    assert doc["paths"]["/metrics"]["get"]["security"] == []
    assert doc["paths"]["/chat"]["post"]["security"] == [{"bearer": ["chat"]}, {"apiKey": ["chat"]}]
    assert doc["paths"]["/orders/{id}"]["get"]["security"] == [{"bearer": ["ucp"]},
                                                              {"apiKey": ["ucp"]}]
    assert doc["paths"]["/health"]["get"]["security"] == [{"bearer": ["admin"]},
                                                          {"apiKey": ["admin"]}]


def test_with_auth_off_nothing_is_described_or_asked(server):
    card = server.get("/.well-known/agent-card.json").json()
    assert "securitySchemes" not in card and "security" not in card
    doc = server.get("/openapi.json").json()
    assert "securitySchemes" not in doc["components"] and "security" not in doc
    assert server.request("GET", "/chat/sessions").status_code == 200


# ---- metrics token, production ----

def test_metrics_token(agentd):
    s = agentd(env={"AGENTD_METRICS_TOKEN": "scrape-me-please"})
    assert_401(s.get("/metrics"), token_given=False)
    assert_401(s.get("/metrics", headers=bearer("wrong")), token_given=True)
    r = s.get("/metrics", headers=bearer("scrape-me-please"))
    assert r.status_code == 200 and "agentd_auth_failures_total" in r.text
    assert metric_value(parse_metrics(r.text), "agentd_auth_failures_total",
                        reason="metrics") == 2
    assert s.get("/healthz").status_code == 200
    assert s.request("GET", "/chat/sessions").status_code == 200   # auth itself stays off
    assert "scrape-me-please" not in s.log_text()


def test_production_refuses_auth_off():
    for env in ({}, {"AGENTD_AUTH": "off"}):
        p = run_cli(["serve"], env={"AGENTD_ENV": "production", "AGENTD_LLM": "builtin", **env})
        assert p.returncode == 2, p.stdout + p.stderr
        assert "production: AGENTD_AUTH=off" in p.stderr
    p = run_cli(["check-config"], env={"AGENTD_AUTH": "sometimes"})
    assert p.returncode == 2 and "AGENTD_AUTH=sometimes" in p.stdout
