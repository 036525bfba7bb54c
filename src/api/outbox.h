/* The outbox deliverer: sends the store's pending outbox rows (signed order
 * webhooks) from one loop, over the non-blocking HTTP client, with retries
 * (exponential backoff with jitter), dead-lettering and metrics. Rows are
 * claimed with this instance's id under a lease (store.h), so replicas
 * share one outbox; a buyer's request never waits on a receiver. */
#ifndef AGENTD_API_OUTBOX_H
#define AGENTD_API_OUTBOX_H

#include <stdint.h>

#include "core/err.h"

struct loop;
struct store;
struct sign_key;
struct outbox;

struct outbox_options {
    int64_t poll_ms;        /* how often due rows are looked for: 500 */
    int64_t timeout_ms;     /* one attempt, connect included: AGENTD_WEBHOOK_TIMEOUT, 10 s */
    int64_t backoff_min_ms; /* the first retry's delay: 1 s (then doubled) */
    int64_t backoff_max_ms; /* the longest delay: 10 min */
    int max_attempts;       /* then dead: AGENTD_WEBHOOK_MAX_ATTEMPTS, 20 */
    int64_t max_age_ms;     /* or this old: dead at its next failure: 24 h */
    int max_inflight;       /* sends at once: 16 */
};
void outbox_options_default(struct outbox_options *o);

/* key, st: borrowed, outlive it. instance: this process (core/instance.h);
 * lock_dir: the instance lock files (NULL: unknown), to know a claim's
 * process died without waiting out its lease.
 * allowlist: AGENTD_PROFILE_ALLOWLIST (the SSRF guard's exceptions).
 * public_url names our profile in the UCP-Agent header we send. NULL with
 * the reason in *e. Registers the metrics. */
struct outbox *outbox_new(struct store *st, const struct sign_key *key, const char *instance,
                          const char *lock_dir, const char *allowlist, const char *public_url,
                          const struct outbox_options *o, struct agentd_error *e);
/* Starts delivering on loop (posted to its thread). 0 or AGENTD_ENOMEM. */
int outbox_start(struct outbox *ob, struct loop *loop);
/* Any thread: another instance was just found dead (its heartbeat
 * stopped): the next tick releases the claims of dead holders, rather
 * than at its usual ~10 s round. NULL is fine. */
void outbox_adopt_soon(struct outbox *ob);
/* After the loops stopped and the worker pool finished, before the loops'
 * bases are freed: ends the sends in flight and gives this instance's
 * claims back (blocking store call), so the rows are due at once for the
 * next process. Late completions still queued on the loop are harmless. */
void outbox_stop(struct outbox *ob);
/* After the loops' inboxes ran (http_server_free). NULL is fine. */
void outbox_free(struct outbox *ob);

/* The delay before attempt n+1 after n failed attempts (n >= 1):
 * min(max, min * 2^(n-1)), then a uniformly random part of its upper half
 * taken off (jitter: receivers coming back are not hit by every sender at
 * once). r is a random value in [0, 1). Pure: for the unit test. */
int64_t outbox_backoff_ms(const struct outbox_options *o, int n, double r);

#endif
