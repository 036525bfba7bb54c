/* The authentication gate: every routed request passes here before its
 * handler. Public routes pass; an API key is checked against the store on
 * a worker (never cached: a revocation holds at once on every replica);
 * what fails is answered 401/403, counted and logged without the key. */
#include "auth/gate.h"
#include "auth/auth.h"
#include "auth/failaudit.h"
#include "auth/throttle.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/server.h"
#include "store/async.h"
#include "store/store.h"

struct auth_gate {
    struct store *st;
    int on;                        /* AGENTD_AUTH */
    char metrics_hash[65];         /* SHA-256 of AGENTD_METRICS_TOKEN; "" = open */
    auth_token_verifier verifier;  /* other bearer tokens (JWT), NULL = refused */
    void *verifier_ud;
};

static const char *const failure_names[] = { "missing", "invalid", "revoked", "scope", "metrics" };
#define NFAIL (sizeof failure_names / sizeof failure_names[0])
/* process-wide, as the registry is; set by auth_gate_new */
static struct metric_child *failures[NFAIL];
static struct metric_child *throttled;
/* the gate's throttle, for auth_gate_refuse (which the JWT verifier calls
 * without the gate); one gate per process */
static struct auth_throttle *_Atomic throttle;

struct auth_gate *auth_gate_new(const struct config *cfg, struct store *st)
{
    struct auth_gate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->st = st;
    g->on = cfg->auth;
    auth_failaudit_set_store(st);
    if (cfg->metrics_token)
        store_apikey_hash(cfg->metrics_token, g->metrics_hash);
    static const char *const labels[] = { "reason", NULL };
    struct metric *m = metric_register("agentd_auth_failures_total",
                                       "Requests refused by authentication, by reason (missing, "
                                       "invalid, revoked, scope, metrics)",
                                       METRIC_COUNTER, labels, NULL);
    for (size_t i = 0; m && i < NFAIL; i++) {
        const char *v[] = { failure_names[i] };
        failures[i] = metric_child(m, v);
    }
    struct metric *tm = metric_register("agentd_auth_throttled_total",
                                        "Requests refused 429 before their credentials were "
                                        "checked: their address spent its authentication-failure "
                                        "budget (AGENTD_AUTH_FAIL_LIMIT)",
                                        METRIC_COUNTER, NULL, NULL);
    throttled = tm ? metric_only(tm) : NULL;
    return g;
}

void auth_gate_free(struct auth_gate *g)
{
    if (g) {
        OPENSSL_cleanse(g->metrics_hash, sizeof g->metrics_hash);
        auth_failaudit_set_store(NULL);
        auth_throttle_free(atomic_exchange(&throttle, NULL));
    }
    free(g);
}

void auth_gate_set_verifier(struct auth_gate *g, auth_token_verifier v, void *ud)
{
    g->verifier = v;
    g->verifier_ud = ud;
}

void auth_gate_set_throttle(struct auth_gate *g, struct auth_throttle *t)
{
    (void)g;
    auth_throttle_free(atomic_exchange(&throttle, t));
}

/* The client's address without its port: the connection's peer, never a
 * forwarded header (X-Forwarded-For is the client's to forge). r->remote is
 * "addr:port" with IPv6 bare. */
static void client_addr(const struct http_req *r, char *out, size_t len)
{
    snprintf(out, len, "%s", r->remote[0] ? r->remote : "-");
    char *colon = strrchr(out, ':');
    if (colon && colon != out)
        *colon = '\0';
}

/* ---- answers ---- */

