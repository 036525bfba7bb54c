"""Idempotency-Key on the UCP mutations: a retry replays the first answer,
a reused key with another request is refused, a key still being processed
answers 409, and keys belong to one principal. The servers run with
AGENTD_AUTH=on: each test platform authenticates as its own principal."""

import threading
import uuid

import pytest

from ucp_client import (Client, check_checkout, check_error, db_count_checkouts, db_query,
                        full_body, lines, unique_profile)


def new_key():
    return "key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def server(module_agentd):
    """Keys are per principal: every test platform is its own (API key)."""
    return module_agentd(env={"AGENTD_AUTH": "on"})


@pytest.fixture
def client(server):
    return Client(server, unique_profile("idem"))


def test_same_key_same_request_replays(server, client):
    key = new_key()
    body = full_body([("BISC-001", 2)])
    first = client.create(body, key=key)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    check_checkout(first.json())
    for _ in range(2):
        again = client.create(body, key=key)
        assert again.status_code == 201
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.content == first.content
        assert again.headers["Content-Type"] == first.headers["Content-Type"]
        assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
    assert db_count_checkouts(server, client.owner) == 1
    # without a key, the same body is a new checkout
    assert client.create(body).json()["id"] != first.json()["id"]
    assert db_count_checkouts(server, client.owner) == 2


def test_retried_complete_places_one_order(server, client):
    doc = client.ready([("BISC-001", 1)])
    key = new_key()
    r1 = client.complete(doc["id"], key=key)
    assert r1.status_code == 200, r1.text
    r2 = client.complete(doc["id"], key=key)
    assert r2.status_code == 200 and r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json()["order"]["id"] == r1.json()["order"]["id"]
    n = db_query(server, "SELECT count(*) FROM orders WHERE checkout_id = ?", doc["id"])[0][0]
    assert n == 1
    # a new key is a new attempt: the session is completed by now
    check_error(client.complete(doc["id"], key=new_key()), 409, "not_modifiable")


def test_replayed_decline_then_new_key_succeeds(client):
    doc = client.ready([("BISC-001", 1)])
    key = new_key()
    check_error(client.complete(doc["id"], "fail_token", key=key), 402, "payment_declined")
    r = client.complete(doc["id"], "fail_token", key=key)
    check_error(r, 402, "payment_declined")
    assert r.headers.get("Idempotent-Replayed") == "true"
    r = client.complete(doc["id"], "success_token", key=new_key())
    assert r.status_code == 200, r.text


def test_errors_are_replayed_too(server, client):
    key = new_key()
    body = {"line_items": lines(("NOT-A-PRODUCT", 1))}
    first = client.create(body, key=key)
    check_error(first, 400, "not_found")
    again = client.create(body, key=key)
    assert again.status_code == 400 and again.content == first.content
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_same_key_different_request_conflicts(server, client):
    key = new_key()
    first = client.create(full_body([("BISC-001", 1)]), key=key)
    assert first.status_code == 201
    r = client.create(full_body([("BISC-001", 2)]), key=key)
    check_error(r, 409, "idempotency_key_reused")
    assert "Idempotent-Replayed" not in r.headers
    # the same key on another route is another request too
    cid = first.json()["id"]
    check_error(client.update(cid, {"line_items": lines(("BISC-001", 3))}, key=key), 409,
                "idempotency_key_reused")
    check_error(client.cancel(cid, key=key), 409, "idempotency_key_reused")
    assert db_count_checkouts(server, client.owner) == 1
    g = client.get(cid).json()
    assert g["status"] == "ready_for_complete" and g["line_items"][0]["quantity"] == 1


def test_keys_are_scoped_per_principal(server):
    a = Client(server, unique_profile("a"))
    b = Client(server, unique_profile("b"))
    key = new_key()
    body = full_body([("BISC-001", 1)])
    ra = a.create(body, key=key)
    rb = b.create(body, key=key)
    assert ra.status_code == rb.status_code == 201
    assert "Idempotent-Replayed" not in rb.headers
    assert ra.json()["id"] != rb.json()["id"]
    assert db_count_checkouts(server, a.owner) == db_count_checkouts(server, b.owner) == 1
    # each platform's retry replays its own answer
    assert a.create(body, key=key).json()["id"] == ra.json()["id"]
    assert b.create(body, key=key).json()["id"] == rb.json()["id"]
    # and b cannot see a's checkout through the replay of a key
    check_error(b.get(ra.json()["id"]), 404, "not_found")


