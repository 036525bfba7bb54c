/* HTTP server on libevent: per-thread event_base + evhttp + SO_REUSEPORT
 * listener, every connection behind the guard filter (guard.c). Each request
 * becomes a struct http_req: routed, handed to its handler, and finished
 * exactly once by a reply, which writes the access line and the metrics. */
#define _GNU_SOURCE
#include "http/server.h"
#include "http/guard.h"
#include "http/gzip.h"
#include "http/header_lines.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/tls.h"
#include "core/trace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sys/queue.h>

#define STREAM_OUTPUT_CAP (1 << 20) /* unread bytes before a slow reader is cut */

struct http_loop {
    struct http_server *srv;
    struct loop *loop;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    pthread_t thread;
    int running;
    int fd;
    struct http_req *live;   /* requests not finished yet (this loop's thread only) */
    struct event *accept_pause; /* re-enables the listener after accept() failed */
    int64_t last_accept_warn_ms;
    struct http_req *spare;  /* finished requests kept for the next ones (this loop only) */
    int nspare;
};

/* A finished request's memory is kept by its loop, at most this many: a
 * struct http_req is ~3 KB, past malloc's per-thread cache, and calloc
 * zeroed all of it for every request (~5 K instructions of a /healthz). */
#define HTTP_SPARE_REQS 64

/* Under AddressSanitizer every request is its own allocation, so a use
 * after finish is still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define HTTP_REQ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HTTP_REQ_ASAN 1
#endif
#endif

/* A request ready for on_request_run: the fields before `match` zeroed,
 * the match's head zeroed, the arrays' texts empty. */
static struct http_req *req_new(struct http_loop *hl)
{
    struct http_req *r = hl->spare;
    if (r) {
        hl->spare = r->next;
        hl->nspare--;
    } else if (!(r = malloc(sizeof *r))) {
        return NULL;
    }
    memset(r, 0, offsetof(struct http_req, match));
    memset(&r->match, 0, offsetof(struct route_match, path));
    r->request_id[0] = r->principal[0] = r->remote[0] = r->error_code[0] = '\0';
    return r;
}

static void req_release(struct http_loop *hl, struct http_req *r)
{
#ifndef HTTP_REQ_ASAN
    if (hl && hl->nspare < HTTP_SPARE_REQS) {
        r->next = hl->spare;
        hl->spare = r;
        hl->nspare++;
        return;
    }
#else
    (void)hl;
#endif
    free(r);
}

struct rate_slot {
    _Atomic int64_t sec;
    _Atomic uint64_t total, errors;
};

struct http_server {
    const struct config *cfg;
    struct router *router;
    int nloops;
    struct http_loop *loops;
    int port;
    atomic_int draining;
    _Atomic int64_t inflight;
    atomic_int connections;
    atomic_int unflushed;
    struct guard_limits lim;
    struct rate_slot rate[60];
    struct metric *m_requests, *m_duration, *m_inflight;
    struct metric_child **route_duration; /* per route index, + 1 for unmatched */
    struct metric_child *unmatched_duration;
    struct metric_child *inflight_gauge;
    struct metric_child *gzip_replies, *gzip_saved;
    http_gate_fn gate[HTTP_MAX_GATES]; /* run in order: authentication, then rate limits */
    void *gate_ud[HTTP_MAX_GATES];
    int ngates;
    struct tls_slot *tls; /* native HTTPS: the context new connections use; NULL = plain */
};

/* ---- request lifecycle ---- */

