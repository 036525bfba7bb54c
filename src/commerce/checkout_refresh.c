/* Refresh: a checkout's derived state recomputed from its content and the
 * shop's rules (catalog data, shipping options, prices, messages, status). */
#include "commerce/checkout.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/address_book.h"
#include "commerce/catalog.h"
#include "commerce/checkout_internal.h"
#include "commerce/money.h"
#include "commerce/pricing.h"
#include "commerce/fields.h"
#include "core/err.h"

/* ---- refresh: catalog data, options, prices, messages, status ---- */

static int add_message(struct checkout *c, enum checkout_msg_type type, enum checkout_severity sev,
                       const char *code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int add_message(struct checkout *c, enum checkout_msg_type type, enum checkout_severity sev,
                       const char *code, const char *path, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct checkout_message *n = realloc(c->messages, (c->n_messages + 1) * sizeof *n);
    if (!n)
        return AGENTD_ENOMEM;
    c->messages = n;
    struct checkout_message *m = &n[c->n_messages];
    *m = (struct checkout_message){.type = type, .severity = sev};
    if (sdup(code, &m->code) || sdup(text, &m->content) || sdup(path, &m->path)) {
        fields_clear(&checkout_message_shape, m);
        return AGENTD_ENOMEM;
    }
    c->n_messages++;
    return 0;
}

static int refresh_items(struct checkout *c, const struct shop_rules *r, unsigned flags,
                         struct agentd_error *e)
{
    char path[64];
    for (size_t i = 0; i < c->n_lines; i++) {
        struct line_item *li = &c->lines[i];
        const struct product *p = r->product ? r->product(r->ud, li->item_id) : NULL;
        snprintf(path, sizeof path, "$.line_items[%zu]", i);
        if (!p) {
            if (flags & REFRESH_CHECK_ITEMS)
                return agentd_fail(e, AGENTD_EINVAL, "not_found", path,
                                     "Product %.64s not found", li->item_id);
            /* Vanished from the catalog since it was added: keep the line
             * so the buyer sees it, and block completion. */
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "not_found", path,
                            "Item '%.64s' is no longer available; remove it", li->item_id))
                return oom(e);
            continue;
        }
        if (p->price < 0 || p->price > MONEY_AMOUNT_MAX)
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                                 "item '%.64s' has no valid price", li->item_id);
        li->price = p->price;
        if (sset(&li->title, p->name ? p->name : p->id) || sset(&li->image_url, p->image_url))
            return oom(e);
        int64_t want = 0;
        for (size_t k = 0; k < c->n_lines; k++)
            if (strcmp(c->lines[k].item_id, li->item_id) == 0)
                want += c->lines[k].quantity;
        int64_t have = r->stock ? r->stock(r->ud, li->item_id) : -1;
        int out = !p->available || (have >= 0 && want > have);
        if (out) {
            if (flags & REFRESH_CHECK_ITEMS)
                return agentd_fail(e, AGENTD_EINVAL, "out_of_stock", path,
                                     "Insufficient stock for item %.64s (requested %lld, "
                                     "available %lld)",
                                     li->item_id, (long long)want,
                                     (long long)(p->available ? (have > 0 ? have : 0) : 0));
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "out_of_stock", path,
                            "Insufficient stock for item %.64s", li->item_id))
                return oom(e);
        }
        if (li->quantity > CHECKOUT_QTY_MAX)
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", path,
                               "quantity of '%.64s' must be between 1 and %d", li->item_id,
                               CHECKOUT_QTY_MAX);
    }
    return 0;
}

const struct postal_address *checkout_selected_dest(const struct fulfillment_method *m)
{
    for (size_t d = 0; m->selected_destination_id && d < m->n_destinations; d++)
        if (strcmp(m->destinations[d].id, m->selected_destination_id) == 0)
            return &m->destinations[d];
    return NULL;
}

/* 1 when a promotion makes standard shipping free for this cart: the item
 * subtotal before discounts (as the sample merchants compare it) or an
 * eligible product in it. */
static int shipping_is_free(const struct checkout *c, const struct shop_rules *r)
{
    if (!r->n_promotions || c->n_lines > CHECKOUT_LINES_MAX)
        return 0;
    const char *ids[CHECKOUT_LINES_MAX];
    int64_t subtotal = 0, base;
    for (size_t i = 0; i < c->n_lines; i++) {
        ids[i] = c->lines[i].item_id;
        if (!__builtin_mul_overflow(c->lines[i].price, c->lines[i].quantity, &base) &&
            base <= MONEY_AMOUNT_MAX && subtotal <= MONEY_AMOUNT_MAX)
            subtotal += base;
    }
    return promotion_free_shipping(r->promotions, r->n_promotions, subtotal, ids, c->n_lines);
}

