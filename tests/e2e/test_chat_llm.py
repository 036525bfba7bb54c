"""POST /chat against a real (OpenAI-compatible) provider: the fake model
server (tests/fake_llm/fake_llm.py) configured through the fixed-contract
variables AGENTD_LLM_URL / _MODEL / _API_KEY and a fallback chain
AGENTD_LLM_PROVIDERS=primary,backup. Plain replies, tool calls (real,
unknown, invalid), faults (429 + Retry-After, malformed, no choices, reset,
500s into the backup, every provider down, a hang past the turn deadline),
a runaway tool loop against AGENTD_MAX_STEPS, SIGKILL mid-turn and SIGTERM
with a turn in flight. The API key never reaches the log.

Faults are directives in the user's message ([[fault:... once]] applies to
the first request that carries that exact text), so each test uses its own
text; see docs/llm.md."""

import signal
import threading
import time
import uuid

import pytest
import requests

from agentd_harness import SLOW, Server, assert_error_response, metric_value, parse_metrics
from fake_llm_fixture import API_KEY, fake_llm, module_fake_llm  # noqa: F401 (fixtures)
from ucp_client import check_checkout, db_query

TURN_TIMEOUT_S = 2.0
MAX_STEPS = 3


def tag():
    return uuid.uuid4().hex[:8]


def post_chat(srv, message, session_id=None, headers=None, timeout=15, **extra):
    body = {"message": message}
    if session_id:
        body["session_id"] = session_id
    body.update(extra)
    return srv.request("POST", "/chat", json=body, headers=headers or {}, timeout=timeout)


def answer(srv, message, session_id=None):
    r = post_chat(srv, message, session_id)
    assert r.status_code == 200, f"{message!r}: {r.status_code} {r.text}"
    doc = r.json()
    assert {"answer", "session_id", "checkout", "turn_id", "usage", "outcome"} == set(doc), doc
    return doc


def llm_metric(srv, outcome, provider="default", model="fake"):
    samples = parse_metrics(srv.get("/metrics").text)
    return metric_value(samples, "agentd_llm_requests_total", provider=provider, model=model,
                        outcome=outcome) or 0.0


def turns_metric(srv, outcome):
    samples = parse_metrics(srv.get("/metrics").text)
    return metric_value(samples, "agentd_turns_total", outcome=outcome) or 0.0


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


class Background:
    """A /chat request on a thread; .result is the Response or the exception."""

    def __init__(self, srv, message, session_id=None, headers=None, timeout=15):
        self.result = None
        self.t = threading.Thread(target=self._run, daemon=True,
                                  args=(srv, message, session_id, headers, timeout))
        self.t.start()

    def _run(self, *args):
        try:
            self.result = post_chat(*args)
        except requests.RequestException as e:
            self.result = e

    def join(self, timeout):
        self.t.join(timeout)
        assert not self.t.is_alive(), "the request did not end in time"
        return self.result


@pytest.fixture(scope="module")
def llm_server(module_agentd, module_fake_llm):
    """One provider (AGENTD_LLM_URL ...), a 2 s turn deadline, 3 steps, debug
    logs (so the key check sees everything), a breaker that never opens."""
    return module_agentd(env=module_fake_llm.env(
        AGENTD_TURN_TIMEOUT=f"{int(TURN_TIMEOUT_S * 1000)}ms", AGENTD_MAX_STEPS=str(MAX_STEPS),
        AGENTD_LLM_BREAKER_FAILURES="1000", AGENTD_LOG_LEVEL="debug"))


@pytest.fixture
def fake(module_fake_llm):
    module_fake_llm.reset()
    return module_fake_llm


# ---- replies and tools ----

def test_plain_reply(llm_server, fake):
    t = tag()
    d = answer(llm_server, f"hello model {t}")
    assert d["answer"] == f"echo: hello model {t}"
    assert d["checkout"] is None
    st = fake.stats()
    assert st["requests"] == 1
    last = st["last"]
    assert last["path"] == "/v1/chat/completions"
    assert last["model"] == "fake"
    assert last["authorization"] == f"Bearer {API_KEY}"
    assert last["has_tools"], "the retail tools are offered to the model"
    # the next message in the session goes out with the history
    d2 = answer(llm_server, f"second {t}", d["session_id"])
    assert d2["answer"] == f"echo: second {t}" and d2["session_id"] == d["session_id"]


