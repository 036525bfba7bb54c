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
/* RETURNING and INSERT ... SELECT cost PostgreSQL no temporary table: keep
 * them whole (sqlite_int.h) */
#define SQ_PLAIN_WRITES 0
#define sq_address_list pgs_address_list
#define sq_address_list_after pgs_address_list_after
#define sq_address_reseal pgs_address_reseal
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
#define sq_writer_begin_one pgs_writer_begin /* no savepoints to spare */

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
 * READ COMMITTED, one at a time as with SQLite), a pool of readers. */
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
/* SQLite's batch holds the one writer, so its next write may take a turn
 * as still running (sqlite_int.h); PostgreSQL's writers run side by side:
 * nothing is taken as known, every record checks its turn. */
struct sq_running {
    const char *turn_id, *session_id;
    int64_t now;
    int touched;
};
static inline void sq_batch_note_running(struct sq *q, const struct sq_running *r)
{
    (void)q, (void)r;
}
static inline int sq_batch_running(struct sq *q, const char *turn_id, struct sq_running *r)
{
    (void)q, (void)turn_id, (void)r;
    return 0;
}
/* Several reads that must see one snapshot; read_end also puts c back. */
int sq_read_begin(struct conn *c);
int sq_read_end(struct conn *c, int rc);

/* libpq's connection status as an AGENTD_E* (0 when usable). */
int pgs_conn_status(struct conn *c);
/* Applies the PostgreSQL migrations (pg_migrations.c) under an advisory
 * lock; *version = the schema version after. */
int pgs_migrate(PGconn *db, int *version, struct agentd_error *e);
int pgs_migrations_latest(void);

#include "store/concerns.h"

extern const struct store_backend store_backend_pg;

#endif
