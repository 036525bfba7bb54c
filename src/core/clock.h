/* Time: a monotonic clock for durations and deadlines, wall clock for logs. */
#ifndef AGENTD_CORE_CLOCK_H
#define AGENTD_CORE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

int64_t clock_mono_ns(void);
int64_t clock_mono_ms(void);
int64_t clock_wall_ms(void);      /* Unix epoch milliseconds */
/* "2026-11-25T17:07:32.123Z" into buf (at least 25 bytes); returns length. */
size_t clock_rfc3339_ms(int64_t wall_ms, char *buf, size_t len);
/* Days since 1970-01-01 -> the proleptic Gregorian date (the era-based
 * civil-from-days method; any int64 day a clock gives): no gmtime_r lock,
 * no format parse. */
void clock_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