def test_tool_call_runs_and_the_next_step_answers(llm_server, fake):
    d = answer(llm_server, '[[tool:search_shopping_catalog {"query": "cookies"}]]')
    assert d["answer"].startswith("Tool said: "), d["answer"]
    assert '"BISC-001"' in d["answer"] and '"products"' in d["answer"], d["answer"]
    assert d["checkout"] is None
    assert fake.stats()["requests"] == 2

    d = answer(llm_server, '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 2}]]')
    co = check_checkout(d["checkout"])
    assert [(li["item"]["id"], li["quantity"]) for li in co["line_items"]] == [("BISC-001", 2)]
    # a tool error (not a failed turn) goes back to the model
    d = answer(llm_server, '[[tool:get_product {"product_id": "NOPE-404"}]]')
    assert '"not_found"' in d["answer"], d["answer"]


def test_unknown_tool_gets_an_error_result(llm_server, fake):
    d = answer(llm_server, f"{tag()} [[fault:unknown_tool once]]")
    assert '"unknown_tool"' in d["answer"] and "no_such_tool" in d["answer"], d["answer"]
    assert fake.stats()["requests"] == 2


@pytest.mark.parametrize("args,why", [
    ("{not json}", "not valid JSON"),
    ('{"product_id": 5}', "must be of type string"),
    ('{}', "is required"),
], ids=["not-json", "wrong-type", "missing"])
def test_invalid_tool_arguments_get_an_error_result(llm_server, fake, args, why):
    d = answer(llm_server, f"[[tool:get_product {args}]]")
    assert '"invalid_arguments"' in d["answer"] and why in d["answer"], d["answer"]
    assert fake.stats()["requests"] == 2


def test_out_of_range_arguments_change_nothing(llm_server, fake):
    d = answer(llm_server, '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 0}]]')
    assert '"invalid_arguments"' in d["answer"] and "out of range" in d["answer"], d["answer"]
    assert d["checkout"] is None, "no checkout was created"


def test_runaway_tool_loop_stops_at_the_step_budget(llm_server, fake):
    before = turns_metric(llm_server, "step_budget_exhausted")
    r = post_chat(llm_server, f"{tag()} [[fault:unknown_tool]]")  # calls a tool every step
    err = assert_error_response(r, 422, "step_budget_exhausted")
    assert "AGENTD_MAX_STEPS" in err["message"] and str(MAX_STEPS) in err["message"], err
    assert err.get("session_id", "").startswith("ses_"), err
    assert fake.stats()["requests"] == MAX_STEPS
    assert turns_metric(llm_server, "step_budget_exhausted") == before + 1
    # the session is still usable
    d = answer(llm_server, f"calm now {tag()}", err["session_id"])
    assert d["answer"].startswith("echo: calm now")


# ---- faults the client retries ----

def test_429_with_retry_after_is_retried(llm_server, fake):
    retries = llm_metric(llm_server, "retry")
    t0 = time.monotonic()
    d = answer(llm_server, f"busy {tag()} [[fault:429 retry_after=1 once]]")
    elapsed = time.monotonic() - t0
    assert d["answer"].startswith("echo: busy"), d["answer"]
    assert elapsed >= 0.9, f"Retry-After: 1 was not honoured ({elapsed:.2f}s)"
    assert fake.stats()["requests"] == 2
    assert llm_metric(llm_server, "retry") == retries + 1


@pytest.mark.parametrize("fault", ["malformed", "no_choices", "reset", "502"])
def test_broken_replies_are_retried(llm_server, fake, fault):
    retries = llm_metric(llm_server, "retry")
    d = answer(llm_server, f"{fault} {tag()} [[fault:{fault} once]]")
    assert d["answer"].startswith(f"echo: {fault}"), d["answer"]
    assert fake.stats()["requests"] == 2
    if fault == "reset":
        # a reset on a reused keep-alive connection is resent by libcurl
        # itself before agentd sees a failure: no retry counted then
        assert llm_metric(llm_server, "retry") in (retries, retries + 1)
    else:
        assert llm_metric(llm_server, "retry") == retries + 1


