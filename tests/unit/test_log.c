/* logs: JSON line shape, escaping, levels, truncation, and the redaction gate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/log.h"
#include "core/redact.h"

static int fds[2];

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pipe(fds), 0);
    log_set_fd(fds[1]);
    log_set_level(LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_set_fd(1);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* reads what was logged so far (one line) and parses it */
static json_t *read_line(char *raw, size_t cap)
{
    ssize_t n = read(fds[0], raw, cap - 1);
    assert_true(n > 0);
    raw[n] = 0;
    assert_int_equal(raw[n - 1], '\n');
    json_error_t e;
    json_t *j = json_loads(raw, 0, &e);
    if (!j)
        fail_msg("not JSON: %s (%s)", raw, e.text);
    return j;
}

static void test_shape(void **state)
{
    (void)state;
    struct logline l;
    assert_int_equal(log_begin(&l, LOG_INFO, "request"), 1);
    log_str(&l, "request_id", "abc");
    log_int(&l, "status", 201);
    log_double(&l, "duration_ms", 1.5);
    log_str(&l, "weird", "quote\" back\\ nl\n ctl\x01 utf8 \xc3\xa9 bad \xff");
    log_end(&l);
    char raw[8192];
    json_t *j = read_line(raw, sizeof raw);
    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2026-11-25T17:07:32.123Z */
    assert_int_equal(ts[23], 'Z');
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "request");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_string_equal(json_string_value(json_object_get(j, "weird")),
                        "quote\" back\\ nl\n ctl\x01 utf8 \xc3\xa9 bad \xc3\xbf");
    json_decref(j);
}

/* integers and thousandths written without snprintf: its exact text */
static void test_numbers_as_printf(void **state)
{
    (void)state;
    static const int64_t ints[] = { 0, 7, -7, 10, 200, 503, 1234567890123LL, INT64_MAX,
                                    INT64_MIN, -1000 };
    static const int64_t th[] = { 0, 1, 9, 10, 999, 1000, 1001, 1500, 123456789, -1, -999,
                                  -1000, -1500, 4000000000123LL };
    for (size_t i = 0; i < sizeof ints / sizeof *ints + sizeof th / sizeof *th; i++) {
        int is_int = i < sizeof ints / sizeof *ints;
        int64_t v = is_int ? ints[i] : th[i - sizeof ints / sizeof *ints];
        struct logline l;
        assert_int_equal(log_begin(&l, LOG_INFO, "n"), 1);
        if (is_int)
            log_int(&l, "v", v);
        else
            log_thousandths(&l, "v", v);
        log_end(&l);
        char raw[1024], want[64];
        json_decref(read_line(raw, sizeof raw));
        if (is_int)
            snprintf(want, sizeof want, ",\"v\":%lld}", (long long)v);
        else /* what log_double wrote of the same value */
            snprintf(want, sizeof want, ",\"v\":%s%lld.%03lld}", v < 0 ? "-" : "",
                     (long long)(v < 0 ? -(v / 1000) : v / 1000),
                     (long long)(v < 0 ? -(v % 1000) : v % 1000));
        if (!strstr(raw, want))
            fail_msg("%lld: %s lacks %s", (long long)v, raw, want);
        if (!is_int && v > -1000000 && v < 1000000) { /* and %.3f agrees */
            char d[64];
            snprintf(d, sizeof d, ",\"v\":%.3f}", (double)v / 1000.0);
            if (!strstr(raw, d))
                fail_msg("%lld: %s lacks %s", (long long)v, raw, d);
        }
    }
}

static void test_levels(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
    struct logline l;
    assert_int_equal(log_begin(&l, LOG_INFO, "quiet"), 0);
    assert_int_equal(log_enabled(LOG_ERROR), 1);
    log_set_level(LOG_INFO);
}

