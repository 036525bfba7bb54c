/* An event loop thread: one libevent event_base plus a thread-safe inbox, so
 * other threads (the worker pool) can hand completions back to the loop that
 * owns a request. Everything posted runs on the loop's own thread. */
#ifndef AGENTD_CORE_LOOP_H
#define AGENTD_CORE_LOOP_H

#include <stddef.h>

struct event_base;
struct loop;

typedef void (*loop_fn)(void *arg);

/* Create a loop around a new event_base. `id` names it in logs and metrics.
 * Requires loop_global_init() first. Freed by loop_free() on its own thread
 * after the base stopped. */
struct loop *loop_new(int id);
void loop_free(struct loop *l);

/* Once per process, before any loop: makes libevent thread-aware. 0 or
 * AGENTD_EINTERNAL. */
int loop_global_init(void);

struct event_base *loop_base(struct loop *l);
int loop_id(const struct loop *l);

/* Thread-safe: queue fn(arg) to run on l's thread. Returns 0, or AGENTD_ENOMEM
 * (then fn is not called and arg still belongs to the caller). */
int loop_post(struct loop *l, loop_fn fn, void *arg);

/* Runs what is queued in the inbox now, on the calling thread (shutdown:
 * after the loop thread exited). */
void loop_run_inbox(struct loop *l);

/* Run the event loop until loop_stop(); returns 0 or AGENTD_EINTERNAL. */
int loop_run(struct loop *l);
/* Thread-safe: make loop_run() return after the current iteration. */
void loop_stop(struct loop *l);

/* The loop whose thread calls this, or NULL off a loop thread. */
struct loop *loop_current(void);

#endif