static void rate_note(struct http_server *s, int status)
{
    int64_t now = clock_mono_ms() / 1000;
    struct rate_slot *slot = &s->rate[now % 60];
    int64_t seen = atomic_load_explicit(&slot->sec, memory_order_relaxed);
    if (seen != now && atomic_compare_exchange_strong(&slot->sec, &seen, now)) {
        atomic_store_explicit(&slot->total, 0, memory_order_relaxed);
        atomic_store_explicit(&slot->errors, 0, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&slot->total, 1, memory_order_relaxed);
    if (status >= 500)
        atomic_fetch_add_explicit(&slot->errors, 1, memory_order_relaxed);
}

double http_server_error_rate_1m(const struct http_server *s, uint64_t *requests)
{
    int64_t now = clock_mono_ms() / 1000;
    uint64_t total = 0, errors = 0;
    for (int i = 0; i < 60; i++) {
        const struct rate_slot *slot = &s->rate[i];
        if (now - atomic_load((_Atomic int64_t *)&slot->sec) < 60) {
            total += atomic_load((_Atomic uint64_t *)&slot->total);
            errors += atomic_load((_Atomic uint64_t *)&slot->errors);
        }
    }
    if (requests)
        *requests = total;
    return total ? (double)errors / (double)total : 0.0;
}

static void unlink_req(struct http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (r->hl && r->hl->live == r)
        r->hl->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* The request's server span ends with what was answered. */
static void span_end(struct http_req *r)
{
    struct trace_span *sp = r->span;
    /* "{method} {route}", as the HTTP semantic conventions name it */
    size_t ml = strlen(http_method_name(r->method));
    if (ml + 2 < sizeof sp->name) {
        memcpy(sp->name, http_method_name(r->method), ml);
        sp->name[ml] = ' ';
        size_t rl = strnlen(r->route_label, sizeof sp->name - ml - 2);
        memcpy(sp->name + ml + 1, r->route_label, rl);
        sp->name[ml + 1 + rl] = '\0';
    }
    trace_attr_str(sp, "http.request.method", http_method_name(r->method));
    trace_attr_str(sp, "http.route", r->route_label);
    trace_attr_int(sp, "http.response.status_code", r->status);
    trace_attr_str(sp, "url.path", r->path);
    trace_attr_str(sp, "agentd.request_id", r->request_id);
    if (r->error_code[0])
        trace_attr_str(sp, "error.type", r->error_code);
    if (r->status >= 500)
        trace_span_set_status(sp, TRACE_STATUS_ERROR);
    trace_span_end(sp);
    free(sp);
    r->span = NULL;
}

/* Access line + metrics + span + free. Called exactly once per request. */
static void finish(struct http_req *r)
{
    struct http_server *s = r->srv;
    /* the access line carries the request's trace id */
    struct trace_ctx prev = trace_enter(r->span ? &r->span->ctx : NULL);
    int64_t elapsed_ns = clock_mono_ns() - r->start_ns;
    double secs = (double)elapsed_ns / 1e9;
    char status[8];
    if (r->status >= 100 && r->status <= 999) /* the label's digits, without snprintf */
        memcpy(status, (char[4]){ (char)('0' + r->status / 100), (char)('0' + r->status / 10 % 10),
                                  (char)('0' + r->status % 10), '\0' }, 4);
    else
        snprintf(status, sizeof status, "%d", r->status);
    const char *labels[] = { r->route_label, http_method_name(r->method), status };
    metric_inc(metric_child(s->m_requests, labels));
    int idx = r->match.route ? route_index(r->match.route) : -1;
    metric_observe(idx >= 0 ? s->route_duration[idx] : s->unmatched_duration, secs);
    rate_note(s, r->status);
    /* the line's own keys: their redaction verdicts worked out once */
    static struct log_key k_request_id = LOG_KEY("request_id"), k_principal = LOG_KEY("principal"),
                          k_method = LOG_KEY("method"), k_route = LOG_KEY("route"),
                          k_remote = LOG_KEY("remote");
    struct logline l;
    if (s->lim.access_log && log_begin(&l, r->status >= 500 ? LOG_WARN : LOG_INFO, "request")) {
        log_str_key(&l, &k_request_id, r->request_id);
        log_str_key(&l, &k_principal, r->principal);
        log_str_key(&l, &k_method, http_method_name(r->method));
        log_str_key(&l, &k_route, r->route_label);
        log_int(&l, "status", r->status);
        log_thousandths(&l, "duration_ms", (elapsed_ns + 500) / 1000); /* µs, rounded */
        log_str_key(&l, &k_remote, r->remote);
        log_int(&l, "bytes", (int64_t)r->bytes_out);
        if (r->error_code[0])
            log_str(&l, "code", r->error_code);
        for (size_t i = 0; i < r->notes_len;) {
            const char *key = r->notes + i;
            const char *val = key + strlen(key) + 1;
            log_str(&l, key, val);
            i = (size_t)(val - r->notes) + strlen(val) + 1;
        }
        log_end_buffered(&l); /* batched per loop (core/logbuf.c) */
    }
    trace_leave(prev);
    if (r->span)
        span_end(r);
    unlink_req(r);
    atomic_fetch_sub(&s->inflight, 1);
    metric_add(s->inflight_gauge, -1);
    req_release(r->hl, r);
}

const char *http_req_header(struct http_req *r, const char *name)
{
    return r->ev ? evhttp_find_header(evhttp_request_get_input_headers(r->ev), name) : NULL;
}

void http_req_note(struct http_req *r, const char *key, const char *value)
{
    if (!key || !value)
        return;
    size_t kl = strlen(key), vl = strnlen(value, 128);
    if (r->notes_len + kl + vl + 2 > sizeof r->notes)
        return;
    char *p = r->notes + r->notes_len;
    memcpy(p, key, kl + 1);
    memcpy(p + kl + 1, value, vl);
    p[kl + 1 + vl] = '\0';
    r->notes_len += kl + vl + 2;
}

/* The code of an error reply, for the access line: error.code in our
 * one error shape, or the first error of a UCP messages[] array. */
static void note_error_json(struct http_req *r, const json_t *body)
{
    const char *code = json_string_value(json_object_get(json_object_get(body, "error"), "code"));
    size_t i;
    const json_t *m;
    json_array_foreach(code ? NULL : json_object_get(body, "messages"), i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        if (type && strcmp(type, "error") == 0) {
            code = json_string_value(json_object_get(m, "code"));
            break;
        }
    }
    if (code && !r->error_code[0])
        snprintf(r->error_code, sizeof r->error_code, "%s", code);
}

/* The same from a body as text (a stored reply replayed by idempotency):
 * error bodies are small, and only errors pay for the parse. */
static void note_error_text(struct http_req *r, const char *content_type, const char *body,
                            size_t len)
{
    if (r->error_code[0] || !body || !len || len > 65536 || !content_type ||
        strncmp(content_type, "application/json", 16) != 0)
        return;
    json_error_t je;
    json_t *j = json_loadb(body, len, 0, &je);
    note_error_json(r, j);
    json_decref(j);
}

void http_set_header(struct http_req *r, const char *name, const char *value)
{
    if (r->ev)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* ---- CORS: off unless AGENTD_CORS_ORIGINS lists origins ---- */

#define CORS_METHODS "GET, POST, PUT, DELETE, OPTIONS"
#define CORS_HEADERS "Content-Type, Authorization, X-API-Key, Idempotency-Key, If-Match, " \
                     "If-None-Match, UCP-Agent, A2A-Version, A2A-Extensions, X-A2A-Extensions, " \
                     "X-Request-Id, Last-Event-ID"
/* what a page may read back: the A2A extensions echo (the UCP sample client
 * reads it), the auth challenge, rate-limit waits */
#define CORS_EXPOSE "X-Request-Id, ETag, Retry-After, Location, WWW-Authenticate, " \
                    "A2A-Extensions, X-A2A-Extensions, RateLimit-Limit, RateLimit-Remaining, " \
                    "RateLimit-Reset"

static void add_vary(struct evkeyvalq *h, const char *what);

/* The request's Origin when it is one of the listed origins (exact match). */
static const char *cors_origin(struct http_req *r)
{
    const char *list = r->srv->cfg->cors_origins;
    const char *origin = list ? http_req_header(r, "Origin") : NULL;
    if (!origin)
        return NULL;
    size_t olen = strlen(origin);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ", ");
        if (n && n == olen && strncasecmp(p, origin, n) == 0)
            return origin;
        p += n;
        p += strspn(p, ", ");
    }
    return NULL;
}

static void cors_headers(struct http_req *r, struct evkeyvalq *h)
{
    if (!r->srv->cfg->cors_origins)
        return;
    add_vary(h, "Origin"); /* the answer differs by Origin: caches must key on it */
    const char *origin = cors_origin(r);
    if (origin) {
        evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(h, "Access-Control-Expose-Headers", CORS_EXPOSE);
    }
}

/* A browser's preflight (OPTIONS + Origin + Access-Control-Request-Method):
 * answered here for a listed origin, refused for another. 1 = answered. */
static int cors_preflight(struct http_req *r)
{
    if (r->method != HTTP_OPTIONS || !r->srv->cfg->cors_origins ||
        !http_req_header(r, "Origin") || !http_req_header(r, "Access-Control-Request-Method"))
        return 0;
    if (!cors_origin(r)) {
        http_reply_error(r, 403, "forbidden", "this Origin is not in AGENTD_CORS_ORIGINS");
        return 1;
    }
    http_set_header(r, "Access-Control-Allow-Methods", CORS_METHODS);
    http_set_header(r, "Access-Control-Allow-Headers", CORS_HEADERS);
    http_set_header(r, "Access-Control-Max-Age", "600");
    http_reply_raw(r, 204, NULL, NULL, 0);
    return 1;
}

/* no-store unless the handler set its own Cache-Control (the agent card,
 * the UCP profile): one Cache-Control line a reply, never two that disagree */
#define LINE_NO_STORE "\r\nCache-Control: no-store"
#define LINE_NOSNIFF "\r\nX-Content-Type-Options: nosniff"
#define LINE_VARY_AE "\r\nVary: Accept-Encoding"
#define LINE_CONTENT_TYPE "\r\nContent-Type: "
#define CONTENT_TYPE_JOINED_MAX 128
/* evhttp's default type for a reply with a body and none of its own: the
 * listeners' default is off (evhttp cannot see a Content-Type joined into
 * another entry), so common_headers adds it where evhttp did */
#define EVHTTP_DEFAULT_TYPE "text/html; charset=ISO-8859-1"

/* evhttp_response_needs_body's rule (libevent 2.1 http.c). */
static int reply_has_body(const struct http_req *r)
{
    return r->status != 204 && r->status != 304 && (r->status < 100 || r->status >= 200) &&
           r->method != HTTP_HEAD;
}

/* vary_ae: the reply says Vary: Accept-Encoding (negotiate_gzip's rule,
 * worked out by the caller: a compressible body, or a 304). */
static void common_headers(struct http_req *r, const char *content_type, int vary_ae)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    /* Date, X-Request-Id, Cache-Control, X-Content-Type-Options, Content-Type
     * and, when it is the only Vary (no CORS, none set by the handler), Vary
     * as one entry (http/header_lines.h): 5 of /healthz's 7 printfs fewer.
     * Only lines nobody looks up by name go in: evhttp looks up Date (the
     * key), Content-Length, Content-Type (for its default, off on our
     * listeners), Connection, Transfer-Encoding; agentd Vary, Content-Encoding,
     * ETag. Each part is checked where made: a request id by reqid_valid or
     * generated, the date once a second, the rest fixed text. */
    int vary_joined = vary_ae && !r->srv->cfg->cors_origins && !evhttp_find_header(h, "Vary");
    size_t cl = content_type ? strnlen(content_type, CONTENT_TYPE_JOINED_MAX + 1) : 0;
    /* a type may come back from a stored idempotency record: checked */
    int type_joined = cl && cl <= CONTENT_TYPE_JOINED_MAX && http_header_text_safe(content_type, cl);
    const char *date = http_date_now();
    char lines[64 + REQID_MAX + sizeof LINE_NO_STORE + sizeof LINE_NOSNIFF + sizeof LINE_VARY_AE +
               sizeof LINE_CONTENT_TYPE + CONTENT_TYPE_JOINED_MAX + 32];
    size_t n = 0, dl = date ? strnlen(date, 64) : 0, il = strlen(r->request_id);
    if (date) {
        memcpy(lines, date, dl);
        memcpy(lines + dl, "\r\nX-Request-Id: ", 16);
        n = dl + 16;
    }
    memcpy(lines + n, r->request_id, il);
    n += il;
    if (!evhttp_find_header(h, "Cache-Control")) {
        memcpy(lines + n, LINE_NO_STORE, sizeof LINE_NO_STORE - 1);
        n += sizeof LINE_NO_STORE - 1;
    }
    memcpy(lines + n, LINE_NOSNIFF, sizeof LINE_NOSNIFF - 1);
    n += sizeof LINE_NOSNIFF - 1;
    if (vary_joined) {
        memcpy(lines + n, LINE_VARY_AE, sizeof LINE_VARY_AE - 1);
        n += sizeof LINE_VARY_AE - 1;
    }
    if (type_joined) {
        memcpy(lines + n, LINE_CONTENT_TYPE, sizeof LINE_CONTENT_TYPE - 1);
        memcpy(lines + n + sizeof LINE_CONTENT_TYPE - 1, content_type, cl);
        n += sizeof LINE_CONTENT_TYPE - 1 + cl;
    }
    (void)http_header_lines_add(h, date ? "Date" : "X-Request-Id", lines, n);
    if (content_type && !type_joined)
        evhttp_add_header(h, "Content-Type", content_type); /* refused if unsafe, as before */
    else if (!content_type && reply_has_body(r) && !evhttp_find_header(h, "Content-Type"))
        evhttp_add_header(h, "Content-Type", EVHTTP_DEFAULT_TYPE);
    cors_headers(r, h);
    if (vary_ae && !vary_joined)
        add_vary(h, "Accept-Encoding"); /* after Origin, as a comma list */
    if (atomic_load(&r->srv->draining))
        evhttp_add_header(h, "Connection", "close");
}

