/* Pricing: every amount of a checkout from its content, in integer minor
 * units, with exact allocation of discounts over lines. Pure. */
#include "commerce/pricing.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/checkout_internal.h"
#include "commerce/money.h"
#include "core/err.h"

typedef __int128 wide_t; /* products of two amounts need more than 64 bits */

int64_t pricing_mul_div(int64_t value, int64_t num, int64_t den)
{
    if (value < 0 || num < 0 || den <= 0)
        return -1;
    wide_t p = (wide_t)value * num;
    wide_t q = p / den, rem = p % den;
    if (rem * 2 >= den) /* half up */
        q++;
    if (q > MONEY_AMOUNT_MAX)
        return -1;
    return (int64_t)q;
}

int pricing_allocate(int64_t amount, const int64_t *weights, size_t n, int64_t *out)
{
    if (amount < 0 || (n && (!weights || !out)))
        return AGENTD_EINVAL;
    wide_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] < 0)
            return AGENTD_EINVAL;
        total += weights[i];
    }
    if (total > MONEY_AMOUNT_MAX)
        return AGENTD_EINVAL;
    if (n == 0)
        return amount == 0 ? 0 : AGENTD_EINVAL;
    if (total == 0) {
        /* Nothing to weigh by: only a zero amount can be placed. */
        if (amount != 0)
            return AGENTD_EINVAL;
        memset(out, 0, n * sizeof *out);
        return 0;
    }
    wide_t given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (int64_t)(((wide_t)amount * weights[i]) / total);
        given += out[i];
    }
    /* Hand out the leftover units one each to the largest remainders; ties
     * to the earlier line so the result is deterministic. n is at most
     * CHECKOUT_LINES_MAX, so the quadratic pick is cheap. */
    int64_t left = (int64_t)(amount - given);
    char *used = calloc(n, 1);
    if (!used && left > 0)
        return AGENTD_ENOMEM;
    while (left > 0) {
        size_t best = n;
        wide_t best_rem = -1;
        for (size_t i = 0; i < n; i++) {
            if (used[i])
                continue;
            wide_t rem = ((wide_t)amount * weights[i]) % total;
            if (rem > best_rem) {
                best_rem = rem;
                best = i;
            }
        }
        if (best == n)
            break;
        used[best] = 1;
        out[best]++;
        left--;
    }
    free(used);
    return 0;
}

static int too_large(struct agentd_error *e, const char *what)
{
    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "amount_too_large", NULL,
                         "the %s is larger than this shop can process", what);
}

/* The destination prices and taxes are computed for: the selected
 * destination of the first shipping method that has one. */
static const struct postal_address *priced_destination(const struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++) {
        const struct fulfillment_method *fm = &c->methods[m];
        if (!fm->selected_destination_id)
            continue;
        for (size_t d = 0; d < fm->n_destinations; d++)
            if (fm->destinations[d].id &&
                strcmp(fm->destinations[d].id, fm->selected_destination_id) == 0)
                return &fm->destinations[d];
    }
    return NULL;
}

static const struct tax_rate *lookup_tax(const struct shop_rules *r, const struct postal_address *a)
{
    if (!r->tax_rate || !a || !a->address_country)
        return NULL;
    const char *region = a->address_region ? a->address_region : "*";
    const struct tax_rate *t = r->tax_rate(r->ud, a->address_country, region);
    if (!t)
        t = r->tax_rate(r->ud, a->address_country, "*");
    if (!t)
        t = r->tax_rate(r->ud, "*", "*");
    return t;
}

static void applied_clear(struct checkout *c)
{
    FIELDS_ARR_RESET(&applied_discount_shape, c->applied, c->n_applied);
}

/* Codes the rules know, in the order submitted (each applies to what the
 * earlier ones left, as UCP's sample merchants do); a repeated code counts
 * once; unknown codes are skipped here (refresh reports them). */
