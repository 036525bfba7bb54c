"""Payment handlers end to end: the merchant's payment_handlers.json imported
by `agentd catalog import` and listed in discovery beside our own, and card
credentials (card_number_type "fpan") taken by mock_payment_handler the way
a PSP's test mode takes them — 4242424242424242 approves, 4000000000000002
declines (402, as fail_token), a number failing Luhn is refused — with the
card number never in the database file or the log."""

import json
from pathlib import Path

import pytest

from agentd_harness import run_cli
from ucp_client import (MOCK_HANDLER, Client, check_checkout, check_error, check_order, db_path,
                        full_body, unique_profile)

APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
CVC = "9731"

HANDLERS = [
    {"id": "google_pay", "name": "com.google.pay", "version": "2026-01-11",
     "spec": "https://developers.google.com/pay/api",
     "config": {"api_version": 2, "merchant_info": {"merchant_name": "Flower Shop"}}},
    {"id": "shop_pay", "name": "dev.shopify.shop_pay", "version": "2026-01-11",
     "config": {"shop_id": "flower-shop-123"}},
]


def card_payment(number, handler=MOCK_HANDLER, **cred):
    c = {"type": "card", "card_number_type": "fpan", "number": number,
         "expiry_month": 12, "expiry_year": 2030, "cvc": CVC, "name": "Jane Doe"}
    c.update(cred)
    return {"payment_data": {"id": "instr_card", "handler_id": handler, "type": "card",
                             "credential": c}}


@pytest.fixture
def client(server):
    return Client(server, unique_profile("pay"))


def _no_card_data(server):
    log = server.log_text()
    for n in (APPROVE, DECLINE, "4242424242424241"):
        assert n not in log
    assert CVC not in log
    for suffix in ("", "-wal"):
        p = db_path(server).with_name("agentd.db" + suffix)
        if p.exists():
            data = p.read_bytes()
            for n in (APPROVE, DECLINE):
                assert n.encode() not in data, p
            assert b'"cvc"' not in data and CVC.encode() not in data, p


# ---- test cards ----

def test_test_card_approves(server, client):
    doc = client.ready()
    r = client.complete(doc["id"], body=card_payment(APPROVE))
    assert r.status_code == 200, r.text
    assert APPROVE not in r.text and CVC not in r.text
    done = check_checkout(r.json())
    assert done["status"] == "completed"
    o = check_order(client.order(done["order"]["id"]).json())
    assert o["id"] == done["order"]["id"]
    _no_card_data(server)


def test_test_card_declines_like_fail_token(server, client):
    doc = client.ready()
    r = client.complete(doc["id"], body=card_payment(DECLINE))
    err = check_error(r, 402, "payment_declined")
    want = check_error(client.complete(doc["id"], "fail_token"), 402, "payment_declined")
    assert {k: err[k] for k in ("type", "code", "severity")} == \
        {k: want[k] for k in ("type", "code", "severity")}
    assert DECLINE not in r.text
    assert check_checkout(client.get(doc["id"]).json())["status"] == "ready_for_complete"
    # and the buyer can pay with a good card after
    r = client.complete(doc["id"], body=card_payment(APPROVE))
    assert r.status_code == 200, r.text
    _no_card_data(server)


@pytest.mark.parametrize("number,cred,why", [
    ("4242424242424241", {}, "Luhn"),
    ("4242 4242 4242 4242", {}, "digits"),
    (APPROVE, {"cvc": "12"}, "cvc"),
    (APPROVE, {"expiry_month": 13}, "expiry_month"),
])
def test_bad_test_card_is_refused(server, client, number, cred, why):
    doc = client.ready()
    err = check_error(client.complete(doc["id"], body=card_payment(number, **cred)), 400,
                      "invalid")
    assert why in err["content"]
    assert number.replace(" ", "") not in err["content"].replace(" ", "")
    assert check_checkout(client.get(doc["id"]).json())["status"] == "ready_for_complete"
    _no_card_data(server)


def test_card_numbers_outside_the_test_handler_stay_refused(server, client):
    doc = client.ready()
    # another handler
    check_error(client.complete(doc["id"], body=card_payment(APPROVE,
                                                             handler="example_payment_provider")),
                400, "invalid")
    # no card_number_type: not a card credential, a stray card number
    pd = card_payment(APPROVE)
    del pd["payment_data"]["credential"]["card_number_type"]
    check_error(client.complete(doc["id"], body=pd), 400, "invalid")
    # a card number elsewhere in a test card instrument
    pd = card_payment(APPROVE)
    pd["payment_data"]["billing_address"] = {"street_address": "card 4111111111111111"}
    check_error(client.complete(doc["id"], body=pd), 400, "invalid")
    assert check_checkout(client.get(doc["id"]).json())["status"] == "ready_for_complete"
    _no_card_data(server)


def test_test_card_in_payment_instruments_keeps_only_brand_and_last4(server, client):
    body = full_body()
    body["payment"]["instruments"] = [card_payment(APPROVE)["payment_data"]]
    body["payment"]["instruments"][0]["id"] = "instr_1"
    r = client.create(body)
    assert r.status_code == 201, r.text
    inst = r.json()["payment"]["instruments"][0]
    assert inst["brand"] == "visa" and inst["last_digits"] == "4242", inst
    assert APPROVE not in r.text and CVC not in r.text
    _no_card_data(server)