static int run_hook(struct http_req *r, int status, const char *content_type, char *owned,
                    size_t len)
{
    void (*hook)(struct http_req *, int, const char *, char *, size_t, void *) = r->reply_hook;
    r->reply_hook = NULL;
    hook(r, status, content_type, owned, len, r->hook_ud);
    return 1;
}

json_t *http_reply_headers_json(struct http_req *r)
{
    /* RateLimit-*: the budget of the request that was answered; a replay
     * carries its own (auth/limit.c sets them before the handler) */
    static const char *const skip[] = { "X-Request-Id", "Date", "Content-Length", "Connection",
                                        "Cache-Control", "X-Content-Type-Options",
                                        "RateLimit-Limit", "RateLimit-Remaining",
                                        "RateLimit-Reset", NULL };
    json_t *o = json_object();
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_output_headers(r->ev), next) {
        int skipped = 0;
        for (int i = 0; skip[i]; i++)
            skipped |= strcasecmp(kv->key, skip[i]) == 0;
        if (!skipped)
            json_object_set_new(o, kv->key, json_string(kv->value));
    }
    return o;
}

/* Vary on a comma list, once. */
static void add_vary(struct evkeyvalq *h, const char *what)
{
    const char *vary = evhttp_find_header(h, "Vary");
    if (!vary) {
        evhttp_add_header(h, "Vary", what);
        return;
    }
    if (strcasestr(vary, what))
        return;
    char v[256];
    snprintf(v, sizeof v, "%s, %s", vary, what);
    evhttp_remove_header(h, "Vary");
    evhttp_add_header(h, "Vary", v);
}

