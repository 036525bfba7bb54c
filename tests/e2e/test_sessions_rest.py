"""REST chat sessions: GET /chat/sessions (the principal's sessions, newest
first, by page with an opaque keyset token) and DELETE /chat/sessions/{id}
(its messages, events, tasks and turns go; the order it placed stays;
another principal's or an unknown session is 404; a session with a running
turn is 409 turn_in_progress and loses nothing)."""

import sqlite3
import threading
import time

import pytest

from agentd_harness import SLOW, assert_error_response, http_session
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)
from ucp_client import db_path, db_query

PAY = {"a2a.ucp.checkout.payment_data": {
    "handler_id": "mock_payment_handler",
    "credential": {"type": "token", "token": "success_token"}}}
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"


def new_session(srv, message="show me cookies"):
    r = srv.request("POST", "/chat", json={"message": message}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


def say(srv, sid, message, data=None):
    body = {"message": message, "session_id": sid}
    if data:
        body["data"] = data
    r = srv.request("POST", "/chat", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def list_all(srv, limit):
    """Every page in order: [[session ids of page 1], [page 2], ...]."""
    pages, token = [], None
    for _ in range(50):
        params = {"limit": limit}
        if token:
            params["page_token"] = token
        r = srv.get("/chat/sessions", params=params)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"sessions", "next_page_token"}, doc
        pages.append([s["session_id"] for s in doc["sessions"]])
        token = doc["next_page_token"]
        if token is None:
            return pages
        assert isinstance(token, str) and token
    pytest.fail("the pages never ended")


def test_list_is_newest_first_and_paginated(agentd):
    srv = agentd()
    assert srv.get("/chat/sessions").json() == {"sessions": [], "next_page_token": None}
    sids = [new_session(srv, f"hello {i}") for i in range(5)]
    checkout_sid = sids[2]
    co = say(srv, checkout_sid, "add 1 BISC-001")["checkout"]
    doc = srv.get("/chat/sessions").json()
    got = doc["sessions"]
    assert [s["session_id"] for s in got] == sids[::-1]
    assert doc["next_page_token"] is None
    for s in got:
        assert {"session_id", "created_at", "updated_at", "checkout_id", "expires_at"} <= set(s), s
        assert s["updated_at"] >= s["created_at"] > 0
        assert s["expires_at"] > s["updated_at"], "AGENTD_SESSION_TTL has a default"
    by_id = {s["session_id"]: s for s in got}
    assert by_id[checkout_sid]["checkout_id"] == co["id"]
    assert by_id[sids[0]]["checkout_id"] is None

    pages = list_all(srv, 2)
    assert pages == [sids[4:2:-1], sids[2:0:-1], sids[0:1]]
    # a session created between pages does not shift the pages not yet read
    first = srv.get("/chat/sessions", params={"limit": 2}).json()
    new_session(srv, "late")
    second = srv.get("/chat/sessions", params={"limit": 2,
                                               "page_token": first["next_page_token"]}).json()
    assert [s["session_id"] for s in second["sessions"]] == sids[2:0:-1]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc", "limit=",
                                   "page_token=zz", "page_token=31", "page_token=3132"])
def test_bad_list_parameters_are_400(agentd, query):
    srv = agentd()
    r = srv.get(f"/chat/sessions?{query}")
    assert_error_response(r, 400, "invalid_request")


