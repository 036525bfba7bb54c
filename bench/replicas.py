"""bench/replicas.sh's body: starts each topology with the e2e harness's
classes, drives it with wrk, prints one line per figure."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "e2e")]
from agentd_harness import (HaproxyServer, PostgresServer, RedisServer, Server,  # noqa: E402
                            http_session)

DURATION = os.environ.get("DURATION", "10s")
CONNS = os.environ.get("CONNECTIONS", "32")
CATALOG = {"currency": "USD",
           "products": [{"productID": "BENCH-1", "name": "Benchmark Cookies",
                         "offers": {"price": "4.99", "priceCurrency": "USD"},
                         "inventory": {"quantity": 1000000000}}],
           "shipping_rates": [{"id": "std-ship", "country_code": "default",
                               "service_level": "standard", "price": 500, "title": "Standard"}],
           "tax_rates": [{"country": "*", "region": "*", "rate_bp": 0}]}


def wrk(url, script, **env):
    out = subprocess.run(["wrk", "-t2", f"-c{CONNS}", f"-d{DURATION}", "--timeout", "30s",
                          "-s", str(ROOT / "bench" / script), url],
                         env=dict(os.environ, **env), capture_output=True, text=True,
                         timeout=600).stdout
    res = next((line for line in out.splitlines() if line.startswith("RESULT")), None)
    if not res:
        raise RuntimeError(out)
    first = next((line for line in out.splitlines() if line.startswith("FIRST_ERROR")), None)
    if first:
        print(f"  ({script}) {first[:300]}", flush=True)
    return dict(kv.split("=", 1) for kv in res.split()[1:])


def measure(label, url):
    t = wrk(url, "turns.lua", TURN_MESSAGE="hello")
    c = wrk(url, "checkout.lua")
    print(f"{label:34s} turns/s {t['turns_per_s']:>8s} (bad {t['bad']}, codes {t['codes']})   "
          f"checkout flows/s {c['flows_per_s']:>8s} (errors {c['errors']})", flush=True)


def base_env(tmp):
    cat = tmp / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    return {"AGENTD_LLM": "builtin", "AGENTD_CATALOG": str(cat), "AGENTD_ACCESS_LOG": "off",
            "AGENTD_LOG_LEVEL": "warn",
            # every turn is a new session of the one anonymous principal
            "AGENTD_QUOTA_SESSIONS": "0"}


def cluster(tmp, pg, redis, n, env):
    db = pg.database("bench_" + uuid.uuid4().hex[:8])
    reps = [Server(env=dict(env, AGENTD_DB=db, AGENTD_REDIS_URL=redis.url,
                            AGENTD_INSTANCE_HOST=f"replica-{i}"),
                   workdir=tmp / f"n{n}-r{i}").start() for i in range(n)]
    lb = HaproxyServer(tmp / f"haproxy-n{n}", [r.port for r in reps]).start()
    return db, reps, lb


def failover(tmp, pg, redis, env):
    fake = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_llm" / "fake_llm.py"),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(fake.stdout.readline())
    env = dict(env, AGENTD_LLM=None, AGENTD_LLM_URL=f"http://127.0.0.1:{port}/v1",
               AGENTD_LLM_MODEL="fake", AGENTD_LLM_API_KEY="sk-bench",
               AGENTD_INSTANCE_DEAD_AFTER="2s", AGENTD_TURN_TIMEOUT="300s")
    db, (a, b), lb = cluster(tmp, pg, redis, 2, {k: v for k, v in env.items() if v is not None})
    try:
        sid = a.request("POST", "/chat", json={"message": "hello"}, timeout=10).json()["session_id"]
        threading.Thread(target=lambda: _quiet(lambda: a.request(
            "POST", "/chat", json={"message": "stuck [[fault:hang seconds=60 once]]",
                                   "session_id": sid}, timeout=60)), daemon=True).start()
        q = f"SELECT id FROM turns WHERE session_id = '{sid}' AND state = 'running'"
        while not pg.query(db, q):
            time.sleep(0.05)
        tid = pg.query(db, q).split("\n")[0]
        stop, fails = threading.Event(), [0, 0]

        def loop():
            with http_session() as s:
                while not stop.is_set():
                    try:
                        ok = s.get(lb.url + "/healthz", timeout=5).status_code == 200
                    except Exception:  # noqa: BLE001 - counted
                        ok = False
                    fails[0 if ok else 1] += 1
        th = threading.Thread(target=loop, daemon=True)
        th.start()
        time.sleep(1)
        t0 = time.monotonic()
        a.send_signal(signal.SIGKILL)
        a.killed = True
        down = resumed = None
        while time.monotonic() - t0 < 60 and (down is None or resumed is None):
            if down is None and lb.state().get("r0") == "DOWN":
                down = time.monotonic() - t0
            if resumed is None and pg.query(db, f"SELECT state FROM turns WHERE id = '{tid}'") \
                    == "completed":
                resumed = time.monotonic() - t0
            time.sleep(0.02)
        stop.set()
        th.join(10)
        print(f"failover: haproxy marks the killed replica DOWN after {down:.2f} s; its running "
              f"turn completes on the other after {resumed:.2f} s "
              f"(AGENTD_INSTANCE_DEAD_AFTER=2s); client GETs {fails[0]} ok, {fails[1]} failed",
              flush=True)
    finally:
        lb.kill()
        a.kill()
        b.stop()
        fake.kill()


def _quiet(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 - the connection dies with the replica
        pass


def main():
    tmp = Path(tempfile.mkdtemp(prefix="agentd-bench-replicas-"))
    env = base_env(tmp)
    print(f"agentd {os.environ['AGENTD_BIN']}; wrk -t2 -c{CONNS} -d{DURATION}; "
          f"{os.cpu_count()} cores shared by everything", flush=True)
    one = Server(env=env, workdir=tmp / "sqlite").start()
    try:
        measure("one box, SQLite", one.url)
    finally:
        one.stop()
    pg = PostgresServer(tmp / "pg").start()
    redis = RedisServer(tmp / "redis").start()
    try:
        for n in (1, 2):
            _, reps, lb = cluster(tmp, pg, redis, n, env)
            try:
                measure(f"{n} replica(s), PostgreSQL + haproxy", lb.url)
            finally:
                lb.kill()
                for r in reps:
                    r.stop()
        failover(tmp, pg, redis, env)
    finally:
        redis.kill()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
