"""OpenTelemetry traces end to end: a small OTLP/HTTP JSON receiver (stdlib,
127.0.0.1) stands in for the collector. A UCP purchase and a /chat turn with
the fake model produce one span tree (request -> turn -> model calls, tools,
store calls) under one trace id; an incoming traceparent is honoured and
reaches the model provider; log lines carry trace_id; a malformed
traceparent starts a new root; a dead collector costs counters, never a
request."""

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentd_harness import REPO, metric_value, parse_metrics
from fake_llm_fixture import fake_llm  # noqa: F401 (fixture)
from test_ucp_webhooks import Platform, ok_events
from ucp_client import Client, check_checkout

WAIT_S = 10.0


class Collector:
    """POST /v1/traces: keeps every span, flattened, with its resource."""

    def __init__(self):
        self.spans = []
        self.headers = []
        self.status = 200      # what exports are answered
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                ok = self.path == "/v1/traces" and \
                    self.headers.get("Content-Type", "").startswith("application/json")
                if ok and outer.status != 200:
                    self.send_response(outer.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if ok:
                    doc = json.loads(body)
                    with outer.lock:
                        outer.headers.append(dict(self.headers))
                        for rs in doc["resourceSpans"]:
                            res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                            for ss in rs["scopeSpans"]:
                                for sp in ss["spans"]:
                                    sp["_resource"] = res
                                    outer.spans.append(sp)
                self.send_response(200 if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def trace(self, trace_id, pred, timeout=WAIT_S):
        """The spans of trace_id once pred(spans) holds (bounded wait)."""
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = [s for s in self.spans if s["traceId"] == trace_id]
            if pred(spans) or time.monotonic() > end:
                return spans
            time.sleep(0.1)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.close()


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue", v.get("boolValue",
                                                                      v.get("doubleValue"))))
    return out


def new_traceparent():
    tid, sid = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return tid, sid, f"00-{tid}-{sid}-01"


def by_name(spans, prefix):
    return [s for s in spans if s["name"].startswith(prefix)]


def trace_env(collector, **extra):
    env = {"AGENTD_OTLP_ENDPOINT": collector.url, "AGENTD_SERVICE_NAME": "shop-under-test",
           "AGENTD_OTLP_HEADERS": "x-collector-token=t0ps3cret"}
    env.update(extra)
    return env


def check_tree(spans, trace_id):
    """One trace; every span's parent is in it (or is the client's span)."""
    ids = {s["spanId"] for s in spans}
    assert all(s["traceId"] == trace_id for s in spans)
    assert len(ids) == len(spans), "span ids are unique"
    for s in spans:
        assert len(s["spanId"]) == 16 and len(s["traceId"]) == 32
        assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0
    return ids


@pytest.fixture
def platform():
    p = Platform()
    yield p
    p.close()


def test_purchase_span_tree(agentd, collector, platform):
    srv = agentd(env=trace_env(collector, AGENTD_CATALOG=str(REPO / "data" / "catalog.json"),
                               AGENTD_PROFILE_ALLOWLIST=f"127.0.0.1:{platform.port}"))
    client = Client(srv, platform.profile("traced"))
    doc = client.ready()
    tid, parent, tp = new_traceparent()
    r = client.complete(doc["id"], headers={"traceparent": tp, "tracestate": "vendor=1"})
    assert r.status_code == 200, r.text
    assert check_checkout(r.json())["status"] == "completed"

    def done(spans):
        return by_name(spans, "POST /") and by_name(spans, "POST webhook") and len(spans) >= 3
    spans = collector.trace(tid, done)
    ids = check_tree(spans, tid)
    servers = [s for s in spans if s["kind"] == 2]
    assert len(servers) == 1, [s["name"] for s in spans]
    req = servers[0]
    assert req["parentSpanId"] == parent          # the caller's span is our parent
    a = attrs(req)
    assert a["http.request.method"] == "POST"
    assert a["http.route"] == "/checkout-sessions/{id}/complete"
    assert a["http.response.status_code"] == "200"
    assert req["name"] == "POST /checkout-sessions/{id}/complete"
    assert req["_resource"]["service.name"]["stringValue"] == "shop-under-test"
    # the store calls the purchase made on the worker pool are the request's children
    store = [s for s in spans if "db.operation.name" in attrs(s)]
    assert store, [s["name"] for s in spans]
    for s in store:
        assert s["parentSpanId"] in ids
        assert s["name"] == attrs(s)["db.operation.name"]
    assert any(s["parentSpanId"] == req["spanId"] for s in store)
    # the order webhook is delivered in the same trace, under its own client span
    got = platform.wait_for("traced", lambda g: ok_events(g))
    hook_tp = got[0][2].get("traceparent")
    hook = by_name(spans, "POST webhook")
    assert len(hook) == 1 and hook[0]["kind"] == 3
    assert hook[0]["parentSpanId"] == req["spanId"]
    assert attrs(hook[0])["http.response.status_code"] == "200"
    assert hook_tp == f"00-{tid}-{hook[0]['spanId']}-01"
    assert got[0][2].get("tracestate") == "vendor=1"
    # the export carried the operator's header
    assert any(h.get("x-collector-token") == "t0ps3cret" for h in collector.headers)
    # the access line of that request carries its trace id; the header's value is never logged
    line = srv.access_line(r.headers["X-Request-Id"])
    assert line["trace_id"] == tid
    assert "t0ps3cret" not in srv.log_text()


