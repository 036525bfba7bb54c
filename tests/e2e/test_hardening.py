"""Hardening (issue #12 items 7, 8, 11): unknown AGENTD_* variables, production
limits, HTTP framing and Host rules, nosniff, CORS, 415, JSON depth, silent
connections, and the faults an outside probe found."""

import json
import signal
import socket
import time

import pytest

from agentd_harness import SLOW, assert_error_response, read_response, run_cli, wait_closed


# ---- configuration hardening ----

def test_check_config_lists_unknown_variable_with_nearest_name():
    r = run_cli(["check-config"], env={"AGENTD_PROT": "9000", "AGENTD_PORT": "9001"})
    assert r.returncode == 2, r.stdout
    assert "problem: AGENTD_PROT: unknown variable (did you mean AGENTD_PORT?)" in r.stdout
    assert "config: INVALID" in r.stdout


def test_check_config_knows_provider_family_and_file_twins(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("sekrit\n")
    r = run_cli(["check-config"], env={
        "AGENTD_LLM_PROVIDERS": "primary", "AGENTD_LLM_PRIMARY_URL": "http://127.0.0.1:1/v1",
        "AGENTD_LLM_PRIMARY_MODEL": "m", "AGENTD_LLM_PRIMARY_API_KEY_FILE": str(secret),
        "AGENTD_SIMULATION_SECRET_FILE": str(secret)})
    assert r.returncode == 0, r.stdout
    # a provider not in the chain is not a known name
    r = run_cli(["check-config"], env={
        "AGENTD_LLM_PROVIDERS": "primary", "AGENTD_LLM_PRIMARY_URL": "http://127.0.0.1:1/v1",
        "AGENTD_LLM_PRIMARY_MODEL": "m", "AGENTD_LLM_BACKUP_URL": "http://127.0.0.1:2/v1"})
    assert r.returncode == 2
    assert "AGENTD_LLM_BACKUP_URL: unknown variable" in r.stdout


def test_serve_refuses_unknown_variable(agentd):
    a = agentd(env={"AGENTD_MAX_BODY_BYTE": "1m"}, wait_ready=False)
    try:
        code = a.wait()
        assert code is not None and code != 0, a.log_text()
        assert "AGENTD_MAX_BODY_BYTE: unknown variable (did you mean AGENTD_MAX_BODY_BYTES?)" \
            in a.log_text()
    finally:
        a.kill()


def test_production_refuses_large_body_and_long_read_timeout():
    r = run_cli(["check-config"], env={"AGENTD_ENV": "production", "AGENTD_LLM": "builtin",
                                       "AGENTD_MAX_BODY_BYTES": "32m",
                                       "AGENTD_READ_TIMEOUT": "2m"})
    assert r.returncode == 2
    assert "production: AGENTD_MAX_BODY_BYTES is over 16 MiB" in r.stdout
    assert "production: AGENTD_READ_TIMEOUT is over 60s" in r.stdout


# ---- HTTP hardening: framing and Host (the guard) ----

def test_unknown_transfer_encoding_501_not_smuggled(server):
    # the "body" is a whole second request: it must never be parsed as one
    smuggled = b"GET /nope-smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    r = server.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
                   + smuggled)
    assert_error_response(r, 501, "not_implemented")
    assert r.closed
    assert b"HTTP/1.1 404" not in r.raw and r.raw.count(b"HTTP/1.1 ") == 1
    assert r.headers.get("x-content-type-options") == "nosniff"


def test_stacked_transfer_coding_refused(server):
    r = server.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                   b"0\r\n\r\n")
    assert_error_response(r, 501, "not_implemented")


@pytest.mark.parametrize("head", [
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
])
def test_host_missing_or_twice_400(server, head):
    r = server.raw(head)
    assert_error_response(r, 400, "malformed_request")
    assert "Host" in r.json()["error"]["message"]


def test_http10_without_host_ok(server):
    r = server.raw(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert r.status == 200


@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"5\r\nhello\r\n0\r\n\rX",
])
def test_malformed_chunked_body_json_400(server, body):
    r = server.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert_error_response(r, 400, "malformed_request")


@pytest.fixture(scope="module")
def small(module_agentd):
    return module_agentd(env={"AGENTD_MAX_BODY_BYTES": "4096", "AGENTD_READ_TIMEOUT": "1s",
                              "AGENTD_IDLE_TIMEOUT": "120s"})


def test_oversized_chunked_body_json_413(small):
    chunk = b"z" * 3000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2)) + b"0\r\n\r\n"
    r = small.raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert_error_response(r, 413, "payload_too_large")


def test_slow_second_head_408(small):
    """The read deadline is armed only for a head that is not whole at
    once (http/guard.c): a keep-alive connection's later slow head still
    gets its 408 (the idle timeout here is 120 s, so only that can answer)."""
    with small.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, timeout=5).status == 200
        time.sleep(0.6)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        r = read_response(s, timeout=10, until_close=True)
    assert_error_response(r, 408, "request_timeout")
    assert r.closed


