"""Payment data at rest (issue #12 item 4): after a full UCP purchase and a
/chat purchase, each with a payment token and (AGENTD_AUTH=on) an API key,
neither the database file (nor its WAL) holds the token, the billing street
or the key, and no log line does; `agentd keys rotate-encryption` re-seals
under a new key and the checkout, order and saved addresses (the address
book) still read with the new key alone; a key not configured
leaves the checkout readable without its credential; production without a
key refuses to start."""

import uuid

from agentd_harness import run_cli
from ucp_client import (EXAMPLE_HANDLER, Client, address, check_checkout, full_body, lines,
                        unique_profile)

KEY_A = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY_B = "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA="
KEY_C = "ZHVtbXkta2V5LWZvci1jaGVjay1jb25maWctMzJieXQ="
BILLING_STREET = "742 Evergreen Billing Terrace"
SHIP_TO = "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com"


def secret_token(tag):
    # example_payment_provider approves any token but fail_token
    return f"mock_token_{tag}_{uuid.uuid4().hex}"


def instrument(token):
    return {"id": "instr_1", "handler_id": EXAMPLE_HANDLER, "type": "card", "brand": "visa",
            "last_digits": "4242", "credential": {"type": "token", "token": token},
            "billing_address": {"street_address": BILLING_STREET,
                                "address_locality": "Springfield", "address_country": "US"}}


def stored_bytes(srv):
    """The database file and its WAL, as bytes (read while the server runs)."""
    out = b""
    for name in ("agentd.db", "agentd.db-wal"):
        p = srv.data_dir / name
        if p.exists():
            out += p.read_bytes()
    return out


def assert_nowhere(srv, *secrets):
    data, log = stored_bytes(srv), srv.log_text()
    assert data, "no database file"
    for s in secrets:
        assert s.encode() not in data, f"{s[:24]}... is in the database file"
        assert s not in log, f"{s[:24]}... is in the log"


def ucp_ready_with_token(client, token):
    body = full_body()
    body["payment"]["handlers"] = [{"id": EXAMPLE_HANDLER, "name": "example.payment.provider"}]
    body["payment"]["instruments"] = [instrument(token)]
    doc = client.create_ok(body)
    assert doc["status"] == "ready_for_complete", doc.get("messages")
    assert token not in str(doc) and BILLING_STREET not in str(doc)
    return doc


def complete(client, cid, token):
    r = client.complete(cid, body={"payment_data": instrument(token)})
    assert r.status_code == 200, r.text
    return check_checkout(r.json())


def chat(srv, key, message, sid=None, data=None):
    body = {"message": message}
    if sid:
        body["session_id"] = sid
    if data:
        body["data"] = data
    r = srv.request("POST", "/chat", json=body, headers={"Authorization": f"Bearer {key}"},
                    timeout=10)
    assert r.status_code == 200, f"{message!r}: {r.status_code} {r.text}"
    return r.json()


def test_purchases_leave_no_token_billing_street_or_key(agentd):
    srv = agentd(env={"AGENTD_AUTH": "on", "AGENTD_ENCRYPTION_KEY": KEY_A})
    # UCP: the instrument with a token and a billing address at create and at complete
    c = Client(srv, unique_profile("at-rest"))
    t_create, t_pay = secret_token("create"), secret_token("pay")
    pending = ucp_ready_with_token(c, secret_token("pending"))  # never completed
    doc = ucp_ready_with_token(c, t_create)
    done = complete(c, doc["id"], t_pay)
    assert done["status"] == "completed"
    inst = done["payment"]["instruments"][0]
    assert inst["brand"] == "visa" and inst["last_digits"] == "4242", inst
    assert "credential" not in inst, "after completion only brand and last digits remain"
    assert c.order(done["order"]["id"]).status_code == 200
    assert c.get(pending["id"]).status_code == 200

    # /chat: the token travels as message data
    key = srv.create_key("chat-buyer")
    t_chat = secret_token("chat")
    sid = chat(srv, key, "add 1 BISC-001")["session_id"]
    chat(srv, key, SHIP_TO, sid)
    d = chat(srv, key, "standard shipping", sid)
    assert d["checkout"]["status"] == "ready_for_complete", d["checkout"].get("messages")
    pay = {"a2a.ucp.checkout.payment_data": {"handler_id": EXAMPLE_HANDLER,
                                             "credential": {"type": "token", "token": t_chat}}}
    d = chat(srv, key, "pay", sid, data=pay)
    assert d["checkout"]["status"] == "completed", d

    assert_nowhere(srv, t_create, t_pay, t_chat, BILLING_STREET, key, c.key)
    assert b"seal1:" in stored_bytes(srv), "the pending checkout's credential is sealed"