/* Rebuilds each group's options from the rules for its destination and
 * checks the selection against them. */
static int refresh_options(struct checkout *c, const struct shop_rules *r, unsigned flags,
                           struct agentd_error *e)
{
    char path[96];
    int free_std = shipping_is_free(c, r);
    for (size_t mi = 0; mi < c->n_methods; mi++) {
        struct fulfillment_method *m = &c->methods[mi];
        if (first_group(c, m))
            return oom(e);
        const struct postal_address *dest = checkout_selected_dest(m);
        const char *country = dest ? dest->address_country : NULL;
        size_t nr = 0;
        const struct shipping_rate *const *rates =
            country && r->shipping_rates ? r->shipping_rates(r->ud, country, &nr) : NULL;
        if (!rates)
            nr = 0;
        if (nr > CHECKOUT_OPTIONS_MAX)
            nr = CHECKOUT_OPTIONS_MAX;
        for (size_t gi = 0; gi < m->n_groups; gi++) {
            struct fulfillment_group *g = &m->groups[gi];
            FIELDS_ARR_RESET(&fulfillment_option_shape, g->options, g->n_options);
            if (nr && !(g->options = calloc(nr, sizeof *g->options)))
                return oom(e);
            for (size_t k = 0; k < nr; k++) {
                const struct shipping_rate *s = rates[k];
                struct fulfillment_option *o = &g->options[g->n_options];
                if (!s || !s->id || s->price < 0 || s->price > MONEY_AMOUNT_MAX)
                    continue;
                int gratis = free_std && s->service_level &&
                             strcasecmp(s->service_level, "standard") == 0;
                o->amount = gratis ? 0 : s->price;
                g->n_options++;
                char title[160];
                /* the sample merchants' wording for a promoted option */
                snprintf(title, sizeof title, gratis ? "%s (Free)" : "%s",
                         s->title ? s->title : s->id);
                if (sdup(s->id, &o->id) || sdup(title, &o->title) ||
                    sdup(s->service_level, &o->description))
                    return oom(e);
            }
            if (!g->selected_option_id)
                continue;
            int found = 0;
            for (size_t k = 0; k < g->n_options; k++)
                found |= strcmp(g->options[k].id, g->selected_option_id) == 0;
            if (found)
                continue;
            snprintf(path, sizeof path, "$.fulfillment.methods[%zu].groups[%zu].selected_option_id",
                     mi, gi);
            const struct shipping_rate *known =
                r->shipping_rate ? r->shipping_rate(r->ud, g->selected_option_id) : NULL;
            if (!dest) {
                /* No address yet: keep a selection the shop knows, to be
                 * checked once the destination arrives. */
                if (known)
                    continue;
                if (flags & REFRESH_STRICT_OPTION)
                    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                         "unknown shipping option '%.64s'", g->selected_option_id);
            } else if (flags & REFRESH_STRICT_OPTION) {
                if (!known)
                    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                         "unknown shipping option '%.64s'", g->selected_option_id);
                /* Known but not offered here: another country's rate, or a
                 * default that a country rate of the same level overrides. */
                return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                     "shipping option '%.64s' is not available for %.8s",
                                     g->selected_option_id, country ? country : "?");
            }
            /* The destination changed under a selection: drop it and let
             * the missing-option message ask again. */
            if (add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE, "fulfillment_changed", path,
                            "Shipping option '%.64s' is not available for this address",
                            g->selected_option_id))
                return oom(e);
            free(g->selected_option_id);
            g->selected_option_id = NULL;
        }
    }
    return 0;
}

static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && strchr(at + 1, '.') &&
           !strchr(s, ' ');
}

