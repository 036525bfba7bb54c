/* UCP REST front. Each request: UCP-Agent parsed strictly and the version
 * checked (400 otherwise), the body parsed, capabilities negotiated with the
 * platform's profile (fetched and cached by api/profiles, on this loop),
 * then the shop operation runs on the worker pool and the reply is rendered
 * back on the loop. Checkouts, orders and Idempotency-Keys belong to the
 * authenticated principal (auth/gate.c; "anonymous" with AGENTD_AUTH=off);
 * the UCP-Agent profile is the platform's identity for negotiation only. */
#define _GNU_SOURCE
#include "api/ucp.h"
#include "api/idempotency.h"
#include "api/order_page.h"
#include "api/profiles.h"
#include "core/failpoint.h"
#include "api/testing.h"
#include "auth/sign.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/jsonparse.h"
#include "core/log.h"
#include "http/server.h"
#include "shop/shop.h"
#include "store/async.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    struct shop *shop;
    struct store *st;
    const struct config *cfg;
    const char *public_url; /* borrowed: outlives the routes */
    const struct sign_key *signing_key; /* borrowed; NULL: no signing_keys */
} F;

void ucp_set_signing_key(const struct sign_key *k) { F.signing_key = k; }

enum op { OP_CREATE, OP_GET, OP_UPDATE, OP_ADD_ITEM, OP_COMPLETE, OP_CANCEL, OP_ORDER, OP_SHIP,
          OP_ORDER_PUT };

struct job {
    struct http_req *r;
    enum op op;
    struct ucp_negotiated neg;
    char owner[UCP_PROFILE_URL_MAX + 1];
    char profile[UCP_PROFILE_URL_MAX + 1]; /* the platform's profile URL */
    struct profiles_wait wait;             /* while its profile is fetched */
    const char *id;         /* path parameter, borrowed from r */
    json_t *body;
    int64_t if_match;       /* PUT If-Match version, -1 = none */
    char op_key[128];       /* complete and create: "idem:" + the Idempotency-Key */
    struct checkout *co;
    char *saved;            /* co's members as the shop just saved them (shop_saved_take) */
    size_t saved_len;
    struct order *order;
    int declined;
    unsigned changes;       /* orders: ORDER_CHANGE_* (the shop queued their webhook) */
    struct agentd_error e;
};

/* ---- replies ---- */

static const char *severity_for(int status)
{
    return status == 409 || status == 402 ? "requires_buyer_review" : "recoverable";
}

static void ucp_error(struct http_req *r, int status, const char *code, const char *message)
{
    json_t *body = ucp_error_json(code, message, severity_for(status), NULL);
    json_object_set_new(body, "request_id", json_string(r->request_id));
    if (status == 503)
        http_set_header(r, "Retry-After", "1");
    http_reply_json(r, status, body);
}

static int http_status_for(int rc, const struct job *j)
{
    if (rc == AGENTD_EINVAL && j->declined)
        return 402;
    return agentd_err_http(rc);
}

static void reply_error(struct job *j, int rc)
{
    int status = http_status_for(rc, j);
    const char *code = j->e.code[0] ? j->e.code : agentd_err_code(rc);
    const char *msg = j->e.msg[0] ? j->e.msg : agentd_err_msg(rc);
    json_t *body = ucp_error_json(code, msg, severity_for(status), j->e.path[0] ? j->e.path : NULL);
    json_object_set_new(body, "ucp", ucp_response_meta_json(&j->neg));
    json_object_set_new(body, "request_id", json_string(j->r->request_id));
    if (status == 503)
        http_set_header(j->r, "Retry-After", "1");
    http_reply_json(j->r, status, body);
}

static void job_free(struct job *j)
{
    json_decref(j->body);
    checkout_free(j->co);
    free(j->saved);
    order_free(j->order);
    free(j);
}

/* ---- the work, on a worker ---- */

