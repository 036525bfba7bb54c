"""gzip replies: a JSON (or metrics text) body over ~1 KB is compressed when
Accept-Encoding allows (q-values honoured; "*" allows, gzip;q=0 refuses)
and decodes to exactly the plain body; small bodies, HEAD, 204 and SSE
streams go out as they are; every compressible reply says
Vary: Accept-Encoding. The gzip variant of a checkout carries its own ETag
("7-gzip"), and If-Match takes either. An idempotent replay is negotiated
per request from the plain stored answer."""

import gzip
import http.client
import json
import socket
import threading
import time

import pytest

from agentd_harness import HOST, SLOW
from ucp_client import Client, db_query, full_body, lines, unique_profile


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd()


def fetch(srv, method, path, headers=None, body=None):
    """(status, headers dict lower-cased, raw body bytes): no decoding."""
    c = http.client.HTTPConnection(HOST, srv.port, timeout=10 * SLOW)
    try:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


@pytest.mark.parametrize("accept", ["gzip", "deflate, gzip;q=0.5, br", "*", "x-gzip",
                                    "identity;q=1, *;q=0.2"])
def test_large_json_is_gzip_and_decodes_to_the_plain_body(srv, accept):
    st, h, plain = fetch(srv, "GET", "/openapi.json", {"Accept-Encoding": "identity"})
    assert st == 200 and "content-encoding" not in h
    assert h["vary"] == "Accept-Encoding"
    assert len(plain) > 1024
    st, h, body = fetch(srv, "GET", "/openapi.json", {"Accept-Encoding": accept})
    assert st == 200
    assert h["content-encoding"] == "gzip"
    assert h["vary"] == "Accept-Encoding"
    assert int(h["content-length"]) == len(body) < len(plain)
    assert gzip.decompress(body) == plain
    json.loads(plain)


@pytest.mark.parametrize("accept", [None, "", "identity", "gzip;q=0", "gzip;q=0, *",
                                    "*;q=0", "br, deflate"])
def test_refused_or_absent_gzip_sends_plain(srv, accept):
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    st, h, body = fetch(srv, "GET", "/openapi.json", headers)
    assert st == 200
    assert "content-encoding" not in h
    assert h["vary"] == "Accept-Encoding"
    assert json.loads(body)["openapi"] == "3.1.0"


def test_small_bodies_and_errors_stay_plain_but_vary(srv):
    st, h, body = fetch(srv, "GET", "/healthz", {"Accept-Encoding": "gzip"})
    assert st == 200 and "content-encoding" not in h and body == b'{"status":"alive"}'
    assert h["vary"] == "Accept-Encoding"
    st, h, body = fetch(srv, "GET", "/no/such/route", {"Accept-Encoding": "gzip"})
    assert st == 404 and "content-encoding" not in h
    assert json.loads(body)["error"]["code"] == "not_found"


def test_head_and_204_are_untouched(srv):
    st, h, body = fetch(srv, "HEAD", "/openapi.json", {"Accept-Encoding": "gzip"})
    assert st == 200 and body == b"" and "content-encoding" not in h
    assert h["content-type"] == fetch(srv, "GET", "/openapi.json")[1]["content-type"]
    sid = srv.request("POST", "/chat", json={"message": "hi"}).json()["session_id"]
    st, h, body = fetch(srv, "DELETE", f"/chat/sessions/{sid}", {"Accept-Encoding": "gzip"})
    assert st == 204 and body == b"" and "content-encoding" not in h
    assert "content-type" not in h and "content-length" not in h  # no body, no type


def test_metrics_text_is_compressed_too(srv):
    st, h, body = fetch(srv, "GET", "/metrics", {"Accept-Encoding": "gzip"})
    assert st == 200 and h["content-encoding"] == "gzip"
    assert h["content-type"].startswith("text/plain")
    text = gzip.decompress(body).decode()
    assert "agentd_http_requests_total" in text
    # the savings are counted
    saved = [ln for ln in text.splitlines() if ln.startswith("agentd_http_gzip_saved_bytes_total ")]
    assert saved and float(saved[0].split()[1]) > 0


