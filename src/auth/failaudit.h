/* Authentication failures into the audit log as bursts: one row per client
 * address per minute with a count, so a flood of bad keys is one row. */
#ifndef AGENTD_AUTH_FAILAUDIT_H
#define AGENTD_AUTH_FAILAUDIT_H

struct store;
struct http_req;

/* The store rows go to; NULL turns the audit of failures off. */
void auth_failaudit_set_store(struct store *st);

/* Counts one refused request of r's address (reason: "missing", "invalid"...).
 * Never blocks: the write runs on the worker pool, one at a time per address,
 * and failures that arrive meanwhile join the next write's count. */
void auth_failaudit_note(const struct http_req *r, const char *reason);
/* The same for a request refused 429 before its credentials were read (its
 * address spent its failure budget): action "auth.throttled", its own burst
 * row. The key is never part of it. */
void auth_failaudit_throttled(const struct http_req *r);

#endif