/* Content negotiation for a body about to be sent (not for streams: they
 * never reach here). Every compressible reply says Vary: Accept-Encoding,
 * compressed or not, so a cache keeps the variants apart (common_headers
 * writes it: vary_accept_encoding says when). 1 with *gz set
 * (malloc'd, the caller sends and frees it) when the body goes out as
 * gzip; the stored form (idempotency) is always the plain body, so a
 * replay is negotiated per request like a first answer. */
static int negotiate_gzip(struct http_req *r, int status, const char *content_type,
                          const char *body, size_t len, char **gz, size_t *gz_len)
{
    *gz = NULL;
    *gz_len = 0;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    if (!gzip_compressible(content_type))
        return 0;
    if (r->method == HTTP_HEAD || status < 200 || status == 204 || status == 304 ||
        len < GZIP_MIN_BYTES || evhttp_find_header(h, "Content-Encoding") ||
        !gzip_accepted(http_req_header(r, "Accept-Encoding")))
        return 0;
    if (gzip_encode(body, len, gz, gz_len) != 0)
        return 0; /* out of memory: the plain body is still a correct answer */
    if (*gz_len >= len) {
        free(*gz);
        *gz = NULL;
        return 0;
    }
    evhttp_add_header(h, "Content-Encoding", "gzip");
    const char *etag = evhttp_find_header(h, "ETag");
    char variant[192];
    if (etag && gzip_etag_variant(etag, variant, sizeof variant) == 0) {
        evhttp_remove_header(h, "ETag");
        evhttp_add_header(h, "ETag", variant);
    }
    metric_inc(r->srv->gzip_replies);
    metric_add(r->srv->gzip_saved, (double)(len - *gz_len));
    return 1;
}

/* A 304 has no body or type, but must say what its 200 would vary on. */
static int vary_accept_encoding(int status, const char *content_type)
{
    return status == 304 || gzip_compressible(content_type);
}

static void free_text(const void *data, size_t len, void *extra)
{
    (void)len; (void)extra;
    free((void *)data);
}

