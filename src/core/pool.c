/* Worker pool: a fixed set of threads around one bounded FIFO. Completions go
 * back through loop_post(), so they run on the loop that owns the request. */
#include "core/pool.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct job {
    struct job *next;
    struct loop *origin;
    pool_fn work, done;
    void *arg;
    struct trace_ctx tc; /* the submitter's trace context: the job's spans are its children */
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    size_t depth, queue_max;
    int stopping;
    int nthreads;
    pthread_t *threads;
};

static _Atomic(struct pool *) default_pool;

void pool_set_default(struct pool *p) { atomic_store(&default_pool, p); }
struct pool *pool_default(void) { return atomic_load(&default_pool); }

static void *worker(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        struct job *j = p->head;
        if (!j) { /* stopping and nothing left */
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->depth--;
        pthread_mutex_unlock(&p->mu);

        struct trace_ctx prev = trace_enter(&j->tc); /* loop_post carries it on to done */
        j->work(j->arg);
        if (j->done) {
            /* If the loop cannot take it (out of memory), completing on the
             * worker is wrong but losing it is worse: the request would hang. */
            if (!j->origin || loop_post(j->origin, j->done, j->arg) != 0)
                j->done(j->arg);
        }
        trace_leave(prev);
        free(j);
    }
}

struct pool *pool_new(int nthreads, size_t queue_max)
{
    if (nthreads < 1)
        nthreads = 1;
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->queue_max = queue_max;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        pool_free(p);
        return NULL;
    }
    return p;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int pool_submit(struct pool *p, struct loop *origin, pool_fn work, pool_fn done, void *arg)
{
    struct job *j = malloc(sizeof *j);
    if (!j)
        return AGENTD_ENOMEM;
    *j = (struct job){ .origin = origin, .work = work, .done = done, .arg = arg };
    const struct trace_ctx *tc = trace_current();
    if (tc)
        j->tc = *tc;
    pthread_mutex_lock(&p->mu);
    if (p->stopping || (p->queue_max && p->depth >= p->queue_max)) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return AGENTD_EBUSY;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->depth++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t pool_queue_depth(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t d = p->depth;
    pthread_mutex_unlock(&p->mu);
    return d;
}

int pool_threads(const struct pool *p) { return p->nthreads; }
