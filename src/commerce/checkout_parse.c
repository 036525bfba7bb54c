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
    int rc = jstr(o, key, out, x->path, x->e);
    /* the member's own path only when it is refused (it was an snprintf
     * for every member read); cut at 95 bytes as it always was */
    if (rc == AGENTD_EINVAL && x->per_key && x->e) {
        char path[96];
        snprintf(path, sizeof path, "%s.%s", x->path, key);
        snprintf(x->e->path, sizeof x->e->path, "%s", path);
    }
    return rc;
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
    const json_t *consent = json_object_get(j, "consent");
    if (!rc && consent && !json_is_null(consent))
        rc = checkout_consent_from_json(consent, &b->consent, e);
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

/* A request array: more than max elements is refused with "at most <max>
 * <what>", each element through its parser (which words its own errors). */
static int req_arr(const json_t *arr, size_t max, const char *path, const char *what,
                   const struct shape *s, fields_parse_fn parse, void *ctx, void *field, size_t *n,
                   struct agentd_error *e)
{
    int rc = fields_arr_parse(s, arr, max, parse, ctx, field, n);
    if (rc == AGENTD_ETOOLARGE)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path, "at most %zu %s", max, what);
    return rc == AGENTD_ENOMEM ? oom(e) : rc;
}

/* What the request's element parsers need. */
struct req_ctx {
    struct checkout *c;
    size_t mi;        /* the method whose destinations are parsed */
    size_t n_methods; /* how many methods the request gives */
    struct agentd_error *e;
};

static int req_line(const json_t *o, void *items, size_t i, void *ctx)
{
    struct agentd_error *e = ((struct req_ctx *)ctx)->e;
    struct line_item *lines = items, *li = &lines[i];
    char path[96];
    snprintf(path, sizeof path, "$.line_items[%zu]", i);
    json_t *item = json_object_get(o, "item");
    json_t *iid = json_object_get(item, "id");
    json_t *qty = json_object_get(o, "quantity");
    if (!json_is_object(o) || !json_is_object(item) || !json_is_string(iid) ||
        !id_ok(json_string_value(iid)))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                           "line item %zu needs item.id (1-%d printable characters)", i, ID_MAX);
    if (!json_is_integer(qty))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                           "line item %zu needs an integer quantity", i);
    li->quantity = json_integer_value(qty);
    /* Up to CHECKOUT_QTY_PARSE_MAX here: refresh says "Insufficient stock"
     * before it applies CHECKOUT_QTY_MAX, whatever the quantity asked. */
    if (li->quantity < 1 || li->quantity > CHECKOUT_QTY_PARSE_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", path,
                           "quantity of '%s' must be between 1 and %d", json_string_value(iid),
                           CHECKOUT_QTY_MAX);
    if (sdup(json_string_value(iid), &li->item_id))
        return oom(e);
    json_t *lid = json_object_get(o, "id");
    if (json_is_string(lid) && id_ok(json_string_value(lid))) {
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= lines[k].id && strcmp(lines[k].id, json_string_value(lid)) == 0;
        if (!dup && sdup(json_string_value(lid), &li->id))
            return oom(e);
    }
    return 0;
}

/* line_items[] -> c->lines; lines that did not bring a usable id get a
 * fresh one. */
static int parse_lines(struct checkout *c, const json_t *arr, struct agentd_error *e)
{
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.line_items",
                             "line_items must be an array");
    struct req_ctx x = {c, 0, 0, e};
    int rc = req_arr(arr, CHECKOUT_LINES_MAX, "$.line_items", "line items", &line_item_shape,
                     req_line, &x, &c->lines, &c->n_lines, e);
    for (size_t i = 0; !rc && i < c->n_lines; i++) {
        while (!c->lines[i].id) { /* one no line brought itself */
            char *id = NULL;
            if (next_id(c, "li", &id)) {
                rc = oom(e);
                break;
            }
            int clash = 0;
            for (size_t k = 0; k < c->n_lines; k++)
                clash |= c->lines[k].id && strcmp(c->lines[k].id, id) == 0;
            if (clash)
                free(id);
            else
                c->lines[i].id = id;
        }
    }
    return rc;
}

static int req_code(const json_t *v, void *items, size_t i, void *ctx)
{
    struct agentd_error *e = ((struct req_ctx *)ctx)->e;
    if (!json_is_string(v) || !id_ok(json_string_value(v)))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                           "discount code %zu must be 1-%d printable characters", i, ID_MAX);
    return sdup(json_string_value(v), (char **)items + i) ? oom(e) : 0;
}

