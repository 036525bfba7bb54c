/* A process's identity and liveness, for crash recovery: the instance id
 * kept on its turns, an exclusive lock file it holds while it runs (the
 * kernel drops it when the process dies, however it dies), and the pid
 * probe. */
#ifndef AGENTD_CORE_INSTANCE_H
#define AGENTD_CORE_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

/* "host@pidns/pid/nonce" for this process; with instance_set_host(h),
 * "h/pid/nonce". */
void instance_id(char *out, size_t len);
/* The host part of ids made from now on (AGENTD_INSTANCE_HOST; NULL or ""
 * = the hostname and pid namespace). Two processes with the same host part
 * take each other's pids for their own: give each replica its own. Call
 * before instance_id, at start. */
void instance_set_host(const char *host);
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

/* The heartbeat table's verdict (agent/heartbeat.c sets it after each
 * beat): the instances whose heartbeat stopped. Replaces the previous
 * verdict; thread-safe. 0 or AGENTD_ENOMEM (the old verdict stays). */
int instance_dead_set(char *const *ids, size_t n);
/* 1 when the latest verdict names instance dead. Thread-safe. */
int instance_heartbeat_dead(const char *instance);
/* The probe crash recovery hands instance_orphaned: the lock file under
 * dir (a char *; NULL = no lock files) when it knows, else the heartbeat
 * verdict (dead: 0), else -1 (unknown: the pid and lease rules decide). */
int instance_probe(void *dir, const char *instance);

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
