/* api/a2a_ucp: UI actions in A2A parts of every generation (0.3 kind, the
 * sample client's "type", 1.0 field presence) mapped to tool calls, with
 * malformed ones refused; tool products as schema.org product results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/a2a_ucp.h"
#include "core/err.h"

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("test JSON does not parse: %s (%s)", text, je.text);
    return j;
}

/* parts_text must map to tool with args equal to args_text */
static void expect_action_at(const char *parts_text, const char *tool, const char *args_text,
                             int line)
{
    json_t *parts = load(parts_text);
    const char *t = NULL;
    json_t *args = NULL;
    struct agentd_error e;
    int rc = a2a_ucp_action(parts, &t, &args, &e);
    json_decref(parts);
    if (rc != 1)
        fail_msg("line %d: %s: rc=%d why=%s", line, parts_text, rc, e.msg);
    json_t *want = load(args_text);
    int same = json_equal(args, want);
    char *got = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(want);
    json_decref(args);
    if (strcmp(t, tool) != 0 || !same) {
        fail_msg("line %d: got %s %s, want %s %s", line, t, got, tool, args_text);
    }
    free(got);
}
#define expect_action(p, t, a) expect_action_at(p, t, a, __LINE__)

static void expect_refused_at(const char *parts_text, const char *needle, int line)
{
    json_t *parts = load(parts_text);
    const char *t = "unset";
    json_t *args = (json_t *)1;
    struct agentd_error e;
    int rc = a2a_ucp_action(parts, &t, &args, &e);
    json_decref(parts);
    if (rc != AGENTD_EINVAL || t != NULL || args != NULL || !strstr(e.msg, needle))
        fail_msg("line %d: %s: rc=%d why=\"%s\" (want EINVAL and \"%s\")", line, parts_text, rc,
                 e.msg, needle);
}
#define expect_refused(p, n) expect_refused_at(p, n, __LINE__)

static void expect_none_at(const char *parts_text, int line)
{
    json_t *parts = load(parts_text);
    const char *t = "unset";
    json_t *args = (json_t *)1;
    struct agentd_error e;
    int rc = a2a_ucp_action(parts, &t, &args, &e);
    json_decref(parts);
    if (rc != 0 || t != NULL || args != NULL)
        fail_msg("line %d: %s: rc=%d (want 0, no action)", line, parts_text, rc);
}
#define expect_none(p) expect_none_at(p, __LINE__)

static void test_client_actions(void **state)
{
    (void)state;
    /* the sample client's three buttons, exactly as App.tsx sends them */
    expect_action("[{\"type\":\"text\",\"text\":\"{\\\"action\\\":\\\"add_to_checkout\\\","
                  "\\\"product_id\\\":\\\"BISC-001\\\",\\\"quantity\\\":1}\"}]",
                  "add_to_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":1}");
    expect_action("[{\"type\":\"text\",\"text\":\"{\\\"action\\\":\\\"start_payment\\\"}\"}]",
                  "start_payment", "{}");
    expect_action("[{\"type\":\"data\",\"data\":{\"action\":\"complete_checkout\"}},"
                  "{\"type\":\"data\",\"data\":{\"a2a.ucp.checkout.payment_data\":{\"handler_id\":"
                  "\"example_payment_provider\",\"credential\":{\"type\":\"token\",\"token\":"
                  "\"mock_token_1\"}},\"a2a.ucp.checkout.risk_signals\":{\"data\":\"x\"}}}]",
                  "complete_checkout", "{}");
}

static void test_part_generations(void **state)
{
    (void)state;
    /* 0.3: kind */
    expect_action("[{\"kind\":\"text\",\"text\":\" {\\\"action\\\":\\\"add_to_checkout\\\","
                  "\\\"product_id\\\":\\\"CHIPS-001\\\",\\\"quantity\\\":3}\\n\"}]",
                  "add_to_checkout", "{\"product_id\":\"CHIPS-001\",\"quantity\":3}");
    expect_action("[{\"kind\":\"data\",\"data\":{\"action\":\"start_payment\"}}]", "start_payment",
                  "{}");
    /* 1.0: field presence */
    expect_action("[{\"text\":\"{\\\"action\\\":\\\"start_payment\\\"}\"}]", "start_payment", "{}");
    expect_action("[{\"data\":{\"action\":\"complete_checkout\"},\"mediaType\":"
                  "\"application/json\"}]",
                  "complete_checkout", "{}");
    /* the sample agent's other checkout tools */
    expect_action("[{\"data\":{\"action\":\"update_checkout\",\"product_id\":\"BISC-001\","
                  "\"quantity\":0}}]",
                  "update_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":0}");
    expect_action("[{\"data\":{\"action\":\"remove_from_checkout\",\"product_id\":\"BISC-001\"}}]",
                  "remove_from_checkout", "{\"product_id\":\"BISC-001\"}");
    expect_action("[{\"data\":{\"action\":\"get_checkout\"}}]", "get_checkout", "{}");
    /* one click adds one when the quantity is left out */
    expect_action("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\"}}]",
                  "add_to_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":1}");
}

