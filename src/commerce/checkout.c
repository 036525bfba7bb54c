/* The checkout's operations (create, update, agent edits, cancel, escalate,
 * complete): each applied to a copy and swapped in only on success. Pure. */
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

/* Swaps the contents of a working copy into c and frees the old state. */
static void commit(struct checkout *c, struct checkout *work)
{
    struct checkout old = *c;
    *c = *work;
    *work = old;
    checkout_free(work);
}

/* Refreshes w, a working copy of c, and commits it into c; w is consumed. */
static int refresh_commit(struct checkout *c, struct checkout *w, const struct shop_rules *r,
                          unsigned flags, struct agentd_error *e)
{
    int rc = checkout_refresh_in_place(w, r, flags, e);
    if (rc) {
        checkout_free(w);
        return rc;
    }
    commit(c, w);
    return 0;
}

int checkout_refresh(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    struct checkout *w = checkout_clone(c);
    return w ? refresh_commit(c, w, r, 0, e) : oom(e);
}

/* ---- state guards ---- */

static int guard_mutable(const struct checkout *c, struct agentd_error *e)
{
    if (checkout_status_terminal(c->status))
        return agentd_fail(e, AGENTD_ECONFLICT, "not_modifiable", NULL,
                             "checkout %.64s is %s and can no longer change", c->id,
                             checkout_status_name(c->status));
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS)
        return agentd_fail(e, AGENTD_ECONFLICT, "complete_in_progress", NULL,
                             "checkout %.64s is being completed", c->id);
    return 0;
}

/* Only a checkout being completed may be released or marked completed. */
static int guard_completing(const struct checkout *c, struct agentd_error *e)
{
    if (checkout_status_terminal(c->status))
        return guard_mutable(c, e);
    if (c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                             "checkout is %s, not complete_in_progress",
                             checkout_status_name(c->status));
    return 0;
}

/* Runs fn on a working copy of c, refreshes, and commits on success. */
typedef int (*mutate_fn)(struct checkout *w, const struct shop_rules *r, const void *arg,
                         struct agentd_error *e);

/* A working copy of c for an operation, refused when c or r is missing or
 * c may no longer change. 0 with *w, or the error. */
static int work_on(const struct checkout *c, const struct shop_rules *r, struct checkout **w,
                   struct agentd_error *e)
{
    *w = NULL;
    if (!c || !r)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout or rules");
    int rc = guard_mutable(c, e);
    if (rc)
        return rc;
    return (*w = checkout_clone(c)) ? 0 : oom(e);
}

static int mutate(struct checkout *c, const struct shop_rules *r, unsigned flags, mutate_fn fn,
                  const void *arg, struct agentd_error *e)
{
    struct checkout *w;
    int rc = work_on(c, r, &w, e);
    if (rc)
        return rc;
    if ((rc = fn(w, r, arg, e))) {
        checkout_free(w);
        return rc;
    }
    return refresh_commit(c, w, r, flags, e);
}