# ---- merchant-declared handlers ----

def _catalog_dir(tmp_path, handlers):
    d = tmp_path / "shopdata"
    d.mkdir()
    (d / "products.csv").write_text("id,title,price,image_url\n"
                                    "bouquet_roses,Bouquet of Red Roses,3500,\n")
    (d / "inventory.csv").write_text("product_id,quantity\nbouquet_roses,10\n")
    if handlers is not None:
        (d / "payment_handlers.json").write_text(
            handlers if isinstance(handlers, str) else json.dumps(handlers))
    return d


def test_declared_handlers_in_discovery(agentd, tmp_path):
    env = {"AGENTD_DATA_DIR": str(tmp_path / "data")}
    p = run_cli(["catalog", "import", str(_catalog_dir(tmp_path, HANDLERS))], env=env)
    assert p.returncode == 0, p.stderr
    srv = agentd(env=env)
    hs = srv.get("/.well-known/ucp").json()["payment"]["handlers"]
    ids = [h["id"] for h in hs]
    assert ids[0] == MOCK_HANDLER and ids[-2:] == ["google_pay", "shop_pay"], ids
    shop_pay = hs[-1]
    assert shop_pay["config"] == {"shop_id": "flower-shop-123"}
    assert shop_pay["name"] == "dev.shopify.shop_pay" and shop_pay["version"] == "2026-01-11"
    assert hs[-2]["spec"] == "https://developers.google.com/pay/api"
    # and in a checkout's payment.handlers
    c = Client(srv, unique_profile("pay"))
    r = c.create({"line_items": [{"item": {"id": "bouquet_roses"}, "quantity": 1}]})
    assert r.status_code == 201, r.text
    assert [h["id"] for h in r.json()["payment"]["handlers"]][-2:] == ["google_pay", "shop_pay"]


def test_without_the_file_only_ours(agentd, tmp_path):
    env = {"AGENTD_DATA_DIR": str(tmp_path / "data")}
    p = run_cli(["catalog", "import", str(_catalog_dir(tmp_path, None))], env=env)
    assert p.returncode == 0, p.stderr
    srv = agentd(env=env)
    ids = [h["id"] for h in srv.get("/.well-known/ucp").json()["payment"]["handlers"]]
    assert "google_pay" not in ids and MOCK_HANDLER in ids


@pytest.mark.parametrize("bad,why", [
    ("{not json", "invalid JSON"),
    ({"id": "x"}, "JSON array"),
    ([{"id": "google pay", "name": "n", "version": "2026-01-11"}], "id must be"),
    ([{"id": MOCK_HANDLER, "name": "n", "version": "2026-01-11"}], "built-in"),
    ([{"id": "g", "name": "n", "version": "2026-01-11"}] * 2, "duplicate"),
    ([{"id": "g", "name": "n", "version": "soon"}], "version"),
    ([{"id": "g", "name": "n", "version": "2026-01-11", "spec": "http://x"}], "https"),
    ([{"id": "g", "name": "n", "version": "2026-01-11", "config": []}], "config"),
    ([{"id": "g", "name": "n", "version": "2026-01-11", "config": {"k": APPROVE}}], "card number"),
])
def test_bad_handlers_file_fails_the_import(tmp_path, bad, why):
    env = {"AGENTD_DATA_DIR": str(tmp_path / "data")}
    p = run_cli(["catalog", "import", str(_catalog_dir(tmp_path, bad))], env=env)
    assert p.returncode != 0
    assert "payment_handlers" in p.stderr and why in p.stderr, p.stderr
    assert APPROVE not in p.stderr


def test_chat_purchase_with_a_test_card_keeps_no_number(agentd):
    srv = agentd()

    def chat(message, sid=None, data=None):
        body = {"message": message}
        if sid:
            body["session_id"] = sid
        if data:
            body["data"] = data
        r = srv.request("POST", "/chat", json=body, timeout=10)
        assert r.status_code == 200, f"{message!r}: {r.status_code} {r.text}"
        return r.json()

    sid = chat("add 1 BISC-001")["session_id"]
    chat("ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com", sid)
    d = chat("standard shipping", sid)
    assert d["checkout"]["status"] == "ready_for_complete", d["checkout"].get("messages")
    pay = {"a2a.ucp.checkout.payment_data": card_payment(APPROVE)["payment_data"]}
    d = chat("pay", sid, data=pay)
    assert d["checkout"]["status"] == "completed", d
    assert APPROVE not in json.dumps(d)
    _no_card_data(srv)


def test_declared_handlers_travel_in_a_catalog_file(agentd, tmp_path):
    cat = tmp_path / "catalog.json"
    env = {"AGENTD_DATA_DIR": str(tmp_path / "data"), "AGENTD_CATALOG": str(cat)}
    p = run_cli(["catalog", "import", str(_catalog_dir(tmp_path, HANDLERS))], env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(cat.read_text())["payment_handlers"][1]["config"] == {
        "shop_id": "flower-shop-123"}
    srv = agentd(env=env)
    ids = [h["id"] for h in srv.get("/.well-known/ucp").json()["payment"]["handlers"]]
    assert ids[-2:] == ["google_pay", "shop_pay"], ids