def test_delete_takes_the_conversation_and_keeps_the_order(agentd):
    srv = agentd()
    sid = new_session(srv)
    say(srv, sid, "add 2 BISC-001")
    say(srv, sid, SHIP_TO)
    say(srv, sid, "express shipping")
    d = say(srv, sid, "pay", data=PAY)
    oid = d["checkout"]["order"]["id"]
    assert d["checkout"]["status"] == "completed"
    keep = new_session(srv, "another conversation")
    for table, col in (("messages", "session_id"), ("events", "session_id"),
                       ("turns", "session_id")):
        assert db_query(srv, f"SELECT count(*) FROM {table} WHERE {col} = ?", sid)[0][0] > 0

    r = srv.request("DELETE", f"/chat/sessions/{sid}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error_response(srv.get(f"/chat/sessions/{sid}"), 404, "session_not_found")
    assert_error_response(srv.get(f"/chat/sessions/{sid}/events"), 404, "session_not_found")
    for table, col in (("sessions", "id"), ("messages", "session_id"), ("events", "session_id"),
                       ("turns", "session_id"), ("tasks", "context_id")):
        assert db_query(srv, f"SELECT count(*) FROM {table} WHERE {col} = ?", sid)[0][0] == 0, table
    assert db_query(srv, "SELECT count(*) FROM orders WHERE id = ?", oid)[0][0] == 1
    assert [s["session_id"] for s in srv.get("/chat/sessions").json()["sessions"]] == [keep]
    # gone is gone: a second delete, and a message to it, find nothing
    assert_error_response(srv.request("DELETE", f"/chat/sessions/{sid}"), 404, "session_not_found")
    r = srv.request("POST", "/chat", json={"message": "hi", "session_id": sid})
    assert r.status_code == 404, r.text
    assert srv.get(f"/chat/sessions/{keep}").status_code == 200


def test_another_principals_session_is_404_and_untouched(agentd):
    srv = agentd()
    mine = new_session(srv)
    con = sqlite3.connect(str(db_path(srv)), timeout=5)
    try:
        now = int(time.time() * 1000)
        con.execute("INSERT INTO sessions(id, owner, context, created_at, updated_at, expires_at) "
                    "VALUES('theirs', 'someone-else', '{}', ?, ?, NULL)", (now, now))
        con.commit()
    finally:
        con.close()
    assert [s["session_id"] for s in srv.get("/chat/sessions").json()["sessions"]] == [mine]
    assert_error_response(srv.request("DELETE", "/chat/sessions/theirs"), 404,
                          "session_not_found")
    assert_error_response(srv.request("DELETE", "/chat/sessions/no-such-session"), 404,
                          "session_not_found")
    assert db_query(srv, "SELECT owner FROM sessions WHERE id = 'theirs'") == [("someone-else",)]


def test_a_session_with_a_running_turn_is_409_and_loses_nothing(agentd, fake_llm):
    srv = agentd(env=fake_llm.env())
    sid = srv.request("POST", "/chat", json={"message": "hi"}).json()["session_id"]
    box = {}

    def slow():
        box["r"] = srv.request("POST", "/chat", json={
            "message": "slow [[fault:latency ms=800]]", "session_id": sid}, timeout=30 * SLOW)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    deadline = time.monotonic() + 5 * SLOW
    while fake_llm.stats()["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    r = srv.request("DELETE", f"/chat/sessions/{sid}")
    assert_error_response(r, 409, "turn_in_progress")
    assert r.json()["error"]["session_id"] == sid
    t.join(10 * SLOW)
    assert box["r"].status_code == 200, box["r"].text
    assert box["r"].json()["answer"].startswith("echo: slow")
    # the turn answered in full; now the delete goes through
    assert db_query(srv, "SELECT count(*) FROM messages WHERE session_id = ?", sid)[0][0] == 4
    assert srv.request("DELETE", f"/chat/sessions/{sid}").status_code == 204


def test_an_open_event_stream_ends_when_its_session_is_deleted(agentd):
    srv = agentd()
    sid = new_session(srv)
    box = {}

    def follow():
        with http_session().get(f"{srv.url}/chat/sessions/{sid}/events",
                                headers={"Accept": "text/event-stream"}, stream=True,
                                timeout=10 * SLOW) as r:
            box["status"] = r.status_code
            box["body"] = b"".join(r.iter_content(None))
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.3)
    assert srv.request("DELETE", f"/chat/sessions/{sid}").status_code == 204
    t.join(5 * SLOW)
    assert not t.is_alive(), "the stream of a deleted session stays open"
    assert box["status"] == 200
    assert b"turn-completed" in box["body"]
