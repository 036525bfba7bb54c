/* The checkout in UCP JSON both ways: the wire response (per negotiated
 * capabilities), the store document, its parse back, and UCP messages. Pure. */
#include "commerce/ucp.h"

#include <ctype.h>
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
    return json_pack("{s:s, s:[o]}", "status", "requires_escalation", "messages", m);
}

/* ---- checkout to JSON ---- */

/* Sets key to a string when s is non-NULL; returns nonzero on failure. */
int ucp_json_put_str(json_t *o, const char *key, const char *s)
{
    return s ? json_object_set_new(o, key, json_string(s)) : 0;
}

static json_t *buyer_json(const struct checkout_buyer *b)
{
    json_t *o = json_object();
    if (!o || fields_strs_to_json(&checkout_buyer_shape, b, o)) {
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

static json_t *payment_json(const struct checkout *c, int include_tokens)
{
    json_t *h = c->payment.handlers ? json_deep_copy(c->payment.handlers) : json_array();
    json_t *ins = json_array();
    for (size_t i = 0; ins && i < c->payment.n_instruments; i++)
        if (json_array_append_new(ins, payment_instrument_to_json(&c->payment.instruments[i],
                                                                  include_tokens))) {
            json_decref(ins);
            ins = NULL;
        }
    if (!h || !ins) {
        json_decref(h);
        json_decref(ins);
        return NULL;
    }
    json_t *p = json_pack("{s:o, s:o}", "handlers", h, "instruments", ins);
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
    int bad = json_object_set_new(o, "ucp", ucp_response_meta_json(neg));
    bad |= json_object_set_new(o, "id", json_string(c->id));
    bad |= json_object_set_new(o, "status", json_string(checkout_status_name(c->status)));
    bad |= json_object_set_new(o, "currency", json_string(c->currency));
    bad |= json_object_set_new(o, "line_items", lines);
    lines = NULL;
    if (c->has_buyer)
        bad |= json_object_set_new(o, "buyer", buyer_json(&c->buyer));
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

static int parse_methods(const json_t *f, struct checkout *c, struct agentd_error *e)
{
    json_t *ms = json_object_get(f, "methods");
    if (!json_is_array(ms))
        return 0;
    size_t n = json_array_size(ms);
    if (n > CHECKOUT_METHODS_MAX)
        return corrupt(e, "too many fulfillment methods");
    if (!n)
        return 0;
    if (!(c->methods = calloc(n, sizeof *c->methods)))
        return AGENTD_ENOMEM;
    for (size_t mi = 0; mi < n; mi++) {
        const json_t *mj = json_array_get(ms, mi);
        struct fulfillment_method *m = &c->methods[mi];
        c->n_methods++;
        int rc = ucp_doc_strs(&fulfillment_method_shape, m, mj);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment method");
        if (!m->id)
            return corrupt(e, "fulfillment method without id");
        json_t *ds = json_object_get(mj, "destinations");
        size_t nd = json_array_size(ds);
        if (nd > CHECKOUT_DESTS_MAX)
            return corrupt(e, "too many destinations");
        if (nd && !(m->destinations = calloc(nd, sizeof *m->destinations)))
            return AGENTD_ENOMEM;
        for (size_t d = 0; d < nd; d++) {
            struct agentd_error ee;
            rc = checkout_address_from_json(json_array_get(ds, d), &m->destinations[d], &ee);
            if (rc)
                return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad destination");
            m->n_destinations++;
            if (!m->destinations[d].id)
                return corrupt(e, "destination without id");
        }
        json_t *gs = json_object_get(mj, "groups");
        size_t ng = json_array_size(gs);
        if (ng > CHECKOUT_METHODS_MAX)
            return corrupt(e, "too many groups");
        if (ng && !(m->groups = calloc(ng, sizeof *m->groups)))
            return AGENTD_ENOMEM;
        for (size_t g = 0; g < ng; g++) {
            const json_t *gj = json_array_get(gs, g);
            struct fulfillment_group *fg = &m->groups[g];
            m->n_groups++;
            rc = ucp_doc_strs(&fulfillment_group_shape, fg, gj);
            if (rc || !fg->id)
                return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment group");
            json_t *os = json_object_get(gj, "options");
            size_t no = json_array_size(os);
            if (no > CHECKOUT_OPTIONS_MAX)
                return corrupt(e, "too many options");
            if (no && !(fg->options = calloc(no, sizeof *fg->options)))
                return AGENTD_ENOMEM;
            for (size_t k = 0; k < no; k++) {
                const json_t *oj = json_array_get(os, k);
                struct fulfillment_option *op = &fg->options[k];
                fg->n_options++;
                rc = ucp_doc_strs(&fulfillment_option_shape, op, oj);
                if (rc || !op->id)
                    return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment option");
                op->amount = ucp_total_of(json_object_get(oj, "totals"), "total");
            }
        }
    }
    return 0;
}

static int parse_discounts(const json_t *d, struct checkout *c, struct agentd_error *e)
{
    json_t *codes = json_object_get(d, "codes");
    size_t n = json_array_size(codes);
    if (n > CHECKOUT_CODES_MAX)
        return corrupt(e, "too many codes");
    if (n && !(c->codes = calloc(n, sizeof *c->codes)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(codes, i));
        if (!s)
            return corrupt(e, "bad discount code");
        if (!(c->codes[i] = strdup(s)))
            return AGENTD_ENOMEM;
        c->n_codes++;
    }
    json_t *ap = json_object_get(d, "applied");
    size_t na = json_array_size(ap);
    if (na > CHECKOUT_CODES_MAX)
        return corrupt(e, "too many applied discounts");
    if (na && !(c->applied = calloc(na, sizeof *c->applied)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < na; i++) {
        const json_t *aj = json_array_get(ap, i);
        struct applied_discount *a = &c->applied[i];
        c->n_applied++;
        int rc = ucp_doc_strs(&applied_discount_shape, a, aj);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad applied discount");
        a->amount = ucp_json_get_int(aj, "amount");
        a->priority = (int)ucp_json_get_int(aj, "priority");
        const char *method = json_string_value(json_object_get(aj, "method"));
        a->type = method && strcmp(method, "each") == 0 ? DISCOUNT_PERCENTAGE
                                                       : DISCOUNT_FIXED_AMOUNT;
        a->n_alloc = c->n_lines;
        if (!(a->alloc = calloc(c->n_lines ? c->n_lines : 1, sizeof *a->alloc)))
            return AGENTD_ENOMEM;
        size_t k;
        json_t *al;
        json_array_foreach(json_object_get(aj, "allocations"), k, al)
        {
            const char *path = json_string_value(json_object_get(al, "path"));
            unsigned long idx;
            int used = 0;
            if (!path || sscanf(path, "$.line_items[%lu]%n", &idx, &used) != 1 || used == 0 ||
                path[used] != 0 || idx >= c->n_lines)
                continue;
            a->alloc[idx] = ucp_json_get_int(al, "amount");
        }
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

static int parse_lines_doc(const json_t *doc, struct checkout *c, const json_t *lt,
                           struct agentd_error *e)
{
    json_t *lines = json_object_get(doc, "line_items");
    if (!json_is_array(lines))
        return corrupt(e, "line_items missing");
    size_t n = json_array_size(lines);
    if (n > CHECKOUT_LINES_MAX)
        return corrupt(e, "too many line items");
    if (n && !(c->lines = calloc(n, sizeof *c->lines)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *lj = json_array_get(lines, i);
        struct line_item *li = &c->lines[i];
        c->n_lines++;
        int rc = ucp_line_from_json(lj, li);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad line item");
        li->quantity = ucp_json_get_int(lj, "quantity");
        const json_t *t = json_array_get(lt, i);
        if (json_is_array(t) && json_array_size(t) == 5) { /* the document's exact totals */
            li->totals.base_amount = json_integer_value(json_array_get(t, 0));
            li->totals.discount = json_integer_value(json_array_get(t, 1));
            li->totals.subtotal = json_integer_value(json_array_get(t, 2));
            li->totals.tax = json_integer_value(json_array_get(t, 3));
            li->totals.total = json_integer_value(json_array_get(t, 4));
        }
    }
    return 0;
}

static int parse_payment_doc(const json_t *p, struct checkout *c, struct agentd_error *e)
{
    if (!json_is_object(p))
        return 0;
    json_t *h = json_object_get(p, "handlers");
    c->payment.handlers = json_is_array(h) ? json_deep_copy(h) : json_array();
    if (!c->payment.handlers)
        return AGENTD_ENOMEM;
    json_t *ins = json_object_get(p, "instruments");
    size_t n = json_array_size(ins);
    if (n > CHECKOUT_INSTRUMENTS_MAX)
        return corrupt(e, "too many instruments");
    if (n && !(c->payment.instruments = calloc(n, sizeof *c->payment.instruments)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = payment_instrument_parse(json_array_get(ins, i), &c->payment.instruments[i], NULL);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad payment instrument");
        c->payment.n_instruments++;
    }
    int rc = ucp_json_get_str(p, "selected_instrument_id", &c->payment.selected_instrument_id);
    return rc == AGENTD_ECORRUPT ? corrupt(e, "bad selected_instrument_id") : rc;
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
    if ((rc = parse_lines_doc(doc, c, json_object_get(in, "line_totals"), e)))
        goto fail;
    json_t *b = json_object_get(doc, "buyer");
    if (json_is_object(b)) {
        struct agentd_error ee;
        if ((rc = checkout_buyer_from_json(b, &c->buyer, &ee))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad buyer");
            goto fail;
        }
        c->has_buyer = 1;
    }
    json_t *f = json_object_get(doc, "fulfillment");
    if (json_is_object(f) && (rc = parse_methods(f, c, e)))
        goto fail;
    json_t *d = json_object_get(doc, "discounts");
    if (json_is_object(d) && (rc = parse_discounts(d, c, e)))
        goto fail;
    /* The doc's own payment copy carries instrument tokens; the wire
     * form never does. */
    json_t *p = json_object_get(in, "payment");
    if ((rc = parse_payment_doc(p ? p : json_object_get(doc, "payment"), c, e)))
        goto fail;
    if (!c->payment.handlers && !(c->payment.handlers = json_array())) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    json_t *ms = json_object_get(doc, "messages");
    size_t nm = json_array_size(ms);
    if (nm > 256) {
        rc = corrupt(e, "too many messages");
        goto fail;
    }
    if (nm && !(c->messages = calloc(nm, sizeof *c->messages))) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nm; i++) {
        if ((rc = parse_message(json_array_get(ms, i), &c->messages[i]))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad message");
            goto fail;
        }
        c->n_messages++;
    }
    json_t *ls = json_object_get(doc, "links");
    size_t nl = json_array_size(ls);
    if (nl > 64) {
        rc = corrupt(e, "too many links");
        goto fail;
    }
    if (nl && !(c->links = calloc(nl, sizeof *c->links))) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nl; i++) {
        const json_t *lj = json_array_get(ls, i);
        struct checkout_link *l = &c->links[i];
        c->n_links++;
        if ((rc = ucp_json_get_str(lj, "type", &l->type)) || (rc = ucp_json_get_str(lj, "url", &l->url)) ||
            (rc = ucp_json_get_str(lj, "title", &l->title))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad link");
            goto fail;
        }
    }
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
    if (json_is_object(t)) {
        c->totals.subtotal = ucp_json_get_int(t, "subtotal");
        c->totals.items_discount = ucp_json_get_int(t, "items_discount");
        c->totals.discount = ucp_json_get_int(t, "discount");
        c->totals.fulfillment = ucp_json_get_int(t, "fulfillment");
        c->totals.tax = ucp_json_get_int(t, "tax");
        c->totals.fee = ucp_json_get_int(t, "fee");
        c->totals.total = ucp_json_get_int(t, "total");
    } else {
        json_t *ta = json_object_get(doc, "totals");
        c->totals.subtotal = ucp_total_of(ta, "subtotal");
        c->totals.items_discount = ucp_total_of(ta, "items_discount");
        c->totals.discount = ucp_total_of(ta, "discount");
        c->totals.fulfillment = ucp_total_of(ta, "fulfillment");
        c->totals.tax = ucp_total_of(ta, "tax");
        c->totals.fee = ucp_total_of(ta, "fee");
        c->totals.total = ucp_total_of(ta, "total");
    }
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
