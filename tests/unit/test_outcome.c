/* Turn and tool outcomes: the bounded label sets, and which tool results
 * make an answered turn something other than "completed". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "agent/outcome.h"

static int in_set(const char *v, const char *const *set)
{
    for (int i = 0; set[i]; i++)
        if (strcmp(v, set[i]) == 0)
            return 1;
    return 0;
}

static void test_tool_outcomes(void **state)
{
    (void)state;
    assert_string_equal(outcome_tool(NULL), "ok");
    assert_string_equal(outcome_tool(""), "ok");
    assert_string_equal(outcome_tool("payment_declined"), "declined");
    assert_string_equal(outcome_tool("out_of_stock"), "out_of_stock");
    assert_string_equal(outcome_tool("invalid_arguments"), "invalid_arguments");
    assert_string_equal(outcome_tool("invalid"), "invalid_arguments");
    assert_string_equal(outcome_tool("invalid_quantity"), "invalid_arguments");
    assert_string_equal(outcome_tool("no_checkout"), "not_found");
    assert_string_equal(outcome_tool("not_found"), "not_found");
    assert_string_equal(outcome_tool("payment_required"), "payment_required");
    assert_string_equal(outcome_tool("version_conflict"), "conflict");
    assert_string_equal(outcome_tool("complete_in_progress"), "conflict");
    assert_string_equal(outcome_tool("unknown_tool"), "unknown_tool");
    assert_string_equal(outcome_tool("corrupt"), "error");
    assert_string_equal(outcome_tool("something a model made up"), "error");
    /* whatever the code, the label is one of the known set */
    static const char *const codes[] = { NULL, "payment_declined", "out_of_stock", "invalid",
                                         "not_found", "conflict", "x", "unknown_tool",
                                         "payment_required", "out_of_memory", NULL };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_true(in_set(outcome_tool(codes[i]), OUTCOME_TOOL_KNOWN));
}

static void test_turn_outcome(void **state)
{
    (void)state;
    char last[48] = "";
    assert_string_equal(outcome_turn(0, "", last), "completed");
    outcome_note_checkout(last, sizeof last, "payment_declined");
    assert_string_equal(outcome_turn(0, "", last), "payment_declined");
    /* asking the buyer for payment data changes nothing */
    outcome_note_checkout(last, sizeof last, "payment_required");
    assert_string_equal(outcome_turn(0, "", last), "payment_declined");
    /* a later success fixes it */
    outcome_note_checkout(last, sizeof last, NULL);
    assert_string_equal(outcome_turn(0, "", last), "completed");
    outcome_note_checkout(last, sizeof last, "out_of_stock");
    assert_string_equal(outcome_turn(0, "", last), "out_of_stock");
    outcome_note_checkout(last, sizeof last, "invalid_arguments");
    assert_string_equal(outcome_turn(0, "", last), "tool_error");
    /* a failed turn is its error code, whatever its tools did */
    assert_string_equal(outcome_turn(1, "model_unavailable", last), "model_unavailable");
    assert_string_equal(outcome_turn(1, "", ""), "failed");
    /* a code longer than the buffer is cut, never overflows */
    char small[8] = "";
    outcome_note_checkout(small, sizeof small, "a_very_long_error_code");
    assert_int_equal(strlen(small), 7);
    assert_string_equal(outcome_turn(0, "", small), "tool_error");
}

static void test_known_sets(void **state)
{
    (void)state;
    assert_true(in_set("completed", OUTCOME_TURN_KNOWN));
    assert_true(in_set("payment_declined", OUTCOME_TURN_KNOWN));
    assert_true(in_set("out_of_stock", OUTCOME_TURN_KNOWN));
    assert_true(in_set("tool_error", OUTCOME_TURN_KNOWN));
    assert_true(in_set("model_unavailable", OUTCOME_TURN_KNOWN));
    assert_true(in_set("ok", OUTCOME_TOOL_KNOWN));
    assert_false(in_set("completed", OUTCOME_TOOL_KNOWN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tool_outcomes),
        cmocka_unit_test(test_turn_outcome),
        cmocka_unit_test(test_known_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
