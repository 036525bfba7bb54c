"""What a first day with a real provider and a production shop needs: a
provider that refuses its key (401/403) or model (404) is a configuration
error -- 502 model_refused naming the provider and the variable to fix, no
Retry-After, /health showing it `unauthorized` -- and a fallback chain skips
it; AGENTD_LLM_STARTUP_CHECK=1 probes each provider at start and keeps
/readyz at 503 on a refused key; the start-up log names each provider, model
and host, never the key. Production refuses test payments unless
AGENTD_ALLOW_TEST_PAYMENTS=1 (which /health flags); legal links come from
AGENTD_PRIVACY_URL / AGENTD_TERMS_URL or are omitted; the built-in model's
"order placed" answer prints no link that cannot be opened."""

import json
import time
import uuid

import pytest

from agentd_harness import assert_error_response, run_cli
from fake_llm_fixture import API_KEY, fake_llm  # noqa: F401 (fixture)
from ucp_client import (MOCK_HANDLER, Client, check_checkout, check_error, full_body,
                        payment_data, unique_profile)

PAYMENT_KEY = "a2a.ucp.checkout.payment_data"


def tag():
    return uuid.uuid4().hex[:8]


def chat(srv, message, session_id=None, data=None, timeout=15):
    body = {"message": message}
    if session_id:
        body["session_id"] = session_id
    if data is not None:
        body["data"] = data
    return srv.request("POST", "/chat", json=body, timeout=timeout, headers=auth(srv))


def auth(srv, principal="buyer", scopes=None):
    """An API key header when the server has AGENTD_AUTH=on (production)."""
    if not srv.auth_on:
        return {}
    if scopes:
        return {"Authorization": f"Bearer {srv.create_key(principal, scopes)}"}
    return {"Authorization": f"Bearer {srv.principal_key(principal)}"}


def require_key(fake, key):
    fake._post("/admin/auth", {"api_key": key})


def health(srv):
    r = srv.get("/health", headers=auth(srv, "operator", "admin"))
    assert r.status_code == 200, r.text
    return r.json()


def providers(doc):
    return {p["name"]: p for p in doc["llm_providers"]}


def log_records(srv, msg):
    out = []
    for line in srv.log_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == msg:
            out.append(rec)
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


# ---- provider misconfiguration ----

def test_startup_log_names_each_provider_never_the_key(agentd, fake_llm):
    key = "sk-do-not-log-" + tag()
    env = fake_llm.chain_env(key=key, AGENTD_LLM_PRIMARY_TIMEOUT="7s")
    srv = agentd(env=env)
    recs = {r["provider"]: r for r in log_records(srv, "llm provider")}
    assert set(recs) == {"primary", "backup"}, srv.log_text()
    host = f"127.0.0.1:{fake_llm.port}"
    assert recs["primary"]["model"] == "fake-primary" and recs["primary"]["host"] == host
    assert recs["primary"]["timeout_ms"] == 7000
    assert recs["backup"]["model"] == "fake-backup" and recs["backup"]["host"] == host
    assert key not in srv.log_text()
    doc = health(srv)
    assert key not in json.dumps(doc)
    assert {p["name"]: (p["model"], p["host"]) for p in doc["llm_providers"]} == \
        {"primary": ("fake-primary", host), "backup": ("fake-backup", host)}


def test_startup_log_says_builtin_model(agentd):
    srv = agentd()
    recs = log_records(srv, "llm provider")
    assert len(recs) == 1 and recs[0]["provider"] == "builtin", srv.log_text()
    doc = health(srv)
    assert [(p["name"], p["state"]) for p in doc["llm_providers"]] == [("builtin", "ok")]


def test_wrong_key_is_model_refused_not_a_retryable_outage(agentd, fake_llm):
    key = "sk-wrong-" + tag()
    srv = agentd(env=fake_llm.env(key=key))
    require_key(fake_llm, "sk-the-right-one")
    before = health(srv)
    assert before["status"] == "ok" and providers(before)["default"]["state"] == "unknown"

    r = chat(srv, "hello " + tag())
    err = assert_error_response(r, 502, "model_refused")
    assert "Retry-After" not in r.headers, "a configuration error is not worth retrying"
    assert "provider 'default' refused the API key (HTTP 401)" in err["message"]
    assert "AGENTD_LLM_API_KEY" in err["message"]
    assert key not in r.text
    assert fake_llm.requests_to("/v1/chat/completions") == 1, "a 401 is never retried"

    doc = health(srv)
    p = providers(doc)["default"]
    assert p["state"] == "unauthorized" and p["http_status"] == 401, doc
    assert p["model"] == "fake" and p["host"] == f"127.0.0.1:{fake_llm.port}"
    assert doc["status"] == "degraded"
    llm_dep = {d["name"]: d for d in doc["dependencies"]}["llm"]
    assert llm_dep["status"] == "failing" and "unauthorized" in llm_dep["detail"]
    assert key not in json.dumps(doc) and key not in srv.log_text()
    assert srv.get("/readyz").status_code == 200, "without the start-up check, still ready"

    # the key is accepted again (rotated at the provider): the next turn clears it
    require_key(fake_llm, key)
    r = chat(srv, "hello again " + tag())
    assert r.status_code == 200, r.text
    doc = health(srv)
    assert providers(doc)["default"]["state"] == "ok" and doc["status"] == "ok", doc


