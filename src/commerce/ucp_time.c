/* RFC 3339 timestamps as UCP JSON writes them: unix seconds to
 * "2026-01-11T10:00:00Z" and back (civil-date arithmetic, no libc TZ). Pure. */
#include "commerce/ucp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"

/* ---- time ---- */

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int ucp_days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int ucp_time_format(int64_t t, char *buf, size_t len)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return AGENTD_EINVAL;
    /* "%04lld-%02u-%02uT%02d:%02d:%02dZ" written digit by digit (a stamp
     * or more per document): always 20 bytes for years 0-9999 */
    if (len < 21)
        return AGENTD_EINVAL;
    unsigned yy = (unsigned)y, hh = (unsigned)(secs / 3600), mi = (unsigned)(secs / 60 % 60),
             ss = (unsigned)(secs % 60);
    const unsigned v[] = {yy / 100, yy % 100, m, d, hh, mi, ss};
    static const char after[] = {0, '-', '-', 'T', ':', ':', 'Z'}; /* none after the century */
    char *p = buf;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        *p++ = (char)('0' + v[i] / 10);
        *p++ = (char)('0' + v[i] % 10);
        if (after[i])
            *p++ = after[i];
    }
    *p = 0;
    return 0;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return AGENTD_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int ucp_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &se))
        return AGENTD_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > ucp_days_in_month(y, mo) || h > 23 || mi > 59 || se > 60)
        return AGENTD_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return AGENTD_EINVAL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return AGENTD_EINVAL;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return AGENTD_EINVAL;
    }
    if (*p)
        return AGENTD_EINVAL;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}
