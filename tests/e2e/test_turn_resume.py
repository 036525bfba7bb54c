"""A turn survives kill -9: the next start finds it (its process is gone),
adopts it and resumes it from its last checkpoint. Tool calls replayed by
the resumed turn carry their original operation keys, so the checkout holds
each item exactly once — even when the crash fell between a tool's effect
and its checkpoint (AGENTD_FAILPOINT=after_tool_effect puts the crash
exactly there). An Idempotency-Key the crashed request held is answered
with the resumed turn's outcome."""

import json
import signal
import time
import uuid

import requests

from agentd_harness import SLOW, Server, metric_value, parse_metrics, run_cli
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)
from ucp_client import db_query

ADD_BISC = '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 2}]]'
ADD_STRAW = '[[tool:add_to_checkout {"product_id": "STRAW-001", "quantity": 1}]]'


def tag():
    return uuid.uuid4().hex[:8]


def chat(srv, message, sid=None, headers=None, timeout=15):
    body = {"message": message}
    if sid:
        body["session_id"] = sid
    return srv.request("POST", "/chat", json=body, headers=headers or {}, timeout=timeout)


def ok(srv, message, sid=None):
    r = chat(srv, message, sid)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def events(srv, sid, after=0):
    r = srv.get(f"/chat/sessions/{sid}/events?after={after}")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def terminal(srv, sid, turn_id):
    for e in events(srv, sid):
        if e["turn_id"] == turn_id and e["type"] in ("turn-completed", "turn-failed"):
            return e
    return None


def lines(checkout):
    return sorted((li["item"]["id"], li["quantity"]) for li in checkout["line_items"])


def running_turn(srv, sid):
    rows = db_query(srv, "SELECT id FROM turns WHERE session_id = ? AND state = 'running'", sid)
    return rows[0][0] if rows else None


def recoveries(srv, what):
    """agentd_crash_recoveries_total{what} of srv (0 before the first)."""
    v = metric_value(parse_metrics(srv.get("/metrics").text), "agentd_crash_recoveries_total",
                     what=what)
    return v or 0


def post_in_background(srv, message, sid, headers=None):
    """Sends a /chat that the crash will cut; returns the thread's result box."""
    import threading
    box = {}

    def run():
        try:
            box["r"] = chat(srv, message, sid, headers=headers, timeout=30 * SLOW)
        except requests.RequestException as e:
            box["r"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    box["thread"] = t
    return box


def test_kill9_during_a_model_call_resumes_the_turn(agentd, fake_llm, tmp_path):
    victim = Server(env=fake_llm.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        sid = ok(victim, ADD_STRAW)["session_id"]
        fake_llm.reset()
        # step 1 answers with the tool call; step 2 (after the tool) hangs
        fake_llm.faults({"latency_ms": 1}, {"hang": True, "seconds": 60})
        key = "resume-" + tag()
        box = post_in_background(victim, ADD_BISC, sid, headers={"Idempotency-Key": key})
        wait_for(lambda: fake_llm.stats()["requests"] >= 2, 10 * SLOW, "the second model call")
        turn_id = running_turn(victim, sid)
        assert turn_id
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        box["thread"].join(5)
        assert isinstance(box["r"], requests.RequestException), box["r"]
    finally:
        victim.kill()

    fake_llm.reset()
    srv = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=victim.data_dir))
    done = wait_for(lambda: terminal(srv, sid, turn_id), 10 * SLOW, "the resumed turn ends")
    assert done["type"] == "turn-completed", done
    assert done["data"]["resumed"] is True
    assert done["data"]["answer"].startswith("Tool said: "), done
    # the add ran once, before the crash: the resumed turn did not run it again
    assert lines(done["data"]["checkout"]) == [("BISC-001", 2), ("STRAW-001", 1)]
    assert fake_llm.stats()["requests"] == 1, "only the interrupted step is asked again"
    # the resumed step's text says it replaces whatever a crashed stream had sent
    texts = [e for e in events(srv, sid) if e["turn_id"] == turn_id and e["type"] == "text-delta"]
    assert texts and texts[-1]["data"]["reset"] is True, texts
    # (srv runs on victim's data directory)
    assert db_query(victim, "SELECT state FROM turns WHERE id = ?", turn_id) == [("completed",)]
    # the input (client data, the idempotency key) is dropped once the turn ends
    assert db_query(victim, "SELECT input FROM turns WHERE id = ?", turn_id) == [(None,)]
    assert srv.wait_log(lambda l: "resuming turn " + turn_id in l.get("msg", ""), timeout=1)
    # the audit log has the turn's start, its resumption and its end
    p = run_cli(["audit"], env={"AGENTD_DATA_DIR": victim.data_dir})
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert [(x["action"], x["outcome"]) for x in rows if x["target"] == turn_id] == [
        ("turn.start", "ok"), ("turn.start", "resumed"), ("turn.end", "completed")], rows
    # the client's retry with its Idempotency-Key gets the resumed answer
    r = chat(srv, ADD_BISC, sid, headers={"Idempotency-Key": key})
    assert r.status_code == 200, r.text
    assert r.headers.get("Idempotent-Replayed") == "true"
    assert r.json()["answer"] == done["data"]["answer"]
    assert r.json()["turn_id"] == turn_id
    # and the session goes on
    assert ok(srv, "thanks " + tag(), sid)["answer"].startswith("echo: thanks")


