/* The outbox deliverer (api/outbox.h): a timer on one loop claims due rows
 * on the worker pool, sends each over http_client (signed, SSRF-guarded),
 * and finishes its claim on the worker pool with the attempt's outcome. */
#define _GNU_SOURCE
#include "api/outbox.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "auth/sign.h"
#include "core/clock.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/netguard.h"
#include "core/reqid.h"
#include "core/trace.h"
#include "http/client.h"
#include "store/async.h"
#include "store/store.h"
#include "version.h"

#define OUTBOX_KIND "webhook"
#define MAX_REPLY (64 * 1024) /* a receiver's answer is read and dropped */

struct send;

struct outbox {
    struct store *st;
    const struct sign_key *key;
    char instance[192];
    char *lock_dir; /* NULL: unknown */
    int ticks;
    atomic_int adopt_soon; /* a replica just died: release its claims at the next tick */
    char *ucp_agent; /* "UCP-Agent: profile=..." */
    struct outbox_options o;
    struct netguard_allowlist allow;
    /* loop-thread state */
    struct loop *loop;
    struct http_client *cl;
    struct event *timer;
    struct send *sends; /* in flight */
    int inflight;
    int claiming;
    int stopped;
    uint64_t rnd;
    atomic_llong depth; /* pending rows, as last counted by a claim */
    struct metric_child *delivered, *failed, *dead, *dead_total;
};

/* One attempt at one row. */
struct send {
    struct send *prev, *next;
    struct outbox *ob;
    struct store_outbox row;
    CURL *easy;
    struct curl_slist *hdrs;
    size_t got;
    int allowlisted;
    char refused[160];
    /* the finish job's arguments */
    char state[16];
    int64_t next_at;
    char last_error[200];
    struct trace_span *span; /* this attempt's client span; NULL when tracing is off */
    char tracestate[TRACESTATE_MAX + 1]; /* passed through from the queuing request, or "" */
};

void outbox_options_default(struct outbox_options *o)
{
    *o = (struct outbox_options){ .poll_ms = 500, .timeout_ms = 10000, .backoff_min_ms = 1000,
                                  .backoff_max_ms = 600000, .max_attempts = 20,
                                  .max_age_ms = 24LL * 3600 * 1000, .max_inflight = 16 };
}

int64_t outbox_backoff_ms(const struct outbox_options *o, int n, double r)
{
    int64_t d = o->backoff_min_ms;
    for (int i = 1; i < n && d < o->backoff_max_ms; i++)
        d *= 2;
    if (d > o->backoff_max_ms)
        d = o->backoff_max_ms;
    return d - (int64_t)((double)(d / 2) * r);
}

static double depth_value(void *ud)
{
    struct outbox *ob = ud;
    return (double)atomic_load(&ob->depth);
}

static void metrics_init(struct outbox *ob)
{
    static const char *const labels[] = { "outcome", NULL };
    struct metric *m = metric_register("agentd_webhook_deliveries_total",
                                       "Webhook delivery attempts by outcome: delivered (2xx), "
                                       "failed (retried later), dead (given up).",
                                       METRIC_COUNTER, labels, NULL);
    ob->delivered = metric_child(m, (const char *const[]){ "delivered" });
    ob->failed = metric_child(m, (const char *const[]){ "failed" });
    ob->dead = metric_child(m, (const char *const[]){ "dead" });
    ob->dead_total = metric_only(metric_register("agentd_webhook_dead_total",
                                                 "Webhook events given up after their attempts "
                                                 "or age ran out (dead-lettered in the outbox).",
                                                 METRIC_COUNTER, NULL, NULL));
    metric_register_fn("agentd_outbox_depth", "Outbox events waiting to be delivered (as last "
                       "counted, every poll).", METRIC_GAUGE, depth_value, ob);
}

