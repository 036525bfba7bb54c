/* Health check registry and the one pool job that runs all checks. */
#include "core/health.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/pool.h"

#include <stdlib.h>
#include <string.h>

struct check {
    const char *name;
    health_check_fn fn;
    void *ud;
    int critical;
};

static struct check checks[HEALTH_MAX];
static int nchecks;

void health_register(const char *name, health_check_fn fn, void *ud, int critical)
{
    if (nchecks < HEALTH_MAX)
        checks[nchecks++] = (struct check){ name, fn, ud, critical };
}

void health_reset(void) { nchecks = 0; }

struct run {
    struct health_report rep;
    void (*done)(const struct health_report *, void *);
    void *arg;
};

static void run_checks(void *p)
{
    struct run *run = p;
    run->rep.ready = 1;
    for (int i = 0; i < nchecks; i++) {
        struct health_result *res = &run->rep.r[run->rep.n++];
        res->name = checks[i].name;
        res->critical = checks[i].critical;
        int64_t t0 = clock_mono_ns();
        res->ok = checks[i].fn(checks[i].ud, res->detail, sizeof res->detail) == 0;
        res->latency_ms = (double)(clock_mono_ns() - t0) / 1e6;
        if (!res->ok && res->critical)
            run->rep.ready = 0;
    }
}

static void complete(void *p)
{
    struct run *run = p;
    run->done(&run->rep, run->arg);
    free(run);
}

int health_run(struct loop *origin, void (*done)(const struct health_report *, void *), void *arg)
{
    struct run *run = calloc(1, sizeof *run);
    if (!run)
        return AGENTD_ENOMEM;
    run->done = done;
    run->arg = arg;
    struct pool *pool = pool_default();
    if (nchecks == 0 || !pool) {
        run_checks(run);
        complete(run);
        return 0;
    }
    if (pool_submit(pool, origin, run_checks, complete, run) != 0) {
        free(run);
        return AGENTD_EBUSY;
    }
    return 0;
}
