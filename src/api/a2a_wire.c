/* A2A wire formats: the JSON-RPC envelope, version negotiation, part
 * decoding, and the two encoders (1.0, 0.3) of the one internal task model. */
#define _GNU_SOURCE
#include "api/a2a_wire.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int a2a_version_parse(const char *h)
{
    if (!h || !*h)
        return A2A_V03;
    if (strcmp(h, "1.0") == 0 || strcmp(h, "1") == 0)
        return A2A_V10;
    if (strcmp(h, "0.3") == 0 || strcmp(h, "0.3.0") == 0)
        return A2A_V03;
    return AGENTD_EINVAL;
}

static const struct {
    const char *v10, *v03;
    enum a2a_method m;
} METHODS[] = {
    { "SendMessage", "message/send", A2A_M_SEND },
    { "SendStreamingMessage", "message/stream", A2A_M_STREAM },
    { "GetTask", "tasks/get", A2A_M_GET },
    { "ListTasks", "tasks/list", A2A_M_LIST },
    { "CancelTask", "tasks/cancel", A2A_M_CANCEL },
    { "SubscribeToTask", "tasks/resubscribe", A2A_M_SUBSCRIBE },
    { "GetExtendedAgentCard", "agent/getAuthenticatedExtendedCard", A2A_M_CARD },
    { "CreateTaskPushNotificationConfig", "tasks/pushNotificationConfig/set", A2A_M_PUSH },
    { "GetTaskPushNotificationConfig", "tasks/pushNotificationConfig/get", A2A_M_PUSH },
    { "ListTaskPushNotificationConfigs", "tasks/pushNotificationConfig/list", A2A_M_PUSH },
    { "DeleteTaskPushNotificationConfig", "tasks/pushNotificationConfig/delete", A2A_M_PUSH },
};

enum a2a_method a2a_method_lookup(const char *name, int ver)
{
    if (!name)
        return A2A_M_UNKNOWN;
    for (size_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strcmp(name, ver == A2A_V10 ? METHODS[i].v10 : METHODS[i].v03) == 0)
            return METHODS[i].m;
    return A2A_M_UNKNOWN;
}

int a2a_envelope_check(const json_t *body, struct a2a_rpc *rpc, struct agentd_error *e)
{
    memset(rpc, 0, sizeof *rpc);
    if (json_is_array(body)) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "batch requests are not supported: send "
                           "one JSON-RPC request per HTTP request");
    }
    if (!json_is_object(body)) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "the request must be a JSON-RPC 2.0 request object");
    }
    const json_t *id = json_object_get(body, "id");
    if (id && (json_is_string(id) || json_is_integer(id) || json_is_null(id)))
        rpc->id = id;
    const json_t *v = json_object_get(body, "jsonrpc");
    const json_t *m = json_object_get(body, "method");
    json_t *p = json_object_get(body, "params");
    const char *bad = NULL, *path = NULL;
    if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
        bad = "\"jsonrpc\" must be \"2.0\"", path = "jsonrpc";
    else if (!id)
        bad = "\"id\" is required (notifications are not supported)", path = "id";
    else if (!rpc->id)
        bad = "\"id\" must be a string, an integer or null", path = "id";
    else if (!json_is_string(m) || json_string_length(m) == 0)
        bad = "\"method\" must be a non-empty string", path = "method";
    else if (p && !json_is_object(p))
        bad = "\"params\" must be an object", path = "params";
    if (bad)
        return agentd_fail(e, AGENTD_EINVAL, NULL, path, "%s", bad);
    rpc->method = json_string_value(m);
    rpc->params = p;
    return 0;
}

int a2a_rpc_code(int status)
{
    switch (status) {
    case AGENTD_EINVAL:
        return A2A_INVALID_PARAMS;
    case AGENTD_EMEDIATYPE:
        return A2A_CONTENT_TYPE_NOT_SUPPORTED;
    default:
        return A2A_INTERNAL_ERROR;
    }
}

json_t *a2a_rpc_result(const json_t *id, json_t *result)
{
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? (json_t *)id : json_null(),
                     "result", result ? result : json_null());
}

json_t *a2a_rpc_error(const json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i,s:s}", "code", code, "message", message ? message : "");
    if (err && data)
        json_object_set_new(err, "data", data);
    else
        json_decref(data);
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? (json_t *)id : json_null(),
                     "error", err);
}

/* ---- parts ---- */