/* Messages saying what is missing, in the order a buyer would fix them. */
static int compute_messages(struct checkout *c, const struct shop_rules *r)
{
    char path[128];
    if (c->n_lines == 0 &&
        add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", "$.line_items",
                    "Add at least one item"))
        return AGENTD_ENOMEM;
    /* The buyer is optional (UCP and the sample merchants complete without
     * one): items, a shipping selection and payment make a checkout ready.
     * An email given must still be one: the order's receipt goes there. */
    if (c->has_buyer && c->buyer.email && c->buyer.email[0] && !email_ok(c->buyer.email) &&
        add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "invalid", "$.buyer.email",
                    "Buyer email is not a valid address"))
        return AGENTD_ENOMEM;
    if (!(r->flags & SHOP_FULFILLMENT_OPTIONAL)) {
        if (c->n_methods == 0) {
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                            "$.fulfillment.methods", "Fulfillment address is required"))
                return AGENTD_ENOMEM;
        }
        for (size_t mi = 0; mi < c->n_methods; mi++) {
            const struct fulfillment_method *m = &c->methods[mi];
            const struct postal_address *d = checkout_selected_dest(m);
            if (!d) {
                snprintf(path, sizeof path, "$.fulfillment.methods[%zu].selected_destination_id",
                         mi);
                if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", path,
                                "Fulfillment address is required"))
                    return AGENTD_ENOMEM;
                continue;
            }
            if (!d->address_country || !d->address_country[0]) {
                snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", mi);
                if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", path,
                                "The shipping address needs a country"))
                    return AGENTD_ENOMEM;
                continue;
            }
            for (size_t gi = 0; gi < m->n_groups; gi++) {
                const struct fulfillment_group *g = &m->groups[gi];
                if (g->selected_option_id)
                    continue;
                snprintf(path, sizeof path,
                         "$.fulfillment.methods[%zu].groups[%zu].selected_option_id", mi, gi);
                if (g->n_options == 0) {
                    if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE,
                                    "fulfillment_unavailable", path,
                                    "We do not ship to %.8s", d->address_country))
                        return AGENTD_ENOMEM;
                } else if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                                       path, "Please select a fulfillment option")) {
                    return AGENTD_ENOMEM;
                }
            }
        }
    }
    if (json_array_size(c->payment.handlers) == 0 &&
        add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                    "$.payment.handlers", "No payment handler is available"))
        return AGENTD_ENOMEM;
    /* Rejected codes are warnings (UCP discount extension): the buyer
     * expected a saving and must be told, but checkout can go on. */
    for (size_t i = 0; i < c->n_codes; i++) {
        snprintf(path, sizeof path, "$.discounts.codes[%zu]", i);
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= strcasecmp(c->codes[k], c->codes[i]) == 0;
        const struct discount *d = r->discount ? r->discount(r->ud, c->codes[i]) : NULL;
        if (dup) {
            if (add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE,
                            "discount_code_already_applied", path,
                            "Code '%.64s' is already applied", c->codes[i]))
                return AGENTD_ENOMEM;
        } else if (!d && add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE,
                                     "discount_code_invalid", path,
                                     "Code '%.64s' is not a valid discount code", c->codes[i])) {
            return AGENTD_ENOMEM;
        }
    }
    if (c->escalation) {
        struct checkout_message *n = realloc(c->messages, (c->n_messages + 1) * sizeof *n);
        if (!n)
            return AGENTD_ENOMEM;
        c->messages = n;
        if (fields_copy(&checkout_message_shape, &n[c->n_messages], c->escalation))
            return AGENTD_ENOMEM;
        c->n_messages++;
    }
    return 0;
}

static enum checkout_status status_from_messages(const struct checkout *c)
{
    int errors = 0, escalate = 0;
    for (size_t i = 0; i < c->n_messages; i++) {
        if (c->messages[i].type != CHECKOUT_MSG_ERROR)
            continue;
        errors++;
        escalate |= c->messages[i].severity == CHECKOUT_SEV_REQUIRES_BUYER_INPUT ||
                    c->messages[i].severity == CHECKOUT_SEV_REQUIRES_BUYER_REVIEW;
    }
    if (escalate)
        return CHECKOUT_REQUIRES_ESCALATION;
    return errors ? CHECKOUT_INCOMPLETE : CHECKOUT_READY_FOR_COMPLETE;
}

int checkout_refresh_in_place(struct checkout *c, const struct shop_rules *r, unsigned flags,
                              struct agentd_error *e)
{
    int rc;
    FIELDS_ARR_RESET(&checkout_message_shape, c->messages, c->n_messages);
    if (r->currency && money_currency_valid(r->currency))
        memcpy(c->currency, r->currency, COMMERCE_CURRENCY_LEN);
    json_t *h = r->payment_handlers && json_is_array(r->payment_handlers)
                    ? json_incref((json_t *)r->payment_handlers) /* shared, never edited */
                    : json_array();
    if (!h)
        return oom(e);
    json_decref(c->payment.handlers);
    c->payment.handlers = h;
    FIELDS_ARR_RESET(&checkout_link_shape, c->links, c->n_links);
    void *links = NULL;
    if (fields_arr_copy(&checkout_link_shape, r->links, r->n_links, &links))
        return oom(e);
    c->links = links;
    c->n_links = r->n_links;
    if ((rc = refresh_items(c, r, flags, e)))
        return rc;
    if (address_book_apply(c, r))
        return oom(e);
    if ((rc = refresh_options(c, r, flags, e)) ||
        (rc = pricing_compute(c, r, e)))
        return rc;
    if (compute_messages(c, r))
        return oom(e);
    if (!checkout_status_terminal(c->status) && c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
        c->status = status_from_messages(c);
    if (r->now)
        c->updated_at = r->now;
    return 0;
}
