/* http/header_lines: header lines joined into one evhttp output entry, the
 * header-safe check, the cached Date text. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/header_lines.h"

/* The entry sits in the list like evhttp_add_header's: found by its key,
 * its whole value (the joined lines) returned, in order after the others,
 * freed by evhttp_clear_headers (ASan: no leak, no bad free). */
static void test_lines_add_is_an_entry(void **state)
{
    (void)state;
    struct evkeyvalq h;
    TAILQ_INIT(&h);
    assert_int_equal(evhttp_add_header(&h, "Content-Length", "18"), 0);
    const char v[] = "Thu, 03 Dec 2026 23:41:30 GMT\r\nX-Request-Id: a-1\r\nCache-Control: no-store";
    assert_int_equal(http_header_lines_add(&h, "Date", v, sizeof v - 1), 0);
    assert_string_equal(evhttp_find_header(&h, "date"), v);
    assert_null(evhttp_find_header(&h, "X-Request-Id")); /* inside a value: not looked up */
    struct evkeyval *first = TAILQ_FIRST(&h), *second = TAILQ_NEXT(first, next);
    assert_string_equal(first->key, "Content-Length");
    assert_string_equal(second->key, "Date");
    assert_null(TAILQ_NEXT(second, next));
    /* only vlen bytes are taken */
    assert_int_equal(http_header_lines_add(&h, "X-A", "abcdef", 3), 0);
    assert_string_equal(evhttp_find_header(&h, "X-A"), "abc");
    evhttp_clear_headers(&h);
    assert_null(TAILQ_FIRST(&h));
}

static void test_text_safe(void **state)
{
    (void)state;
    const char ok[] = "application/json; charset=utf-8";
    assert_true(http_header_text_safe(ok, sizeof ok - 1));
    assert_true(http_header_text_safe("", 0));
    assert_false(http_header_text_safe("a\r\nX-Evil: 1", 12));
    assert_false(http_header_text_safe("a\nb", 3));
    assert_false(http_header_text_safe("a\rb", 3));
    assert_false(http_header_text_safe("a\0b", 3));
    assert_false(http_header_text_safe("a\tb", 3));
    assert_false(http_header_text_safe("a\x7f", 2));
    /* only n bytes are looked at */
    assert_true(http_header_text_safe("ab\r\n", 2));
}

static void test_date_now_is_rfc1123_and_cached(void **state)
{
    (void)state;
    const char *d = http_date_now();
    assert_non_null(d);
    assert_int_equal(strlen(d), 29);
    assert_memory_equal(d + 25, " GMT", 4);
    assert_true(http_header_text_safe(d, strlen(d)));
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    assert_non_null(strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm));
    long diff = (long)(timegm(&tm) - time(NULL));
    assert_true(diff >= -2 && diff <= 0);
    assert_ptr_equal(http_date_now(), d); /* one buffer per thread */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_add_is_an_entry),
        cmocka_unit_test(test_text_safe),
        cmocka_unit_test(test_date_now_is_rfc1123_and_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
