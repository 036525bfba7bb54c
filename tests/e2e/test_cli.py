"""The command line: version, help, usage errors, check-config, start-up
refusals."""

import re
import resource
import signal
import socket
import threading
import time

import pytest

from agentd_harness import HOST, free_port, http_session, run_cli


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
    p = run_cli(["serve"], env={"AGENTD_ENV": "production", "AGENTD_AUTH": "on",
                                "AGENTD_SIMULATION_SECRET": secret,
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


# ---- missing arguments say what is missing ----

@pytest.mark.parametrize("args,missing,usage", [
    (["backup"], "missing PATH", "agentd backup PATH"),
    (["catalog"], "missing import DIR", "agentd catalog import DIR"),
    (["catalog", "import"], "missing DIR", "agentd catalog import DIR"),
])
def test_missing_argument_names_it(args, missing, usage):
    p = run_cli(args)
    assert p.returncode == 2
    assert missing in p.stderr and usage in p.stderr, p.stderr
    assert "unknown command" not in p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("args", [["backup", "a", "b"], ["migrate", "x"], ["vacuum", "x"],
                                  ["catalog", "import", "a", "b"], ["catalog", "export", "d"]])
def test_extra_or_unknown_arguments_are_usage_errors(args):
    p = run_cli(args)
    assert p.returncode == 2
    assert "usage: agentd" in p.stderr, p.stderr
    assert p.stdout == ""


# ---- the default connection cap fits the open-file limit ----

FD_WARNING = "open-file limit"


def test_default_start_has_no_fd_limit_warning(agentd):
    srv = agentd()
    assert srv.get("/healthz").status_code == 200
    assert FD_WARNING not in srv.log_text(), srv.log_text()
    p = run_cli(["check-config"])
    line = [l for l in p.stdout.splitlines() if l.startswith("AGENTD_MAX_CONNECTIONS=")]
    assert line, p.stdout
    cap = int(line[0].split("=", 1)[1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert 2 * cap + 64 <= hard
    assert 1 <= cap <= 10000


def test_operator_cap_over_the_fd_limit_warns(agentd):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1000000:
        pytest.skip("open-file limit too high to exceed")
    srv = agentd(env={"AGENTD_MAX_CONNECTIONS": "1000000"})
    assert srv.wait_log(lambda l: FD_WARNING in l.get("msg", ""), timeout=3), srv.log_text()


# ---- agentd probe: the container health check ----

def probe_env(srv, **extra):
    env = {"AGENTD_HOST": HOST, "AGENTD_PORT": str(srv.port)}
    env.update(extra)
    return env


def test_probe_ready_server(agentd):
    srv = agentd()
    p = run_cli(["probe"], env=probe_env(srv))
    assert p.returncode == 0, p.stderr
    assert f"http://{HOST}:{srv.port}/readyz: 200" in p.stdout
    assert '"ready"' in p.stdout
    p = run_cli(["probe", "/healthz"], env=probe_env(srv))
    assert p.returncode == 0, p.stderr
    assert "/healthz: 200" in p.stdout and "alive" in p.stdout
    # a wildcard listen address is probed on loopback
    p = run_cli(["probe"], env=probe_env(srv, AGENTD_HOST="0.0.0.0"))
    assert p.returncode == 0, p.stderr
    assert f"http://127.0.0.1:{srv.port}/readyz: 200" in p.stdout
    p = run_cli(["probe", f"http://localhost:{srv.port}/readyz", "--timeout", "1s"])
    assert p.returncode == 0, p.stderr


def test_probe_non_2xx_is_unhealthy(agentd):
    srv = agentd()
    p = run_cli(["probe", "/no-such-route"], env=probe_env(srv))
    assert p.returncode == 1
    assert "/no-such-route: 404" in p.stderr and "not_found" in p.stderr
    assert p.stdout == ""


def test_probe_nothing_listening():
    port = free_port()
    p = run_cli(["probe"], env={"AGENTD_HOST": HOST, "AGENTD_PORT": str(port)})
    assert p.returncode == 1
    assert f"{HOST}:{port}/readyz" in p.stderr and "refused" in p.stderr, p.stderr


def test_probe_times_out_on_a_silent_server():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mute:
        mute.bind((HOST, 0))
        mute.listen(4)                       # accepts in the kernel, never answers
        port = mute.getsockname()[1]
        p = run_cli(["probe", "--timeout", "300ms"],
                    env={"AGENTD_HOST": HOST, "AGENTD_PORT": str(port)})
    assert p.returncode == 1
    assert "timed out" in p.stderr, p.stderr


def test_probe_while_draining_is_unhealthy(agentd):
    secret = "probe-sim-secret"
    srv = agentd(env={"AGENTD_SIMULATION_SECRET": secret, "AGENTD_DRAIN_TIMEOUT": "10s"})
    result = {}

    def slow():
        with http_session() as s:
            result["r"] = s.get(f"{srv.url}/testing/sleep?ms=2000",
                                headers={"Simulation-Secret": secret}, timeout=15)

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while srv.request("GET", "/health").json()["in_flight"] < 1:
        assert time.monotonic() < deadline, "the slow request never started"
        time.sleep(0.02)
    srv.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    while True:
        p = run_cli(["probe", "--timeout", "500ms"], env=probe_env(srv))
        if p.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert p.returncode == 1, p.stdout
    assert srv.running, "exited with a request in flight: the probe did not see a draining server"
    t.join(15)
    assert result["r"].status_code == 200
    assert srv.wait(timeout=5) == 0


@pytest.mark.parametrize("args", [["probe", "readyz"], ["probe", "--timeout"],
                                  ["probe", "--timeout", "forever"],
                                  ["probe", "ftp://example.invalid/readyz"],
                                  ["probe", "/a", "/b"]])
def test_probe_usage_errors(args):
    p = run_cli(args)
    assert p.returncode == 2
    assert "agentd probe:" in p.stderr, p.stderr


# ---- agentd vacuum: expired sessions out, space back ----

def test_vacuum_purges_and_shrinks(agentd, tmp_path):
    data = tmp_path / "vac"
    env = {"AGENTD_DATA_DIR": str(data), "AGENTD_SESSION_TTL": "1s"}
    srv = agentd(env=env)
    with http_session() as s:
        for i in range(40):
            r = s.post(f"{srv.url}/chat", json={"message": f"show me cookies {i}"}, timeout=10)
            assert r.status_code == 200, r.text
    assert srv.stop() == 0
    db = data / "agentd.db"
    wal = data / "agentd.db-wal"
    size = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    time.sleep(1.2)                          # every session is now past its TTL
    p = run_cli(["vacuum"], env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    m = re.search(r"purged (\d+) expired rows; .*agentd\.db: (\d+) bytes before, (\d+) after",
                  p.stdout)
    assert m, p.stdout
    purged, before, after = map(int, m.groups())
    assert purged >= 40
    assert after < before
    shrunk = db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    assert shrunk < size / 2, (size, shrunk)
    # the database still serves
    p = run_cli(["migrate"], env=env)
    assert p.returncode == 0, p.stderr
    srv2 = agentd(env={"AGENTD_DATA_DIR": str(data)})
    assert srv2.request("POST", "/chat", json={"message": "show me cookies"}).status_code == 200


def test_vacuum_keeps_live_sessions(agentd, tmp_path):
    env = {"AGENTD_DATA_DIR": str(tmp_path / "live")}
    srv = agentd(env=env)
    sid = srv.request("POST", "/chat", json={"message": "show me cookies"}).json()["session_id"]
    p = run_cli(["vacuum"], env=env, timeout=30)   # while serving: it waits for the lock
    assert p.returncode == 0, p.stderr
    assert "purged 0 expired rows" in p.stdout
    r = srv.request("GET", f"/chat/sessions/{sid}")
    assert r.status_code == 200, r.text
