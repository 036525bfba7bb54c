/* The PostgreSQL backend's core (AGENTD_DB=postgres://...): libpq connections
 * (one writer behind a mutex plus a pool of readers), per-connection
 * prepared statements, reconnect with backoff, open/close, its vtable. */
#include "store/pg_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"

#define DEFAULT_READERS 4
#define MAX_PARAMS 12
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* libpq's type oids for the parameter letters (catalog/pg_type.h). */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
#define OID_FLOAT8 701

static const char *const st_sql[ST_COUNT] = {
#define X(name, sql) sql,
    STATEMENTS(X)
#undef X
};

/* ---- errors ---- */

/* A failed result's SQLSTATE as an AGENTD_E*. Serialization failures and
 * deadlocks are AGENTD_EBUSY: the statement rolled back, so store.c runs the
 * whole operation again, as after SQLite's busy timeout.
 *
 * Writes run READ COMMITTED (pg_sql.h BEGIN_IMMEDIATE): a row another
 * replica is updating is waited for, then re-read, so the compare-and-swap
 * updates, the claims (SKIP LOCKED) and the counters kept by upserts hold
 * without SERIALIZABLE's aborts (which, on one principal's counter rows,
 * failed ~10-20 % of the turns through two replicas). What a snapshot
 * cannot see is an insert still uncommitted elsewhere; a unique index
 * catches it, and for these three the loser runs again and then sees the
 * winner: the next message or event number of a session (max(seq) + 1 read
 * by both) and a session's one running turn (the retry finds it running:
 * AGENTD_ECONFLICT). Every other unique key is a real duplicate. */
static int sqlstate_status(const char *state, const char *constraint)
{
    if (!state)
        return AGENTD_EIO;
    if (strcmp(state, "23505") == 0) {
        if (constraint && (strcmp(constraint, "messages_pkey") == 0 ||
                           strcmp(constraint, "events_pkey") == 0 ||
                           strcmp(constraint, "turns_one_running") == 0))
            return AGENTD_EBUSY;
        return AGENTD_EEXIST;
    }
    if (strcmp(state, "23503") == 0)
        return AGENTD_ENOTFOUND;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
        strcmp(state, "55P03") == 0)
        return AGENTD_EBUSY;
    if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
        return AGENTD_EINVAL;
    if (strcmp(state, "53200") == 0)
        return AGENTD_ENOMEM;
    if (strcmp(state, "XX001") == 0 || strcmp(state, "XX002") == 0)
        return AGENTD_ECORRUPT;
    return AGENTD_EIO; /* connection (08), disk full (53100), shutdown (57P..)... */
}

static int result_status(PGresult *res)
{
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        return 0;
    default:
        if (!res)
            return AGENTD_EIO;
        return sqlstate_status(PQresultErrorField(res, PG_DIAG_SQLSTATE),
                               PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
    }
}

/* ---- connections ---- */

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs ("relation exists, skipping") are not ours to print */
}

int pgs_conn_status(struct conn *c)
{
    if (c->db && PQstatus(c->db) == CONNECTION_OK)
        return 0;
    /* a dead connection is reset, at most once per backoff period: while
     * the server is away each call fails fast instead of waiting to connect */
    int64_t now = clock_mono_ns() / 1000000;
    if (now < c->retry_at)
        return AGENTD_EIO;
    if (c->db)
        PQreset(c->db);
    memset(c->prepared, 0, sizeof c->prepared); /* a new session prepares again */
    if (c->db && PQstatus(c->db) == CONNECTION_OK) {
        c->backoff_ms = 0;
        c->retry_at = 0;
        return 0;
    }
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS)
        c->backoff_ms = BACKOFF_MAX_MS;
    c->retry_at = now + c->backoff_ms;
    return AGENTD_EIO;
}

static int in_transaction(struct conn *c)
{
    return c->db && PQtransactionStatus(c->db) != PQTRANS_IDLE &&
           PQtransactionStatus(c->db) != PQTRANS_UNKNOWN;
}

/* ---- statements ---- */

struct params {
    int n;
    Oid types[MAX_PARAMS];
    const char *values[MAX_PARAMS];
    int lengths[MAX_PARAMS];
    int formats[MAX_PARAMS];
    char num[MAX_PARAMS][32];
};

/* fmt has one letter per parameter: t text (NULL binds NULL), i int64_t,
 * e int64_t expiry (0 binds NULL = never), d double, b blob as
 * (const void *, size_t), sent binary. */