def test_persistently_malformed_replies_end_in_503(llm_server, fake):
    r = post_chat(llm_server, f"{tag()} [[fault:malformed]]")
    err = assert_error_response(r, 503, "model_unavailable")
    assert "malformed" in err["message"] or "no LLM provider" in err["message"], err
    assert fake.stats()["requests"] == 3, "the first attempt and AGENTD_LLM_MAX_RETRIES=2"
    assert r.headers.get("Retry-After"), r.headers


def test_a_refused_request_is_not_retried(llm_server, fake):
    r = post_chat(llm_server, f"{tag()} [[fault:400]]")
    err = assert_error_response(r, 502, "model_refused")
    assert "400" in err["message"], err
    assert fake.stats()["requests"] == 1


def test_a_hung_model_ends_the_turn_at_its_deadline(llm_server, fake):
    timeouts = llm_metric(llm_server, "timeout")
    t0 = time.monotonic()
    r = post_chat(llm_server, f"{tag()} [[fault:hang seconds=30]]", timeout=10 * SLOW)
    elapsed = time.monotonic() - t0
    err = assert_error_response(r, 504, "turn_timeout")
    assert TURN_TIMEOUT_S * 0.9 <= elapsed <= TURN_TIMEOUT_S * 1.1 + 0.2 * (SLOW - 1), \
        f"504 after {elapsed:.2f}s, want {TURN_TIMEOUT_S}s +- 10%"
    assert err.get("session_id"), err
    assert llm_metric(llm_server, "timeout") == timeouts + 1
    # nothing is stuck: the next turn answers at once
    assert answer(llm_server, f"after {tag()}")["answer"].startswith("echo: after")


# ---- Idempotency-Key while the turn runs, and a client that leaves ----

def test_same_key_while_the_turn_runs_is_409_then_replays(llm_server, fake):
    key = "llm-" + uuid.uuid4().hex
    msg = f"slow {tag()} [[fault:latency ms=1000]]"
    before = turns_metric(llm_server, "completed")
    first = Background(llm_server, msg, headers={"Idempotency-Key": key})
    wait_for(lambda: fake.stats()["requests"] >= 1, 5 * SLOW, "the model got the request")
    r = post_chat(llm_server, msg, headers={"Idempotency-Key": key})
    assert_error_response(r, 409, "idempotency_in_progress")
    r1 = first.join(10 * SLOW)
    assert isinstance(r1, requests.Response) and r1.status_code == 200, r1
    r2 = post_chat(llm_server, msg, headers={"Idempotency-Key": key})
    assert r2.status_code == 200 and r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.content == r1.content
    assert fake.stats()["requests"] == 1, "one model call for three requests"
    assert turns_metric(llm_server, "completed") == before + 1


def test_the_turn_finishes_when_the_client_leaves(llm_server, fake):
    sid = answer(llm_server, f"start {tag()}")["session_id"]
    t = tag()
    with pytest.raises(requests.Timeout):
        post_chat(llm_server, f"left {t} [[fault:latency ms=600]]", sid, timeout=0.2)

    def answered():
        rows = db_query(llm_server, "SELECT parts FROM messages WHERE session_id = ? "
                        "AND role = 'assistant'", sid)
        return any(f"echo: left {t}" in p for (p,) in rows)
    wait_for(answered, 5 * SLOW, "the answer was stored after the client left")
    assert answer(llm_server, f"back {t}", sid)["answer"] == f"echo: back {t}"


def test_the_api_key_never_reaches_the_log(llm_server, fake):
    answer(llm_server, f"one more {tag()}")
    post_chat(llm_server, f"{tag()} [[fault:401]]")  # a rejected key is logged as a failure
    assert fake.stats()["last"]["authorization"] == f"Bearer {API_KEY}"
    text = llm_server.log_text()
    assert "llm attempt failed" in text, "the failures above were logged"
    assert API_KEY not in text


