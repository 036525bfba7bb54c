/* HTTP server: N loop threads, each with its own event_base, evhttp and
 * SO_REUSEPORT listener. A request lives on one loop from accept to last
 * byte. Handlers reply at once or later (deferred) from the same loop;
 * streaming replies (SSE) go through http_stream_*. */
#ifndef AGENTD_HTTP_SERVER_H
#define AGENTD_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "core/reqid.h"
#include "http/router.h"

struct config;
struct trace_span;
struct loop;
struct evhttp_request;
struct http_server;
struct http_loop;

/* One request. Owned by the server; valid from the handler call until the
 * reply is finished (http_reply_* or http_stream_end). */
struct http_req {
    /* Every field up to `match` starts zeroed; the arrays from `match` on
     * are written before they are read (server.c: the request is not
     * zeroed whole, ~3 KB, and comes from its loop's list of spares). */
    struct evhttp_request *ev;
    struct http_loop *hl;
    struct loop *loop;
    struct http_server *srv;
    enum http_method method;
    const char *route_label;        /* the route template, or "unmatched" */
    int gate_next;                  /* the next gate step http_req_proceed runs */
    const char *uri;                /* the request target as sent (path + query) */
    const char *path;               /* its path part */
    const char *query;              /* raw query string or NULL */
    const char *body;               /* NUL-terminated; body_len bytes */
    size_t body_len;
    int64_t start_ns;
    int status;
    size_t notes_len;
    size_t bytes_out;
    int streaming;
    int client_gone;
    void (*on_client_gone)(struct http_req *r, void *ud);
    void *gone_ud;
    void *ud;                       /* the handler's own state */
    /* When set, the next reply is handed to the hook instead of being sent
     * (the hook is cleared first, so the hook sends it with http_reply_raw
     * when it is ready). Idempotency uses it to persist a reply before the
     * client can see it. body is malloc'd and owned by the hook. */
    void (*reply_hook)(struct http_req *r, int status, const char *content_type, char *body,
                       size_t len, void *ud);
    void *hook_ud;
    /* A handler that keeps state for a deferred reply (a timer, a stream)
     * sets this: at shutdown, requests still unanswered after the drain are
     * dropped and on_abort frees that state. */
    void (*on_abort)(struct http_req *r, void *ud);
    void *abort_ud;
    struct http_req *prev, *next; /* the loop's live requests; next: its spares */
    struct trace_span *span;      /* the request's server span; NULL when tracing is off */
    struct route_match match;       /* its head zeroed at the start; path written by the router */
    char request_id[REQID_MAX + 1];
    char principal[128];            /* "anonymous" until auth sets it */
    char remote[64];
    char error_code[48];            /* an error reply's error.code, for the access line */
    char notes[256];                /* http_req_note: key NUL value NUL ... (notes_len bytes) */
};

/* ---- replies (loop thread of r only) ---- */

const char *http_req_header(struct http_req *r, const char *name);
/* Every field line named name, read as one value (RFC 9110 5.3: lines of
 * one name are a comma-joined list, so a dictionary split over lines, or
 * garbage on a second line, is seen): the line itself when there is one,
 * else the lines joined with ", " into buf, cut at cap - 1 bytes (a caller
 * with a length limit below that sees the cut value as too long). NULL
 * when there is no such line. */
const char *http_req_header_joined(struct http_req *r, const char *name, char *buf, size_t cap);
/* Adds a field to this request's access line (e.g. "session_id"): copied
 * into the request (at most 256 bytes of notes; a value is cut at 128;
 * a note that does not fit is dropped — the access line must not cost an
 * allocation). A key noted again is written again: note each once. */
void http_req_note(struct http_req *r, const char *key, const char *value);
void http_set_header(struct http_req *r, const char *name, const char *value);
/* Sends body as JSON and finishes r. Takes ownership of body (may be NULL = no body). */
void http_reply_json(struct http_req *r, int status, json_t *body);
void http_reply_raw(struct http_req *r, int status, const char *content_type, const char *body,
                    size_t len);
/* {"error":{"code":...,"message":...,"request_id":...}} */
void http_reply_error(struct http_req *r, int status, const char *code, const char *message);
/* Maps an AGENTD_E* status through core/err.h; message NULL = the default. */
void http_reply_err(struct http_req *r, int err, const char *message);