static int part_decode(const json_t *p, size_t i, json_t **out, struct agentd_error *e)
{
    if (!json_is_object(p)) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "message.parts[%zu] must be an object", i);
    }
    const char *kind = json_string_value(json_object_get(p, "kind"));
    if (!kind)
        kind = json_string_value(json_object_get(p, "type"));
    const json_t *text = json_object_get(p, "text");
    const json_t *data = json_object_get(p, "data");
    int file = json_object_get(p, "file") || json_object_get(p, "raw") ||
               json_object_get(p, "url");
    if (!kind)
        kind = text ? "text" : data ? "data" : file ? "file" : "";
    if (strcmp(kind, "file") == 0) {
        return agentd_fail(e, AGENTD_EMEDIATYPE, NULL, NULL, "message.parts[%zu] is a file part: "
                           "this agent accepts text and data parts only", i);
    }
    if (strcmp(kind, "text") == 0) {
        if (!json_is_string(text)) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                               "message.parts[%zu].text must be a string", i);
        }
        *out = json_pack("{s:O}", "text", text);
        return 0;
    }
    if (strcmp(kind, "data") == 0) {
        if (!data) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "message.parts[%zu].data is required",
                               i);
        }
        *out = json_pack("{s:O}", "data", data);
        return 0;
    }
    return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                       "message.parts[%zu] is neither a text nor a data part", i);
}

int a2a_parts_decode(const json_t *parts, json_t **out, struct agentd_error *e)
{
    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "message.parts must be a non-empty array");
    }
    json_t *v = json_array();
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        json_t *one = NULL;
        int rc = part_decode(p, i, &one, e);
        if (rc == 0 && !one)
            rc = agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        if (rc) {
            json_decref(v);
            return rc;
        }
        json_array_append_new(v, one);
    }
    *out = v;
    return 0;
}

int a2a_message_fingerprint(const json_t *msg, char out[65])
{
    out[0] = '\0';
    /* jsondump: json_dumps' bytes without its per-container cycle check */
    size_t len = 0;
    char *canon = jsondump(msg, JSON_COMPACT | JSON_SORT_KEYS, &len);
    if (!canon)
        return AGENTD_ENOMEM;
    store_idem_fingerprint("A2A", "message", canon, len, out);
    free(canon);
    return 0;
}

char *a2a_parts_text(const json_t *parts)
{
    size_t n = 0, i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (t)
            n += strlen(t) + 1;
    }
    char *s = malloc(n + 1), *w = s;
    if (!s)
        return NULL;
    json_array_foreach(parts, i, p) {
        const char *t = json_string_value(json_object_get(p, "text"));
        if (!t)
            continue;
        if (w != s)
            *w++ = '\n';
        size_t l = strlen(t);
        memcpy(w, t, l);
        w += l;
    }
    *w = 0;
    return s;
}

json_t *a2a_parts_data(const json_t *parts)
{
    json_t *all = NULL;
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        json_t *d = json_object_get(p, "data");
        if (!json_is_object(d))
            continue;
        if (!all)
            all = json_object();
        json_object_update(all, d);
    }
    return all;
}

/* ---- states ---- */

static const struct {
    const char *name, *v10;
} STATES[] = {
    { "submitted", "TASK_STATE_SUBMITTED" },
    { "working", "TASK_STATE_WORKING" },
    { "input-required", "TASK_STATE_INPUT_REQUIRED" },
    { "completed", "TASK_STATE_COMPLETED" },
    { "failed", "TASK_STATE_FAILED" },
    { "canceled", "TASK_STATE_CANCELED" },
    { "rejected", "TASK_STATE_REJECTED" },
    { "auth-required", "TASK_STATE_AUTH_REQUIRED" },
};

const char *a2a_state_wire(const char *state, int ver)
{
    for (size_t i = 0; i < sizeof STATES / sizeof STATES[0]; i++)
        if (state && strcmp(state, STATES[i].name) == 0)
            return ver == A2A_V10 ? STATES[i].v10 : STATES[i].name;
    return ver == A2A_V10 ? "TASK_STATE_UNSPECIFIED" : "unknown";
}

const char *a2a_state_parse(const char *wire)
{
    for (size_t i = 0; wire && i < sizeof STATES / sizeof STATES[0]; i++)
        if (strcmp(wire, STATES[i].name) == 0 || strcmp(wire, STATES[i].v10) == 0)
            return STATES[i].name;
    return NULL;
}

int a2a_state_terminal(const char *s)
{
    return s && (strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
                 strcmp(s, "canceled") == 0 || strcmp(s, "rejected") == 0);
}

