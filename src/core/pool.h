/* Worker pool for blocking jobs (disk, database). A loop thread submits a
 * job; a worker runs work(arg); then done(arg) runs back on the submitting
 * loop's thread. Loop threads never block on storage. */
#ifndef AGENTD_CORE_POOL_H
#define AGENTD_CORE_POOL_H

#include <stddef.h>

struct loop;
struct pool;

typedef void (*pool_fn)(void *arg);

/* nthreads workers, at most queue_max queued jobs (0 = unbounded). */
struct pool *pool_new(int nthreads, size_t queue_max);
/* Finishes queued jobs, joins the workers, frees the pool. Completions of
 * jobs whose loop has stopped are dropped by the loop (see loop_free). */
void pool_free(struct pool *p);

/* Queue a job. `done` may be NULL. `origin` is the loop to complete on;
 * NULL means run done on the worker thread right after work.
 * Returns 0, AGENTD_EBUSY when the queue is full (or the pool stops), AGENTD_ENOMEM. On error nothing is
 * queued and arg still belongs to the caller. */
int pool_submit(struct pool *p, struct loop *origin, pool_fn work, pool_fn done, void *arg);

/* Jobs waiting for a worker right now (a gauge for metrics). */
size_t pool_queue_depth(struct pool *p);
int pool_threads(const struct pool *p);

/* The process-wide pool that servers and stores share; set once at start. */
void pool_set_default(struct pool *p);
struct pool *pool_default(void);

#endif
