/* The A2A JSON-RPC front (POST /): the envelope, version negotiation, the
 * UCP extension check and dispatch to the methods (a2a_send.c, a2a_task_methods.c).
 *
 * One task carries one shopping goal (design §8): contextId is the session;
 * a message with a taskId continues that task; one without continues the
 * context's open (non-terminal) task, else starts a new one. The task row
 * keeps state in its column and the rest of the model (status message,
 * artifacts, history, the current turn) as JSON in its artifacts column.
 * A messageId is claimed per principal in the idempotency records, so a
 * retried message answers the task it started and runs nothing. */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "api/a2a_call.h"
#include "api/a2a_card.h"
#include "api/a2a_ucp.h"
#include "api/a2a_wire.h"
#include "core/err.h"
#include "core/jsonparse.h"
#include "http/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct a2a_front a2a_front;

void a2a_call_free(struct a2a_call *c)
{
    profiles_cancel(&c->wait);
    json_decref(c->body);
    json_decref(c->id);
    json_decref(c->msg);
    free(c->text);
    json_decref(c->data);
    json_decref(c->action_args);
    free(c->message_id);
    free(c->context_id);
    free(c->task_id);
    json_decref(c->err_data);
    json_decref(c->task);
    free(c->prior_state);
    free(c->prior_doc);
    json_decref(c->prior_turn);
    free(c->acc_doc);
    json_decref(c->fin_task);
    free(c->fin_doc);
    free(c->res.code);
    free(c->res.message);
    free(c->res.turn_id);
    json_decref(c->res.checkout);
    json_decref(c->res.products);
    free(c->q_ctx);
    free(c->q_before);
    json_decref(c->list);
    free(c->next_token);
    free(c);
}

/* ---- replies ---- */

static void reply_body(struct a2a_call *c, json_t *doc)
{
    struct http_req *r = c->r;
    c->r = NULL;
    if (!r) {
        json_decref(doc);
        return;
    }
    if (c->ext_header)
        http_set_header(r, c->ext_header, A2A_UCP_EXTENSION_URI);
    /* JSON-RPC errors travel in a 200 reply, as the A2A JSON-RPC binding does */
    http_reply_json(r, 200, doc);
}

void a2a_reply_result(struct a2a_call *c, json_t *result)
{
    reply_body(c, a2a_rpc_result(c->id, result));
}

void a2a_reply_send_result(struct a2a_call *c)
{
    struct buf b = { 0 };
    if (!c->r || a2a_write_send_reply(&b, c->id, c->task, c->ver, c->hist) != 0) {
        buf_free(&b);
        a2a_reply_result(c, a2a_encode_send_result(c->task, c->ver, c->hist));
        return;
    }
    struct http_req *r = c->r;
    c->r = NULL;
    if (c->ext_header)
        http_set_header(r, c->ext_header, A2A_UCP_EXTENSION_URI);
    http_reply_raw(r, 200, "application/json", b.data, b.len);
    buf_free(&b);
}

void a2a_reply_error(struct a2a_call *c, int code, const char *message, json_t *data)
{
    if (c->r) {
        char v[16];
        snprintf(v, sizeof v, "%d", code);
        http_req_note(c->r, "rpc_error", v);
    }
    reply_body(c, a2a_rpc_error(c->id, code, message, data));
}

int a2a_store_fail(struct a2a_call *c, int rc)
{
    c->err = A2A_INTERNAL_ERROR;
    agentd_fail(&c->e, rc, NULL, NULL, "%s", agentd_err_msg(rc));
    c->err_data = json_pack("{s:s}", "code", agentd_err_code(rc));
    return rc;
}

/* ---- dispatch ---- */

/* The header that activated the UCP extension (A2A-Extensions in 1.0,
 * X-A2A-Extensions in 0.3; either is accepted), or NULL. */
static const char *ucp_activated(struct http_req *r)
{
    static const char *names[] = { "A2A-Extensions", "X-A2A-Extensions" };
    for (size_t i = 0; i < 2; i++) {
        const char *v = http_req_header(r, names[i]);
        if (v && strstr(v, A2A_UCP_EXTENSION_URI))
            return names[i];
    }
    return NULL;
}

