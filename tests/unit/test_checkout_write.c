/* The stored checkout document written straight from the model
 * (checkout_doc_write) against the tree + dump path it replaced: same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "commerce/checkout.h"
#include "commerce/order.h"
#include "commerce/ucp.h"
#include "core/buf.h"
#include "core/jsondump.h"

/* A deterministic stand-in for sealing: the text behind a marker, so the
 * comparison covers the plaintext's bytes too. */
static int fake_seal(void *ctx, const char *text, size_t len, char **sealed)
{
    (void)ctx;
    assert_int_equal(strlen(text), len);
    *sealed = malloc(len + 3);
    memcpy(*sealed, "S:", 2);
    memcpy(*sealed + 2, text, len + 1);
    return 0;
}

/* The old path: tree, internal keys, the payment moved to payment_sealed
 * as sealed_doc_seal does when a token is there, a compact dump. */
static char *tree_doc(const struct checkout *c, int seal)
{
    json_t *doc = checkout_to_doc_json(c);
    assert_non_null(doc);
    assert_int_equal(checkout_internal_to_doc(c, doc), 0);
    json_t *in = json_object_get(doc, "_agentd");
    json_t *p = json_object_get(in, "payment");
    int tok = 0;
    size_t i;
    json_t *ins;
    json_array_foreach(json_object_get(p, "instruments"), i, ins)
        tok |= json_object_get(json_object_get(ins, "credential"), "token") != NULL;
    if (seal && tok) {
        char *t = jsondump(p, JSON_COMPACT, NULL), *s = NULL;
        assert_int_equal(fake_seal(NULL, t, strlen(t), &s), 0);
        json_object_set_new(in, "payment_sealed", json_string(s));
        json_object_del(in, "payment");
        free(t);
        free(s);
    }
    char *text = jsondump(doc, JSON_COMPACT, NULL);
    json_decref(doc);
    return text;
}

static struct checkout *load(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!doc)
        fail_msg("fixture: %s at %d", je.text, je.position);
    struct checkout *c = NULL;
    struct agentd_error e = { 0 };
    if (checkout_from_json(doc, &c, &e) || checkout_internal_from_doc(c, doc, &e))
        fail_msg("fixture: %s", e.msg);
    json_decref(doc);
    return c;
}

static void same(const struct checkout *c)
{
    for (int seal = 0; seal < 2; seal++) {
        char *want = tree_doc(c, seal);
        struct buf b = { 0 };
        assert_int_equal(checkout_doc_write(&b, c, seal ? fake_seal : NULL, NULL), 0);
        assert_non_null(want);
        assert_string_equal(b.data, want);
        free(want);
        buf_free(&b);
    }
}

