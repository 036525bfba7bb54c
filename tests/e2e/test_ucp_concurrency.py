"""Concurrent writers on one checkout (compare-and-swap, no lost or torn
write) and the race for the last unit in stock."""

import threading

import pytest

from ucp_client import (Client, check_checkout, check_error, db_query, db_stock,
                        expected_totals, full_body, lines, load_catalog, totals_of,
                        unique_profile, write_catalog)

N_LAST = 6


@pytest.fixture(scope="module")
def catalog_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "catalog.json"
    products = [("HOT-1", "3.37", 1_000_000)] + [(f"LAST-{i}", "9.99", 1) for i in range(N_LAST)]
    return write_catalog(
        path, products,
        discounts=[{"code": "10OFF", "type": "percentage", "value": 10}],
        taxes=[{"country": "US", "region": "IL", "rate_bp": 625},
               {"country": "*", "region": "*", "rate_bp": 0}])


@pytest.fixture(scope="module")
def shop(module_agentd, catalog_path):
    return module_agentd(env={"AGENTD_CATALOG": catalog_path})


def run_parallel(n, fn):
    """fn(i) in n threads released together; returns the results in order."""
    barrier = threading.Barrier(n)
    out = [None] * n
    errors = []

    def go(i):
        try:
            barrier.wait(10)
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, e))

    ts = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:3]
    return out


def etag_version(etag):
    """The checkout version in an ETag: "7", or "7-gzip" for the gzip variant."""
    return int(etag.strip('"').removesuffix("-gzip"))


def test_100_parallel_adds_count_exactly_100(shop, catalog_path):
    """100 connections each add one unit through the atomic add route at
    once: every add is a compare-and-swap retried inside the server, so the
    quantity ends at exactly 100 with exact totals and the version moved 100
    times. If-Match on a stale version is refused."""
    cat = load_catalog(catalog_path)
    owner = Client(shop, unique_profile("adds"))
    doc = owner.create_ok(full_body([("HOT-1", 1)]))
    cid = doc["id"]
    v0 = etag_version(owner.get(cid).headers["ETag"])

    def add(i):
        c = Client(shop, owner.profile)
        return c.request("POST", f"/checkout-sessions/{cid}/line-items",
                         {"item": {"id": "HOT-1"}, "quantity": 1})

    rs = run_parallel(100, add)
    assert [r.status_code for r in rs] == [200] * 100, sorted({r.status_code for r in rs})
    final = owner.get(cid)
    d = check_checkout(final.json())
    assert d["line_items"][0]["quantity"] == 101
    want = expected_totals(cat, [("HOT-1", 101)], "US", "IL", "std-ship")
    assert totals_of(d)["total"] == want["total"]
    assert etag_version(final.headers["ETag"]) == v0 + 100
    stale = owner.request("PUT", f"/checkout-sessions/{cid}", {"line_items": lines(("HOT-1", 1))},
                          headers={"If-Match": f'"{v0}"'})
    check_error(stale, 409, "version_conflict")
    assert owner.get(cid).json()["line_items"][0]["quantity"] == 101


def test_100_parallel_puts_leave_one_whole_state(shop, catalog_path):
    """PUT replaces the line list, so 100 writers each set a distinct
    quantity: the end state must be exactly one of them, with totals that
    belong to it, and every accepted write must have bumped the version once
    (none lost)."""
    cat = load_catalog(catalog_path)
    owner = Client(shop, unique_profile("cas"))
    doc = owner.create_ok(full_body([("HOT-1", 1)], codes=["10OFF"]))
    cid = doc["id"]
    assert doc["status"] == "ready_for_complete"

    def put(i):
        c = Client(shop, owner.profile)          # its own session, its own connection
        return c.update(cid, {"line_items": lines(("HOT-1", i + 1))})

    rs = run_parallel(100, put)
    ok = {}
    for i, r in enumerate(rs):
        if r.status_code == 200:
            d = check_checkout(r.json())
            assert d["line_items"][0]["quantity"] == i + 1, "a reply shows another write"
            want = expected_totals(cat, [("HOT-1", i + 1)], "US", "IL", "std-ship", ["10OFF"])
            assert totals_of(d)["total"] == want["total"]
            ok[i + 1] = d
        else:
            # only "too much contention, retry" is an acceptable refusal
            check_error(r, 409, "conflict")
    assert len(ok) >= 90, f"only {len(ok)} of 100 writes went through"

    final = check_checkout(owner.get(cid).json())
    q = final["line_items"][0]["quantity"]
    assert q in ok, f"final quantity {q} was never written successfully"
    assert len(final["line_items"]) == 1
    want = expected_totals(cat, [("HOT-1", q)], "US", "IL", "std-ship", ["10OFF"])
    got = totals_of(final)
    assert {k: got[k] for k in ("subtotal", "items_discount", "discount", "fulfillment", "tax", "total")} == \
        {k: want[k] for k in ("subtotal", "items_discount", "discount", "fulfillment", "tax", "total")}
    assert final["status"] == "ready_for_complete"
    assert final == ok[q] or totals_of(final) == totals_of(ok[q])
    version = db_query(shop, "SELECT version FROM checkouts WHERE id = ?", cid)[0][0]
    assert version == 1 + len(ok), f"version {version} after {len(ok)} accepted writes"
    r = owner.complete(cid)
    assert r.status_code == 200, r.text
    assert totals_of(r.json()) == got


