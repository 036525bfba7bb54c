"""UCP capability negotiation from the platform's profile, end to end: a
stdlib HTTP server on 127.0.0.1 plays the platforms (checkout only, checkout +
fulfillment, nothing in common, garbage, too large, slow), agentd fetches
their profiles (allow-listed), negotiates, caches, and degrades to its full
capability set when a profile cannot be used; without the allow-list entry
the loopback server is never contacted (SSRF guard)."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentd_harness import SLOW, metric_value, parse_metrics, run_cli
from ucp_client import (CAPABILITIES, UCP_VERSION, Client, check_checkout, check_error,
                        full_body, lines)

CHECKOUT = "dev.ucp.shopping.checkout"
FULFILLMENT = "dev.ucp.shopping.fulfillment"
DISCOUNT = "dev.ucp.shopping.discount"
ORDER = "dev.ucp.shopping.order"
CONSENT = "dev.ucp.shopping.buyer_consent"
FETCH_TIMEOUT_S = 2.0


def cap(name, extends=None):
    c = {"name": name, "version": UCP_VERSION,
         "spec": "https://ucp.dev/specification/" + name.rsplit(".", 1)[-1],
         "schema": "https://ucp.dev/schemas/shopping/" + name.rsplit(".", 1)[-1] + ".json"}
    if extends:
        c["extends"] = extends
    return c


def profile(*caps):
    return json.dumps({"ucp": {"version": UCP_VERSION, "capabilities": list(caps)},
                       "payment": {"handlers": []}}).encode()


# path -> (status, headers, body, delay_s)
ROUTES = {
    "/checkout-only": (200, {"Cache-Control": "public, max-age=300"}, profile(cap(CHECKOUT)), 0),
    "/checkout-fulfillment": (200, {}, profile(cap(CHECKOUT), cap(FULFILLMENT, CHECKOUT)), 0),
    # no checkout listed: calling a checkout endpoint implies it, so the
    # listed discount extension stays
    "/none": (200, {}, profile(cap("com.example.loyalty"), cap(DISCOUNT, CHECKOUT)), 0),
    # what a platform written against the sample merchants lists: only the
    # order capability (to name its webhook_url)
    "/order-only": (200, {}, profile(cap(ORDER)), 0),
    "/consent": (200, {}, profile(cap(CHECKOUT), cap(CONSENT, CHECKOUT)), 0),
    # the keyed form of later versions and the samples
    "/keyed": (200, {}, json.dumps({"ucp": {"version": UCP_VERSION, "capabilities": {
        ORDER: [{"version": UCP_VERSION}], FULFILLMENT: [{"version": UCP_VERSION}]}}}).encode(),
        0),
    "/garbage": (200, {}, b"<html>this is not a profile</html>", 0),
    "/big": (200, {}, b'{"ucp":{"capabilities":[' + b" " * (300 * 1024) + b"]}}", 0),
    "/slow": (200, {}, profile(cap(CHECKOUT)), 4.0),
    "/coalesce": (200, {}, profile(cap(CHECKOUT)), 0.5),
}


class ProfileServer:
    """Platform profiles on 127.0.0.1; counts requests per path+query."""

    def __init__(self):
        self.hits = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - stdlib name
                with owner.lock:
                    owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                route = ROUTES.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, body, delay = route
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the fetcher gave up (timeout, size cap)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        """A fresh URL for path (its own cache entry in agentd)."""
        return f"http://127.0.0.1:{self.port}{path}?t={uuid.uuid4().hex[:10]}"

    def count(self, url):
        path = url.split(str(self.port), 1)[1]
        with self.lock:
            return self.hits.get(path, 0)

    def total(self):
        with self.lock:
            return sum(self.hits.values())

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def platforms():
    s = ProfileServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def shop(module_agentd, platforms):
    return module_agentd(env={"AGENTD_PROFILE_ALLOWLIST": f"127.0.0.1:{platforms.port}",
                              "AGENTD_THREADS": "2"})


@pytest.fixture(scope="module")
def guarded(module_agentd):
    """No allow-list: loopback profiles are refused."""
    return module_agentd(env={"AGENTD_THREADS": "2"})


def cap_names(doc):
    return {c["name"] for c in doc["ucp"]["capabilities"]}


def fetches(server, outcome):
    v = metric_value(parse_metrics(server.get("/metrics").text),
                     "agentd_ucp_profile_fetch_total", outcome=outcome)
    return v or 0.0


def body_with_everything():
    return full_body((("BISC-001", 2),), codes=["10OFF"])


# ---- negotiated ----

def test_checkout_only_platform(shop, platforms):
    c = Client(shop, platforms.url("/checkout-only"))
    r = c.create(body_with_everything())
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    assert cap_names(doc) == {CHECKOUT}
    # the pruned extensions are inactive both ways: no fields in the reply,
    # and what the request said about them did not apply
    assert "fulfillment" not in doc and "discounts" not in doc, sorted(doc)
    types = {t["type"] for t in doc["totals"]}
    assert "fulfillment" not in types and "discount" not in types, doc["totals"]
    r = c.get(doc["id"])
    assert r.status_code == 200
    assert cap_names(r.json()) == {CHECKOUT}
    assert "fulfillment" not in r.json()


def test_consent_not_negotiated_is_inactive(shop, platforms):
    c = Client(shop, platforms.url("/checkout-only"))
    body = body_with_everything()
    body["buyer"]["consent"] = {"analytics": True}
    r = c.create(body)
    assert r.status_code == 201, r.text
    assert "consent" not in r.json()["buyer"]
    c2 = Client(shop, platforms.url("/consent"))
    r = c2.create(body)
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == {CHECKOUT, CONSENT}
    assert r.json()["buyer"]["consent"] == {"analytics": True}


def test_checkout_and_fulfillment_platform(shop, platforms):
    c = Client(shop, platforms.url("/checkout-fulfillment"))
    r = c.create(body_with_everything())
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    assert cap_names(doc) == {CHECKOUT, FULFILLMENT}
    assert "fulfillment" in doc
    assert "discounts" not in doc
    assert "fulfillment" in {t["type"] for t in doc["totals"]}
    r = c.update(doc["id"], {"line_items": lines(("BISC-001", 3))})
    assert r.status_code == 200, r.text
    assert cap_names(r.json()) == {CHECKOUT, FULFILLMENT}


def test_idempotent_create_under_negotiation(shop, platforms):
    c = Client(shop, platforms.url("/checkout-only"))
    r1 = c.create({"line_items": lines(("BISC-001", 1))}, key="neg-k1")
    r2 = c.create({"line_items": lines(("BISC-001", 1))}, key="neg-k1")
    assert r1.status_code == r2.status_code == 201, (r1.text, r2.text)
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert r1.json()["id"] == r2.json()["id"]
    assert cap_names(r2.json()) == {CHECKOUT}


def test_checkout_is_implied_by_the_endpoint(shop, platforms):
    url = platforms.url("/none")
    c = Client(shop, url)
    r = c.create(body_with_everything())
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    assert cap_names(doc) == {CHECKOUT, DISCOUNT}
    assert "discounts" in doc and "fulfillment" not in doc
    r = c.get(doc["id"])  # the same from the cache, for reads too
    assert r.status_code == 200 and cap_names(r.json()) == {CHECKOUT, DISCOUNT}
    assert platforms.count(url) == 1


def test_order_only_profile_transacts(shop, platforms):
    c = Client(shop, platforms.url("/order-only"))
    r = c.create(full_body((("BISC-001", 1),)))
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    # nothing said about checkout: checkout as we offer it, with its extensions
    assert cap_names(doc) == CAPABILITIES
    assert doc["status"] == "ready_for_complete", doc["messages"]
    r = c.complete(doc["id"], body={"payment_data": {
        "id": "instr_1", "handler_id": "mock_payment_handler", "type": "card",
        "credential": {"type": "token", "token": "success_token"}}})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "completed", done
    assert cap_names(done) == CAPABILITIES
    o = c.order(done["order"]["id"])
    assert o.status_code == 200, o.text


def test_keyed_capabilities_profile(shop, platforms):
    c = Client(shop, platforms.url("/keyed"))
    r = c.create(body_with_everything())
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == {CHECKOUT, FULFILLMENT, ORDER}


@pytest.mark.parametrize("form", [
    'profile="{u}"; version="2026-01-11"',
    'profile="{u}";version="2026-01-11";trace=?1',
    'profile="{u}", version="2026-01-11"',
    'profile="{u}";note="x", version="2025-12-01", other=1;a=2',
])
def test_ucp_agent_forms(shop, platforms, form):
    c = Client(shop, platforms.url("/checkout-only"))
    r = c.session.post(shop.url + "/checkout-sessions",
                       json={"line_items": lines(("BISC-001", 1))},
                       headers={"UCP-Agent": form.format(u=c.profile)}, timeout=10)
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == {CHECKOUT}


@pytest.mark.parametrize("form", [
    'profile="{u}"; version="2099-01-01"',
    'profile="{u}", version="2099-01-01"',
])
def test_unsupported_version_in_either_form(shop, platforms, form):
    c = Client(shop, platforms.url("/checkout-only"))
    r = c.session.post(shop.url + "/checkout-sessions",
                       json={"line_items": lines(("BISC-001", 1))},
                       headers={"UCP-Agent": form.format(u=c.profile)}, timeout=10)
    check_error(r, 400, "version_unsupported")


@pytest.mark.parametrize("path", ["/garbage", "/big"])
def test_unusable_profile_degrades_to_full_set(shop, platforms, path):
    url = platforms.url(path)
    before = fetches(shop, "error")
    mark = shop.mark()
    c = Client(shop, url)
    r = c.create({"line_items": lines(("BISC-001", 1))})
    assert r.status_code == 201, r.text
    assert cap_names(check_checkout(r.json())) == CAPABILITIES
    assert fetches(shop, "error") == before + 1
    assert platforms.count(url) == 1
    warned = shop.new_lines(mark, msg="ucp platform profile unusable: negotiating with our full "
                            "capability set")
    assert warned and warned[0]["outcome"] == "error" and warned[0]["level"] == "warn", warned
    # a remembered failure: no second fetch, no second warning, still served
    for _ in range(3):
        assert c.create({"line_items": lines(("BISC-001", 1))}).status_code == 201
    assert platforms.count(url) == 1
    assert fetches(shop, "error") == before + 1


def test_slow_profile_degrades_within_the_timeout(shop, platforms):
    url = platforms.url("/slow")
    before = fetches(shop, "error")
    c = Client(shop, url)
    t0 = time.monotonic()
    r = c.create({"line_items": lines(("BISC-001", 1))})
    took = time.monotonic() - t0
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == CAPABILITIES
    assert FETCH_TIMEOUT_S - 0.2 <= took < FETCH_TIMEOUT_S + 1.5 * SLOW, took
    assert fetches(shop, "error") == before + 1
    # other requests were served meanwhile: the loop never blocked (checked
    # by the next request being fast, from the negative cache)
    t0 = time.monotonic()
    assert c.create({"line_items": lines(("BISC-001", 1))}).status_code == 201
    assert time.monotonic() - t0 < 1.0 * SLOW


def test_loop_serves_others_while_a_fetch_waits(shop, platforms):
    slow = Client(shop, platforms.url("/slow"))
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(slow.create, {"line_items": lines(("BISC-001", 1))})
        time.sleep(0.3)
        t0 = time.monotonic()
        for _ in range(5):
            assert shop.get("/healthz").status_code == 200
        assert time.monotonic() - t0 < 1.0 * SLOW
        assert fut.result(timeout=10).status_code == 201


# ---- the SSRF guard ----

def test_loopback_profile_not_on_allow_list_is_never_fetched(guarded, platforms):
    url = platforms.url("/checkout-only")
    before = fetches(guarded, "refused")
    mark = guarded.mark()
    c = Client(guarded, url)
    r = c.create({"line_items": lines(("BISC-001", 1))})
    assert r.status_code == 201, r.text
    assert cap_names(check_checkout(r.json())) == CAPABILITIES  # degraded, not negotiated
    assert platforms.count(url) == 0
    assert fetches(guarded, "refused") == before + 1
    warned = guarded.new_lines(mark, msg="ucp platform profile unusable: negotiating with our "
                               "full capability set")
    assert warned and warned[0]["outcome"] == "refused", warned
    assert "loopback" in warned[0]["reason"], warned
    # names resolving to loopback too
    named = url.replace("127.0.0.1", "localhost")
    assert Client(guarded, named).create({"line_items": lines(("BISC-001", 1))}).status_code == 201
    assert platforms.count(named) == 0
    # metadata address: refused before any connection attempt could leak
    meta = Client(guarded, "http://169.254.169.254/latest/meta-data/" + uuid.uuid4().hex)  # never contacted: the SSRF guard refuses it
    t0 = time.monotonic()
    assert meta.create({"line_items": lines(("BISC-001", 1))}).status_code == 201
    assert time.monotonic() - t0 < 1.0 * SLOW


def test_unresolvable_profile_keeps_working(shop):
    """What every other e2e test relies on: https://platform.example/...
    does not resolve here; requests are served with the full set."""
    before = fetches(shop, "error")
    c = Client(shop, f"https://platform.example/{uuid.uuid4().hex}")
    r = c.create({"line_items": lines(("BISC-001", 1))})
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == CAPABILITIES
    assert fetches(shop, "error") == before + 1


# ---- the cache ----

def test_one_fetch_for_many_calls_within_max_age(shop, platforms):
    url = platforms.url("/checkout-only")
    before = fetches(shop, "cached")
    c = Client(shop, url)
    doc = check_checkout(c.create_ok({"line_items": lines(("BISC-001", 1))}))
    for _ in range(10):
        r = c.get(doc["id"])
        assert r.status_code == 200 and cap_names(r.json()) == {CHECKOUT}
    assert platforms.count(url) == 1
    assert fetches(shop, "cached") >= before + 10


def test_concurrent_first_requests_do_not_stampede(shop, platforms):
    url = platforms.url("/coalesce")  # answers after 0.5 s
    c = Client(shop, url)
    n = 16
    with ThreadPoolExecutor(n) as pool:
        rs = list(pool.map(lambda _: c.create({"line_items": lines(("BISC-001", 1))}), range(n)))
    assert all(r.status_code == 201 for r in rs), [r.text for r in rs if r.status_code != 201]
    assert all(cap_names(r.json()) == {CHECKOUT} for r in rs)
    # at most one fetch per loop thread (AGENTD_THREADS=2)
    assert 1 <= platforms.count(url) <= 2, platforms.count(url)


def test_metric_is_exposed_with_every_outcome(shop):
    samples = parse_metrics(shop.get("/metrics").text)
    for outcome in ("ok", "cached", "refused", "error"):
        assert metric_value(samples, "agentd_ucp_profile_fetch_total", outcome=outcome) \
            is not None, outcome


def test_bad_allow_list_is_a_config_problem():
    r = run_cli(["check-config"], env={"AGENTD_PROFILE_ALLOWLIST": "ok.example,bad:0,https://x"})
    out = r.stdout + r.stderr
    assert r.returncode != 0
    problems = [l for l in out.splitlines() if "AGENTD_PROFILE_ALLOWLIST:" in l]
    assert len(problems) == 2, out  # one problem per bad entry
    assert "bad:0" in problems[0] and "https://x" in problems[1], problems
    r = run_cli(["check-config"], env={"AGENTD_PROFILE_ALLOWLIST": "127.0.0.1:8285,[::1]"})
    assert r.returncode == 0, r.stderr
    assert "AGENTD_PROFILE_ALLOWLIST=127.0.0.1:8285,[::1]" in r.stdout


def test_production_takes_http_profiles_only_from_listed_hosts(agentd, platforms):
    srv = agentd(env={"AGENTD_ENV": "production", "AGENTD_AUTH": "on",
                      "AGENTD_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
                      "AGENTD_LLM_URL": "http://127.0.0.1:9/v1", "AGENTD_LLM_MODEL": "m",
                      "AGENTD_LLM_API_KEY": "k",
                      "AGENTD_PROFILE_ALLOWLIST": f"127.0.0.1:{platforms.port}"})
    r = Client(srv, platforms.url("/checkout-only")).create({"line_items": lines(("BISC-001", 1))})
    assert r.status_code == 201, r.text
    assert cap_names(r.json()) == {CHECKOUT}
    other = f"http://127.0.0.1:{platforms.port + 1 if platforms.port < 65535 else 1}/p"
    r = Client(srv, other).create({"line_items": lines(("BISC-001", 1))})
    check_error(r, 400, "invalid", content_has="https")
