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
 * hosts; the HTTP/1.1 and the HTTP/2 handle each): a transfer that would need one more waits inside libcurl until
 * one is free (its timeout keeps running). 0 = no cap (the default). */
void http_client_set_max_connections(struct http_client *cl, long n);

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
