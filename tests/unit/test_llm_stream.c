/* llm stream: SSE assembly split at every byte boundary (content and tool-call
 * arguments, parallel calls), line-ending variants, truncation and malformed
 * chunks; whole-JSON reply parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "llm/stream.h"

struct deltas {
    struct buf text;
    int resets;
};

static void on_delta(const char *t, size_t n, void *ud)
{
    struct deltas *d = ud;
    if (!t) {
        d->resets++;
        return;
    }
    buf_append(&d->text, t, n);
}

/* Two parallel tool calls whose arguments arrive interleaved, content split
 * mid-word and mid-UTF-8, CRLF on some lines, a comment, usage at the end. */
static const char SSE[] =
    ": keep-alive\r\n\r\n"
    "data: {\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo, caf\xc3\xa9 \"}}]}\n\n"
    "event: message\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"\\\":\\\"UTC\\\"}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" \\\"Paris\\\"}\"}}]}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n"
    "data: [DONE]\n\n";

static void check_reply(const struct llm_reply *r)
{
    assert_non_null(r->content);
    assert_string_equal(r->content, "Hello, caf\xc3\xa9 ");
    assert_string_equal(r->finish_reason, "tool_calls");
    assert_string_equal(r->model, "m-1");
    assert_int_equal(r->usage.prompt_tokens, 12);
    assert_int_equal(r->usage.completion_tokens, 34);
    assert_int_equal(json_array_size(r->tool_calls), 2);
    json_t *a = json_array_get(r->tool_calls, 0), *b = json_array_get(r->tool_calls, 1);
    assert_string_equal(json_string_value(json_object_get(a, "id")), "call_a");
    assert_string_equal(json_string_value(json_object_get(a, "type")), "function");
    json_t *fa = json_object_get(a, "function"), *fb = json_object_get(b, "function");
    assert_string_equal(json_string_value(json_object_get(fa, "name")), "get_weather");
    assert_string_equal(json_string_value(json_object_get(fa, "arguments")), "{\"city\": \"Paris\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "function"), "name")), "get_time");
    assert_string_equal(json_string_value(json_object_get(fb, "arguments")), "{\"tz\":\"UTC\"}");
}

static void feed_ok(struct llm_stream *s, const char *p, size_t n)
{
    struct agentd_error err;
    assert_int_equal(llm_stream_feed(s, p, n, &err), 0);
}

static void test_split_every_boundary(void **state)
{
    (void)state;
    size_t len = strlen(SSE);
    for (size_t k = 0; k <= len; k++) {
        struct deltas d = { 0 };
        struct llm_stream *s = llm_stream_new(on_delta, &d);
        feed_ok(s, SSE, k);
        feed_ok(s, SSE + k, len - k);
        assert_true(llm_stream_done(s));
        struct llm_reply r;
        struct agentd_error err;
        assert_int_equal(llm_stream_finish(s, &r, &err), 0);
        check_reply(&r);
        assert_string_equal(d.text.data, "Hello, caf\xc3\xa9 ");
        llm_reply_clear(&r);
        llm_stream_free(s);
        buf_free(&d.text);
    }
}

static void test_byte_at_a_time_and_three_way(void **state)
{
    (void)state;
    size_t len = strlen(SSE);
    struct llm_stream *s = llm_stream_new(NULL, NULL);
    for (size_t i = 0; i < len; i++)
        feed_ok(s, SSE + i, 1);
    struct llm_reply r;
    struct agentd_error err;
    assert_int_equal(llm_stream_finish(s, &r, &err), 0);
    check_reply(&r);
    llm_reply_clear(&r);
    llm_stream_free(s);
    /* three pieces, boundaries stepping through the tool-call region */
    for (size_t a = 400; a < len; a += 37)
        for (size_t b = a; b <= len; b += 53) {
            s = llm_stream_new(NULL, NULL);
            feed_ok(s, SSE, a);
            feed_ok(s, SSE + a, b - a);
            feed_ok(s, SSE + b, len - b);
            assert_int_equal(llm_stream_finish(s, &r, &err), 0);
            check_reply(&r);
            llm_reply_clear(&r);
            llm_stream_free(s);
        }
}

static void test_cr_only_and_multiline_data(void **state)
{
    (void)state;
    const char *in = "data: {\"choices\":[{\"delta\":\r"
                     "data: {\"content\":\"a\\nb\"}}]}\r\r"
                     "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\r"
                     "data:[DONE]\r\r";
    struct llm_stream *s = llm_stream_new(NULL, NULL);
    size_t len = strlen(in);
    for (size_t i = 0; i < len; i++)
        feed_ok(s, in + i, 1);
    struct llm_reply r;
    struct agentd_error err;
    assert_int_equal(llm_stream_finish(s, &r, &err), 0);
    assert_string_equal(r.content, "a\nb");
    assert_string_equal(r.finish_reason, "stop");
    assert_null(r.tool_calls);
    llm_reply_clear(&r);
    llm_stream_free(s);
}

static void test_truncated(void **state)
{
    (void)state;
    /* everything up to the tool-call arguments, then the body ends */
    const char *cut = strstr(SSE, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\"");
    struct llm_stream *s = llm_stream_new(NULL, NULL);
    feed_ok(s, SSE, (size_t)(cut - SSE));
    struct llm_reply r;
    struct agentd_error err;
    assert_int_equal(llm_stream_finish(s, &r, &err), AGENTD_EMALFORMED);
    assert_non_null(strstr(err.msg, "ended early"));
    llm_stream_free(s);

    /* a finish_reason without [DONE] is complete (some servers stop there) */
    const char *done = strstr(SSE, "data: [DONE]");
    s = llm_stream_new(NULL, NULL);
    feed_ok(s, SSE, (size_t)(done - SSE));
    assert_int_equal(llm_stream_finish(s, &r, &err), 0);
    check_reply(&r);
    llm_reply_clear(&r);
    llm_stream_free(s);

    /* the last event without its blank line still counts */
    const char *tail = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}";
    s = llm_stream_new(NULL, NULL);
    feed_ok(s, tail, strlen(tail));
    assert_int_equal(llm_stream_finish(s, &r, &err), 0);
    assert_string_equal(r.content, "x");
    llm_reply_clear(&r);
    llm_stream_free(s);
}