/* Everything a checkout can hold, strings with escapes and non-ASCII. */
static const char *const rich =
    "{\"id\":\"chk_1\",\"status\":\"ready_for_complete\",\"currency\":\"USD\","
    "\"line_items\":[{\"id\":\"li_1\",\"item\":{\"id\":\"sku\\\"1\",\"title\":\"Caf\\u00e9 \\n"
    "mug\",\"price\":1250,\"image_url\":\"https://x.test/i.png\"},\"quantity\":2,"
    "\"totals\":[{\"type\":\"subtotal\",\"amount\":2500},{\"type\":\"items_discount\","
    "\"amount\":250},{\"type\":\"tax\",\"amount\":180},{\"type\":\"total\",\"amount\":2430}]},"
    "{\"id\":\"li_2\",\"item\":{\"id\":\"b\",\"title\":\"B\",\"price\":1},\"quantity\":1,"
    "\"totals\":[{\"type\":\"subtotal\",\"amount\":1},{\"type\":\"total\",\"amount\":1}]}],"
    "\"buyer\":{\"first_name\":\"J\\u00f6\",\"email\":\"j@x.test\",\"consent\":{\"marketing\":"
    "true,\"w\":0.1,\"n\":[1,null,\"a\"]}},"
    "\"totals\":[{\"type\":\"subtotal\",\"display_text\":\"Subtotal\",\"amount\":2501}],"
    "\"messages\":[{\"type\":\"error\",\"code\":\"out_of_stock\",\"content\":\"gone\","
    "\"severity\":\"recoverable\",\"path\":\"$.line_items[0]\"},{\"type\":\"info\","
    "\"code\":\"c\",\"content\":\"\"}],"
    "\"links\":[{\"type\":\"terms_of_service\",\"url\":\"https://x.test/t\",\"title\":\"T\"},"
    "{\"type\":\"privacy_policy\",\"url\":\"https://x.test/p\"}],"
    "\"expires_at\":\"2026-12-03T18:00:00Z\",\"continue_url\":\"https://x.test/c\","
    "\"payment\":{\"handlers\":[{\"id\":\"h\",\"config\":{\"r\":2.5}}],\"instruments\":[],"
    "\"selected_instrument_id\":\"pi_1\"},"
    "\"fulfillment\":{\"methods\":[{\"id\":\"m1\",\"type\":\"shipping\",\"line_item_ids\":"
    "[\"li_1\",\"li_2\"],\"destinations\":[{\"id\":\"d1\",\"street_address\":\"1 Main\","
    "\"address_locality\":\"X\",\"address_country\":\"US\",\"postal_code\":\"1\"},"
    "{\"id\":\"d2\",\"address_country\":\"DE\"}],\"groups\":[{\"id\":\"g1\",\"line_item_ids\":"
    "[\"li_1\",\"li_2\"],\"options\":[{\"id\":\"std\",\"title\":\"Std\",\"totals\":[{\"type\":"
    "\"total\",\"amount\":500}],\"description\":\"3 days\"},{\"id\":\"exp\",\"title\":\"Exp\","
    "\"totals\":[{\"type\":\"total\",\"amount\":900}]}],\"selected_option_id\":\"std\"}],"
    "\"selected_destination_id\":\"d1\"}]},"
    "\"discounts\":{\"codes\":[\"SAVE10\",\"X\"],\"applied\":[{\"code\":\"SAVE10\",\"title\":"
    "\"10%\",\"amount\":250,\"method\":\"each\",\"priority\":1,\"allocations\":[{\"path\":"
    "\"$.line_items[0]\",\"amount\":250}]}]},"
    "\"_agentd\":{\"version\":7,\"created_at\":1764780000,\"updated_at\":1764780100,"
    "\"next_seq\":3,\"payment\":{\"instruments\":[{\"id\":\"pi_1\",\"handler_id\":\"h\","
    "\"type\":\"card\",\"brand\":\"visa\",\"last_digits\":\"4242\",\"expiry_month\":12,"
    "\"expiry_year\":2030,\"credential\":{\"type\":\"PAYMENT_GATEWAY\",\"token\":\"tok_\\\"x\"}},"
    "{\"handler_id\":\"h2\",\"credential\":{\"token\":\"t2\"}}],\"selected_instrument_id\":\"pi_1\"},"
    "\"line_totals\":[[2500,250,2250,180,2430],[1,0,1,0,1]],\"totals\":{\"subtotal\":2501,"
    "\"items_discount\":250,\"discount\":0,\"fulfillment\":500,\"tax\":180,\"fee\":0,"
    "\"total\":2931},\"escalation\":{\"type\":\"error\",\"code\":\"e\",\"content\":\"c\"},"
    "\"webhook_url\":\"https://x.test/hook\",\"op_keys\":[\"k1\",\"k\\u00e92\"],"
    "\"completing\":{\"key\":\"k1\",\"at\":1764780200,\"by\":\"inst-1\"}}}";

static void test_rich_same_bytes(void **state)
{
    (void)state;
    struct checkout *c = load(rich);
    same(c);
    checkout_free(c);
}

/* The least a checkout holds: no buyer, lines, links, payment, extensions. */
static const char *const bare =
    "{\"id\":\"chk_2\",\"status\":\"incomplete\",\"currency\":\"EUR\",\"line_items\":[],"
    "\"totals\":[],\"links\":[],\"payment\":{\"instruments\":[]},"
    "\"_agentd\":{\"version\":0,\"created_at\":1,\"updated_at\":1,\"next_seq\":0,"
    "\"payment\":{\"instruments\":[]},\"line_totals\":[],\"totals\":{\"subtotal\":0,"
    "\"items_discount\":0,\"discount\":0,\"fulfillment\":0,\"tax\":0,\"fee\":0,\"total\":0}}}";

static void test_bare_same_bytes(void **state)
{
    (void)state;
    struct checkout *c = load(bare);
    same(c);
    checkout_free(c);
}

/* Completed: an order, no continue_url, a claim without its instance,
 * no selected option or destination. */
