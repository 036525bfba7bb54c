/* Merchant data: catalog source selection, validation, atomic swap and
 * stock seeding. Readers hold a reference, so a reload never frees a
 * catalog a request is still pricing with. */
#define _GNU_SOURCE
#include "shop/merchant.h"
#include "commerce/catalog.h"
#include "shop/catalog_load.h"
#include "shop/catalog_slot.h"
#include "shop/payment_handlers.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_CATALOG "catalog_json"

struct merchant {
    struct store *st;
    char *catalog_path;
    struct catalog_slot slot;
    const char *source;
    json_t *handlers; /* the catalog's payment_handlers (NULL: none); under slot.mu */
};

struct merchant *merchant_new(struct store *st, const char *catalog_path)
{
    struct merchant *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->st = st;
    if (catalog_path && !(m->catalog_path = strdup(catalog_path))) {
        free(m);
        return NULL;
    }
    catalog_slot_init(&m->slot, NULL);
    m->source = "none";
    return m;
}

void merchant_free(struct merchant *m)
{
    if (!m)
        return;
    catalog_slot_destroy(&m->slot);
    json_decref(m->handlers);
    free(m->catalog_path);
    free(m);
}

struct catalog *merchant_catalog(struct merchant *m) { return catalog_slot_get(&m->slot); }
const char *merchant_source(const struct merchant *m) { return m->source; }

json_t *merchant_payment_handlers(struct merchant *m)
{
    pthread_mutex_lock(&m->slot.mu);
    json_t *h = json_incref(m->handlers);
    pthread_mutex_unlock(&m->slot.mu);
    return h;
}

/* The handlers a catalog text declares, checked (NULL: none). */
static int load_handlers(const char *text, size_t len, json_t **out, struct agentd_error *e)
{
    return payment_handlers_from_catalog(text, len, out, e);
}

/* Seeds a stock row for every product that has none; sales are never undone. */
static int seed_stock(struct store *st, const struct catalog *c, int replace)
{
    size_t n = 0;
    const struct product *p = catalog_products(c, &n);
    struct store_stock_line *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines)
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++)
        lines[i] = (struct store_stock_line){ p[i].id, p[i].stock };
    int rc = store_stock_seed(st, lines, n, replace);
    free(lines);
    return rc;
}

int merchant_load(struct merchant *m, struct agentd_error *e)
{
    struct catalog *c = NULL;
    const char *source;
    int rc;
    char *imported = NULL, *ftext = NULL;
    size_t tlen = 0;
    json_t *handlers = NULL;
    if (m->catalog_path) {
        source = "file";
        rc = catalog_load_file(m->catalog_path, &c, e);
        if (rc == 0 && catalog_file_read(m->catalog_path, SIZE_MAX / 2, &ftext, &tlen, NULL) == 0)
            rc = load_handlers(ftext, tlen, &handlers, e);
        free(ftext);
    } else if (store_meta_get(m->st, META_CATALOG, &imported) == 0) {
        source = "import";
        rc = catalog_load_json(imported, strlen(imported), "imported catalog", &c, e);
        if (rc == 0)
            rc = load_handlers(imported, strlen(imported), &handlers, e);
        free(imported);
    } else {
        size_t len;
        const char *text = merchant_demo_catalog(&len);
        source = "builtin";
        rc = catalog_load_json(text, len, "built-in catalog", &c, e);
    }
    if (rc != 0) {
        catalog_unref(c);
        return rc;
    }
    rc = seed_stock(m->st, c, 0);
    if (rc != 0) {
        catalog_unref(c);
        json_decref(handlers);
        return agentd_fail(e, rc, NULL, NULL, "cannot seed stock: %s", agentd_err_msg(rc));
    }
    catalog_slot_set(&m->slot, c); /* the slot takes our reference */
    pthread_mutex_lock(&m->slot.mu);
    json_decref(m->handlers);
    m->handlers = handlers;
    pthread_mutex_unlock(&m->slot.mu);
    m->source = source;
    return 0;
}

static int write_atomically(const char *path, const char *text, struct agentd_error *e)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return AGENTD_ENOMEM;
    FILE *f = fopen(tmp, "w");
    int ok = f != NULL;
    if (f) {
        ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (fclose(f) != 0)
            ok = 0;
    }
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        agentd_fail(e, AGENTD_EIO, NULL, path, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : AGENTD_EIO;
}

int merchant_import(struct store *st, const char *catalog_path, const char *dir, size_t *nproducts,
                    struct agentd_error *e)
{
    char *json = NULL;
    int rc = catalog_import_csv_dir(dir, &json, e);
    if (rc == 0)
        rc = payment_handlers_import(dir, &json, e); /* payment_handlers.json, if any */
    if (rc != 0) {
        free(json);
        return rc;
    }
    struct catalog *c = NULL;
    rc = catalog_load_json(json, strlen(json), dir, &c, e);
    if (rc == 0) {
        rc = catalog_path ? write_atomically(catalog_path, json, e)
                          : store_meta_set(st, META_CATALOG, json);
        if (rc == 0)
            rc = seed_stock(st, c, 1);
        if (rc != 0 && (!e || !e->msg[0]))
            agentd_fail(e, rc, NULL, NULL, "cannot save the imported catalog: %s",
                        agentd_err_msg(rc));
        catalog_products(c, nproducts);
        catalog_unref(c);
    }
    free(json);
    return rc;
}
