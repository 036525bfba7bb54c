/* UCP request JSON into a checkout: buyer, addresses, line items, discount
 * codes, payment instruments and fulfillment methods of a create/update body. */
#include "commerce/checkout.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/checkout_internal.h"
#include "commerce/money.h"
#include "commerce/pricing.h"
#include "commerce/fields.h"
#include "core/err.h"

/* Optional string member -> heap copy; absent or null -> NULL. */
static int jstr(const json_t *o, const char *key, char **out, const char *path,
                struct agentd_error *e)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        !str_ok(json_string_value(v), CHECKOUT_STR_MAX))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                             "%s must be a string of at most %d printable characters", key,
                             CHECKOUT_STR_MAX);
    *out = strdup(json_string_value(v));
    return *out ? 0 : oom(e);
}

/* jstr as a field-table getter: the error path is `path` itself, or
 * `path.key` when per_key is set. */
struct jstr_ctx {
    const char *path;
    int per_key;
    struct agentd_error *e;
};

static int jstr_get(const json_t *o, const char *key, char **out, void *ctx)
{
    const struct jstr_ctx *x = ctx;
    char path[96];
    if (x->per_key)
        snprintf(path, sizeof path, "%s.%s", x->path, key);
    return jstr(o, key, out, x->per_key ? path : x->path, x->e);
}

static void instruments_clear(struct checkout_payment *p)
{
    FIELDS_ARR_RESET(&payment_instrument_shape, p->instruments, p->n_instruments);
    free(p->selected_instrument_id);
    p->selected_instrument_id = NULL;
}

/* ---- JSON parsing of request pieces ---- */

int checkout_buyer_from_json(const json_t *j, struct checkout_buyer *b, struct agentd_error *e)
{
    memset(b, 0, sizeof *b);
    if (!json_is_object(j))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer", "buyer must be an object");
    struct jstr_ctx x = {"$.buyer", 1, e};
    int rc = fields_strs_from_json(&checkout_buyer_shape, b, j, jstr_get, &x);
    if (rc)
        checkout_buyer_clear(b);
    return rc;
}

int checkout_address_from_json(const json_t *j, struct postal_address *a, struct agentd_error *e)
{
    memset(a, 0, sizeof *a);
    if (!json_is_object(j))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "a destination must be an object");
    struct jstr_ctx x = {"$.fulfillment", 0, e};
    int rc = fields_strs_from_json(&postal_address_shape, a, j, jstr_get, &x);
    if (rc) {
        checkout_address_clear(a);
        return rc;
    }
    if (a->id && !id_ok(a->id)) {
        checkout_address_clear(a);
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "destination id must be 1-%d printable characters", ID_MAX);
    }
    /* Country codes are compared with the catalog's upper-case ones. */
    for (char *p = a->address_country; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return 0;
}

/* line_items[] -> c->lines. old (may be NULL) supplies ids to keep. */
static int parse_lines(struct checkout *c, const json_t *arr, struct agentd_error *e)
{
    char path[96];
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.line_items",
                             "line_items must be an array");
    size_t n = json_array_size(arr);
    if (n > CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.line_items",
                             "at most %d line items", CHECKOUT_LINES_MAX);
    struct line_item *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        const json_t *o = json_array_get(arr, got);
        struct line_item *li = &lines[got];
        snprintf(path, sizeof path, "$.line_items[%zu]", got);
        json_t *item = json_object_get(o, "item");
        json_t *iid = json_object_get(item, "id");
        json_t *qty = json_object_get(o, "quantity");
        if (!json_is_object(o) || !json_is_object(item) || !json_is_string(iid) ||
            !id_ok(json_string_value(iid))) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "line item %zu needs item.id (1-%d printable characters)", got,
                               ID_MAX);
            goto fail;
        }
        if (!json_is_integer(qty)) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "line item %zu needs an integer quantity", got);
            goto fail;
        }
        li->quantity = json_integer_value(qty);
        if (li->quantity < 1 || li->quantity > CHECKOUT_QTY_MAX) {
            rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", path,
                               "quantity of '%s' must be between 1 and %d",
                               json_string_value(iid), CHECKOUT_QTY_MAX);
            goto fail;
        }
        if (sdup(json_string_value(iid), &li->item_id)) {
            rc = oom(e);
            goto fail;
        }
        json_t *lid = json_object_get(o, "id");
        if (json_is_string(lid) && id_ok(json_string_value(lid))) {
            int dup = 0;
            for (size_t k = 0; k < got; k++)
                dup |= lines[k].id && strcmp(lines[k].id, json_string_value(lid)) == 0;
            if (!dup && sdup(json_string_value(lid), &li->id)) {
                rc = oom(e);
                goto fail;
            }
        }
    }
    /* Fresh ids for lines that did not bring a usable one. */
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        if (lines[i].id)
            continue;
        do {
            next_id(c, "li", buf, sizeof buf);
            int clash = 0;
            for (size_t k = 0; k < n; k++)
                clash |= lines[k].id && strcmp(lines[k].id, buf) == 0;
            if (!clash)
                break;
        } while (1);
        if (sdup(buf, &lines[i].id)) {
            got = n;
            rc = oom(e);
            goto fail;
        }
    }
    FIELDS_ARR_RESET(&line_item_shape, c->lines, c->n_lines);
    c->lines = lines;
    c->n_lines = n;
    return 0;
