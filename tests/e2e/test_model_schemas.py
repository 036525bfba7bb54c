"""Tool schemas a real model follows (issue 9's headline).

The fake provider in strict mode (it refuses, as the real API does, a
request whose tool schemas are not closed, described JSON schemas or whose
tool messages do not answer the assistant's tool calls) plays the
"scripted-buyer" model: it searches, adds, then sets the buyer and address
the way real models get it wrong — the address as one string, then the keys
models guess (street, city, state, zip, country) with the name in one field
— and corrects itself only from what agentd's invalid_arguments results say.
The purchase must end in a placed order whose checkout holds every field,
nothing dropped, and every request agentd sent must pass the strict checks.
"""

import json
import subprocess
import sys

from fake_llm_fixture import FAKE_LLM, fake_llm  # noqa: F401 (fixture)

PAY = {"a2a.ucp.checkout.payment_data": {
    "handler_id": "mock_payment_handler",
    "credential": {"type": "token", "token": "success_token"}}}
MESSAGE = ("Buy 2 packs of chocolate chip cookies and ship them to Jane Doe, 1 Main St, "
           "Springfield, IL 62701, US, jane@example.com. Express shipping, and pay.")


def tool_results(srv, sid, name):
    """The session's tool-result events for one tool, in order."""
    r = srv.get(f"/chat/sessions/{sid}/events")
    assert r.status_code == 200, r.text
    return [e["data"]["result"] for e in r.json()["events"]
            if e["type"] == "tool-result" and e["data"].get("name") == name]


def test_the_fakes_self_test_passes():
    """The fake's own checks, strict mode and the scripted buyer included."""
    p = subprocess.run([sys.executable, str(FAKE_LLM), "--self-test"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_real_models_mistakes_are_corrected_and_the_order_is_placed(agentd, fake_llm):
    fake_llm.strict()
    srv = agentd(env=fake_llm.env(model="scripted-buyer", AGENTD_MAX_STEPS="12"))
    r = srv.request("POST", "/chat", json={"message": MESSAGE, "data": PAY}, timeout=30)
    st = fake_llm.stats()
    assert r.status_code == 200, (r.text, st["rejections"], st["script"])
    d = r.json()

    # every request agentd sent passed the real API's checks
    assert st["rejections"] == [], st["rejections"]
    assert st["checked"] == st["requests"] == 9, st["script"]

    # the placed order
    co = d["checkout"]
    assert co["status"] == "completed" and co["order"]["id"], co
    assert co["order"]["id"] in d["answer"], d["answer"]
    assert [(li["item"]["id"], li["quantity"]) for li in co["line_items"]] == [("BISC-001", 2)]
    # nothing dropped: the buyer and the whole address as the model meant them
    assert {k: co["buyer"].get(k) for k in ("first_name", "last_name", "email")} == \
        {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"}, co["buyer"]
    method = co["fulfillment"]["methods"][0]
    dest = next(x for x in method["destinations"] if x["id"] == method["selected_destination_id"])
    assert {k: dest.get(k) for k in ("street_address", "address_locality", "address_region",
                                     "postal_code", "address_country")} == \
        {"street_address": "1 Main St", "address_locality": "Springfield", "address_region": "IL",
         "postal_code": "62701", "address_country": "US"}, dest
    group = method["groups"][0]
    chosen = next(o for o in group["options"] if o["id"] == group["selected_option_id"])
    assert "express" in chosen["title"].lower(), group

    # the two mistaken calls got invalid_arguments naming each bad field
    results = tool_results(srv, d["session_id"], "update_customer_details")
    assert len(results) == 3, results
    first, second, third = results
    assert first["error"]["code"] == "invalid_arguments", first
    assert any(p.startswith("arguments.address must be of type object, not a string")
               for p in first["error"]["problems"]), first
    assert second["error"]["code"] == "invalid_arguments", second
    problems = "\n".join(second["error"]["problems"])
    for bad, good in [("street", "street_address"), ("city", "address_locality"),
                      ("state", "address_region"), ("zip", "postal_code"),
                      ("country", "address_country")]:
        assert f"arguments.address.{bad}: unknown field; did you mean {good}?" in problems, problems
    assert "arguments.buyer.name: unknown field; use first_name and last_name" in problems
    assert second["error"]["expected"]["properties"]["address"]["additionalProperties"] is False
    assert "error" not in third and third["buyer"]["first_name"] == "Jane", third

    # and the model made its correction from those errors
    why = [s.get("why") for s in st["script"]]
    assert why.count("corrected from the error") == 1 and "error unusable" not in why, st["script"]
    # the credential never reached the model
    assert "success_token" not in json.dumps(st)


def test_a_buyer_detail_given_later_keeps_the_earlier_ones(agentd, fake_llm):
    """Two calls, as a conversation gives the details: the email first, the
    name later. The second keeps the first's email (a tool never drops data)."""
    fake_llm.strict()
    srv = agentd(env=fake_llm.env())
    r = srv.request("POST", "/chat", json={
        "message": '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 1}]]'})
    assert r.status_code == 200, r.text
    sid = r.json()["session_id"]
    for args in ({"buyer": {"email": "jane@example.com"}},
                 {"buyer": {"first_name": "Jane", "last_name": "Doe"}}):
        r = srv.request("POST", "/chat", json={
            "session_id": sid, "message": f"[[tool:update_customer_details {json.dumps(args)}]]"})
        assert r.status_code == 200, r.text
    b = r.json()["checkout"]["buyer"]
    assert (b.get("first_name"), b.get("last_name"), b.get("email")) == \
        ("Jane", "Doe", "jane@example.com"), b
    assert fake_llm.stats()["rejections"] == []


def test_an_unknown_field_changes_nothing(agentd, fake_llm):
    """A call with a field the schema does not know is refused whole: before,
    the shop kept the email and silently dropped the rest."""
    srv = agentd(env=fake_llm.env())
    r = srv.request("POST", "/chat", json={
        "message": '[[tool:add_to_checkout {"product_id": "BISC-001", "quantity": 1}]]'})
    sid = r.json()["session_id"]
    args = {"buyer": {"name": "Jane Doe", "email": "jane@example.com"}}
    r = srv.request("POST", "/chat", json={
        "session_id": sid, "message": f"[[tool:update_customer_details {json.dumps(args)}]]"})
    assert r.status_code == 200, r.text
    d = r.json()
    assert '"invalid_arguments"' in d["answer"] and "use first_name and last_name" in d["answer"]
    assert not (d["checkout"] or {}).get("buyer"), d["checkout"]
