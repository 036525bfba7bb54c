/* libcurl multi driven by one loop's event_base (curl's hiperfifo pattern):
 * sockets and the multi timer are libevent events, so transfers progress
 * while the loop serves everything else and no thread ever waits. */
#ifndef AGENTD_LLM_CURL_LOOP_H
#define AGENTD_LLM_CURL_LOOP_H

#include <curl/curl.h>

struct loop;
struct curl_loop;

/* Called on the loop when a transfer ends (result CURLE_OK or the error);
 * the easy handle is already removed from the multi and belongs to the
 * callee again. */
typedef void (*curl_loop_done_fn)(CURL *easy, CURLcode result, void *ud);

/* One per loop thread; use it only from that thread. */
struct curl_loop *curl_loop_new(struct loop *loop);
/* On the loop thread, or after it stopped but before its base is freed.
 * Every transfer must have been removed first (curl_loop_remove): the
 * per-transfer record it allocated is freed only there (libcurl 7.88 has no
 * way to list a multi handle's transfers). */
void curl_loop_free(struct curl_loop *cl);

/* Caps the connections this loop's transfers hold open (busy and idle, all
 * hosts): a transfer that would need one more waits inside libcurl until
 * one is free (its timeout keeps running). 0 = no cap (the default). */
void curl_loop_set_max_connections(struct curl_loop *cl, long n);

/* Starts a transfer. Returns 0 or -1. done() never runs inside this call. */
int curl_loop_add(struct curl_loop *cl, CURL *easy, curl_loop_done_fn done, void *ud);
/* Stops a transfer without its callback (cancel). The caller frees easy. */
void curl_loop_remove(struct curl_loop *cl, CURL *easy);

/* Transfers in progress (tests check that everything ended). */
int curl_loop_active(const struct curl_loop *cl);

#endif
