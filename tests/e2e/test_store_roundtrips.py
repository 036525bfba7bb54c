"""Store round trips and commits per turn (issue 14): a direct turn makes two
store jobs (its start and its end), over /chat and over A2A SendMessage, and
commits about once per job, so a change that adds a hop or a commit fails
here rather than only in a benchmark."""

import json
import time
import uuid

from agentd_harness import metric_value, parse_metrics

UCP_EXT = "https://ucp.dev/specification/reference?v=2026-01-11"
TURNS = 5


def counters(srv):
    s = parse_metrics(srv.get("/metrics").text)
    return (metric_value(s, "agentd_turn_store_jobs_total") or 0,
            metric_value(s, "agentd_store_commits_total") or 0)


def chat_turn(srv):
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["answer"]


def a2a_turn(srv):
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send",
            "params": {"message": {"kind": "message", "role": "user",
                                   "messageId": str(uuid.uuid4()),
                                   "parts": [{"kind": "text", "text": "hello"}]}}}
    r = srv.request("POST", "/", data=json.dumps(body), timeout=10,
                    headers={"Content-Type": "application/json", "X-A2A-Extensions": UCP_EXT})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["kind"] == "task", r.text


def check(srv, run):
    run(srv)  # warm: the first turn may meet start-up work
    jobs0, commits0 = counters(srv)
    t0 = time.monotonic()
    for _ in range(TURNS):
        run(srv)
    # the server's own timers commit meanwhile too: the outbox poll (every
    # 0.5 s), the instance heartbeat (2 s), the purge
    background = 2 * (time.monotonic() - t0) + 2
    jobs1, commits1 = counters(srv)
    assert jobs1 - jobs0 == 2 * TURNS, (jobs0, jobs1)
    # two commits a turn, far below the five a turn once made
    assert 0 < commits1 - commits0 <= 2 * TURNS + background, (commits0, commits1)


def test_direct_chat_turn_makes_two_store_jobs_and_two_commits(server):
    check(server, chat_turn)


def test_a2a_send_message_makes_two_store_jobs_and_two_commits(server):
    check(server, a2a_turn)
