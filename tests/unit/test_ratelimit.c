/* Unit tests for core/ratelimit: the rule syntax, the bucket math on a fake
 * clock, and the in-process backend's bound on memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "core/ratelimit.h"

#define S 1000000000LL

static void test_parse(void **state)
{
    (void)state;
    struct ratelimit_rule r;
    struct agentd_error e;
    assert_int_equal(ratelimit_rule_parse("20/s,40", &r, &e), 0);
    assert_int_equal(r.interval_ns, S / 20);
    assert_int_equal(r.burst, 40);
    assert_int_equal(ratelimit_rule_parse("1200/m", &r, &e), 0);
    assert_int_equal(r.interval_ns, S / 20);
    assert_int_equal(r.burst, 1200);
    assert_int_equal(ratelimit_rule_parse("3/h,1", &r, &e), 0);
    assert_int_equal(r.interval_ns, 1200 * S);
    assert_int_equal(ratelimit_rule_parse("off", &r, &e), 0);
    assert_int_equal(r.interval_ns, 0);
    const char *bad[] = { "", "20", "20/d", "0/s", "-1/s", "20/s,", "20/s,0", "20/s,40x",
                          "x/s", "20/s 40", "1/h,1000000000" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ratelimit_rule_parse(bad[i], &r, &e), AGENTD_EINVAL);
}

static void test_gcra_burst_then_refill(void **state)
{
    (void)state;
    struct ratelimit_rule r = { .interval_ns = S, .burst = 3 }; /* 1/s, burst 3 */
    struct ratelimit_decision d;
    int64_t now = 1000 * S, tat = 0;
    for (int i = 0; i < 3; i++) {
        tat = ratelimit_gcra(&r, tat, 1, now, &d);
        assert_true(d.allowed);
        assert_int_equal(d.limit, 3);
        assert_int_equal(d.remaining, 2 - i);
        assert_int_equal(d.reset_s, i + 1);
    }
    int64_t kept = tat;
    tat = ratelimit_gcra(&r, tat, 1, now, &d);
    assert_false(d.allowed);
    assert_int_equal(tat, kept); /* a refusal takes nothing */
    assert_int_equal(d.remaining, 0);
    assert_int_equal(d.retry_after_s, 1);
    /* half a second later: still empty, retry in 1 (rounded up) */
    tat = ratelimit_gcra(&r, tat, 1, now + S / 2, &d);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 1);
    /* one second later one unit came back */
    tat = ratelimit_gcra(&r, tat, 1, now + S, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 0);
    /* long idle: full again, never more than the burst */
    tat = ratelimit_gcra(&r, tat, 1, now + 100 * S, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 2);
}

static void test_gcra_cost(void **state)
{
    (void)state;
    struct ratelimit_rule r = { .interval_ns = S / 10, .burst = 10 };
    struct ratelimit_decision d;
    int64_t now = 5 * S;
    int64_t tat = ratelimit_gcra(&r, 0, 8, now, &d);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 2);
    tat = ratelimit_gcra(&r, tat, 5, now, &d);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 1); /* 0.3 s, rounded up */
    ratelimit_gcra(&r, tat, 11, now, &d); /* more than the burst never fits */
    assert_false(d.allowed);
}

struct seen { struct ratelimit_decision d; int calls; };
static void got(const struct ratelimit_decision *d, void *ud)
{
    struct seen *s = ud;
    s->d = *d;
    s->calls++;
}

static void test_mem_keys_and_buckets(void **state)
{
    (void)state;
    struct ratelimit_backend *b = ratelimit_mem_new(1024);
    assert_non_null(b);
    struct ratelimit_rule r = { .interval_ns = S, .burst = 2 };
    struct seen s = { 0 };
    int64_t now = 10 * S;
    for (int i = 0; i < 2; i++)
        b->check(b, "alice", "req", &r, 1, now, got, &s);
    assert_true(s.d.allowed);
    b->check(b, "alice", "req", &r, 1, now, got, &s);
    assert_false(s.d.allowed);
    assert_int_equal(s.calls, 3);
    b->check(b, "bob", "req", &r, 1, now, got, &s); /* another key */
    assert_true(s.d.allowed);
    b->check(b, "alice", "turn", &r, 1, now, got, &s); /* another bucket */
    assert_true(s.d.allowed);
    assert_int_equal(ratelimit_mem_size(b), 3);
    b->free(b);
}

static void test_mem_bounded(void **state)
{
    (void)state;
    size_t max = 64 * 4;
    struct ratelimit_backend *b = ratelimit_mem_new(max);
    struct ratelimit_rule r = { .interval_ns = 60 * S, .burst = 5 };
    struct seen s = { 0 };
    char key[32];
    /* an address flood: every key new, every bucket still draining */
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        b->check(b, key, "req", &r, 1, 100 * S + i, got, &s);
        assert_true(s.d.allowed);
        assert_true(ratelimit_mem_size(b) <= max);
    }
    assert_true(ratelimit_mem_size(b) > max / 2);
    /* once the buckets are full again they are dropped first */
    b->check(b, "late", "req", &r, 1, 100000 * S, got, &s);
    assert_true(ratelimit_mem_size(b) <= max);
    b->free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_gcra_burst_then_refill),
        cmocka_unit_test(test_gcra_cost),
        cmocka_unit_test(test_mem_keys_and_buckets),
        cmocka_unit_test(test_mem_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
