/* The shared rate-limit backend: GCRA in one Lua script on Redis, so every
 * replica charges the same buckets; what happens while Redis is down is the
 * operator's choice (AGENTD_RATE_LIMIT_ON_REDIS_DOWN). */
#ifndef AGENTD_KV_RATELIMIT_REDIS_H
#define AGENTD_KV_RATELIMIT_REDIS_H

#include "core/ratelimit.h"

struct redis;
struct redisReply;

/* A backend over r (not owned). closed: while Redis cannot answer, refuse
 * with decision.unavailable; else (open) decide with `fallback`, an
 * in-process backend this one owns (each replica then limits on its own).
 * NULL without memory (fallback is freed). */
struct ratelimit_backend *ratelimit_redis_new(struct redis *r, int closed,
                                              struct ratelimit_backend *fallback);

/* agentd_ratelimit_backend_errors_total (at 0 on every server, Redis or
 * not); ratelimit_redis_new calls it too. */
void ratelimit_redis_metrics_register(void);

/* The script's reply {allowed, ns until the bucket is full, remaining} into
 * a decision for rule and cost. Pure; 0, or -1 for a reply of another shape. */
int ratelimit_redis_decision(const struct redisReply *rep, const struct ratelimit_rule *rule,
                             int64_t cost, struct ratelimit_decision *d);

/* The Lua script (tests, docs) */
extern const char ratelimit_redis_script[];

#endif
