"""Every 4xx of the UCP REST front with its body: UCP's error shape
({status, messages[{type:error, code, content, severity, path?}]}) for
the UCP routes, the server's generic shape for routing errors."""

import json

import pytest

from agentd_harness import assert_error_response
from ucp_client import (PAN, PROFILE, Client, address, agent_header, check_checkout, check_error,
                        db_path, full_body, lines, payment_data, unique_profile)


@pytest.fixture
def client(server):
    return Client(server, unique_profile("err"))


@pytest.fixture
def ready(client):
    return client.ready([("BISC-001", 1)])


def post(server, path, headers=None, **kw):
    return server.request("POST", path, headers=headers, **kw)


# ---- UCP-Agent ----

@pytest.mark.parametrize("method,path", [
    ("POST", "/checkout-sessions"),
    ("GET", "/checkout-sessions/chk_x"),
    ("PUT", "/checkout-sessions/chk_x"),
    ("POST", "/checkout-sessions/chk_x/complete"),
    ("POST", "/checkout-sessions/chk_x/cancel"),
    ("GET", "/orders/ord_x"),
])
def test_missing_ucp_agent(server, method, path):
    r = server.request(method, path, json={"line_items": lines(("BISC-001", 1))})
    check_error(r, 400, "missing", content_has="UCP-Agent")


HOSTILE = [
    ('profile="https://platform.example/profile', "unterminated"),
    ('profile="https://platform.example/\\x"', "bad escape"),
    ('profile="https://platform.example/p\\', "unterminated"),
    ('version="2026-01-11"', "required"),
    ("", None),
    ('profile=https', "quoted string"),
    ('profile="ftp://platform.example/p"', "absolute"),
    ('profile="https://user@evil.example/p"', "absolute"),
    ('profile="/relative"', "absolute"),
    ('profile="https://a.example/p", profile="https://b.example/p"', "duplicate"),
    ('profile="https://a.example/p";Q=1', "parameter key"),
    ('profile=("https://a.example/p")', "inner list"),
    ('profile="https://a.example/p",', "trailing comma"),
    ('Profile="https://a.example/p"', "lowercase key"),
    ('profile="https://a.example/p", version=2026', "quoted string"),
    ('profile="https://a.example/p", version="2026-13-01"', "YYYY-MM-DD"),
    ('profile="https://a.example/p", version="yesterday"', "YYYY-MM-DD"),
    ('profile="https://a.example/' + "x" * 3000 + '"', None),
    ('profile="https://a.example/p" junk', "expected ','"),
    ("not a header", "expected ','"),
]


@pytest.mark.parametrize("value,why", HOSTILE)
def test_hostile_ucp_agent(server, value, why):
    r = post(server, "/checkout-sessions", headers={"UCP-Agent": value},
             json={"line_items": lines(("BISC-001", 1))})
    err = check_error(r, 400)
    assert err["code"] in ("invalid", "missing"), err
    if why:
        assert why in err["content"], err