static char *put_digits(char *p, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

void a2a_timestamp(int64_t ms, char out[32])
{
    int64_t sec = ms / 1000, msec = ms % 1000;
    if (msec < 0) {
        msec += 1000;
        sec--;
    }
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    int64_t y;
    unsigned mo, d;
    clock_civil_from_days(days, &y, &mo, &d);
    if (y < 0 || y > 9999) { /* not a clock agentd runs under: keep the old shape */
        snprintf(out, 32, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, mo, d,
                 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), (int)msec);
        return;
    }
    char *p = put_digits(out, y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, rem / 3600, 2);
    *p++ = ':';
    p = put_digits(p, rem / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, rem % 60, 2);
    *p++ = '.';
    p = put_digits(p, msec, 3);
    *p++ = 'Z';
    *p = '\0';
}

/* ---- encoders ---- */

static json_t *encode_parts(const json_t *parts, int ver)
{
    json_t *out = json_array();
    size_t i;
    const json_t *p;
    json_array_foreach(parts, i, p) {
        json_t *q = json_copy((json_t *)p); /* shallow: only its own keys are added */
        if (!q)
            continue;
        if (ver == A2A_V03)
            json_object_set_new(q, "kind", json_string(json_object_get(q, "text") ? "text"
                                                                                  : "data"));
        else if (json_object_get(q, "data") && !json_object_get(q, "mediaType"))
            json_object_set_new(q, "mediaType", json_string("application/json"));
        json_array_append_new(out, q);
    }
    return out;
}

static void set_str(json_t *o, const char *key, const json_t *src, const char *from)
{
    const json_t *v = json_object_get(src, from);
    if (json_is_string(v))
        json_object_set(o, key, (json_t *)v);
}

json_t *a2a_encode_message(const json_t *msg, int ver)
{
    if (!msg)
        return NULL;
    const char *role = json_string_value(json_object_get(msg, "role"));
    int agent = role && strcmp(role, "agent") == 0;
    json_t *o = json_object();
    set_str(o, "messageId", msg, "messageId");
    set_str(o, "contextId", msg, "contextId");
    set_str(o, "taskId", msg, "taskId");
    json_object_set_new(o, "role", json_string(ver == A2A_V10 ? (agent ? "ROLE_AGENT" : "ROLE_USER")
                                                              : (agent ? "agent" : "user")));
    json_object_set_new(o, "parts", encode_parts(json_object_get(msg, "parts"), ver));
    if (ver == A2A_V03)
        json_object_set_new(o, "kind", json_string("message"));
    return o;
}

static json_t *encode_status(const json_t *task, int ver)
{
    json_t *st = json_pack("{s:s}", "state",
                           a2a_state_wire(json_string_value(json_object_get(task, "state")), ver));
    json_t *m = json_object_get(task, "message");
    if (json_is_object(m))
        json_object_set_new(st, "message", a2a_encode_message(m, ver));
    set_str(st, "timestamp", task, "timestamp");
    return st;
}

static json_t *encode_artifact(const json_t *a, int ver)
{
    json_t *o = json_object();
    set_str(o, "artifactId", a, "artifactId");
    set_str(o, "name", a, "name");
    json_object_set_new(o, "parts", encode_parts(json_object_get(a, "parts"), ver));
    return o;
}

json_t *a2a_encode_task(const json_t *task, int ver, int history_length, int with_artifacts)
{
    json_t *o = json_object();
    set_str(o, "id", task, "id");
    set_str(o, "contextId", task, "contextId");
    json_object_set_new(o, "status", encode_status(task, ver));
    size_t i, n;
    const json_t *v;
    if (with_artifacts) {
        json_t *arts = json_array();
        json_array_foreach(json_object_get(task, "artifacts"), i, v)
            json_array_append_new(arts, encode_artifact(v, ver));
        json_object_set_new(o, "artifacts", arts);
    }
    json_t *hist = json_array();
    const json_t *h = json_object_get(task, "history");
    n = json_array_size(h);
    size_t from = history_length < 0 || (size_t)history_length >= n ? 0 : n - history_length;
    for (i = from; i < n; i++)
        json_array_append_new(hist, a2a_encode_message(json_array_get(h, i), ver));
    json_object_set_new(o, "history", hist);
    if (ver == A2A_V03)
        json_object_set_new(o, "kind", json_string("task"));
    return o;
}