struct outbox *outbox_new(struct store *st, const struct sign_key *key, const char *instance,
                          const char *lock_dir, const char *allowlist, const char *public_url,
                          const struct outbox_options *o, struct agentd_error *e)
{
    struct outbox *ob = calloc(1, sizeof *ob);
    if (!ob) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        return NULL;
    }
    ob->st = st;
    ob->key = key;
    snprintf(ob->instance, sizeof ob->instance, "%s", instance);
    if (o)
        ob->o = *o;
    else
        outbox_options_default(&ob->o);
    if (asprintf(&ob->ucp_agent, "UCP-Agent: profile=\"%s/.well-known/ucp\"", public_url) < 0)
        ob->ucp_agent = NULL;
    int bad = netguard_allowlist_parse(allowlist, &ob->allow, NULL, NULL);
    if (lock_dir && !(ob->lock_dir = strdup(lock_dir)))
        bad = AGENTD_ENOMEM;
    if (!ob->ucp_agent || bad < 0) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        outbox_free(ob);
        return NULL;
    }
    random_bytes(&ob->rnd, sizeof ob->rnd);
    ob->rnd |= 1;
    metrics_init(ob);
    return ob;
}

/* xorshift64*: jitter only, no secrecy needed. In [0, 1). */
static double rnd01(struct outbox *ob)
{
    ob->rnd ^= ob->rnd >> 12;
    ob->rnd ^= ob->rnd << 25;
    ob->rnd ^= ob->rnd >> 27;
    return (double)((ob->rnd * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void send_free(struct send *s)
{
    if (!s)
        return;
    if (s->easy)
        curl_easy_cleanup(s->easy);
    curl_slist_free_all(s->hdrs);
    free(s->row.id);
    free(s->row.kind);
    free(s->row.target);
    free(s->row.headers);
    free(s->row.body);
    free(s->row.state);
    free(s->row.last_error);
    free(s->row.claimed_by);
    free(s->span);
    free(s);
}

static void unlink_send(struct send *s)
{
    struct outbox *ob = s->ob;
    if (s->prev)
        s->prev->next = s->next;
    else if (ob->sends == s)
        ob->sends = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    ob->inflight--;
}

/* ---- finishing a claim (worker pool) ---- */

static int finish_op(struct store *st, void *arg)
{
    struct send *s = arg;
    return store_outbox_finish(st, s->row.id, s->ob->instance, s->state, s->next_at,
                               s->last_error[0] ? s->last_error : NULL);
}

static void finish_done(int status, void *arg)
{
    struct send *s = arg;
    if (status && status != AGENTD_ECONFLICT && !s->ob->stopped)
        log_msg(LOG_WARN, NULL, "outbox: event %s: its attempt could not be recorded (%s); "
                "it is retried when its claim expires", s->row.id, agentd_err_msg(status));
    send_free(s);
}

/* The attempt's outcome decides the row's next state. On the loop. */
static void attempt_end(struct send *s, long http_status, const char *error)
{
    struct outbox *ob = s->ob;
    int64_t now = clock_wall_ms();
    int n = (int)s->row.attempts + 1;
    if (http_status >= 200 && http_status < 300) {
        snprintf(s->state, sizeof s->state, "%s", STORE_OUTBOX_DELIVERED);
        metric_inc(ob->delivered);
    } else if (n >= ob->o.max_attempts || now - s->row.created_at >= ob->o.max_age_ms) {
        snprintf(s->state, sizeof s->state, "%s", STORE_OUTBOX_DEAD);
        metric_inc(ob->dead);
        metric_inc(ob->dead_total);
        log_msg(LOG_WARN, NULL, "outbox: event %s is dead after %d attempts: %s", s->row.id, n,
                error);
    } else {
        snprintf(s->state, sizeof s->state, "%s", STORE_OUTBOX_PENDING);
        s->next_at = now + outbox_backoff_ms(&ob->o, n, rnd01(ob));
        metric_inc(ob->failed);
        log_msg(LOG_INFO, NULL, "outbox: event %s attempt %d failed (%s); next in %lld ms",
                s->row.id, n, error, (long long)(s->next_at - now));
    }
    if (error)
        snprintf(s->last_error, sizeof s->last_error, "%s", error);
    if (store_async(ob->st, ob->loop, finish_op, s, finish_done) != 0)
        send_free(s); /* the claim runs out and the row is sent again */
}

static void attempt_done(CURL *easy, CURLcode result, struct send *s);

/* An attempt's span: a child of the trace context the event was queued in
 * (its row's stored traceparent), or a root for an event without one. */
static void span_begin(struct send *s)
{
    if (!trace_enabled() || !(s->span = malloc(sizeof *s->span)))
        return;
    json_t *h = s->row.headers ? json_loads(s->row.headers, 0, NULL) : NULL;
    struct trace_ctx parent;
    int have = trace_parse_traceparent(
                   json_string_value(json_object_get(h, "traceparent")), &parent) == 0;
    trace_span_start(s->span, "POST webhook", TRACE_CLIENT, have ? &parent : NULL);
    const char *ts = json_string_value(json_object_get(h, "tracestate"));
    if (have && ts && trace_state_remember(&s->span->ctx, ts) && s->span->ctx.valid)
        snprintf(s->tracestate, sizeof s->tracestate, "%s", ts); /* checked by remember */
    json_decref(h);
    trace_attr_str(s->span, "http.request.method", "POST");
    trace_attr_str(s->span, "agentd.webhook.event_id", s->row.id);
    trace_attr_int(s->span, "agentd.webhook.attempt", s->row.attempts + 1);
}

static void span_end(struct send *s, long code)
{
    if (code)
        trace_attr_int(s->span, "http.response.status_code", code);
    if (code < 200 || code >= 300)
        trace_span_set_status(s->span, TRACE_STATUS_ERROR);
    trace_span_end(s->span);
}

static void on_done(CURL *easy, CURLcode result, void *ud)
{
    struct send *s = ud;
    /* the outcome's log lines and its finish job belong to the attempt's trace */
    struct trace_ctx prev = trace_enter(s->span ? &s->span->ctx : NULL);
    attempt_done(easy, result, s);
    trace_leave(prev);
}

static void attempt_done(CURL *easy, CURLcode result, struct send *s)
{
    unlink_send(s);
    long code = 0;
    char why[200];
    if (result == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
        snprintf(why, sizeof why, "HTTP %ld", code);
    } else if (s->refused[0]) {
        snprintf(why, sizeof why, "refused: %s", s->refused);
    } else {
        snprintf(why, sizeof why, "%s", curl_easy_strerror(result));
    }
    curl_easy_cleanup(s->easy);
    s->easy = NULL;
    if (s->span)
        span_end(s, code);
    attempt_end(s, code, code >= 200 && code < 300 ? NULL : why);
}

/* ---- one attempt (loop) ---- */

/* The SSRF guard at connect time, after DNS (rebinding included). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct send *s = ud;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!s->allowlisted) {
        enum netguard_class c = netguard_classify(&a->addr, a->addrlen);
        if (c != NETGUARD_PUBLIC) {
            snprintf(s->refused, sizeof s->refused,
                     "a %s address, not on AGENTD_PROFILE_ALLOWLIST", netguard_class_name(c));
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t on_reply(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data;
    struct send *s = ud;
    size_t n = size * nmemb;
    s->got += n;
    return s->got > MAX_REPLY ? 0 : n; /* the status is what counts */
}

/* The target's host and port on the allow-list? 0 also when unparsable
 * (then curl refuses it anyway). */
static int target_allowlisted(struct outbox *ob, const char *url)
{
    CURLU *cu = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int ok = cu && curl_url_set(cu, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(cu, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(cu, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             curl_url_get(cu, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
    int listed = ok && netguard_allowlist_match(&ob->allow, host, atoi(port));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(cu);
    return listed;
}

static int headers_build(struct send *s)
{
    char *sig = NULL, *h1 = NULL, *h2 = NULL;
    int rc = sign_detached(s->ob->key, s->row.body, strlen(s->row.body), &sig);
    if (rc)
        return rc;
    struct curl_slist *l = NULL;
    char tp[TRACEPARENT_LEN + 16] = "traceparent: ", ts[TRACESTATE_MAX + 16];
    int traced = s->span && s->span->ctx.valid; /* W3C trace context: the receiver joins our trace */
    if (traced)
        trace_format_traceparent(&s->span->ctx, tp + 13);
    int stated = traced && s->tracestate[0];
    snprintf(ts, sizeof ts, "tracestate: %s", s->tracestate);
    if (asprintf(&h1, "Request-Signature: %s", sig) >= 0 &&
        asprintf(&h2, "Webhook-Id: %s", s->row.id) >= 0) {
        const char *const hs[] = { "Content-Type: application/json", h1, h2, s->ob->ucp_agent,
                                   "Expect:", tp, ts };
        for (size_t i = 0; i < sizeof hs / sizeof hs[0] - !stated - !traced; i++) {
            struct curl_slist *n = curl_slist_append(l, hs[i]);
            if (!n) {
                rc = AGENTD_ENOMEM;
                break;
            }
            l = n;
        }
    } else {
        rc = AGENTD_ENOMEM;
    }
    free(sig);
    free(h1);
    free(h2);
    if (rc) {
        curl_slist_free_all(l);
        return rc;
    }
    s->hdrs = l;
    return 0;
}

static void send_start(struct outbox *ob, struct send *s)
{
    s->ob = ob;
    s->allowlisted = target_allowlisted(ob, s->row.target);
    span_begin(s);
    CURL *c = s->easy = curl_easy_init();
    int bad = !c || headers_build(s) != 0;
    if (!bad) {
        bad |= curl_easy_setopt(c, CURLOPT_URL, s->row.target) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
        bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#else
        bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) !=
               CURLE_OK;
#endif
        /* no redirects: a 3xx is a failure, so no second URL escapes the guard */
        bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->row.body) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t)strlen(s->row.body)) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->hdrs) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ob->o.timeout_ms) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)ob->o.timeout_ms) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
        /* a proxy would make the guard see the proxy, not the receiver */
        bad |= curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, s) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, s) != CURLE_OK;
    }
    if (bad || http_client_add(ob->cl, c, on_done, s) != 0) {
        if (s->easy)
            curl_easy_cleanup(s->easy);
        s->easy = NULL;
        attempt_end(s, 0, "the request could not be started");
        return;
    }
    s->next = ob->sends;
    if (ob->sends)
        ob->sends->prev = s;
    ob->sends = s;
    ob->inflight++;
}

