"""Shared rate limits on Redis (AGENTD_REDIS_URL): two agentd processes with
their own databases charge one budget, so the 429 comes at the shared burst,
not twice it; recovery after the window; Redis killed or hung ->
AGENTD_RATE_LIMIT_ON_REDIS_DOWN decides (open: each replica limits on its
own, closed: 503 rate_limit_unavailable), /health shows redis failing while
/readyz stays ready; Redis back -> the shared limit holds again."""

import http.client
import json
import time

import pytest

from agentd_harness import (RedisServer, assert_error_response, metric_value, parse_metrics,
                            run_cli)

PATH = "/chat/sessions"  # a charged route that touches no model


def env(redis, rule, threads="1", host="127.0.0.1", **extra):
    # one loop thread by default: one Redis connection per replica, so
    # "reconnected" is one state
    return {"AGENTD_REDIS_URL": f"redis://{host}:{redis.port}", "AGENTD_RATE_LIMIT": rule,
            "AGENTD_THREADS": threads, **extra}


def metrics(srv):
    return parse_metrics(srv.get("/metrics").text)


def redis_dep(srv):
    # /health is charged: ask from another loopback address, on its own budget
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5,
                                   source_address=("127.0.0.2", 0))
    try:
        c.request("GET", "/health")
        resp = c.getresponse()
        assert resp.status == 200, resp.status
        body = json.loads(resp.read())
    finally:
        c.close()
    deps = [d for d in body["dependencies"] if d["name"] == "redis"]
    assert len(deps) == 1, body
    return body, deps[0]