int checkout_create(const json_t *req, const struct shop_rules *r, const char *id,
                    struct checkout **out, struct agentd_error *e)
{
    *out = NULL;
    if (!r || !r->product || !r->currency || !money_currency_valid(r->currency))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "shop rules are incomplete");
    if (!id_ok(id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "invalid checkout id");
    struct checkout *c = checkout_new(id);
    if (!c)
        return oom(e);
    memcpy(c->currency, r->currency, COMMERCE_CURRENCY_LEN);
    c->created_at = c->updated_at = r->now;
    c->expires_at = r->now + (r->ttl_seconds > 0 ? r->ttl_seconds : CHECKOUT_DEFAULT_TTL);
    if (r->continue_url_base) {
        size_t n = strlen(r->continue_url_base) + strlen(id) + 2;
        if (!(c->continue_url = malloc(n))) {
            checkout_free(c);
            return oom(e);
        }
        snprintf(c->continue_url, n, "%s/%s", r->continue_url_base, id);
    }
    int rc = checkout_parse_body(c, r, req, e);
    if (!rc)
        rc = checkout_refresh_in_place(c, r, REFRESH_CHECK_ITEMS | REFRESH_STRICT_OPTION, e);
    if (rc) {
        checkout_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int checkout_update(struct checkout *c, const struct shop_rules *r, const json_t *req,
                    struct agentd_error *e)
{
    if (c && json_is_object(req)) {
        json_t *id = json_object_get(req, "id");
        if (json_is_string(id) && strcmp(json_string_value(id), c->id) != 0)
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.id",
                                 "the body's id does not match the checkout");
    }
    return mutate(c, r, REFRESH_CHECK_ITEMS | REFRESH_STRICT_OPTION, checkout_parse_body, req, e);
}

/* ---- agent tools ---- */

struct item_arg {
    const char *key;
    int64_t qty;
};

static int check_qty(int64_t q, const char *what, struct agentd_error *e)
{
    if (q < 1 || q > CHECKOUT_QTY_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", "$.line_items",
                             "quantity of '%.64s' must be between 1 and %d", what,
                             CHECKOUT_QTY_MAX);
    return 0;
}

static int do_item_add(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    const struct item_arg *a = arg;
    int rc;
    if (!id_ok(a->key))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.line_items", "invalid item id");
    if ((rc = check_qty(a->qty, a->key, e)))
        return rc;
    if (!r->product(r->ud, a->key))
        return agentd_fail(e, AGENTD_EINVAL, "not_found", "$.line_items",
                             "Product %.64s not found", a->key); /* the sample merchants' text */
    for (size_t i = 0; i < w->n_lines; i++) {
        if (strcmp(w->lines[i].item_id, a->key) == 0) {
            int64_t q = w->lines[i].quantity + a->qty;
            if ((rc = check_qty(q, a->key, e)))
                return rc;
            w->lines[i].quantity = q;
            return 0;
        }
    }
    if (w->n_lines >= CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.line_items",
                             "at most %d line items", CHECKOUT_LINES_MAX);
    struct line_item *n = realloc(w->lines, (w->n_lines + 1) * sizeof *n);
    if (!n)
        return oom(e);
    w->lines = n;
    struct line_item *li = &n[w->n_lines];
    memset(li, 0, sizeof *li);
    li->quantity = a->qty;
    if (next_id(w, "li", &li->id) || sdup(a->key, &li->item_id)) {
        fields_clear(&line_item_shape, li);
        return oom(e);
    }
    w->n_lines++;
    return 0;
}

int checkout_item_add(struct checkout *c, const struct shop_rules *r, const char *product_id,
                      int64_t quantity, struct agentd_error *e)
{
    struct item_arg a = {product_id, quantity};
    return mutate(c, r, REFRESH_CHECK_ITEMS, do_item_add, &a, e);
}

static long find_line(const struct checkout *w, const char *key)
{
    if (!key)
        return -1;
    for (size_t i = 0; i < w->n_lines; i++)
        if (strcmp(w->lines[i].id, key) == 0)
            return (long)i;
    for (size_t i = 0; i < w->n_lines; i++)
        if (strcmp(w->lines[i].item_id, key) == 0)
            return (long)i;
    return -1;
}

static int do_item_set(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    (void)r;
    const struct item_arg *a = arg;
    long i = find_line(w, a->key);
    if (i < 0)
        return agentd_fail(e, AGENTD_ENOTFOUND, "not_found", "$.line_items",
                             "'%.64s' is not in the checkout", a->key ? a->key : "");
    if (a->qty == 0) {
        fields_clear(&line_item_shape, &w->lines[i]);
        memmove(&w->lines[i], &w->lines[i + 1], (w->n_lines - (size_t)i - 1) * sizeof *w->lines);
        w->n_lines--;
        return 0;
    }
    int rc = check_qty(a->qty, w->lines[i].item_id, e);
    if (rc)
        return rc;
    w->lines[i].quantity = a->qty;
    return 0;
}

int checkout_item_remove(struct checkout *c, const struct shop_rules *r,
                         const char *line_or_product, struct agentd_error *e)
{
    struct item_arg a = {line_or_product, 0};
    return mutate(c, r, 0, do_item_set, &a, e);
}

int checkout_item_set_quantity(struct checkout *c, const struct shop_rules *r,
                               const char *line_or_product, int64_t quantity,
                               struct agentd_error *e)
{
    struct item_arg a = {line_or_product, quantity};
    if (quantity < 0 || quantity > CHECKOUT_QTY_MAX)
        return check_qty(quantity, line_or_product ? line_or_product : "", e);
    return mutate(c, r, quantity ? REFRESH_CHECK_ITEMS : 0, do_item_set, &a, e);
}

/* A client string a checkout may keep (see str_ok). */
static int printable(const char *s)
{
    return str_ok(s, CHECKOUT_STR_MAX);
}

/* A client-given struct of strings (a buyer, an address) at path: given,
 * and each of its strings printable; else the error words `none`/`what`. */
static int client_strs_check(const struct shape *s, const void *obj, const char *path,
                             const char *none, const char *what, struct agentd_error *e)
{
    if (!obj)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "%s", none);
    if (!fields_strs_all(s, obj, printable))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "%s fields must be printable text",
                           what);
    return 0;
}