@pytest.fixture(scope="module")
def short_idle(module_agentd):
    # the idle timeout under the read timeout: evhttp's idle timer used to
    # close a keep-alive connection mid-request, without an answer
    return module_agentd(env={"AGENTD_READ_TIMEOUT": "3s", "AGENTD_IDLE_TIMEOUT": "1s"})


def test_slow_later_head_408_under_short_idle_timeout(short_idle):
    with short_idle.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, timeout=5).status == 200
        time.sleep(0.3)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        r = read_response(s, timeout=15 * SLOW, until_close=True)
    assert_error_response(r, 408, "request_timeout")
    assert r.closed


def test_slow_later_body_408_under_short_idle_timeout(short_idle):
    # a pause longer than the idle timeout inside a body: still the read deadline
    with short_idle.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(s, timeout=5).status == 200
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}  ")
        time.sleep(1.5)
        s.sendall(b"  ")
        r = read_response(s, timeout=15 * SLOW, until_close=True)
    assert_error_response(r, 408, "request_timeout")


def test_keep_alive_idle_close_is_silent_and_follows_a_slow_head(short_idle):
    with short_idle.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(1.5)  # longer than the idle timeout, inside the read deadline
        s.sendall(b"\r\n")
        assert read_response(s, timeout=5).status == 200
        # idle again: the idle timeout closes it, with no answer
        s.settimeout(15 * SLOW)
        assert s.recv(65536) == b""


def test_chunked_body_then_pipelined_request(small):
    with small.connect() as s:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\n{}\r\n0\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_response(s, until_close=True).raw
    assert data.count(b"HTTP/1.1 405") == 1 and data.count(b"HTTP/1.1 200") == 1, data


def test_silent_connection_closed_at_read_timeout(small):
    # idle timeout is 120 s: a close within the wait below is the read deadline
    with small.connect() as s:
        assert wait_closed(s, 15 * SLOW) is not None
    assert small.get("/healthz").status_code == 200


def test_nosniff_on_every_response(server):
    for path in ("/healthz", "/nope", "/metrics"):
        assert server.get(path).headers.get("X-Content-Type-Options") == "nosniff", path


def test_one_current_date_header(server):
    # agentd sets Date itself (formatted once a second per loop thread);
    # evhttp must not add a second one, and it must be now, RFC 1123
    import email.utils
    for path in ("/healthz", "/nope"):
        with server.connect() as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            raw = read_response(s, until_close=True).raw
        head = raw.split(b"\r\n\r\n", 1)[0].decode()
        dates = [l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:]
                 if l.lower().startswith("date:")]
        assert len(dates) == 1, head
        assert dates[0].endswith(" GMT") and len(dates[0]) == 29, dates
        when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        assert abs(when - time.time()) < 5 * SLOW, dates


# ---- HTTP hardening: CORS, media type, JSON depth ----

