/* Turn budgets: steps, tokens per turn, a principal's tokens and money per
 * UTC day, and the Retry-After to midnight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/budget.h"

#define DAY 86400000LL

static void test_steps_and_turn_tokens(void **state)
{
    (void)state;
    struct budget_limits b = { .max_steps = 3, .turn_tokens = 1000 };
    assert_int_equal(budget_next_step(&b, 0, 0), BUDGET_OK);
    assert_int_equal(budget_next_step(&b, 2, 999), BUDGET_OK);
    assert_int_equal(budget_next_step(&b, 3, 0), BUDGET_STEPS);      /* reached */
    assert_int_equal(budget_next_step(&b, 4, 0), BUDGET_STEPS);
    assert_int_equal(budget_next_step(&b, 2, 1000), BUDGET_TURN_TOKENS);
    assert_int_equal(budget_next_step(&b, 3, 5000), BUDGET_STEPS);   /* steps first */
    b.turn_tokens = 0;                                                /* unlimited */
    assert_int_equal(budget_next_step(&b, 1, INT64_MAX), BUDGET_OK);
    b.max_steps = 1;
    assert_int_equal(budget_next_step(&b, 0, 0), BUDGET_OK);
    assert_int_equal(budget_next_step(&b, 1, 0), BUDGET_STEPS);
}

static void test_daily(void **state)
{
    (void)state;
    struct budget_limits b = { .max_steps = 8 };
    assert_true(budget_daily_unlimited(&b));
    assert_int_equal(budget_daily(&b, INT64_MAX, 1e12), BUDGET_OK);
    b.day_tokens = 500;
    assert_false(budget_daily_unlimited(&b));
    assert_int_equal(budget_daily(&b, 499, 0), BUDGET_OK);
    assert_int_equal(budget_daily(&b, 500, 0), BUDGET_DAY_TOKENS);
    b.day_cost_micro = 50000; /* USD 0.05 */
    assert_int_equal(budget_daily(&b, 0, 0.049999), BUDGET_OK);
    assert_int_equal(budget_daily(&b, 0, 0.05), BUDGET_DAY_COST); /* 0.05 as a double */
    assert_int_equal(budget_daily(&b, 0, 0.1 + 0.2), BUDGET_DAY_COST);
    assert_int_equal(budget_daily(&b, 600, 1.0), BUDGET_DAY_TOKENS); /* tokens first */
    b.day_tokens = 0;
    assert_int_equal(budget_daily(&b, 600, 0.01), BUDGET_OK);
}

static void test_days_and_midnight(void **state)
{
    (void)state;
    int64_t t = 20000 * DAY;                /* 00:00:00.000 UTC */
    assert_int_equal(budget_day(t), 20000);
    assert_int_equal(budget_day(t - 1), 19999);
    assert_int_equal(budget_day(t + DAY - 1), 20000);
    assert_int_equal(budget_seconds_to_midnight(t), 86400);
    assert_int_equal(budget_seconds_to_midnight(t + DAY - 1), 1);  /* never 0 */
    assert_int_equal(budget_seconds_to_midnight(t + DAY - 1000), 1);
    assert_int_equal(budget_seconds_to_midnight(t + DAY - 1001), 2);
    assert_int_equal(budget_seconds_to_midnight(t + 12 * 3600000LL), 43200);
    assert_int_equal(budget_day(0), 0);
    assert_int_equal(budget_day(-1), -1);
    assert_int_equal(budget_seconds_to_midnight(-1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_and_turn_tokens),
        cmocka_unit_test(test_daily),
        cmocka_unit_test(test_days_and_midnight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