def raw_create(server, *agent_lines):
    """POST /checkout-sessions with each of agent_lines as its own UCP-Agent
    field line (requests cannot send a field twice)."""
    body = json.dumps({"line_items": lines(("BISC-001", 1))}).encode()
    head = "".join(f"UCP-Agent: {v}\r\n" for v in agent_lines)
    return server.raw(b"POST /checkout-sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      b"Content-Type: application/json\r\n" + head.encode() +
                      f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def test_second_ucp_agent_line_is_part_of_the_header(server):
    """RFC 9110 5.3: field lines of one name are one comma-joined value, so a
    garbage second UCP-Agent line makes the dictionary invalid; it was
    ignored (only the first line was read)."""
    def code(r):
        assert r.status == 400, (r.status, r.body)
        msg = json.loads(r.body)["messages"][0]
        assert "UCP-Agent" in msg["content"] or msg["code"] != "invalid", msg
        return msg["code"]
    assert code(raw_create(server, f'profile="{PROFILE}"', "not a header")) == "invalid"
    assert code(raw_create(server, f'profile="{PROFILE}"', f'profile="{PROFILE}"')) == "invalid"
    assert code(raw_create(server, f'profile="{PROFILE}"',
                           'version="2099-01-01"')) == "version_unsupported"
    # a dictionary split over two lines is still one dictionary
    r = raw_create(server, f'profile="{PROFILE}"', 'version="2026-01-11"')
    assert r.status == 201, r.body


def test_newer_version_is_unsupported(server):
    c = Client(server, PROFILE, version="2099-01-01")
    err = check_error(c.create({"line_items": lines(("BISC-001", 1))}), 400,
                      "version_unsupported")
    assert "2099-01-01" in err["content"] and "2026-01-11" in err["content"]


@pytest.mark.parametrize("version", ["2026-01-11", "2025-10-01"])
def test_same_or_older_version_is_accepted(server, version):
    c = Client(server, unique_profile("ver"), version=version)
    r = c.create({"line_items": lines(("BISC-001", 1))})
    assert r.status_code == 201, r.text
    assert check_checkout(r.json())["ucp"]["version"] == "2026-01-11"


def test_http_profile_is_accepted_outside_production(server):
    c = Client(server, "http://platform.example/profile")
    assert c.create({"line_items": lines(("BISC-001", 1))}).status_code == 201


# ---- bodies ----

@pytest.mark.parametrize("raw,why", [
    (b"{bad", "invalid JSON"),
    (b"", "required"),
    (b"[1,2]", "JSON object"),
    (b'"text"', "invalid JSON"),
    (b'{"line_items": [}', "invalid JSON"),
    (b'{"line_items": []}\x00', "invalid JSON"),
])
def test_invalid_json_body(client, raw, why):
    err = check_error(client.create(None, raw=raw), 400, "invalid")
    assert why in err["content"], err


def test_body_read_fast_or_by_jansson_answers_the_same(client):
    # the common body is read by core/jsonparse, the rest (non-ASCII text, a
    # real number, a nesting bomb) by jansson: the same checkout or the same
    # error text, whichever reads it
    names = {r'"Caf\u00e9 \"A\""': "Caf\u00e9 \"A\"", '"Café \\"A\\""': "Café \"A\""}
    for raw, want in names.items():
        body = ('{"line_items":[{"item":{"id":"BISC-001"},"quantity":2}],'
                '"buyer":{"full_name":%s,"email":"x@example.com"}}' % raw)
        r = client.create(None, raw=body.encode())
        assert r.status_code == 201, r.text
        doc = check_checkout(r.json())
        assert doc["buyer"]["full_name"] == want and doc["line_items"][0]["quantity"] == 2
    body = b'{"line_items":[{"item":{"id":"BISC-001"},"quantity":1.5}]}'
    err = check_error(client.create(None, raw=body), 400)
    assert "quantity" in err["content"] or err.get("path", "").endswith("quantity"), err
    for raw, text in ((b'{"line_items": [}', "invalid JSON at line 1, column 17: "),
                      (b'{"a":1}x', "invalid JSON at line 1, column 8: end of file expected"),
                      (b'{"a":123456789012345678901}', "too big")):
        err = check_error(client.create(None, raw=raw), 400, "invalid")
        assert text in err["content"], err
    deep = b'{"line_items":' + b"[" * 64 + b"]" * 64 + b"}"
    err = check_error(client.create(None, raw=deep), 400)
    assert "deeper than 64" in err["content"], err


def test_invalid_json_on_update_and_complete(client, ready):
    check_error(client.update(ready["id"], None, raw=b"{nope"), 400, "invalid")
    check_error(client.request("POST", f"/checkout-sessions/{ready['id']}/complete", raw=b"{"),
                400, "invalid")


def test_line_items_required(client):
    err = check_error(client.create({"buyer": {"email": "a@b.example"}}), 400, "missing")
    assert err["path"] == "$.line_items"


def test_unknown_product(client):
    err = check_error(client.create({"line_items": lines(("BISC-001", 1), ("NO-SUCH-9", 2))}),
                      400, "not_found")
    assert "NO-SUCH-9" in err["content"] and err["path"] == "$.line_items[1]"


def test_unknown_product_on_update(client, ready):
    err = check_error(client.update(ready["id"], {"line_items": lines(("GHOST-1", 1))}), 400,
                      "not_found")
    assert "GHOST-1" in err["content"]
    g = check_checkout(client.get(ready["id"]).json())
    assert g == ready                     # a refused update changes nothing


def test_out_of_stock_product(client):
    check_error(client.create({"line_items": lines(("PIE-001", 1))}), 400, "out_of_stock")


def test_stock_counts_every_line_of_a_product(client):
    # PROTEIN-BAR-001 has 3 in stock: two lines of 2 are 4
    err = check_error(client.create({"line_items": lines(("PROTEIN-BAR-001", 2),
                                                         ("PROTEIN-BAR-001", 2))}),
                      400, "out_of_stock")
    assert "requested 4, available 3" in err["content"], err
    assert client.create({"line_items": lines(("PROTEIN-BAR-001", 2),
                                              ("PROTEIN-BAR-001", 1))}).status_code == 201



def test_more_than_in_stock_whatever_the_quantity(client):
    # over the per-line limit too: what is short is the stock (the samples' words)
    for qty in (10000, 2**31 - 1):
        err = check_error(client.create({"line_items": lines(("BISC-001", qty))}), 400,
                          "out_of_stock", content_has="Insufficient stock for item BISC-001")
        assert err["path"] == "$.line_items[0]"


@pytest.mark.parametrize("qty", [0, -1, 2**31])
def test_quantity_out_of_range(client, qty):
    err = check_error(client.create({"line_items": lines(("BISC-001", qty))}), 422,
                      "invalid_quantity")
    assert "BISC-001" in err["content"]


@pytest.mark.parametrize("qty", [10**20, 1.5, "2", None, True])
def test_quantity_not_an_integer(client, qty):
    r = client.create({"line_items": [{"item": {"id": "BISC-001"}, "quantity": qty}]})
    check_error(r, 400, "invalid")


def test_quantity_out_of_range_on_update(client, ready):
    check_error(client.update(ready["id"], {"line_items": lines(("BISC-001", 0))}), 422,
                "invalid_quantity")


def test_unknown_shipping_option(client):
    err = check_error(client.create(full_body(option="teleport")), 422, "invalid_option")
    assert "teleport" in err["content"] and err["path"].endswith("selected_option_id")


def test_shipping_option_not_offered_for_country(client):
    err = check_error(client.create(full_body(addr=address("CA", "ON"), option="us-overnight")),
                      422, "invalid_option")
    assert "us-overnight" in err["content"] and "CA" in err["content"]


def test_unknown_shipping_option_on_update(client, ready):
    m = ready["fulfillment"]["methods"][0]
    body = {"line_items": lines(("BISC-001", 1)), "fulfillment": {"methods": [
        {"id": m["id"], "groups": [{"id": m["groups"][0]["id"], "selected_option_id": "nope"}]}]}}
    check_error(client.update(ready["id"], body), 422, "invalid_option")
    g = client.get(ready["id"]).json()
    assert g["fulfillment"]["methods"][0]["groups"][0]["selected_option_id"] == "std-ship"


def test_wrong_currency(client):
    body = full_body()
    body["currency"] = "EUR"
    check_error(client.create(body), 422, "unsupported_currency")


def test_update_with_another_id_in_the_body(client, ready):
    body = {"id": "chk_someone_else", "line_items": lines(("BISC-001", 1))}
    err = check_error(client.update(ready["id"], body), 400, "invalid")
    assert err["path"] == "$.id"


# ---- who and what exists ----

@pytest.mark.parametrize("op", ["get", "update", "complete", "cancel"])
def test_unknown_checkout(client, op):
    cid = "chk_" + "0" * 24
    r = {"get": lambda: client.get(cid),
         "update": lambda: client.update(cid, {"line_items": lines(("BISC-001", 1))}),
         "complete": lambda: client.complete(cid),
         "cancel": lambda: client.cancel(cid)}[op]()
    check_error(r, 404, "not_found")


def test_unknown_order(client):
    check_error(client.order("ord_nope"), 404, "not_found")


# Another principal's checkout is a 404 (AGENTD_AUTH=on, two principals):
# test_auth.py::test_another_principals_checkout_does_not_exist.


# ---- completion ----

def test_complete_without_fulfillment(client):
    doc = client.create_ok({"line_items": lines(("BISC-001", 1)),
                            "buyer": {"email": "jane@example.com"}})
    assert doc["status"] == "incomplete"
    # the sample merchants' 400 and words
    err = check_error(client.complete(doc["id"]), 400, "missing",
                      content_has="Fulfillment address and option must be selected")
    assert err["path"] == "$.fulfillment.methods"
    assert check_checkout(client.get(doc["id"]).json())["status"] == "incomplete"


def test_complete_without_a_shipping_option(client):
    doc = client.create_ok(full_body(option=None))
    err = check_error(client.complete(doc["id"]), 400, "missing",
                      content_has="Fulfillment address and option must be selected")
    assert err["path"].endswith("selected_option_id")


def test_complete_without_payment_data(client, ready):
    err = check_error(client.complete(ready["id"], body={}), 400, "missing")
    assert err["path"] == "$.payment_data"
    check_error(client.complete(ready["id"], body={"payment_data": "tok"}), 400, "missing")


def test_complete_with_an_unknown_handler(client, ready):
    check_error(client.complete(ready["id"], body=payment_data(handler="stripe_live")), 400,
                "invalid")
    assert client.get(ready["id"]).json()["status"] == "ready_for_complete"


def _pan_nowhere(server):
    log = server.log_text()
    assert PAN not in log
    assert "4111 1111 1111 1111" not in log
    for suffix in ("", "-wal"):
        p = db_path(server).with_name("agentd.db" + suffix)
        if p.exists():
            assert PAN.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("where", ["token", "number", "nested", "spaced", "as_number"])
def test_card_number_in_payment_data(server, client, ready, where):
    pd = payment_data()
    if where == "token":
        pd["payment_data"]["credential"]["token"] = PAN
    elif where == "number":
        pd["payment_data"]["credential"] = {"type": "card", "number": PAN, "cvc": "123"}
    elif where == "nested":
        pd["payment_data"]["billing_address"] = {"street_address": "x", "note": "card " + PAN}
    elif where == "spaced":
        pd["payment_data"]["credential"]["token"] = "4111 1111 1111 1111"
    else:
        pd["payment_data"]["credential"]["token"] = int(PAN)
    err = check_error(client.complete(ready["id"], body=pd), 400, "invalid")
    assert err["path"].startswith("$")
    assert PAN not in err["content"]
    assert client.get(ready["id"]).json()["status"] == "ready_for_complete"
    _pan_nowhere(server)


def test_card_number_in_create_and_update(server, client, ready):
    body = full_body(token=PAN)
    err = check_error(client.create(body), 400, "invalid_payment")
    assert err["path"] == "$.payment.instruments[0]"
    body = full_body(token="success_token")
    del body["id"]
    body["payment"]["instruments"][0]["credential"] = {"type": "card", "number": PAN}
    check_error(client.update(ready["id"], body), 400, "invalid_payment")
    _pan_nowhere(server)


# ---- idempotency key format ----

@pytest.mark.parametrize("key", ["has space", "x" * 256, "tab\there", "é"])
def test_invalid_idempotency_key(client, key):
    r = client.create(full_body(), headers={"Idempotency-Key": key.encode("utf-8")})
    check_error(r, 400, "invalid_idempotency_key")


# ---- routing ----

@pytest.mark.parametrize("method,path,status", [
    ("GET", "/checkout-sessions", 405),
    ("DELETE", "/checkout-sessions/chk_x", 405),
    ("PATCH", "/checkout-sessions/chk_x", 405),
    ("GET", "/checkout-sessions/chk_x/complete", 405),
    ("DELETE", "/orders/ord_x", 405),
    ("GET", "/checkout", 404),
    ("POST", "/checkout-sessions/chk_x/refund", 404),
    ("POST", "/testing/simulate-shipping/ord_x", 404),   # no AGENTD_SIMULATION_SECRET here
])
def test_unknown_route_or_method(server, method, path, status):
    r = server.request(method, path, headers={"UCP-Agent": agent_header()})
    assert_error_response(r, status)
    if status == 405:
        assert r.headers.get("Allow"), r.headers
