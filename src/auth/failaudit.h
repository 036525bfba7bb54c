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

#endif
