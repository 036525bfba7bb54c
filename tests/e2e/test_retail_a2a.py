"""UCP over A2A, retail side, through POST /chat: UI actions (the sample
chat client's buttons, sent as /chat's "action") run as one deterministic
tool step without the model — with a real provider (the fake LLM sees no
request) and with the built-in model — and keep the history valid for
later model turns; an action turn cut by a crash resumes without the model;
the sample merchant's
example_payment_provider pays (any token) or declines (fail_token); the
offline model understands the client's action texts and free-text buyer
details."""

import uuid

import requests

from agentd_harness import SLOW, Server
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)
from ucp_client import db_query

PAYMENT_KEY = "a2a.ucp.checkout.payment_data"
RISK_KEY = "a2a.ucp.checkout.risk_signals"


def instrument(token=None):
    """The sample client's instrument (mocks/credentialProviderProxy.ts)."""
    return {"id": "instr_2", "type": "card", "brand": "visa", "last_digits": "8888",
            "expiry_month": 12, "expiry_year": 2026, "handler_id": "example_payment_provider",
            "handler_name": "example.payment.provider",
            "credential": {"type": "token", "token": token or f"mock_token_{uuid.uuid4()}"}}


def chat(srv, message=None, sid=None, action=None, data=None, timeout=15 * SLOW):
    body = {}
    if message is not None:
        body["message"] = message
    if action is not None:
        body["action"] = action
    if sid:
        body["session_id"] = sid
    if data is not None:
        body["data"] = data
    return srv.request("POST", "/chat", json=body, timeout=timeout)


