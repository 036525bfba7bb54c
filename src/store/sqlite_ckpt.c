/* WAL checkpoints off the writer's critical path: the writer connection never
 * autocheckpoints; a background thread on its own connection runs PASSIVE ones. */
#include "store/sqlite_int.h"
#include "store/migrations.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/metrics.h"

/* SQLite's own autocheckpoint default (pages of the WAL). */
#define DEFAULT_SOFT_PAGES 1000
/* Past this the WAL is checkpointed (TRUNCATE) by the commit that crossed it:
 * readers that keep PASSIVE checkpoints from finishing cannot make the WAL
 * grow without limit. */
#define DEFAULT_HARD_FACTOR 4
/* The fallback's own wait for readers: short, a commit pays it. */
#define FORCED_BUSY_MS 100

struct sq_ckpt {
    sqlite3 *db; /* the checkpointer's own connection */
    int soft, hard;
    int next_soft; /* writer.mu: the WAL size that wakes the thread next (every
                      soft pages of growth, not every commit: each checkpoint
                      fsyncs) */
    int next_hard; /* writer.mu: the forced checkpoint's next try (a failed one,
                      a reader in the way, tries again a hard bound later) */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t run_mu; /* held while a checkpoint of ours runs */
    int pending, stop; /* guarded by mu */
};

static struct metric_child *m_passive, *m_forced, *m_pages;

static void ckpt_metrics_bind(void)
{
    static const char *const labels[] = { "mode", NULL };
    struct metric *f = metric_register("agentd_store_wal_checkpoints_total",
                                       "WAL checkpoints run: passive (background thread) or "
                                       "truncate (the hard bound, by the writer).",
                                       METRIC_COUNTER, labels, NULL);
    const char *p[] = { "passive" }, *t[] = { "truncate" };
    m_passive = metric_child(f, p);
    m_forced = metric_child(f, t);
    m_pages = metric_only(metric_register("agentd_store_wal_pages",
                                          "Pages in the WAL after the last commit.",
                                          METRIC_GAUGE, NULL, NULL));
}

/* After each commit on the writer connection, writer.mu held. */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    struct sq_ckpt *k = ud;
    metric_set(m_pages, pages);
    if (pages < k->soft)
        k->next_soft = k->soft; /* the WAL restarted */
    if (pages < k->hard)
        k->next_hard = k->hard; /* the WAL restarted: the bound is back where it was */
    if (pages >= k->next_hard) {
        /* SQLite answers BUSY at once while another checkpoint runs: wait
         * for the background one (it copied most of the WAL already) */
        pthread_mutex_lock(&k->run_mu);
        sqlite3_busy_timeout(db, FORCED_BUSY_MS);
        int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
        pthread_mutex_unlock(&k->run_mu);
        metric_inc(m_forced);
        if (rc == SQLITE_OK)
            metric_set(m_pages, 0);
        else
            k->next_hard = pages + k->hard;
    } else if (pages >= k->next_soft) {
        k->next_soft = pages + k->soft;
        pthread_mutex_lock(&k->mu);
        if (!k->pending) {
            k->pending = 1;
            pthread_cond_signal(&k->cv);
        }
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK; /* an error here would fail a commit that already happened */
}

static void *ckpt_main(void *arg)
{
    struct sq_ckpt *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->stop && !k->pending)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->pending = 0;
        pthread_mutex_unlock(&k->mu);
        /* PASSIVE never waits for the writer or readers: it copies what no
         * reader still needs; the writer restarts the WAL from its start
         * once all of it was copied */
        pthread_mutex_lock(&k->run_mu);
        sqlite3_wal_checkpoint_v2(k->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        pthread_mutex_unlock(&k->run_mu);
        metric_inc(m_passive);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int sq_ckpt_start(struct sq *q, int soft_pages, int hard_pages, enum store_sync sync,
                  struct agentd_error *e)
{
    struct sq_ckpt *k = calloc(1, sizeof *k);
    if (!k)
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    k->soft = soft_pages > 0 ? soft_pages : DEFAULT_SOFT_PAGES;
    k->hard = hard_pages > k->soft ? hard_pages : k->soft * DEFAULT_HARD_FACTOR;
    k->next_hard = k->hard;
    k->next_soft = k->soft;
    pthread_mutex_init(&k->mu, NULL);
    pthread_mutex_init(&k->run_mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    ckpt_metrics_bind();
    /* the checkpoint's fsyncs follow AGENTD_DB_SYNC, as the writer's did */
    int rc = sqlite3_open_v2(q->path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(k->db, BUSY_TIMEOUT_MS);
        rc = sqlite3_exec(k->db, sync == STORE_SYNC_FULL ? "PRAGMA synchronous = FULL"
                                                         : "PRAGMA synchronous = NORMAL",
                          NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && pthread_create(&k->th, NULL, ckpt_main, k) != 0)
        rc = SQLITE_NOMEM;
    if (rc != SQLITE_OK) {
        int st = sqlite_status(rc);
        agentd_fail(e, st, NULL, NULL, "cannot open the WAL checkpointer's connection to %s: %s",
                    q->path, k->db ? sqlite3_errmsg(k->db) : sqlite3_errstr(rc));
        sqlite3_close_v2(k->db);
        pthread_mutex_destroy(&k->mu);
        pthread_mutex_destroy(&k->run_mu);
        pthread_cond_destroy(&k->cv);
        free(k);
        return st;
    }
    /* replaces SQLite's autocheckpoint hook on the writer; a WAL that grew
     * (a reader held it) is cut back to the bound when the writer restarts it */
    sqlite3_wal_hook(q->writer.db, wal_hook, k);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA journal_size_limit = %lld", (long long)k->hard * 4096);
    sqlite3_exec(q->writer.db, sql, NULL, NULL, NULL);
    q->ckpt = k;
    return 0;
}

int sq_ckpt_truncate(struct sq *q)
{
    struct sq_ckpt *k = q->ckpt;
    if (k)
        pthread_mutex_lock(&k->run_mu);
    int rc = sqlite3_exec(q->writer.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (k)
        pthread_mutex_unlock(&k->run_mu);
    return rc;
}

void sq_ckpt_stop(struct sq *q)
{
    struct sq_ckpt *k = q->ckpt;
    if (!k)
        return;
    if (q->writer.db)
        sqlite3_wal_hook(q->writer.db, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    sqlite3_close_v2(k->db);
    pthread_mutex_destroy(&k->mu);
    pthread_mutex_destroy(&k->run_mu);
    pthread_cond_destroy(&k->cv);
    free(k);
    q->ckpt = NULL;
}