def test_unknown_model_is_model_refused(agentd, fake_llm):
    srv = agentd(env=fake_llm.env(model="gpt-none"))
    r = chat(srv, "hi [[fault:404]] " + tag())
    err = assert_error_response(r, 502, "model_refused")
    assert "model 'gpt-none'" in err["message"] and "AGENTD_LLM_MODEL" in err["message"]
    assert "Retry-After" not in r.headers
    p = providers(health(srv))["default"]
    assert p["state"] == "model_not_found" and p["http_status"] == 404


def test_fallback_skips_an_unauthorized_primary(agentd, fake_llm):
    env = fake_llm.chain_env(AGENTD_LLM_PRIMARY_API_KEY="sk-revoked-" + tag())
    srv = agentd(env=env)
    require_key(fake_llm, API_KEY)
    for i in range(3):
        r = chat(srv, f"hello {i} " + tag())
        assert r.status_code == 200, r.text
        assert r.json()["answer"].startswith("echo:")
    doc = health(srv)
    ps = providers(doc)
    assert ps["primary"]["state"] == "unauthorized" and ps["primary"]["http_status"] == 401
    assert ps["backup"]["state"] == "ok"
    assert doc["status"] == "degraded", "a broken key in the chain is worth an alert"
    assert fake_llm.requests_to("/primary/v1/chat/completions") == 3   # one try each, no retries


def test_startup_check_refuses_readiness_on_a_wrong_key(agentd, fake_llm):
    require_key(fake_llm, "sk-the-right-one")
    key = "sk-wrong-" + tag()
    srv = agentd(env=fake_llm.env(key=key, AGENTD_LLM_STARTUP_CHECK="1"), wait_ready=False)
    wait_for(lambda: log_records(srv, "llm start-up check"), 10, "the start-up check ran")
    for _ in range(3):
        r = srv.get("/readyz")
        assert r.status_code == 503, r.text
        reasons = " ".join(r.json()["reasons"])
        assert "provider 'default' refused the API key (HTTP 401)" in reasons, reasons
        assert "AGENTD_LLM_API_KEY" in reasons
        time.sleep(0.1)
    assert srv.get("/healthz").status_code == 200, "alive, just not ready"
    assert providers(health(srv))["default"]["state"] == "unauthorized"
    rec = log_records(srv, "llm start-up check")[0]
    assert rec["level"] == "error" and rec["provider"] == "default"
    assert key not in srv.log_text()
    assert fake_llm.requests_to("/v1/chat/completions") == 0, "a probe spends no tokens"


def test_startup_check_passes_with_the_right_key(agentd, fake_llm):
    require_key(fake_llm, API_KEY)
    srv = agentd(env=fake_llm.env(AGENTD_LLM_STARTUP_CHECK="1"))   # waits for /readyz 200
    assert fake_llm.stats()["by_path"].get("/v1/models") == 1
    assert providers(health(srv))["default"]["state"] == "ok"


def test_startup_check_network_failure_warns_and_becomes_ready(agentd, fake_llm):
    env = fake_llm.chain_env(names=("primary", "gone"), AGENTD_LLM_STARTUP_CHECK="on")
    env["AGENTD_LLM_GONE_URL"] = "http://127.0.0.1:1/v1"   # nothing listens on port 1
    srv = agentd(env=env)
    warn = [r for r in log_records(srv, "llm start-up check") if r.get("provider") == "gone"]
    assert warn and warn[0]["level"] == "warn", srv.log_text()
    assert providers(health(srv))["gone"]["state"] == "unknown"


def test_startup_check_bad_value_is_a_config_problem():
    p = run_cli(["check-config"], env={"AGENTD_LLM_STARTUP_CHECK": "maybe"})
    assert p.returncode == 2 and "AGENTD_LLM_STARTUP_CHECK=maybe" in p.stdout, p.stdout


# ---- test payments in production ----

