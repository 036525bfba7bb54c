/* The shop: checkout and order operations as whole transactions over the
 * store — load, apply a pure commerce function, compare-and-swap save,
 * retried on conflict. No process-local lock: the version in the store is
 * the lock, so it holds across replicas. Every call blocks on the store:
 * run it on the worker pool (store_async), never on a loop thread.
 *
 * Tenancy: every checkout and order has an owner (the principal that
 * created it). Another principal gets AGENTD_ENOTFOUND, as if it did not
 * exist. */
#ifndef AGENTD_SHOP_SHOP_H
#define AGENTD_SHOP_SHOP_H

#include <stdint.h>

#include <jansson.h>

#include "commerce/checkout.h"
#include "commerce/order.h"
#include "commerce/ucp.h"

struct store;
struct merchant;
struct shop;

/* public_url: the base URL clients reach us at (continue_url, permalinks). */
struct shop *shop_new(struct store *st, struct merchant *m, const char *public_url);
void shop_free(struct shop *sh);
/* This process's instance id and the directory of instance lock files
 * (core/instance.h), so that a completion its process left mid-way (a
 * crash) is known and carried on by the next completion call. Unset: such
 * a completion waits for its lease (2 minutes). Call before serving.
 * 0 or AGENTD_ENOMEM. */
int shop_set_instance(struct shop *sh, const char *instance, const char *lock_dir);

/* Test payment handlers (mock_payment_handler, example_payment_provider) are offered and accepted by
 * default; accept = 0 (production without AGENTD_ALLOW_TEST_PAYMENTS)
 * leaves them out of payment.handlers everywhere and refuses a completion
 * naming one (422 payment_handler_unavailable). Call before serving.
 * 0 or AGENTD_ENOMEM. */
int shop_set_test_payments(struct shop *sh, int accept);
/* The business_id in example_payment_provider's config (default the
 * sample's "1234567890"). 0, AGENTD_EINVAL (not 1-64 printable ASCII) or
 * AGENTD_ENOMEM. Call before serving. */
int shop_set_payment_business_id(struct shop *sh, const char *business_id);
/* The checkout's links[]: privacy_policy and terms_of_service, each only
 * when given (NULL omits it: no link that cannot open). Copied. Call before
 * serving. 0 or AGENTD_ENOMEM. */
int shop_set_legal_links(struct shop *sh, const char *privacy_url, const char *terms_url);

/* The keyring that seals instrument credentials in stored checkouts
 * (core/seal.h, shop/sealed_doc.h); borrowed, outlives the shop. NULL or
 * never called: an ephemeral key of the shop's own (what it sealed does not
 * open after the process ends). Call before serving. */
struct seal_keyring;
void shop_set_keyring(struct shop *sh, const struct seal_keyring *kr);

/* The payment handlers we advertise (borrowed JSON array). */
const json_t *shop_payment_handlers(const struct shop *sh);

/* Edits a loaded checkout; the shop saves it if this returns 0. */
typedef int (*shop_edit_fn)(struct checkout *c, const struct shop_rules *r, void *arg,
                            struct agentd_error *e);

/* Each returns 0 or AGENTD_E*, fills *e on domain errors, and on success
 * hands back the checkout as saved in *out (checkout_free()).
 *
 * Exactly-once calls (agent tool calls, keyed completions): the agent
 * runner may run a tool call again after a crash (between the call's effect
 * being saved and the turn's checkpoint). Such a call carries an operation
 * key op_key, "<turn_id>/<tool_call_id>" (1..CHECKOUT_OP_KEY_MAX bytes of
 * printable UTF-8, else AGENTD_EINVAL): the key is saved in the checkout by
 * the same compare-and-swap that saves the effect, and a call whose key is
 * already there changes nothing and answers success again with
 * *replayed = 1 (replayed may be NULL; set to 0 otherwise). A checkout
 * remembers its last CHECKOUT_OP_KEYS_MAX keys. op_key NULL = no key: the
 * call applies once, as asked. */

/* Audit: create, update (edit, add item), cancel, complete and order
 * updates each write an audit row (principal = owner, the target id, the
 * outcome) under the request id the calling thread set here; a worker job
 * sets it before its shop calls and clears it (NULL) after. principal names
 * the caller of an operation without an owner (an order update). */
void shop_audit_as(const char *request_id, const char *principal);

/* With a key the checkout id is derived from (owner, op_key): "chk_" and
 * the first 24 hex digits of SHA-256(owner "\n" op_key). If that checkout
 * exists (a replay) it is returned as it is now. */
int shop_checkout_create(struct shop *sh, const char *owner, const json_t *req,
                         const char *op_key, struct checkout **out, int *replayed,
                         struct agentd_error *e);
int shop_checkout_get(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                      struct agentd_error *e);
/* If the checkout holds op_key, *out is the checkout as it is now and fn
 * does not run (even if the checkout has since been completed). */
int shop_checkout_edit(struct shop *sh, const char *owner, const char *id, const char *op_key,
                       shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                       struct agentd_error *e);
/* if_match >= 0: apply only to that version (else AGENTD_ECONFLICT,
 * code version_conflict) — optimistic concurrency for clients that
 * read-modify-write with ETag / If-Match. */
int shop_checkout_update(struct shop *sh, const char *owner, const char *id, const json_t *req,
                         int64_t if_match, struct checkout **out, struct agentd_error *e);
