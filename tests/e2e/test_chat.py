"""POST /chat with the built-in offline model: the README's demo conversation
(a fixed contract, design §8), payment without data and with a declined
token, request validation and the one error shape, Idempotency-Key (a
replay never runs a second turn), tenant isolation of the order the chat
placed, and the turn metrics."""

import json
import uuid

import pytest
import requests

from agentd_harness import assert_error_response, metric_value, parse_metrics
from ucp_client import (Client, check_checkout, db_query, expected_totals, load_catalog,
                        unique_profile)

PAYMENT_KEY = "a2a.ucp.checkout.payment_data"
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"


def pay_data(token="success_token"):
    return {PAYMENT_KEY: {"handler_id": "mock_payment_handler",
                          "credential": {"type": "token", "token": token}}}


def chat(srv, message, session_id=None, data=None, headers=None, status=200):
    body = {"message": message}
    if session_id is not None:
        body["session_id"] = session_id
    if data is not None:
        body["data"] = data
    r = srv.request("POST", "/chat", json=body, headers=headers or {}, timeout=10)
    if status is not None:
        assert r.status_code == status, f"{message!r}: {r.status_code} {r.text}"
    return r


def turn(srv, message, session_id=None, data=None):
    """One successful turn: the answer document, shape-checked."""
    doc = chat(srv, message, session_id, data).json()
    assert {"answer", "session_id", "checkout", "turn_id", "usage", "outcome"} == set(doc), doc
    assert isinstance(doc["answer"], str) and doc["answer"], doc
    assert isinstance(doc["session_id"], str) and doc["session_id"], doc
    if session_id is not None:
        assert doc["session_id"] == session_id
    if doc["checkout"] is not None:
        check_checkout(doc["checkout"])
    return doc


def lines_of(checkout):
    return {li["item"]["id"]: li["quantity"] for li in checkout["line_items"]}


def group(checkout):
    return checkout["fulfillment"]["methods"][0]["groups"][0]


def money(amount):
    return f"${amount // 100}.{amount % 100:02d}"


def total_of(checkout):
    return next(t["amount"] for t in checkout["totals"] if t["type"] == "total")


def turns_completed(srv):
    samples = parse_metrics(srv.get("/metrics").text)
    return metric_value(samples, "agentd_turns_total", outcome="completed") or 0.0


def message_count(srv, session_id):
    return db_query(srv, "SELECT count(*) FROM messages WHERE session_id = ?", session_id)[0][0]


# ---- the demo conversation (fixed contract) ----

