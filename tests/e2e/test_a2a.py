"""The A2A front (POST /, JSON-RPC 2.0) with the built-in offline model: the
agent card, the demo purchase over A2A 1.0 and 0.3 (blocking and streaming),
task states between turns, GetTask/ListTasks/CancelTask/SubscribeToTask,
every error code, messageId dedupe, and streams that resume with
Last-Event-ID."""

import json
import uuid

import pytest
import requests

from agentd_harness import metric_value, parse_metrics

UCP_EXT = "https://ucp.dev/specification/reference?v=2026-01-11"
PAYMENT_KEY = "a2a.ucp.checkout.payment_data"
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"
PAY = {PAYMENT_KEY: {"handler_id": "mock_payment_handler",
                     "credential": {"type": "token", "token": "success_token"}}}


def headers(ver=None, ext=True):
    h = {"Content-Type": "application/json"}
    if ext:
        h["X-A2A-Extensions"] = UCP_EXT
    if ver:
        h["A2A-Version"] = ver
    return h


def rpc(srv, method, params=None, ver=None, ext=True, rid=1, extra=None):
    body = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        body["params"] = params
    h = headers(ver, ext)
    h.update(extra or {})
    r = srv.request("POST", "/", data=json.dumps(body), headers=h, timeout=20)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["jsonrpc"] == "2.0" and doc["id"] == rid, doc
    return doc, r


def message(text=None, data=None, context_id=None, task_id=None, v03=True, mid=None):
    parts = []
    if text is not None:
        parts.append({"kind": "text", "text": text} if v03 else {"text": text})
    if data is not None:
        parts.append({"kind": "data", "data": data} if v03 else {"data": data})
    m = {"role": "user" if v03 else "ROLE_USER", "messageId": mid or str(uuid.uuid4()),
         "parts": parts}
    if v03:
        m["kind"] = "message"
    if context_id:
        m["contextId"] = context_id
    if task_id:
        m["taskId"] = task_id
    return m


def send(srv, text=None, data=None, ver=None, **kw):
    v03 = ver != "1.0"
    doc, _ = rpc(srv, "message/send" if v03 else "SendMessage",
                 {"message": message(text, data, v03=v03, **kw)}, ver=ver)
    assert "result" in doc, doc
    return doc["result"] if v03 else doc["result"]["task"]


def data_part(parts, key):
    for p in parts:
        if isinstance(p.get("data"), dict) and key in p["data"]:
            return p["data"][key]
    return None


def sse_frames(resp):
    """(id, JSON document) per SSE event of a streamed reply; comments skipped."""
    ev_id, data = None, []
    for raw in resp.iter_lines(decode_unicode=True):
        if raw is None:
            continue
        if raw == "":
            if data:
                yield ev_id, json.loads("\n".join(data))
            ev_id, data = None, []
        elif raw.startswith(":"):
            continue
        elif raw.startswith("id:"):
            ev_id = raw[3:].strip()
        elif raw.startswith("data:"):
            data.append(raw[5:].lstrip())


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd()


