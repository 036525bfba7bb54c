/* What the PostgreSQL backend's files share: the same helper API as
 * sqlite_int.h (connections, statement cache, run/fetch), on libpq. The
 * concern files sqlite_{auth,sessions,...}.c are compiled a second time
 * against this header (pg_auth.c, ...), so both backends run one logic;
 * the macros below give that second copy its own symbol names. */
#ifndef AGENTD_STORE_PG_INT_H
#define AGENTD_STORE_PG_INT_H
/* the concern files include sqlite_int.h: here that is this header */
#define AGENTD_STORE_SQLITE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store/backend.h"
#include "store/pg_sql.h"

/* BUSY_TIMEOUT_MS: PostgreSQL waits on row locks itself */
#define sq_address_list pgs_address_list
#define sq_address_save pgs_address_save
#define sq_apikey_create pgs_apikey_create
#define sq_apikey_get pgs_apikey_get
#define sq_apikey_get_by_hash pgs_apikey_get_by_hash
#define sq_apikey_list pgs_apikey_list
#define sq_apikey_revoke pgs_apikey_revoke
#define sq_audit_append pgs_audit_append
#define sq_audit_bump pgs_audit_bump
#define sq_audit_list pgs_audit_list
#define sq_backup pgs_backup
#define sq_checkout_create pgs_checkout_create
#define sq_checkout_get pgs_checkout_get
#define sq_checkout_list_after pgs_checkout_list_after
#define sq_checkout_update pgs_checkout_update
#define sq_checkpoint_list pgs_checkpoint_list
#define sq_close pgs_close
#define sq_conn_put pgs_conn_put
#define sq_create_private pgs_create_private
#define sq_event_append pgs_event_append
#define sq_event_list pgs_event_list
#define sq_fetch pgs_fetch
#define sq_get pgs_get
#define sq_idem_abandon pgs_idem_abandon
#define sq_idem_begin pgs_idem_begin
#define sq_idem_claim_done pgs_idem_claim_done
#define sq_idem_drop pgs_idem_drop
#define sq_idem_finish pgs_idem_finish
#define sq_idem_takeover pgs_idem_takeover
#define sq_insert_fresh pgs_insert_fresh
#define sq_instance_beat pgs_instance_beat
#define sq_instance_delete pgs_instance_delete
#define sq_instance_list pgs_instance_list
#define sq_list pgs_list
#define sq_make_parent_dirs pgs_make_parent_dirs
#define sq_message_append pgs_message_append
#define sq_message_insert pgs_message_insert
#define sq_message_list pgs_message_list
#define sq_message_tail pgs_message_tail
#define sq_meta_get pgs_meta_get
#define sq_meta_set pgs_meta_set
#define sq_open pgs_open
#define sq_order_create pgs_order_create
#define sq_order_get pgs_order_get
#define sq_order_update pgs_order_update
#define sq_outbox_add pgs_outbox_add
#define sq_outbox_claim pgs_outbox_claim
#define sq_outbox_depth pgs_outbox_depth
#define sq_outbox_finish pgs_outbox_finish
#define sq_outbox_get pgs_outbox_get
#define sq_outbox_holders pgs_outbox_holders
#define sq_outbox_insert pgs_outbox_insert
#define sq_outbox_release pgs_outbox_release
#define sq_ping pgs_ping
#define sq_principal_create pgs_principal_create
#define sq_principal_get pgs_principal_get
#define sq_purge_expired pgs_purge_expired
#define sq_quota_check pgs_quota_check
#define sq_read_begin pgs_read_begin
#define sq_read_end pgs_read_end
#define sq_reader_get pgs_reader_get
#define sq_run pgs_run
#define sq_schema_version pgs_schema_version
#define sq_session_create pgs_session_create
#define sq_session_delete_idle pgs_session_delete_idle
#define sq_session_get pgs_session_get
#define sq_session_insert pgs_session_insert
#define sq_session_list pgs_session_list
#define sq_session_rows pgs_session_rows
#define sq_session_touch pgs_session_touch
#define sq_session_update pgs_session_update
#define sq_stock_get pgs_stock_get
#define sq_stock_seed pgs_stock_seed
#define sq_task_accept pgs_task_accept
#define sq_task_create pgs_task_create
#define sq_task_get pgs_task_get
#define sq_task_list pgs_task_list
#define sq_task_list_owner pgs_task_list_owner
#define sq_task_update_if pgs_task_update_if
#define sq_turn_adopt pgs_turn_adopt
#define sq_turn_begin pgs_turn_begin
#define sq_turn_finish_events pgs_turn_finish_events
#define sq_turn_get pgs_turn_get
#define sq_turn_interrupt pgs_turn_interrupt
#define sq_turn_list_unfinished pgs_turn_list_unfinished
#define sq_turn_record pgs_turn_record
#define sq_turn_step pgs_turn_step
#define sq_turn_step_record pgs_turn_step_record
#define sq_usage_day pgs_usage_day
#define sq_usage_session pgs_usage_session
#define sq_vacuum pgs_vacuum
#define sq_write_found pgs_write_found
#define sq_write_one pgs_write_one
#define sq_writer_begin pgs_writer_begin
#define sq_writer_end pgs_writer_end

