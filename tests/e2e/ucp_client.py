"""A small UCP (2026-01-11) REST client for the e2e tests, a required-field
checker for checkout / order / error bodies, and an independent model of the
shop's prices computed from the catalog JSON (data/catalog.json by default).

    c = Client(server)                       # one platform (UCP-Agent profile)
    r = c.create(full_body(...), key="k1")   # requests.Response
    doc = check_checkout(r.json())           # asserts the required fields
    want = expected_totals(CATALOG, [("BISC-001", 2)], country="US", region="IL",
                           option="std-ship", codes=["10OFF"])
"""

import hashlib
import json
import sqlite3
import threading
import uuid
from pathlib import Path

from agentd_harness import REPO, http_session

UCP_VERSION = "2026-01-11"
PROFILE = "https://platform.example/profile"
MOCK_HANDLER = "mock_payment_handler"
EXAMPLE_HANDLER = "example_payment_provider"   # the UCP sample merchant's handler
STATUSES = {"incomplete", "requires_escalation", "ready_for_complete", "complete_in_progress",
            "completed", "canceled"}
TERMINAL = {"completed", "canceled"}
TOTAL_TYPES = {"items_discount", "subtotal", "discount", "fulfillment", "tax", "fee", "total"}
SEVERITIES = {"recoverable", "requires_buyer_input", "requires_buyer_review"}
CAPABILITIES = {"dev.ucp.shopping.checkout", "dev.ucp.shopping.fulfillment",
                "dev.ucp.shopping.discount", "dev.ucp.shopping.order",
                "dev.ucp.shopping.buyer_consent"}
PAN = "4111111111111111"


def unique_profile(tag="p"):
    """A profile URL nobody else uses. On a server with AGENTD_AUTH=on a
    Client for it authenticates as its own principal (a tenant per test);
    with auth off every client is the one "anonymous" principal."""
    return f"https://platform.example/{tag}/{uuid.uuid4().hex[:12]}"


def principal_for(profile):
    """The principal a test platform authenticates as: one per profile URL."""
    return "plat-" + hashlib.sha256(profile.encode()).hexdigest()[:16]


def agent_header(profile=PROFILE, version=None):
    v = f'profile="{profile}"'
    if version:
        v += f', version="{version}"'
    return v


# ---- request bodies ----

def address(country="US", region="IL", id=None, **extra):
    a = {"full_name": "Jane Doe", "street_address": "1 Main St",
         "address_locality": "Springfield", "postal_code": "62701",
         "address_country": country}
    if region is not None:
        a["address_region"] = region
    if id is not None:
        a["id"] = id
    a.update(extra)
    return a


def lines(*items):
    """lines(("BISC-001", 2), ...) -> UCP line_items."""
    return [{"item": {"id": pid}, "quantity": q} for pid, q in items]


def fulfillment(addr=None, option=None, dest_id="dest-home"):
    addr = dict(addr or address())
    addr.setdefault("id", dest_id)
    m = {"type": "shipping", "destinations": [addr], "selected_destination_id": addr["id"]}
    if option is not None:
        m["groups"] = [{"selected_option_id": option}]
    return {"methods": [m]}


def full_body(items=(("BISC-001", 1),), email="jane@example.com", addr=None, option="std-ship",
              codes=None, token="success_token", client_id="client-chosen-id"):
    """A create request with everything in one go, in the fixed-contract shape
    (what UCP's conformance client sends)."""
    body = {
        "id": client_id,
        "currency": "USD",
        "line_items": lines(*items),
        "buyer": {"full_name": "Jane Doe", "email": email},
        "fulfillment": fulfillment(addr, option),
        "payment": {
            "handlers": [{"id": MOCK_HANDLER, "name": "dev.ucp.mock_payment_handler"}],
            "instruments": [{"id": "instr_1", "handler_id": MOCK_HANDLER, "type": "card",
                             "brand": "visa", "last_digits": "1111",
                             "credential": {"type": "token", "token": token}}],
            "selected_instrument_id": "instr_1",
        },
    }
    if codes is not None:
        body["discounts"] = {"codes": list(codes)}
    return body


