/* Time sources. CLOCK_MONOTONIC for anything measured, CLOCK_REALTIME only
 * for timestamps shown to people. */
#include "core/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t clock_mono_ms(void) { return clock_mono_ns() / 1000000; }

int64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t rfc3339_ms_slow(int64_t wall_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(wall_ms % 1000));
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* Every log line starts with this: the date and time to the second are
 * formatted once a second per thread (gmtime_r + snprintf were ~4 K
 * instructions a line), the milliseconds appended. */
size_t clock_rfc3339_ms(int64_t wall_ms, char *buf, size_t len)
{
    static _Thread_local int64_t cached_sec = -1;
    static _Thread_local char cached[32]; /* "YYYY-MM-DDTHH:MM:SS.000Z" */
    if (wall_ms < 0 || len < 25)
        return rfc3339_ms_slow(wall_ms, buf, len);
    int64_t sec = wall_ms / 1000;
    if (sec != cached_sec) {
        if (rfc3339_ms_slow(sec * 1000, cached, sizeof cached) != 24) /* year > 9999 */
            return rfc3339_ms_slow(wall_ms, buf, len);
        cached_sec = sec;
    }
    int ms = (int)(wall_ms % 1000);
    memcpy(buf, cached, 20);
    buf[20] = (char)('0' + ms / 100);
    buf[21] = (char)('0' + ms / 10 % 10);
    buf[22] = (char)('0' + ms % 10);
    buf[23] = 'Z';
    buf[24] = '\0';
    return 24;
}

void clock_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                       /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);              /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                   /* [0, 11] */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}
