/* worker pool + loop inbox: completions run on the submitting loop's thread,
 * a full queue says EBUSY, shutdown finishes queued work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/err.h"
#include "core/pool.h"

struct ctx {
    struct loop *loop;
    pthread_t loop_thread;
    atomic_int worked, completed, wrong_thread;
    int target;
};

static void *run_loop(void *arg)
{
    struct ctx *c = arg;
    loop_run(c->loop);
    return NULL;
}

static void work(void *arg)
{
    struct ctx *c = arg;
    if (loop_current() != NULL) /* workers are not loop threads */
        atomic_fetch_add(&c->wrong_thread, 1);
    atomic_fetch_add(&c->worked, 1);
}

static void done(void *arg)
{
    struct ctx *c = arg;
    if (loop_current() != c->loop || !pthread_equal(pthread_self(), c->loop_thread))
        atomic_fetch_add(&c->wrong_thread, 1);
    if (atomic_fetch_add(&c->completed, 1) + 1 == c->target)
        loop_stop(c->loop);
}

static void test_completions_on_origin_loop(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    struct ctx c = { .target = 1000 };
    c.loop = loop_new(0);
    assert_non_null(c.loop);
    struct pool *p = pool_new(4, 0);
    assert_non_null(p);
    assert_int_equal(pool_threads(p), 4);
    assert_int_equal(pthread_create(&c.loop_thread, NULL, run_loop, &c), 0);
    for (int i = 0; i < c.target; i++)
        assert_int_equal(pool_submit(p, c.loop, work, done, &c), 0);
    pthread_join(c.loop_thread, NULL);
    assert_int_equal(atomic_load(&c.worked), 1000);
    assert_int_equal(atomic_load(&c.completed), 1000);
    assert_int_equal(atomic_load(&c.wrong_thread), 0);
    pool_free(p);
    loop_free(c.loop);
}

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;

static void blocked(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate);
    pthread_mutex_unlock(&gate);
}

static void count(void *arg) { atomic_fetch_add((atomic_int *)arg, 1); }

static void test_bounded_queue_and_drain_on_free(void **state)
{
    (void)state;
    atomic_int n = 0;
    pthread_mutex_lock(&gate);
    struct pool *p = pool_new(1, 2);
    assert_int_equal(pool_submit(p, NULL, blocked, NULL, NULL), 0);
    /* wait until the worker took the blocking job off the queue */
    for (int i = 0; i < 1000 && pool_queue_depth(p) != 0; i++)
        usleep(1000);
    assert_int_equal(pool_submit(p, NULL, count, NULL, &n), 0);
    assert_int_equal(pool_submit(p, NULL, count, NULL, &n), 0);
    assert_int_equal(pool_queue_depth(p), 2);
    assert_int_equal(pool_submit(p, NULL, count, NULL, &n), AGENTD_EBUSY);
    pthread_mutex_unlock(&gate);
    pool_free(p); /* finishes the two queued jobs */
    assert_int_equal(atomic_load(&n), 2);
}

static void test_post_runs_queued_on_free(void **state)
{
    (void)state;
    atomic_int n = 0;
    struct loop *l = loop_new(1);
    assert_int_equal(loop_post(l, count, &n), 0);
    assert_int_equal(loop_post(l, count, &n), 0);
    loop_free(l); /* never ran: queued posts still run, so their state is freed */
    assert_int_equal(atomic_load(&n), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completions_on_origin_loop),
        cmocka_unit_test(test_bounded_queue_and_drain_on_free),
        cmocka_unit_test(test_post_runs_queued_on_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