def read_until(sock, needle, timeout):
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def test_sse_is_never_compressed_or_held_back(srv):
    sid = srv.request("POST", "/chat", json={"message": "show me cookies"}).json()["session_id"]
    s = socket.create_connection((HOST, srv.port), timeout=5 * SLOW)
    try:
        s.sendall((f"GET /chat/sessions/{sid}/events HTTP/1.1\r\nHost: x\r\n"
                   "Accept: text/event-stream\r\nAccept-Encoding: gzip\r\n\r\n").encode())
        # the replay arrives while the stream stays open: nothing waits for a
        # compressor's buffer or the end of the response
        got = read_until(s, b"event: turn-completed", 5 * SLOW)
        head = got.split(b"\r\n\r\n", 1)[0].decode().lower()
        assert "content-type: text/event-stream" in head
        assert "content-encoding" not in head
        assert b"event: turn-completed" in got
    finally:
        s.close()
    # a streamed POST /chat too
    st, h, body = fetch(srv, "POST", "/chat", {"Accept-Encoding": "gzip"},
                        {"message": "show me cookies", "stream": True})
    assert st == 200 and "content-encoding" not in h
    assert b"event: turn-completed" in body


def test_checkout_etag_variant_and_if_match(srv):
    c = Client(srv, unique_profile("gzip-etag"))
    cid = c.create_ok(full_body([("BISC-001", 1)]))["id"]
    path = f"/checkout-sessions/{cid}"
    agent = c.headers()["UCP-Agent"]
    st, h, plain = fetch(srv, "GET", path, {"UCP-Agent": agent, "Accept-Encoding": "identity"})
    assert st == 200 and len(plain) > 1024, len(plain)
    tag = h["etag"]
    assert tag.startswith('"') and not tag.endswith('-gzip"')
    st, h, body = fetch(srv, "GET", path, {"UCP-Agent": agent, "Accept-Encoding": "gzip"})
    assert h["content-encoding"] == "gzip"
    assert h["etag"] == tag[:-1] + '-gzip"', "a strong tag names one byte sequence"
    assert gzip.decompress(body) == plain
    # If-Match with the gzip variant's tag works like the plain tag
    upd = {"line_items": lines(("BISC-001", 2))}
    st, h, body = fetch(srv, "PUT", path, {"UCP-Agent": agent, "Accept-Encoding": "gzip",
                                           "If-Match": h["etag"]}, {**full_body([("BISC-001", 2)]), "id": cid})
    assert st == 200, body
    assert json.loads(gzip.decompress(body))["line_items"][0]["quantity"] == 2
    # the old tag (either variant) is now stale
    for stale in (tag, tag[:-1] + '-gzip"'):
        st, h, body = fetch(srv, "PUT", path, {"UCP-Agent": agent, "If-Match": stale,
                                               "Accept-Encoding": "identity"}, upd)
        assert st == 409, body
        assert b"version_conflict" in body


def test_idempotent_replay_is_negotiated_per_request(srv):
    body = {"message": "add 3 BISC-001"}
    key = {"Idempotency-Key": f"gzip-replay-{time.monotonic_ns()}"}
    st, h, first = fetch(srv, "POST", "/chat", {**key, "Accept-Encoding": "identity"}, body)
    assert st == 200 and "content-encoding" not in h and len(first) > 1024, len(first)
    st, h, again = fetch(srv, "POST", "/chat", {**key, "Accept-Encoding": "gzip"}, body)
    assert st == 200 and h.get("idempotent-replayed") == "true"
    assert h["content-encoding"] == "gzip" and h["vary"] == "Accept-Encoding"
    assert gzip.decompress(again) == first
    st, h, third = fetch(srv, "POST", "/chat", {**key, "Accept-Encoding": "identity"}, body)
    assert h.get("idempotent-replayed") == "true" and "content-encoding" not in h
    assert third == first
    stored = db_query(srv, "SELECT body FROM idempotency WHERE key = ?", key["Idempotency-Key"])
    assert stored and bytes(stored[0][0]).startswith(b"{"), "stored uncompressed"