static const char *const done =
    "{\"id\":\"chk_3\",\"status\":\"completed\",\"currency\":\"USD\",\"line_items\":[],"
    "\"buyer\":{},\"totals\":[],\"links\":[],\"continue_url\":\"https://x.test/c\","
    "\"payment\":{\"handlers\":[],\"instruments\":[{\"id\":\"p\",\"type\":\"card\","
    "\"credential\":{\"type\":\"x\"}}]},"
    "\"fulfillment\":{\"methods\":[{\"id\":\"m\",\"line_item_ids\":[],\"destinations\":[],"
    "\"groups\":[{\"id\":\"g\",\"line_item_ids\":[],\"options\":[],\"selected_option_id\":null}],"
    "\"selected_destination_id\":null}]},"
    "\"discounts\":{\"codes\":[\"Z\"],\"applied\":[]},"
    "\"order\":{\"id\":\"ord_1\",\"permalink_url\":\"https://x.test/o/1\"},"
    "\"_agentd\":{\"version\":2,\"created_at\":1,\"updated_at\":2,\"next_seq\":1,"
    "\"payment\":{\"instruments\":[{\"id\":\"p\",\"handler_id\":\"h\",\"type\":\"card\",\"credential\":{\"type\":\"x\"}}]},"
    "\"line_totals\":[],\"totals\":{\"subtotal\":0,\"items_discount\":0,\"discount\":0,"
    "\"fulfillment\":7,\"tax\":0,\"fee\":3,\"total\":10},"
    "\"completing\":{\"key\":\"k\",\"at\":5}}}";

static void test_completed_same_bytes(void **state)
{
    (void)state;
    struct checkout *c = load(done);
    same(c);
    checkout_free(c);
}

/* Integers at their edges (negative, zero, INT64 extremes) as the tree dumps them. */
static void test_integers_same_bytes(void **state)
{
    (void)state;
    struct checkout *c = load(rich);
    const int64_t v[] = { 0, -1, 9, 10, -10, 1234567890123LL, INT64_MAX, INT64_MIN };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        c->version = v[i];
        c->created_at = v[(i + 1) % 8];
        c->totals.fee = v[(i + 3) % 8];
        c->lines[0].totals.tax = v[(i + 5) % 8];
        same(c);
    }
    checkout_free(c);
}

/* The handlers' text is kept per thread for the tree last written: two
 * checkouts with other handlers, alternated, each get their own. */
static void test_handlers_memo_follows_the_tree(void **state)
{
    (void)state;
    struct checkout *a = load(rich), *b = load(done);
    for (int i = 0; i < 3; i++) {
        same(a);
        same(b);
    }
    json_t *other = json_pack("[{s:s}]", "id", "other");
    json_decref(b->payment.handlers);
    b->payment.handlers = other;
    same(b);
    same(a);
    checkout_free(a);
    checkout_free(b);
}

/* A string that is not UTF-8 fails both ways (the tree cannot hold it). */
static void test_bad_utf8_refused(void **state)
{
    (void)state;
    struct checkout *c = load(bare);
    memcpy(c->currency, "\xff\xfe", 3);
    struct buf b = { 0 };
    assert_int_equal(checkout_doc_write(&b, c, NULL, NULL), AGENTD_EINVAL);
    buf_free(&b);
    assert_null(checkout_to_doc_json(c));
    checkout_free(c);
}

static void order_same(const struct order *o, const char *webhook)
{
    json_t *j = order_to_json(o, NULL);
    assert_non_null(j);
    if (webhook)
        json_object_set_new(j, "_agentd", json_pack("{s:s}", "webhook_url", webhook));
    char *want = jsondump(j, JSON_COMPACT, NULL);
    json_decref(j);
    struct buf b = { 0 };
    assert_int_equal(order_doc_write(&b, o, webhook), 0);
    assert_string_equal(b.data, want);
    free(want);
    buf_free(&b);
}

/* The order of the rich checkout (an expectation, the buyer's consent),
 * then with events, adjustments and a line partly fulfilled; and of the
 * bare one (no buyer, no lines). */
static void test_order_same_bytes(void **state)
{
    (void)state;
    const char *const fixtures[] = { rich, bare };
    for (size_t f = 0; f < 2; f++) {
        struct checkout *c = load(fixtures[f]);
        c->status = CHECKOUT_COMPLETED;
        c->order_id = strdup("ord_\u00e9\"1");
        struct order *o = NULL;
        struct agentd_error e = { 0 };
        assert_int_equal(order_from_checkout(c, &o, &e), 0);
        assert_int_equal(o->n_expectations, f == 0 ? 1 : 0);
        order_same(o, NULL);
        order_same(o, "https://x.test/h?a=\"b\"");
        if (o->n_lines)
            o->lines[0].fulfilled = 1;
        json_array_append_new(o->events, json_pack("{s:s,s:f}", "type", "shipped", "x", 0.3));
        json_array_append_new(o->adjustments, json_pack("{s:s,s:n}", "type", "refund", "n"));
        order_same(o, "https://x.test/h");
        order_free(o);
        checkout_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rich_same_bytes),
        cmocka_unit_test(test_bare_same_bytes),
        cmocka_unit_test(test_completed_same_bytes),
        cmocka_unit_test(test_bad_utf8_refused),
        cmocka_unit_test(test_integers_same_bytes),
        cmocka_unit_test(test_handlers_memo_follows_the_tree),
        cmocka_unit_test(test_order_same_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
