/* The product catalog: validate catalog JSON text, look up products,
 * rates, discounts and taxes, keyword search, free-text resolve. No I/O.
 *
 * Ownership: a catalog is immutable after load and reference counted.
 * catalog_load_* returns it with one reference; catalog_ref() adds one,
 * catalog_unref() (or its alias catalog_free()) drops one and frees at zero.
 * Every pointer the lookups return (products, rates, strings) lives as long
 * as the reference the caller holds. Threads may share one catalog freely.
 *
 * Reading files and CSV import: shop/catalog_load.h; the live catalog
 * swapped on SIGHUP: shop/catalog_slot.h. See docs/internals/catalog.md. */
#ifndef AGENTD_COMMERCE_CATALOG_H
#define AGENTD_COMMERCE_CATALOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "commerce/types.h"

struct catalog;
struct agentd_error;

/* At most this many validation problems are listed in an error message
 * (one per line); a last line counts the rest. */
#define CATALOG_ERRORS_MAX 20
/* Largest page catalog_search returns; a larger limit is clamped. */
#define CATALOG_SEARCH_MAX 50
/* Page size when catalog_query.limit is 0. */
#define CATALOG_SEARCH_DEFAULT 10
/* Largest inventory quantity a catalog may declare. */
#define CATALOG_STOCK_MAX 1000000000LL

/* ---- load ---- */

/* Validates catalog JSON text. On success *out holds one reference and 0
 * is returned. On failure *out is NULL, e->msg holds every problem found (up
 * to CATALOG_ERRORS_MAX, one per line, each "source:LINE: field: what"),
 * and the status is AGENTD_EMALFORMED (not JSON), AGENTD_EINVAL (invalid
 * content) or AGENTD_ENOMEM. `source` names the text in messages (NULL =
 * "catalog"). Files are read by shop/catalog_load.h. */
int catalog_load_json(const char *text, size_t len, const char *source, struct catalog **out,
                      struct agentd_error *e);

/* A report of problems in e->msg (e may be NULL): up to CATALOG_ERRORS_MAX
 * lines "where:LINE: field: what" (no LINE when 0, no field when NULL or
 * empty), then catalog_problems_end's line counting the rest. The loader's
 * report and the CSV importer's. Zero-initialise with e set. */
