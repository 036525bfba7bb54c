#!/usr/bin/env python3
"""A fake OpenAI-compatible Chat Completions server for agentd's LLM client tests.

Standard library only. Scripted replies by rule, SSE streaming with tool-call
deltas split across chunks, and faults on demand (per request or queued by an
admin route). See docs/llm.md, "The fake LLM server".

    python3 tests/fake_llm/fake_llm.py --port 0     # prints the chosen port on stdout
    python3 tests/fake_llm/fake_llm.py --self-test
"""
import argparse
import email.utils
import json
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIRECTIVE = re.compile(r"\[\[fault:([^\]]*)\]\]")


def parse_fault(text):
    """'429 retry_after=1' -> {'status': 429, 'retry_after': '1'}; 'hang' -> {'hang': True}."""
    spec = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            if k in ("ms", "latency", "latency_ms"):
                spec["latency_ms"] = int(v)
            elif k == "times":
                spec["times"] = int(v)
            else:
                spec[k] = v
        elif tok.isdigit():
            spec["status"] = int(tok)
        elif tok == "latency":
            spec.setdefault("latency_ms", 100)
        else:
            spec[tok] = True
    return spec


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        self.stopping = threading.Event()

    def reset(self):
        self.queue = []          # [{"spec":..., "path": prefix or None, "left": n}]
        self.requests = 0
        self.by_path = {}
        self.faults_applied = 0
        self.once_seen = set()
        self.last = None         # last request: path, headers of interest, body

    def take_fault(self, path):
        with self.lock:
            for f in self.queue:
                if f["path"] is None or path.startswith(f["path"]):
                    f["left"] -= 1
                    if f["left"] <= 0:
                        self.queue.remove(f)
                    return dict(f["spec"])
        return None


STATE = State()


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


def script(body, fault):
    """The reply for a request: (content, tool_calls list of (id, name, args_text))."""
    messages = body.get("messages") or []
    text = last_user_text(messages)
    clean = DIRECTIVE.sub("", text).strip()
    last = messages[-1] if messages else {}
    if fault.get("unknown_tool"):
        return None, [("call_u1", "no_such_tool", "{}")]
    if fault.get("bad_args"):
        return None, [("call_b1", "lookup", '{"q": ')]
    if last.get("role") == "tool":
        return "Tool said: %s" % (last.get("content") or ""), []
    m = re.search(r"\[\[tool:(\w+)\s*(\{.*?\})?\]\]", text)
    if m:
        return None, [("call_1", m.group(1), m.group(2) or "{}")]
    low = clean.lower()
    if "two tools" in low or "parallel" in low:
        return None, [("call_1", "get_weather", json.dumps({"city": "Paris", "unit": "celsius"})),
                      ("call_2", "get_time", json.dumps({"timezone": "Europe/Paris"}))]
    if "call a tool" in low or "weather" in low:
        return None, [("call_1", "get_weather", json.dumps({"city": "Paris"}))]
    if "long answer" in low:
        return " ".join("word%d" % i for i in range(200)), []
    return "echo: %s" % clean, []


