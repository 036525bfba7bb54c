/* The SQLite backend's core: WAL connections (one writer behind a mutex plus
 * a few readers), the per-connection statement cache, open/close, its vtable. */
#include "store/sqlite_int.h"
#include "store/migrations.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/metrics.h"

#define DEFAULT_READERS 4

static const char *const st_sql[ST_COUNT] = {
#define X(name, sql) sql,
    STATEMENTS(X)
#undef X
};

/* ---- statements ---- */

/* Prepares (once per connection) and binds. fmt has one letter per
 * parameter: t text (NULL binds NULL), i int64_t, e int64_t expiry (0 binds
 * NULL = never), d double, b blob as (const void *, size_t). Values are bound
 * SQLITE_STATIC: every statement is reset before its caller returns. */
static int st_prepare(struct conn *c, enum st id, sqlite3_stmt **out, const char *fmt, va_list ap)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, st_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                                    NULL);
        if (rc != SQLITE_OK)
            return sqlite_status(rc);
    }
    sqlite3_stmt *st = c->st[id];
    int rc = SQLITE_OK;
    for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
        switch (*fmt) {
        case 't': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
            break;
        case 'e': {
            int64_t v = va_arg(ap, int64_t);
            rc = v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
            break;
        }
        case 'd':
            rc = sqlite3_bind_double(st, i, va_arg(ap, double));
            break;
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(st, i, len ? p : "", len, SQLITE_STATIC);
            break;
        }
        }
    }
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(st);
        return sqlite_status(rc);
    }
    *out = st;
    return 0;
}

static void st_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int vrun(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt,
                va_list ap)
{
    sqlite3_stmt *st = NULL;
    int rc = st_prepare(c, id, &st, fmt, ap);
    if (rc)
        return rc;
    metric_inc(c->statements);
    int rows = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (val && rows++ == 0)
            *val = sqlite3_column_int64(st, 0);
    }
    rc = sqlite_status(src);
    if (rc == 0 && val && rows == 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0 && changes)
        *changes = sqlite3_changes(c->db);
    st_done(st);
    return rc;
}

int sq_run(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(c, id, val, changes, fmt, ap);
    va_end(ap);
    return rc;
}


/* Statement id in its own write transaction, after `drop` (ST_COUNT: none)
 * has removed the expired row that may hold drop_id (?1 id, ?2 now). */
static int vwrite(struct sq *q, enum st drop, const char *drop_id, int64_t now, enum st id,
                  int *changed, const char *fmt, va_list ap)
{
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    if (drop != ST_COUNT)
        rc = sq_run(&q->writer, drop, NULL, NULL, "ti", drop_id, now);
    if (rc == 0)
        rc = vrun(&q->writer, id, NULL, changed, fmt, ap);
    return sq_writer_end(q, rc);
}

int sq_quota_check(struct sq *q, enum st count, const char *principal, int cap)
{
    if (cap <= 0)
        return 0;
    /* quota_usage is kept by triggers (migration 8): one lookup */
    int64_t n = 0;
    int rc = sq_run(&q->writer, count, &n, NULL, "t", principal);
    if (rc == AGENTD_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    return n > cap ? AGENTD_EQUOTA : 0;
}

int sq_write_one(struct sq *q, enum st id, int *changed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, ST_COUNT, NULL, 0, id, changed, fmt, ap);
    va_end(ap);
    return rc;
}

int sq_write_found(struct sq *q, enum st id, const char *fmt, ...)
{
    int changed = 0;
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, ST_COUNT, NULL, 0, id, &changed, fmt, ap);
    va_end(ap);
    return rc == 0 && !changed ? AGENTD_ENOTFOUND : rc; /* nothing changed: nothing to undo */
}

