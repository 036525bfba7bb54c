/* Rate limits: the rule syntax ("20/s,40"), GCRA token-bucket math, and the
 * limiter interface with its in-process backend (sharded, bounded, locked). */
#ifndef AGENTD_CORE_RATELIMIT_H
#define AGENTD_CORE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* A budget: `burst` requests at once, refilled at one per `interval_ns`.
 * interval_ns == 0 means off (no limit). */
struct ratelimit_rule {
    int64_t interval_ns; /* time one unit of cost takes to come back */
    int64_t burst;       /* bucket size, >= 1 */
};

/* "off", "N/s", "N/m", "N/h", each optionally ",BURST" (default burst: N,
 * at least 1). N and BURST are positive integers up to 1e9. 0, or
 * AGENTD_EINVAL with the reason in *e. */
int ratelimit_rule_parse(const char *text, struct ratelimit_rule *rule, struct agentd_error *e);

/* What one check decided; the fields are what the RateLimit-* headers say. */
struct ratelimit_decision {
    int allowed;
    int64_t limit;          /* the burst */
    int64_t remaining;      /* units left after this request */
    int64_t reset_s;        /* seconds until the bucket is full again (rounded up) */
    int64_t retry_after_s;  /* refused: seconds until this cost fits (>= 1); allowed: 0 */
    int unavailable;        /* refused because the shared backend cannot decide (Redis down,
                               AGENTD_RATE_LIMIT_ON_REDIS_DOWN=closed): 503, not 429 */
};

/* The bucket math (GCRA: the state is one "theoretical arrival time"). Given
 * the stored tat (0 = none), decides for cost at now_ns and returns the tat
 * to store (unchanged when refused). Pure. */
int64_t ratelimit_gcra(const struct ratelimit_rule *rule, int64_t tat, int64_t cost,
                       int64_t now_ns, struct ratelimit_decision *d);

/* ---- the limiter interface: a backend decides check(key, bucket, cost, now) ----
 * The in-process backend answers at once; a shared one (kv/ratelimit_redis.h)
 * answers later on the caller's loop, hence the callback: done is called
 * exactly once, possibly before check returns. */
typedef void (*ratelimit_done_fn)(const struct ratelimit_decision *d, void *ud);
struct ratelimit_backend {
    void (*check)(struct ratelimit_backend *b, const char *key, const char *bucket,
                  const struct ratelimit_rule *rule, int64_t cost, int64_t now_ns,
                  ratelimit_done_fn done, void *ud);
    void (*free)(struct ratelimit_backend *b);
};

/* The in-process backend: buckets keyed by (bucket, key) in a hash table of
 * 64 shards, each under its own mutex (loops are threads). At most
 * max_entries buckets: a full shard first drops buckets that are full again
 * (they hold no state), then the one nearest to full, so an address flood
 * costs bounded memory. NULL without memory. */
struct ratelimit_backend *ratelimit_mem_new(size_t max_entries);
/* Buckets held now (tests, metrics). */
size_t ratelimit_mem_size(struct ratelimit_backend *b);

#endif
