/* gzip replies: Accept-Encoding negotiation, which types compress, the
 * encoder (round trip through zlib's decoder), the ETag variant rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/err.h"
#include "http/gzip.h"

static void test_accepted(void **state)
{
    (void)state;
    assert_true(gzip_accepted("gzip"));
    assert_true(gzip_accepted("gzip, deflate, br"));
    assert_true(gzip_accepted("deflate, GZIP;q=0.5"));
    assert_true(gzip_accepted("br;q=1.0, gzip;q=0.001"));
    assert_true(gzip_accepted("x-gzip"));
    assert_true(gzip_accepted("*"));
    assert_true(gzip_accepted("identity, *;q=0.1"));
    assert_true(gzip_accepted("gzip ; q=1"));
    assert_false(gzip_accepted(NULL));
    assert_false(gzip_accepted(""));
    assert_false(gzip_accepted("identity"));
    assert_false(gzip_accepted("deflate, br"));
    assert_false(gzip_accepted("gzip;q=0"));
    assert_false(gzip_accepted("gzip;q=0.000"));
    assert_false(gzip_accepted("*;q=0"));
    /* a named gzip;q=0 refuses even beside a welcoming * */
    assert_false(gzip_accepted("gzip;q=0, *"));
    assert_false(gzip_accepted("*, gzip;q=0"));
    /* a malformed q counts as a refusal */
    assert_false(gzip_accepted("gzip;q=abc"));
    /* gzip inside another token is not gzip */
    assert_false(gzip_accepted("gzipx, xgzip"));
}

static void test_compressible(void **state)
{
    (void)state;
    assert_true(gzip_compressible("application/json"));
    assert_true(gzip_compressible("application/json; charset=utf-8"));
    assert_true(gzip_compressible("Application/JSON"));
    assert_true(gzip_compressible("application/problem+json"));
    assert_true(gzip_compressible("text/plain; version=0.0.4; charset=utf-8"));
    assert_false(gzip_compressible("text/event-stream"));
    assert_false(gzip_compressible("image/png"));
    assert_false(gzip_compressible("application/jsonl"));
    assert_false(gzip_compressible("application/+json"));
    assert_false(gzip_compressible(NULL));
}

static char *gunzip(const char *in, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, 16 + 15), Z_OK);
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    inflateEnd(&zs);
    return out;
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    /* a JSON-like body with repetition, as a product list is */
    size_t n = 0;
    char *body = malloc(64 * 1024);
    assert_non_null(body);
    n += (size_t)sprintf(body, "{\"results\":[");
    for (int i = 0; i < 400; i++)
        n += (size_t)sprintf(body + n, "%s{\"id\":\"P-%03d\",\"name\":\"Cookie %d\"}", i ? "," : "",
                             i, i * 7);
    n += (size_t)sprintf(body + n, "]}");
    char *gz = NULL;
    size_t gz_len = 0;
    assert_int_equal(gzip_encode(body, n, &gz, &gz_len), 0);
    assert_non_null(gz);
    assert_true(gz_len < n / 2);
    /* a gzip member: magic 1f 8b, method 8 (deflate) */
    assert_int_equal((unsigned char)gz[0], 0x1f);
    assert_int_equal((unsigned char)gz[1], 0x8b);
    assert_int_equal(gz[2], 8);
    size_t plain_len = 0;
    char *plain = gunzip(gz, gz_len, &plain_len);
    assert_int_equal(plain_len, n);
    assert_memory_equal(plain, body, n);
    free(plain);
    free(gz);
    /* the empty body encodes to a valid (empty) member too */
    assert_int_equal(gzip_encode("", 0, &gz, &gz_len), 0);
    plain = gunzip(gz, gz_len, &plain_len);
    assert_int_equal(plain_len, 0);
    free(plain);
    free(gz);
    free(body);
}

static void test_etag_variant(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(gzip_etag_variant("\"7\"", out, sizeof out), 0);
    assert_string_equal(out, "\"7-gzip\"");
    assert_int_equal(gzip_etag_variant("W/\"abc\"", out, sizeof out), 0);
    assert_string_equal(out, "W/\"abc-gzip\"");
    assert_int_equal(gzip_etag_variant("7", out, sizeof out), AGENTD_EINVAL);
    assert_int_equal(gzip_etag_variant("\"", out, sizeof out), AGENTD_EINVAL);
    assert_int_equal(gzip_etag_variant("\"0123456789\"", out, 12), AGENTD_EINVAL);
}

static void test_etag_strip(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(gzip_etag_strip("\"7\"", out, sizeof out), 0);
    assert_int_equal(gzip_etag_strip("*", out, sizeof out), 0);
    assert_int_equal(gzip_etag_strip("\"7-gzip\"", out, sizeof out), 1);
    assert_string_equal(out, "\"7\"");
    assert_int_equal(gzip_etag_strip("W/\"a-gzip\", \"b\", \"c-gzip\"", out, sizeof out), 1);
    assert_string_equal(out, "W/\"a\", \"b\", \"c\"");
    /* "-gzip" not at a tag's end is part of the tag */
    assert_int_equal(gzip_etag_strip("\"x-gzipped\"", out, sizeof out), 0);
    assert_int_equal(gzip_etag_strip("\"12345678-gzip\"", out, 4), AGENTD_ETOOLARGE);
    /* round trip: the variant of a tag strips back to the tag */
    char v[32];
    assert_int_equal(gzip_etag_variant("\"42\"", v, sizeof v), 0);
    assert_int_equal(gzip_etag_strip(v, out, sizeof out), 1);
    assert_string_equal(out, "\"42\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_compressible),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_etag_variant),
        cmocka_unit_test(test_etag_strip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