/* Adds quantity of a product (an increment, safe under concurrency). */
int shop_checkout_add_item(struct shop *sh, const char *owner, const char *id,
                           const char *op_key, const char *product_id, int64_t quantity,
                           struct checkout **out, int *replayed, struct agentd_error *e);
int shop_checkout_cancel(struct shop *sh, const char *owner, const char *id,
                         struct checkout **out, struct agentd_error *e);
/* Completes with the client's payment_data ({handler_id, credential:{type,
 * token}, ...}). Order of effects: the checkout moves to
 * complete_in_progress by compare-and-swap (a concurrent edit → 409,
 * nothing charged); the handler authorizes the total the buyer saw
 * (decline → *declined = 1, AGENTD_EINVAL, the checkout goes back to
 * ready); then one transaction takes stock, writes the order and marks the
 * checkout completed (short stock → AGENTD_ESTOCK, checkout back to ready).
 * *order_out is the order (order_free()). A checkout some process left
 * complete_in_progress when it died is carried on by the next call (with
 * the first authorization's key); while that process lives (or, when it
 * cannot be known dead — another host, or this process after an abort
 * that failed — for 2 minutes) a call gets 409 complete_in_progress.
 *
 * op_key is saved by the compare-and-swap that moves the checkout to
 * complete_in_progress, and stays in the completed checkout. Replays:
 *  - completed and holding op_key: *out is the checkout, *order_out its
 *    order, nothing is charged or taken again;
 *  - complete_in_progress and holding op_key (the process died while
 *    completing): the completion carries on from there — authorize the
 *    total saved at step 1, then place the order (one order per checkout,
 *    enforced by the store);
 *  - anything else: the normal flow (a declined or short-stock attempt
 *    went back to ready, so it is simply tried again). */
int shop_checkout_complete(struct shop *sh, const char *owner, const char *id,
                           const char *op_key, const json_t *payment_data,
                           struct checkout **out, struct order **order_out, int *declined,
                           int *replayed, struct agentd_error *e);

/* ---- orders (orders.c) ---- */

/* *out carries its store version (o->version, the ETag). */
int shop_order_get(struct shop *sh, const char *owner, const char *id, struct order **out,
                   struct agentd_error *e);
/* PUT /orders/{id}: order_apply_update on the stored order, saved by
 * compare-and-swap (a lost race reloads and applies again). if_match >= 0:
 * only over that version, else AGENTD_ECONFLICT (version_conflict).
 * *changes (ORDER_CHANGE_*) says what changed; the matching order webhook
 * (order_canceled, else order_shipped, else order_updated) is queued in the
 * same transaction when the order has a receiver. Audit row order.update. */
int shop_order_update(struct shop *sh, const char *owner, const char *id, const json_t *req,
                      int64_t if_match, struct order **out, unsigned *changes,
                      struct agentd_error *e);
/* Test-only (the shipping simulation): appends a "shipped" fulfillment
 * event (carrier, tracking number and URL, every quantity not yet shipped)
 * and marks the lines fulfilled; *changes as above. Audit row order.update. */
int shop_order_mark_shipped(struct shop *sh, const char *id, struct order **out,
                            unsigned *changes, struct agentd_error *e);
/* The permalink page's read: the order whose stored token hash matches
 * token (constant-time compare). A missing order, an order without a token
 * and a wrong token are all AGENTD_ENOTFOUND alike. */
int shop_order_by_token(struct shop *sh, const char *id, const char *token, struct order **out,
                        struct agentd_error *e);

/* ---- the reply cut from the saved document (saved_reply.c) ---- */

/* The calling thread's last operation saved c as it is now? Then the
 * members of its UCP JSON under the whole negotiation (checkout_to_json's
 * with every capability, from "id" on, without the braces and the "ucp"
 * member), malloc'd, length in *len: a front may reply with them instead
 * of rendering c. NULL otherwise. Either way the kept text is dropped.
 * shop_saved_reset drops it before an operation (a worker job's start). */
char *shop_saved_take(const struct checkout *c, size_t *len);
void shop_saved_reset(void);

/* ---- order events (order_events.c; docs/ucp.md "Webhooks") ---- */

/* The outbox kind of order webhooks. */
#define SHOP_EVENT_KIND "webhook"

/* The receiver of order events for checkouts this thread creates or
 * completes next: the webhook_url of the request's platform profile (UCP
 * front; NULL or "" = none). Set it in the worker job before the shop
 * call, clear it (NULL) after, as shop_audit_as. The checkout keeps it,
 * then its order, so later events find it without the profile. */
void shop_webhook_as(const char *webhook_url);
const char *shop_webhook_current(void);

/* Pieces (the placement and orders.c write an event inside the order's
 * own transaction): the order's store document, with webhook_url kept inside (NULL: none);
 * malloc'd, NULL out of memory. */
char *shop_order_document(const struct order *o, const char *webhook_url);
/* An outbox row for event_type on o to webhook_url: a fresh event id, the
 * body; strings malloc'd, freed by shop_order_event_clear. 0 or
 * AGENTD_ENOMEM. */
struct store_outbox;
int shop_order_event_build(const char *event_type, const struct order *o, const char *webhook_url,
                           struct store_outbox *ev);
void shop_order_event_clear(struct store_outbox *ev);
/* The shop's store (borrowed). */
struct store *shop_store(const struct shop *sh);

#endif
