#!/usr/bin/env python3
"""A fake OpenAI-compatible Chat Completions server for agentd's LLM client tests.

Standard library only. Scripted replies by rule, SSE streaming with tool-call
deltas split across chunks, and faults on demand (per request or queued by an
admin route). A strict mode validates each request as the real API does
(tool schemas, tool-call/result pairing) and answers 400 otherwise; the
model "scripted-buyer" plays a purchase like a real model, mistakes
included, correcting them only from what agentd's error results say.
See docs/llm.md, "The fake LLM server".

    python3 tests/fake_llm/fake_llm.py --port 0     # prints the chosen port on stdout
    python3 tests/fake_llm/fake_llm.py --port 0 --strict
    python3 tests/fake_llm/fake_llm.py --self-test
"""
import argparse
import email.utils
import json
import re
import socket
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIRECTIVE = re.compile(r"\[\[fault:([^\]]*)\]\]")


def parse_fault(text):
    """'429 retry_after=1' -> {'status': 429, 'retry_after': '1'}; 'hang' -> {'hang': True}."""
    spec = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            if k in ("ms", "latency", "latency_ms"):
                spec["latency_ms"] = int(v)
            elif k == "times":
                spec["times"] = int(v)
            else:
                spec[k] = v
        elif tok.isdigit():
            spec["status"] = int(tok)
        elif tok == "latency":
            spec.setdefault("latency_ms", 100)
        else:
            spec[tok] = True
    return spec


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.strict_default = False
        self.reset()
        self.stopping = threading.Event()

    def reset(self):
        self.strict = self.strict_default  # validate requests like the real API
        self.checked = 0         # requests that passed the strict validation
        self.rejections = []     # [{"path", "problems"}] of requests strict mode refused
        self.script = []         # the scripted buyer's decisions, in order
        self.queue = []          # [{"spec":..., "path": prefix or None, "left": n}]
        self.requests = 0
        self.by_path = {}
        self.faults_applied = 0
        self.once_seen = set()
        self.last = None         # last request: path, headers of interest, body
        self.api_key = DEFAULT_API_KEY  # required key (None: any); /admin/auth sets it

    def take_fault(self, path):
        with self.lock:
            for f in self.queue:
                if f["path"] is None or path.startswith(f["path"]):
                    f["left"] -= 1
                    if f["left"] <= 0:
                        self.queue.remove(f)
                    return dict(f["spec"])
        return None


DEFAULT_API_KEY = None   # --api-key: the key every model request must carry
STATE = State()


def auth_refusal(headers):
    """OpenAI's 401 body when a key is required and this request lacks it, else None."""
    with STATE.lock:
        want = STATE.api_key
    if want is None or headers.get("Authorization") == "Bearer " + want:
        return None
    return {"error": {"message": "Incorrect API key provided. You can find your API key at "
                                 "https://platform.openai.com/account/api-keys.",
                      "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


def models_list():
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake"}
                                       for m in ("fake", "fake-1", "fake-primary", "fake-backup",
                                                 SCRIPTED_MODEL)]}


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


# ---- strict mode: the request checks the real API makes ----

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SCHEMA_TYPES = {"object", "string", "integer", "number", "boolean", "array", "null"}
# JSON Schema keywords the real API accepts in tool parameters; anything else
# is most likely a typo ("require") that the provider would reject or ignore
SCHEMA_KEYWORDS = {"type", "description", "properties", "required", "additionalProperties",
                   "enum", "const", "pattern", "format", "minimum", "maximum",
                   "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                   "maxLength", "items", "minItems", "maxItems", "minProperties",
                   "maxProperties", "anyOf", "examples", "default", "title", "$defs", "$ref"}
ROLES = {"system", "developer", "user", "assistant", "tool"}


