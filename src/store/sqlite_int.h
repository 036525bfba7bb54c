/* What the SQLite backend's files share: the connections, the statement
 * cache and its run/fetch helpers, and each concern file's entry points. */
#ifndef AGENTD_STORE_SQLITE_INT_H
#define AGENTD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct metric_child;

#include "store/backend.h"
#include "store/sqlite_sql.h"

/* SQLite's own bounded wait on another process's lock; store.c retries the
 * whole operation a few times on top of it before answering AGENTD_EBUSY. */
#define BUSY_TIMEOUT_MS 1000

/* SQLite builds and drops a temporary B-tree (a pager of its own, zeroed
 * pages) on every run of a statement with RETURNING or an INSERT ... SELECT
 * from its own table: ~20 % of a /chat turn's instructions. The concern
 * files split those in two here (a read, then a plain write, under the
 * writer the caller holds); pg_int.h sets 0: PostgreSQL keeps them whole,
 * one round trip. */
#define SQ_PLAIN_WRITES 1

enum st {
#define X(name, sql) ST_##name,
    STATEMENTS(X)
#undef X
    ST_COUNT
};

/* One connection and its prepared statements; mu makes it one thread's at
 * a time. */
struct conn {
    pthread_mutex_t mu;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct metric_child *statements; /* the writer's: statements it ran; readers NULL */
};

/* One write that rode another thread's commit (group commit, sqlite.c):
 * it waits for that commit and takes its result. Each waiter sleeps on a
 * semaphore of its own: a shared condition variable woke the whole group at
 * once to fight over its mutex (2.7 % of agentd's CPU in futex waits at
 * 50 connections and 16 workers). */
struct sq_joined {
    struct sq_joined *next;
    int rc;
    sem_t done;
};

/* The backend: one writer, a pool of readers (none: reads use the writer). */
struct sq {
    struct conn writer;
    /* group commit: threads waiting for writer.mu; the writes done in the
     * open transaction that wait for its commit (list and count guarded by
     * writer.mu; rc handed over by the waiter's semaphore) */
    atomic_int writer_waiting;
    struct sq_joined *joined;
    int njoined;
    struct conn *readers;
    int nreaders;
    char *path;
    int64_t (*now)(void *ud);
    void *now_ud;
    int64_t session_ttl_ms;
    int64_t audit_retention_ms; /* 0 = keep */
    int quota_sessions, quota_idem; /* per owner / principal; 0 = unlimited */
    struct sq_ckpt *ckpt; /* the background WAL checkpointer (sqlite_ckpt.c) */
};

static inline int64_t now_ms(const struct sq *q) { return q->now(q->now_ud); }

static inline int64_t session_expiry(const struct sq *q, int64_t now)
{
    return q->session_ttl_ms ? now + q->session_ttl_ms : 0;
}

/* Inside a write transaction, after a row of principal was inserted, with
 * `count` the statement reading its quota_usage row (?1 = principal):
 * AGENTD_EQUOTA when the principal now holds more than cap rows (the caller's transaction rolls
 * back, so nothing is stored), else 0. cap 0 = unlimited. */
int sq_quota_check(struct sq *q, enum st count, const char *principal, int cap);

/* ---- statements (sqlite.c) ---- */

/* fmt has one letter per parameter: t text (NULL binds NULL), i int64_t,
 * e int64_t expiry (0 binds NULL = never), d double, b blob as
 * (const void *, size_t). */

/* Runs a statement to the end. changes (may be NULL) gets the rows it
 * changed; val (may be NULL) gets column 0 of the first row, and a statement
 * that yields no row then answers AGENTD_ENOTFOUND. */
/* The writer connection, exclusively (plain: no group transaction left
 * open; VACUUM and reads through the writer), and its release. */
void sq_writer_lock_plain(struct sq *q);
void sq_writer_unlock(struct sq *q);

int sq_run(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt, ...);

/* How a query's rows become structs: column i of the row goes to field
 * cols[i] of an item of `size` bytes. Text and blobs are copied (SQL NULL
 * stays NULL); a blob is NUL-terminated and its length set at len_off. */