static int params_bind(struct params *p, const char *fmt, va_list ap)
{
    p->n = 0;
    for (; *fmt; fmt++) {
        if (p->n == MAX_PARAMS)
            return AGENTD_EINVAL;
        int i = p->n++;
        p->lengths[i] = 0;
        p->formats[i] = 0;
        switch (*fmt) {
        case 't':
            p->types[i] = OID_TEXT;
            p->values[i] = va_arg(ap, const char *);
            break;
        case 'i':
        case 'e': {
            int64_t v = va_arg(ap, int64_t);
            p->types[i] = OID_INT8;
            snprintf(p->num[i], sizeof p->num[i], "%lld", (long long)v);
            p->values[i] = *fmt == 'e' && v == 0 ? NULL : p->num[i];
            break;
        }
        case 'd':
            p->types[i] = OID_FLOAT8;
            snprintf(p->num[i], sizeof p->num[i], "%.17g", va_arg(ap, double));
            p->values[i] = p->num[i];
            break;
        case 'b': {
            const void *v = va_arg(ap, const void *);
            size_t len = va_arg(ap, size_t);
            if (len > INT_MAX)
                return AGENTD_EINVAL;
            p->types[i] = OID_BYTEA;
            p->values[i] = len ? v : "";
            p->lengths[i] = (int)len;
            p->formats[i] = 1;
            break;
        }
        default:
            return AGENTD_EINVAL;
        }
    }
    return 0;
}

/* Prepares (once per connection session, typed from the first call's
 * letters) and runs. */
