/* Catalog: validating loader for data/catalog.json, lookups, keyword search
 * and free-text resolve over an immutable, reference-counted snapshot. */
#define _GNU_SOURCE
#include "commerce/catalog.h"
#include "commerce/money.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A catalog file larger than this is a mistake, not a catalog. */
#define CATALOG_FILE_MAX (64u << 20)
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

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }

/* Bounded copy that always terminates (truncation is intended where used:
 * the sources were validated or are capped on purpose). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int cat_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || x == 0)
            return x - y;
    }
}

int catalog_id_valid(const char *s)
{
    if (!s || !*s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return n < COMMERCE_ID_MAX;
}

/* ------------------------------------------------------------------ */
/* Error list: up to CATALOG_ERRORS_MAX lines in the caller's buffer, each
 * with the JSON line of the field (found by re-scanning the text, because
 * jansson does not keep positions of parsed values). */

struct errs {
    char *out;
    size_t outlen, off;
    int n;
    int oom;
    const char *source;
    const char *text;
    size_t textlen;
};

static void errs_vappend(struct errs *e, const char *fmt, va_list ap)
{
    fixbuf_vappendf(e->out, e->outlen, &e->off, fmt, ap);
}

static void errs_append(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errs_append(struct errs *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errs_vappend(e, fmt, ap);
    va_end(ap);
}

/* Locating a path such as products[3].offers.price in JSON text. */
struct jcomp {
    char key[48];
    long idx; /* >= 0: array index; -1: object key */
};

struct jscan {
    const char *s;
    size_t n, i;
    int line;
};

static void js_ws(struct jscan *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r')) {
        if (j->s[j->i] == '\n')
            j->line++;
        j->i++;
    }
}

/* Skips a string at j->i, copying its raw bytes (escapes undecoded) to key. */
static void js_string(struct jscan *j, char *key, size_t cap)
{
    size_t k = 0;
    j->i++; /* opening quote */
    while (j->i < j->n && j->s[j->i] != '"') {
        if (j->s[j->i] == '\\' && j->i + 1 < j->n) {
            if (key && k + 1 < cap)
                key[k++] = j->s[j->i];
            j->i++;
        }
        if (key && k + 1 < cap)
            key[k++] = j->s[j->i];
        j->i++;
    }
    j->i++; /* closing quote */
    if (key)
        key[k] = 0;
}

/* Walks one value. depth >= 0 means the path matched comps[0..depth); the
 * line of the deepest matched value is kept in *line. Returns 1 once the
 * whole path is found. The text was already accepted by jansson, so it is
 * well-formed and nested no deeper than jansson's limit. */
static int js_value(struct jscan *j, const struct jcomp *c, int nc, int depth, int *line)
{
    js_ws(j);
    if (j->i >= j->n)
        return 0;
    if (depth >= 0) {
        *line = j->line;
        if (depth == nc)
            return 1;
    }
    char ch = j->s[j->i];
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        long k = 0;
        j->i++;
        for (;;) {
            js_ws(j);
            if (j->i >= j->n)
                return 0;
            if (j->s[j->i] == close) {
                j->i++;
                return 0;
            }
            if (j->s[j->i] == ',') {
                j->i++;
                continue;
            }
            int sub = -1;
            if (ch == '{') {
                char key[48];
                js_string(j, key, sizeof key);
                js_ws(j);
                if (j->i < j->n && j->s[j->i] == ':')
                    j->i++;
                if (depth >= 0 && c[depth].idx < 0 && strcmp(key, c[depth].key) == 0)
                    sub = depth + 1;
            } else if (depth >= 0 && c[depth].idx == k) {
                sub = depth + 1;
            }
            if (js_value(j, c, nc, sub, line))
                return 1;
            k++;
        }
    }
    if (ch == '"') {
        js_string(j, NULL, 0);
        return 0;
    }
    while (j->i < j->n && !strchr(",}] \t\r\n", j->s[j->i]))
        j->i++;
    return 0;
}

/* Line of the value at path (or of its deepest existing ancestor); 0 if
 * unknown. */
static int json_path_line(const char *text, size_t len, const char *path)
{
    struct jcomp comps[8];
    int nc = 0;
    const char *p = path;
    while (*p && nc < 8) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            comps[nc].idx = strtol(p + 1, (char **)&p, 10);
            comps[nc++].key[0] = 0;
            if (*p == ']')
                p++;
            continue;
        }
        size_t k = 0;
        while (*p && *p != '.' && *p != '[') {
            if (k + 1 < sizeof comps[nc].key)
                comps[nc].key[k++] = *p;
            p++;
        }
        comps[nc].key[k] = 0;
        comps[nc++].idx = -1;
    }
    struct jscan j = { text, len, 0, 1 };
    int line = 0;
    js_value(&j, comps, nc, 0, &line);
    return line;
}

static void errs_add(struct errs *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errs_add(struct errs *e, const char *path, const char *fmt, ...)
{
    e->n++;
    if (e->n > CATALOG_ERRORS_MAX)
        return;
    if (e->n > 1)
        errs_append(e, "\n");
    int line = e->text && path ? json_path_line(e->text, e->textlen, path) : 0;
    if (line > 0)
        errs_append(e, "%s:%d: ", e->source, line);
    else
        errs_append(e, "%s: ", e->source);
    if (path && *path)
        errs_append(e, "%s: ", path);
    va_list ap;
    va_start(ap, fmt);
    errs_vappend(e, fmt, ap);
    va_end(ap);
}

static void errs_finish(struct errs *e)
{
    if (e->n > CATALOG_ERRORS_MAX)
        errs_append(e, "\n(%d more problems not shown)", e->n - CATALOG_ERRORS_MAX);
}

/* ------------------------------------------------------------------ */
/* Text normalisation for search: lowercase ASCII, split on anything that
 * is not a letter or digit (bytes >= 0x80 count as letters so UTF-8 words
 * survive; apostrophes join, so "annie's" is one word), fold plurals. */

static int is_tok_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch >= 0x80;
}

static int ends(const char *t, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(t + n - k, suf, k) == 0;
}

