"""HTTP/2 to the model provider (AGENTD_LLM_<NAME>_HTTP2, _CA_BUNDLE;
docs/llm.md): agentd -> nginx serving a fixed chat completion. Over TLS
(a certificate made here, trusted through _CA_BUNDLE) the default `auto`
negotiates HTTP/2 by ALPN: turns succeed, nginx logs HTTP/2.0 and
concurrent calls share a connection; `off` stays HTTP/1.1. On a plain-text
HTTP/2 listener (h2c; nginx 1.22 speaks only prior-knowledge HTTP/2 there)
`prior` does the same with libcurl >= 8.0.0, and is refused at start on an
older libcurl (curl #10634 breaks every reused prior-knowledge connection);
`off` cannot talk to that listener at all, and `auto` on http:// stays
HTTP/1.1 (a third, HTTP/1.1 listener)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from agentd_harness import free_port, http_session

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")

REPLY = {"id": "chatcmpl-h2", "object": "chat.completion", "created": 0, "model": "h2model",
         "choices": [{"index": 0, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": "hello over h2"}}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}


class Nginx:
    """nginx on 127.0.0.1 in a temp dir: an h2c listener and an HTTP/1.1 one,
    both answering POST /v1/chat/completions with REPLY (the h2c one through
    the other); the access log
    records the connection serial number and the protocol of each request."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="agentd-h2-nginx-")
        os.chmod(self.dir, 0o755)  # workers run unprivileged
        self.h2_port, self.h1_port, self.tls_port = free_port(), free_port(), free_port()
        self.cert = os.path.join(self.dir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", os.path.join(self.dir, "key.pem"), "-out", self.cert,
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        self.log = os.path.join(self.dir, "access.log")
        body = json.dumps(REPLY).replace("'", "\\'")
        d = self.dir
        conf = f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format conn '$connection $server_port $server_protocol $request_method $request_uri $status';
  access_log {d}/access.log conn;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  http2_max_concurrent_streams 256;
  server {{
    listen 127.0.0.1:{self.h1_port};
    location = /v1/chat/completions {{ default_type application/json; return 200 '{body}'; }}
    location = /reply {{ default_type application/json; return 200 '{body}'; }}
    location / {{ return 404; }}
  }}
  # the h2c server reads the whole body before answering (proxy_pass does):
  # a `return` before the body ends resets the stream, which curl 7.88
  # reports as a framing error even after a complete response
  server {{
    listen 127.0.0.1:{self.h2_port} http2;
    listen 127.0.0.1:{self.tls_port} ssl http2;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    location = /v1/chat/completions {{ proxy_pass http://127.0.0.1:{self.h1_port}/reply; }}
    location / {{ return 404; }}
  }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf"),
                                      "-e", os.path.join(d, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with http_session() as s:
                    s.get(f"http://127.0.0.1:{self.h1_port}/", timeout=1)
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx did not start: " + self.error_log())
                time.sleep(0.05)

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()
        except OSError:
            return ""

    def calls(self, port):
        """(connection, protocol) of each model call served on `port`."""
        out = []
        try:
            with open(self.log) as f:
                for line in f:
                    conn, p, proto, method, uri, status = line.split()
                    if int(p) == port and uri == "/v1/chat/completions":
                        out.append((int(conn), proto))
        except OSError:
            pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the log is complete
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx():
    n = Nginx()
    yield n
    n.stop()


def provider_env(port, http2=None, scheme="http", **extra):
    env = {"AGENTD_LLM_PROVIDERS": "local",
           "AGENTD_LLM_LOCAL_URL": f"{scheme}://127.0.0.1:{port}/v1",
           "AGENTD_LLM_LOCAL_MODEL": "h2model",
           "AGENTD_LLM_MAX_RETRIES": "0"}
    if http2:
        env["AGENTD_LLM_LOCAL_HTTP2"] = http2
    env.update(extra)
    return env


def turns(srv, n, workers):
    """n /chat turns from `workers` threads at once; returns the replies."""
    out, lock = [], threading.Lock()
    start = threading.Barrier(workers)

    def run(k):
        start.wait()
        with http_session() as s:
            for i in range(k):
                r = s.post(f"{srv.url}/chat", json={"message": f"hi {uuid.uuid4().hex[:6]}"},
                           timeout=30)
                with lock:
                    out.append(r)

    ts = [threading.Thread(target=run, args=(n // workers,), daemon=True) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def wait_calls(nginx, port, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        calls = nginx.calls(port)
        if len(calls) >= n or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


def libcurl_version():
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    lib = next(w for w in out.split() if w.startswith("libcurl/"))
    return tuple(int(x) for x in lib.split("/")[1].split("-")[0].split(".")[:3])


def check_shared_h2(nginx, port, srv, before):
    replies = turns(srv, 60, workers=20)
    assert len(replies) == 60
    for r in replies:
        assert r.status_code == 200, r.text
        assert r.json()["answer"] == "hello over h2"
    calls = wait_calls(nginx, port, before + 60)[before:]
    assert len(calls) == 60, nginx.error_log()
    assert {proto for _, proto in calls} == {"HTTP/2.0"}
    conns = {c for c, _ in calls}
    # 20 calls at a time on one loop: multiplexed, not one connection per
    # call in flight (HTTP/1.1 would need up to 20)
    assert len(conns) <= 2, sorted(conns)


def test_tls_auto_negotiates_h2_and_turns_share_connections(agentd, nginx):
    before = len(nginx.calls(nginx.tls_port))
    srv = agentd(env=provider_env(nginx.tls_port, None, scheme="https", AGENTD_THREADS="1",
                                  AGENTD_LLM_LOCAL_CA_BUNDLE=nginx.cert))
    check_shared_h2(nginx, nginx.tls_port, srv, before)


def test_tls_off_stays_http11(agentd, nginx):
    before = len(nginx.calls(nginx.tls_port))
    srv = agentd(env=provider_env(nginx.tls_port, "off", scheme="https",
                                  AGENTD_LLM_LOCAL_CA_BUNDLE=nginx.cert))
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=15)
    assert r.status_code == 200, r.text
    calls = wait_calls(nginx, nginx.tls_port, before + 1)[before:]
    assert calls and {proto for _, proto in calls} == {"HTTP/1.1"}


def test_tls_without_the_ca_is_refused(agentd, nginx):
    # the bundle is what makes the private certificate trusted
    srv = agentd(env=provider_env(nginx.tls_port, None, scheme="https"))
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=15)
    assert r.status_code == 503, r.text


@pytest.mark.skipif(libcurl_version() < (8, 0, 0), reason="prior knowledge needs libcurl >= 8.0.0")
def test_prior_knowledge_h2c_turns_share_connections(agentd, nginx):
    before = len(nginx.calls(nginx.h2_port))
    srv = agentd(env=provider_env(nginx.h2_port, "prior", AGENTD_THREADS="1"))
    check_shared_h2(nginx, nginx.h2_port, srv, before)


@pytest.mark.skipif(libcurl_version() >= (8, 0, 0), reason="libcurl >= 8.0.0 reuses h2c connections")
def test_prior_knowledge_refused_on_old_libcurl(agentd, nginx):
    srv = agentd(env=provider_env(nginx.h2_port, "prior"), wait_ready=False)
    assert srv.wait(timeout=10) == 2
    assert "AGENTD_LLM_LOCAL_HTTP2=prior: needs libcurl 8.0.0 or later" in srv.log_text()


def test_auto_on_plain_http_stays_http11(agentd, nginx):
    before = len(nginx.calls(nginx.h1_port))
    srv = agentd(env=provider_env(nginx.h1_port, None))
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=15)
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "hello over h2"
    calls = wait_calls(nginx, nginx.h1_port, before + 1)[before:]
    assert calls and {proto for _, proto in calls} == {"HTTP/1.1"}


def test_off_cannot_speak_to_an_h2c_only_server(agentd, nginx):
    # an h2c-only server: HTTP/1.1 gets nowhere
    srv = agentd(env=provider_env(nginx.h2_port, "off"))
    r = srv.request("POST", "/chat", json={"message": "hello"}, timeout=15)
    assert r.status_code != 200


def test_invalid_setting_refused_at_start(agentd, nginx):
    srv = agentd(env=provider_env(nginx.h2_port, "sometimes"), wait_ready=False)
    assert srv.wait(timeout=10) == 2
    assert "AGENTD_LLM_LOCAL_HTTP2=sometimes: expected auto, prior or off" in srv.log_text()