def test_a_resumed_turn_keeps_its_own_steps_whatever_the_history_window(agentd, fake_llm,
                                                                         tmp_path):
    """With a small AGENTD_HISTORY_MAX_BYTES the earlier history is cut, but
    a resumed turn always sends its own steps — its user message, the tool
    call, the catalog result (over the window by itself) — to the model."""
    env = dict(fake_llm.env(), AGENTD_HISTORY_MAX_BYTES="1024")
    victim = Server(env=env, workdir=tmp_path / "victim")
    victim.start()
    try:
        sid = None
        for i in range(4):
            sid = ok(victim, f"earlier {i} " + "y" * 300, sid)["session_id"]
        fake_llm.reset()
        fake_llm.faults({"latency_ms": 1}, {"hang": True, "seconds": 60})
        msg = '[[tool:search_shopping_catalog {"query": "cookies"}]] find ' + tag()
        box = post_in_background(victim, msg, sid)
        wait_for(lambda: fake_llm.stats()["requests"] >= 2, 10 * SLOW, "the second model call")
        turn_id = running_turn(victim, sid)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        box["thread"].join(5)
    finally:
        victim.kill()
    fake_llm.reset()
    srv = agentd(env=dict(env, AGENTD_DATA_DIR=victim.data_dir))
    done = wait_for(lambda: terminal(srv, sid, turn_id), 10 * SLOW, "the resumed turn ends")
    assert done["type"] == "turn-completed" and done["data"]["resumed"] is True, done
    sent = fake_llm.stats()["last"]["messages"]
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "tool"], sent
    assert sent[-3]["content"] == msg
    assert len(sent[-1]["content"]) > 1024, sent[-1]  # the result alone is over the window
    assert not any((m["content"] or "").startswith("earlier 0 ") for m in sent), sent