fail:
    for (size_t i = 0; i <= got && i < n; i++)
        fields_clear(&line_item_shape, &lines[i]);
    free(lines);
    return rc;
}

static int parse_codes(struct checkout *c, const json_t *disc, struct agentd_error *e)
{
    if (json_is_null(disc)) {
        FIELDS_ARR_RESET(&fields_str_shape, c->codes, c->n_codes);
        return 0;
    }
    if (!json_is_object(disc))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts",
                             "discounts must be an object");
    json_t *codes = json_object_get(disc, "codes");
    if (!codes)
        return 0; /* {"applied": ...} echoed back: nothing to change */
    if (json_is_null(codes)) {
        FIELDS_ARR_RESET(&fields_str_shape, c->codes, c->n_codes);
        return 0;
    }
    if (!json_is_array(codes))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                             "discounts.codes must be an array of strings");
    size_t n = json_array_size(codes);
    if (n > CHECKOUT_CODES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.discounts.codes",
                             "at most %d discount codes", CHECKOUT_CODES_MAX);
    const char *list[CHECKOUT_CODES_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(codes, i);
        if (!json_is_string(v) || !id_ok(json_string_value(v)))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                                 "discount code %zu must be 1-%d printable characters", i,
                                 ID_MAX);
        list[i] = json_string_value(v);
    }
    char **nc = calloc(n ? n : 1, sizeof *nc);
    if (!nc)
        return oom(e);
    for (size_t i = 0; i < n; i++) {
        if (sdup(list[i], &nc[i])) {
            for (size_t k = 0; k < i; k++)
                free(nc[k]);
            free(nc);
            return oom(e);
        }
    }
    FIELDS_ARR_RESET(&fields_str_shape, c->codes, c->n_codes);
    c->codes = nc;
    c->n_codes = n;
    return 0;
}

static int parse_payment(struct checkout *c, const json_t *p, struct agentd_error *e)
{
    if (json_is_null(p)) {
        instruments_clear(&c->payment);
        return 0;
    }
    if (!json_is_object(p))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment", "payment must be an object");
    /* payment.handlers from the client are ignored: handlers are what the
     * shop advertises, and the UCP conformance client echoes them back. */
    json_t *ins = json_object_get(p, "instruments");
    if (ins && !json_is_null(ins) && !json_is_array(ins))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment.instruments",
                             "payment.instruments must be an array");
    size_t n = json_array_size(ins);
    if (n > CHECKOUT_INSTRUMENTS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.payment.instruments",
                             "at most %d payment instruments", CHECKOUT_INSTRUMENTS_MAX);
    struct payment_instrument *list = calloc(n ? n : 1, sizeof *list);
    char *sel = NULL;
    int rc = 0;
    if (!list)
        return oom(e);
    size_t got = 0;
    for (; got < n; got++) {
        struct agentd_error pe = { 0 };
        rc = payment_instrument_parse(json_array_get(ins, got), &list[got], &pe);
        if (rc) {
            char path[64];
            snprintf(path, sizeof path, "$.payment.instruments[%zu]", got);
            rc = rc == AGENTD_ENOMEM ? oom(e)
                                     : agentd_fail(e, rc, "invalid_payment", path, "%.199s", pe.msg);
            goto fail;
        }
    }
    if ((rc = jstr(p, "selected_instrument_id", &sel, "$.payment.selected_instrument_id", e)))
        goto fail;
    instruments_clear(&c->payment);
    c->payment.instruments = list;
    c->payment.n_instruments = n;
    c->payment.selected_instrument_id = sel;
    return 0;
fail:
    for (size_t i = 0; i < got; i++)
        payment_instrument_clear(&list[i]);
    free(list);
    free(sel);
    return rc;
}

