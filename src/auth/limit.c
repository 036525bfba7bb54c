/* Rate limits at the door: after authentication, each routed request is
 * charged to its principal's budget (the client address for "anonymous");
 * model-consuming calls also to a smaller turns budget. Refusals are 429. */
#include "auth/limit.h"
#include "auth/auth.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/ratelimit.h"
#include "http/server.h"

/* JSON-RPC "server error" range: the A2A front's code for a refused rate */
#define LIMIT_RPC_CODE (-32029)

struct auth_limit {
    struct ratelimit_backend *b;
    struct ratelimit_rule requests, turns; /* interval_ns 0 = off */
};

static const char *const bucket_names[] = { "requests", "turns" };
/* agentd_rate_limited_total{bucket}: process-wide, as the registry is; made
 * even with limits off, so the series exist (at 0) on every server */
static struct metric_child *refused[2];

int auth_limit_new(const struct config *cfg, struct ratelimit_backend *b, struct auth_limit **out)
{
    struct agentd_error e;
    struct auth_limit *l = NULL;
    *out = NULL;
    static const char *const labels[] = { "bucket", NULL };
    struct metric *m = metric_register("agentd_rate_limited_total",
                                       "Requests refused 429 by a rate limit, by budget "
                                       "(requests, turns)",
                                       METRIC_COUNTER, labels, NULL);
    for (int i = 0; m && i < 2; i++) {
        const char *v[] = { bucket_names[i] };
        refused[i] = metric_child(m, v);
    }
    struct ratelimit_rule req, turns;
    /* config_load validated both; a bad value here is treated as off */
    if (ratelimit_rule_parse(cfg->rate_limit, &req, &e) != 0)
        req.interval_ns = 0;
    if (ratelimit_rule_parse(cfg->rate_limit_turns, &turns, &e) != 0)
        turns.interval_ns = 0;
    if (!req.interval_ns && !turns.interval_ns) {
        if (b)
            b->free(b);
        return 0;
    }
    l = calloc(1, sizeof *l);
    if (l && !b)
        b = ratelimit_mem_new(100000);
    if (!l || !b) {
        free(l);
        if (b)
            b->free(b);
        return AGENTD_ENOMEM;
    }
    l->b = b;
    l->requests = req;
    l->turns = turns;
    *out = l;
    return 0;
}

void auth_limit_free(struct auth_limit *l)
{
    if (!l)
        return;
    l->b->free(l->b);
    free(l);
}

/* ---- one request's charge ---- */

struct charge {
    struct auth_limit *l;
    struct http_req *r;
    int a2a;          /* the A2A JSON-RPC route: refusals are JSON-RPC errors */
    int turn;         /* a model-consuming call: the turns budget too */
    json_t *rpc;      /* the A2A request, parsed (NULL when not needed or not JSON) */
    struct ratelimit_decision first;
    char key[160];
};

static void set_headers(struct http_req *r, const struct ratelimit_decision *d)
{
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, d->limit);
    http_set_header(r, "RateLimit-Limit", v);
    snprintf(v, sizeof v, "%" PRId64, d->remaining > 0 ? d->remaining : 0);
    http_set_header(r, "RateLimit-Remaining", v);
    snprintf(v, sizeof v, "%" PRId64, d->reset_s);
    http_set_header(r, "RateLimit-Reset", v);
}

static void charge_free(struct charge *c)
{
    json_decref(c->rpc);
    free(c);
}

static void refuse(struct charge *c, int bucket, const struct ratelimit_decision *d)
{
    struct http_req *r = c->r;
    /* unavailable: the shared limiter (Redis) cannot decide and the operator
     * chose closed; a 503 says "not you, us", unlike 429 */
    const char *code = d->unavailable ? "rate_limit_unavailable" : "rate_limited";
    int status = d->unavailable ? 503 : 429;
    if (refused[bucket] && !d->unavailable)
        metric_inc(refused[bucket]);
    http_req_note(r, code, bucket_names[bucket]);
    if (!d->unavailable)
        set_headers(r, d);
    char v[32], msg[160];
    snprintf(v, sizeof v, "%" PRId64, d->retry_after_s);
    http_set_header(r, "Retry-After", v);
    if (d->unavailable)
        snprintf(msg, sizeof msg, "the rate limiter is unavailable (%s budget); retry in %" PRId64
                 " s", bucket_names[bucket], d->retry_after_s);
    else
        snprintf(msg, sizeof msg, "rate limit exceeded (%s budget: %" PRId64 " at once); retry in %"
                 PRId64 " s", bucket_names[bucket], d->limit, d->retry_after_s);
    if (!c->a2a) {
        http_reply_error(r, status, code, msg);
        charge_free(c);
        return;
    }
    if (!c->rpc)
        c->rpc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *id = json_is_object(c->rpc) ? json_object_get(c->rpc, "id") : NULL;
    json_t *doc = json_pack("{s:s,s:O,s:{s:i,s:s,s:{s:s,s:s,s:I}}}", "jsonrpc", "2.0", "id",
                            id ? id : json_null(), "error", "code", LIMIT_RPC_CODE, "message",
                            msg, "data", "code", code, "request_id", r->request_id,
                            "retry_after", (json_int_t)d->retry_after_s);
    http_reply_json(r, status, doc);
    charge_free(c);
}

