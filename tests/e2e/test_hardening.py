"""Hardening (issue #12 items 7, 8, 11): unknown AGENTD_* variables, production
limits, HTTP framing and Host rules, nosniff, CORS, 415, JSON depth, silent
connections, and the faults an outside probe found."""

import json
import signal
import socket
import time

import pytest

from agentd_harness import (SLOW, Server, assert_error_response, read_response, run_cli,
                            wait_closed)


# ---- configuration hardening ----

def test_check_config_lists_unknown_variable_with_nearest_name():
    r = run_cli(["check-config"], env={"AGENTD_PROT": "9000", "AGENTD_PORT": "9001"})
    assert r.returncode == 2, r.stdout
    assert "problem: AGENTD_PROT: unknown variable (did you mean AGENTD_PORT?)" in r.stdout
    assert "config: INVALID" in r.stdout


def test_check_config_knows_provider_family_and_file_twins(tmp_path):
    secret = tmp_path / "s"
    secret.write_text("sekrit\n")
    r = run_cli(["check-config"], env={
        "AGENTD_LLM_PROVIDERS": "primary", "AGENTD_LLM_PRIMARY_URL": "http://127.0.0.1:1/v1",
        "AGENTD_LLM_PRIMARY_MODEL": "m", "AGENTD_LLM_PRIMARY_API_KEY_FILE": str(secret),
        "AGENTD_SIMULATION_SECRET_FILE": str(secret)})
    assert r.returncode == 0, r.stdout
    # a provider not in the chain is not a known name
    r = run_cli(["check-config"], env={
        "AGENTD_LLM_PROVIDERS": "primary", "AGENTD_LLM_PRIMARY_URL": "http://127.0.0.1:1/v1",
        "AGENTD_LLM_PRIMARY_MODEL": "m", "AGENTD_LLM_BACKUP_URL": "http://127.0.0.1:2/v1"})
    assert r.returncode == 2
    assert "AGENTD_LLM_BACKUP_URL: unknown variable" in r.stdout


def test_serve_refuses_unknown_variable(agentd):
    a = agentd(env={"AGENTD_MAX_BODY_BYTE": "1m"}, wait_ready=False)
    try:
        code = a.wait()
        assert code is not None and code != 0, a.log_text()
        assert "AGENTD_MAX_BODY_BYTE: unknown variable (did you mean AGENTD_MAX_BODY_BYTES?)" \
            in a.log_text()
    finally:
        a.kill()


def test_production_refuses_large_body_and_long_read_timeout():
    r = run_cli(["check-config"], env={"AGENTD_ENV": "production", "AGENTD_LLM": "builtin",
                                       "AGENTD_MAX_BODY_BYTES": "32m",
                                       "AGENTD_READ_TIMEOUT": "2m"})
    assert r.returncode == 2
    assert "production: AGENTD_MAX_BODY_BYTES is over 16 MiB" in r.stdout
    assert "production: AGENTD_READ_TIMEOUT is over 60s" in r.stdout
