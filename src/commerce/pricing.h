/* Pricing: one pure function turns a checkout's content into every amount
 * (line totals, discount allocations, shipping, tax, fee, total).
 *
 * Integer minor units only. Rules (see docs/internals/ucp-model.md):
 *  - discounts: codes in the order submitted, each on what earlier ones
 *    left (percentages truncated, fixed amounts in minor units), never
 *    below zero; reported as the checkout's `discount` total and split
 *    over lines by largest remainder, so the lines sum exactly;
 *  - tax: basis points of the destination's most specific rate, rounded
 *    half up per line and once on shipping (when taxable);
 *  - any amount above MONEY_AMOUNT_MAX is refused, so nothing overflows. */
#ifndef AGENTD_COMMERCE_PRICING_H
#define AGENTD_COMMERCE_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "commerce/checkout_types.h"

/* Recomputes c->lines[].totals, c->applied and c->totals from the content
 * and the rules. Returns 0, AGENTD_EUNPROCESSABLE (an amount over
 * MONEY_AMOUNT_MAX; code amount_too_large) or AGENTD_ENOMEM. On error c's
 * amounts are unspecified; callers work on a copy. */
int pricing_compute(struct checkout *c, const struct shop_rules *r, struct agentd_error *e);

/* UCP totals[] for the checkout: subtotal, items_discount (if any),
 * discount (if any), fulfillment (if has_fulfillment), tax (if has_tax),
 * fee (if any), total. New reference; NULL on OOM. */
json_t *pricing_totals_json(const struct checkout_totals *t, int has_fulfillment, int has_tax);
/* UCP totals[] for a line: subtotal, items_discount (if any), tax (if any), total. */
json_t *pricing_line_totals_json(const struct line_totals *t);

/* What discount d takes off `left` (minor units): a percentage truncated
 * toward zero, a fixed amount; never more than left, never negative. */
int64_t pricing_discount_amount(const struct discount *d, int64_t left);

/* Splits amount over weights proportionally, by largest remainder (ties go
 * to the earlier index): out[i] sum to amount exactly, and out[i] <=
 * weights[i] whenever amount <= sum(weights). Weights must be >= 0 and sum
 * to at most MONEY_AMOUNT_MAX. Returns 0 or AGENTD_EINVAL. */
int pricing_allocate(int64_t amount, const int64_t *weights, size_t n, int64_t *out);

/* round_half_up(value * num / den) for value, num >= 0, den > 0, computed
 * in 128 bits. Returns -1 if the result exceeds MONEY_AMOUNT_MAX. */
int64_t pricing_mul_div(int64_t value, int64_t num, int64_t den);

#endif
