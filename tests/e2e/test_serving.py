"""Serving core: ops endpoints, metrics, the error shape, request ids,
access log, keep-alive."""

import re
import time

from agentd_harness import (HEX32, assert_error_response, http_session, metric_value, run_cli,
                            parse_metrics)

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---- ops endpoints ----

def test_healthz(server):
    r = server.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "alive"}
    assert HEX32.match(r.headers["X-Request-Id"])


def test_head_healthz(server):
    r = server.request("HEAD", "/healthz")
    assert r.status_code == 200
    assert r.content == b""


def test_readyz(server):
    r = server.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200
    doc = r.json()
    assert isinstance(doc["version"], str) and re.match(r"^\d+\.\d+\.\d+", doc["version"])
    assert isinstance(doc["commit"], str) and doc["commit"]
    assert isinstance(doc["uptime_seconds"], int) and doc["uptime_seconds"] >= 0
    assert isinstance(doc["dependencies"], list)
    for dep in doc["dependencies"]:
        assert isinstance(dep["name"], str) and dep["name"]
        assert dep["status"] in ("ok", "failing")
        assert isinstance(dep["latency_ms"], (int, float)) and dep["latency_ms"] >= 0
    assert doc["in_flight"] == 0          # this request is not counted
    assert isinstance(doc["error_rate_1m"], (int, float))
    assert 0 <= doc["error_rate_1m"] <= 1


def test_version_matches_cli(server):
    out = run_cli(["version"]).stdout
    doc = server.get("/health").json()
    assert doc["version"] in out and doc["commit"] in out


# ---- metrics ----

def scrape(server):
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text


def test_metrics_format(server):
    server.get("/healthz")
    text = scrape(server)
    for name, kind in [("agentd_http_requests_total", "counter"),
                       ("agentd_http_request_duration_seconds", "histogram"),
                       ("agentd_http_requests_in_flight", "gauge"),
                       ("agentd_build_info", "gauge"),
                       ("process_start_time_seconds", "gauge")]:
        assert re.search(rf"^# HELP {name} \S", text, re.M), name
        assert re.search(rf"^# TYPE {name} {kind}$", text, re.M), name
    samples = parse_metrics(text)
    health = server.get("/health").json()
    assert metric_value(samples, "agentd_build_info", version=health["version"],
                        commit=health["commit"]) == 1
    start = metric_value(samples, "process_start_time_seconds")
    assert start is not None and abs(start - time.time()) < 3600
    inflight = metric_value(samples, "agentd_http_requests_in_flight")
    assert inflight is not None and inflight >= 0


def test_request_counter_increases(server):
    key = dict(route="/healthz", method="GET", status="200")
    before = metric_value(parse_metrics(scrape(server)), "agentd_http_requests_total", **key) or 0
    for _ in range(3):
        assert server.get("/healthz").status_code == 200
    after = metric_value(parse_metrics(scrape(server)), "agentd_http_requests_total", **key)
    assert after == before + 3


def test_duration_histogram(server):
    server.get("/healthz")
    samples = parse_metrics(scrape(server))
    buckets = [(l["le"], v) for n, l, v in samples
               if n == "agentd_http_request_duration_seconds_bucket" and l.get("route") == "/healthz"]
    assert len(buckets) >= 5
    assert buckets[-1][0] == "+Inf"
    les = [float(le) for le, _ in buckets]
    assert les == sorted(les)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "bucket counts must be cumulative"
    count = metric_value(samples, "agentd_http_request_duration_seconds_count", route="/healthz")
    total = metric_value(samples, "agentd_http_request_duration_seconds_sum", route="/healthz")
    assert count is not None and count >= 1 and counts[-1] == count
    assert total is not None and 0 <= total < count * 1.0


def test_route_label_is_a_template(server):
    r = server.get("/foo/123")
    assert r.status_code == 404
    text = scrape(server)
    assert "/foo/123" not in text
    assert "/foo" not in text
    samples = parse_metrics(text)
    v = metric_value(samples, "agentd_http_requests_total", route="unmatched", method="GET",
                     status="404")
    assert v is not None and v >= 1