void auth_gate_refuse(struct http_req *r, enum auth_failure why, int token_given,
                      const char *key_id)
{
    if ((size_t)why < NFAIL && failures[why])
        metric_inc(failures[why]);
    struct auth_throttle *t = atomic_load(&throttle);
    if (t && token_given && (why == AUTH_FAIL_INVALID || why == AUTH_FAIL_REVOKED)) {
        char addr[64];
        client_addr(r, addr, sizeof addr);
        auth_throttle_fail(t, addr, clock_mono_ns());
    }
    http_req_note(r, "auth", failure_names[why]);
    auth_failaudit_note(r, failure_names[why]);
    /* the key id is public (keys list shows it); the secret is never logged */
    log_msg(LOG_WARN, r->request_id, "auth failure: reason=%s route=%s remote=%s key_id=%s",
            failure_names[why], r->route_label, r->remote[0] ? r->remote : "-",
            key_id && *key_id ? key_id : "-");
    if (why == AUTH_FAIL_SCOPE) {
        char scope[64], hdr[160];
        unsigned need = (unsigned)auth_route_need(r->route_label);
        auth_scopes_format(need, scope, sizeof scope);
        snprintf(hdr, sizeof hdr, "Bearer realm=\"agentd\", error=\"insufficient_scope\", scope=\"%s\"",
                 scope);
        http_set_header(r, "WWW-Authenticate", hdr);
        char msg[128];
        snprintf(msg, sizeof msg, "this key lacks the '%s' scope this route needs", scope);
        http_reply_error(r, 403, "forbidden", msg);
        return;
    }
    http_set_header(r, "WWW-Authenticate", token_given
                                               ? "Bearer realm=\"agentd\", error=\"invalid_token\""
                                               : "Bearer realm=\"agentd\"");
    const char *msg = why == AUTH_FAIL_MISSING
                          ? "credentials required: Authorization: Bearer <key> or X-API-Key: <key>"
                      : why == AUTH_FAIL_METRICS
                          ? "this route needs the metrics token: Authorization: Bearer <token>"
                          : "the credentials are not valid (unknown, revoked or malformed)";
    http_reply_error(r, 401, "unauthorized", msg);
}

void auth_gate_accept(struct http_req *r, const char *principal, unsigned scopes,
                      unsigned need)
{
    if ((scopes & need) != need) {
        auth_gate_refuse(r, AUTH_FAIL_SCOPE, 1, NULL);
        return;
    }
    snprintf(r->principal, sizeof r->principal, "%s", principal);
    http_req_proceed(r);
}

/* 429 before any lookup: r's address spent its failure budget. The key is
 * never read, so a valid key from that address waits too (it cannot be told
 * from a guess without the lookup this saves). */
static int refused_throttled(struct http_req *r)
{
    struct auth_throttle *t = atomic_load(&throttle);
    char addr[64];
    client_addr(r, addr, sizeof addr);
    int64_t wait = t ? auth_throttle_wait(t, addr, clock_mono_ns()) : 0;
    if (wait <= 0)
        return 0;
    if (throttled)
        metric_inc(throttled);
    http_req_note(r, "auth", "throttled");
    auth_failaudit_throttled(r);
    char v[32], msg[160];
    snprintf(v, sizeof v, "%lld", (long long)wait);
    http_set_header(r, "Retry-After", v);
    snprintf(msg, sizeof msg, "too many failed authentication attempts from this address; retry "
             "in %lld s", (long long)wait);
    http_reply_error(r, 429, "auth_throttled", msg);
    return 1;
}

/* ---- credentials ---- */

/* The token of "Authorization: Bearer <t>" (*bearer = 1) or of X-API-Key,
 * else NULL. The scheme is case-insensitive (RFC 9110 11.1). */
static const char *credentials(struct http_req *r, int *bearer)
{
    const char *a = http_req_header(r, "Authorization");
    *bearer = 0;
    if (a) {
        if (strncasecmp(a, "Bearer ", 7) != 0)
            return "";  /* another scheme: given, not valid */
        a += 7;
        while (*a == ' ')
            a++;
        *bearer = 1;
        return a;
    }
    return http_req_header(r, "X-API-Key");
}