/* A deliberately small English plural folder, applied to both the index
 * and the query, so it only has to map singular and plural to the same
 * key (cookie/cookies -> "cooky", berry/berries -> "berry",
 * peach/peaches, tomato/tomatoes, chip/chips), not produce real words. */
static size_t stem(char *t, size_t n)
{
    if (n > 4 && ends(t, n, "ies")) {
        t[n - 3] = 'y';
        n -= 2;
    } else if (n > 3 && ends(t, n, "ie")) {
        t[n - 2] = 'y';
        n -= 1;
    } else if (n > 4 && (ends(t, n, "sses") || ends(t, n, "shes") || ends(t, n, "ches") ||
                         ends(t, n, "xes") || ends(t, n, "oes"))) {
        n -= 2;
    } else if (n > 3 && t[n - 1] == 's' && t[n - 2] != 's' && t[n - 2] != 'u' &&
               t[n - 2] != 'i') {
        n -= 1;
    }
    t[n] = 0;
    return n;
}

/* Next token from *sp into tok (lowercased, stemmed); 0 at the end. */
static size_t tok_next(const char **sp, const char *end, char *tok)
{
    const char *s = *sp;
    while (s < end && !is_tok_byte((unsigned char)*s))
        s++;
    size_t n = 0;
    while (s < end && (is_tok_byte((unsigned char)*s) || (*s == '\'' && n > 0))) {
        if (*s != '\'' && n + 1 < TOKEN_MAX)
            tok[n++] = (char)lower((unsigned char)*s);
        s++;
    }
    *sp = s;
    tok[n] = 0;
    return n ? stem(tok, n) : 0;
}

/* Words that carry no product meaning in shopper requests. */
static int is_stopword(const char *t)
{
    static const char *const words[] = { "a",    "an",     "and",  "any",   "are",  "at",
                                         "buy",  "do",     "find", "for",   "get",  "have",
                                         "i",    "in",     "is",   "like",  "me",   "my",
                                         "need", "of",     "on",   "or",    "please",
                                         "show", "search", "some", "the",   "to",   "want",
                                         "with", "you",    "add",  "list",  "what", "your" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(t, words[i]) == 0)
            return 1;
    return 0;
}

static int is_number(const char *t)
{
    for (; *t; t++)
        if (*t < '0' || *t > '9')
            return 0;
    return 1;
}

/* Appends the tokens of s to b as " tok tok" (keys=1: only meaningful
 * words, for exact-name comparison). */
static void norm_append(struct buf *b, const char *s, int keys)
{
    if (!s)
        return;
    const char *end = s + strlen(s);
    char tok[TOKEN_MAX];
    while (tok_next(&s, end, tok)) {
        if (keys && (is_stopword(tok) || is_number(tok)))
            continue;
        buf_append(b, " ", 1);
        buf_puts(b, tok);
    }
}

/* ------------------------------------------------------------------ */
/* The catalog. */

/* The name field holds the name and the alternate names together, so a
 * product listing its name twice does not outscore its neighbours. */
enum { F_NAME, F_KEYWORDS, F_CATEGORY, F_BRAND, F_DESC, F_COUNT };
/* Where a term matched decides its weight: the name says what a product
 * is, a description only mentions things. */
static const int w_exact[F_COUNT] = { 30, 25, 15, 10, 5 };
static const int w_prefix[F_COUNT] = { 12, 10, 6, 4, 2 };

struct cat_entry {
    char *norm[F_COUNT]; /* " tok tok " per field, for substring matching */
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
};

static void product_clear(struct product *p)
{
    free(p->id);
    free(p->sku);
    free(p->name);
    free(p->description);
    free(p->brand);
    free(p->image_url);
    free(p->url);
    free(p->category);
    free(p->gtin);
}

static void entry_clear(struct cat_entry *e)
{
    for (int f = 0; f < F_COUNT; f++)
        free(e->norm[f]);
    for (size_t k = 0; k < e->nkeys; k++)
        free(e->keys[k]);
    free(e->keys);
}

static void catalog_destroy(struct catalog *c)
{
    for (size_t i = 0; i < c->nproducts; i++) {
        product_clear(&c->products[i]);
        if (c->entries)
            entry_clear(&c->entries[i]);
    }
    free(c->products);
    free(c->entries);
    for (size_t i = 0; i < c->nrates; i++) {
        free(c->rates[i].id);
        free(c->rates[i].country);
        free(c->rates[i].service_level);
        free(c->rates[i].title);
    }
    free(c->rates);
    for (size_t i = 0; i < c->nship; i++)
        free(c->ship[i].rates);
    free(c->ship);
    free(c->ship_default.rates);
    for (size_t i = 0; i < c->ndiscounts; i++) {
        free(c->discounts[i].code);
        free(c->discounts[i].description);
    }
    free(c->discounts);
    for (size_t i = 0; i < c->ntaxes; i++) {
        free(c->taxes[i].country);
        free(c->taxes[i].region);
    }
    free(c->taxes);
    free(c);
}

struct catalog *catalog_ref(struct catalog *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void catalog_unref(struct catalog *c)
{
    /* acq_rel: every user's reads happen before the last one frees. */
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        catalog_destroy(c);
}

void catalog_free(struct catalog *c) { catalog_unref(c); }

/* ------------------------------------------------------------------ */
/* Loading. Every problem is reported (up to the cap), so an operator
 * fixes a file in one round instead of one error per reload. */

struct ld {
    struct errs *e;
    struct catalog *c;
    int exponent;
};

/* One product while loading, before sorting by id. */
struct pitem {
    struct product p;
    struct cat_entry e;
    size_t orig; /* index in the file, for messages */
};

static char *xstrdup(struct ld *L, const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        L->e->oom = 1;
    return d;
}

static void pathf(char *out, size_t n, const char *base, const char *key)
{
    if (base && *base)
        snprintf(out, n, "%s.%s", base, key);
    else
        snprintf(out, n, "%s", key);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A string member. Returns it, or NULL when absent (reported if required)
 * or of the wrong type (reported). Empty required strings are reported. */
static const char *get_str(struct ld *L, json_t *o, const char *base, const char *key, int required)
{
    char path[160];
    pathf(path, sizeof path, base, key);
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            errs_add(L->e, path, "required");
        return NULL;
    }
    if (!json_is_string(v)) {
        errs_add(L->e, path, "must be a string, not %s", type_name(v));
        return NULL;
    }
    const char *s = json_string_value(v);
    if (required && !*s) {
        errs_add(L->e, path, "must not be empty");
        return NULL;
    }
    return s;
}

/* An integer member in [min, max]. Returns 1 and sets *out, or 0. */
static int get_int(struct ld *L, json_t *o, const char *base, const char *key, int64_t min,
                   int64_t max, int required, int64_t *out)
{
    char path[160];
    pathf(path, sizeof path, base, key);
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            errs_add(L->e, path, "required");
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        if (json_is_integer(v) || json_is_real(v))
            errs_add(L->e, path, "must be an integer from %lld to %lld", (long long)min,
                     (long long)max);
        else
            errs_add(L->e, path, "must be an integer, not %s", type_name(v));
        return 0;
    }
    *out = json_integer_value(v);
    return 1;
}