def test_chat_turn_tree_and_propagation(agentd, collector, fake_llm):
    srv = agentd(env=trace_env(collector, **fake_llm.env()))
    tid, parent, tp = new_traceparent()
    r = srv.request("POST", "/chat", json={"message": '[[tool:search_shopping_catalog {"query": "cookies"}]]'},
                    headers={"traceparent": tp, "tracestate": "congo=t61rcWkgMzE"}, timeout=15)
    assert r.status_code == 200, r.text
    turn_id = r.json()["turn_id"]

    def done(spans):
        return by_name(spans, "POST /chat") and by_name(spans, "agent.turn") and \
            len(by_name(spans, "chat")) >= 2
    spans = collector.trace(tid, done)
    ids = check_tree(spans, tid)
    req = by_name(spans, "POST /chat")[0]
    assert req["parentSpanId"] == parent and req["kind"] == 2
    turn = by_name(spans, "agent.turn")[0]
    assert turn["parentSpanId"] == req["spanId"]
    ta = attrs(turn)
    assert ta["agentd.turn_id"] == turn_id and ta["agentd.session_id"] == r.json()["session_id"]
    assert ta["agentd.outcome"]
    calls = [s for s in spans if s["name"].startswith("chat ")]
    assert len(calls) == 2, [s["name"] for s in spans]  # the tool call, then the answer
    for c in calls:
        assert c["kind"] == 3 and c["parentSpanId"] == turn["spanId"]
        ca = attrs(c)
        assert ca["gen_ai.operation.name"] == "chat"
        assert ca["gen_ai.response.model"] == "fake"
        assert int(ca["gen_ai.usage.input_tokens"]) > 0
        assert ca["agentd.llm.retries"] == "0"
    tools = by_name(spans, "execute_tool")
    assert len(tools) == 1 and tools[0]["parentSpanId"] == turn["spanId"]
    assert attrs(tools[0])["gen_ai.tool.name"] == "search_shopping_catalog"
    store = [s for s in spans if "db.operation.name" in attrs(s)]
    assert any(s["parentSpanId"] == turn["spanId"] for s in store)
    assert all(s["parentSpanId"] in ids for s in store)
    # the provider got our trace context: the same trace, a model call span as parent
    sent = fake_llm.stats()["last"]["traceparent"]
    assert sent and sent.startswith(f"00-{tid}-") and sent.endswith("-01")
    assert sent.split("-")[2] in {c["spanId"] for c in calls}
    assert fake_llm.stats()["last"]["tracestate"] == "congo=t61rcWkgMzE"   # passed through
    # every log line of that request names the trace
    rid = r.headers["X-Request-Id"]
    lines = [ln for ln in srv.log_lines() if ln.get("request_id") == rid]
    assert lines and all(ln.get("trace_id") == tid for ln in lines), lines


def test_malformed_traceparent_starts_a_new_root(agentd, collector):
    srv = agentd(env=trace_env(collector))
    bad = "00-XYZ-nothex-01"
    r = srv.get("/healthz", headers={"traceparent": bad})
    assert r.status_code == 200
    line = srv.access_line(r.headers["X-Request-Id"])
    tid = line["trace_id"]
    assert len(tid) == 32 and tid != "0" * 32
    spans = collector.trace(tid, lambda s: len(s) >= 1)
    assert len(spans) == 1 and "parentSpanId" not in spans[0]
    assert attrs(spans[0])["http.route"] == "/healthz"