static int do_buyer(struct checkout *w, const struct shop_rules *r, const void *arg,
                    struct agentd_error *e)
{
    (void)r;
    const struct checkout_buyer *b = arg;
    int rc = client_strs_check(&checkout_buyer_shape, b, "$.buyer", "no buyer", "buyer", e);
    if (rc)
        return rc;
    struct checkout_buyer nb;
    if (fields_copy(&checkout_buyer_shape, &nb, b))
        return oom(e);
    checkout_buyer_clear(&w->buyer);
    w->buyer = nb;
    w->has_buyer = 1;
    return 0;
}

int checkout_buyer_set(struct checkout *c, const struct shop_rules *r,
                       const struct checkout_buyer *b, struct agentd_error *e)
{
    return mutate(c, r, 0, do_buyer, b, e);
}

static int do_destination(struct checkout *w, const struct shop_rules *r, const void *arg,
                          struct agentd_error *e)
{
    (void)r;
    const struct postal_address *a = arg;
    int rc = client_strs_check(&postal_address_shape, a, "$.fulfillment", "no address", "address",
                               e);
    if (rc)
        return rc;
    if (a->id && !id_ok(a->id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment", "invalid destination id");
    if (w->n_methods == 0) {
        if (!(w->methods = calloc(1, sizeof *w->methods)))
            return oom(e);
        w->n_methods = 1;
        if (next_id(w, "shipping", &w->methods[0].id) || sdup("shipping", &w->methods[0].type))
            return oom(e);
    }
    struct fulfillment_method *m = &w->methods[0];
    struct postal_address na;
    if (fields_copy(&postal_address_shape, &na, a))
        return oom(e);
    for (char *p = na.address_country; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    if (!na.id && next_id(w, "dest", &na.id)) {
        checkout_address_clear(&na);
        return oom(e);
    }
    size_t slot = m->n_destinations;
    for (size_t i = 0; i < m->n_destinations; i++)
        if (strcmp(m->destinations[i].id, na.id) == 0)
            slot = i;
    if (slot == m->n_destinations) {
        if (m->n_destinations >= CHECKOUT_DESTS_MAX) {
            checkout_address_clear(&na);
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.fulfillment",
                                 "at most %d destinations", CHECKOUT_DESTS_MAX);
        }
        struct postal_address *n = realloc(m->destinations, (slot + 1) * sizeof *n);
        if (!n) {
            checkout_address_clear(&na);
            return oom(e);
        }
        m->destinations = n;
        m->n_destinations++;
    } else {
        checkout_address_clear(&m->destinations[slot]);
    }
    m->destinations[slot] = na;
    return sset(&m->selected_destination_id, na.id) ? oom(e) : 0;
}

int checkout_destination_set(struct checkout *c, const struct shop_rules *r,
                             const struct postal_address *a, struct agentd_error *e)
{
    return mutate(c, r, 0, do_destination, a, e);
}

static int do_select(struct checkout *w, const struct shop_rules *r, const void *arg,
                     struct agentd_error *e)
{
    const char *id = arg;
    if (!id_ok(id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment", "invalid option id");
    if (w->n_methods == 0 || !checkout_selected_dest(&w->methods[0]))
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "missing",
                             "$.fulfillment.methods[0].selected_destination_id",
                             "set a shipping address before choosing a shipping option");
    struct fulfillment_method *m = &w->methods[0];
    (void)r;
    if (first_group(w, m) || sset(&m->groups[0].selected_option_id, id))
        return oom(e);
    return 0;
}

int checkout_shipping_select(struct checkout *c, const struct shop_rules *r, const char *option_id,
                             struct agentd_error *e)
{
    return mutate(c, r, REFRESH_STRICT_OPTION, do_select, option_id, e);
}

struct codes_arg {
    const char *const *codes;
    size_t n;
};

static int do_codes(struct checkout *w, const struct shop_rules *r, const void *arg,
                    struct agentd_error *e)
{
    (void)r;
    const struct codes_arg *a = arg;
    if (a->n > CHECKOUT_CODES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.discounts.codes",
                             "at most %d discount codes", CHECKOUT_CODES_MAX);
    for (size_t i = 0; i < a->n; i++)
        if (!id_ok(a->codes[i]))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                                 "discount codes must be 1-%d printable characters", ID_MAX);
    char **nc = calloc(a->n ? a->n : 1, sizeof *nc);
    if (!nc)
        return oom(e);
    for (size_t i = 0; i < a->n; i++) {
        if (sdup(a->codes[i], &nc[i])) {
            for (size_t k = 0; k < i; k++)
                free(nc[k]);
            free(nc);
            return oom(e);
        }
    }
    FIELDS_ARR_RESET(&fields_str_shape, w->codes, w->n_codes);
    w->codes = nc;
    w->n_codes = a->n;
    return 0;
}

int checkout_discounts_apply(struct checkout *c, const struct shop_rules *r,
                             const char *const *codes, size_t n, struct agentd_error *e)
{
    struct codes_arg a = {codes, n};
    return mutate(c, r, 0, do_codes, &a, e);
}

/* ---- escalation ---- */

struct esc_arg {
    const char *code, *content;
    enum checkout_severity sev;
};

static int do_escalate(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    (void)r;
    const struct esc_arg *a = arg;
    if (a->sev != CHECKOUT_SEV_REQUIRES_BUYER_INPUT && a->sev != CHECKOUT_SEV_REQUIRES_BUYER_REVIEW)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "escalation needs a requires_buyer_* severity");
    if (!a->code || !a->content || !str_ok(a->code, ID_MAX) || !str_ok(a->content, 256))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "escalation needs code and content");
    struct checkout_message *m = calloc(1, sizeof *m);
    if (!m)
        return oom(e);
    m->type = CHECKOUT_MSG_ERROR;
    m->severity = a->sev;
    if (sdup(a->code, &m->code) || sdup(a->content, &m->content)) {
        fields_clear(&checkout_message_shape, m);
        free(m);
        return oom(e);
    }
    if (w->escalation) {
        fields_clear(&checkout_message_shape, w->escalation);
        free(w->escalation);
    }
    w->escalation = m;
    return 0;
}

