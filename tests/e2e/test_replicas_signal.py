"""Two agentd replicas sharing one SQLite file (and one Redis): a stream on
replica B wakes at once for a turn run on replica A (Redis pub/sub signals,
the store poll set far longer so only a signal explains a prompt wake);
with Redis killed the stream still completes through the poll; a replica
SIGKILLed mid-turn has its turn adopted by the other once its heartbeat
stops (AGENTD_INSTANCE_DEAD_AFTER), long before the turn's lease, and the
turn completes exactly once. Each replica has its own AGENTD_INSTANCE_HOST
and data directory, so neither the same-host pid probe nor the lock file
can tell the other's death: only the heartbeat can."""

import signal
import socket
import sqlite3
import threading
import time
import uuid

import requests

from agentd_harness import HOST, SLOW, Server, metric_value, parse_metrics
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)

POLL_LONG = 30  # s: the store poll while proving the signal (the bound below is far under it)


def tag():
    return uuid.uuid4().hex[:8]


def replica(name, tmp_path, env):
    srv = Server(env=dict(env, AGENTD_INSTANCE_HOST=name,
                          AGENTD_DB=str(tmp_path / "shared.db")),
                 workdir=tmp_path / name)
    return srv.start()


def db_query(tmp_path, sql, *args):
    con = sqlite3.connect(f"file:{tmp_path / 'shared.db'}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def chat(srv, message, sid=None, timeout=15):
    body = {"message": message}
    if sid:
        body["session_id"] = sid
    r = srv.request("POST", "/chat", json=body, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def events(srv, sid):
    r = srv.get(f"/chat/sessions/{sid}/events")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def metric(srv, name, **labels):
    return metric_value(parse_metrics(srv.get("/metrics").text), name, **labels) or 0


class Stream:
    """GET /chat/sessions/{sid}/events as SSE on srv over a raw socket, read
    by a thread: the received text with arrival times; close() is at once."""

    def __init__(self, srv, sid, after):
        self.chunks = []
        self.sock = socket.create_connection((HOST, srv.port), timeout=120)
        self.sock.sendall(f"GET /chat/sessions/{sid}/events?after={after} HTTP/1.1\r\n"
                          f"Host: x\r\nAccept: text/event-stream\r\n\r\n".encode())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: self.seen("text/event-stream"), 5 * SLOW, "the stream opens")

    def _read(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                self.chunks.append((time.monotonic(), data.decode(errors="replace")))
        except OSError:  # closed at the end of the test
            pass

    def seen(self, text):
        acc = ""
        for t, chunk in list(self.chunks):
            acc += chunk
            if text in acc:
                return t
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def subscribed(redis_server, sid):
    """B's subscriber connection is on the session's channel."""
    reply = redis_server.command("PUBSUB", "NUMSUB", f"agentd:session:{sid}")
    return int(reply.rstrip().rsplit(b"\r\n:", 1)[1]) > 0  # "*2 $n channel :count"


def last_seq(srv, sid):
    return max(e["seq"] for e in events(srv, sid))


def test_a_stream_on_b_wakes_at_once_for_a_turn_on_a(fake_llm, redis_server, tmp_path):
    env = fake_llm.env(AGENTD_REDIS_URL=redis_server.url, AGENTD_EVENTS_POLL=f"{POLL_LONG}s")
    a = replica("replica-a", tmp_path, env)
    b = replica("replica-b", tmp_path, env)
    stream = None
    try:
        sid = chat(a, "hello " + tag())["session_id"]
        stream = Stream(b, sid, last_seq(b, sid))
        wait_for(lambda: subscribed(redis_server, sid), 10 * SLOW, "B subscribes")
        word = "signal-" + tag()
        t0 = time.monotonic()
        chat(a, word, sid)
        # the turn's end reaches B's stream well within the 30 s poll: a signal woke it
        t = wait_for(lambda: stream.seen("turn-completed"), 10 * SLOW, "B's stream sees the turn")
        assert t - t0 < POLL_LONG / 3, t - t0
        assert stream.seen(word)  # its text came with it
        assert metric(a, "agentd_events_signals_total", outcome="published") >= 1
        assert metric(b, "agentd_events_signals_total", outcome="received") >= 1
        # the last stream gone, B leaves the channel
        stream.close()
        wait_for(lambda: not subscribed(redis_server, sid), 10 * SLOW, "B unsubscribes")
        # and joins the next one on the same connection
        sid2 = chat(a, "again " + tag())["session_id"]
        stream = Stream(b, sid2, last_seq(b, sid2))
        wait_for(lambda: subscribed(redis_server, sid2), 10 * SLOW, "B subscribes again")
        t0 = time.monotonic()
        chat(a, "second " + tag(), sid2)
        t = wait_for(lambda: stream.seen("turn-completed"), 10 * SLOW, "the second stream wakes")
        assert t - t0 < POLL_LONG / 3, t - t0
    finally:
        if stream:
            stream.close()
        a.stop()
        b.stop()


def test_with_redis_killed_the_stream_completes_by_the_poll(fake_llm, redis_server, tmp_path):
    env = fake_llm.env(AGENTD_REDIS_URL=redis_server.url, AGENTD_EVENTS_POLL="1s")
    a = replica("replica-a", tmp_path, env)
    b = replica("replica-b", tmp_path, env)
    stream = None
    try:
        sid = chat(a, "hello " + tag())["session_id"]
        stream = Stream(b, sid, last_seq(b, sid))
        wait_for(lambda: subscribed(redis_server, sid), 10 * SLOW, "B subscribes")
        redis_server.kill()
        word = "nosignal-" + tag()
        chat(a, word, sid)  # turns do not need Redis
        wait_for(lambda: stream.seen("turn-completed"), 30 * SLOW, "B's stream sees the turn")
        assert stream.seen(word)
        wait_for(lambda: metric(a, "agentd_events_signals_total", outcome="publish_failed") >= 1,
                 5 * SLOW, "A counts the lost signal")
    finally:
        if stream:
            stream.close()
        a.stop()
        b.stop()


def test_a_killed_replica_s_turn_is_adopted_by_the_other(fake_llm, tmp_path):
    # the lease (turn timeout + grace) is minutes; the heartbeat bound is 2 s
    env = fake_llm.env(AGENTD_INSTANCE_DEAD_AFTER="2s", AGENTD_TURN_TIMEOUT="300s")
    a = replica("replica-a", tmp_path, env)
    b = replica("replica-b", tmp_path, env)
    try:
        sid = chat(a, "hello " + tag())["session_id"]
        assert sorted(h for (h,) in db_query(tmp_path, "SELECT host FROM instances")) == [
            "replica-a", "replica-b"]
        fake_llm.reset()
        fake_llm.faults({"hang": True, "seconds": 60})
        box = {}
        th = threading.Thread(target=lambda: box.update(r=_try_chat(a, "stuck " + tag(), sid)),
                              daemon=True)
        th.start()
        wait_for(lambda: fake_llm.stats()["requests"] >= 1, 10 * SLOW, "A's model call")
        rows = db_query(tmp_path, "SELECT id FROM turns WHERE session_id = ? AND state = 'running'", sid)
        assert rows, "A runs the turn"
        turn_id = rows[0][0]
        a.send_signal(signal.SIGKILL)
        assert a.wait(5) == -signal.SIGKILL
        t0 = time.monotonic()
        fake_llm.reset()

        def terminal():
            return [e for e in events(b, sid) if e["turn_id"] == turn_id
                    and e["type"] in ("turn-completed", "turn-failed")]
        done = wait_for(terminal, 30 * SLOW, "B adopts and finishes A's turn")
        assert time.monotonic() - t0 < 60, "well before the 300 s lease"
        assert [e["type"] for e in done] == ["turn-completed"], done
        assert done[0]["data"]["resumed"] is True
        assert db_query(tmp_path, "SELECT state FROM turns WHERE id = ?", turn_id) == [("completed",)]
        assert metric(b, "agentd_crash_recoveries_total", what="turn_resumed") == 1
        assert b.wait_log(lambda l: "resuming turn " + turn_id in l.get("msg", ""), timeout=1)
        assert metric(b, "agentd_instances_dead") == 1
        time.sleep(1)  # another sweep or beat does not take it again
        assert len(terminal()) == 1
        assert metric(b, "agentd_crash_recoveries_total", what="turn_resumed") == 1
    finally:
        a.kill()
        b.stop()
    # B's clean stop removed its row; A's (dead) row stays for the others
    assert [h for (h,) in db_query(tmp_path, "SELECT host FROM instances")] == ["replica-a"]


def _try_chat(srv, message, sid):
    try:
        return srv.request("POST", "/chat", json={"message": message, "session_id": sid},
                           timeout=30)
    except requests.RequestException as e:
        return e
