/* Rate limits at the door: a gate step after authentication that charges
 * each request to its principal's (or anonymous client address's) budgets. */
#ifndef AGENTD_AUTH_LIMIT_H
#define AGENTD_AUTH_LIMIT_H

struct config;
struct http_server;
struct ratelimit_backend;

struct auth_limit;

/* The limiter for cfg (AGENTD_RATE_LIMIT, AGENTD_RATE_LIMIT_TURNS) over the
 * backend b, which it takes (NULL = the in-process one). *out stays NULL
 * when both budgets are off. 0, or AGENTD_ENOMEM. */
int auth_limit_new(const struct config *cfg, struct ratelimit_backend *b, struct auth_limit **out);
void auth_limit_free(struct auth_limit *l);
/* Adds the limiter as a gate step of srv, after authentication (install
 * the auth gate first: the budget is the principal's). NULL: nothing. */
void auth_limit_install(struct auth_limit *l, struct http_server *srv);

#endif