def test_kill9_between_a_tool_effect_and_its_checkpoint_applies_it_once(agentd, fake_llm,
                                                                          tmp_path):
    victim = Server(env=fake_llm.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        sid = ok(victim, ADD_STRAW)["session_id"]
    finally:
        victim.stop()
    # the add is saved, then the process dies before its result is checkpointed
    victim = Server(env=fake_llm.env(AGENTD_FAILPOINT="after_tool_effect"),
                    workdir=tmp_path / "victim")
    victim.start()
    try:
        box = post_in_background(victim, ADD_BISC, sid)
        assert victim.wait(10 * SLOW) == 86, "the failpoint ends the process"
        box["thread"].join(5)
        assert isinstance(box["r"], requests.RequestException), box["r"]
        turn_id = running_turn(victim, sid)
        assert turn_id
        kinds = [k for (k,) in db_query(victim, "SELECT kind FROM checkpoints WHERE turn_id = ? "
                                        "ORDER BY step", turn_id)]
        assert kinds == ["user_message", "llm_reply"], kinds
        # the effect is there already: BISC-001 x2 in the stored checkout
        doc = db_query(victim, "SELECT document FROM checkouts")
        assert any('"BISC-001"' in d for (d,) in doc), doc
    finally:
        victim.kill()

    fake_llm.reset()
    srv = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=victim.data_dir))
    done = wait_for(lambda: terminal(srv, sid, turn_id), 10 * SLOW, "the resumed turn ends")
    assert done["type"] == "turn-completed", done
    # replayed under its operation key: added once, not twice
    assert lines(done["data"]["checkout"]) == [("BISC-001", 2), ("STRAW-001", 1)]
    kinds = [k for (k,) in db_query(victim, "SELECT kind FROM checkpoints WHERE turn_id = ? "
                                    "ORDER BY step", turn_id)]
    assert kinds == ["user_message", "llm_reply", "tool_result", "llm_reply"], kinds
    # the tool result the model saw says the checkout holds 2, as the event does
    ev = [e for e in events(srv, sid) if e["turn_id"] == turn_id]
    res = [e for e in ev if e["type"] == "tool-result"]
    assert len(res) == 1 and res[0]["data"]["name"] == "add_to_checkout", ev
    assert lines(res[0]["data"]["result"]) == [("BISC-001", 2), ("STRAW-001", 1)]
    # one checkout row for this session's shopping
    assert db_query(victim, "SELECT count(*) FROM checkouts") == [(1,)]


def test_a_turn_that_answered_before_the_crash_is_just_closed(agentd, fake_llm, tmp_path):
    """The final answer was checkpointed but the process died before the
    turn was marked finished: the restart closes it without a model call."""
    victim = Server(env=fake_llm.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        d = ok(victim, "hello " + tag())
        sid, turn_id = d["session_id"], d["turn_id"]
    finally:
        victim.stop()
    # make it look unfinished, as a crash right after the answer leaves it
    import sqlite3
    db = sqlite3.connect(str(victim.data_dir / "agentd.db"))
    db.execute("UPDATE turns SET state = 'running', instance = NULL WHERE id = ?", (turn_id,))
    db.execute("DELETE FROM events WHERE turn_id = ? AND type = 'turn-completed'", (turn_id,))
    db.commit()
    db.close()
    fake_llm.reset()
    srv = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=victim.data_dir))
    done = wait_for(lambda: terminal(srv, sid, turn_id), 10 * SLOW, "the turn is closed")
    assert done["type"] == "turn-completed" and done["data"]["answer"] == d["answer"], done
    assert fake_llm.stats()["requests"] == 0


def test_a_ucp_completion_cut_by_a_crash_completes_on_retry(agentd, tmp_path):
    """POST /checkout-sessions/{id}/complete with an Idempotency-Key dies
    between the move to complete_in_progress and the payment
    (AGENTD_FAILPOINT=complete_in_progress). The key's claim names the dead
    process, so the same request takes it over at once and carries the
    completion on: one order, stock taken once, the same authorization."""
    from ucp_client import Client
    victim = Server(env={"AGENTD_FAILPOINT": "complete_in_progress"}, workdir=tmp_path / "v")
    victim.start()
    try:
        c = Client(victim)
        co = c.ready((("STRAW-001", 2),))
        stock0 = db_query(victim, "SELECT quantity FROM stock WHERE product_id = 'STRAW-001'")
        key = "pay-" + tag()
        try:
            c.complete(co["id"], key=key)
            raise AssertionError("the failpoint should have ended the process")
        except requests.RequestException:
            pass
        assert victim.wait(10 * SLOW) == 86
    finally:
        victim.kill()
    assert db_query(victim, "SELECT status FROM checkouts WHERE id = ?", co["id"]) == \
        [("complete_in_progress",)]
    srv = agentd(env={"AGENTD_DATA_DIR": victim.data_dir})
    c = Client(srv)
    # the claim names the dead process (its lock file is free): the same
    # request takes it over at once, no lease to wait out
    (owner,), = db_query(victim, "SELECT owner FROM idempotency WHERE key = ?", key)
    assert owner and "/" in owner, owner
    r = c.complete(co["id"], key=key)
    assert r.status_code == 200, r.text
    assert recoveries(srv, "idempotency_claim") == 1
    # the stored answer is replayed from now on
    r2 = c.complete(co["id"], key=key)
    assert r2.status_code == 200 and r2.headers.get("Idempotent-Replayed") == "true", r2.text
    assert r2.json()["order"]["id"] == r.json()["order"]["id"]
    done = r.json()
    assert done["status"] == "completed" and done["order"]["id"]
    assert db_query(victim, "SELECT count(*) FROM orders WHERE checkout_id = ?", co["id"]) == [(1,)]
    stock1 = db_query(victim, "SELECT quantity FROM stock WHERE product_id = 'STRAW-001'")
    assert stock1[0][0] == stock0[0][0] - 2
    # a retry without the key is not the same call: the checkout is done
    r = c.complete(co["id"])
    assert r.status_code == 409 and "not_modifiable" in r.text, r.text