static int url_valid(const char *s)
{
    return (strncmp(s, "https://", 8) == 0 && s[8]) || (strncmp(s, "http://", 7) == 0 && s[7]);
}

static int gtin_valid(const char *s)
{
    size_t n = strlen(s);
    if (n != 8 && n != 12 && n != 13 && n != 14)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Collects a string-or-array-of-strings member (schema.org allows both)
 * into parts. Returns the count, reporting wrong types. */
static size_t get_strings(struct ld *L, json_t *o, const char *base, const char *key,
                          const char **parts, size_t cap)
{
    char path[160];
    pathf(path, sizeof path, base, key);
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        parts[0] = json_string_value(v);
        return 1;
    }
    if (!json_is_array(v)) {
        errs_add(L->e, path, "must be a string or an array of strings, not %s", type_name(v));
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            char ipath[200];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            errs_add(L->e, ipath, "must be a string, not %s", type_name(s));
        } else if (n < cap) {
            parts[n++] = json_string_value(s);
        }
    }
    return n;
}

static char *norm_join(struct ld *L, const char *const *parts, size_t n, int keys)
{
    struct buf b = { 0 };
    for (size_t i = 0; i < n; i++)
        norm_append(&b, parts[i], keys);
    buf_append(&b, " ", 1);
    if (b.oom) {
        buf_free(&b);
        L->e->oom = 1;
        return NULL;
    }
    return b.data;
}

/* Builds the search index of one product. Keywords may be one
 * comma-separated string or an array; both just add words. */
static void index_product(struct ld *L, struct pitem *it, const char **alts, size_t nalt,
                          const char **kws, size_t nkw)
{
    struct product *p = &it->p;
    struct cat_entry *e = &it->e;
    const char *names[17] = { p->name };
    for (size_t k = 0; k < nalt && k < 16; k++)
        names[k + 1] = alts[k];
    e->norm[F_NAME] = norm_join(L, names, nalt + 1, 0);
    e->norm[F_KEYWORDS] = norm_join(L, kws, nkw, 0);
    e->norm[F_CATEGORY] = norm_join(L, (const char *const *)&p->category, 1, 0);
    e->norm[F_BRAND] = norm_join(L, (const char *const *)&p->brand, 1, 0);
    e->norm[F_DESC] = norm_join(L, (const char *const *)&p->description, 1, 0);
    e->keys = calloc(nalt + 1, sizeof *e->keys);
    if (!e->keys) {
        L->e->oom = 1;
        return;
    }
    e->keys[e->nkeys++] = norm_join(L, (const char *const *)&p->name, 1, 1);
    for (size_t k = 0; k < nalt; k++)
        e->keys[e->nkeys++] = norm_join(L, &alts[k], 1, 1);
}

static int availability_parse(const char *s, int *available)
{
    static const char *const prefixes[] = { "https://schema.org/", "http://schema.org/", "" };
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(prefixes[i]);
        if (strncmp(s, prefixes[i], k) != 0)
            continue;
        if (strcmp(s + k, "InStock") == 0) {
            *available = 1;
            return 1;
        }
        if (strcmp(s + k, "OutOfStock") == 0) {
            *available = 0;
            return 1;
        }
    }
    return 0;
}

/* Parses products[i]. Returns 1 when it has a usable id (so duplicate
 * checks can see it), even if other fields had problems. */
