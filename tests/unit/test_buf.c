/* buf: appends, formatting, out-of-memory stickiness, and buf_reserve's
 * exact allocation (a turn's conversation is reserved at its known size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/buf.h"
#include "core/err.h"

#include <stdlib.h>

#include <jansson.h>

static void test_append_and_printf(void **state)
{
    (void)state;
    struct buf b = { 0 };
    buf_puts(&b, "ab");
    buf_append(&b, "cdef", 2);
    buf_printf(&b, "-%d-", 42);
    assert_string_equal(b.data, "abcd-42-");
    assert_int_equal(b.len, 8);
    assert_true(b.cap > b.len);
    buf_free(&b);
    assert_null(b.data);
}

static void test_reserve_is_exact(void **state)
{
    (void)state;
    struct buf b = { 0 };
    buf_reserve(&b, 1000);
    assert_non_null(b.data);
    assert_int_equal(b.cap, 1001); /* no doubling slack */
    assert_string_equal(b.data, "");
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    buf_append(&b, chunk, sizeof chunk);
    assert_int_equal(b.cap, 1001); /* it fit: no new allocation */
    assert_int_equal(b.len, 1000);
    buf_reserve(&b, 10); /* grows to exactly len + 10 + 1 */
    assert_int_equal(b.cap, 1011);
    buf_reserve(&b, 5); /* already room: unchanged */
    assert_int_equal(b.cap, 1011);
    buf_puts(&b, "y");
    assert_int_equal(b.data[1000], 'y');
    assert_int_equal(b.data[1001], '\0');
    buf_free(&b);
}

/* buf_json_str writes the tail and the closing quote in place when the
 * room it reserved is still there: a byte that needs an escape (or starts
 * a UTF-8 sequence, or is a bad one) at any offset, into a buffer with no
 * slack, still gives json_dumps' bytes. */
static void test_json_str_every_offset(void **state)
{
    (void)state;
    static const char *const specials[] = { "\"", "\\", "\n", "\x01", "\x1f", "\x7f", " ",
                                            "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
    char text[64];
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++)
        for (size_t at = 0; at + strlen(specials[k]) <= 20; at++)
            for (int tight = 0; tight < 2; tight++) {
                memset(text, 'a', 20);
                memcpy(text + at, specials[k], strlen(specials[k]));
                json_t *j = json_stringn(text, 20);
                assert_non_null(j);
                char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
                struct buf b = { 0 };
                buf_append(&b, "x", 1);
                if (tight)
                    buf_reserve(&b, 22); /* exactly the unescaped string's room */
                assert_int_equal(buf_json_str(&b, text, 20), 0);
                assert_string_equal(b.data + 1, want);
                assert_int_equal(b.len, 1 + strlen(want));
                free(want);
                json_decref(j);
                buf_free(&b);
            }
    for (size_t at = 0; at < 20; at++) { /* a bad byte anywhere: refused, nothing kept */
        memset(text, 'a', 20);
        text[at] = (char)0xff;
        struct buf b = { 0 };
        buf_append(&b, "x", 1);
        assert_int_equal(buf_json_str(&b, text, 20), AGENTD_EINVAL);
        assert_int_equal(b.len, 1);
        buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_printf),
        cmocka_unit_test(test_reserve_is_exact),
        cmocka_unit_test(test_json_str_every_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
