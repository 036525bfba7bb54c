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
struct store_idem;

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
/* IDEM_TAKEOVER: a claim whose process died (core/instance.h) is taken over
 * at once and the handler runs again under it; for handlers whose rerun
 * carries the first run on (a completion names its authorization by the
 * key). Without it such a claim is left to whoever finishes it (a turn's
 * crash recovery) or to its lease. */
#define IDEM_TAKEOVER 0x2u
void idem_handle(struct http_req *r, struct store *st, const char *principal, http_handler handler,
                 idem_error_fn on_error, unsigned flags);

/* This process's instance id and instance lock directory (NULL = none:
 * then only a pid on this host or the lease tells a dead claimant). Once,
 * before serving; copied. Claims name their process from then on. */
void idem_set_instance(const char *instance, const char *lock_dir);

/* 1 when key is 1..IDEM_KEY_MAX visible ASCII characters. */
int idem_key_valid(const char *key);

/* ---- the layer without HTTP (idem_handle runs these on the worker pool;
 * unit tests call them against a store directly) ---- */

/* What a request brings to the layer. */
struct idem_request {
    const char *principal;   /* NULL = "anonymous" */
    const char *key;         /* a valid Idempotency-Key */
    const char *method, *uri;
    const char *body;
    size_t body_len;
    const char *owner;       /* this process's instance id; NULL = the claim names none */
    const char *lock_dir;    /* instance lock files (NULL = none) */
    int takeover;            /* take a dead process's claim over (IDEM_TAKEOVER) */
};

/* What to do with a request after its claim. */
enum idem_verdict {
    IDEM_RUN,     /* the claim is new: run the handler, then idem_record() */
    IDEM_REPLAY,  /* the same request finished before: send the stored reply */
    IDEM_REFUSE,  /* answer status/code/message (and Retry-After: 1 when retry_after) */
};
struct idem_decision {
    enum idem_verdict verdict;
    int status;
    const char *code, *message; /* static strings */
    int retry_after;
};

/* Claims q's key on the worker: store_idem_claim with q's fingerprint
 * (written to fingerprint) and owner. With q->takeover, a claim of the same
 * request in progress whose process is dead is taken over: 0 as for a new
 * claim. The store's status; *existing as it sets it. */
int idem_claim(struct store *st, const struct idem_request *q, char fingerprint[65],
               struct store_idem **existing);
/* The verdict on a claim's status and record (pure). */
void idem_decide(int claim_rc, const struct store_idem *existing, const char *fingerprint,
                 struct idem_decision *d);
/* Persists the handler's reply under the claim (headers: a JSON object of
 * the reply's headers, Content-Type included), or drops the claim for a 5xx
 * unless flags has IDEM_KEEP_5XX. The store's status. */
int idem_record(struct store *st, const char *principal, const char *key, unsigned flags,
                int status, const char *headers, const char *body, size_t len);

#endif