static void h_rpc(struct http_req *r)
{
    struct a2a_call *c = calloc(1, sizeof *c);
    if (!c) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    c->r = r;
    c->loop = r->loop;
    snprintf(c->owner, sizeof c->owner, "%s", r->principal);
    c->ext_header = ucp_activated(r);
    json_error_t je;
    const char *ct = http_req_header(r, "Content-Type");
    /* the common body read in one pass (it nests no deeper than the limit
     * below); anything else, and every error's text, is jansson's */
    _Static_assert(JSONPARSE_MAX_DEPTH <= HTTP_JSON_MAX_DEPTH, "jsonparse reads too deep");
    c->body = r->body_len ? jsonparse_loadb(r->body, r->body_len) : NULL;
    /* a nesting bomb is not parsed at all: a parse error, as the JSON-RPC spec says */
    int too_deep = !c->body && http_json_depth(r->body, r->body_len) > HTTP_JSON_MAX_DEPTH;
    if (!c->body && r->body_len && !too_deep)
        c->body = json_loadb(r->body, r->body_len, 0, &je);
    struct a2a_rpc rpc = { 0 };
    if (ct && !strcasestr(ct, "json")) {
        a2a_reply_error(c, A2A_CONTENT_TYPE_NOT_SUPPORTED,
                    "the request must be JSON (Content-Type: application/json)", NULL);
        a2a_call_free(c);
        return;
    }
    if (!c->body) {
        if (too_deep)
            agentd_fail(&c->e, AGENTD_EMALFORMED, NULL, NULL,
                        "the JSON body nests deeper than %d levels", HTTP_JSON_MAX_DEPTH);
        else if (!r->body_len)
            agentd_fail(&c->e, AGENTD_EMALFORMED, NULL, NULL,
                        "a JSON-RPC request body is required");
        else
            agentd_fail(&c->e, AGENTD_EMALFORMED, NULL, NULL,
                        "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        a2a_reply_error(c, A2A_PARSE_ERROR, c->e.msg, NULL);
        a2a_call_free(c);
        return;
    }
    int bad = a2a_envelope_check(c->body, &rpc, &c->e);
    c->id = rpc.id ? json_incref((json_t *)rpc.id) : NULL;
    if (bad) {
        a2a_reply_error(c, A2A_INVALID_REQUEST, c->e.msg, NULL);
        a2a_call_free(c);
        return;
    }
    const char *vh = http_req_header(r, "A2A-Version");
    c->ver = a2a_version_parse(vh);
    if (c->ver < 0) {
        c->ver = A2A_V03;
        a2a_reply_error(c, A2A_VERSION_NOT_SUPPORTED,
                    "A2A-Version must be 1.0 (or absent for 0.3)",
                    json_pack("{s:[s,s]}", "supportedVersions", "1.0", "0.3"));
        a2a_call_free(c);
        return;
    }
    c->m = a2a_method_lookup(rpc.method, c->ver);
    http_req_note(r, "rpc_method", rpc.method);
    switch (c->m) {
    case A2A_M_UNKNOWN:
        agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "method %.80s does not exist in A2A %s",
                    rpc.method, c->ver == A2A_V10 ? "1.0" : "0.3 (send A2A-Version: 1.0 for 1.0 names)");
        a2a_reply_error(c, A2A_METHOD_NOT_FOUND, c->e.msg, NULL);
        break;
    case A2A_M_PUSH:
        a2a_reply_error(c, A2A_PUSH_NOT_SUPPORTED, "push notifications are not supported", NULL);
        break;
    case A2A_M_CARD: {
        json_t *card = json_loads(a2a_card_text(), 0, &je);
        a2a_reply_result(c, card);
        break;
    }
    case A2A_M_SEND:
    case A2A_M_STREAM:
        if (!c->ext_header) {
            a2a_reply_error(c, A2A_EXTENSION_REQUIRED,
                        "this agent requires the UCP extension: send the header "
                        "X-A2A-Extensions: " A2A_UCP_EXTENSION_URI,
                        json_pack("{s:[s]}", "requiredExtensions", A2A_UCP_EXTENSION_URI));
            break;
        }
        c->stream = c->m == A2A_M_STREAM;
        a2a_send_message(c);
        return;
    case A2A_M_GET:
    case A2A_M_CANCEL:
    case A2A_M_SUBSCRIBE:
        a2a_task_method(c);
        return;
    case A2A_M_LIST:
        a2a_list_tasks(c);
        return;
    }
    a2a_call_free(c);
}

int a2a_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev,
               const char *public_url, int production)
{
    a2a_front.production = production;
    a2a_front.ag = ag;
    a2a_front.st = st;
    a2a_front.ev = ev;
    a2a_front.public_url = public_url;
    a2a_stream_init(st, ev);
    int rc = a2a_card_routes(rt, public_url);
    return rc ? rc : router_add(rt, HTTP_POST, "/", h_rpc, NULL);
}