int sq_insert_fresh(struct sq *q, enum st drop, const char *drop_id, int64_t now, enum st id,
                    const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, drop, drop_id, now, id, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- rows ---- */

/* Column i of the current row into its field; AGENTD_ENOMEM if a copy failed. */
static int col_read(sqlite3_stmt *st, int i, const struct col *col, char *item)
{
    void *f = item + col->off;
    if (sqlite3_column_type(st, i) == SQLITE_NULL &&
        (col->kind == COL_TEXT || col->kind == COL_BLOB))
        return 0; /* stays NULL */
    switch (col->kind) {
    case COL_I64:
        *(int64_t *)f = sqlite3_column_int64(st, i);
        return 0;
    case COL_INT:
        *(int *)f = sqlite3_column_int(st, i);
        return 0;
    case COL_DOUBLE:
        *(double *)f = sqlite3_column_double(st, i);
        return 0;
    case COL_TEXT: {
        const unsigned char *s = sqlite3_column_text(st, i);
        return s && (*(char **)f = strdup((const char *)s)) ? 0 : AGENTD_ENOMEM;
    }
    case COL_BLOB: { /* copied NUL-terminated, its length beside it */
        const void *p = sqlite3_column_blob(st, i);
        size_t len = (size_t)sqlite3_column_bytes(st, i);
        char *copy = malloc(len + 1);
        if (!copy)
            return AGENTD_ENOMEM;
        if (len)
            memcpy(copy, p, len);
        copy[len] = 0;
        *(char **)f = copy;
        *(size_t *)(item + col->len_off) = len;
        return 0;
    }
    }
    return AGENTD_EINVAL;
}

static void item_free(const struct row_map *m, char *item)
{
    for (size_t i = 0; i < m->ncols; i++)
        if (m->cols[i].kind == COL_TEXT || m->cols[i].kind == COL_BLOB)
            free(*(char **)(item + m->cols[i].off));
}

static int vfetch(struct conn *c, enum st id, const struct row_map *m, void *outp, size_t *n,
                  const char *fmt, va_list ap)
{
    sqlite3_stmt *st = NULL;
    int rc = st_prepare(c, id, &st, fmt, ap);
    if (rc)
        return rc;
    size_t cap = 0, nv = 0;
    char *v = NULL;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (nv == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            char *grown = realloc(v, ncap * m->size);
            if (!grown) {
                rc = AGENTD_ENOMEM;
                break;
            }
            v = grown;
            cap = ncap;
        }
        char *item = v + nv++ * m->size;
        memset(item, 0, m->size);
        for (size_t i = 0; rc == 0 && i < m->ncols; i++)
            rc = col_read(st, (int)i, &m->cols[i], item);
        if (rc)
            break;
    }
    if (rc == 0)
        rc = sqlite_status(src);
    st_done(st);
    if (rc) {
        for (size_t i = 0; i < nv; i++)
            item_free(m, v + i * m->size);
        free(v);
        return rc;
    }
    memcpy(outp, &v, sizeof v);
    *n = nv;
    return 0;
}

int sq_fetch(struct conn *c, enum st id, const struct row_map *m, void *outp, size_t *n,
             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, outp, n, fmt, ap);
    va_end(ap);
    return rc;
}

int sq_list(struct sq *q, enum st id, const struct row_map *m, void *outp, size_t *n,
            const char *fmt, ...)
{
    struct conn *c = sq_reader_get(q);
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, outp, n, fmt, ap);
    va_end(ap);
    sq_conn_put(c);
    return rc;
}

int sq_get(struct sq *q, enum st id, const struct row_map *m, void *outp, const char *fmt, ...)
{
    char *v = NULL;
    size_t n = 0;
    struct conn *c = sq_reader_get(q);
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, &v, &n, fmt, ap);
    va_end(ap);
    sq_conn_put(c);
    if (rc == 0 && n == 0)
        rc = AGENTD_ENOTFOUND;
    for (size_t i = 1; rc == 0 && i < n; i++) /* a read by key: the first row is the one */
        item_free(m, v + i * m->size);
    if (rc) {
        free(v);
        return rc;
    }
    memcpy(outp, &v, sizeof v);
    return 0;
}

/* ---- connections ---- */

struct conn *sq_reader_get(struct sq *q)
{
    if (q->nreaders == 0) {
        sq_writer_lock_plain(q);
        return &q->writer;
    }
    /* A thread keeps to "its" reader while it is free, so connections stay
     * warm in one thread's cache; otherwise take any free one, else wait. */
    static atomic_uint next_hint;
    static _Thread_local unsigned hint = UINT_MAX;
    if (hint == UINT_MAX)
        hint = atomic_fetch_add(&next_hint, 1);
    unsigned n = (unsigned)q->nreaders;
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &q->readers[(hint + i) % n];
        if (pthread_mutex_trylock(&c->mu) == 0)
            return c;
    }
    struct conn *c = &q->readers[hint % n];
    pthread_mutex_lock(&c->mu);
    return c;
}