/* Bodies of JSON routes: AGENTD_EMEDIATYPE when a body comes with a
 * Content-Type that is not JSON (application/json or any +json; absent is
 * accepted), AGENTD_EMALFORMED when it nests deeper than HTTP_JSON_MAX_DEPTH
 * (a parser's recursion is not the client's to choose); the reason in *e.
 * 0 when the front may parse it. */
#define HTTP_JSON_MAX_DEPTH 64
int http_req_check_json(struct http_req *r, struct agentd_error *e);
/* The deepest array/object nesting of JSON text (strings skipped), pure. */
int http_json_depth(const char *text, size_t len);

/* The response headers set so far (minus per-request ones: X-Request-Id,
 * Date, Content-Length, Connection, RateLimit-*) as a JSON object, for
 * replaying later. */
json_t *http_reply_headers_json(struct http_req *r);

/* Chunked streaming. start sends status + headers; write queues bytes (0, or
 * AGENTD_EIO when the client is gone or its unread output exceeds the cap, in which
 * case the stream should be ended); end finishes and frees r. on_gone is
 * called once, on the loop, if the client disconnects first. */
int http_stream_start(struct http_req *r, int status, const char *content_type,
                      void (*on_gone)(struct http_req *r, void *ud), void *ud);
int http_stream_write(struct http_req *r, const char *data, size_t len);
void http_stream_end(struct http_req *r);
size_t http_stream_pending(struct http_req *r);

/* ---- the gate: between routing and the handler ---- */

/* Called on the request's loop for every routed request, before its handler
 * (authentication: src/auth/gate.c, then rate limits: src/auth/limit.c). It
 * either calls http_req_proceed(r), at once or later from r's loop, or
 * replies (401/403/429...) itself, so a request it refuses never reaches a
 * handler. Each call adds a step after those set before (at most
 * HTTP_MAX_GATES); set before http_server_start. */
#define HTTP_MAX_GATES 4
typedef void (*http_gate_fn)(struct http_req *r, void *ud);
void http_server_set_gate(struct http_server *s, http_gate_fn gate, void *ud);
/* Runs r's next gate step, or the handler of its matched route once every
 * step let it through (a gate's "let it through"). */
void http_req_proceed(struct http_req *r);

/* ---- server lifecycle (main thread) ---- */

struct http_server *http_server_new(const struct config *cfg, struct router *router);
/* Binds every loop's listener and starts the loop threads. 0, or a negative
 * AGENTD_E* with the reason in *e. */
int http_server_start(struct http_server *s, struct agentd_error *e);
int http_server_port(const struct http_server *s);
/* 1 when the listeners speak TLS (AGENTD_TLS_CERT_FILE/KEY_FILE). */
int http_server_tls(const struct http_server *s);
/* SIGHUP: loads the certificate and key files again and swaps them in for
 * new connections (live ones keep theirs). A file that does not load keeps
 * the old pair: a negative AGENTD_E* with the reason in *e. 0 without TLS. */
int http_server_tls_reload(struct http_server *s, struct agentd_error *e);
/* The routing table the server dispatches with (read-only once serving). */
const struct router *http_server_router(const struct http_server *s);
/* Thread-safe: stop accepting; keep-alive connections get Connection: close. */
void http_server_begin_drain(struct http_server *s);
int http_server_draining(const struct http_server *s);
/* Requests accepted but not yet finished, over all loops. */
int64_t http_server_inflight(const struct http_server *s);
/* Connections whose response bytes are not all written yet. */
int http_server_unflushed(const struct http_server *s);
/* Stops the loops and joins their threads. Then finish the worker pool
 * (its completions queue up in the loops' inboxes), then http_server_free(),
 * which runs those completions, drops what is still unanswered and frees. */
void http_server_stop(struct http_server *s);
void http_server_free(struct http_server *s);

/* The loop a new request lands on is the one the kernel picked; this lets
 * other modules reach each loop (e.g. to run per-loop timers). */
int http_server_loop_count(const struct http_server *s);
struct loop *http_server_loop(const struct http_server *s, int i);

/* 5xx share of requests in the last 60 s, 0..1; and the request count. */
double http_server_error_rate_1m(const struct http_server *s, uint64_t *requests);

#endif
