/* The SQLite backend's idempotency records: claim, finish, abandon, drop,
 * and the claim stored already done that an A2A accept makes. */
#include "store/sqlite_int.h"

#include <string.h>

#include "core/err.h"

/* principal, key, fingerprint, state, status, headers, body, created_at,
 * expires_at, owner */
static const struct col idem_cols[] = {
    COL(TEXT, struct store_idem, principal),
    COL(TEXT, struct store_idem, key),
    COL(TEXT, struct store_idem, fingerprint),
    COL(TEXT, struct store_idem, state),
    COL(INT, struct store_idem, status),
    COL(TEXT, struct store_idem, headers),
    COL_BLOB_LEN(struct store_idem, body, body_len),
    COL(I64, struct store_idem, created_at),
    COL(I64, struct store_idem, expires_at),
    COL(TEXT, struct store_idem, owner),
};
static const struct row_map idem_rows = ROW_MAP(struct store_idem, idem_cols);

/* Inside a write transaction: frees (principal, key) of an expired record,
 * or of a claim whose process died (it never finishes: its lease ran out). */
static int idem_drop_dead(struct sq *q, const char *principal, const char *key, int64_t now)
{
    int rc = sq_run(&q->writer, ST_IDEM_DROP_EXPIRED, NULL, NULL, "tti", principal, key, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_IDEM_DROP_STALE, NULL, NULL, "tti", principal, key,
                    now - STORE_IDEM_LEASE_MS);
    return rc;
}

/* Inside a write transaction, after an insert collided: the live record. */
static int idem_live(struct sq *q, const char *principal, const char *key, int64_t now,
                     struct store_idem **existing)
{
    struct store_idem *v = NULL;
    size_t nv = 0;
    int rc = sq_fetch(&q->writer, ST_IDEM_GET, &idem_rows, &v, &nv, "tti", principal, key, now);
    /* The insert just collided with a live row, yet none is there: on
     * PostgreSQL (READ COMMITTED, each statement its own snapshot) another
     * replica dropped it in between (an abandoned claim, a 5xx). Running the
     * whole claim again is the clean answer (store.c retries AGENTD_EBUSY);
     * under SQLite's one writer it cannot happen. */
    if (rc == 0 && nv == 0)
        rc = AGENTD_EBUSY;
    if (rc == 0)
        *existing = v;
    return rc;
}

int sq_idem_begin(void *b, const char *principal, const char *key, const char *fingerprint,
                  const char *owner, int64_t expires_at, struct store_idem **existing)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    struct store_idem *v = NULL;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = idem_drop_dead(q, principal, key, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_IDEM_INSERT, NULL, &changed, "tttiit", principal, key,
                    fingerprint, now, expires_at, owner);
    if (rc == 0 && !changed)
        rc = idem_live(q, principal, key, now, &v);
    else if (rc == 0) /* a new record: within the principal's quota, or rolled back */
        rc = sq_quota_check(q, ST_IDEM_COUNT_PRINCIPAL, principal, q->quota_idem);
    rc = sq_writer_end(q, rc);
    if (rc) {
        store_idem_free(v);
        return rc;
    }
    *existing = v;
    return changed ? 0 : AGENTD_EEXIST;
}

int sq_idem_takeover(void *b, const char *principal, const char *key, const char *dead_owner,
                     const char *owner)
{
    struct sq *q = b;
    return sq_write_found(q, ST_IDEM_TAKEOVER, "tttti", principal, key, dead_owner, owner,
                          now_ms(q));
}

int sq_idem_finish(void *b, const char *principal, const char *key, int status,
                   const char *headers, const void *body, size_t body_len)
{
    struct sq *q = b;
    return sq_write_found(q, ST_IDEM_FINISH, "ttitbi", principal, key, (int64_t)status, headers,
                          body, body_len, now_ms(q));
}

int sq_idem_abandon(void *b, const char *principal, const char *key)
{
    return sq_write_found(b, ST_IDEM_ABANDON, "tt", principal, key);
}

int sq_idem_drop(void *b, const char *principal, const char *key)
{
    return sq_write_found(b, ST_IDEM_DROP, "tt", principal, key);
}

static int idem_insert_done(struct sq *q, const struct store_task_accept *a, int64_t now,
                            int *claimed)
{
    return sq_run(&q->writer, ST_IDEM_INSERT_DONE, NULL, claimed, "tttbii", a->principal, a->key,
                  a->fingerprint, a->task->id, strlen(a->task->id), now, a->expires_at);
}

/* The claim part of task_accept (sqlite_tasks.c). */
int sq_idem_claim_done(struct sq *q, const struct store_task_accept *a, int64_t now,
                       int *claimed, struct store_idem **existing)
{
    /* a new key (the usual case) takes one statement; only a collision
     * looks for an expired or stale row to replace */
    int rc = idem_insert_done(q, a, now, claimed);
    if (rc == 0 && !*claimed) {
        rc = idem_drop_dead(q, a->principal, a->key, now);
        if (rc == 0)
            rc = idem_insert_done(q, a, now, claimed);
    }
    if (rc == 0 && !*claimed)
        rc = idem_live(q, a->principal, a->key, now, existing);
    else if (rc == 0)
        rc = sq_quota_check(q, ST_IDEM_COUNT_PRINCIPAL, a->principal, q->quota_idem);
    return rc;
}
