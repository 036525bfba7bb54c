"""UCP's sample A2A chat client, unchanged, buying from agentd in headless Chromium.

The pinned client (fixture, read-only) is copied to the test's tmp dir, given its npm
dependencies from the cache tests/js/chat-client-deps fills (keyed by its own lock file),
built with `vite build`, and served by a small front server here that does what the
client's Vite dev server does: serve the app, proxy `/api` to agentd's root, and serve
`/profile/agent_profile.json`. tests/js/sample_client.mjs then walks the purchase with
playwright-core: search, Add to Checkout, Start Payment, buyer details typed in one
message, Complete Payment, pick a card, Confirm Purchase → "Order ID: …" on the page.

The client's UCP-Agent header names http://localhost:3000/profile/agent_profile.json (its
dev server's port). The front server listens on a free port instead (parallel test runs
cannot share 3000), so its proxy rewrites that one origin in the header to its own
127.0.0.1:PORT, which agentd is told to allow (AGENTD_PROFILE_ALLOWLIST). Nothing else in
the request or the response is touched."""

import http.client
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentd_harness import HOST, parse_metrics
from js_tools import (CHROMIUM, JS_DIR, describe, require, require_js_modules, run_node,
                      samples_dir)

CLIENT_ORIGIN = "http://localhost:3000"
BUILD_TIMEOUT = 120
DRIVE_TIMEOUT = 200  # the browser launch (up to 90 s on a cold machine) + the walk (90 s)


class Front(ThreadingHTTPServer):
    """The built app + /profile from the client copy, /api proxied to agentd."""
    daemon_threads = True

    def __init__(self, app_dir, dist_dir):
        self.app_dir = Path(app_dir)
        self.dist_dir = Path(dist_dir)
        self.upstream = None          # (host, port) of agentd, set once it runs
        self.lock = threading.Lock()
        self.profile_fetches = 0
        self.api_calls = []           # (status, UCP-Agent sent upstream)
        super().__init__((HOST, 0), FrontHandler)
        self.port = self.server_address[1]
        self.origin = f"http://{HOST}:{self.port}"


class FrontHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path.startswith("/profile/"):
            with self.server.lock:
                self.server.profile_fetches += 1
            return str(self.server.app_dir / path.lstrip("/"))
        if path in ("", "/"):
            path = "/index.html"
        return str(self.server.dist_dir / path.lstrip("/"))

    def do_POST(self):
        if not (self.path == "/api" or self.path.startswith("/api/")):
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        for k in list(headers):
            if k.lower() == "ucp-agent":
                headers[k] = headers[k].replace(CLIENT_ORIGIN, self.server.origin)
        path = self.path[len("/api"):] or "/"
        conn = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            with self.server.lock:
                self.server.api_calls.append((resp.status, headers.get("UCP-Agent")))
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            conn.close()


@pytest.fixture
def built_client(tmp_path):
    """The sample client copied to tmp, its cached node_modules linked in, built."""
    client = samples_dir() / "a2a-chat-client"
    require(client.is_dir(), f"UCP sample chat client fixture ({client})")
    require(shutil.which("node") and shutil.which("npm"), "node/npm")
    require_js_modules("playwright-core")
    require(os.access(CHROMIUM, os.X_OK), f"chromium ({CHROMIUM})")
    deps = subprocess.run([str(JS_DIR / "chat-client-deps"), str(samples_dir())],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    assert deps.returncode == 0, f"chat-client-deps failed:\n{deps.stderr[-4000:]}"
    app = tmp_path / "chat-client"
    shutil.copytree(client, app, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (app / "node_modules").symlink_to(Path(deps.stdout.strip()) / "node_modules")
    dist = tmp_path / "dist"
    build = subprocess.run(["node", "node_modules/vite/bin/vite.js", "build", "--outDir",
                            str(dist), "--emptyOutDir", "--logLevel", "warn"],
                           cwd=app, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                           stdin=subprocess.DEVNULL)
    assert build.returncode == 0, f"vite build failed:\n{build.stdout[-3000:]}{build.stderr[-3000:]}"
    assert (dist / "index.html").is_file()
    return app, dist


@pytest.fixture
def front(built_client):
    app, dist = built_client
    srv = Front(app, dist)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_sample_client_buys_from_agentd(agentd, front, tmp_path):
    srv = agentd(env={"AGENTD_PROFILE_ALLOWLIST": f"{HOST}:{front.port}"})
    front.upstream = (HOST, srv.port)

    shot = tmp_path / "sample-client-failure.png"
    report, proc = run_node(["sample_client.mjs", "--url", front.origin + "/",
                             "--screenshot", str(shot), "--chromium", CHROMIUM],
                            timeout=DRIVE_TIMEOUT)
    where = f"\nscreenshot: {shot}" if shot.exists() else ""
    assert report is not None and proc.returncode == 0 and report["failed"] is None, \
        describe(report, proc) + where

    # The page shows the order agentd placed.
    assert report["orderConfirmed"], describe(report, proc)
    order_id = report["orderId"]
    assert order_id, describe(report, proc)

    # Every call was a 0.3 message/send the client made unchanged; none failed.
    methods = [ex["request"]["method"] for ex in report["exchanges"]]
    assert methods and set(methods) == {"message/send"}, methods
    bad = [ex for ex in report["exchanges"] if ex["status"] != 200 or ex["error"]]
    assert not bad, bad
    assert len({ex["result"]["contextId"] for ex in report["exchanges"]}) == 1, \
        "the client's contextId must carry the whole purchase"
    last = report["exchanges"][-1]
    assert last["result"]["state"] == "completed", last

    # The order on the page is the one agentd answered with, and agentd placed it.
    assert last["result"]["orderId"] == order_id, last
    orders = sum(v for n, _, v in parse_metrics(srv.get("/metrics").text)
                 if n == "agentd_orders_total")
    assert orders == 1, orders

    # agentd fetched the client's UCP profile (named by its UCP-Agent header) through its
    # outbound guard, which the allow-list opened for the front server.
    assert all(p == f'profile="{front.origin}/profile/agent_profile.json"'
               for _, p in front.api_calls), front.api_calls
    assert front.profile_fetches >= 1, "agentd never fetched the UCP-Agent profile"
