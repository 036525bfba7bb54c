/* the access log's per-thread batching (core/logbuf.c): when lines are held,
 * when they are written, and that order and bytes are kept. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

static int fds[2];
static int armed;

static void arm(void *ud)
{
    (void)ud;
    armed++;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* a whole test's lines fit */
    log_set_fd(fds[1]);
    log_set_level(LOG_INFO);
    armed = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    log_buffer_stop();
    log_set_fd(1);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* everything written to the log so far (0 bytes is fine) */
static size_t drain(char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = 0;
    return n;
}

static void line(const char *id, int buffered)
{
    struct logline l;
    assert_int_equal(log_begin(&l, LOG_INFO, "request"), 1);
    log_str(&l, "request_id", id);
    if (buffered)
        log_end_buffered(&l);
    else
        log_end(&l);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_without_buffer_writes_through(void **state)
{
    (void)state;
    char out[8192];
    line("req_a", 1);
    assert_int_equal(log_buffered(), 0);
    assert_true(drain(out, sizeof out) > 0);
    assert_non_null(strstr(out, "\"request_id\":\"req_a\""));
}

static void test_held_until_flush_and_armed_once(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(log_buffer_start(64 * 1024, arm, NULL), 0);
    line("req_1", 1);
    line("req_2", 1);
    line("req_3", 1);
    assert_int_equal(drain(out, sizeof out), 0); /* nothing written yet */
    assert_true(log_buffered() > 0);
    assert_int_equal(armed, 1); /* only the empty -> pending transition asks for a timer */
    log_flush();
    assert_int_equal(log_buffered(), 0);
    drain(out, sizeof out);
    char *a = strstr(out, "req_1"), *b = strstr(out, "req_2"), *c = strstr(out, "req_3");
    assert_true(a && b && c && a < b && b < c);
    assert_int_equal(count(out, "\n"), 3);
    line("req_4", 1);
    assert_int_equal(armed, 2); /* pending again after the flush: a new timer */
}

static void test_flushed_by_size(void **state)
{
    (void)state;
    static char out[1 << 20];
    assert_int_equal(log_buffer_start(8192, arm, NULL), 0);
    int i;
    char id[32];
    /* ~90-byte lines: the 8 KiB buffer overflows within 100 */
    for (i = 0; i < 100 && drain(out, sizeof out) == 0; i++) {
        snprintf(id, sizeof id, "req_%03d", i);
        line(id, 1);
    }
    assert_true(i < 100); /* a write happened without any flush call */
    log_buffer_stop(); /* the rest */
    drain(out + strlen(out), sizeof out - strlen(out));
    /* nothing lost, nothing twice, in order */
    char *prev = out;
    for (int k = 0; k < i; k++) {
        snprintf(id, sizeof id, "\"req_%03d\"", k);
        char *p = strstr(out, id);
        assert_non_null(p);
        assert_true(p >= prev);
        assert_int_equal(count(out, id), 1);
        prev = p;
    }
}

static void test_write_through_line_keeps_order(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(log_buffer_start(64 * 1024, arm, NULL), 0);
    line("req_early", 1);
    line("warn_later", 0); /* a warn/error line is written at once ... */
    assert_int_equal(log_buffered(), 0);
    drain(out, sizeof out);
    char *a = strstr(out, "req_early"), *b = strstr(out, "warn_later");
    assert_true(a && b && a < b); /* ... after the buffered lines before it */
}

static void test_stop_flushes(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(log_buffer_start(64 * 1024, arm, NULL), 0);
    line("req_last", 1);
    assert_int_equal(drain(out, sizeof out), 0);
    log_buffer_stop();
    drain(out, sizeof out);
    assert_non_null(strstr(out, "req_last"));
    line("req_after", 1); /* no buffer any more: written through */
    drain(out, sizeof out);
    assert_non_null(strstr(out, "req_after"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_without_buffer_writes_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_until_flush_and_armed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flushed_by_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_through_line_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_flushes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