void sq_conn_put(struct conn *c) { pthread_mutex_unlock(&c->mu); }

/* ---- the writer: group commit ----
 *
 * Pool workers contend for the one writer connection. A write that ends
 * while other threads wait for the writer does not commit: it leaves the
 * transaction open, hands the writer on and waits; the next write runs in
 * the same transaction (in a savepoint of its own, so its failure undoes
 * only itself), and the last one with nobody waiting — or the 64th —
 * commits for all and wakes them with the commit's result. Nobody waits
 * for company: an idle writer commits at once. Durability is unchanged: a
 * caller is answered only after the commit that holds its write. */

#define GROUP_MAX 64

static struct metric_child *m_commits, *m_grouped, *m_waiting, *m_statements;

static void writer_metrics_bind(void)
{
    m_commits = metric_only(metric_register("agentd_store_commits_total",
                                            "Write transactions the store committed.",
                                            METRIC_COUNTER, NULL, NULL));
    m_grouped = metric_only(metric_register(
        "agentd_store_grouped_writes_total",
        "Writes that rode a later write's commit (group commit) instead of their own.",
        METRIC_COUNTER, NULL, NULL));
    m_statements = metric_only(metric_register(
        "agentd_store_statements_total",
        "Statements the store's writer connection ran (a turn's share is most of its CPU).",
        METRIC_COUNTER, NULL, NULL));
    m_waiting = metric_only(metric_register("agentd_store_writer_waiting",
                                            "Threads waiting for the store's writer connection.",
                                            METRIC_GAUGE, NULL, NULL));
}

static void writer_lock(struct sq *q)
{
    if (pthread_mutex_trylock(&q->writer.mu) == 0)
        return;
    atomic_fetch_add(&q->writer_waiting, 1);
    metric_add(m_waiting, 1);
    pthread_mutex_lock(&q->writer.mu);
    atomic_fetch_sub(&q->writer_waiting, 1);
    metric_add(m_waiting, -1);
}

/* With writer.mu held: answers every write that waited for the open
 * transaction's end with rc. */
static void wake_joined(struct sq *q, int rc)
{
    struct sq_joined *j = q->joined;
    q->joined = NULL;
    q->njoined = 0;
    while (j) {
        struct sq_joined *next = j->next; /* j lives on its waiter's stack: gone once posted */
        j->rc = rc;
        sem_post(&j->done);
        j = next;
    }
}

/* With writer.mu held: commits the open transaction (if any) and answers
 * every write that waited for it. Returns the commit's status. */
static int group_commit(struct sq *q)
{
    int rc = 0;
    if (!sqlite3_get_autocommit(q->writer.db)) {
        rc = sq_run(&q->writer, ST_COMMIT, NULL, NULL, "");
        if (rc && !sqlite3_get_autocommit(q->writer.db))
            sq_run(&q->writer, ST_ROLLBACK, NULL, NULL, "");
        if (rc == 0)
            metric_inc(m_commits);
    }
    if (q->joined)
        wake_joined(q, rc);
    return rc;
}

void sq_writer_lock_plain(struct sq *q)
{
    writer_lock(q);
    if (q->joined || !sqlite3_get_autocommit(q->writer.db))
        group_commit(q); /* a group left open for this thread: close it first */
}

void sq_writer_unlock(struct sq *q) { pthread_mutex_unlock(&q->writer.mu); }

/* A write (or a batch) is done with the writer: ok says it wrote something
 * that must commit. Either hands the open transaction on to a waiting
 * thread and waits for its commit, or commits now. */
static int writer_leave(struct sq *q, int ok)
{
    if (q->nreaders > 0 && atomic_load(&q->writer_waiting) > 0 && q->njoined < GROUP_MAX - 1 &&
        !sqlite3_get_autocommit(q->writer.db)) {
        /* a failed write joins too: it may have failed on a neighbour's
         * uncommitted write (the last unit of stock), and its caller's next
         * reads must see that neighbour's commit */
        struct sq_joined me = { .next = q->joined };
        sem_init(&me.done, 0, 0);
        q->joined = &me;
        q->njoined++;
        if (ok)
            metric_inc(m_grouped);
        pthread_mutex_unlock(&q->writer.mu);
        while (sem_wait(&me.done) != 0) /* only EINTR: a signal handler ran */
            ;
        sem_destroy(&me.done);
        return ok ? me.rc : 0;
    }
    int rc = group_commit(q);
    pthread_mutex_unlock(&q->writer.mu);
    return ok ? rc : 0;
}