static int shop_call(struct job *j)
{
    switch (j->op) {
    case OP_CREATE: {
        int rc = shop_checkout_create(F.shop, j->owner, j->body, j->op_key[0] ? j->op_key : NULL,
                                      &j->co, NULL, &j->e);
        if (rc == 0)
            failpoint("checkout_created"); /* tests: stored, its key's answer not yet */
        return rc;
    }
    case OP_GET: return shop_checkout_get(F.shop, j->owner, j->id, &j->co, &j->e);
    case OP_UPDATE:
        return shop_checkout_update(F.shop, j->owner, j->id, j->body, j->if_match, &j->co, &j->e);
    case OP_ADD_ITEM: {
        const json_t *item = json_object_get(j->body, "item");
        const char *pid = json_string_value(json_object_get(item, "id"));
        const json_t *q = json_object_get(j->body, "quantity");
        if (!pid)
            return agentd_fail(&j->e, AGENTD_EINVAL, "missing", "$.item.id", "item.id is required");
        if (q && !json_is_integer(q))
            return agentd_fail(&j->e, AGENTD_EUNPROCESSABLE, "invalid", "$.quantity",
                                 "quantity must be an integer");
        return shop_checkout_add_item(F.shop, j->owner, j->id, NULL, pid,
                                      q ? json_integer_value(q) : 1, &j->co, NULL, &j->e);
    }
    case OP_CANCEL: return shop_checkout_cancel(F.shop, j->owner, j->id, &j->co, &j->e);
    case OP_COMPLETE:
        return shop_checkout_complete(F.shop, j->owner, j->id, j->op_key[0] ? j->op_key : NULL,
                                      json_object_get(j->body, "payment_data"), &j->co,
                                      &j->order, &j->declined, NULL, &j->e);
    case OP_ORDER: return shop_order_get(F.shop, j->owner, j->id, &j->order, &j->e);
    case OP_SHIP: return shop_order_mark_shipped(F.shop, j->id, &j->order, &j->changes, &j->e);
    case OP_ORDER_PUT:
        return shop_order_update(F.shop, j->owner, j->id, j->body, j->if_match, &j->order,
                                 &j->changes, &j->e);
    }
    return AGENTD_EINTERNAL;
}

static int run(struct store *st, void *arg)
{
    (void)st;
    struct job *j = arg;
    shop_audit_as(j->r->request_id, j->r->principal); /* the request lives until done */
    shop_webhook_as(j->neg.webhook_url); /* its order events' receiver, if any */
    shop_saved_reset();
    int rc = shop_call(j);
    if (rc == 0 && j->co)
        j->saved = shop_saved_take(j->co, &j->saved_len);
    else
        shop_saved_reset();
    shop_webhook_as(NULL);
    shop_audit_as(NULL, NULL);
    return rc;
}

/* The checkout as the shop just saved it, after the ucp member: what
 * checkout_to_json would give when every capability was negotiated (the
 * stored document keeps them all), without building it again. 1 if sent. */
static int reply_saved(struct job *j)
{
    if (!j->saved || j->neg.caps != UCP_CAP_ALL ||
        (j->neg.version[0] && strcmp(j->neg.version, UCP_VERSION) != 0))
        return 0;
    size_t mlen = 0;
    const char *m = ucp_response_meta_text(&j->neg, &mlen);
    size_t len = 7 + mlen + 1 + j->saved_len + 1; /* {"ucp":M,S} */
    char *text = m ? malloc(len + 1) : NULL;
    if (!text)
        return 0;
    memcpy(text, "{\"ucp\":", 7);
    memcpy(text + 7, m, mlen);
    text[7 + mlen] = ',';
    memcpy(text + 8 + mlen, j->saved, j->saved_len);
    text[len - 1] = '}';
    text[len] = 0;
    http_reply_raw(j->r, j->op == OP_CREATE ? 201 : 200, "application/json", text, len);
    free(text);
    return 1;
}

/* "\"%lld\"" without snprintf (two a flow): a version is never negative,
 * but one would be written as snprintf writes it. */
static void etag_text(int64_t v, char out[32])
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    out[o++] = '"';
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    out[o++] = '"';
    out[o] = 0;
}

static void done(int rc, void *arg)
{
    struct job *j = arg;
    if (rc != 0) {
        reply_error(j, rc);
    } else if (j->co) {
        char etag[32];
        etag_text(j->co->version, etag);
        http_set_header(j->r, "ETag", etag);
        if (!reply_saved(j))
            http_reply_json(j->r, j->op == OP_CREATE ? 201 : 200,
                            checkout_to_json(j->co, &j->neg));
    } else {
        char etag[32];
        etag_text(j->order->version, etag);
        http_set_header(j->r, "ETag", etag);
        http_reply_json(j->r, 200, order_to_json(j->order, &j->neg));
    }
    job_free(j);
}

