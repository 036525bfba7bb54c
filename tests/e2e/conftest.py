"""Fixtures for agentd end-to-end tests.

    def test_x(agentd):                       # factory, one or more servers per test
        srv = agentd(env={"AGENTD_MAX_BODY_BYTES": "4096"})
        assert srv.get("/healthz").status_code == 200

    def test_y(server):                       # one default server per test module
        ...

    @pytest.fixture(scope="module")           # a module's own configured server
    def small(module_agentd):
        return module_agentd(env={"AGENTD_MAX_BODY_BYTES": "4096"})

A server is stopped (SIGTERM, then SIGKILL after a bound) when its scope ends;
a crash on the way out, or no exit within the bound, fails the test.
When a test fails, the log of every server it used is attached to the report
and shown under the failure ("agentd log ...").
"""

from pathlib import Path

import pytest

from agentd_harness import Server, agentd_bin

MAX_LOG_CHARS = 20000


def pytest_report_header(config):
    return f"agentd binary: {agentd_bin()}"


class Factory:
    """Callable fixture value: agentd(env=None, args=("serve",), wait_ready=True)."""

    def __init__(self, base_dir):
        self.base_dir = base_dir
        self.servers = []

    def __call__(self, env=None, args=("serve",), wait_ready=True, port=None):
        srv = Server(env=env, args=args, workdir=self.base_dir / f"srv{len(self.servers)}",
                     port=port)
        self.servers.append(srv)
        srv.start(wait_ready=wait_ready)
        return srv

    def close(self):
        """Stops every server; returns the problems seen while stopping."""
        return [p for p in (srv.shutdown_problem() for srv in self.servers) if p]


@pytest.fixture
def agentd(tmp_path):
    f = Factory(tmp_path)
    yield f
    problems = f.close()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def module_agentd(tmp_path_factory):
    """The `agentd` factory for module-scoped fixtures:
        @pytest.fixture(scope="module")
        def small(module_agentd):
            return module_agentd(env={"AGENTD_MAX_BODY_BYTES": "4096"})
    """
    f = Factory(tmp_path_factory.mktemp("module"))
    yield f
    problems = f.close()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One agentd with the default configuration, shared by a test module."""
    srv = Server(workdir=tmp_path_factory.mktemp("server"))
    try:
        srv.start()
        yield srv
    finally:
        problem = srv.shutdown_problem()
    if problem:
        pytest.fail(problem, pytrace=False)


def _servers_of(item):
    found = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Server):
            found.append(value)
        elif isinstance(value, Factory):
            found.extend(value.servers)
    return found


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for i, srv in enumerate(_servers_of(item)):
            text = srv.log_text()
            if len(text) > MAX_LOG_CHARS:
                text = "...(cut)...\n" + text[-MAX_LOG_CHARS:]
            rep.sections.append((f"agentd log #{i} (port {srv.port}, {srv.log_path})",
                                 text or "(empty)"))


@pytest.fixture
def redis_server(tmp_path):
    """A started RedisServer on loopback (agentd_harness.RedisServer), killed at the end."""
    from agentd_harness import RedisServer
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture
def postgres_server(tmp_path):
    """A started PostgresServer (agentd_harness.PostgresServer): a throwaway
    PostgreSQL 15 cluster on loopback, removed at the end."""
    from agentd_harness import PostgresServer
    if not PostgresServer.SCRIPT.exists() or not Path(PostgresServer.INITDB).exists():
        pytest.skip("PostgreSQL 15 is not installed (scripts/install-deps)")
    srv = PostgresServer(tmp_path / "postgres").start()
    yield srv
    srv.stop()


@pytest.fixture
def haproxy_server(tmp_path):
    """A factory: haproxy_server(ports) starts an agentd_harness.HaproxyServer
    on loopback in front of agentd on those ports; each is killed at the end."""
    from agentd_harness import HaproxyServer
    if not Path(HaproxyServer.BIN).exists():
        pytest.skip("haproxy is not installed (scripts/install-deps)")
    started = []

    def make(ports):
        h = HaproxyServer(tmp_path / f"haproxy{len(started)}", ports)
        started.append(h)
        return h.start()
    yield make
    for h in started:
        h.kill()
