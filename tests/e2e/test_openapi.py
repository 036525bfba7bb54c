"""GET /openapi.json: an OpenAPI 3.1 document that stays true. The routes
the binary under test registers (GET /testing/routes lists its routing
table) and the documented paths+methods are the same set, both ways; every
documented operation reaches a handler (not the router's 404 or 405); every
$ref resolves; path parameters are declared; errors use the one Error
schema; real chat, session, event, error and ops answers have the
documented shapes (required fields present, no undocumented field)."""

import json
import re

import pytest

from agentd_harness import assert_error_response

SECRET = "openapi-test-secret"

# Documented routes a branch has not registered yet (none: keep it empty on main).
PENDING_ROUTES = set()


METHODS = ("get", "put", "post", "delete", "patch", "options")


@pytest.fixture(scope="module")
def srv(module_agentd):
    return module_agentd(env={"AGENTD_SIMULATION_SECRET": SECRET})


@pytest.fixture(scope="module")
def doc(srv):
    r = srv.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def registered(srv):
    r = srv.get("/testing/routes", headers={"Simulation-Secret": SECRET})
    assert r.status_code == 200, r.text
    out = set()
    for route in r.json()["routes"]:
        for m in route["methods"]:
            if m != "HEAD":               # HEAD comes with every GET
                out.add((m, route["path"]))
    return out


def documented(doc):
    return {(m.upper(), path) for path, item in doc["paths"].items()
            for m in METHODS if m in item}


def test_document_is_openapi_3_1(doc):
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "agentd" and doc["info"]["version"]
    ids = [op["operationId"] for item in doc["paths"].values()
           for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)), "operationIds are unique"


def test_every_registered_route_is_documented_and_every_documented_one_exists(srv, doc):
    reg, docd = registered(srv), documented(doc)
    assert ("GET", "/testing/routes") in reg
    undocumented = reg - docd
    assert not undocumented, f"registered but not in src/api/openapi.json: {sorted(undocumented)}"
    missing = docd - reg - PENDING_ROUTES
    assert not missing, f"documented but not registered: {sorted(missing)}"
    # a pending route that the binary does register is not pending any more
    # (harmless, but the list should be emptied at merge)
    assert PENDING_ROUTES <= docd


def concrete(path):
    return re.sub(r"\{[^}]+\}", "openapi-probe", path)


def test_every_documented_operation_reaches_a_handler(srv, doc):
    reg = registered(srv)
    headers = {"Simulation-Secret": SECRET, "Accept-Encoding": "identity",
               "UCP-Agent": 'profile="https://platform.example/openapi-probe"'}
    for method, path in sorted(documented(doc)):
        if (method, path) in PENDING_ROUTES and (method, path) not in reg:
            continue
        if path == "/chat" or path == "/testing/sleep":
            body = {"message": ""} if path == "/chat" else None   # a 400, no turn
        else:
            body = {} if method in ("POST", "PUT") else None
        r = srv.request(method, concrete(path), json=body, headers=headers,
                        params={"ms": 0} if path == "/testing/sleep" else None)
        assert r.status_code != 405, (method, path, r.text)
        if r.status_code == 404 and r.headers.get("Content-Type") == "application/json":
            err = r.json().get("error") or {}
            assert err.get("message") != "no route for this path", (method, path)


def test_refs_resolve_and_path_params_are_declared(doc):
    def resolve(ref):
        node = doc
        for part in ref.lstrip("#/").split("/"):
            assert part in node, f"unresolved $ref {ref}"
            node = node[part]
        return node

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)

    for path, item in doc["paths"].items():
        want = set(re.findall(r"\{([^}]+)\}", path))
        for m, op in item.items():
            if m not in METHODS:
                continue
            params = [resolve(p["$ref"]) if "$ref" in p else p for p in op.get("parameters", [])]
            got = {p["name"] for p in params if p["in"] == "path"}
            assert got == want, (m, path, got, want)
            assert op["responses"], (m, path)


def test_errors_use_the_error_component(doc):
    err = doc["components"]["schemas"]["Error"]
    assert err["required"] == ["error"]
    assert set(err["properties"]["error"]["required"]) == {"code", "message", "request_id"}
    text = json.dumps(doc["paths"]["/chat/sessions/{id}"])
    assert "#/components/responses/NotFound" in text
    # the headers agentd speaks are documented
    params = doc["components"]["parameters"]
    for name in ("Idempotency-Key", "UCP-Agent", "X-Request-Id", "If-Match", "Last-Event-ID"):
        assert any(p["name"] == name for p in params.values()), name
    assert "ETag" in doc["components"]["headers"]
    sse = doc["paths"]["/chat/sessions/{id}/events"]["get"]["responses"]["200"]["content"]
    assert "text/event-stream" in sse


def test_the_route_listing_is_test_only(agentd):
    plain = agentd()
    assert_error_response(plain.get("/testing/routes"), 404, "not_found")


def schema_of(doc, path, method, status, ctype="application/json"):
    node = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in node:
        node = doc["components"]["responses"][node["$ref"].rsplit("/", 1)[1]]
    s = node["content"][ctype]["schema"]
    return doc["components"]["schemas"][s["$ref"].rsplit("/", 1)[1]] if "$ref" in s else s


def check_shape(doc, schema, value, where):
    """Required fields present; for a closed or fully described object, no
    field the document does not name (the shape, not every constraint)."""
    assert isinstance(value, dict), where
    missing = set(schema.get("required", [])) - set(value)
    assert not missing, f"{where}: documented as required but absent: {missing}"
    if schema.get("additionalProperties", None) is not True:
        extra = set(value) - set(schema.get("properties", {}))
        assert not extra, f"{where}: in the answer but not documented: {extra}"


def test_answers_have_the_documented_shapes(srv, doc):
    r = srv.request("POST", "/chat", json={"message": "add 1 BISC-001"})
    assert r.status_code == 200
    answer = r.json()
    check_shape(doc, schema_of(doc, "/chat", "post", 200), answer, "POST /chat")
    sid = answer["session_id"]
    listing = srv.get("/chat/sessions", params={"limit": 1}).json()
    check_shape(doc, schema_of(doc, "/chat/sessions", "get", 200), listing, "GET /chat/sessions")
    check_shape(doc, doc["components"]["schemas"]["SessionSummary"], listing["sessions"][0],
                "GET /chat/sessions: a session")
    one = srv.get(f"/chat/sessions/{sid}").json()
    check_shape(doc, schema_of(doc, "/chat/sessions/{id}", "get", 200), one,
                "GET /chat/sessions/{id}")
    check_shape(doc, doc["components"]["schemas"]["Usage"], one["usage"], "session usage")
    page = srv.get(f"/chat/sessions/{sid}/events").json()
    check_shape(doc, schema_of(doc, "/chat/sessions/{id}/events", "get", 200), page,
                "GET /chat/sessions/{id}/events")
    check_shape(doc, doc["components"]["schemas"]["Event"], page["events"][0], "an event")
    err = srv.request("DELETE", "/chat/sessions/no-such-session").json()
    check_shape(doc, schema_of(doc, "/chat/sessions/{id}", "delete", 404), err, "an error")
    check_shape(doc, doc["components"]["schemas"]["Error"]["properties"]["error"], err["error"],
                "error.error")
    for path, schema in (("/healthz", "Alive"), ("/readyz", "Ready"), ("/health", "Health")):
        check_shape(doc, doc["components"]["schemas"][schema], srv.get(path).json(), path)
