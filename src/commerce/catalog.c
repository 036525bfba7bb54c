/* Catalog: the validating loader of catalog JSON text (every problem listed
 * with its line) and lookups, over an immutable, reference-counted snapshot. */
#define _GNU_SOURCE
#include "commerce/catalog.h"
#include "commerce/catalog_internal.h"
#include "commerce/fields.h"
#include "commerce/money.h"
#include "core/buf.h"
#include "core/err.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


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
    struct catalog_problems p;
    int oom;
    const char *source;
    const char *text;
    size_t textlen;
};

static void problems_append(struct catalog_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problems_append(struct catalog_problems *p, const char *fmt, ...)
{
    if (!p->e)
        return;
    va_list ap;
    va_start(ap, fmt);
    fixbuf_vappendf(p->e->msg, sizeof p->e->msg, &p->off, fmt, ap);
    va_end(ap);
}

void catalog_problem_vadd(struct catalog_problems *p, const char *where, size_t line,
                          const char *field, const char *fmt, va_list ap)
{
    p->n++;
    if (p->n > CATALOG_ERRORS_MAX || !p->e)
        return;
    if (p->n > 1)
        problems_append(p, "\n");
    if (line)
        problems_append(p, "%s:%zu: ", where, line);
    else
        problems_append(p, "%s: ", where);
    if (field && *field)
        problems_append(p, "%s: ", field);
    fixbuf_vappendf(p->e->msg, sizeof p->e->msg, &p->off, fmt, ap);
}

void catalog_problem_add(struct catalog_problems *p, const char *where, size_t line,
                         const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    catalog_problem_vadd(p, where, line, field, fmt, ap);
    va_end(ap);
}

void catalog_problems_end(struct catalog_problems *p)
{
    if (p->n > CATALOG_ERRORS_MAX)
        problems_append(p, "\n(%d more problems not shown)", p->n - CATALOG_ERRORS_MAX);
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
    int line = e->text && path ? json_path_line(e->text, e->textlen, path) : 0;
    va_list ap;
    va_start(ap, fmt);
    catalog_problem_vadd(&e->p, e->source, line > 0 ? (size_t)line : 0, path, fmt, ap);
    va_end(ap);
}

/* Field tables of the catalog's owned structs (see fields.h). */
#define T struct product
static const struct field product_fields[] = {
    FIELD_S(T, id, NULL),    FIELD_S(T, sku, NULL),       FIELD_S(T, name, NULL),
    FIELD_S(T, description, NULL), FIELD_S(T, brand, NULL), FIELD_S(T, image_url, NULL),
    FIELD_S(T, url, NULL),   FIELD_S(T, category, NULL),  FIELD_S(T, gtin, NULL),
};
#undef T
static const struct shape product_shape = {sizeof(struct product), product_fields,
                                           FIELDS_N(product_fields), NULL, NULL};

#define T struct shipping_rate
static const struct field rate_fields[] = {
    FIELD_S(T, id, NULL), FIELD_S(T, country, NULL), FIELD_S(T, service_level, NULL),
    FIELD_S(T, title, NULL),
};
#undef T
static const struct shape rate_shape = {sizeof(struct shipping_rate), rate_fields,
                                        FIELDS_N(rate_fields), NULL, NULL};

#define T struct discount
static const struct field discount_fields[] = {FIELD_S(T, code, NULL), FIELD_S(T, description, NULL)};
#undef T
static const struct shape discount_shape = {sizeof(struct discount), discount_fields,
                                            FIELDS_N(discount_fields), NULL, NULL};

#define T struct tax_rate
static const struct field tax_fields[] = {FIELD_S(T, country, NULL), FIELD_S(T, region, NULL)};
#undef T
static const struct shape tax_shape = {sizeof(struct tax_rate), tax_fields, FIELDS_N(tax_fields),
                                       NULL, NULL};

static void product_clear(struct product *p)
{
    fields_clear(&product_shape, p);
}

static void entry_clear(struct cat_entry *e)
{
    for (int f = 0; f < F_COUNT; f++)
        free(e->norm[f]);
    free(e->all);
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
    fields_arr_free(&rate_shape, c->rates, c->nrates);
    for (size_t i = 0; i < c->nship; i++)
        free(c->ship[i].rates);
    free(c->ship);
    free(c->ship_default.rates);
    fields_arr_free(&discount_shape, c->discounts, c->ndiscounts);
    fields_arr_free(&tax_shape, c->taxes, c->ntaxes);
    catalog_extra_free(c);
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

/* Member key of o (at path, for messages): NULL when absent or null
 * (reported if required) or not of type t, `kind` in words (reported). */
static json_t *get_member(struct ld *L, json_t *o, const char *path, const char *key, int required,
                          json_type t, const char *kind)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required)
            errs_add(L->e, path, "required");
        return NULL;
    }
    if (json_typeof(v) != t) {
        errs_add(L->e, path, "must be %s, not %s", kind, fields_json_type_name(v));
        return NULL;
    }
    return v;
}

