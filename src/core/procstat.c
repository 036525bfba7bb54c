/* process_* metrics from /proc/self. */
#include "core/procstat.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int procstat_parse_stat(const char *text, long ticks, long page, struct procstat *out)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? strrchr(text, ')') : NULL;
    if (!p || ticks <= 0)
        return AGENTD_EIO;
    /* after ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) cutime cstime priority nice
     * num_threads itrealvalue starttime vsize(23) rss(24) */
    unsigned long long utime = 0, stime = 0, vsize = 0;
    long long rss = 0;
    int n = sscanf(p + 1,
                   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                   "%*d %*u %llu %lld",
                   &utime, &stime, &vsize, &rss);
    if (n != 4)
        return AGENTD_EIO;
    out->cpu_seconds = (double)(utime + stime) / (double)ticks;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = rss > 0 ? (double)rss * (double)page : 0;
    return 0;
}

/* A small /proc file into buf (NUL-terminated). 0 or AGENTD_EIO. */
static int slurp(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return AGENTD_EIO;
    size_t n = 0;
    while (n < len - 1) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    return n ? 0 : AGENTD_EIO;
}

int procstat_read(struct procstat *out)
{
    char stat[1024];
    memset(out, 0, sizeof *out);
    if (slurp("/proc/self/stat", stat, sizeof stat) != 0)
        return AGENTD_EIO;
    return procstat_parse_stat(stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), out);
}

int64_t procstat_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return AGENTD_EIO;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

int64_t procstat_max_fds(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return AGENTD_EIO;
    return (int64_t)rl.rlim_cur;
}

/* ---- metrics ---- */

/* One read of /proc/self/stat serves the three series of a scrape: the
 * callbacks run one after another on the scraping thread, so a per-thread
 * copy younger than SCRAPE_MS is that scrape's (and any scrape after it
 * reads the file again). */
#define SCRAPE_MS 100

static double m_stat(void *ud)
{
    static _Thread_local struct procstat ps;
    static _Thread_local int64_t read_at = -1;
    int64_t now = clock_mono_ms();
    if (read_at < 0 || now - read_at >= SCRAPE_MS) {
        if (procstat_read(&ps) != 0) {
            read_at = -1;
            return 0;
        }
        read_at = now;
    }
    return *(const double *)((const char *)&ps + (size_t)(uintptr_t)ud);
}

#define STAT_FIELD(f) ((void *)(uintptr_t)offsetof(struct procstat, f))

static double m_open(void *ud)
{
    (void)ud;
    int64_t n = procstat_open_fds();
    return n < 0 ? 0 : (double)n;
}

static double m_max(void *ud)
{
    (void)ud;
    int64_t n = procstat_max_fds();
    return n < 0 ? 0 : (double)n;
}

void procstat_metrics_register(void)
{
    metric_register_fn("process_cpu_seconds_total", "Total user and system CPU time spent in seconds",
                       METRIC_COUNTER, m_stat, STAT_FIELD(cpu_seconds));
    metric_register_fn("process_resident_memory_bytes", "Resident memory size in bytes",
                       METRIC_GAUGE, m_stat, STAT_FIELD(resident_bytes));
    metric_register_fn("process_virtual_memory_bytes", "Virtual memory size in bytes",
                       METRIC_GAUGE, m_stat, STAT_FIELD(virtual_bytes));
    metric_register_fn("process_open_fds", "Number of open file descriptors", METRIC_GAUGE,
                       m_open, NULL);
    metric_register_fn("process_max_fds", "Maximum number of open file descriptors",
                       METRIC_GAUGE, m_max, NULL);
}