/* The array member `key` of an object the request may give, null or omit
 * (discounts.codes, fulfillment.methods): 1 with *arr to parse (JSON null,
 * i.e. empty, when the object or the member is null), 0 when the member is
 * absent (nothing changes), or an error. */
static int req_member(const json_t *o, const char *path, const char *key, const char *not_array,
                      const json_t **arr, struct agentd_error *e)
{
    char mpath[64];
    snprintf(mpath, sizeof mpath, "%s.%s", path, key);
    *arr = o;
    if (json_is_null(o))
        return 1;
    if (!json_is_object(o))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "%s must be an object", path + 2);
    if (!(*arr = json_object_get(o, key)))
        return 0;
    if (!json_is_null(*arr) && !json_is_array(*arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", mpath, "%s", not_array);
    return 1;
}

static int parse_codes(struct checkout *c, const json_t *disc, struct agentd_error *e)
{
    /* {"applied": ...} echoed back without codes: nothing to change */
    const json_t *codes;
    int rc = req_member(disc, "$.discounts", "codes", "discounts.codes must be an array of strings",
                        &codes, e);
    if (rc <= 0)
        return rc;
    struct req_ctx x = {c, 0, 0, e};
    return req_arr(codes, CHECKOUT_CODES_MAX, "$.discounts.codes", "discount codes",
                   &fields_str_shape, req_code, &x, &c->codes, &c->n_codes, e);
}

static int req_instrument(const json_t *j, void *items, size_t i, void *ctx)
{
    struct agentd_error pe;
    int rc = payment_instrument_parse(j, (struct payment_instrument *)items + i, &pe);
    if (!rc)
        return 0;
    struct agentd_error *e = ((struct req_ctx *)ctx)->e;
    char path[64];
    snprintf(path, sizeof path, "$.payment.instruments[%zu]", i);
    return rc == AGENTD_ENOMEM ? oom(e)
                               : agentd_fail(e, rc, "invalid_payment", path, "%.199s", pe.msg);
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
    /* c is the operation's working copy: a failure half way is dropped */
    struct req_ctx x = {c, 0, 0, e};
    int rc = req_arr(ins, CHECKOUT_INSTRUMENTS_MAX, "$.payment.instruments",
                     "payment instruments", &payment_instrument_shape, req_instrument, &x,
                     &c->payment.instruments, &c->payment.n_instruments, e);
    char *sel = NULL;
    if (rc || (rc = jstr(p, "selected_instrument_id", &sel, "$.payment.selected_instrument_id", e)))
        return rc;
    free(c->payment.selected_instrument_id);
    c->payment.selected_instrument_id = sel;
    return 0;
}

static int req_destination(const json_t *j, void *items, size_t i, void *ctx)
{
    const struct req_ctx *x = ctx;
    struct postal_address *d = items;
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", x->mi);
    int rc = checkout_address_from_json(j, &d[i], x->e);
    if (rc) {
        if (x->e)
            snprintf(x->e->path, sizeof x->e->path, "%s[%zu]", path, i);
        return rc;
    }
    for (size_t k = 0; k < i && d[i].id; k++)
        if (d[k].id && strcmp(d[k].id, d[i].id) == 0)
            return agentd_fail(x->e, AGENTD_EINVAL, "invalid", path,
                               "destination id '%s' appears twice", d[k].id);
    return 0;
}

/* destinations[] of method mi into m->destinations, assigning ids. */
static int parse_destinations(struct checkout *c, const json_t *arr, size_t mi,
                              struct fulfillment_method *m, struct agentd_error *e)
{
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", mi);
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "destinations must be an array");
    struct req_ctx x = {c, mi, 0, e};
    int rc = req_arr(arr, CHECKOUT_DESTS_MAX, path, "destinations", &postal_address_shape,
                     req_destination, &x, &m->destinations, &m->n_destinations, e);
    for (size_t i = 0; !rc && i < m->n_destinations; i++)
        if (!m->destinations[i].id && next_id(c, "dest", &m->destinations[i].id))
            rc = oom(e);
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
        if (!mid && next_id(c, "shipping", &mid))
            return oom(e);
        m->id = mid;
    }
    if (sset(&m->type, "shipping"))
        goto nomem;

    json_t *dests = json_object_get(o, "destinations");
    int dests_given = dests && !json_is_null(dests);
    if (dests_given && (rc = parse_destinations(c, dests, mi, m, e)))
        goto fail;

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
        if (first_group(c, m))
            goto nomem;
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

