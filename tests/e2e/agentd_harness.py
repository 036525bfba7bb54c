"""Harness for agentd end-to-end tests: start the real binary on a free
loopback port in a fresh directory, talk to it over HTTP and raw sockets.

Every wait here is bounded; every socket is on 127.0.0.1.
"""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Sanitizer builds (scripts/test --sanitize sets AGENTD_SANITIZED) run slower:
# latency bounds in tests are multiplied by SLOW.
SLOW = 3.0 if os.environ.get("AGENTD_SANITIZED") else 1.0
READY_TIMEOUT = 10.0 * SLOW
STOP_TIMEOUT = 10.0


def agentd_bin():
    """The binary under test: $AGENTD_BIN, else <repo>/build/agentd."""
    return os.environ.get("AGENTD_BIN") or str(REPO / "build" / "agentd")


def free_port():
    """A port nobody listens on right now (bound to 127.0.0.1:0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The caller's environment without any AGENTD_* variable or proxy
    setting, plus `extra` (a value of None removes that variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTD_") and "proxy" not in k.lower()}
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run_cli(args, env=None, timeout=10.0):
    """Run `agentd ARGS` to completion; returns CompletedProcess (text)."""
    return subprocess.run([agentd_bin(), *args], env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def http_session():
    """A requests session that never consults proxy settings."""
    s = requests.Session()
    s.trust_env = False
    return s


class StartError(RuntimeError):
    pass


class Server:
    """One agentd process. Use through the `agentd` / `server` fixtures."""

    def __init__(self, env=None, args=("serve",), workdir=None, port=None):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="agentd-e2e-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "agentd.log"
        self.extra_env = dict(env or {})
        self.args = tuple(args)
        self.port = port
        self.proc = None
        self.returncode = None
        self.killed = False             # we had to SIGKILL it
        self._session = None
        self._keys = {}                 # principal -> API key (principal_key)

    # ---- lifecycle ----

    def start(self, wait_ready=True, timeout=READY_TIMEOUT):
        """Start the process; with wait_ready, wait (bounded) for /readyz == 200.
        A port another process grabbed in between is retried with a new one."""
        fixed = self.port is not None or "AGENTD_PORT" in self.extra_env
        for attempt in range(3):
            if not fixed:
                self.port = free_port()
            elif self.port is None:
                self.port = int(self.extra_env["AGENTD_PORT"])
            env = {"AGENTD_HOST": HOST, "AGENTD_PORT": self.port,
                   "AGENTD_DATA_DIR": self.data_dir}
            env.update(self.extra_env)
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([agentd_bin(), *self.args], env=clean_env(env),
                                         cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            if not wait_ready:
                return self
            try:
                self.wait_ready(timeout)
                return self
            except StartError:
                in_use = "in use" in self.log_text()
                self.kill()
                if fixed or not in_use or attempt == 2:
                    raise
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"agentd exited with {self.proc.returncode} before ready\n"
                                 f"--- log ---\n{self.log_text()}")
            try:
                r = self.get("/readyz", timeout=0.5)
                if r.status_code == 200:
                    return
                last = f"/readyz {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)
        raise StartError(f"agentd not ready within {timeout}s ({last})\n"
                         f"--- log ---\n{self.log_text()}")

    def send_signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait (bounded) for exit; returns the exit code or None if still running."""
        if not self.proc:
            return None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_log()
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send `sig`, wait up to `timeout`, then SIGKILL. Returns the exit code
        (negative = killed by that signal, as in subprocess)."""
        if self._session:
            self._session.close()
            self._session = None
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait(timeout) is None:
                self.kill()
        self.returncode = self.proc.returncode
        self._close_log()
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        log = getattr(self, "_log", None)
        if log and not log.closed:
            log.close()

    def shutdown_problem(self, timeout=5.0):
        """Stop with SIGTERM; describe what went wrong, or return None. Wrong
        is: no exit within `timeout`; a running server that does not exit 0
        on SIGTERM; death by a signal; a sanitizer report in the log."""
        was_running = self.running
        rc = self.stop(signal.SIGTERM, timeout=timeout)
        problems = []
        if self.killed:
            problems.append(f"did not exit within {timeout}s of SIGTERM")
        elif rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            problems.append(f"died from {name} (exit {rc})")
        elif was_running and rc != 0:
            problems.append(f"exited {rc} on SIGTERM, not 0")
        text = self.log_text()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in text:
                problems.append(f"sanitizer report in its log ({marker!r})")
        if not problems:
            return None
        return f"agentd (port {self.port}, log {self.log_path}): " + "; ".join(problems)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- API keys (AGENTD_AUTH=on) ----

    @property
    def auth_on(self):
        return str(self.extra_env.get("AGENTD_AUTH", "off")).lower() == "on"

    def keys_cli(self, *args):
        """`agentd keys ...` with this server's environment (same data dir and
        database), as an operator runs it next to serve."""
        env = {"AGENTD_DATA_DIR": self.data_dir, **self.extra_env}
        return run_cli(["keys", *args], env=env)

    def create_key(self, principal, scopes=None):
        """A new API key for principal (the first stdout line of keys create)."""
        args = ["create", "--principal", principal]
        if scopes is not None:
            args += ["--scopes", scopes]
        p = self.keys_cli(*args)
        assert p.returncode == 0, f"keys create: {p.returncode} {p.stderr}"
        return p.stdout.splitlines()[0]

    def principal_key(self, principal):
        """One key per principal for this server, made on first use."""
        if principal not in self._keys:
            self._keys[principal] = self.create_key(principal)
        return self._keys[principal]

    # ---- talking to it ----

    @property
    def tls_cert(self):
        """The certificate file of a native-HTTPS server (trusted as is), else None."""
        return self.extra_env.get("AGENTD_TLS_CERT_FILE")

    @property
    def url(self):
        return f"{'https' if self.tls_cert else 'http'}://{HOST}:{self.port}"

    def _tls_session(self):
        s = http_session()
        if self.tls_cert:
            s.verify = str(self.tls_cert)
        return s

    @property
    def session(self):
        if self._session is None:
            self._session = self._tls_session()
        return self._session

    def get(self, path, **kw):
        kw.setdefault("timeout", 5)
        return self.session.get(self.url + path, **kw)

    def request(self, method, path, **kw):
        """A request on a fresh connection (no keep-alive reuse)."""
        kw.setdefault("timeout", 5)
        with self._tls_session() as s:
            return s.request(method, self.url + path, **kw)

    def connect(self, timeout=5.0):
        s = socket.create_connection((HOST, self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def raw(self, data, timeout=5.0):
        """Send raw bytes on a new connection, read until the server closes
        (or `timeout`), return the parsed RawResponse."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_response(s, timeout=timeout, until_close=True)

    # ---- logs ----

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """The JSON lines of the log (stdout); anything else is skipped."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_log(self, pred, timeout=3.0):
        """The first log line for which pred(line) is true, waiting up to
        `timeout` (the access line is written just after the reply)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines():
                if pred(line):
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)

    def access_line(self, request_id, timeout=3.0):
        return self.wait_log(lambda l: l.get("request_id") == request_id, timeout)

    def mark(self):
        """A position in the log, for new_lines(). Access lines are batched
        (written up to a few ms after the reply, core/logbuf.c): wait (bounded)
        until the log has been still for 50 ms, so that an earlier request's
        line is not taken for a new one."""
        deadline = time.monotonic() + 2.0
        size, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = len(self.log_text())
            if now != size:
                size, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= 0.05:
                break
            time.sleep(0.01)
        return len(self.log_lines())

    def new_lines(self, mark, n=1, msg="request", timeout=3.0):
        """Wait (bounded) until `n` lines with this msg follow `mark`; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [l for l in self.log_lines()[mark:] if l.get("msg") == msg]
            if len(found) >= n or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)


# ---- raw HTTP ----

class RawResponse:
    def __init__(self, status, reason, headers, body, raw, closed):
        self.status = status
        self.reason = reason
        self.headers = headers          # lower-case name -> value (last wins)
        self.body = body
        self.raw = raw
        self.closed = closed            # the server closed the connection

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"RawResponse({self.status}, {self.headers!r}, {self.body[:200]!r})"


def parse_head(data):
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise ValueError(f"not an HTTP response: {data[:200]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(m.group(1)), m.group(2), headers, rest


def read_response(sock, timeout=5.0, until_close=False):
    """Read one response from `sock`. With until_close, keep reading until
    EOF (bounded by `timeout`) and report whether the server closed."""
    deadline = time.monotonic() + timeout
    buf = b""
    closed = False
    parsed = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
        if b"\r\n\r\n" in buf:
            parsed = parse_head(buf)
            clen = int(parsed[2].get("content-length", "-1"))
            if clen >= 0 and len(parsed[3]) >= clen and not until_close:
                break
    if b"\r\n\r\n" not in buf:
        raise AssertionError(f"no complete response within {timeout}s (got {buf[:300]!r}, "
                             f"closed={closed})")
    status, reason, headers, rest = parse_head(buf)
    clen = int(headers.get("content-length", len(rest)))
    return RawResponse(status, reason, headers, rest[:clen], buf, closed)


def wait_closed(sock, timeout):
    """Seconds until the peer closed `sock` (reading and dropping data), or
    None if still open after `timeout`."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - t0
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0


