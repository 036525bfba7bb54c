/* The checkout session as a pure value: its content, its status machine and
 * every operation on it (create, PUT-update, agent edits, cancel, complete).
 *
 * Purity: no I/O, no clock, no randomness, no globals. Everything that
 * varies per shop or per request (catalog lookups, stock, tax, the time,
 * advertised payment handlers) arrives through struct shop_rules, and ids
 * are either given by the caller or derived deterministically.
 *
 * Ownership: a struct checkout and everything it points to is owned by the
 * checkout; checkout_free() releases all of it. Strings are heap copies
 * (NULL = absent). Lookups through shop_rules return borrowed pointers that
 * the checkout never keeps.
 *
 * Atomicity: every operation either succeeds, or returns an error and
 * leaves the checkout exactly as it was (operations work on a copy and swap
 * it in on success). The documented exception is checkout_begin_complete():
 * on a price conflict or a not-ready session it keeps the re-priced state
 * (new totals, fresh messages) so the caller can show the buyer why. */
#ifndef AGENTD_COMMERCE_CHECKOUT_H
#define AGENTD_COMMERCE_CHECKOUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "commerce/checkout_types.h"

/* ---- names ---- */

/* "incomplete", "ready_for_complete", ... (static strings). */
const char *checkout_status_name(enum checkout_status s);
/* Parses a status name; returns 0 or AGENTD_EINVAL. */
int checkout_status_parse(const char *name, enum checkout_status *out);
/* 1 for completed and canceled. */
int checkout_status_terminal(enum checkout_status s);
const char *checkout_severity_name(enum checkout_severity s);

/* ---- lifetime ---- */

/* An empty checkout (status incomplete) with the given id; NULL on OOM. */
struct checkout *checkout_new(const char *id);
void checkout_free(struct checkout *c);
/* Deep copy; NULL on OOM. */
struct checkout *checkout_clone(const struct checkout *c);

/* ---- operations ----
 * All return 0 or a negative AGENTD_E* status, and fill *e (may be NULL):
 *   AGENTD_EINVAL        bad request: unknown product (code not_found),
 *                        out of stock (code out_of_stock), PAN in payment data
 *   AGENTD_EUNPROCESSABLE bad values: quantity out of range, unknown or
 *                        inapplicable shipping option, unsupported currency
 *   AGENTD_ECONFLICT     wrong state: terminal session (code not_modifiable),
 *                        completion in progress, totals changed
 *   AGENTD_ENOMEM
 * Every successful mutation re-prices and recomputes status and messages;
 * a mutation of a ready_for_complete session therefore lands on incomplete
 * or ready_for_complete again depending on content. */

/* Creates a checkout with id `id` from a UCP create request body. Accepts
 * line_items[{item:{id}, quantity}], buyer, currency, payment {handlers
 * (ignored: the shop advertises its own), instruments,
 * selected_instrument_id}, fulfillment.methods[] {type, destinations,
 * selected_destination_id, groups[].selected_option_id} and
 * discounts.codes. A client-sent "id" is ignored. */
int checkout_create(const json_t *req, const struct shop_rules *r, const char *id,
                    struct checkout **out, struct agentd_error *e);

/* PUT: the body is the new state of the mutable fields. line_items,
 * payment and currency are replaced; buyer, fulfillment and discounts are
 * replaced when present (JSON null clears them) and kept when absent,
 * because UCP clients omit fields they do not change. */
int checkout_update(struct checkout *c, const struct shop_rules *r, const json_t *req,
                    struct agentd_error *e);

/* Agent tools. Adding a product already in the cart raises its quantity. */
int checkout_item_add(struct checkout *c, const struct shop_rules *r, const char *product_id,
                      int64_t quantity, struct agentd_error *e);
/* Removes the line with this line id, or else the line of this product id. */
int checkout_item_remove(struct checkout *c, const struct shop_rules *r, const char *line_or_product,
                         struct agentd_error *e);
/* Sets a line's quantity (line id or product id); 0 removes the line. */
int checkout_item_set_quantity(struct checkout *c, const struct shop_rules *r,
                               const char *line_or_product, int64_t quantity,
                               struct agentd_error *e);
int checkout_buyer_set(struct checkout *c, const struct shop_rules *r,
                       const struct checkout_buyer *b, struct agentd_error *e);
/* Adds (or replaces, by id) a shipping destination and selects it. */
int checkout_destination_set(struct checkout *c, const struct shop_rules *r,
                             const struct postal_address *a, struct agentd_error *e);
int checkout_shipping_select(struct checkout *c, const struct shop_rules *r, const char *option_id,
                             struct agentd_error *e);
/* Replaces the discount codes (n = 0 clears). Unknown codes are kept and
 * reported as warnings (discount_code_invalid), not errors. */
int checkout_discounts_apply(struct checkout *c, const struct shop_rules *r,
                             const char *const *codes, size_t n, struct agentd_error *e);
/* Any non-terminal status -> canceled. */
int checkout_cancel(struct checkout *c, const struct shop_rules *r, struct agentd_error *e);
/* Business-side escalation (e.g. a review the API cannot collect). */
int checkout_escalate(struct checkout *c, const struct shop_rules *r, const char *code,
                      const char *content, enum checkout_severity sev, struct agentd_error *e);