static size_t order_discounts(const struct checkout *c, const struct shop_rules *r,
                              const struct discount **out, const char **codes)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_codes; i++) {
        const struct discount *d = r->discount ? r->discount(r->ud, c->codes[i]) : NULL;
        if (!d)
            continue;
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= out[k] == d || strcasecmp(codes[k], c->codes[i]) == 0;
        if (dup)
            continue;
        out[n] = d;
        codes[n] = c->codes[i];
        n++;
    }
    return n;
}

int64_t pricing_discount_amount(const struct discount *d, int64_t left)
{
    int64_t amount;
    if (left <= 0)
        return 0;
    if (d->type == DISCOUNT_PERCENTAGE) {
        int64_t pct = d->value < 0 ? 0 : d->value > 100 ? 100 : d->value;
        amount = (int64_t)(((wide_t)left * pct) / 100); /* truncated, like the samples */
    } else {
        amount = d->value < 0 ? 0 : d->value;
    }
    return amount > left ? left : amount; /* never below zero */
}

int pricing_compute(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    size_t n = c->n_lines;
    int64_t *remaining = calloc(n ? n : 1, sizeof *remaining);
    int64_t *alloc = calloc(n ? n : 1, sizeof *alloc);
    const struct discount *ds[CHECKOUT_CODES_MAX];
    const char *dcodes[CHECKOUT_CODES_MAX];
    int rc = 0;
    if (!remaining || !alloc) {
        rc = AGENTD_ENOMEM;
        goto out;
    }
    applied_clear(c);
    memset(&c->totals, 0, sizeof c->totals);

    /* 1. base amounts */
    int64_t subtotal = 0;
    for (size_t i = 0; i < n; i++) {
        struct line_item *li = &c->lines[i];
        int64_t base;
        if (li->price < 0 || li->quantity < 0 || __builtin_mul_overflow(li->price, li->quantity, &base) ||
            base > MONEY_AMOUNT_MAX) {
            rc = too_large(e, "line amount");
            goto out;
        }
        memset(&li->totals, 0, sizeof li->totals);
        li->totals.base_amount = base;
        remaining[i] = base;
        subtotal += base;
        if (subtotal > MONEY_AMOUNT_MAX) {
            rc = too_large(e, "subtotal");
            goto out;
        }
    }

    /* 2. discounts, stacked */
    size_t nd = c->n_codes <= CHECKOUT_CODES_MAX ? order_discounts(c, r, ds, dcodes) : 0;
    if (nd) {
        c->applied = calloc(nd, sizeof *c->applied);
        if (!c->applied) {
            rc = AGENTD_ENOMEM;
            goto out;
        }
    }
    int64_t left = subtotal; /* sum of remaining[] */
    for (size_t k = 0; k < nd; k++) {
        const struct discount *d = ds[k];
        int64_t amount = pricing_discount_amount(d, left);
        if ((rc = pricing_allocate(amount, remaining, n, alloc)) != 0)
            goto out;
        struct applied_discount *ad = &c->applied[c->n_applied++];
        ad->code = strdup(dcodes[k]);
        ad->title = strdup(d->description && d->description[0] ? d->description : dcodes[k]);
        ad->type = d->type;
        ad->amount = amount;
        ad->priority = (int)k + 1;
        ad->alloc = calloc(n ? n : 1, sizeof *ad->alloc);
        ad->n_alloc = n;
        if (!ad->code || !ad->title || !ad->alloc) {
            rc = AGENTD_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            ad->alloc[i] = alloc[i];
            remaining[i] -= alloc[i];
            c->lines[i].totals.discount += alloc[i];
        }
        left -= amount;
    }

    /* 3. shipping */
    int64_t fulfillment = 0;
    for (size_t m = 0; m < c->n_methods; m++) {
        for (size_t g = 0; g < c->methods[m].n_groups; g++) {
            const struct fulfillment_group *fg = &c->methods[m].groups[g];
            if (!fg->selected_option_id)
                continue;
            for (size_t o = 0; o < fg->n_options; o++) {
                if (fg->options[o].id && strcmp(fg->options[o].id, fg->selected_option_id) == 0) {
                    if (fg->options[o].amount < 0 || fg->options[o].amount > MONEY_AMOUNT_MAX) {
                        rc = too_large(e, "shipping price");
                        goto out;
                    }
                    fulfillment += fg->options[o].amount;
                    break;
                }
            }
        }
    }
    if (fulfillment > MONEY_AMOUNT_MAX) {
        rc = too_large(e, "shipping price");
        goto out;
    }

    /* 4. tax, per line and on shipping */
    const struct tax_rate *tr = lookup_tax(r, priced_destination(c));
    int64_t bp = tr && tr->rate_bp > 0 ? tr->rate_bp : 0;
    int64_t tax = 0, items_discount = 0;
    for (size_t i = 0; i < n; i++) {
        struct line_totals *t = &c->lines[i].totals;
        t->subtotal = t->base_amount - t->discount;
        t->tax = pricing_mul_div(t->subtotal, bp, 10000);
        if (t->tax < 0) {
            rc = too_large(e, "tax");
            goto out;
        }
        t->total = t->subtotal + t->tax;
        tax += t->tax;
        items_discount += t->discount;
    }
    if (tr && tr->shipping_taxable && bp) {
        int64_t st = pricing_mul_div(fulfillment, bp, 10000);
        if (st < 0) {
            rc = too_large(e, "tax");
            goto out;
        }
        tax += st;
    }
    int64_t fee = r->fee > 0 ? r->fee : 0;
    if (tax > MONEY_AMOUNT_MAX || fee > MONEY_AMOUNT_MAX) {
        rc = too_large(e, "tax or fee");
        goto out;
    }

    /* 5. checkout totals (each term <= 1e14, so no int64 overflow) */
    c->totals.subtotal = subtotal;
    /* Codes are order-level discounts: UCP's `discount` total line
     * (total = subtotal - discount + ...); their per-line allocation stays
     * on the lines, where tax is computed. */
    c->totals.items_discount = 0;
    c->totals.discount = items_discount;
    c->totals.fulfillment = fulfillment;
    c->totals.tax = tax;
    c->totals.fee = fee;
    c->totals.total = subtotal - items_discount + fulfillment + tax + fee;
    if (c->totals.total > MONEY_AMOUNT_MAX) {
        rc = too_large(e, "total");
        goto out;
    }
out:
    free(remaining);
    free(alloc);
    return rc;
}