static int metrics_token_ok(const struct auth_gate *g, struct http_req *r)
{
    int bearer;
    const char *t = credentials(r, &bearer);
    if (!t || !bearer)
        return 0;
    char hash[65];
    store_apikey_hash(t, hash);
    return CRYPTO_memcmp(hash, g->metrics_hash, 64) == 0;
}

/* ---- the key check, on a worker ---- */

struct check {
    struct http_req *r;
    char id[AUTH_KEY_ID_LEN + 1];
    char key[AUTH_KEY_LEN + 1];
    unsigned need;
    int verdict;                   /* -1 accepted, else an enum auth_failure */
    char principal[128];
    unsigned scopes;
};

static int op_check(struct store *st, void *arg)
{
    struct check *c = arg;
    struct store_apikey *row = NULL;
    int rc = store_apikey_get(st, c->id, &row);
    c->verdict = AUTH_FAIL_INVALID;
    if (rc == AGENTD_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    /* the secret first: a wrong secret on a revoked id says only "invalid" */
    if (auth_key_matches(row, c->key)) {
        struct agentd_error e;
        if (row->revoked_at)
            c->verdict = AUTH_FAIL_REVOKED;
        else if (auth_scopes_parse(row->scopes, &c->scopes, &e) == 0) {
            snprintf(c->principal, sizeof c->principal, "%s", row->principal_id);
            c->verdict = -1;
        }
    }
    store_apikey_free(row);
    return 0;
}

static void check_done(int status, void *arg)
{
    struct check *c = arg;
    struct http_req *r = c->r;
    OPENSSL_cleanse(c->key, sizeof c->key);
    if (status != 0) {
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, status, "the credentials could not be checked; try again");
    } else if (c->verdict < 0) {
        http_req_note(r, "key_id", c->id);
        auth_gate_accept(r, c->principal, c->scopes, c->need);
    } else {
        auth_gate_refuse(r, (enum auth_failure)c->verdict, 1, c->id);
    }
    free(c);
}

static void check_key(struct auth_gate *g, struct http_req *r, const char *key, const char *id,
                      unsigned need)
{
    struct check *c = calloc(1, sizeof *c);
    if (!c) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    c->r = r;
    c->need = need;
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->key, sizeof c->key, "%s", key);
    int rc = store_async(g->st, r->loop, op_check, c, check_done);
    if (rc != 0) {
        OPENSSL_cleanse(c->key, sizeof c->key);
        free(c);
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, rc, NULL);
    }
}

static void gate(struct http_req *r, void *ud)
{
    struct auth_gate *g = ud;
    int need = auth_route_need(r->route_label);
    if (need == AUTH_ROUTE_PUBLIC) {
        http_req_proceed(r);
        return;
    }
    if (need == AUTH_ROUTE_METRICS) {
        if (!g->metrics_hash[0] || metrics_token_ok(g, r))
            http_req_proceed(r);
        else
            auth_gate_refuse(r, AUTH_FAIL_METRICS, http_req_header(r, "Authorization") != NULL,
                             NULL);
        return;
    }
    if (!g->on) {
        http_req_proceed(r);
        return;
    }
    int bearer;
    const char *token = credentials(r, &bearer);
    if (!token || (!*token && !bearer && !http_req_header(r, "Authorization"))) {
        auth_gate_refuse(r, AUTH_FAIL_MISSING, 0, NULL);
        return;
    }
    if (refused_throttled(r))
        return;
    char id[AUTH_KEY_ID_LEN + 1];
    if (auth_key_id(token, id) == 0)
        check_key(g, r, token, id, (unsigned)need);
    else if (bearer && *token && g->verifier)
        g->verifier(r, token, (unsigned)need, g->verifier_ud);
    else
        auth_gate_refuse(r, AUTH_FAIL_INVALID, 1, NULL);
}

void auth_gate_install(struct auth_gate *g, struct http_server *srv)
{
    if (g && (g->on || g->metrics_hash[0]))
        http_server_set_gate(srv, gate, g);
}