def test_a_keyless_ucp_completion_cut_by_a_crash_is_carried_on_by_the_next(agentd, tmp_path):
    """Without an Idempotency-Key nothing names the cut request, but the
    checkout's completion claim names its process: once that process is
    known dead (its lock file is free), the next completion carries it on
    under the first attempt's authorization key. One order, stock taken
    once."""
    from ucp_client import Client
    victim = Server(env={"AGENTD_FAILPOINT": "complete_in_progress"}, workdir=tmp_path / "v")
    victim.start()
    try:
        c = Client(victim)
        co = c.ready((("STRAW-001", 1),))
        stock0 = db_query(victim, "SELECT quantity FROM stock WHERE product_id = 'STRAW-001'")
        try:
            c.complete(co["id"])
            raise AssertionError("the failpoint should have ended the process")
        except requests.RequestException:
            pass
        assert victim.wait(10 * SLOW) == 86
    finally:
        victim.kill()
    (doc,), = db_query(victim, "SELECT document FROM checkouts WHERE id = ?", co["id"])
    import json
    claim = json.loads(doc)["_agentd"]["completing"]
    assert claim["key"].startswith(co["id"] + "/v") and "/" in claim["by"], claim
    srv = agentd(env={"AGENTD_DATA_DIR": victim.data_dir})
    c = Client(srv)
    assert c.get(co["id"]).json()["status"] == "complete_in_progress"
    r = c.complete(co["id"])
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed" and done["order"]["id"]
    assert db_query(victim, "SELECT count(*) FROM orders WHERE checkout_id = ?", co["id"]) == [(1,)]
    stock1 = db_query(victim, "SELECT quantity FROM stock WHERE product_id = 'STRAW-001'")
    assert stock1[0][0] == stock0[0][0] - 1
    (doc,), = db_query(victim, "SELECT document FROM checkouts WHERE id = ?", co["id"])
    assert "completing" not in json.loads(doc).get("_agentd", {}), "the claim is gone"
    assert srv.wait_log(lambda l: "carrying on a completion" in l.get("msg", ""), timeout=1)
    assert recoveries(srv, "completion") == 1
    r = c.complete(co["id"])
    assert r.status_code == 409 and "not_modifiable" in r.text, r.text


