/* CSV import: turns UCP's sample-merchant CSV files into catalog JSON, so the
 * server only ever loads (and validates) one format. */
#define _GNU_SOURCE
#include "shop/catalog_load.h"
#include "commerce/money.h"
#include "core/buf.h"
#include "core/err.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A merchant CSV larger than this is a mistake. */
#define CSV_FILE_MAX (64u << 20)

/* ------------------------------------------------------------------ */
/* RFC 4180 reader: quoted fields with embedded commas, newlines and doubled
 * quotes; CRLF, LF or CR line ends; a UTF-8 BOM; blank lines skipped.
 * Like Python's csv module, a quote inside an unquoted field is a literal
 * character (12" pizza); text after a closing quote is an error because it
 * means the quoting is broken. */

struct csv_row {
    char **f;
    size_t nf;
    size_t line; /* where the record starts */
};

struct csv {
    struct csv_row *rows; /* rows[0] is the header */
    size_t nrows;
};

static void csv_free(struct csv *c)
{
    for (size_t r = 0; r < c->nrows; r++) {
        for (size_t k = 0; k < c->rows[r].nf; k++)
            free(c->rows[r].f[k]);
        free(c->rows[r].f);
    }
    free(c->rows);
    memset(c, 0, sizeof *c);
}

struct sbuf {
    char *d;
    size_t n, cap;
};

static int sbuf_put(struct sbuf *b, char ch)
{
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char *d = realloc(b->d, cap);
        if (!d)
            return AGENTD_ENOMEM;
        b->d = d;
        b->cap = cap;
    }
    b->d[b->n++] = ch;
    b->d[b->n] = 0;
    return 0;
}

/* Surrounding blanks are never meaningful in these files. */
static char *dup_trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return strndup(s, n);
}

static int row_push(struct csv_row *row, char *field, size_t *cap)
{
    if (!field)
        return AGENTD_ENOMEM;
    if (row->nf == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **f = realloc(row->f, nc * sizeof *f);
        if (!f) {
            free(field);
            return AGENTD_ENOMEM;
        }
        row->f = f;
        *cap = nc;
    }
    row->f[row->nf++] = field;
    return 0;
}

