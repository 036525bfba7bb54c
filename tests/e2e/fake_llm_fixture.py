"""The fake OpenAI-compatible model (tests/fake_llm/fake_llm.py) for e2e tests:
started as a subprocess on 127.0.0.1 port 0, its port read from its first
stdout line, admin calls, and a bounded stop. It runs in strict mode: a
request the real API would refuse (tool schemas, tool-call pairing) gets a
400, so every e2e test also checks what agentd sends (fake.strict(False)
turns it off until the next reset()).

    from fake_llm_fixture import fake_llm            # noqa: F401  (registers the fixture)

    def test_x(agentd, fake_llm):
        srv = agentd(env=fake_llm.env())          # AGENTD_LLM_URL/MODEL/API_KEY
        fake_llm.faults({"status": 500, "times": 3})
        ...
        assert fake_llm.stats()["requests"] == 4

Every wait here is bounded; the server only listens on 127.0.0.1.
"""

import json
import os
import selectors
import subprocess
import sys
import time

import pytest

from agentd_harness import HOST, REPO, http_session

FAKE_LLM = REPO / "tests" / "fake_llm" / "fake_llm.py"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
API_KEY = "sk-test-123"


class FakeLLM:
    """One fake model server process."""

    def __init__(self):
        self.proc = None
        self.port = None
        self._http = http_session()

    # ---- lifecycle ----

    def start(self, timeout=START_TIMEOUT):
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        self.proc = subprocess.Popen([sys.executable, str(FAKE_LLM), "--port", "0", "--strict"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        line = self._first_line(timeout)
        try:
            self.port = int(line)
        except ValueError:
            err = self._stderr_now()
            self.stop()
            raise RuntimeError(f"fake LLM did not print a port (got {line!r}); stderr: {err}")
        self._wait_up(timeout)
        return self

    def _first_line(self, timeout):
        """The first stdout line, without ever blocking past `timeout`."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 64)
                    if not chunk:
                        break
                    buf += chunk
        finally:
            sel.close()
        return buf.split(b"\n", 1)[0].decode(errors="replace").strip()

    def _stderr_now(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def _wait_up(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.stats(timeout=0.5)
                return
            except Exception:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        """SIGTERM, then SIGKILL after a bound. Hanging requests die with it."""
        self._http.close()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    # ---- addresses and agentd configuration ----

    @property
    def base(self):
        return f"http://{HOST}:{self.port}"

    def url(self, prefix="/v1"):
        """A provider base URL (ends before /chat/completions). Different
        prefixes ("/primary/v1", "/backup/v1") act as different providers."""
        return self.base + prefix

    def env(self, model="fake", key=API_KEY, **extra):
        """agentd environment for one provider on this server (fixed contract)."""
        env = {"AGENTD_LLM_URL": self.url(), "AGENTD_LLM_MODEL": model}
        if key is not None:
            env["AGENTD_LLM_API_KEY"] = key
        env.update(extra)
        return env

    def chain_env(self, names=("primary", "backup"), key=API_KEY, **extra):
        """agentd environment for a fallback chain, one path prefix per name."""
        env = {"AGENTD_LLM_PROVIDERS": ",".join(names)}
        for n in names:
            up = n.upper()
            env[f"AGENTD_LLM_{up}_URL"] = self.url(f"/{n}/v1")
            env[f"AGENTD_LLM_{up}_MODEL"] = f"fake-{n}"
            if key is not None:
                env[f"AGENTD_LLM_{up}_API_KEY"] = key
        env.update(extra)
        return env

    # ---- admin ----

    def _post(self, path, obj, timeout=5):
        r = self._http.post(self.base + path, data=json.dumps(obj), timeout=timeout,
                            headers={"Content-Type": "application/json"})
        r.raise_for_status()
        return r.json()

    def reset(self):
        """Clears queued faults, counters and `once` memory."""
        return self._post("/admin/reset", {})

    def faults(self, *specs):
        """Queues faults, e.g. faults({"status": 500, "times": 3, "path": "/primary"})."""
        return self._post("/admin/faults", {"faults": list(specs)})

    def strict(self, on=True):
        """Validates every request like the real API (400 otherwise), the
        default; until the next reset(). stats() has "checked" and
        "rejections"."""
        return self._post("/admin/strict", {"on": on})

    def stats(self, timeout=5):
        r = self._http.get(self.base + "/admin/stats", timeout=timeout)
        r.raise_for_status()
        return r.json()

    def requests_to(self, prefix=""):
        """Completion requests seen on paths starting with prefix."""
        return sum(n for p, n in self.stats()["by_path"].items() if p.startswith(prefix))


@pytest.fixture
def fake_llm():
    f = FakeLLM().start()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def module_fake_llm():
    f = FakeLLM().start()
    try:
        yield f
    finally:
        f.stop()