/* Opens this write's part of the transaction: the transaction itself if
 * none is open (its first write needs no savepoint: undoing it is a
 * rollback of the whole, which spares copying every page it changes into
 * the statement journal), else a savepoint inside the open one. */
static int write_open(struct sq *q, int *bare)
{
    if (sqlite3_get_autocommit(q->writer.db)) {
        *bare = 1;
        return sq_run(&q->writer, ST_BEGIN_IMMEDIATE, NULL, NULL, "");
    }
    *bare = 0;
    return sq_run(&q->writer, ST_SAVEPOINT_OP, NULL, NULL, "");
}

/* Some errors (a full disk, an I/O error, out of memory) make SQLite roll
 * the whole transaction back, not just the failing statement: the writes
 * that joined it are gone, so they are answered with that error now —
 * never with a later transaction's commit. */
static _Thread_local struct sq *tl_batch;
static _Thread_local int tl_lost; /* it happened inside this thread's batch */

/* A failed write took the transaction itself with it. */
static void write_lost(struct sq *q, int rc)
{
    if (q->joined)
        wake_joined(q, rc);
    if (tl_batch == q)
        tl_lost = rc;
}

/* Closes it: kept (rc 0) or undone alone. */
static int write_close(struct sq *q, int bare, int rc)
{
    if (bare) {
        if (rc && !sqlite3_get_autocommit(q->writer.db))
            sq_run(&q->writer, ST_ROLLBACK, NULL, NULL, "");
        return rc;
    }
    if (rc == 0)
        rc = sq_run(&q->writer, ST_RELEASE_OP, NULL, NULL, "");
    if (rc && !sqlite3_get_autocommit(q->writer.db)) {
        sq_run(&q->writer, ST_ROLLBACK_TO_OP, NULL, NULL, "");
        sq_run(&q->writer, ST_RELEASE_OP, NULL, NULL, "");
    } else if (rc) {
        write_lost(q, rc);
    }
    return rc;
}

/* The batch this thread has open (store_batch_begin), if any (tl_batch,
 * above): its writes join one transaction, each in a savepoint of its own. */
static _Thread_local int tl_held;  /* and it holds the writer (from its first write) */
static _Thread_local int tl_wrote; /* a write of it was kept */
static _Thread_local int tl_bare;  /* the write under way opened the transaction */
static _Thread_local int tl_one;   /* it is one statement, without a savepoint */
static _Thread_local unsigned tl_gen; /* the batch's writes begun so far */
/* sq_batch_note_running's turn and session, and the write that noted them */
static _Thread_local char tl_run_turn[96], tl_run_session[96];
static _Thread_local struct sq_running tl_run;
static _Thread_local unsigned tl_run_gen;

void sq_batch_note_running(struct sq *q, const struct sq_running *r)
{
    tl_run_turn[0] = '\0';
    if (tl_batch != q || !tl_held || tl_lost || !r->turn_id ||
        strlen(r->turn_id) >= sizeof tl_run_turn ||
        (r->session_id && strlen(r->session_id) >= sizeof tl_run_session))
        return;
    strcpy(tl_run_turn, r->turn_id);
    strcpy(tl_run_session, r->session_id ? r->session_id : "");
    tl_run = (struct sq_running){ .turn_id = tl_run_turn,
                                  .session_id = r->session_id ? tl_run_session : NULL,
                                  .now = r->now, .touched = r->session_id && r->touched };
    tl_run_gen = tl_gen;
}

int sq_batch_running(struct sq *q, const char *turn_id, struct sq_running *r)
{
    if (tl_batch != q || !tl_held || tl_lost || !tl_run_turn[0] || tl_gen != tl_run_gen + 1 ||
        strcmp(tl_run_turn, turn_id) != 0)
        return 0;
    *r = tl_run;
    return 1;
}

int sq_writer_begin(struct sq *q)
{
    if (tl_batch == q) {
        tl_gen++;
        if (!tl_held) { /* the batch's first write takes the writer */
            writer_lock(q);
            tl_held = 1;
        }
        int rc = write_open(q, &tl_bare);
        if (rc && !tl_wrote) { /* nothing of ours pending: let the writer go */
            tl_held = 0;
            writer_leave(q, 0);
        }
        return rc;
    }
    if (q->nreaders == 0)
        sq_writer_lock_plain(q);
    else
        writer_lock(q);
    int rc = write_open(q, &tl_bare);
    if (rc)
        writer_leave(q, 0);
    return rc;
}

