/* Turn budgets: steps, tokens per turn, a principal's tokens and money per
 * UTC day, and the Retry-After to midnight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/budget.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* A cost as printed in JSON: the micro-dollar, never a float's noise. */
static void test_usd_rounding_in_json(void **state)
{
    (void)state;
    double sum = 0;
    for (int i = 0; i < 7; i++) /* a turn's calls at odd prices */
        sum += 123.0 * 0.15 / 1e6 + 45.0 * 0.6 / 1e6 + 0.0000001;
    static const struct {
        double in;
        const char *text;
    } cases[] = {
        { 0.00028604999999999999, "0.000286" }, /* the value */
        { 0.0000004, "0.0" },
        { 0.0000005, "1e-6" },
        { 12.3456789, "12.345679" },
        { 123456.1234564, "123456.123456" },
        { 987654321.123456, "987654321.123456" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_pack("{s:f}", "cost_usd", budget_usd_round(cases[i].in));
        char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION));
        char want[64];
        snprintf(want, sizeof want, "{\"cost_usd\":%s}", cases[i].text);
        assert_string_equal(text, want);
        free(text);
        json_decref(j);
    }
    /* jansson's default (17 digits) prints the noise back: the flag is needed */
    json_t *j = json_pack("{s:f}", "c", budget_usd_round(sum));
    char *plain = json_dumps(j, JSON_COMPACT);
    char *ours = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION));
    assert_true(strlen(ours) <= strlen("{\"c\":0.000000}") + 2);
    assert_true(fabs(strtod(ours + 5, NULL) - sum) < 0.5e-6 + 1e-12);
    (void)plain;
    free(plain);
    free(ours);
    json_decref(j);
    assert_true(budget_usd_round(NAN) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_and_turn_tokens),
        cmocka_unit_test(test_daily),
        cmocka_unit_test(test_days_and_midnight),
        cmocka_unit_test(test_usd_rounding_in_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
