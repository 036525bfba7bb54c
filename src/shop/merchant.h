/* The merchant the shop sells from: the current catalog, swapped atomically
 * on reload, and the live stock it seeds in the store. The catalog comes
 * from AGENTD_CATALOG (a file) if set, else from the last `agentd catalog
 * import` (kept in the store), else from the demo catalog built into the
 * binary. */
#ifndef AGENTD_SHOP_MERCHANT_H
#define AGENTD_SHOP_MERCHANT_H

#include <stddef.h>

#include <jansson.h>

struct catalog;
struct store;
struct merchant;
struct agentd_error;

/* catalog_path may be NULL. Nothing is loaded until merchant_load(). */
struct merchant *merchant_new(struct store *st, const char *catalog_path);
void merchant_free(struct merchant *m);

/* Blocking (file and store reads): call at start and on SIGHUP, never on a
 * loop thread. Loads and validates the catalog from its source, seeds stock
 * for products that have none, then swaps it in. On failure the current
 * catalog stays and e says why. */
int merchant_load(struct merchant *m, struct agentd_error *e);

/* The current catalog with a reference taken: catalog_unref() when done.
 * NULL before the first successful load. */
struct catalog *merchant_catalog(struct merchant *m);

/* The payment handlers the current catalog declares (payment_handlers.json
 * at import): a new reference to a checked JSON array, NULL when none. */
json_t *merchant_payment_handlers(struct merchant *m);

/* Where the current catalog came from: "file", "import" or "builtin". */
const char *merchant_source(const struct merchant *m);

/* `agentd catalog import DIR`: reads UCP sample-merchant CSV files from dir,
 * validates the result, and makes it what serve sells from: written to
 * catalog_path (atomically) when set, else kept in the store; stock is
 * replaced by the imported quantities. Blocking. */
int merchant_import(struct store *st, const char *catalog_path, const char *dir, size_t *nproducts,
                    struct agentd_error *e);

/* The demo catalog compiled into the binary (NUL-terminated). */
const char *merchant_demo_catalog(size_t *len);

#endif