static void test_malformed(void **state)
{
    (void)state;
    struct agentd_error err;
    struct llm_reply r;
    const char *bad[] = {
        "data: {\"choices\": [\n\n",
        "data: {\"error\":{\"message\":\"overloaded\"}}\n\n",
        "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":99,\"function\":{\"name\":\"x\"}}]}}]}\n\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct llm_stream *s = llm_stream_new(NULL, NULL);
        assert_int_equal(llm_stream_feed(s, bad[i], strlen(bad[i]), &err), AGENTD_EMALFORMED);
        /* once failed, it stays failed */
        assert_int_equal(llm_stream_feed(s, "\n", 1, &err), AGENTD_EMALFORMED);
        assert_int_equal(llm_stream_finish(s, &r, &err), AGENTD_EMALFORMED);
        llm_stream_free(s);
    }
    /* a tool call without a name cannot be run */
    const char *noname = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    struct llm_stream *s = llm_stream_new(NULL, NULL);
    feed_ok(s, noname, strlen(noname));
    assert_int_equal(llm_stream_finish(s, &r, &err), AGENTD_EMALFORMED);
    llm_stream_free(s);
    /* an over-long line is refused, not buffered forever */
    size_t big = (1u << 20) + 16;
    char *line = malloc(big);
    memset(line, 'a', big);
    s = llm_stream_new(NULL, NULL);
    assert_int_equal(llm_stream_feed(s, line, big, &err), AGENTD_EMALFORMED);
    llm_stream_free(s);
    free(line);
}

