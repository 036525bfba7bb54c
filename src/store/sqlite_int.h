/* What the SQLite backend's files share: the connections, the statement
 * cache and its run/fetch helpers, and each concern file's entry points. */
#ifndef AGENTD_STORE_SQLITE_INT_H
#define AGENTD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/backend.h"
#include "store/sqlite_sql.h"

/* SQLite's own bounded wait on another process's lock; store.c retries the
 * whole operation a few times on top of it before answering AGENTD_EBUSY. */
#define BUSY_TIMEOUT_MS 1000

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
};

/* One write that rode another thread's commit (group commit, sqlite.c):
 * it waits for that commit and takes its result. */
struct sq_joined {
    struct sq_joined *next;
    int done, rc;
};

/* The backend: one writer, a pool of readers (none: reads use the writer). */
struct sq {
    struct conn writer;
    /* group commit: threads waiting for writer.mu; the writes done in the
     * open transaction that wait for its commit (list and count guarded by
     * writer.mu; done/rc by group_mu) */
    atomic_int writer_waiting;
    struct sq_joined *joined;
    int njoined;
    pthread_mutex_t group_mu;
    pthread_cond_t group_cv;
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
/* Several reads that must see one snapshot; read_end also puts c back. */
int sq_read_begin(struct conn *c);
int sq_read_end(struct conn *c, int rc);

/* Zero config: the first run creates the data directory (private to us). */
int sq_make_parent_dirs(const char *path, struct agentd_error *e);
/* Created here rather than by SQLite so the file, and the -wal and -shm
 * files SQLite later gives the same mode, are private (0600). */
int sq_create_private(const char *path, int truncate, struct agentd_error *e);

/* ---- shared between concern files ---- */

/* sqlite_sessions.c: a session's rows with seq > after_seq (messages,
 * events): the parent check and the list read one snapshot; the list is
 * written only on success. */
int sq_session_rows(struct sq *q, enum st id, const char *session_id, int64_t after_seq,
                    int limit, const struct row_map *m, void *outp, size_t *n);
/* sqlite_sessions.c, inside a write transaction: pushes a live session's
 * expiry (and sets its context unless NULL), else AGENTD_ENOTFOUND; inserts
 * a session; appends a message to its session (touching it), *seq = its seq. */
int sq_session_touch(struct sq *q, const char *id, const char *context, int64_t now);
int sq_session_insert(struct sq *q, const struct store_session *v, int64_t now);
int sq_message_insert(struct sq *q, const struct store_message *m, int64_t now, int64_t *seq);
/* sqlite_idem.c: the claim part of task_accept, inside its transaction:
 * *claimed = 1, or 0 with *existing = the live record that holds the key. */
int sq_idem_claim_done(struct sq *q, const struct store_task_accept *a, int64_t now,
                       int *claimed, struct store_idem **existing);

/* ---- the backend's entries (store/backend.h), by file ---- */

/* sqlite.c */
int sq_open(const struct store_options *opt, void **out, struct agentd_error *e);
void sq_close(void *b);
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
/* sqlite_maint.c */
int sq_ping(void *b, int probe_write);
int sq_backup(void *b, const char *path);
int sq_purge_expired(void *b, int batch_limit, int *n_deleted);
int sq_vacuum(void *b, int64_t *before, int64_t *after);
int sq_schema_version(void *b, int *version);
int sq_meta_get(void *b, const char *key, char **value);
int sq_meta_set(void *b, const char *key, const char *value);
/* sqlite_auth.c */
int sq_principal_create(void *b, struct store_principal *p);
int sq_principal_get(void *b, const char *id, struct store_principal **out);
int sq_apikey_create(void *b, struct store_apikey *k);
int sq_apikey_get_by_hash(void *b, const char *hash, struct store_apikey **out);
int sq_apikey_get(void *b, const char *id, struct store_apikey **out);
int sq_apikey_revoke(void *b, const char *id);
int sq_apikey_list(void *b, const char *principal_id, struct store_apikey **out, size_t *n);
int sq_audit_append(void *b, struct store_audit *e);
int sq_audit_bump(void *b, struct store_audit *e, int64_t since_ms);
int sq_audit_list(void *b, const struct store_audit_query *aq, struct store_audit **out,
                  size_t *n);
/* sqlite_sessions.c */
int sq_session_create(void *b, struct store_session *v);
int sq_session_get(void *b, const char *id, struct store_session **out);
int sq_session_update(void *b, const char *id, const char *context);
int sq_session_list(void *b, const char *owner, int64_t before_created, const char *before_id,
                    int limit, struct store_session **out, size_t *n);
int sq_session_delete_idle(void *b, const char *id, const char *owner);
int sq_message_append(void *b, struct store_message *m);
int sq_message_list(void *b, const char *session_id, int64_t after_seq, int limit,
                    struct store_message **out, size_t *n);
int sq_message_tail(void *b, const char *session_id, int limit, struct store_message **out,
                    size_t *n);
/* sqlite_tasks.c */
int sq_task_create(void *b, struct store_task *t);
int sq_task_get(void *b, const char *id, struct store_task **out);
int sq_task_update_if(void *b, const char *id, const char *state, const char *artifacts,
                      const char *old_state, const char *old_artifacts);
int sq_task_accept(void *b, struct store_task_accept *a, struct store_idem **existing);
int sq_task_list(void *b, const char *context_id, struct store_task **out, size_t *n);
int sq_task_list_owner(void *b, const struct store_task_query *q, struct store_task **out,
                       size_t *n);
/* sqlite_turns.c */
int sq_turn_begin(void *b, struct store_turn *t, int64_t lease_ms);
int sq_turn_interrupt(void *b, const char *session_id);
int sq_turn_adopt(void *b, const char *id, const char *from_instance, const char *to_instance);
int sq_turn_get(void *b, const char *id, struct store_turn **out);
int sq_turn_list_unfinished(void *b, const struct store_turn_scan *scan,
                            struct store_turn **out, size_t *n);
int sq_checkpoint_list(void *b, const char *turn_id, struct store_checkpoint **out, size_t *n);
int sq_event_append(void *b, struct store_event *v, size_t n);
int sq_event_list(void *b, const char *session_id, int64_t after_seq, int limit,
                  struct store_event **out, size_t *n);
int sq_turn_record(void *b, struct store_checkpoint *c, struct store_message *m,
                   struct store_event *ev, size_t nev);
int sq_turn_finish_events(void *b, const char *id, const char *state, struct store_event *ev,
                          size_t nev, const struct store_task_write *task, int *task_written);
int sq_turn_step(void *b, const char *turn_id, const char *principal, const char *model,
                 const struct store_usage *u, int *interrupt);
int sq_turn_step_record(void *b, const char *turn_id, const char *principal, const char *model,
                        const struct store_usage *u, int *interrupt, struct store_checkpoint *c,
                        struct store_message *m, struct store_event *ev, size_t nev);
int sq_usage_day(void *b, const char *principal, int64_t day, struct store_usage *out);
int sq_usage_session(void *b, const char *session_id, struct store_usage *out);
/* sqlite_commerce.c */
int sq_checkout_create(void *b, struct store_checkout *c);
int sq_checkout_get(void *b, const char *id, struct store_checkout **out);
int sq_checkout_list_after(void *b, const char *after, int limit, struct store_checkout **out,
                           size_t *n);
int sq_checkout_update(void *b, const char *id, int64_t expected_version, const char *status,
                       const char *document);
int sq_order_create(void *b, struct store_order *o, int64_t checkout_version,
                    const char *checkout_status, const char *checkout_document,
                    const struct store_stock_line *take, size_t ntake);
int sq_order_get(void *b, const char *id, struct store_order **out);
int sq_order_update(void *b, const char *id, int64_t expected_version, const char *document,
                    struct store_outbox *ev);
/* sqlite_outbox.c; sq_outbox_insert runs inside the caller's transaction */
int sq_outbox_insert(struct sq *q, struct store_outbox *ev, int64_t now);
int sq_outbox_add(void *b, struct store_outbox *ev);
int sq_outbox_claim(void *b, const char *kind, const char *instance, int64_t lease_ms, int limit,
                    struct store_outbox **out, size_t *n);
int sq_outbox_finish(void *b, const char *id, const char *instance, const char *state,
                     int64_t next_attempt_at, const char *last_error);
int sq_outbox_release(void *b, const char *instance, int *n);
int sq_outbox_holders(void *b, char ***out, size_t *n);
int sq_outbox_depth(void *b, const char *kind, int64_t *pending);
int sq_outbox_get(void *b, const char *id, struct store_outbox **out);
int sq_stock_seed(void *b, const struct store_stock_line *v, size_t n, int replace);
int sq_stock_get(void *b, const char *product_id, int64_t *quantity);
/* sqlite_addresses.c */
int sq_address_save(void *b, const char *id, const char *customer, const char *body);
int sq_address_list(void *b, const char *customer, int limit, struct store_address **out,
                    size_t *n);
/* sqlite_idem.c */
int sq_idem_begin(void *b, const char *principal, const char *key, const char *fingerprint,
                  const char *owner, int64_t expires_at, struct store_idem **existing);
int sq_idem_takeover(void *b, const char *principal, const char *key, const char *dead_owner,
                     const char *owner);
int sq_idem_finish(void *b, const char *principal, const char *key, int status,
                   const char *headers, const void *body, size_t body_len);
int sq_idem_abandon(void *b, const char *principal, const char *key);
int sq_idem_drop(void *b, const char *principal, const char *key);

#endif
