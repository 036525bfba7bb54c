"""The audit log (AGENTD_AUTH=on): a UCP purchase and a /chat purchase leave
create/update/complete rows under the principal with the responses'
X-Request-Id, turns leave start/end rows, key create/revoke and an order
update appear, a burst of bad keys is one row with a count, `agentd audit`
filters by principal, time and count, and no row holds a secret."""

import json
import time

import pytest

from agentd_harness import run_cli
from ucp_client import Client, full_body, lines, unique_profile

SECRET = "sim-secret-for-audit-tests"
PAY = {"a2a.ucp.checkout.payment_data": {
    "handler_id": "mock_payment_handler",
    "credential": {"type": "token", "token": "success_token"}}}
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd(env={"AGENTD_AUTH": "on", "AGENTD_SIMULATION_SECRET": SECRET})


def audit(srv, *args):
    env = {"AGENTD_DATA_DIR": srv.data_dir, **srv.extra_env}
    p = run_cli(["audit", *args], env=env)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    for r in rows:
        assert set(r) == {"ts", "principal", "action", "target", "request_id", "outcome",
                          "count"}, r
    return rows, p.stdout


def chat(srv, key, message, session_id=None, data=None):
    body = {"message": message, **({"session_id": session_id} if session_id else {}),
            **({"data": data} if data else {})}
    r = srv.request("POST", "/chat", json=body, headers={"Authorization": f"Bearer {key}"},
                    timeout=20)
    assert r.status_code == 200, r.text
    return r


def test_ucp_purchase_rows_carry_the_request_ids(srv):
    key = srv.create_key("audit-ucp", "ucp,admin")
    c = Client(srv, unique_profile("audit"), key=key)
    r1 = c.create(full_body([("BISC-001", 1)]))
    assert r1.status_code == 201, r1.text
    cid = r1.json()["id"]
    r2 = c.update(cid, {"line_items": lines(("BISC-001", 2))})
    assert r2.status_code == 200, r2.text
    r3 = c.complete(cid)
    assert r3.status_code == 200, r3.text
    oid = r3.json()["order"]["id"]
    r4 = c.request("POST", f"/testing/simulate-shipping/{oid}",
                   headers={"Simulation-Secret": SECRET})
    assert r4.status_code == 200, r4.text

    rows, text = audit(srv, "--principal", "audit-ucp")
    got = [(r["action"], r["target"], r["request_id"], r["outcome"]) for r in rows]
    assert got[0] == ("apikey.create", key.split("_")[1], "", "ok")
    assert got[1:] == [
        ("checkout.create", cid, r1.headers["X-Request-Id"], "ok"),
        ("checkout.update", cid, r2.headers["X-Request-Id"], "ok"),
        ("checkout.complete", cid, r3.headers["X-Request-Id"], "ok"),
        ("order.update", oid, r4.headers["X-Request-Id"], "ok"),
    ], got
    assert all(r["principal"] == "audit-ucp" for r in rows)
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)   # oldest first
    for secret in (key, "success_token", "1 Main St", "jane@example.com"):
        assert secret not in text


def test_chat_purchase_rows_and_turns(srv):
    key = srv.create_key("audit-chat", "chat")
    r = chat(srv, key, "add 2 BISC-001")
    sid = r.json()["session_id"]
    rids = [r.headers["X-Request-Id"]]
    for msg in (SHIP_TO, "standard shipping"):
        rids.append(chat(srv, key, msg, sid).headers["X-Request-Id"])
    r = chat(srv, key, "pay", sid, data=PAY)
    rids.append(r.headers["X-Request-Id"])
    co = r.json()["checkout"]
    assert co["status"] == "completed", co.get("messages")

    rows, text = audit(srv, "--principal", "audit-chat")
    shop = [r for r in rows if r["action"].startswith("checkout.")]
    assert shop[0]["action"] == "checkout.create" and shop[0]["request_id"] == rids[0]
    assert shop[-1]["action"] == "checkout.complete" and shop[-1]["request_id"] == rids[-1]
    assert shop[-1]["target"] == co["id"] and shop[-1]["outcome"] == "ok"
    assert any(r["action"] == "checkout.update" and r["request_id"] in rids[1:3] for r in shop)
    # one start and one end per turn, under each request's id
    for rid in rids:
        ends = [(r["action"], r["outcome"]) for r in rows
                if r["request_id"] == rid and r["action"].startswith("turn.")]
        assert ends == [("turn.start", "ok"), ("turn.end", "completed")], (rid, ends)
    for secret in (key, "success_token", "1 Main St", "jane@example.com", "Springfield"):
        assert secret not in text


def test_key_revoke_is_audited(srv):
    key = srv.create_key("audit-revoke")
    kid = key.split("_")[1]
    p = srv.keys_cli("revoke", kid)
    assert p.returncode == 0, p.stderr
    rows, text = audit(srv, "--principal", "audit-revoke")
    assert [(r["action"], r["target"]) for r in rows] == [("apikey.create", kid),
                                                           ("apikey.revoke", kid)]
    assert key not in text


def test_a_burst_of_bad_keys_is_one_row_with_a_count(srv):
    before, _ = audit(srv)
    bad = "agd_0123456789ab_" + "f" * 64
    for _ in range(12):
        r = srv.request("GET", "/chat/sessions", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
    counted = 0
    for _ in range(100):   # the rows are written on the worker pool, after the replies
        rows, text = audit(srv)
        burst = [r for r in rows if r["action"] == "auth.failure"]
        counted = sum(r["count"] for r in burst)
        if counted >= 12:
            break
        time.sleep(0.05)
    assert counted == 12, burst
    assert 1 <= len(burst) <= 2, burst   # 2 only when the burst straddles a minute
    assert all(r["target"] == "addr:127.0.0.1" and r["outcome"] == "invalid"
               for r in burst), burst
    assert bad not in text and "f" * 64 not in text


def test_filters_since_and_limit(srv):
    rows, _ = audit(srv)
    assert len(rows) >= 3
    last2, _ = audit(srv, "--limit", "2")
    assert last2 == rows[-2:]
    assert audit(srv, "--since", "1h")[0] == rows
    assert audit(srv, "--since", "2999-01-01T00:00:00Z")[0] == []
    assert audit(srv, "--since", "2000-01-01T00:00:00Z")[0] == rows
    assert audit(srv, "--principal", "nobody-at-all")[0] == []
    env = {"AGENTD_DATA_DIR": srv.data_dir, **srv.extra_env}
    for bad in (["--limit", "x"], ["--since", "yesterday"], ["--since"], ["extra"]):
        p = run_cli(["audit", *bad], env=env)
        assert p.returncode == 2 and "usage" in p.stderr, (bad, p.stderr)
