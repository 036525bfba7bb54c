"""UCP checkout REST (2026-01-11) end to end: discovery, purchases step by
step and in one request, exact totals, decline then success, terminal
states, orders and the shipping simulation."""

import signal

import pytest

from agentd_harness import REPO
from ucp_client import (CATALOG, EXAMPLE_HANDLER, MOCK_HANDLER, UCP_VERSION, Client, address, check_checkout,
                        check_error, check_order, db_query, db_stock, expected_totals,
                        fulfillment, full_body, lines, load_catalog, price_of,
                        shipping_options, stock_of, totals_of, unique_profile, write_catalog)

SECRET = "sim-secret-for-tests"


# legal links are the operator's pages (unset: omitted, test_provider_config.py)
PRIVACY_URL = "https://shop.example/legal/privacy"
TERMS_URL = "https://shop.example/legal/terms"


@pytest.fixture(scope="module")
def shop(module_agentd):
    return module_agentd(env={"AGENTD_CATALOG": str(REPO / "data" / "catalog.json"),
                              "AGENTD_SIMULATION_SECRET": SECRET,
                              "AGENTD_PRIVACY_URL": PRIVACY_URL, "AGENTD_TERMS_URL": TERMS_URL})


@pytest.fixture
def client(shop):
    return Client(shop, unique_profile("flow"))


def test_discovery_profile(shop):
    r = shop.get("/.well-known/ucp")
    assert r.status_code == 200
    doc = r.json()["ucp"] if "ucp" in r.json() else None
    assert doc and doc["version"] == UCP_VERSION
    svc = doc["services"]["dev.ucp.shopping"]
    assert svc["version"] == UCP_VERSION
    assert svc["rest"]["endpoint"] == shop.url
    assert svc["rest"]["schema"].endswith(".json")
    assert svc["a2a"]["endpoint"].startswith(shop.url + "/")
    caps = {c["name"]: c for c in doc["capabilities"]}
    assert set(caps) >= {"dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment",
                         "dev.ucp.shopping.discount", "dev.ucp.shopping.order"}
    for c in caps.values():
        assert c["version"] == UCP_VERSION and c["spec"].startswith("https://")
    assert caps["dev.ucp.shopping.fulfillment"]["extends"] == "dev.ucp.shopping.checkout"
    assert caps["dev.ucp.shopping.discount"]["extends"] == "dev.ucp.shopping.checkout"
    assert "extends" not in caps["dev.ucp.shopping.order"]
    handlers = {h["id"]: h for h in r.json()["payment"]["handlers"]}
    assert MOCK_HANDLER in handlers
    assert handlers[MOCK_HANDLER]["config"] == {"environment": "TEST"}
    # the UCP sample merchant's handler, as its data/ucp.json declares it
    assert handlers[EXAMPLE_HANDLER]["name"] == "example.payment.provider"
    assert handlers[EXAMPLE_HANDLER]["config"] == {"business_id": "1234567890"}
    # discovery needs no UCP-Agent and may be cached: one Cache-Control, its
    # own, not also the default no-store (requests joins repeated lines)
    assert r.headers.get("Cache-Control") == "public, max-age=300"


