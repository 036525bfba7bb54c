/* The SQLite backend's A2A tasks: rows of a session, their compare-and-swap
 * update, and the one-transaction accept (messageId claim + context + task). */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- tasks ---- */

static int row_task(sqlite3_stmt *st, void *item)
{
    struct store_task *t = item;
    int oom = 0;
    t->id = sq_col_str(st, 0, &oom);
    t->context_id = sq_col_str(st, 1, &oom);
    t->owner = sq_col_str(st, 2, &oom);
    t->state = sq_col_str(st, 3, &oom);
    t->artifacts = sq_col_str(st, 4, &oom);
    t->created_at = sq_col_i64(st, 5);
    t->updated_at = sq_col_i64(st, 6);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_task_list_owner(void *b, const struct store_task_query *tq, struct store_task **out,
                              size_t *n)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    void *v;
    size_t nv;
    int rc = sq_fetch(c, ST_TASK_LIST_OWNER, sizeof **out, row_task, &v, &nv, "ttttiii", tq->owner,
                   tq->context_id, tq->state, tq->before_id, tq->before_updated, now_ms(q),
                   (int64_t)tq->limit);
    sq_conn_put(c);
    if (rc) {
        store_task_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int sq_task_create(void *b, struct store_task *t)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->context_id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_TASK_INSERT, NULL, NULL, "ttttti", t->id, t->context_id,
                 t->owner, t->state, t->artifacts, now);
    if ((rc = sq_writer_end(q, rc)) == 0)
        t->created_at = t->updated_at = now;
    return rc;
}

int sq_task_get(void *b, const char *id, struct store_task **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_TASK_GET, row_task, store_task_free, out, "ti", id, now_ms(q));
}

int sq_task_update(void *b, const char *id, const char *state, const char *artifacts)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_TASK_UPDATE, &changed, "ttti", id, state, artifacts, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

int sq_task_update_if(void *b, const char *id, const char *state, const char *artifacts,
                             const char *old_state, const char *old_artifacts)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_TASK_UPDATE_IF, &changed, "tttitt", id, state, artifacts, now_ms(q),
                       old_state, old_artifacts);
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
    int64_t now = now_ms(q), exp = session_expiry(q, now), one;
    int claimed = 0, changed = 0;
    struct store_idem *ex = NULL;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_idem_claim_done(q, a, now, &claimed, &ex);
    if (rc == 0 && claimed && ses) {
        rc = sq_run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", ses->id, ses->owner,
                 ses->context, now, exp);
        if (rc == AGENTD_EEXIST) { /* an expired session's id is free again */
            rc = sq_run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", ses->id, now);
            if (rc == 0)
                rc = sq_run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", ses->id,
                         ses->owner, ses->context, now, exp);
        }
    }
    if (rc == 0 && claimed && !a->old_state) {
        if (!ses) /* a context made just now is live */
            rc = sq_run(&q->writer, ST_SESSION_LIVE, &one, NULL, "ti", t->context_id, now);
        if (rc == 0)
            rc = sq_run(&q->writer, ST_TASK_INSERT, NULL, NULL, "ttttti", t->id, t->context_id,
                     t->owner, t->state, t->artifacts, now);
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
            ses->expires_at = exp;
        }
        if (!a->old_state)
            t->created_at = now;
        t->updated_at = now;
    }
    return rc;
}

int sq_task_list(void *b, const char *context_id, struct store_task **out, size_t *n)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    void *v;
    size_t nv;
    int rc = sq_fetch(c, ST_TASK_LIST, sizeof **out, row_task, &v, &nv, "ti", context_id,
                   now_ms(q));
    sq_conn_put(c);
    if (rc) {
        store_task_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