static int add_total(json_t *a, const char *type, const char *text, int64_t amount)
{
    return json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "type", type, "display_text",
                                              text, "amount", (json_int_t)amount));
}

json_t *pricing_totals_json(const struct checkout_totals *t, int has_fulfillment, int has_tax)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    int bad = add_total(a, "subtotal", "Subtotal", t->subtotal);
    if (t->items_discount)
        bad |= add_total(a, "items_discount", "Item Discounts", t->items_discount);
    if (t->discount)
        bad |= add_total(a, "discount", "Order Discount", t->discount);
    if (has_fulfillment || t->fulfillment)
        bad |= add_total(a, "fulfillment", "Shipping", t->fulfillment);
    if (has_tax || t->tax)
        bad |= add_total(a, "tax", "Tax", t->tax);
    if (t->fee)
        bad |= add_total(a, "fee", "Fees", t->fee);
    bad |= add_total(a, "total", "Total", t->total);
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}

json_t *pricing_line_totals_json(const struct line_totals *t)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    int bad = json_array_append_new(a, json_pack("{s:s, s:I}", "type", "subtotal", "amount",
                                                 (json_int_t)t->base_amount));
    if (t->discount)
        bad |= json_array_append_new(a, json_pack("{s:s, s:I}", "type", "items_discount",
                                                  "amount", (json_int_t)t->discount));
    if (t->tax)
        bad |= json_array_append_new(
            a, json_pack("{s:s, s:I}", "type", "tax", "amount", (json_int_t)t->tax));
    bad |= json_array_append_new(
        a, json_pack("{s:s, s:I}", "type", "total", "amount", (json_int_t)t->total));
    if (bad) {
        json_decref(a);
        return NULL;
    }
    return a;
}