/* Inside a batch whose transaction is open, a write of one statement
 * needs no savepoint: SQLite undoes a failed statement by itself (its
 * statement journal), and SAVEPOINT with RELEASE cost ~7 K instructions. */
int sq_writer_begin_one(struct sq *q)
{
    if (tl_batch != q || !tl_held || sqlite3_get_autocommit(q->writer.db))
        return sq_writer_begin(q);
    tl_gen++;
    tl_bare = 0;
    tl_one = 1;
    return 0;
}

/* Keeps the write if rc is 0, else undoes it alone; outside a batch the
 * caller is answered after the commit that holds it. Inside a batch the
 * commit waits for the batch's end. */
int sq_writer_end(struct sq *q, int rc)
{
    if (tl_one) { /* nothing to undo but when the transaction went with it */
        tl_one = 0;
        if (rc && sqlite3_get_autocommit(q->writer.db))
            write_lost(q, rc);
    } else {
        rc = write_close(q, tl_bare, rc);
    }
    tl_bare = 0;
    if (tl_batch == q) {
        if (rc == 0)
            tl_wrote = 1;
        else if (!tl_wrote) { /* nothing pending of ours: the writer goes (the
                                 caller may wait before its next try, e.g. a claim) */
            tl_held = 0;
            writer_leave(q, 0);
        }
        return rc;
    }
    int crc = writer_leave(q, rc == 0);
    return rc ? rc : crc;
}

/* Without reader connections reads go through the writer, which a batch
 * would hold: no batch then (each write commits on its own, as always). */
static int sq_batch_begin(void *b)
{
    struct sq *q = b;
    if (q->nreaders == 0 || tl_batch)
        return 0;
    tl_batch = q;
    tl_lost = 0;
    tl_run_turn[0] = '\0';
    return 1;
}

static int sq_batch_open(void *b) { return tl_batch == b; }

static int sq_batch_end(void *b)
{
    struct sq *q = b;
    if (tl_batch != q)
        return 0;
    tl_batch = NULL;
    tl_bare = 0;
    tl_run_turn[0] = '\0';
    int held = tl_held, wrote = tl_wrote, lost = tl_lost;
    tl_held = tl_wrote = tl_lost = tl_one = 0;
    if (!held)
        return 0; /* nothing was written */
    int rc = writer_leave(q, wrote);
    return lost ? lost : rc; /* writes of the batch went with a lost transaction */
}

/* Several reads that must see one snapshot. */
int sq_read_begin(struct conn *c) { return sq_run(c, ST_BEGIN, NULL, NULL, ""); }

int sq_read_end(struct conn *c, int rc)
{
    if (!sqlite3_get_autocommit(c->db))
        sq_run(c, ST_COMMIT, NULL, NULL, "");
    sq_conn_put(c);
    return rc;
}

static void conn_close(struct conn *c)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close_v2(c->db);
    pthread_mutex_destroy(&c->mu);
}

static int wal_enabled(sqlite3 *db)
{
    sqlite3_stmt *st;
    int wal = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        wal = sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    return wal;
}

static int conn_open(struct conn *c, const char *path, int writer, enum store_sync sync,
                     struct agentd_error *e)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    int flags = SQLITE_OPEN_NOMUTEX |
                (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(c->db, 1);
        sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    }
    /* journal_mode reads the header: a file that is no database fails here. */
    if (rc == SQLITE_OK && writer)
        rc = sqlite3_exec(c->db,
                          sync == STORE_SYNC_FULL
                              ? "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                                " PRAGMA foreign_keys = ON"
                              : "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                                " PRAGMA foreign_keys = ON",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK && writer && !wal_enabled(c->db)) {
        /* Without WAL readers and the writer block each other. */
        conn_close(c);
        return agentd_fail(e, AGENTD_EIO, NULL, NULL,
                           "cannot use WAL journaling for %s; put AGENTD_DB on a local "
                           "filesystem",
                           path);
    }
    if (rc != SQLITE_OK) {
        int st = sqlite_status(rc);
        const char *why = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
        if (st == AGENTD_ECORRUPT)
            agentd_fail(e, st, NULL, NULL,
                        "database %s is corrupt or not an SQLite database (%s); "
                        "restore it from a backup (see docs/operations.md, Database)",
                        path, why);
        else
            agentd_fail(e, st, NULL, NULL, "cannot open database %s: %s", path, why);
        conn_close(c); /* after the message: why may live in c->db */
        return st;
    }
    return 0;
}