def test_agent_card(srv):
    r = srv.get("/.well-known/agent-card.json")
    assert r.status_code == 200
    card = r.json()
    assert card["url"] == srv.url + "/"
    assert card["protocolVersion"] == "0.3.0" and card["preferredTransport"] == "JSONRPC"
    assert card["supportedInterfaces"] == [
        {"url": srv.url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]
    caps = card["capabilities"]
    assert caps["streaming"] is True and caps["pushNotifications"] is False
    ext = caps["extensions"][0]
    assert ext["uri"] == UCP_EXT and ext["required"] is True
    names = {c["name"] for c in ext["params"]["capabilities"]}
    assert "dev.ucp.shopping.checkout" in names
    assert all(s["examples"] for s in card["skills"])
    etag = r.headers["ETag"]
    # one Cache-Control, the card's own: not also the default no-store
    # (requests joins repeated lines with ", ")
    assert r.headers["Cache-Control"] == "public, max-age=300"
    r2 = srv.get("/.well-known/agent-card.json", headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b""
    assert r2.headers["Vary"] == "Accept-Encoding"  # what its 200 varies on
    assert "Content-Type" not in r2.headers
    assert srv.get("/.well-known/agent.json").json() == card
    doc, _ = rpc(srv, "GetExtendedAgentCard", {}, ver="1.0")
    assert doc["result"]["name"] == card["name"]


@pytest.mark.parametrize("ver", [None, "1.0"])
def test_demo_purchase_blocking(srv, ver):
    v10 = ver == "1.0"
    want = (lambda s: "TASK_STATE_" + s.upper().replace("-", "_")) if v10 else (lambda s: s)
    t = send(srv, "show me cookies", ver=ver)
    ctx, tid = t["contextId"], t["id"]
    assert t["status"]["state"] == want("input-required"), t
    if not v10:
        assert t["kind"] == "task" and t["status"]["message"]["kind"] == "message"
        assert all("kind" in p for p in t["status"]["message"]["parts"])
    else:
        assert t["status"]["message"]["role"] == "ROLE_AGENT"
    assert t["status"]["message"]["parts"][0]["text"]
    t = send(srv, "add 2 BISC-001", ver=ver, context_id=ctx)
    assert t["id"] == tid and t["status"]["state"] == want("input-required")
    co = data_part(t["status"]["message"]["parts"], "a2a.ucp.checkout")
    assert co and co["line_items"][0]["quantity"] == 2
    t = send(srv, SHIP_TO, ver=ver, context_id=ctx, task_id=tid)
    t = send(srv, "express shipping", ver=ver, context_id=ctx)
    assert t["status"]["state"] == want("input-required")
    t = send(srv, "pay", data=PAY, ver=ver, context_id=ctx)
    assert t["id"] == tid and t["status"]["state"] == want("completed"), t
    co = data_part(t["status"]["message"]["parts"], "a2a.ucp.checkout")
    assert co["order"]["id"]
    assert len(t["artifacts"]) == 5
    # the payment data is not kept in the task's history
    assert "success_token" not in json.dumps(t)
    # a message after completion starts a new task in the same context
    t2 = send(srv, "show me cookies", ver=ver, context_id=ctx)
    assert t2["id"] != tid and t2["contextId"] == ctx
    # ... that waits on the buyer: the earlier task's order neither completes
    # it nor rides in its answer
    assert t2["status"]["state"] == want("input-required"), t2
    assert data_part(t2["status"]["message"]["parts"], "a2a.ucp.checkout") is None, t2
    # a terminal task takes no more messages
    doc, _ = rpc(srv, "SendMessage" if v10 else "message/send",
                 {"message": message("hi", context_id=ctx, task_id=tid, v03=not v10)}, ver=ver)
    assert doc["error"]["code"] == -32004


def test_sample_client_shapes(srv):
    """The sample client: parts with "type" instead of "kind", no taskId."""
    body = {"jsonrpc": "2.0", "id": "a", "method": "message/send", "params": {"message": {
        "role": "user", "messageId": str(uuid.uuid4()), "kind": "message",
        "parts": [{"type": "text", "text": "show me cookies"}]}}}
    r = srv.request("POST", "/", json=body, headers={
        "X-A2A-Extensions": UCP_EXT,
        "UCP-Agent": 'profile="http://localhost:3000/profile/agent_profile.json"'})
    assert r.status_code == 200
    assert r.headers["X-A2A-Extensions"] == UCP_EXT
    res = r.json()["result"]
    assert res["contextId"] and res["status"]["state"] == "input-required"


def test_get_list_cancel(srv):
    t = send(srv, "show me cookies", ver="1.0")
    tid, ctx = t["id"], t["contextId"]
    doc, _ = rpc(srv, "GetTask", {"id": tid, "historyLength": 1}, ver="1.0")
    got = doc["result"]
    assert got["id"] == tid and len(got["history"]) == 1
    assert got["history"][0]["role"] == "ROLE_AGENT"
    doc, _ = rpc(srv, "tasks/get", {"id": tid})
    assert doc["result"]["status"]["state"] == "input-required"
    doc, _ = rpc(srv, "ListTasks", {"contextId": ctx}, ver="1.0")
    assert [x["id"] for x in doc["result"]["tasks"]] == [tid]
    assert "artifacts" not in doc["result"]["tasks"][0]
    doc, _ = rpc(srv, "ListTasks", {"contextId": ctx, "includeArtifacts": True}, ver="1.0")
    assert len(doc["result"]["tasks"][0]["artifacts"]) == 1
    doc, _ = rpc(srv, "ListTasks", {"status": "TASK_STATE_INPUT_REQUIRED", "pageSize": 1},
                 ver="1.0")
    assert len(doc["result"]["tasks"]) == 1 and doc["result"]["nextPageToken"]
    tok = doc["result"]["nextPageToken"]
    doc2, _ = rpc(srv, "ListTasks", {"pageSize": 1, "pageToken": tok,
                                     "status": "TASK_STATE_INPUT_REQUIRED"}, ver="1.0")
    assert doc2["result"]["tasks"][0]["id"] != doc["result"]["tasks"][0]["id"]
    doc, _ = rpc(srv, "CancelTask", {"id": tid}, ver="1.0")
    assert doc["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    doc, _ = rpc(srv, "tasks/cancel", {"id": tid})
    assert doc["error"]["code"] == -32002
    doc, _ = rpc(srv, "tasks/get", {"id": "task_nope"})
    assert doc["error"]["code"] == -32001
    # a new message in the context starts a new task: the old one is terminal
    t2 = send(srv, "show me cookies", context_id=ctx)
    assert t2["id"] != tid


def test_duplicate_message_id_runs_nothing(srv):
    mid = str(uuid.uuid4())
    t1 = send(srv, "show me cookies", mid=mid)
    before = metric_value(parse_metrics(srv.get("/metrics").text), "agentd_turns_total",
                          outcome="completed")
    t2 = send(srv, "show me cookies", mid=mid)
    after = metric_value(parse_metrics(srv.get("/metrics").text), "agentd_turns_total",
                         outcome="completed")
    assert t2["id"] == t1["id"] and after == before
    assert len(t2["history"]) == 2
    doc, _ = rpc(srv, "message/send", {"message": message("other text", mid=mid)})
    assert doc["error"]["code"] == -32602 and "messageId" in doc["error"]["message"]


def store_ops(srv, *ops):
    samples = parse_metrics(srv.get("/metrics").text)
    return [metric_value(samples, "agentd_store_op_duration_seconds_count", op=op) or 0
            for op in ops]


def test_new_context_turn_reads_no_session_back(srv):
    # the accept just created the context, empty: the turn reads neither it
    # nor its history; the next message in that context reads its history
    ops = ("session_get", "message_tail")
    before = store_ops(srv, *ops)
    t1 = send(srv, "show me cookies")
    mid = store_ops(srv, *ops)
    assert mid == before, (before, mid)
    t2 = send(srv, "the first one please", context_id=t1["contextId"])
    after = store_ops(srv, *ops)
    assert t2["contextId"] == t1["contextId"]
    assert after[1] == mid[1] + 1 and after[0] > mid[0], (mid, after)


def test_new_ids_sort_by_creation(srv):
    # ids the server makes for rows inserted per message (task, a new
    # context, the turn) start with the clock, so their index inserts append
    # (core/reqid.h id_new_ordered): made later, they sort later
    import re
    import time
    t1 = send(srv, "show me cookies")
    time.sleep(0.005)
    t2 = send(srv, "show me cookies")
    for t in (t1, t2):
        assert re.fullmatch(r"task_[0-9a-f]{36}", t["id"]), t["id"]
        assert re.fullmatch(r"ses_[0-9a-f]{36}", t["contextId"]), t["contextId"]
    assert t1["id"] < t2["id"] and t1["contextId"] < t2["contextId"], (t1, t2)


def test_return_immediately(srv):
    doc, _ = rpc(srv, "message/send", {"message": message("show me cookies"),
                                       "configuration": {"blocking": False}})
    t = doc["result"]
    assert t["status"]["state"] in ("working", "input-required")
    import time
    for _ in range(100):
        doc, _ = rpc(srv, "tasks/get", {"id": t["id"]})
        if doc["result"]["status"]["state"] == "input-required":
            break
        time.sleep(0.05)
    assert doc["result"]["status"]["state"] == "input-required"


@pytest.mark.parametrize("ver", [None, "1.0"])
def test_stream(srv, ver):
    v10 = ver == "1.0"
    body = {"jsonrpc": "2.0", "id": 7, "method": "SendStreamingMessage" if v10 else
            "message/stream", "params": {"message": message("show me cookies", v03=not v10)}}
    with srv.session.post(srv.url + "/", json=body, headers=headers(ver), stream=True,
                          timeout=20) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        frames = list(sse_frames(r))
    assert all(f[0] is not None for f in frames)
    docs = [f[1] for f in frames]
    assert all(d["jsonrpc"] == "2.0" and d["id"] == 7 for d in docs)
    res = [d["result"] for d in docs]
    if v10:
        assert "task" in res[0]
        assert "statusUpdate" in res[-1]
        assert res[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
        assert any("artifactUpdate" in x for x in res)
    else:
        assert res[0]["kind"] == "task"
        assert res[-1]["kind"] == "status-update" and res[-1]["final"] is True
        assert res[-1]["status"]["state"] == "input-required"
        assert all(x["final"] is False for x in res[1:-1] if x["kind"] == "status-update")
    ids = [int(f[0]) for f in frames]
    assert ids == sorted(ids)


def test_subscribe_idle_task(srv):
    t = send(srv, "show me cookies")
    body = {"jsonrpc": "2.0", "id": 9, "method": "tasks/resubscribe", "params": {"id": t["id"]}}
    with srv.session.post(srv.url + "/", json=body, headers=headers(), stream=True,
                          timeout=20) as r:
        res = [d["result"] for _, d in sse_frames(r)]
    assert res[0]["kind"] == "task" and res[-1]["final"] is True
    rpc(srv, "tasks/cancel", {"id": t["id"]})
    doc, _ = rpc(srv, "tasks/resubscribe", {"id": t["id"]})
    assert doc["error"]["code"] == -32004


def test_errors(srv):
    r = srv.request("POST", "/", data="{nope", headers=headers())
    assert r.status_code == 200 and r.json()["error"]["code"] == -32700
    assert r.json()["id"] is None
    r = srv.request("POST", "/", data="[]", headers=headers())
    assert r.json()["error"]["code"] == -32600
    doc, _ = rpc(srv, "nope/method")
    assert doc["error"]["code"] == -32601
    doc, _ = rpc(srv, "SendMessage", {"message": message("x", v03=False)})  # 1.0 name, 0.3 wire
    assert doc["error"]["code"] == -32601
    doc, _ = rpc(srv, "message/send", {"message": {"parts": []}})
    assert doc["error"]["code"] == -32602 and "messageId" in doc["error"]["message"]
    doc, _ = rpc(srv, "message/send", {"message": {"messageId": "m1", "parts": [
        {"kind": "file", "file": {"uri": "http://x/y.png"}}]}})
    assert doc["error"]["code"] == -32005
    doc, _ = rpc(srv, "message/send", {"message": message("hi")}, ext=False)
    assert doc["error"]["code"] == -32008
    doc, _ = rpc(srv, "tasks/pushNotificationConfig/set", {"taskId": "x"})
    assert doc["error"]["code"] == -32003
    doc, _ = rpc(srv, "GetTask", {"id": "x"}, ver="2.5")
    assert doc["error"]["code"] == -32009
    doc, _ = rpc(srv, "tasks/get", {})
    assert doc["error"]["code"] == -32602 and "id" in doc["error"]["message"]
    r = srv.request("POST", "/", data="hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json()["error"]["code"] == -32005
    doc, _ = rpc(srv, "message/send", {"message": message("hi", task_id="task_missing")})
    assert doc["error"]["code"] == -32001
    doc, _ = rpc(srv, "message/send", {"message": message("hi")},
                 extra={"UCP-Agent": "profile=not-a-string"})
    assert doc["error"]["code"] == -32602 and "UCP-Agent" in doc["error"]["message"]


def test_second_ucp_agent_line_is_part_of_the_header(srv):
    """Field lines of one name are one comma-joined value (RFC 9110 5.3): a
    garbage second UCP-Agent line is an invalid header, not ignored."""
    def send_raw(*agent_lines):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "message/send",
                           "params": {"message": message("hi")}}).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers().items())
        head += "".join(f"UCP-Agent: {v}\r\n" for v in agent_lines)
        r = srv.raw(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head.encode() +
                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        assert r.status == 200, r.body
        return json.loads(r.body)
    ok = 'profile="http://localhost:3000/profile/agent_profile.json"'
    doc = send_raw(ok, "not a header")
    assert doc["error"]["code"] == -32602 and "UCP-Agent" in doc["error"]["message"], doc
    doc = send_raw(ok, ok)
    assert doc["error"]["code"] == -32602 and "duplicate" in doc["error"]["message"], doc


def test_body_read_fast_or_by_jansson_answers_the_same(srv):
    # the common body is read by core/jsonparse, the rest by jansson: both
    # give the same answer, and a nesting bomb is still refused unparsed
    deep = lambda n: "[" * n + "]" * n
    for n, ok in ((64, True), (65, False)):
        body = '{"jsonrpc":"2.0","id":7,"method":"GetTask","params":{"id":"x","pad":%s}}' % deep(n - 2)
        r = srv.request("POST", "/", data=body, headers=headers(ver="1.0"))
        err = r.json()["error"]
        if ok:  # parsed: the task is unknown
            assert err["code"] == -32001 and r.json()["id"] == 7
        else:
            assert err["code"] == -32700 and "deeper than 64" in err["message"]
    # a real number and non-ASCII text (left to jansson), escapes (read fast)
    for pad in ('1.5', r'"caf\u00e9 \"x\""', '"café"', '123456789012345678'):
        body = '{"jsonrpc":"2.0","id":8,"method":"GetTask","params":{"id":"x","pad":%s}}' % pad
        r = srv.request("POST", "/", data=body.encode(), headers=headers(ver="1.0"))
        assert r.json()["error"]["code"] == -32001 and r.json()["id"] == 8, pad
    # past long long: jansson's own parse error, as before
    body = '{"jsonrpc":"2.0","id":8,"method":"GetTask","params":{"pad":123456789012345678901}}'
    r = srv.request("POST", "/", data=body, headers=headers(ver="1.0"))
    assert r.json()["error"]["code"] == -32700 and "too big" in r.json()["error"]["message"]
    r = srv.request("POST", "/", data='{"jsonrpc":"2.0","id":9}x', headers=headers())
    assert r.json()["error"]["code"] == -32700 and "line 1" in r.json()["error"]["message"]


# ---- with the fake model: turns in flight ----

from fake_llm_fixture import module_fake_llm  # noqa: E402,F401 (fixture)


@pytest.fixture(scope="module")
def llm_srv(module_agentd, module_fake_llm):
    return module_agentd(env=module_fake_llm.env())


def open_stream(srv, method, params, extra=None, rid=5):
    body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
    h = headers()
    h.update(extra or {})
    r = srv.session.post(srv.url + "/", json=body, headers=h, stream=True, timeout=20)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    return r


def wait_state(srv, tid, state, tries=200):
    import time
    for _ in range(tries):
        doc, _ = rpc(srv, "tasks/get", {"id": tid})
        if doc["result"]["status"]["state"] == state:
            return doc["result"]
        time.sleep(0.05)
    raise AssertionError(f"task {tid} never reached {state}: {doc}")


def test_resume_mid_turn_with_last_event_id(llm_srv):
    r = open_stream(llm_srv, "message/stream",
                    {"message": message("hello [[fault:latency ms=1200]]")})
    it = sse_frames(r)
    first = [next(it), next(it)]  # the task, then its working status
    r.close()  # the client leaves mid-turn
    task = first[0][1]["result"]
    assert task["kind"] == "task" and first[1][1]["result"]["kind"] == "status-update"
    cut = int(first[1][0])
    with open_stream(llm_srv, "tasks/resubscribe", {"id": task["id"]},
                     {"Last-Event-ID": str(cut)}, rid=6) as r2:
        rest = list(sse_frames(r2))
    ids = [int(i) for i, _ in rest]
    assert ids and all(i > cut for i in ids) and ids == sorted(ids)
    res = [d["result"] for _, d in rest]
    assert all(d["id"] == 6 for _, d in rest)
    assert res[-1]["kind"] == "status-update" and res[-1]["final"] is True
    assert res[-1]["status"]["state"] == "input-required"
    # no gap: the working status the first stream saw is not sent again
    assert not any(x["kind"] == "status-update" and not x["final"] for x in res)


def test_client_gone_mid_turn_task_completes(llm_srv):
    r = open_stream(llm_srv, "message/stream",
                    {"message": message("bye [[fault:latency ms=600]]")})
    _, first = next(sse_frames(r))
    r.close()
    t = wait_state(llm_srv, first["result"]["id"], "input-required")
    assert t["status"]["message"]["parts"][0]["text"]
    assert len(t["artifacts"]) == 1


def test_cancel_running_turn(llm_srv):
    doc, _ = rpc(llm_srv, "SendMessage", {
        "message": message("slow [[fault:latency ms=1000]]", v03=False),
        "configuration": {"returnImmediately": True}}, ver="1.0")
    t = doc["result"]["task"]
    assert t["status"]["state"] == "TASK_STATE_WORKING"
    doc, _ = rpc(llm_srv, "CancelTask", {"id": t["id"]}, ver="1.0")
    assert doc["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    import time
    time.sleep(1.5)  # the turn stops at its next step boundary; the task stays canceled
    doc, _ = rpc(llm_srv, "GetTask", {"id": t["id"]}, ver="1.0")
    assert doc["result"]["status"]["state"] == "TASK_STATE_CANCELED"


def test_a_failed_turn_fails_the_task(llm_srv, module_fake_llm):
    module_fake_llm.reset()
    module_fake_llm.faults({"status": 401, "times": 1})
    try:
        t = send(llm_srv, "hello")
    finally:
        module_fake_llm.reset()
    assert t["status"]["state"] == "failed", t
    parts = t["status"]["message"]["parts"]
    assert parts[0]["text"]
    err = data_part(parts, "error")
    assert err["code"] == "model_refused" and err["httpStatus"] == 502


def test_message_id_survives_a_restart(agentd):
    srv = agentd()
    mid = str(uuid.uuid4())
    t1 = send(srv, "show me cookies", mid=mid)
    srv.stop()
    srv.start()
    t2 = send(srv, "show me cookies", mid=mid)
    assert t2["id"] == t1["id"] and len(t2["history"]) == 2


def test_busy_session_is_a_json_rpc_error_with_agentd_code(agentd, module_fake_llm):
    module_fake_llm.reset()
    srv = agentd(env=module_fake_llm.env(AGENTD_BUSY_POLICY="reject"))
    doc, _ = rpc(srv, "message/send", {"message": message("slow [[fault:latency ms=1000]]"),
                                       "configuration": {"blocking": False}})
    t = doc["result"]
    again = message("again", context_id=t["contextId"])
    doc, _ = rpc(srv, "message/send", {"message": again})
    err = doc["error"]
    assert err["code"] == -32603 and err["data"]["code"] == "turn_in_progress"
    assert err["data"]["httpStatus"] == 409 and err["data"]["taskId"] == t["id"]
    # the refused message did not fail the task: its first turn still answers
    wait_state(srv, t["id"], "input-required")
    # and it never ran, so the same messageId may be sent again: now it runs
    doc, _ = rpc(srv, "message/send", {"message": again})
    assert doc["result"]["id"] == t["id"]
    assert doc["result"]["status"]["state"] == "input-required"


# ---- UCP-Agent: the caller's profile, fetched through the allow-list ----

def serve_profiles():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def prof(*names):
        return json.dumps({"ucp": {"version": "2026-01-11", "capabilities": [
            {"name": n, "version": "2026-01-11"} for n in names]}}).encode()
    bodies = {"/ok": prof("dev.ucp.shopping.checkout"), "/none": prof("com.example.loyalty")}
    hits = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - stdlib name
            hits.append(self.path)
            body = bodies.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, hits


def test_ucp_agent_profile_is_negotiated(agentd):
    httpd, hits = serve_profiles()
    try:
        port = httpd.server_address[1]
        srv = agentd(env={"AGENTD_PROFILE_ALLOWLIST": f"127.0.0.1:{port}"})
        ok = {"UCP-Agent": f'profile="http://127.0.0.1:{port}/ok"'}
        doc, _ = rpc(srv, "message/send", {"message": message("show me cookies")}, extra=ok)
        assert doc["result"]["status"]["state"] == "input-required"
        # a profile naming nothing of checkout still transacts (calling a
        # checkout front implies checkout), in the parameter form platforms send
        none = {"UCP-Agent": f'profile="http://127.0.0.1:{port}/none"; version="2026-01-11"'}
        doc, _ = rpc(srv, "message/send", {"message": message("show me cookies")}, extra=none)
        assert doc["result"]["status"]["state"] == "input-required", doc
        bad = {"UCP-Agent": f'profile="http://127.0.0.1:{port}/ok";Bad=1'}
        doc, _ = rpc(srv, "message/send", {"message": message("show me cookies")}, extra=bad)
        assert doc["error"]["code"] == -32602
        assert "/ok" in hits and "/none" in hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def stream_send(srv, text, ver=None, data=None, **kw):
    """One streamed message: the frames' results, the last being the final status."""
    v10 = ver == "1.0"
    body = {"jsonrpc": "2.0", "id": 3, "method": "SendStreamingMessage" if v10 else
            "message/stream", "params": {"message": message(text, data, v03=not v10, **kw)}}
    with srv.session.post(srv.url + "/", json=body, headers=headers(ver), stream=True,
                          timeout=20) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream"), r.text
        res = [d["result"] for _, d in sse_frames(r)]
    if v10:
        return [next(iter(x.values())) for x in res]  # unwrap the oneof
    return res


@pytest.mark.parametrize("ver", [None, "1.0"])
def test_demo_purchase_streaming(srv, ver):
    v10 = ver == "1.0"
    want = (lambda s: "TASK_STATE_" + s.upper().replace("-", "_")) if v10 else (lambda s: s)
    frames = stream_send(srv, "show me cookies", ver)
    task = frames[0]
    ctx, tid = task["contextId"], task["id"]
    for text, data in (("add 2 BISC-001", None), (SHIP_TO, None), ("express shipping", None)):
        frames = stream_send(srv, text, ver, data, context_id=ctx)
        assert frames[0]["id"] == tid
        assert frames[-1]["status"]["state"] == want("input-required")
    frames = stream_send(srv, "pay", ver, PAY, context_id=ctx)
    final = frames[-1]
    assert final["taskId"] == tid and final["status"]["state"] == want("completed")
    if not v10:
        assert final["final"] is True
    co = data_part(final["status"]["message"]["parts"], "a2a.ucp.checkout")
    assert co["order"]["id"]
    arts = [f for f in frames if "artifact" in f]
    assert arts and arts[-1]["lastChunk"] is True


def test_duplicate_while_the_first_runs_answers_its_task(llm_srv, module_fake_llm):
    module_fake_llm.reset()
    m = message("slow dup [[fault:latency ms=800]]")
    doc, _ = rpc(llm_srv, "message/send", {"message": m, "configuration": {"blocking": False}})
    first = doc["result"]
    doc, _ = rpc(llm_srv, "message/send", {"message": m})  # a retry while the turn runs
    assert doc["result"]["id"] == first["id"]
    assert doc["result"]["status"]["state"] == "working"
    wait_state(llm_srv, first["id"], "input-required")
    assert module_fake_llm.stats()["requests"] == 1


def test_blocking_sends_on_one_keep_alive_connection(srv):
    """A blocking send answers on its own loop: before, its reply came from a
    worker thread and the next request on the same connection hung."""
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        for i in range(6):
            body = {"jsonrpc": "2.0", "id": i, "method": "message/send",
                    "params": {"message": message("hello")}}
            conn.request("POST", "/", json.dumps(body), headers())
            r = conn.getresponse()
            doc = json.loads(r.read())
            assert r.status == 200 and doc["id"] == i and "result" in doc, doc
    finally:
        conn.close()