int checkout_escalate(struct checkout *c, const struct shop_rules *r, const char *code,
                      const char *content, enum checkout_severity sev, struct agentd_error *e)
{
    struct esc_arg a = {code, content, sev};
    return mutate(c, r, 0, do_escalate, &a, e);
}

static int do_unescalate(struct checkout *w, const struct shop_rules *r, const void *arg,
                         struct agentd_error *e)
{
    (void)r;
    (void)arg;
    (void)e;
    if (w->escalation) {
        fields_clear(&checkout_message_shape, w->escalation);
        free(w->escalation);
        w->escalation = NULL;
    }
    return 0;
}

int checkout_escalation_clear(struct checkout *c, const struct shop_rules *r,
                              struct agentd_error *e)
{
    return mutate(c, r, 0, do_unescalate, NULL, e);
}

/* ---- cancel and complete ---- */

int checkout_cancel(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    if (!c)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout");
    if (checkout_status_terminal(c->status))
        return agentd_fail(e, AGENTD_ECONFLICT, "not_modifiable", NULL,
                             "checkout %.64s is already %s", c->id, checkout_status_name(c->status));
    c->status = CHECKOUT_CANCELED;
    fields_clear(&checkout_claim_shape, &c->completing); /* canceled mid-completion: nobody carries it on */
    if (r && r->now)
        c->updated_at = r->now;
    return 0;
}

