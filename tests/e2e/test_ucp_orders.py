"""UCP orders (#13 item 4): GET after completion, PUT /orders/{id} (append-only
fulfillment events and adjustments, validated; If-Match versions; Idempotency-Key),
the shipping simulation's shipped event, another principal's order, and the
buyer's permalink page (HTML behind the token in the link)."""

import re
import urllib.parse

import pytest
import requests

from agentd_harness import REPO
from ucp_client import Client, check_error, check_order, db_query, unique_profile

SECRET = "sim-secret-orders"
WHEN = "2026-01-12T10:00:00Z"


@pytest.fixture(scope="module")
def shop(module_agentd):
    return module_agentd(env={"AGENTD_CATALOG": str(REPO / "data" / "catalog.json"),
                              "AGENTD_SIMULATION_SECRET": SECRET})


@pytest.fixture
def client(shop):
    return Client(shop, unique_profile("orders"))


def placed(client, items=(("BISC-001", 2), ("CHIPS-001", 1))):
    done = client.purchase(items)
    r = client.order(done["order"]["id"])
    assert r.status_code == 200, r.text
    return check_order(r.json()), etag_of(r)


def etag_of(r):
    """The order version as an If-Match value ("7", not the gzip variant's "7-gzip")."""
    return '"%d"' % int(r.headers["ETag"].strip('"').removesuffix("-gzip"))


def put(client, oid, body, **kw):
    return client.request("PUT", f"/orders/{oid}", body, **kw)


def test_get_after_completion_keeps_destination_and_expectations(client):
    order, etag = placed(client)
    assert etag == '"1"'
    exp = order["fulfillment"]["expectations"]
    assert len(exp) == 1 and exp[0]["destination"]["address_country"] == "US"
    assert order["fulfillment"]["events"] == [] and order["adjustments"] == []