static void test_redaction(void **state)
{
    (void)state;
    struct logline l;
    log_begin(&l, LOG_INFO, "headers");
    log_str(&l, "authorization", "Bearer sk-live-123");
    log_str(&l, "Cookie", "session=abc");
    log_str(&l, "x-api-key", "k-123");
    log_str(&l, "payment_token", "tok_visa");
    log_str(&l, "note", "Bearer sk-live-456");          /* value looks like a credential */
    log_str(&l, "card", "4111 1111 1111 1111");          /* card-like digits */
    log_str(&l, "company", "Acme");                      /* not a secret */
    log_str(&l, "request_id", "12345678901234567");      /* validated ids are never mangled */
    log_end(&l);
    char raw[8192];
    json_t *j = read_line(raw, sizeof raw);
    assert_null(strstr(raw, "sk-live"));
    assert_null(strstr(raw, "session=abc"));
    assert_null(strstr(raw, "k-123"));
    assert_null(strstr(raw, "tok_visa"));
    assert_null(strstr(raw, "4111 1111"));
    assert_string_equal(json_string_value(json_object_get(j, "authorization")), REDACTED);
    assert_string_equal(json_string_value(json_object_get(j, "company")), "Acme");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "12345678901234567");
    json_decref(j);
}

static void test_pii_masked(void **state)
{
    (void)state;
    struct logline l;
    log_begin(&l, LOG_INFO, "turn failed for jane@example.com");
    log_str(&l, "message", "ship to Jane, 1 Main St, call 555 123 4567");
    log_str(&l, "turn_id", "turn_0123456789012345678901");
    log_str(&l, "session_id", "4111 1111 1111 1111"); /* a client's value under an id key */
    log_str(&l, "path", "/chat/sessions/sess_0123456789abcdef/events");
    log_end(&l);
    char raw[8192];
    json_t *j = read_line(raw, sizeof raw);
    assert_null(strstr(raw, "jane@"));
    assert_null(strstr(raw, "Main St"));
    assert_null(strstr(raw, "555 123"));
    assert_null(strstr(raw, "4111"));
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "turn failed for ***");
    assert_string_equal(json_string_value(json_object_get(j, "turn_id")),
                        "turn_0123456789012345678901");
    assert_string_equal(json_string_value(json_object_get(j, "path")),
                        "/chat/sessions/sess_0123456789abcdef/events");
    json_decref(j);
}

static void test_truncation(void **state)
{
    (void)state;
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = 0;
    struct logline l;
    log_begin(&l, LOG_INFO, "big");
    log_str(&l, "blob", big);
    log_end(&l);
    free(big);
    char raw[8192];
    json_t *j = read_line(raw, sizeof raw);
    assert_true(strlen(raw) <= LOG_LINE_MAX);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

static void test_redact_rules(void **state)
{
    (void)state;
    assert_true(redact_key_is_secret("Authorization"));
    assert_true(redact_key_is_secret("AGENTD_LLM_API_KEY"));
    assert_true(redact_key_is_secret("Simulation-Secret"));
    assert_true(redact_key_is_secret("pan"));
    assert_false(redact_key_is_secret("company"));
    assert_false(redact_key_is_secret("request_id"));
    assert_true(redact_value_is_secret("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", 38));
    assert_false(redact_value_is_secret("order 12345", 11));
}

/* The byte-at-a-time escaper json_escape_into replaced (runs of plain
 * bytes are now copied at once): the same output for any text and room. */
static void escape_bytewise(char *buf, size_t *n, size_t len, const char *s, size_t slen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *n;
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[6];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c == '\n') {
            tmp[k++] = '\\'; tmp[k++] = 'n';
        } else if (c == '\r') {
            tmp[k++] = '\\'; tmp[k++] = 'r';
        } else if (c == '\t') {
            tmp[k++] = '\\'; tmp[k++] = 't';
        } else if (c < 0x20 || c == 0x7f || c >= 0x80) {
            if (c >= 0x80) {
                size_t need = c >= 0xf0 && c < 0xf5 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 && c < 0xe0 ? 1 : 0;
                size_t j = 0;
                if (need && i + need < slen)
                    for (j = 1; j <= need; j++)
                        if (((unsigned char)s[i + j] & 0xc0) != 0x80)
                            break;
                if (need && j == need + 1) {
                    if (o + need + 1 >= len)
                        break;
                    memcpy(buf + o, s + i, need + 1);
                    o += need + 1;
                    i += need;
                    continue;
                }
            }
            tmp[k++] = '\\'; tmp[k++] = 'u'; tmp[k++] = '0'; tmp[k++] = '0';
            tmp[k++] = hex[c >> 4]; tmp[k++] = hex[c & 15];
        } else {
            tmp[k++] = (char)c;
        }
        if (o + k >= len)
            break;
        memcpy(buf + o, tmp, k);
        o += k;
    }
    *n = o;
}

