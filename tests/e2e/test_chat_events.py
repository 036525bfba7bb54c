"""Turn events: persisted with increasing ids per session, streamed live
(POST /chat with "stream": true or Accept: text/event-stream), replayed after
a reconnect (GET /chat/sessions/{id}/events with Last-Event-ID or ?after=),
as a JSON page for clients that poll. A turn keeps running when its
streaming client leaves. Built-in model: deterministic."""

import json
import socket
import time
import uuid

import pytest

from agentd_harness import HOST, SLOW, assert_error_response
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)

PAY = {"a2a.ucp.checkout.payment_data": {
    "handler_id": "mock_payment_handler",
    "credential": {"type": "token", "token": "success_token"}}}


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd()


def sse_events(text):
    """[(id or None, event, data dict)] from an SSE body; comments skipped.
    Only complete events count: the text after the last blank line may be
    an event cut mid-way by a partial read, so it is left out."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n")[:-1]:
        ev, eid, data = None, None, []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "event":
                ev = v
            elif k == "id":
                eid = int(v)
            elif k == "data":
                data.append(v)
        if ev:
            out.append((eid, ev, json.loads("\n".join(data))))
    return out


def stream_chat(srv, body, headers=None, timeout=15):
    r = srv.request("POST", "/chat", json=dict(body, stream=True), headers=headers or {},
                    timeout=timeout)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream"), r.headers
    return sse_events(r.text)


def test_a_streamed_turn_sends_its_events_in_order(srv):
    evs = stream_chat(srv, {"message": "add 2 BISC-001"})
    types = [e for _, e, _ in evs]
    assert types[0] == "turn-started" and types[-1] == "turn-completed", types
    assert "tool-call" in types and "tool-result" in types and "checkout-updated" in types, types
    ids = [i for i, _, _ in evs]
    assert all(i is not None for i in ids) and ids == sorted(ids) and len(set(ids)) == len(ids)
    turn = evs[0][2]["turn_id"]
    sid = evs[0][2]["session_id"]
    assert all(d["turn_id"] == turn and d["session_id"] == sid for _, _, d in evs)
    assert evs[0][2]["message"] == "add 2 BISC-001"
    call = next(d for _, e, d in evs if e == "tool-call")
    assert call["name"] == "add_to_checkout" and json.loads(call["arguments"])["quantity"] == 2
    co = next(d for _, e, d in evs if e == "checkout-updated")["checkout"]
    assert [(li["item"]["id"], li["quantity"]) for li in co["line_items"]] == [("BISC-001", 2)]
    end = evs[-1][2]
    assert "BISC-001" in end["answer"] or "cookie" in end["answer"].lower(), end
    assert end["checkout"]["id"] == co["id"]
    assert set(end["usage"]) == {"prompt_tokens", "completion_tokens", "cost_usd"}
    # the stored events are the same, readable afterwards as a JSON page
    page = srv.get(f"/chat/sessions/{sid}/events").json()
    assert [e["seq"] for e in page["events"]] == ids
    assert [e["type"] for e in page["events"]] == types
    assert page["next_after"] == ids[-1] and page["more"] is False


def test_accept_header_also_streams_and_a_second_turn_continues_the_ids(srv):
    evs = stream_chat(srv, {"message": "show me cookies"})
    sid = evs[0][2]["session_id"]
    last = evs[-1][0]
    r = srv.request("POST", "/chat", json={"message": "add 1 BISC-001", "session_id": sid},
                    headers={"Accept": "text/event-stream"}, timeout=15)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    evs2 = sse_events(r.text)
    assert evs2[0][0] > last, (evs2[0], last)
    assert evs2[-1][1] == "turn-completed"


def test_replay_after_last_event_id_sends_only_what_followed(srv):
    evs = stream_chat(srv, {"message": "add 2 STRAW-001"})
    sid = evs[0][2]["session_id"]
    cut = evs[1][0]
    # an EventSource reconnecting sends Last-Event-ID; the stream replays the rest, then follows
    got = read_stream(srv, f"/chat/sessions/{sid}/events", {"Last-Event-ID": str(cut)},
                      until=lambda es: es and es[-1][1] == "turn-completed")
    assert [i for i, _, _ in got] == [i for i, _, _ in evs if i > cut]
    # ?after= on the JSON page is the same cut
    page = srv.get(f"/chat/sessions/{sid}/events?after={cut}").json()
    assert [e["seq"] for e in page["events"]] == [i for i, _, _ in evs if i > cut]


def read_stream(srv, path, headers, until, timeout=10 * SLOW):
    """Reads an SSE GET on a raw socket until until(events) holds; returns the events."""
    s = socket.create_connection((HOST, srv.port), timeout=timeout)
    try:
        hdrs = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{hdrs}\r\n"
                  .encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            assert b" 200 " in head.split(b"\r\n")[0], head
            evs = sse_events(dechunk(body))
            if until(evs):
                return evs
        raise AssertionError(f"stream ended without the expected events: {buf[-500:]!r}")
    finally:
        s.close()


def dechunk(body):
    """Best-effort decode of a chunked body received so far."""
    out, rest = [], body
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            n = int(size_line, 16)
        except ValueError:
            break
        if n == 0 or len(rest) < n:
            out.append(rest[:n])
            break
        out.append(rest[:n])
        rest = rest[n + 2:]
    return b"".join(out).decode(errors="replace")


def test_a_follower_sees_the_next_turn_live(srv):
    sid = srv.request("POST", "/chat", json={"message": "show me chips"}).json()["session_id"]
    after = srv.get(f"/chat/sessions/{sid}/events").json()["next_after"]
    import threading
    box = {}

    def follow():
        box["evs"] = read_stream(srv, f"/chat/sessions/{sid}/events?after={after}", {},
                                 until=lambda es: any(e == "turn-completed" for _, e, _ in es))
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    time.sleep(0.2)
    r = srv.request("POST", "/chat", json={"message": "add 1 CHIPS-001", "session_id": sid})
    assert r.status_code == 200
    t.join(10 * SLOW)
    evs = box["evs"]
    assert evs[0][1] == "turn-started" and evs[0][0] == after + 1, evs[:2]
    assert evs[-1][2]["answer"] == r.json()["answer"]


def test_the_turn_goes_on_when_its_streaming_client_leaves(srv):
    s = socket.create_connection((HOST, srv.port), timeout=5)
    body = json.dumps({"message": "add 3 NUTRIBAR-001", "stream": True}).encode()
    s.sendall(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    buf = b""
    deadline = time.monotonic() + 10 * SLOW
    first = []
    while not first and time.monotonic() < deadline:
        buf += s.recv(4096)
        assert b" 200 " in buf.split(b"\r\n")[0], buf
        first = sse_events(dechunk(buf.partition(b"\r\n\r\n")[2]))
    s.close()  # gone after the first event: the turn does not care
    assert first and first[0][1] == "turn-started", buf
    sid = first[0][2]["session_id"]
    while time.monotonic() < deadline:
        evs = srv.get(f"/chat/sessions/{sid}/events").json()["events"]
        if evs and evs[-1]["type"] == "turn-completed":
            break
        time.sleep(0.05)
    assert evs[-1]["type"] == "turn-completed", evs
    co = evs[-1]["data"]["checkout"]
    assert [(li["item"]["id"], li["quantity"]) for li in co["line_items"]] == [("NUTRIBAR-001", 3)]


def test_a_turn_that_fails_before_starting_answers_plain_json(srv):
    r = srv.request("POST", "/chat", json={"message": "hi", "session_id": "ses_nope",
                                           "stream": True})
    assert_error_response(r, 404, "session_not_found")


def test_session_info_and_usage(srv):
    d = srv.request("POST", "/chat", json={"message": "add 1 BISC-001"}).json()
    sid = d["session_id"]
    assert d["turn_id"].startswith("turn_")
    info = srv.get(f"/chat/sessions/{sid}").json()
    assert info["session_id"] == sid
    assert info["checkout_id"] == d["checkout"]["id"]
    assert info["usage"]["model_calls"] >= 1
    assert set(info["usage"]) == {"prompt_tokens", "completion_tokens", "cost_usd", "model_calls"}


@pytest.mark.parametrize("path", ["/chat/sessions/ses_missing", "/chat/sessions/ses_missing/events"])
def test_unknown_session_is_404(srv, path):
    assert_error_response(srv.get(path), 404, "session_not_found")


@pytest.mark.parametrize("query,header", [("after=-1", None), ("after=abc", None),
                                          ("", "x1"), ("after=1e3", None)])
def test_bad_event_ids_are_400(srv, query, header):
    sid = srv.request("POST", "/chat", json={"message": "hello"}).json()["session_id"]
    h = {"Last-Event-ID": header} if header else {}
    r = srv.get(f"/chat/sessions/{sid}/events?{query}", headers=h)
    assert_error_response(r, 400, "invalid_request")


def test_stream_must_be_boolean_and_not_combined_with_an_idempotency_key(srv):
    r = srv.request("POST", "/chat", json={"message": "hi", "stream": "yes"})
    assert_error_response(r, 400, "invalid_request")
    r = srv.request("POST", "/chat", json={"message": "hi", "stream": True},
                    headers={"Idempotency-Key": "k-" + uuid.uuid4().hex})
    err = assert_error_response(r, 400, "invalid_request")
    assert "events" in err["message"]
    # without stream the key works as before
    r = srv.request("POST", "/chat", json={"message": "hi", "stream": False},
                    headers={"Idempotency-Key": "k-" + uuid.uuid4().hex})
    assert r.status_code == 200, r.text


def test_the_model_is_streamed_into_text_delta_events(agentd, fake_llm):
    """A streamed /chat asks the model to stream: its text arrives as several
    text-delta events (stored, with ids) before the turn ends, and they add
    up to the answer. A plain /chat does not ask the model to stream."""
    srv = agentd(env=fake_llm.env())
    evs = stream_chat(srv, {"message": "long answer [[fault:chunk_delay_ms=2]]"},
                      timeout=30 * SLOW)
    deltas = [d for _, e, d in evs if e == "text-delta"]
    end = evs[-1]
    assert end[1] == "turn-completed", evs[-3:]
    assert len(deltas) >= 2, f"{len(deltas)} text-delta events"
    assert "".join(d["text"] for d in deltas) == end[2]["answer"]
    assert end[2]["answer"].startswith("word0 word1")
    assert fake_llm.stats()["last"]["stream"] is True
    # replayed from the store: the same deltas, same order
    sid = evs[0][2]["session_id"]
    page = srv.get(f"/chat/sessions/{sid}/events").json()
    assert page["more"] is False
    assert [e["data"]["text"] for e in page["events"] if e["type"] == "text-delta"] == \
        [d["text"] for d in deltas]
    # batched: a few stored events, not one per 5-character chunk
    assert len(deltas) < len(end[2]["answer"]) // 5 // 4, len(deltas)
    srv.request("POST", "/chat", json={"message": "plain", "session_id": sid})
    assert fake_llm.stats()["last"]["stream"] is False


def test_a_stream_cut_mid_text_starts_its_text_over(agentd, fake_llm):
    """The model's stream breaks off mid-text and the client retries: the
    text-delta that follows says reset, and the text after the last reset is
    the answer."""
    srv = agentd(env=fake_llm.env())
    evs = stream_chat(srv, {"message": "long answer [[fault:truncate chunk_delay_ms=2 once]]"},
                      timeout=30 * SLOW)
    assert evs[-1][1] == "turn-completed", evs[-2:]
    deltas = [d for _, e, d in evs if e == "text-delta"]
    resets = [i for i, d in enumerate(deltas) if d["reset"]]
    assert resets, "the retry restarted the text"
    assert deltas[0]["reset"] is False
    after = "".join(d["text"] for d in deltas[resets[-1]:])
    assert after == evs[-1][2]["answer"]
    assert fake_llm.stats()["requests"] == 2


def test_streams_follow_the_busy_policies(agentd, fake_llm):
    """A streamed message to a busy session: enqueue waits and then streams
    its own turn only; reject answers 409 as plain JSON."""
    import threading
    srv = agentd(env=fake_llm.env())
    sid = srv.request("POST", "/chat", json={"message": "hi"}).json()["session_id"]
    box = {}

    def slow():
        box["r"] = srv.request("POST", "/chat", json={
            "message": "slow [[fault:latency ms=600]]", "session_id": sid}, timeout=30 * SLOW)
    t = threading.Thread(target=slow, daemon=True)
    t.start()
    deadline = time.monotonic() + 5 * SLOW
    while fake_llm.stats()["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    r = srv.request("POST", "/chat", json={"message": "no wait", "session_id": sid,
                                           "busy_policy": "reject", "stream": True})
    assert_error_response(r, 409, "turn_in_progress")
    evs = stream_chat(srv, {"message": "after you", "session_id": sid}, timeout=30 * SLOW)
    t.join(10 * SLOW)
    assert box["r"].status_code == 200
    first = box["r"].json()["turn_id"]
    assert evs[0][1] == "turn-started" and evs[0][2]["message"] == "after you"
    assert all(d["turn_id"] != first for _, _, d in evs)
    assert evs[-1][1] == "turn-completed" and evs[-1][2]["answer"] == "echo: after you"
