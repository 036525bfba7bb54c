/* A process's identity and liveness, for crash recovery: the instance id
 * kept on its turns, an exclusive lock file it holds while it runs (the
 * kernel drops it when the process dies, however it dies), and the pid
 * probe. */
#ifndef AGENTD_CORE_INSTANCE_H
#define AGENTD_CORE_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

/* "host@pidns/pid/nonce" for this process. */
void instance_id(char *out, size_t len);
/* 1 when pid is gone, a zombie, or our own pid (the process before us). */
int instance_pid_dead(long pid);
/* The lock file of an instance under dir (its id with '/' and other
 * characters unsafe in names made '_'). */
void instance_lock_path(const char *dir, const char *instance, char *out, size_t len);
/* Creates dir and takes the instance's lock file (an exclusive flock);
 * returns its fd (hold it while running), or AGENTD_EIO with errno saying why. */
int instance_lock_take(const char *dir, const char *instance);
/* Removes the file, then drops the lock (a clean stop). */
void instance_lock_release(const char *dir, const char *instance, int fd);
/* 1: its process holds the lock (alive); 0: nobody does (dead); -1: no
 * such file, or it cannot be tested. dir is a char *. A dead one's file
 * stays (all its turns must find it) until instance_lock_reap(). */
int instance_lock_probe(void *dir, const char *instance);
/* Removes the lock files under dir that no process holds; returns how
 * many. Call it once nothing needs to ask about those instances (recovery,
 * after a sweep that adopted every orphan it saw). */
int instance_lock_reap(const char *dir);

/* Crash recovery's rule, pure but for the probes: is the process that
 * holds something (a running turn, a completion) dead? theirs/ours are
 * instances "host@pidns/pid/nonce"; theirs NULL (an old row) is dead; ours
 * is alive; else lock_probe(theirs) decides when it knows (1 alive, 0 dead,
 * -1 no lock file: unknown); else one of this host and pid namespace is
 * dead when pid_dead(its pid); else when its heartbeat (age_ms) is older
 * than lease_ms. Either probe may be NULL. */
int instance_orphaned(const char *ours, const char *theirs, int64_t age_ms, int64_t lease_ms,
                      int (*lock_probe)(void *ud, const char *instance), void *probe_ud,
                      int (*pid_dead)(long pid));

/* Counts work this process took over from a dead one, by what:
 * "turn_resumed", "turn_failed" (AGENTD_TURN_RECOVERY=fail, or nothing to
 * resume into), "completion" (a checkout's completion carried on). The
 * metric agentd_crash_recoveries_total{what}. Thread-safe. */
void instance_recovered(const char *what);
/* Registers that family with each `what` at 0 (before serving), so an
 * alert on it has a series before the first crash. */
void instance_metrics_init(void);

#endif
