/* The liveness check behind systemd's watchdog pings: one probe per loop per
 * tick, and a ping only when the previous round all ran (core/watchdog.h). */
#include "core/watchdog.h"

#include "core/loop.h"

static void watchdog_probe(void *arg)
{
    struct watchdog *w = arg;
    atomic_fetch_sub(&w->pending, 1);
}

int watchdog_tick(struct watchdog *w, struct loop *const *loops, int n, int64_t now_ms)
{
    if (atomic_load(&w->pending) > 0)
        return 0;
    w->probe_ms = now_ms;
    /* counted before posting: a loop may run its probe before the next post */
    atomic_store(&w->pending, n);
    for (int i = 0; i < n; i++)
        if (loop_post(loops[i], watchdog_probe, w) != 0)
            atomic_fetch_sub(&w->pending, 1); /* out of memory: not a stall */
    return 1;
}