def test_rotate_encryption_then_everything_still_reads(agentd):
    srv = agentd(env={"AGENTD_ENCRYPTION_KEY": KEY_A})
    c = Client(srv, unique_profile("rotate"))
    token = secret_token("rot")
    pending = ucp_ready_with_token(c, token)
    done = complete(c, ucp_ready_with_token(c, secret_token("rot2"))["id"], secret_token("p"))
    srv.stop()

    rotate = ["keys", "rotate-encryption"]
    env = {"AGENTD_DATA_DIR": srv.data_dir, "AGENTD_ENCRYPTION_KEY": KEY_B,
           "AGENTD_ENCRYPTION_KEYS_OLD": KEY_A}
    p = run_cli(rotate, env=env)
    assert p.returncode == 0, p.stderr
    assert "1 re-sealed" in p.stdout and "0 unreadable" in p.stdout, p.stdout
    p = run_cli(rotate, env=env)  # idempotent
    assert p.returncode == 0 and "0 re-sealed" in p.stdout and "1 already current" in p.stdout, \
        p.stdout
    assert KEY_A not in p.stdout + p.stderr and KEY_B not in p.stdout + p.stderr
    # without the old key the first run would have found it unreadable
    p = run_cli(rotate, env={"AGENTD_DATA_DIR": srv.data_dir, "AGENTD_ENCRYPTION_KEY": KEY_C})
    assert p.returncode == 1 and "1 unreadable" in p.stdout, p.stdout
    assert run_cli(rotate, env={"AGENTD_DATA_DIR": srv.data_dir}).returncode == 2

    # the new key alone reads everything
    srv.extra_env = {"AGENTD_ENCRYPTION_KEY": KEY_B}
    srv.start()
    assert c.get(pending["id"]).status_code == 200
    assert c.get(done["id"]).json()["status"] == "completed"
    assert c.order(done["order"]["id"]).status_code == 200
    assert "does not open" not in srv.log_text()
    assert token.encode() not in stored_bytes(srv)
    srv.stop()

    # a key that is not configured: the checkout reads, its credential is gone
    srv.extra_env = {"AGENTD_ENCRYPTION_KEY": KEY_C}
    srv.start()
    r = c.get(pending["id"])
    assert r.status_code == 200 and r.json()["payment"]["instruments"][0]["last_digits"] == "4242"
    assert srv.wait_log(lambda line: "does not open" in line.get("msg", ""))
    assert KEY_B not in srv.log_text() and KEY_C not in srv.log_text()


def test_development_without_a_key_warns(agentd):
    srv = agentd()
    assert srv.wait_log(lambda line: "AGENTD_ENCRYPTION_KEY is not set" in line.get("msg", ""))


def test_production_without_a_key_refuses_to_start():
    p = run_cli(["serve"], env={"AGENTD_ENV": "production", "AGENTD_AUTH": "on",
                                "AGENTD_LLM": "builtin"})
    assert p.returncode == 2, p.stderr
    assert "production: AGENTD_ENCRYPTION_KEY is not set" in p.stderr
    p = run_cli(["check-config"], env={"AGENTD_ENCRYPTION_KEY": "too-short"})
    assert p.returncode == 2 and "AGENTD_ENCRYPTION_KEY: a key is the base64" in p.stdout
    assert "too-short" not in p.stdout


def offered_addresses(c, email):
    """The saved addresses a checkout with this buyer email is offered."""
    doc = c.create_ok({"line_items": lines(("BISC-001", 1)), "buyer": {"email": email},
                       "fulfillment": {"methods": [{"type": "shipping"}]}})
    return doc["fulfillment"]["methods"][0].get("destinations", [])


def line_of(out, what):
    return next(ln for ln in out.splitlines() if what in ln)


def test_rotate_encryption_reseals_saved_addresses(agentd):
    srv = agentd(env={"AGENTD_ENCRYPTION_KEY": KEY_A})
    c = Client(srv, unique_profile("rotaddr"))
    email = f"rot-{uuid.uuid4().hex[:8]}@example.com"
    for street in ("1 Rotation Way", "2 Rotation Way"):
        c.create_ok(full_body(email=email, addr=address(street_address=street)))
    saved = offered_addresses(c, email)
    assert sorted(a["street_address"] for a in saved) == ["1 Rotation Way", "2 Rotation Way"]
    srv.stop()

    rotate = ["keys", "rotate-encryption"]
    env = {"AGENTD_DATA_DIR": srv.data_dir, "AGENTD_ENCRYPTION_KEY": KEY_B,
           "AGENTD_ENCRYPTION_KEYS_OLD": KEY_A}
    p = run_cli(rotate, env=env)
    assert p.returncode == 0, p.stderr
    line = line_of(p.stdout, "saved addresses")
    assert ": 2 saved addresses: 2 re-sealed, 0 already current, 0 unreadable" in line, line
    p = run_cli(rotate, env=env)   # idempotent
    assert p.returncode == 0, p.stderr
    line = line_of(p.stdout, "saved addresses")
    assert "2 saved addresses: 0 re-sealed, 2 already current" in line, line
    # a key that seals none of them: each is unreadable, and the run says so
    p = run_cli(rotate, env={"AGENTD_DATA_DIR": srv.data_dir, "AGENTD_ENCRYPTION_KEY": KEY_C})
    assert p.returncode == 1
    assert "2 unreadable" in line_of(p.stdout, "saved addresses"), p.stdout

    # the old key retired: the book still reads under the new key alone
    srv.extra_env = {"AGENTD_ENCRYPTION_KEY": KEY_B}
    srv.start()
    again = offered_addresses(c, email)
    assert sorted((a["id"], a["street_address"]) for a in again) == \
        sorted((a["id"], a["street_address"]) for a in saved)
    assert "does not open" not in srv.log_text()
