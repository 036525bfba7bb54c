/* traces: W3C traceparent parsing and formatting, spans (parent/child,
 * sampling, the bounded queue) and the OTLP/HTTP JSON encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/pool.h"
#include "core/trace.h"
#include "http/otlp.h"

static const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

static void test_parse_valid(void **state)
{
    (void)state;
    struct trace_ctx c;
    assert_int_equal(trace_parse_traceparent(good, &c), 0);
    assert_true(c.valid);
    assert_int_equal(c.flags, TRACE_FLAG_SAMPLED);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.trace_id[15], 0x36);
    assert_int_equal(c.span_id[0], 0x00);
    assert_int_equal(c.span_id[7], 0xb7);
    char out[TRACEPARENT_LEN + 1];
    trace_format_traceparent(&c, out);
    assert_string_equal(out, good);
    /* not sampled */
    assert_int_equal(
        trace_parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &c), 0);
    assert_int_equal(c.flags, 0);
    /* a later version may carry more fields after a dash */
    assert_int_equal(
        trace_parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", &c),
        0);
    assert_true(c.valid);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        NULL,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",     /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  /* 00 with extra */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",    /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",    /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",    /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* version ff */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",    /* not hex */
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",   /* later, no dash */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct trace_ctx c;
        c.valid = 1;
        assert_int_equal(trace_parse_traceparent(bad[i], &c), AGENTD_EINVAL);
        assert_false(c.valid);
    }
}

static void test_off_costs_nothing(void **state)
{
    (void)state;
    trace_reset();
    struct trace_span s;
    trace_span_start(&s, "x", TRACE_SERVER, NULL);
    assert_false(s.ctx.valid);
    assert_false(s.recording);
    trace_span_end(&s);
    assert_int_equal(trace_queued(), 0);
}

static void test_parent_child(void **state)
{
    (void)state;
    trace_setup(1.0);
    struct trace_span root, child;
    trace_span_start(&root, "request", TRACE_SERVER, NULL);
    assert_true(root.ctx.valid);
    assert_true(root.recording);
    assert_false(root.has_parent);
    trace_span_start(&child, "store", TRACE_INTERNAL, &root.ctx);
    assert_memory_equal(child.ctx.trace_id, root.ctx.trace_id, 16);
    assert_memory_equal(child.parent_span_id, root.ctx.span_id, 8);
    assert_memory_not_equal(child.ctx.span_id, root.ctx.span_id, 8);
    trace_attr_str(&child, "db.operation", "session_get");
    trace_attr_int(&child, "n", 3);
    trace_span_end(&child);
    trace_span_end(&root);
    trace_span_end(&root); /* twice: harmless */
    struct trace_span out[4];
    assert_int_equal(trace_drain(out, 4), 2);
    assert_string_equal(out[0].name, "store");
    assert_int_equal(out[0].nattrs, 2);
    assert_string_equal(out[1].name, "request");
    assert_true(out[1].end_unix_ns >= out[1].start_unix_ns);
    assert_int_equal(trace_queued(), 0);
    trace_reset();
}

static void test_sampling_parent_based(void **state)
{
    (void)state;
    trace_setup(0.0);
    struct trace_span s;
    trace_span_start(&s, "root", TRACE_SERVER, NULL);
    assert_true(s.ctx.valid); /* still propagated, flags 00 */
    assert_false(s.recording);
    assert_int_equal(s.ctx.flags, 0);
    trace_span_end(&s);
    assert_int_equal(trace_queued(), 0);
    struct trace_ctx in;
    assert_int_equal(trace_parse_traceparent(good, &in), 0);
    trace_span_start(&s, "child of a sampled parent", TRACE_SERVER, &in);
    assert_true(s.recording);
    trace_span_end(&s);
    assert_int_equal(trace_queued(), 1);
    trace_reset();
}

static void test_queue_full_drops(void **state)
{
    (void)state;
    trace_setup(1.0);
    uint64_t before = trace_dropped();
    struct trace_span s;
    for (int i = 0; i < TRACE_QUEUE_MAX + 5; i++) {
        trace_span_start(&s, "s", TRACE_INTERNAL, NULL);
        trace_span_end(&s);
    }
    assert_int_equal(trace_queued(), TRACE_QUEUE_MAX);
    assert_int_equal(trace_dropped() - before, 5);
    trace_reset();
}

static void test_scope(void **state)
{
    (void)state;
    trace_setup(1.0);
    assert_null(trace_current());
    struct trace_span s;
    trace_span_start(&s, "a", TRACE_INTERNAL, NULL);
    struct trace_ctx prev = trace_enter(&s.ctx);
    assert_non_null(trace_current());
    assert_memory_equal(trace_current()->span_id, s.ctx.span_id, 8);
    struct trace_ctx prev2 = trace_enter(NULL);
    assert_null(trace_current());
    trace_leave(prev2);
    assert_non_null(trace_current());
    trace_leave(prev);
    assert_null(trace_current());
    trace_reset();
}

