/* Idempotency-Key for mutating requests (Stripe semantics): the first
 * request with a key runs and its reply is stored before it is sent; a retry
 * with the same key and the same request gets the stored reply again
 * (Idempotent-Replayed: true); the same key with a different request, or
 * while the first is still running, gets 409. Keys are scoped per principal
 * and kept 24 h. */
#ifndef AGENTD_API_IDEMPOTENCY_H
#define AGENTD_API_IDEMPOTENCY_H

#include "http/server.h"

struct store;

#define IDEM_TTL_MS (24LL * 3600 * 1000)
#define IDEM_KEY_MAX 255

/* Renders an error reply in the front's own shape (UCP messages, or the
 * generic error object when NULL). */
typedef void (*idem_error_fn)(struct http_req *r, int status, const char *code, const char *message);

/* Runs handler(r) under the request's Idempotency-Key header, if any (no
 * header: handler runs as is). principal scopes the key. The handler replies
 * as usual; 5xx replies are not stored (the claim is dropped so a retry can
 * run again). */
/* flags: IDEM_KEEP_5XX stores 5xx replies too (a failed agent turn may
 * already have run tools: a retry must replay, never run it again). */
#define IDEM_KEEP_5XX 0x1u
void idem_handle(struct http_req *r, struct store *st, const char *principal, http_handler handler,
                 idem_error_fn on_error, unsigned flags);

/* 1 when key is 1..IDEM_KEY_MAX visible ASCII characters. */
int idem_key_valid(const char *key);

#endif