static void turns_done(const struct ratelimit_decision *d, void *ud)
{
    struct charge *c = ud;
    struct http_req *r = c->r;
    if (!d->allowed) {
        refuse(c, 1, d);
        return;
    }
    /* the headers speak for the budget nearer to running out */
    set_headers(r, c->l->requests.interval_ns && c->first.remaining < d->remaining ? &c->first : d);
    charge_free(c);
    http_req_proceed(r);
}

static void requests_done(const struct ratelimit_decision *d, void *ud)
{
    struct charge *c = ud;
    struct http_req *r = c->r;
    if (!d->allowed) {
        refuse(c, 0, d);
        return;
    }
    c->first = *d;
    if (c->turn) {
        c->l->b->check(c->l->b, c->key, bucket_names[1], &c->l->turns, 1, clock_mono_ns(),
                       turns_done, c);
        return;
    }
    set_headers(r, d);
    charge_free(c);
    http_req_proceed(r);
}

/* A2A methods that run a turn: 1.0 and 0.3 names */
static int a2a_is_turn(const json_t *rpc)
{
    const char *m = json_string_value(json_object_get(rpc, "method"));
    static const char *const turns[] = { "SendMessage", "SendStreamingMessage", "message/send",
                                         "message/stream" };
    for (size_t i = 0; m && i < sizeof turns / sizeof turns[0]; i++)
        if (strcmp(m, turns[i]) == 0)
            return 1;
    return 0;
}

/* Whose budget: the principal, or for "anonymous" the client address (the
 * peer of the connection: X-Forwarded-For is the client's to forge). */
static void budget_key(const struct http_req *r, char *key, size_t len)
{
    if (strcmp(r->principal, "anonymous") != 0) {
        snprintf(key, len, "p:%s", r->principal);
        return;
    }
    const char *colon = strrchr(r->remote, ':');
    int n = colon ? (int)(colon - r->remote) : (int)strlen(r->remote);
    snprintf(key, len, "ip:%.*s", n, r->remote);
}

static void step(struct http_req *r, void *ud)
{
    struct auth_limit *l = ud;
    int need = auth_route_need(r->route_label);
    if (need == AUTH_ROUTE_PUBLIC || need == AUTH_ROUTE_METRICS) { /* probes and discovery */
        http_req_proceed(r);
        return;
    }
    struct charge *c = calloc(1, sizeof *c);
    if (!c) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    c->l = l;
    c->r = r;
    c->a2a = r->method == HTTP_POST && strcmp(r->route_label, "/") == 0;
    if (l->turns.interval_ns) {
        if (c->a2a) {
            /* the method is in the body; a body that does not parse is the
             * front's to refuse, and costs no turn */
            c->rpc = json_loadb(r->body, r->body_len, 0, NULL);
            c->turn = json_is_object(c->rpc) && a2a_is_turn(c->rpc);
        } else {
            c->turn = r->method == HTTP_POST && strcmp(r->route_label, "/chat") == 0;
        }
    }
    budget_key(r, c->key, sizeof c->key);
    if (l->requests.interval_ns) {
        l->b->check(l->b, c->key, bucket_names[0], &l->requests, 1, clock_mono_ns(),
                    requests_done, c);
        return;
    }
    if (!c->turn) {
        charge_free(c);
        http_req_proceed(r);
        return;
    }
    l->b->check(l->b, c->key, bucket_names[1], &l->turns, 1, clock_mono_ns(), turns_done, c);
}

void auth_limit_install(struct auth_limit *l, struct http_server *srv)
{
    if (l)
        http_server_set_gate(srv, step, l);
}
