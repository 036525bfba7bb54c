/* core/jsondump: the compact dumper the checkout path uses instead of
 * json_dumps must write exactly json_dumps(JSON_COMPACT)'s bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/jsondump.h"

/* Same bytes as jansson for doc, with and without a real precision. */
static void same_as_jansson(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    assert_non_null(j);
    size_t flagsets[] = { JSON_COMPACT, JSON_COMPACT | JSON_REAL_PRECISION(10),
                          JSON_COMPACT | JSON_ENCODE_ANY,
                          JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10),
                          JSON_COMPACT | JSON_SORT_KEYS,
                          JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY };
    for (size_t k = 0; k < sizeof flagsets / sizeof *flagsets; k++) {
        char *want = json_dumps(j, flagsets[k]);
        size_t len = 0;
        char *got = jsondump(j, flagsets[k], &len);
        if (!want) {
            assert_null(got);
            continue;
        }
        assert_non_null(got);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(want);
        free(got);
    }
    json_decref(j);
}

static void test_matches_json_dumps(void **state)
{
    (void)state;
    same_as_jansson("{}");
    same_as_jansson("[]");
    same_as_jansson("{\"a\":[],\"b\":{},\"c\":[{}],\"d\":[[[]]]}");
    same_as_jansson("{\"z\":1,\"a\":2,\"m\":{\"y\":true,\"b\":false,\"n\":null}}"); /* insertion order */
    same_as_jansson("[0,-1,9223372036854775807,-9223372036854775808,42]");
    same_as_jansson("[1.5,0.1,1e300,-2.5e-7,3.0,100000000000000000000.0]");
    same_as_jansson("{\"s\":\"quote \\\" back \\\\ slash / ctl \\u0001\\b\\f\\n\\r\\t\\u001f\"}");
    same_as_jansson("{\"utf\":\"caf\\u00e9 \\u20ac \\ud83d\\ude00\",\"k\\u00e9y\":\"v\"}");
    same_as_jansson("{\"nul\":\"a\\u0000b\"}");
    same_as_jansson("\"top-level string\""); /* refused without JSON_ENCODE_ANY, like jansson */
    same_as_jansson("\"ctl \\u0001 \\\" caf\\u00e9\"");
    same_as_jansson("0");
    same_as_jansson("-9223372036854775808");
    same_as_jansson("true");
    same_as_jansson("false");
    same_as_jansson("null");
    same_as_jansson("0.1");
    same_as_jansson("{\"ucp\":{\"version\":\"2026-01-11\",\"capabilities\":[{\"name\":\"x\"}]},"
                    "\"line_items\":[{\"id\":\"li_1\",\"quantity\":2,\"totals\":[{\"type\":"
                    "\"subtotal\",\"amount\":998}]}],\"_agentd\":{\"version\":2}}");
    /* JSON_SORT_KEYS (an A2A message's fingerprint): byte order, a prefix
     * first, many keys, nested objects in arrays */
    same_as_jansson("{\"b\":1,\"a\":2,\"ab\":3,\"B\":4,\"_\":5,\"\\u00e9\":6,\"a\\u007f\":7,"
                    "\"\":9}");
    same_as_jansson("{\"k9\":0,\"k8\":0,\"k7\":0,\"k6\":0,\"k5\":0,\"k4\":0,\"k3\":0,"
                    "\"k2\":0,\"k1\":0,\"k0\":0,\"j9\":0,\"j8\":0,\"j7\":0,\"j6\":0,"
                    "\"j5\":0,\"j4\":0,\"j3\":0,\"j2\":0,\"j1\":0,\"j0\":0}");
    same_as_jansson("{\"role\":\"ROLE_USER\",\"messageId\":\"m-1\",\"parts\":[{\"text\":"
                    "\"hi\",\"kind\":\"text\"},{\"data\":{\"z\":[{\"y\":1,\"x\":2}],\"a\":"
                    "1.5}}]}");
}

/* JSON_SORT_KEYS is written here, not handed to jansson: the result does
 * not depend on which writer ran, and jsondump takes the flag as its own
 * (a nesting deeper than jansson's own limit still fails). */
static void test_sort_keys_is_ours(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:i,s:i}", "b", 1, "a", 2);
    char *got = jsondump(j, JSON_COMPACT | JSON_SORT_KEYS, NULL);
    assert_non_null(got);
    assert_string_equal(got, "{\"a\":2,\"b\":1}");
    free(got);
    /* keys with a NUL (json_object_setn): ordered by their bytes as jansson does */
    json_object_setn_new(j, "a\0b", 3, json_integer(3));
    json_object_setn_new(j, "a\0", 2, json_integer(4));
    char *want = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    got = jsondump(j, JSON_COMPACT | JSON_SORT_KEYS, NULL);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
    json_decref(j);
    /* 3000 nested objects: deeper than jsondump's bound (2048) -> NULL; a
     * flag handed to jansson would have dumped it */
    json_t *deep = json_object(), *cur = deep;
    for (int i = 0; i < 3000; i++) {
        json_t *n = json_object();
        json_object_set_new(cur, "x", n);
        cur = n;
    }
    assert_null(jsondump(deep, JSON_COMPACT | JSON_SORT_KEYS, NULL));
    json_decref(deep);
}

/* A string jansson would refuse to dump (not UTF-8) fails here too. */
static void test_invalid_utf8_fails(void **state)
{
    (void)state;
    json_t *j = json_object();
    json_object_set_new(j, "k", json_stringn_nocheck("\xff\xfe", 2));
    assert_null(json_dumps(j, JSON_COMPACT));
    size_t len = 7;
    assert_null(jsondump(j, JSON_COMPACT, &len));
    json_decref(j);
}

/* One shared value in two places of a tree (the checkout's payment
 * handlers) is written twice, as jansson does. */
static void test_shared_value_twice(void **state)
{
    (void)state;
    json_t *h = json_pack("[{s:s}]", "id", "mock");
    json_t *j = json_pack("{s:O, s:{s:O}}", "handlers", h, "_agentd", "handlers", h);
    char *want = json_dumps(j, JSON_COMPACT), *got = jsondump(j, JSON_COMPACT, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
    json_decref(j);
    json_decref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_json_dumps),
        cmocka_unit_test(test_sort_keys_is_ours),
        cmocka_unit_test(test_invalid_utf8_fails),
        cmocka_unit_test(test_shared_value_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