/* Parses destinations[] of a method into a fresh array, assigning ids. */
static int parse_destinations(struct checkout *c, const json_t *arr, size_t mi,
                              struct postal_address **out, size_t *nout, struct agentd_error *e)
{
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", mi);
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "destinations must be an array");
    size_t n = json_array_size(arr);
    if (n > CHECKOUT_DESTS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                             "at most %d destinations", CHECKOUT_DESTS_MAX);
    struct postal_address *d = calloc(n ? n : 1, sizeof *d);
    if (!d)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        if ((rc = checkout_address_from_json(json_array_get(arr, got), &d[got], e))) {
            if (e)
                snprintf(e->path, sizeof e->path, "%s[%zu]", path, got);
            goto fail;
        }
        for (size_t k = 0; k < got && d[got].id; k++) {
            if (d[k].id && strcmp(d[k].id, d[got].id) == 0) {
                got++;
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                                   "destination id '%s' appears twice", d[k].id);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (d[i].id)
            continue;
        char buf[32];
        next_id(c, "dest", buf, sizeof buf);
        if (sdup(buf, &d[i].id)) {
            rc = oom(e);
            goto fail;
        }
    }
    *out = d;
    *nout = n;
    return 0;
fail:
    for (size_t i = 0; i < got && i < n; i++)
        checkout_address_clear(&d[i]);
    free(d);
    return rc;
}

/* A method as requested, merged with the existing one of the same id (or
 * the only existing one): absent destinations/groups/selection are kept. */
static int parse_method(struct checkout *c, const json_t *o, size_t mi,
                        const struct fulfillment_method *old, struct fulfillment_method *m,
                        struct agentd_error *e)
{
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu]", mi);
    memset(m, 0, sizeof *m);
    if (!json_is_object(o))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "a method must be an object");
    int rc;
    char *type = NULL;
    if ((rc = jstr(o, "type", &type, path, e)))
        return rc;
    if (type && strcmp(type, "shipping") != 0) {
        rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "unsupported", path,
                           "fulfillment type '%.40s' is not offered; use shipping", type);
        free(type);
        return rc;
    }
    free(type);
    if (old) {
        if ((rc = fields_copy(&fulfillment_method_shape, m, old)))
            return oom(e);
    } else {
        char *mid = NULL;
        if ((rc = jstr(o, "id", &mid, path, e)))
            return rc;
        if (mid && !id_ok(mid)) {
            free(mid);
            return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "method id is invalid");
        }
        if (!mid) {
            char buf[32];
            next_id(c, "shipping", buf, sizeof buf);
            if (sdup(buf, &mid))
                return oom(e);
        }
        m->id = mid;
    }
    if (sset(&m->type, "shipping"))
        goto nomem;

    json_t *dests = json_object_get(o, "destinations");
    int dests_given = dests && !json_is_null(dests);
    if (dests_given) {
        struct postal_address *d = NULL;
        size_t nd = 0;
        if ((rc = parse_destinations(c, dests, mi, &d, &nd, e)))
            goto fail;
        for (size_t i = 0; i < m->n_destinations; i++)
            checkout_address_clear(&m->destinations[i]);
        free(m->destinations);
        m->destinations = d;
        m->n_destinations = nd;
    }

    json_t *sel = json_object_get(o, "selected_destination_id");
    if (sel) {
        if (!json_is_null(sel) && (!json_is_string(sel) || !id_ok(json_string_value(sel)))) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "selected_destination_id must be a string");
            goto fail;
        }
        if (sset(&m->selected_destination_id, json_is_null(sel) ? NULL : json_string_value(sel)))
            goto nomem;
    } else if (dests_given && m->n_destinations == 1) {
        /* One address given and none chosen: that is the choice. */
        if (sset(&m->selected_destination_id, m->destinations[0].id))
            goto nomem;
    }
    if (m->selected_destination_id) {
        int found = 0;
        for (size_t i = 0; i < m->n_destinations; i++)
            found |= strcmp(m->destinations[i].id, m->selected_destination_id) == 0;
        if (!found) {
            if (!sel) {
                /* A kept selection whose destination was replaced. */
                free(m->selected_destination_id);
                m->selected_destination_id = NULL;
            } else {
                rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                                   "selected_destination_id '%.64s' is not among the destinations",
                                   m->selected_destination_id);
                goto fail;
            }
        }
    }

    json_t *groups = json_object_get(o, "groups");
    if (groups && !json_is_null(groups)) {
        if (!json_is_array(groups)) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path, "groups must be an array");
            goto fail;
        }
        if (m->n_groups == 0) {
            if (!(m->groups = calloc(1, sizeof *m->groups)))
                goto nomem;
            m->n_groups = 1;
            char buf[32];
            next_id(c, "group", buf, sizeof buf);
            if (sdup(buf, &m->groups[0].id))
                goto nomem;
        }
        /* We ship everything in one group: a request group maps to ours by
         * id, or by position when it has no id (create requests). */
        size_t gi;
        json_t *g;
        json_array_foreach(groups, gi, g)
        {
            if (!json_is_object(g)) {
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path, "a group must be an object");
                goto fail;
            }
            json_t *gid = json_object_get(g, "id");
            struct fulfillment_group *target = NULL;
            if (json_is_string(gid)) {
                for (size_t k = 0; k < m->n_groups; k++)
                    if (strcmp(m->groups[k].id, json_string_value(gid)) == 0)
                        target = &m->groups[k];
            } else if (gi < m->n_groups) {
                target = &m->groups[gi];
            }
            if (!target)
                continue; /* a group we never offered: nothing to select in it */
            json_t *so = json_object_get(g, "selected_option_id");
            if (!so)
                continue;
            if (!json_is_null(so) && (!json_is_string(so) || !id_ok(json_string_value(so)))) {
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                                   "selected_option_id must be a string");
                goto fail;
            }
            if (sset(&target->selected_option_id, json_is_null(so) ? NULL : json_string_value(so)))
                goto nomem;
        }
    }
    return 0;