def payment_data(token="success_token", handler=MOCK_HANDLER, **extra):
    pd = {"id": "instr_1", "handler_id": handler, "type": "card", "brand": "visa",
          "last_digits": "1111", "credential": {"type": "token", "token": token}}
    pd.update(extra)
    return {"payment_data": pd}


# ---- the client ----

class Client:
    """Requests as one platform (UCP-Agent profile). Thread-safe: each
    thread gets its own keep-alive session. On a server with AGENTD_AUTH=on
    it sends an API key: `key`, else its profile's principal's key (made with
    `agentd keys create`). `owner` is the principal its checkouts belong to."""

    def __init__(self, server, profile=PROFILE, version=None, timeout=10, key=None,
                 principal=None):
        self.base = server.url if hasattr(server, "url") else str(server)
        self.profile = profile
        self.version = version
        self.timeout = timeout
        if key is None and getattr(server, "auth_on", False):
            principal = principal or principal_for(profile)
            key = server.principal_key(principal)
        self.key = key
        self.owner = (principal or "?") if key else "anonymous"
        self._local = threading.local()

    @property
    def session(self):
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = http_session()
        return s

    def headers(self, key=None, extra=None):
        h = {"UCP-Agent": agent_header(self.profile, self.version)}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        if key is not None:
            h["Idempotency-Key"] = key
        h.update(extra or {})
        return h

    def request(self, method, path, body=None, key=None, headers=None, raw=None):
        kw = {"headers": self.headers(key, headers), "timeout": self.timeout}
        if raw is not None:
            kw["data"] = raw
            kw["headers"].setdefault("Content-Type", "application/json")
        elif body is not None:
            kw["json"] = body
        return self.session.request(method, self.base + path, **kw)

    def create(self, body, key=None, **kw):
        return self.request("POST", "/checkout-sessions", body, key, **kw)

    def get(self, cid, **kw):
        return self.request("GET", f"/checkout-sessions/{cid}", **kw)

    def update(self, cid, body, key=None, **kw):
        return self.request("PUT", f"/checkout-sessions/{cid}", body, key, **kw)

    def complete(self, cid, token="success_token", key=None, body=None, **kw):
        return self.request("POST", f"/checkout-sessions/{cid}/complete",
                            body if body is not None else payment_data(token), key, **kw)

    def cancel(self, cid, key=None, **kw):
        return self.request("POST", f"/checkout-sessions/{cid}/cancel", None, key, **kw)

    def order(self, oid, **kw):
        return self.request("GET", f"/orders/{oid}", **kw)

    # conveniences that assert success

    def create_ok(self, body, **kw):
        r = self.create(body, **kw)
        assert r.status_code == 201, f"create: {r.status_code} {r.text}"
        return check_checkout(r.json())

    def ready(self, items=(("BISC-001", 1),), **kw):
        """A ready_for_complete checkout."""
        doc = self.create_ok(full_body(items, **kw))
        assert doc["status"] == "ready_for_complete", doc.get("messages")
        return doc

    def purchase(self, items=(("BISC-001", 1),), **kw):
        doc = self.ready(items, **kw)
        r = self.complete(doc["id"])
        assert r.status_code == 200, f"complete: {r.status_code} {r.text}"
        return check_checkout(r.json())


# ---- response checkers ----

def _total_map(totals, where):
    assert isinstance(totals, list) and totals, f"{where}: totals must be a non-empty array"
    out = {}
    for t in totals:
        assert isinstance(t, dict), f"{where}: total {t!r}"
        assert t.get("type") in TOTAL_TYPES, f"{where}: total type {t.get('type')!r}"
        assert isinstance(t.get("amount"), int) and t["amount"] >= 0, f"{where}: amount {t!r}"
        assert t["type"] not in out, f"{where}: total {t['type']} twice"
        out[t["type"]] = t["amount"]
    assert "total" in out, f"{where}: no total"
    return out


