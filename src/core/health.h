/* Dependency health checks for /readyz and /health. Each check is a blocking
 * probe (a store query, a TCP connect...) run on the worker pool, never on a
 * loop thread; the report completes back on the asking loop. */
#ifndef AGENTD_CORE_HEALTH_H
#define AGENTD_CORE_HEALTH_H

#include <stddef.h>

#define HEALTH_MAX 16

struct loop;

/* Returns 0 when healthy; may write a short reason into detail. */
typedef int (*health_check_fn)(void *ud, char *detail, size_t len);

/* critical: a failing check makes /readyz 503. Register before serving. */
void health_register(const char *name, health_check_fn fn, void *ud, int critical);
void health_reset(void); /* tests */

struct health_result {
    const char *name;
    int ok;
    int critical;
    double latency_ms;
    char detail[160];
};

struct health_report {
    int n;
    int ready; /* every critical check passed */
    struct health_result r[HEALTH_MAX];
};

/* Runs every check on the default worker pool and calls done(report, arg) on
 * `origin`'s thread (inline when there is no pool or no check). The report
 * is only valid during the callback. Returns 0 or a negative AGENTD_E*. */
int health_run(struct loop *origin, void (*done)(const struct health_report *rep, void *arg), void *arg);

#endif
