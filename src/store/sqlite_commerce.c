/* The SQLite backend's commerce rows: checkouts (compare-and-swap on
 * version), orders placed with their stock taken, and stock. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- checkouts and orders ---- */

static int row_checkout(sqlite3_stmt *st, void *item)
{
    struct store_checkout *c = item;
    int oom = 0;
    c->id = sq_col_str(st, 0, &oom);
    c->owner = sq_col_str(st, 1, &oom);
    c->status = sq_col_str(st, 2, &oom);
    c->document = sq_col_str(st, 3, &oom);
    c->version = sq_col_i64(st, 4);
    c->created_at = sq_col_i64(st, 5);
    c->updated_at = sq_col_i64(st, 6);
    c->expires_at = sq_col_i64(st, 7);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_checkout_create(void *b, struct store_checkout *c)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = sq_run(&q->writer, ST_CHECKOUT_DROP_EXPIRED, NULL, NULL, "ti", c->id, now);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_CHECKOUT_INSERT, NULL, NULL, "ttttie", c->id, c->owner,
                 c->status, c->document, now, c->expires_at);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        c->version = 1;
        c->created_at = c->updated_at = now;
    }
    return rc;
}

int sq_checkout_get(void *b, const char *id, struct store_checkout **out)
{
    struct sq *q = b;
    GET_ONE(q, ST_CHECKOUT_GET, row_checkout, store_checkout_free, out, "ti", id, now_ms(q));
}

/* Inside a write transaction: the compare-and-swap, and why it missed. */
static int checkout_cas(struct sq *q, const char *id, int64_t expected, const char *status,
                        const char *document, int64_t now)
{
    int changed = 0;
    int64_t one;
    int rc = sq_run(&q->writer, ST_CHECKOUT_CAS, NULL, &changed, "titti", id, expected, status,
                 document, now);
    if (rc == 0 && !changed) {
        rc = sq_run(&q->writer, ST_CHECKOUT_LIVE, &one, NULL, "ti", id, now);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    return rc;
}

int sq_checkout_update(void *b, const char *id, int64_t expected_version,
                              const char *status, const char *document)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    return sq_writer_end(q, checkout_cas(q, id, expected_version, status, document, now));
}

int sq_order_create(void *b, struct store_order *o, int64_t checkout_version,
                           const char *checkout_status, const char *checkout_document,
                           const struct store_stock_line *take, size_t ntake)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    rc = checkout_cas(q, o->checkout_id, checkout_version, checkout_status, checkout_document,
                      now);
    for (size_t i = 0; rc == 0 && i < ntake; i++) {
        int changed = 0;
        rc = sq_run(&q->writer, ST_STOCK_TAKE, NULL, &changed, "ti", take[i].product_id,
                 take[i].quantity);
        if (rc == 0 && !changed)
            rc = AGENTD_ESTOCK;
    }
    if (rc == 0)
        rc = sq_run(&q->writer, ST_ORDER_INSERT, NULL, NULL, "tttti", o->id, o->checkout_id,
                 o->owner, o->document, now);
    if ((rc = sq_writer_end(q, rc)) == 0)
        o->created_at = now;
    return rc;
}

int sq_order_update(void *b, const char *id, const char *document)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    int changed = 0;
    rc = sq_run(&q->writer, ST_ORDER_UPDATE, NULL, &changed, "tt", id, document);
    if (rc == 0 && !changed)
        rc = AGENTD_ENOTFOUND;
    return sq_writer_end(q, rc);
}

int sq_stock_seed(void *b, const struct store_stock_line *v, size_t n, int replace)
{
    struct sq *q = b;
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    if (replace)
        rc = sq_run(&q->writer, ST_STOCK_CLEAR, NULL, NULL, "");
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = sq_run(&q->writer, replace ? ST_STOCK_SET : ST_STOCK_SEED, NULL, NULL, "ti",
                 v[i].product_id, v[i].quantity);
    return sq_writer_end(q, rc);
}

int sq_stock_get(void *b, const char *product_id, int64_t *quantity)
{
    struct sq *q = b;
    struct conn *c = sq_reader_get(q);
    int64_t v = -1;
    int rc = sq_run(c, ST_STOCK_GET, &v, NULL, "t", product_id);
    sq_conn_put(c);
    if (rc == 0 && v < 0)
        rc = AGENTD_ENOTFOUND;
    if (rc == 0)
        *quantity = v;
    return rc;
}

static int row_order(sqlite3_stmt *st, void *item)
{
    struct store_order *o = item;
    int oom = 0;
    o->id = sq_col_str(st, 0, &oom);
    o->checkout_id = sq_col_str(st, 1, &oom);
    o->owner = sq_col_str(st, 2, &oom);
    o->document = sq_col_str(st, 3, &oom);
    o->created_at = sq_col_i64(st, 4);
    return oom ? AGENTD_ENOMEM : 0;
}

int sq_order_get(void *b, const char *id, struct store_order **out)
{
    GET_ONE((struct sq *)b, ST_ORDER_GET, row_order, store_order_free, out, "t", id);
}

