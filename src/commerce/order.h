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
    json_t *events;       /* fulfillment.events[]: append-only, validated (order_update.c) */
    json_t *adjustments;  /* adjustments[]: append-only, statuses may move on */
    int64_t version;      /* the store's compare-and-swap version (not in the JSON) */
    json_t *buyer;          /* the checkout's buyer (email, consent), owned; NULL = none */
};

/* Builds the order of a completed checkout (status completed, order_id
 * set). Returns 0, AGENTD_ECONFLICT (not completed) or AGENTD_ENOMEM. */
int order_from_checkout(const struct checkout *c, struct order **out, struct agentd_error *e);
void order_free(struct order *o);
/* UCP order object (neg NULL = all capabilities). */
json_t *order_to_json(const struct order *o, const struct ucp_negotiated *neg);
int order_from_json(const json_t *j, struct order **out, struct agentd_error *e);
/* Appends the order's store document to b: the bytes of order_to_json
 * (every capability) with "_agentd": {"webhook_url"} when one is given,
 * dumped compact (checkout_write.c). 0, AGENTD_EINVAL or AGENTD_ENOMEM. */
int order_doc_write(struct buf *b, const struct order *o, const char *webhook_url);

/* ---- updates (order_update.c) ---- */

/* What an update changed, for the order webhooks the caller queues
 * (order_updated / order_shipped / order_canceled). */
enum {
    ORDER_CHANGE_UPDATED = 1 << 0,
    ORDER_CHANGE_SHIPPED = 1 << 1,  /* a new "shipped" fulfillment event */
    ORDER_CHANGE_CANCELED = 1 << 2, /* a new "canceled" event or "cancellation" adjustment */
};
/* A full update (PUT /orders/{id}) validated against the UCP order schema:
 * fulfillment.events[] and adjustments[] are append-only logs (an existing
 * entry stays, unchanged; an adjustment's status may move on); every entry
 * has an id, an RFC 3339 occurred_at, a type, line items of this order with
 * quantities >= 1 (shipped no more than ordered); an adjustment's status is
 * pending | completed | failed. Line items, totals, expectations and ids
 * are the merchant's: sent values must equal ours. An absent log is kept.
 * On success o holds the new logs (fulfilled quantities recomputed) and
 * *changes says what changed. AGENTD_EUNPROCESSABLE (e: path, message). */
int order_apply_update(struct order *o, const json_t *req, unsigned *changes,
                       struct agentd_error *e);
/* Appends a "shipped" event for every quantity not yet fulfilled (the
 * shipping simulation). 0, AGENTD_ECONFLICT (nothing left to ship) or
 * AGENTD_ENOMEM. */
int order_append_shipped(struct order *o, const char *event_id, int64_t now_s,
                         const char *carrier, const char *tracking_number,
                         const char *tracking_url, struct agentd_error *e);

#endif
