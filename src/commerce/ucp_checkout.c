/* The checkout in UCP JSON both ways: the wire response (per negotiated
 * capabilities), the store document, its parse back, and UCP messages. Pure. */
#include "commerce/ucp.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout_internal.h"
#include "commerce/money.h"
#include "commerce/pricing.h"
#include "core/err.h"

/* ---- messages and errors ---- */

static const char *msg_type_name(enum checkout_msg_type t)
{
    return t == CHECKOUT_MSG_WARNING ? "warning" : t == CHECKOUT_MSG_INFO ? "info" : "error";
}

json_t *ucp_message_json(const struct checkout_message *m)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", msg_type_name(m->type), "code",
                          m->code ? m->code : "", "content", m->content ? m->content : "");
    if (!o)
        return NULL;
    const char *sev = checkout_severity_name(m->severity);
    if (m->type == CHECKOUT_MSG_ERROR && !sev)
        sev = "recoverable"; /* required on errors by the schema */
    if ((sev && json_object_set_new(o, "severity", json_string(sev))) ||
        (m->path && m->path[0] && json_object_set_new(o, "path", json_string(m->path)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ucp_error_json(const char *code, const char *content, const char *severity,
                       const char *path)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "code",
                          code ? code : "invalid_request", "content", content ? content : "",
                          "severity", severity ? severity : "recoverable");
    if (m && path && path[0] && json_object_set_new(m, "path", json_string(path))) {
        json_decref(m);
        return NULL;
    }
    if (!m)
        return NULL;
    /* detail: the first message as one string, beside messages[], for
     * platforms written against the sample merchants (FastAPI's shape) */
    return json_pack("{s:s, s:s, s:[o]}", "status", "requires_escalation", "detail",
                     content ? content : "", "messages", m);
}

/* ---- checkout to JSON ---- */

/* Sets key to a string when s is non-NULL; returns nonzero on failure. */
int ucp_json_put_str(json_t *o, const char *key, const char *s)
{
    return s ? json_object_set_new(o, key, json_string(s)) : 0;
}

json_t *ucp_buyer_json(const struct checkout_buyer *b, int with_consent)
{
    json_t *o = json_object();
    if (!o || fields_strs_to_json(&checkout_buyer_shape, b, o) ||
        (with_consent && b->consent &&
         json_object_set_new(o, "consent", json_deep_copy(b->consent)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ucp_address_json(const struct postal_address *a, int with_id)
{
    json_t *o = json_object();
    if (!o || fields_strs_to_json(&postal_address_shape, a, o)) {
        json_decref(o);
        return NULL;
    }
    if (!with_id)
        json_object_del(o, "id");
    return o;
}

json_t *ucp_item_json(const struct line_item *li)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "id", li->item_id ? li->item_id : "", "title",
                          li->title ? li->title : (li->item_id ? li->item_id : ""), "price",
                          (json_int_t)li->price);
    if (o && ucp_json_put_str(o, "image_url", li->image_url)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *line_ids_json(const struct checkout *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n_lines; i++)
        if (json_array_append_new(a, json_string(c->lines[i].id))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *fulfillment_json(const struct checkout *c)
{
    json_t *methods = json_array();
    for (size_t mi = 0; methods && mi < c->n_methods; mi++) {
        const struct fulfillment_method *m = &c->methods[mi];
        json_t *dests = json_array(), *groups = json_array();
        for (size_t d = 0; dests && d < m->n_destinations; d++)
            if (json_array_append_new(dests, ucp_address_json(&m->destinations[d], 1)))
                goto fail_m;
        for (size_t g = 0; groups && g < m->n_groups; g++) {
            const struct fulfillment_group *fg = &m->groups[g];
            json_t *opts = json_array();
            for (size_t o = 0; opts && o < fg->n_options; o++) {
                const struct fulfillment_option *op = &fg->options[o];
                json_t *oj = json_pack("{s:s, s:s, s:[{s:s, s:I}]}", "id", op->id, "title",
                                       op->title ? op->title : op->id, "totals", "type", "total",
                                       "amount", (json_int_t)op->amount);
                if (!oj || ucp_json_put_str(oj, "description", op->description) ||
                    json_array_append_new(opts, oj)) {
                    json_decref(opts);
                    goto fail_m;
                }
            }
            json_t *gj = opts ? json_pack("{s:s, s:o, s:o}", "id", fg->id, "line_item_ids",
                                          line_ids_json(c), "options", opts)
                              : NULL;
            if (!gj || json_object_set_new(gj, "selected_option_id",
                                           fg->selected_option_id
                                               ? json_string(fg->selected_option_id)
                                               : json_null()) ||
                json_array_append_new(groups, gj))
                goto fail_m;
        }
        json_t *mj = json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", m->id, "type",
                               m->type ? m->type : "shipping", "line_item_ids", line_ids_json(c),
                               "destinations", dests, "groups", groups);
        dests = groups = NULL;
        if (!mj || json_object_set_new(mj, "selected_destination_id",
                                       m->selected_destination_id
                                           ? json_string(m->selected_destination_id)
                                           : json_null()) ||
            json_array_append_new(methods, mj)) {
            json_decref(methods);
            return NULL;
        }
        continue;
    fail_m:
        json_decref(dests);
        json_decref(groups);
        json_decref(methods);
        return NULL;
    }
    return methods ? json_pack("{s:o}", "methods", methods) : NULL;
}

static json_t *discounts_json(const struct checkout *c)
{
    json_t *codes = json_array(), *applied = json_array();
    for (size_t i = 0; codes && i < c->n_codes; i++)
        if (json_array_append_new(codes, json_string(c->codes[i])))
            goto fail;
    for (size_t i = 0; applied && i < c->n_applied; i++) {
        const struct applied_discount *a = &c->applied[i];
        json_t *allocs = json_array();
        for (size_t k = 0; allocs && k < a->n_alloc; k++) {
            if (!a->alloc[k])
                continue;
            char path[48];
            snprintf(path, sizeof path, "$.line_items[%zu]", k);
            if (json_array_append_new(allocs, json_pack("{s:s, s:I}", "path", path, "amount",
                                                        (json_int_t)a->alloc[k]))) {
                json_decref(allocs);
                goto fail;
            }
        }
        json_t *aj = allocs ? json_pack("{s:s, s:s, s:I, s:s, s:i, s:o}", "code", a->code,
                                        "title", a->title, "amount", (json_int_t)a->amount,
                                        "method",
                                        a->type == DISCOUNT_PERCENTAGE ? "each" : "across",
                                        "priority", a->priority, "allocations", allocs)
                            : NULL;
        if (!aj || json_array_append_new(applied, aj))
            goto fail;
    }
    if (!codes || !applied)
        goto fail;
    return json_pack("{s:o, s:o}", "codes", codes, "applied", applied);
fail:
    json_decref(codes);
    json_decref(applied);
    return NULL;
}

int checkout_has_selected_option(const struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++)
        for (size_t g = 0; g < c->methods[m].n_groups; g++)
            if (c->methods[m].groups[g].selected_option_id)
                return 1;
    return 0;
}

int checkout_has_destination(const struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++)
        if (c->methods[m].selected_destination_id)
            return 1;
    return 0;
}

/* The payment object; the stored document's private copy (include_tokens)
 * leaves the handlers to the public one beside it: one copy to store. */
static json_t *payment_json(const struct checkout *c, int include_tokens)
{
    /* shared: the handlers are never edited (checkout_types.h) */
    json_t *h = include_tokens       ? NULL
                : c->payment.handlers ? json_incref(c->payment.handlers)
                                      : json_array();
    json_t *ins = json_array();
    for (size_t i = 0; ins && i < c->payment.n_instruments; i++)
        if (json_array_append_new(ins, payment_instrument_to_json(&c->payment.instruments[i],
                                                                  include_tokens))) {
            json_decref(ins);
            ins = NULL;
        }
    if ((!h && !include_tokens) || !ins) {
        json_decref(h);
        json_decref(ins);
        return NULL;
    }
    json_t *p = h ? json_pack("{s:o, s:o}", "handlers", h, "instruments", ins)
                  : json_pack("{s:o}", "instruments", ins);
    if (p && ucp_json_put_str(p, "selected_instrument_id", c->payment.selected_instrument_id)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *to_json(const struct checkout *c, const struct ucp_negotiated *neg, int doc)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    json_t *o = json_object();
    json_t *lines = json_array(), *msgs = json_array(), *links = json_array();
    if (!o || !lines || !msgs || !links)
        goto fail;
    for (size_t i = 0; i < c->n_lines; i++) {
        const struct line_item *li = &c->lines[i];
        json_t *lj = json_pack("{s:s, s:o, s:I, s:o}", "id", li->id, "item", ucp_item_json(li),
                               "quantity", (json_int_t)li->quantity, "totals",
                               pricing_line_totals_json(&li->totals));
        if (!lj || json_array_append_new(lines, lj))
            goto fail;
    }
    for (size_t i = 0; i < c->n_messages; i++)
        if (json_array_append_new(msgs, ucp_message_json(&c->messages[i])))
            goto fail;
    for (size_t i = 0; i < c->n_links; i++) {
        const struct checkout_link *l = &c->links[i];
        json_t *lj = json_pack("{s:s, s:s}", "type", l->type ? l->type : "", "url",
                               l->url ? l->url : "");
        if (!lj || ucp_json_put_str(lj, "title", l->title) || json_array_append_new(links, lj)) {
            json_decref(lj);
            goto fail;
        }
    }
    /* the stored document has no negotiation: nothing reads it back */
    int bad = doc ? 0 : json_object_set_new(o, "ucp", ucp_response_meta_json(neg));
    bad |= json_object_set_new(o, "id", json_string(c->id));
    bad |= json_object_set_new(o, "status", json_string(checkout_status_name(c->status)));
    bad |= json_object_set_new(o, "currency", json_string(c->currency));
    bad |= json_object_set_new(o, "line_items", lines);
    lines = NULL;
    if (c->has_buyer)
        bad |= json_object_set_new(o, "buyer",
                                   ucp_buyer_json(&c->buyer, !!(neg->caps & UCP_CAP_BUYER_CONSENT)));
    bad |= json_object_set_new(o, "totals", pricing_totals_json(&c->totals, checkout_has_selected_option(c),
                                                                checkout_has_destination(c)));
    if (c->n_messages) {
        bad |= json_object_set_new(o, "messages", msgs);
        msgs = NULL;
    }
    bad |= json_object_set_new(o, "links", links);
    links = NULL;
    if (c->expires_at) {
        char ts[32];
        if (ucp_time_format(c->expires_at, ts, sizeof ts) == 0)
            bad |= json_object_set_new(o, "expires_at", json_string(ts));
    }
    /* Terminal sessions have nowhere to continue to (checkout.md). */
    if (c->continue_url && !checkout_status_terminal(c->status))
        bad |= json_object_set_new(o, "continue_url", json_string(c->continue_url));
    bad |= json_object_set_new(o, "payment", payment_json(c, 0));
    if ((neg->caps & UCP_CAP_FULFILLMENT) && c->n_methods)
        bad |= json_object_set_new(o, "fulfillment", fulfillment_json(c));
    if ((neg->caps & UCP_CAP_DISCOUNT) && (c->n_codes || c->n_applied))
        bad |= json_object_set_new(o, "discounts", discounts_json(c));
    if (c->order_id)
        bad |= json_object_set_new(o, "order",
                                   json_pack("{s:s, s:s}", "id", c->order_id, "permalink_url",
                                             c->order_permalink_url ? c->order_permalink_url : ""));
    if (doc) {
        json_t *lt = json_array();
        for (size_t i = 0; lt && i < c->n_lines; i++) {
            const struct line_totals *t = &c->lines[i].totals;
            if (json_array_append_new(lt, json_pack("[I,I,I,I,I]", (json_int_t)t->base_amount,
                                                    (json_int_t)t->discount,
                                                    (json_int_t)t->subtotal, (json_int_t)t->tax,
                                                    (json_int_t)t->total))) {
                json_decref(lt);
                lt = NULL;
            }
        }
        const struct checkout_totals *t = &c->totals;
        json_t *in = json_pack(
            "{s:I, s:I, s:I, s:i, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "version",
            (json_int_t)c->version, "created_at", (json_int_t)c->created_at, "updated_at",
            (json_int_t)c->updated_at, "next_seq", (int)c->next_seq, "payment", payment_json(c, 1),
            "line_totals", lt ? lt : json_null(), "totals", "subtotal", (json_int_t)t->subtotal,
            "items_discount", (json_int_t)t->items_discount, "discount", (json_int_t)t->discount,
            "fulfillment", (json_int_t)t->fulfillment, "tax", (json_int_t)t->tax, "fee",
            (json_int_t)t->fee, "total", (json_int_t)t->total);
        if (in && c->escalation)
            bad |= json_object_set_new(in, "escalation", ucp_message_json(c->escalation));
        bad |= !in || json_object_set_new(o, "_agentd", in);
        /* The doc keeps the extensions' fields whatever was negotiated. */
        if (!(neg->caps & UCP_CAP_FULFILLMENT) && c->n_methods)
            bad |= json_object_set_new(o, "fulfillment", fulfillment_json(c));
        if (!(neg->caps & UCP_CAP_DISCOUNT) && (c->n_codes || c->n_applied))
            bad |= json_object_set_new(o, "discounts", discounts_json(c));
    }
    json_decref(msgs);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
fail:
    json_decref(o);
    json_decref(lines);
    json_decref(msgs);
    json_decref(links);
    return NULL;
}

json_t *checkout_to_json(const struct checkout *c, const struct ucp_negotiated *neg)
{
    return c ? to_json(c, neg, 0) : NULL;
}

json_t *checkout_to_doc_json(const struct checkout *c)
{
    return c ? to_json(c, NULL, 1) : NULL;
}

/* ---- checkout from JSON ---- */

static int corrupt(struct agentd_error *e, const char *what)
{
    return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "checkout document: %s", what);
}

/* Optional string -> copy; wrong type is corruption. */
int ucp_json_get_str(const json_t *o, const char *key, char **out)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return AGENTD_ECORRUPT;
    *out = strdup(json_string_value(v));
    return *out ? 0 : AGENTD_ENOMEM;
}

static int doc_get(const json_t *o, const char *key, char **out, void *ctx)
{
    (void)ctx;
    return ucp_json_get_str(o, key, out);
}

int ucp_doc_strs(const struct shape *shp, void *obj, const json_t *j)
{
    return fields_strs_from_json(shp, obj, j, doc_get, NULL);
}

int64_t ucp_json_get_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static int parse_message(const json_t *j, struct checkout_message *m)
{
    memset(m, 0, sizeof *m);
    const char *t = json_string_value(json_object_get(j, "type"));
    const char *sev = json_string_value(json_object_get(j, "severity"));
    m->type = t && strcmp(t, "warning") == 0 ? CHECKOUT_MSG_WARNING
              : t && strcmp(t, "info") == 0  ? CHECKOUT_MSG_INFO
                                             : CHECKOUT_MSG_ERROR;
    m->severity = !sev                                         ? CHECKOUT_SEV_NONE
                  : strcmp(sev, "requires_buyer_input") == 0  ? CHECKOUT_SEV_REQUIRES_BUYER_INPUT
                  : strcmp(sev, "requires_buyer_review") == 0 ? CHECKOUT_SEV_REQUIRES_BUYER_REVIEW
                                                              : CHECKOUT_SEV_RECOVERABLE;
    int rc = ucp_doc_strs(&checkout_message_shape, m, j);
    if (rc)
        fields_clear(&checkout_message_shape, m);
    return rc;
}

/* Amount of a given type in a UCP totals[] array (0 if absent). */
int64_t ucp_total_of(const json_t *totals, const char *type)
{
    size_t i;
    json_t *v;
    json_array_foreach(totals, i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        if (t && strcmp(t, type) == 0)
            return ucp_json_get_int(v, "amount");
    }
    return 0;
}

int ucp_line_from_json(const json_t *lj, struct line_item *li)
{
    const json_t *item = json_object_get(lj, "item");
    int rc = ucp_json_get_str(lj, "id", &li->id);
    if (!rc)
        rc = ucp_json_get_str(item, "id", &li->item_id);
    if (!rc)
        rc = ucp_json_get_str(item, "title", &li->title);
    if (!rc)
        rc = ucp_json_get_str(item, "image_url", &li->image_url);
    if (rc)
        return rc;
    if (!li->id || !li->item_id)
        return AGENTD_ECORRUPT;
    li->price = ucp_json_get_int(item, "price");
    json_t *tot = json_object_get(lj, "totals");
    li->totals.base_amount = ucp_total_of(tot, "subtotal");
    li->totals.discount = ucp_total_of(tot, "items_discount");
    li->totals.subtotal = li->totals.base_amount - li->totals.discount;
    li->totals.tax = ucp_total_of(tot, "tax");
    li->totals.total = ucp_total_of(tot, "total");
    return 0;
}

/* ---- the store document's arrays ---- */

/* What every element parser of the document needs. */
struct doc_ctx {
    struct checkout *c;
    const json_t *line_totals; /* _agentd.line_totals: the lines' exact totals */
    struct agentd_error *e;
    const json_t *doc; /* the whole document */
};

/* A document array: anything but an array is empty, more than max is
 * corruption, each element through its parser (which words its own). */
static int doc_arr(const json_t *arr, size_t max, const char *too_many, const struct shape *s,
                   fields_parse_fn parse, struct doc_ctx *x, void *field, size_t *n)
{
    int rc = fields_arr_parse(s, arr, max, parse, x, field, n);
    return rc == AGENTD_ETOOLARGE ? corrupt(x->e, too_many) : rc;
}

/* An element's failure: out of memory as is, anything else as `bad`. */
static int doc_bad(int rc, struct doc_ctx *x, const char *bad)
{
    return rc == AGENTD_ENOMEM ? rc : corrupt(x->e, bad);
}

static int doc_option(const json_t *j, void *items, size_t i, void *ctx)
{
    struct fulfillment_option *op = (struct fulfillment_option *)items + i;
    int rc = ucp_doc_strs(&fulfillment_option_shape, op, j);
    if (rc || !op->id)
        return doc_bad(rc, ctx, "bad fulfillment option");
    op->amount = ucp_total_of(json_object_get(j, "totals"), "total");
    return 0;
}

static int doc_group(const json_t *j, void *items, size_t i, void *ctx)
{
    struct fulfillment_group *g = (struct fulfillment_group *)items + i;
    int rc = ucp_doc_strs(&fulfillment_group_shape, g, j);
    if (rc || !g->id)
        return doc_bad(rc, ctx, "bad fulfillment group");
    return doc_arr(json_object_get(j, "options"), CHECKOUT_OPTIONS_MAX, "too many options",
                   &fulfillment_option_shape, doc_option, ctx, &g->options, &g->n_options);
}

static int doc_destination(const json_t *j, void *items, size_t i, void *ctx)
{
    struct postal_address *a = (struct postal_address *)items + i;
    int rc = checkout_address_from_json(j, a, NULL);
    if (rc)
        return doc_bad(rc, ctx, "bad destination");
    return a->id ? 0 : doc_bad(AGENTD_ECORRUPT, ctx, "destination without id");
}

static int doc_method(const json_t *j, void *items, size_t i, void *ctx)
{
    struct fulfillment_method *m = (struct fulfillment_method *)items + i;
    int rc = ucp_doc_strs(&fulfillment_method_shape, m, j);
    if (rc)
        return doc_bad(rc, ctx, "bad fulfillment method");
    if (!m->id)
        return doc_bad(AGENTD_ECORRUPT, ctx, "fulfillment method without id");
    rc = doc_arr(json_object_get(j, "destinations"), CHECKOUT_DESTS_MAX, "too many destinations",
                 &postal_address_shape, doc_destination, ctx, &m->destinations,
                 &m->n_destinations);
    if (rc)
        return rc;
    return doc_arr(json_object_get(j, "groups"), CHECKOUT_METHODS_MAX, "too many groups",
                   &fulfillment_group_shape, doc_group, ctx, &m->groups, &m->n_groups);
}

static int doc_code(const json_t *j, void *items, size_t i, void *ctx)
{
    const char *s = json_string_value(j);
    if (!s)
        return doc_bad(AGENTD_ECORRUPT, ctx, "bad discount code");
    return sdup(s, (char **)items + i);
}

static int doc_applied(const json_t *j, void *items, size_t i, void *ctx)
{
    struct doc_ctx *x = ctx;
    struct applied_discount *a = (struct applied_discount *)items + i;
    int rc = ucp_doc_strs(&applied_discount_shape, a, j);
    if (rc)
        return doc_bad(rc, x, "bad applied discount");
    a->amount = ucp_json_get_int(j, "amount");
    a->priority = (int)ucp_json_get_int(j, "priority");
    const char *method = json_string_value(json_object_get(j, "method"));
    a->type = method && strcmp(method, "each") == 0 ? DISCOUNT_PERCENTAGE : DISCOUNT_FIXED_AMOUNT;
    size_t nl = x->c->n_lines;
    if (!(a->alloc = calloc(nl ? nl : 1, sizeof *a->alloc)))
        return AGENTD_ENOMEM;
    a->n_alloc = nl;
    size_t k;
    json_t *al;
    json_array_foreach(json_object_get(j, "allocations"), k, al)
    {
        const char *path = json_string_value(json_object_get(al, "path"));
        unsigned long idx;
        int used = 0;
        if (!path || sscanf(path, "$.line_items[%lu]%n", &idx, &used) != 1 || used == 0 ||
            path[used] != 0 || idx >= nl)
            continue;
        a->alloc[idx] = ucp_json_get_int(al, "amount");
    }
    return 0;
}

static int doc_line(const json_t *j, void *items, size_t i, void *ctx)
{
    struct doc_ctx *x = ctx;
    struct line_item *li = (struct line_item *)items + i;
    int rc = ucp_line_from_json(j, li);
    if (rc)
        return doc_bad(rc, x, "bad line item");
    li->quantity = ucp_json_get_int(j, "quantity");
    const json_t *t = json_array_get(x->line_totals, i);
    if (json_is_array(t) && json_array_size(t) == 5) { /* the document's exact totals */
        li->totals.base_amount = json_integer_value(json_array_get(t, 0));
        li->totals.discount = json_integer_value(json_array_get(t, 1));
        li->totals.subtotal = json_integer_value(json_array_get(t, 2));
        li->totals.tax = json_integer_value(json_array_get(t, 3));
        li->totals.total = json_integer_value(json_array_get(t, 4));
    }
    return 0;
}

static int doc_instrument(const json_t *j, void *items, size_t i, void *ctx)
{
    int rc = payment_instrument_parse(j, (struct payment_instrument *)items + i, NULL);
    return rc ? doc_bad(rc, ctx, "bad payment instrument") : 0;
}

static int doc_message(const json_t *j, void *items, size_t i, void *ctx)
{
    int rc = parse_message(j, (struct checkout_message *)items + i);
    return rc ? doc_bad(rc, ctx, "bad message") : 0;
}

static int doc_link(const json_t *j, void *items, size_t i, void *ctx)
{
    int rc = ucp_doc_strs(&checkout_link_shape, (struct checkout_link *)items + i, j);
    return rc ? doc_bad(rc, ctx, "bad link") : 0;
}

static int parse_payment_doc(const json_t *p, struct doc_ctx *x)
{
    struct checkout *c = x->c;
    if (!json_is_object(p))
        return 0;
    json_t *h = json_object_get(p, "handlers");
    if (!json_is_array(h)) /* kept once, in the public payment (payment_json) */
        h = json_object_get(json_object_get(x->doc, "payment"), "handlers");
    c->payment.handlers = json_is_array(h) ? json_incref(h) : json_array(); /* never edited */
    if (!c->payment.handlers)
        return AGENTD_ENOMEM;
    int rc = doc_arr(json_object_get(p, "instruments"), CHECKOUT_INSTRUMENTS_MAX,
                     "too many instruments", &payment_instrument_shape, doc_instrument, x,
                     &c->payment.instruments, &c->payment.n_instruments);
    if (rc)
        return rc;
    rc = ucp_json_get_str(p, "selected_instrument_id", &c->payment.selected_instrument_id);
    return rc == AGENTD_ECORRUPT ? corrupt(x->e, "bad selected_instrument_id") : rc;
}

/* The arrays of a checkout document, lines first (discounts refer to them). */
static int parse_doc_arrays(const json_t *doc, struct doc_ctx *x)
{
    struct checkout *c = x->c;
    json_t *lines = json_object_get(doc, "line_items");
    if (!json_is_array(lines))
        return corrupt(x->e, "line_items missing");
    int rc = doc_arr(lines, CHECKOUT_LINES_MAX, "too many line items", &line_item_shape, doc_line,
                     x, &c->lines, &c->n_lines);
    json_t *f = json_object_get(doc, "fulfillment");
    if (!rc && json_is_object(f))
        rc = doc_arr(json_object_get(f, "methods"), CHECKOUT_METHODS_MAX,
                     "too many fulfillment methods", &fulfillment_method_shape, doc_method, x,
                     &c->methods, &c->n_methods);
    json_t *d = json_object_get(doc, "discounts");
    if (!rc && json_is_object(d))
        rc = doc_arr(json_object_get(d, "codes"), CHECKOUT_CODES_MAX, "too many codes",
                     &fields_str_shape, doc_code, x, &c->codes, &c->n_codes);
    if (!rc && json_is_object(d))
        rc = doc_arr(json_object_get(d, "applied"), CHECKOUT_CODES_MAX,
                     "too many applied discounts", &applied_discount_shape, doc_applied, x,
                     &c->applied, &c->n_applied);
    /* The doc's own payment copy carries instrument tokens; the wire
     * form never does. */
    json_t *p = json_object_get(json_object_get(doc, "_agentd"), "payment");
    if (!rc)
        rc = parse_payment_doc(p ? p : json_object_get(doc, "payment"), x);
    if (!rc && !c->payment.handlers && !(c->payment.handlers = json_array()))
        rc = AGENTD_ENOMEM;
    if (!rc)
        rc = doc_arr(json_object_get(doc, "messages"), 256, "too many messages",
                     &checkout_message_shape, doc_message, x, &c->messages, &c->n_messages);
    if (!rc)
        rc = doc_arr(json_object_get(doc, "links"), 64, "too many links", &checkout_link_shape,
                     doc_link, x, &c->links, &c->n_links);
    return rc;
}

static const struct {
    const char *name;
    size_t off;
} total_names[] = {
    {"subtotal", offsetof(struct checkout_totals, subtotal)},
    {"items_discount", offsetof(struct checkout_totals, items_discount)},
    {"discount", offsetof(struct checkout_totals, discount)},
    {"fulfillment", offsetof(struct checkout_totals, fulfillment)},
    {"tax", offsetof(struct checkout_totals, tax)},
    {"fee", offsetof(struct checkout_totals, fee)},
    {"total", offsetof(struct checkout_totals, total)},
};

void ucp_totals_from_json(const json_t *j, int exact, struct checkout_totals *t)
{
    for (size_t i = 0; i < sizeof total_names / sizeof total_names[0]; i++) {
        int64_t v = exact ? ucp_json_get_int(j, total_names[i].name)
                          : ucp_total_of(j, total_names[i].name);
        memcpy((char *)t + total_names[i].off, &v, sizeof v);
    }
}

int checkout_from_json(const json_t *doc, struct checkout **out, struct agentd_error *e)
{
    *out = NULL;
    if (!json_is_object(doc))
        return corrupt(e, "not an object");
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *cur = json_string_value(json_object_get(doc, "currency"));
    if (!id || !status || !cur || !money_currency_valid(cur))
        return corrupt(e, "id, status or currency missing");
    struct checkout *c = checkout_new(id);
    if (!c)
        return AGENTD_ENOMEM;
    int rc = 0;
    if (checkout_status_parse(status, &c->status)) {
        rc = corrupt(e, "unknown status");
        goto fail;
    }
    memcpy(c->currency, cur, COMMERCE_CURRENCY_LEN);
    const json_t *in = json_object_get(doc, "_agentd");
    json_t *b = json_object_get(doc, "buyer");
    if (json_is_object(b)) {
        if ((rc = checkout_buyer_from_json(b, &c->buyer, NULL))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad buyer");
            goto fail;
        }
        c->has_buyer = 1;
    }
    struct doc_ctx x = {c, json_object_get(in, "line_totals"), e, doc};
    if ((rc = parse_doc_arrays(doc, &x)))
        goto fail;
    const char *exp = json_string_value(json_object_get(doc, "expires_at"));
    if (exp && ucp_time_parse(exp, &c->expires_at)) {
        rc = corrupt(e, "bad expires_at");
        goto fail;
    }
    if ((rc = ucp_json_get_str(doc, "continue_url", &c->continue_url))) {
        rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad continue_url");
        goto fail;
    }
    json_t *o = json_object_get(doc, "order");
    if (json_is_object(o) && ((rc = ucp_json_get_str(o, "id", &c->order_id)) ||
                              (rc = ucp_json_get_str(o, "permalink_url", &c->order_permalink_url)))) {
        rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad order");
        goto fail;
    }
    json_t *t = json_object_get(in, "totals");
    if (json_is_object(t))
        ucp_totals_from_json(t, 1, &c->totals);
    else
        ucp_totals_from_json(json_object_get(doc, "totals"), 0, &c->totals);
    if (json_is_object(in)) {
        c->version = ucp_json_get_int(in, "version");
        c->created_at = ucp_json_get_int(in, "created_at");
        c->updated_at = ucp_json_get_int(in, "updated_at");
        c->next_seq = (uint32_t)ucp_json_get_int(in, "next_seq");
        json_t *esc = json_object_get(in, "escalation");
        if (json_is_object(esc)) {
            if (!(c->escalation = calloc(1, sizeof *c->escalation))) {
                rc = AGENTD_ENOMEM;
                goto fail;
            }
            if ((rc = parse_message(esc, c->escalation))) {
                rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad escalation");
                goto fail;
            }
        }
    }
    *out = c;
    return 0;
fail:
    checkout_free(c);
    return rc;
}