def totals_of(doc):
    """{type: amount} of a checkout's or order's totals (absent types = 0)."""
    m = {k: 0 for k in TOTAL_TYPES}
    m.update({t["type"]: t["amount"] for t in doc["totals"]})
    return m


def check_ucp_meta(u, where="ucp"):
    assert isinstance(u, dict), f"{where} must be an object"
    assert u.get("version") == UCP_VERSION, f"{where}.version {u.get('version')!r}"
    caps = u.get("capabilities")
    assert isinstance(caps, list) and caps, f"{where}.capabilities {caps!r}"
    for c in caps:
        assert isinstance(c.get("name"), str) and isinstance(c.get("version"), str), c
    return u


def check_message(m, where="message"):
    assert m.get("type") in ("error", "warning", "info"), f"{where}: type {m!r}"
    assert isinstance(m.get("code"), str) and m["code"], f"{where}: code {m!r}"
    assert isinstance(m.get("content"), str) and m["content"], f"{where}: content {m!r}"
    if m["type"] == "error":
        assert m.get("severity") in SEVERITIES, f"{where}: severity {m!r}"
    if "path" in m:
        assert isinstance(m["path"], str) and m["path"].startswith("$"), f"{where}: path {m!r}"


def check_checkout(doc):
    """Asserts the UCP 2026-01-11 checkout response's required fields and
    their shapes, and that the totals add up. Returns doc."""
    assert isinstance(doc, dict), doc
    for k in ("ucp", "id", "line_items", "status", "currency", "totals", "links", "payment"):
        assert k in doc, f"checkout lacks required field {k!r}: {sorted(doc)}"
    check_ucp_meta(doc["ucp"])
    assert isinstance(doc["id"], str) and doc["id"], doc["id"]
    assert doc["status"] in STATUSES, doc["status"]
    assert isinstance(doc["currency"], str) and len(doc["currency"]) == 3, doc["currency"]
    assert isinstance(doc["line_items"], list)
    for i, li in enumerate(doc["line_items"]):
        where = f"line_items[{i}]"
        for k in ("id", "item", "quantity", "totals"):
            assert k in li, f"{where} lacks {k}"
        for k in ("id", "title"):
            assert isinstance(li["item"].get(k), str), f"{where}.item.{k}"
        assert isinstance(li["item"].get("price"), int) and li["item"]["price"] >= 0
        assert isinstance(li["quantity"], int) and li["quantity"] >= 1
        lt = _total_map(li["totals"], where)
        assert lt["subtotal"] == li["item"]["price"] * li["quantity"], f"{where}: {li}"
        assert lt["total"] == (lt["subtotal"] - lt.get("items_discount", 0) + lt.get("tax", 0)), \
            f"{where}: line totals do not add up: {li['totals']}"
    t = _total_map(doc["totals"], "totals")
    g = lambda k: t.get(k, 0)  # noqa: E731
    assert g("total") == g("subtotal") - g("items_discount") - g("discount") + g("fulfillment") \
        + g("tax") + g("fee"), f"checkout totals do not add up: {doc['totals']}"
    assert g("subtotal") == sum(li["item"]["price"] * li["quantity"] for li in doc["line_items"])
    assert isinstance(doc["links"], list)
    for link in doc["links"]:
        assert isinstance(link.get("type"), str) and isinstance(link.get("url"), str), link
    p = doc["payment"]
    assert isinstance(p, dict) and isinstance(p.get("handlers"), list), p
    for h in p["handlers"]:
        for k in ("id", "name", "version", "spec", "config_schema", "instrument_schemas",
                  "config"):
            assert k in h, f"payment handler lacks {k}: {h}"
    for ins in p.get("instruments", []):
        assert isinstance(ins.get("handler_id"), str) and isinstance(ins.get("type"), str), ins
        assert "token" not in ins.get("credential", {}), "a credential token was echoed back"
    for i, m in enumerate(doc.get("messages", [])):
        check_message(m, f"messages[{i}]")
    if doc["status"] == "requires_escalation":
        assert doc.get("continue_url"), "requires_escalation needs a continue_url"
    if doc["status"] == "completed":
        o = doc.get("order")
        assert isinstance(o, dict) and o.get("id") and o.get("permalink_url"), o
    return doc


