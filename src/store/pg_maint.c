/* The PostgreSQL backend's upkeep: ping, purge of expired rows, vacuum and
 * the meta key/value settings (backups are pg_dump's, not ours). */
#include "store/pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* A reader round trip; while unhealthy also a tiny write, so recovery of
 * the server (or of our connections to it) is noticed without traffic. */
int pgs_ping(void *b, int probe_write)
{
    struct sq *q = b;
    struct conn *c = pgs_reader_get(q);
    int64_t n;
    int rc = pgs_run(c, ST_PING, &n, NULL, "");
    pgs_conn_put(c);
    if (rc == 0 && probe_write) {
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)now_ms(q));
        if ((rc = pgs_writer_begin(q)) == 0)
            rc = pgs_writer_end(q, pgs_run(&q->writer, ST_META_SET, NULL, NULL, "tt",
                                           "write_probe", ts));
    }
    return rc;
}

/* A PostgreSQL database is backed up by its own tools (pg_dump, base
 * backups with WAL archiving), which see every replica's writes. */
int pgs_backup(void *b, const char *path)
{
    (void)b;
    (void)path;
    return AGENTD_EINVAL;
}

int pgs_purge_expired(void *b, int batch_limit, int *n_deleted)
{
    struct sq *q = b;
    static const enum st kinds[] = { ST_PURGE_SESSIONS, ST_PURGE_CHECKOUTS, ST_PURGE_IDEM,
                                     ST_PURGE_USAGE, ST_PURGE_AUDIT, ST_PURGE_OUTBOX };
    int total = 0, rc = 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && total < batch_limit; k++) {
        int changed = 0;
        int64_t cut = now_ms(q);
        if (kinds[k] == ST_PURGE_AUDIT) {
            if (!q->audit_retention_ms)
                continue;
            cut -= q->audit_retention_ms;
        }
        if (kinds[k] == ST_PURGE_OUTBOX)
            cut -= STORE_OUTBOX_KEEP_MS;
        if ((rc = pgs_writer_begin(q)) != 0)
            break;
        rc = pgs_run(&q->writer, kinds[k], NULL, &changed, "ii", cut,
                     (int64_t)(batch_limit - total));
        if ((rc = pgs_writer_end(q, rc)) != 0)
            break;
        total += changed;
    }
    if (rc == 0)
        *n_deleted = total;
    return rc;
}

static int db_bytes(PGconn *db, int64_t *bytes)
{
    PGresult *r = PQexec(db, "SELECT pg_database_size(current_database())");
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? 0 : AGENTD_EIO;
    if (rc == 0)
        *bytes = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return rc;
}

/* VACUUM FULL rewrites every table as SQLite's VACUUM rewrites the file,
 * giving the space back to the filesystem; like it, it blocks writers (of
 * every replica) while it runs: an operator's command (agentd vacuum). */
int pgs_vacuum(void *b, int64_t *before, int64_t *after)
{
    struct sq *q = b;
    pthread_mutex_lock(&q->writer.mu);
    int rc = pgs_conn_status(&q->writer);
    if (rc == 0)
        rc = db_bytes(q->writer.db, before);
    if (rc == 0) {
        PGresult *r = PQexec(q->writer.db, "VACUUM FULL");
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : AGENTD_EIO;
        PQclear(r);
    }
    if (rc == 0)
        rc = db_bytes(q->writer.db, after);
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

struct meta_row {
    char *value;
};
static const struct col meta_cols[] = { COL(TEXT, struct meta_row, value) };
static const struct row_map meta_rows = ROW_MAP(struct meta_row, meta_cols);

int pgs_meta_get(void *b, const char *key, char **value)
{
    struct meta_row *row;
    int rc = pgs_get(b, ST_META_GET, &meta_rows, &row, "t", key);
    if (rc == 0) {
        *value = row->value;
        free(row);
    }
    return rc;
}

int pgs_schema_version(void *b, int *version)
{
    char *v;
    int rc = pgs_meta_get(b, "schema_version", &v);
    if (rc == AGENTD_ENOTFOUND) {
        *version = 0;
        return 0;
    }
    if (rc == 0) {
        *version = atoi(v);
        free(v);
    }
    return rc;
}

int pgs_meta_set(void *b, const char *key, const char *value)
{
    struct sq *q = b;
    int rc = pgs_writer_begin(q);
    if (rc)
        return rc;
    return pgs_writer_end(q, pgs_run(&q->writer, ST_META_SET, NULL, NULL, "tt", key, value));
}