/* ---- claiming due rows ---- */

struct claim {
    struct outbox *ob;
    int limit;
    int adopt; /* also release the claims of dead instances first */
    struct store_outbox *rows;
    size_t n;
};

/* Claims held by a process that died (its lock file free, its pid gone
 * on this host, or its heartbeat stopped) are given back now instead of after their lease: a
 * restart delivers what the killed process had in flight at once. */
static void release_dead(struct outbox *ob, struct store *st)
{
    char **ids = NULL;
    size_t n = 0;
    if (store_outbox_holders(st, &ids, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        /* the lease is the fallback the claim query applies itself */
        if (strcmp(ids[i], ob->instance) != 0 &&
            instance_orphaned(ob->instance, ids[i], 0, INT64_MAX, instance_probe,
                              (void *)ob->lock_dir, instance_pid_dead) == 1) {
            int k = 0;
            if (store_outbox_release(st, ids[i], &k) == 0 && k > 0)
                log_msg(LOG_INFO, NULL, "outbox: %d events claimed by a dead process taken over",
                        k);
        }
    }
    store_strings_free(ids, n);
}

static int claim_op(struct store *st, void *arg)
{
    struct claim *c = arg;
    if (c->adopt)
        release_dead(c->ob, st);
    /* a claim outlives the longest attempt, so it never runs out under a
     * send in flight; when its process dies the row is free after it */
    int64_t lease = c->ob->o.timeout_ms + 5000;
    int rc = store_outbox_claim(st, OUTBOX_KIND, c->ob->instance, lease, c->limit, &c->rows, &c->n);
    int64_t depth;
    if (store_outbox_depth(st, OUTBOX_KIND, &depth) == 0)
        atomic_store(&c->ob->depth, depth);
    return rc;
}

static void claim_done(int status, void *arg)
{
    struct claim *c = arg;
    struct outbox *ob = c->ob;
    ob->claiming = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (ob->stopped) { /* outbox_stop gives the claims back */
            free(c->rows[i].id);
            free(c->rows[i].kind);
            free(c->rows[i].target);
            free(c->rows[i].headers);
            free(c->rows[i].body);
            free(c->rows[i].state);
            free(c->rows[i].last_error);
            free(c->rows[i].claimed_by);
            continue;
        }
        struct send *s = calloc(1, sizeof *s);
        if (!s) { /* its claim runs out; sent later */
            struct store_outbox *r = &c->rows[i];
            free(r->id), free(r->kind), free(r->target), free(r->headers), free(r->body);
            free(r->state), free(r->last_error), free(r->claimed_by);
            continue;
        }
        s->row = c->rows[i]; /* moved */
        send_start(ob, s);
    }
    free(c->rows); /* the strings moved or were freed above */
    if (status && status != AGENTD_EBUSY && !ob->stopped)
        log_msg(LOG_WARN, NULL, "outbox: claiming due events failed: %s", agentd_err_msg(status));
    free(c);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct outbox *ob = arg;
    if (ob->stopped)
        return;
    int room = ob->o.max_inflight - ob->inflight;
    if (!ob->claiming && room > 0) {
        struct claim *c = calloc(1, sizeof *c);
        if (c) {
            c->ob = ob;
            c->limit = room;
            /* at start, then every 10 s or so, and when a replica just died */
            c->adopt = ob->ticks % 20 == 0 || atomic_exchange(&ob->adopt_soon, 0);
            ob->ticks++;
            ob->claiming = 1;
            if (store_async(ob->st, ob->loop, claim_op, c, claim_done) != 0) {
                ob->claiming = 0;
                free(c);
            }
        }
    }
    struct timeval tv = { .tv_sec = ob->o.poll_ms / 1000,
                          .tv_usec = (ob->o.poll_ms % 1000) * 1000 };
    evtimer_add(ob->timer, &tv);
}