def test_payment_credentials_never_reach_the_model_or_the_log(llm_server, fake):
    customer = ('{"buyer": {"full_name": "Jane Doe", "email": "jane@example.com"}, '
                '"address": {"street_address": "1 Main St", "address_locality": "Springfield", '
                '"address_region": "IL", "postal_code": "62701", "address_country": "US"}}')
    sid = None
    for step in ('[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 1}]]',
                 f"[[tool:update_customer_details {customer}]]",
                 '[[tool:select_shipping {"option_id": "std-ship"}]]'):
        d = answer(llm_server, step, sid)
        sid = d["session_id"]
    assert d["checkout"]["status"] == "ready_for_complete", d["checkout"].get("messages")
    secret = "success_token"
    r = llm_server.request("POST", "/chat", timeout=15, json={
        "message": "[[tool:complete_checkout {}]]", "session_id": sid,
        "data": {"a2a.ucp.checkout.payment_data": {
            "handler_id": "mock_payment_handler",
            "credential": {"type": "token", "token": secret}}}})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["checkout"]["status"] == "completed" and d["checkout"]["order"]["id"]
    # the tool result the model saw is quoted back by the fake ("Tool said: ...")
    assert d["answer"].startswith("Tool said: ") and d["checkout"]["order"]["id"] in d["answer"]
    assert secret not in r.text
    rows = db_query(llm_server, "SELECT parts FROM messages WHERE session_id = ?", sid)
    assert not any(secret in p for (p,) in rows), "the credential was stored in the history"
    assert secret not in llm_server.log_text()


def test_a_retry_after_a_failed_turn_never_repeats_its_tools(llm_server, fake):
    sid = answer(llm_server, f"start {tag()}")["session_id"]
    # step 1 (1.2 s) adds to the checkout; step 2 (1.2 s more) passes the 2 s deadline
    body = {"message": '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 2}]] '
                       f"[[fault:latency ms=1200]] {tag()}", "session_id": sid}
    key = "llm-" + uuid.uuid4().hex
    r1 = llm_server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key},
                            timeout=10 * SLOW)
    assert_error_response(r1, 504, "turn_timeout")
    r2 = llm_server.request("POST", "/chat", json=body, headers={"Idempotency-Key": key},
                            timeout=10 * SLOW)
    co = answer(llm_server, "[[tool:get_checkout {}]]", sid)["checkout"]
    assert [(li["item"]["id"], li["quantity"]) for li in co["line_items"]] == [("BISC-001", 2)], \
        f"the retry ({r2.status_code}) added the items again"


# ---- one turn per session at a time (design §7.2) ----

def new_session(srv, policy=None):
    """A session whose first turn has ended; policy: its busy_policy."""
    extra = {"busy_policy": policy} if policy else {}
    r = post_chat(srv, f"start {tag()}", **extra)
    assert r.status_code == 200, r.text
    return r.json()["session_id"]


def wait_model_busy(fake, before):
    wait_for(lambda: fake.stats()["requests"] > before, 5 * SLOW, "the first turn reached the model")


def turn_states(srv, sid):
    return [s for (s,) in db_query(srv, "SELECT state FROM turns WHERE session_id = ? "
                                   "ORDER BY created_at, rowid", sid)]


def test_two_messages_to_one_session_do_not_interleave(llm_server, fake):
    """enqueue (the default): the second waits for the first, then runs."""
    sid = answer(llm_server, f"start {tag()}")["session_id"]
    t = tag()
    a = Background(llm_server, f"first {t} [[fault:latency ms=700]]", sid)
    time.sleep(0.1)
    b = Background(llm_server, f"second {t} [[fault:latency ms=700]]", sid)
    ra, rb = a.join(10 * SLOW), b.join(10 * SLOW)
    assert ra.status_code == 200, ra.text
    assert rb.status_code == 200, rb.text
    assert ra.json()["answer"] == f"echo: first {t}"
    assert rb.json()["answer"] == f"echo: second {t}"
    rows = db_query(llm_server, "SELECT role, parts FROM messages WHERE session_id = ? "
                    "ORDER BY seq", sid)
    roles = [r for (r, _) in rows]
    assert roles == ["user", "assistant"] * 3, roles
    assert f"first {t}" in rows[2][1] and f"second {t}" in rows[4][1], rows
    assert turn_states(llm_server, sid) == ["completed"] * 3


def test_enqueued_turn_that_never_gets_the_session_is_504(llm_server, fake):
    sid = new_session(llm_server)
    before = fake.stats()["requests"]
    a = Background(llm_server, f"hung {tag()} [[fault:hang seconds=30]]", sid)
    wait_model_busy(fake, before)
    # hangs too if it does get the session at the last moment: 504 either way
    rb = post_chat(llm_server, f"waiting {tag()} [[fault:hang seconds=30]]", sid,
                   timeout=10 * SLOW)
    assert_error_response(rb, 504, "turn_timeout")
    assert_error_response(a.join(10 * SLOW), 504, "turn_timeout")
    assert "running" not in turn_states(llm_server, sid)