def schema_problems(schema, path, out, is_property):
    """Problems of one JSON schema: valid keywords and types, objects closed
    (additionalProperties: false) with declared required names, arrays with
    items, patterns that compile, properties described."""
    if not isinstance(schema, dict):
        out.append("%s: a schema must be an object" % path)
        return
    for k in schema:
        if k not in SCHEMA_KEYWORDS:
            out.append("%s: unknown schema keyword %r" % (path, k))
    t = schema.get("type")
    if "anyOf" not in schema and t not in SCHEMA_TYPES:
        out.append("%s: type must be one of %s, got %r" % (path, sorted(SCHEMA_TYPES), t))
    if is_property and not (isinstance(schema.get("description"), str) and schema["description"].strip()):
        out.append("%s: no description" % path)
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as e:
            out.append("%s: invalid pattern: %s" % (path, e))
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        out.append("%s: enum must be a non-empty array" % path)
    if t == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            out.append("%s: object schema missing properties" % path)
            props = {}
        if schema.get("additionalProperties") is not False:
            out.append("%s: additionalProperties must be false" % path)
        req = schema.get("required", [])
        if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
            out.append("%s: required must be an array of strings" % path)
        else:
            for r in req:
                if r not in props:
                    out.append("%s: required %r is not in properties" % (path, r))
        for name, sub in props.items():
            schema_problems(sub, "%s.properties.%s" % (path, name), out, True)
    if t == "array":
        if "items" not in schema:
            out.append("%s: array schema missing items" % path)
        else:
            schema_problems(schema["items"], path + ".items", out, False)


