/* The SQLite backend's conversations: sessions (with listing and idle
 * deletion) and their messages. */
#include "store/sqlite_int.h"

#include "core/err.h"

/* ---- sessions ---- */

/* id, owner, context, created_at, updated_at, expires_at */
static const struct col session_cols[] = {
    COL(TEXT, struct store_session, id),        COL(TEXT, struct store_session, owner),
    COL(TEXT, struct store_session, context),   COL(I64, struct store_session, created_at),
    COL(I64, struct store_session, updated_at), COL(I64, struct store_session, expires_at),
};
static const struct row_map session_rows = ROW_MAP(struct store_session, session_cols);

int sq_session_touch(struct sq *q, const char *id, const char *context, int64_t now)
{
    int changed = 0;
    int rc = sq_run(&q->writer, ST_SESSION_TOUCH, NULL, &changed, "ttie", id, context, now,
                    session_expiry(q, now));
    return rc == 0 && !changed ? AGENTD_ENOTFOUND : rc;
}

/* Inside a write transaction; AGENTD_EQUOTA when the owner is over its
 * session quota (the caller rolls back). */
int sq_session_insert(struct sq *q, const struct store_session *v, int64_t now)
{
    int rc = sq_run(&q->writer, ST_SESSION_INSERT, NULL, NULL, "tttie", v->id, v->owner,
                    v->context, now, session_expiry(q, now));
    return rc ? rc : sq_quota_check(q, ST_SESSION_COUNT_OWNER, v->owner, q->quota_sessions);
}

int sq_session_create(void *b, struct store_session *v)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_SESSION_DROP_EXPIRED, NULL, NULL, "ti", v->id, now);
    if (rc == 0)
        rc = sq_session_insert(q, v, now);
    rc = sq_writer_end(q, rc);
    if (rc == 0) {
        v->created_at = v->updated_at = now;
        v->expires_at = session_expiry(q, now);
    }
    return rc;
}

int sq_session_get(void *b, const char *id, struct store_session **out)
{
    struct sq *q = b;
    return sq_get(q, ST_SESSION_GET, &session_rows, out, "ti", id, now_ms(q));
}

int sq_session_update(void *b, const char *id, const char *context)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, sq_session_touch(q, id, context, now_ms(q)));
}

/* ---- session listing and deletion ---- */

int sq_session_list(void *b, const char *owner, int64_t before_created, const char *before_id,
                    int limit, struct store_session **out, size_t *n)
{
    struct sq *q = b;
    return sq_list(q, ST_SESSION_LIST, &session_rows, out, n, "tiiti", owner, now_ms(q),
                   before_created, before_id, (int64_t)limit);
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

/* ---- messages ---- */

/* session_id, seq, role, parts, created_at */
static const struct col message_cols[] = {
    COL(TEXT, struct store_message, session_id), COL(I64, struct store_message, seq),
    COL(TEXT, struct store_message, role),       COL(TEXT, struct store_message, parts),
    COL(I64, struct store_message, created_at),
};
static const struct row_map message_rows = ROW_MAP(struct store_message, message_cols);

int sq_message_insert(struct sq *q, const struct store_message *m, int64_t now, int64_t *seq,
                      int touched)
{
    int rc = touched ? 0 : sq_session_touch(q, m->session_id, NULL, now);
#if SQ_PLAIN_WRITES /* the next seq, then a plain insert (sqlite_int.h) */
    if (rc == 0)
        rc = sq_run(&q->writer, ST_MESSAGE_NEXT_SEQ, seq, NULL, "t", m->session_id);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_MESSAGE_INSERT, NULL, NULL, "titti", m->session_id, *seq,
                    m->role, m->parts, now);
#else
    if (rc == 0)
        rc = sq_run(&q->writer, ST_MESSAGE_INSERT, seq, NULL, "ttti", m->session_id, m->role,
                    m->parts, now);
#endif
    return rc;
}

int sq_message_append(void *b, struct store_message *m)
{
    struct sq *q = b;
    int64_t now = now_ms(q), seq = 0;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    if ((rc = sq_writer_end(q, sq_message_insert(q, m, now, &seq, 0))) == 0) {
        m->seq = seq;
        m->created_at = now;
    }
    return rc;
}

int sq_session_rows(struct sq *q, enum st id, const char *session_id, int64_t after_seq,
                    int limit, const struct row_map *m, void *outp, size_t *n)
{
    int64_t now = now_ms(q), one;
    struct conn *c = sq_reader_get(q);
    int rc = sq_read_begin(c);
    if (rc == 0)
        rc = sq_run(c, ST_SESSION_LIVE, &one, NULL, "ti", session_id, now);
    if (rc == 0)
        rc = sq_fetch(c, id, m, outp, n, "tii", session_id, after_seq,
                      (int64_t)(limit > 0 ? limit : -1));
    return sq_read_end(c, rc);
}

int sq_message_list(void *b, const char *session_id, int64_t after_seq, int limit,
                    struct store_message **out, size_t *n)
{
    return sq_session_rows(b, ST_MESSAGE_LIST, session_id, after_seq, limit, &message_rows, out,
                           n);
}

int sq_message_tail(void *b, const char *session_id, int limit, struct store_message **out,
                    size_t *n)
{
    return sq_session_rows(b, ST_MESSAGE_TAIL, session_id, 0, limit, &message_rows, out, n);
}