def test_reject_policy_answers_409_while_a_turn_runs(llm_server, fake):
    sid = new_session(llm_server, "reject")
    before = fake.stats()["requests"]
    t = tag()
    a = Background(llm_server, f"slow {t} [[fault:latency ms=800]]", sid)
    wait_model_busy(fake, before)
    t0 = time.monotonic()
    rb = post_chat(llm_server, f"impatient {t}", sid)
    assert time.monotonic() - t0 < 0.5 * SLOW, "reject answers at once"
    err = assert_error_response(rb, 409, "turn_in_progress")
    assert err["session_id"] == sid
    ra = a.join(10 * SLOW)
    assert ra.status_code == 200 and ra.json()["answer"] == f"echo: slow {t}", ra.text
    roles = [r for (r,) in db_query(llm_server, "SELECT role FROM messages WHERE "
                                    "session_id = ? ORDER BY seq", sid)]
    assert roles == ["user", "assistant"] * 2, roles
    # free again once the turn answered
    assert answer(llm_server, f"later {t}", sid)["answer"] == f"echo: later {t}"


def test_interrupt_policy_stops_the_running_turn(llm_server, fake):
    sid = new_session(llm_server, "interrupt")
    before = fake.stats()["requests"]
    t = tag()
    a = Background(llm_server, f"old {t} [[fault:latency ms=800]]", sid)
    wait_model_busy(fake, before)
    rb = post_chat(llm_server, f"new {t}", sid, timeout=10 * SLOW)
    assert rb.status_code == 200, rb.text
    assert rb.json()["answer"] == f"echo: new {t}"
    err = assert_error_response(a.join(10 * SLOW), 409, "turn_interrupted")
    assert err["session_id"] == sid
    assert turn_states(llm_server, sid) == ["completed", "interrupted", "completed"]
    rows = db_query(llm_server, "SELECT role, parts FROM messages WHERE session_id = ? "
                    "ORDER BY seq", sid)
    # the interrupted turn's reply was dropped; its user message stays
    assert [r for (r, _) in rows] == ["user", "assistant", "user", "user", "assistant"], rows
    assert f"old {t}" in rows[2][1] and f"new {t}" in rows[3][1]


def test_busy_policy_per_message_and_validation(llm_server, fake):
    r = post_chat(llm_server, "hi", busy_policy="sometimes")
    assert_error_response(r, 400, "invalid_request")
    r = post_chat(llm_server, "hi", busy_policy=3)
    assert_error_response(r, 400, "invalid_request")
    sid = new_session(llm_server)  # enqueue by default ...
    before = fake.stats()["requests"]
    a = Background(llm_server, f"slow {tag()} [[fault:latency ms=600]]", sid)
    wait_model_busy(fake, before)
    # ... but one message may ask for another policy
    assert_error_response(post_chat(llm_server, "now", sid, busy_policy="reject"), 409,
                          "turn_in_progress")
    assert a.join(10 * SLOW).status_code == 200


def test_different_sessions_run_concurrently(llm_server, fake):
    s1, s2 = new_session(llm_server), new_session(llm_server)
    t = tag()
    t0 = time.monotonic()
    a = Background(llm_server, f"one {t} [[fault:latency ms=900]]", s1)
    b = Background(llm_server, f"two {t} [[fault:latency ms=900]]", s2)
    ra, rb = a.join(10 * SLOW), b.join(10 * SLOW)
    elapsed = time.monotonic() - t0
    assert ra.status_code == 200 and rb.status_code == 200, (ra.text, rb.text)
    assert elapsed < 1.7, f"two sessions took {elapsed:.2f}s: serialized?"


# ---- a fallback chain ----

