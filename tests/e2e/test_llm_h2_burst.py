"""HTTP/2 to the model under a burst (issue #14 item 3): calls that start
together while the provider's connections are full or still in their TLS
handshake wait for a stream instead of each opening a connection (libcurl
7.88 only waits for a host's first connection; http/client.c caps
connections per host on its HTTP/2 handle), and a provider that answers
HTTP/1.1 by ALPN still gets a connection per call in parallel. The model is
bench/h2_model.js (node's http2 over TLS, a certificate made here)."""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from agentd_harness import http_session

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

H2_HOST_CONNECTIONS = 32  # src/http/client.c, per loop thread


class NodeModel:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="agentd-h2-node-")
        self.cert = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-keyout", key, "-out", self.cert, "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        self.proc = subprocess.Popen(["node", os.path.join(ROOT, "bench", "h2_model.js"), "--port", "0",
                                      "--cert", self.cert, "--key", key, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.proc.stdout.readline())

    def stats(self):
        # over HTTP/1.1 works on both kinds (the h2 one allows HTTP/1.1)
        with http_session() as s:
            return s.get(f"https://127.0.0.1:{self.port}/admin/stats", verify=self.cert, timeout=10).json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def model(request):
    m = NodeModel(*request.param)
    yield m
    m.stop()


def env_for(m):
    return {"AGENTD_LLM_PROVIDERS": "local",
            "AGENTD_LLM_LOCAL_URL": f"https://127.0.0.1:{m.port}/v1",
            "AGENTD_LLM_LOCAL_MODEL": "fake",
            "AGENTD_LLM_LOCAL_CA_BUNDLE": m.cert,
            "AGENTD_LLM_MAX_RETRIES": "0",
            "AGENTD_THREADS": "1"}


def burst(srv, n):
    """n /chat turns started together, one connection each (asyncio: a
    thousand threads would be the test's own bottleneck); [(status, body)]."""
    host, port = "127.0.0.1", srv.port

    async def one():
        body = json.dumps({"message": f"hi {uuid.uuid4().hex[:6]}"}).encode()
        r, w = await asyncio.open_connection(host, port)
        w.write(b"POST /chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        raw = await r.read()
        w.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        return int(head.split()[1]), payload

    async def run():
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 120)

    return asyncio.run(run())


def all_answered(replies, n):
    assert len(replies) == n
    for status, body in replies:
        assert status == 200, body
        assert json.loads(body)["answer"].startswith("echo: hi ")


@pytest.mark.parametrize("model", [("--delay-ms", "2000")], indirect=True)
def test_a_burst_past_the_stream_limit_shares_few_connections(agentd, model):
    # 1 300 calls at once, one loop thread: a connection carries 1 000
    # streams (curl's cap, the server's too); without the per-host cap
    # libcurl 7.88 opened a connection for nearly every call past the
    # first 1 000 (~300)
    srv = agentd(env=env_for(model))
    replies = burst(srv, 1300)
    all_answered(replies, 1300)
    st = model.stats()
    assert st["requests"] >= 1300
    assert st["h1"] <= 1  # only our stats request
    assert st["sessions"] <= H2_HOST_CONNECTIONS + 1, st


@pytest.mark.parametrize("model", [("--h1", "--delay-ms", "1500")], indirect=True)
def test_a_provider_answering_http11_by_alpn_gets_a_connection_per_call(agentd, model):
    srv = agentd(env=env_for(model))
    # cold: the first burst starts on the HTTP/2 handle (capped); the first
    # answer shows HTTP/1.1 and the waiting calls move to the uncapped one
    all_answered(burst(srv, 50), 50)
    assert "answered HTTP/1.1 by ALPN" in srv.log_text()
    # warm: more calls in parallel than the HTTP/2 handle's per-host cap
    all_answered(burst(srv, 60), 60)
    st = model.stats()
    assert st["peak_pending"] > H2_HOST_CONNECTIONS, st
    assert st["sessions"] > H2_HOST_CONNECTIONS, st
