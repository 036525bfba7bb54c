"""Signals operators need: every documented metric exists from the start,
the standard process_* metrics, turn outcomes that tell the truth (a
declined payment is not "completed"), per-tool metrics, orders counted once
per order (UCP and agent alike), costs rounded to the micro-dollar in every
JSON that carries one, access lines that name the session, turn and error
code, and the request id handed on to the model provider."""

import json
import re
import sqlite3
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from agentd_harness import REPO, metric_value, parse_metrics
from fake_llm_fixture import module_fake_llm  # noqa: F401 (fixture)
from ucp_client import Client, full_body, unique_profile

PAY = "a2a.ucp.checkout.payment_data"
WHO = {"buyer": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
       "address": {"street_address": "1 Main St", "address_locality": "Springfield",
                   "address_region": "IL", "postal_code": "62701", "address_country": "US",
                   "first_name": "Jane", "last_name": "Doe"}}
# Odd prices, so that a turn's cost is a float sum that does not print
# exactly (USD per million tokens).
PRICES = {"AGENTD_LLM_PRICE_IN": "0.15", "AGENTD_LLM_PRICE_OUT": "0.6"}


def tag():
    return uuid.uuid4().hex[:8]


def pay(token):
    return {PAY: {"handler_id": "mock_payment_handler",
                  "credential": {"type": "token", "token": token}}}


@pytest.fixture(scope="module")
def srv(module_agentd, module_fake_llm):
    return module_agentd(env=module_fake_llm.env(AGENTD_LLM_BREAKER_FAILURES="1000", **PRICES))


@pytest.fixture
def fake(module_fake_llm):
    module_fake_llm.reset()
    return module_fake_llm


def chat(srv, message, session_id=None, headers=None, **extra):
    body = {"message": message}
    if session_id:
        body["session_id"] = session_id
    body.update(extra)
    return srv.request("POST", "/chat", json=body, headers=headers or {}, timeout=15)


def tool(srv, name, args, session_id=None, **extra):
    """One scripted tool call (the fake model calls it, then reports the result)."""
    r = chat(srv, f"[[tool:{name} {json.dumps(args)}]]", session_id, **extra)
    assert r.status_code == 200, r.text
    return r


def samples(srv):
    return parse_metrics(srv.get("/metrics").text)


def value(srv, name, **labels):
    return metric_value(samples(srv), name, **labels) or 0.0


def ready_session(srv, qty=1):
    """A session whose checkout is ready for payment."""
    d = tool(srv, "add_to_checkout", {"product_id": "BISC-001", "quantity": qty}).json()
    sid = d["session_id"]
    tool(srv, "update_customer_details", WHO, sid)
    d = tool(srv, "select_shipping", {"option_id": "std-ship"}, sid).json()
    assert d["checkout"]["status"] == "ready_for_complete", d["checkout"]
    return sid


def turn_end_event(srv, session_id, turn_id):
    events = srv.get(f"/chat/sessions/{session_id}/events").json()["events"]
    ends = [e for e in events if e["turn_id"] == turn_id
            and e["type"] in ("turn-completed", "turn-failed")]
    assert len(ends) == 1, events
    return ends[0]


# ---- every documented series, from the start ----

NOT_METRICS = set()  # names in the docs that are not metrics (none so far)


def documented_metrics():
    """Metric names the docs promise: every `agentd_*` / `process_*` name
    in a code span of README.md and docs/*.md."""
    names = set()
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for span in re.findall(r"`([^`]+)`", Path(path).read_text()):
            names.update(re.findall(r"\b((?:agentd|process)_[a-z0-9_]+)", span))
    # "agentd_llm_*" names a group, not a metric
    return {n for n in names if not n.endswith("_")} - NOT_METRICS