static int exec_once(struct conn *c, enum st id, const struct params *p, PGresult **out)
{
    char name[16];
    snprintf(name, sizeof name, "s%d", (int)id);
    if (!c->prepared[id]) {
        PGresult *r = PQprepare(c->db, name, st_sql[id], p->n, p->types);
        int rc = result_status(r);
        PQclear(r);
        if (rc)
            return rc;
        c->prepared[id] = 1;
    }
    *out = PQexecPrepared(c->db, name, p->n, p->values, p->lengths, p->formats, 0);
    int rc = result_status(*out);
    if (rc) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

static int vexec(struct conn *c, enum st id, PGresult **out, const char *fmt, va_list ap)
{
    struct params p;
    int rc = params_bind(&p, fmt, ap);
    if (rc)
        return rc;
    int idle = !in_transaction(c);
    if ((rc = pgs_conn_status(c)) != 0)
        return rc;
    /* a write that may fail and be followed by another (an insert whose id
     * an expired row holds) keeps the transaction usable: PostgreSQL
     * aborts a whole transaction on any error, SQLite only the statement */
    int guard = !idle && id == ST_SESSION_INSERT;
    if (guard) {
        PGresult *r = PQexec(c->db, "SAVEPOINT stmt");
        rc = result_status(r);
        PQclear(r);
        if (rc)
            return rc;
    }
    rc = exec_once(c, id, &p, out);
    if (rc == AGENTD_EIO && idle && PQstatus(c->db) != CONNECTION_OK) {
        /* the connection died (a server restart while it was idle): one try
         * on a fresh one. Safe outside a transaction only, and there every
         * statement is a read or a BEGIN: writes always run inside one, so
         * a lost reply never hides a commit we would repeat. */
        c->retry_at = 0;
        if (pgs_conn_status(c) == 0)
            rc = exec_once(c, id, &p, out);
    }
    if (guard && PQstatus(c->db) == CONNECTION_OK) {
        PGresult *r = PQexec(c->db, rc ? "ROLLBACK TO SAVEPOINT stmt" : "RELEASE SAVEPOINT stmt");
        PQclear(r);
    }
    return rc;
}

static int vrun(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt,
                va_list ap)
{
    PGresult *res = NULL;
    int rc = vexec(c, id, &res, fmt, ap);
    if (rc)
        return rc;
    if (val) {
        if (PQntuples(res) == 0 || PQnfields(res) == 0)
            rc = AGENTD_ENOTFOUND;
        else
            *val = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    if (rc == 0 && changes) {
        const char *t = PQcmdTuples(res);
        *changes = *t ? atoi(t) : 0;
    }
    PQclear(res);
    return rc;
}

int pgs_run(struct conn *c, enum st id, int64_t *val, int *changes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vrun(c, id, val, changes, fmt, ap);
    va_end(ap);
    return rc;
}

/* Statement id in its own write transaction, after `drop` (ST_COUNT: none)
 * has removed the expired row that may hold drop_id ($1 id, $2 now). */
static int vwrite(struct sq *q, enum st drop, const char *drop_id, int64_t now, enum st id,
                  int *changed, const char *fmt, va_list ap)
{
    int rc = pgs_writer_begin(q);
    if (rc)
        return rc;
    if (drop != ST_COUNT)
        rc = pgs_run(&q->writer, drop, NULL, NULL, "ti", drop_id, now);
    if (rc == 0)
        rc = vrun(&q->writer, id, NULL, changed, fmt, ap);
    return pgs_writer_end(q, rc);
}

int pgs_quota_check(struct sq *q, enum st count, const char *principal, int cap)
{
    if (cap <= 0)
        return 0;
    int64_t n = 0; /* quota_usage is kept by triggers (migration 8): one lookup */
    int rc = pgs_run(&q->writer, count, &n, NULL, "t", principal);
    if (rc == AGENTD_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    return n > cap ? AGENTD_EQUOTA : 0;
}

int pgs_write_one(struct sq *q, enum st id, int *changed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, ST_COUNT, NULL, 0, id, changed, fmt, ap);
    va_end(ap);
    return rc;
}

int pgs_write_found(struct sq *q, enum st id, const char *fmt, ...)
{
    int changed = 0;
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, ST_COUNT, NULL, 0, id, &changed, fmt, ap);
    va_end(ap);
    return rc == 0 && !changed ? AGENTD_ENOTFOUND : rc;
}

int pgs_insert_fresh(struct sq *q, enum st drop, const char *drop_id, int64_t now, enum st id,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vwrite(q, drop, drop_id, now, id, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- rows ---- */

/* Column i of row r (text format) into its field. */
static int col_read(PGresult *res, int r, int i, const struct col *col, char *item)
{
    void *f = item + col->off;
    if (PQgetisnull(res, r, i))
        return 0; /* text and blobs stay NULL, numbers 0 */
    const char *v = PQgetvalue(res, r, i);
    switch (col->kind) {
    case COL_I64:
        *(int64_t *)f = strtoll(v, NULL, 10);
        return 0;
    case COL_INT:
        *(int *)f = (int)strtol(v, NULL, 10);
        return 0;
    case COL_DOUBLE:
        *(double *)f = strtod(v, NULL);
        return 0;
    case COL_TEXT:
        return (*(char **)f = strdup(v)) ? 0 : AGENTD_ENOMEM;
    case COL_BLOB: { /* bytea arrives hex-escaped; kept NUL-terminated */
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &len);
        char *copy = raw ? malloc(len + 1) : NULL;
        if (copy && len)
            memcpy(copy, raw, len);
        PQfreemem(raw);
        if (!copy)
            return AGENTD_ENOMEM;
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
    PGresult *res = NULL;
    int rc = vexec(c, id, &res, fmt, ap);
    if (rc)
        return rc;
    size_t nv = (size_t)PQntuples(res);
    char *v = NULL;
    if (nv && (size_t)PQnfields(res) < m->ncols)
        rc = AGENTD_EINVAL;
    if (rc == 0 && nv && !(v = calloc(nv, m->size)))
        rc = AGENTD_ENOMEM;
    for (size_t r = 0; rc == 0 && r < nv; r++)
        for (size_t i = 0; rc == 0 && i < m->ncols; i++)
            rc = col_read(res, (int)r, (int)i, &m->cols[i], v + r * m->size);
    PQclear(res);
    if (rc) {
        for (size_t r = 0; v && r < nv; r++)
            item_free(m, v + r * m->size);
        free(v);
        return rc;
    }
    memcpy(outp, &v, sizeof v);
    *n = nv;
    return 0;
}

int pgs_fetch(struct conn *c, enum st id, const struct row_map *m, void *outp, size_t *n,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, outp, n, fmt, ap);
    va_end(ap);
    return rc;
}

int pgs_list(struct sq *q, enum st id, const struct row_map *m, void *outp, size_t *n,
             const char *fmt, ...)
{
    struct conn *c = pgs_reader_get(q);
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, outp, n, fmt, ap);
    va_end(ap);
    pgs_conn_put(c);
    return rc;
}

int pgs_get(struct sq *q, enum st id, const struct row_map *m, void *outp, const char *fmt, ...)
{
    char *v = NULL;
    size_t n = 0;
    struct conn *c = pgs_reader_get(q);
    va_list ap;
    va_start(ap, fmt);
    int rc = vfetch(c, id, m, &v, &n, fmt, ap);
    va_end(ap);
    pgs_conn_put(c);
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

/* ---- connections: readers, the writer, batches ---- */

struct conn *pgs_reader_get(struct sq *q)
{
    if (q->nreaders == 0) {
        pthread_mutex_lock(&q->writer.mu);
        return &q->writer;
    }
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

void pgs_conn_put(struct conn *c) { pthread_mutex_unlock(&c->mu); }

static int writer_sql(struct sq *q, const char *sql)
{
    if (PQstatus(q->writer.db) != CONNECTION_OK)
        return AGENTD_EIO;
    PGresult *r = PQexec(q->writer.db, sql);
    int rc = result_status(r);
    PQclear(r);
    return rc;
}

/* The batch this thread has open (store_batch_begin), as in sqlite.c: its
 * writes join one transaction, each in a savepoint of its own. */
static _Thread_local struct sq *tl_batch;
static _Thread_local int tl_held;
static _Thread_local int tl_bare;

int pgs_writer_begin(struct sq *q)
{
    if (tl_batch == q) {
        if (!tl_held) {
            pthread_mutex_lock(&q->writer.mu);
            tl_held = 1;
        }
        if (!in_transaction(&q->writer)) {
            tl_bare = 1;
            int rc = pgs_run(&q->writer, ST_BEGIN_IMMEDIATE, NULL, NULL, "");
            if (rc) {
                tl_held = tl_bare = 0;
                pthread_mutex_unlock(&q->writer.mu);
            }
            return rc;
        }
        tl_bare = 0;
        return pgs_run(&q->writer, ST_SAVEPOINT_OP, NULL, NULL, "");
    }
    pthread_mutex_lock(&q->writer.mu);
    int rc = pgs_run(&q->writer, ST_BEGIN_IMMEDIATE, NULL, NULL, "");
    if (rc)
        pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

int pgs_writer_end(struct sq *q, int rc)
{
    if (tl_batch == q && tl_bare) {
        tl_bare = 0;
        if (rc == 0)
            return 0;
        if (in_transaction(&q->writer))
            writer_sql(q, "ROLLBACK");
        tl_held = 0;
        pthread_mutex_unlock(&q->writer.mu);
        return rc;
    }
    if (tl_batch == q) {
        if (rc == 0)
            rc = pgs_run(&q->writer, ST_RELEASE_OP, NULL, NULL, "");
        if (rc && in_transaction(&q->writer)) {
            writer_sql(q, "ROLLBACK TO op");
            writer_sql(q, "RELEASE op");
        }
        return rc;
    }
    if (rc == 0)
        rc = pgs_run(&q->writer, ST_COMMIT, NULL, NULL, "");
    if (rc && in_transaction(&q->writer))
        writer_sql(q, "ROLLBACK");
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

static int pgs_batch_begin(void *b)
{
    struct sq *q = b;
    if (q->nreaders == 0 || tl_batch)
        return 0;
    tl_batch = q;
    return 1;
}

static int pgs_batch_open(void *b) { return tl_batch == b; }

static int pgs_batch_end(void *b)
{
    struct sq *q = b;
    if (tl_batch != q)
        return 0;
    tl_batch = NULL;
    tl_bare = 0;
    if (!tl_held)
        return 0;
    int rc = 0;
    if (in_transaction(&q->writer))
        rc = pgs_run(&q->writer, ST_COMMIT, NULL, NULL, "");
    if (rc && in_transaction(&q->writer))
        writer_sql(q, "ROLLBACK");
    tl_held = 0;
    pthread_mutex_unlock(&q->writer.mu);
    return rc;
}

/* Several reads that must see one snapshot: REPEATABLE READ, read only. */
int pgs_read_begin(struct conn *c) { return pgs_run(c, ST_BEGIN, NULL, NULL, ""); }

int pgs_read_end(struct conn *c, int rc)
{
    if (in_transaction(c) && PQstatus(c->db) == CONNECTION_OK) {
        PGresult *r = PQexec(c->db, "COMMIT");
        PQclear(r);
    }
    pgs_conn_put(c);
    return rc;
}

/* ---- open, close ---- */

static void conn_close(struct conn *c)
{
    if (c->db)
        PQfinish(c->db);
    c->db = NULL;
    pthread_mutex_destroy(&c->mu);
}

/* The URL's password is a secret: messages name the host and database only. */
static int conn_open(struct conn *c, const char *url, struct agentd_error *e)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->db = PQconnectdb(url);
    if (!c->db)
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    PQsetNoticeProcessor(c->db, notice_ignore, NULL);
    if (PQstatus(c->db) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", PQerrorMessage(c->db));
        why[strcspn(why, "\n")] = 0;
        agentd_fail(e, AGENTD_EIO, NULL, NULL,
                    "cannot connect to PostgreSQL database %s on %s:%s: %s",
                    PQdb(c->db) ? PQdb(c->db) : "?", PQhost(c->db) ? PQhost(c->db) : "?",
                    PQport(c->db) ? PQport(c->db) : "?", why);
        return AGENTD_EIO;
    }
    return 0;
}

void pgs_close(void *b)
{
    struct sq *q = b;
    if (!q)
        return;
    for (int i = 0; i < q->nreaders; i++)
        conn_close(&q->readers[i]);
    free(q->readers);
    conn_close(&q->writer);
    free(q->path);
    free(q);
}

int pgs_open(const struct store_options *opt, void **out, struct agentd_error *e)
{
    char *why = NULL;
    PQconninfoOption *parsed = PQconninfoParse(opt->url, &why);
    if (!parsed) { /* libpq's message quotes no password */
        char msg[200];
        snprintf(msg, sizeof msg, "%s", why ? why : "out of memory");
        msg[strcspn(msg, "\n")] = 0;
        PQfreemem(why);
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "invalid PostgreSQL URL in AGENTD_DB: %s",
                           msg);
    }
    PQconninfoFree(parsed);
    struct sq *q = calloc(1, sizeof *q);
    if (!q || !(q->path = strdup(opt->url))) {
        free(q);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    }
    q->now = opt->now;
    q->now_ud = opt->now_ud;
    q->session_ttl_ms = opt->session_ttl_ms > 0 ? opt->session_ttl_ms : 0;
    q->audit_retention_ms = opt->audit_retention_ms > 0 ? opt->audit_retention_ms : 0;
    q->quota_sessions = opt->quota_sessions > 0 ? opt->quota_sessions : 0;
    q->quota_idem = opt->quota_idempotency_keys > 0 ? opt->quota_idempotency_keys : 0;
    int rc = conn_open(&q->writer, q->path, e);
    int version = 0;
    if (rc == 0)
        rc = pgs_migrate(q->writer.db, &version, e);
    int n = opt->readers == 0 ? DEFAULT_READERS : opt->readers < 0 ? 0 : opt->readers;
    if (rc == 0 && n && !(q->readers = calloc((size_t)n, sizeof *q->readers)))
        rc = agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    for (; rc == 0 && q->nreaders < n; q->nreaders++)
        if ((rc = conn_open(&q->readers[q->nreaders], q->path, e)) != 0)
            conn_close(&q->readers[q->nreaders]);
    if (rc) {
        pgs_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

const struct store_backend store_backend_pg = {
#define E(name) .name = pgs_##name,
    E(open) E(close) E(ping) E(backup) E(purge_expired) E(vacuum) E(schema_version)
    E(meta_get) E(meta_set) E(principal_create) E(principal_get) E(apikey_create)
    E(apikey_get_by_hash) E(apikey_get) E(apikey_revoke) E(apikey_list) E(session_create)
    E(session_get) E(session_update) E(session_list) E(session_delete_idle) E(message_append)
    E(message_list) E(message_tail) E(task_create) E(task_get) E(task_update_if) E(task_accept)
    E(task_list) E(task_list_owner) E(turn_begin) E(turn_interrupt) E(turn_adopt) E(turn_get)
    E(turn_list_unfinished) E(checkpoint_list) E(event_append) E(event_list) E(turn_record)
    E(turn_finish_events) E(turn_step) E(turn_step_record) E(usage_day) E(usage_session)
    E(checkout_create) E(checkout_get) E(checkout_update) E(checkout_list_after)
    E(order_create) E(stock_seed) E(stock_get) E(address_save) E(address_list)
    E(address_list_after) E(address_reseal) E(order_get)
    E(order_update) E(outbox_add) E(outbox_claim) E(outbox_finish) E(outbox_release)
    E(outbox_holders) E(outbox_depth) E(outbox_get) E(instance_beat) E(instance_list)
    E(instance_delete) E(idem_begin) E(idem_takeover)
    E(idem_finish) E(idem_abandon) E(idem_drop) E(audit_append) E(audit_bump) E(audit_list)
#undef E
    .batch_begin = pgs_batch_begin,
    .batch_open = pgs_batch_open,
    .batch_end = pgs_batch_end,
};
