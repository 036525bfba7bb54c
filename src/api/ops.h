/* Operations endpoints: /healthz (alive), /readyz (ready for traffic),
 * /health (dependencies, version, uptime), /metrics (Prometheus). */
#ifndef AGENTD_API_OPS_H
#define AGENTD_API_OPS_H

#include <stdatomic.h>
#include <stdint.h>

struct router;
struct http_server;

struct ops_state {
    struct http_server *srv; /* set once serving */
    atomic_int warm;         /* 1 once start-up work is done */
    int64_t start_wall_ms;
    int64_t start_mono_ms;
};

/* Registers the four routes and the process metrics. st must outlive the router. */
int ops_routes(struct router *rt, struct ops_state *st);

#endif
