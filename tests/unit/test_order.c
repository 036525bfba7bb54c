/* The order's update rules (commerce/order_update.c): append-only logs,
 * the schema's statuses and shapes, shipped quantities, the changes an
 * update reports for the order webhooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "commerce/order.h"
#include "core/err.h"

static const char *DOC =
    "{\"id\":\"ord_1\",\"checkout_id\":\"chk_1\",\"permalink_url\":\"http://x/orders/ord_1\","
    "\"currency\":\"USD\",\"line_items\":[{\"id\":\"li_1\",\"item\":{\"id\":\"BISC-001\","
    "\"title\":\"Biscuits\",\"price\":250},\"quantity\":{\"total\":2,\"fulfilled\":0},"
    "\"totals\":[{\"type\":\"subtotal\",\"amount\":500}]}],"
    "\"fulfillment\":{\"expectations\":[],\"events\":[]},"
    "\"totals\":[{\"type\":\"subtotal\",\"amount\":500},{\"type\":\"total\",\"amount\":500}]}";

static struct order *fresh(void)
{
    json_t *j = json_loads(DOC, 0, NULL);
    struct order *o = NULL;
    assert_int_equal(order_from_json(j, &o, NULL), 0);
    json_decref(j);
    return o;
}

static int put(struct order *o, const char *body, unsigned *changes, struct agentd_error *e)
{
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    int rc = order_apply_update(o, j, changes, e);
    json_decref(j);
    return rc;
}

#define EV(id, type, q)                                                                        \
    "{\"id\":\"" id "\",\"type\":\"" type "\",\"occurred_at\":\"2026-01-12T10:00:00Z\","       \
    "\"line_items\":[{\"id\":\"li_1\",\"quantity\":" #q "}]}"
#define ADJ(id, type, status)                                                                  \
    "{\"id\":\"" id "\",\"type\":\"" type "\",\"occurred_at\":\"2026-01-12T10:00:00Z\","       \
    "\"status\":\"" status "\",\"amount\":100}"

static void test_shipped_events_fill_lines_and_report_shipped(void **state)
{
    (void)state;
    struct order *o = fresh();
    unsigned ch = 0;
    assert_int_equal(put(o, "{\"fulfillment\":{\"events\":[" EV("e1", "shipped", 1) "]}}", &ch,
                         NULL), 0);
    assert_int_equal(ch, ORDER_CHANGE_UPDATED | ORDER_CHANGE_SHIPPED);
    assert_int_equal(o->lines[0].fulfilled, 1);
    /* the same log again: nothing changed, nothing to report */
    assert_int_equal(put(o, "{\"fulfillment\":{\"events\":[" EV("e1", "shipped", 1) "]}}", &ch,
                         NULL), 0);
    assert_int_equal(ch, 0);
    /* one more than ordered in all: refused, nothing applied */
    struct agentd_error e = { 0 };
    assert_int_equal(put(o, "{\"fulfillment\":{\"events\":[" EV("e1", "shipped", 1) ","
                            EV("e2", "shipped", 2) "]}}", &ch, &e), AGENTD_EUNPROCESSABLE);
    assert_int_equal(json_array_size(o->events), 1);
    order_free(o);
}

static void test_logs_are_append_only_but_a_status_moves_on(void **state)
{
    (void)state;
    struct order *o = fresh();
    unsigned ch = 0;
    struct agentd_error e = { 0 };
    assert_int_equal(put(o, "{\"adjustments\":[" ADJ("a1", "refund", "pending") "]}", &ch, NULL), 0);
    assert_int_equal(put(o, "{\"adjustments\":[" ADJ("a1", "refund", "completed") "]}", &ch, NULL),
                     0);
    assert_int_equal(ch, ORDER_CHANGE_UPDATED);
    assert_int_equal(put(o, "{\"adjustments\":[]}", &ch, &e), AGENTD_EUNPROCESSABLE);
    assert_non_null(strstr(e.msg, "append-only"));
    assert_int_equal(put(o, "{\"adjustments\":[" ADJ("a1", "credit", "completed") "]}", &ch, &e),
                     AGENTD_EUNPROCESSABLE);
    assert_int_equal(put(o, "{\"adjustments\":[" ADJ("a1", "refund", "completed") ","
                            ADJ("a1", "refund", "pending") "]}", &ch, &e),
                     AGENTD_EUNPROCESSABLE);
    order_free(o);
}