json_t *a2a_encode_send_result(const json_t *task, int ver, int history_length)
{
    json_t *t = a2a_encode_task(task, ver, history_length, 1);
    return ver == A2A_V10 ? json_pack("{s:o}", "task", t) : t;
}

json_t *a2a_encode_task_frame(const json_t *task, int ver)
{
    return a2a_encode_send_result(task, ver, -1);
}

json_t *a2a_encode_status_update(const json_t *task, int final, int ver)
{
    json_t *o = json_object();
    set_str(o, "taskId", task, "id");
    set_str(o, "contextId", task, "contextId");
    json_object_set_new(o, "status", encode_status(task, ver));
    if (ver == A2A_V10)
        return json_pack("{s:o}", "statusUpdate", o);
    json_object_set_new(o, "kind", json_string("status-update"));
    json_object_set_new(o, "final", json_boolean(final));
    return o;
}

json_t *a2a_encode_artifact_update(const json_t *task, const json_t *artifact, int append,
                                   int last_chunk, int ver)
{
    json_t *o = json_object();
    set_str(o, "taskId", task, "id");
    set_str(o, "contextId", task, "contextId");
    json_object_set_new(o, "artifact", encode_artifact(artifact, ver));
    json_object_set_new(o, "append", json_boolean(append));
    json_object_set_new(o, "lastChunk", json_boolean(last_chunk));
    if (ver == A2A_V10)
        return json_pack("{s:o}", "artifactUpdate", o);
    json_object_set_new(o, "kind", json_string("artifact-update"));
    return o;
}

/* ---- the SendMessage reply written directly (no tree, one buffer) ---- */

#define WIRE_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10) | JSON_ENCODE_ANY)

/* ,"key": (comma unless first) */
static void w_key(struct buf *b, int *first, const char *key)
{
    if (!*first)
        buf_append(b, ",", 1);
    *first = 0;
    buf_json_str(b, key, strlen(key)); /* keys are UTF-8: jansson checks them on insert */
    buf_append(b, ":", 1);
}

/* w_key for a literal key (plain ASCII, no escape): `"key":` appended as is */
#define W_LKEY(b, first, lit) w_lkey((b), (first), "\"" lit "\":", sizeof lit + 2)
static void w_lkey(struct buf *b, int *first, const char *quoted, size_t n)
{
    if (!*first)
        buf_append(b, ",", 1);
    *first = 0;
    buf_append(b, quoted, n);
}

static int w_value(struct buf *b, const json_t *v)
{
    if (json_is_string(v))
        return buf_json_str(b, json_string_value(v), json_string_length(v));
    /* core/jsondump: json_dumps' bytes, cheaper */
    return jsondump_buf(b, v, WIRE_DUMP_FLAGS) == 0 ? 0 : AGENTD_EINVAL;
}

/* "key":"s" as set_str copies it: only when src[from] is a string (key a
 * literal: W_STR_FROM) */
static int w_str_from(struct buf *b, int *first, const char *quoted, size_t n,
                      const json_t *src, const char *from)
{
    const json_t *v = json_object_get(src, from);
    if (!json_is_string(v))
        return 0;
    w_lkey(b, first, quoted, n);
    return w_value(b, v);
}
#define W_STR_FROM(b, first, key, src, from) \
    w_str_from((b), (first), "\"" key "\":", sizeof key + 2, (src), (from))

static void w_lit_q(struct buf *b, int *first, const char *quoted, size_t n, const char *lit)
{
    w_lkey(b, first, quoted, n);
    buf_json_str(b, lit, strlen(lit));
}
#define w_lit(b, first, key, lit) w_lit_q((b), (first), "\"" key "\":", sizeof key + 2, (lit))

/* encode_parts: each part's own keys in order, then what it adds */
static int w_parts(struct buf *b, const json_t *parts, int ver)
{
    buf_append(b, "[", 1);
    size_t i;
    const json_t *p;
    int rc = 0;
    json_array_foreach(parts, i, p) {
        if (!json_is_object(p))
            return AGENTD_EINVAL;
        if (i)
            buf_append(b, ",", 1);
        buf_append(b, "{", 1);
        int first = 1;
        const char *kind = json_object_get(p, "text") ? "text" : "data";
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)p, k, v) {
            w_key(b, &first, k);
            if (ver == A2A_V03 && strcmp(k, "kind") == 0)
                buf_json_str(b, kind, strlen(kind)); /* set in place */
            else if ((rc = w_value(b, v)) != 0)
                return rc;
        }
        if (ver == A2A_V03 && !json_object_get(p, "kind"))
            w_lit(b, &first, "kind", kind);
        else if (ver == A2A_V10 && json_object_get(p, "data") && !json_object_get(p, "mediaType"))
            w_lit(b, &first, "mediaType", "application/json");
        buf_append(b, "}", 1);
    }
    buf_append(b, "]", 1);
    return 0;
}