def ok(srv, message=None, sid=None, **kw):
    r = chat(srv, message, sid, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def lines(co):
    return [(li["item"]["id"], li["quantity"]) for li in co["line_items"]]


def checkpoints(srv, turn_id):
    return [k for (k,) in db_query(srv, "SELECT kind FROM checkpoints WHERE turn_id = ? "
                                   "ORDER BY step", turn_id)]


ANN = "my email is ann@example.com, ship to Ann Lee, 5 Oak Ave, Austin, TX 78701, US"


def test_actions_never_call_the_model_and_keep_the_history_valid(agentd, fake_llm):
    srv = agentd(env=fake_llm.env())
    d = ok(srv, action={"action": "add_to_checkout", "product_id": "BISC-001", "quantity": 1})
    sid = d["session_id"]
    assert d["answer"] == "Added 1 \u00d7 Chocolate Chip Cookies to your checkout.", d["answer"]
    assert lines(d["checkout"]) == [("BISC-001", 1)]
    assert checkpoints(srv, d["turn_id"]) == ["user_message", "llm_reply", "tool_result",
                                              "llm_reply"]
    d = ok(srv, sid=sid, action={"action": "start_payment"})
    assert d["answer"] == ("Here is your checkout; provide your email and shipping address to "
                           "continue."), d["answer"]
    handlers = {h["id"]: h for h in d["checkout"]["payment"]["handlers"]}
    assert handlers["example_payment_provider"]["config"] == {"business_id": "1234567890"}
    assert fake_llm.stats()["requests"] == 0
    # a model turn after them: the strict fake refuses a conversation whose
    # tool calls and results do not pair up
    d = ok(srv, '[[tool:update_customer_details {"buyer": {"email": "ann@example.com"}, '
                '"address": {"street_address": "5 Oak Ave", "address_locality": "Austin", '
                '"address_region": "TX", "postal_code": "78701", "address_country": "US"}}]]',
           sid=sid)
    stats = fake_llm.stats()
    assert stats["requests"] >= 1 and not stats.get("rejections"), stats
    assert d["checkout"]["buyer"]["email"] == "ann@example.com"
    fake_llm.reset()
    d = ok(srv, sid=sid, action={"action": "start_payment"})
    if d["checkout"]["status"] == "ready_for_complete":
        assert d["answer"].startswith("Your checkout is ready"), d["answer"]
    d = ok(srv, sid=sid, action={"action": "complete_checkout"},
           data={PAYMENT_KEY: instrument(), RISK_KEY: {"data": "some risk data"}})
    co = d["checkout"]
    assert co["status"] == "completed", d
    assert co["order"]["id"] and co["order"]["permalink_url"]
    assert d["answer"].startswith(f"Your order {co['order']['id']} is placed."), d["answer"]
    assert fake_llm.stats()["requests"] == 0
    # the token never reaches the answer, the checkout or the logs
    assert "mock_token_" not in str(d)


def test_malformed_actions_are_refused(agentd, fake_llm):
    srv = agentd(env=fake_llm.env())
    for action, needle in (
            ({"action": "buy_everything"}, "unknown action"),
            ({"action": "add_to_checkout", "product_id": "BISC-001", "quantity": 0}, "quantity"),
            ({"action": "add_to_checkout", "quantity": 1}, "product_id"),
            ({"product_id": "BISC-001"}, "must name the action"),
            ("start_payment", "must be an object")):
        r = chat(srv, action=action)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_request" and needle in err["message"], err
    assert fake_llm.stats()["requests"] == 0


def test_action_tool_errors_are_the_answer(agentd):
    srv = agentd()  # the built-in model
    d = ok(srv, action={"action": "add_to_checkout", "product_id": "NOPE-404", "quantity": 1})
    assert d["answer"].startswith("Sorry, that didn't work:"), d["answer"]
    d = ok(srv, action={"action": "complete_checkout"}, sid=d["session_id"],
           data={PAYMENT_KEY: instrument()})
    assert d["answer"].startswith("Sorry, that didn't work:"), d["answer"]


def test_the_sample_clients_purchase_with_the_builtin_model(agentd):
    srv = agentd()  # the built-in model: a plain `agentd serve`
    d = ok(srv, "show me cookies")
    sid = d["session_id"]
    assert "BISC-001" in d["answer"], d
    # the client's buttons send their JSON as text; the offline model reads it
    d = ok(srv, '{"action":"add_to_checkout","product_id":"BISC-001","quantity":1}', sid=sid)
    assert lines(d["checkout"]) == [("BISC-001", 1)], d
    d = ok(srv, '{"action":"start_payment"}', sid=sid)
    assert "email" in d["answer"] and "address" in d["answer"], d["answer"]
    d = ok(srv, ANN, sid=sid)
    co = d["checkout"]
    assert co["buyer"]["email"] == "ann@example.com", d
    dest = co["fulfillment"]["methods"][0]["destinations"][0]
    assert (dest["street_address"], dest["address_locality"], dest["address_region"],
            dest["postal_code"], dest["address_country"]) == \
        ("5 Oak Ave", "Austin", "TX", "78701", "US"), dest
    # the client has no shipping picker: the first option is chosen, as the
    # sample merchant does, so the checkout is ready with shipping and tax
    assert co["status"] == "ready_for_complete", co.get("messages")
    group = co["fulfillment"]["methods"][0]["groups"][0]
    cheapest = min(group["options"], key=lambda o: next(
        t["amount"] for t in o["totals"] if t["type"] == "total"))
    assert group["selected_option_id"] == cheapest["id"] == "std-ship", group
    types = {t["type"]: t for t in co["totals"]}
    assert types["fulfillment"]["amount"] > 0 and types["tax"]["amount"] > 0, co["totals"]
    assert all(t.get("display_text") for t in co["totals"]), co["totals"]
    assert all(any(t["type"] == "total" for t in li["totals"]) for li in co["line_items"])
    d = ok(srv, sid=sid, action={"action": "complete_checkout"},
           data={PAYMENT_KEY: instrument(), RISK_KEY: {"data": "x"}})
    assert d["checkout"]["status"] == "completed", d
    assert d["checkout"]["order"]["permalink_url"].startswith("http")
    assert d["checkout"]["order"]["id"] in d["answer"]


def test_example_payment_provider_declines_fail_token(agentd):
    srv = agentd()
    sid = ok(srv, action={"action": "add_to_checkout", "product_id": "BISC-001",
                          "quantity": 2})["session_id"]
    ok(srv, ANN, sid=sid)
    d = ok(srv, sid=sid, action={"action": "complete_checkout"},
           data={PAYMENT_KEY: instrument("fail_token")})
    assert d["checkout"]["status"] != "completed"
    assert "declined" in d["answer"], d["answer"]
    d = ok(srv, sid=sid, action={"action": "complete_checkout"}, data={PAYMENT_KEY: instrument()})
    assert d["checkout"]["status"] == "completed", d


def test_an_action_turn_cut_by_a_crash_resumes_without_the_model(agentd, fake_llm, tmp_path):
    victim = Server(env=fake_llm.env(), workdir=tmp_path / "victim")
    victim.start()
    try:
        sid = ok(victim, action={"action": "add_to_checkout", "product_id": "STRAW-001",
                                 "quantity": 1})["session_id"]
    finally:
        victim.stop()
    victim = Server(env=fake_llm.env(AGENTD_FAILPOINT="after_tool_effect"),
                    workdir=tmp_path / "victim")
    victim.start()
    try:
        try:
            chat(victim, sid=sid, action={"action": "add_to_checkout", "product_id": "BISC-001",
                                          "quantity": 2}, timeout=10 * SLOW)
        except requests.RequestException:
            pass
        assert victim.wait(10 * SLOW) == 86, "the failpoint ends the process"
        rows = db_query(victim, "SELECT id FROM turns WHERE session_id = ? AND state = 'running'",
                        sid)
        assert rows, "the cut turn is left running"
        turn_id = rows[0][0]
    finally:
        victim.kill()
    fake_llm.reset()
    srv = agentd(env=dict(fake_llm.env(), AGENTD_DATA_DIR=victim.data_dir))
    import time
    deadline = time.monotonic() + 10 * SLOW
    done = None
    while not done and time.monotonic() < deadline:
        evs = srv.get(f"/chat/sessions/{sid}/events?after=0").json()["events"]
        done = next((e for e in evs if e["turn_id"] == turn_id and
                     e["type"] in ("turn-completed", "turn-failed")), None)
        time.sleep(0.05)
    assert done and done["type"] == "turn-completed", done
    assert done["data"]["answer"] == "Added 2 \u00d7 Chocolate Chip Cookies to your checkout."
    assert sorted(lines(done["data"]["checkout"])) == [("BISC-001", 2), ("STRAW-001", 1)]
    assert checkpoints(victim, turn_id) == ["user_message", "llm_reply", "tool_result",
                                           "llm_reply"]
    assert fake_llm.stats()["requests"] == 0