/* Returns 0, -1 after reporting a format problem, or AGENTD_ENOMEM. */
static int csv_parse(const char *file, const char *t, size_t len, struct csv *out,
                     struct catalog_problems *e)
{
    memset(out, 0, sizeof *out);
    size_t i = 0, line = 1, rowcap = 0;
    if (len >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    const char *nul = memchr(t, 0, len);
    if (nul) {
        size_t l = 1;
        for (const char *p = t; p < nul; p++)
            l += *p == '\n';
        catalog_problem_add(e, file, l, NULL, "contains a NUL byte (not a text file?)");
        return AGENTD_EINVAL;
    }
    struct sbuf fb = { 0 };
    int rc = 0;
    while (i < len && rc == 0) {
        struct csv_row row = { NULL, 0, line };
        size_t fcap = 0;
        int any_quoted = 0;
        for (;;) {
            fb.n = 0;
            if (fb.d)
                fb.d[0] = 0;
            if (i < len && t[i] == '"') {
                any_quoted = 1;
                size_t open_line = line;
                i++;
                for (;;) {
                    if (i >= len) {
                        catalog_problem_add(e, file, open_line, NULL,
                               "a quoted field is never closed (missing \")");
                        rc = AGENTD_EINVAL;
                        break;
                    }
                    char ch = t[i];
                    if (ch == '"') {
                        if (i + 1 < len && t[i + 1] == '"') {
                            i += 2;
                            if (sbuf_put(&fb, '"')) {
                                rc = AGENTD_ENOMEM;
                                break;
                            }
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (ch == '\n' || (ch == '\r' && !(i + 1 < len && t[i + 1] == '\n')))
                        line++;
                    if (sbuf_put(&fb, ch)) {
                        rc = AGENTD_ENOMEM;
                        break;
                    }
                    i++;
                }
                if (rc == 0 && i < len && t[i] != ',' && t[i] != '\r' && t[i] != '\n') {
                    catalog_problem_add(e, file, line, NULL,
                           "unexpected text after a closing quote (write a quote inside a "
                           "quoted field as \"\")");
                    rc = AGENTD_EINVAL;
                }
            } else {
                while (i < len && t[i] != ',' && t[i] != '\r' && t[i] != '\n') {
                    if (sbuf_put(&fb, t[i++])) {
                        rc = AGENTD_ENOMEM;
                        break;
                    }
                }
            }
            if (rc == 0 && row_push(&row, dup_trimmed(fb.d ? fb.d : "", fb.n), &fcap))
                rc = AGENTD_ENOMEM;
            if (rc != 0)
                break;
            if (i < len && t[i] == ',') {
                i++;
                continue;
            }
            if (i < len && t[i] == '\r') {
                i++;
                if (i < len && t[i] == '\n')
                    i++;
                line++;
            } else if (i < len && t[i] == '\n') {
                i++;
                line++;
            }
            break;
        }
        int blank = rc == 0 && row.nf == 1 && row.f[0][0] == 0 && !any_quoted;
        if (rc != 0 || blank) {
            for (size_t k = 0; k < row.nf; k++)
                free(row.f[k]);
            free(row.f);
            continue;
        }
        if (out->nrows == rowcap) {
            size_t nc = rowcap ? rowcap * 2 : 16;
            struct csv_row *rows = realloc(out->rows, nc * sizeof *rows);
            if (!rows) {
                for (size_t k = 0; k < row.nf; k++)
                    free(row.f[k]);
                free(row.f);
                rc = AGENTD_ENOMEM;
                break;
            }
            out->rows = rows;
            rowcap = nc;
        }
        out->rows[out->nrows++] = row;
    }
    free(fb.d);
    if (rc != 0)
        csv_free(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Files and columns. */

struct ictx {
    struct catalog_problems *e;
    int oom;
};

/* Reads dir/name. Returns 1 (read), 0 (no such file) or a negative status
 * after reporting. */
static int read_file(struct ictx *x, const char *dir, const char *name, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        catalog_problem_add(x->e, name, 0, NULL, "path too long");
        return AGENTD_EINVAL;
    }
    struct agentd_error fe = { 0 };
    int rc = catalog_file_read(path, CSV_FILE_MAX, text, len, &fe);
    if (rc == AGENTD_ENOTFOUND)
        return 0;
    if (rc == AGENTD_ENOMEM)
        x->oom = 1;
    else if (rc)
        catalog_problem_add(x->e, name, 0, NULL, "%s", fe.msg);
    if (rc)
        return rc;
    return 1;
}

struct colspec {
    const char *name;
    int required;
};

static int lower_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a + 32) : *a;
        char y = (*b >= 'A' && *b <= 'Z') ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

/* Maps spec columns to header positions by name (any order, any case,
 * extra columns ignored). Returns 0 when every required column exists. */
static int map_header(struct ictx *x, const char *file, const struct csv_row *h,
                      const struct colspec *spec, int n, int *idx)
{
    int ok = 1;
    for (int k = 0; k < n; k++) {
        idx[k] = -1;
        for (size_t c = 0; c < h->nf; c++) {
            if (!lower_eq(h->f[c], spec[k].name))
                continue;
            if (idx[k] >= 0) {
                catalog_problem_add(x->e, file, h->line, NULL, "column \"%s\" appears twice", spec[k].name);
                ok = 0;
            } else {
                idx[k] = (int)c;
            }
        }
        if (idx[k] < 0 && spec[k].required) {
            catalog_problem_add(x->e, file, h->line, NULL, "missing column \"%s\"", spec[k].name);
            ok = 0;
        }
    }
    return ok ? 0 : -1;
}

static const char *cell(const struct csv_row *r, int idx)
{
    return idx >= 0 && (size_t)idx < r->nf ? r->f[idx] : "";
}

/* Every record must have the header's shape: a record with an extra field
 * is almost always an unquoted comma in a title. */
static int row_shape_ok(struct ictx *x, const char *file, const struct csv *c, size_t r)
{
    if (c->rows[r].nf == c->rows[0].nf)
        return 1;
    catalog_problem_add(x->e, file, c->rows[r].line, NULL, "%zu fields, but the header has %zu%s",
           c->rows[r].nf, c->rows[0].nf,
           c->rows[r].nf > c->rows[0].nf ? " (quote values that contain commas)" : "");
    return 0;
}

/* A non-negative integer in [min, max]. Returns 1 or reports and returns 0. */
static int cell_int(struct ictx *x, const char *file, size_t line, const char *col, const char *s,
                    int64_t min, int64_t max, int64_t *out)
{
    const char *p = s;
    int neg = *p == '-';
    if (neg || *p == '+')
        p++;
    if (!*p) {
        catalog_problem_add(x->e, file, line, col, "\"%s\" is not an integer", s);
        return 0;
    }
    int64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            catalog_problem_add(x->e, file, line, col, "\"%s\" is not an integer", s);
            return 0;
        }
        if (v <= MONEY_AMOUNT_MAX)
            v = v * 10 + (*p - '0');
    }
    if (neg && v) {
        catalog_problem_add(x->e, file, line, col, "\"%s\" must not be negative", s);
        return 0;
    }
    if (v < min || v > max) {
        catalog_problem_add(x->e, file, line, col, "\"%s\" must be from %lld to %lld", s, (long long)min,
               (long long)max);
        return 0;
    }
    *out = v;
    return 1;
}

static int cell_id(struct ictx *x, const char *file, size_t line, const char *col, const char *s)
{
    if (catalog_id_valid(s))
        return 1;
    if (!*s)
        catalog_problem_add(x->e, file, line, col, "must not be empty");
    else
        catalog_problem_add(x->e, file, line, col, "\"%s\" must be 1-%d characters of A-Z a-z 0-9 . _ -", s,
               COMMERCE_ID_MAX - 1);
    return 0;
}

/* Adds a member; a NULL value means out of memory. */
static void jset(struct ictx *x, json_t *o, const char *k, json_t *v)
{
    if (!v || json_object_set_new(o, k, v) != 0)
        x->oom = 1;
}

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF): the
 * same rule jansson applies, checked here so the message can say where. */
