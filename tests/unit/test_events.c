/* The in-process event hub: a publish wakes each subscriber of that session
 * on its own loop, wake-ups coalesce, other sessions are not woken, and no
 * wake runs after unsubscribe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "agent/events.h"
#include "api/follow.h"
#include "core/loop.h"
#include "core/relay.h"

#include <stdio.h>
#include <string.h>

struct fx {
    struct loop *loop;
    pthread_t thread;
    struct events *h;
};

static atomic_int woke_a, woke_b;
static atomic_uintptr_t wake_thread;

static void *run(void *arg)
{
    loop_run(arg);
    return NULL;
}

static int setup(void **state)
{
    static struct fx f;
    assert_int_equal(loop_global_init(), 0);
    f.loop = loop_new(0);
    f.h = events_new();
    assert_non_null(f.loop);
    assert_non_null(f.h);
    assert_int_equal(pthread_create(&f.thread, NULL, run, f.loop), 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    loop_stop(f->loop);
    pthread_join(f->thread, NULL);
    loop_run_inbox(f->loop);
    loop_free(f->loop);
    events_free(f->h);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
        sleep_ms(1);
}

static void on_a(void *ud)
{
    (void)ud;
    atomic_store(&wake_thread, (uintptr_t)pthread_self());
    atomic_fetch_add(&woke_a, 1);
}

static void on_b(void *ud)
{
    (void)ud;
    atomic_fetch_add(&woke_b, 1);
}

/* subscribe/unsubscribe must run on the subscriber's loop */
struct op {
    struct fx *f;
    const char *session;
    events_wake_fn fn;
    struct events_sub *sub;
    atomic_int done;
};

static void do_sub(void *arg)
{
    struct op *o = arg;
    o->sub = events_subscribe(o->f->h, o->session, o->f->loop, o->fn, NULL);
    atomic_store(&o->done, 1);
}

static void do_unsub(void *arg)
{
    struct op *o = arg;
    events_unsubscribe(o->sub);
    atomic_store(&o->done, 1);
}

static void on_loop(struct fx *f, void (*fn)(void *), struct op *o)
{
    atomic_store(&o->done, 0);
    assert_int_equal(loop_post(f->loop, fn, o), 0);
    wait_for(&o->done, 1);
    assert_int_equal(atomic_load(&o->done), 1);
}

static void test_publish_wakes_only_that_session(void **state)
{
    struct fx *f = *state;
    struct op a = { .f = f, .session = "ses_a", .fn = on_a };
    struct op b = { .f = f, .session = "ses_b", .fn = on_b };
    on_loop(f, do_sub, &a);
    on_loop(f, do_sub, &b);
    assert_non_null(a.sub);
    assert_non_null(b.sub);
    atomic_store(&woke_a, 0);
    atomic_store(&woke_b, 0);
    events_publish(f->h, "ses_a");
    wait_for(&woke_a, 1);
    assert_int_equal(atomic_load(&woke_a), 1);
    assert_int_equal(atomic_load(&woke_b), 0);
    assert_true(atomic_load(&wake_thread) != (uintptr_t)pthread_self()); /* on the loop */
    events_publish(f->h, "ses_b");
    wait_for(&woke_b, 1);
    assert_int_equal(atomic_load(&woke_b), 1);
    events_publish(f->h, "ses_unknown"); /* nobody: nothing happens */
    events_publish(f->h, NULL);
    events_publish(NULL, "ses_a");
    on_loop(f, do_unsub, &a);
    on_loop(f, do_unsub, &b);
}

static void block_loop(void *arg)
{
    (void)arg;
    sleep_ms(100); /* holds the loop while publishes pile up */
}

static struct op *slow_unsub_op;

static void slow_unsub(void *arg)
{
    (void)arg;
    sleep_ms(60); /* the publish happens meanwhile; its wake queues behind us */
    events_unsubscribe(slow_unsub_op->sub);
    atomic_store(&slow_unsub_op->done, 1);
}

