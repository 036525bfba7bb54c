/* The watchdog's liveness rule: a ping only when every loop ran the previous
 * round's probe; a loop that does not run its inbox stops the pings until it
 * does, and one probe round is outstanding at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/loop.h"
#include "core/watchdog.h"

struct fx {
    struct loop *loops[2];
};

static int setup(void **state)
{
    static struct fx f;
    assert_int_equal(loop_global_init(), 0);
    for (int i = 0; i < 2; i++) {
        f.loops[i] = loop_new(i);
        assert_non_null(f.loops[i]);
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 2; i++) {
        loop_run_inbox(f->loops[i]);
        loop_free(f->loops[i]);
    }
    return 0;
}

static void test_first_tick_pings_and_probes_every_loop(void **state)
{
    struct fx *f = *state;
    struct watchdog w = { 0 };
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1000), 1);
    assert_int_equal(atomic_load(&w.pending), 2);
    assert_int_equal(w.probe_ms, 1000);
    loop_run_inbox(f->loops[0]);
    loop_run_inbox(f->loops[1]);
    assert_int_equal(atomic_load(&w.pending), 0);
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1100), 1);
    assert_int_equal(w.probe_ms, 1100);
    loop_run_inbox(f->loops[0]);          /* nothing points at w after the test */
    loop_run_inbox(f->loops[1]);
}

static void test_a_loop_that_does_not_answer_stops_the_pings(void **state)
{
    struct fx *f = *state;
    struct watchdog w = { 0 };
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1000), 1);
    loop_run_inbox(f->loops[0]);          /* loop 1 is wedged */
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1100), 0);
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1200), 0);
    assert_int_equal(w.probe_ms, 1000);   /* stalled since the first round */
    /* no second round was posted while the first was outstanding */
    loop_run_inbox(f->loops[0]);
    assert_int_equal(atomic_load(&w.pending), 1);
    loop_run_inbox(f->loops[1]);          /* it comes back */
    assert_int_equal(atomic_load(&w.pending), 0);
    assert_int_equal(watchdog_tick(&w, f->loops, 2, 1300), 1);
    loop_run_inbox(f->loops[0]);
    loop_run_inbox(f->loops[1]);
}

static void test_no_loops_always_pings(void **state)
{
    (void)state;
    struct watchdog w = { 0 };
    assert_int_equal(watchdog_tick(&w, NULL, 0, 1), 1);
    assert_int_equal(watchdog_tick(&w, NULL, 0, 2), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_tick_pings_and_probes_every_loop),
        cmocka_unit_test(test_a_loop_that_does_not_answer_stops_the_pings),
        cmocka_unit_test(test_no_loops_always_pings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
