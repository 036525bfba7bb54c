/* Unit tests for auth/throttle: failures spend an address's budget, an
 * exhausted address waits (no backend call), others are not touched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "auth/throttle.h"

/* client addresses as table keys only (the throttle never connects) */
#define ADDR_A "10.0.0.1"  /* private range, data only: never contacted */
#define ADDR_B "10.0.0.2"  /* private range, data only: never contacted */
#define ADDR_C "10.0.0.10" /* private range, data only: never contacted */

#define S 1000000000LL

/* The in-process backend, counting the checks it was asked for. */
static struct ratelimit_backend *mem;
static int checks;
static void counting_check(struct ratelimit_backend *b, const char *key, const char *bucket,
                           const struct ratelimit_rule *rule, int64_t cost, int64_t now_ns,
                           ratelimit_done_fn done, void *ud)
{
    (void)b;
    checks++;
    mem->check(mem, key, bucket, rule, cost, now_ns, done, ud);
}
static void counting_free(struct ratelimit_backend *b)
{
    (void)b;
    mem->free(mem);
}
static struct ratelimit_backend counting = { counting_check, counting_free };

static struct auth_throttle *make(const char *rule_text)
{
    struct ratelimit_rule rule;
    assert_int_equal(ratelimit_rule_parse(rule_text, &rule, NULL), 0);
    mem = ratelimit_mem_new(1000);
    assert_non_null(mem);
    checks = 0;
    struct auth_throttle *t = NULL;
    assert_int_equal(auth_throttle_new(&rule, &counting, &t), 0);
    assert_non_null(t);
    return t;
}

static void test_burst_of_failures_then_blocked(void **state)
{
    (void)state;
    struct auth_throttle *t = make("6/m,3"); /* 3 at once, then one per 10 s */
    int64_t now = 1000 * S;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(auth_throttle_wait(t, ADDR_A, now), 0);
        auth_throttle_fail(t, ADDR_A, now);
    }
    assert_int_equal(checks, 3);
    /* the third failure spent the last unit: blocked until the next comes back */
    assert_int_equal(auth_throttle_wait(t, ADDR_A, now), 10);
    assert_int_equal(auth_throttle_wait(t, ADDR_A, now + 4 * S), 6);
    /* another address is not touched */
    assert_int_equal(auth_throttle_wait(t, ADDR_B, now), 0);
    assert_int_equal(auth_throttle_wait(t, ADDR_C, now), 0);
    /* one unit later one more failure may be tried, and spends it again */
    assert_int_equal(auth_throttle_wait(t, ADDR_A, now + 10 * S), 0);
    auth_throttle_fail(t, ADDR_A, now + 10 * S);
    assert_int_equal(auth_throttle_wait(t, ADDR_A, now + 10 * S), 10);
    auth_throttle_free(t);
}

static void test_refused_charge_blocks_for_retry_after(void **state)
{
    (void)state;
    struct auth_throttle *t = make("1/m,1");
    int64_t now = 50 * S;
    auth_throttle_fail(t, "::1", now);
    assert_int_equal(auth_throttle_wait(t, "::1", now), 60);
    /* failures that were in flight (checked before the block) are refused by
     * the backend: the block stands, never shortened */
    auth_throttle_fail(t, "::1", now + 30 * S);
    assert_int_equal(auth_throttle_wait(t, "::1", now + 30 * S), 30);
    assert_int_equal(auth_throttle_wait(t, "::1", now + 60 * S), 0);
    auth_throttle_free(t);
}

static void test_many_addresses_bounded(void **state)
{
    (void)state;
    struct auth_throttle *t = make("1/h,1");
    int64_t now = 10 * S;
    char a[48];
    /* far more addresses than the table holds: the newest are blocked, and
     * nothing grows without bound (the in-process backend is bounded too) */
    for (int i = 0; i < 20000; i++) {
        snprintf(a, sizeof a, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        auth_throttle_fail(t, a, now);
    }
    assert_int_equal(auth_throttle_wait(t, a, now), 3600);
    assert_int_equal(auth_throttle_wait(t, "192.0.2.1", now), 0);
    auth_throttle_free(t);
}

static void test_off_is_null(void **state)
{
    (void)state;
    struct ratelimit_rule rule;
    assert_int_equal(ratelimit_rule_parse("off", &rule, NULL), 0);
    struct auth_throttle *t = (void *)1;
    assert_int_equal(auth_throttle_new(&rule, ratelimit_mem_new(10), &t), 0);
    assert_null(t);
    assert_int_equal(auth_throttle_wait(NULL, ADDR_A, 0), 0);
    auth_throttle_fail(NULL, ADDR_A, 0); /* nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_failures_then_blocked),
        cmocka_unit_test(test_refused_charge_blocks_for_retry_after),
        cmocka_unit_test(test_many_addresses_bounded),
        cmocka_unit_test(test_off_is_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