def check_order(doc):
    assert isinstance(doc, dict), doc
    for k in ("ucp", "id", "checkout_id", "permalink_url", "line_items", "fulfillment", "totals"):
        assert k in doc, f"order lacks required field {k!r}: {sorted(doc)}"
    check_ucp_meta(doc["ucp"])
    for i, li in enumerate(doc["line_items"]):
        for k in ("id", "item", "quantity", "totals", "status"):
            assert k in li, f"order line_items[{i}] lacks {k}"
        q = li["quantity"]
        assert isinstance(q.get("total"), int) and isinstance(q.get("fulfilled"), int), q
        assert 0 <= q["fulfilled"] <= q["total"], q
        _total_map(li["totals"], f"order line_items[{i}]")
    assert isinstance(doc["fulfillment"], dict)
    _total_map(doc["totals"], "order totals")
    return doc


def check_error(resp, status, code=None, content_has=None):
    """A UCP error reply: the status, JSON, messages[] with at least one
    {type:error, code, content, severity}; X-Request-Id matches request_id.
    Returns the first error message."""
    assert resp.status_code == status, f"status {resp.status_code}, want {status}: {resp.text}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    doc = resp.json()
    msgs = doc.get("messages")
    assert isinstance(msgs, list) and msgs, f"no messages[] in {doc}"
    for i, m in enumerate(msgs):
        check_message(m, f"messages[{i}]")
    errs = [m for m in msgs if m["type"] == "error"]
    assert errs, f"no error message in {doc}"
    if "request_id" in doc and resp.headers.get("Idempotent-Replayed") != "true":
        # (a replay carries the first request's body, request_id included)
        assert resp.headers.get("X-Request-Id") == doc["request_id"], (resp.headers, doc)
    if "ucp" in doc:
        check_ucp_meta(doc["ucp"])
    if code is not None:
        assert errs[0]["code"] == code, f"code {errs[0]['code']!r}, want {code!r}: {doc}"
    if content_has is not None:
        assert content_has in errs[0]["content"], f"{content_has!r} not in {errs[0]['content']!r}"
    # the sample merchants' top-level detail: the first message, as a string
    assert doc.get("detail") == msgs[0]["content"], doc
    return errs[0]


# ---- the catalog, and prices computed independently of the server ----

def load_catalog(path=None):
    path = Path(path) if path else REPO / "data" / "catalog.json"
    return json.loads(Path(path).read_text())


CATALOG = load_catalog()


def money(s):
    whole, _, frac = s.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def price_of(cat, pid):
    for p in cat["products"]:
        if p["productID"] == pid:
            return money(p["offers"]["price"])
    raise KeyError(pid)


def stock_of(cat, pid):
    for p in cat["products"]:
        if p["productID"] == pid:
            return p["inventory"]["quantity"]
    raise KeyError(pid)


def shipping_options(cat, country):
    """Option ids offered for a country: its own rates, then the default
    rates of service levels it does not override."""
    rates = cat.get("shipping_rates", [])
    own = [r for r in rates if r["country_code"] == country]
    levels = {r["service_level"] for r in own}
    dflt = [r for r in rates if r["country_code"] == "default" and r["service_level"] not in levels]
    return {r["id"]: r["price"] for r in own + dflt}


def tax_rate(cat, country, region):
    rows = cat.get("tax_rates", [])
    for c, r in ((country, region or "*"), (country, "*"), ("*", "*")):
        for t in rows:
            if t["country"] == c and t.get("region", "*") == r:
                return t["rate_bp"], t.get("shipping_taxable", False)
    return 0, False