def test_every_documented_metric_has_a_series_on_a_fresh_server(srv):
    """Scraped before any traffic but /readyz: each documented family has at
    least one sample (a labelled counter shows its known label values at
    0), so alerts and dashboards never wait for a first increment."""
    names = documented_metrics()
    # the docs list them: this test is only as good as that list
    assert {"agentd_http_rejected_total", "agentd_crash_recoveries_total", "agentd_turns_total",
            "agentd_tool_calls_total", "agentd_tool_duration_seconds", "agentd_orders_total",
            "agentd_order_value_minor_units_total", "process_cpu_seconds_total",
            "process_open_fds", "process_max_fds"} <= names
    have = {n for n, _, _ in samples(srv)}
    missing = [n for n in sorted(names)
               if n not in have and not ({n + "_bucket", n + "_count"} & have)]
    assert not missing, ("documented but not in /metrics (or not a metric: add it to "
                         f"NOT_METRICS): {missing}")


def test_known_label_values_are_zero_at_start(srv):
    s = samples(srv)
    for reason in ("malformed_request", "request_timeout", "payload_too_large",
                   "headers_too_large", "not_implemented", "too_many_connections"):
        assert metric_value(s, "agentd_http_rejected_total", reason=reason) is not None, reason
    for what in ("turn_resumed", "turn_failed", "completion"):
        assert metric_value(s, "agentd_crash_recoveries_total", what=what) == 0, what
    for outcome in ("completed", "payment_declined", "out_of_stock", "tool_error",
                    "model_unavailable", "turn_timeout"):
        assert metric_value(s, "agentd_turns_total", outcome=outcome) is not None, outcome
    assert metric_value(s, "agentd_tool_calls_total", tool="complete_checkout",
                        outcome="ok") is not None
    assert metric_value(s, "agentd_orders_total", currency="USD") is not None
    assert metric_value(s, "agentd_order_value_minor_units_total", currency="USD") is not None


def proc_limit(pid, name):
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(name):
            soft = line[len(name):].split()[0]
            return None if soft == "unlimited" else int(soft)
    raise AssertionError(f"{name} not in /proc/{pid}/limits")


def test_process_metrics_are_present_and_sane(srv):
    s = samples(srv)
    pid = srv.proc.pid
    fds = metric_value(s, "process_open_fds")
    real = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    # the listeners, the database, the log; and no more than the process holds
    assert 3 < fds <= real + 8, (fds, real)
    limit = proc_limit(pid, "Max open files")
    assert metric_value(s, "process_max_fds") == (limit or 0)
    assert metric_value(s, "process_resident_memory_bytes") > 1 << 20
    assert metric_value(s, "process_virtual_memory_bytes") >= \
        metric_value(s, "process_resident_memory_bytes")
    assert metric_value(s, "process_cpu_seconds_total") >= 0
    start = metric_value(s, "process_start_time_seconds")
    assert time.time() - 3600 < start <= time.time()
    text = srv.get("/metrics").text
    assert "# TYPE process_cpu_seconds_total counter" in text
    assert "# TYPE process_open_fds gauge" in text


# ---- outcomes that tell the truth ----

