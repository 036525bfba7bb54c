"""Signals and graceful drain. A request is held in flight with the test-only
route GET /testing/sleep?ms=N (mounted when AGENTD_SIMULATION_SECRET is set,
called with the Simulation-Secret header)."""

import signal
import socket
import threading
import time

from agentd_harness import HOST, SLOW, http_session, read_response

SECRET = "e2e-sim-secret"


def sim_env(**extra):
    env = {"AGENTD_SIMULATION_SECRET": SECRET}
    env.update(extra)
    return env


class SlowCall(threading.Thread):
    """GET /testing/sleep?ms=N on its own connection, in the background."""

    def __init__(self, srv, ms):
        super().__init__(daemon=True)
        self.srv, self.ms = srv, ms
        self.resp = self.error = None
        self.done_at = None

    def run(self):
        try:
            with http_session() as s:
                self.resp = s.get(f"{self.srv.url}/testing/sleep?ms={self.ms}",
                                  headers={"Simulation-Secret": SECRET}, timeout=30)
        except Exception as e:
            self.error = e
        self.done_at = time.monotonic()


def wait_in_flight(srv, n=1, timeout=5.0):
    """Wait until /health counts n requests in flight (besides itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.request("GET", "/health").json()["in_flight"] >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {n} requests in flight after {timeout}s")


def refused(port):
    try:
        socket.create_connection((HOST, port), timeout=1).close()
        return False
    except OSError:
        return True


def keepalive_get(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return read_response(sock, timeout=5)


# ---- without requests in flight ----

def test_sigterm_idle_exits_zero(agentd):
    srv = agentd(env={"AGENTD_DRAIN_TIMEOUT": "20s"})
    with http_session() as s:                 # an idle keep-alive connection stays open
        assert s.get(srv.url + "/healthz", timeout=5).status_code == 200
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(timeout=5)
        took = time.monotonic() - t0
    assert rc == 0, f"exit code {rc}"
    assert took < 2, f"idle server took {took:.2f}s to stop (drain timeout is 20 s)"
    msgs = [l["msg"] for l in srv.log_lines()]
    assert any(m.startswith("SIGTERM: draining") for m in msgs), msgs
    assert msgs[-1] == "stopped", msgs
    assert refused(srv.port)


def test_sigint_exits_zero(agentd):
    srv = agentd()
    srv.send_signal(signal.SIGINT)
    assert srv.wait(timeout=5) == 0
    assert any(l["msg"].startswith("SIGINT: draining") for l in srv.log_lines())


def test_sighup_keeps_serving(agentd):
    srv = agentd()
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(lambda l: "SIGHUP" in l["msg"], timeout=3) is not None
    assert srv.running
    assert srv.request("GET", "/healthz").status_code == 200
    assert srv.stop() == 0


def test_repeated_sigterm_exits_cleanly(agentd):
    # a stop races the loops closing their listeners: every one must be clean
    for i in range(40):
        srv = agentd()
        assert srv.request("GET", "/healthz").status_code == 200
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(timeout=5)
        assert rc == 0, f"stop #{i + 1}: exit code {rc}"


# ---- with a request in flight ----

def test_slow_route_needs_secret(agentd):
    srv = agentd(env=sim_env())
    r = srv.request("GET", "/testing/sleep?ms=10")
    assert r.status_code == 403
    r = srv.request("GET", "/testing/sleep?ms=10", headers={"Simulation-Secret": SECRET})
    assert r.status_code == 200


def test_sigterm_during_slow_request_completes(agentd):
    srv = agentd(env=sim_env(AGENTD_DRAIN_TIMEOUT="10s"))
    ka = srv.connect()                         # keep-alive connection made before the signal
    try:
        assert keepalive_get(ka, "/readyz").status == 200
        slow = SlowCall(srv, 1500)
        slow.start()
        wait_in_flight(srv)
        t_sig = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        # a new connection during the drain is answered, never reset: /readyz
        # says 503 draining once the signal is handled (the listeners close
        # only when the process stops)
        deadline = time.monotonic() + 2 * SLOW
        while True:
            fresh = srv.connect()
            try:
                r = keepalive_get(fresh, "/readyz")
            finally:
                fresh.close()
            if r.status == 503 or time.monotonic() > deadline:
                break
            assert r.status == 200, r  # not handled yet
            time.sleep(0.02)
        assert r.status == 503, r
        assert r.headers.get("connection", "").lower() == "close"
        # an open connection is told the server is not ready any more
        r = keepalive_get(ka, "/readyz")
        assert r.status == 503, r
        assert r.headers.get("connection", "").lower() == "close"
        assert any("draining" in why for why in r.json()["reasons"]), r.json()
        assert srv.running, "exited with a request in flight"
        slow.join(10)
        assert slow.error is None, repr(slow.error)
        assert slow.resp.status_code == 200
        assert slow.resp.json() == {"status": "awake", "slept_ms": 1500}
        rc = srv.wait(timeout=5)
        exited_at = time.monotonic()
        assert rc == 0, f"exit code {rc}"
        assert exited_at >= slow.done_at - 0.05
        assert exited_at - t_sig < 1.5 + 2 * SLOW
    finally:
        ka.close()
    msgs = [l["msg"] for l in srv.log_lines()]
    assert not [m for m in msgs if "drain timeout" in m], msgs


def test_drain_timeout_cuts_off(agentd):
    srv = agentd(env=sim_env(AGENTD_DRAIN_TIMEOUT="500ms"))
    slow = SlowCall(srv, 8000)
    slow.start()
    wait_in_flight(srv)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(timeout=5)
    took = time.monotonic() - t0
    assert rc is not None, "still running 5 s after SIGTERM with a 500 ms drain timeout"
    assert 0.4 <= took < 0.5 + 1.5 * SLOW, took
    assert srv.wait_log(lambda l: "drain timeout" in l["msg"] and l["level"] == "warn",
                        timeout=1) is not None
    slow.join(5)
    assert slow.resp is None or slow.resp.status_code != 200


def test_second_signal_exits_at_once(agentd):
    srv = agentd(env=sim_env(AGENTD_DRAIN_TIMEOUT="20s"))
    slow = SlowCall(srv, 10000)
    slow.start()
    wait_in_flight(srv)
    srv.send_signal(signal.SIGTERM)
    assert srv.wait_log(lambda l: l["msg"].startswith("SIGTERM: draining"), timeout=3)
    time.sleep(0.1)
    assert srv.running, "exited with a request in flight"
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(timeout=3)
    assert rc is not None and time.monotonic() - t0 < 1 * SLOW, "second signal did not stop it"
    assert rc != 0, "a forced exit must not report success"
    assert srv.wait_log(lambda l: "second signal" in l["msg"], timeout=1) is not None
    slow.join(5)
