/* The SQLite backend's callers and their trail: principals, API keys (by
 * hash) and the append-only audit log. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- principals and API keys ---- */

static int row_principal(sqlite3_stmt *st, void *item)
{
    struct store_principal *p = item;
    int oom = 0;
    p->id = sq_col_str(st, 0, &oom);
    p->name = sq_col_str(st, 1, &oom);
    p->created_at = sq_col_i64(st, 2);
    return oom ? AGENTD_ENOMEM : 0;
}

static int row_apikey(sqlite3_stmt *st, void *item)
{
    struct store_apikey *k = item;
    int oom = 0;
    k->id = sq_col_str(st, 0, &oom);
    k->principal_id = sq_col_str(st, 1, &oom);
    k->hash = sq_col_str(st, 2, &oom);
    k->created_at = sq_col_i64(st, 3);
    k->revoked_at = sq_col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

/* A single-row read: fetch into a one-item array, which is exactly the
 * heap struct store_x_free() expects. */
int sq_principal_create(void *b, struct store_principal *p)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_writer_end(q, sq_run(&q->writer, ST_PRINCIPAL_INSERT, NULL, NULL, "tti", p->id, p->name,
                           now));
    if (rc == 0)
        p->created_at = now;
    return rc;
}

int sq_principal_get(void *b, const char *id, struct store_principal **out)
{
    GET_ONE((struct sq *)b, ST_PRINCIPAL_GET, row_principal, store_principal_free, out, "t", id);
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
        rc = sq_run(&q->writer, ST_APIKEY_INSERT, NULL, NULL, "ttti", k->id, k->principal_id,
                 k->hash, now);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        k->created_at = now;
        k->revoked_at = 0;
    }
    return rc;
}

int sq_apikey_get_by_hash(void *b, const char *hash, struct store_apikey **out)
{
    GET_ONE((struct sq *)b, ST_APIKEY_BY_HASH, row_apikey, store_apikey_free, out, "t", hash);
}

/* A write whose only answer is whether it touched a row. */
int sq_apikey_revoke(void *b, const char *id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_APIKEY_REVOKE, &changed, "ti", id, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

int sq_apikey_list(void *b, const char *principal_id, struct store_apikey **out, size_t *n)
{
    struct conn *c = sq_reader_get(b);
    void *v;
    size_t nv;
    int rc = sq_fetch(c, ST_APIKEY_LIST, sizeof **out, row_apikey, &v, &nv, "t", principal_id);
    sq_conn_put(c);
    if (rc) {
        store_apikey_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}


/* ---- audit ---- */

int sq_audit_append(void *b, struct store_audit *e)
{
    struct sq *q = b;
    int64_t now = now_ms(q), id = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_writer_end(q, sq_run(&q->writer, ST_AUDIT_INSERT, &id, NULL, "ittttt", now,
                           e->principal, e->action, e->target, e->request_id, e->outcome));
    if (rc == 0) {
        e->id = id;
        e->ts = now;
    }
    return rc;
}

static int row_audit(sqlite3_stmt *st, void *item)
{
    struct store_audit *e = item;
    int oom = 0;
    e->id = sq_col_i64(st, 0);
    e->ts = sq_col_i64(st, 1);
    e->principal = sq_col_str(st, 2, &oom);
    e->action = sq_col_str(st, 3, &oom);
    e->target = sq_col_str(st, 4, &oom);
    e->request_id = sq_col_str(st, 5, &oom);
    e->outcome = sq_col_str(st, 6, &oom);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_audit_list(void *b, const char *principal, int limit, struct store_audit **out,
                         size_t *n)
{
    struct conn *c = sq_reader_get(b);
    int64_t lim = limit > 0 ? limit : -1;
    void *v;
    size_t nv;
    int rc = principal
                 ? sq_fetch(c, ST_AUDIT_LIST_PRINCIPAL, sizeof **out, row_audit, &v, &nv, "ti",
                         principal, lim)
                 : sq_fetch(c, ST_AUDIT_LIST_ALL, sizeof **out, row_audit, &v, &nv, "i", lim);
    sq_conn_put(c);
    if (rc) {
        store_audit_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

