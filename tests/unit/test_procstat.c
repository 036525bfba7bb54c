/* procstat: /proc/<pid>/stat parsing (odd command names, short lines) and
 * the live readers against what the kernel reports another way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "core/err.h"
#include "core/procstat.h"

/* A real line (Linux 6.1), fields 14/15 = 250/50 ticks, 23 = vsize, 24 = rss pages. */
#define STAT_TAIL                                                                                  \
    " S 1 4242 4242 0 -1 4194560 1500 0 3 0 250 50 0 0 20 0 9 0 123456 104857600 2560 "          \
    "18446744073709551615 1 1 0 0 0 0 0 4096 17664 0 0 0 17 1 0 0 0 0 0\n"

static void test_parse_plain(void **state)
{
    (void)state;
    struct procstat ps;
    assert_int_equal(procstat_parse_stat("4242 (agentd)" STAT_TAIL, 100, 4096, &ps), 0);
    assert_true(ps.cpu_seconds > 2.999 && ps.cpu_seconds < 3.001); /* (250 + 50) / 100 */
    assert_true(ps.virtual_bytes == 104857600.0);
    assert_true(ps.resident_bytes == 2560.0 * 4096);
}

static void test_parse_hostile_comm(void **state)
{
    (void)state;
    /* a command name may hold spaces and parentheses: count from the last ')' */
    struct procstat ps;
    assert_int_equal(procstat_parse_stat("4242 (a) b (c) d)" STAT_TAIL, 100, 4096, &ps), 0);
    assert_true(ps.resident_bytes == 2560.0 * 4096);
    assert_true(ps.cpu_seconds > 2.999 && ps.cpu_seconds < 3.001);
}

static void test_parse_garbage(void **state)
{
    (void)state;
    struct procstat ps;
    assert_int_equal(procstat_parse_stat("4242 agentd S 1 2 3", 100, 4096, &ps), AGENTD_EIO);
    assert_int_equal(procstat_parse_stat("4242 (agentd) S 1 2 3", 100, 4096, &ps), AGENTD_EIO);
    assert_int_equal(procstat_parse_stat(NULL, 100, 4096, &ps), AGENTD_EIO);
    assert_int_equal(procstat_parse_stat("4242 (agentd)" STAT_TAIL, 0, 4096, &ps), AGENTD_EIO);
    assert_true(ps.cpu_seconds == 0 && ps.resident_bytes == 0);
}

static void test_live_readers(void **state)
{
    (void)state;
    struct procstat ps;
    assert_int_equal(procstat_read(&ps), 0);
    assert_true(ps.resident_bytes > 0);
    assert_true(ps.virtual_bytes >= ps.resident_bytes);
    assert_true(ps.cpu_seconds >= 0);

    int64_t before = procstat_open_fds();
    assert_true(before >= 3); /* stdin, stdout, stderr at least */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(procstat_open_fds(), before + 1);
    close(fd);
    assert_int_equal(procstat_open_fds(), before);

    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY)
        assert_int_equal(procstat_max_fds(), (int64_t)rl.rlim_cur);
}

static void test_metrics_rendered(void **state)
{
    (void)state;
    procstat_metrics_register();
    struct buf b = { 0 };
    metrics_render(&b);
    assert_non_null(b.data);
    assert_non_null(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(b.data, "# TYPE process_open_fds gauge\n"));
    static const char *const names[] = { "process_cpu_seconds_total ", "process_resident_memory_bytes ",
                                         "process_virtual_memory_bytes ", "process_open_fds ",
                                         "process_max_fds ", NULL };
    for (int i = 0; names[i]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\n%s", names[i]);
        char *p = strstr(b.data, want);
        assert_non_null(p);
        double v = -1;
        assert_int_equal(sscanf(p + strlen(want), "%lf", &v), 1);
        if (strcmp(names[i], "process_cpu_seconds_total ") != 0)
            assert_true(v > 0);
    }
    buf_free(&b);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_hostile_comm),
        cmocka_unit_test(test_parse_garbage),
        cmocka_unit_test(test_live_readers),
        cmocka_unit_test(test_metrics_rendered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