static void test_ids_and_args_defaults(void **state)
{
    (void)state;
    /* no index and no id (some servers): position and call_N stand in */
    const char *in = "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"get_checkout\"}}]}}]}\n\n"
                     "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    struct llm_stream *s = llm_stream_new(NULL, NULL);
    feed_ok(s, in, strlen(in));
    struct llm_reply r;
    struct agentd_error err;
    assert_int_equal(llm_stream_finish(s, &r, &err), 0);
    assert_null(r.content);
    json_t *tc = json_array_get(r.tool_calls, 0);
    assert_string_equal(json_string_value(json_object_get(tc, "id")), "call_1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(tc, "function"), "arguments")), "{}");
    llm_reply_clear(&r);
    llm_stream_free(s);
}

static void test_parse_whole(void **state)
{
    (void)state;
    struct llm_reply r;
    struct agentd_error err;
    const char *ok = "{\"id\":\"x\",\"model\":\"gpt-x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                     "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"a\","
                     "\"arguments\":\"{\\\"q\\\":1}\"}},{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"b\","
                     "\"arguments\":{\"z\":2}}}]},\"finish_reason\":\"tool_calls\"}],"
                     "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7}}";
    assert_int_equal(llm_reply_parse(ok, strlen(ok), &r, &err), 0);
    assert_null(r.content);
    assert_int_equal(json_array_size(r.tool_calls), 2);
    json_t *f2 = json_object_get(json_array_get(r.tool_calls, 1), "function");
    assert_string_equal(json_string_value(json_object_get(f2, "arguments")), "{\"z\":2}");
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_string_equal(r.model, "gpt-x");
    assert_int_equal(r.usage.prompt_tokens, 5);
    assert_int_equal(r.usage.completion_tokens, 7);
    llm_reply_clear(&r);

    const char *text = "{\"choices\":[{\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}";
    assert_int_equal(llm_reply_parse(text, strlen(text), &r, &err), 0);
    assert_string_equal(r.content, "hi");
    assert_null(r.tool_calls);
    llm_reply_clear(&r);

    const char *bad[] = { "{\"choices\":[]}", "{\"choices\": [{\"message\": {\"content\": \"tru",
                          "{\"error\":{\"message\":\"nope\"}}", "[]", "",
                          "{\"choices\":[{\"message\":{\"tool_calls\":[{\"function\":{}}]}}]}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(llm_reply_parse(bad[i], strlen(bad[i]), &r, &err), AGENTD_EMALFORMED);
        assert_null(r.content);
        assert_null(r.tool_calls);
    }
}

/* Replies outside the one-pass reader's subset (core/jsonparse: non-ASCII
 * text, real numbers, \u escapes, 19+ digit integers) read as jansson reads
 * them, and a reply that is not JSON keeps jansson's error text. */
static void test_parse_outside_fast_subset(void **state)
{
    (void)state;
    struct llm_reply r;
    struct agentd_error err;
    const char *uni = "{\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"caf\xc3\xa9 \\u00e9\\n\\\"q\\\"\"},"
                      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
                      "\"cost\":0.25,\"big\":1234567890123456789}}";
    assert_int_equal(llm_reply_parse(uni, strlen(uni), &r, &err), 0);
    assert_string_equal(r.content, "caf\xc3\xa9 \xc3\xa9\n\"q\"");
    assert_string_equal(r.model, "m");
    assert_int_equal(r.usage.prompt_tokens, 3);
    assert_int_equal(r.usage.completion_tokens, 4);
    llm_reply_clear(&r);

    /* the subset: escapes, nulls, booleans, nesting and spaces */
    const char *plain = " {\"choices\" : [ {\"message\":{\"content\":\"a\\tb\\\\c\\/d\",\"refusal\":null,"
                        "\"x\":[true,false,{}]},\"finish_reason\":\"length\"} ] ,"
                        "\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":0}} ";
    assert_int_equal(llm_reply_parse(plain, strlen(plain), &r, &err), 0);
    assert_string_equal(r.content, "a\tb\\c/d");
    assert_string_equal(r.finish_reason, "length");
    llm_reply_clear(&r);

    const char *cut = "{\"choices\": [{\"message\": {\"content\": \"tru";
    json_error_t je;
    json_t *none = json_loadb(cut, strlen(cut), 0, &je);
    assert_null(none);
    assert_int_equal(llm_reply_parse(cut, strlen(cut), &r, &err), AGENTD_EMALFORMED);
    char want[300];
    snprintf(want, sizeof want, "the reply is not JSON: %.80s", je.text);
    assert_string_equal(err.msg, want);
}

/* Garbage and mutated streams: never a crash, a leak or a hang (ASan run). */
static void test_random_input(void **state)
{
    (void)state;
    uint64_t x = 0x243f6a8885a308d3ull;
    size_t len = strlen(SSE);
    char *m = malloc(len);
    for (int round = 0; round < 2000; round++) {
        memcpy(m, SSE, len);
        for (int k = 0; k < 1 + round % 8; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            m[x % len] = (char)(x >> 32);
        }
        struct llm_stream *s = llm_stream_new(NULL, NULL);
        struct agentd_error err;
        size_t cut = (size_t)(x >> 40) % len;
        if (llm_stream_feed(s, m, cut, &err) == 0)
            llm_stream_feed(s, m + cut, len - cut, &err);
        struct llm_reply r;
        if (llm_stream_finish(s, &r, &err) == 0)
            llm_reply_clear(&r);
        llm_stream_free(s);
        if (llm_reply_parse(m, cut, &r, &err) == 0)
            llm_reply_clear(&r);
    }
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_byte_at_a_time_and_three_way),
        cmocka_unit_test(test_cr_only_and_multiline_data),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_ids_and_args_defaults),
        cmocka_unit_test(test_parse_whole),
        cmocka_unit_test(test_parse_outside_fast_subset),
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