enum st {
#define X(name, sql) ST_##name,
    STATEMENTS(X)
#undef X
    ST_COUNT
};

/* One connection and the statements prepared on it; mu makes it one
 * thread's at a time. A connection found dead is reset on its next use,
 * not sooner than retry_at (the backoff while the server is away). */
struct conn {
    pthread_mutex_t mu;
    PGconn *db;
    unsigned char prepared[ST_COUNT];
    int64_t retry_at;  /* monotonic ms */
    int64_t backoff_ms;
};

/* The backend: one writer connection (this process's write transactions,
 * SERIALIZABLE, one at a time as with SQLite), a pool of readers. */
struct sq {
    struct conn writer;
    struct conn *readers;
    int nreaders;
    char *path; /* the conninfo URL */
    int64_t (*now)(void *ud);
    void *now_ud;
    int64_t session_ttl_ms;
    int64_t audit_retention_ms; /* 0 = keep */
    int quota_sessions, quota_idem; /* per owner / principal; 0 = unlimited */
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

/* ---- statements (pg.c) ---- */

/* fmt has one letter per parameter: t text (NULL binds NULL), i int64_t,
 * e int64_t expiry (0 binds NULL = never), d double, b blob as
 * (const void *, size_t). */

/* Runs a statement to the end. changes (may be NULL) gets the rows it
 * changed; val (may be NULL) gets column 0 of the first row, and a statement
 * that yields no row then answers AGENTD_ENOTFOUND. */
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

/* ---- connections (pg.c) ---- */

struct conn *sq_reader_get(struct sq *q);
void sq_conn_put(struct conn *c);
/* BEGIN IMMEDIATE on the writer, held until sq_writer_end. */
int sq_writer_begin(struct sq *q);
/* Commits if rc is 0, else rolls back; releases the writer. */
int sq_writer_end(struct sq *q, int rc);
/* Several reads that must see one snapshot; read_end also puts c back. */
int sq_read_begin(struct conn *c);
int sq_read_end(struct conn *c, int rc);

/* libpq's connection status as an AGENTD_E* (0 when usable). */
int pgs_conn_status(struct conn *c);
/* Applies the PostgreSQL migrations (pg_migrations.c) under an advisory
 * lock; *version = the schema version after. */
int pgs_migrate(PGconn *db, int *version, struct agentd_error *e);
int pgs_migrations_latest(void);

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

/* pg.c */
int sq_open(const struct store_options *opt, void **out, struct agentd_error *e);
void sq_close(void *b);
/* pg_maint.c */
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
/* sqlite_instances.c */
int sq_instance_beat(void *b, const struct store_instance *inst);
int sq_instance_list(void *b, struct store_instance **out, size_t *n);
int sq_instance_delete(void *b, const char *id);
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

extern const struct store_backend store_backend_pg;

#endif
