/* A process's identity and liveness, for crash recovery: the instance id
 * kept on its turns, an exclusive lock file it holds while it runs (the
 * kernel drops it when the process dies, however it dies), and the pid
 * probe. */
#ifndef AGENTD_AGENT_INSTANCE_H
#define AGENTD_AGENT_INSTANCE_H

#include <stddef.h>

/* "host@pidns/pid/nonce" for this process. */
void instance_id(char *out, size_t len);
/* 1 when pid is gone, a zombie, or our own pid (the process before us). */
int instance_pid_dead(long pid);
/* The lock file of an instance under dir (its id with '/' and other
 * characters unsafe in names made '_'). */
void instance_lock_path(const char *dir, const char *instance, char *out, size_t len);
/* Creates dir and takes the instance's lock file (an exclusive flock);
 * returns its fd (hold it while running) or a negative errno. */
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

#endif