struct catalog_problems {
    struct agentd_error *e;
    size_t off;
    int n;
};
void catalog_problem_add(struct catalog_problems *p, const char *where, size_t line,
                         const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void catalog_problem_vadd(struct catalog_problems *p, const char *where, size_t line,
                          const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
void catalog_problems_end(struct catalog_problems *p);

/* Adds a reference (returns c for chaining). Thread-safe. */
struct catalog *catalog_ref(struct catalog *c);
/* Drops a reference; the last one frees the catalog. NULL is a no-op. */
void catalog_unref(struct catalog *c);
/* The loader's owner releasing its reference: same as catalog_unref(). */
void catalog_free(struct catalog *c);

/* ---- lookups (c must be non-NULL) ---- */

/* ISO 4217 code of every price in the catalog, e.g. "USD". */
const char *catalog_currency(const struct catalog *c);
/* Product by exact, case-sensitive id; NULL if none. O(log n). */
const struct product *catalog_product(const struct catalog *c, const char *id);
/* All products, sorted by id (ASCII case-insensitive; ids are unique even
 * ignoring case). */
const struct product *catalog_products(const struct catalog *c, size_t *n);
/* Shipping options for a destination country (ISO alpha-2, any case):
 * the rates for that country, then the "default" rates whose
 * service_level no country rate already covers (a country rate overrides
 * the default of the same level). NULL/"" country = the default rates.
 * Returns an array of *n pointers owned by the catalog. */
const struct shipping_rate *const *catalog_shipping_rates(const struct catalog *c,
                                                           const char *country, size_t *n);
/* Shipping rate by exact id (e.g. "std-ship"); NULL if none. */
const struct shipping_rate *catalog_shipping_rate(const struct catalog *c, const char *id);
/* Discount by code, ASCII case-insensitive ("10off" finds "10OFF"). */
const struct discount *catalog_discount(const struct catalog *c, const char *code);
/* All discounts in file order. */
const struct discount *catalog_discounts(const struct catalog *c, size_t *n);
/* The most specific tax rate: (country, region), then (country, "*"),
 * then ("*", "*"). Case-insensitive. NULL when nothing applies (no tax). */
const struct tax_rate *catalog_tax_rate(const struct catalog *c, const char *country,
                                        const char *region);

/* ---- promotions and the address book (catalog_extra.c) ---- */

/* All promotions in file order. */
const struct promotion *catalog_promotions(const struct catalog *c, size_t *n);
/* 1 when one of the n promotions makes standard shipping free for a cart
 * whose item subtotal is `subtotal` and which holds the product ids
 * item_ids[0..n_items) (pure; the unit-tested rule). */
int promotion_free_shipping(const struct promotion *p, size_t n, int64_t subtotal,
                            const char *const *item_ids, size_t n_items);
/* The customer with this email (ASCII case-insensitive); NULL if none. */
const struct customer *catalog_customer_by_email(const struct catalog *c, const char *email);
/* The saved addresses of customer_id, in file order: up to max pointers in
 * out; returns how many the customer has. */
size_t catalog_customer_addresses(const struct catalog *c, const char *customer_id,
                                  const struct saved_address **out, size_t max);

/* 1 if s is a valid id: 1..COMMERCE_ID_MAX-1 characters of A-Z a-z 0-9 . _ -
 * (product ids, rate ids, discount codes). */
int catalog_id_valid(const char *s);

/* ---- search ---- */

/* A zero-initialised query lists every product, first page. */
struct catalog_query {
    const char *text;      /* keywords; NULL or "" = no keyword filter */
    const char *category;  /* exact category, case-insensitive; NULL = any */
    int64_t max_price;     /* minor units, inclusive; <= 0 = no limit */
    int in_stock_only;     /* keep products that are available with stock > 0 */
    /* Live stock (e.g. from the store) overriding the catalog's seed stock;
     * return < 0 for "unknown" to fall back to the catalog. NULL = catalog. */
    int64_t (*stock)(void *ud, const char *product_id);
    void *stock_ud;
    size_t offset;         /* hits to skip */
    size_t limit;          /* page size; 0 = CATALOG_SEARCH_DEFAULT, max CATALOG_SEARCH_MAX */
};

struct catalog_hit {
    const struct product *product;
    int matched;           /* query terms this product matched */
    int score;             /* relevance; higher is better */
};

struct catalog_hits {
    size_t total;          /* all matches (after filters), before paging */
    size_t n;              /* hits in this page */
    int terms;             /* keyword terms the query used */
    struct catalog_hit hits[CATALOG_SEARCH_MAX];
};

/* Keyword search over name, alternate names, keywords, category, brand and
 * description (case-insensitive, plural-tolerant, prefix-aware), plus exact
 * ids/SKUs. Ranked by terms matched, then score, then id, so the order is
 * deterministic. Returns 0, AGENTD_EINVAL (NULL args) or AGENTD_ENOMEM. */
int catalog_search(const struct catalog *c, const struct catalog_query *q,
                   struct catalog_hits *out);

/* Maps free text ("chocochip cookies", "bisc-001", "2 oat cookies") to one
 * product. Returns 0 with *out set; AGENTD_ENOTFOUND when no product
 * matches every term; AGENTD_ECONFLICT when several match about equally
 * well (run catalog_search with the same text to list them); AGENTD_EINVAL
 * or AGENTD_ENOMEM. Stock is not considered: the caller decides. */
int catalog_resolve(const struct catalog *c, const char *text, const struct product **out);

#endif