def usage_for(body, content, calls):
    prompt = sum(len(json.dumps(m)) for m in body.get("messages") or []) // 4 + 1
    out = len(content or "") + sum(len(a) for _, _, a in calls)
    return {"prompt_tokens": prompt, "completion_tokens": out // 4 + 1,
            "total_tokens": prompt + out // 4 + 1}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm/1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port only
        pass

    # ---- plumbing ----
    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def reset_connection(self):
        # SO_LINGER 0: close sends RST, which is what a crashed peer looks like
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # ---- routes ----
    def do_GET(self):
        if self.path == "/admin/stats":
            with STATE.lock:
                self.send_json(200, {"requests": STATE.requests, "by_path": STATE.by_path,
                                     "faults_applied": STATE.faults_applied,
                                     "queued": len(STATE.queue), "last": STATE.last})
        else:
            self.send_json(404, {"error": {"message": "no route", "type": "not_found"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/admin/reset":
            with STATE.lock:
                STATE.reset()
            return self.send_json(200, {"ok": True})
        if self.path == "/admin/faults":
            req = json.loads(raw or b"{}")
            with STATE.lock:
                for spec in req.get("faults", []):
                    spec = dict(spec)
                    STATE.queue.append({"spec": spec, "path": spec.pop("path", req.get("path")),
                                        "left": int(spec.pop("times", 1))})
            return self.send_json(200, {"queued": len(STATE.queue)})
        if self.path.endswith("/chat/completions"):
            return self.completions(raw)
        self.send_json(404, {"error": {"message": "no route", "type": "not_found"}})

    def completions(self, raw):
        with STATE.lock:
            STATE.requests += 1
            STATE.by_path[self.path] = STATE.by_path.get(self.path, 0) + 1
        try:
            body = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        with STATE.lock:
            STATE.last = {"path": self.path, "authorization": self.headers.get("Authorization"),
                          "request_id": self.headers.get("X-Request-Id"),
                          "model": body.get("model"), "stream": bool(body.get("stream")),
                          "has_tools": bool(body.get("tools")), "tool_choice": body.get("tool_choice"),
                          "max_tokens": body.get("max_tokens"),
                          "messages": [{"role": m.get("role"),
                                        "content": m.get("content") if isinstance(m.get("content"), str)
                                        else None}
                                       for m in body.get("messages") or [] if isinstance(m, dict)]}
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return self.send_json(400, {"error": {"message": "model and messages are required",
                                                  "type": "invalid_request_error"}})
        # faults: the admin queue first, then the header, then the message
        fault = STATE.take_fault(self.path) or {}
        hdr = self.headers.get("X-Fake-Fault")
        if hdr:
            fault.update(parse_fault(hdr))
        text = last_user_text(body["messages"])
        for d in DIRECTIVE.findall(text):
            spec = parse_fault(d)
            if spec.pop("once", False):
                key = (self.path, d, text)
                with STATE.lock:
                    if key in STATE.once_seen:
                        continue
                    STATE.once_seen.add(key)
            fault.update(spec)
        if fault:
            with STATE.lock:
                STATE.faults_applied += 1
        if fault.get("latency_ms"):
            time.sleep(int(fault["latency_ms"]) / 1000.0)
        if fault.get("hang"):
            # hold the request open far past any client timeout
            STATE.stopping.wait(float(fault.get("seconds", 120)))
            return self.reset_connection()
        if fault.get("reset"):
            return self.reset_connection()
        status = int(fault.get("status", 200))
        if status != 200:
            extra = {}
            if "retry_after" in fault:
                ra = str(fault["retry_after"])
                if ra == "date":  # an HTTP-date 2 s ahead
                    ra = email.utils.formatdate(time.time() + 2, usegmt=True)
                extra["Retry-After"] = ra
            kind = {429: "rate_limit_exceeded", 400: "invalid_request_error",
                    401: "invalid_api_key"}.get(status, "server_error")
            return self.send_json(status, {"error": {"message": "fake fault %d" % status, "type": kind}}, extra)
        content, calls = script(body, fault)
        usage = usage_for(body, content, calls)
        if body.get("stream"):
            return self.stream(body, content, calls, usage, fault)
        if fault.get("malformed"):
            data = b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "tru'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if fault.get("no_choices"):
            return self.send_json(200, {"id": "chatcmpl-x", "object": "chat.completion", "choices": []})
        msg = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                                 for i, n, a in calls]
        self.send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                             "model": body["model"],
                             "choices": [{"index": 0, "message": msg,
                                          "finish_reason": "tool_calls" if calls else "stop"}],
                             "usage": usage})

    def stream(self, body, content, calls, usage, fault):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"]}

        def event(choices, **more):
            obj = dict(base, choices=choices, **more)
            # CRLF line ends and a comment line exercise the parser's edges
            if STATE.requests % 2:
                self.chunk(b": keep-alive\r\n\r\n")
            self.chunk(("data: " + json.dumps(obj) + "\n\n").encode())

        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if fault.get("malformed"):
            self.chunk(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            self.chunk(b"data: [DONE]\n\n")
            return self.chunk(b"")
        pieces = []
        if content:
            pieces += [("c", content[i:i + 5]) for i in range(0, len(content), 5)]
        # tool calls: the head (id, name) first, then arguments in small pieces,
        # calls interleaved like parallel calls arrive from real providers
        for idx, (cid, name, args) in enumerate(calls):
            pieces.append(("h", idx, cid, name))
        frags = [[args[i:i + 7] for i in range(0, len(args), 7)] for _, _, args in calls]
        for j in range(max([len(f) for f in frags] or [0])):
            for idx, f in enumerate(frags):
                if j < len(f):
                    pieces.append(("a", idx, f[j]))
        cut = len(pieces) // 2 if fault.get("truncate") else None
        for n, p in enumerate(pieces):
            if cut is not None and n == cut:
                return self.chunk(b"")  # a clean end of body, but no finish_reason and no [DONE]
            if p[0] == "c":
                event([{"index": 0, "delta": {"content": p[1]}, "finish_reason": None}])
            elif p[0] == "h":
                event([{"index": 0, "delta": {"tool_calls": [{"index": p[1], "id": p[2], "type": "function",
                                                               "function": {"name": p[3], "arguments": ""}}]},
                        "finish_reason": None}])
            else:
                event([{"index": 0, "delta": {"tool_calls": [{"index": p[1], "function": {"arguments": p[2]}}]},
                        "finish_reason": None}])
            if fault.get("chunk_delay_ms"):
                time.sleep(int(fault["chunk_delay_ms"]) / 1000.0)
        if cut is not None:
            return self.chunk(b"")
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=usage)
        self.chunk(b"data: [DONE]\n\n")
        self.chunk(b"")


def serve(port):
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    return srv


# ---- self-test (no pytest) ----

def _post(base, path, obj, headers=None, timeout=5):
    req = urllib.request.Request(base + path, data=json.dumps(obj).encode(), method="POST",
                                 headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _sse_events(raw):
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            out.append(line[6:])
    return out


def self_test():
    srv = serve(0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    chat = "/v1/chat/completions"
    msgs = lambda s: {"model": "m", "messages": [{"role": "user", "content": s}]}
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
        print(("ok   " if cond else "FAIL ") + what)

    st, _, b = _post(base, chat, msgs("hello"))
    r = json.loads(b)
    check(st == 200 and r["choices"][0]["message"]["content"] == "echo: hello", "non-streaming echo")
    check(r["usage"]["prompt_tokens"] > 0, "usage present")
    st, _, b = _post(base, chat, msgs("use two tools please"))
    calls = json.loads(b)["choices"][0]["message"]["tool_calls"]
    check(len(calls) == 2 and json.loads(calls[1]["function"]["arguments"])["timezone"] == "Europe/Paris",
          "parallel tool calls")
    body = dict(msgs("two tools"), stream=True, stream_options={"include_usage": True})
    st, h, b = _post(base, chat, body)
    ev = _sse_events(b)
    check(ev[-1] == "[DONE]", "stream ends with [DONE]")
    args = {}
    for e in ev[:-1]:
        for ch in json.loads(e)["choices"]:
            for tc in ch["delta"].get("tool_calls", []):
                args[tc["index"]] = args.get(tc["index"], "") + tc["function"].get("arguments", "")
    check(json.loads(args[0])["city"] == "Paris" and json.loads(args[1])["timezone"] == "Europe/Paris",
          "streamed tool-call arguments assemble")
    check("usage" in json.loads(ev[-2]), "usage chunk when include_usage")
    st, h, b = _post(base, chat, msgs("hi [[fault:429 retry_after=1]]"))
    check(st == 429 and h.get("Retry-After") == "1", "per-message 429 with Retry-After")
    st, h, b = _post(base, chat, msgs("hi"), headers={"X-Fake-Fault": "503"})
    check(st == 503, "header fault 503")
    _post(base, "/admin/faults", {"faults": [{"status": 500, "times": 2, "path": "/a"}]})
    s1 = _post(base, "/a" + chat, msgs("x"))[0]
    s2 = _post(base, "/b" + chat, msgs("x"))[0]
    s3 = _post(base, "/a" + chat, msgs("x"))[0]
    s4 = _post(base, "/a" + chat, msgs("x"))[0]
    check((s1, s2, s3, s4) == (500, 200, 500, 200), "admin queue scoped by path, times=2")
    st, _, b = _post(base, chat, msgs("x [[fault:malformed]]"))
    try:
        json.loads(b)
        check(False, "malformed JSON body")
    except ValueError:
        check(st == 200, "malformed JSON body")
    st, _, b = _post(base, chat, dict(msgs("a long answer [[fault:truncate]]"), stream=True))
    check("[DONE]" not in _sse_events(b), "truncated stream has no [DONE]")
    try:
        _post(base, chat, msgs("x [[fault:reset]]"))
        check(False, "connection reset")
    except (ConnectionError, urllib.error.URLError, OSError):
        check(True, "connection reset")
    t0 = time.time()
    try:
        _post(base, chat, msgs("x [[fault:hang seconds=5]]"), timeout=0.3)
        check(False, "hang holds the request")
    except (OSError, urllib.error.URLError):
        check(time.time() - t0 < 2, "hang holds the request")
    st, _, b = _post(base, chat, msgs("x [[fault:unknown_tool]]"))
    check(json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "no_such_tool",
          "unknown tool")
    st, _, b = _post(base, chat, msgs("x [[fault:bad_args]]"))
    a = json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    try:
        json.loads(a)
        check(False, "invalid tool arguments")
    except ValueError:
        check(True, "invalid tool arguments")
    st, _, b = _post(base, chat, msgs("x [[fault:500 once]]"))
    st2, _, _ = _post(base, chat, msgs("x [[fault:500 once]]"))
    check((st, st2) == (500, 200), "once directive")
    t0 = time.time()
    _post(base, chat, msgs("x [[fault:latency ms=200]]"))
    check(time.time() - t0 >= 0.19, "latency")
    with urllib.request.urlopen(base + "/admin/stats") as r:
        stats = json.loads(r.read())
    check(stats["requests"] >= 15 and stats["by_path"].get("/a" + chat) == 3, "stats")
    _post(base, "/admin/reset", {})
    with urllib.request.urlopen(base + "/admin/stats") as r:
        check(json.loads(r.read())["requests"] == 0, "reset")
    STATE.stopping.set()
    srv.shutdown()
    print("self-test %s" % ("FAILED: " + ", ".join(failures) if failures else "ok"))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        sys.exit(self_test())
    srv = serve(a.port)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        STATE.stopping.set()


if __name__ == "__main__":
    main()