def wait_for(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_replicas_share_one_budget(agentd, redis_server):
    # several loops each: each loop has its own connection, all share the bucket
    a = agentd(env=env(redis_server, "1/m,4", threads="3"))
    b = agentd(env=env(redis_server, "1/m,4", threads="2"))
    remaining = []
    for srv in (a, b, a, b):
        r = srv.request("GET", PATH)
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Limit"] == "4"
        remaining.append(r.headers["RateLimit-Remaining"])
    assert remaining == ["3", "2", "1", "0"]
    # the shared burst is spent: both replicas refuse, neither has its own 4
    for srv in (a, b):
        r = srv.request("GET", PATH)
        assert_error_response(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Remaining"] == "0"
    # the bucket lives in Redis under the client's key, with a TTL (time to full)
    keys = redis_server.command("KEYS", "agentd:rl:requests:*")
    assert b"agentd:rl:requests:ip:127.0.0.1" in keys
    ttl = redis_server.command("PTTL", "agentd:rl:requests:ip:127.0.0.1")
    assert ttl.startswith(b":") and 0 < int(ttl[1:].strip()) <= 4 * 60 * 1000
    for srv in (a, b):
        m = metrics(srv)
        assert metric_value(m, "agentd_redis_up") == 1.0
        assert metric_value(m, "agentd_ratelimit_backend_errors_total") == 0.0
        body, dep = redis_dep(srv)
        assert dep["status"] == "ok", body
    # the script went over the wire once (EVAL after the first NOSCRIPT); every
    # other check was an EVALSHA, the second replica's included
    stats = redis_server.command("INFO", "commandstats").decode()
    calls = {line.split(":")[0]: int(line.split("calls=")[1].split(",")[0])
             for line in stats.splitlines() if line.startswith("cmdstat_")}
    assert calls.get("cmdstat_eval") == 1, stats
    # 6 requests + 2 /health (charged too) = 8 checks: 8 EVALSHA (the first
    # answered NOSCRIPT) + that 1 EVAL
    assert calls.get("cmdstat_evalsha") == 8, stats


def test_recovery_after_the_window(agentd, redis_server):
    a = agentd(env=env(redis_server, "10/s,2"))
    b = agentd(env=env(redis_server, "10/s,2"))
    assert a.request("GET", PATH).status_code == 200
    assert b.request("GET", PATH).status_code == 200
    r = a.request("GET", PATH)
    assert_error_response(r, 429, "rate_limited")
    assert r.headers["Retry-After"] == "1"
    wait_for(lambda: b.request("GET", PATH).status_code == 200, timeout=5.0,
             what="the shared bucket to refill")


# a host name is looked up at start and again (on the worker pool, never on a
# loop) after the connection to it failed
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_redis_down_open_then_back(agentd, redis_server, host):
    a = agentd(env=env(redis_server, "1/m,2", host=host))
    b = agentd(env=env(redis_server, "1/m,2", host=host))
    assert a.request("GET", PATH).status_code == 200
    assert b.request("GET", PATH).status_code == 200
    assert_error_response(a.request("GET", PATH), 429, "rate_limited")

    redis_server.kill()
    # open: the replica decides alone (its own in-process bucket, still full)
    r = a.request("GET", PATH)
    assert r.status_code == 200, r.text
    assert r.headers["RateLimit-Limit"] == "2"
    body, dep = redis_dep(a)
    assert dep["status"] == "failing" and dep.get("detail"), body
    assert body["status"] == "degraded"
    assert a.get("/readyz").status_code == 200  # limits degrade, data is safe
    m = metrics(a)
    assert metric_value(m, "agentd_redis_up") == 0.0
    assert metric_value(m, "agentd_ratelimit_backend_errors_total") >= 1.0
    assert a.wait_log(lambda e: "redis" in e.get("msg", "") and e.get("level") == "warn")

    # Redis back (empty: it kept nothing): the replicas reconnect by themselves
    # and share one budget again
    redis_server.start()
    for srv in (a, b):
        wait_for(lambda: metric_value(metrics(srv), "agentd_redis_up") == 1.0,
                 what="agentd to reconnect to redis")
    assert a.request("GET", PATH).status_code == 200
    assert b.request("GET", PATH).status_code == 200
    assert_error_response(a.request("GET", PATH), 429, "rate_limited")
    assert_error_response(b.request("GET", PATH), 429, "rate_limited")
    body, dep = redis_dep(b)
    assert dep["status"] == "ok", body


def test_hung_redis_does_not_hold_requests(agentd, redis_server):
    a = agentd(env=env(redis_server, "1/m,5"))
    assert a.request("GET", PATH).status_code == 200
    redis_server.pause()
    try:
        # the command times out and the replica decides alone (open)
        r = a.request("GET", PATH, timeout=5)
        assert r.status_code == 200, r.text
        body, dep = redis_dep(a)
        assert dep["status"] == "failing", body
    finally:
        redis_server.resume()
    wait_for(lambda: metric_value(metrics(a), "agentd_redis_up") == 1.0,
             what="agentd to reconnect to redis")


def test_redis_down_closed_refuses_503(agentd, redis_server):
    a = agentd(env=env(redis_server, "1/m,5", AGENTD_RATE_LIMIT_ON_REDIS_DOWN="closed"))
    assert a.request("GET", PATH).status_code == 200
    redis_server.kill()
    r = a.request("GET", PATH)
    assert_error_response(r, 503, "rate_limit_unavailable")
    assert int(r.headers["Retry-After"]) >= 1
    # the A2A front says it as a JSON-RPC error, with the same code
    body = {"jsonrpc": "2.0", "id": 9, "method": "GetTask", "params": {"id": "t-1"}}
    r = a.request("POST", "/", data=json.dumps(body),
                  headers={"Content-Type": "application/json", "A2A-Version": "1.0"})
    assert r.status_code == 503
    assert r.json()["id"] == 9
    assert r.json()["error"]["data"]["code"] == "rate_limit_unavailable"
    assert a.get("/healthz").status_code == 200  # probes are never charged
    assert a.get("/readyz").status_code == 200
    redis_server.start()
    wait_for(lambda: a.request("GET", PATH).status_code == 200,
             what="requests to pass once redis is back")


def test_check_config_hides_the_redis_password():
    r = run_cli(["check-config"], env={"AGENTD_REDIS_URL": "redis://:sw0rdfish-pw@127.0.0.1:6399/1"})
    out = r.stdout + r.stderr
    assert "sw0rdfish-pw" not in out
    assert "AGENTD_REDIS_URL=redis://:***@127.0.0.1:6399/1" in out
    bad = run_cli(["check-config"], env={"AGENTD_REDIS_URL": "rediss://127.0.0.1:6399"})
    assert bad.returncode != 0
    assert "AGENTD_REDIS_URL" in bad.stdout + bad.stderr


def test_password_and_unix_socket(agentd, tmp_path):
    redis = RedisServer(tmp_path / "redis-auth", password="c0rrect-h0rse").start()
    try:
        tcp = f"redis://:c0rrect-h0rse@127.0.0.1:{redis.port}"
        unix = f"unix://:c0rrect-h0rse@{redis.socket}"
        a = agentd(env={"AGENTD_REDIS_URL": tcp, "AGENTD_RATE_LIMIT": "1/m,2"})
        b = agentd(env={"AGENTD_REDIS_URL": unix, "AGENTD_RATE_LIMIT": "1/m,2"})
        assert a.request("GET", PATH).status_code == 200
        assert b.request("GET", PATH).status_code == 200
        assert_error_response(a.request("GET", PATH), 429, "rate_limited")
        assert_error_response(b.request("GET", PATH), 429, "rate_limited")
        # a wrong password: the login is refused, this replica limits on its own,
        # /health says why without the password
        wrong = f"redis://:wr0ng-pass@127.0.0.1:{redis.port}"
        c = agentd(env={"AGENTD_REDIS_URL": wrong, "AGENTD_RATE_LIMIT": "1/m,2"})
        assert c.request("GET", PATH).status_code == 200
        body, dep = redis_dep(c)
        assert dep["status"] == "failing", body
        assert "AUTH" in dep["detail"] and "wr0ng-pass" not in dep["detail"], dep
        assert metric_value(metrics(c), "agentd_redis_up") == 0.0
        for srv in (a, b, c):
            assert "c0rrect-h0rse" not in srv.log_text()
            assert "wr0ng-pass" not in srv.log_text()
    finally:
        redis.kill()