/* A string member. Returns it, or NULL when absent (reported if required)
 * or of the wrong type (reported). Empty required strings are reported. */
static const char *get_str(struct ld *L, json_t *o, const char *base, const char *key, int required)
{
    char path[160];
    pathf(path, sizeof path, base, key);
    json_t *v = get_member(L, o, path, key, required, JSON_STRING, "a string");
    if (!v)
        return NULL;
    const char *s = json_string_value(v);
    if (required && !*s) {
        errs_add(L->e, path, "must not be empty");
        return NULL;
    }
    return s;
}

/* A required id member (a productID, a rate's id, a discount's code): it,
 * or NULL when absent or not catalog_id_valid (reported). */
static const char *get_id(struct ld *L, json_t *o, const char *base, const char *key)
{
    const char *id = get_str(L, o, base, key, 1);
    if (id && !catalog_id_valid(id)) {
        char path[160];
        pathf(path, sizeof path, base, key);
        errs_add(L->e, path, "\"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ -", id,
                 COMMERCE_ID_MAX - 1);
        return NULL;
    }
    return id;
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
            errs_add(L->e, path, "must be an integer, not %s", fields_json_type_name(v));
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
        errs_add(L->e, path, "must be a string or an array of strings, not %s", fields_json_type_name(v));
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            char ipath[200];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            errs_add(L->e, ipath, "must be a string, not %s", fields_json_type_name(s));
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
        catalog_norm_append(&b, parts[i], keys);
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
    /* each field ends with its space: a " tok" found here is in one field */
    struct buf all = { 0 };
    for (int f = 0; f < F_COUNT; f++)
        if (e->norm[f])
            buf_puts(&all, e->norm[f]);
    if (all.oom || !all.data) {
        buf_free(&all);
        L->e->oom = 1;
    } else {
        e->all = all.data;
    }
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
        errs_add(L->e, base, "must be an object, not %s", fields_json_type_name(o));
        return 0;
    }
    struct product *p = &it->p;
    it->orig = i;

    const char *type = get_str(L, o, base, "@type", 0);
    if (type && strcmp(type, "Product") != 0) {
        pathf(path, sizeof path, base, "@type");
        errs_add(L->e, path, "must be \"Product\", not \"%s\"", type);
    }
    const char *id = get_id(L, o, base, "productID");
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
        errs_add(L->e, obase, "must be an object, not %s", fields_json_type_name(offers));
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
        errs_add(L->e, ibase, "must be an object, not %s", fields_json_type_name(inv));
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

/* Entry i of a section array, its path "name[i]" in base; NULL (reported)
 * when it is not an object. */
static json_t *entry_object(struct ld *L, json_t *arr, size_t i, const char *name, char *base,
                            size_t baselen)
{
    snprintf(base, baselen, "%s[%zu]", name, i);
    json_t *o = json_array_get(arr, i);
    if (!json_is_object(o)) {
        errs_add(L->e, base, "must be an object, not %s", fields_json_type_name(o));
        return NULL;
    }
    return o;
}

/* Checks one section entry (object o at path base) against the entries kept
 * so far and fills slot; 1 when the entry is kept. */
typedef int (*entry_fn)(struct ld *L, json_t *o, const char *base, void *slot);

/* A section array (shipping_rates, discounts, tax_rates): every entry is
 * checked and reported; the good ones are kept in order in a fresh array set
 * at *field (a T **), their count in *count. */
