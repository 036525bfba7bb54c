/* Connection guard. Per connection: IDLE -> HEAD (first byte arms the read
 * deadline) -> BODY (Content-Length bytes) or CHUNKED (framing followed to
 * its end, data counted against the body limit) -> IDLE. A new connection
 * that sends nothing is closed at the read deadline too.
 * A rejection writes a JSON response straight to the socket's buffer, stops
 * feeding the library, flushes, half-closes, discards what the client still
 * sends for a moment (so it reads our answer instead of a reset), then frees
 * the connection through the library. */
#include "http/guard.h"
#include "http/head.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/reqid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>

enum gstate { G_IDLE, G_HEAD, G_BODY, G_CHUNKED, G_REJECTED };

struct guard {
    struct guard_limits lim;
    struct bufferevent *under, *filter;
    struct event *timer;
    struct event *kick;       /* writes queued response bytes after the current callback */
    int kick_pending;         /* kick is active and has not run yet */
    struct event *wev;        /* socket writable, while a reply is partly written */
    enum gstate st;
    int64_t body_left;
    struct chunk_scan cs;     /* G_CHUNKED */
    int fresh;                /* no byte received yet on this connection */
    /* The read deadline of the head being read is armed only when the head
     * is not whole in its first callback (most arrive in one segment: no
     * timer added and deleted per request); the connect-time deadline may
     * still be pending during the first head. */
    int head_armed, connect_timer;
    /* evhttp's idle timer (the filter's read timeout) is off while a
     * request is partly read: it runs from the last byte passed up, so it
     * would close the connection mid-request, silently, before the read
     * deadline answers 408. Set back when the request is whole. */
    int lib_timer_off;
    int64_t reject_at_ms;     /* when the rejection was written */
    int counted;
    int tls;                  /* under is a TLS bufferevent: bytes go through it */
    int shut;
    int unflushed;
};

#define LINGER_MS 2000
#define FLUSH_POLL_MS 20

/* Registered (with every reason at 0) by guard_metrics_init, which the
 * server runs before any connection: a series an alert watches exists
 * before its first increment. */
static struct metric *rejected;
static struct metric_child *tls_failures;

static const char *const reject_reasons[] = { "malformed_request", "request_timeout",
                                              "payload_too_large", "headers_too_large",
                                              "not_implemented", "too_many_connections", NULL };

void guard_metrics_init(void)
{
    static const char *const labels[] = { "reason", NULL };
    rejected = metric_register("agentd_http_rejected_total",
                               "Requests refused by the connection guard before routing",
                               METRIC_COUNTER, labels, NULL);
    for (int i = 0; reject_reasons[i]; i++) {
        const char *v[] = { reject_reasons[i] };
        metric_child(rejected, v);
    }
    tls_failures = metric_only(metric_register(
        "agentd_tls_handshake_failures_total",
        "TLS connections closed before their handshake completed (plain HTTP, old protocol "
        "versions, no shared cipher, a client that gave up)", METRIC_COUNTER, NULL, NULL));
}

static void arm(struct guard *g, int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    evtimer_add(g->timer, &tv);
}

static void reject(struct guard *g, int status, const char *reason, const char *code, const char *msg)
{
    if (g->st == G_REJECTED)
        return;
    g->st = G_REJECTED;
    char id[33];
    reqid_generate(id);
    char body[512];
    int blen = snprintf(body, sizeof body,
                        "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}}", code,
                        msg, id);
    char head[512];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                        "X-Content-Type-Options: nosniff\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n",
                        status, reason, blen, id);
    bufferevent_write(g->under, head, (size_t)hlen);
    bufferevent_write(g->under, body, (size_t)blen);
    g->reject_at_ms = clock_mono_ms();
    const char *labels[] = { code };
    metric_inc(metric_child(rejected, labels));
    struct logline l;
    if (g->lim.access_log && log_begin(&l, LOG_INFO, "rejected")) {
        log_str(&l, "request_id", id);
        log_int(&l, "status", status);
        log_str(&l, "code", code);
        log_end(&l);
    }
    evtimer_del(g->timer);
    arm(g, FLUSH_POLL_MS);
}

/* Frees the connection through the library that owns it. The library's
 * callback argument on the filter is its connection object; after the
 * library freed the filter itself, callbacks are NULL and we do nothing. */
