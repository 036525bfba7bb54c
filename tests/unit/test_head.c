/* head scanner: framing, malformed heads, smuggling defences, every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/head.h"

static enum head_result scan(const char *s, struct head_info *hi) { return head_scan(s, strlen(s), hi); }

static void test_simple(void **state)
{
    (void)state;
    struct head_info hi;
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nBODY";
    assert_int_equal(scan(req, &hi), HEAD_OK);
    assert_int_equal(hi.head_len, strlen(req) - 4);
    assert_int_equal(hi.content_length, -1);
    assert_int_equal(hi.method_len, 3);
    assert_memory_equal(hi.method, "GET", 3);
}

static void test_lengths(void **state)
{
    (void)state;
    struct head_info hi;
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &hi), HEAD_OK);
    assert_int_equal(hi.content_length, 42);
    assert_int_equal(scan("POST / HTTP/1.1\nContent-Length:7\n\n", &hi), HEAD_OK); /* bare LF */
    assert_int_equal(hi.content_length, 7);
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &hi), HEAD_OK);
    assert_true(hi.chunked);
    assert_int_equal(scan("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &hi), HEAD_OK);
    assert_true(hi.expect_continue);
    /* the same length twice is allowed */
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &hi), HEAD_OK);
}

static void test_malformed(void **state)
{
    (void)state;
    struct head_info hi;
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET nope HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        if (scan(bad[i], &hi) != HEAD_MALFORMED)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(hi.why);
    }
}

static void test_incomplete_at_every_split(void **state)
{
    (void)state;
    const char *req = "PUT /checkout-sessions/abc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\n\r\n";
    size_t n = strlen(req);
    struct head_info hi;
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(head_scan(req, cut, &hi), HEAD_INCOMPLETE);
    assert_int_equal(head_scan(req, n, &hi), HEAD_OK);
    assert_int_equal(hi.head_len, n);
    assert_int_equal(hi.content_length, 12);
}

static void test_leading_blank_lines(void **state)
{
    (void)state;
    struct head_info hi;
    const char *req = "\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    assert_int_equal(scan(req, &hi), HEAD_OK);
    assert_int_equal(hi.head_len, strlen(req));
    assert_int_equal(scan("\r\n\r\n", &hi), HEAD_INCOMPLETE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_incomplete_at_every_split),
        cmocka_unit_test(test_leading_blank_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
