/* Connection guard: a bufferevent filter between each client socket and the
 * HTTP library. It sees every request head first, so limits are answered by
 * agentd in JSON (400 malformed, 408 too slow, 413 body, 431 headers, 503
 * over the connection cap) instead of by the library's HTML pages, and a
 * slow client (slowloris) is cut off after AGENTD_READ_TIMEOUT. */
#ifndef AGENTD_HTTP_GUARD_H
#define AGENTD_HTTP_GUARD_H

#include <stdatomic.h>
#include <stdint.h>

struct event_base;
struct bufferevent;
typedef struct ssl_st SSL;

struct guard_limits {
    int64_t max_header_bytes;
    int64_t max_body_bytes;
    int64_t read_timeout_ms;
    int64_t idle_timeout_ms;  /* the library's keep-alive timer, paused while a request is read */
    int max_connections;
    atomic_int *connections; /* shared live-connection counter */
    atomic_int *unflushed;   /* connections with response bytes not yet sent */
    int access_log;
};

/* A new filter bufferevent over a new socket bufferevent (fd set later by
 * the HTTP library), or over a TLS bufferevent accepting on ssl when ssl is
 * not NULL (the connection owns ssl from then on, even on failure).
 * Returns NULL on out of memory. */
struct bufferevent *guard_bev_new(struct event_base *base, const struct guard_limits *lim,
                                  SSL *ssl);

/* agentd_http_rejected_total{reason}, every reason at 0, and
 * agentd_tls_handshake_failures_total. Before serving. */
void guard_metrics_init(void);

#endif
