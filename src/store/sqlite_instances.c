/* The SQLite backend's instances table (store.h): each process's heartbeat
 * row, written every few seconds, read to tell which replicas died. */
#include "store/sqlite_int.h"

#include "core/err.h"

static const struct col instance_cols[] = {
    COL(TEXT, struct store_instance, id),         COL(TEXT, struct store_instance, host),
    COL(I64, struct store_instance, pid),         COL(I64, struct store_instance, started_at),
    COL(I64, struct store_instance, heartbeat_at),
};
static const struct row_map instance_rows = ROW_MAP(struct store_instance, instance_cols);

int sq_instance_beat(void *b, const struct store_instance *inst)
{
    struct sq *q = b;
    return sq_write_one(q, ST_INSTANCE_BEAT, NULL, "ttiii", inst->id, inst->host, inst->pid,
                        inst->started_at, now_ms(q));
}

int sq_instance_list(void *b, struct store_instance **out, size_t *n)
{
    return sq_list(b, ST_INSTANCE_LIST, &instance_rows, out, n, "");
}

int sq_instance_delete(void *b, const char *id)
{
    return sq_write_found(b, ST_INSTANCE_DELETE, "t", id);
}