void http_reply_raw(struct http_req *r, int status, const char *content_type, const char *body,
                    size_t len)
{
    if (r->reply_hook) {
        char *copy = malloc(len + 1);
        if (copy) {
            if (len)
                memcpy(copy, body, len);
            copy[len] = 0;
            run_hook(r, status, content_type, copy, len);
            return;
        }
        r->reply_hook = NULL; /* out of memory: send unhooked rather than lose it */
    }
    r->status = status;
    if (status >= 400)
        note_error_text(r, content_type, body, len);
    int negotiate = status == 304 || (body && len);
    common_headers(r, content_type, negotiate && vary_accept_encoding(status, content_type));
    struct evbuffer *out = evhttp_request_get_output_buffer(r->ev);
    char *gz;
    size_t gz_len;
    if (negotiate &&
        negotiate_gzip(r, status, content_type, body, len, &gz, &gz_len)) {
        if (evbuffer_add_reference(out, gz, gz_len, free_text, NULL) != 0)
            free(gz);
        len = gz_len;
    } else if (body && len && r->method != HTTP_HEAD) {
        evbuffer_add(out, body, len);
    }
    /* evhttp 2.1 writes a HEAD's body too: the next reply's first bytes */
    r->bytes_out = r->method == HTTP_HEAD ? 0 : len;
    evhttp_send_reply(r->ev, status, reason_phrase(status), NULL);
    finish(r);
}

void http_reply_json(struct http_req *r, int status, json_t *body)
{
    if (status >= 400)
        note_error_json(r, body);
    size_t len = 0;
    char *text = body ? jsondump(body, JSON_COMPACT | JSON_REAL_PRECISION(10), &len) : NULL;
    json_decref(body);
    if (body && !text) {
        http_reply_raw(r, 500, "application/json",
                       "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\"}}", 62);
        return;
    }
    if (text && r->reply_hook) {
        run_hook(r, status, "application/json", text, len);
        return;
    }
    if (text) {
        /* hand the string to the output buffer without copying */
        r->status = status;
        common_headers(r, "application/json", vary_accept_encoding(status, "application/json"));
        struct evbuffer *out = evhttp_request_get_output_buffer(r->ev);
        char *gz;
        size_t gz_len;
        if (negotiate_gzip(r, status, "application/json", text, len, &gz, &gz_len)) {
            free(text);
            text = gz;
            len = gz_len;
        }
        if (r->method == HTTP_HEAD) { /* evhttp 2.1 would write it (http_reply_raw) */
            free(text);
            len = 0;
        } else if (evbuffer_add_reference(out, text, len, free_text, NULL) != 0)
            free(text);
        r->bytes_out = len;
        evhttp_send_reply(r->ev, status, reason_phrase(status), NULL);
        finish(r);
        return;
    }
    http_reply_raw(r, status, NULL, NULL, 0);
}

void http_reply_error(struct http_req *r, int status, const char *code, const char *message)
{
    json_t *err = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", message,
                            "request_id", r->request_id);
    http_reply_json(r, status, err);
}

void http_reply_err(struct http_req *r, int err, const char *message)
{
    /* every 503 we decide is transient: tell clients when to come back */
    if (agentd_err_http(err) == 503)
        http_set_header(r, "Retry-After", "1");
    http_reply_error(r, agentd_err_http(err), agentd_err_code(err),
                     message ? message : agentd_err_msg(err));
}

/* ---- streaming ---- */

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct http_req *r = arg;
    if (r->client_gone)
        return;
    r->client_gone = 1;
    if (r->on_client_gone)
        r->on_client_gone(r, r->gone_ud);
}

int http_stream_start(struct http_req *r, int status, const char *content_type,
                      void (*on_gone)(struct http_req *r, void *ud), void *ud)
{
    r->status = status;
    r->streaming = 1;
    r->on_client_gone = on_gone;
    r->gone_ud = ud;
    common_headers(r, content_type, 0);
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    evhttp_send_reply_start(r->ev, status, reason_phrase(status));
    if (evcon) {
        evhttp_connection_set_closecb(evcon, on_conn_close, r);
        /* a stream may be quiet for long: only a stuck write ends it */
        struct timeval wt = { (time_t)(r->srv->cfg->idle_timeout_ms / 1000), 0 };
        bufferevent_set_timeouts(evhttp_connection_get_bufferevent(evcon), NULL, &wt);
    }
    return 0;
}

size_t http_stream_pending(struct http_req *r)
{
    if (r->client_gone || !r->ev)
        return 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev)
        return 0;
    /* the guard's filter, and under it the socket or TLS bufferevent: TLS
     * moves bytes down at once, so the unread output is the sum */
    struct bufferevent *under = bufferevent_get_underlying(bev);
    return evbuffer_get_length(bufferevent_get_output(bev)) +
           (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

int http_stream_write(struct http_req *r, const char *data, size_t len)
{
    if (r->client_gone)
        return AGENTD_EIO;
    if (http_stream_pending(r) > STREAM_OUTPUT_CAP)
        return AGENTD_EIO;
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return AGENTD_ENOMEM;
    evbuffer_add(b, data, len);
    evhttp_send_reply_chunk(r->ev, b);
    evbuffer_free(b);
    r->bytes_out += len;
    return 0;
}

void http_stream_end(struct http_req *r)
{
    struct evhttp_connection *evcon = r->client_gone ? NULL : evhttp_request_get_connection(r->ev);
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    /* with the client gone the request is detached; this frees it */
    evhttp_send_reply_end(r->ev);
    finish(r);
}

/* ---- dispatch ---- */

static enum http_method map_method(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return HTTP_GET;
    case EVHTTP_REQ_POST: return HTTP_POST;
    case EVHTTP_REQ_PUT: return HTTP_PUT;
    case EVHTTP_REQ_DELETE: return HTTP_DELETE;
    case EVHTTP_REQ_PATCH: return HTTP_PATCH;
    case EVHTTP_REQ_HEAD: return HTTP_HEAD;
    case EVHTTP_REQ_OPTIONS: return HTTP_OPTIONS;
    default: return 0;
    }
}

