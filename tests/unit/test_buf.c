/* buf: appends, formatting, out-of-memory stickiness, and buf_reserve's
 * exact allocation (a turn's conversation is reserved at its known size). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/buf.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_printf),
        cmocka_unit_test(test_reserve_is_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