def test_full_purchase_step_by_step(shop, client):
    pid, qty = "CROISS-001", 2           # used by no other test in this module
    stock0 = stock_of(CATALOG, pid)
    assert db_stock(shop, pid) == stock0

    # 1. create with items only
    r = client.create({"line_items": lines((pid, qty))})
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    cid = doc["id"]
    assert doc["status"] == "incomplete"
    codes = {(m["code"], m.get("path")) for m in doc["messages"]}
    assert not any(p and p.startswith("$.buyer") for _, p in codes), codes  # buyer optional
    assert ("missing", "$.fulfillment.methods") in codes
    assert totals_of(doc)["total"] == price_of(CATALOG, pid) * qty
    assert doc["continue_url"].endswith("/checkout-sessions/" + cid)
    line_id = doc["line_items"][0]["id"]

    # 2. PUT buyer + shipping address: options appear, one must be chosen
    put = {"id": cid, "line_items": [{"id": line_id, "item": {"id": pid}, "quantity": qty}],
           "buyer": {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"},
           "fulfillment": fulfillment(address("US", "IL"), option=None)}
    r = client.update(cid, put)
    assert r.status_code == 200, r.text
    doc = check_checkout(r.json())
    assert doc["status"] == "incomplete"
    assert doc["buyer"]["email"] == "jane@example.com"
    method = doc["fulfillment"]["methods"][0]
    # the buyer's email makes the address an address-book entry: its id is
    # the book's, and the selection follows (docs/ucp.md, address book)
    assert method["selected_destination_id"] == method["destinations"][0]["id"]
    assert method["selected_destination_id"].startswith("addr_")
    group = method["groups"][0]
    offered = {o["id"]: o["totals"][0]["amount"] for o in group["options"]}
    assert offered == shipping_options(CATALOG, "US")
    assert group["selected_option_id"] is None
    assert [m["code"] for m in doc["messages"]] == ["missing"]
    assert doc["messages"][0]["path"].endswith("selected_option_id")

    # 3. select express shipping in the group
    put["fulfillment"] = {"methods": [{"id": method["id"], "groups": [
        {"id": group["id"], "selected_option_id": "exp-ship"}]}]}
    r = client.update(cid, put)
    assert r.status_code == 200, r.text
    doc = check_checkout(r.json())
    assert doc["status"] == "ready_for_complete", doc.get("messages")
    assert "messages" not in doc or all(m["type"] != "error" for m in doc["messages"])
    assert doc["fulfillment"]["methods"][0]["groups"][0]["selected_option_id"] == "exp-ship"
    want = expected_totals(CATALOG, [(pid, qty)], "US", "IL", "exp-ship")
    got = totals_of(doc)
    assert {k: got[k] for k in got} == {k: want[k] for k in got}

    # 4. complete
    r = client.complete(cid, "success_token")
    assert r.status_code == 200, r.text
    done = check_checkout(r.json())
    assert done["status"] == "completed"
    assert "continue_url" not in done
    oid = done["order"]["id"]
    assert done["order"]["permalink_url"].startswith(f"{shop.url}/orders/{oid}/status?t=")
    assert totals_of(done) == got

    # GET shows the same completed session
    g = client.get(cid)
    assert g.status_code == 200
    assert check_checkout(g.json())["status"] == "completed"
    assert g.json()["order"]["id"] == oid

    # 5. the order
    r = client.order(oid)
    assert r.status_code == 200, r.text
    order = check_order(r.json())
    assert order["id"] == oid and order["checkout_id"] == cid
    assert order["permalink_url"] == done["order"]["permalink_url"]
    assert [(li["item"]["id"], li["quantity"]["total"], li["quantity"]["fulfilled"], li["status"])
            for li in order["line_items"]] == [(pid, qty, 0, "processing")]
    assert totals_of(order) == got
    exp = order["fulfillment"]["expectations"]
    assert len(exp) == 1 and exp[0]["method_type"] == "shipping"
    assert exp[0]["destination"]["address_region"] == "IL"
    assert "Express" in exp[0]["description"]

    # 6. stock went down by exactly qty
    assert db_stock(shop, pid) == stock0 - qty
    r = client.create({"line_items": lines((pid, stock0))})
    check_error(r, 400, "out_of_stock", content_has=f"available {stock0 - qty}")
    r = client.create({"line_items": lines((pid, stock0 - qty))})
    assert r.status_code == 201, r.text
    assert db_stock(shop, pid) == stock0 - qty   # a checkout reserves nothing


def test_create_with_everything_in_one_request(shop, client):
    body = full_body([("BISC-001", 2), ("STRAW-001", 1)], option="std-ship", codes=["10OFF"])
    r = client.create(body)
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    assert doc["id"] != body["id"] and doc["id"].startswith("chk_")   # the server's own id
    assert doc["status"] == "ready_for_complete", doc.get("messages")
    assert [(li["item"]["id"], li["quantity"]) for li in doc["line_items"]] == \
        [("BISC-001", 2), ("STRAW-001", 1)]
    assert doc["buyer"] == body["buyer"]
    m = doc["fulfillment"]["methods"][0]
    assert m["type"] == "shipping" and m["selected_destination_id"] == m["destinations"][0]["id"]
    assert m["selected_destination_id"].startswith("addr_")  # the address book's id
    assert m["destinations"][0]["address_locality"] == "Springfield"
    assert m["groups"][0]["selected_option_id"] == "std-ship"
    assert set(m["groups"][0]["line_item_ids"]) == {li["id"] for li in doc["line_items"]}
    p = doc["payment"]
    assert p["selected_instrument_id"] == "instr_1"
    assert [i["id"] for i in p["instruments"]] == ["instr_1"]
    assert p["instruments"][0]["credential"] == {"type": "token"}        # token never echoed
    assert [h["id"] for h in p["handlers"]] == [MOCK_HANDLER, EXAMPLE_HANDLER]  # ours, not the client's
    assert "success_token" not in r.text
    assert doc["discounts"]["codes"] == ["10OFF"]
    assert {(l["type"], l["url"]) for l in doc["links"]} == \
        {("privacy_policy", PRIVACY_URL), ("terms_of_service", TERMS_URL)}
    want = expected_totals(CATALOG, [("BISC-001", 2), ("STRAW-001", 1)], "US", "IL", "std-ship",
                           ["10OFF"])
    assert totals_of(doc)["total"] == want["total"]
    # GET returns exactly what create returned
    g = client.get(doc["id"])
    assert g.status_code == 200 and g.json() == doc
    r = client.complete(doc["id"])
    assert r.status_code == 200, r.text
    assert check_checkout(r.json())["status"] == "completed"


TOTALS_CASES = [
    # items, country, region, option, codes
    ([("BISC-001", 3), ("CHIPS-001", 1)], "US", "IL", "exp-ship", ["10OFF", "FIVEOFF"]),
    ([("STRAW-001", 2)], "US", "CA", "std-ship", []),
    ([("NUTRIBAR-001", 7), ("SW-CHIPS-001", 2), ("O-COOKIES-001", 1)], "US", "NY",
     "us-overnight", ["FIVEOFF"]),                    # NY taxes shipping too
    ([("COOKIE-SAND-001", 5), ("PRETZEL-001", 3)], "US", "TX", "exp-ship",
     ["fiveoff", "10off", "BOGUS", "10OFF"]),         # case, order, unknown and repeated codes
    ([("BANANA-001", 1)], "US", "IL", "std-ship", ["FIVEOFF"]),   # discount capped at subtotal
    ([("TEA-001", 2), ("HONEY-001", 1)], "CA", "ON", "std-ship", ["WELCOME20"]),  # no tax
    ([("BISC-001", 1), ("CHIPS-001", 1), ("STRAW-001", 1)], "US", "WA", "std-ship",
     ["10OFF", "WELCOME20", "FIVEOFF"]),              # stacked, US without a rate: 0
]


@pytest.mark.parametrize("items,country,region,option,codes", TOTALS_CASES)
def test_totals_match_the_catalog(shop, client, items, country, region, option, codes):
    body = full_body(items, addr=address(country, region), option=option, codes=codes)
    r = client.create(body)
    assert r.status_code == 201, r.text
    doc = check_checkout(r.json())
    want = expected_totals(CATALOG, items, country, region, option, codes)
    got = totals_of(doc)
    assert {k: got[k] for k in ("subtotal", "items_discount", "discount", "fulfillment", "tax",
                                "fee", "total")} == \
        {k: want[k] for k in ("subtotal", "items_discount", "discount", "fulfillment", "tax",
                              "fee", "total")}
    for li, (disc, tax) in zip(doc["line_items"], want["lines"]):
        lt = {t["type"]: t["amount"] for t in li["totals"]}
        assert lt.get("items_discount", 0) == disc, li
        assert lt.get("tax", 0) == tax, li
    if codes:
        applied = doc["discounts"]["applied"]
        assert sum(a["amount"] for a in applied) == want["discount"]
        assert [a["priority"] for a in applied] == list(range(1, len(applied) + 1))
        for a in applied:
            assert sum(x["amount"] for x in a["allocations"]) == a["amount"]
        unknown = [c for c in codes if c.upper() not in {"10OFF", "FIVEOFF", "WELCOME20"}]
        warn = [m for m in doc.get("messages", []) if m["code"] == "discount_code_invalid"]
        assert len(warn) == len(unknown) and all(m["type"] == "warning" for m in warn)
    assert doc["status"] == "ready_for_complete"
    # the order carries exactly the amounts the buyer saw
    r = client.complete(doc["id"])
    assert r.status_code == 200, r.text
    order = check_order(client.order(r.json()["order"]["id"]).json())
    assert totals_of(order) == got


def test_decline_then_success(shop, client):
    pid = "BAGEL-001"                    # used by no other test in this module
    stock0 = db_stock(shop, pid)
    doc = client.ready([(pid, 3)])
    cid = doc["id"]
    r = client.complete(cid, "fail_token")
    err = check_error(r, 402, "payment_declined")
    assert err["severity"] == "requires_buyer_review"
    g = check_checkout(client.get(cid).json())
    assert g["status"] == "ready_for_complete" and "order" not in g
    assert totals_of(g) == totals_of(doc)
    assert db_stock(shop, pid) == stock0
    assert db_query(shop, "SELECT count(*) FROM orders WHERE checkout_id = ?", cid)[0][0] == 0
    # an unusable token is refused as such (400), not as a decline
    check_error(client.complete(cid, "no_such_token"), 400, "invalid")
    r = client.complete(cid, "success_token")
    assert r.status_code == 200, r.text
    done = check_checkout(r.json())
    assert done["status"] == "completed"
    assert db_stock(shop, pid) == stock0 - 3
    assert db_query(shop, "SELECT count(*) FROM orders WHERE checkout_id = ?", cid)[0][0] == 1


def _assert_immutable(client, cid, status):
    put = {"line_items": lines(("BISC-001", 5))}
    for r in (client.update(cid, put), client.cancel(cid), client.complete(cid)):
        err = check_error(r, 409, "not_modifiable")
        assert status in err["content"]
    g = check_checkout(client.get(cid).json())
    assert g["status"] == status
    assert g["line_items"][0]["quantity"] != 5


def test_completed_checkout_is_immutable(shop, client):
    done = client.purchase([("BISC-001", 1)])
    _assert_immutable(client, done["id"], "completed")
    assert client.get(done["id"]).json()["order"] == done["order"]


def test_canceled_checkout_is_immutable(shop, client):
    doc = client.ready([("BISC-001", 1)])
    r = client.cancel(doc["id"])
    assert r.status_code == 200, r.text
    c = check_checkout(r.json())
    assert c["status"] == "canceled" and "continue_url" not in c and "order" not in c
    _assert_immutable(client, doc["id"], "canceled")


def test_unknown_order_id(client):
    # whose order it is (principals, AGENTD_AUTH=on): test_auth.py
    check_error(client.order("ord_" + "0" * 24), 404, "not_found")


def test_simulate_shipping(shop, client):
    done = client.purchase([("BISC-001", 2), ("CHIPS-001", 1)])
    oid = done["order"]["id"]
    path = f"/testing/simulate-shipping/{oid}"
    assert shop.request("POST", path).status_code == 403
    assert shop.request("POST", path, headers={"Simulation-Secret": "wrong"}).status_code == 403
    assert shop.request("POST", path, headers={"Simulation-Secret": SECRET[:-1]}).status_code == 403
    before = check_order(client.order(oid).json())
    assert all(li["quantity"]["fulfilled"] == 0 for li in before["line_items"])
    r = shop.request("POST", path, headers={"Simulation-Secret": SECRET})
    assert r.status_code == 200, r.text
    shipped = check_order(r.json())
    assert [(li["quantity"]["total"], li["quantity"]["fulfilled"], li["status"])
            for li in shipped["line_items"]] == [(2, 2, "fulfilled"), (1, 1, "fulfilled")]
    after = check_order(client.order(oid).json())
    assert after["line_items"] == shipped["line_items"]
    assert totals_of(after) == totals_of(before)
    r = shop.request("POST", "/testing/simulate-shipping/ord_nope",
                     headers={"Simulation-Secret": SECRET})
    assert r.status_code == 404


def test_price_change_between_view_and_complete(module_agentd, tmp_path):
    """The catalog is reloaded (SIGHUP) with a new price after the buyer saw
    the totals: completing answers 409 total_changed, charges nothing and
    shows the new totals; completing again pays the new total."""
    path = tmp_path / "catalog.json"
    write_catalog(path, [("TEA-9", "2.00", 50)])
    srv = module_agentd(env={"AGENTD_CATALOG": str(path)})
    c = Client(srv, unique_profile("reprice"))
    doc = c.ready([("TEA-9", 3)])
    assert totals_of(doc)["total"] == 600 + 500

    write_catalog(path, [("TEA-9", "2.50", 50)])
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(lambda l: "catalog reloaded" in l.get("msg", ""), timeout=5), \
        srv.log_text()

    err = check_error(c.complete(doc["id"]), 409, "total_changed")
    assert "prices changed" in err["content"], err
    g = check_checkout(c.get(doc["id"]).json())
    assert g["status"] == "ready_for_complete"
    assert totals_of(g)["total"] == 750 + 500
    assert g["line_items"][0]["item"]["price"] == 250
    assert db_query(srv, "SELECT count(*) FROM orders WHERE checkout_id = ?", doc["id"])[0][0] == 0
    assert db_stock(srv, "TEA-9") == 50
    r = c.complete(doc["id"])
    assert r.status_code == 200, r.text
    assert totals_of(r.json())["total"] == 1250
    want = expected_totals(load_catalog(path), [("TEA-9", 3)], "US", "IL", "std-ship")
    assert totals_of(c.order(r.json()["order"]["id"]).json())["total"] == want["total"]
    assert db_stock(srv, "TEA-9") == 47
