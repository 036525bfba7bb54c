#!/usr/bin/env python3
"""A non-blocking fake OpenAI-compatible model for bench/turns.sh only.

tests/fake_llm/fake_llm.py runs a thread per connection and a time.sleep per
slow answer; that is right for tests and wrong for thousands of concurrent
slow requests. This one is one asyncio loop (standard library only): it keeps
every connection alive, answers non-streaming POST .../chat/completions after a
delay taken by a timer (no thread is held), and nothing else.

    python3 bench/fake_llm_fast.py --port 0 [--delay-ms 2000]
        prints the chosen port on the first stdout line

Replies follow the same rules as the test fake, reduced to what the bench uses:
  - the last message is a tool result   -> "Tool said: <its first 200 bytes>"
  - [[tool:NAME {"json":"args"}]] in the last user message -> that one call
  - otherwise                           -> "echo: <text>"
Delay: --delay-ms for every answer, or [[fault:latency ms=N]] in the last user
message (as the test fake), which wins. GET /admin/stats -> {"requests", "accepted"
(connections), "open", "peak_open", "peak_pending"}.
"""
import argparse
import asyncio
import json
import re
import socket
import sys
import time

DIRECTIVE = re.compile(r"\[\[fault:([^\]]*)\]\]")
LATENCY = re.compile(r"\[\[fault:[^\]]*\blatency\b[^\]]*?\bms=(\d+)")
TOOL = re.compile(r"\[\[tool:(\w+)\s*(\{.*?\})?\]\]")


class Stats:
    requests = 0
    accepted = 0
    open = 0
    peak_open = 0
    pending = 0
    peak_pending = 0


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


def reply_for(body, default_delay_ms):
    """(delay_s, response bytes) for one completion request body."""
    messages = body.get("messages") or []
    text = last_user_text(messages)
    m = LATENCY.search(text)
    delay_ms = int(m.group(1)) if m else default_delay_ms
    last = messages[-1] if messages else {}
    content, calls = None, None
    if last.get("role") == "tool":
        content = "Tool said: %s" % (last.get("content") or "")[:200]
    else:
        t = TOOL.search(text)
        if t:
            calls = [{"id": "call_1", "type": "function",
                      "function": {"name": t.group(1), "arguments": t.group(2) or "{}"}}]
        else:
            content = "echo: %s" % DIRECTIVE.sub("", text).strip()
    msg = {"role": "assistant", "content": content}
    if calls:
        msg["tool_calls"] = calls
    prompt = sum(len(m.get("content") or "") for m in messages) // 4 + 1
    out = {"id": "chatcmpl-fast", "object": "chat.completion", "created": int(time.time()),
           "model": body.get("model") or "fake",
           "choices": [{"index": 0, "message": msg,
                        "finish_reason": "tool_calls" if calls else "stop"}],
           "usage": {"prompt_tokens": prompt, "completion_tokens": 8, "total_tokens": prompt + 8}}
    return delay_ms / 1000.0, response(200, json.dumps(out).encode())


def response(status, data, reason=b"OK"):
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, len(data))) + data


class Conn(asyncio.Protocol):
    def __init__(self, delay_ms):
        self.delay_ms = delay_ms
        self.buf = b""
        self.busy = False      # an answer is pending: HTTP/1.1 answers in order
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        Stats.open += 1
        Stats.accepted += 1
        Stats.peak_open = max(Stats.peak_open, Stats.open)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        Stats.open -= 1
        self.transport = None

    def data_received(self, data):
        self.buf += data
        self.next_request()

    def next_request(self):
        if self.busy or self.transport is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if len(self.buf) < end + 4 + length:
            return
        raw = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        method, path = (parts + ["", ""])[:2]
        if method == "GET" and path == "/admin/stats":
            self.send(response(200, json.dumps(
                {"requests": Stats.requests, "accepted": Stats.accepted, "open": Stats.open,
                 "peak_open": Stats.peak_open, "peak_pending": Stats.peak_pending}).encode()))
            return
        if method != "POST" or not path.endswith("/chat/completions"):
            self.send(response(404, b'{"error":{"message":"no route","type":"not_found"}}',
                               b"Not Found"))
            return
        Stats.requests += 1
        try:
            body = json.loads(raw)
        except ValueError:
            self.send(response(400, b'{"error":{"message":"body is not JSON"}}', b"Bad Request"))
            return
        delay, out = reply_for(body, self.delay_ms)
        if delay <= 0:
            self.send(out)
            return
        self.busy = True
        Stats.pending += 1
        Stats.peak_pending = max(Stats.peak_pending, Stats.pending)
        asyncio.get_running_loop().call_later(delay, self.answer, out)

    def answer(self, out):
        Stats.pending -= 1
        self.busy = False
        self.send(out)

    def send(self, out):
        if self.transport is not None:
            self.transport.write(out)
            self.next_request()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: Conn(args.delay_ms), "127.0.0.1", args.port,
                                   backlog=4096, reuse_address=True)
    print(srv.sockets[0].getsockname()[1], flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
