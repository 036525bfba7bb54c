/* The SQLite backend's idempotency records: claim, finish, abandon, drop,
 * and the claim stored already done that an A2A accept makes. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- idempotency ---- */

static int row_idem(sqlite3_stmt *st, void *item)
{
    struct store_idem *r = item;
    int oom = 0;
    r->principal = sq_col_str(st, 0, &oom);
    r->key = sq_col_str(st, 1, &oom);
    r->fingerprint = sq_col_str(st, 2, &oom);
    r->state = sq_col_str(st, 3, &oom);
    r->status = (int)sq_col_i64(st, 4);
    r->headers = sq_col_str(st, 5, &oom);
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
        const void *p = sqlite3_column_blob(st, 6);
        size_t len = (size_t)sqlite3_column_bytes(st, 6);
        if ((r->body = malloc(len + 1)) != NULL) {
            if (len)
                memcpy(r->body, p, len);
            r->body[len] = 0;
            r->body_len = len;
        } else {
            oom = 1;
        }
    }
    r->created_at = sq_col_i64(st, 7);
    r->expires_at = sq_col_i64(st, 8);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_idem_begin(void *b, const char *principal, const char *key, const char *fingerprint,
                         int64_t expires_at, struct store_idem **existing)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    void *v = NULL;
    size_t nv = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_IDEM_DROP_EXPIRED, NULL, NULL, "tti", principal, key, now);
    if (rc == 0) /* a claim whose process died never finishes: its lease ran out */
        rc = sq_run(&q->writer, ST_IDEM_DROP_STALE, NULL, NULL, "tti", principal, key,
                 now - STORE_IDEM_LEASE_MS);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_IDEM_INSERT, NULL, &changed, "tttii", principal, key,
                 fingerprint, now, expires_at);
    if (rc == 0 && !changed) {
        rc = sq_fetch(&q->writer, ST_IDEM_GET, sizeof **existing, row_idem, &v, &nv, "tti",
                   principal, key, now);
        if (rc == 0 && nv == 0) /* cannot be: the insert just collided with a live row */
            rc = AGENTD_ECORRUPT;
    }
    rc = sq_writer_end(q, rc);
    if (rc) {
        store_idem_free(v);
        return rc;
    }
    *existing = v;
    return changed ? 0 : AGENTD_EEXIST;
}

int sq_idem_finish(void *b, const char *principal, const char *key, int status,
                          const char *headers, const void *body, size_t body_len)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_IDEM_FINISH, &changed, "ttitbi", principal, key, (int64_t)status,
                       headers, body, body_len, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

int sq_idem_abandon(void *b, const char *principal, const char *key)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_IDEM_ABANDON, &changed, "tt", principal, key);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

int sq_idem_drop(void *b, const char *principal, const char *key)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_IDEM_DROP, &changed, "tt", principal, key);
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}


/* The claim part of task_accept (sqlite_tasks.c). */
int sq_idem_claim_done(struct sq *q, const struct store_task_accept *a, int64_t now,
                        int *claimed, struct store_idem **existing)
{
    void *v = NULL;
    size_t nv = 0;
    /* a new key (the usual case) takes one statement; only a collision
     * looks for an expired or stale row to replace */
    int rc = sq_run(&q->writer, ST_IDEM_INSERT_DONE, NULL, claimed, "tttbii", a->principal, a->key,
                 a->fingerprint, a->task->id, strlen(a->task->id), now, a->expires_at);
    if (rc == 0 && !*claimed) {
        rc = sq_run(&q->writer, ST_IDEM_DROP_EXPIRED, NULL, NULL, "tti", a->principal, a->key, now);
        if (rc == 0) /* a claim whose process died never finishes: its lease ran out */
            rc = sq_run(&q->writer, ST_IDEM_DROP_STALE, NULL, NULL, "tti", a->principal, a->key,
                     now - STORE_IDEM_LEASE_MS);
        if (rc == 0)
            rc = sq_run(&q->writer, ST_IDEM_INSERT_DONE, NULL, claimed, "tttbii", a->principal,
                     a->key, a->fingerprint, a->task->id, strlen(a->task->id), now,
                     a->expires_at);
    }
    if (rc == 0 && !*claimed) {
        rc = sq_fetch(&q->writer, ST_IDEM_GET, sizeof **existing, row_idem, &v, &nv, "tti",
                   a->principal, a->key, now);
        if (rc == 0 && nv == 0) /* cannot be: the insert just collided with a live row */
            rc = AGENTD_ECORRUPT;
    }
    if (rc == 0)
        *existing = v;
    else
        store_idem_free(v);
    return rc;
}