static int w_message(struct buf *b, const json_t *msg, int ver)
{
    const char *role = json_string_value(json_object_get(msg, "role"));
    int agent = role && strcmp(role, "agent") == 0;
    int first = 1, rc;
    buf_append(b, "{", 1);
    if ((rc = W_STR_FROM(b, &first, "messageId", msg, "messageId")) ||
        (rc = W_STR_FROM(b, &first, "contextId", msg, "contextId")) ||
        (rc = W_STR_FROM(b, &first, "taskId", msg, "taskId")))
        return rc;
    w_lit(b, &first, "role", ver == A2A_V10 ? (agent ? "ROLE_AGENT" : "ROLE_USER")
                                            : (agent ? "agent" : "user"));
    W_LKEY(b, &first, "parts");
    if ((rc = w_parts(b, json_object_get(msg, "parts"), ver)) != 0)
        return rc;
    if (ver == A2A_V03)
        w_lit(b, &first, "kind", "message");
    buf_append(b, "}", 1);
    return 0;
}

static int w_task(struct buf *b, const json_t *task, int ver, int history_length)
{
    int first = 1, rc;
    buf_append(b, "{", 1);
    if ((rc = W_STR_FROM(b, &first, "id", task, "id")) ||
        (rc = W_STR_FROM(b, &first, "contextId", task, "contextId")))
        return rc;
    W_LKEY(b, &first, "status");
    int sf = 1;
    buf_append(b, "{", 1);
    w_lit(b, &sf, "state", a2a_state_wire(json_string_value(json_object_get(task, "state")), ver));
    const json_t *m = json_object_get(task, "message");
    if (json_is_object(m)) {
        W_LKEY(b, &sf, "message");
        if ((rc = w_message(b, m, ver)) != 0)
            return rc;
    }
    if ((rc = W_STR_FROM(b, &sf, "timestamp", task, "timestamp")) != 0)
        return rc;
    buf_append(b, "}", 1);
    W_LKEY(b, &first, "artifacts");
    buf_append(b, "[", 1);
    size_t i, n;
    const json_t *a;
    json_array_foreach(json_object_get(task, "artifacts"), i, a) {
        int af = 1;
        buf_append(b, i ? ",{" : "{", i ? 2 : 1);
        if ((rc = W_STR_FROM(b, &af, "artifactId", a, "artifactId")) ||
            (rc = W_STR_FROM(b, &af, "name", a, "name")))
            return rc;
        W_LKEY(b, &af, "parts");
        if ((rc = w_parts(b, json_object_get(a, "parts"), ver)) != 0)
            return rc;
        buf_append(b, "}", 1);
    }
    buf_append(b, "]", 1);
    W_LKEY(b, &first, "history");
    buf_append(b, "[", 1);
    const json_t *h = json_object_get(task, "history");
    n = json_array_size(h);
    size_t from = history_length < 0 || (size_t)history_length >= n ? 0 : n - history_length;
    for (i = from; i < n; i++) {
        const json_t *hm = json_array_get(h, i);
        if (!json_is_object(hm))
            return AGENTD_EINVAL; /* the tree encoder's output differs there: let it answer */
        if (i > from)
            buf_append(b, ",", 1);
        if ((rc = w_message(b, hm, ver)) != 0)
            return rc;
    }
    buf_append(b, "]", 1);
    if (ver == A2A_V03)
        w_lit(b, &first, "kind", "task");
    buf_append(b, "}", 1);
    return 0;
}

int a2a_write_send_reply(struct buf *b, const json_t *id, const json_t *task, int ver,
                         int history_length)
{
    if (!json_is_object(task))
        return AGENTD_EINVAL;
    buf_reserve(b, 1024);
    buf_puts(b, "{\"jsonrpc\":\"2.0\",\"id\":");
    int rc = w_value(b, id ? id : json_null());
    if (rc)
        return rc;
    buf_puts(b, ver == A2A_V10 ? ",\"result\":{\"task\":" : ",\"result\":");
    if ((rc = w_task(b, task, ver, history_length)) != 0)
        return rc;
    buf_puts(b, ver == A2A_V10 ? "}}" : "}");
    return b->oom ? AGENTD_ENOMEM : 0;
}
