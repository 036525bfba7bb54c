/* The instance heartbeat: a row per process in the store's instances table,
 * refreshed from a timer; a row that stopped moving marks a dead replica. */
#include "agent/heartbeat.h"
#include "core/err.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REAP_AFTER_MS (3600LL * 1000) /* a dead row is kept this long past the bound */

static atomic_llong live_rows, dead_rows;

int64_t heartbeat_every_ms(int64_t dead_after_ms)
{
    int64_t every = dead_after_ms / 4;
    return every > 2000 ? 2000 : every < 100 ? 100 : every;
}

void heartbeat_init(struct heartbeat *hb, struct store *st, const char *instance,
                    int64_t dead_after_ms)
{
    *hb = (struct heartbeat){ .st = st, .dead_after_ms = dead_after_ms };
    snprintf(hb->id, sizeof hb->id, "%s", instance);
    const char *slash = strchr(instance, '/');
    int hl = slash ? (int)(slash - instance) : (int)strlen(instance);
    snprintf(hb->host, sizeof hb->host, "%.*s", hl, instance);
}

static int was_dead(const struct heartbeat *hb, const char *id)
{
    for (size_t i = 0; i < hb->ndead; i++)
        if (strcmp(hb->dead[i], id) == 0)
            return 1;
    return 0;
}

static void strings_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int heartbeat_beat(struct heartbeat *hb, int64_t now_ms)
{
    if (!hb->started_at)
        hb->started_at = now_ms;
    struct store_instance me = { .id = hb->id, .host = hb->host, .pid = (int64_t)getpid(),
                                 .started_at = hb->started_at };
    int rc = store_instance_beat(hb->st, &me);
    struct store_instance *v = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = store_instance_list(hb->st, &v, &n);
    if (rc != 0)
        return rc;
    char **dead = calloc(n ? n : 1, sizeof *dead);
    size_t nd = 0;
    int fresh = 0;
    for (size_t i = 0; dead && i < n; i++) {
        int64_t age = now_ms - v[i].heartbeat_at;
        if (strcmp(v[i].id, hb->id) == 0 || age <= hb->dead_after_ms)
            continue;
        if (age > hb->dead_after_ms + REAP_AFTER_MS) {
            store_instance_delete(hb->st, v[i].id); /* another replica may have won: fine */
            continue;
        }
        dead[nd] = v[i].id; /* moved */
        v[i].id = NULL;
        if (!was_dead(hb, dead[nd])) {
            fresh++;
            log_msg(LOG_WARN, NULL, "instance %s (host %s, pid %lld) stopped its heartbeat %lld ms "
                    "ago: adopting its work", dead[nd], v[i].host, (long long)v[i].pid,
                    (long long)age);
        }
        nd++;
    }
    atomic_store(&live_rows, (long long)(n - nd));
    atomic_store(&dead_rows, (long long)nd);
    store_instance_list_free(v, n);
    if (!dead || instance_dead_set(dead, nd) != 0) {
        strings_free(dead, nd);
        return AGENTD_ENOMEM;
    }
    strings_free(hb->dead, hb->ndead);
    hb->dead = dead;
    hb->ndead = nd;
    return fresh;
}

void heartbeat_stop(struct heartbeat *hb)
{
    if (hb->st && hb->id[0])
        store_instance_delete(hb->st, hb->id);
}

void heartbeat_free(struct heartbeat *hb)
{
    strings_free(hb->dead, hb->ndead);
    hb->dead = NULL;
    hb->ndead = 0;
}

static double rows_value(void *ud) { return (double)atomic_load((atomic_llong *)ud); }

void heartbeat_metrics_register(void)
{
    metric_register_fn("agentd_instances_live", "Instances whose heartbeat row is fresh, "
                       "as of this process's last beat (itself included)", METRIC_GAUGE,
                       rows_value, &live_rows);
    metric_register_fn("agentd_instances_dead", "Instances whose heartbeat stopped "
                       "(their work is adopted), as of this process's last beat", METRIC_GAUGE,
                       rows_value, &dead_rows);
}
