/* head scanner: framing, malformed heads, smuggling defences, every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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
    assert_int_equal(scan("POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n", &hi), HEAD_OK);
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
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        if (scan(bad[i], &hi) != HEAD_MALFORMED)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(hi.why);
    }
}

/* Only "chunked" alone is a coding we decode; anything else (a lookalike
 * such as xchunked, a stacked coding, chunked twice) would leave the body's
 * end to guesswork: request smuggling. Refused as not implemented. */
static void test_unsupported_transfer_coding(void **state)
{
    (void)state;
    struct head_info hi;
    static const char *const bad[] = {
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        if (scan(bad[i], &hi) != HEAD_MALFORMED || !hi.not_implemented)
            fail_msg("not refused as unsupported: %s", bad[i]);
        assert_non_null(hi.why);
    }
    /* a malformed head is not "not implemented" */
    assert_int_equal(scan("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", &hi), HEAD_MALFORMED);
    assert_false(hi.not_implemented);
}

/* Host headers are counted for the guard's RFC 9112 §3.2 rule. */
static void test_host_count(void **state)
{
    (void)state;
    struct head_info hi;
    assert_int_equal(scan("GET / HTTP/1.1\r\n\r\n", &hi), HEAD_OK);
    assert_int_equal(hi.hosts, 0);
    assert_true(hi.http11);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHOST: a\r\nX: y\r\nhost: b\r\n\r\n", &hi), HEAD_OK);
    assert_int_equal(hi.hosts, 2);
    assert_int_equal(scan("GET / HTTP/1.0\r\n\r\n", &hi), HEAD_OK);
    assert_false(hi.http11);
    assert_int_equal(scan("GET / HTTP/1.1\r\nHost-Name: a\r\n\r\n", &hi), HEAD_OK);
    assert_int_equal(hi.hosts, 0);
}

/* Feeds body in two pieces split at `cut`; returns the result and the bytes used overall. */
static enum chunk_result chunk_two(const char *body, size_t len, size_t cut, int64_t max, size_t *used)
{
    struct chunk_scan cs;
    chunk_scan_init(&cs);
    size_t u1 = 0, u2 = 0;
    enum chunk_result r = chunk_scan(&cs, body, cut, max, &u1);
    if (r != CHUNK_MORE) {
        *used = u1;
        return r;
    }
    assert_int_equal(u1, cut);
    r = chunk_scan(&cs, body + cut, len - cut, max, &u2);
    *used = u1 + u2;
    return r;
}

static void test_chunked_every_split(void **state)
{
    (void)state;
    static const char *const good[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "A;name=val\r\n0123456789\r\n1\r\nx\r\n0\r\nTrailer: t\r\n\r\n",
        "3\nabc\n0\n\n", /* bare LF, as heads allow */
        "0\r\n\r\n",
    };
    for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
        char buf[256];
        size_t n = strlen(good[k]);
        snprintf(buf, sizeof buf, "%sGET /next", good[k]); /* the next request follows */
        for (size_t cut = 0; cut <= n; cut++) {
            size_t used = 0;
            enum chunk_result r = chunk_two(buf, strlen(buf), cut, 1024, &used);
            if (r != CHUNK_DONE || used != n)
                fail_msg("%s cut at %zu: result %d used %zu", good[k], cut, (int)r, used);
        }
    }
}

static void test_chunked_bad_and_large(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x\r\n", "\r\n", ";ext\r\n", "5\r\nhelloXX", "5\r\nhello\rX",
        "1000000000000000\r\n", "3 \x01\r\n", "3\rX", "0\r\nTrailer: \x01\r\n",
        "0\r\n\rX",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct chunk_scan cs;
        chunk_scan_init(&cs);
        size_t used;
        if (chunk_scan(&cs, bad[k], strlen(bad[k]), 1 << 20, &used) != CHUNK_BAD)
            fail_msg("accepted: %s", bad[k]);
    }
    struct chunk_scan cs;
    size_t used;
    chunk_scan_init(&cs);
    assert_int_equal(chunk_scan(&cs, "401\r\n", 5, 1024, &used), CHUNK_TOO_LARGE);
    /* the sum counts, not each chunk */
    chunk_scan_init(&cs);
    const char *two = "200\r\n";
    assert_int_equal(chunk_scan(&cs, two, strlen(two), 1024, &used), CHUNK_MORE);
    static char data[0x200 + 2];
    memset(data, 'a', 0x200);
    memcpy(data + 0x200, "\r\n", 2);
    assert_int_equal(chunk_scan(&cs, data, sizeof data, 1024, &used), CHUNK_MORE);
    const char *three = "201\r\n";
    assert_int_equal(chunk_scan(&cs, three, strlen(three), 1024, &used), CHUNK_TOO_LARGE);
    /* a size line that never ends */
    static char longline[2000];
    memset(longline, '1', 3);
    memset(longline + 3, 'e', sizeof longline - 3);
    longline[3] = ';';
    chunk_scan_init(&cs);
    assert_int_equal(chunk_scan(&cs, longline, sizeof longline, 1 << 20, &used), CHUNK_BAD);
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
        cmocka_unit_test(test_unsupported_transfer_coding),
        cmocka_unit_test(test_host_count),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_bad_and_large),
        cmocka_unit_test(test_incomplete_at_every_split),
        cmocka_unit_test(test_leading_blank_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