# ---- assertions ----

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def assert_error(status, headers, body, want_status, want_code=None):
    """The one error shape: {"error":{"code","message","request_id"}}, JSON
    content type, and X-Request-Id equal to error.request_id."""
    assert status == want_status, f"status {status}, want {want_status}: {body!r}"
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ctype.startswith("application/json"), f"content-type {ctype!r}: {body!r}"
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    err = doc["error"]
    assert isinstance(err.get("code"), str) and err["code"], doc
    assert isinstance(err.get("message"), str) and err["message"], doc
    assert isinstance(err.get("request_id"), str) and err["request_id"], doc
    rid = {k.lower(): v for k, v in headers.items()}.get("x-request-id")
    assert rid == err["request_id"], f"X-Request-Id {rid!r} != body {err['request_id']!r}"
    if want_code is not None:
        assert err["code"] == want_code, doc
    return err


def assert_error_response(resp, want_status, want_code=None):
    """assert_error for a requests.Response or a RawResponse."""
    if isinstance(resp, RawResponse):
        return assert_error(resp.status, resp.headers, resp.body, want_status, want_code)
    return assert_error(resp.status_code, dict(resp.headers), resp.content, want_status, want_code)


# ---- Prometheus text ----

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, float)] for every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line: {line!r}"
        labels = dict(LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def metric_value(samples, name, **labels):
    """The value of the sample with exactly these labels, or None."""
    for n, l, v in samples:
        if n == name and l == labels:
            return v
    return None


class RedisServer:
    """A throwaway redis-server on a free loopback port, no persistence, in its
    own directory: start(), kill() (SIGKILL: the data is gone, as in a crash),
    pause()/resume() (SIGSTOP/SIGCONT: a hung Redis), start() again on the
    same port. The `redis_server` fixture stops it at the end."""

    BIN = "/usr/bin/redis-server"

    def __init__(self, workdir, password=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.socket = self.workdir / "redis.sock"
        self.proc = None

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}"

    def start(self, timeout=10.0):
        log = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [self.BIN, "--port", str(self.port), "--bind", HOST, "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
             "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             *(["--requirepass", self.password] if self.password else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"redis-server exited {self.proc.returncode}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise StartError("redis-server did not answer PING")

    def ping(self):
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *args):
        """One command over RESP; the raw reply bytes (tests' own checks)."""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        assert not self.password, "command() speaks to a Redis without a password"
        with socket.create_connection((HOST, self.port), timeout=2.0) as s:
            s.sendall(out)
            return s.recv(65536)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)