def test_a_declined_payment_is_not_a_completed_turn(srv, fake):
    sid = ready_session(srv)
    before = {o: value(srv, "agentd_turns_total", outcome=o)
              for o in ("completed", "payment_declined")}
    declined = value(srv, "agentd_tool_calls_total", tool="complete_checkout", outcome="declined")
    orders = value(srv, "agentd_orders_total", currency="USD")
    r = tool(srv, "complete_checkout", {}, sid, data=pay("fail_token"))
    # the answer stays a 200: the model explains the decline to the buyer
    doc = r.json()
    assert doc["outcome"] == "payment_declined", doc
    assert doc["checkout"]["status"] == "ready_for_complete", doc["checkout"]
    assert value(srv, "agentd_turns_total", outcome="payment_declined") == \
        before["payment_declined"] + 1
    assert value(srv, "agentd_turns_total", outcome="completed") == before["completed"]
    assert value(srv, "agentd_tool_calls_total", tool="complete_checkout",
                 outcome="declined") == declined + 1
    assert value(srv, "agentd_orders_total", currency="USD") == orders
    end = turn_end_event(srv, sid, doc["turn_id"])
    assert end["type"] == "turn-completed" and end["data"]["outcome"] == "payment_declined", end

    # paying again with a good token completes the turn and places one order
    value_before = value(srv, "agentd_order_value_minor_units_total", currency="USD")
    doc = tool(srv, "complete_checkout", {}, sid, data=pay("success_token")).json()
    assert doc["outcome"] == "completed", doc
    assert doc["checkout"]["status"] == "completed"
    assert value(srv, "agentd_turns_total", outcome="completed") == before["completed"] + 1
    assert value(srv, "agentd_orders_total", currency="USD") == orders + 1
    total = [t["amount"] for t in doc["checkout"]["totals"] if t["type"] == "total"][0]
    assert value(srv, "agentd_order_value_minor_units_total", currency="USD") == \
        value_before + total
    end = turn_end_event(srv, sid, doc["turn_id"])
    assert end["data"]["outcome"] == "completed", end


def test_a_failure_fixed_later_in_the_turn_history_does_not_stick(srv, fake):
    """The outcome is the last checkout call's: a failed add, then a
    successful one in a later turn, is completed; a search that finds
    nothing is completed too."""
    d = tool(srv, "add_to_checkout", {"product_id": "NO-SUCH-PRODUCT", "quantity": 1}).json()
    assert d["outcome"] == "tool_error", d
    d = tool(srv, "add_to_checkout", {"product_id": "BISC-001", "quantity": 1},
             d["session_id"]).json()
    assert d["outcome"] == "completed", d
    d = tool(srv, "search_shopping_catalog", {"query": "zzzz-nothing-matches"}).json()
    assert d["outcome"] == "completed", d


def test_out_of_stock_at_payment_is_counted(srv, fake):
    sid = ready_session(srv, qty=1)
    # the stock runs out under the checkout (another buyer took it)
    db = srv.data_dir / "agentd.db"
    with sqlite3.connect(db) as c:
        (had,) = c.execute("SELECT quantity FROM stock WHERE product_id = 'BISC-001'").fetchone()
        c.execute("UPDATE stock SET quantity = 0 WHERE product_id = 'BISC-001'")
    try:
        before = value(srv, "agentd_turns_total", outcome="out_of_stock")
        calls = value(srv, "agentd_tool_calls_total", tool="complete_checkout",
                      outcome="out_of_stock")
        d = tool(srv, "complete_checkout", {}, sid, data=pay("success_token")).json()
        assert d["outcome"] == "out_of_stock", d
        assert value(srv, "agentd_turns_total", outcome="out_of_stock") == before + 1
        assert value(srv, "agentd_tool_calls_total", tool="complete_checkout",
                     outcome="out_of_stock") == calls + 1
    finally:
        with sqlite3.connect(db) as c:
            c.execute("UPDATE stock SET quantity = ? WHERE product_id = 'BISC-001'", (had,))


def test_tool_metrics_keep_unknown_names_bounded(srv, fake):
    name = "made_up_tool_" + tag()
    before = value(srv, "agentd_tool_calls_total", tool="unknown", outcome="unknown_tool")
    d = chat(srv, f"[[tool:{name} {{}}]]").json()
    assert d["outcome"] == "completed", d  # not a checkout call
    s = samples(srv)
    assert metric_value(s, "agentd_tool_calls_total", tool="unknown",
                        outcome="unknown_tool") == before + 1
    assert not [x for x in s if x[1].get("tool") == name]
    # every call is timed, by tool
    assert (metric_value(s, "agentd_tool_duration_seconds_count", tool="unknown") or 0) >= 1
    tool(srv, "search_shopping_catalog", {"query": "cookies"})
    s = samples(srv)
    assert metric_value(s, "agentd_tool_calls_total", tool="search_shopping_catalog",
                        outcome="ok") >= 1
    assert metric_value(s, "agentd_tool_duration_seconds_count",
                        tool="search_shopping_catalog") >= 1