def test_parallel_edits_and_complete_never_charge_a_stale_total(shop):
    """PUTs racing a complete: the order has the totals of the state it
    completed, and edits after completion are refused."""
    owner = Client(shop, unique_profile("race-complete"))
    doc = owner.create_ok(full_body([("HOT-1", 1)]))
    cid = doc["id"]

    def act(i):
        c = Client(shop, owner.profile)
        if i == 0:
            return c.complete(cid)
        return c.update(cid, {"line_items": lines(("HOT-1", 1 + i))})

    rs = run_parallel(20, act)
    assert rs[0].status_code in (200, 409), rs[0].text
    final = check_checkout(owner.get(cid).json())
    for r in rs[1:]:
        assert r.status_code in (200, 409), r.text
        if r.status_code == 409:
            assert r.json()["messages"][0]["code"] in ("not_modifiable", "complete_in_progress",
                                                       "conflict")
    if rs[0].status_code == 200:
        done = rs[0].json()
        assert final["status"] == "completed"
        order = owner.order(done["order"]["id"]).json()
        assert totals_of(order) == totals_of(done) == totals_of(final)
        assert order["line_items"][0]["quantity"]["total"] == final["line_items"][0]["quantity"]
    else:
        check_error(rs[0], 409)
        assert final["status"] != "completed"


def _ready_pair(shop, pid, n=2):
    out = []
    for _ in range(n):
        c = Client(shop, unique_profile("last"))
        d = c.create_ok(full_body([(pid, 1)]))
        assert d["status"] == "ready_for_complete"
        out.append((c, d["id"]))
    return out


@pytest.mark.parametrize("slot,racers", [(0, 2), (1, 2), (2, 2), (3, 2), (4, 8)],
                         ids=["2-a", "2-b", "2-c", "2-d", "8"])
def test_last_unit_race(shop, slot, racers):
    """Checkouts for the one unit left complete at once: exactly one order;
    every other buyer gets 409 out_of_stock and keeps a live session."""
    pid = f"LAST-{slot}"
    assert db_stock(shop, pid) == 1
    buyers = _ready_pair(shop, pid, racers)
    rs = run_parallel(racers, lambda i: buyers[i][0].complete(buyers[i][1]))
    won = [i for i, r in enumerate(rs) if r.status_code == 200]
    assert len(won) == 1, [(r.status_code, r.text[:200]) for r in rs]
    assert check_checkout(rs[won[0]].json())["status"] == "completed"
    for i, r in enumerate(rs):
        if i in won:
            continue
        err = check_error(r, 409, "out_of_stock")
        assert pid in err["content"]
        c, cid = buyers[i]
        g = check_checkout(c.get(cid).json())
        # whichever step noticed the short stock, the session says so
        assert g["status"] == "incomplete", g["status"]
        assert any(m["code"] == "out_of_stock" and m["type"] == "error"
                   for m in g.get("messages", [])), g.get("messages")
        assert "order" not in g
        n = db_query(shop, "SELECT count(*) FROM orders WHERE checkout_id = ?", cid)[0][0]
        assert n == 0
    assert db_stock(shop, pid) == 0
    # a loser is still a live session: it can change its cart and complete
    c, cid = buyers[(won[0] + 1) % racers]
    r = c.update(cid, {"line_items": lines(("HOT-1", 1))})
    assert r.status_code == 200 and r.json()["status"] == "ready_for_complete", r.text
    r = c.complete(cid)
    assert r.status_code == 200, r.text
