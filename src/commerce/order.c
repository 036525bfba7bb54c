/* The order model: built from a completed checkout (immutable lines and
 * fulfillment expectations), freed, and its UCP JSON both ways. Pure. */
#include "commerce/order.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout_internal.h"
#include "commerce/money.h"
#include "commerce/pricing.h"
#include "core/err.h"

/* ---- field tables ---- */

static const struct field line_fields[] = {
    FIELD_U(struct order_line, line, line_item_shape),
};
static const struct shape order_line_shape = {sizeof(struct order_line), line_fields,
                                              FIELDS_N(line_fields), NULL, NULL};

#define T struct order_expectation
static const struct field expectation_fields[] = {
    FIELD_S(T, id, "id"),
    FIELD_S(T, method_type, "method_type"),
    FIELD_U(T, destination, postal_address_shape),
    FIELD_S(T, description, "description"),
};
#undef T
static const struct shape expectation_shape = {sizeof(struct order_expectation),
                                               expectation_fields, FIELDS_N(expectation_fields),
                                               NULL, NULL};

#define T struct order
static const struct field order_fields[] = {
    FIELD_S(T, id, NULL),
    FIELD_S(T, checkout_id, NULL),
    FIELD_S(T, permalink_url, NULL),
    FIELD_A(T, lines, n_lines, order_line_shape),
    FIELD_A(T, expectations, n_expectations, expectation_shape),
    FIELD_J(T, events),
    FIELD_J(T, adjustments),
    FIELD_J(T, buyer),
};
#undef T
static const struct shape order_shape = {sizeof(struct order), order_fields,
                                         FIELDS_N(order_fields), NULL, NULL};

void order_free(struct order *o)
{
    if (!o)
        return;
    fields_clear(&order_shape, o);
    free(o);
}

int order_from_checkout(const struct checkout *c, struct order **out, struct agentd_error *e)
{
    *out = NULL;
    if (!c || c->status != CHECKOUT_COMPLETED || !c->order_id)
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                             "an order exists only for a completed checkout");
    struct order *o = calloc(1, sizeof *o);
    if (!o)
        return AGENTD_ENOMEM;
    memcpy(o->currency, c->currency, sizeof o->currency);
    o->totals = c->totals;
    o->has_tax = checkout_has_destination(c);
    o->has_fulfillment = checkout_has_selected_option(c);
    if (!(o->id = strdup(c->order_id)) || !(o->checkout_id = strdup(c->id)) ||
        !(o->permalink_url = strdup(c->order_permalink_url ? c->order_permalink_url : "")) ||
        !(o->events = json_array()) || !(o->adjustments = json_array()))
        goto nomem;
    /* the buyer's email (the receipt's address) and consent travel on */
    if (c->has_buyer && !(o->buyer = ucp_buyer_json(&c->buyer, 1)))
        goto nomem;
    if (c->n_lines && !(o->lines = calloc(c->n_lines, sizeof *o->lines)))
        goto nomem;
    for (size_t i = 0; i < c->n_lines; i++) {
        o->n_lines++;
        if (fields_copy(&line_item_shape, &o->lines[i].line, &c->lines[i]))
            goto nomem;
    }
    for (size_t mi = 0; mi < c->n_methods; mi++) {
        const struct fulfillment_method *m = &c->methods[mi];
        const struct postal_address *dest = NULL;
        for (size_t d = 0; m->selected_destination_id && d < m->n_destinations; d++)
            if (strcmp(m->destinations[d].id, m->selected_destination_id) == 0)
                dest = &m->destinations[d];
        for (size_t g = 0; dest && g < m->n_groups; g++) {
            const struct fulfillment_group *fg = &m->groups[g];
            if (!fg->selected_option_id)
                continue;
            const char *title = fg->selected_option_id;
            for (size_t k = 0; k < fg->n_options; k++)
                if (strcmp(fg->options[k].id, fg->selected_option_id) == 0 && fg->options[k].title)
                    title = fg->options[k].title;
            struct order_expectation *n =
                realloc(o->expectations, (o->n_expectations + 1) * sizeof *n);
            if (!n)
                goto nomem;
            o->expectations = n;
            struct order_expectation *x = &n[o->n_expectations++];
            memset(x, 0, sizeof *x);
            char id[32];
            snprintf(id, sizeof id, "exp_%zu", o->n_expectations);
            if (!(x->id = strdup(id)) || !(x->method_type = strdup(m->type ? m->type : "shipping")) ||
                !(x->description = strdup(title)) || checkout_address_copy(&x->destination, dest))
                goto nomem;
        }
    }
    *out = o;
    return 0;
nomem:
    order_free(o);
    return AGENTD_ENOMEM;
}

