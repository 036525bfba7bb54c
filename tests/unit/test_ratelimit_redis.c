/* Unit tests for kv/ratelimit_redis: the script's reply into the decision the
 * 429 headers come from (agreeing with the in-process GCRA), replies of
 * another shape refused, and the script's shape (one atomic call on Redis
 * time, with a TTL). The script itself runs in tests/e2e/test_ratelimit_redis.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "kv/ratelimit_redis.h"

#define S 1000000000LL

/* {allowed, ahead_ns, remaining} as hiredis hands it over */
struct fake {
    redisReply top, el[3];
    redisReply *ptrs[3];
};

static redisReply *reply3(struct fake *f, long long a, long long b, long long c)
{
    memset(f, 0, sizeof *f);
    long long v[3] = { a, b, c };
    for (int i = 0; i < 3; i++) {
        f->el[i].type = REDIS_REPLY_INTEGER;
        f->el[i].integer = v[i];
        f->ptrs[i] = &f->el[i];
    }
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.elements = 3;
    f->top.element = f->ptrs;
    return &f->top;
}

static void test_decision_matches_in_process_gcra(void **state)
{
    (void)state;
    struct ratelimit_rule rule = { .interval_ns = S, .burst = 3 }; /* 1/s, burst 3 */
    struct fake f;
    struct ratelimit_decision d, want;
    int64_t now = 1000 * S, tat = 0;
    /* the script's view of the same three requests and the refusal after them */
    for (int i = 0; i < 4; i++) {
        int64_t next = ratelimit_gcra(&rule, tat, 1, now, &want);
        int64_t ahead = (want.allowed ? next : tat) - now;
        assert_int_equal(ratelimit_redis_decision(reply3(&f, want.allowed, ahead, want.remaining),
                                                  &rule, 1, &d), 0);
        assert_int_equal(d.allowed, want.allowed);
        assert_int_equal(d.limit, 3);
        assert_int_equal(d.remaining, want.remaining);
        assert_int_equal(d.reset_s, want.reset_s);
        assert_int_equal(d.retry_after_s, want.retry_after_s);
        assert_int_equal(d.unavailable, 0);
        tat = next;
    }
    assert_int_equal(d.allowed, 0);
    assert_int_equal(d.retry_after_s, 1);
    assert_int_equal(d.reset_s, 3);
}

static void test_refusal_waits_for_the_cost(void **state)
{
    (void)state;
    struct ratelimit_rule rule = { .interval_ns = 60 * S, .burst = 2 }; /* 1/m, burst 2 */
    struct fake f;
    struct ratelimit_decision d;
    /* full for another 2 minutes: one more unit fits in 60 s */
    assert_int_equal(ratelimit_redis_decision(reply3(&f, 0, 120 * S, 0), &rule, 1, &d), 0);
    assert_false(d.allowed);
    assert_int_equal(d.retry_after_s, 60);
    assert_int_equal(d.reset_s, 120);
    /* a cost above the burst never fits: clamped, as in-process */
    assert_int_equal(ratelimit_redis_decision(reply3(&f, 0, 0, 2), &rule, 50, &d), 0);
    assert_int_equal(d.retry_after_s, 60);
    /* a wait a nanosecond short of a minute rounds up to whole seconds */
    assert_int_equal(ratelimit_redis_decision(reply3(&f, 0, 120 * S - 1, 0), &rule, 1, &d), 0);
    assert_int_equal(d.retry_after_s, 60);
}

static void test_other_replies_are_not_decisions(void **state)
{
    (void)state;
    struct ratelimit_rule rule = { .interval_ns = S, .burst = 3 };
    struct ratelimit_decision d;
    struct fake f;
    assert_int_equal(ratelimit_redis_decision(NULL, &rule, 1, &d), -1);
    redisReply err = { .type = REDIS_REPLY_ERROR, .str = "NOSCRIPT No matching script" };
    assert_int_equal(ratelimit_redis_decision(&err, &rule, 1, &d), -1);
    redisReply *r = reply3(&f, 1, 0, 2);
    r->elements = 2;
    assert_int_equal(ratelimit_redis_decision(r, &rule, 1, &d), -1);
    r = reply3(&f, 1, 0, 2);
    f.el[1].type = REDIS_REPLY_STRING;
    assert_int_equal(ratelimit_redis_decision(r, &rule, 1, &d), -1);
}

static void test_script_shape(void **state)
{
    (void)state;
    /* Redis's clock, not the caller's: replicas' clocks differ */
    assert_non_null(strstr(ratelimit_redis_script, "redis.call('TIME')"));
    /* the key expires when the bucket is full again */
    assert_non_null(strstr(ratelimit_redis_script, "'PX'"));
    assert_null(strstr(ratelimit_redis_script, "ARGV[4]")); /* no caller time passed in */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_matches_in_process_gcra),
        cmocka_unit_test(test_refusal_waits_for_the_cost),
        cmocka_unit_test(test_other_replies_are_not_decisions),
        cmocka_unit_test(test_script_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