/* Zero config: the first run creates the data directory (private to us). */
int sq_make_parent_dirs(const char *path, struct agentd_error *e)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "database path too long");
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return agentd_fail(e, AGENTD_EIO, NULL, NULL, "cannot create directory %s: %s", dir,
                               strerror(errno));
        *p = saved;
        if (!saved)
            return 0;
    }
}

/* Created here rather than by SQLite so the file, and the -wal and -shm
 * files SQLite later gives the same mode, are private (0600). */
int sq_create_private(const char *path, int truncate, struct agentd_error *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0600);
    if (fd < 0)
        return agentd_fail(e, AGENTD_EIO, NULL, NULL, "cannot create %.200s: %s", path,
                           strerror(errno));
    close(fd);
    return 0;
}

void sq_close(void *b)
{
    struct sq *q = b;
    if (!q)
        return;
    sq_ckpt_stop(q);
    for (int i = 0; i < q->nreaders; i++)
        conn_close(&q->readers[i]);
    free(q->readers);
    /* Closed last: the last connection checkpoints the WAL into the file. */
    if (q->writer.db)
        conn_close(&q->writer);
    free(q->path);
    free(q);
}

/* A migration that finds the file damaged says so the way open does. */
static int open_migrate(struct sq *q, struct agentd_error *e)
{
    int version;
    int rc = migrations_apply(q->writer.db, &version, e);
    if (rc == AGENTD_ECORRUPT && e) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        agentd_fail(e, rc, NULL, NULL,
                    "database %s is corrupt (%s); restore it from a backup (see "
                    "docs/operations.md, Database)",
                    q->path, why);
    }
    return rc;
}

/* SQLite's global memory statistics (sqlite3_memory_used and friends, which
 * agentd never reads) take one process-wide mutex on every allocation of
 * every connection; off before SQLite initialises (after, sqlite3_config
 * refuses and they stay on: only slower). The statement journal stays in
 * memory: a group commit's every write after its first runs in a savepoint
 * that copies the pages earlier writes dirtied there, and past the default
 * 64 KiB that went to a temporary file (an open, a pwrite per page). It
 * holds one write's pages at most: released with its savepoint. No first
 * bulk allocation for a page cache (SQLITE_CONFIG_PAGECACHE 0: pages one
 * at a time): every INSERT ... RETURNING opens an ephemeral table with a
 * page cache of its own, and its 20-page block (~85 KiB), freed at the
 * statement's end, made glibc trim a worker's arena (madvise) and fault the
 * memory back in on the next one. */
static pthread_once_t sqlite_config_once = PTHREAD_ONCE_INIT;
static void sqlite_config(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, -1);
    sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

int sq_open(const struct store_options *opt, void **out, struct agentd_error *e)
{
    pthread_once(&sqlite_config_once, sqlite_config);
    if (strcmp(opt->url, ":memory:") == 0 || strncmp(opt->url, "file:", 5) == 0)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "AGENTD_DB must be a file path (got %s)",
                           opt->url);
    if (!sqlite3_threadsafe())
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL,
                           "this SQLite library was built without thread support");
    struct sq *q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(opt->url))) {
        free(q);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    }
    q->now = opt->now;
    q->now_ud = opt->now_ud;
    writer_metrics_bind();
    q->session_ttl_ms = opt->session_ttl_ms > 0 ? opt->session_ttl_ms : 0;
    q->audit_retention_ms = opt->audit_retention_ms > 0 ? opt->audit_retention_ms : 0;
    q->quota_sessions = opt->quota_sessions > 0 ? opt->quota_sessions : 0;
    q->quota_idem = opt->quota_idempotency_keys > 0 ? opt->quota_idempotency_keys : 0;
    int rc = sq_make_parent_dirs(q->path, e);
    if (rc == 0 && access(q->path, F_OK) != 0)
        rc = sq_create_private(q->path, 0, e);
    if (rc == 0)
        rc = conn_open(&q->writer, q->path, 1, opt->sync, e);
    q->writer.statements = m_statements;
    if (rc) {
        q->writer.db = NULL; /* conn_open cleaned up */
        sq_close(q);
        return rc;
    }
    if ((rc = open_migrate(q, e)) != 0 ||
        (rc = sq_ckpt_start(q, opt->wal_checkpoint_pages, opt->wal_limit_pages, opt->sync, e))) {
        sq_close(q);
        return rc;
    }
    int n = opt->readers == 0 ? DEFAULT_READERS : opt->readers < 0 ? 0 : opt->readers;
    if (n && !(q->readers = calloc((size_t)n, sizeof *q->readers))) {
        sq_close(q);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    }
    for (; q->nreaders < n; q->nreaders++) {
        if ((rc = conn_open(&q->readers[q->nreaders], q->path, 0, opt->sync, e))) {
            sq_close(q);
            return rc;
        }
    }
    *out = q;
    return 0;
}