def test_fallback_chain_answers_from_the_backup(agentd, fake):
    srv = agentd(env=fake.chain_env())
    fake.faults({"status": 500, "times": 3, "path": "/primary"})
    d = answer(srv, f"fallback {tag()}")
    assert d["answer"].startswith("echo: fallback")
    st = fake.stats()
    assert st["by_path"] == {"/primary/v1/chat/completions": 3, "/backup/v1/chat/completions": 1}
    assert st["last"]["model"] == "fake-backup"
    assert llm_metric(srv, "retry", "primary", "fake-primary") == 2
    assert llm_metric(srv, "error", "primary", "fake-primary") == 1
    assert llm_metric(srv, "ok", "backup", "fake-backup") == 1

    # a 401 from the primary is its key: no retry there, straight to the backup
    fake.reset()
    fake.faults({"status": 401, "times": 1, "path": "/primary"})
    assert answer(srv, f"key {tag()}", d["session_id"])["answer"].startswith("echo: key")
    assert fake.stats()["by_path"] == {"/primary/v1/chat/completions": 1,
                                       "/backup/v1/chat/completions": 1}
    assert API_KEY not in srv.log_text()


def test_every_provider_down_is_503_with_retry_after(agentd, fake):
    srv = agentd(env=fake.chain_env())
    sid = answer(srv, f"before {tag()}")["session_id"]
    fake.reset()
    t0 = time.monotonic()
    r = post_chat(srv, f"{tag()} [[fault:503]]", sid)
    elapsed = time.monotonic() - t0
    err = assert_error_response(r, 503, "model_unavailable")
    assert "no LLM provider could answer" in err["message"], err
    assert int(r.headers.get("Retry-After", "0")) >= 1, r.headers
    assert elapsed < 5 * SLOW, f"503 after {elapsed:.2f}s"
    assert fake.requests_to("/primary") == 3 and fake.requests_to("/backup") == 3
    assert err.get("session_id") == sid
    # the outage over, the same session answers again
    assert answer(srv, f"after {tag()}", sid)["answer"].startswith("echo: after")


# ---- a crash, and a shutdown, with a turn in flight ----

