/* SSE framing: event/id/data lines, multi-line payloads, injection refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "http/sse.h"

static void expect_frame(const char *event, const char *id, const char *data, const char *want)
{
    struct buf b = { 0 };
    assert_int_equal(sse_format(&b, event, id, data, strlen(data)), 0);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_basic(void **state)
{
    (void)state;
    expect_frame(NULL, NULL, "hello", "data: hello\n\n");
    expect_frame("status-update", "42", "{\"a\":1}", "id: 42\nevent: status-update\ndata: {\"a\":1}\n\n");
    expect_frame(NULL, NULL, "", "data: \n\n");
}

static void test_multiline(void **state)
{
    (void)state;
    expect_frame(NULL, NULL, "a\nb", "data: a\ndata: b\n\n");
    expect_frame(NULL, NULL, "a\r\nb\rc", "data: a\ndata: b\ndata: c\n\n");
    /* a payload cannot end the event early or smuggle a field */
    expect_frame(NULL, NULL, "x\n\nevent: evil", "data: x\ndata: \ndata: event: evil\n\n");
    expect_frame(NULL, NULL, "tail\n", "data: tail\ndata: \n\n");
}

static void test_refuses_newline_in_fields(void **state)
{
    (void)state;
    struct buf b = { 0 };
    assert_int_equal(sse_format(&b, "ev\nil", NULL, "x", 1), AGENTD_EINVAL);
    assert_int_equal(sse_format(&b, NULL, "1\r\nevent: x", "x", 1), AGENTD_EINVAL);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_comment(void **state)
{
    (void)state;
    struct buf b = { 0 };
    sse_format_comment(&b, "keep-alive");
    sse_format_comment(&b, "two\nlines");
    assert_string_equal(b.data, ": keep-alive\n\n: two lines\n\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_multiline),
        cmocka_unit_test(test_refuses_newline_in_fields),
        cmocka_unit_test(test_comment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
