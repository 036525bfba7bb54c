/* Catalog search: keyword queries ranked by where each term matched, with
 * category/price/stock filters and paging, and free-text resolve to one product. */
#include "commerce/catalog_internal.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>

/* Where a term matched decides its weight: the name says what a product
 * is, a description only mentions things. */
static const int w_exact[F_COUNT] = { 30, 25, 15, 10, 5 };
static const int w_prefix[F_COUNT] = { 12, 10, 6, 4, 2 };

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
            if (catalog_id_valid(word) && (catalog_find_ci(c, word) >= 0 || sku_exists(c, word))) {
                qterm_add(q, 1, word);
                continue;
            }
        }
        char tok[TOKEN_MAX];
        const char *p = w;
        while (catalog_tok_next(&p, we, tok)) {
            if (catalog_is_stopword(tok) || catalog_is_number(tok)) {
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
    needle[n + 1] = 0; /* " tok" in no field: neither an exact nor a prefix match */
    if (e->all && !strstr(e->all, needle))
        return 0;
    needle[n + 1] = ' ';
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