def test_invalid_arguments_are_counted_as_such(srv, fake):
    before = value(srv, "agentd_tool_calls_total", tool="add_to_checkout",
                   outcome="invalid_arguments")
    d = tool(srv, "add_to_checkout", {"product_id": "BISC-001"}).json()  # no quantity
    assert d["outcome"] == "tool_error", d
    assert value(srv, "agentd_tool_calls_total", tool="add_to_checkout",
                 outcome="invalid_arguments") == before + 1


# ---- orders: once per order, whoever places it ----

def test_ucp_orders_count_once_even_when_replayed(srv):
    client = Client(srv, profile=unique_profile("sig"))
    orders = value(srv, "agentd_orders_total", currency="USD")
    amount = value(srv, "agentd_order_value_minor_units_total", currency="USD")
    doc = client.ready()
    key = "sig-" + tag()
    r = client.complete(doc["id"], key=key)
    assert r.status_code == 200, r.text
    total = [t["amount"] for t in r.json()["totals"] if t["type"] == "total"][0]
    r2 = client.complete(doc["id"], key=key)  # the same request again: replayed
    assert r2.status_code == 200 and r2.json()["order"]["id"] == r.json()["order"]["id"]
    r3 = client.complete(doc["id"])  # a new request on a completed checkout: no order
    assert r3.status_code >= 400
    assert value(srv, "agentd_orders_total", currency="USD") == orders + 1
    assert value(srv, "agentd_order_value_minor_units_total", currency="USD") == amount + total


def test_agent_orders_count_once_when_the_message_is_retried(srv, fake):
    sid = ready_session(srv)
    orders = value(srv, "agentd_orders_total", currency="USD")
    key = "sig-" + tag()
    h = {"Idempotency-Key": key}
    r1 = tool(srv, "complete_checkout", {}, sid, data=pay("success_token"), headers=h)
    r2 = tool(srv, "complete_checkout", {}, sid, data=pay("success_token"), headers=h)
    assert r1.json()["checkout"]["order"]["id"] == r2.json()["checkout"]["order"]["id"]
    assert value(srv, "agentd_orders_total", currency="USD") == orders + 1


# ---- costs: micro-dollars, everywhere ----

COST = re.compile(rb'"cost_usd":\s*([-0-9.eE+]+)')


def assert_micro(raw, where):
    found = COST.findall(raw)
    assert found, f"no cost_usd in {where}: {raw[:300]!r}"
    for lit in found:
        d = Decimal(lit.decode())
        assert d == d.quantize(Decimal("0.000001")), f"{where}: cost_usd {lit!r}"
        assert len(lit) <= 20, f"{where}: cost_usd {lit!r}"
    return [Decimal(x.decode()) for x in found]


def test_costs_are_rounded_to_the_micro_dollar_in_every_json(srv, fake):
    # several calls with odd prices: float sums that do not print exactly
    r = tool(srv, "search_shopping_catalog", {"query": "cookies " * 7})
    sid = r.json()["session_id"]
    costs = assert_micro(r.content, "/chat")
    assert costs[0] > 0
    r = chat(srv, "a longer message " * 13, sid)
    assert_micro(r.content, "/chat")
    assert_micro(srv.get(f"/chat/sessions/{sid}").content, "GET /chat/sessions/{id}")
    assert_micro(srv.get(f"/chat/sessions/{sid}/events").content, "the events page")
    with srv.session.get(srv.url + f"/chat/sessions/{sid}/events",
                         headers={"Accept": "text/event-stream"}, stream=True, timeout=5) as s:
        raw = b""
        for chunk in s.iter_content(4096):
            raw += chunk
            if raw.count(b"event: turn-completed") >= 2:
                break
    assert_micro(raw, "the events stream")
    # a streamed /chat carries its events the same way
    r = srv.request("POST", "/chat", json={"message": "stream me " * 11, "session_id": sid,
                                           "stream": True}, timeout=15)
    assert r.status_code == 200
    assert_micro(r.content, "a streamed /chat")