# ---- the error shape ----

def test_unknown_route_404(server):
    r = server.get("/no/such/route")
    assert_error_response(r, 404, "not_found")


def test_wrong_method_405(server):
    r = server.request("POST", "/healthz", data=b"{}")
    assert_error_response(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"


def test_malformed_request_line_400(server):
    r = server.raw(b"GARBAGE\r\n\r\n")
    assert_error_response(r, 400)
    r = server.raw(b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n")
    assert_error_response(r, 400)


def test_malformed_header_400(server):
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert_error_response(r, 400)


def test_unknown_method_501(server):
    r = server.raw(b"FOO /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_error_response(r, 501, "not_implemented")


def test_content_length_and_transfer_encoding_400(server):
    r = server.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert_error_response(r, 400)
    assert r.closed


def test_conflicting_content_lengths_400(server):
    r = server.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Content-Length: 6\r\n\r\nhello!")
    assert_error_response(r, 400)


def test_server_still_fine_after_rejections(server):
    server.raw(b"FOO / HTTP/1.1\r\n\r\n")
    assert server.request("GET", "/healthz").status_code == 200


# ---- request ids ----

def test_sane_request_id_is_echoed_and_logged(server):
    rid = "abc-123.x:y_z"
    r = server.request("GET", "/healthz", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == rid
    line = server.access_line(rid)
    assert line is not None, "no access line with the incoming request id"
    assert line["msg"] == "request" and line["route"] == "/healthz"


def test_sane_request_id_in_error_body(server):
    rid = "trace-42"
    r = server.request("GET", "/nope", headers={"X-Request-Id": rid})
    err = assert_error_response(r, 404)
    assert err["request_id"] == rid


def test_insane_request_ids_are_replaced(server):
    for bad in ["has spaces in it", 'quo"te', "x" * 200, "semi;colon", "ünï"]:
        mark = server.mark()
        r = server.request("GET", "/healthz", headers={"X-Request-Id": bad.encode()})
        assert r.status_code == 200
        got = r.headers["X-Request-Id"]
        assert got != bad and HEX32.match(got), (bad, got)
        lines = server.new_lines(mark)
        assert len(lines) == 1
        assert lines[0]["request_id"] != bad


def test_generated_request_ids_always_logged(server):
    # a generated id is 32 hex chars; about 1 in 55 has 13+ decimal digits in
    # a row, which a card-number heuristic must not mistake for a secret
    mark = server.mark()
    with http_session() as s:
        ids = [s.get(server.url + "/healthz", timeout=5).headers["X-Request-Id"]
               for _ in range(400)]
    lines = server.new_lines(mark, n=400)
    assert len(lines) == 400
    logged = {l.get("request_id") for l in lines}
    missing = [i for i in ids if i not in logged]
    assert not missing, f"{len(missing)} of 400 request ids not in the access log: {missing[:3]}"
    assert "***" not in logged


def test_numeric_request_id_logged(server):
    # millisecond timestamps are a common request id; an id is not a secret
    rid = "1700000000123"
    mark = server.mark()
    r = server.request("GET", "/healthz", headers={"X-Request-Id": rid})
    assert r.headers["X-Request-Id"] == rid
    lines = server.new_lines(mark)
    assert len(lines) == 1, lines
    assert lines[0]["request_id"] == rid, lines[0]


def test_generated_request_ids_differ(server):
    ids = {server.get("/healthz").headers["X-Request-Id"] for _ in range(20)}
    assert len(ids) == 20


# ---- access log ----

def test_access_log_line(server):
    r = server.request("GET", "/healthz?x=1", headers={"X-Request-Id": "e2e-access-line"})
    line = server.access_line("e2e-access-line")
    assert line is not None
    assert RFC3339_MS.match(line["ts"]), line["ts"]
    assert line["level"] == "info"
    assert line["msg"] == "request"
    assert line["method"] == "GET"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float)) and 0 <= line["duration_ms"] < 5000
    assert re.match(r"^127\.0\.0\.1:\d+$", line["remote"]), line["remote"]
    assert line["bytes"] == len(r.content) == 18


def test_access_log_error_line(server):
    server.request("GET", "/foo/123", headers={"X-Request-Id": "e2e-error-line"})
    line = server.access_line("e2e-error-line")
    assert line is not None
    assert line["status"] == 404 and line["route"] == "unmatched"
    assert "/foo/123" not in server.log_text()


def test_every_log_line_is_json(server):
    server.get("/healthz")
    text = server.log_text()
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines
    assert len(server.log_lines()) == len(lines), "non-JSON line in the log"
    for l in server.log_lines():
        assert RFC3339_MS.match(l["ts"]) and l["level"] in ("debug", "info", "warn", "error")
        assert isinstance(l["msg"], str)


def test_secrets_never_logged(agentd):
    srv = agentd(env={"AGENTD_LOG_LEVEL": "debug"})
    secrets = ["sk-secret-123", "session=abc", "k-secret", "pw-hunter2"]
    headers = {"Authorization": "Bearer sk-secret-123", "Cookie": "session=abc",
               "X-Api-Key": "k-secret", "Proxy-Authorization": "Basic pw-hunter2"}
    for path in ["/healthz", "/nope", "/health"]:
        srv.request("GET", path, headers=headers)
    srv.request("POST", "/healthz", headers=headers, data=b"{}")
    srv.raw(b"FOO / HTTP/1.1\r\nAuthorization: Bearer sk-secret-123\r\n\r\n")
    srv.raw(b"GET / HTTP/1.1\r\nCookie: session=abc\r\nX-Api-Key: k-secret\r\n"
            b"Content-Length: 99999999\r\n\r\n")
    assert srv.wait_log(lambda l: l.get("route") == "/health") is not None
    assert srv.stop() == 0
    text = srv.log_text()
    assert text
    for s in secrets:
        assert s not in text


def test_log_level_warn_hides_info(agentd):
    srv = agentd(env={"AGENTD_LOG_LEVEL": "warn"})
    for path in ["/healthz", "/nope", "/metrics"]:
        srv.request("GET", path)
    srv.raw(b"FOO / HTTP/1.1\r\n\r\n")
    assert srv.stop() == 0
    lines = srv.log_lines()
    assert not [l for l in lines if l["level"] in ("debug", "info")], lines


def test_access_log_off(agentd):
    srv = agentd(env={"AGENTD_ACCESS_LOG": "off"})
    r = srv.request("GET", "/healthz")
    rid = r.headers["X-Request-Id"]
    srv.raw(b"FOO / HTTP/1.1\r\n\r\n")
    assert srv.stop() == 0
    assert rid not in srv.log_text()
    assert not [l for l in srv.log_lines() if l["msg"] in ("request", "rejected")]
    assert [l for l in srv.log_lines() if l["msg"] == "listening"]


# ---- connection close ----
# A reply on a connection the server closes afterwards (the client asked for
# it, or spoke HTTP/1.0) must still reach the client in full.

def test_connection_close_request_gets_reply(server):
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200 and r.body == b'{"status":"alive"}'
    assert r.closed


def test_http10_request_gets_reply(server):
    r = server.raw(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert r.status == 200 and r.body == b'{"status":"alive"}'


def test_connection_close_error_reply(server):
    r = server.raw(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_error_response(r, 404, "not_found")


def test_connection_close_large_reply(server):
    r = server.raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200
    assert b"# TYPE agentd_http_requests_total counter" in r.body
    assert len(r.body) == int(r.headers["content-length"])


# ---- keep-alive ----

def test_keep_alive_reuses_connection(server):
    with http_session() as s:
        rids = []
        for i, path in enumerate(["/healthz", "/readyz", "/health", "/nope", "/healthz"]):
            rid = f"e2e-keepalive-{chr(97 + i)}"
            r = s.get(server.url + path, headers={"X-Request-Id": rid}, timeout=5)
            assert r.headers["X-Request-Id"] == rid
            rids.append(rid)
            assert "close" not in r.headers.get("Connection", "").lower()
    remotes = set()
    for rid in rids:
        line = server.access_line(rid)
        assert line is not None
        remotes.add(line["remote"])
    assert len(remotes) == 1, remotes


def test_pipelined_requests(server):
    with server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-1\r\n\r\n"
                  b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-2\r\n\r\n")
        buf = b""
        deadline = time.monotonic() + 5
        while not (b'{"status":"alive"}' in buf and b'{"status":"ready"}' in buf):
            left = deadline - time.monotonic()
            assert left > 0, f"no two responses in 5 s: {buf!r}"
            s.settimeout(left)
            chunk = s.recv(65536)
            assert chunk, f"closed early: {buf!r}"
            buf += chunk
    assert buf.count(b"HTTP/1.1 200") == 2
    assert buf.index(b"pipe-1") < buf.index(b"pipe-2")
    assert buf.index(b'{"status":"alive"}') < buf.index(b'{"status":"ready"}')


# ---- the reply's head, line by line (issue 14: headers written in fewer pieces) ----

HEADER_LINE = re.compile(rb"^([A-Za-z0-9-]+): ([^\r\n]*)$")


def head_lines(sock):
    """The status line and the header lines of one reply read from `sock`
    (a keep-alive connection), and the body (Content-Length bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before the head ended"
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    n = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
    while len(rest) < n:
        rest += sock.recv(65536)
    return lines[0], lines[1:], rest


def header_map(lines):
    """Each line a well-formed `Name: value`, each name once."""
    out = {}
    for line in lines:
        m = HEADER_LINE.match(line)
        assert m, line
        name = m.group(1).decode().lower()
        assert name not in out, f"{name} twice"
        out[name] = m.group(2).decode()
    return out


def test_reply_head_lines_exact(server):
    with server.connect() as s:
        for i in range(3):  # one keep-alive connection: each reply whole and alone
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: hz-line-%d\r\n\r\n" % i)
            status, lines, body = head_lines(s)
            assert status == b"HTTP/1.1 200 OK"
            h = header_map(lines)
            assert set(h) == {"date", "content-type", "x-request-id", "cache-control",
                              "x-content-type-options", "vary", "content-length"}
            assert h["x-request-id"] == f"hz-line-{i}"
            assert h["cache-control"] == "no-store"
            assert h["x-content-type-options"] == "nosniff"
            assert h["vary"] == "Accept-Encoding"
            assert h["content-type"].startswith("application/json")
            assert re.match(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$",
                            h["date"]), h["date"]
            assert h["content-length"] == str(len(body)) and body == b'{"status":"alive"}'
        # an error reply with a generated id: the same lines
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        status, lines, body = head_lines(s)
        h = header_map(lines)
        assert status.startswith(b"HTTP/1.1 404")
        assert HEX32.match(h["x-request-id"])
        assert h["cache-control"] == "no-store" and h["x-content-type-options"] == "nosniff"
        assert h["content-length"] == str(len(body)) and b'"not_found"' in body
    # HTTP/1.0 with keep-alive, and a close asked for: evhttp's own Connection header
    with server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, lines, body = head_lines(s)
        h = header_map(lines)
        assert status == b"HTTP/1.0 200 OK" and h["connection"] == "keep-alive"
        assert h["cache-control"] == "no-store" and body == b'{"status":"alive"}'
    r = server.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.closed and r.raw.count(b"\r\nConnection: close\r\n") == 1
    assert r.raw.count(b"\r\nX-Content-Type-Options: nosniff\r\n") == 1


def test_head_reply_sends_no_body_on_keep_alive(server):
    # evhttp 2.1 writes whatever is in the output buffer, HEAD or not: a
    # HEAD's body would be read as the start of the next reply
    with server.connect() as s:
        for path in (b"/healthz", b"/nope", b"/openapi.json"):
            s.sendall(b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = b""
            while buf.count(b"\r\n\r\n") < 2 or not buf.endswith(b'{"status":"alive"}'):
                chunk = s.recv(65536)
                assert chunk, buf
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 "), head
            assert b"x-request-id" in head.lower()
            assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), (path, rest[:80])
            assert rest.endswith(b'\r\n\r\n{"status":"alive"}')