def test_demo_conversation(server):
    d = turn(server, "show me cookies")
    sid = d["session_id"]
    assert d["checkout"] is None
    assert "BISC-001" in d["answer"] and "Chocolate Chip Cookies" in d["answer"], d["answer"]
    assert "O-COOKIES-001" in d["answer"], d["answer"]

    d = turn(server, "add 2 chocochip cookies", sid)
    co = d["checkout"]
    assert co is not None and lines_of(co) == {"BISC-001": 2}, co["line_items"]
    chk = co["id"]

    d = turn(server, "add 2 BISC-001", sid)
    assert d["checkout"]["id"] == chk, "the session keeps its checkout"
    assert lines_of(d["checkout"]) == {"BISC-001": 4}

    d = turn(server, SHIP_TO, sid)
    co = d["checkout"]
    assert co["buyer"]["email"] == "jane@example.com", co.get("buyer")
    assert co["buyer"].get("full_name") == "Jane Doe", co.get("buyer")
    dests = co["fulfillment"]["methods"][0]["destinations"]
    assert any(x.get("address_locality") == "Springfield" and x.get("address_region") == "IL"
               and x.get("postal_code") == "62701" and x.get("address_country") == "US"
               for x in dests), dests
    options = group(co)["options"]
    express = [o["id"] for o in options if "express" in o["title"].lower()]
    assert len(express) == 1, options
    assert "express" in d["answer"].lower(), "the answer offers the shipping options"

    d = turn(server, "express shipping", sid)
    co = d["checkout"]
    assert group(co)["selected_option_id"] == express[0]
    assert co["status"] == "ready_for_complete", co.get("messages")
    want = expected_totals(load_catalog(), [("BISC-001", 4)], option=express[0])
    assert total_of(co) == want["total"], (co["totals"], want)

    d = turn(server, "pay", sid, data=pay_data())
    co = d["checkout"]
    assert co["status"] == "completed"
    oid = co["order"]["id"]
    assert oid and oid in d["answer"], d["answer"]
    # the link in the answer opens for the buyer: the order-status page
    assert co["order"]["permalink_url"] in d["answer"], d["answer"]
    page = requests.get(co["order"]["permalink_url"], headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 200 and oid in page.text, page.text
    assert money(want["total"]) in d["answer"], d["answer"]
    assert "success_token" not in json.dumps(d), "the credential is never echoed"

    # asked again, the session still knows its (now completed) checkout
    d = turn(server, "what's in my cart", sid)
    assert d["checkout"]["id"] == chk and d["checkout"]["order"]["id"] == oid

    # The order belongs to the chat's principal: with AGENTD_AUTH=off that is
    # "anonymous" (single-tenant development), the same principal every UCP
    # platform is, whatever its profile -- the profile is never the owner.
    # Two principals with keys: test_auth.py.
    for profile in (unique_profile("chat-a"), unique_profile("chat-b")):
        c = Client(server, profile)
        r = c.order(oid)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == oid
        assert c.get(chk).json()["status"] == "completed"
    assert "success_token" not in server.log_text()


def build_ready_checkout(srv):
    sid = turn(srv, "add 1 BISC-001")["session_id"]
    turn(srv, SHIP_TO, sid)
    co = turn(srv, "standard shipping", sid)["checkout"]
    assert co["status"] == "ready_for_complete", co.get("messages")
    return sid, co


def test_pay_without_payment_data_asks_for_it(server):
    sid, co = build_ready_checkout(server)
    d = turn(server, "pay", sid)
    assert "payment" in d["answer"].lower() and PAYMENT_KEY in d["answer"], d["answer"]
    assert d["checkout"]["status"] == "ready_for_complete"
    assert "order" not in d["checkout"]


def test_declined_payment_leaves_the_checkout_completable(server):
    sid, co = build_ready_checkout(server)
    d = turn(server, "pay", sid, data=pay_data("fail_token"))
    assert "declined" in d["answer"].lower(), d["answer"]
    assert d["checkout"]["status"] == "ready_for_complete"
    assert "order" not in d["checkout"]
    d = turn(server, "pay", sid, data=pay_data())
    assert d["checkout"]["status"] == "completed"
    assert d["checkout"]["order"]["id"] in d["answer"]


def test_after_the_order_a_new_add_starts_a_new_checkout(server):
    sid, co = build_ready_checkout(server)
    done = turn(server, "pay", sid, data=pay_data())["checkout"]
    assert done["status"] == "completed"
    d = turn(server, "add 1 STRAW-001", sid)
    assert d["checkout"]["id"] != done["id"] and lines_of(d["checkout"]) == {"STRAW-001": 1}
    d = turn(server, "change STRAW-001 to 3", sid)
    assert lines_of(d["checkout"]) == {"STRAW-001": 3}


def test_change_to_zero_removes_the_line(server):
    sid = turn(server, "add 2 STRAW-001")["session_id"]
    r = chat(server, "change STRAW-001 to 0", sid, status=None)
    assert r.status_code == 200, r.text
    assert lines_of(r.json()["checkout"]) == {}


def test_sessions_are_separate(server):
    a = turn(server, "add 1 STRAW-001")
    b = turn(server, "add 3 CHIPS-001")
    assert a["session_id"] != b["session_id"]
    assert a["checkout"]["id"] != b["checkout"]["id"]
    assert lines_of(turn(server, "status", a["session_id"])["checkout"]) == {"STRAW-001": 1}


def test_new_session_and_turn_ids_sort_by_creation(server):
    # the runner's new session and turn ids start with the clock, so their
    # index inserts append (core/reqid.h id_new_ordered)
    import re
    import time
    a = turn(server, "status")
    time.sleep(0.005)
    b = turn(server, "status")
    for d in (a, b):
        assert re.fullmatch(r"ses_[0-9a-f]{36}", d["session_id"]), d
        assert re.fullmatch(r"turn_[0-9a-f]{36}", d["turn_id"]), d
    assert a["session_id"] < b["session_id"] and a["turn_id"] < b["turn_id"], (a, b)


# ---- validation: 400 in the one error shape ----

BAD_BODIES = [
    pytest.param(b"", "a JSON body is required", id="no-body"),
    pytest.param(b"{}", "message", id="no-message"),
    pytest.param(b'{"message": ""}', "message", id="empty-message"),
    pytest.param(b'{"message": 5}', "message", id="number-message"),
    pytest.param(b'{"message": null}', "message", id="null-message"),
    pytest.param(json.dumps({"message": "x" * 16385}).encode(), "longer", id="oversized-message"),
    pytest.param(b'{"message": "hi", "data": [1]}', "data", id="array-data"),
    pytest.param(b'{"message": "hi", "data": "x"}', "data", id="string-data"),
    pytest.param(b'{"message": "hi", "data": 7}', "data", id="number-data"),
    pytest.param(b'{"message": "hi", "session_id": 5}', "session_id", id="number-session"),
    pytest.param(b'{"message": "hi", "session_id": ""}', "session_id", id="empty-session"),
    pytest.param(json.dumps({"message": "hi", "session_id": "s" * 65}).encode(), "session_id",
                 id="long-session"),
    pytest.param(b"[1, 2]", "object", id="array-body"),
    pytest.param(b'"hello"', "object", id="string-body"),
    pytest.param(b'{"message": ', "invalid JSON at line 1", id="truncated-json"),
    pytest.param(b'{"message": "hi"} trailing', "invalid JSON", id="trailing-garbage"),
    pytest.param(b'\xff\xfe{"message": "hi"}', "invalid JSON", id="not-utf8"),
    pytest.param(b'{"message": "\\udc00"}', "invalid JSON", id="lone-surrogate"),
]


@pytest.mark.parametrize("raw,mentions", BAD_BODIES)
def test_invalid_bodies_are_400(server, raw, mentions):
    before = turns_completed(server)
    r = server.request("POST", "/chat", data=raw, headers={"Content-Type": "application/json"})
    err = assert_error_response(r, 400, "invalid_request")
    if mentions:
        assert mentions in err["message"], err
    assert turns_completed(server) == before, "no turn ran"


def test_message_at_the_limit_is_accepted(server):
    d = turn(server, "x" * 16384)
    assert d["checkout"] is None


def test_unknown_session_is_404(server):
    for sid in ("ses_nope", "s" * 64):
        r = server.request("POST", "/chat", json={"message": "hi", "session_id": sid})
        err = assert_error_response(r, 404, "session_not_found")
        assert err.get("session_id") == sid, err


def test_null_session_and_data_start_a_new_session(server):
    r = server.request("POST", "/chat", json={"message": "hi", "session_id": None, "data": None})
    assert r.status_code == 200, r.text
    assert r.json()["session_id"].startswith("ses_")


# ---- Idempotency-Key ----

def test_idempotency_key_replays_without_a_second_turn(server):
    key = "chat-" + uuid.uuid4().hex
    body = {"message": "show me cookies"}
    before = turns_completed(server)
    r1 = server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key})
    assert r1.status_code == 200, r1.text
    assert r1.headers.get("Idempotent-Replayed") is None
    sid = r1.json()["session_id"]
    n1 = message_count(server, sid)
    assert n1 == 4, "user, assistant (search call), tool result, answer"
    r2 = server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key})
    assert r2.status_code == 200, r2.text
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content
    assert turns_completed(server) == before + 1, "the replay ran a turn"
    assert message_count(server, sid) == n1, "the replay appended messages"

    # a mutating message in an existing session: the replay adds nothing
    key2 = "chat-" + uuid.uuid4().hex
    body2 = {"message": "add 2 BISC-001", "session_id": sid}
    r3 = server.request("POST", "/chat", json=body2, headers={"Idempotency-Key": key2})
    assert r3.status_code == 200 and lines_of(r3.json()["checkout"]) == {"BISC-001": 2}
    n3 = message_count(server, sid)
    r4 = server.request("POST", "/chat", json=body2, headers={"Idempotency-Key": key2})
    assert r4.headers.get("Idempotent-Replayed") == "true" and r4.content == r3.content
    assert message_count(server, sid) == n3
    assert lines_of(turn(server, "status", sid)["checkout"]) == {"BISC-001": 2}

    # the same key with another body: 409, and nothing runs
    before = turns_completed(server)
    r5 = server.request("POST", "/chat", json={"message": "add 5 BISC-001", "session_id": sid},
                        headers={"Idempotency-Key": key2})
    assert_error_response(r5, 409, "idempotency_key_reused")
    assert turns_completed(server) == before
    assert lines_of(turn(server, "status", sid)["checkout"]) == {"BISC-001": 2}


