/* The SQLite backend's callers and their trail: principals, API keys (by
 * hash) and the append-only audit log. */
#include "store/sqlite_int.h"

#include "core/err.h"

/* ---- principals and API keys ---- */

static const struct col principal_cols[] = {
    COL(TEXT, struct store_principal, id),
    COL(TEXT, struct store_principal, name),
    COL(I64, struct store_principal, created_at),
};
static const struct row_map principal_rows = ROW_MAP(struct store_principal, principal_cols);

/* id, principal_id, hash, created_at, revoked_at, scopes (APIKEY_COLS) */
static const struct col apikey_cols[] = {
    COL(TEXT, struct store_apikey, id),         COL(TEXT, struct store_apikey, principal_id),
    COL(TEXT, struct store_apikey, hash),       COL(I64, struct store_apikey, created_at),
    COL(I64, struct store_apikey, revoked_at), COL(TEXT, struct store_apikey, scopes),
};
static const struct row_map apikey_rows = ROW_MAP(struct store_apikey, apikey_cols);

int sq_principal_create(void *b, struct store_principal *p)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    int rc = sq_write_one(q, ST_PRINCIPAL_INSERT, &changed, "tti", p->id, p->name, now);
    if (rc == 0)
        p->created_at = now;
    return rc;
}

int sq_principal_get(void *b, const char *id, struct store_principal **out)
{
    return sq_get(b, ST_PRINCIPAL_GET, &principal_rows, out, "t", id);
}

int sq_apikey_create(void *b, struct store_apikey *k)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_PRINCIPAL_EXISTS, &one, NULL, "t", k->principal_id);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_APIKEY_INSERT, NULL, NULL, "tttit", k->id, k->principal_id,
                    k->hash, now, k->scopes ? k->scopes : "");
    if ((rc = sq_writer_end(q, rc)) == 0) {
        k->created_at = now;
        k->revoked_at = 0;
    }
    return rc;
}

int sq_apikey_get_by_hash(void *b, const char *hash, struct store_apikey **out)
{
    return sq_get(b, ST_APIKEY_BY_HASH, &apikey_rows, out, "t", hash);
}

int sq_apikey_get(void *b, const char *id, struct store_apikey **out)
{
    return sq_get(b, ST_APIKEY_GET, &apikey_rows, out, "t", id);
}

int sq_apikey_revoke(void *b, const char *id)
{
    struct sq *q = b;
    return sq_write_found(q, ST_APIKEY_REVOKE, "ti", id, now_ms(q));
}

int sq_apikey_list(void *b, const char *principal_id, struct store_apikey **out, size_t *n)
{
    return principal_id ? sq_list(b, ST_APIKEY_LIST, &apikey_rows, out, n, "t", principal_id)
                        : sq_list(b, ST_APIKEY_LIST_ALL, &apikey_rows, out, n, "");
}

/* ---- audit ---- */

/* id, ts, principal, action, target, request_id, outcome, count */
static const struct col audit_cols[] = {
    COL(I64, struct store_audit, id),          COL(I64, struct store_audit, ts),
    COL(TEXT, struct store_audit, principal),  COL(TEXT, struct store_audit, action),
    COL(TEXT, struct store_audit, target),     COL(TEXT, struct store_audit, request_id),
    COL(TEXT, struct store_audit, outcome),    COL(I64, struct store_audit, count),
};
static const struct row_map audit_rows = ROW_MAP(struct store_audit, audit_cols);

static int audit_insert(struct sq *q, struct store_audit *e, int64_t now)
{
    int64_t id = 0, count = e->count > 0 ? e->count : 1;
#if SQ_PLAIN_WRITES /* the rowid, not RETURNING */
    int rc = sq_run(&q->writer, ST_AUDIT_INSERT, NULL, NULL, "ittttti", now, e->principal,
                    e->action, e->target, e->request_id, e->outcome, count);
    id = rc == 0 ? sqlite3_last_insert_rowid(q->writer.db) : 0;
#else
    int rc = sq_run(&q->writer, ST_AUDIT_INSERT, &id, NULL, "ittttti", now, e->principal,
                    e->action, e->target, e->request_id, e->outcome, count);
#endif
    if (rc == 0) {
        e->id = id;
        e->ts = now;
        e->count = count;
    }
    return rc;
}

int sq_audit_append(void *b, struct store_audit *e)
{
    struct sq *q = b;
    int rc = SQ_PLAIN_WRITES ? sq_writer_begin_one(q) : sq_writer_begin(q); /* one INSERT */
    return rc ? rc : sq_writer_end(q, audit_insert(q, e, now_ms(q)));
}

int sq_audit_bump(void *b, struct store_audit *e, int64_t since_ms)
{
    struct sq *q = b;
    int64_t now = now_ms(q), id = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    /* One row per burst: on PostgreSQL two replicas would both miss the
     * row the other is inserting (READ COMMITTED sees no uncommitted insert)
     * and both append; AUDIT_LOCK makes them take turns per burst (a
     * transaction advisory lock; a no-op on SQLite's one writer). */
    rc = sq_run(&q->writer, ST_AUDIT_LOCK, NULL, NULL, "ttt", e->principal, e->action,
                e->target);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_AUDIT_BUMP, &id, NULL, "tttii", e->principal, e->action,
                    e->target, since_ms, (int64_t)(e->count > 0 ? e->count : 1));
    if (rc == AGENTD_ENOTFOUND) /* no row of this burst yet */
        rc = audit_insert(q, e, now);
    else if (rc == 0)
        e->id = id;
    return sq_writer_end(q, rc);
}

int sq_audit_list(void *b, const struct store_audit_query *aq, struct store_audit **out,
                  size_t *n)
{
    return sq_list(b, ST_AUDIT_LIST, &audit_rows, out, n, "tii", aq->principal, aq->since_ms,
                   (int64_t)(aq->limit > 0 ? aq->limit : -1));
}