def test_sampling_ratio_zero_keeps_a_sampled_parent(agentd, collector):
    srv = agentd(env=trace_env(collector, AGENTD_TRACE_SAMPLE="0"))
    r = srv.get("/healthz")
    unsampled = srv.access_line(r.headers["X-Request-Id"])["trace_id"]
    tid, _, tp = new_traceparent()
    assert srv.get("/healthz", headers={"traceparent": tp}).status_code == 200
    assert len(collector.trace(tid, lambda s: len(s) >= 1)) == 1   # parent-based: honoured
    assert collector.trace(unsampled, lambda s: False, timeout=1.5) == []


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_dead_collector_costs_a_counter(agentd):
    srv = agentd(env={"AGENTD_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"})
    for _ in range(5):
        assert srv.get("/healthz").status_code == 200
    end = time.monotonic() + WAIT_S
    failed = dropped = 0
    while time.monotonic() < end and not (failed and dropped):
        samples = parse_metrics(srv.get("/metrics").text)
        failed = metric_value(samples, "agentd_trace_exports_total", outcome="failed") or 0
        dropped = metric_value(samples, "agentd_trace_spans_dropped_total") or 0
        time.sleep(0.2)
    assert failed >= 1 and dropped >= 1
    assert srv.get("/healthz").status_code == 200


def test_collector_refusing_exports_is_counted(agentd, collector):
    collector.status = 503
    srv = agentd(env=trace_env(collector))
    assert srv.get("/healthz").status_code == 200
    end = time.monotonic() + WAIT_S
    rejected = 0
    while time.monotonic() < end and not rejected:
        samples = parse_metrics(srv.get("/metrics").text)
        rejected = metric_value(samples, "agentd_trace_exports_total", outcome="rejected") or 0
        time.sleep(0.2)
    assert rejected >= 1
    assert (metric_value(samples, "agentd_trace_spans_dropped_total") or 0) >= 1
    collector.status = 200   # back: later spans arrive
    tid, _, tp = new_traceparent()
    assert srv.get("/healthz", headers={"traceparent": tp}).status_code == 200
    assert len(collector.trace(tid, lambda s: len(s) >= 1)) == 1


def test_spans_queued_at_sigterm_are_exported_before_exit(agentd, collector):
    """Exports run once a second: the spans of the requests just before a
    SIGTERM are still queued when the drain ends, and go out before exit."""
    srv = agentd(env=trace_env(collector))
    tids = []
    for _ in range(3):
        tid, _, tp = new_traceparent()
        assert srv.get("/healthz", headers={"traceparent": tp}).status_code == 200
        tids.append(tid)
    assert srv.shutdown_problem() is None
    with collector.lock:
        got = {s["traceId"] for s in collector.spans}
    assert set(tids) <= got, "spans queued at the SIGTERM were dropped"


def test_silent_collector_cannot_hold_the_exit(agentd):
    """A collector that takes the connection and never answers: the flush
    at the end of the drain gives up (bounded), agentd exits 0 and says so."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)   # never accepted: the kernel completes the handshake
    try:
        srv = agentd(env={"AGENTD_OTLP_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"})
        for _ in range(3):
            assert srv.get("/healthz", headers={"traceparent": new_traceparent()[2]}).status_code == 200
        time.sleep(1.5)  # the timer's export is now in flight and hangs
        assert srv.get("/healthz", headers={"traceparent": new_traceparent()[2]}).status_code == 200
        assert srv.shutdown_problem(timeout=10.0) is None
        assert "traces still queued" in srv.log_text()
    finally:
        silent.close()


def test_off_without_an_endpoint(agentd):
    srv = agentd()
    r = srv.get("/healthz", headers={"traceparent": new_traceparent()[2]})
    assert r.status_code == 200
    assert "trace_id" not in srv.access_line(r.headers["X-Request-Id"])
    samples = parse_metrics(srv.get("/metrics").text)   # the series exist, at 0
    for outcome in ("ok", "failed", "rejected"):
        assert metric_value(samples, "agentd_trace_exports_total", outcome=outcome) == 0
    assert metric_value(samples, "agentd_trace_spans_dropped_total") == 0


@pytest.mark.parametrize("value,problem", [
    # the metadata address as data only: refused at start, never contacted
    ("http://169.254.169.254", "AGENTD_OTLP_ENDPOINT"),  # never contacted
    ("ftp://127.0.0.1:4318", "AGENTD_OTLP_ENDPOINT"),
    ("http://user:pw@127.0.0.1:4318", "AGENTD_OTLP_ENDPOINT"),
])
def test_endpoint_is_checked(value, problem):
    from agentd_harness import run_cli
    r = run_cli(["check-config"], env={"AGENTD_OTLP_ENDPOINT": value})
    assert r.returncode != 0
    assert problem in r.stdout + r.stderr
    assert "pw@" not in r.stdout + r.stderr
