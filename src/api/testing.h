/* Test-only routes under /testing/, mounted only when AGENTD_SIMULATION_SECRET
 * is set (production refuses to start with it) and guarded by the
 * Simulation-Secret header on every call. */
#ifndef AGENTD_API_TESTING_H
#define AGENTD_API_TESTING_H

struct router;
struct config;

/* Mounts nothing when cfg->simulation_secret is NULL. */
int testing_routes(struct router *rt, const struct config *cfg);

/* 1 when the request carries the right Simulation-Secret (constant time);
 * otherwise answers 403 and returns 0. */
struct http_req;
int testing_authorized(struct http_req *r);

#endif
