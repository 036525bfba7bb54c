"""agentd driven by the official A2A JavaScript SDK clients: @a2a-js/sdk 1.x (ClientFactory,
JSON-RPC transport, A2A 1.0 wire) and 0.3.x (A2AClient, 0.3 wire), installed in tests/js.

tests/js/a2a_client.mjs runs one scenario with either SDK and prints a report: the card;
the demo purchase sent blocking, keeping contextId and the active taskId; GetTask of the
finished task; a new task in the purchase's context; a new conversation over
sendMessageStream; a re-attach (resubscribe) to that task while it is continued; ListTasks
(1.0); CancelTask twice; an unknown task id. Every request activates the UCP extension the
card requires. Each test below checks one part of the report, so a failure names it."""

import json

import pytest

from js_tools import describe, require_js_modules, run_node

RUN_TIMEOUT = 90
ORDER_KEY = "a2a.ucp.checkout"


@pytest.fixture(scope="module")
def shop(module_agentd):
    return module_agentd()


class Report(dict):
    """The node program's report; a part it never reached fails the test that asks."""

    def __init__(self, doc, text):
        super().__init__(doc)
        self.text = text

    def __getitem__(self, key):
        if dict.get(self, key) is None and key not in ("fatal",):
            pytest.fail(f"the client never got to {key!r}:\n{self.text}", pytrace=False)
        return dict.__getitem__(self, key)


@pytest.fixture(scope="module", params=["1.x", "0.3"])
def run(request, shop):
    require_js_modules("@a2a-js/sdk", "a2a-sdk-03")
    report, proc = run_node(["a2a_client.mjs", "--sdk", request.param, "--url", shop.url],
                            timeout=RUN_TIMEOUT)
    assert report is not None, describe(report, proc)
    return Report(report, describe(report, proc))


def show(report):
    return json.dumps(report, indent=1)[-12000:]


def test_the_scenario_runs_to_the_end(run):
    assert run["fatal"] is None, run.text


def test_card_names_the_jsonrpc_interface_and_ucp(run):
    card = run["card"]
    assert card["name"]
    assert card["streaming"] is True
    assert any("ucp.dev" in uri for uri in card["extensions"]), card
    if run["sdk"] == "1.x":
        assert "1.0" in card["interfaces"], card
        assert run["protocolVersion"] == "1.0"
    else:
        assert card["url"], card


def test_demo_purchase_keeps_one_task_until_the_order(run):
    turns = run["turns"]
    assert [t["sent"] for t in turns][-1] == "pay"
    for t in turns:
        assert t["type"] == "task", t
    # One context; one task from the first message to the order.
    assert len({t["contextId"] for t in turns}) == 1, turns
    assert len({t["taskId"] for t in turns}) == 1, turns
    assert turns[0]["sentTaskId"] is None
    assert all(t["sentTaskId"] == turns[0]["taskId"] for t in turns[1:]), turns
    # Waiting on the buyer between turns; completed with the order.
    assert [t["state"] for t in turns[:-1]] == ["input-required"] * 4, show(run)
    assert turns[-1]["state"] == "completed", show(run)
    assert ["BISC-001", 2] in turns[1]["lineItems"], turns[1]
    assert ORDER_KEY in turns[-1]["dataKeys"], turns[-1]
    assert turns[-1]["orderId"], turns[-1]
    assert any(t for t in turns[-1]["texts"]), turns[-1]
    assert "mock_payment_handler" in turns[-1]["handlers"], turns[-1]


def test_search_answers_with_schema_org_products(run):
    first = run["turns"][0]
    assert "a2a.product_results" in first["dataKeys"], first
    assert "BISC-001" in first["productIds"], first


def test_a_message_without_task_id_starts_a_new_task_in_the_context(run):
    n = run["nextTask"]
    purchase = run["turns"][-1]
    assert n["contextId"] == purchase["contextId"], n
    assert n["taskId"] != purchase["taskId"], n
    # a search waits on the buyer: the new goal is not reached by the old order
    assert n["state"] == "input-required", n
    assert n["orderId"] is None, n


def test_get_task_returns_the_completed_purchase(run):
    g = run["getTask"]
    last = run["turns"][-1]
    assert g["taskId"] == last["taskId"]
    assert g["state"] == "completed"
    assert g["orderId"] == last["orderId"]


def test_stream_delivers_the_frames_of_a_new_conversation(run):
    s = run["stream"]
    assert not s["timedOut"] and s["error"] is None, s
    assert s["ended"], s
    frames = s["frames"]
    assert frames and frames[0]["kind"] == "task", s
    task = run["streamTaskId"]
    assert task and task != run["turns"][-1]["taskId"], "no taskId: a new task"
    assert run["streamContextId"] and run["streamContextId"] != run["turns"][-1]["contextId"]
    assert all(f.get("taskId") in (None, task) for f in frames), frames
    states = [f["state"] for f in frames if f.get("state")]
    assert states and states[-1] == "input-required", frames
    if run["sdk"] == "0.3":
        # 0.3 marks the status update that ends the stream.
        assert frames[-1]["kind"] == "status-update" and frames[-1].get("final") is True, frames


def test_resubscribe_reattaches_to_the_task(run):
    r = run["resubscribe"]
    assert not r["timedOut"] and r["error"] is None, r
    frames = r["frames"]
    assert frames and frames[0]["kind"] == "task", frames
    assert frames[0]["taskId"] == run["streamTaskId"]
    # The task was continued while attached: unless the server closed the stream of the
    # interrupted task at once, its live frames arrived here.
    if len(frames) > 1:
        assert frames[-1]["state"] == "input-required", frames
    c = run["continued"]
    assert "error" not in c, c
    assert c["taskId"] == run["streamTaskId"] and c["state"] == "input-required", c
    assert ["BISC-001", 2] in c["lineItems"], c


def test_list_tasks_shows_the_context_tasks(run):
    if run["sdk"] != "1.x":
        pytest.skip("ListTasks is a 1.0 method; the 0.3 SDK has none")
    ids = {t["id"]: t["state"] for t in run["listTasks"]}
    assert ids.get(run["turns"][-1]["taskId"]) == "completed", ids
    assert run["nextTask"]["taskId"] in ids, ids
    assert run["streamTaskId"] not in ids, "another context's task"


def test_cancel_then_cancel_again_is_refused(run):
    c = run["cancel"]
    assert c["taskId"] == run["streamTaskId"] and c["state"] == "canceled", c
    again = run["cancelAgain"]
    assert "error" in again and again["error"]["code"] == -32002, again
    assert run["afterCancel"]["state"] == "canceled"


def test_unknown_task_is_not_found(run):
    u = run["unknownTask"]
    assert "error" in u and u["error"]["code"] == -32001, u


def test_every_request_asked_for_the_ucp_extension_and_it_was_echoed(run):
    h = run["http"]
    assert h["requests"] >= 10
    want = "A2A-Extensions" if run["sdk"] == "1.x" else "X-A2A-Extensions"
    assert h["extensionHeaders"] == [want], h
    assert h["echoes"] and all("ucp.dev" in e for e in h["echoes"]), h
    if run["sdk"] == "1.x":
        assert "1.0" in h["versions"], h
    else:
        assert all(v is None for v in h["versions"]), "0.3 clients send no A2A-Version"