const struct store_backend store_backend_sqlite = {
    .open = sq_open,
    .batch_begin = sq_batch_begin,
    .batch_open = sq_batch_open,
    .batch_end = sq_batch_end,
    .close = sq_close,
    .ping = sq_ping,
    .backup = sq_backup,
    .purge_expired = sq_purge_expired,
    .vacuum = sq_vacuum,
    .schema_version = sq_schema_version,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .principal_create = sq_principal_create,
    .principal_get = sq_principal_get,
    .apikey_create = sq_apikey_create,
    .apikey_get_by_hash = sq_apikey_get_by_hash,
    .apikey_get = sq_apikey_get,
    .apikey_revoke = sq_apikey_revoke,
    .apikey_list = sq_apikey_list,
    .session_create = sq_session_create,
    .session_get = sq_session_get,
    .session_update = sq_session_update,
    .session_list = sq_session_list,
    .session_delete_idle = sq_session_delete_idle,
    .message_append = sq_message_append,
    .message_list = sq_message_list,
    .message_tail = sq_message_tail,
    .task_create = sq_task_create,
    .task_get = sq_task_get,
    .task_update_if = sq_task_update_if,
    .task_accept = sq_task_accept,
    .task_list = sq_task_list,
    .task_list_owner = sq_task_list_owner,
    .turn_begin = sq_turn_begin,
    .turn_interrupt = sq_turn_interrupt,
    .turn_adopt = sq_turn_adopt,
    .turn_get = sq_turn_get,
    .turn_list_unfinished = sq_turn_list_unfinished,
    .checkpoint_list = sq_checkpoint_list,
    .event_append = sq_event_append,
    .event_list = sq_event_list,
    .turn_record = sq_turn_record,
    .turn_step = sq_turn_step,
    .turn_step_record = sq_turn_step_record,
    .turn_finish_events = sq_turn_finish_events,
    .usage_day = sq_usage_day,
    .usage_session = sq_usage_session,
    .checkout_create = sq_checkout_create,
    .checkout_get = sq_checkout_get,
    .checkout_list_after = sq_checkout_list_after,
    .checkout_update = sq_checkout_update,
    .order_create = sq_order_create,
    .stock_seed = sq_stock_seed,
    .order_update = sq_order_update,
    .outbox_add = sq_outbox_add,
    .outbox_claim = sq_outbox_claim,
    .outbox_finish = sq_outbox_finish,
    .outbox_release = sq_outbox_release,
    .outbox_holders = sq_outbox_holders,
    .outbox_depth = sq_outbox_depth,
    .outbox_get = sq_outbox_get,
    .instance_beat = sq_instance_beat,
    .instance_list = sq_instance_list,
    .instance_delete = sq_instance_delete,
    .stock_get = sq_stock_get,
    .address_save = sq_address_save,
    .address_list = sq_address_list,
    .address_list_after = sq_address_list_after,
    .address_reseal = sq_address_reseal,
    .order_get = sq_order_get,
    .idem_begin = sq_idem_begin,
    .idem_takeover = sq_idem_takeover,
    .idem_finish = sq_idem_finish,
    .idem_abandon = sq_idem_abandon,
    .idem_drop = sq_idem_drop,
    .audit_append = sq_audit_append,
    .audit_bump = sq_audit_bump,
    .audit_list = sq_audit_list,
};

