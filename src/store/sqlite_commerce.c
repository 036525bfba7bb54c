/* The SQLite backend's commerce rows: checkouts (compare-and-swap on
 * version), orders placed with their stock taken, and stock. */
#include "store/sqlite_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* ---- checkouts and orders ---- */

/* id, owner, status, document, version, created_at, updated_at, expires_at */
static const struct col checkout_cols[] = {
    COL(TEXT, struct store_checkout, id),        COL(TEXT, struct store_checkout, owner),
    COL(TEXT, struct store_checkout, status),    COL(TEXT, struct store_checkout, document),
    COL(I64, struct store_checkout, version),    COL(I64, struct store_checkout, created_at),
    COL(I64, struct store_checkout, updated_at), COL(I64, struct store_checkout, expires_at),
};
static const struct row_map checkout_rows = ROW_MAP(struct store_checkout, checkout_cols);

/* id, checkout_id, owner, document, created_at, version, access_hash */
static const struct col order_cols[] = {
    COL(TEXT, struct store_order, id),       COL(TEXT, struct store_order, checkout_id),
    COL(TEXT, struct store_order, owner),    COL(TEXT, struct store_order, document),
    COL(I64, struct store_order, created_at), COL(I64, struct store_order, version),
    COL(TEXT, struct store_order, access_hash),
};
static const struct row_map order_rows = ROW_MAP(struct store_order, order_cols);

int sq_checkout_create(void *b, struct store_checkout *c)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_insert_fresh(q, ST_CHECKOUT_DROP_EXPIRED, c->id, now, ST_CHECKOUT_INSERT,
                             "ttttie", c->id, c->owner, c->status, c->document, now,
                             c->expires_at);
    if (rc == 0) {
        c->version = 1;
        c->created_at = c->updated_at = now;
    }
    return rc;
}

int sq_checkout_get(void *b, const char *id, struct store_checkout **out)
{
    struct sq *q = b;
    return sq_get(q, ST_CHECKOUT_GET, &checkout_rows, out, "ti", id, now_ms(q));
}

int sq_checkout_list_after(void *b, const char *after, int limit, struct store_checkout **out,
                           size_t *n)
{
    struct sq *q = b;
    return sq_list(q, ST_CHECKOUT_LIST_AFTER, &checkout_rows, out, n, "tii", after, now_ms(q),
                   (int64_t)limit);
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

static int stock_line_cmp(const void *a, const void *b)
{
    const struct store_stock_line *x = *(const struct store_stock_line *const *)a;
    const struct store_stock_line *y = *(const struct store_stock_line *const *)b;
    return strcmp(x->product_id, y->product_id);
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
    /* stock rows in product order: on PostgreSQL two replicas completing
     * carts that share products then lock them in one order and wait for
     * each other instead of deadlocking (a 1 s detection, then a retry) */
    const struct store_stock_line **by_id = rc == 0 && ntake ? malloc(ntake * sizeof *by_id) : NULL;
    if (rc == 0 && ntake && !by_id)
        rc = AGENTD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < ntake; i++)
        by_id[i] = &take[i];
    if (rc == 0 && ntake > 1)
        qsort(by_id, ntake, sizeof *by_id, stock_line_cmp);
    for (size_t i = 0; rc == 0 && i < ntake; i++) {
        int changed = 0;
        rc = sq_run(&q->writer, ST_STOCK_TAKE, NULL, &changed, "ti", by_id[i]->product_id,
                    by_id[i]->quantity);
        if (rc == 0 && !changed)
            rc = AGENTD_ESTOCK;
    }
    free(by_id);
    if (rc == 0)
        rc = sq_run(&q->writer, ST_ORDER_INSERT, NULL, NULL, "ttttit", o->id, o->checkout_id,
                    o->owner, o->document, now, o->access_hash);
    if (rc == 0 && o->event)
        rc = sq_outbox_insert(q, o->event, now);
    if ((rc = sq_writer_end(q, rc)) == 0) {
        o->created_at = now;
        o->version = 1;
    }
    return rc;
}

int sq_order_update(void *b, const char *id, int64_t expected_version, const char *document,
                    struct store_outbox *ev)
{
    struct sq *q = b;
    int64_t now = now_ms(q);
    int rc = sq_writer_begin(q);
    if (rc)
        return rc;
    int changed = 0;
    int64_t one;
    rc = sq_run(&q->writer, ST_ORDER_CAS, NULL, &changed, "tit", id, expected_version, document);
    if (rc == 0 && !changed) { /* missing (ENOTFOUND) or moved on */
        rc = sq_run(&q->writer, ST_ORDER_EXISTS, &one, NULL, "t", id);
        if (rc == 0)
            rc = AGENTD_ECONFLICT;
    }
    if (rc == 0 && ev)
        rc = sq_outbox_insert(q, ev, now);
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

int sq_order_get(void *b, const char *id, struct store_order **out)
{
    return sq_get(b, ST_ORDER_GET, &order_rows, out, "t", id);
}

