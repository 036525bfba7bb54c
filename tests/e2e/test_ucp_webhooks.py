"""Order webhooks end to end: a stdlib HTTP server on 127.0.0.1 plays the
platform (its profile names the order capability's webhook_url, and it
receives the events). order_placed arrives signed and verifies against the
JWK agentd publishes in /.well-known/ucp; a receiver answering 503 gets the
event once it recovers; events left undelivered by a SIGKILL are delivered
after the restart exactly once per event id; the shipping simulation sends
order_shipped; a receiver that never recovers dead-letters the event; a
webhook host not on the allow-list is never contacted."""

import base64
import json
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from agentd_harness import SLOW, metric_value, parse_metrics
from ucp_client import UCP_VERSION, Client, db_query

SECRET = "webhook-sim-secret-0123456789"
WAIT_S = 5.0 * SLOW
CAPS = ["dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment",
        "dev.ucp.shopping.discount", "dev.ucp.shopping.order"]


class Platform:
    """Profiles at /profile/<name> naming /hooks/<name> (or `hook_host`'s
    URL) as the webhook; records every delivery; answers `status[name]`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []          # (name, status answered, headers, body bytes)
        self.status = {}       # name -> status to answer (default 200)
        self.hook_host = {}    # name -> host to name in the webhook_url
        self.hold = {}         # name -> threading.Event: recorded, then answered once set
        self.only_order = set()  # names whose profile lists only the order capability
        self.keyed = set()     # names whose capabilities are keyed by name (later spec form)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b""):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - stdlib name
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != "profile":
                    return self._reply(404)
                name = parts[1]
                host = owner.hook_host.get(name, "127.0.0.1")
                caps = []
                for c in CAPS:
                    cap = {"name": c, "version": UCP_VERSION}
                    if c.endswith(".order"):
                        cap["config"] = {
                            "webhook_url": f"http://{host}:{owner.port}/hooks/{name}"}
                    elif c != CAPS[0]:
                        cap["extends"] = CAPS[0]
                    if name not in owner.only_order or c.endswith(".order"):
                        caps.append(cap)
                if name in owner.keyed:
                    caps = {c.pop("name"): [c] for c in caps}
                self._reply(200, json.dumps({"ucp": {"version": UCP_VERSION,
                                                     "capabilities": caps}}).encode())

            def do_POST(self):  # noqa: N802 - stdlib name
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                name = self.path.strip("/").split("/")[-1]
                status = owner.status.get(name, 200)
                with owner.lock:
                    owner.got.append((name, status, dict(self.headers), body))
                hold = owner.hold.get(name)
                if hold is not None:
                    hold.wait(30)
                try:
                    self._reply(status, b"{}")
                except OSError:
                    pass  # the sender is gone

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def profile(self, name):
        return f"http://127.0.0.1:{self.port}/profile/{name}"

    def deliveries(self, name):
        with self.lock:
            return [g for g in self.got if g[0] == name]

    def wait_for(self, name, pred, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.deliveries(name)
            if pred(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"{name}: not within {timeout}s; got {self.deliveries(name)}")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ok_events(got):
    return [json.loads(b) for (_, st, _, b) in got if 200 <= st < 300]


@pytest.fixture(scope="module")
def platform():
    p = Platform()
    yield p
    p.close()


def shop_env(platform, **extra):
    env = {"AGENTD_PROFILE_ALLOWLIST": f"127.0.0.1:{platform.port}", "AGENTD_THREADS": "2",
           "AGENTD_SIMULATION_SECRET": SECRET}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def shop(module_agentd, platform):
    return module_agentd(env=shop_env(platform))


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def verify(jwk, sig, body):
    """A detached JWS (RFC 7515 appendix F) checked with `cryptography`."""
    head, empty, s = sig.split(".")
    assert empty == "", "the payload part must be detached (empty)"
    header = json.loads(b64d(head))
    assert header["alg"] == "ES256" and header["kid"] == jwk["kid"], header
    raw = b64d(s)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64d(jwk["x"]), "big"),
                                        int.from_bytes(b64d(jwk["y"]), "big"),
                                        ec.SECP256R1()).public_key()
    pub.verify(der, (head + "." + b64e(body)).encode(), ec.ECDSA(hashes.SHA256()))


def signing_key(server):
    doc = server.get("/.well-known/ucp").json()
    keys = doc["signing_keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "EC" and keys[0]["crv"] == "P-256", keys
    assert "d" not in keys[0]
    return keys[0]


def metric(server, name, **labels):
    return metric_value(parse_metrics(server.get("/metrics").text), name, **labels) or 0.0


def test_order_placed_arrives_signed(shop, platform):
    c = Client(shop, platform.profile("placed"))
    t0 = time.monotonic()
    done = c.purchase()
    got = platform.wait_for("placed", lambda g: ok_events(g))
    assert time.monotonic() - t0 < WAIT_S
    (_, _, headers, body), = got
    event = json.loads(body)
    assert event["event_type"] == "order_placed"
    assert event["checkout_id"] == done["id"]
    assert event["order"]["id"] == done["order"]["id"]
    assert event["order"]["checkout_id"] == done["id"]
    assert "_agentd" not in event["order"]
    assert headers["Webhook-Id"].startswith("evt_")
    assert headers["Content-Type"] == "application/json"
    jwk = signing_key(shop)
    verify(jwk, headers["Request-Signature"], body)
    with pytest.raises(InvalidSignature):
        verify(jwk, headers["Request-Signature"], body.replace(b"order_placed", b"order_plac3d"))
    # the order a platform reads back does not carry our internals either
    assert "_agentd" not in c.order(done["order"]["id"]).json()
    assert "/hooks/" not in c.get(done["id"]).text
    assert metric(shop, "agentd_webhook_deliveries_total", outcome="delivered") >= 1


def test_receiver_down_then_back(shop, platform):
    platform.status["flaky"] = 503
    c = Client(shop, platform.profile("flaky"))
    done = c.purchase()
    platform.wait_for("flaky", lambda g: len(g) >= 1)
    platform.status["flaky"] = 200
    got = platform.wait_for("flaky", lambda g: ok_events(g))
    assert got[0][1] == 503
    ids = {h["Webhook-Id"] for (_, _, h, _) in got}
    assert len(ids) == 1, "every attempt carries the same event id"
    assert ok_events(got)[0]["order"]["id"] == done["order"]["id"]
    assert metric(shop, "agentd_webhook_deliveries_total", outcome="failed") >= 1
    # delivered: no more attempts
    n = len(platform.deliveries("flaky"))
    time.sleep(1.5)
    assert len(platform.deliveries("flaky")) == n


def test_shipping_sends_order_shipped(shop, platform):
    c = Client(shop, platform.profile("ship"))
    done = c.purchase()
    oid = done["order"]["id"]
    platform.wait_for("ship", lambda g: ok_events(g))
    r = c.request("POST", f"/testing/simulate-shipping/{oid}",
                  headers={"Simulation-Secret": SECRET})
    assert r.status_code == 200, r.text
    got = platform.wait_for("ship", lambda g: len(ok_events(g)) >= 2)
    events = ok_events(got)
    assert [e["event_type"] for e in events] == ["order_placed", "order_shipped"]
    shipped = events[1]["order"]
    assert all(li["quantity"]["fulfilled"] == li["quantity"]["total"]
               for li in shipped["line_items"])
    assert len({h["Webhook-Id"] for (_, _, h, _) in got}) == 2
    verify(signing_key(shop), got[-1][2]["Request-Signature"], got[-1][3])


def test_order_puts_send_updated_then_canceled(shop, platform):
    # a PUT /orders/{id} queues its event with the change: a refund is
    # order_updated, a cancellation adjustment order_canceled
    c = Client(shop, platform.profile("put"))
    done = c.purchase()
    oid = done["order"]["id"]
    platform.wait_for("put", lambda g: ok_events(g))
    order = c.order(oid).json()
    when = "2026-01-12T10:00:00Z"
    order["adjustments"] = [{"id": "adj_1", "type": "refund", "occurred_at": when,
                             "status": "pending", "amount": 100}]
    r = c.request("PUT", f"/orders/{oid}", order)
    assert r.status_code == 200, r.text
    order = r.json()
    order["adjustments"].append({"id": "adj_2", "type": "cancellation", "occurred_at": when,
                                 "status": "completed"})
    r = c.request("PUT", f"/orders/{oid}", order)
    assert r.status_code == 200, r.text
    got = platform.wait_for("put", lambda g: len(ok_events(g)) >= 3)
    events = ok_events(got)
    assert [e["event_type"] for e in events] == ["order_placed", "order_updated",
                                                 "order_canceled"]
    assert [a["id"] for a in events[2]["order"]["adjustments"]] == ["adj_1", "adj_2"]
    assert "_agentd" not in events[2]["order"]
    # the receiver kept with the order survives the PUTs (the stored order keeps it)
    verify(signing_key(shop), got[-1][2]["Request-Signature"], got[-1][3])
    assert "_agentd" not in c.order(oid).json()


@pytest.mark.parametrize("form", ["only_order", "keyed"])
def test_an_order_only_or_keyed_profile_names_its_webhook(shop, platform, form):
    # #13 item 1: a profile listing only the order capability (to name its
    # webhook) transacts, and so does the keyed capabilities form
    name = f"form-{form}"
    getattr(platform, form).add(name)
    c = Client(shop, platform.profile(name))
    done = c.purchase()
    got = platform.wait_for(name, lambda g: ok_events(g))
    assert ok_events(got)[0]["order"]["id"] == done["order"]["id"]


def test_webhook_host_not_allowlisted_is_never_contacted(shop, platform):
    # the profile is fetched from 127.0.0.1 (listed); its webhook names
    # localhost (not listed): the SSRF guard refuses the connection
    platform.hook_host["guarded"] = "localhost"
    c = Client(shop, platform.profile("guarded"))
    c.purchase()
    deadline = time.monotonic() + WAIT_S
    rows = []
    while time.monotonic() < deadline:
        rows = db_query(shop, "SELECT attempts, last_error FROM outbox WHERE target LIKE ?",
                        "%/hooks/guarded")
        if rows and rows[0][0] >= 1:
            break
        time.sleep(0.1)
    assert rows and rows[0][0] >= 1, rows
    assert "refused" in rows[0][1] and "AGENTD_PROFILE_ALLOWLIST" in rows[0][1], rows
    assert platform.deliveries("guarded") == []


def test_dead_letter_after_the_bound(module_agentd, platform):
    srv = module_agentd(env=shop_env(platform, AGENTD_WEBHOOK_MAX_ATTEMPTS="2"))
    platform.status["dead"] = 500
    Client(srv, platform.profile("dead")).purchase()
    platform.wait_for("dead", lambda g: len(g) >= 2, timeout=3 * WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and metric(srv, "agentd_webhook_dead_total") < 1:
        time.sleep(0.1)
    assert metric(srv, "agentd_webhook_dead_total") == 1
    rows = db_query(srv, "SELECT state, attempts, last_error FROM outbox")
    assert rows == [("dead", 2, "HTTP 500")], rows
    # the gauge is counted at each poll
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and metric(srv, "agentd_outbox_depth") != 0:
        time.sleep(0.1)
    assert metric(srv, "agentd_outbox_depth") == 0
    time.sleep(1.5)
    assert len(platform.deliveries("dead")) == 2


def test_kill_then_restart_delivers_exactly_once(module_agentd, platform):
    srv = module_agentd(env=shop_env(platform))
    platform.status["crash"] = 503
    c = Client(srv, platform.profile("crash"))
    orders = {c.purchase()["order"]["id"] for _ in range(2)}
    platform.wait_for("crash", lambda g: len({h["Webhook-Id"] for (_, _, h, _) in g}) == 2)
    srv.stop(signal.SIGKILL)
    pending = db_query(srv, "SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0]
    assert pending == 2
    platform.status["crash"] = 200
    srv.start()
    got = platform.wait_for("crash", lambda g: len(ok_events(g)) >= 2, timeout=3 * WAIT_S)
    time.sleep(1.5)  # anything sent twice would be here by now
    got = platform.deliveries("crash")
    ok = [(h["Webhook-Id"], json.loads(b)["order"]["id"]) for (_, st, h, b) in got if st == 200]
    assert len(ok) == 2 and len({i for i, _ in ok}) == 2, ok
    assert {o for _, o in ok} == orders
    assert db_query(srv, "SELECT count(*) FROM outbox WHERE state = 'delivered'")[0][0] == 2


def test_configured_key_is_published_and_kept(module_agentd, platform, tmp_path):
    from cryptography.hazmat.primitives import serialization
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path = tmp_path / "signing.pem"
    path.write_bytes(pem)
    srv = module_agentd(env=shop_env(platform, AGENTD_SIGNING_KEY_FILE=str(path)))
    jwk = signing_key(srv)
    nums = key.public_key().public_numbers()
    assert int.from_bytes(b64d(jwk["x"]), "big") == nums.x
    assert int.from_bytes(b64d(jwk["y"]), "big") == nums.y
    Client(srv, platform.profile("keyed")).purchase()
    (_, _, headers, body), = platform.wait_for("keyed", lambda g: ok_events(g))
    verify(jwk, headers["Request-Signature"], body)
    srv.stop()
    srv.start()
    assert signing_key(srv) == jwk, "the same key, the same kid after a restart"
    assert pem.decode() not in srv.log_text()


def test_check_config_refuses_a_bad_key():
    from agentd_harness import run_cli
    p = run_cli(["check-config"], env={"AGENTD_SIGNING_KEY": "not-a-key-0123456789"})
    assert p.returncode == 2, p.stdout
    assert "AGENTD_SIGNING_KEY: not an EC P-256 private key" in p.stdout
    assert "not-a-key-0123456789" not in p.stdout + p.stderr


def test_killed_mid_send_is_taken_over_at_restart(module_agentd, platform):
    # the receiver holds the first attempt open; agentd is killed while it
    # waits. Its claim's lease (AGENTD_WEBHOOK_TIMEOUT + 5 s = 65 s) is far
    # longer than this test waits: the restart must see the claimant dead.
    srv = module_agentd(env=shop_env(platform, AGENTD_WEBHOOK_TIMEOUT="60s"))
    hold = threading.Event()
    platform.hold["midsend"] = hold
    done = Client(srv, platform.profile("midsend")).purchase()
    platform.wait_for("midsend", lambda g: len(g) >= 1)  # the attempt is in flight
    srv.stop(signal.SIGKILL)
    platform.hold.pop("midsend")
    hold.set()
    srv.start()
    got = platform.wait_for("midsend", lambda g: len(ok_events(g)) >= 2, timeout=3 * WAIT_S)
    ids = {h["Webhook-Id"] for (_, _, h, _) in got}
    assert len(ids) == 1, "the retry after the crash carries the same event id"
    assert ok_events(got)[-1]["order"]["id"] == done["order"]["id"]
