/* core/jsonparse: whatever it reads must be exactly json_loadb's tree
 * (values, types, member order); whatever it leaves is jansson's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/jsonparse.h"

/* The bench's SendMessage body and shapes clients send. */
static const char *const corpus[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"SendMessage\",\"params\":{\"message\":"
    "{\"role\":\"ROLE_USER\",\"messageId\":\"bench-1733240000-0-17\",\"parts\":[{\"text\":\"hello\"}]}}}",
    " {\"jsonrpc\" : \"2.0\" ,\r\n\t\"id\" : \"abc\", \"method\":\"message/send\",\"params\":"
    "{\"message\":{\"kind\":\"message\",\"role\":\"user\",\"messageId\":\"m1\",\"contextId\":null,"
    "\"parts\":[{\"kind\":\"text\",\"text\":\"a \\\"quoted\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9\\u20ac\\u0041\"},"
    "{\"kind\":\"data\",\"data\":{\"a\":[1,-2,0,-0,true,false,null,[],{}],\"b\":{\"c\":[[[]]]}}}]},"
    "\"configuration\":{\"blocking\":false,\"historyLength\":3}}} \n",
    "{\"a\":1,\"b\":2,\"a\":3}",
    "{\"\":\"\",\"k\\u0041\":\"v\"}",
    "[1,2,3,\"x\",{\"y\":[]}]",
    "[]",
    "{}",
    "{\"n\":123456789012345678,\"m\":-123456789012345678}",
    "{\"n\":1234567890123456789}",
    "{\"r\":1.5,\"e\":1e3}",
    "{\"u\":\"caf\xc3\xa9\"}",
    "{\"z\":\"a\\u0000b\"}",
    "{\"s\":\"\\ud83d\\ude00\"}",
    "{\"lead\":01}",
    "{\"a\":1}x",
    "{\"a\":1,}",
    "[1,]",
    "\"top\"",
    "42",
    "{\"a\":tru}",
    "{\"a\" 1}",
    "{\"a\":\"\x01\"}",
    "{\"a\":\"unterminated}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\u12\"}",
    "",
    "   ",
    "{\"a\":-}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]"
    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
};

/* jansson's answer and ours for s: ours NULL, or the same compact dump
 * (member order kept, integers and reals told apart). Returns 1 when ours
 * read it. */
static int same_as_jansson(const char *s, size_t n)
{
    json_t *mine = jsonparse_loadb(s, n);
    json_t *want = json_loadb(s, n, 0, NULL);
    int read = mine != NULL;
    if (mine) {
        assert_non_null(want);
        char *a = json_dumps(mine, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
        if (strcmp(a, b) != 0)
            fail_msg("%.*s: %s != %s", (int)n, s, a, b);
        assert_true(json_equal(mine, want));
        free(a);
        free(b);
    }
    json_decref(mine);
    json_decref(want);
    return read;
}

static void test_corpus(void **state)
{
    (void)state;
    int read = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++)
        read += same_as_jansson(corpus[i], strlen(corpus[i]));
    assert_true(read >= 8); /* the common shapes are read here, not all left to jansson */
}

static void test_reads_the_common_bodies(void **state)
{
    (void)state;
    for (size_t i = 0; i < 8; i++) {
        json_t *j = jsonparse_loadb(corpus[i], strlen(corpus[i]));
        if (!j)
            fail_msg("not read: %s", corpus[i]);
        json_decref(j);
    }
    json_t *j = jsonparse_loadb(corpus[0], strlen(corpus[0]));
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 17);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
                            json_object_get(json_object_get(j, "params"), "message"), "parts"),
                            0), "text")), "hello");
    json_decref(j);
}

static void test_leaves_the_rest(void **state)
{
    (void)state;
    static const char *const left[] = { "{\"r\":1.5}", "{\"u\":\"caf\xc3\xa9\"}",
                                        "{\"z\":\"a\\u0000b\"}", "{\"lead\":01}", "{\"a\":1}x",
                                        "\"top\"", "42", "", "{\"n\":1234567890123456789}" };
    for (size_t i = 0; i < sizeof left / sizeof *left; i++)
        assert_null(jsonparse_loadb(left[i], strlen(left[i])));
    assert_null(jsonparse_loadb(NULL, 0));
}

/* Every corpus body cut short, and with bytes changed at random: what we
 * read, jansson reads the same. */
static void test_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\":,\\ u0123456789abcdefntrl-.eE\x01\xc3\xa9";
    unsigned seed = 12345;
    char buf[1024];
    int read = 0;
    for (size_t i = 0; i < sizeof corpus / sizeof *corpus; i++) {
        size_t n = strlen(corpus[i]);
        for (size_t cut = 0; cut < n; cut++)
            same_as_jansson(corpus[i], cut);
        for (int round = 0; round < 3000; round++) {
            memcpy(buf, corpus[i], n);
            int edits = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 3;
            for (int e = 0; e < edits && n; e++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 16) % n;
                seed = seed * 1103515245u + 12345u;
                buf[at] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            }
            read += same_as_jansson(buf, n);
        }
    }
    assert_true(read > 1000); /* mutants were read, so compared */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_reads_the_common_bodies),
        cmocka_unit_test(test_leaves_the_rest),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
