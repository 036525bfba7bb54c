/* Action turns (agent/action.c): the deterministic answer worded from each
 * action's tool result, and what a turn keeps from its tool results (the
 * last search's products for turn_result.products, an action's result). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/runner.h"
#include "agent/turn.h"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("test JSON does not parse: %s (%s)", text, je.text);
    return j;
}

static void expect_answer_at(const char *tool, const char *args, const char *result,
                             const char *want, int line)
{
    json_t *a = load(args);
    json_t *r = result ? load(result) : NULL;
    char *got = action_answer(tool, a, r);
    json_decref(a);
    json_decref(r);
    if (!got || strcmp(got, want) != 0)
        fail_msg("line %d: %s answered \"%s\", want \"%s\"", line, tool, got ? got : "(null)",
                 want);
    free(got);
}
#define expect_answer(t, a, r, w) expect_answer_at(t, a, r, w, __LINE__)

#define CART                                                                                \
    "{\"id\":\"chk_1\",\"status\":\"incomplete\",\"currency\":\"USD\",\"line_items\":[{\"id\":" \
    "\"li_1\",\"item\":{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\"},"         \
    "\"quantity\":2}],\"totals\":[{\"type\":\"total\",\"amount\":998}]"

static void test_answers(void **state)
{
    (void)state;
    expect_answer("add_to_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":1}", CART "}",
                  "Added 1 \u00d7 Chocolate Chip Cookies to your checkout.");
    expect_answer("update_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":2}", CART "}",
                  "Updated Chocolate Chip Cookies to 2 in your checkout.");
    expect_answer("update_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":0}", CART "}",
                  "Removed BISC-001 from your checkout.");
    expect_answer("remove_from_checkout", "{\"product_id\":\"STRAW-001\"}", CART "}",
                  "Removed STRAW-001 from your checkout.");
    /* start_payment wraps the checkout; what is missing is asked for */
    expect_answer("start_payment", "{}", "{\"checkout\":" CART "},\"ready\":false}",
                  "Here is your checkout; provide your email and shipping address to continue.");
    expect_answer("start_payment", "{}",
                  "{\"checkout\":" CART ",\"buyer\":{\"email\":\"a@b.co\"}},\"ready\":false}",
                  "Here is your checkout; provide your shipping address to continue.");
    expect_answer("get_checkout", "{}",
                  CART ",\"fulfillment\":{\"methods\":[{\"destinations\":[{\"id\":\"d\"}]}]}}",
                  "Here is your checkout; provide your email to continue.");
    expect_answer("start_payment", "{}",
                  "{\"checkout\":{\"status\":\"incomplete\",\"buyer\":{\"email\":\"a@b.co\"},"
                  "\"fulfillment\":{\"methods\":[{\"destinations\":[{\"id\":\"d\"}]}]},"
                  "\"messages\":[{\"content\":\"Please select a fulfillment option\"}]}}",
                  "Here is your checkout; Please select a fulfillment option");
    expect_answer("start_payment", "{}",
                  "{\"checkout\":{\"status\":\"ready_for_complete\"},\"ready\":true}",
                  "Your checkout is ready: choose a payment method to complete the purchase.");
    expect_answer("complete_checkout", "{}",
                  "{\"status\":\"completed\",\"currency\":\"USD\",\"order\":{\"id\":\"ord_9\"},"
                  "\"totals\":[{\"type\":\"subtotal\",\"amount\":998},{\"type\":\"total\","
                  "\"amount\":1234}]}",
                  "Your order ord_9 is placed. Thank you! Total charged: $12.34.");
    expect_answer("complete_checkout", "{}",
                  "{\"status\":\"completed\",\"currency\":\"EUR\",\"order\":{\"id\":\"ord_9\"},"
                  "\"totals\":[{\"type\":\"total\",\"amount\":5}]}",
                  "Your order ord_9 is placed. Thank you! Total charged: 0.05 EUR.");
    /* a tool error is the answer */
    expect_answer("complete_checkout", "{}",
                  "{\"error\":{\"code\":\"payment_declined\",\"message\":\"the payment was "
                  "declined\"}}",
                  "Sorry, that didn't work: the payment was declined");
    expect_answer("add_to_checkout", "{\"product_id\":\"X\",\"quantity\":1}", NULL,
                  "Sorry, that didn't work: the shop did not answer.");
}

static void test_turn_keeps_products_and_action_result(void **state)
{
    (void)state;
    struct turn *t = calloc(1, sizeof *t);
    assert_non_null(t);
    json_t *r1 = load("{\"products\":[{\"id\":\"BISC-001\"}],\"total\":1}");
    json_t *r2 = load("{\"products\":[{\"id\":\"CHIPS-001\"}],\"total\":1}");
    json_t *bad = load("{\"error\":{\"code\":\"search_failed\",\"message\":\"x\"}}");
    turn_note_tool(t, "search_shopping_catalog", r1);
    turn_note_tool(t, "search_shopping_catalog", r2);
    turn_note_tool(t, "search_shopping_catalog", bad); /* no products: the last ones stay */
    turn_note_tool(t, "get_product", r1);
    assert_ptr_equal(t->products, json_object_get(r2, "products"));
    assert_null(t->action_result); /* not an action turn */
    t->action_tool = strdup("add_to_checkout");
    json_t *co = load(CART "}");
    turn_note_tool(t, "get_checkout", r1);
    assert_null(t->action_result);
    turn_note_tool(t, "add_to_checkout", co);
    assert_ptr_equal(t->action_result, co);
    json_decref(r1);
    json_decref(r2);
    json_decref(bad);
    json_decref(co);
    json_decref(t->products);
    json_decref(t->action_result);
    free(t->action_tool);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),
        cmocka_unit_test(test_turn_keeps_products_and_action_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