def test_a_dead_process_of_another_pid_namespace_is_known_by_its_lock_file(agentd, fake_llm,
                                                                             tmp_path):
    """A restarted container has a new pid namespace, so its predecessor's
    pid means nothing to it; the predecessor's lock file in the shared data
    directory, free once it died, says at once that its turns are orphans
    (without it they would wait for the lease: turn timeout + 30 s). Every
    one of them: the file stays until all are adopted, then it is removed."""
    victim = Server(env=fake_llm.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        sids = [ok(victim, "hello " + tag())["session_id"] for _ in range(2)]
        fake_llm.reset()
        fake_llm.faults({"hang": True, "seconds": 60}, {"hang": True, "seconds": 60})
        boxes = [post_in_background(victim, "stuck " + tag(), sid) for sid in sids]
        wait_for(lambda: fake_llm.stats()["requests"] >= 2, 10 * SLOW, "both model calls")
        turn_ids = [running_turn(victim, sid) for sid in sids]
        assert all(turn_ids), turn_ids
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        for box in boxes:
            box["thread"].join(5)
    finally:
        victim.kill()
    # make the dead process look like another pid namespace's (a container)
    import os
    import sqlite3
    db = sqlite3.connect(str(victim.data_dir / "agentd.db"))
    (inst,), = db.execute("SELECT instance FROM turns WHERE id = ?", (turn_ids[0],)).fetchall()
    other = "podhost@pid:[4026599999]/1/" + inst.rsplit("/", 1)[1]
    db.execute("UPDATE turns SET instance = ? WHERE instance = ?", (other, inst))
    db.commit()
    db.close()
    locks = victim.data_dir / "instances"

    def lock_name(i):
        return "".join(c if c.isalnum() or c in "-." else "_" for c in i) + ".lock"
    assert (locks / lock_name(inst)).exists(), list(locks.iterdir())
    os.rename(locks / lock_name(inst), locks / lock_name(other))

    fake_llm.reset()
    srv = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=victim.data_dir))
    for sid, turn_id in zip(sids, turn_ids):
        done = wait_for(lambda: terminal(srv, sid, turn_id), 5 * SLOW, "resumed at once")
        assert done["type"] == "turn-completed" and done["data"]["resumed"] is True, done
    assert not (locks / lock_name(other)).exists(), "the dead one's lock file is removed"
    assert recoveries(srv, "turn_resumed") == 2 and recoveries(srv, "turn_failed") == 0
    assert sorted(p.name for p in locks.iterdir()) == [lock_name(srv_instance(victim, srv))]


def srv_instance(db_srv, srv):
    """srv's instance id, read off the turns it adopted (in db_srv's database)."""
    rows = db_query(db_srv, "SELECT instance FROM turns WHERE instance LIKE ? LIMIT 1",
                    f"%/{srv.proc.pid}/%")
    assert rows, "the live server names itself on the turns it adopted"
    return rows[0][0]


def test_a_live_replica_takes_over_the_turns_of_one_that_died(agentd, fake_llm, tmp_path):
    """Two replicas on one data directory. One dies mid-turn; the other,
    still running, finds the orphan in its periodic sweep (the dead one's
    lock file is free), adopts it and completes it — no restart needed."""
    shared = tmp_path / "shared"
    survivor = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=shared))
    victim = Server(env=dict(fake_llm.env(), AGENTD_DATA_DIR=shared), workdir=tmp_path / "v")
    victim.start()
    try:
        sid = ok(victim, ADD_STRAW)["session_id"]
        fake_llm.reset()
        fake_llm.faults({"latency_ms": 1}, {"hang": True, "seconds": 60})
        box = post_in_background(victim, ADD_BISC, sid)
        wait_for(lambda: fake_llm.stats()["requests"] >= 2, 10 * SLOW, "the second model call")
        import sqlite3
        con = sqlite3.connect(f"file:{shared / 'agentd.db'}?mode=ro", uri=True, timeout=5)
        turn_id = con.execute("SELECT id FROM turns WHERE session_id = ? AND state = 'running'",
                              (sid,)).fetchone()[0]
        con.close()
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        box["thread"].join(5)
    finally:
        victim.kill()
    fake_llm.reset()
    # the sweep runs every 10 s
    done = wait_for(lambda: terminal(survivor, sid, turn_id), 15 * SLOW, "the survivor resumes it")
    assert done["type"] == "turn-completed" and done["data"]["resumed"] is True, done
    assert lines(done["data"]["checkout"]) == [("BISC-001", 2), ("STRAW-001", 1)]
    assert survivor.wait_log(lambda l: "resuming turn " + turn_id in l.get("msg", ""), timeout=1)