static void start_here(void *arg)
{
    struct outbox *ob = arg;
    ob->cl = http_client_new(ob->loop);
    ob->timer = ob->cl ? evtimer_new(loop_base(ob->loop), tick, ob) : NULL;
    if (!ob->timer) {
        log_msg(LOG_ERROR, NULL, "outbox: out of memory: webhooks are not delivered by this "
                "process");
        return;
    }
    tick(-1, 0, ob); /* at once: rows left by a previous run go out now */
}

void outbox_adopt_soon(struct outbox *ob)
{
    if (ob)
        atomic_store(&ob->adopt_soon, 1);
}

int outbox_start(struct outbox *ob, struct loop *loop)
{
    ob->loop = loop;
    return loop_post(loop, start_here, ob);
}

void outbox_stop(struct outbox *ob)
{
    if (!ob || ob->stopped)
        return;
    ob->stopped = 1;
    while (ob->sends) {
        struct send *s = ob->sends;
        unlink_send(s);
        http_client_remove(ob->cl, s->easy);
        send_free(s);
    }
    if (ob->timer)
        event_free(ob->timer);
    ob->timer = NULL;
    http_client_free(ob->cl);
    ob->cl = NULL;
    int n = 0;
    if (store_outbox_release(ob->st, ob->instance, &n) == 0 && n > 0)
        log_msg(LOG_INFO, NULL, "outbox: %d events in flight given back for the next start", n);
}

void outbox_free(struct outbox *ob)
{
    if (!ob)
        return;
    outbox_stop(ob);
    netguard_allowlist_free(&ob->allow);
    free(ob->ucp_agent);
    free(ob->lock_dir);
    free(ob);
}
