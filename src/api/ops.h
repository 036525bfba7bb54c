/* Operations endpoints: /healthz (alive), /readyz (ready for traffic),
 * /health (dependencies, version, uptime), /metrics (Prometheus). */
#ifndef AGENTD_API_OPS_H
#define AGENTD_API_OPS_H

#include <stdatomic.h>
#include <stdint.h>

struct router;
struct http_server;

struct llm;

/* The model providers' start-up check (AGENTD_LLM_STARTUP_CHECK). */
enum ops_llm_gate { OPS_LLM_GATE_OFF, OPS_LLM_GATE_RUNNING, OPS_LLM_GATE_PASSED, OPS_LLM_GATE_REFUSED };

struct ops_state {
    struct http_server *srv; /* set once serving */
    atomic_int warm;         /* 1 once start-up work is done */
    int64_t start_wall_ms;
    int64_t start_mono_ms;
    const struct llm *llm;   /* /health lists its providers (NULL: none shown) */
    int test_payments;       /* test payment handlers are accepted: /health says so */
    int test_payments_warn;  /* ... in production (AGENTD_ALLOW_TEST_PAYMENTS): a warning */
    atomic_int llm_gate;     /* enum ops_llm_gate: /readyz waits while RUNNING, refuses REFUSED */
    char llm_gate_reason[512]; /* why REFUSED; written before llm_gate is stored */
};

/* Registers the four routes and the process metrics. st must outlive the router. */
int ops_routes(struct router *rt, struct ops_state *st);

#endif