static void release(struct guard *g)
{
    bufferevent_data_cb rcb, wcb;
    bufferevent_event_cb ecb;
    void *arg = NULL;
    bufferevent_getcb(g->filter, &rcb, &wcb, &ecb, &arg);
    if (arg && ecb)
        evhttp_connection_free(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct guard *g = arg;
    if (g->st == G_IDLE && g->fresh) {
        /* connected and said nothing within the read deadline: a held
         * socket, not a client; close without an answer */
        release(g);
        return;
    }
    if (g->st == G_HEAD || g->st == G_BODY || g->st == G_CHUNKED) {
        reject(g, 408, "Request Timeout", "request_timeout",
               "the request did not arrive in time");
        return;
    }
    if (g->st != G_REJECTED)
        return;
    struct evbuffer *out = bufferevent_get_output(g->under);
    int64_t waited = clock_mono_ms() - g->reject_at_ms;
    if (!g->shut && evbuffer_get_length(out) == 0) {
        evutil_socket_t s = bufferevent_getfd(g->under);
        if (s >= 0)
            shutdown(s, SHUT_WR);
        g->shut = 1;
    }
    if (waited >= LINGER_MS) {
        release(g);
        return;
    }
    arm(g, g->shut ? 100 : FLUSH_POLL_MS);
}

/* The methods the HTTP library parses and agentd routes; anything else would
 * get the library's HTML 400. */
static int method_supported(const char *m, size_t n)
{
    static const char *const known[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", NULL };
    for (int i = 0; known[i]; i++)
        if (strlen(known[i]) == n && memcmp(known[i], m, n) == 0)
            return 1;
    return 0;
}

/* The read deadline of the request being read, once per request, from
 * the callback its first byte came in. */
static void head_deadline(struct guard *g)
{
    if (!g->head_armed) {
        arm(g, g->lim.read_timeout_ms);
        g->head_armed = 1;
    }
}

static enum bufferevent_filter_result filter_scan(struct guard *g, struct evbuffer *src,
                                                  struct evbuffer *dst)
{
    int moved = 0;
    while (evbuffer_get_length(src) > 0) {
        size_t have = evbuffer_get_length(src);
        switch (g->st) {
        case G_REJECTED:
            evbuffer_drain(src, have);
            return BEV_NEED_MORE;
        case G_CHUNKED: {
            struct evbuffer_iovec v;
            size_t used = 0;
            if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
                return moved ? BEV_OK : BEV_NEED_MORE;
            enum chunk_result r = chunk_scan(&g->cs, v.iov_base, v.iov_len, g->lim.max_body_bytes,
                                             &used);
            if (r == CHUNK_BAD) {
                reject(g, 400, "Bad Request", "malformed_request",
                       "malformed request: invalid chunked body");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (r == CHUNK_TOO_LARGE) {
                reject(g, 413, "Payload Too Large", "payload_too_large",
                       "the request body is larger than AGENTD_MAX_BODY_BYTES");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            evbuffer_remove_buffer(src, dst, used);
            moved = 1;
            if (r == CHUNK_DONE) {
                g->st = G_IDLE;
                evtimer_del(g->timer);
            }
            break;
        }
        case G_BODY: {
            size_t n = (int64_t)have < g->body_left ? have : (size_t)g->body_left;
            evbuffer_remove_buffer(src, dst, n);
            g->body_left -= (int64_t)n;
            moved = 1;
            if (g->body_left == 0) {
                g->st = G_IDLE;
                evtimer_del(g->timer);
            }
            break;
        }
        case G_IDLE:
            if (g->lim.max_connections > 0 && g->counted &&
                atomic_load(g->lim.connections) > g->lim.max_connections) {
                reject(g, 503, "Service Unavailable", "too_many_connections",
                       "the server is at its connection limit; retry shortly");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            g->st = G_HEAD;
            g->connect_timer = g->fresh;
            g->fresh = 0;
            g->head_armed = 0;
            /* fall through */
        case G_HEAD: {
            size_t want = have;
            size_t cap = (size_t)g->lim.max_header_bytes + 1;
            if (want > cap)
                want = cap;
            const char *p = (const char *)evbuffer_pullup(src, (ev_ssize_t)want);
            struct head_info hi;
            enum head_result r = p ? head_scan(p, want, &hi) : HEAD_MALFORMED;
            if (r == HEAD_INCOMPLETE) {
                if (want > (size_t)g->lim.max_header_bytes)
                    reject(g, 431, "Request Header Fields Too Large", "headers_too_large",
                           "the request head is larger than AGENTD_MAX_HEADER_BYTES");
                else
                    head_deadline(g); /* from the head's first byte, as before */
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (r == HEAD_MALFORMED && hi.not_implemented) {
                reject(g, 501, "Not Implemented", "not_implemented",
                       "this Transfer-Encoding is not supported (only chunked is)");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (r == HEAD_MALFORMED) {
                char msg[128];
                snprintf(msg, sizeof msg, "malformed request: %s", hi.why ? hi.why : "bad head");
                reject(g, 400, "Bad Request", "malformed_request", msg);
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (!method_supported(hi.method, hi.method_len)) {
                reject(g, 501, "Not Implemented", "not_implemented",
                       "this request method is not supported");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (hi.http11 && hi.hosts != 1) { /* RFC 9112 §3.2 */
                reject(g, 400, "Bad Request", "malformed_request",
                       hi.hosts ? "malformed request: more than one Host header"
                                : "malformed request: HTTP/1.1 needs a Host header");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (hi.head_len > (size_t)g->lim.max_header_bytes) {
                reject(g, 431, "Request Header Fields Too Large", "headers_too_large",
                       "the request head is larger than AGENTD_MAX_HEADER_BYTES");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            if (hi.content_length > g->lim.max_body_bytes) {
                reject(g, 413, "Payload Too Large", "payload_too_large",
                       "the request body is larger than AGENTD_MAX_BODY_BYTES");
                return moved ? BEV_OK : BEV_NEED_MORE;
            }
            evbuffer_remove_buffer(src, dst, hi.head_len);
            moved = 1;
            if (hi.chunked) {
                head_deadline(g);
                g->st = G_CHUNKED; /* the read deadline keeps running */
                chunk_scan_init(&g->cs);
            } else if (hi.content_length > 0) {
                head_deadline(g);
                g->st = G_BODY;
                g->body_left = hi.content_length;
            } else {
                g->st = G_IDLE;
                if (g->head_armed || g->connect_timer)
                    evtimer_del(g->timer);
                g->head_armed = g->connect_timer = 0;
            }
            break;
        }
        }
    }
    return moved ? BEV_OK : BEV_NEED_MORE;
}

/* Only a request not whole in one callback pays for the two timer changes. */
static enum bufferevent_filter_result filter_in(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                void *ctx)
{
    (void)limit; (void)mode;
    struct guard *g = ctx;
    enum bufferevent_filter_result res = filter_scan(g, src, dst);
    int reading = g->st == G_HEAD || g->st == G_BODY || g->st == G_CHUNKED;
    if (reading != g->lib_timer_off && (reading || g->st == G_IDLE)) {
        int64_t ms = g->lim.idle_timeout_ms;
        struct timeval idle = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
        bufferevent_set_timeouts(g->filter, reading ? NULL : &idle, &idle);
        g->lib_timer_off = reading;
    }
    return res;
}

/* Response bytes go from the filter's output buffer straight to the socket
 * (evbuffer_write), not through the socket bufferevent. libevent 2.1's filter
 * reports a reply "written" as soon as it moved the bytes down a layer, and
 * evhttp then shuts a Connection: close socket while they are still queued.
 * Writing here, and telling evhttp only when the kernel has every byte,
 * keeps that contract exact. */
static void flush_direct(struct guard *g);
static void note_unflushed(struct guard *g);

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    flush_direct(arg);
}

/* TLS: the bytes must be encrypted, so they go through the TLS
 * bufferevent; evhttp is told the reply is written once that has handed
 * every record to the kernel (tls_drained). */
static void flush_tls(struct guard *g)
{
    struct evbuffer *out = bufferevent_get_output(g->filter);
    if (g->st == G_REJECTED)
        return;
    if (evbuffer_get_length(out) > 0)
        bufferevent_write_buffer(g->under, out);
    note_unflushed(g);
    if (evbuffer_get_length(bufferevent_get_output(g->under)) == 0 &&
        (bufferevent_get_enabled(g->filter) & EV_WRITE))
        bufferevent_trigger(g->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void flush_direct(struct guard *g)
{
    if (g->tls) {
        flush_tls(g);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(g->filter);
    evutil_socket_t fd = bufferevent_getfd(g->under);
    if (fd < 0 || g->st == G_REJECTED)
        return;
    while (evbuffer_get_length(out) > 0) {
        int n = evbuffer_write(out, fd);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        /* the peer is gone: let evhttp see the error on its own path */
        evbuffer_drain(out, evbuffer_get_length(out));
        note_unflushed(g);
        bufferevent_trigger_event(g->filter, BEV_EVENT_ERROR | BEV_EVENT_WRITING,
                                  BEV_TRIG_DEFER_CALLBACKS);
        return;
    }
    note_unflushed(g);
    if (evbuffer_get_length(out) > 0) {
        if (!g->wev)
            g->wev = event_new(bufferevent_get_base(g->filter), fd, EV_WRITE, on_writable, g);
        if (g->wev)
            event_add(g->wev, NULL);
        return;
    }
    /* every byte is in the kernel: now evhttp may finish the reply */
    if (bufferevent_get_enabled(g->filter) & EV_WRITE)
        bufferevent_trigger(g->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct guard *g = arg;
    g->kick_pending = 0;
    flush_direct(g);
}

/* The filter's own output path moves nothing; flush_direct() does the writing. */
static enum bufferevent_filter_result filter_out(struct evbuffer *src, struct evbuffer *dst,
                                                 ev_ssize_t limit, enum bufferevent_flush_mode mode,
                                                 void *ctx)
{
    (void)src; (void)dst; (void)limit; (void)mode; (void)ctx;
    return BEV_NEED_MORE;
}

/* Tracks whether this connection still has response bytes to send, so a
 * draining server can wait for the last byte, not just the last reply. */
static void note_unflushed(struct guard *g)
{
    int now = evbuffer_get_length(bufferevent_get_output(g->filter)) +
              evbuffer_get_length(bufferevent_get_output(g->under)) > 0;
    if (now != g->unflushed) {
        g->unflushed = now;
        atomic_fetch_add(g->lim.unflushed, now ? 1 : -1);
    }
}

static void on_output_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    struct guard *g = arg;
    /* evhttp adds a reply in ~10 pieces (a line per header): one kick, and
     * the bytes are plainly there (callbacks run inside the add) */
    if (info->n_added > 0) {
        if (!g->kick_pending) {
            g->kick_pending = 1;
            event_active(g->kick, 0, 0);
        }
        if (!g->unflushed) {
            g->unflushed = 1;
            atomic_fetch_add(g->lim.unflushed, 1);
        }
        return;
    }
    note_unflushed(g);
}

static void on_socket_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct guard *g = arg;
    note_unflushed(g);
    /* TLS: the last record left for the kernel, so evhttp may finish the reply */
    if (g->tls && info->n_deleted > 0 && evbuffer_get_length(buf) == 0 &&
        g->st != G_REJECTED && (bufferevent_get_enabled(g->filter) & EV_WRITE))
        bufferevent_trigger(g->filter, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void guard_free(void *ctx)
{
    struct guard *g = ctx;
    if (g->counted)
        atomic_fetch_sub(g->lim.connections, 1);
    if (g->unflushed)
        atomic_fetch_sub(g->lim.unflushed, 1);
    if (g->tls) {
        /* a connection that ends before its handshake did: plain HTTP on the
         * TLS port, a refused protocol version, a client that gave up */
        SSL *ssl = bufferevent_openssl_get_ssl(g->under);
        if (ssl && !SSL_is_init_finished(ssl))
            metric_inc(tls_failures);
        ERR_clear_error(); /* this thread's queue: never left for another connection to read */
    }
    evbuffer_remove_cb(bufferevent_get_output(g->under), on_socket_output, g);
    if (g->wev)
        event_free(g->wev);
    event_free(g->timer);
    event_free(g->kick);
    free(g);
}

struct bufferevent *guard_bev_new(struct event_base *base, const struct guard_limits *lim,
                                  SSL *ssl)
{
    struct guard *g = calloc(1, sizeof *g);
    if (!g) {
        SSL_free(ssl);
        return NULL;
    }
    g->lim = *lim;
    g->timer = evtimer_new(base, on_timer, g);
    g->kick = event_new(base, -1, 0, on_kick, g);
    if (ssl) {
        /* the fd comes later (evhttp sets it); the handshake starts then */
        g->tls = 1;
        g->under = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                  BEV_OPT_CLOSE_ON_FREE);
        if (g->under)
            bufferevent_openssl_set_allow_dirty_shutdown(g->under, 1);
        else
            SSL_free(ssl);
    } else {
        g->under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!g->timer || !g->kick || !g->under)
        goto fail;
    g->filter = bufferevent_filter_new(g->under, filter_in, filter_out, BEV_OPT_CLOSE_ON_FREE,
                                       guard_free, g);
    if (!g->filter)
        goto fail;
    evbuffer_add_cb(bufferevent_get_output(g->filter), on_output_added, g);
    evbuffer_add_cb(bufferevent_get_output(g->under), on_socket_output, g);
    atomic_fetch_add(g->lim.connections, 1);
    g->counted = 1;
    g->fresh = 1;
    arm(g, g->lim.read_timeout_ms);
    return g->filter;
fail:
    if (g->under)
        bufferevent_free(g->under);
    if (g->timer)
        event_free(g->timer);
    if (g->kick)
        event_free(g->kick);
    free(g);
    return NULL;
}
