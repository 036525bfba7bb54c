/* The catalog tools' products as JSON: each product's tree, its text and
 * that text escaped, built once per thread for the catalog they came from. */
#include "agent/tool_products.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/catalog.h"
#include "core/buf.h"
#include "core/jsondump.h"

/* Why: a search returns the same few products turn after turn, and building
 * each one's tree (10 members), dumping the result and escaping that text
 * into the tool message was ~1/8 of a tool turn's instructions. A product's
 * JSON is a pure function of its catalog (seed stock included), so it is
 * kept per thread — no lock — for the catalog this thread last searched,
 * whose reference the cache holds (a catalog swapped by SIGHUP is dropped at
 * this thread's next search). The trees are shared by reference: tool
 * results are only read (events, the reply's products, A2A copies them). */
struct slot {
    json_t *tree;
    char *text; /* jsondump(tree, JSON_COMPACT) */
    char *esc;  /* text as a JSON string, quotes included */
    size_t tlen, elen;
};

static _Thread_local struct {
    struct catalog *cat;
    const struct product *base; /* catalog_products(cat) */
    size_t n;
    struct slot *slots; /* n, filled as products are shown */
    int hooked;         /* its exit hook is set */
} tl;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static const char *opt(const char *s)
{
    return s && *s ? s : NULL;
}

/* A string the catalog holds: valid UTF-8 already (the loader's JSON parse
 * or CSV check made sure), so jansson's own check is skipped. */
static int put_str(json_t *o, const char *key, const char *v)
{
    return json_object_set_new_nocheck(o, key, json_string_nocheck(v));
}

/* image, brand and url only when the catalog has them: the A2A front shows
 * them on product cards (api/a2a_ucp.c), the model rarely needs them.
 * Built key by key, not by json_pack: no format parsing and no UTF-8 scan
 * of every string. */
json_t *tool_product_json(const struct product *p, const char *currency, int64_t stock)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = put_str(o, "id", p->id) | put_str(o, "title", p->name) |
              json_object_set_new_nocheck(o, "price", json_integer((json_int_t)p->price)) |
              put_str(o, "currency", currency) |
              json_object_set_new_nocheck(o, "in_stock", json_boolean(p->available && stock > 0)) |
              put_str(o, "category", p->category ? p->category : "") |
              put_str(o, "description", p->description ? p->description : "");
    if (opt(p->image_url))
        bad |= put_str(o, "image", p->image_url);
    if (opt(p->brand))
        bad |= put_str(o, "brand", p->brand);
    if (opt(p->url))
        bad |= put_str(o, "url", p->url);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void tool_products_reset(void)
{
    for (size_t i = 0; tl.slots && i < tl.n; i++) {
        json_decref(tl.slots[i].tree);
        free(tl.slots[i].text);
        free(tl.slots[i].esc);
    }
    free(tl.slots);
    if (tl.cat)
        catalog_unref(tl.cat);
    tl.cat = NULL;
    tl.base = NULL;
    tl.slots = NULL;
    tl.n = 0;
}

static void at_exit(void *arg)
{
    (void)arg;
    tool_products_reset();
}

static void exit_key_make(void) { (void)pthread_key_create(&exit_key, at_exit); }

/* This thread's cache, for cat (emptied when it was another's). */
static int cache_for(struct catalog *cat)
{
    if (tl.cat == cat && tl.slots)
        return 0;
    tool_products_reset();
    if (!tl.hooked) {
        pthread_once(&exit_once, exit_key_make);
        tl.hooked = pthread_setspecific(exit_key, &tl) == 0;
    }
    size_t n = 0;
    const struct product *base = catalog_products(cat, &n);
    if (!base || !n || !(tl.slots = calloc(n, sizeof *tl.slots)))
        return -1;
    tl.cat = catalog_ref(cat);
    tl.base = base;
    tl.n = n;
    return 0;
}

/* p's slot, filled; NULL when p is not cat's or on no memory. */
static const struct slot *slot_of(const struct catalog *cat, const struct product *p)
{
    if (p < tl.base || p >= tl.base + tl.n)
        return NULL;
    struct slot *s = &tl.slots[p - tl.base];
    if (s->tree)
        return s;
    json_t *tree = tool_product_json(p, catalog_currency(cat), p->stock);
    size_t tlen = 0;
    char *text = tree ? jsondump(tree, JSON_COMPACT, &tlen) : NULL;
    struct buf e = { 0 };
    if (!text || buf_json_str(&e, text, tlen) != 0 || e.oom) {
        json_decref(tree);
        free(text);
        buf_free(&e);
        return NULL;
    }
    *s = (struct slot){ .tree = tree, .text = text, .tlen = tlen, .esc = e.data, .elen = e.len };
    return s;
}

json_t *tool_products_search(struct catalog *cat, const struct catalog_hits *hits,
                             char **content, char **escaped)
{
    *content = *escaped = NULL;
    int cached = cache_for(cat) == 0;
    json_t *list = json_array(), *out = json_object();
    struct buf c = { 0 }, e = { 0 };
    if (!list || !out)
        goto fail;
    buf_puts(&c, "{\"products\":[");
    buf_puts(&e, "\"{\\\"products\\\":[");
    for (size_t i = 0; i < hits->n; i++) {
        const struct product *p = hits->hits[i].product;
        const struct slot *s = cached ? slot_of(cat, p) : NULL;
        json_t *pj = s ? json_incref(s->tree) : tool_product_json(p, catalog_currency(cat), p->stock);
        if (json_array_append_new(list, pj))
            goto fail;
        if (!s) {
            cached = 0; /* the texts are left to the caller's dump */
            continue;
        }
        if (i) {
            buf_puts(&c, ",");
            buf_puts(&e, ",");
        }
        buf_append(&c, s->text, s->tlen);
        buf_append(&e, s->esc + 1, s->elen - 2);
    }
    char tail[64];
    int k = snprintf(tail, sizeof tail, "%" JSON_INTEGER_FORMAT, (json_int_t)hits->total);
    buf_puts(&c, "],\"total\":");
    buf_append(&c, tail, (size_t)k);
    buf_puts(&c, "}");
    buf_puts(&e, "],\\\"total\\\":");
    buf_append(&e, tail, (size_t)k);
    buf_puts(&e, "}\"");
    if (json_object_set_new_nocheck(out, "products", list)) {
        list = NULL;
        goto fail;
    }
    list = NULL;
    if (json_object_set_new_nocheck(out, "total", json_integer((json_int_t)hits->total)))
        goto fail;
    if (cached && !c.oom && !e.oom) {
        *content = c.data;
        *escaped = e.data;
    } else {
        buf_free(&c);
        buf_free(&e);
    }
    return out;
fail:
    json_decref(list);
    json_decref(out);
    buf_free(&c);
    buf_free(&e);
    return NULL;
}