/* ---- the prologue every UCP route shares ---- */

/* The UCP-Agent header parsed into agent and its version checked: 0, or
 * -1 with the 400 answered. */
static int agent_check(struct http_req *r, struct ucp_agent *agent)
{
    char joined[UCP_AGENT_HEADER_MAX + 2]; /* a cut join is still too long */
    const char *hdr = http_req_header_joined(r, "UCP-Agent", joined, sizeof joined);
    struct agentd_error why = { 0 };
    if (!hdr) {
        ucp_error(r, 400, "missing", "the UCP-Agent header is required, e.g. UCP-Agent: profile=\"https://platform.example/profile\"");
        return -1;
    }
    unsigned flags = F.cfg->env == CONFIG_ENV_PRODUCTION ? 0 : UCP_AGENT_ALLOW_HTTP;
    int bad = ucp_agent_parse(hdr, flags, agent, &why) != 0;
    /* Production takes http:// profiles only from hosts the operator listed
     * in AGENTD_PROFILE_ALLOWLIST (a platform on the same host or network). */
    if (bad && !flags && ucp_agent_parse(hdr, UCP_AGENT_ALLOW_HTTP, agent, NULL) == 0 &&
        profiles_allowlisted(profiles_default(), agent->profile))
        bad = 0;
    if (bad) {
        char msg[320];
        snprintf(msg, sizeof msg, "invalid UCP-Agent header: %.255s", why.msg);
        ucp_error(r, 400, "invalid", msg);
        return -1;
    }
    struct agentd_error ve = { 0 };
    if (ucp_version_check(agent->version, &ve) != 0) {
        ucp_error(r, 400, ve.code[0] ? ve.code : "version_unsupported", ve.msg);
        return -1;
    }
    return 0;
}

static struct job *begin(struct http_req *r, enum op op, int needs_body)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        ucp_error(r, 503, "out_of_memory", "out of memory");
        return NULL;
    }
    j->r = r;
    j->op = op;
    ucp_negotiated_all(&j->neg);
    struct ucp_agent agent;
    struct agentd_error why = { 0 };
    if (agent_check(r, &agent) != 0) {
        free(j);
        return NULL;
    }
    snprintf(j->profile, sizeof j->profile, "%s", agent.profile);
    /* The owner is who authenticated, never a header the client picks: one
     * principal's checkouts are the same over UCP, /chat and A2A. */
    snprintf(j->owner, sizeof j->owner, "%s", r->principal);
    j->id = route_param(&r->match, "id");
    j->if_match = -1;
    const char *ik = http_req_header(r, "Idempotency-Key");
    /* complete and create carry the key into the shop: a retry that takes
     * over a dead process's claim carries a completion on, and finds the
     * checkout a create already made (its id derives from owner and key) */
    if ((op == OP_COMPLETE || op == OP_CREATE) && ik && idem_key_valid(ik))
        snprintf(j->op_key, sizeof j->op_key, "idem:%.120s", ik);
    const char *im = http_req_header(r, "If-Match");
    if (im && (op == OP_UPDATE || op == OP_ORDER_PUT)) {
        char *end = NULL;
        const char *p = im[0] == 'W' && im[1] == '/' ? im + 2 : im;
        if (*p == '"')
            p++;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || (*end && *end != '"')) {
            ucp_error(r, 400, "invalid", "If-Match must be an ETag from a previous response");
            free(j);
            return NULL;
        }
        j->if_match = v;
    }
    int notjson = needs_body ? http_req_check_json(r, &why) : 0;
    if (notjson != 0) {
        ucp_error(r, agentd_err_http(notjson),
                  notjson == AGENTD_EMEDIATYPE ? "unsupported_media_type" : "invalid", why.msg);
        free(j);
        return NULL;
    }
    if (needs_body) {
        json_error_t je;
        /* the common body read in one pass (http_req_check_json refused any
         * nesting deeper than jsonparse reads); anything else, and every
         * error's text, is jansson's */
        _Static_assert(JSONPARSE_MAX_DEPTH <= HTTP_JSON_MAX_DEPTH, "jsonparse reads too deep");
        j->body = r->body_len ? jsonparse_loadb(r->body, r->body_len) : NULL;
        if (!j->body && r->body_len)
            j->body = json_loadb(r->body, r->body_len, 0, &je);
        if (!json_is_object(j->body)) {
            char msg[300];
            if (!r->body_len)
                snprintf(msg, sizeof msg, "a JSON object body is required");
            else if (!j->body)
                snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d: %s", je.line, je.column,
                         je.text);
            else
                snprintf(msg, sizeof msg, "the body must be a JSON object");
            ucp_error(r, 400, "invalid", msg);
            job_free(j);
            return NULL;
        }
    }
    return j;
}