def test_cors_off_by_default(server):
    r = server.get("/healthz", headers={"Origin": "https://shop.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = server.request("OPTIONS", "/chat", headers={"Origin": "https://shop.example",
                                                     "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.fixture(scope="module")
def cors(module_agentd):
    return module_agentd(env={"AGENTD_CORS_ORIGINS": "https://shop.example, http://127.0.0.1:3000"})


def test_cors_preflight_for_listed_origin(cors):
    r = cors.request("OPTIONS", "/chat", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, idempotency-key"})
    assert r.status_code == 204, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    allowed = r.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "idempotency-key" in allowed
    # the UCP sample chat client's headers, and the key and version headers
    for h in ("x-a2a-extensions", "a2a-version", "ucp-agent", "authorization", "x-api-key"):
        assert h in allowed, h
    assert "Origin" in r.headers.get("Vary", "")


def test_cors_reply_exposes_what_a_page_reads(cors):
    r = cors.get("/healthz", headers={"Origin": "https://shop.example"})
    assert r.status_code == 200
    exposed = r.headers["Access-Control-Expose-Headers"].lower()
    for h in ("x-request-id", "retry-after", "www-authenticate", "x-a2a-extensions"):
        assert h in exposed, h


def test_cors_reply_one_vary_line(cors):
    # Origin and Accept-Encoding in one Vary line, each once
    r = cors.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: https://shop.example\r\n"
                 b"Connection: close\r\n\r\n")
    assert r.raw.count(b"\r\nVary: ") == 1
    assert b"\r\nVary: Origin, Accept-Encoding\r\n" in r.raw
    assert r.raw.count(b"\r\nX-Content-Type-Options: nosniff\r\n") == 1


def test_cors_unlisted_origin_gets_no_grant(cors):
    r = cors.request("OPTIONS", "/chat", headers={"Origin": "https://evil.example",
                                                   "Access-Control-Request-Method": "POST"})
    assert_error_response(r, 403, "forbidden")
    assert "Access-Control-Allow-Origin" not in r.headers
    r = cors.get("/healthz", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    assert "Origin" in r.headers.get("Vary", "")
    r = cors.get("/healthz", headers={"Origin": "http://127.0.0.1:3000"})
    assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:3000"


def test_cors_origins_must_be_origins():
    r = run_cli(["check-config"], env={"AGENTD_CORS_ORIGINS": "https://ok.example,*,ftp://x"})
    assert r.returncode == 2
    assert 'AGENTD_CORS_ORIGINS: "*" is not an origin' in r.stdout
    assert 'AGENTD_CORS_ORIGINS: "ftp://x" is not an origin' in r.stdout


UCP_AGENT = 'profile="https://platform.example/profile"'


def test_415_for_non_json_body(server):
    r = server.request("POST", "/chat", data=b"message=hi",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_error_response(r, 415, "unsupported_media_type")
    r = server.request("POST", "/checkout-sessions", data=b"<xml/>",
                       headers={"Content-Type": "text/xml", "UCP-Agent": UCP_AGENT})
    assert r.status_code == 415, r.text
    assert r.json()["messages"][0]["code"] == "unsupported_media_type"
    # A2A keeps its JSON-RPC error shape
    r = server.request("POST", "/", data=b"x", headers={"Content-Type": "text/plain"})
    assert r.json()["error"]["code"] == -32005
    # a JSON type with parameters or a +json suffix is JSON
    r = server.request("POST", "/chat", data=json.dumps({"message": "hi"}),
                       headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_json_depth_limit(server):
    deep = "[" * 65 + "]" * 65
    r = server.request("POST", "/chat", data=json.dumps({"message": "hi", "data": json.loads(deep)}),
                       headers={"Content-Type": "application/json"})
    assert_error_response(r, 400, "malformed_request")
    assert "deeper" in r.json()["error"]["message"]
    r = server.request("POST", "/checkout-sessions", data="[" * 5000,
                       headers={"Content-Type": "application/json", "UCP-Agent": UCP_AGENT})
    assert r.status_code == 400 and "deeper" in r.text
    r = server.request("POST", "/", data='{"jsonrpc":"2.0","id":1,"method":"x","params":' +
                       "[" * 100 + "]" * 100 + "}", headers={"Content-Type": "application/json"})
    assert r.json()["error"]["code"] == -32700
    # 64 levels are fine
    ok = json.loads("[" * 62 + "]" * 62)
    r = server.request("POST", "/chat", json={"message": "hi", "data": {"x": ok}})
    assert r.status_code != 400 or "deeper" not in r.text


# ---- the probe's faults ----

def test_in_progress_409_carries_retry_after(agentd):
    """A /chat claim in progress (its turn is crash recovery's to finish,
    not taken over) answers 409 idempotency_in_progress with Retry-After."""
    import hashlib
    import sqlite3
    a = agentd()
    body = json.dumps({"message": "hello"}).encode()
    fp = hashlib.sha256(b"POST\n/chat\n" + body).hexdigest()
    now = int(time.time() * 1000)
    con = sqlite3.connect(a.data_dir / "agentd.db")
    with con:
        con.execute("INSERT INTO idempotency(principal, key, fingerprint, state, created_at, "
                    "expires_at, owner) VALUES('anonymous', 'k-busy', ?, 'in_progress', ?, ?, "
                    "'elsewhere/1/abc')", (fp, now, now + 3600 * 1000))
    con.close()
    r = a.request("POST", "/chat", data=body, headers={"Content-Type": "application/json",
                                                       "Idempotency-Key": "k-busy"})
    assert_error_response(r, 409, "idempotency_in_progress")
    assert r.headers.get("Retry-After") == "1"


@pytest.mark.parametrize("message", ["add -1 BISC-001", "add 0 BISC-001"])
def test_offline_model_refuses_quantity_below_one(server, message):
    r = server.request("POST", "/chat", json={"message": message})
    assert r.status_code == 200, r.text
    d = r.json()
    assert "at least 1" in d["answer"], d["answer"]
    assert not (d.get("checkout") or {}).get("line_items"), d


def test_readyz_right_after_sigterm_is_503_never_a_reset(agentd):
    """Connections made just after SIGTERM are either refused (the listener
    is closed) or answered 503 by /readyz: one that was accepted by the
    kernel must not be reset by the listener's close."""
    from test_drain import SlowCall, sim_env, wait_in_flight
    seen = {"reset": 0, "503": 0, "refused": 0}
    for _ in range(4):  # the race is narrow: several rounds
        srv = agentd(env=sim_env(AGENTD_DRAIN_TIMEOUT="10s"))
        slow = SlowCall(srv, 1000)
        slow.start()
        wait_in_flight(srv)
        socks = []
        srv.send_signal(signal.SIGTERM)
        for _ in range(20):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                socks.append(s)
            except ConnectionRefusedError:
                seen["refused"] += 1
            except (ConnectionResetError, BrokenPipeError):
                seen["reset"] += 1
        for s in socks:
            try:
                data = s.recv(64)
                if data.startswith(b"HTTP/1.1 200"):
                    continue  # served before the signal was handled
                seen["503" if data.startswith(b"HTTP/1.1 503") else "reset"] += 1
            except ConnectionResetError:
                seen["reset"] += 1
            finally:
                s.close()
        slow.join(10)
        assert srv.wait(10 * SLOW) == 0
    assert seen["reset"] == 0, seen
    assert seen["503"] > 0, seen