/* A client that saw the gzip variant's ETag ("7-gzip") sends it back in
 * If-Match / If-None-Match; handlers know only their own tags ("7"). */
static void strip_gzip_etags(struct evkeyvalq *in)
{
    static const char *const names[] = { "If-Match", "If-None-Match" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = evhttp_find_header(in, names[i]);
        char plain[512];
        if (v && gzip_etag_strip(v, plain, sizeof plain) == 1) {
            evhttp_remove_header(in, names[i]);
            evhttp_add_header(in, names[i], plain);
        }
    }
}

/* The request's server span: a child of a valid incoming traceparent
 * (its tracestate remembered to pass on, never interpreted), else a new
 * root. Current for the rest of on_request; http_req_proceed and every
 * worker job or loop post made for r carry it on. */
static void span_begin(struct http_req *r, struct evhttp_request *ev)
{
    if (!trace_enabled() || !(r->span = malloc(sizeof *r->span)))
        return;
    struct trace_ctx in;
    const char *tp = evhttp_find_header(evhttp_request_get_input_headers(ev), "traceparent");
    int have = tp && trace_parse_traceparent(tp, &in) == 0;
    trace_span_start_at(r->span, http_method_name(r->method), TRACE_SERVER, have ? &in : NULL,
                        r->start_ns);
    const char *ts = have ? evhttp_find_header(evhttp_request_get_input_headers(ev), "tracestate")
                          : NULL; /* no valid traceparent: tracestate is ignored too */
    if (ts)
        trace_state_remember(&r->span->ctx, ts);
    trace_enter(&r->span->ctx);
}

static void on_request_run(struct evhttp_request *ev, void *arg);

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct trace_ctx prev = trace_enter(NULL);
    on_request_run(ev, arg);
    trace_leave(prev);
}

static void on_request_run(struct evhttp_request *ev, void *arg)
{
    struct http_loop *hl = arg;
    struct http_server *s = hl->srv;
    struct http_req *r = req_new(hl);
    if (!r) {
        evhttp_send_error(ev, 503, "out of memory");
        return;
    }
    r->ev = ev;
    r->hl = hl;
    r->loop = hl->loop;
    r->srv = s;
    r->start_ns = clock_mono_ns();
    r->method = map_method(evhttp_request_get_command(ev));
    r->route_label = "unmatched";
    strcpy(r->principal, "anonymous");
    r->next = hl->live;
    if (hl->live)
        hl->live->prev = r;
    hl->live = r;
    atomic_fetch_add(&s->inflight, 1);
    metric_add(s->inflight_gauge, 1);

    const char *rid = evhttp_find_header(evhttp_request_get_input_headers(ev), "X-Request-Id");
    if (rid && reqid_valid(rid))
        snprintf(r->request_id, sizeof r->request_id, "%s", rid);
    else
        reqid_generate(r->request_id);
    span_begin(r, ev);

    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    if (evcon) {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(evcon, &addr, &port);
        if (addr) { /* "addr:port", as "%s:%u" wrote it (snprintf: ~1 K instructions) */
            size_t al = strnlen(addr, sizeof r->remote - 7);
            memcpy(r->remote, addr, al);
            char digits[6], *d = digits + sizeof digits;
            unsigned p = port;
            do
                *--d = (char)('0' + p % 10);
            while ((p /= 10) != 0);
            r->remote[al] = ':';
            memcpy(r->remote + al + 1, d, (size_t)(digits + sizeof digits - d));
            r->remote[al + 1 + (size_t)(digits + sizeof digits - d)] = '\0';
        }
    }

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    r->query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!path || !*path)
        path = "/";
    r->path = path;
    r->uri = evhttp_request_get_uri(ev);
    if (!r->uri)
        r->uri = path;

    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    size_t blen = evbuffer_get_length(in);
    if (evbuffer_add(in, "", 1) == 0) {
        r->body = (const char *)evbuffer_pullup(in, -1);
        r->body_len = blen;
    }
    if (!r->body) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }

    strip_gzip_etags(evhttp_request_get_input_headers(ev));

    if (!r->method) {
        http_reply_error(r, 501, "not_implemented", "this request method is not supported");
        return;
    }
    if (cors_preflight(r))
        return;
    int st = router_match(s->router, r->method, path, &r->match);
    if (st == 404) {
        http_reply_error(r, 404, "not_found", "no route for this path");
        return;
    }
    if (st == 405) {
        char allow[128];
        http_allow_header(r->match.allow, allow, sizeof allow);
        http_set_header(r, "Allow", allow);
        r->route_label = "unmatched";
        char msg[192];
        snprintf(msg, sizeof msg, "method %s not allowed here; allowed: %s",
                 http_method_name(r->method), allow);
        http_reply_error(r, 405, "method_not_allowed", msg);
        return;
    }
    r->route_label = route_template(r->match.route);
    r->ud = route_ud(r->match.route);
    http_req_proceed(r);
}

/* The next gate step, or the handler once every step let r through. */
void http_req_proceed(struct http_req *r)
{
    struct http_server *s = r->srv;
    struct trace_ctx prev = trace_enter(r->span ? &r->span->ctx : NULL);
    if (r->gate_next < s->ngates) {
        int i = r->gate_next++;
        s->gate[i](r, s->gate_ud[i]);
    } else {
        route_handler(r->match.route)(r);
    }
    trace_leave(prev); /* r may be gone: prev is a copy */
}