static int req_method(const json_t *o, void *items, size_t i, void *ctx)
{
    const struct req_ctx *x = ctx;
    const struct checkout *c = x->c;
    const struct fulfillment_method *old = NULL;
    json_t *mid = json_object_get(o, "id");
    if (json_is_string(mid)) {
        for (size_t k = 0; k < c->n_methods; k++)
            if (strcmp(c->methods[k].id, json_string_value(mid)) == 0)
                old = &c->methods[k];
    } else if (c->n_methods == 1 && x->n_methods == 1) {
        old = &c->methods[0];
    }
    return parse_method(x->c, o, i, old, (struct fulfillment_method *)items + i, x->e);
}

static int parse_fulfillment(struct checkout *c, const json_t *f, struct agentd_error *e)
{
    const json_t *methods;
    int rc = req_member(f, "$.fulfillment", "methods", "fulfillment.methods must be an array",
                        &methods, e);
    if (rc <= 0)
        return rc;
    /* merged with the current methods, which stay until all are parsed */
    struct req_ctx x = {c, 0, json_array_size(methods), e};
    return req_arr(methods, CHECKOUT_METHODS_MAX, "$.fulfillment.methods",
                   "fulfillment methods", &fulfillment_method_shape, req_method, &x, &c->methods,
                   &c->n_methods, e);
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

/* ---- buyer consent (dev.ucp.shopping.buyer_consent) ---- */

#define CONSENT_CHANNELS_MAX 8

static int consent_channel(const json_t *v, size_t i, json_t *out, struct agentd_error *e)
{
    static const char *const channels[] = {"email", "sms", "whatsapp"};
    const char *ch = json_string_value(json_object_get(v, "channel"));
    const json_t *in = json_object_get(v, "opted_in");
    int known = 0;
    for (size_t k = 0; ch && k < sizeof channels / sizeof channels[0]; k++)
        known |= strcmp(ch, channels[k]) == 0;
    char path[64];
    snprintf(path, sizeof path, "$.buyer.consent.marketing_channels[%zu]", i);
    if (!json_is_object(v) || !known || !json_is_boolean(in))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                           "a marketing channel consent is {channel: email|sms|whatsapp, "
                           "opted_in: boolean}");
    json_t *c = json_pack("{s:s, s:b}", "channel", ch, "opted_in", json_is_true(in));
    if (!c || json_array_append_new(out, c))
        return AGENTD_ENOMEM;
    return 0;
}

int checkout_consent_from_json(const json_t *j, json_t **out, struct agentd_error *e)
{
    static const char *const flags[] = {"analytics", "preferences", "marketing", "sale_of_data"};
    *out = NULL;
    if (!json_is_object(j))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer.consent",
                           "buyer.consent must be an object");
    json_t *c = json_object();
    if (!c)
        return AGENTD_ENOMEM;
    char path[64];
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        const json_t *v = json_object_get(j, flags[k]);
        if (!v || json_is_null(v))
            continue;
        snprintf(path, sizeof path, "$.buyer.consent.%s", flags[k]);
        if (!json_is_boolean(v)) {
            json_decref(c);
            return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "buyer.consent.%s must be a "
                               "boolean", flags[k]);
        }
        if (json_object_set_new(c, flags[k], json_boolean(json_is_true(v)))) {
            json_decref(c);
            return AGENTD_ENOMEM;
        }
    }
    const json_t *mc = json_object_get(j, "marketing_channels");
    if (mc && !json_is_null(mc)) {
        if (!json_is_array(mc) || json_array_size(mc) > CONSENT_CHANNELS_MAX) {
            json_decref(c);
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer.consent.marketing_channels",
                               "buyer.consent.marketing_channels must be an array of at most %d",
                               CONSENT_CHANNELS_MAX);
        }
        json_t *arr = json_array();
        size_t i;
        json_t *v;
        int rc = arr ? 0 : AGENTD_ENOMEM;
        json_array_foreach(mc, i, v)
        {
            if (rc || (rc = consent_channel(v, i, arr, e)))
                break;
        }
        if (rc || json_object_set_new(c, "marketing_channels", arr)) {
            if (rc)
                json_decref(arr);
            json_decref(c);
            return rc ? rc : AGENTD_ENOMEM;
        }
    }
    *out = c;
    return 0;
}
