/* The tool step's JSON without jansson's packing: the catalog search's
 * products, and a tool result's event and message texts, byte for byte what
 * json_pack + json_dumps made of them before (the references below). */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/budget.h"
#include "agent/tool_products.h"
#include "agent/tools.h"
#include "commerce/catalog.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "shop/merchant.h"
#include "store/store.h"

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static const char *opt(const char *s) { return s && *s ? s : NULL; }

/* the search result as tools.c packed it before */
static json_t *reference_search(struct catalog *cat, const char *text)
{
    struct catalog_query q = { .text = text };
    struct catalog_hits *hits = calloc(1, sizeof *hits);
    assert_non_null(hits);
    assert_int_equal(catalog_search(cat, &q, hits), 0);
    json_t *list = json_array();
    for (size_t i = 0; i < hits->n; i++) {
        const struct product *p = hits->hits[i].product;
        json_array_append_new(
            list, json_pack("{s:s,s:s,s:I,s:s,s:b,s:s,s:s,s:s*,s:s*,s:s*}", "id", p->id, "title",
                            p->name, "price", (json_int_t)p->price, "currency",
                            catalog_currency(cat), "in_stock", p->available && p->stock > 0,
                            "category", p->category ? p->category : "", "description",
                            p->description ? p->description : "", "image", opt(p->image_url),
                            "brand", opt(p->brand), "url", opt(p->url)));
    }
    json_t *out = json_pack("{s:o,s:I}", "products", list, "total", (json_int_t)hits->total);
    free(hits);
    return out;
}

static void test_search_products_as_packed(void **state)
{
    (void)state;
    char dir[] = "/tmp/agentd-test-tools-result-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[512];
    snprintf(url, sizeof url, "%s/agentd.db", dir);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    struct store *st = NULL;
    assert_int_equal(store_open(&o, &st, NULL), 0);
    struct merchant *m = merchant_new(st, NULL); /* the built-in catalog */
    assert_non_null(m);
    assert_int_equal(merchant_load(m, NULL), 0);
    struct tools_ctx ctx = { .merchant = m, .owner = "tester" };
    const char *queries[] = { "cookies", "tea", "coffee mug", "zzzz-nothing" };
    int nonempty = 0;
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        char args[128];
        snprintf(args, sizeof args, "{\"query\":\"%s\"}", queries[i]);
        json_t *got = tools_run(&ctx, "search_shopping_catalog", args);
        assert_non_null(got);
        struct catalog *cat = merchant_catalog(m);
        json_t *want = reference_search(cat, queries[i]);
        catalog_unref(cat);
        char *g = json_dumps(got, JSON_COMPACT), *w = json_dumps(want, JSON_COMPACT);
        assert_non_null(g);
        assert_string_equal(g, w);
        nonempty += json_array_size(json_object_get(got, "products")) > 0;
        free(g);
        free(w);
        json_decref(got);
        json_decref(want);
    }
    assert_true(nonempty >= 2); /* the comparison saw real products */
    merchant_free(m);
    store_close(st);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* One merchant's searches through tools_run_texts: the result as packed
 * before, its content as jsondump writes the result, its message as
 * tools_result_message builds it around that content, whether the products
 * came from this thread's cache or not. */
static int search_texts(struct merchant *m, const char *query)
{
    struct tools_ctx ctx = { .merchant = m, .owner = "tester" };
    char args[256];
    snprintf(args, sizeof args, "{\"query\":\"%s\"}", query);
    char *content = NULL, *msg = NULL;
    json_t *got = tools_run_texts(&ctx, "search_shopping_catalog", args, "call \"1\"", &content,
                                  &msg);
    assert_non_null(got);
    assert_non_null(content);
    assert_non_null(msg);
    struct catalog *cat = merchant_catalog(m);
    json_t *want = reference_search(cat, query);
    catalog_unref(cat);
    char *w = json_dumps(want, JSON_COMPACT), *g = jsondump(got, JSON_COMPACT, NULL);
    assert_string_equal(g, w);
    assert_string_equal(content, w);
    char *want_msg = tools_result_message("call \"1\"", w);
    assert_string_equal(msg, want_msg);
    int n = (int)json_array_size(json_object_get(got, "products"));
    free(want_msg);
    free(w);
    free(g);
    free(content);
    free(msg);
    json_decref(got);
    json_decref(want);
    return n;
}

static const char ODD_CATALOG[] =
    "{\"currency\":\"EUR\",\"products\":["
    "{\"productID\":\"Q-1\",\"name\":\"Caf\xc3\xa9 \\\"Noir\\\" \\\\ beans\",\"description\":"
    "\"</script> tab\\there \\u2028 \xe2\x82\xac\",\"category\":\"Coffee\",\"keywords\":[\"beans\"],"
    "\"offers\":{\"price\":\"7.50\",\"priceCurrency\":\"EUR\",\"availability\":\"https://schema.org/InStock\"},"
    "\"inventory\":{\"quantity\":3}},"
    "{\"productID\":\"Q-2\",\"name\":\"Plain beans\",\"offers\":{\"price\":\"1.00\","
    "\"priceCurrency\":\"EUR\",\"availability\":\"https://schema.org/OutOfStock\"},"
    "\"inventory\":{\"quantity\":0}}]}";

