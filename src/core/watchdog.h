/* The liveness behind systemd's WATCHDOG=1 pings: the main thread pings only
 * while every loop thread still runs what is posted to it, so a wedged loop
 * (not just a live main thread) gets the process restarted (WatchdogSec=). */
#ifndef AGENTD_CORE_WATCHDOG_H
#define AGENTD_CORE_WATCHDOG_H

#include <stdatomic.h>
#include <stdint.h>

struct loop;

/* Zero-initialised; lives as long as any loop may still run a probe (the
 * loops' inboxes are drained at shutdown, so: until after the loops). */
struct watchdog {
    atomic_int pending;  /* probes posted, not yet run */
    int64_t probe_ms;    /* when they were posted */
};

/* One tick on the pinging thread. Returns 1 when every loop ran the previous
 * probe (ping now) and posts the next one to each loop; returns 0 while one
 * has not (stalled since w->probe_ms) and posts nothing. */
int watchdog_tick(struct watchdog *w, struct loop *const *loops, int n, int64_t now_ms);

#endif
