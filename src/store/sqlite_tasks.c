/* The SQLite backend's A2A tasks: rows of a session, their compare-and-swap
 * update, and the one-transaction accept (messageId claim + context + task). */
#include "store/sqlite_int.h"

#include "core/err.h"

/* id, context_id, owner, state, artifacts, created_at, updated_at */
static const struct col task_cols[] = {
    COL(TEXT, struct store_task, id),         COL(TEXT, struct store_task, context_id),
    COL(TEXT, struct store_task, owner),      COL(TEXT, struct store_task, state),
    COL(TEXT, struct store_task, artifacts),  COL(I64, struct store_task, created_at),
    COL(I64, struct store_task, updated_at),
};
static const struct row_map task_rows = ROW_MAP(struct store_task, task_cols);

/* Inside a write transaction: a new task of a live context. */
static int task_insert(struct sq *q, const struct store_task *t, int check_context, int64_t now)
{
    int64_t one;
    int rc = check_context ? sq_run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti",
                                    t->context_id, now)
                           : 0;
    if (rc == 0)
        rc = sq_run(&q->writer, ST_TASK_INSERT, NULL, NULL, "ttttti", t->id, t->context_id,
                    t->owner, t->state, t->artifacts, now);
    return rc;
}

int sq_task_list_owner(void *b, const struct store_task_query *tq, struct store_task **out,
                       size_t *n)
{
    struct sq *q = b;
    return sq_list(q, ST_TASK_LIST_OWNER, &task_rows, out, n, "ttttiii", tq->owner,
                   tq->context_id, tq->state, tq->before_id, tq->before_updated, now_ms(q),
                   (int64_t)tq->limit);
}

int sq_task_list(void *b, const char *context_id, struct store_task **out, size_t *n)
{
    struct sq *q = b;
    return sq_list(q, ST_TASK_LIST, &task_rows, out, n, "ti", context_id, now_ms(q));
}

int sq_task_create(void *b, struct store_task *t)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    if ((rc = sq_writer_end(q, task_insert(q, t, 1, now))) == 0)
        t->created_at = t->updated_at = now;
    return rc;
}

int sq_task_get(void *b, const char *id, struct store_task **out)
{
    struct sq *q = b;
    return sq_get(q, ST_TASK_GET, &task_rows, out, "ti", id, now_ms(q));
}

int sq_task_update_if(void *b, const char *id, const char *state, const char *artifacts,
                      const char *old_state, const char *old_artifacts)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_TASK_UPDATE_IF, &changed, "tttitt", id, state, artifacts,
                          now_ms(q), old_state, old_artifacts);
    if (rc || changed)
        return rc;
    /* nothing changed: the row moved on, or there is no live row */
    struct store_task *t = NULL;
    rc = sq_task_get(b, id, &t);
    store_task_free(t);
    return rc ? rc : AGENTD_ECONFLICT;
}

int sq_task_accept(void *b, struct store_task_accept *a, struct store_idem **existing)
{
    struct sq *q = b;
    struct store_session *ses = a->session;
    struct store_task *t = a->task;
    int64_t now = now_ms(q);
    int claimed = 0, changed = 0;
    struct store_idem *ex = NULL;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_idem_claim_done(q, a, now, &claimed, &ex);
    if (rc == 0 && claimed && ses) {
        rc = sq_session_insert(q, ses, now);
        if (rc == AGENTD_EEXIST) { /* an expired session's id is free again */
            rc = sq_run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", ses->id, now);
            if (rc == 0)
                rc = sq_session_insert(q, ses, now);
        }
    }
    if (rc == 0 && claimed && !a->old_state) {
        rc = task_insert(q, t, !ses, now); /* a context made just now is live */
    } else if (rc == 0 && claimed) {
        rc = sq_run(&q->writer, ST_TASK_UPDATE_IF, NULL, &changed, "tttitt", t->id, t->state,
                    t->artifacts, now, a->old_state, a->old_artifacts);
        if (rc == 0 && !changed)
            rc = AGENTD_ECONFLICT; /* moved on or gone: the caller reads it again */
    }
    /* a taken key writes nothing: its expired or stale row stays until a
     * claim that wins drops it */
    rc = sq_writer_end(q, rc == 0 && !claimed ? AGENTD_EEXIST : rc);
    if (rc == AGENTD_EEXIST && !claimed) {
        *existing = ex;
        return rc;
    }
    store_idem_free(ex);
    if (rc == 0) {
        if (ses) {
            ses->created_at = ses->updated_at = now;
            ses->expires_at = session_expiry(q, now);
        }
        if (!a->old_state)
            t->created_at = now;
        t->updated_at = now;
    }
    return rc;
}