static void test_not_actions(void **state)
{
    (void)state;
    expect_none("[]");
    expect_none("[{\"type\":\"text\",\"text\":\"show me cookies\"}]");
    expect_none("[{\"kind\":\"text\",\"text\":\"{not json\"}]");
    expect_none("[{\"kind\":\"text\",\"text\":\"{\\\"note\\\":\\\"no action key\\\"}\"}]");
    expect_none("[{\"kind\":\"data\",\"data\":{\"a2a.ucp.checkout.payment_data\":{}}}]");
    /* a data part's action is not read from a text-kind part, nor the reverse */
    expect_none("[{\"kind\":\"file\",\"data\":{\"action\":\"start_payment\"}}]");
    expect_none("[{\"kind\":\"data\",\"text\":\"{\\\"action\\\":\\\"start_payment\\\"}\"}]");
}

static void test_malformed_actions(void **state)
{
    (void)state;
    expect_refused("[{\"data\":{\"action\":\"buy_everything\"}}]", "unknown action \"buy_everything\"");
    expect_refused("[{\"data\":{\"action\":\"buy_everything\"}}]", "add_to_checkout");
    expect_refused("[{\"data\":{\"action\":7}}]", "must be a string");
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"quantity\":1}}]", "product_id");
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":5,\"quantity\":1}}]",
                   "product_id");
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\","
                   "\"quantity\":0}}]",
                   "quantity, an integer from 1");
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\","
                   "\"quantity\":\"2\"}}]",
                   "quantity");
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\","
                   "\"quantity\":1.5}}]",
                   "quantity");
    expect_refused("[{\"data\":{\"action\":\"update_checkout\",\"product_id\":\"BISC-001\","
                   "\"quantity\":-1}}]",
                   "from 0");
    /* the tool's own schema: an id the catalog could never hold */
    expect_refused("[{\"data\":{\"action\":\"add_to_checkout\",\"product_id\":\"a b\","
                   "\"quantity\":1}}]",
                   "product_id");
    expect_refused("[{\"data\":{\"action\":\"start_payment\"}},"
                   "{\"data\":{\"action\":\"complete_checkout\"}}]",
                   "at most one action");
}

static void test_product_results(void **state)
{
    (void)state;
    json_t *products = load(
        "[{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499,\"currency\":"
        "\"USD\",\"in_stock\":true,\"category\":\"Cookies\",\"description\":\"Fresh.\",\"image\":"
        "\"https://example.com/i.jpg\",\"brand\":\"CookieCo\",\"url\":\"https://example.com/p\"},"
        "{\"id\":\"PIE-001\",\"title\":\"Apple Pie\",\"price\":1200,\"currency\":\"USD\","
        "\"in_stock\":false,\"category\":\"\",\"description\":\"\"},"
        "{\"id\":\"JP-1\",\"title\":\"Tea\",\"price\":500,\"currency\":\"JPY\",\"in_stock\":true}]");
    json_t *r = a2a_ucp_product_results(products);
    json_decref(products);
    assert_non_null(r);
    json_t *want = load(
        "{\"results\":[{\"@type\":\"Product\",\"productID\":\"BISC-001\",\"name\":\"Chocolate Chip "
        "Cookies\",\"image\":[\"https://example.com/i.jpg\"],\"brand\":{\"@type\":\"Brand\","
        "\"name\":\"CookieCo\"},\"offers\":{\"@type\":\"Offer\",\"price\":\"4.99\","
        "\"priceCurrency\":\"USD\",\"availability\":\"https://schema.org/InStock\"},\"url\":"
        "\"https://example.com/p\",\"description\":\"Fresh.\",\"category\":\"Cookies\"},"
        "{\"@type\":\"Product\",\"productID\":\"PIE-001\",\"name\":\"Apple Pie\",\"image\":[],"
        "\"brand\":{\"@type\":\"Brand\",\"name\":\"\"},\"offers\":{\"@type\":\"Offer\",\"price\":"
        "\"12.00\",\"priceCurrency\":\"USD\",\"availability\":\"https://schema.org/OutOfStock\"},"
        "\"description\":\"\"},"
        "{\"@type\":\"Product\",\"productID\":\"JP-1\",\"name\":\"Tea\",\"image\":[],\"brand\":"
        "{\"@type\":\"Brand\",\"name\":\"\"},\"offers\":{\"@type\":\"Offer\",\"price\":\"500\","
        "\"priceCurrency\":\"JPY\",\"availability\":\"https://schema.org/InStock\"},"
        "\"description\":\"\"}]}");
    if (!json_equal(r, want)) {
        char *got = json_dumps(r, JSON_INDENT(1) | JSON_SORT_KEYS);
        fail_msg("product results differ:\n%s", got);
    }
    json_decref(want);
    json_decref(r);
    assert_null(a2a_ucp_product_results(NULL));
    json_t *none = json_array();
    r = a2a_ucp_product_results(none);
    json_decref(none);
    assert_int_equal(json_array_size(json_object_get(r, "results")), 0);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_actions),  cmocka_unit_test(test_part_generations),
        cmocka_unit_test(test_not_actions),     cmocka_unit_test(test_malformed_actions),
        cmocka_unit_test(test_product_results),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