def test_invalid_idempotency_key_is_400(server):
    r = server.request("POST", "/chat", json={"message": "hi"},
                       headers={"Idempotency-Key": "k" * 256})
    assert_error_response(r, 400, "invalid_idempotency_key")


def test_a_4xx_turn_error_is_replayed_too(server):
    key = "chat-" + uuid.uuid4().hex
    body = {"message": "hi", "session_id": "ses_" + uuid.uuid4().hex[:24]}
    r1 = server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key})
    assert_error_response(r1, 404, "session_not_found")
    r2 = server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key})
    assert r2.status_code == 404 and r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content


# ---- metrics ----

def test_turn_and_model_metrics(server):
    for m in ("hi", "show me cookies", "add 1 NUTRIBAR-001"):
        turn(server, m)
    chat(server, "hi", session_id="ses_missing", status=404)
    samples = parse_metrics(server.get("/metrics").text)
    names = {n for n, _, _ in samples}
    assert (metric_value(samples, "agentd_turns_total", outcome="completed") or 0) >= 3
    assert (metric_value(samples, "agentd_turns_total", outcome="session_not_found") or 0) >= 1
    for suffix in ("_bucket", "_sum", "_count"):
        assert "agentd_turn_duration_seconds" + suffix in names, names
    count = metric_value(samples, "agentd_turn_duration_seconds_count")
    finished = sum(v for n, _, v in samples if n == "agentd_turns_total")
    assert count == finished, (count, finished)
    assert metric_value(samples, "agentd_turns_in_flight") == 0
    builtin_ok = metric_value(samples, "agentd_llm_requests_total", provider="builtin",
                              model="agentd-builtin-1", outcome="ok")
    # "add 1 NUTRIBAR-001" alone takes two model steps (tool call, answer)
    assert builtin_ok is not None and builtin_ok >= 4, builtin_ok