def strict_problems(body):
    """Why the real API would refuse this request with 400 (empty: it would not)."""
    out = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        out.append("model must be a non-empty string")
    tools = body.get("tools")
    names = set()
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            out.append("tools must be a non-empty array")
            tools = []
        for i, t in enumerate(tools):
            where = "tools[%d]" % i
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
                out.append("%s: must be {type: function, function: {...}}" % where)
                continue
            name = fn.get("name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                out.append("%s.function.name: must match %s" % (where, TOOL_NAME.pattern))
            elif name in names:
                out.append("%s.function.name: duplicate %s" % (where, name))
            names.add(name)
            if not (isinstance(fn.get("description"), str) and fn["description"].strip()):
                out.append("%s.function.description: missing" % where)
            params = fn.get("parameters")
            if not isinstance(params, dict) or params.get("type") != "object":
                out.append("%s.function.parameters: must be a JSON schema of type object" % where)
            else:
                schema_problems(params, "%s.function.parameters" % where, out, False)
    tc = body.get("tool_choice")
    if tc is not None:
        if not tools:
            out.append("tool_choice is only allowed when tools are specified")
        elif isinstance(tc, dict):
            if (tc.get("function") or {}).get("name") not in names:
                out.append("tool_choice names a function that is not in tools")
        elif tc not in ("auto", "none", "required"):
            out.append("tool_choice must be auto, none, required or a function")
    if "stream_options" in body and not body.get("stream"):
        out.append("stream_options is only allowed when stream is enabled")
    mt = body.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        out.append("max_tokens must be a positive integer")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        out.append("messages must be a non-empty array")
        return out
    pending = []  # tool_call ids of the last assistant message not yet answered
    for i, m in enumerate(msgs):
        where = "messages[%d]" % i
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            out.append("%s: role must be one of %s" % (where, sorted(ROLES)))
            continue
        role = m["role"]
        if role != "tool" and pending:
            out.append("%s: an assistant message with 'tool_calls' must be followed by tool "
                       "messages responding to each 'tool_call_id' (missing %s)" % (where, pending))
            pending = []
        content = m.get("content")
        if role == "tool":
            tid = m.get("tool_call_id")
            if tid not in pending:
                out.append("%s: messages with role 'tool' must be a response to a preceding "
                           "message with 'tool_calls' (tool_call_id %r)" % (where, tid))
            else:
                pending.remove(tid)
            if not isinstance(content, str):
                out.append("%s: a tool message's content must be a string" % where)
        elif role == "assistant":
            calls = m.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    out.append("%s: tool_calls must be a non-empty array" % where)
                    calls = []
                for j, c in enumerate(calls):
                    fn = c.get("function") if isinstance(c, dict) else None
                    if (not isinstance(c, dict) or not isinstance(c.get("id"), str) or not c["id"]
                            or c.get("type") != "function" or not isinstance(fn, dict)
                            or not isinstance(fn.get("name"), str)
                            or not isinstance(fn.get("arguments"), str)):
                        out.append("%s.tool_calls[%d]: must be {id, type: function, function: "
                                   "{name, arguments: string}}" % (where, j))
                        continue
                    pending.append(c["id"])
            if content is None and not calls:
                out.append("%s: an assistant message needs content or tool_calls" % where)
            elif content is not None and not isinstance(content, (str, list)):
                out.append("%s: content must be a string" % where)
        elif not isinstance(content, (str, list)):
            out.append("%s: content must be a string or an array of parts" % where)
    if pending:
        out.append("the last assistant message's tool_calls %s have no tool messages" % pending)
    return out


# ---- the scripted buyer: a purchase as a real model plays it ----

SCRIPTED_MODEL = "scripted-buyer"
BUYER = {"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com"}
ADDRESS = {"street_address": "1 Main St", "address_locality": "Springfield",
           "address_region": "IL", "postal_code": "62701", "address_country": "US"}
# what the model "knows" about the address before it reads any error: the
# keys real models use
GUESSED = {"street": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701",
           "country": "US"}
RENAME = re.compile(r"arguments\.(buyer|address)\.(\w+): unknown field; did you mean (\w+)\?")
SPLIT = re.compile(r"arguments\.(buyer|address)\.(\w+): unknown field; use (\w+) and (\w+)")


def _turn_steps(messages):
    """The tool calls since the last user message: [(name, args, result)]."""
    start = max([i for i, m in enumerate(messages) if m.get("role") == "user"] or [0])
    results = {m.get("tool_call_id"): m.get("content") for m in messages[start:]
               if m.get("role") == "tool"}
    steps = []
    for m in messages[start:]:
        for c in m.get("tool_calls") or [] if m.get("role") == "assistant" else []:
            fn = c.get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except ValueError:
                args = None
            try:
                res = json.loads(results.get(c.get("id")) or "null")
            except ValueError:
                res = None
            steps.append((fn.get("name"), args, res))
    return steps


def _error(res):
    return res.get("error") if isinstance(res, dict) else None


def _correct(args, err):
    """A real model's correction of update_customer_details: rename each field
    the error says is unknown to what the error proposes, split a name it says
    to split. None when the error does not say how to fix every bad field."""
    text = " ".join([err.get("message") or ""] + [p for p in err.get("problems") or []
                                                   if isinstance(p, str)])
    fixed = json.loads(json.dumps(args))
    for obj, key, target in RENAME.findall(text):
        if isinstance(fixed.get(obj), dict) and key in fixed[obj]:
            fixed[obj][target] = fixed[obj].pop(key)
    for obj, key, first, last in SPLIT.findall(text):
        if isinstance(fixed.get(obj), dict) and key in fixed[obj]:
            parts = str(fixed[obj].pop(key)).split(None, 1)
            fixed[obj][first], fixed[obj][last] = parts[0], parts[1] if len(parts) > 1 else ""
    unknown = [k for o in ("buyer", "address") for k in (fixed.get(o) or {})
               if k not in BUYER and k not in ADDRESS and k not in ("phone_number", "full_name")]
    return None if unknown or fixed == args else fixed


def scripted_buyer(messages):
    """One step of the purchase: search, add, update_customer_details with an
    address string, then with the keys models guess, then corrected from the
    error, select express shipping from the checkout's options, start
    payment, complete, and answer with the order id."""
    steps = _turn_steps(messages)
    n = sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")
    cid = "call_%d" % (n + 1)

    def call(name, args, why):
        STATE.script.append({"call": name, "args": args, "why": why})
        return None, [(cid, name, json.dumps(args))]

    def say(text, why):
        STATE.script.append({"answer": text, "why": why})
        return text, []

    if not steps:
        return call("search_shopping_catalog", {"query": "cookies"}, "find the product")
    name, args, res = steps[-1]
    err = _error(res)
    if name == "search_shopping_catalog":
        if err or not (res or {}).get("products"):
            return say("I found no cookies.", "search failed")
        pick = next((p for p in res["products"] if "chocolate" in p.get("title", "").lower()),
                    res["products"][0])
        return call("add_to_checkout", {"product_id": pick["id"], "quantity": 2}, "add it")
    if name == "add_to_checkout":
        if err:
            return say("I could not add it: %s" % err.get("message"), "add failed")
        # mistake (a): the whole address as one string
        return call("update_customer_details",
                    {"buyer": {"email": BUYER["email"]},
                     "address": "1 Main St, Springfield, IL 62701, US"}, "mistake: address string")
    if name == "update_customer_details" and err:
        if isinstance(args.get("address"), str):
            text = err.get("message") or ""
            if "arguments.address must be of type object" not in text:
                return say("I do not understand what went wrong: %s" % text, "error unusable")
            # mistake (b): an object now, with the keys models guess and the name in one field
            return call("update_customer_details",
                        {"buyer": {"name": "Jane Doe", "email": BUYER["email"]}, "address": GUESSED},
                        "mistake: guessed keys")
        fixed = _correct(args, err)
        if fixed is None:
            return say("I do not know how to fix: %s" % err.get("message"), "error unusable")
        return call("update_customer_details", fixed, "corrected from the error")
    if name == "update_customer_details":
        opts = [o for meth in (res.get("fulfillment") or {}).get("methods", [])
                for g in meth.get("groups", []) for o in g.get("options", [])]
        pick = next((o for o in opts if "express" in (o.get("title", "") + o["id"]).lower()), None)
        if not pick:
            return say("There is no express shipping to this address.", "no express option")
        return call("select_shipping", {"option_id": pick["id"]}, "express shipping")
    if name == "select_shipping":
        if err:
            return say("Shipping failed: %s" % err.get("message"), "select failed")
        return call("start_payment", {}, "check it is ready")
    if name == "start_payment":
        if err or not res.get("ready"):
            return say("The checkout is not ready: %s" % json.dumps(res)[:300], "not ready")
        return call("complete_checkout", {}, "pay")
    if name == "complete_checkout":
        if err:
            return say("Payment failed: %s" % err.get("message"), "payment failed")
        order = (res.get("order") or {}).get("id")
        return say("Your order %s is placed." % order, "done")
    return say("Unexpected step after %s." % name, "lost")


def script(body, fault):
    """The reply for a request: (content, tool_calls list of (id, name, args_text))."""
    messages = body.get("messages") or []
    text = last_user_text(messages)
    clean = DIRECTIVE.sub("", text).strip()
    last = messages[-1] if messages else {}
    if fault.get("unknown_tool"):
        return None, [("call_u1", "no_such_tool", "{}")]
    if fault.get("bad_args"):
        return None, [("call_b1", "lookup", '{"q": ')]
    if body.get("model") == SCRIPTED_MODEL:
        return scripted_buyer(messages)
    if last.get("role") == "tool":
        return "Tool said: %s" % (last.get("content") or ""), []
    m = re.search(r"\[\[tool:(\w+)\s*(\{.*?\})?\]\]", text)
    if m:
        return None, [("call_1", m.group(1), m.group(2) or "{}")]
    low = clean.lower()
    if "two tools" in low or "parallel" in low:
        return None, [("call_1", "get_weather", json.dumps({"city": "Paris", "unit": "celsius"})),
                      ("call_2", "get_time", json.dumps({"timezone": "Europe/Paris"}))]
    if "call a tool" in low or "weather" in low:
        return None, [("call_1", "get_weather", json.dumps({"city": "Paris"}))]
    if "long answer" in low:
        return " ".join("word%d" % i for i in range(200)), []
    return "echo: %s" % clean, []


def usage_for(body, content, calls):
    prompt = sum(len(json.dumps(m)) for m in body.get("messages") or []) // 4 + 1
    out = len(content or "") + sum(len(a) for _, _, a in calls)
    return {"prompt_tokens": prompt, "completion_tokens": out // 4 + 1,
            "total_tokens": prompt + out // 4 + 1}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-llm/1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port only
        pass

    # ---- plumbing ----
    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def reset_connection(self):
        # SO_LINGER 0: close sends RST, which is what a crashed peer looks like
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # ---- routes ----
    def do_GET(self):
        if self.path == "/admin/stats":
            with STATE.lock:
                self.send_json(200, {"requests": STATE.requests, "by_path": STATE.by_path,
                                     "faults_applied": STATE.faults_applied,
                                     "queued": len(STATE.queue), "last": STATE.last,
                                     "strict": STATE.strict, "checked": STATE.checked,
                                     "rejections": STATE.rejections, "script": STATE.script})
        elif self.path.endswith("/models"):
            with STATE.lock:
                STATE.by_path[self.path] = STATE.by_path.get(self.path, 0) + 1
            refusal = auth_refusal(self.headers)
            if refusal:
                return self.send_json(401, refusal)
            self.send_json(200, models_list())
        else:
            self.send_json(404, {"error": {"message": "no route", "type": "not_found"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/admin/reset":
            with STATE.lock:
                STATE.reset()
            return self.send_json(200, {"ok": True})
        if self.path == "/admin/strict":
            req = json.loads(raw or b"{}")
            with STATE.lock:
                STATE.strict = bool(req.get("on", True))
            return self.send_json(200, {"strict": STATE.strict})
        if self.path == "/admin/faults":
            req = json.loads(raw or b"{}")
            with STATE.lock:
                for spec in req.get("faults", []):
                    spec = dict(spec)
                    STATE.queue.append({"spec": spec, "path": spec.pop("path", req.get("path")),
                                        "left": int(spec.pop("times", 1))})
            return self.send_json(200, {"queued": len(STATE.queue)})
        if self.path == "/admin/auth":
            req = json.loads(raw or b"{}")
            with STATE.lock:
                STATE.api_key = req.get("api_key")
            return self.send_json(200, {"api_key_required": STATE.api_key is not None})
        if self.path.endswith("/chat/completions"):
            return self.completions(raw)
        self.send_json(404, {"error": {"message": "no route", "type": "not_found"}})

    def completions(self, raw):
        with STATE.lock:
            STATE.requests += 1
            STATE.by_path[self.path] = STATE.by_path.get(self.path, 0) + 1
        try:
            body = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        with STATE.lock:
            STATE.last = {"path": self.path, "authorization": self.headers.get("Authorization"),
                          "request_id": self.headers.get("X-Request-Id"),
                          "traceparent": self.headers.get("traceparent"),
                          "tracestate": self.headers.get("tracestate"),
                          "model": body.get("model"), "stream": bool(body.get("stream")),
                          "has_tools": bool(body.get("tools")), "tool_choice": body.get("tool_choice"),
                          "max_tokens": body.get("max_tokens"),
                          "messages": [{"role": m.get("role"),
                                        "content": m.get("content") if isinstance(m.get("content"), str)
                                        else None}
                                       for m in body.get("messages") or [] if isinstance(m, dict)]}
        refusal = auth_refusal(self.headers)
        if refusal:
            return self.send_json(401, refusal)
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return self.send_json(400, {"error": {"message": "model and messages are required",
                                                  "type": "invalid_request_error"}})
        if STATE.strict:
            problems = strict_problems(body)
            with STATE.lock:
                if problems:
                    STATE.rejections.append({"path": self.path, "problems": problems})
                else:
                    STATE.checked += 1
            if problems:
                return self.send_json(400, {"error": {"message": "; ".join(problems),
                                                      "type": "invalid_request_error",
                                                      "param": None, "code": None}})
        # faults: the admin queue first, then the header, then the message
        fault = STATE.take_fault(self.path) or {}
        hdr = self.headers.get("X-Fake-Fault")
        if hdr:
            fault.update(parse_fault(hdr))
        text = last_user_text(body["messages"])
        for d in DIRECTIVE.findall(text):
            spec = parse_fault(d)
            if spec.pop("once", False):
                key = (self.path, d, text)
                with STATE.lock:
                    if key in STATE.once_seen:
                        continue
                    STATE.once_seen.add(key)
            fault.update(spec)
        if fault:
            with STATE.lock:
                STATE.faults_applied += 1
        if fault.get("latency_ms"):
            time.sleep(int(fault["latency_ms"]) / 1000.0)
        if fault.get("hang"):
            # hold the request open far past any client timeout
            STATE.stopping.wait(float(fault.get("seconds", 120)))
            return self.reset_connection()
        if fault.get("reset"):
            return self.reset_connection()
        status = int(fault.get("status", 200))
        if status != 200:
            extra = {}
            if "retry_after" in fault:
                ra = str(fault["retry_after"])
                if ra == "date":  # an HTTP-date 2 s ahead
                    ra = email.utils.formatdate(time.time() + 2, usegmt=True)
                extra["Retry-After"] = ra
            kind = {429: "rate_limit_exceeded", 400: "invalid_request_error",
                    401: "invalid_api_key"}.get(status, "server_error")
            return self.send_json(status, {"error": {"message": "fake fault %d" % status, "type": kind}}, extra)
        content, calls = script(body, fault)
        usage = usage_for(body, content, calls)
        if body.get("stream"):
            return self.stream(body, content, calls, usage, fault)
        if fault.get("malformed"):
            data = b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "tru'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return self.wfile.write(data)
        if fault.get("no_choices"):
            return self.send_json(200, {"id": "chatcmpl-x", "object": "chat.completion", "choices": []})
        msg = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = [{"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                                 for i, n, a in calls]
        self.send_json(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                             "model": body["model"],
                             "choices": [{"index": 0, "message": msg,
                                          "finish_reason": "tool_calls" if calls else "stop"}],
                             "usage": usage})

    def stream(self, body, content, calls, usage, fault):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"]}

        def event(choices, **more):
            obj = dict(base, choices=choices, **more)
            # CRLF line ends and a comment line exercise the parser's edges
            if STATE.requests % 2:
                self.chunk(b": keep-alive\r\n\r\n")
            self.chunk(("data: " + json.dumps(obj) + "\n\n").encode())

        event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if fault.get("malformed"):
            self.chunk(b'data: {"choices": [{"delta": {"content": "oops"\n\n')
            self.chunk(b"data: [DONE]\n\n")
            return self.chunk(b"")
        pieces = []
        if content:
            pieces += [("c", content[i:i + 5]) for i in range(0, len(content), 5)]
        # tool calls: the head (id, name) first, then arguments in small pieces,
        # calls interleaved like parallel calls arrive from real providers
        for idx, (cid, name, args) in enumerate(calls):
            pieces.append(("h", idx, cid, name))
        frags = [[args[i:i + 7] for i in range(0, len(args), 7)] for _, _, args in calls]
        for j in range(max([len(f) for f in frags] or [0])):
            for idx, f in enumerate(frags):
                if j < len(f):
                    pieces.append(("a", idx, f[j]))
        cut = len(pieces) // 2 if fault.get("truncate") else None
        for n, p in enumerate(pieces):
            if cut is not None and n == cut:
                return self.chunk(b"")  # a clean end of body, but no finish_reason and no [DONE]
            if p[0] == "c":
                event([{"index": 0, "delta": {"content": p[1]}, "finish_reason": None}])
            elif p[0] == "h":
                event([{"index": 0, "delta": {"tool_calls": [{"index": p[1], "id": p[2], "type": "function",
                                                               "function": {"name": p[3], "arguments": ""}}]},
                        "finish_reason": None}])
            else:
                event([{"index": 0, "delta": {"tool_calls": [{"index": p[1], "function": {"arguments": p[2]}}]},
                        "finish_reason": None}])
            if fault.get("chunk_delay_ms"):
                time.sleep(int(fault["chunk_delay_ms"]) / 1000.0)
        if cut is not None:
            return self.chunk(b"")
        event([{"index": 0, "delta": {}, "finish_reason": "tool_calls" if calls else "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=usage)
        self.chunk(b"data: [DONE]\n\n")
        self.chunk(b"")


def serve(port):
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    return srv


# ---- self-test (no pytest) ----

def _post(base, path, obj, headers=None, timeout=5):
    req = urllib.request.Request(base + path, data=json.dumps(obj).encode(), method="POST",
                                 headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _sse_events(raw):
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: "):
            out.append(line[6:])
    return out


def self_test():
    srv = serve(0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    chat = "/v1/chat/completions"
    msgs = lambda s: {"model": "m", "messages": [{"role": "user", "content": s}]}
    failures = []

    def check(cond, what):
        if not cond:
            failures.append(what)
        print(("ok   " if cond else "FAIL ") + what)

    st, _, b = _post(base, chat, msgs("hello"))
    r = json.loads(b)
    check(st == 200 and r["choices"][0]["message"]["content"] == "echo: hello", "non-streaming echo")
    check(r["usage"]["prompt_tokens"] > 0, "usage present")
    st, _, b = _post(base, chat, msgs("use two tools please"))
    calls = json.loads(b)["choices"][0]["message"]["tool_calls"]
    check(len(calls) == 2 and json.loads(calls[1]["function"]["arguments"])["timezone"] == "Europe/Paris",
          "parallel tool calls")
    body = dict(msgs("two tools"), stream=True, stream_options={"include_usage": True})
    st, h, b = _post(base, chat, body)
    ev = _sse_events(b)
    check(ev[-1] == "[DONE]", "stream ends with [DONE]")
    args = {}
    for e in ev[:-1]:
        for ch in json.loads(e)["choices"]:
            for tc in ch["delta"].get("tool_calls", []):
                args[tc["index"]] = args.get(tc["index"], "") + tc["function"].get("arguments", "")
    check(json.loads(args[0])["city"] == "Paris" and json.loads(args[1])["timezone"] == "Europe/Paris",
          "streamed tool-call arguments assemble")
    check("usage" in json.loads(ev[-2]), "usage chunk when include_usage")
    st, h, b = _post(base, chat, msgs("hi [[fault:429 retry_after=1]]"))
    check(st == 429 and h.get("Retry-After") == "1", "per-message 429 with Retry-After")
    st, h, b = _post(base, chat, msgs("hi"), headers={"X-Fake-Fault": "503"})
    check(st == 503, "header fault 503")
    _post(base, "/admin/faults", {"faults": [{"status": 500, "times": 2, "path": "/a"}]})
    s1 = _post(base, "/a" + chat, msgs("x"))[0]
    s2 = _post(base, "/b" + chat, msgs("x"))[0]
    s3 = _post(base, "/a" + chat, msgs("x"))[0]
    s4 = _post(base, "/a" + chat, msgs("x"))[0]
    check((s1, s2, s3, s4) == (500, 200, 500, 200), "admin queue scoped by path, times=2")
    st, _, b = _post(base, chat, msgs("x [[fault:malformed]]"))
    try:
        json.loads(b)
        check(False, "malformed JSON body")
    except ValueError:
        check(st == 200, "malformed JSON body")
    st, _, b = _post(base, chat, dict(msgs("a long answer [[fault:truncate]]"), stream=True))
    check("[DONE]" not in _sse_events(b), "truncated stream has no [DONE]")
    try:
        _post(base, chat, msgs("x [[fault:reset]]"))
        check(False, "connection reset")
    except (ConnectionError, urllib.error.URLError, OSError):
        check(True, "connection reset")
    t0 = time.time()
    try:
        _post(base, chat, msgs("x [[fault:hang seconds=5]]"), timeout=0.3)
        check(False, "hang holds the request")
    except (OSError, urllib.error.URLError):
        check(time.time() - t0 < 2, "hang holds the request")
    st, _, b = _post(base, chat, msgs("x [[fault:unknown_tool]]"))
    check(json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "no_such_tool",
          "unknown tool")
    st, _, b = _post(base, chat, msgs("x [[fault:bad_args]]"))
    a = json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    try:
        json.loads(a)
        check(False, "invalid tool arguments")
    except ValueError:
        check(True, "invalid tool arguments")
    st, _, b = _post(base, chat, msgs("x [[fault:500 once]]"))
    st2, _, _ = _post(base, chat, msgs("x [[fault:500 once]]"))
    check((st, st2) == (500, 200), "once directive")
    t0 = time.time()
    _post(base, chat, msgs("x [[fault:latency ms=200]]"))
    check(time.time() - t0 >= 0.19, "latency")
    # strict mode: what the real API refuses
    _post(base, "/admin/strict", {"on": True})
    tool = {"type": "function", "function": {"name": "get_x", "description": "Get x.", "parameters": {
        "type": "object", "properties": {"id": {"type": "string", "description": "The id."}},
        "required": ["id"], "additionalProperties": False}}}
    ok = dict(msgs("hi"), tools=[tool], tool_choice="auto")
    check(_post(base, chat, ok)[0] == 200, "strict: a valid request passes")
    loose = json.loads(json.dumps(tool))
    del loose["function"]["parameters"]["additionalProperties"]
    loose["function"]["parameters"]["properties"]["id"].pop("description")
    st, _, b = _post(base, chat, dict(msgs("hi"), tools=[loose]))
    err = json.loads(b)["error"]["message"]
    check(st == 400 and "additionalProperties must be false" in err and "no description" in err,
          "strict: an open or undescribed schema is 400")
    orphan = {"model": "m", "messages": [{"role": "user", "content": "x"},
                                         {"role": "tool", "tool_call_id": "c9", "content": "{}"}]}
    st, _, b = _post(base, chat, orphan)
    check(st == 400 and "must be a response to a preceding" in json.loads(b)["error"]["message"],
          "strict: a tool message without its call is 400")
    unanswered = {"model": "m", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_x", "arguments": "{}"}}]},
        {"role": "user", "content": "y"}]}
    check(_post(base, chat, unanswered)[0] == 400, "strict: a tool call without its result is 400")
    with urllib.request.urlopen(base + "/admin/stats") as r:
        st_ = json.loads(r.read())
    check(st_["checked"] == 1 and len(st_["rejections"]) == 3, "strict: counted")
    _post(base, "/admin/strict", {"on": False})
    # the scripted buyer starts by searching, and reads an error before correcting
    st, _, b = _post(base, chat, dict(msgs("buy cookies"), model=SCRIPTED_MODEL))
    c0 = json.loads(b)["choices"][0]["message"]["tool_calls"][0]["function"]
    check(c0["name"] == "search_shopping_catalog", "scripted buyer: searches first")
    bad = {"buyer": {"name": "Jane Doe"}, "address": dict(GUESSED)}
    fixed = _correct(bad, {"problems": ["arguments.address.%s: unknown field; did you mean %s?" % kv
                                        for kv in (("street", "street_address"), ("city", "address_locality"),
                                                   ("state", "address_region"), ("zip", "postal_code"),
                                                   ("country", "address_country"))] +
                           ["arguments.buyer.name: unknown field; use first_name and last_name"]})
    check(fixed == {"buyer": {"first_name": "Jane", "last_name": "Doe"}, "address": ADDRESS},
          "scripted buyer: corrects from the hints")
    check(_correct(bad, {"message": "invalid arguments"}) is None,
          "scripted buyer: no hint, no correction")
    with urllib.request.urlopen(base + "/admin/stats") as r:
        stats = json.loads(r.read())
    check(stats["requests"] >= 15 and stats["by_path"].get("/a" + chat) == 3, "stats")
    _post(base, "/admin/reset", {})
    with urllib.request.urlopen(base + "/admin/stats") as r:
        check(json.loads(r.read())["requests"] == 0, "reset")
    _post(base, "/admin/auth", {"api_key": "k1"})
    st, _, b = _post(base, chat, msgs("x"), headers={"Authorization": "Bearer wrong"})
    check(st == 401 and json.loads(b)["error"]["code"] == "invalid_api_key", "wrong key -> 401")
    st, _, b = _post(base, chat, msgs("x"), headers={"Authorization": "Bearer k1"})
    check(st == 200, "right key -> 200")
    req = urllib.request.Request(base + "/v1/models", headers={"Authorization": "Bearer k1"})
    with urllib.request.urlopen(req) as r:
        check(any(m["id"] == "fake" for m in json.loads(r.read())["data"]), "models list")
    _post(base, "/admin/reset", {})
    st, _, _ = _post(base, chat, msgs("x"))
    check(st == 200, "reset: any key again")
    STATE.stopping.set()
    srv.shutdown()
    print("self-test %s" % ("FAILED: " + ", ".join(failures) if failures else "ok"))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--strict", action="store_true",
                    help="validate every request like the real API (400 otherwise)")
    ap.add_argument("--api-key", help="require this key (Authorization: Bearer KEY); else 401")
    a = ap.parse_args()
    if a.api_key:
        global DEFAULT_API_KEY
        DEFAULT_API_KEY = STATE.api_key = a.api_key
    if a.self_test:
        sys.exit(self_test())
    if a.strict:
        STATE.strict_default = True
        STATE.reset()
    srv = serve(a.port)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        STATE.stopping.set()


if __name__ == "__main__":
    main()