static void parse_section(struct ld *L, json_t *arr, const char *name, size_t size, void *field,
                          size_t *count, entry_fn fn)
{
    size_t n = json_array_size(arr);
    char *items = n ? calloc(n, size) : NULL;
    memcpy(field, &items, sizeof items);
    *count = 0;
    if (n && !items)
        L->e->oom = 1;
    for (size_t i = 0; items && i < n && !L->e->oom; i++) {
        char base[64];
        json_t *o = entry_object(L, arr, i, name, base, sizeof base);
        if (o && fn(L, o, base, items + *count * size))
            (*count)++;
    }
}

static int rate_entry(struct ld *L, json_t *o, const char *base, void *slot)
{
    struct catalog *c = L->c;
    char path[160];
    const char *id = get_id(L, o, base, "id");
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
        return 0;
    struct shipping_rate *r = slot;
    r->id = xstrdup(L, id);
    r->country = xstrdup(L, strcmp(cc, "default") == 0 ? "*" : cc);
    r->service_level = xstrdup(L, level);
    r->title = xstrdup(L, title);
    r->price = price;
    return 1;
}

static int discount_entry(struct ld *L, json_t *o, const char *base, void *slot)
{
    struct catalog *c = L->c;
    char path[160];
    const char *code = get_id(L, o, base, "code");
    pathf(path, sizeof path, base, "code");
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
        return 0;
    struct discount *d = slot;
    d->code = xstrdup(L, code);
    d->type = dt;
    d->value = value;
    d->description = xstrdup(L, desc);
    return 1;
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

static int tax_entry(struct ld *L, json_t *o, const char *base, void *slot)
{
    struct catalog *c = L->c;
    char path[160];
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
        errs_add(L->e, path, "must be true or false, not %s", fields_json_type_name(st));
    }
    if (!country || !region || !ok)
        return 0;
    struct tax_rate *t = slot;
    t->country = xstrdup(L, country);
    t->region = xstrdup(L, region);
    t->rate_bp = (int32_t)bp;
    t->shipping_taxable = json_is_true(st);
    return 1;
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
    return get_member(L, root, key, key, required, JSON_ARRAY, "an array");
}

int catalog_load_json(const char *text, size_t len, const char *source, struct catalog **out,
                      struct agentd_error *ae)
{
    if (ae)
        *ae = (struct agentd_error){ 0 };
    if (out)
        *out = NULL;
    if (!text || !out)
        return AGENTD_EINVAL;
    struct errs e = { { ae, 0, 0 }, 0, source ? source : "catalog", text, len };

    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson reports running out of memory either with that code or,
         * from some paths, with no message at all; syntax errors always
         * have one */
        if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]) {
            return agentd_fail(ae, AGENTD_ENOMEM, NULL, NULL, "%s: out of memory", e.source);
        }
        char where[4096];
        snprintf(where, sizeof where, "%s:%d:%d", e.source, jerr.line, jerr.column);
        catalog_problem_add(&e.p, where, 0, NULL, "%s", jerr.text);
        return AGENTD_EMALFORMED;
    }
    if (!json_is_object(root)) {
        errs_add(&e, NULL, "the top level must be a JSON object, not %s", fields_json_type_name(root));
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
        parse_section(&L, a, "shipping_rates", sizeof *c->rates, &c->rates, &c->nrates, rate_entry);
    if ((a = get_array(&L, root, "discounts", 0)))
        parse_section(&L, a, "discounts", sizeof *c->discounts, &c->discounts, &c->ndiscounts,
                      discount_entry);
    if ((a = get_array(&L, root, "tax_rates", 0)))
        parse_section(&L, a, "tax_rates", sizeof *c->taxes, &c->taxes, &c->ntaxes, tax_entry);
    if (!e.oom && catalog_extra_load(c, root, &e.p))
        e.oom = 1;
    if (!e.oom && e.p.n == 0)
        build_ship_lists(&L);
    json_decref(root);

    if (e.oom || e.p.n) {
        catalog_destroy(c);
        if (e.oom) {
            return agentd_fail(ae, AGENTD_ENOMEM, NULL, NULL, "%s: out of memory", e.source);
        }
        catalog_problems_end(&e.p);
        return AGENTD_EINVAL;
    }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lookups. */

const char *catalog_currency(const struct catalog *c) { return c->currency; }

/* Index of the product whose id equals id ignoring case, or -1. */
long catalog_find_ci(const struct catalog *c, const char *id)
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
    long i = catalog_find_ci(c, id);
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