@pytest.fixture(scope="module")
def one_worker(module_agentd):
    """One store worker: the claim of a key and the work behind it queue up,
    so requests racing on one key find it in progress."""
    return module_agentd(env={"AGENTD_WORKERS": "1", "AGENTD_AUTH": "on"})


def _race(client, key, body, n):
    barrier = threading.Barrier(n)
    out = [None] * n

    def go(i):
        c = Client(client.base, client.profile, key=client.key)   # its own connection
        barrier.wait()
        out[i] = c.create(body, key=key)

    ts = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def test_concurrent_requests_with_one_key_run_once(one_worker):
    seen_in_progress = 0
    for round_ in range(8):
        client = Client(one_worker, unique_profile("race"))
        key = new_key()
        rs = _race(client, key, full_body([("BISC-001", 1)]), 24)
        created = [r for r in rs if r.status_code == 201]
        busy = [r for r in rs if r.status_code == 409]
        assert len(created) + len(busy) == len(rs), [(r.status_code, r.text) for r in rs]
        for r in busy:
            check_error(r, 409, "idempotency_in_progress")
        assert created, "nobody got the answer"
        assert len({r.content for r in created}) == 1, "different bodies for one key"
        fresh = [r for r in created if r.headers.get("Idempotent-Replayed") != "true"]
        assert len(fresh) <= 1
        assert db_count_checkouts(one_worker, client.owner) == 1
        # once done, a retry replays
        r = client.create(full_body([("BISC-001", 1)]), key=key)
        assert r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
        assert r.content == created[0].content
        seen_in_progress += len(busy)
        if seen_in_progress and round_ >= 1:
            break
    assert seen_in_progress, "no request ever found its key in progress"


def test_claim_left_by_a_crash_does_not_block_the_key(agentd):
    """What a SIGKILL between claiming a key and recording the answer leaves
    behind: an in_progress row. A retry minutes later must run (or replay),
    not be told 'still being processed' for a day."""
    import hashlib
    import json
    import sqlite3
    import time
    a = agentd()
    profile, key = unique_profile("crash"), new_key()
    raw = json.dumps(full_body([("BISC-001", 1)])).encode()
    fp = hashlib.sha256(b"POST\n/checkout-sessions\n" + raw).hexdigest()
    assert a.stop() == 0
    now = int(time.time() * 1000)
    con = sqlite3.connect(a.data_dir / "agentd.db")
    with con:
        con.execute("INSERT INTO idempotency(principal, key, fingerprint, state, created_at, "
                    "expires_at) VALUES(?, ?, ?, 'in_progress', ?, ?)",
                    # the key's owner: the principal (anonymous with auth off)
                    ("anonymous", key, fp, now - 10 * 60 * 1000, now + 23 * 3600 * 1000))
    con.close()
    b = agentd(env={"AGENTD_DATA_DIR": a.data_dir})
    r = Client(b, profile).create(None, key=key, raw=raw)
    assert r.status_code == 201, r.text


def test_bad_agent_header_does_not_claim_the_key(server, client):
    """The UCP-Agent header is checked before the key is claimed: a refused
    header is answered, not stored, so the same key then creates."""
    key = new_key()
    body = full_body([("BISC-001", 1)])
    for bad in ({"UCP-Agent": "profile=https"},
                {"UCP-Agent": 'profile="https://p.test/x", version="2099-01-01"'}):
        r = client.create(body, key=key, headers=bad)
        assert r.status_code == 400, r.text
        assert "Idempotent-Replayed" not in r.headers
    ok = client.create(body, key=key)
    assert ok.status_code == 201, ok.text
    assert "Idempotent-Replayed" not in ok.headers
    assert db_count_checkouts(server, client.owner) == 1