enum col_kind { COL_TEXT, COL_I64, COL_INT, COL_DOUBLE, COL_BLOB };
struct col {
    enum col_kind kind;
    size_t off, len_off;
};
struct row_map {
    size_t size;
    size_t ncols;
    const struct col *cols;
};
#define COL(kind, type, field) { COL_##kind, offsetof(type, field), 0 }
#define COL_BLOB_LEN(type, field, len) { COL_BLOB, offsetof(type, field), offsetof(type, len) }
#define ROW_MAP(type, cols) { sizeof(type), sizeof(cols) / sizeof((cols)[0]), (cols) }

/* Runs a query on c and collects every row into a malloc'd array of items:
 * *(T **)outp and *n, written only on success (on failure what was built
 * is freed). No row: NULL and 0. */
int sq_fetch(struct conn *c, enum st id, const struct row_map *m, void *outp, size_t *n,
             const char *fmt, ...);
/* sq_fetch on a reader connection. */
int sq_list(struct sq *q, enum st id, const struct row_map *m, void *outp, size_t *n,
            const char *fmt, ...);
/* A single-row read on a reader: *(T **)outp = one heap item (what
 * store_x_free() expects), or AGENTD_ENOTFOUND. */
int sq_get(struct sq *q, enum st id, const struct row_map *m, void *outp, const char *fmt, ...);

/* A write in its own transaction; *changed = the rows it touched. */
int sq_write_one(struct sq *q, enum st id, int *changed, const char *fmt, ...);
/* The same, AGENTD_ENOTFOUND when it touched no row. */
int sq_write_found(struct sq *q, enum st id, const char *fmt, ...);
/* An insert whose id an expired row may still hold (a session, a
 * checkout): in one write transaction, drop (?1 drop_id, ?2 now) removes
 * that row first, so the id is free again even before the purge. */
int sq_insert_fresh(struct sq *q, enum st drop, const char *drop_id, int64_t now, enum st id,
                    const char *fmt, ...);

/* ---- connections (sqlite.c) ---- */

struct conn *sq_reader_get(struct sq *q);
void sq_conn_put(struct conn *c);
/* BEGIN IMMEDIATE on the writer, held until sq_writer_end. */
int sq_writer_begin(struct sq *q);
/* Commits if rc is 0, else rolls back; releases the writer. */
int sq_writer_end(struct sq *q, int rc);
/* sq_writer_begin for a write of exactly one statement (no savepoint
 * inside a batch's open transaction). */
int sq_writer_begin_one(struct sq *q);
/* What the write that just ended in this thread's batch left known of a
 * running turn: it is live, running and heartbeat at now, in session_id
 * (NULL: no session checked), which that write touched at now when
 * touched is 1. The batch's next write only may take it as known, and
 * writes at the same now (sq_batch_running): the batch holds the writer,
 * so nobody else can end, expire or stop the turn in between, and any
 * other write of the batch in between drops it. Outside a batch, nothing. */
struct sq_running {
    const char *turn_id, *session_id;
    int64_t now;
    int touched;
};
void sq_batch_note_running(struct sq *q, const struct sq_running *r);
/* Inside a write: 1 and *r when the batch's write just before this one
 * noted turn_id running (r's strings live until the batch's next write). */
int sq_batch_running(struct sq *q, const char *turn_id, struct sq_running *r);
/* Several reads that must see one snapshot; read_end also puts c back. */
int sq_read_begin(struct conn *c);
int sq_read_end(struct conn *c, int rc);

/* Zero config: the first run creates the data directory (private to us). */
int sq_make_parent_dirs(const char *path, struct agentd_error *e);
/* Created here rather than by SQLite so the file, and the -wal and -shm
 * files SQLite later gives the same mode, are private (0600). */
int sq_create_private(const char *path, int truncate, struct agentd_error *e);

/* sqlite_ckpt.c: the writer stops autocheckpointing; a thread of its own
 * checkpoints (PASSIVE) once the WAL holds soft_pages, and the commit that
 * takes it past hard_pages checkpoints (TRUNCATE) itself. 0: defaults. */
int sq_ckpt_start(struct sq *q, int soft_pages, int hard_pages, enum store_sync sync,
                  struct agentd_error *e);
/* With the writer held: a TRUNCATE checkpoint on it, after any background
 * one (VACUUM's). An SQLite status. */
int sq_ckpt_truncate(struct sq *q);
/* Stops the thread and closes its connection; before the writer closes. */
void sq_ckpt_stop(struct sq *q);

#include "store/concerns.h"

#endif
