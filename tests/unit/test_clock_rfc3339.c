/* clock_rfc3339_ms with its per-second cache against gmtime_r + snprintf:
 * the same text across millisecond, second, day and year boundaries, going
 * back in time, before 1970 and past year 9999, into short buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"

static void reference(int64_t wall_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
}

static void check(int64_t ms, size_t len)
{
    char got[64], want[64];
    memset(got, 'X', sizeof got);
    size_t n = clock_rfc3339_ms(ms, got, len);
    reference(ms, want, len);
    assert_string_equal(got, want);
    assert_int_equal(n, strlen(want));
}

static void test_same_text_as_gmtime(void **state)
{
    (void)state;
    const int64_t base[] = { 0, 999, 1000, 1764777599999LL, 1764777600000LL, 1767225599998LL,
                             951782400000LL /* 2000-02-29 */, 1764777600123LL };
    for (size_t i = 0; i < sizeof base / sizeof *base; i++)
        for (int64_t d = -2; d <= 2; d++)
            check(base[i] + d >= 0 ? base[i] + d : 0, 64);
    /* the same second again, then an earlier one: the cache follows */
    check(1764777600500LL, 64);
    check(1764777600001LL, 64);
    check(1764777500001LL, 64);
    check(1764777600999LL, 64);
    for (int64_t ms = 1764777599000LL; ms < 1764777602000LL; ms += 7)
        check(ms, 64);
    check(-1500, 64);                 /* before 1970: the plain path */
    check(253402300800000LL, 64);     /* year 10000 */
    check(1764777600123LL, 24);       /* one byte short: cut as snprintf cuts */
    check(1764777600123LL, 10);
    check(1764777600123LL, 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_text_as_gmtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