static void test_escape_as_bytewise(void **state)
{
    (void)state;
    static const char *const fixed[] = {
        "", "plain", "/healthz", "quote\" back\\ nl\n tab\t", "\x01\x1f\x7f", "caf\xc3\xa9",
        "\xe2\x82\xac euro", "\xf0\x9f\x98\x80!", "bad \xff \xc3", "\xe2\x82", "ab\"",
    };
    static const unsigned char alphabet[] = { 'a', 'Z', '0', ' ', '/', '"', '\\', '\n', 0x01,
                                              0x7f, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f,
                                              0xff, 0x80 };
    uint32_t seed = 12345;
    for (int t = 0; t < 600; t++) {
        char in[40];
        size_t slen;
        if (t < (int)(sizeof fixed / sizeof *fixed)) {
            slen = strlen(fixed[t]);
            memcpy(in, fixed[t], slen);
        } else {
            seed = seed * 1103515245u + 12345u;
            slen = (seed >> 16) % sizeof in;
            for (size_t i = 0; i < slen; i++) {
                seed = seed * 1103515245u + 12345u;
                in[i] = (char)alphabet[(seed >> 16) % sizeof alphabet];
            }
        }
        for (size_t room = 0; room <= slen * 6 + 3; room++) {
            char a[256] = "pre", b[256] = "pre";
            size_t na = 3, nb = 3;
            json_escape_into(a, &na, room + 3, in, slen);
            escape_bytewise(b, &nb, room + 3, in, slen);
            assert_int_equal(na, nb);
            assert_memory_equal(a, b, na);
        }
    }
}

/* log_str_key writes what log_str writes, for every kind of key */
static void test_str_key_as_str(void **state)
{
    (void)state;
    static struct log_key keys[] = {
        LOG_KEY("request_id"), LOG_KEY("principal"), LOG_KEY("method"), LOG_KEY("route"),
        LOG_KEY("remote"), LOG_KEY("api_key"), LOG_KEY("Authorization"), LOG_KEY("session_id"),
        LOG_KEY("id"), LOG_KEY("trace_id"), LOG_KEY("we\"ird"), LOG_KEY("company"),
    };
    static const char *const vals[] = {
        "anonymous", "GET", "/healthz", "127.0.0.1:54321", "[::1]:8080", "4111 1111 1111 1111",
        "Bearer sk-live-1", "jane@example.com", "turn_0123456789abcdef01", "1 Main St",
        "Hauptstrasse 5", "", "quote\" \xff", "call 555 123 4567", "key_ab12", NULL,
    };
    static char fill[LOG_LINE_MAX];
    memset(fill, 'f', sizeof fill - 1);
    /* fills: none, then lines ending just short of the room a line has
     * (LOG_LINE_MAX less its tail), so the field is cut at every place */
    for (int f = -1; f < 48; f++)
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            for (size_t v = 0; v < sizeof vals / sizeof *vals; v++)
                for (int pass = 0; pass < 2; pass++) { /* the verdict worked out, then kept */
                    struct logline a, b;
                    assert_int_equal(log_begin(&a, LOG_INFO, "x"), 1);
                    if (f >= 0) {
                        size_t want = LOG_LINE_MAX - 24 - 8 - (size_t)f - a.n; /* ,"f":"…" */
                        fill[want] = '\0';
                        log_str(&a, "f", fill);
                        fill[want] = 'f';
                    }
                    size_t from = a.n;
                    b = a;
                    log_str(&a, keys[k].name, vals[v]);
                    log_str_key(&b, &keys[k], vals[v]);
                    assert_int_equal(a.n, b.n);
                    assert_int_equal(a.truncated, b.truncated);
                    assert_memory_equal(a.buf + from, b.buf + from, a.n - from);
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_numbers_as_printf),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_pii_masked),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_redact_rules),
        cmocka_unit_test(test_escape_as_bytewise),
        cmocka_unit_test(test_str_key_as_str),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
