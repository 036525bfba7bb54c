/* Loop threads: an event_base with an inbox that other threads post to.
 * The inbox is a mutex-protected FIFO emptied in one swap per wakeup. */
#include "core/loop.h"
#include "core/err.h"
#include "core/log.h"
#include "core/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>
#include <event2/thread.h>

struct post {
    struct post *next;
    loop_fn fn;
    void *arg;
    struct trace_ctx tc; /* the poster's trace context, current while fn runs */
};

struct loop {
    struct event_base *base;
    struct event *wake;
    int id;
    pthread_mutex_t mu;
    struct post *head, *tail;
};

static _Thread_local struct loop *tl_current;

int loop_global_init(void)
{
    static int done;
    if (done)
        return 0;
    if (evthread_use_pthreads() != 0)
        return AGENTD_EINTERNAL;
    done = 1;
    return 0;
}

static void run_inbox(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct loop *l = arg;
    pthread_mutex_lock(&l->mu);
    struct post *p = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (p) {
        struct post *next = p->next;
        struct trace_ctx prev = trace_enter(&p->tc);
        p->fn(p->arg);
        trace_leave(prev);
        free(p);
        p = next;
    }
}

struct loop *loop_new(int id)
{
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    struct event_config *cfg = event_config_new();
    if (cfg) {
        /* No locking inside the base: only this thread touches it, except
         * event_active() on `wake`, which the base locks for us. */
        l->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!l->base) {
        free(l);
        return NULL;
    }
    l->wake = event_new(l->base, -1, 0, run_inbox, l);
    if (!l->wake) {
        event_base_free(l->base);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->id = id;
    return l;
}

void loop_run_inbox(struct loop *l) { run_inbox(-1, 0, l); }

void loop_free(struct loop *l)
{
    if (!l)
        return;
    run_inbox(-1, 0, l); /* run what is still queued: completions free their own state */
    event_free(l->wake);
    event_base_free(l->base);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

struct event_base *loop_base(struct loop *l) { return l->base; }
int loop_id(const struct loop *l) { return l->id; }
struct loop *loop_current(void) { return tl_current; }

int loop_post(struct loop *l, loop_fn fn, void *arg)
{
    struct post *p = malloc(sizeof *p);
    if (!p)
        return AGENTD_ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    const struct trace_ctx *tc = trace_current();
    p->tc = tc ? *tc : (struct trace_ctx){ 0 };
    pthread_mutex_lock(&l->mu);
    int was_empty = l->head == NULL;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    pthread_mutex_unlock(&l->mu);
    if (was_empty)
        event_active(l->wake, EV_READ, 0);
    return 0;
}

/* The access log's batching on a loop thread (core/logbuf.c): its lines
 * are written when LOOP_LOG_BUFFER bytes are pending, or LOOP_LOG_FLUSH_MS
 * after the first pending one, and when the loop returns (drain). A crash
 * loses at most the last interval's lines (docs/operations.md). */
#define LOOP_LOG_BUFFER (64 * 1024)
#define LOOP_LOG_FLUSH_MS 5

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what; (void)arg;
    log_flush();
}

static void arm_log_flush(void *ud)
{
    static const struct timeval tv = { 0, LOOP_LOG_FLUSH_MS * 1000 };
    evtimer_add((struct event *)ud, &tv);
}

int loop_run(struct loop *l)
{
    tl_current = l;
    struct event *flush = evtimer_new(l->base, on_log_flush, NULL);
    if (flush && log_buffer_start(LOOP_LOG_BUFFER, arm_log_flush, flush) != 0) {
        event_free(flush); /* no memory for a buffer: lines are written through */
        flush = NULL;
    }
    int rc = event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    if (flush) {
        log_buffer_stop(); /* every line of the drain is out before the thread ends */
        event_free(flush);
    }
    tl_current = NULL;
    return rc < 0 ? AGENTD_EINTERNAL : 0;
}

static void break_here(void *arg)
{
    event_base_loopbreak(((struct loop *)arg)->base);
}

/* A loopbreak from another thread can be lost if it lands while the loop is
 * between iterations (seen: a stopped server whose loop slept on in
 * epoll_wait). Posting it through the inbox runs it on the loop itself,
 * after the loop has started, so it always takes effect. */
void loop_stop(struct loop *l)
{
    if (loop_current() == l || loop_post(l, break_here, l) != 0)
        event_base_loopbreak(l->base);
}
