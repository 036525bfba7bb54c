"""The command line: version, help, usage errors, check-config, start-up
refusals."""

import re
import socket

from agentd_harness import HOST, free_port, run_cli


def test_version():
    p = run_cli(["version"])
    assert p.returncode == 0
    assert re.match(r"^agentd \d+\.\d+\.\d+ \(\S+\)$", p.stdout.strip()), p.stdout


def test_help():
    p = run_cli(["--help"])
    assert p.returncode == 0
    assert p.stdout.startswith("usage: agentd")
    for cmd in ("serve", "check-config", "version"):
        assert cmd in p.stdout


def test_no_command_is_usage_error():
    p = run_cli([])
    assert p.returncode == 2
    assert "usage: agentd" in p.stderr
    assert p.stdout == ""


def test_unknown_command():
    p = run_cli(["bogus"])
    assert p.returncode == 2
    assert "bogus" in p.stderr and "usage: agentd" in p.stderr
    assert p.stdout == ""


def test_extra_argument():
    p = run_cli(["serve", "extra"], env={"AGENTD_PORT": "1"})
    assert p.returncode == 2
    assert "usage: agentd" in p.stderr


def test_check_config_ok():
    p = run_cli(["check-config"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "config: ok" in p.stdout
    assert "AGENTD_PORT=8080" in p.stdout
    assert "AGENTD_SIMULATION_SECRET=(unset)" in p.stdout


def test_check_config_lists_every_problem():
    p = run_cli(["check-config"], env={"AGENTD_PORT": "abc", "AGENTD_ENV": "staging",
                                       "AGENTD_MAX_BODY_BYTES": "-5"})
    assert p.returncode == 2
    problems = [l for l in p.stdout.splitlines() if l.startswith("problem:")]
    assert len(problems) == 3, p.stdout
    text = "\n".join(problems)
    assert "AGENTD_PORT=abc" in text
    assert "AGENTD_ENV=staging" in text
    assert "AGENTD_MAX_BODY_BYTES=-5" in text
    assert "config: INVALID" in p.stdout


def test_check_config_out_of_range_and_bad_duration():
    p = run_cli(["check-config"], env={"AGENTD_PORT": "70000", "AGENTD_READ_TIMEOUT": "soon",
                                       "AGENTD_ACCESS_LOG": "maybe"})
    assert p.returncode == 2
    assert "AGENTD_PORT=70000" in p.stdout and "range" in p.stdout
    assert "AGENTD_READ_TIMEOUT=soon" in p.stdout
    assert "AGENTD_ACCESS_LOG=maybe" in p.stdout


def test_check_config_secret_file(tmp_path):
    f = tmp_path / "sim"
    f.write_text("s3cr3t\n")
    p = run_cli(["check-config"], env={"AGENTD_SIMULATION_SECRET_FILE": str(f)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "AGENTD_SIMULATION_SECRET=***set***" in p.stdout
    assert "s3cr3t" not in p.stdout + p.stderr


def test_check_config_secret_file_missing(tmp_path):
    missing = tmp_path / "nope"
    p = run_cli(["check-config"], env={"AGENTD_SIMULATION_SECRET_FILE": str(missing)})
    assert p.returncode == 2
    assert "AGENTD_SIMULATION_SECRET_FILE" in p.stdout and str(missing) in p.stdout


def test_check_config_secret_and_file_both_set(tmp_path):
    f = tmp_path / "sim"
    f.write_text("from-file-secret")
    p = run_cli(["check-config"], env={"AGENTD_SIMULATION_SECRET_FILE": str(f),
                                       "AGENTD_SIMULATION_SECRET": "direct-secret"})
    assert p.returncode == 2
    assert "both set" in p.stdout
    out = p.stdout + p.stderr
    assert "from-file-secret" not in out and "direct-secret" not in out


def test_check_config_db_url_password_redacted():
    p = run_cli(["check-config"], env={"AGENTD_DB": "postgres://app:pw-9f8e7d@db.local/agentd"})
    assert "pw-9f8e7d" not in p.stdout + p.stderr
    assert "AGENTD_DB=postgres://app:***@db.local/agentd" in p.stdout


def test_production_refuses_simulation_secret():
    secret = "prod-sim-zz9"
    p = run_cli(["serve"], env={"AGENTD_ENV": "production", "AGENTD_SIMULATION_SECRET": secret,
                                "AGENTD_HOST": HOST, "AGENTD_PORT": str(free_port())})
    assert p.returncode == 2
    assert "production" in p.stderr and "AGENTD_SIMULATION_SECRET" in p.stderr
    assert secret not in p.stdout + p.stderr


def test_serve_invalid_config_lists_every_problem():
    p = run_cli(["serve"], env={"AGENTD_PORT": "abc", "AGENTD_ENV": "staging",
                                "AGENTD_MAX_BODY_BYTES": "-5", "AGENTD_HOST": HOST})
    assert p.returncode == 2
    for var in ("AGENTD_PORT", "AGENTD_ENV", "AGENTD_MAX_BODY_BYTES"):
        assert var in p.stderr, p.stderr
    assert "3 problems" in p.stderr


def test_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupier:
        occupier.bind((HOST, 0))
        occupier.listen(1)
        port = occupier.getsockname()[1]
        p = run_cli(["serve"], env={"AGENTD_HOST": HOST, "AGENTD_PORT": str(port),
                                    "AGENTD_DATA_DIR": str(tmp_path / "data")})
    assert p.returncode != 0
    assert f"{port}" in p.stderr and "in use" in p.stderr, p.stderr


def test_port_in_use_by_another_agentd(agentd):
    # each agentd sets SO_REUSEPORT for its own loop threads; a second process
    # on the same port must still be refused, not silently share the traffic
    first = agentd()
    second = agentd(port=first.port, wait_ready=False)
    rc = second.wait(timeout=3)
    assert rc is not None, "a second agentd is serving the port another agentd serves"
    assert rc != 0
    assert "in use" in second.log_text()