def test_put_refund_adjustment_and_fulfillment_event(client):
    order, etag = placed(client)
    oid, li = order["id"], order["line_items"]
    order["adjustments"] = [{"id": "adj_1", "type": "refund", "occurred_at": WHEN,
                             "status": "pending", "amount": 100,
                             "line_items": [{"id": li[0]["id"], "quantity": 1}],
                             "description": "Damaged box"}]
    order["fulfillment"]["events"] = [{"id": "ev_1", "type": "shipped", "occurred_at": WHEN,
                                       "line_items": [{"id": li[0]["id"], "quantity": 2}],
                                       "carrier": "UPS", "tracking_number": "1Z999",
                                       "tracking_url": "https://tracking.example/1Z999"}]
    r = put(client, oid, order, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    got = check_order(r.json())
    assert etag_of(r) == '"2"'
    assert got["adjustments"][0]["status"] == "pending"
    assert got["fulfillment"]["events"][0]["carrier"] == "UPS"
    assert [(x["quantity"]["fulfilled"], x["status"]) for x in got["line_items"]] == \
        [(2, "fulfilled"), (0, "processing")]
    # the refund completes: a status may move on; the entry stays otherwise
    got["adjustments"][0]["status"] = "completed"
    r = put(client, oid, got)
    assert r.status_code == 200, r.text
    again = check_order(client.order(oid).json())
    assert again["adjustments"][0]["status"] == "completed"
    assert db_query(_SERVER[0], "SELECT version FROM orders WHERE id = ?", oid) == [(3,)]
    rows = db_query(_SERVER[0],
                    "SELECT outcome FROM audit WHERE action = 'order.update' AND target = ?", oid)
    assert rows == [("ok",), ("ok",)]


_SERVER = []  # the module's server, for db_query


@pytest.fixture(autouse=True)
def _remember(shop):
    _SERVER[:] = [shop]


@pytest.mark.parametrize("mutate,path", [
    (lambda o, li: o["adjustments"].append({"id": "a", "type": "refund", "occurred_at": WHEN,
                                            "status": "done"}), "$.adjustments[0].status"),
    (lambda o, li: o["adjustments"].append({"id": "a", "type": "refund", "occurred_at": "yesterday",
                                            "status": "pending"}), "$.adjustments[0].occurred_at"),
    (lambda o, li: o["fulfillment"]["events"].append(
        {"id": "e", "type": "shipped", "occurred_at": WHEN,
         "line_items": [{"id": li, "quantity": 99}]}), "$.fulfillment.events[0].line_items"),
    (lambda o, li: o["fulfillment"]["events"].append(
        {"id": "e", "type": "shipped", "occurred_at": WHEN,
         "line_items": [{"id": "li_nope", "quantity": 1}]}), "$.fulfillment.events[0].line_items"),
    (lambda o, li: o.__setitem__("adjustments", "refund please"), "$.adjustments"),
    (lambda o, li: o.__setitem__("id", "ord_other"), "$.id"),
])
def test_put_invalid_is_422(client, mutate, path):
    order, _ = placed(client, (("BISC-001", 1),))
    oid = order["id"]
    mutate(order, order["line_items"][0]["id"])
    err = check_error(put(client, oid, order), 422)
    assert err.get("path") == path, err
    after = check_order(client.order(oid).json())
    assert after["adjustments"] == [] and after["fulfillment"]["events"] == []


def test_put_malformed_and_append_only(client):
    order, _ = placed(client, (("BISC-001", 1),))
    check_error(client.request("PUT", f"/orders/{order['id']}", raw=b"{not json"), 400)
    order["adjustments"] = [{"id": "a1", "type": "credit", "occurred_at": WHEN,
                             "status": "completed", "amount": 50}]
    assert put(client, order["id"], order).status_code == 200
    order["adjustments"] = []          # dropping an entry: the log is append-only
    check_error(put(client, order["id"], order), 422, content_has="append-only")
    order["adjustments"] = [{"id": "a1", "type": "credit", "occurred_at": WHEN,
                             "status": "completed", "amount": 5000}]  # changed amount
    check_error(put(client, order["id"], order), 422)


def test_put_wrong_version_is_409_and_two_writers_both_land(client):
    order, etag = placed(client, (("BISC-001", 1),))
    oid = order["id"]
    a = dict(order, adjustments=[{"id": "x1", "type": "credit", "occurred_at": WHEN,
                                  "status": "pending"}])
    assert put(client, oid, a, headers={"If-Match": etag}).status_code == 200
    b = dict(order, adjustments=[{"id": "x2", "type": "credit", "occurred_at": WHEN,
                                  "status": "pending"}])
    check_error(put(client, oid, b, headers={"If-Match": etag}), 409, "version_conflict")
    assert [x["id"] for x in check_order(client.order(oid).json())["adjustments"]] == ["x1"]


def test_put_idempotency_key_replays(client):
    order, _ = placed(client, (("BISC-001", 1),))
    order["adjustments"] = [{"id": "i1", "type": "refund", "occurred_at": WHEN,
                             "status": "pending", "amount": 10}]
    r1 = put(client, order["id"], order, key="order-put-1")
    r2 = put(client, order["id"], order, key="order-put-1")
    assert r1.status_code == r2.status_code == 200
    assert r2.headers.get("Idempotent-Replayed") == "true"
    assert db_query(_SERVER[0], "SELECT version FROM orders WHERE id = ?", order["id"]) == [(2,)]


def test_shipping_simulation_appends_a_shipped_event(shop, client):
    order, _ = placed(client)
    r = shop.request("POST", f"/testing/simulate-shipping/{order['id']}",
                     headers={"Simulation-Secret": SECRET})
    assert r.status_code == 200, r.text
    got = check_order(client.order(order["id"]).json())
    [ev] = got["fulfillment"]["events"]
    assert ev["type"] == "shipped" and ev["carrier"] and ev["tracking_number"]
    assert ev["tracking_url"].startswith("https://") and ev["tracking_number"] in ev["tracking_url"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ev["occurred_at"])
    assert sorted((x["id"], x["quantity"]) for x in ev["line_items"]) == \
        sorted((x["id"], x["quantity"]["total"]) for x in got["line_items"])
    assert all(x["status"] == "fulfilled" for x in got["line_items"])
    # nothing left to ship: a second simulation changes nothing
    r = shop.request("POST", f"/testing/simulate-shipping/{order['id']}",
                     headers={"Simulation-Secret": SECRET})
    assert r.status_code == 409
    assert len(check_order(client.order(order["id"]).json())["fulfillment"]["events"]) == 1


def browser(url, **kw):
    return requests.get(url, headers={"Accept": "text/html,application/xhtml+xml"}, timeout=10,
                        **kw)


def test_permalink_page_for_a_person(shop, client):
    order, _ = placed(client)
    link = order["permalink_url"]
    assert link.startswith(f"{shop.url}/orders/{order['id']}/status?t=")
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["t"][0]
    assert len(token) >= 22                              # >= 128 bits
    # the token is kept only as its hash
    [(h,)] = db_query(shop, "SELECT access_hash FROM orders WHERE id = ?", order["id"])
    assert h and token not in h and len(h) == 64
    order["fulfillment"]["events"] = [{"id": "ev", "type": "processing", "occurred_at": WHEN,
                                       "line_items": [],
                                       "description": "<script>alert(1)</script>"}]
    assert put(client, order["id"], order).status_code == 200
    r = browser(link)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert order["id"] in r.text and "Processing" in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script" not in r.text
    assert "http" not in r.text.split("</head>")[0].replace('http-equiv', '')  # no external asset
    shop.request("POST", f"/testing/simulate-shipping/{order['id']}",
                 headers={"Simulation-Secret": SECRET})
    assert "Shipped" in browser(link).text


def test_permalink_without_the_right_token_is_404(shop, client):
    order, _ = placed(client, (("BISC-001", 1),))
    base = f"{shop.url}/orders/{order['id']}/status"
    for url in (base, base + "?t=", base + "?t=" + "A" * 32,
                f"{shop.url}/orders/ord_{'0' * 24}/status?t=" + "A" * 32):
        r = browser(url)
        assert r.status_code == 404, (url, r.status_code)
        assert r.json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def authed(module_agentd):
    return module_agentd(env={"AGENTD_AUTH": "on"})


def test_another_principals_order_is_404_and_the_page_needs_no_key(authed):
    alice = Client(authed, unique_profile("alice"), key=authed.principal_key("alice"))
    bob = Client(authed, unique_profile("bob"), key=authed.principal_key("bob"))
    order, _ = placed(alice, (("BISC-001", 1),))
    check_error(bob.order(order["id"]), 404, "not_found")
    order["adjustments"] = [{"id": "b", "type": "refund", "occurred_at": WHEN,
                             "status": "pending"}]
    check_error(put(bob, order["id"], order), 404, "not_found")
    assert put(alice, order["id"], order).status_code == 200
    # the permalink page is public in the auth table: the token is its key
    assert browser(order["permalink_url"]).status_code == 200
    assert browser(order["permalink_url"] + "x").status_code == 404
    # the JSON API path still needs a key
    assert requests.get(f"{authed.url}/orders/{order['id']}", timeout=10).status_code == 401


# ---- a platform that did not negotiate the fulfillment extension ----

@pytest.fixture(scope="module")
def checkout_only_profile():
    """One platform profile on 127.0.0.1 listing checkout and order only."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from ucp_client import UCP_VERSION

    def cap(name):
        return {"name": name, "version": UCP_VERSION,
                "spec": "https://ucp.dev/specification/" + name.rsplit(".", 1)[-1]}
    body = json.dumps({"ucp": {"version": UCP_VERSION, "capabilities": [
        cap("dev.ucp.shopping.checkout"), cap("dev.ucp.shopping.order")]}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def negotiating(module_agentd, checkout_only_profile):
    return module_agentd(env={"AGENTD_PROFILE_ALLOWLIST": f"127.0.0.1:{checkout_only_profile}"})


def test_order_events_apply_without_the_fulfillment_extension(negotiating, checkout_only_profile):
    order, _ = placed(Client(negotiating, unique_profile("full")), (("BISC-001", 1),))
    plain = Client(negotiating, f"http://127.0.0.1:{checkout_only_profile}/p")
    # an order's fulfillment log belongs to the order capability, not the extension
    order["fulfillment"]["events"] = [{"id": "e1", "type": "shipped", "occurred_at": WHEN,
                                       "line_items": [{"id": order["line_items"][0]["id"],
                                                       "quantity": 1}],
                                       "carrier": "UPS", "tracking_number": "1",
                                       "tracking_url": "https://tracking.example/1"}]
    r = put(plain, order["id"], order)
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["ucp"]["capabilities"]] == \
        ["dev.ucp.shopping.checkout", "dev.ucp.shopping.order"]
    assert len(r.json()["fulfillment"]["events"]) == 1
