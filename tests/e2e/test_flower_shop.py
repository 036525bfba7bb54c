"""UCP's flower-shop sample merchant, imported with `agentd catalog import`
(the read-only fixture in ../shared/fixtures/ucp-samples/flower_shop) and
walked as a platform would: stacked, unknown and fixed discounts, both
free-shipping promotions, shipping by country, and the address book."""

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from agentd_harness import REPO, run_cli

UCP = {"UCP-Agent": 'profile="https://platform.example/profile"'}


def flower_shop_dir():
    base = Path(os.environ.get("AGENTD_UCP_SAMPLES")
                or REPO.parent / "shared" / "fixtures" / "ucp-samples")
    return base / "flower_shop"


@pytest.fixture(scope="module")
def shop(module_agentd, tmp_path_factory):
    src = flower_shop_dir()
    if not (src / "products.csv").exists():
        pytest.skip(f"the UCP flower-shop fixture is not at {src}")
    # a test-local copy with one extra discount row (the fixture stays as it is)
    csv = tmp_path_factory.mktemp("flower_csv")
    for f in src.glob("*.csv"):
        shutil.copy(f, csv / f.name)
    with open(csv / "discounts.csv", "a") as fh:
        fh.write("\nFIXED9999,fixed_amount,999999,Everything off\nCENT1,fixed_amount,1,One cent\n")
    data = tmp_path_factory.mktemp("flower_data")
    env = {"AGENTD_DATA_DIR": str(data)}
    p = run_cli(["catalog", "import", str(csv)], env=env)
    assert p.returncode == 0, p.stderr
    assert "imported 6 products" in p.stdout
    srv = module_agentd(env=env)
    srv.data_dir = data
    return srv


def line(pid, qty=1):
    return {"item": {"id": pid}, "quantity": qty}


def create(srv, items, **extra):
    body = {"line_items": [line(p, q) for p, q in items], **extra}
    r = srv.request("POST", "/checkout-sessions", headers=UCP, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def update(srv, doc, **changes):
    body = {"line_items": [{"item": {"id": li["item"]["id"]}, "quantity": li["quantity"]}
                           for li in doc["line_items"]], **changes}
    r = srv.request("PUT", f"/checkout-sessions/{doc['id']}", headers=UCP, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def totals(doc):
    return {t["type"]: t["amount"] for t in doc["totals"]}


def shipping(country, option=None, dest_id="d1", street="1 Rue de Rivoli"):
    method = {"type": "shipping",
              "destinations": [{"id": dest_id, "street_address": street,
                                "address_locality": "Town", "postal_code": "75001",
                                "address_country": country}],
              "selected_destination_id": dest_id}
    if option:
        method["groups"] = [{"selected_option_id": option}]
    return {"methods": [method]}


def options(doc):
    groups = doc["fulfillment"]["methods"][0].get("groups") or [{}]
    return {o["id"]: o for o in groups[0].get("options", [])}


def option_amount(o):
    if "totals" in o:
        return {t["type"]: t["amount"] for t in o["totals"]}["total"]
    return o["amount"]


# ---- discounts ----

def test_stacked_codes_apply_in_order_with_truncation(shop):
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["10OFF", "WELCOME20"]})
    t = totals(doc)
    # 3500 -> 10 % -> 3150 -> 20 % -> 2520
    assert t["subtotal"] == 3500
    assert t["discount"] == 980
    assert t["total"] == 2520
    applied = doc["discounts"]["applied"]
    assert [(a["code"], a["amount"]) for a in applied] == [("10OFF", 350), ("WELCOME20", 630)]


def test_codes_apply_in_the_order_given(shop):
    # 2 x 2500 + 1500 = 6500: 20 % = 1300 -> 5200, then 10 % = 520 -> 4680
    doc = create(shop, [("bouquet_sunflowers", 2), ("pot_ceramic", 1)],
                 discounts={"codes": ["WELCOME20", "10OFF"]})
    assert [a["code"] for a in doc["discounts"]["applied"]] == ["WELCOME20", "10OFF"]
    assert [a["amount"] for a in doc["discounts"]["applied"]] == [1300, 520]
    assert totals(doc)["total"] == 4680


