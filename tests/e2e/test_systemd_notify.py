"""agentd speaks systemd's notify protocol (deploy/systemd/agentd.service,
Type=notify, WatchdogSec=): READY=1 once it listens, WATCHDOG=1 pings at half
of WATCHDOG_USEC while the service manager asks for them (and only then),
STOPPING=1 when it starts to drain. The service manager is a datagram socket
here, as NOTIFY_SOCKET names it."""

import os
import signal
import socket
import time

import pytest

from agentd_harness import SLOW, Server


class NotifySocket:
    """A stand-in for the service manager's notification socket."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def collect(self, seconds):
        """Every datagram for `seconds`, split into its KEY=VALUE lines."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            self.messages += data.decode().split("\n")
        return self.messages

    def wait_for(self, line, seconds):
        deadline = time.monotonic() + seconds
        while line not in self.messages and time.monotonic() < deadline:
            self.collect(min(0.1, deadline - time.monotonic()))
        return line in self.messages

    def close(self):
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    # a short path: sun_path holds ~108 bytes
    n = NotifySocket(f"/tmp/agentd-notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    yield n
    n.close()
    os.unlink(n.path)


def start(tmp_path, notify, **env):
    return Server(env={"NOTIFY_SOCKET": notify.path, **env}, workdir=tmp_path / "srv").start()


def test_watchdog_pings_while_asked(tmp_path, notify):
    srv = start(tmp_path, notify, WATCHDOG_USEC="200000")
    try:
        assert notify.wait_for("READY=1", 5 * SLOW), notify.messages
        notify.collect(1.5)
        pings = notify.messages.count("WATCHDOG=1")
        # every 100 ms for 1.5 s; a loaded machine may skip some, never all
        assert pings >= 3, notify.messages
        assert "watchdog: pinging systemd every 100 ms" in srv.log_text()
        # still pinging during a drain, and STOPPING=1 says it began
        srv.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING=1", 5 * SLOW), notify.messages
        assert srv.wait(10) == 0
    finally:
        problem = srv.shutdown_problem()
    assert problem is None, problem
    assert "not pinging" not in srv.log_text()


def test_no_watchdog_pings_unless_asked(tmp_path, notify):
    srv = start(tmp_path, notify)
    try:
        assert notify.wait_for("READY=1", 5 * SLOW), notify.messages
        notify.collect(0.6)
        assert "WATCHDOG=1" not in notify.messages
    finally:
        problem = srv.shutdown_problem()
    assert problem is None, problem


def test_watchdog_for_another_process_is_not_ours(tmp_path, notify):
    """WATCHDOG_PID names the process the manager watches: a child that
    inherited the variables must not ping for it."""
    srv = start(tmp_path, notify, WATCHDOG_USEC="200000", WATCHDOG_PID=str(os.getpid()))
    try:
        assert notify.wait_for("READY=1", 5 * SLOW), notify.messages
        notify.collect(0.6)
        assert "WATCHDOG=1" not in notify.messages
    finally:
        problem = srv.shutdown_problem()
    assert problem is None, problem