class PostgresServer:
    """A throwaway PostgreSQL 15 cluster on a free loopback port in its own
    directory (tests/pg/cluster.sh: initdb as the postgres user when we are
    root, fsync off): start(), database(name) -> a fresh database's URL,
    stop() removes it. The `postgres_server` fixture stops it at the end."""

    SCRIPT = Path(__file__).resolve().parent.parent / "pg" / "cluster.sh"
    INITDB = "/usr/lib/postgresql/15/bin/initdb"

    def __init__(self, workdir):
        # not under pytest's tmp dir: the postgres user must reach it
        self.workdir = Path(tempfile.mkdtemp(prefix="agentd-e2e-pg-"))
        self.url = None

    def start(self):
        out = subprocess.run([str(self.SCRIPT), "start", str(self.workdir)], check=True,
                             capture_output=True, text=True, timeout=60)
        self.url = out.stdout.strip().splitlines()[-1]
        return self

    def database(self, name):
        """CREATE DATABASE name; its postgres:// URL."""
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c",
                        f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=30)
        return self.url.rsplit("/", 1)[0] + "/" + name

    def query(self, url, sql):
        out = subprocess.run(["psql", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                             check=True, capture_output=True, text=True, timeout=30)
        return out.stdout.strip()

    def stop(self):
        subprocess.run([str(self.SCRIPT), "stop", str(self.workdir)], capture_output=True,
                       timeout=60)


class HaproxyServer:
    """haproxy (Debian /usr/sbin/haproxy) on a free loopback port in front of
    agentd replicas: mode http, round robin, health checks on GET /readyz
    every 200 ms (down after 2 failures, up after 2 passes), refused
    connections retried on another server (a request that reached one is not). Every reply names the replica that
    served it in X-Agentd-Replica (r0, r1, ...). state() reads the servers'
    UP/DOWN from the stats socket. The `haproxy_server` fixture kills it."""

    BIN = "/usr/sbin/haproxy"

    def __init__(self, workdir, backends):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.backends = list(backends)          # agentd ports, in server order r0, r1, ...
        self.sock_path = self.workdir / "haproxy.sock"
        self.cfg_path = self.workdir / "haproxy.cfg"
        self.proc = None
        self._session = None

    def config(self):
        servers = "\n".join(f"    server r{i} {HOST}:{p} check"
                            for i, p in enumerate(self.backends))
        # timeouts: server/tunnel long enough for an SSE stream and a slow turn
        return f"""global
    stats socket {self.sock_path} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    timeout http-keep-alive 5s
    timeout queue 10s
    # a check's answer may wait behind load (/readyz asks the store): without
    # this the check timeout is `inter` (200 ms) and a busy replica looks dead
    timeout check 2s
    # a refused connection (a replica gone) is retried on another server; a
    # request that reached a replica is never sent again (it may have run)
    retries 3
    option redispatch 1
    retry-on conn-failure
frontend fe
    bind {HOST}:{self.port}
    default_backend agentd
backend agentd
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2
    http-response set-header X-Agentd-Replica %[srv_name]
{servers}
"""

    def start(self, timeout=10.0):
        self.cfg_path.write_text(self.config())
        log = open(self.workdir / "haproxy.log", "ab")
        self.proc = subprocess.Popen([self.BIN, "-db", "-f", str(self.cfg_path)],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"haproxy exited {self.proc.returncode}: "
                                 f"{(self.workdir / 'haproxy.log').read_text()}")
            if self.sock_path.exists() and all(s == "UP" for s in self.state().values()):
                return self
            time.sleep(0.05)
        raise StartError(f"haproxy: servers not all UP within {timeout}s: {self.state()}")

    def stats(self):
        """`show stat` of the backend's servers: {name: {column: value}}."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(self.sock_path))
            s.sendall(b"show stat\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        rows = buf.decode().splitlines()
        head = rows[0].lstrip("# ").split(",")
        out = {}
        for line in rows[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "agentd" and row.get("svname", "").startswith("r"):
                out[row["svname"]] = row
        return out

    def state(self):
        """{server name: "UP" / "DOWN" / ...}."""
        try:
            return {k: v["status"].split()[0] for k, v in self.stats().items()}
        except OSError:
            return {}

    def wait_state(self, name, want, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state().get(name) == want:
                return
            time.sleep(0.05)
        raise AssertionError(f"haproxy: {name} not {want} within {timeout}s: {self.state()}")

    # the same request helpers as Server, so test helpers take either

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    @property
    def session(self):
        if self._session is None:
            self._session = http_session()
        return self._session

    def get(self, path, **kw):
        kw.setdefault("timeout", 5)
        return self.session.get(self.url + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 5)
        with http_session() as s:
            return s.request(method, self.url + path, **kw)

    def kill(self):
        if self._session:
            self._session.close()
            self._session = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None
