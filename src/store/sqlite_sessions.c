/* The SQLite backend's conversations: sessions (with listing and idle
 * deletion) and their messages. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- sessions and messages ---- */

static int row_session(sqlite3_stmt *st, void *item)
{
    struct store_session *v = item;
    int oom = 0;
    v->id = sq_col_str(st, 0, &oom);
    v->owner = sq_col_str(st, 1, &oom);
    v->context = sq_col_str(st, 2, &oom);
    v->created_at = sq_col_i64(st, 3);
    v->updated_at = sq_col_i64(st, 4);
    v->expires_at = sq_col_i64(st, 5);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_session_create(void *b, struct store_session *v)
{
    struct sq *q = b;
    int64_t now = now_ms(q), exp = session_expiry(q, now);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    /* An expired session's id is free again, even before the purge. */
    rc = sq_run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", v->id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", v->id, v->owner, v->context,
                 now, exp);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        v->created_at = v->updated_at = now;
        v->expires_at = exp;
    }
    return rc;
}

int sq_session_get(void *b, const char *id, struct store_session **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_SESSION_GET, row_session, store_session_free, out, "ti", id, now_ms(q));
}

int sq_session_update(void *b, const char *id, const char *context)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int changed = 0;
    int rc = sq_write_one(q, ST_SESSION_TOUCH, &changed, "ttie", id, context, now,
                       session_expiry(q, now));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

int sq_session_delete(void *b, const char *id)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_SESSION_DELETE, &changed, "ti", id, now_ms(q));
    return rc ? rc : changed ? 0 : AGENTD_ENOTFOUND;
}

/* ---- session listing and deletion ---- */

int sq_session_list(void *b, const char *owner, int64_t before_created,
                           const char *before_id, int limit, struct store_session **out,
                           size_t *n)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    void *v;
    size_t nv;
    int rc = sq_fetch(c, ST_SESSION_LIST, sizeof **out, row_session, &v, &nv, "tiiti", owner,
                   now_ms(q), before_created, before_id, (int64_t)limit);
    sq_conn_put(c);
    if (rc) {
        store_session_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int sq_session_delete_idle(void *b, const char *id, const char *owner)
{
    struct sq *q = b;
    int64_t now = now_ms(q), one = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_SESSION_OWNED, &one, NULL, "tti", id, owner, now);
    if (rc == 0) {
        rc = sq_run(&q->writer, ST_SESSION_RUNNING, &one, NULL, "t", id);
        rc = rc == 0 ? AGENTD_ECONFLICT : rc == AGENTD_ENOTFOUND ? 0 : rc;
    }
    if (rc == 0)
        rc = sq_run(&q->writer, ST_SESSION_DELETE, NULL, NULL, "ti", id, now);
    return sq_writer_end(q, rc);
}

int sq_message_append(void *b, struct store_message *m)
{
    struct sq *q = b;
    int64_t now = now_ms(q), seq = 0;
    int changed = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", m->session_id, NULL, now,
             session_expiry(q, now));
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        rc = sq_run(&q->writer, ST_MESSAGE_INSERT, &seq, NULL, "ttti", m->session_id, m->role,
                 m->parts, now);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        m->seq = seq;
        m->created_at = now;
    }
    return rc;
}

static int row_message(sqlite3_stmt *st, void *item)
{
    struct store_message *m = item;
    int oom = 0;
    m->session_id = sq_col_str(st, 0, &oom);
    m->seq = sq_col_i64(st, 1);
    m->role = sq_col_str(st, 2, &oom);
    m->parts = sq_col_str(st, 3, &oom);
    m->created_at = sq_col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

/* A session's rows with seq > after_seq (messages, events): the parent
 * check and the list read one snapshot. On failure the rows read so far
 * are left in *v / *nv for the caller's typed free. */
int sq_session_rows(struct sq *q, enum st id, const char *session_id, int64_t after_seq,
                        int limit, size_t size, row_fn row, void **v, size_t *nv)
{
    int64_t now = now_ms(q), one;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now);
    if (rc == 0)
        rc = sq_fetch(c, id, size, row, v, nv, "tii", session_id, after_seq,
                   (int64_t)(limit > 0 ? limit : -1));
    return sq_read_end(c, rc);
}

static int message_rows(void *b, enum st id, const char *session_id, int64_t after_seq,
                        int limit, struct store_message **out, size_t *n)
{
    void *v = NULL;
    size_t nv = 0;
    int rc = sq_session_rows(b, id, session_id, after_seq, limit, sizeof **out, row_message, &v,
                          &nv);
    if (rc) {
        store_message_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int sq_message_list(void *b, const char *session_id, int64_t after_seq, int limit,
                           struct store_message **out, size_t *n)
{
    return message_rows(b, ST_MESSAGE_LIST, session_id, after_seq, limit, out, n);
}

int sq_message_tail(void *b, const char *session_id, int limit, struct store_message **out,
                           size_t *n)
{
    return message_rows(b, ST_MESSAGE_TAIL, session_id, 0, limit, out, n);
}