def production_env(fake, **extra):
    env = fake.env(AGENTD_ENV="production", AGENTD_AUTH="on",
                   AGENTD_ENCRYPTION_KEY="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
    env.update(extra)
    return env


def test_production_refuses_test_payments(agentd, fake_llm):
    srv = agentd(env=production_env(fake_llm))
    disc = srv.get("/.well-known/ucp").json()
    assert disc["payment"]["handlers"] == []      # neither test handler

    c = Client(srv, unique_profile("prod"))
    r = c.create(full_body())
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    assert doc["payment"]["handlers"] == []
    assert doc["status"] != "ready_for_complete"
    r = c.complete(doc["id"])
    err = check_error(r, 422, "payment_handler_unavailable")
    assert MOCK_HANDLER in err["content"] and "AGENTD_ALLOW_TEST_PAYMENTS" in err["content"]
    assert c.get(doc["id"]).json()["status"] != "completed"
    # the sample merchant's test-mode handler is refused the same way
    r = c.complete(doc["id"], body=payment_data("mock_token_1", handler="example_payment_provider"))
    err = check_error(r, 422, "payment_handler_unavailable")
    assert "example_payment_provider" in err["content"]
    # a test card for the mock handler is refused the same way, its number kept nowhere
    card = {"payment_data": {"id": "i", "handler_id": MOCK_HANDLER, "type": "card", "credential": {
        "type": "card", "card_number_type": "fpan", "number": "4242424242424242", "cvc": "123"}}}
    check_error(c.complete(doc["id"], body=card), 422, "payment_handler_unavailable")
    assert "4242424242424242" not in srv.log_text()

    # the agent's payment tool is refused the same way
    sid = chat(srv, '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 1}]]').json()[
        "session_id"]
    data = {PAYMENT_KEY: {"handler_id": MOCK_HANDLER,
                          "credential": {"type": "token", "token": "success_token"}}}
    r = chat(srv, "[[tool:complete_checkout]]", sid, data=data)
    assert r.status_code == 200, r.text
    assert "payment_handler_unavailable" in r.json()["answer"], r.json()["answer"]
    assert "Total charged" not in r.json()["answer"]
    r = chat(srv, "[[tool:start_payment]]", sid)
    assert MOCK_HANDLER not in r.json()["answer"]

    doc = health(srv)
    assert doc["test_payments"] is False and doc["warnings"] == []


def test_production_with_allow_test_payments_works_and_is_flagged(agentd, fake_llm):
    srv = agentd(env=production_env(fake_llm, AGENTD_ALLOW_TEST_PAYMENTS="1"))
    disc = srv.get("/.well-known/ucp").json()
    assert {MOCK_HANDLER, "example_payment_provider"} <= {
        h["id"] for h in disc["payment"]["handlers"]}
    c = Client(srv, unique_profile("prod-test"))
    doc = check_checkout(c.create(full_body()).json())
    assert doc["status"] == "ready_for_complete", doc.get("messages")
    r = c.complete(doc["id"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    h = health(srv)
    assert h["test_payments"] is True
    assert any("AGENTD_ALLOW_TEST_PAYMENTS" in w for w in h["warnings"]), h
    assert h["status"] == "degraded"
    assert any('"level":"warn"' in line and "AGENTD_ALLOW_TEST_PAYMENTS" in line
               for line in srv.log_text().splitlines()), srv.log_text()


def test_development_takes_test_payments_without_a_flag(agentd):
    srv = agentd()
    h = health(srv)
    assert h["test_payments"] is True and h["warnings"] == [] and h["status"] == "ok"


# ---- links that open ----

def test_legal_links_are_omitted_unless_configured(agentd):
    srv = agentd()
    doc = check_checkout(Client(srv, unique_profile("links")).create(full_body()).json())
    assert doc["links"] == []
    assert srv.get("/legal/privacy").status_code == 404   # never handed out, so never a dead link


def test_legal_links_come_from_the_environment(agentd):
    srv = agentd(env={"AGENTD_PRIVACY_URL": "https://shop.example/privacy",
                      "AGENTD_TERMS_URL": "https://shop.example/terms"})
    doc = check_checkout(Client(srv, unique_profile("links")).create(full_body()).json())
    assert {(l["type"], l["url"]) for l in doc["links"]} == {
        ("privacy_policy", "https://shop.example/privacy"),
        ("terms_of_service", "https://shop.example/terms")}


@pytest.mark.parametrize("env,problem", [
    ({"AGENTD_PRIVACY_URL": "shop.example/privacy"}, "AGENTD_PRIVACY_URL"),
    ({"AGENTD_TERMS_URL": "ftp://shop.example/terms"}, "AGENTD_TERMS_URL"),
    ({"AGENTD_ENV": "production", "AGENTD_LLM": "builtin", "AGENTD_AUTH": "on",
      "AGENTD_TERMS_URL": "http://shop.example/terms"}, "AGENTD_TERMS_URL"),
])
def test_bad_legal_links_are_config_problems(env, problem):
    p = run_cli(["check-config"], env=env)
    assert p.returncode == 2, p.stdout
    assert any(problem in line for line in p.stdout.splitlines() if line.startswith("problem:")), \
        p.stdout