static void test_encode(void **state)
{
    (void)state;
    trace_setup(1.0);
    struct trace_ctx in;
    assert_int_equal(trace_parse_traceparent(good, &in), 0);
    struct trace_span s;
    trace_span_start(&s, "POST /chat", TRACE_SERVER, &in);
    trace_attr_str(&s, "http.route", "/chat");
    trace_attr_int(&s, "http.response.status_code", 200);
    trace_attr_bool(&s, "agentd.retried", 1);
    trace_attr_double(&s, "ratio", 0.5);
    trace_span_set_status(&s, TRACE_STATUS_ERROR);
    s.start_unix_ns = 1700000000123456789LL;
    trace_span_end(&s);
    struct trace_span out;
    assert_int_equal(trace_drain(&out, 1), 1);
    char *text = otlp_encode(&out, 1, "shop-a", "inst-1");
    assert_non_null(text);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    free(text);
    assert_non_null(doc);
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    json_t *rattrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    json_t *a0 = json_array_get(rattrs, 0);
    assert_string_equal(json_string_value(json_object_get(a0, "key")), "service.name");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(a0, "value"), "stringValue")), "shop-a");
    json_t *sp = json_array_get(
        json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans"), 0);
    assert_non_null(sp);
    assert_string_equal(json_string_value(json_object_get(sp, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_string_value(json_object_get(sp, "parentSpanId")), "00f067aa0ba902b7");
    assert_int_equal(strlen(json_string_value(json_object_get(sp, "spanId"))), 16);
    assert_string_equal(json_string_value(json_object_get(sp, "name")), "POST /chat");
    assert_int_equal(json_integer_value(json_object_get(sp, "kind")), 2);
    assert_string_equal(json_string_value(json_object_get(sp, "startTimeUnixNano")),
                        "1700000000123456789");
    assert_true(json_is_string(json_object_get(sp, "endTimeUnixNano")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(sp, "status"), "code")), 2);
    json_t *attrs = json_object_get(sp, "attributes");
    assert_int_equal(json_array_size(attrs), 4);
    json_t *v1 = json_object_get(json_array_get(attrs, 1), "value");
    assert_string_equal(json_string_value(json_object_get(v1, "intValue")), "200");
    json_t *v2 = json_object_get(json_array_get(attrs, 2), "value");
    assert_true(json_is_true(json_object_get(v2, "boolValue")));
    json_t *v3 = json_object_get(json_array_get(attrs, 3), "value");
    assert_true(json_real_value(json_object_get(v3, "doubleValue")) == 0.5);
    json_decref(doc);
    trace_reset();
}

static void test_encode_root_has_no_parent(void **state)
{
    (void)state;
    trace_setup(1.0);
    struct trace_span s;
    trace_span_start(&s, "root", TRACE_INTERNAL, NULL);
    trace_span_end(&s);
    struct trace_span out;
    assert_int_equal(trace_drain(&out, 1), 1);
    char *text = otlp_encode(&out, 1, NULL, NULL);
    assert_non_null(text);
    assert_null(strstr(text, "parentSpanId"));
    assert_non_null(strstr(text, "\"agentd\""));
    free(text);
    trace_reset();
}

static void test_tracestate_passed_through(void **state)
{
    (void)state;
    struct trace_ctx a, b;
    assert_int_equal(trace_parse_traceparent(good, &a), 0);
    assert_int_equal(
        trace_parse_traceparent("00-11111111111111111111111111111111-00f067aa0ba902b7-01", &b), 0);
    char out[TRACESTATE_MAX + 1];
    assert_false(trace_state_lookup(&a, out));
    assert_true(trace_state_remember(&a, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_true(trace_state_lookup(&a, out));
    assert_string_equal(out, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_false(trace_state_lookup(&b, out));
    /* never a byte that could end a header line; never over the limit */
    assert_false(trace_state_remember(&b, "a=1\r\nX-Evil: 1"));
    char big[TRACESTATE_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(trace_state_remember(&b, big));
    assert_false(trace_state_lookup(&b, out));
    /* the newest value of a trace wins */
    assert_true(trace_state_remember(&a, "rojo=1"));
    assert_true(trace_state_lookup(&a, out));
    assert_string_equal(out, "rojo=1");
}

/* What a job or a posted callback saw as its current context. */
struct seen {
    struct trace_ctx work, done;
    int work_had, done_had;
};

static void see_work(void *arg)
{
    struct seen *s = arg;
    const struct trace_ctx *c = trace_current();
    s->work_had = c != NULL;
    if (c)
        s->work = *c;
}

static void see_done(void *arg)
{
    struct seen *s = arg;
    const struct trace_ctx *c = trace_current();
    s->done_had = c != NULL;
    if (c)
        s->done = *c;
}

static void test_context_rides_jobs_and_posts(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    trace_setup(1.0);
    struct trace_span sp;
    trace_span_start(&sp, "request", TRACE_SERVER, NULL);
    struct loop *l = loop_new(0);
    struct pool *p = pool_new(1, 0);
    assert_non_null(l);
    assert_non_null(p);
    struct seen s = { 0 };
    struct trace_ctx prev = trace_enter(&sp.ctx);
    assert_int_equal(pool_submit(p, l, see_work, see_done, &s), 0);
    trace_leave(prev);
    pool_free(p); /* the job ran; its completion waits in the loop's inbox */
    assert_true(s.work_had);
    assert_memory_equal(s.work.span_id, sp.ctx.span_id, 8);
    assert_null(trace_current()); /* nothing leaked into this thread */
    loop_run_inbox(l);
    assert_true(s.done_had);
    assert_memory_equal(s.done.trace_id, sp.ctx.trace_id, 16);
    assert_memory_equal(s.done.span_id, sp.ctx.span_id, 8);
    assert_null(trace_current()); /* restored after the callback */
    /* a post made outside any context runs outside one */
    struct seen none = { 0 };
    assert_int_equal(loop_post(l, see_done, &none), 0);
    loop_run_inbox(l);
    assert_false(none.done_had);
    loop_free(l);
    trace_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_off_costs_nothing),
        cmocka_unit_test(test_parent_child),
        cmocka_unit_test(test_sampling_parent_based),
        cmocka_unit_test(test_queue_full_drops),
        cmocka_unit_test(test_scope),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_encode_root_has_no_parent),
        cmocka_unit_test(test_tracestate_passed_through),
        cmocka_unit_test(test_context_rides_jobs_and_posts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
