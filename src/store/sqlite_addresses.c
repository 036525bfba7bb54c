/* The SQLite backend's address book: addresses buyers gave at checkout,
 * kept per customer key (the store never reads the sealed body). */
#include "store/sqlite_int.h"

#include "core/err.h"

/* id, customer, body, created_at */
static const struct col address_cols[] = {
    COL(TEXT, struct store_address, id),
    COL(TEXT, struct store_address, customer),
    COL(TEXT, struct store_address, body),
    COL(I64, struct store_address, created_at),
};
static const struct row_map address_rows = ROW_MAP(struct store_address, address_cols);

int sq_address_save(void *b, const char *id, const char *customer, const char *body)
{
    struct sq *q = b;
    int changed = 0;
    return sq_write_one(q, ST_ADDRESS_SAVE, &changed, "ttti", id, customer, body, now_ms(q));
}

int sq_address_list_after(void *b, const char *after, int limit, struct store_address **out,
                          size_t *n)
{
    return sq_list(b, ST_ADDRESS_LIST_AFTER, &address_rows, out, n, "ti", after, (int64_t)limit);
}

int sq_address_reseal(void *b, const char *id, const char *old_body, const char *new_body)
{
    struct sq *q = b;
    int changed = 0;
    int rc = sq_write_one(q, ST_ADDRESS_RESEAL, &changed, "ttt", id, old_body, new_body);
    return rc == 0 && !changed ? AGENTD_ECONFLICT : rc;
}

int sq_address_list(void *b, const char *customer, int limit, struct store_address **out,
                    size_t *n)
{
    return sq_list(b, ST_ADDRESS_LIST, &address_rows, out, n, "ti", customer, (int64_t)limit);
}
