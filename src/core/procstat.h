/* The process's own resource use, for the standard process_* metrics
 * (Prometheus client conventions): read from /proc/self at scrape time,
 * which costs a few small reads and no state. Linux only; elsewhere the
 * readers answer AGENTD_EIO and the metrics show 0. */
#ifndef AGENTD_CORE_PROCSTAT_H
#define AGENTD_CORE_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

struct procstat {
    double cpu_seconds;      /* user + system CPU time */
    double virtual_bytes;
    double resident_bytes;
};

/* Parses the text of /proc/<pid>/stat. ticks: clock ticks per second
 * (sysconf(_SC_CLK_TCK)); page: the page size. The command name may hold
 * spaces and parentheses: fields are counted from the last ')'. 0 or AGENTD_EIO. */
int procstat_parse_stat(const char *text, long ticks, long page, struct procstat *out);

/* This process, now. 0 or AGENTD_EIO (then *out is zeroed). */
int procstat_read(struct procstat *out);
/* Open file descriptors (entries of /proc/self/fd, less the one reading
 * it), or AGENTD_EIO. */
int64_t procstat_open_fds(void);
/* The soft RLIMIT_NOFILE, or AGENTD_EIO (unlimited is reported so too). */
int64_t procstat_max_fds(void);

/* Registers process_cpu_seconds_total, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds (each
 * computed at scrape time). process_start_time_seconds is the caller's:
 * it knows when it started, without reading the boot time. */
void procstat_metrics_register(void);

#endif