static void submit(struct job *j)
{
    int rc = store_async(F.st, j->r->loop, run, j, done);
    if (rc != 0) {
        j->e.code[0] = 0;
        reply_error(j, rc);
        job_free(j);
    }
}

/* ---- negotiation: the platform's profile first, then the work ---- */

static void job_abort(struct http_req *r, void *ud)
{
    (void)r;
    struct job *j = ud;
    profiles_cancel(&j->wait);
    job_free(j);
}

static void proceed(struct job *j, const struct profiles_result *res)
{
    j->neg = res->neg;
    if (!(j->neg.caps & UCP_CAP_CHECKOUT)) {
        /* a guard: ucp_negotiate() always implies checkout (these are its
         * endpoints). Nothing would be active, so no ucp object. */
        ucp_error(j->r, 400, "capabilities_incompatible",
                  "the platform profile shares no capability with this business: it must list "
                  UCP_CAP_CHECKOUT_NAME " in ucp.capabilities");
        job_free(j);
        return;
    }
    /* An extension the platform did not negotiate is inactive both ways:
     * its request fields are ignored as its response fields are omitted. */
    if (j->body && !(j->neg.caps & UCP_CAP_FULFILLMENT) && j->op != OP_ORDER_PUT)
        json_object_del(j->body, "fulfillment"); /* an order's own fulfillment is no extension */
    if (j->body && !(j->neg.caps & UCP_CAP_DISCOUNT))
        json_object_del(j->body, "discounts");
    if (j->body && !(j->neg.caps & UCP_CAP_BUYER_CONSENT))
        json_object_del(json_object_get(j->body, "buyer"), "consent");
    submit(j);
}

static void on_profile(const struct profiles_result *res, void *ud)
{
    struct job *j = ud;
    j->r->on_abort = NULL;
    j->r->abort_ud = NULL;
    proceed(j, res);
}

/* Resolves the platform's profile (cache, or a fetch on this loop), then
 * runs the job. A request still waiting at shutdown is freed by job_abort. */
static void negotiate(struct job *j)
{
    struct profiles_result res;
    int rc = profiles_resolve(profiles_default(), j->r->loop, j->profile, &res, &j->wait,
                              on_profile, j);
    if (rc == PROFILES_PENDING) {
        j->r->on_abort = job_abort;
        j->r->abort_ud = j;
        return;
    }
    proceed(j, &res);
}

/* The request parsed for op, run once the platform's profile is known. */
static void run_op(struct http_req *r, enum op op, int needs_body)
{
    struct job *j = begin(r, op, needs_body);
    if (j)
        negotiate(j);
}

/* The inner handlers run after the idempotency claim (if any). */
static void create_inner(struct http_req *r) { run_op(r, OP_CREATE, 1); }
static void update_inner(struct http_req *r) { run_op(r, OP_UPDATE, 1); }
static void add_item_inner(struct http_req *r) { run_op(r, OP_ADD_ITEM, 1); }
static void complete_inner(struct http_req *r) { run_op(r, OP_COMPLETE, 1); }
static void cancel_inner(struct http_req *r) { run_op(r, OP_CANCEL, 0); }
static void order_put_inner(struct http_req *r) { run_op(r, OP_ORDER_PUT, 1); }

/* Mutations: the UCP-Agent must be valid before the key is claimed (a bad
 * header is answered, not stored); the key is scoped by the principal. */