static int parse_product(struct ld *L, json_t *o, size_t i, struct pitem *it)
{
    char base[64], path[160];
    snprintf(base, sizeof base, "products[%zu]", i);
    if (!json_is_object(o)) {
        errs_add(L->e, base, "must be an object, not %s", type_name(o));
        return 0;
    }
    struct product *p = &it->p;
    it->orig = i;

    const char *type = get_str(L, o, base, "@type", 0);
    if (type && strcmp(type, "Product") != 0) {
        pathf(path, sizeof path, base, "@type");
        errs_add(L->e, path, "must be \"Product\", not \"%s\"", type);
    }
    const char *id = get_str(L, o, base, "productID", 1);
    if (id && !catalog_id_valid(id)) {
        pathf(path, sizeof path, base, "productID");
        errs_add(L->e, path, "\"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ -", id,
                 COMMERCE_ID_MAX - 1);
        id = NULL;
    }
    const char *name = get_str(L, o, base, "name", 1);
    const char *sku = get_str(L, o, base, "sku", 0);
    const char *desc = get_str(L, o, base, "description", 0);
    const char *category = get_str(L, o, base, "category", 0);
    const char *gtin = get_str(L, o, base, "gtin", 0);
    if (gtin && !gtin_valid(gtin)) {
        pathf(path, sizeof path, base, "gtin");
        errs_add(L->e, path, "\"%s\" must be 8, 12, 13 or 14 digits", gtin);
    }

    /* brand: a name, or a schema.org Brand object {"@type":"Brand","name":...} */
    const char *brand = NULL;
    json_t *bv = json_object_get(o, "brand");
    pathf(path, sizeof path, base, "brand");
    if (json_is_object(bv))
        brand = get_str(L, bv, path, "name", 0);
    else if (bv && !json_is_null(bv))
        brand = get_str(L, o, base, "brand", 0);

    /* image: one URL, or an array of URLs (the first is used) */
    const char *images[1] = { NULL };
    size_t nimg = get_strings(L, o, base, "image", images, 1);
    if (nimg && !url_valid(images[0])) {
        pathf(path, sizeof path, base, "image");
        errs_add(L->e, path, "\"%s\" must be an http(s) URL", images[0]);
    }

    const char *url = get_str(L, o, base, "url", 0);
    if (url && !url_valid(url)) {
        pathf(path, sizeof path, base, "url");
        errs_add(L->e, path, "\"%s\" must be an http(s) URL", url);
    }

    const char *alts[16], *kws[32];
    size_t nalt = get_strings(L, o, base, "alternateName", alts, 16);
    size_t nkw = get_strings(L, o, base, "keywords", kws, 32);

    /* offers: price as a decimal string, never a JSON number, so no binary
     * float ever holds a price (and "3.10" keeps its meaning). */
    char obase[96];
    pathf(obase, sizeof obase, base, "offers");
    json_t *offers = json_object_get(o, "offers");
    int64_t price = 0;
    int available = 1;
    if (!offers || json_is_null(offers)) {
        errs_add(L->e, obase, "required");
    } else if (!json_is_object(offers)) {
        errs_add(L->e, obase, "must be an object, not %s", type_name(offers));
    } else {
        json_t *pv = json_object_get(offers, "price");
        pathf(path, sizeof path, obase, "price");
        if (!pv || json_is_null(pv))
            errs_add(L->e, path, "required");
        else if (json_is_number(pv))
            errs_add(L->e, path, "must be a decimal string like \"3.99\", not a JSON number");
        else if (!json_is_string(pv) ||
                 money_parse(json_string_value(pv), L->exponent, &price) != 0)
            errs_add(L->e, path, "must be a non-negative amount with at most %d decimals",
                     L->exponent);
        const char *cur = get_str(L, offers, obase, "priceCurrency", 1);
        if (cur && strcmp(cur, L->c->currency) != 0) {
            pathf(path, sizeof path, obase, "priceCurrency");
            errs_add(L->e, path, "\"%s\" differs from the catalog currency \"%s\"", cur,
                     L->c->currency);
        }
        const char *av = get_str(L, offers, obase, "availability", 0);
        if (av && !availability_parse(av, &available)) {
            pathf(path, sizeof path, obase, "availability");
            errs_add(L->e, path,
                     "\"%s\" must be https://schema.org/InStock or https://schema.org/OutOfStock",
                     av);
        }
    }

    char ibase[96];
    pathf(ibase, sizeof ibase, base, "inventory");
    json_t *inv = json_object_get(o, "inventory");
    int64_t stock = 0;
    if (!inv || json_is_null(inv))
        errs_add(L->e, ibase, "required (the stock count: {\"quantity\": N})");
    else if (!json_is_object(inv))
        errs_add(L->e, ibase, "must be an object, not %s", type_name(inv));
    else
        get_int(L, inv, ibase, "quantity", 0, CATALOG_STOCK_MAX, 1, &stock);

    if (!id)
        return 0;
    p->id = xstrdup(L, id);
    p->sku = xstrdup(L, sku && *sku ? sku : id);
    p->name = xstrdup(L, name);
    p->description = xstrdup(L, desc);
    p->brand = xstrdup(L, brand);
    p->image_url = xstrdup(L, images[0]);
    p->url = xstrdup(L, url);
    p->category = xstrdup(L, category);
    p->gtin = xstrdup(L, gtin);
    p->price = price;
    p->stock = stock;
    p->available = available;
    if (!L->e->oom)
        index_product(L, it, alts, nalt, kws, nkw);
    return 1;
}

static int pitem_cmp(const void *a, const void *b)
{
    return cat_casecmp(((const struct pitem *)a)->p.id, ((const struct pitem *)b)->p.id);
}

static void parse_products(struct ld *L, json_t *arr)
{
    size_t n = json_array_size(arr);
    struct pitem *items = n ? calloc(n, sizeof *items) : NULL;
    if (n && !items) {
        L->e->oom = 1;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && !L->e->oom; i++) {
        if (parse_product(L, json_array_get(arr, i), i, &items[k]))
            k++;
        else {
            product_clear(&items[k].p);
            entry_clear(&items[k].e);
            memset(&items[k], 0, sizeof items[k]);
        }
    }
    if (L->e->oom) { /* ids may be NULL: nothing below is safe */
        for (size_t i = 0; i < k; i++) {
            product_clear(&items[i].p);
            entry_clear(&items[i].e);
        }
        free(items);
        return;
    }
    if (k)
        qsort(items, k, sizeof *items, pitem_cmp);
    for (size_t i = 1; i < k; i++) {
        if (cat_casecmp(items[i - 1].p.id, items[i].p.id) != 0)
            continue;
        /* report at the later of the two in file order */
        const struct pitem *first = items[i - 1].orig < items[i].orig ? &items[i - 1] : &items[i];
        const struct pitem *dup = first == &items[i] ? &items[i - 1] : &items[i];
        char path[64];
        snprintf(path, sizeof path, "products[%zu].productID", dup->orig);
        errs_add(L->e, path, "duplicate id \"%s\" (products[%zu] has %s)", dup->p.id, first->orig,
                 strcmp(first->p.id, dup->p.id) ? "it, ignoring case" : "it");
    }
    struct catalog *c = L->c;
    c->products = k ? calloc(k, sizeof *c->products) : NULL;
    c->entries = k ? calloc(k, sizeof *c->entries) : NULL;
    if (k && (!c->products || !c->entries)) {
        L->e->oom = 1;
        for (size_t i = 0; i < k; i++) {
            product_clear(&items[i].p);
            entry_clear(&items[i].e);
        }
        free(items);
        return;
    }
    for (size_t i = 0; i < k; i++) {
        c->products[i] = items[i].p;
        c->entries[i] = items[i].e;
    }
    c->nproducts = k;
    free(items);
}