# ---- access lines and correlation ----

def test_chat_access_line_names_session_turn_and_outcome(srv, fake):
    rid = "sig-" + tag()
    r = chat(srv, "hello there", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    doc = r.json()
    line = srv.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid)
    assert line, "no access line"
    assert line["route"] == "/chat"
    assert line["session_id"] == doc["session_id"] and line["turn_id"] == doc["turn_id"], line
    assert line["outcome"] == "completed" and "code" not in line, line


def test_chat_error_access_line_has_the_error_code(srv, fake):
    rid = "sig-" + tag()
    r = chat(srv, "hello", session_id="ses_" + tag(), headers={"X-Request-Id": rid})
    assert r.status_code == 404 and r.json()["error"]["code"] == "session_not_found"
    line = srv.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid)
    assert line and line["code"] == "session_not_found", line
    assert line["session_id"].startswith("ses_"), line
    # a bad request on any route names its code too
    rid = "sig-" + tag()
    r = srv.request("POST", "/chat", data="{", headers={"X-Request-Id": rid})
    assert r.status_code == 400
    line = srv.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid)
    assert line and line["code"] == r.json()["error"]["code"] == "invalid_request", line


def test_ucp_error_access_line_has_the_error_code(srv):
    client = Client(srv, profile=unique_profile("sig"))
    rid = "sig-" + tag()
    r = client.complete("chk_" + tag(), headers={"X-Request-Id": rid})
    assert r.status_code == 404, r.text
    code = [m for m in r.json()["messages"] if m["type"] == "error"][0]["code"]
    line = srv.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid)
    assert line and line["code"] == code, line


def test_a_streamed_chat_access_line_names_its_turn(srv, fake):
    rid = "sig-" + tag()
    r = srv.request("POST", "/chat", json={"message": "stream please", "stream": True},
                    headers={"X-Request-Id": rid}, timeout=15)
    assert r.status_code == 200
    m = re.search(rb'"turn_id":"(turn_[0-9a-f]+)"', r.content)
    assert m, r.content[:300]
    line = srv.wait_log(lambda l: l.get("msg") == "request" and l.get("request_id") == rid)
    assert line and line["turn_id"] == m.group(1).decode() and line["outcome"] == "completed", line


def test_the_request_id_reaches_the_model_provider(srv, fake):
    rid = "sig-" + tag()
    r = chat(srv, "who am I", headers={"X-Request-Id": rid})
    assert r.status_code == 200 and r.headers["X-Request-Id"] == rid
    assert fake.stats()["last"]["request_id"] == rid
    # a generated one is sent too, the same as the client got
    r = chat(srv, "and now")
    assert r.status_code == 200
    assert fake.stats()["last"]["request_id"] == r.headers["X-Request-Id"]
    # every step of a turn carries it
    rid = "sig-" + tag()
    fake.reset()
    tool(srv, "search_shopping_catalog", {"query": "cookies"}, headers={"X-Request-Id": rid})
    assert fake.stats()["requests"] == 2 and fake.stats()["last"]["request_id"] == rid


def test_a_provider_error_log_line_carries_the_request_id(srv, fake):
    """The log line of a failed model attempt and the provider's record of
    the request share the id."""
    rid = "sig-" + tag()
    r = chat(srv, "fail once [[fault:500 once]] " + tag(), headers={"X-Request-Id": rid})
    assert r.status_code == 200
    line = srv.wait_log(lambda l: l.get("msg") == "llm attempt failed"
                        and l.get("request_id") == rid)
    assert line, "no llm attempt failed line with the request id"
    assert fake.stats()["last"]["request_id"] == rid