def test_percentages_truncate(shop):
    # every flower-shop price is a multiple of 500, so a test-local 1-cent code
    # makes an odd base: 3500 - 1 = 3499; 10 % = 349.9 -> 349 (not 350)
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["CENT1", "10OFF"]})
    assert [a["amount"] for a in doc["discounts"]["applied"]] == [1, 349]
    assert totals(doc)["total"] == 3150
    # a repeated code counts once
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["10OFF", "10off"]})
    assert [a["amount"] for a in doc["discounts"]["applied"]] == [350]


def test_unknown_code_is_ignored(shop):
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["NOPE", "10OFF"]})
    assert [a["code"] for a in doc["discounts"]["applied"]] == ["10OFF"]
    assert totals(doc)["total"] == 3150
    assert not [m for m in doc.get("messages", []) if m["type"] == "error"
                and "discount" in m.get("path", "")]
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["NOPE"]})
    assert not doc["discounts"].get("applied")
    assert "discount" not in totals(doc)
    assert totals(doc)["total"] == 3500


def test_fixed_amount_codes(shop):
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["FIXED500"]})
    assert totals(doc)["discount"] == 500
    assert totals(doc)["total"] == 3000
    # fixed, then a percentage of what is left: 3500 - 500 = 3000, 10 % = 300
    doc = create(shop, [("bouquet_roses", 1)], discounts={"codes": ["FIXED500", "10OFF"]})
    assert [a["amount"] for a in doc["discounts"]["applied"]] == [500, 300]
    assert totals(doc)["total"] == 2700
    # never below zero (the test-local extra row)
    doc = create(shop, [("pot_ceramic", 1)], discounts={"codes": ["FIXED9999"]})
    assert totals(doc)["total"] == 0


# ---- shipping by country and promotions ----

def test_shipping_rates_by_country(shop):
    us = options(create(shop, [("pot_ceramic", 1)], fulfillment=shipping("US")))
    assert set(us) == {"std-ship", "exp-ship-us"}
    assert option_amount(us["exp-ship-us"]) == 1500
    assert option_amount(us["std-ship"]) == 500
    fr = options(create(shop, [("pot_ceramic", 1)], fulfillment=shipping("FR")))
    assert set(fr) == {"std-ship", "exp-ship-intl"}
    assert option_amount(fr["exp-ship-intl"]) == 2500
    doc = create(shop, [("pot_ceramic", 1)], fulfillment=shipping("FR", "exp-ship-intl"))
    assert totals(doc)["fulfillment"] == 2500
    assert totals(doc)["total"] == 1500 + 2500


def test_free_shipping_over_the_threshold(shop):
    # 3 tulips = 9000: below 10000, standard costs 500
    below = options(create(shop, [("bouquet_tulips", 3)], fulfillment=shipping("US")))
    assert option_amount(below["std-ship"]) == 500
    assert "Free" not in below["std-ship"]["title"]
    # 4 tulips = 12000: standard is free and says so; express is not
    doc = create(shop, [("bouquet_tulips", 4)], fulfillment=shipping("US", "std-ship"))
    o = options(doc)
    assert option_amount(o["std-ship"]) == 0
    assert o["std-ship"]["title"] == "Standard Shipping (Free)"
    assert option_amount(o["exp-ship-us"]) == 1500
    assert totals(doc).get("fulfillment", 0) == 0
    assert totals(doc)["total"] == 12000


def test_free_shipping_for_an_eligible_item(shop):
    doc = create(shop, [("bouquet_roses", 1), ("pot_ceramic", 1)],
                 fulfillment=shipping("FR", "std-ship"))
    o = options(doc)
    assert option_amount(o["std-ship"]) == 0
    assert o["std-ship"]["title"].endswith("(Free)")
    assert option_amount(o["exp-ship-intl"]) == 2500
    assert totals(doc)["total"] == 5000