static void test_search_texts_cached(void **state)
{
    (void)state;
    char dir[] = "/tmp/agentd-test-tools-texts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[512], odd[512];
    snprintf(url, sizeof url, "%s/agentd.db", dir);
    snprintf(odd, sizeof odd, "%s/odd.json", dir);
    FILE *f = fopen(odd, "w");
    assert_non_null(f);
    fputs(ODD_CATALOG, f);
    fclose(f);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    struct store *st = NULL;
    assert_int_equal(store_open(&o, &st, NULL), 0);
    struct merchant *demo = merchant_new(st, NULL), *other = merchant_new(st, odd);
    assert_non_null(demo);
    assert_non_null(other);
    assert_int_equal(merchant_load(demo, NULL), 0);
    struct agentd_error le = { 0 };
    if (merchant_load(other, &le) != 0)
        fail_msg("odd catalog: %s", le.msg);
    /* cold, warm, the other catalog (the cache switches), back, after a reset */
    for (int round = 0; round < 3; round++) {
        assert_true(search_texts(demo, "cookies") >= 2);
        assert_true(search_texts(demo, "cookies") >= 2);
        assert_true(search_texts(demo, "tea") >= 1);
        assert_int_equal(search_texts(demo, "zzzz-nothing"), 0);
        assert_int_equal(search_texts(other, "beans"), 2);
        assert_int_equal(search_texts(other, "beans"), 2);
        if (round == 1)
            tool_products_reset();
    }
    /* a tool other than the search: texts dumped from its result */
    struct tools_ctx ctx = { .merchant = other, .owner = "tester" };
    char *content = NULL, *msg = NULL;
    json_t *p = tools_run_texts(&ctx, "get_product", "{\"product_id\":\"Q-1\"}", "c2", &content,
                                &msg);
    char *want = jsondump(p, JSON_COMPACT, NULL), *want_msg = tools_result_message("c2", want);
    assert_string_equal(content, want);
    assert_string_equal(msg, want_msg);
    assert_non_null(strstr(content, "Caf\xc3\xa9 \\\"Noir\\\""));
    free(want);
    free(want_msg);
    free(content);
    free(msg);
    json_decref(p);
    tool_products_reset();
    merchant_free(demo);
    merchant_free(other);
    store_close(st);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* the tool-result event and the tool message as runner.c packed them */
static void check_texts(const char *id, const char *name, const char *result_text)
{
    json_t *result = result_text ? json_loads(result_text, 0, NULL) : NULL;
    assert_true(!result_text || result);
    char *content = result ? jsondump(result, JSON_COMPACT, NULL) : NULL;
    json_t *ev = json_pack("{s:s,s:s?,s:O?}", "tool_call_id", id, "name", name, "result", result);
    char *want_ev = jsondump(ev, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION), NULL);
    json_t *msg = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id", id, "content",
                            content ? content : "{\"error\":{\"code\":\"out_of_memory\"}}");
    char *want_msg = jsondump(msg, JSON_COMPACT, NULL);
    char *got_ev = tools_result_event(id, name, result, content);
    char *got_msg = tools_result_message(id, content);
    assert_non_null(got_ev);
    assert_non_null(got_msg);
    assert_string_equal(got_ev, want_ev);
    assert_string_equal(got_msg, want_msg);
    free(got_ev);
    free(got_msg);
    free(want_ev);
    free(want_msg);
    free(content);
    json_decref(ev);
    json_decref(msg);
    json_decref(result);
}

static void test_result_texts_as_packed(void **state)
{
    (void)state;
    check_texts("call_1", "search_shopping_catalog",
                "{\"products\":[{\"id\":\"A\",\"title\":\"T \\\"q\\\" \\u00e9\\n\",\"price\":399}],"
                "\"total\":1}");
    check_texts("", NULL, "{\"error\":{\"code\":\"x\",\"message\":\"</script>\\u0001\"}}");
    check_texts("id \"quoted\" \xc3\xa9", "get_checkout", "{\"a\":[],\"b\":{},\"c\":null}");
    /* reals: the event keeps its own precision (15 digits), the message the
     * content's */
    check_texts("call_2", "get_product", "{\"rating\":4.123456789012345678,\"x\":0.1}");
    check_texts("call_3", "get_product", NULL); /* out of memory: no result */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_products_as_packed),
        cmocka_unit_test(test_result_texts_as_packed),
        cmocka_unit_test(test_search_texts_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
