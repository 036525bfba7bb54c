/* A process's identity and liveness: its instance id, its lock file, the
 * pid probe, and the rule that puts them together. What crash recovery
 * (turns, completions) asks about other processes. */
#define _GNU_SOURCE
#include "core/instance.h"
#include "core/err.h"
#include "core/metrics.h"
#include "core/reqid.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <pthread.h>

#include <sys/file.h>
#include <sys/stat.h>

static char host_override[64];

void instance_set_host(const char *host)
{
    snprintf(host_override, sizeof host_override, "%s", host ? host : "");
    for (char *p = host_override; *p; p++)
        if (*p == '/')
            *p = '_';
}

void instance_id(char *out, size_t len)
{
    /* "host" = hostname plus the pid namespace: a pid means the same
     * process only within one namespace (two containers sharing the host's
     * network, and so its hostname, both run as pid 1) */
    char host[64] = "localhost", ns[48] = "";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    for (char *p = host; *p; p++)
        if (*p == '/')
            *p = '_';
    for (char *p = ns; *p; p++)
        if (*p == '/')
            *p = '_';
    if (host_override[0]) { /* the operator's name stands for host and namespace */
        snprintf(host, sizeof host, "%s", host_override);
        ns[0] = '\0';
    }
    unsigned char raw[6] = { 0 };
    random_bytes(raw, sizeof raw);
    snprintf(out, len, "%s%s%s/%ld/%02x%02x%02x%02x%02x%02x", host, ns[0] ? "@" : "", ns,
             (long)getpid(), raw[0], raw[1], raw[2], raw[3], raw[4], raw[5]);
}

int instance_pid_dead(long pid)
{
    if (pid <= 0)
        return 1;
    if (pid == (long)getpid())
        return 1; /* our pid, another instance: the process before us */
    if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
        return 1;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* "pid (comm) S ..." — comm may hold spaces */
    return p && p[1] == ' ' && p[2] == 'Z';
}

void instance_lock_path(const char *dir, const char *instance, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/", dir);
    size_t at = n > 0 ? (size_t)n : 0;
    for (const char *p = instance; *p && at + 6 < len; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.';
        out[at++] = ok ? c : '_';
    }
    snprintf(out + at, len - at, ".lock");
}

int instance_lock_probe(void *dir, const char *instance)
{
    char path[512];
    instance_lock_path(dir, instance, path, sizeof path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        rc = 0; /* dead; the file stays for its other turns (instance_lock_reap) */
    else
        rc = errno == EWOULDBLOCK ? 1 : -1;
    close(fd);
    return rc;
}

int instance_lock_reap(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= 5 || strcmp(de->d_name + len - 5, ".lock") != 0)
            continue; /* ".", "..", and a taker's temporary file */
        int fd = openat(dirfd(d), de->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        /* locked: its process lives. A file appears only already locked
         * (instance_lock_take renames it into place), so free = dead. */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd(d), de->d_name, 0) == 0)
            n++;
        close(fd);
    }
    closedir(d);
    return n;
}

int instance_lock_take(const char *dir, const char *instance)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return AGENTD_EIO;
    /* locked under a temporary name, then renamed into place: a lock file
     * is never seen unlocked while its process lives (the reaper may
     * remove any free one) */
    char path[512], tmp[540];
    instance_lock_path(dir, instance, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return AGENTD_EIO;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        close(fd);
        errno = e; /* the caller's log says why */
        return AGENTD_EIO;
    }
    return fd;
}

void instance_lock_release(const char *dir, const char *instance, int fd)
{
    if (fd < 0)
        return;
    char path[512];
    instance_lock_path(dir, instance, path, sizeof path);
    unlink(path); /* before the close: nobody may take it for a dead one's */
    close(fd);
}

/* ---- the heartbeat verdict: a small sorted-free list under a mutex ---- */

static pthread_mutex_t dead_mu = PTHREAD_MUTEX_INITIALIZER;
static char **dead_ids;
static size_t dead_n;

int instance_dead_set(char *const *ids, size_t n)
{
    char **copy = n ? calloc(n, sizeof *copy) : NULL;
    if (n && !copy)
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(copy[i] = strdup(ids[i]))) {
            while (i--)
                free(copy[i]);
            free(copy);
            return AGENTD_ENOMEM;
        }
    pthread_mutex_lock(&dead_mu);
    char **old = dead_ids;
    size_t oldn = dead_n;
    dead_ids = copy;
    dead_n = n;
    pthread_mutex_unlock(&dead_mu);
    for (size_t i = 0; i < oldn; i++)
        free(old[i]);
    free(old);
    return 0;
}

int instance_heartbeat_dead(const char *instance)
{
    int dead = 0;
    pthread_mutex_lock(&dead_mu);
    for (size_t i = 0; i < dead_n && !dead; i++)
        dead = strcmp(dead_ids[i], instance) == 0;
    pthread_mutex_unlock(&dead_mu);
    return dead;
}

int instance_probe(void *dir, const char *instance)
{
    int held = dir ? instance_lock_probe(dir, instance) : -1;
    if (held >= 0)
        return held;
    return instance_heartbeat_dead(instance) ? 0 : -1;
}

int instance_orphaned(const char *ours, const char *theirs, int64_t age_ms, int64_t lease_ms,
                      int (*lock_probe)(void *ud, const char *instance), void *probe_ud,
                      int (*pid_dead)(long pid))
{
    if (!theirs)
        return 1; /* written before instances were kept */
    if (strcmp(theirs, ours) == 0)
        return 0; /* ours, alive */
    int held = lock_probe ? lock_probe(probe_ud, theirs) : -1;
    if (held >= 0)
        return !held; /* its lock file knows */
    const char *slash = strchr(ours, '/');
    size_t hostlen = slash ? (size_t)(slash - ours) : 0;
    if (hostlen && strncmp(theirs, ours, hostlen) == 0 && theirs[hostlen] == '/') {
        char *end = NULL;
        long pid = strtol(theirs + hostlen + 1, &end, 10);
        if (end && *end == '/' && pid > 0 && pid_dead && pid_dead(pid))
            return 1;
    }
    return age_ms > lease_ms;
}

static struct metric *recoveries_family(void)
{
    static const char *const labels[] = { "what", NULL };
    return metric_register("agentd_crash_recoveries_total",
                           "Work cut by a process's death and taken over, by what", METRIC_COUNTER,
                           labels, NULL);
}

void instance_metrics_init(void)
{
    static const char *const whats[] = { "turn_resumed", "turn_failed", "completion",
                                         "idempotency_claim", NULL };
    struct metric *m = recoveries_family();
    for (int i = 0; m && whats[i]; i++) {
        const char *v[] = { whats[i] };
        metric_child(m, v);
    }
}

void instance_recovered(const char *what)
{
    /* rare: looked up at each use (the existing family is returned), so
     * it survives metrics_reset() */
    struct metric *m = recoveries_family();
    const char *v[] = { what };
    if (m)
        metric_inc(metric_child(m, v));
}