static void parse_rates(struct ld *L, json_t *arr)
{
    struct catalog *c = L->c;
    size_t n = json_array_size(arr);
    c->rates = n ? calloc(n, sizeof *c->rates) : NULL;
    if (n && !c->rates) {
        L->e->oom = 1;
        return;
    }
    for (size_t i = 0; i < n && !L->e->oom; i++) {
        char base[64], path[160];
        snprintf(base, sizeof base, "shipping_rates[%zu]", i);
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            errs_add(L->e, base, "must be an object, not %s", type_name(o));
            continue;
        }
        const char *id = get_str(L, o, base, "id", 1);
        if (id && !catalog_id_valid(id)) {
            pathf(path, sizeof path, base, "id");
            errs_add(L->e, path, "\"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ -", id,
                     COMMERCE_ID_MAX - 1);
            id = NULL;
        }
        for (size_t j = 0; id && j < c->nrates; j++)
            if (strcmp(c->rates[j].id, id) == 0) {
                pathf(path, sizeof path, base, "id");
                errs_add(L->e, path, "duplicate id \"%s\" (shipping_rates[%zu] has it)", id, j);
                id = NULL;
            }
        const char *cc = get_str(L, o, base, "country_code", 1);
        if (cc && !(strcmp(cc, "default") == 0 || strcmp(cc, "*") == 0 ||
                    (strlen(cc) == 2 && cc[0] >= 'A' && cc[0] <= 'Z' && cc[1] >= 'A' &&
                     cc[1] <= 'Z'))) {
            pathf(path, sizeof path, base, "country_code");
            errs_add(L->e, path,
                     "\"%s\" must be \"default\" or an ISO 3166-1 alpha-2 code like \"US\"", cc);
            cc = NULL;
        }
        const char *level = get_str(L, o, base, "service_level", 1);
        const char *title = get_str(L, o, base, "title", 1);
        int64_t price = 0;
        int ok = get_int(L, o, base, "price", 0, MONEY_AMOUNT_MAX, 1, &price);
        if (!id || !cc || !level || !title || !ok)
            continue;
        struct shipping_rate *r = &c->rates[c->nrates++];
        r->id = xstrdup(L, id);
        r->country = xstrdup(L, strcmp(cc, "default") == 0 ? "*" : cc);
        r->service_level = xstrdup(L, level);
        r->title = xstrdup(L, title);
        r->price = price;
    }
}

static void parse_discounts(struct ld *L, json_t *arr)
{
    struct catalog *c = L->c;
    size_t n = json_array_size(arr);
    c->discounts = n ? calloc(n, sizeof *c->discounts) : NULL;
    if (n && !c->discounts) {
        L->e->oom = 1;
        return;
    }
    for (size_t i = 0; i < n && !L->e->oom; i++) {
        char base[64], path[160];
        snprintf(base, sizeof base, "discounts[%zu]", i);
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            errs_add(L->e, base, "must be an object, not %s", type_name(o));
            continue;
        }
        const char *code = get_str(L, o, base, "code", 1);
        pathf(path, sizeof path, base, "code");
        if (code && !catalog_id_valid(code)) {
            errs_add(L->e, path, "\"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ -", code,
                     COMMERCE_ID_MAX - 1);
            code = NULL;
        }
        for (size_t j = 0; code && j < c->ndiscounts; j++)
            if (cat_casecmp(c->discounts[j].code, code) == 0) {
                errs_add(L->e, path, "duplicate code \"%s\" (codes ignore case)", code);
                code = NULL;
            }
        const char *type = get_str(L, o, base, "type", 1);
        enum discount_type dt = DISCOUNT_PERCENTAGE;
        if (type && strcmp(type, "fixed_amount") == 0)
            dt = DISCOUNT_FIXED_AMOUNT;
        else if (type && strcmp(type, "percentage") != 0) {
            pathf(path, sizeof path, base, "type");
            errs_add(L->e, path, "\"%s\" must be \"percentage\" or \"fixed_amount\"", type);
            type = NULL;
        }
        int64_t value = 0;
        int ok = type ? get_int(L, o, base, "value", 1,
                                dt == DISCOUNT_PERCENTAGE ? 100 : MONEY_AMOUNT_MAX, 1, &value)
                      : 0;
        const char *desc = get_str(L, o, base, "description", 0);
        if (!code || !type || !ok)
            continue;
        struct discount *d = &c->discounts[c->ndiscounts++];
        d->code = xstrdup(L, code);
        d->type = dt;
        d->value = value;
        d->description = xstrdup(L, desc);
    }
}

static int region_code_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    if (strcmp(s, "*") == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

static void parse_taxes(struct ld *L, json_t *arr)
{
    struct catalog *c = L->c;
    size_t n = json_array_size(arr);
    c->taxes = n ? calloc(n, sizeof *c->taxes) : NULL;
    if (n && !c->taxes) {
        L->e->oom = 1;
        return;
    }
    for (size_t i = 0; i < n && !L->e->oom; i++) {
        char base[64], path[160];
        snprintf(base, sizeof base, "tax_rates[%zu]", i);
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            errs_add(L->e, base, "must be an object, not %s", type_name(o));
            continue;
        }
        const char *country = get_str(L, o, base, "country", 1);
        if (country && !(strcmp(country, "*") == 0 ||
                         (strlen(country) == 2 && region_code_valid(country, 2)))) {
            pathf(path, sizeof path, base, "country");
            errs_add(L->e, path, "\"%s\" must be \"*\" or an ISO 3166-1 alpha-2 code like \"US\"",
                     country);
            country = NULL;
        }
        const char *region = get_str(L, o, base, "region", 0);
        if (!region)
            region = "*";
        pathf(path, sizeof path, base, "region");
        if (!region_code_valid(region, 8)) {
            errs_add(L->e, path, "\"%s\" must be \"*\" or a region code like \"IL\"", region);
            region = NULL;
        } else if (country && strcmp(country, "*") == 0 && strcmp(region, "*") != 0) {
            errs_add(L->e, path, "must be \"*\" when country is \"*\"");
            region = NULL;
        }
        for (size_t j = 0; country && region && j < c->ntaxes; j++)
            if (strcmp(c->taxes[j].country, country) == 0 &&
                strcmp(c->taxes[j].region, region) == 0) {
                errs_add(L->e, base, "duplicate rate for %s/%s (tax_rates[%zu] has it)", country,
                         region, j);
                region = NULL;
            }
        int64_t bp = 0;
        int ok = get_int(L, o, base, "rate_bp", 0, 10000, 1, &bp);
        json_t *st = json_object_get(o, "shipping_taxable");
        if (st && !json_is_boolean(st) && !json_is_null(st)) {
            pathf(path, sizeof path, base, "shipping_taxable");
            errs_add(L->e, path, "must be true or false, not %s", type_name(st));
        }
        if (!country || !region || !ok)
            continue;
        struct tax_rate *t = &c->taxes[c->ntaxes++];
        t->country = xstrdup(L, country);
        t->region = xstrdup(L, region);
        t->rate_bp = (int32_t)bp;
        t->shipping_taxable = json_is_true(st);
    }
}

