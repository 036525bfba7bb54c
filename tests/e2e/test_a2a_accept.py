"""An A2A SendMessage's accept (messageId claim, new context, task) commits
with its turn's claim and user message, in one store batch: a crash inside
it leaves none of them (the retried message then runs, once), and a new
context, even one the client named, is never read back."""

import uuid

import requests

from agentd_harness import SLOW, Server, metric_value, parse_metrics
from test_a2a import rpc, send, message
from ucp_client import db_query


def store_ops(srv, *ops):
    samples = parse_metrics(srv.get("/metrics").text)
    return [metric_value(samples, "agentd_store_op_duration_seconds_count", op=op) or 0
            for op in ops]


def test_accept_turn_claim_and_user_message_commit_once(agentd):
    srv = agentd()
    ops = ("task_accept", "turn_begin", "batch_commit")
    before = store_ops(srv, *ops)
    t = send(srv, "show me cookies", ver="1.0")
    after = store_ops(srv, *ops)
    assert t["status"]["state"] == "TASK_STATE_INPUT_REQUIRED", t
    # three batch commits: the accept with the claim and the user message,
    # the search step (the model's reply and the tool's result together), then
    # the turn's end with its audit row
    assert [a - b for a, b in zip(after, before)] == [1, 1, 3], (before, after)
    # the user message is in, under the turn the task names
    rows = db_query(srv, "SELECT role FROM messages WHERE session_id = ? ORDER BY seq",
                    t["contextId"])
    assert rows[0] == ("user",), rows


def test_a_context_the_client_names_is_not_read_back(agentd):
    srv = agentd()
    ops = ("session_get", "message_tail")
    before = store_ops(srv, *ops)
    ctx = "ctx-" + uuid.uuid4().hex
    t = send(srv, "show me cookies", context_id=ctx)
    assert t["contextId"] == ctx and t["status"]["state"] == "input-required", t
    # one look (the accept's: is that context someone's?), no read-back
    after = store_ops(srv, *ops)
    assert [a - b for a, b in zip(after, before)] == [1, 0], (before, after)


def test_a_crash_inside_the_accept_keeps_nothing_and_the_retry_runs_once(agentd, tmp_path):
    victim = Server(env={"AGENTD_FAILPOINT": "a2a_accepted"}, workdir=tmp_path / "victim")
    victim.start()
    mid = str(uuid.uuid4())
    ctx = "ctx-" + uuid.uuid4().hex
    try:
        try:
            rpc(victim, "message/send", {"message": message("show me cookies", mid=mid,
                                                            context_id=ctx)})
        except (requests.RequestException, AssertionError):
            pass
        assert victim.wait(10 * SLOW) == 86, "the failpoint ends the process"
        # the accept was not committed without its turn: no claim, no task
        assert db_query(victim, "SELECT count(*) FROM tasks WHERE context_id = ?", ctx) == [(0,)]
        assert db_query(victim, "SELECT count(*) FROM sessions WHERE id = ?", ctx) == [(0,)]
        assert db_query(victim, "SELECT count(*) FROM idempotency WHERE key LIKE ?",
                        "%" + mid) == [(0,)]
    finally:
        victim.kill()
    srv = agentd(env={"AGENTD_DATA_DIR": str(victim.data_dir)})
    t = send(srv, "show me cookies", mid=mid, context_id=ctx)
    assert t["status"]["state"] == "input-required", t
    again = send(srv, "show me cookies", mid=mid, context_id=ctx)
    assert again["id"] == t["id"] and len(again["history"]) == 2
    assert db_query(victim, "SELECT count(*) FROM turns WHERE session_id = ?", ctx) == [(1,)]
