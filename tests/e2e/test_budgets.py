"""Budgets and usage: a per-turn token budget stops a turn at its next step
boundary (422 token_budget_exhausted); a principal's daily token or cost
budget refuses new turns with 429 daily_budget_exhausted and a Retry-After
up to the next UTC midnight. Usage (tokens, cost) is persisted per turn,
session and principal, and answered with each turn. The fake model reports
usage ~ len(JSON messages) / 4 tokens."""

import uuid

from agentd_harness import assert_error_response
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)
from test_cli import run_cli
from ucp_client import db_query

SEARCH = '[[tool:search_shopping_catalog {"query": "cookies"}]]'


def tag():
    return uuid.uuid4().hex[:8]


def chat(srv, message, sid=None):
    body = {"message": message}
    if sid:
        body["session_id"] = sid
    return srv.request("POST", "/chat", json=body, timeout=15)


def test_usage_is_answered_and_persisted(agentd, fake_llm):
    srv = agentd(env=fake_llm.env(AGENTD_LLM_PRICE_IN="2", AGENTD_LLM_PRICE_OUT="8"))
    r = chat(srv, SEARCH)
    assert r.status_code == 200, r.text
    u1 = r.json()["usage"]
    assert u1["prompt_tokens"] > 0 and u1["completion_tokens"] > 0
    want = (u1["prompt_tokens"] * 2 + u1["completion_tokens"] * 8) / 1e6
    assert abs(u1["cost_usd"] - want) < 1e-9, (u1, want)
    sid = r.json()["session_id"]
    u2 = chat(srv, "thanks " + tag(), sid).json()["usage"]
    info = srv.get(f"/chat/sessions/{sid}").json()["usage"]
    assert info["prompt_tokens"] == u1["prompt_tokens"] + u2["prompt_tokens"]
    assert info["completion_tokens"] == u1["completion_tokens"] + u2["completion_tokens"]
    assert info["model_calls"] == 3  # tool step + answer, then one answer
    assert abs(info["cost_usd"] - (u1["cost_usd"] + u2["cost_usd"])) < 1e-9
    # per principal and model, per UTC day
    rows = db_query(srv, "SELECT principal, model, prompt_tokens, calls FROM usage_daily")
    assert rows == [("anonymous", "fake", info["prompt_tokens"], 3)], rows


def test_the_turn_token_budget_stops_a_tool_loop(agentd, fake_llm):
    srv = agentd(env=fake_llm.env(AGENTD_TURN_TOKEN_BUDGET="50"))
    r = chat(srv, SEARCH)
    err = assert_error_response(r, 422, "token_budget_exhausted")
    assert "AGENTD_TURN_TOKEN_BUDGET" in err["message"]
    assert fake_llm.stats()["requests"] == 1, "stopped before the next model call"
    # the tool the model asked for still ran and its result is in the history
    sid = err["session_id"]
    types = [e["type"] for e in srv.get(f"/chat/sessions/{sid}/events").json()["events"]]
    assert types == ["turn-started", "tool-call", "tool-result", "turn-failed"], types
    # a turn that answers in one step is not cut short
    assert chat(srv, "hi " + tag()).status_code == 200


def test_the_daily_token_budget_refuses_with_429(agentd, fake_llm):
    srv = agentd(env=fake_llm.env(AGENTD_DAILY_TOKEN_BUDGET="100"))
    r = chat(srv, "hello " + tag())
    assert r.status_code == 200, r.text  # under budget when it started
    assert sum(r.json()["usage"][k] for k in ("prompt_tokens", "completion_tokens")) >= 100
    before = fake_llm.stats()["requests"]
    r = chat(srv, "again " + tag(), r.json()["session_id"])
    err = assert_error_response(r, 429, "daily_budget_exhausted")
    assert "AGENTD_DAILY_TOKEN_BUDGET" in err["message"] and "00:00 UTC" in err["message"]
    ra = int(r.headers["Retry-After"])
    assert 0 < ra <= 86400
    assert fake_llm.stats()["requests"] == before, "no model call for a refused turn"


def test_the_daily_cost_budget_refuses_with_429(agentd, fake_llm):
    srv = agentd(env=fake_llm.env(AGENTD_LLM_PRICE_IN="1000", AGENTD_DAILY_COST_BUDGET="0.05"))
    r = chat(srv, "hello " + tag())
    assert r.status_code == 200 and r.json()["usage"]["cost_usd"] >= 0.05, r.text
    err = assert_error_response(chat(srv, "more " + tag()), 429, "daily_budget_exhausted")
    assert "AGENTD_DAILY_COST_BUDGET" in err["message"]


def test_budget_settings_are_validated():
    p = run_cli(["check-config"], env={"AGENTD_DAILY_COST_BUDGET": "lots",
                                       "AGENTD_TURN_TOKEN_BUDGET": "-1",
                                       "AGENTD_TURN_RECOVERY": "maybe"})
    assert p.returncode == 2
    assert "AGENTD_DAILY_COST_BUDGET=lots" in p.stdout
    assert "AGENTD_TURN_TOKEN_BUDGET=-1" in p.stdout
    assert "AGENTD_TURN_RECOVERY=maybe" in p.stdout
    p = run_cli(["check-config"], env={"AGENTD_DAILY_COST_BUDGET": "2.5"})
    assert p.returncode == 0, p.stdout
    assert "AGENTD_DAILY_COST_BUDGET=2.500000" in p.stdout


def test_the_failpoint_is_refused_in_production():
    p = run_cli(["check-config"], env={"AGENTD_ENV": "production", "AGENTD_AUTH": "on",
                                       "AGENTD_FAILPOINT": "after_tool_effect"})
    assert p.returncode == 2
    assert "AGENTD_FAILPOINT" in p.stdout
