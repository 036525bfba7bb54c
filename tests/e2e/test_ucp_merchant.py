"""UCP merchant behaviour the sample merchants (Universal-Commerce-Protocol/
samples) show where the spec leaves room: the buyer is optional, the
catalog's prices and titles win over the request, their error texts with a
top-level `detail`, and buyer consent (dev.ucp.shopping.buyer_consent)
accepted, echoed, stored and copied into the order."""

import pytest

from ucp_client import (CATALOG, Client, check_checkout, check_error, check_order, full_body,
                        lines, price_of, stock_of, unique_profile)


@pytest.fixture
def client(server):
    return Client(server, unique_profile("merchant"))


def product_title(pid):
    for p in CATALOG["products"]:
        if p["productID"] == pid:
            return p["name"]
    raise KeyError(pid)


# ---- the buyer is optional ----

def test_completion_with_no_buyer(client):
    body = full_body()
    del body["buyer"]
    doc = client.create_ok(body)
    assert "buyer" not in doc
    assert doc["status"] == "ready_for_complete", doc["messages"]
    r = client.complete(doc["id"])
    assert r.status_code == 200, r.text
    done = check_checkout(r.json())
    assert done["status"] == "completed"
    o = client.order(done["order"]["id"])
    assert o.status_code == 200, o.text
    assert "buyer" not in o.json()


def test_buyer_email_goes_to_the_order(client):
    done = client.purchase()
    o = check_order(client.order(done["order"]["id"]).json())
    assert o["buyer"]["email"] == "jane@example.com", o


def test_a_given_email_must_still_be_one(client):
    doc = client.create_ok(full_body(email="not-an-address"))
    assert doc["status"] == "incomplete"
    assert ("invalid", "$.buyer.email") in {(m["code"], m.get("path")) for m in doc["messages"]}


# ---- authoritative prices ----

def test_price_and_title_tampering_is_ignored(client):
    body = full_body((("BISC-001", 2),))
    body["line_items"][0]["item"].update({"price": 1, "title": "FREE COOKIES"})
    body["totals"] = [{"type": "total", "amount": 1}]
    doc = client.create_ok(body)
    item = doc["line_items"][0]["item"]
    assert item["price"] == price_of(CATALOG, "BISC-001")
    assert item["title"] == product_title("BISC-001")
    # and on update
    put = {"line_items": [{"item": {"id": "BISC-001", "price": 0, "title": "x"}, "quantity": 1}]}
    r = client.update(doc["id"], put)
    assert r.status_code == 200, r.text
    item = r.json()["line_items"][0]["item"]
    assert item["price"] == price_of(CATALOG, "BISC-001") and item["title"] != "x"
    totals = {t["type"]: t["amount"] for t in r.json()["totals"]}
    assert totals["subtotal"] == price_of(CATALOG, "BISC-001")


# ---- the sample merchants' texts, with detail ----

def test_unknown_item_text(client):
    r = client.create({"line_items": lines(("NOPE-404", 1))})
    err = check_error(r, 400, "not_found")
    assert err["content"] == "Product NOPE-404 not found"
    assert r.json()["detail"] == "Product NOPE-404 not found"


def test_over_stock_text(client):
    pid = "PROTEIN-BAR-001"
    r = client.create({"line_items": lines((pid, stock_of(CATALOG, pid) + 1))})
    check_error(r, 400, "out_of_stock", content_has=f"Insufficient stock for item {pid}")
    assert r.json()["detail"].startswith(f"Insufficient stock for item {pid}")


def test_complete_without_destination_and_option_text(client):
    doc = client.create_ok({"line_items": lines(("BISC-001", 1))})
    r = client.complete(doc["id"])
    check_error(r, 400, "missing",
                content_has="Fulfillment address and option must be selected")
    assert r.json()["detail"].startswith("Fulfillment address and option must be selected")


def test_detail_on_header_and_body_errors(server, client):
    r = server.request("POST", "/checkout-sessions", json={"line_items": lines(("BISC-001", 1))})
    check_error(r, 400, "missing")
    assert "UCP-Agent" in r.json()["detail"]
    r = client.create(None, raw=b"{not json")
    check_error(r, 400, "invalid")
    assert r.json()["detail"].startswith("invalid JSON")


# ---- buyer consent ----

CONSENT = {"analytics": True, "preferences": False, "marketing": False, "sale_of_data": False,
           "marketing_channels": [{"channel": "email", "opted_in": True},
                                  {"channel": "sms", "opted_in": False}]}


def test_buyer_consent_in_discovery(server):
    caps = {c["name"]: c for c in server.get("/.well-known/ucp").json()["ucp"]["capabilities"]}
    c = caps["dev.ucp.shopping.buyer_consent"]
    assert c["extends"] == "dev.ucp.shopping.checkout" and c["version"] == "2026-01-11"


def test_buyer_consent_round_trip(client):
    body = full_body()
    body["buyer"]["consent"] = dict(CONSENT, something_else={"x": 1})
    doc = client.create_ok(body)
    assert doc["buyer"]["consent"] == CONSENT          # echoed, unknown members dropped
    assert "buyer_consent" in " ".join(c["name"] for c in doc["ucp"]["capabilities"])
    got = check_checkout(client.get(doc["id"]).json())
    assert got["buyer"]["consent"] == CONSENT          # stored with the checkout
    r = client.complete(doc["id"])
    assert r.status_code == 200, r.text
    assert r.json()["buyer"]["consent"] == CONSENT
    o = check_order(client.order(r.json()["order"]["id"]).json())
    assert o["buyer"]["consent"] == CONSENT            # copied into the order
    assert o["buyer"]["email"] == "jane@example.com"


def test_buyer_consent_update_replaces_it(client):
    body = full_body()
    body["buyer"]["consent"] = {"analytics": True}
    doc = client.create_ok(body)
    put = {"line_items": lines(("BISC-001", 1)),
           "buyer": {"email": "jane@example.com", "consent": {"analytics": False}}}
    r = client.update(doc["id"], put)
    assert r.status_code == 200, r.text
    assert r.json()["buyer"]["consent"] == {"analytics": False}


@pytest.mark.parametrize("consent,path", [
    ("yes", "$.buyer.consent"),
    ({"analytics": "yes"}, "$.buyer.consent.analytics"),
    ({"marketing_channels": {"email": True}}, "$.buyer.consent.marketing_channels"),
    ({"marketing_channels": [{"channel": "pigeon", "opted_in": True}]},
     "$.buyer.consent.marketing_channels[0]"),
    ({"marketing_channels": [{"channel": "email"}]}, "$.buyer.consent.marketing_channels[0]"),
])
def test_buyer_consent_shape_is_checked(client, consent, path):
    body = full_body()
    body["buyer"]["consent"] = consent
    err = check_error(client.create(body), 400, "invalid")
    assert err["path"] == path, err