int checkout_escalation_clear(struct checkout *c, const struct shop_rules *r,
                              struct agentd_error *e);

/* ready_for_complete -> complete_in_progress. Re-prices with the current
 * rules first; if the total differs from what the client last saw
 * (expected_total, or the stored total when expected_total < 0) the
 * checkout keeps the new prices, stays completable and AGENTD_ECONFLICT
 * (code total_changed) is returned. Not ready -> AGENTD_EUNPROCESSABLE
 * with the first missing item in *e (the refreshed messages are kept).
 * Items are checked strictly: out of stock -> AGENTD_EINVAL, unchanged. */
int checkout_begin_complete(struct checkout *c, const struct shop_rules *r, int64_t expected_total,
                            struct agentd_error *e);
/* complete_in_progress -> back to ready (payment declined: nothing charged). */
int checkout_abort_complete(struct checkout *c, const struct shop_rules *r, struct agentd_error *e);
/* complete_in_progress -> completed, with the order's id and permalink. */
int checkout_mark_completed(struct checkout *c, const struct shop_rules *r, const char *order_id,
                            const char *permalink_url, struct agentd_error *e);

/* Recomputes prices, fulfillment options, messages and status from the
 * content (no-op for terminal and in-progress sessions' status). Exposed
 * for the store layer after loading and for tests. */
int checkout_refresh(struct checkout *c, const struct shop_rules *r, struct agentd_error *e);

/* ---- operation keys (exactly-once tool calls) ---- */

/* 0 if key can be an operation key (1..CHECKOUT_OP_KEY_MAX bytes of valid
 * UTF-8 without NUL), else AGENTD_EINVAL with the reason in *e. */
int checkout_op_key_check(const char *key, struct agentd_error *e);
/* 1 if key is among c's operation keys. */
int checkout_op_key_has(const struct checkout *c, const char *key);
/* Records key as the newest; beyond CHECKOUT_OP_KEYS_MAX the oldest is
 * dropped. A key already there is not added twice. 0, AGENTD_EINVAL (see
 * checkout_op_key_check) or AGENTD_ENOMEM; c unchanged on error. */
int checkout_op_key_add(struct checkout *c, const char *key, struct agentd_error *e);
/* Sets c->completing (key: an operation key; by: NULL or 1 to
 * CHECKOUT_CLAIM_BY_MAX bytes without control characters). 0, AGENTD_EINVAL or
 * AGENTD_ENOMEM; c unchanged on error. */
int checkout_claim_set(struct checkout *c, const char *key, const char *by, int64_t at,
                       struct agentd_error *e);
/* The store document's internal part, doc._agentd: op_keys (an array,
 * oldest first) and completing ({key, by, at}); each removed when c has
 * none, _agentd created when missing. doc is a checkout_to_doc_json()
 * object. 0 or AGENTD_ENOMEM. */
int checkout_internal_to_doc(const struct checkout *c, json_t *doc);
/* Seals a checkout's private payment text (with its instruments' tokens):
 * *sealed is malloc'd text, 0 or a negative AGENTD_E*. */
typedef int (*checkout_seal_fn)(void *ctx, const char *text, size_t len, char **sealed);
struct buf;
/* Appends the store document to b: the bytes checkout_to_doc_json +
 * checkout_internal_to_doc + a compact dump give, and, when seal is given
 * and an instrument carries a token, the private payment sealed by it as
 * sealed_doc_seal leaves it. 0, AGENTD_EINVAL (a string that is not UTF-8
 * or missing) or AGENTD_ENOMEM, or seal's error. */
int checkout_doc_write(struct buf *b, const struct checkout *c, checkout_seal_fn seal, void *ctx);
/* Reads doc._agentd into c (replacing c's keys and claim). A document
 * without them (written before they existed) gives none. Not an array of
 * valid keys, or a malformed claim -> AGENTD_ECORRUPT; more than
 * CHECKOUT_OP_KEYS_MAX keys -> the newest are kept. */
int checkout_internal_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e);

/* ---- JSON pieces shared with ucp.c ---- */

/* Parses a buyer / postal address object (unknown fields ignored). */
int checkout_buyer_from_json(const json_t *j, struct checkout_buyer *out, struct agentd_error *e);
/* buyer.consent (dev.ucp.shopping.buyer_consent, 2026-01-11) checked and
 * copied: analytics, preferences, marketing, sale_of_data booleans and
 * marketing_channels[{channel: email|sms|whatsapp, opted_in}]; other
 * members dropped. 0, AGENTD_EINVAL (path in e) or AGENTD_ENOMEM. */
int checkout_consent_from_json(const json_t *j, json_t **out, struct agentd_error *e);
int checkout_address_from_json(const json_t *j, struct postal_address *out, struct agentd_error *e);
void checkout_buyer_clear(struct checkout_buyer *b);
void checkout_address_clear(struct postal_address *a);
int checkout_address_copy(struct postal_address *dst, const struct postal_address *src);

#endif