/* Precomputes the rate list of every country that has its own rates, so
 * catalog_shipping_rates is a lookup returning a stable array. */
static void build_ship_lists(struct ld *L)
{
    struct catalog *c = L->c;
    size_t ndef = 0;
    for (size_t i = 0; i < c->nrates; i++)
        ndef += strcmp(c->rates[i].country, "*") == 0;
    c->ship_default.rates = calloc(ndef + 1, sizeof *c->ship_default.rates);
    c->ship = calloc(c->nrates + 1, sizeof *c->ship);
    if (!c->ship_default.rates || !c->ship) {
        L->e->oom = 1;
        return;
    }
    strcpy(c->ship_default.country, "*");
    for (size_t i = 0; i < c->nrates; i++)
        if (strcmp(c->rates[i].country, "*") == 0)
            c->ship_default.rates[c->ship_default.n++] = &c->rates[i];
    for (size_t i = 0; i < c->nrates; i++) {
        const char *cc = c->rates[i].country;
        int seen = strcmp(cc, "*") == 0;
        for (size_t k = 0; !seen && k < c->nship; k++)
            seen = strcmp(c->ship[k].country, cc) == 0;
        if (seen)
            continue;
        struct ship_list *sl = &c->ship[c->nship++];
        copy_str(sl->country, sizeof sl->country, cc);
        sl->rates = calloc(c->nrates, sizeof *sl->rates);
        if (!sl->rates) {
            L->e->oom = 1;
            return;
        }
        for (size_t j = 0; j < c->nrates; j++)
            if (strcmp(c->rates[j].country, cc) == 0)
                sl->rates[sl->n++] = &c->rates[j];
        size_t nown = sl->n;
        for (size_t j = 0; j < c->ship_default.n; j++) {
            const struct shipping_rate *d = c->ship_default.rates[j];
            int covered = 0;
            for (size_t k = 0; k < nown && !covered; k++)
                covered = cat_casecmp(sl->rates[k]->service_level, d->service_level) == 0;
            if (!covered)
                sl->rates[sl->n++] = d;
        }
    }
}

static json_t *get_array(struct ld *L, json_t *root, const char *key, int required)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required)
            errs_add(L->e, key, "required");
        return NULL;
    }
    if (!json_is_array(v)) {
        errs_add(L->e, key, "must be an array, not %s", type_name(v));
        return NULL;
    }
    return v;
}

int catalog_load_json(const char *text, size_t len, const char *source, struct catalog **out,
                      char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (out)
        *out = NULL;
    if (!text || !out)
        return AGENTD_EINVAL;
    struct errs e = { err, errlen, 0, 0, 0, source ? source : "catalog", text, len };

    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson reports running out of memory either with that code or,
         * from some paths, with no message at all; syntax errors always
         * have one */
        if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]) {
            if (err && errlen)
                snprintf(err, errlen, "%s: out of memory", e.source);
            return AGENTD_ENOMEM;
        }
        e.n++;
        errs_append(&e, "%s:%d:%d: %s", e.source, jerr.line, jerr.column, jerr.text);
        return AGENTD_EMALFORMED;
    }
    if (!json_is_object(root)) {
        errs_add(&e, NULL, "the top level must be a JSON object, not %s", type_name(root));
        json_decref(root);
        return AGENTD_EINVAL;
    }
    struct catalog *c = calloc(1, sizeof *c);
    if (!c) {
        json_decref(root);
        return AGENTD_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    struct ld L = { &e, c, 2 };

    const char *cur = get_str(&L, root, "", "currency", 1);
    if (cur && !money_currency_valid(cur)) {
        errs_add(&e, "currency", "\"%s\" must be an ISO 4217 code like \"USD\"", cur);
        cur = NULL;
    }
    if (cur) {
        copy_str(c->currency, sizeof c->currency, cur);
        L.exponent = money_currency_exponent(cur);
        /* products are only checked against a known currency, to avoid one
         * "differs from the catalog currency" line per product */
        json_t *products = get_array(&L, root, "products", 1);
        if (products)
            parse_products(&L, products);
    }
    json_t *a;
    if ((a = get_array(&L, root, "shipping_rates", 0)))
        parse_rates(&L, a);
    if ((a = get_array(&L, root, "discounts", 0)))
        parse_discounts(&L, a);
    if ((a = get_array(&L, root, "tax_rates", 0)))
        parse_taxes(&L, a);
    if (!e.oom && e.n == 0)
        build_ship_lists(&L);
    json_decref(root);

    if (e.oom || e.n) {
        catalog_destroy(c);
        if (e.oom) {
            if (err && errlen)
                snprintf(err, errlen, "%s: out of memory", e.source);
            return AGENTD_ENOMEM;
        }
        errs_finish(&e);
        return AGENTD_EINVAL;
    }
    *out = c;
    return 0;
}