static void with_idempotency(struct http_req *r, http_handler inner)
{
    /* only the header and the caller: no job is built for the check */
    struct ucp_agent agent;
    if (agent_check(r, &agent) != 0)
        return;
    char owner[sizeof ((struct job *)0)->owner];
    snprintf(owner, sizeof owner, "%s", r->principal);
    idem_handle(r, F.st, owner, inner, ucp_error, IDEM_TAKEOVER);
}

static void h_create(struct http_req *r) { with_idempotency(r, create_inner); }
static void h_update(struct http_req *r) { with_idempotency(r, update_inner); }
static void h_complete(struct http_req *r) { with_idempotency(r, complete_inner); }
static void h_add_item(struct http_req *r) { with_idempotency(r, add_item_inner); }
static void h_cancel(struct http_req *r) { with_idempotency(r, cancel_inner); }
static void h_order_put(struct http_req *r) { with_idempotency(r, order_put_inner); }

static void h_get(struct http_req *r) { run_op(r, OP_GET, 0); }
static void h_order(struct http_req *r) { run_op(r, OP_ORDER, 0); }

static void h_simulate_shipping(struct http_req *r)
{
    if (!testing_authorized(r))
        return;
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        ucp_error(r, 503, "out_of_memory", "out of memory");
        return;
    }
    j->r = r;
    j->op = OP_SHIP;
    ucp_negotiated_all(&j->neg);
    j->id = route_param(&r->match, "order_id");
    submit(j);
}

/* ---- discovery ---- */

static void h_profile(struct http_req *r)
{
    char endpoint[512], card[512];
    snprintf(endpoint, sizeof endpoint, "%s", F.public_url);
    snprintf(card, sizeof card, "%s/.well-known/agent-card.json", F.public_url);
    json_t *service = json_pack(
        "{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "version", UCP_VERSION, "spec",
        "https://ucp.dev/specification/overview", "rest", "schema",
        "https://ucp.dev/services/shopping/rest.openapi.json", "endpoint", endpoint, "a2a",
        "endpoint", card);
    json_t *body = json_pack("{s:{s:s,s:{s:o},s:o},s:{s:O}}", "ucp", "version", UCP_VERSION,
                             "services", "dev.ucp.shopping", service, "capabilities",
                             ucp_profile_capabilities_json(), "payment", "handlers",
                             shop_payment_handlers(F.shop));
    /* UCP signing_keys: how a platform verifies our webhooks' signatures */
    json_t *jwk = F.signing_key ? sign_key_public_jwk(F.signing_key) : NULL;
    if (body && jwk)
        json_object_set_new(body, "signing_keys", json_pack("[o]", jwk));
    http_set_header(r, "Cache-Control", "public, max-age=300");
    http_reply_json(r, 200, body);
}

int ucp_routes(struct router *rt, struct shop *shop, struct store *st, const struct config *cfg,
               const char *public_url)
{
    F.shop = shop;
    F.st = st;
    F.cfg = cfg;
    F.public_url = public_url;
    static const struct router_route routes[] = {
        { HTTP_GET, "/.well-known/ucp", h_profile },
        { HTTP_POST, "/checkout-sessions", h_create },
        { HTTP_GET, "/checkout-sessions/{id}", h_get },
        { HTTP_PUT, "/checkout-sessions/{id}", h_update },
        { HTTP_POST, "/checkout-sessions/{id}/complete", h_complete },
        { HTTP_POST, "/checkout-sessions/{id}/line-items", h_add_item },
        { HTTP_POST, "/checkout-sessions/{id}/cancel", h_cancel },
        { HTTP_GET, "/orders/{id}", h_order },
        { HTTP_PUT, "/orders/{id}", h_order_put },
    };
    int rc = router_add_table(rt, routes, sizeof routes / sizeof routes[0], NULL);
    if (rc == 0)
        rc = order_page_routes(rt, shop, st); /* the permalink_url's page */
    if (rc == 0 && cfg->simulation_secret)
        rc = router_add(rt, HTTP_POST, "/testing/simulate-shipping/{order_id}",
                        h_simulate_shipping, NULL);
    return rc;
}
