/* Authentication failures throttled per client address: each refused
 * credential charges the address's budget; an exhausted address is refused
 * 429 before its next credential is looked up in the store. */
#ifndef AGENTD_AUTH_THROTTLE_H
#define AGENTD_AUTH_THROTTLE_H

#include <stdint.h>

#include "core/ratelimit.h"

struct auth_throttle;

/* A throttle charging rule (AGENTD_AUTH_FAIL_LIMIT) to backend b, which it
 * takes (in-process, or the shared Redis one). *out stays NULL (and b is
 * freed) when rule is off. 0, or AGENTD_ENOMEM. */
int auth_throttle_new(const struct ratelimit_rule *rule, struct ratelimit_backend *b,
                      struct auth_throttle **out);
void auth_throttle_free(struct auth_throttle *t);

/* Seconds (>= 1) until addr (an address without its port) may present
 * credentials again, or 0 when it may now. Local memory only: no store, no
 * backend round trip, so a valid client pays nothing for it. */
int64_t auth_throttle_wait(struct auth_throttle *t, const char *addr, int64_t now_ns);

/* One refused credential of addr at now_ns: charged to the backend; when the
 * budget is spent the address is blocked (auth_throttle_wait) until one unit
 * of it comes back. The decision may arrive later, on the caller's loop. */
void auth_throttle_fail(struct auth_throttle *t, const char *addr, int64_t now_ns);

#endif