void http_server_set_gate(struct http_server *s, http_gate_fn gate, void *ud)
{
    if (s->ngates < HTTP_MAX_GATES) {
        s->gate[s->ngates] = gate;
        s->gate_ud[s->ngates++] = ud;
    }
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    struct http_loop *hl = arg;
    SSL *ssl = NULL;
    if (hl->srv->tls && !(ssl = tls_slot_ssl_new(hl->srv->tls)))
        return NULL;
    return guard_bev_new(base, &hl->srv->lim, ssl);
}

/* ---- listeners and threads ---- */

/* SO_REUSEPORT lets another process of the same user bind our port and
 * silently take half the connections. A plain bind first (no REUSEPORT)
 * fails if anyone listens there, which is the answer we want. */
static int port_taken(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int taken = bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

/* The listening socket's fd, or a negative AGENTD_E* with the reason in *e. */
static int open_listener(const char *host, int port, int first, int *bound_port,
                         struct agentd_error *e)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_HOST", "cannot resolve AGENTD_HOST=%s: %s",
                           host, gai_strerror(rc));
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (first && port != 0 && port_taken(ai)) {
            agentd_fail(e, AGENTD_EIO, NULL, NULL, "cannot listen on %s:%d: the address is already in use",
                        host, port);
            continue;
        }
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) {
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
                *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                             : ((struct sockaddr_in *)&ss)->sin_port);
            break;
        }
        agentd_fail(e, AGENTD_EIO, NULL, NULL, "cannot listen on %s:%d: %s", host, port,
                    strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : AGENTD_EIO;
}

/* accept() failing (out of file descriptors, mostly) would otherwise be
 * retried by libevent in a tight loop: pause this listener for 100 ms, say
 * why at most once a second, and let in-flight work free descriptors. */
static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct http_loop *hl = arg;
    if (hl->bound) /* draining too: the listener stays open until the loops stop */
        evconnlistener_enable(evhttp_bound_socket_get_listener(hl->bound));
}

static _Thread_local struct http_loop *tl_loop; /* the loop this thread runs */

static void accept_failed(struct evconnlistener *l, void *arg)
{
    (void)arg; /* evhttp's own pointer, not ours: tl_loop says which loop */
    int e = EVUTIL_SOCKET_ERROR();
    struct http_loop *hl = tl_loop;
    evconnlistener_disable(l);
    if (!hl)
        return;
    int64_t now = clock_mono_ms();
    if (now - hl->last_accept_warn_ms >= 1000) {
        hl->last_accept_warn_ms = now;
        log_msg(LOG_WARN, NULL, "accept failed (%s): pausing the listener of loop %d for 100 ms",
                evutil_socket_error_to_string(e), loop_id(hl->loop));
    }
    struct timeval tv = { 0, 100000 };
    evtimer_add(hl->accept_pause, &tv);
}

static void *loop_thread(void *arg)
{
    struct http_loop *hl = arg;
    tl_loop = hl;
    loop_run(hl->loop);
    return NULL;
}

struct http_server *http_server_new(const struct config *cfg, struct router *router)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->router = router;
    s->nloops = cfg->threads;
    s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
    int nroutes = router_count(router);
    s->route_duration = calloc((size_t)nroutes + 1, sizeof *s->route_duration);
    if (!s->loops || !s->route_duration) {
        free(s->loops);
        free(s->route_duration);
        free(s);
        return NULL;
    }
    s->lim = (struct guard_limits){
        .max_header_bytes = cfg->max_header_bytes,
        .max_body_bytes = cfg->max_body_bytes,
        .read_timeout_ms = cfg->read_timeout_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .max_connections = cfg->max_connections,
        .connections = &s->connections,
        .unflushed = &s->unflushed,
        .access_log = cfg->access_log,
    };
    static const char *const req_labels[] = { "route", "method", "status", NULL };
    static const char *const route_label[] = { "route", NULL };
    s->m_requests = metric_register("agentd_http_requests_total", "HTTP requests by route template, method and status",
                                    METRIC_COUNTER, req_labels, NULL);
    s->m_duration = metric_register("agentd_http_request_duration_seconds",
                                    "HTTP request duration by route template", METRIC_HISTOGRAM,
                                    route_label, METRICS_BUCKETS_LATENCY);
    s->m_inflight = metric_register("agentd_http_requests_in_flight", "HTTP requests being served",
                                    METRIC_GAUGE, NULL, NULL);
    s->inflight_gauge = metric_only(s->m_inflight);
    s->gzip_replies = metric_only(metric_register("agentd_http_gzip_responses_total",
                                                  "Replies sent gzip-compressed",
                                                  METRIC_COUNTER, NULL, NULL));
    s->gzip_saved = metric_only(metric_register("agentd_http_gzip_saved_bytes_total",
                                                "Body bytes gzip saved (plain minus compressed)",
                                                METRIC_COUNTER, NULL, NULL));
    for (int i = 0; i < nroutes; i++) {
        const char *v[] = { route_template(router_at(router, i)) };
        s->route_duration[i] = metric_child(s->m_duration, v);
    }
    const char *un[] = { "unmatched" };
    s->unmatched_duration = metric_child(s->m_duration, un);
    guard_metrics_init();
    return s;
}

