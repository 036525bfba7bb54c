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
#include "agent/tools.h"
#include "commerce/catalog.h"
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