static void test_schema_violations_are_422_with_a_path(void **state)
{
    (void)state;
    static const struct {
        const char *body, *path;
    } bad[] = {
        { "{\"adjustments\":[" ADJ("a", "refund", "done") "]}", "$.adjustments[0].status" },
        { "{\"adjustments\":[{\"id\":\"a\",\"type\":\"refund\",\"status\":\"pending\"}]}",
          "$.adjustments[0].occurred_at" },
        { "{\"adjustments\":[{\"id\":\"a\",\"type\":\"refund\",\"status\":\"pending\","
          "\"occurred_at\":\"2026-01-12T10:00:00Z\",\"amount\":100000}]}",
          "$.adjustments[0].amount" },
        { "{\"fulfillment\":{\"events\":[{\"id\":\"e\",\"type\":\"shipped\","
          "\"occurred_at\":\"2026-01-12T10:00:00Z\"}]}}", "$.fulfillment.events[0].line_items" },
        { "{\"fulfillment\":{\"events\":[" EV("e", "shipped", 0) "]}}",
          "$.fulfillment.events[0].line_items" },
        { "{\"fulfillment\":\"shipped\"}", "$.fulfillment" },
        { "{\"id\":\"ord_2\"}", "$.id" },
        { "{\"line_items\":[]}", "$.line_items" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct order *o = fresh();
        unsigned ch = 7;
        struct agentd_error e = { 0 };
        assert_int_equal(put(o, bad[i].body, &ch, &e), AGENTD_EUNPROCESSABLE);
        assert_string_equal(e.path, bad[i].path);
        assert_int_equal(ch, 0);
        order_free(o);
    }
}

static void test_cancellation_is_reported(void **state)
{
    (void)state;
    struct order *o = fresh();
    unsigned ch = 0;
    assert_int_equal(put(o, "{\"adjustments\":[" ADJ("c", "cancellation", "completed") "]}", &ch,
                         NULL), 0);
    assert_true(ch & ORDER_CHANGE_CANCELED);
    order_free(o);
}

static void test_shipping_simulation_event(void **state)
{
    (void)state;
    struct order *o = fresh();
    struct agentd_error e = { 0 };
    assert_int_equal(order_append_shipped(o, "fev_1", 1768212000, "Mock Carrier", "TRK1",
                                          "https://tracking.example/track/TRK1", &e), 0);
    const json_t *ev = json_array_get(o->events, 0);
    assert_string_equal(json_string_value(json_object_get(ev, "type")), "shipped");
    assert_string_equal(json_string_value(json_object_get(ev, "occurred_at")),
                        "2026-01-12T10:00:00Z");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(ev, "line_items"), 0), "quantity")), 2);
    assert_int_equal(o->lines[0].fulfilled, 2);
    assert_int_equal(order_append_shipped(o, "fev_2", 1768212000, "c", "t", "u", &e),
                     AGENTD_ECONFLICT);
    /* the event survives the store's JSON round trip */
    json_t *j = order_to_json(o, NULL);
    struct order *back = NULL;
    assert_int_equal(order_from_json(j, &back, NULL), 0);
    assert_true(json_equal(back->events, o->events));
    json_decref(j);
    order_free(back);
    order_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_events_fill_lines_and_report_shipped),
        cmocka_unit_test(test_logs_are_append_only_but_a_status_moves_on),
        cmocka_unit_test(test_schema_violations_are_422_with_a_path),
        cmocka_unit_test(test_cancellation_is_reported),
        cmocka_unit_test(test_shipping_simulation_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
