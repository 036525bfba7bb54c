"""Store calls and commits per UCP checkout operation (issue 14): each
operation's writes — the checkout, the address it remembers, its audit row,
the order — commit together, and each reads the checkout once (parsed only
when the shop's cache does not hold it as stored), so a change
that adds a store call or a commit to a checkout flow fails here rather than
only in a benchmark."""

import time

import pytest

from agentd_harness import REPO, parse_metrics
from ucp_client import Client, full_body, unique_profile

FLOWS = 4


@pytest.fixture(scope="module")
def shop(module_agentd):
    return module_agentd(env={"AGENTD_CATALOG": str(REPO / "data" / "catalog.json")})


# the server's own timers (the outbox poll every 0.5 s, the instance
# heartbeat every 2 s, the purge) call the store whatever the clients do
BACKGROUND = ("outbox_", "instance_", "purge_expired", "ping")


def snapshot(srv):
    calls, commits = {}, 0
    for name, labels, v in parse_metrics(srv.get("/metrics").text):
        if name == "agentd_store_op_duration_seconds_count":
            if not labels["op"].startswith(BACKGROUND):
                calls[labels["op"]] = v
        elif name == "agentd_checkout_documents_total":
            calls["doc_" + labels["way"]] = v
        elif name == "agentd_store_commits_total":
            commits = v
    return calls, commits


def delta(srv, run):
    """Store calls per run, and commits per run less what the timers could
    have committed meanwhile (at most 2 a second, plus one)."""
    run()  # warm: the first call may meet start-up work
    c0, k0 = snapshot(srv)
    t0 = time.monotonic()
    for _ in range(FLOWS):
        run()
    background = 2 * (time.monotonic() - t0) + 1
    c1, k1 = snapshot(srv)
    calls = {op: (v - c0.get(op, 0)) / FLOWS for op, v in c1.items() if v != c0.get(op, 0)}
    return calls, max(0.0, k1 - k0 - background) / FLOWS


def test_create_update_complete_store_calls(shop):
    client = Client(shop, unique_profile("rt"))
    made = []

    def create():
        made.append(client.create_ok(full_body([("BISC-001", 1)]))["id"])

    calls, commits = delta(shop, create)
    assert calls == {"checkout_create": 1, "stock_get": 1, "address_list": 1,
                     "audit_append": 1, "batch_commit": 1, "doc_serialised": 1,
                     "doc_reply": 1}, calls
    assert commits <= 1.25, commits  # one commit

    def update():
        cid = made.pop()
        r = client.update(cid, full_body([("BISC-001", 2)], client_id=cid))
        assert r.status_code == 200, r.text

    calls, commits = delta(shop, update)
    assert calls == {"checkout_get": 1, "checkout_update": 1, "stock_get": 1,
                     "address_list": 1, "audit_append": 1, "batch_commit": 1,
                     "doc_cached": 1, "doc_serialised": 1, "doc_reply": 1}, calls
    assert commits <= 1.25, commits

    def complete():
        cid = client.create_ok(full_body([("BISC-001", 1)]))["id"]
        c0, _ = snapshot(shop)
        r = client.complete(cid)
        assert r.status_code == 200, r.text
        c1, _ = snapshot(shop)
        complete.calls.append({op: v - c0.get(op, 0) for op, v in c1.items()
                               if v != c0.get(op, 0)})

    complete.calls = []
    _, commits = delta(shop, complete)
    for calls in complete.calls:
        # the claim commits alone (before the payment); the order and the
        # audit row together. Documents: the load (found parsed: the
        # create stored it); the claim's save, the completed checkout's and
        # the order's; the reply cut from the completed checkout's
        assert calls == {"checkout_get": 1, "checkout_update": 1, "stock_get": 1,
                         "address_list": 1, "order_create": 1, "audit_append": 1,
                         "batch_commit": 1, "doc_cached": 1, "doc_serialised": 3,
                         "doc_reply": 1}, calls
    assert commits <= 3.25, commits  # its create, the claim, the order


def test_reply_cut_from_the_saved_document_is_the_rendered_one(shop):
    """A create's, an update's and a completion's reply is cut from the
    document the operation saved (doc_reply), not rendered again: byte for
    byte what a GET renders from the same checkout."""
    client = Client(shop, unique_profile("cut"))
    c0, _ = snapshot(shop)
    r = client.create(full_body([("BISC-001", 1)]))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.content == client.get(cid).content
    r = client.update(cid, full_body([("BISC-001", 3)], client_id=cid))
    assert r.status_code == 200, r.text
    assert r.content == client.get(cid).content
    r = client.complete(cid)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert r.content == client.get(cid).content
    c1, _ = snapshot(shop)
    assert c1["doc_reply"] - c0.get("doc_reply", 0) == 3


def test_declined_then_completed_documents(shop):
    """The claim's save is not cached (the completion's replaces it a moment
    later): a declined completion reads the claimed checkout back parsed to
    put it back to ready, caches that, and the retry completes from the cache
    with the same reply a GET renders."""
    client = Client(shop, unique_profile("dec"))
    cid = client.create_ok(full_body([("BISC-001", 1)]))["id"]
    c0, _ = snapshot(shop)
    r = client.complete(cid, token="fail_token")
    assert r.status_code == 402, r.text
    c1, _ = snapshot(shop)
    docs = {op: v - c0.get(op, 0) for op, v in c1.items()
            if op.startswith("doc_") and v != c0.get(op, 0)}
    # the claim: loaded cached, saved; putting it back: loaded parsed, saved
    assert docs == {"doc_cached": 1, "doc_parsed": 1, "doc_serialised": 2}, docs
    assert client.get(cid).json()["status"] == "ready_for_complete"
    r = client.complete(cid)
    assert r.status_code == 200, r.text
    c2, _ = snapshot(shop)
    docs = {op: v - c1.get(op, 0) for op, v in c2.items()
            if op.startswith("doc_") and v != c1.get(op, 0)}
    assert docs == {"doc_cached": 2, "doc_serialised": 3, "doc_reply": 1}, docs
    assert r.json()["status"] == "completed"
    assert r.content == client.get(cid).content
