/* Crash recovery's entry point: the periodic sweep that adopts and resumes
 * (or fails) the turns of processes that died. Defined in recover.c. */
#ifndef AGENTD_AGENT_RECOVER_H
#define AGENTD_AGENT_RECOVER_H

struct agent;
struct loop;

/* Finds running turns whose process died — one on this host whose pid is
 * gone (or is now ours), or any whose heartbeat is older than its lease
 * (another replica died) — adopts each (a compare-and-swap, so one replica
 * wins) and resumes it from its last checkpoint on one of `loops`, or fails
 * it when ag->recovery says so. Tool calls replayed by a resumed turn carry
 * their original operation keys, so no effect is applied twice. Runs on the
 * worker pool; call from any thread, at start and then periodically. A
 * sweep still running makes the call a no-op. */
void agent_recover(struct agent *ag, struct loop *const *loops, int nloops);

#endif