def mul_div(v, num, den):
    q, rem = divmod(v * num, den)
    return q + 1 if rem * 2 >= den else q


def allocate(amount, weights):
    total = sum(weights)
    if total == 0:
        return [0] * len(weights)
    out = [amount * w // total for w in weights]
    left = amount - sum(out)
    rems = sorted(range(len(weights)), key=lambda i: (-(amount * weights[i] % total), i))
    for i in rems[:left]:
        out[i] += 1
    return out


def expected_totals(cat, items, country="US", region="IL", option="std-ship", codes=()):
    """The checkout's totals and per-line (discount, tax), from the catalog:
    codes in the order submitted (a code counted once), each on what the
    earlier ones left (percentages truncated, as UCP's sample merchants do),
    spread over the lines in proportion to what is left, largest remainder
    first; tax per line (half up) plus shipping when the region taxes it.
    Codes are the order-level `discount` line:
    total = subtotal - discount + fulfillment + tax + fee."""
    base = [price_of(cat, pid) * q for pid, q in items]
    subtotal = sum(base)
    known = {d["code"].upper(): d for d in cat.get("discounts", [])}
    seen, ordered = set(), []
    for c in codes:
        d = known.get(c.upper())
        if d and c.upper() not in seen:
            seen.add(c.upper())
            ordered.append(d)
    remaining = list(base)
    left = subtotal
    line_disc = [0] * len(base)
    for d in ordered:
        amt = left * d["value"] // 100 if d["type"] == "percentage" else d["value"]
        amt = min(amt, left)
        alloc = allocate(amt, remaining)
        for i, a in enumerate(alloc):
            remaining[i] -= a
            line_disc[i] += a
        left -= amt
    ship = shipping_options(cat, country)[option] if option else 0
    bp, ship_taxable = tax_rate(cat, country, region)
    line_tax = [mul_div(b - d, bp, 10000) for b, d in zip(base, line_disc)]
    tax = sum(line_tax) + (mul_div(ship, bp, 10000) if ship_taxable else 0)
    discount = sum(line_disc)
    return {
        "subtotal": subtotal, "items_discount": 0, "discount": discount, "fulfillment": ship,
        "tax": tax, "fee": 0, "total": subtotal - discount + ship + tax,
        "lines": list(zip(line_disc, line_tax)),
    }


def write_catalog(path, products, rates=None, discounts=None, taxes=None):
    """A small catalog file in the JSON format of docs/catalog.md.
    products: [(id, "price", stock), ...]."""
    doc = {
        "currency": "USD",
        "products": [{"productID": pid, "name": f"Product {pid}",
                      "offers": {"price": price, "priceCurrency": "USD"},
                      "inventory": {"quantity": qty}} for pid, price, qty in products],
        "shipping_rates": rates if rates is not None else [
            {"id": "std-ship", "country_code": "default", "service_level": "standard",
             "price": 500, "title": "Standard"},
            {"id": "exp-ship", "country_code": "default", "service_level": "express",
             "price": 1500, "title": "Express"}],
        "discounts": discounts or [],
        "tax_rates": taxes or [{"country": "*", "region": "*", "rate_bp": 0}],
    }
    Path(path).write_text(json.dumps(doc))
    return str(path)


# ---- looking into the server's database (read-only, WAL-safe) ----

def db_path(server):
    return Path(server.data_dir) / "agentd.db"


def db_query(server, sql, *args):
    con = sqlite3.connect(f"file:{db_path(server)}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def db_count_checkouts(server, owner):
    return db_query(server, "SELECT count(*) FROM checkouts WHERE owner = ?", owner)[0][0]


def db_stock(server, pid):
    rows = db_query(server, "SELECT quantity FROM stock WHERE product_id = ?", pid)
    return rows[0][0] if rows else None