# ---- the address book ----

def no_destinations():
    return {"methods": [{"type": "shipping"}]}


def destinations(doc):
    return doc["fulfillment"]["methods"][0].get("destinations") or []


def test_known_customer_is_offered_saved_addresses(shop):
    doc = create(shop, [("pot_ceramic", 1)], buyer={"email": "john.doe@example.com"},
                 fulfillment=no_destinations())
    ds = destinations(doc)
    assert [d["id"] for d in ds] == ["addr_1", "addr_2"]
    assert ds[0]["street_address"] == "123 Main St"
    assert ds[0]["address_locality"] == "Springfield"
    assert ds[0]["address_region"] == "IL"
    assert ds[0]["postal_code"] == "62704"
    assert ds[0]["address_country"] == "US"
    # select one of them: its country's rates are offered
    doc = update(shop, doc, fulfillment={"methods": [{"type": "shipping",
                                                      "selected_destination_id": "addr_2"}]})
    assert "exp-ship-us" in options(doc)


def test_unknown_customer_or_none_saved_gets_none(shop):
    for email in ("stranger@example.com", "jane.doe@example.com"):  # unknown; no address
        doc = create(shop, [("pot_ceramic", 1)], buyer={"email": email},
                     fulfillment=no_destinations())
        assert destinations(doc) == [], email
    doc = create(shop, [("pot_ceramic", 1)], fulfillment=no_destinations())  # no buyer
    assert destinations(doc) == []


def test_new_address_is_saved_and_offered_next_time(shop):
    email = "Jane.Smith@example.com"  # cust_2: addr_3 saved
    doc = create(shop, [("pot_ceramic", 1)], buyer={"email": email},
                 fulfillment=shipping("US", dest_id="mine", street="42 Elm St"))
    new_id = destinations(doc)[0]["id"]
    assert new_id.startswith("addr_") and new_id != "addr_3"
    assert doc["fulfillment"]["methods"][0]["selected_destination_id"] == new_id

    doc = create(shop, [("pot_ceramic", 1)], buyer={"email": "jane.smith@example.com"},
                 fulfillment=no_destinations())
    ds = destinations(doc)
    assert [d["id"] for d in ds] == ["addr_3", new_id]
    assert ds[1]["street_address"] == "42 Elm St"

    # stored sealed: the street is not in the database in clear
    db = sqlite3.connect(str(shop.data_dir / "agentd.db"))
    rows = db.execute("SELECT id, customer, body FROM saved_addresses").fetchall()
    db.close()
    assert any(r[0] == new_id and r[1] == "jane.smith@example.com" for r in rows)
    assert all("Elm" not in r[2] for r in rows)
    assert "42 Elm St" not in shop.log_text()


def test_address_equal_to_a_saved_one_reuses_its_id(shop):
    same = {"methods": [{"type": "shipping", "destinations": [{
        "id": "client-1", "street_address": "123 main st ", "address_locality": "Springfield",
        "address_region": "IL", "postal_code": "62704", "address_country": "US"}],
        "selected_destination_id": "client-1", "groups": [{"selected_option_id": "std-ship"}]}]}
    doc = create(shop, [("pot_ceramic", 1)], buyer={"email": "john.doe@example.com"},
                 fulfillment=same)
    m = doc["fulfillment"]["methods"][0]
    assert [d["id"] for d in m["destinations"]] == ["addr_1"]
    assert m["selected_destination_id"] == "addr_1"
    assert totals(doc)["fulfillment"] == 500
    # and nothing new was saved for John
    doc = create(shop, [("pot_ceramic", 1)], buyer={"email": "john.doe@example.com"},
                 fulfillment=no_destinations())
    assert [d["id"] for d in destinations(doc)] == ["addr_1", "addr_2"]