int catalog_load_file(const char *path, struct catalog **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (out)
        *out = NULL;
    if (!path || !out)
        return AGENTD_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int en = errno;
        if (err)
            snprintf(err, errlen, "%s: %s", path, strerror(en));
        return en == ENOENT ? AGENTD_ENOTFOUND : AGENTD_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CATALOG_FILE_MAX) {
        if (err)
            snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                     CATALOG_FILE_MAX);
        fclose(f);
        return AGENTD_EIO;
    }
    size_t size = (size_t)st.st_size;
    char *text = malloc(size + 1);
    if (!text) {
        fclose(f);
        if (err)
            snprintf(err, errlen, "%s: out of memory", path);
        return AGENTD_ENOMEM;
    }
    size_t got = fread(text, 1, size, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != size) {
        if (err)
            snprintf(err, errlen, "%s: read failed", path);
        free(text);
        return AGENTD_EIO;
    }
    text[size] = 0;
    int rc = catalog_load_json(text, size, path, out, err, errlen);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Lookups. */

const char *catalog_currency(const struct catalog *c) { return c->currency; }

/* Index of the product whose id equals id ignoring case, or -1. */
static long find_ci(const struct catalog *c, const char *id)
{
    size_t lo = 0, hi = c->nproducts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cat_casecmp(id, c->products[mid].id);
        if (r == 0)
            return (long)mid;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

const struct product *catalog_product(const struct catalog *c, const char *id)
{
    if (!id)
        return NULL;
    /* ids are unique ignoring case, so the case-insensitive hit is the
     * only candidate for the exact one */
    long i = find_ci(c, id);
    return i >= 0 && strcmp(c->products[i].id, id) == 0 ? &c->products[i] : NULL;
}

const struct product *catalog_products(const struct catalog *c, size_t *n)
{
    if (n)
        *n = c->nproducts;
    return c->products;
}

const struct shipping_rate *const *catalog_shipping_rates(const struct catalog *c,
                                                           const char *country, size_t *n)
{
    const struct ship_list *sl = &c->ship_default;
    for (size_t i = 0; country && i < c->nship; i++)
        if (cat_casecmp(c->ship[i].country, country) == 0)
            sl = &c->ship[i];
    if (n)
        *n = sl->n;
    return sl->rates;
}

const struct shipping_rate *catalog_shipping_rate(const struct catalog *c, const char *id)
{
    for (size_t i = 0; id && i < c->nrates; i++)
        if (strcmp(c->rates[i].id, id) == 0)
            return &c->rates[i];
    return NULL;
}

const struct discount *catalog_discount(const struct catalog *c, const char *code)
{
    for (size_t i = 0; code && i < c->ndiscounts; i++)
        if (cat_casecmp(c->discounts[i].code, code) == 0)
            return &c->discounts[i];
    return NULL;
}

const struct discount *catalog_discounts(const struct catalog *c, size_t *n)
{
    if (n)
        *n = c->ndiscounts;
    return c->discounts;
}

const struct tax_rate *catalog_tax_rate(const struct catalog *c, const char *country,
                                        const char *region)
{
    const struct tax_rate *best = NULL;
    int best_rank = 0;
    for (size_t i = 0; i < c->ntaxes; i++) {
        const struct tax_rate *t = &c->taxes[i];
        int rank = 0;
        if (strcmp(t->country, "*") == 0)
            rank = 1;
        else if (country && cat_casecmp(t->country, country) == 0)
            rank = strcmp(t->region, "*") == 0                           ? 2
                   : region && cat_casecmp(t->region, region) == 0       ? 3
                                                                         : 0;
        if (rank > best_rank) {
            best = t;
            best_rank = rank;
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* Search. */

struct qterm {
    int is_id;               /* an exact product id or SKU typed as a word */
    char text[COMMERCE_ID_MAX];
};

struct query {
    struct qterm t[QUERY_TERMS_MAX];
    int n;
    int weak;                     /* only stopwords/numbers were given */
    char key[QUERY_TEXT_MAX + 2]; /* meaningful words " a b ", for the exact-name bonus */
};

static int sku_exists(const struct catalog *c, const char *s)
{
    for (size_t i = 0; i < c->nproducts; i++)
        if (cat_casecmp(c->products[i].sku, s) == 0)
            return 1;
    return 0;
}

static int qterm_add(struct query *q, int is_id, const char *s)
{
    for (int i = 0; i < q->n; i++)
        if (q->t[i].is_id == is_id && strcmp(q->t[i].text, s) == 0)
            return 0;
    if (q->n >= QUERY_TERMS_MAX)
        return 0;
    q->t[q->n].is_id = is_id;
    copy_str(q->t[q->n].text, sizeof q->t[q->n].text, s);
    q->n++;
    return 1;
}

/* Splits text into terms. A whitespace-separated word that is a product id
 * or SKU (any case) is one id term; other words become text tokens.
 * Stopwords and bare numbers ("show me", "add 2") are dropped unless
 * nothing else is left. */
static void query_parse(const struct catalog *c, const char *text, struct query *q)
{
    memset(q, 0, sizeof *q);
    if (!text)
        return;
    size_t len = strnlen(text, QUERY_TEXT_MAX);
    const char *s = text, *end = text + len;
    char weak[QUERY_TERMS_MAX][TOKEN_MAX];
    int nweak = 0;
    size_t keylen = 0;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
            s++;
        const char *w = s;
        while (s < end && !(*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
            s++;
        const char *we = s;
        /* punctuation around a word is not part of an id: "BISC-001," */
        while (w < we && strchr("\"'()[]{},;:!?", *w))
            w++;
        while (we > w && strchr("\"'()[]{},.;:!?", we[-1]))
            we--;
        if (w == we)
            continue;
        char word[COMMERCE_ID_MAX];
        if ((size_t)(we - w) < sizeof word) {
            memcpy(word, w, (size_t)(we - w));
            word[we - w] = 0;
            if (catalog_id_valid(word) && (find_ci(c, word) >= 0 || sku_exists(c, word))) {
                qterm_add(q, 1, word);
                continue;
            }
        }
        char tok[TOKEN_MAX];
        const char *p = w;
        while (tok_next(&p, we, tok)) {
            if (is_stopword(tok) || is_number(tok)) {
                if (nweak < QUERY_TERMS_MAX)
                    copy_str(weak[nweak++], TOKEN_MAX, tok);
                continue;
            }
            if (qterm_add(q, 0, tok) && keylen + strlen(tok) + 2 < sizeof q->key) {
                q->key[keylen++] = ' ';
                memcpy(q->key + keylen, tok, strlen(tok));
                keylen += strlen(tok);
            }
        }
    }
    if (keylen) {
        q->key[keylen++] = ' ';
        q->key[keylen] = 0;
    }
    if (q->n == 0 && nweak) {
        q->weak = 1;
        for (int i = 0; i < nweak; i++)
            qterm_add(q, 0, weak[i]);
    }
}

/* Score of one term against one product; 0 = no match. The best field
 * counts fully and each other field that also matches adds a third of its
 * weight, so "chips" ranks chips (name + category) above chocolate chip
 * cookies (name only). */
static int term_score(const struct product *p, const struct cat_entry *e, const struct qterm *t)
{
    if (t->is_id)
        return cat_casecmp(t->text, p->id) == 0 ? 100 : cat_casecmp(t->text, p->sku) == 0 ? 90 : 0;
    char needle[TOKEN_MAX + 3];
    size_t n = strlen(t->text);
    needle[0] = ' ';
    memcpy(needle + 1, t->text, n);
    needle[n + 1] = ' ';
    needle[n + 2] = 0;
    int best = 0, sum = 0;
    for (int f = 0; f < F_COUNT; f++) {
        int w = 0;
        if (strstr(e->norm[f], needle))
            w = w_exact[f];
        else if (n >= 3) {
            needle[n + 1] = 0; /* " tok": a prefix of some word */
            if (strstr(e->norm[f], needle))
                w = w_prefix[f];
            needle[n + 1] = ' ';
        }
        sum += w;
        if (w > best)
            best = w;
    }
    return best ? best + (sum - best) / 3 : 0;
}

struct cand {
    size_t idx;
    int matched, score;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->matched != y->matched)
        return y->matched - x->matched;
    if (x->score != y->score)
        return y->score - x->score;
    /* products are sorted by id, so the index order is the id order */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Filters and ranks; *out (caller frees) holds the matches best first. */
static int rank(const struct catalog *c, const struct catalog_query *qq, struct cand **out,
                size_t *nout, int *nterms, int *weak)
{
    struct query q;
    query_parse(c, qq->text, &q);
    *nterms = q.n;
    if (weak)
        *weak = q.weak;
    *nout = 0;
    *out = NULL;
    if (c->nproducts == 0)
        return 0;
    struct cand *cands = malloc(c->nproducts * sizeof *cands);
    if (!cands)
        return AGENTD_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < c->nproducts; i++) {
        const struct product *p = &c->products[i];
        const struct cat_entry *e = &c->entries[i];
        if (qq->category && *qq->category && cat_casecmp(p->category, qq->category) != 0)
            continue;
        if (qq->max_price > 0 && p->price > qq->max_price)
            continue;
        if (qq->in_stock_only) {
            int64_t stock = qq->stock ? qq->stock(qq->stock_ud, p->id) : -1;
            if (stock < 0)
                stock = p->stock;
            if (!p->available || stock <= 0)
                continue;
        }
        int matched = 0, score = 0;
        for (int t = 0; t < q.n; t++) {
            int s = term_score(p, e, &q.t[t]);
            matched += s > 0;
            score += s;
        }
        if (q.n && !matched)
            continue;
        if (q.key[0])
            for (size_t k = 0; k < e->nkeys; k++)
                if (strcmp(e->keys[k], q.key) == 0) {
                    score += EXACT_NAME_BONUS;
                    break;
                }
        cands[n++] = (struct cand){ i, matched, score };
    }
    qsort(cands, n, sizeof *cands, cand_cmp);
    *out = cands;
    *nout = n;
    return 0;
}

int catalog_search(const struct catalog *c, const struct catalog_query *q,
                   struct catalog_hits *out)
{
    if (!c || !q || !out)
        return AGENTD_EINVAL;
    out->total = out->n = 0;
    out->terms = 0;
    struct cand *cands;
    size_t n;
    int rc = rank(c, q, &cands, &n, &out->terms, NULL);
    if (rc)
        return rc;
    size_t limit = q->limit ? q->limit : CATALOG_SEARCH_DEFAULT;
    if (limit > CATALOG_SEARCH_MAX)
        limit = CATALOG_SEARCH_MAX;
    out->total = n;
    for (size_t i = q->offset; i < n && out->n < limit; i++)
        out->hits[out->n++] = (struct catalog_hit){ &c->products[cands[i].idx], cands[i].matched,
                                                    cands[i].score };
    free(cands);
    return 0;
}

int catalog_resolve(const struct catalog *c, const char *text, const struct product **out)
{
    if (out)
        *out = NULL;
    if (!c || !text || !out)
        return AGENTD_EINVAL;
    struct catalog_query q = { .text = text };
    struct cand *cands;
    size_t n;
    int nterms, weak;
    int rc = rank(c, &q, &cands, &n, &nterms, &weak);
    if (rc)
        return rc;
    /* only products matching every term qualify; sorted, they come first */
    size_t full = 0;
    while (full < n && cands[full].matched == nterms)
        full++;
    /* "2" or "please" alone must not pick a product */
    if (nterms == 0 || weak || full == 0)
        rc = AGENTD_ENOTFOUND;
    else if (full == 1 || cands[0].score >= cands[1].score + RESOLVE_MARGIN)
        *out = &c->products[cands[0].idx];
    else
        rc = AGENTD_ECONFLICT;
    free(cands);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Live slot. */

void catalog_slot_init(struct catalog_slot *s, struct catalog *c)
{
    pthread_mutex_init(&s->mu, NULL);
    s->cur = c;
}

struct catalog *catalog_slot_get(struct catalog_slot *s)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *c = catalog_ref(s->cur);
    pthread_mutex_unlock(&s->mu);
    return c;
}

void catalog_slot_set(struct catalog_slot *s, struct catalog *c)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *old = s->cur;
    s->cur = c;
    pthread_mutex_unlock(&s->mu);
    catalog_unref(old); /* outside the lock: freeing a catalog takes a while */
}

void catalog_slot_destroy(struct catalog_slot *s)
{
    catalog_unref(s->cur);
    s->cur = NULL;
    pthread_mutex_destroy(&s->mu);
}
