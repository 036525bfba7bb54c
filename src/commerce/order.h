/* The order of a completed checkout: its model (lines as ordered,
 * fulfillment expectations, totals) and its UCP JSON both ways (order.c). */
#ifndef AGENTD_COMMERCE_ORDER_H
#define AGENTD_COMMERCE_ORDER_H

#include <jansson.h>

#include "commerce/checkout.h"
#include "commerce/ucp.h"

/* ---- order ---- */

struct order_line {
    struct line_item line;  /* as ordered (immutable) */
    int64_t fulfilled;      /* quantity shipped so far */
};

struct order_expectation {
    char *id;
    char *method_type;           /* "shipping" */
    struct postal_address destination;
    char *description;           /* the chosen option's title */
};

struct order {
    char *id;
    char *checkout_id;
    char *permalink_url;
    char currency[COMMERCE_CURRENCY_LEN];
    struct order_line *lines;
    size_t n_lines;
    struct order_expectation *expectations;
    size_t n_expectations;
    struct checkout_totals totals;
    int has_fulfillment;
    int has_tax;
    json_t *buyer;          /* the checkout's buyer (email, consent), owned; NULL = none */
};

/* Builds the order of a completed checkout (status completed, order_id
 * set). Returns 0, AGENTD_ECONFLICT (not completed) or AGENTD_ENOMEM. */
int order_from_checkout(const struct checkout *c, struct order **out, struct agentd_error *e);
void order_free(struct order *o);
/* UCP order object (neg NULL = all capabilities). */
json_t *order_to_json(const struct order *o, const struct ucp_negotiated *neg);
int order_from_json(const json_t *j, struct order **out, struct agentd_error *e);

#endif