def test_an_agent_payment_cut_mid_completion_is_finished_by_the_resumed_turn(agentd, tmp_path):
    """The built-in model's `pay` turn dies inside complete_checkout, after
    the checkout moved to complete_in_progress and before the payment
    (AGENTD_FAILPOINT=complete_in_progress). The next start resumes the
    turn: the tool call is replayed under its operation key, the completion
    carries on under the same authorization key — one order, stock taken
    once — and the turn answers with it. The payment data is sealed in the
    turn's stored input, so every process has the same AGENTD_ENCRYPTION_KEY
    (an ephemeral key would not open it after the restart)."""
    key = {"AGENTD_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
    pay = {"a2a.ucp.checkout.payment_data": {
        "handler_id": "mock_payment_handler", "credential": {"type": "token",
                                                              "token": "success_token"}}}
    setup = Server(env=key, workdir=tmp_path / "v")
    setup.start()
    try:
        sid = ok(setup, "add 2 BISC-001")["session_id"]
        ok(setup, "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com", sid)
        co = ok(setup, "standard shipping", sid)["checkout"]
        assert co["status"] == "ready_for_complete", co.get("messages")
        stock0 = db_query(setup, "SELECT quantity FROM stock WHERE product_id = 'BISC-001'")[0][0]
    finally:
        setup.stop()
    victim = Server(env={"AGENTD_FAILPOINT": "complete_in_progress",
                         "AGENTD_DATA_DIR": setup.data_dir, **key}, workdir=tmp_path / "v2")
    victim.start()
    try:
        r = None
        try:
            r = victim.request("POST", "/chat", json={"message": "pay", "session_id": sid,
                                                      "data": pay}, timeout=10 * SLOW)
        except requests.RequestException:
            pass
        assert r is None, r.text
        assert victim.wait(10 * SLOW) == 86
    finally:
        victim.kill()
    assert db_query(setup, "SELECT status FROM checkouts WHERE id = ?", co["id"]) == \
        [("complete_in_progress",)]
    turn_id = running_turn(setup, sid)
    assert turn_id

    srv = agentd(env={"AGENTD_DATA_DIR": setup.data_dir, **key})
    done = wait_for(lambda: terminal(srv, sid, turn_id), 10 * SLOW, "the resumed turn ends")
    assert done["type"] == "turn-completed" and done["data"]["resumed"] is True, done
    order = done["data"]["checkout"]["order"]["id"]
    assert order in done["data"]["answer"], done["data"]["answer"]
    assert db_query(setup, "SELECT count(*) FROM orders WHERE checkout_id = ?", co["id"]) == [(1,)]
    stock1 = db_query(setup, "SELECT quantity FROM stock WHERE product_id = 'BISC-001'")[0][0]
    assert stock1 == stock0 - 2
    assert recoveries(srv, "turn_resumed") == 1


def test_a_ucp_create_cut_by_a_crash_is_not_made_twice(agentd, tmp_path):
    """POST /checkout-sessions with an Idempotency-Key dies after the
    checkout is stored, before the key's answer is (AGENTD_FAILPOINT=
    checkout_created). The retry takes the dead claim over and runs the create
    again: it answers the checkout the first run made, and the principal
    holds one checkout, not two."""
    from ucp_client import Client, full_body
    victim = Server(env={"AGENTD_FAILPOINT": "checkout_created"}, workdir=tmp_path / "v")
    victim.start()
    body = full_body()
    key = "create-" + tag()
    try:
        try:
            Client(victim).create(body, key=key)
            raise AssertionError("the failpoint should have ended the process")
        except requests.RequestException:
            pass
        assert victim.wait(10 * SLOW) == 86
    finally:
        victim.kill()
    (made,), = db_query(victim, "SELECT id FROM checkouts")
    srv = agentd(env={"AGENTD_DATA_DIR": victim.data_dir})
    r = Client(srv).create(body, key=key)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == made
    assert db_query(victim, "SELECT count(*) FROM checkouts") == [(1,)]
    assert recoveries(srv, "idempotency_claim") == 1
