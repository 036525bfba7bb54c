/* The outbound HTTP client: libcurl multi driven by one loop's event_base
 * (curl's hiperfifo pattern), used by the LLM client and the profile fetcher.
 * Sockets and the multi timer are libevent events, so transfers progress
 * while the loop serves everything else and no thread ever waits. */
#ifndef AGENTD_HTTP_CLIENT_H
#define AGENTD_HTTP_CLIENT_H

#include <curl/curl.h>

struct loop;
struct http_client;

/* Called on the loop when a transfer ends (result CURLE_OK or the error);
 * the easy handle is already removed from the multi and belongs to the
 * callee again. */
typedef void (*http_client_done_fn)(CURL *easy, CURLcode result, void *ud);

/* One per loop thread; use it only from that thread. */
struct http_client *http_client_new(struct loop *loop);
/* On the loop thread, or after it stopped but before its base is freed.
 * Every transfer must have been removed first (http_client_remove): the
 * per-transfer record it allocated is freed only there (libcurl 7.88 has no
 * way to list a multi handle's transfers). */
void http_client_free(struct http_client *cl);

/* Caps the connections this loop's transfers hold open (busy and idle, all
 * hosts; the HTTP/1.1 handles together and the HTTP/2 handle each): a
 * transfer that would need one more waits inside libcurl until one is free
 * (its timeout keeps running). 0 = no cap (the default). The HTTP/1.1 cap
 * is split evenly among the handles it allows (one per 512), so a cap
 * under 1 024 keeps a single handle. */
void http_client_set_max_connections(struct http_client *cl, long n);
/* HTTP/1.1 transfers fill one multi handle (one libcurl connection cache)
 * up to n in flight (default 512) before the next of up to 16 is opened:
 * libcurl 7.88's per-transfer walks over the cache then stay bounded.
 * Tests set a small n; http_client_h1_handles says how many were opened. */
void http_client_set_shard_transfers(struct http_client *cl, int n);
int http_client_h1_handles(const struct http_client *cl);

/* Starts a transfer. Returns 0, AGENTD_ENOMEM, or AGENTD_EINTERNAL (libcurl
 * refused the handle). done() never runs inside this call. */
int http_client_add(struct http_client *cl, CURL *easy, http_client_done_fn done, void *ud);
/* The same for a transfer that asked for HTTP/2 with PIPEWAIT: it runs on a
 * second multi handle that caps connections per host, so a burst of calls
 * waits for a stream instead of opening a connection each. Never for a
 * transfer that may end up on HTTP/1.1 in numbers (it would queue). */
int http_client_add_h2(struct http_client *cl, CURL *easy, http_client_done_fn done, void *ud);
/* Stops a transfer without its callback (cancel). The caller frees easy. */
void http_client_remove(struct http_client *cl, CURL *easy);

/* Transfers in progress (tests check that everything ended). */
int http_client_active(const struct http_client *cl);

#endif