int http_server_start(struct http_server *s, struct agentd_error *e)
{
    int port = s->cfg->port;
    if (s->cfg->tls_cert_file && s->cfg->tls_key_file &&
        !(s->tls = tls_slot_new(s->cfg->tls_cert_file, s->cfg->tls_key_file, e)))
        return AGENTD_EINVAL;
    for (int i = 0; i < s->nloops; i++) {
        struct http_loop *hl = &s->loops[i];
        hl->srv = s;
        hl->fd = -1;
        hl->loop = loop_new(i);
        hl->http = hl->loop ? evhttp_new(loop_base(hl->loop)) : NULL;
        if (!hl->http) {
            return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory creating loop %d", i);
        }
        evhttp_set_default_content_type(hl->http, NULL); /* common_headers adds it */
        int bound = 0;
        int fd = open_listener(s->cfg->host, port, i == 0, &bound, e);
        if (fd < 0)
            return fd;
        hl->fd = fd;
        if (port == 0) /* the first listener picked a free port: the rest share it */
            port = bound;
        s->port = bound;
        evhttp_set_allowed_methods(hl->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                 EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                                 EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
        /* the guard enforces our limits first; these are the library's backstop */
        evhttp_set_max_headers_size(hl->http, (ev_ssize_t)s->cfg->max_header_bytes * 2);
        evhttp_set_max_body_size(hl->http, (ev_ssize_t)s->cfg->max_body_bytes);
        struct timeval idle = { (time_t)(s->cfg->idle_timeout_ms / 1000),
                                (suseconds_t)((s->cfg->idle_timeout_ms % 1000) * 1000) };
        evhttp_set_timeout_tv(hl->http, &idle);
        evhttp_set_gencb(hl->http, on_request, hl);
        evhttp_set_bevcb(hl->http, make_bev, hl);
        hl->bound = evhttp_accept_socket_with_handle(hl->http, hl->fd);
        if (!hl->bound) {
            return agentd_fail(e, AGENTD_EIO, NULL, NULL, "cannot accept on listener %d", i);
        }
        hl->fd = -1; /* evhttp owns it now */
        hl->accept_pause = evtimer_new(loop_base(hl->loop), accept_resume, hl);
        if (!hl->accept_pause) {
            return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory creating loop %d", i);
        }
        evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(hl->bound), accept_failed);
    }
    for (int i = 0; i < s->nloops; i++) {
        struct http_loop *hl = &s->loops[i];
        if (pthread_create(&hl->thread, NULL, loop_thread, hl) != 0) {
            return agentd_fail(e, AGENTD_EINTERNAL, NULL, NULL, "cannot start loop thread %d: %s", i,
                               strerror(errno));
        }
        hl->running = 1;
    }
    return 0;
}

int http_server_port(const struct http_server *s) { return s->port; }
int http_server_tls(const struct http_server *s) { return s->tls != NULL; }

int http_server_tls_reload(struct http_server *s, struct agentd_error *e)
{
    return s->tls ? tls_slot_reload(s->tls, e) : 0;
}
const struct router *http_server_router(const struct http_server *s) { return s->router; }
int http_server_draining(const struct http_server *s) { return atomic_load(&s->draining); }
int64_t http_server_inflight(const struct http_server *s) { return atomic_load(&s->inflight); }
int http_server_unflushed(const struct http_server *s) { return atomic_load(&s->unflushed); }
int http_server_loop_count(const struct http_server *s) { return s->nloops; }
struct loop *http_server_loop(const struct http_server *s, int i) { return s->loops[i].loop; }

/* The listeners stay open through the drain and close only when the loops
 * stop: closing a listening socket resets every connection in its accept
 * queue (and any whose handshake lands between a last look at the queue and
 * the close), so a probe or a load balancer that connects just after the
 * signal would read a reset. Open, they read /readyz's 503 (`draining`), and
 * whatever else they ask is served with `Connection: close`. An orchestrator
 * stops sending once readiness fails; AGENTD_DRAIN_TIMEOUT bounds a client
 * that does not. */
void http_server_begin_drain(struct http_server *s)
{
    atomic_store(&s->draining, 1);
}

void http_server_stop(struct http_server *s)
{
    for (int i = 0; i < s->nloops; i++)
        if (s->loops[i].running)
            loop_stop(s->loops[i].loop);
    for (int i = 0; i < s->nloops; i++)
        if (s->loops[i].running) {
            pthread_join(s->loops[i].thread, NULL);
            s->loops[i].running = 0;
        }
}

void http_server_free(struct http_server *s)
{
    if (!s)
        return;
    http_server_stop(s);
    for (int i = 0; i < s->nloops; i++) {
        struct http_loop *hl = &s->loops[i];
        if (hl->loop)
            loop_run_inbox(hl->loop); /* completions that arrived after the loop stopped */
        while (hl->live) {        /* unanswered after the drain: dropped */
            struct http_req *r = hl->live;
            unlink_req(r);
            if (r->on_abort)
                r->on_abort(r, r->abort_ud);
            atomic_fetch_sub(&s->inflight, 1);
            free(r->span); /* never ended: no answer was sent */
            free(r);
        }
        while (hl->spare) {
            struct http_req *r = hl->spare;
            hl->spare = r->next;
            free(r);
        }
        if (hl->accept_pause)
            event_free(hl->accept_pause);
        if (hl->http)
            evhttp_free(hl->http); /* closes listeners and live connections */
        hl->http = NULL;
        hl->bound = NULL;
        if (hl->fd >= 0)
            close(hl->fd);
        loop_free(hl->loop);
    }
    tls_slot_free(s->tls); /* after the loops: their live SSLs held their own references */
    free(s->loops);
    free(s->route_duration);
    free(s);
}
