/* metrics: text format 0.0.4, label escaping, histograms, concurrency, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"

static struct buf b;

static char *render(void)
{
    buf_free(&b);
    metrics_render(&b);
    return b.data ? b.data : "";
}

static int teardown(void **state)
{
    (void)state;
    metrics_reset();
    buf_free(&b);
    return 0;
}

static void test_counter_and_labels(void **state)
{
    (void)state;
    static const char *const labels[] = { "route", "method", "status", NULL };
    struct metric *m = metric_register("t_requests_total", "Requests", METRIC_COUNTER, labels, NULL);
    const char *v1[] = { "/healthz", "GET", "200" };
    const char *v2[] = { "/a\"b\\c\nd", "POST", "500" };
    metric_inc(metric_child(m, v1));
    metric_inc(metric_child(m, v1));
    metric_add(metric_child(m, v2), 3);
    assert_ptr_equal(metric_child(m, v1), metric_child(m, v1));
    char *out = render();
    assert_non_null(strstr(out, "# HELP t_requests_total Requests\n# TYPE t_requests_total counter\n"));
    assert_non_null(strstr(out, "t_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2\n"));
    assert_non_null(strstr(out, "t_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"POST\",status=\"500\"} 3\n"));
    /* registering again returns the same family */
    assert_ptr_equal(metric_register("t_requests_total", "x", METRIC_COUNTER, labels, NULL), m);
}

static void test_histogram(void **state)
{
    (void)state;
    static const char *const labels[] = { "route", NULL };
    static const double buckets[] = { 0.1, 1, 10, 0 };
    struct metric *m = metric_register("t_duration_seconds", "Duration", METRIC_HISTOGRAM, labels, buckets);
    const char *v[] = { "/x" };
    struct metric_child *c = metric_child(m, v);
    metric_observe(c, 0.05);
    metric_observe(c, 0.5);
    metric_observe(c, 0.5);
    metric_observe(c, 100);
    char *out = render();
    assert_non_null(strstr(out, "# TYPE t_duration_seconds histogram\n"));
    assert_non_null(strstr(out, "t_duration_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"));
    assert_non_null(strstr(out, "t_duration_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"));
    assert_non_null(strstr(out, "t_duration_seconds_bucket{route=\"/x\",le=\"10\"} 3\n"));
    assert_non_null(strstr(out, "t_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(out, "t_duration_seconds_sum{route=\"/x\"} 101.05"));
    assert_non_null(strstr(out, "t_duration_seconds_count{route=\"/x\"} 4\n"));
    assert_true(metric_value(c) == 4);
}

static void test_gauge_and_fn(void **state)
{
    (void)state;
    struct metric *g = metric_register("t_in_flight", "In flight", METRIC_GAUGE, NULL, NULL);
    metric_add(metric_only(g), 5);
    metric_add(metric_only(g), -2);
    char *out = render();
    assert_non_null(strstr(out, "t_in_flight 3\n"));
}

static double forty_two(void *ud) { (void)ud; return 42; }

static void test_fn(void **state)
{
    (void)state;
    metric_register_fn("t_fn", "Computed at scrape", METRIC_GAUGE, forty_two, NULL);
    assert_non_null(strstr(render(), "# TYPE t_fn gauge\nt_fn 42\n"));
}

static struct metric *shared;

static void *bump(void *arg)
{
    (void)arg;
    const char *v[] = { "x" };
    for (int i = 0; i < 100000; i++)
        metric_inc(metric_child(shared, v));
    return NULL;
}

static void test_concurrent_increments(void **state)
{
    (void)state;
    static const char *const labels[] = { "k", NULL };
    shared = metric_register("t_concurrent_total", "c", METRIC_COUNTER, labels, NULL);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    const char *v[] = { "x" };
    assert_true(metric_value(metric_child(shared, v)) == 400000);
}

static void test_overflow_child(void **state)
{
    (void)state;
    static const char *const labels[] = { "id", NULL };
    struct metric *m = metric_register("t_cardinality_total", "c", METRIC_COUNTER, labels, NULL);
    char id[32];
    for (int i = 0; i < METRICS_MAX_CHILDREN + 10; i++) {
        snprintf(id, sizeof id, "%d", i);
        const char *v[] = { id };
        metric_inc(metric_child(m, v));
    }
    assert_non_null(strstr(render(), "t_cardinality_total{id=\"other\"} 10\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counter_and_labels, teardown),
        cmocka_unit_test_teardown(test_histogram, teardown),
        cmocka_unit_test_teardown(test_gauge_and_fn, teardown),
        cmocka_unit_test_teardown(test_fn, teardown),
        cmocka_unit_test_teardown(test_concurrent_increments, teardown),
        cmocka_unit_test_teardown(test_overflow_child, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
