/* Private to the catalog files (catalog.c, catalog_text.c, catalog_search.c):
 * the catalog's in-memory layout, ASCII helpers and the search-text normaliser. */
#ifndef AGENTD_COMMERCE_CATALOG_INTERNAL_H
#define AGENTD_COMMERCE_CATALOG_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "commerce/catalog.h"
#include "core/buf.h"

/* Search text beyond this many bytes and terms is ignored. */
#define QUERY_TEXT_MAX 512
#define QUERY_TERMS_MAX 16
#define TOKEN_MAX 64
/* resolve: the best full match must beat the next one by this much. */
#define RESOLVE_MARGIN 10
/* Bonus when the query is exactly a product's name or alternate name. */
#define EXACT_NAME_BONUS 40

/* ------------------------------------------------------------------ */
/* ASCII helpers: locale-independent on purpose (ids and codes are ASCII,
 * and setlocale() elsewhere must not change matching). */

static inline int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* Bounded copy that always terminates (truncation is intended where used:
 * the sources were validated or are capped on purpose). */
static inline void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static inline int cat_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || x == 0)
            return x - y;
    }
}

/* ------------------------------------------------------------------ */
/* The catalog. */

/* The name field holds the name and the alternate names together, so a
 * product listing its name twice does not outscore its neighbours. */
enum { F_NAME, F_KEYWORDS, F_CATEGORY, F_BRAND, F_DESC, F_COUNT };

struct cat_entry {
    char *norm[F_COUNT]; /* " tok tok " per field, for substring matching */
    char *all;           /* the fields joined: a term found in none skips them all */
    char **keys;         /* name and each alternate name as " tok tok " (meaningful words) */
    size_t nkeys;
};

struct ship_list {
    char country[4];
    const struct shipping_rate **rates;
    size_t n;
};

struct catalog {
    atomic_long refs;
    char currency[COMMERCE_CURRENCY_LEN];
    struct product *products; /* sorted by id, case-insensitive */
    struct cat_entry *entries; /* parallel to products */
    size_t nproducts;
    struct shipping_rate *rates;
    size_t nrates;
    struct ship_list *ship; /* one per country that has its own rates */
    size_t nship;
    struct ship_list ship_default;
    struct discount *discounts;
    size_t ndiscounts;
    struct tax_rate *taxes;
    size_t ntaxes;
    struct promotion *promotions;  /* catalog_extra.c */
    size_t npromotions;
    struct customer *customers;
    size_t ncustomers;
    struct saved_address *addresses;
    size_t naddresses;
};

/* ---- catalog_extra.c: promotions, customers, saved addresses ---- */

struct json_t;
/* Reads root's "promotions", "customers" and "addresses" arrays into c
 * (problems reported in p, each "catalog: field: what"). 0 or
 * AGENTD_ENOMEM. */
int catalog_extra_load(struct catalog *c, struct json_t *root, struct catalog_problems *p);
void catalog_extra_free(struct catalog *c);

/* catalog.c: index of the product whose id equals id ignoring case, or -1. */
long catalog_find_ci(const struct catalog *c, const char *id);

/* ---- catalog_text.c: text normalisation for search ---- */

/* Next token from *sp into tok (TOKEN_MAX bytes; lowercased, stemmed); 0 at the end. */
size_t catalog_tok_next(const char **sp, const char *end, char *tok);
/* 1 for words that carry no product meaning in shopper requests. */
int catalog_is_stopword(const char *t);
int catalog_is_number(const char *t);
/* Appends the tokens of s to b as " tok tok" (keys=1: only meaningful
 * words, for exact-name comparison). */
void catalog_norm_append(struct buf *b, const char *s, int keys);

#endif
