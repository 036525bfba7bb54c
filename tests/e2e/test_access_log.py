"""The access log is batched per loop thread (core/logbuf.c): lines still
appear shortly after a burst without any further traffic (the flush timer),
none is lost on a SIGTERM drain, and the line format is unchanged."""

import signal
import threading
import uuid

from agentd_harness import http_session
from test_drain import wait_in_flight

SECRET = "e2e-sim-secret"


def burst(srv, ids, path="/healthz", headers=None, workers=8):
    """GET path once per id (sent as X-Request-Id) from `workers` threads;
    returns {id: status}."""
    got = {}
    lock = threading.Lock()
    todo = list(ids)

    def run():
        with http_session() as s:
            while True:
                with lock:
                    if not todo:
                        return
                    rid = todo.pop()
                h = {"X-Request-Id": rid, **(headers or {})}
                r = s.get(f"{srv.url}{path}", headers=h, timeout=30)
                with lock:
                    got[rid] = r.status_code

    ts = [threading.Thread(target=run, daemon=True) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return got


def access_ids(srv):
    return {l.get("request_id") for l in srv.log_lines() if l.get("msg") == "request"}


def test_burst_lines_appear_without_more_traffic(agentd):
    srv = agentd(env={"AGENTD_THREADS": "2"})
    ids = [f"burst-{uuid.uuid4().hex[:12]}" for _ in range(60)]  # well under 64 KiB of lines
    got = burst(srv, ids)
    assert set(got) == set(ids) and set(got.values()) == {200}
    # no request follows: only the flush timer can write them (bounded wait)
    line = srv.wait_log(lambda l: set(ids) <= access_ids(srv), timeout=3.0)
    missing = set(ids) - access_ids(srv)
    assert not missing, f"{len(missing)} access lines not written: {sorted(missing)[:5]}"
    assert line is not None
    one = next(l for l in srv.log_lines() if l.get("request_id") == ids[0])
    # the documented fields, as before the batching
    for k in ("ts", "level", "msg", "request_id", "method", "route", "status",
              "duration_ms", "remote", "bytes"):
        assert k in one, k
    assert one["status"] == 200 and one["route"] == "/healthz" and one["method"] == "GET"
    # every line is whole: one JSON object per line, none split or merged
    raw = [x for x in srv.log_text().splitlines() if x.strip()]
    assert all(x.startswith("{") and x.endswith("}") for x in raw)


def test_sigterm_drain_keeps_every_line(agentd):
    srv = agentd(env={"AGENTD_THREADS": "2", "AGENTD_SIMULATION_SECRET": SECRET})
    quick = [f"quick-{uuid.uuid4().hex[:12]}" for _ in range(200)]
    got = burst(srv, quick)
    assert set(got.values()) == {200}
    slow = [f"slow-{uuid.uuid4().hex[:12]}" for _ in range(24)]
    result = {}
    t = threading.Thread(target=lambda: result.update(
        burst(srv, slow, path="/testing/sleep?ms=1000",
              headers={"Simulation-Secret": SECRET}, workers=24)), daemon=True)
    t.start()
    # SIGTERM while the slow ones are in flight: drain answers them, then
    # the loops stop right after their last replies
    wait_in_flight(srv, n=len(slow))
    srv.send_signal(signal.SIGTERM)
    t.join(30)
    assert srv.wait(timeout=15) == 0
    answered = [rid for rid, st in result.items() if st == 200]
    assert answered, result
    logged = access_ids(srv)
    missing = [rid for rid in quick + answered if rid not in logged]
    assert not missing, f"{len(missing)} answered requests have no access line: {missing[:5]}"


def test_a_reused_request_carries_nothing_of_the_last(agentd):
    """Requests come from their loop's spares (http/server.c), not zeroed
    whole: one loop, one connection, each line only its own fields."""
    srv = agentd(env={"AGENTD_THREADS": "1"})
    with http_session() as s:
        seq = []
        for i in range(40):  # past the loop's spare count, errors and successes mixed
            rid = f"reuse-{i}-{uuid.uuid4().hex[:8]}"
            if i % 4 == 0:
                r = s.get(f"{srv.url}/no/such/path", headers={"X-Request-Id": rid}, timeout=10)
                seq.append((rid, 404, "not_found", "unmatched"))
            elif i % 4 == 1:
                r = s.post(f"{srv.url}/healthz", headers={"X-Request-Id": rid}, timeout=10)
                seq.append((rid, 405, "method_not_allowed", "unmatched"))
            elif i % 4 == 2:
                r = s.get(f"{srv.url}/healthz", timeout=10)  # a generated id
                rid = r.headers["X-Request-Id"]
                seq.append((rid, 200, None, "/healthz"))
            else:
                r = s.get(f"{srv.url}/healthz", headers={"X-Request-Id": rid}, timeout=10)
                seq.append((rid, 200, None, "/healthz"))
            assert r.status_code == seq[-1][1]
    ids = {x[0] for x in seq}
    srv.wait_log(lambda l: ids <= access_ids(srv), timeout=3.0)
    lines = {l["request_id"]: l for l in srv.log_lines() if l.get("msg") == "request"}
    assert len(ids) == len(seq)  # generated ids are new each time
    for rid, status, code, route in seq:
        line = lines[rid]
        assert line["status"] == status and line["route"] == route, line
        assert line.get("code") == code, line
        assert line["principal"] == "anonymous" and line["remote"].startswith("127.0.0.1:"), line
        assert set(line) <= {"ts", "level", "msg", "trace_id", "request_id", "principal", "method",
                             "route", "status", "duration_ms", "remote", "bytes", "code"}, line