json_t *order_to_json(const struct order *o, const struct ucp_negotiated *neg)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    json_t *lines = json_array(), *exps = json_array();
    for (size_t i = 0; lines && i < o->n_lines; i++) {
        const struct order_line *ol = &o->lines[i];
        const char *st = ol->fulfilled >= ol->line.quantity ? "fulfilled"
                         : ol->fulfilled > 0               ? "partial"
                                                           : "processing";
        json_t *lj = json_pack("{s:s, s:o, s:{s:I, s:I}, s:o, s:s}", "id", ol->line.id, "item",
                               ucp_item_json(&ol->line), "quantity", "total",
                               (json_int_t)ol->line.quantity, "fulfilled",
                               (json_int_t)ol->fulfilled, "totals",
                               pricing_line_totals_json(&ol->line.totals), "status", st);
        if (!lj || json_array_append_new(lines, lj))
            goto fail;
    }
    for (size_t i = 0; exps && i < o->n_expectations; i++) {
        const struct order_expectation *x = &o->expectations[i];
        json_t *li = json_array();
        for (size_t k = 0; li && k < o->n_lines; k++)
            if (json_array_append_new(li, json_pack("{s:s, s:I}", "id", o->lines[k].line.id,
                                                    "quantity",
                                                    (json_int_t)o->lines[k].line.quantity))) {
                json_decref(li);
                li = NULL;
            }
        json_t *xj = li ? json_pack("{s:s, s:o, s:s, s:o}", "id", x->id, "line_items", li,
                                    "method_type", x->method_type, "destination",
                                    ucp_address_json(&x->destination, 0))
                        : NULL;
        if (!xj || ucp_json_put_str(xj, "description", x->description) || json_array_append_new(exps, xj))
            goto fail;
    }
    if (!lines || !exps)
        goto fail;
    json_t *buyer = o->buyer ? json_deep_copy(o->buyer) : NULL;
    if (buyer && !(neg->caps & UCP_CAP_BUYER_CONSENT))
        json_object_del(buyer, "consent");
    json_t *j = json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:{s:o, s:o}, s:o, s:o}", "ucp",
                          ucp_response_meta_json(neg), "id", o->id, "checkout_id", o->checkout_id,
                          "permalink_url", o->permalink_url, "currency", o->currency,
                          "line_items", lines, "fulfillment", "expectations", exps, "events",
                          o->events ? json_deep_copy(o->events) : json_array(), "adjustments",
                          o->adjustments ? json_deep_copy(o->adjustments) : json_array(),
                          "totals",
                          pricing_totals_json(&o->totals, o->has_fulfillment, o->has_tax));
    if (j && buyer && json_object_set_new(j, "buyer", buyer)) {
        json_decref(j);
        return NULL;
    }
    if (!j)
        json_decref(buyer);
    return j;
fail:
    json_decref(lines);
    json_decref(exps);
    return NULL;
}

/* One element of an order document's line_items[] / expectations[]. */
static int order_line_parse(const json_t *j, void *items, size_t i, void *ctx)
{
    (void)ctx;
    struct order_line *l = (struct order_line *)items + i;
    int rc = ucp_line_from_json(j, &l->line);
    const json_t *q = json_object_get(j, "quantity");
    l->line.quantity = ucp_json_get_int(q, "total");
    l->fulfilled = ucp_json_get_int(q, "fulfilled");
    return rc;
}

static int expectation_parse(const json_t *j, void *items, size_t i, void *ctx)
{
    (void)ctx;
    struct order_expectation *x = (struct order_expectation *)items + i;
    int rc = ucp_doc_strs(&expectation_shape, x, j);
    json_t *dj = json_object_get(j, "destination");
    if (!rc && dj)
        rc = checkout_address_from_json(dj, &x->destination, NULL);
    return rc;
}

int order_from_json(const json_t *j, struct order **out, struct agentd_error *e)
{
    *out = NULL;
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *cid = json_string_value(json_object_get(j, "checkout_id"));
    const char *url = json_string_value(json_object_get(j, "permalink_url"));
    const char *cur = json_string_value(json_object_get(j, "currency"));
    json_t *lines = json_object_get(j, "line_items");
    if (!id || !cid || !url || !json_is_array(lines) ||
        json_array_size(lines) > CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "order document is malformed");
    struct order *o = calloc(1, sizeof *o);
    if (!o)
        return AGENTD_ENOMEM;
    if (cur && money_currency_valid(cur))
        memcpy(o->currency, cur, COMMERCE_CURRENCY_LEN);
    if (!(o->id = strdup(id)) || !(o->checkout_id = strdup(cid)) ||
        !(o->permalink_url = strdup(url)))
        goto nomem;
    const json_t *buyer = json_object_get(j, "buyer");
    if (json_is_object(buyer) && !(o->buyer = json_deep_copy(buyer)))
        goto nomem;
    int rc = fields_arr_parse(&order_line_shape, lines, CHECKOUT_LINES_MAX, order_line_parse, NULL,
                              &o->lines, &o->n_lines);
    json_t *exps = json_object_get(json_object_get(j, "fulfillment"), "expectations");
    if (!rc)
        rc = fields_arr_parse(&expectation_shape, exps, CHECKOUT_METHODS_MAX * CHECKOUT_METHODS_MAX,
                              expectation_parse, NULL, &o->expectations, &o->n_expectations);
    if (rc == AGENTD_ENOMEM)
        goto nomem;
    if (rc)
        goto corrupt_doc;
    /* the logs were validated when written (order_update.c) */
    json_t *ev = json_object_get(json_object_get(j, "fulfillment"), "events");
    json_t *adj = json_object_get(j, "adjustments");
    if (!(o->events = json_is_array(ev) ? json_deep_copy(ev) : json_array()) ||
        !(o->adjustments = json_is_array(adj) ? json_deep_copy(adj) : json_array()))
        goto nomem;
    json_t *ta = json_object_get(j, "totals");
    ucp_totals_from_json(ta, 0, &o->totals);
    size_t i;
    json_t *v;
    json_array_foreach(ta, i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        o->has_fulfillment |= t && strcmp(t, "fulfillment") == 0;
        o->has_tax |= t && strcmp(t, "tax") == 0;
    }
    *out = o;
    return 0;
corrupt_doc:
    order_free(o);
    return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "order document is malformed");
nomem:
    order_free(o);
    return AGENTD_ENOMEM;
}