static int utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        int n = c < 0x80            ? 0
                : (c & 0xE0) == 0xC0 ? 1
                : (c & 0xF0) == 0xE0 ? 2
                : (c & 0xF8) == 0xF0 ? 3
                                     : -1;
        if (n < 0 || (n == 1 && c < 0xC2) || (n == 3 && c > 0xF4))
            return 0;
        unsigned cp = n ? c & (0x3Fu >> n) : c;
        for (int k = 1; k <= n; k++) {
            if ((s[k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[k] & 0x3Fu);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        s += n + 1;
    }
    return 1;
}

static json_t *jstr(struct ictx *x, const char *file, size_t line, const char *col, const char *s)
{
    if (!utf8_valid((const unsigned char *)s)) {
        catalog_problem_add(x->e, file, line, col, "is not valid UTF-8 text");
        s = "";
    }
    return json_string(s); /* NULL (out of memory) is caught by jset */
}

/* ------------------------------------------------------------------ */
/* The four files. */

struct pref {
    const char *id;
    size_t line;
    json_t *obj;
    int has_inv;
};

static int pref_cmp(const void *a, const void *b)
{
    const struct pref *x = a, *y = b;
    int r = strcasecmp(x->id, y->id);
    return r ? r : (x->line > y->line) - (x->line < y->line);
}

static struct pref *pref_find(struct pref *refs, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcasecmp(id, refs[mid].id);
        if (r == 0)
            return strcmp(id, refs[mid].id) == 0 ? &refs[mid] : NULL;
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* One CSV file being imported, as its row handlers see it: the header's
 * column positions (by the spec's order) and the caller's state. */
struct sect {
    struct ictx *x;
    const char *file;
    const struct csv *c;
    int idx[8];
    void *arg;
};
typedef void (*row_fn)(struct sect *s, const struct csv_row *row, size_t r);

/* Each record of c with the header's shape (the others are reported)
 * through fn, until out of memory; nothing when the file is empty or its
 * header lacks a required column (reported). */
static void each_row(struct ictx *x, const char *file, const struct csv *c,
                     const struct colspec *spec, int n, row_fn fn, void *arg)
{
    struct sect s = { x, file, c, { 0 }, arg };
    if (c->nrows == 0 || map_header(x, file, &c->rows[0], spec, n, s.idx))
        return;
    for (size_t r = 1; r < c->nrows && !x->oom; r++)
        if (row_shape_ok(x, file, c, r))
            fn(&s, &c->rows[r], r);
}

/* Column k's text in a record. */
static const char *col(const struct sect *s, const struct csv_row *row, int k)
{
    return cell(row, s->idx[k]);
}

/* 1 when record r's key (column k, named name) is not an earlier well-shaped
 * record's, else 0, reported with `note` after the first one's line. */
static int key_first(struct sect *s, size_t r, int k, const char *name, int icase,
                     const char *note)
{
    const struct csv *c = s->c;
    const char *key = col(s, &c->rows[r], k);
    for (size_t j = 1; j < r; j++) {
        const char *other = col(s, &c->rows[j], k);
        if (c->rows[j].nf == c->rows[0].nf &&
            (icase ? strcasecmp(other, key) : strcmp(other, key)) == 0) {
            catalog_problem_add(s->x->e, s->file, c->rows[r].line, name, "duplicate \"%s\" (first on line %zu%s)",
                   key, c->rows[j].line, note);
            return 0;
        }
    }
    return 1;
}

/* A new object appended to the section's array (s->arg) for a good row's
 * members; NULL (noted) when out of memory. */
static json_t *row_object(struct sect *s)
{
    json_t *o = json_object();
    if (!o || json_array_append_new(s->arg, o) != 0) { /* _new drops o on failure */
        s->x->oom = 1;
        return NULL;
    }
    return o;
}

/* A column that must not be empty: 1, or reported and 0. */
static int col_given(struct sect *s, const struct csv_row *row, const char *name, const char *v)
{
    if (*v)
        return 1;
    catalog_problem_add(s->x->e, s->file, row->line, name, "must not be empty");
    return 0;
}

struct products {
    json_t *arr;
    struct pref *refs;
    size_t n;
};

static void product_row(struct sect *s, const struct csv_row *row, size_t r)
{
    (void)r;
    struct ictx *x = s->x;
    const char *const F = s->file;
    struct products *P = s->arg;
    const char *id = col(s, row, 0), *title = col(s, row, 1);
    const char *price_s = col(s, row, 2), *img = col(s, row, 3);
    int ok = cell_id(x, F, row->line, "id", id);
    ok &= col_given(s, row, "title", title);
    int64_t price = 0;
    ok &= cell_int(x, F, row->line, "price", price_s, 0, MONEY_AMOUNT_MAX, &price);
    if (*img && strncmp(img, "https://", 8) != 0 && strncmp(img, "http://", 7) != 0) {
        catalog_problem_add(x->e, F, row->line, "image_url", "\"%s\" must be an http(s) URL", img);
        ok = 0;
    }
    if (!ok)
        return;
    char pbuf[MONEY_FORMAT_MAX];
    money_format(price, 2, pbuf, sizeof pbuf);
    json_t *p = json_object(), *offers = json_object(), *inv = json_object();
    if (!p || !offers || !inv) {
        json_decref(p);
        json_decref(offers);
        json_decref(inv);
        x->oom = 1;
        return;
    }
    jset(x, p, "@type", json_string("Product"));
    jset(x, p, "productID", json_string(id));
    jset(x, p, "sku", json_string(id));
    jset(x, p, "name", jstr(x, F, row->line, "title", title));
    jset(x, p, "description", json_string(""));
    if (*img)
        jset(x, p, "image", jstr(x, F, row->line, "image_url", img));
    jset(x, offers, "@type", json_string("Offer"));
    jset(x, offers, "price", json_string(pbuf));
    jset(x, offers, "priceCurrency", json_string("USD"));
    jset(x, offers, "availability", json_string("https://schema.org/OutOfStock"));
    jset(x, p, "offers", offers);
    jset(x, inv, "quantity", json_integer(0));
    jset(x, p, "inventory", inv);
    if (json_array_append_new(P->arr, p) != 0) {
        x->oom = 1;
        return;
    }
    P->refs[P->n++] = (struct pref){ id, row->line, p, 0 };
}

static void import_products(struct ictx *x, const struct csv *c, json_t *arr,
                            struct pref **refs_out, size_t *nrefs)
{
    static const char *const F = "products.csv";
    static const struct colspec spec[] = { { "id", 1 }, { "title", 1 }, { "price", 1 },
                                           { "image_url", 0 } };
    struct products P = { arr, NULL, 0 };
    *refs_out = NULL;
    *nrefs = 0;
    if (c->nrows && !(P.refs = calloc(c->nrows, sizeof *P.refs))) {
        x->oom = 1;
        return;
    }
    each_row(x, F, c, spec, 4, product_row, &P);
    if (P.n)
        qsort(P.refs, P.n, sizeof *P.refs, pref_cmp);
    for (size_t k = 1; k < P.n; k++)
        if (strcasecmp(P.refs[k - 1].id, P.refs[k].id) == 0)
            catalog_problem_add(x->e, F, P.refs[k].line, "id", "duplicate \"%s\" (first on line %zu%s)",
                   P.refs[k].id, P.refs[k - 1].line,
                   strcmp(P.refs[k - 1].id, P.refs[k].id) ? ", ignoring case" : "");
    *refs_out = P.refs;
    *nrefs = P.n;
}

static void inventory_row(struct sect *s, const struct csv_row *row, size_t r)
{
    (void)r;
    struct ictx *x = s->x;
    const struct products *P = s->arg;
    const char *id = col(s, row, 0);
    int64_t q = 0;
    int ok = cell_int(x, s->file, row->line, "quantity", col(s, row, 1), 0, CATALOG_STOCK_MAX, &q);
    struct pref *p = pref_find(P->refs, P->n, id);
    if (!p) {
        catalog_problem_add(x->e, s->file, row->line, "product_id", "\"%s\" is not in products.csv", id);
        return;
    }
    if (p->has_inv) {
        catalog_problem_add(x->e, s->file, row->line, "product_id", "\"%s\" appears twice", id);
        return;
    }
    p->has_inv = 1;
    if (!ok)
        return;
    jset(x, json_object_get(p->obj, "inventory"), "quantity", json_integer(q));
    if (q > 0)
        jset(x, json_object_get(p->obj, "offers"), "availability",
             json_string("https://schema.org/InStock"));
}

static void import_inventory(struct ictx *x, const struct csv *c, struct pref *refs, size_t n)
{
    static const struct colspec spec[] = { { "product_id", 1 }, { "quantity", 1 } };
    struct products P = { NULL, refs, n };
    each_row(x, "inventory.csv", c, spec, 2, inventory_row, &P);
}

static void rate_row(struct sect *s, const struct csv_row *row, size_t r)
{
    struct ictx *x = s->x;
    const char *const F = s->file;
    const char *id = col(s, row, 0), *cc = col(s, row, 1);
    const char *level = col(s, row, 2), *title = col(s, row, 4);
    int ok = cell_id(x, F, row->line, "id", id) && key_first(s, r, 0, "id", 0, "");
    char country[8];
    if (lower_eq(cc, "default")) {
        strcpy(country, "default");
    } else if (strlen(cc) == 2 && ((cc[0] | 32) >= 'a' && (cc[0] | 32) <= 'z') &&
               ((cc[1] | 32) >= 'a' && (cc[1] | 32) <= 'z')) {
        country[0] = (char)(cc[0] & ~32);
        country[1] = (char)(cc[1] & ~32);
        country[2] = 0;
    } else {
        catalog_problem_add(x->e, F, row->line, "country_code",
               "\"%s\" must be \"default\" or a two-letter country code like \"US\"", cc);
        ok = 0;
    }
    ok &= col_given(s, row, "service_level", level);
    int64_t price = 0;
    ok &= cell_int(x, F, row->line, "price", col(s, row, 3), 0, MONEY_AMOUNT_MAX, &price);
    ok &= col_given(s, row, "title", title);
    json_t *o = ok ? row_object(s) : NULL;
    if (!o)
        return;
    jset(x, o, "id", json_string(id));
    jset(x, o, "country_code", json_string(country));
    jset(x, o, "service_level", jstr(x, F, row->line, "service_level", level));
    jset(x, o, "price", json_integer(price));
    jset(x, o, "title", jstr(x, F, row->line, "title", title));
}

static void import_rates(struct ictx *x, const struct csv *c, json_t *arr)
{
    static const struct colspec spec[] = { { "id", 1 },    { "country_code", 1 },
                                           { "service_level", 1 }, { "price", 1 },
                                           { "title", 1 } };
    each_row(x, "shipping_rates.csv", c, spec, 5, rate_row, arr);
}

static void discount_row(struct sect *s, const struct csv_row *row, size_t r)
{
    struct ictx *x = s->x;
    const char *const F = s->file;
    const char *code = col(s, row, 0), *type = col(s, row, 1);
    int ok = cell_id(x, F, row->line, "code", code) &&
             key_first(s, r, 0, "code", 1, "; codes ignore case");
    int pct = strcmp(type, "percentage") == 0;
    if (!pct && strcmp(type, "fixed_amount") != 0) {
        catalog_problem_add(x->e, F, row->line, "type", "\"%s\" must be percentage or fixed_amount", type);
        return;
    }
    int64_t v = 0;
    ok = cell_int(x, F, row->line, "value", col(s, row, 2), 1, pct ? 100 : MONEY_AMOUNT_MAX, &v) &&
         ok;
    json_t *o = ok ? row_object(s) : NULL;
    if (!o)
        return;
    jset(x, o, "code", json_string(code));
    jset(x, o, "type", json_string(type));
    jset(x, o, "value", json_integer(v));
    jset(x, o, "description", jstr(x, F, row->line, "description", col(s, row, 3)));
}

static void import_discounts(struct ictx *x, const struct csv *c, json_t *arr)
{
    static const struct colspec spec[] = { { "code", 1 }, { "type", 1 }, { "value", 1 },
                                           { "description", 0 } };
    each_row(x, "discounts.csv", c, spec, 4, discount_row, arr);
}

/* eligible_item_ids: empty, a JSON list (["bouquet_roses"], as the sample
 * data writes it) or ids separated by commas or spaces. */
static json_t *id_list(struct ictx *x, const char *F, size_t line, const char *s)
{
    json_t *arr = NULL;
    if (s[0] == '[') {
        arr = json_loads(s, JSON_DECODE_ANY, NULL);
        size_t i;
        json_t *v;
        int ok = json_is_array(arr);
        json_array_foreach(ok ? arr : NULL, i, v)
            ok &= json_is_string(v) && catalog_id_valid(json_string_value(v));
        if (!ok) {
            json_decref(arr);
            catalog_problem_add(x->e, F, line, "eligible_item_ids",
                                "\"%.80s\" must be a list of product ids like [\"roses\"]", s);
            return NULL;
        }
        return arr;
    }
    if (!(arr = json_array())) {
        x->oom = 1;
        return NULL;
    }
    char *copy = strdup(s), *save = NULL;
    if (!copy) {
        x->oom = 1;
        json_decref(arr);
        return NULL;
    }
    for (char *t = strtok_r(copy, ", ;", &save); t; t = strtok_r(NULL, ", ;", &save)) {
        if (!cell_id(x, F, line, "eligible_item_ids", t)) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        if (json_array_append_new(arr, json_string(t)) != 0)
            x->oom = 1;
    }
    free(copy);
    return arr;
}

static void promotion_row(struct sect *s, const struct csv_row *row, size_t r)
{
    struct ictx *x = s->x;
    const char *const F = s->file;
    const char *id = col(s, row, 0), *type = col(s, row, 1), *min = col(s, row, 2);
    int ok = cell_id(x, F, row->line, "id", id) && key_first(s, r, 0, "id", 0, "");
    if (strcmp(type, "free_shipping") != 0) {
        catalog_problem_add(x->e, F, row->line, "type", "\"%s\" must be free_shipping", type);
        ok = 0;
    }
    int64_t m = 0;
    if (*min)
        ok &= cell_int(x, F, row->line, "min_subtotal", min, 0, MONEY_AMOUNT_MAX, &m);
    json_t *ids = id_list(x, F, row->line, col(s, row, 3));
    json_t *o = ok && ids ? row_object(s) : NULL;
    if (!o) {
        json_decref(ids);
        return;
    }
    jset(x, o, "id", json_string(id));
    jset(x, o, "type", json_string(type));
    if (m)
        jset(x, o, "min_subtotal", json_integer(m));
    jset(x, o, "eligible_item_ids", ids);
    jset(x, o, "description", jstr(x, F, row->line, "description", col(s, row, 4)));
}

static void import_promotions(struct ictx *x, const struct csv *c, json_t *arr)
{
    static const struct colspec spec[] = { { "id", 1 }, { "type", 1 }, { "min_subtotal", 0 },
                                           { "eligible_item_ids", 0 }, { "description", 0 } };
    each_row(x, "promotions.csv", c, spec, 5, promotion_row, arr);
}

static void customer_row(struct sect *s, const struct csv_row *row, size_t r)
{
    struct ictx *x = s->x;
    const char *const F = s->file;
    const char *id = col(s, row, 0), *email = col(s, row, 2);
    int ok = cell_id(x, F, row->line, "id", id) && key_first(s, r, 0, "id", 0, "");
    ok &= col_given(s, row, "email", email) && key_first(s, r, 2, "email", 1, "");
    json_t *o = ok ? row_object(s) : NULL;
    if (!o)
        return;
    jset(x, o, "id", json_string(id));
    jset(x, o, "name", jstr(x, F, row->line, "name", col(s, row, 1)));
    jset(x, o, "email", jstr(x, F, row->line, "email", email));
}

static void import_customers(struct ictx *x, const struct csv *c, json_t *arr)
{
    static const struct colspec spec[] = { { "id", 1 }, { "name", 0 }, { "email", 1 } };
    each_row(x, "customers.csv", c, spec, 3, customer_row, arr);
}

static void address_row(struct sect *s, const struct csv_row *row, size_t r)
{
    static const char *const names[] = { "id", "customer_id", "street_address", "city",
                                          "state", "postal_code", "country" };
    struct ictx *x = s->x;
    const char *const F = s->file;
    int ok = cell_id(x, F, row->line, "id", col(s, row, 0)) && key_first(s, r, 0, "id", 0, "");
    ok &= cell_id(x, F, row->line, "customer_id", col(s, row, 1));
    const char *cc = col(s, row, 6);
    char country[3] = { 0 };
    if (strlen(cc) == 2 && ((cc[0] | 32) >= 'a' && (cc[0] | 32) <= 'z') &&
        ((cc[1] | 32) >= 'a' && (cc[1] | 32) <= 'z')) {
        country[0] = (char)(cc[0] & ~32);
        country[1] = (char)(cc[1] & ~32);
    } else {
        catalog_problem_add(x->e, F, row->line, "country",
                            "\"%s\" must be a two-letter country code like \"US\"", cc);
        ok = 0;
    }
    json_t *o = ok ? row_object(s) : NULL;
    if (!o)
        return;
    for (int k = 0; k < 6; k++)
        jset(x, o, names[k], jstr(x, F, row->line, names[k], col(s, row, k)));
    jset(x, o, "country", json_string(country));
}

static void import_addresses(struct ictx *x, const struct csv *c, json_t *arr)
{
    static const struct colspec spec[] = { { "id", 1 },    { "customer_id", 1 },
                                           { "street_address", 0 }, { "city", 0 },
                                           { "state", 0 }, { "postal_code", 0 },
                                           { "country", 1 } };
    each_row(x, "addresses.csv", c, spec, 7, address_row, arr);
}

static const char *const csv_names[CATALOG_CSV_FILES] = {
    "products.csv", "inventory.csv", "shipping_rates.csv", "discounts.csv",
    "promotions.csv", "customers.csv", "addresses.csv"
};

/* promotions.csv, customers.csv, addresses.csv: sections only when the
 * file is present, so a catalog without them looks as it did. */
static void import_extras(struct ictx *x, const struct csv csvs[CATALOG_CSV_FILES], json_t *root)
{
    static const char *const keys[] = { "promotions", "customers", "addresses" };
    static void (*const fns[])(struct ictx *, const struct csv *, json_t *) = {
        import_promotions, import_customers, import_addresses
    };
    for (int k = 0; k < 3; k++) {
        if (csvs[4 + k].nrows == 0)
            continue;
        json_t *arr = json_array();
        if (!arr) {
            x->oom = 1;
            return;
        }
        jset(x, root, keys[k], json_incref(arr));
        fns[k](x, &csvs[4 + k], arr);
        json_decref(arr);
    }
}

/* The parsed files (found of them present) into catalog JSON, checked by
 * loading it; label names the source in problems. Frees csvs. */
static int import_finish(const char *label, struct csv csvs[CATALOG_CSV_FILES], int found, int rc,
                         struct ictx *x, char **json_out)
{
    struct catalog_problems *e = x->e;
    if (rc == 0 && found == 0) {
        catalog_problem_add(e, label, 0, NULL,
               "none of products.csv, inventory.csv, shipping_rates.csv, discounts.csv is here");
        rc = AGENTD_ENOTFOUND;
    }

    json_t *root = NULL;
    struct pref *refs = NULL;
    if (rc == 0) {
        root = json_object();
        json_t *products = json_array(), *rates = json_array(), *discounts = json_array();
        json_t *taxes = json_array();
        if (!root || !products || !rates || !discounts || !taxes) {
            x->oom = 1;
        } else {
            jset(x, root, "@context", json_string("https://schema.org"));
            jset(x, root, "currency", json_string("USD"));
            jset(x, root, "products", json_incref(products));
            jset(x, root, "shipping_rates", json_incref(rates));
            jset(x, root, "discounts", json_incref(discounts));
            jset(x, root, "tax_rates", json_incref(taxes));
            size_t nrefs = 0;
            import_products(x, &csvs[0], products, &refs, &nrefs);
            import_inventory(x, &csvs[1], refs, nrefs);
            import_rates(x, &csvs[2], rates);
            import_discounts(x, &csvs[3], discounts);
            import_extras(x, csvs, root);
        }
        json_decref(products);
        json_decref(rates);
        json_decref(discounts);
        json_decref(taxes);
    }
    if (rc == 0 && x->oom)
        rc = AGENTD_ENOMEM;
    if (rc == 0 && e->n)
        rc = AGENTD_EINVAL;

    char *text = NULL;
    if (rc == 0) {
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
            rc = AGENTD_ENOMEM;
    }
    free(refs);
    json_decref(root);
    for (int k = 0; k < CATALOG_CSV_FILES; k++)
        csv_free(&csvs[k]);

    if (rc == 0) {
        /* The loader is the one judge of a catalog: what import writes must
         * load, or import fails here rather than at the next start. */
        struct catalog *c = NULL;
        struct agentd_error le;
        int lrc = catalog_load_json(text, strlen(text), "imported catalog", &c, &le);
        catalog_unref(c);
        if (lrc != 0) {
            catalog_problem_add(e, label, 0, NULL, "the imported catalog does not load: %s",
                                le.msg);
            free(text);
            text = NULL;
            /* json_dumps output is valid JSON, so "malformed" can only be
             * jansson running out of memory mid-parse */
            rc = lrc == AGENTD_ENOMEM || lrc == AGENTD_EMALFORMED ? AGENTD_ENOMEM : AGENTD_EINVAL;
        }
    }
    if (rc == AGENTD_ENOMEM)
        agentd_fail(e->e, rc, NULL, NULL, "%s: out of memory", label);
    else
        catalog_problems_end(e);
    *json_out = text;
    return rc;
}

int catalog_import_csv_dir(const char *dir, char **json_out, struct agentd_error *ae)
{
    if (ae)
        *ae = (struct agentd_error){ 0 };
    if (json_out)
        *json_out = NULL;
    if (!dir || !json_out)
        return AGENTD_EINVAL;
    struct catalog_problems e = { ae, 0, 0 };
    struct ictx x = { &e, 0 };

    struct stat st;
    if (stat(dir, &st) != 0) {
        int en = errno;
        catalog_problem_add(&e, dir, 0, NULL, "%s", strerror(en));
        return en == ENOENT ? AGENTD_ENOTFOUND : AGENTD_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        catalog_problem_add(&e, dir, 0, NULL, "not a directory");
        return AGENTD_ENOTFOUND;
    }

    struct csv csvs[CATALOG_CSV_FILES];
    memset(csvs, 0, sizeof csvs);
    int found = 0, rc = 0;
    for (int k = 0; k < CATALOG_CSV_FILES && rc == 0; k++) {
        char *text;
        size_t len;
        int r = read_file(&x, dir, csv_names[k], &text, &len);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0)
            continue;
        found++;
        r = csv_parse(csv_names[k], text, len, &csvs[k], &e);
        free(text);
        if (r == AGENTD_ENOMEM)
            rc = r;
        /* a file that does not parse is reported; the others still are checked */
    }
    return import_finish(dir, csvs, found, rc, &x, json_out);
}

int catalog_import_csv_mem(const char *label, const char *const text[CATALOG_CSV_FILES],
                           const size_t len[CATALOG_CSV_FILES], char **json_out,
                           struct agentd_error *ae)
{
    if (ae)
        *ae = (struct agentd_error){ 0 };
    if (json_out)
        *json_out = NULL;
    if (!label || !text || !len || !json_out)
        return AGENTD_EINVAL;
    struct catalog_problems e = { ae, 0, 0 };
    struct ictx x = { &e, 0 };
    struct csv csvs[CATALOG_CSV_FILES];
    memset(csvs, 0, sizeof csvs);
    int found = 0, rc = 0;
    for (int k = 0; k < CATALOG_CSV_FILES && rc == 0; k++) {
        if (!text[k])
            continue;
        found++;
        if (csv_parse(csv_names[k], text[k], len[k], &csvs[k], &e) == AGENTD_ENOMEM)
            rc = AGENTD_ENOMEM;
    }
    return import_finish(label, csvs, found, rc, &x, json_out);
}