def test_sigkill_mid_turn_with_recovery_fail_marks_the_turn_failed(agentd, fake, tmp_path):
    """AGENTD_TURN_RECOVERY=fail: an interrupted turn is failed with a reason
    at the next start (the default, resume, is in test_turn_resume.py)."""
    victim = Server(env=fake.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        sid = answer(victim, f"hello {tag()}")["session_id"]
        fake.reset()
        t = tag()
        bg = Background(victim, f"doomed {t} [[fault:hang seconds=30]]", sid, timeout=10 * SLOW)
        wait_for(lambda: fake.stats()["requests"] >= 1, 5 * SLOW, "the model got the request")
        running = db_query(victim, "SELECT id FROM turns WHERE session_id = ? AND "
                           "state = 'running'", sid)
        assert len(running) == 1, running
        turn_id = running[0][0]
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(5) == -signal.SIGKILL
        assert isinstance(bg.join(5), requests.RequestException), bg.result
    finally:
        victim.kill()

    srv = agentd(env=dict(fake.env(), AGENTD_DATA_DIR=victim.data_dir,
                          AGENTD_TURN_RECOVERY="fail"))
    line = srv.wait_log(lambda l: turn_id in l.get("msg", ""), timeout=3)
    assert line and "interrupted by a crash" in line["msg"] and "failed" in line["msg"], \
        srv.log_text()[-2000:]
    assert sid in line["msg"]
    wait_for(lambda: db_query(victim, "SELECT state FROM turns WHERE id = ?", turn_id)
             == [("failed",)], 3 * SLOW, "the turn is failed")
    events = srv.get(f"/chat/sessions/{sid}/events").json()["events"]
    assert events[-1]["type"] == "turn-failed" and events[-1]["turn_id"] == turn_id, events
    assert events[-1]["data"]["code"] == "turn_interrupted_by_crash", events[-1]
    samples = parse_metrics(srv.get("/metrics").text)
    assert metric_value(samples, "agentd_crash_recoveries_total", what="turn_failed") == 1
    assert metric_value(samples, "agentd_crash_recoveries_total", what="turn_resumed") == 0
    # the session goes on; the interrupted user message stayed in its history
    d = answer(srv, f"again {t}", sid)
    assert d["answer"] == f"echo: again {t}" and d["session_id"] == sid
    users = [p for (p,) in db_query(victim, "SELECT parts FROM messages WHERE session_id = ? "
                                    "AND role = 'user' ORDER BY seq", sid)]
    assert any(f"doomed {t}" in p for p in users) and f"again {t}" in users[-1], users
    assert API_KEY not in victim.log_text() + srv.log_text()


def test_sigterm_with_a_turn_in_flight_exits_cleanly(agentd, fake):
    srv = agentd(env=fake.env(AGENTD_DRAIN_TIMEOUT="500ms"))
    sid = answer(srv, f"hello {tag()}")["session_id"]
    fake.reset()
    bg = Background(srv, f"slow {tag()} [[fault:latency ms=8000]]", sid, timeout=10 * SLOW)
    wait_for(lambda: fake.stats()["requests"] >= 1, 5 * SLOW, "the model got the request")
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    # The bound is what matters here: far below the model's 8 s. Teardown
    # (the store's last checkpoint fsync) can take seconds on a busy disk.
    bound = min(0.5 + 5 * SLOW, 7.0)
    rc = srv.wait(timeout=bound)
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit {rc} after {elapsed:.2f}s\n{srv.log_text()[-3000:]}"
    assert elapsed < bound, f"exited {elapsed:.2f}s after SIGTERM"
    res = bg.join(5)
    # The client is not answered 200; a reply, if it gets one, says why.
    if isinstance(res, requests.Response):
        assert_error_response(res, 503, "shutting_down")
    # the turn was closed as failed, not left for the next start to find
    assert db_query(srv, "SELECT state FROM turns WHERE session_id = ? ORDER BY created_at",
                    sid) == [("completed",), ("failed",)]


# ---- a whole purchase, driven by the model's tool calls ----

def test_a_full_purchase_by_conversation(llm_server, fake):
    """The model (scripted tool calls) searches, adds, sets buyer and address,
    picks express shipping and pays with the client's payment data: an order
    is placed, in the answer's checkout and readable in the session."""
    d = answer(llm_server, '[[tool:search_shopping_catalog {"query": "cookies"}]]')
    assert '"BISC-001"' in d["answer"]
    sid = d["session_id"]
    d = answer(llm_server, '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 2}]]', sid)
    assert [(li["item"]["id"], li["quantity"]) for li in d["checkout"]["line_items"]] == \
        [("BISC-001", 2)]
    who = {"buyer": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
           "address": {"street_address": "1 Main St", "address_locality": "Springfield",
                       "address_region": "IL", "postal_code": "62701", "address_country": "US",
                       "first_name": "Jane", "last_name": "Doe"}}
    import json as _json
    d = answer(llm_server, f"[[tool:update_customer_details {_json.dumps(who)}]]", sid)
    assert d["checkout"]["buyer"]["email"] == "jane@example.com"
    d = answer(llm_server, '[[tool:select_shipping {"option_id": "exp-ship"}]]', sid)
    grp = d["checkout"]["fulfillment"]["methods"][0]["groups"][0]
    assert grp["selected_option_id"] == "exp-ship"
    assert d["checkout"]["status"] == "ready_for_complete", d["checkout"]["status"]
    # the credential rides in the message's data, never in the model's text
    pay = {"a2a.ucp.checkout.payment_data": {
        "handler_id": "mock_payment_handler",
        "credential": {"type": "token", "token": "success_token"}}}
    r = post_chat(llm_server, "[[tool:complete_checkout {}]]", sid, data=pay)
    assert r.status_code == 200, r.text
    co = r.json()["checkout"]
    assert co["status"] == "completed" and co["order"]["id"], co
    assert "success_token" not in _json.dumps(fake.stats())
    info = llm_server.get(f"/chat/sessions/{sid}").json()
    assert info["checkout_id"] == co["id"] and info["usage"]["model_calls"] == 10


def test_the_breaker_opens_and_recovers(agentd, fake):
    """Two failing turns open the provider's breaker (visible in /metrics and
    /health); a call in the open state fails fast without reaching the model;
    after the cooldown a half-open probe closes it again."""
    srv = agentd(env=fake.env(AGENTD_LLM_BREAKER_FAILURES="2", AGENTD_LLM_BREAKER_COOLDOWN="1s",
                              AGENTD_LLM_MAX_RETRIES="0"))

    def state():
        samples = parse_metrics(srv.get("/metrics").text)
        return metric_value(samples, "agentd_llm_breaker_state", provider="default")

    def health_llm():
        deps = srv.get("/health").json()["dependencies"]
        return next(d for d in deps if d["name"] == "llm")

    assert state() == 0 and health_llm()["detail"] == "default=closed"
    fake.faults({"status": 500, "times": 2})
    for _ in range(2):
        assert_error_response(post_chat(srv, f"fail {tag()}"), 503, "model_unavailable")
    assert state() == 2, "open (0 closed, 1 half-open, 2 open) after 2 consecutive failures"
    h = health_llm()
    assert h["status"] == "failing" and h["detail"] == "default=open", h
    assert srv.get("/health").json()["status"] == "degraded"
    before = fake.stats()["requests"]
    r = post_chat(srv, f"fast fail {tag()}")
    assert_error_response(r, 503, "model_unavailable")
    assert int(r.headers["Retry-After"]) >= 1
    assert fake.stats()["requests"] == before, "an open breaker does not call the model"
    time.sleep(1.2)
    assert answer(srv, f"probe {tag()}")["answer"].startswith("echo: probe")
    assert state() == 0 and health_llm()["detail"] == "default=closed"


def test_the_history_window_is_bounded_by_bytes(agentd, fake_llm):
    """AGENTD_HISTORY_MAX_BYTES: a turn sends the model the newest earlier
    messages that fit (their stored JSON), not the whole session: memory and
    tokens per turn stay bounded however long the session grows."""
    srv = agentd(env=dict(fake_llm.env(), AGENTD_HISTORY_MAX_BYTES="1024"))
    pad = "x" * 150
    sid = None
    for i in range(8):
        sid = answer(srv, f"m{i} {pad}", sid)["session_id"]
    fake_llm.reset()
    answer(srv, "last one", sid)
    sent = fake_llm.stats()["last"]["messages"]
    assert sent[0]["role"] == "system" and sent[-1] == {"role": "user", "content": "last one"}
    earlier = [m["content"] for m in sent[1:-1]]
    # each earlier turn stored ~2 x 200 bytes: only the newest ones fit 1 KiB
    assert earlier and 2 <= len(earlier) <= 6, earlier
    assert earlier[-1] == f"echo: m7 {pad}" and earlier[-2] == f"m7 {pad}", earlier
    assert not any(c.startswith(("m0 ", "echo: m0 ")) for c in earlier), earlier
    rows = db_query(srv, "SELECT parts FROM messages WHERE session_id = ? ORDER BY seq", sid)
    assert len(rows) == 18, "the session keeps every message; only the window is cut"
    window = [p for (p,) in rows[-1 - len(earlier):-1]]
    assert sum(len(p) + 1 for p in window) <= 1024, window


def test_by_default_the_window_holds_the_whole_short_session(agentd, fake_llm):
    srv = agentd(env=fake_llm.env())
    sid = None
    for i in range(5):
        sid = answer(srv, f"n{i}", sid)["session_id"]
    sent = fake_llm.stats()["last"]["messages"]
    assert [m["content"] for m in sent[1:]] == [
        c for i in range(5) for c in (f"n{i}", f"echo: n{i}")][:-1], sent


@pytest.mark.parametrize("stream", [False, True])
def test_a_long_conversation_is_sent_whole_at_every_step(agentd, fake_llm, stream):
    """Past 16 KB the conversation's text is not copied into the request:
    the model client reads it in place while the call runs, and the turn
    appends the next step only once the call is over. Every step of a tool
    turn on a long session gets the whole conversation, streamed or not."""
    srv = agentd(env=fake_llm.env())
    big = "".join(chr(ord("a") + i % 26) for i in range(15000))
    sid = answer(srv, big)["session_id"]
    assert answer(srv, "again " + big, sid)["answer"] == "echo: again " + big
    fake_llm.reset()
    r = post_chat(srv, '[[tool:search_shopping_catalog {"query": "cookies"}]]', sid,
                  stream=stream)
    assert r.status_code == 200, r.text
    if stream:
        assert "turn-completed" in r.text and "Tool said: " in r.text, r.text[-500:]
    else:
        assert r.json()["answer"].startswith("Tool said: "), r.text
    st = fake_llm.stats()
    assert st["requests"] == 2
    sent = st["last"]["messages"]  # the second step: history, the call, its result
    contents = [m["content"] for m in sent]
    assert contents[1:5] == [big, "echo: " + big, "again " + big, "echo: again " + big]
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "tool"], sent[-3:]