nomem:
    rc = oom(e);
fail:
    fields_clear(&fulfillment_method_shape, m);
    return rc;
}

static int parse_fulfillment(struct checkout *c, const json_t *f, struct agentd_error *e)
{
    if (json_is_null(f)) {
        FIELDS_ARR_RESET(&fulfillment_method_shape, c->methods, c->n_methods);
        return 0;
    }
    if (!json_is_object(f))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "fulfillment must be an object");
    json_t *methods = json_object_get(f, "methods");
    if (!methods)
        return 0;
    if (json_is_null(methods)) {
        FIELDS_ARR_RESET(&fulfillment_method_shape, c->methods, c->n_methods);
        return 0;
    }
    if (!json_is_array(methods))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment.methods",
                             "fulfillment.methods must be an array");
    size_t n = json_array_size(methods);
    if (n > CHECKOUT_METHODS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.fulfillment.methods",
                             "at most %d fulfillment methods", CHECKOUT_METHODS_MAX);
    struct fulfillment_method *ms = calloc(n ? n : 1, sizeof *ms);
    if (!ms)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        const json_t *o = json_array_get(methods, got);
        const struct fulfillment_method *old = NULL;
        json_t *mid = json_object_get(o, "id");
        if (json_is_string(mid)) {
            for (size_t k = 0; k < c->n_methods; k++)
                if (strcmp(c->methods[k].id, json_string_value(mid)) == 0)
                    old = &c->methods[k];
        } else if (c->n_methods == 1 && n == 1) {
            old = &c->methods[0];
        }
        if ((rc = parse_method(c, o, got, old, &ms[got], e)))
            goto fail;
    }
    FIELDS_ARR_RESET(&fulfillment_method_shape, c->methods, c->n_methods);
    c->methods = ms;
    c->n_methods = n;
    return 0;
fail:
    for (size_t i = 0; i < got; i++)
        fields_clear(&fulfillment_method_shape, &ms[i]);
    free(ms);
    return rc;
}

/* ---- create / update ---- */

static int check_currency(const json_t *req, const struct shop_rules *r, struct agentd_error *e)
{
    json_t *cur = json_object_get(req, "currency");
    if (!cur || json_is_null(cur))
        return 0;
    if (!json_is_string(cur) || !r->currency || strcasecmp(json_string_value(cur), r->currency) != 0)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "unsupported_currency", "$.currency",
                             "this shop sells in %s only", r->currency ? r->currency : "?");
    return 0;
}

/* The mutable fields of a create/update body; `full` = PUT semantics for
 * the required fields. */
int checkout_parse_body(struct checkout *w, const struct shop_rules *r, const void *arg,
                        struct agentd_error *e)
{
    const json_t *req = arg;
    int rc;
    if (!json_is_object(req))
        return agentd_fail(e, AGENTD_EMALFORMED, "invalid", "$", "the body must be a JSON object");
    if ((rc = check_currency(req, r, e)))
        return rc;
    json_t *lines = json_object_get(req, "line_items");
    if (!lines)
        return agentd_fail(e, AGENTD_EINVAL, "missing", "$.line_items", "line_items is required");
    if ((rc = parse_lines(w, lines, e)))
        return rc;
    json_t *buyer = json_object_get(req, "buyer");
    if (buyer) {
        checkout_buyer_clear(&w->buyer);
        w->has_buyer = 0;
        if (!json_is_null(buyer)) {
            if ((rc = checkout_buyer_from_json(buyer, &w->buyer, e)))
                return rc;
            w->has_buyer = 1;
        }
    }
    json_t *f = json_object_get(req, "fulfillment");
    if (f && (rc = parse_fulfillment(w, f, e)))
        return rc;
    json_t *d = json_object_get(req, "discounts");
    if (d && (rc = parse_codes(w, d, e)))
        return rc;
    json_t *p = json_object_get(req, "payment");
    if (p && (rc = parse_payment(w, p, e)))
        return rc;
    return 0;
}