static void test_wakes_coalesce_and_stop_after_unsubscribe(void **state)
{
    struct fx *f = *state;
    struct op a = { .f = f, .session = "ses_c", .fn = on_a };
    on_loop(f, do_sub, &a);
    atomic_store(&woke_a, 0);
    assert_int_equal(loop_post(f->loop, block_loop, NULL), 0);
    for (int i = 0; i < 50; i++)
        events_publish(f->h, "ses_c");
    wait_for(&woke_a, 1);
    sleep_ms(50);
    assert_int_equal(atomic_load(&woke_a), 1); /* 50 publishes, one wake */
    events_publish(f->h, "ses_c");
    wait_for(&woke_a, 2);
    assert_int_equal(atomic_load(&woke_a), 2);
    atomic_store(&a.done, 0);
    /* a wake still queued when the subscriber leaves must not run: the
     * loop is busy in a job that unsubscribes while the publish queues */
    slow_unsub_op = &a;
    assert_int_equal(loop_post(f->loop, slow_unsub, NULL), 0);
    sleep_ms(20);
    events_publish(f->h, "ses_c");
    wait_for(&a.done, 1);
    sleep_ms(50);
    assert_int_equal(atomic_load(&woke_a), 2);
}

/* A relay that records what the hub asks of it. */
static struct {
    char published[64], watched[64];
    relay_wake_fn wake;
    void *ud;
    struct relay_watch *unwatched;
    int healthy;
} fr;
static char watch_token;

static void fr_publish(void *impl, const char *topic)
{
    (void)impl;
    snprintf(fr.published, sizeof fr.published, "%s", topic);
}

static struct relay_watch *fr_watch(void *impl, const char *topic, relay_wake_fn wake, void *ud)
{
    (void)impl;
    snprintf(fr.watched, sizeof fr.watched, "%s", topic);
    fr.wake = wake;
    fr.ud = ud;
    return (struct relay_watch *)&watch_token;
}

static void fr_unwatch(void *impl, struct relay_watch *w)
{
    (void)impl;
    fr.unwatched = w;
}

static int fr_healthy(void *impl)
{
    (void)impl;
    return fr.healthy;
}

static void on_relay_wake(void *ud) { atomic_fetch_add((atomic_int *)ud, 1); }

/* With a relay, a subscription also watches its session at other
 * processes (their signal wakes it), a publish is relayed, and the watch
 * ends with the subscription. */
static void test_relay_carries_subscriptions_and_publishes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(events_relay_healthy(f->h), 0); /* no relay yet */
    struct relay r = { .publish = fr_publish, .watch = fr_watch, .unwatch = fr_unwatch,
                       .healthy = fr_healthy };
    events_set_relay(f->h, &r);
    atomic_int woke = 0;
    struct events_sub *s = events_subscribe(f->h, "sess-r", f->loop, on_relay_wake, &woke);
    assert_non_null(s);
    assert_string_equal(fr.watched, "sess-r");
    fr.wake(fr.ud); /* another process published */
    assert_int_equal(atomic_load(&woke), 1);
    events_publish(f->h, "sess-q");
    assert_string_equal(fr.published, "sess-q");
    fr.healthy = 1;
    assert_int_equal(events_relay_healthy(f->h), 1);
    events_unsubscribe(s);
    assert_ptr_equal(fr.unwatched, &watch_token);
}

/* The poll of an open stream: as configured, stretched tenfold (60 s at
 * most, never below the setting) while signals flow. */
static void test_follow_poll_stretches_while_signals_flow(void **state)
{
    (void)state;
    follow_set_poll_ms(1000);
    assert_int_equal(follow_poll_ms(0), 1000);
    assert_int_equal(follow_poll_ms(1), 10000);
    follow_set_poll_ms(30000);
    assert_int_equal(follow_poll_ms(1), 60000);
    follow_set_poll_ms(120000);
    assert_int_equal(follow_poll_ms(1), 120000);
    follow_set_poll_ms(0);
    assert_int_equal(follow_poll_ms(0), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_wakes_only_that_session),
        cmocka_unit_test(test_wakes_coalesce_and_stop_after_unsubscribe),
        cmocka_unit_test(test_relay_carries_subscriptions_and_publishes), /* keeps its relay: after the others on the hub */
        cmocka_unit_test(test_follow_poll_stretches_while_signals_flow),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