static int first_error(const struct checkout *c, struct agentd_error *e)
{
    for (size_t i = 0; i < c->n_messages; i++) {
        const struct checkout_message *m = &c->messages[i];
        if (m->type != CHECKOUT_MSG_ERROR)
            continue;
        /* No destination or option yet: a bad request, in the sample
         * merchants' words (platforms match on them). */
        if (m->path && strncmp(m->path, "$.fulfillment", 13) == 0 &&
            strcmp(m->code, "missing") == 0)
            return agentd_fail(e, AGENTD_EINVAL, m->code, m->path,
                               "Fulfillment address and option must be selected before "
                               "completion.");
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, m->code, m->path,
                           "checkout is not ready: %s", m->content);
    }
    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "not_ready", NULL, "checkout is not ready");
}

int checkout_begin_complete(struct checkout *c, const struct shop_rules *r, int64_t expected_total,
                            struct agentd_error *e)
{
    struct checkout *w;
    int rc = work_on(c, r, &w, e);
    if (rc)
        return rc;
    int64_t seen = expected_total >= 0 ? expected_total : c->totals.total;
    /* Items are checked strictly: stock may have run out since the cart
     * was built, and that must stop completion, not slip through. */
    if ((rc = checkout_refresh_in_place(w, r, REFRESH_CHECK_ITEMS, e))) {
        checkout_free(w);
        return rc;
    }
    if (w->status != CHECKOUT_READY_FOR_COMPLETE) {
        rc = first_error(w, e);
        if (w->status == CHECKOUT_REQUIRES_ESCALATION)
            rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "requires_escalation", NULL,
                               "the buyer must continue at the continue_url");
        commit(c, w); /* the fresh messages are worth keeping */
        return rc;
    }
    if (w->totals.total != seen) {
        int64_t now_total = w->totals.total;
        commit(c, w);
        return agentd_fail(e, AGENTD_ECONFLICT, "total_changed", "$.totals",
                             "the total changed from %lld to %lld; review and retry",
                             (long long)seen, (long long)now_total);
    }
    w->status = CHECKOUT_COMPLETE_IN_PROGRESS;
    commit(c, w);
    return 0;
}

int checkout_abort_complete(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    int rc;
    if (!c || !r)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout or rules");
    if ((rc = guard_completing(c, e)))
        return rc;
    struct checkout *w = checkout_clone(c);
    if (!w)
        return oom(e);
    w->status = CHECKOUT_INCOMPLETE; /* recomputed below */
    fields_clear(&checkout_claim_shape, &w->completing);
    return refresh_commit(c, w, r, 0, e);
}

int checkout_mark_completed(struct checkout *c, const struct shop_rules *r, const char *order_id,
                            const char *permalink_url, struct agentd_error *e)
{
    int rc;
    if (!c)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout");
    if ((rc = guard_completing(c, e)))
        return rc;
    if (!id_ok(order_id) || !permalink_url || !str_ok(permalink_url, CHECKOUT_STR_MAX))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "invalid order id or permalink");
    char *oid = NULL, *url = NULL;
    if (sdup(order_id, &oid) || sdup(permalink_url, &url)) {
        free(oid);
        return oom(e);
    }
    free(c->order_id);
    free(c->order_permalink_url);
    c->order_id = oid;
    c->order_permalink_url = url;
    c->status = CHECKOUT_COMPLETED;
    fields_clear(&checkout_claim_shape, &c->completing);
    if (r && r->now)
        c->updated_at = r->now;
    /* A completed session has nothing left to fix. */
    FIELDS_ARR_RESET(&checkout_message_shape, c->messages, c->n_messages);
    /* Nor anything left to pay: of its instruments only what identifies one
     * to the buyer stays (id, handler, type, brand, last digits). */
    for (size_t i = 0; i < c->payment.n_instruments; i++) {
        struct payment_instrument *pi = &c->payment.instruments[i];
        if (pi->token)
            explicit_bzero(pi->token, strlen(pi->token));
        free(pi->token);
        free(pi->credential_type);
        pi->token = pi->credential_type = NULL;
        pi->expiry_month = pi->expiry_year = 0;
    }
    return 0;
}

