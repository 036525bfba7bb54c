/* The SQLite backend's upkeep: ping, online backup, purge of expired rows,
 * vacuum, migrations and the meta key/value settings. */
#include "store/sqlite_int.h"
#include "store/migrations.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- lifecycle ---- */

int sq_ping(void *b, int probe_write)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    int64_t n;
    int rc = sq_run(c, ST_PING, &n, NULL, "");
    sq_conn_put(c);
    if (rc == 0 && probe_write) {
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)now_ms(q));
        if ((rc = sq_writer_begin(q)) == 0)
            rc = sq_writer_end(q, sq_run(&q->writer, ST_META_SET, NULL, NULL, "tt", "write_probe", ts));
    }
    return rc;
}

/* Makes a rename in path's directory durable. */
static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return AGENTD_EIO;
    int rc = fsync(fd) == 0 ? 0 : AGENTD_EIO;
    close(fd);
    return rc;
}

/* Its own source connection: the copy runs in one read transaction (one WAL
 * snapshot, so it is consistent) and writers carry on meanwhile. */
int sq_backup(void *b, const char *path)
{
    struct sq *q = b;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return AGENTD_EINVAL;
    int rc = sq_make_parent_dirs(path, NULL);
    if (rc == 0)
        rc = sq_create_private(tmp, 1, NULL);
    if (rc)
        return rc;
    sqlite3 *src = NULL, *dst = NULL;
    int sqlrc = sqlite3_open_v2(q->path, &src, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc == SQLITE_OK)
        sqlrc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (sqlrc == SQLITE_OK) {
        sqlite3_extended_result_codes(src, 1);
        sqlite3_busy_timeout(src, BUSY_TIMEOUT_MS);
        sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
        if (!bk) {
            sqlrc = sqlite3_extended_errcode(dst);
        } else {
            sqlrc = sqlite3_backup_step(bk, -1);
            int fin = sqlite3_backup_finish(bk);
            if (sqlrc == SQLITE_DONE)
                sqlrc = fin;
        }
    }
    rc = sqlite_status(sqlrc);
    /* A busy source is the caller's to retry; a damaged one is reported as
     * such; anything else went wrong on the destination side. */
    sqlite3_close_v2(src);
    if (sqlite3_close_v2(dst) != SQLITE_OK && rc == 0)
        rc = AGENTD_EIO;
    if (rc == 0 && (rename(tmp, path) != 0 || fsync_dir_of(path) != 0))
        rc = AGENTD_EIO;
    if (rc)
        unlink(tmp);
    return rc;
}

int sq_purge_expired(void *b, int batch_limit, int *n_deleted)
{
    struct sq *q = b;
    static const enum st kinds[] = { ST_PURGE_SESSIONS, ST_PURGE_CHECKOUTS, ST_PURGE_IDEM,
                                     ST_PURGE_USAGE, ST_PURGE_AUDIT, ST_PURGE_OUTBOX };
    int total = 0, rc = 0;
    /* One short transaction per kind: other writers get the lock in between. */
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && total < batch_limit; k++) {
        int changed = 0;
        int64_t cut = now_ms(q); /* audit rows age out by retention, the rest by expiry */
        if (kinds[k] == ST_PURGE_AUDIT) {
            if (!q->audit_retention_ms)
                continue;
            cut -= q->audit_retention_ms;
        }
        if (kinds[k] == ST_PURGE_OUTBOX)
            cut -= STORE_OUTBOX_KEEP_MS;
        if ((rc = sq_writer_begin(q)) != 0)
            break;
        rc = sq_run(&q->writer, kinds[k], NULL, &changed, "ii", cut,
                    (int64_t)(batch_limit - total));
        if ((rc = sq_writer_end(q, rc)) != 0)
            break;
        total += changed;
    }
    if (rc == 0)
        *n_deleted = total;
    return rc;
}

/* page_count x page_size: every page of the main database, free or not. */
static int db_bytes(sqlite3 *db, int64_t *bytes)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT page_count * page_size FROM pragma_page_count(), "
                                "pragma_page_size()",
                                -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *bytes = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sqlite_status(rc);
}

/* VACUUM rewrites the file through the WAL; the TRUNCATE checkpoint then
 * copies it back and empties the log, which is when the file shrinks. A
 * reader holding an old snapshot (another process) can keep the checkpoint
 * from finishing: the space comes back at the next checkpoint instead. */
int sq_vacuum(void *b, int64_t *before, int64_t *after)
{
    struct sq *q = b;
    sq_writer_lock_plain(q);
    int rc = db_bytes(q->writer.db, before);
    if (rc == 0) {
        int sqlrc = sqlite3_exec(q->writer.db, "VACUUM", NULL, NULL, NULL);
        if (sqlrc == SQLITE_OK)
            sqlrc = sq_ckpt_truncate(q);
        rc = sqlrc == SQLITE_OK ? 0 : sqlite_status(sqlrc);
    }
    if (rc == 0)
        rc = db_bytes(q->writer.db, after);
    sq_writer_unlock(q);
    return rc;
}

struct meta_row {
    char *value;
};
static const struct col meta_cols[] = { COL(TEXT, struct meta_row, value) };
static const struct row_map meta_rows = ROW_MAP(struct meta_row, meta_cols);

int sq_meta_get(void *b, const char *key, char **value)
{
    struct meta_row *row;
    int rc = sq_get(b, ST_META_GET, &meta_rows, &row, "t", key);
    if (rc == 0) {
        *value = row->value;
        free(row);
    }
    return rc;
}

int sq_schema_version(void *b, int *version)
{
    char *v;
    int rc = sq_meta_get(b, "schema_version", &v);
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

int sq_meta_set(void *b, const char *key, const char *value)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, sq_run(&q->writer, ST_META_SET, NULL, NULL, "tt", key, value));
}
