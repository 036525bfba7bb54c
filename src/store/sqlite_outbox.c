/* The SQLite backend's outbox (store.h): events waiting to be delivered,
 * claimed by an instance under a lease, finished after each attempt. */
#include "store/sqlite_int.h"

#include "core/err.h"

#include <stdlib.h>

static const struct col outbox_cols[] = {
    COL(TEXT, struct store_outbox, id),          COL(TEXT, struct store_outbox, kind),
    COL(TEXT, struct store_outbox, target),      COL(TEXT, struct store_outbox, headers),
    COL(TEXT, struct store_outbox, body),        COL(TEXT, struct store_outbox, state),
    COL(I64, struct store_outbox, attempts),     COL(I64, struct store_outbox, next_attempt_at),
    COL(TEXT, struct store_outbox, last_error),  COL(TEXT, struct store_outbox, claimed_by),
    COL(I64, struct store_outbox, lease_until),  COL(I64, struct store_outbox, created_at),
    COL(I64, struct store_outbox, updated_at),
};
static const struct row_map outbox_rows = ROW_MAP(struct store_outbox, outbox_cols);

int sq_outbox_insert(struct sq *q, struct store_outbox *ev, int64_t now)
{
    int64_t due = ev->next_attempt_at > 0 ? ev->next_attempt_at : now;
    int rc = sq_run(&q->writer, ST_OUTBOX_INSERT, NULL, NULL, "tttttiiti", ev->id, ev->kind,
                    ev->target, ev->headers ? ev->headers : "{}", ev->body, due, now,
                    ev->seq_key, ev->seq);
    if (rc == 0) {
        ev->next_attempt_at = due;
        ev->created_at = ev->updated_at = now;
    }
    return rc;
}

int sq_outbox_add(void *b, struct store_outbox *ev)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, sq_outbox_insert(q, ev, now));
}

int sq_outbox_claim(void *b, const char *kind, const char *instance, int64_t lease_ms, int limit,
                    struct store_outbox **out, size_t *n)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    struct store_outbox *v = NULL;
    size_t nv = 0;
    rc = sq_fetch(&q->writer, ST_OUTBOX_CLAIM, &outbox_rows, &v, &nv, "ttiii", kind, instance, now,
                  lease_ms, (int64_t)limit);
    rc = sq_writer_end(q, rc);
    if (rc) {
        store_outbox_list_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return 0;
}

int sq_outbox_finish(void *b, const char *id, const char *instance, const char *state,
                     int64_t next_attempt_at, const char *last_error)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    int changed = 0;
    int64_t one;
    rc = sq_run(&q->writer, ST_OUTBOX_FINISH, NULL, &changed, "tttiti", id, instance, state,
                next_attempt_at, last_error, now);
    if (rc == 0 && !changed) {
        rc = sq_run(&q->writer, ST_OUTBOX_EXISTS, &one, NULL, "t", id);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return sq_writer_end(q, rc);
}

int sq_outbox_release(void *b, const char *instance, int *n)
{
    int changed = 0;
    int rc = sq_write_one(b, ST_OUTBOX_RELEASE, &changed, "t", instance);
    if (rc == 0 && n)
        *n = changed;
    return rc;
}

struct holder {
    char *id;
};
static const struct col holder_cols[] = { COL(TEXT, struct holder, id) };
static const struct row_map holder_rows = ROW_MAP(struct holder, holder_cols);

int sq_outbox_holders(void *b, char ***out, size_t *n)
{
    struct sq *q = b;
    struct holder *v = NULL;
    size_t nv = 0;
    int rc = sq_list(q, ST_OUTBOX_HOLDERS, &holder_rows, &v, &nv, "i", now_ms(q));
    if (rc)
        return rc;
    char **ids = calloc(nv ? nv : 1, sizeof *ids);
    for (size_t i = 0; i < nv; i++) {
        if (ids)
            ids[i] = v[i].id; /* moved */
        else
            free(v[i].id);
    }
    free(v);
    if (!ids)
        return AGENTD_ENOMEM;
    *out = ids;
    *n = nv;
    return 0;
}

int sq_outbox_depth(void *b, const char *kind, int64_t *pending)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    int64_t v = 0;
    int rc = sq_run(c, ST_OUTBOX_DEPTH, &v, NULL, "t", kind);
    sq_conn_put(c);
    if (rc == 0)
        *pending = v;
    return rc;
}

int sq_outbox_get(void *b, const char *id, struct store_outbox **out)
{
    return sq_get(b, ST_OUTBOX_GET, &outbox_rows, out, "t", id);
}
