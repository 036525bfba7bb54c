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

#include "commerce/payment.h"
#include "commerce/types.h"

/* Limits: far above any real cart, low enough that a hostile request cannot
 * make the domain allocate much or overflow a sum. */
#define CHECKOUT_QTY_MAX 9999        /* per line */
#define CHECKOUT_LINES_MAX 100
#define CHECKOUT_CODES_MAX 10        /* discount codes */
#define CHECKOUT_METHODS_MAX 4       /* fulfillment methods */
#define CHECKOUT_DESTS_MAX 20        /* destinations per method */
#define CHECKOUT_OPTIONS_MAX 20      /* shipping options per group */
#define CHECKOUT_INSTRUMENTS_MAX 10
#define CHECKOUT_STR_MAX 1024        /* any client string, bytes */
#define CHECKOUT_DEFAULT_TTL 21600   /* seconds; UCP's default is 6 hours */
#define CHECKOUT_OP_KEYS_MAX 32      /* operation keys remembered per checkout */
#define CHECKOUT_OP_KEY_MAX 128      /* bytes per operation key */

enum checkout_status {
    CHECKOUT_INCOMPLETE = 0,
    CHECKOUT_REQUIRES_ESCALATION,
    CHECKOUT_READY_FOR_COMPLETE,
    CHECKOUT_COMPLETE_IN_PROGRESS,
    CHECKOUT_COMPLETED,
    CHECKOUT_CANCELED,
};

/* Flags in shop_rules.flags relaxing what "ready" requires. */
#define SHOP_BUYER_EMAIL_OPTIONAL 0x1u  /* guest checkout without an email */
#define SHOP_FULFILLMENT_OPTIONAL 0x2u  /* digital goods: no shipping needed */

struct checkout_link {
    char *type;   /* privacy_policy, terms_of_service, ... */
    char *url;
    char *title;  /* optional */
};

/* Everything the domain needs to know about the shop for one operation.
 * The caller fills it per request; all callbacks must be pure lookups. */
struct shop_rules {
    void *ud;
    /* Required. Product by exact id; NULL if unknown. */
    const struct product *(*product)(void *ud, const char *id);
    /* Optional. Live stock of a product; < 0 means "not tracked". */
    int64_t (*stock)(void *ud, const char *product_id);
    /* Optional. Shipping options for a destination country (including the
     * shop's "*" default rates); *n set to the count. */
    const struct shipping_rate *const *(*shipping_rates)(void *ud, const char *country, size_t *n);
    /* Optional. Shipping rate by id; NULL if none. */
    const struct shipping_rate *(*shipping_rate)(void *ud, const char *id);
    /* Optional. Discount by code (case-insensitive); NULL if none. */
    const struct discount *(*discount)(void *ud, const char *code);
    /* Optional. Most specific tax rate; the domain also tries (country,"*")
     * and ("*","*") itself when this returns NULL. */
    const struct tax_rate *(*tax_rate)(void *ud, const char *country, const char *region);

    const char *currency;          /* ISO 4217 of every price; required */
    int64_t now;                   /* unix seconds for this operation (caller's clock) */
    int64_t ttl_seconds;           /* session lifetime; 0 = CHECKOUT_DEFAULT_TTL */
    const char *continue_url_base; /* e.g. "https://shop.example/checkout-sessions"; NULL = none */
    const json_t *payment_handlers;/* JSON array advertised in payment.handlers (borrowed) */
    const struct checkout_link *links;
    size_t n_links;
    int64_t fee;                   /* flat fee per checkout, minor units; 0 = none */
    unsigned flags;                /* SHOP_* */
};

/* Structured error detail beside the AGENTD_E* status: `code` is the UCP
 * message code (missing, invalid, out_of_stock, not_found, ...), `path` a
 * JSONPath into the request when one applies, `msg` a sentence for humans. */
struct checkout_err {
    char code[48];
    char path[128];
    char msg[256];
};

enum checkout_msg_type { CHECKOUT_MSG_ERROR = 0, CHECKOUT_MSG_WARNING, CHECKOUT_MSG_INFO };
enum checkout_severity {
    CHECKOUT_SEV_NONE = 0,               /* warnings and infos */
    CHECKOUT_SEV_RECOVERABLE,
    CHECKOUT_SEV_REQUIRES_BUYER_INPUT,
    CHECKOUT_SEV_REQUIRES_BUYER_REVIEW,
};

struct checkout_message {
    enum checkout_msg_type type;
    enum checkout_severity severity;
    char *code;
    char *content;
    char *path;   /* optional */
};

/* Per-line amounts, minor units. base_amount = price x quantity;
 * subtotal = base_amount - discount; total = subtotal + tax. */
struct line_totals {
    int64_t base_amount;
    int64_t discount;
    int64_t subtotal;
    int64_t tax;
    int64_t total;
};

/* Checkout amounts. total = subtotal - items_discount - discount
 *                           + fulfillment + tax + fee. */
struct checkout_totals {
    int64_t subtotal;       /* sum of line base amounts */
    int64_t items_discount; /* discounts allocated to lines */
    int64_t discount;       /* order-level discounts (none yet) */
    int64_t fulfillment;    /* selected shipping option(s) */
    int64_t tax;            /* line taxes + shipping tax */
    int64_t fee;
    int64_t total;
};

struct line_item {
    char *id;          /* "li_1", ... */
    char *item_id;     /* product id */
    char *title;       /* from the catalog */
    int64_t price;     /* unit price from the catalog */
    char *image_url;
    int64_t quantity;
    struct line_totals totals;
};

struct checkout_buyer {
    char *first_name;
    char *last_name;
    char *full_name;
    char *email;
    char *phone_number;
};

/* A UCP postal address; as a shipping destination it also has an id. */
struct postal_address {
    char *id;
    char *street_address;
    char *extended_address;
    char *address_locality;
    char *address_region;
    char *postal_code;
    char *address_country;
    char *first_name;
    char *last_name;
    char *full_name;
    char *phone_number;
};

struct fulfillment_option {
    char *id;          /* the shipping rate id, e.g. "std-ship" */
    char *title;
    char *description;
    int64_t amount;    /* price, minor units */
};

/* One group always holds every line item (we ship in one package). */
struct fulfillment_group {
    char *id;
    char *selected_option_id;
    struct fulfillment_option *options;
    size_t n_options;
};

struct fulfillment_method {
    char *id;
    char *type;        /* "shipping" (the only type we support) */
    struct postal_address *destinations;
    size_t n_destinations;
    char *selected_destination_id;
    struct fulfillment_group *groups;
    size_t n_groups;
};

struct applied_discount {
    char *code;
    char *title;
    enum discount_type type;
    int64_t amount;
    int priority;       /* 1 = applied first */
    int64_t *alloc;     /* per line item, same order as line_items; sums to amount */
    size_t n_alloc;
};

struct checkout_payment {
    json_t *handlers;   /* array, owned; copied from shop_rules at each refresh */
    struct payment_instrument *instruments;
    size_t n_instruments;
    char *selected_instrument_id;
};

struct checkout {
    char *id;
    enum checkout_status status;
    char currency[COMMERCE_CURRENCY_LEN];

    struct line_item *lines;
    size_t n_lines;

    int has_buyer;
    struct checkout_buyer buyer;

    struct fulfillment_method *methods;
    size_t n_methods;

    char **codes;                 /* discount codes as submitted */
    size_t n_codes;
    struct applied_discount *applied;
    size_t n_applied;

    struct checkout_payment payment;

    struct checkout_message *messages;  /* derived from content at every refresh */
    size_t n_messages;
    struct checkout_link *links;
    size_t n_links;

    /* Set by checkout_escalate(); keeps the status at requires_escalation
     * until checkout_escalation_clear(). */
    struct checkout_message *escalation;

    int64_t created_at;  /* unix seconds */
    int64_t updated_at;
    int64_t expires_at;
    char *continue_url;
    char *order_id;
    char *order_permalink_url;

    int64_t version;     /* optimistic concurrency; owned by the store */
    uint32_t next_seq;   /* for deterministic line/destination ids */

    struct checkout_totals totals;  /* as last returned to the client */

    /* Operation keys ("<turn_id>/<tool_call_id>") of the side-effecting
     * calls applied to this checkout, oldest first, at most
     * CHECKOUT_OP_KEYS_MAX (the oldest is dropped). A replayed call whose
     * key is here is not applied again. Internal: kept in the store
     * document, never in the UCP JSON. (Not to be confused with `applied`,
     * the applied discounts.) */
    char **op_keys;
    size_t n_op_keys;

    /* While complete_in_progress: who moved it there. key is the payment
     * authorization's idempotency key (whoever carries the completion on
     * authorizes under it: the same authorization, never a second charge);
     * by is that process's instance id (NULL: not known); at is when, in
     * unix seconds. Cleared when the checkout leaves complete_in_progress.
     * Internal, like op_keys. */
    struct checkout_claim {
        char *key;
        char *by;
        int64_t at;
    } completing;
};

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
                    struct checkout **out, struct checkout_err *e);

/* PUT: the body is the new state of the mutable fields. line_items,
 * payment and currency are replaced; buyer, fulfillment and discounts are
 * replaced when present (JSON null clears them) and kept when absent,
 * because UCP clients omit fields they do not change. */
int checkout_update(struct checkout *c, const struct shop_rules *r, const json_t *req,
                    struct checkout_err *e);

/* Agent tools. Adding a product already in the cart raises its quantity. */
int checkout_item_add(struct checkout *c, const struct shop_rules *r, const char *product_id,
                      int64_t quantity, struct checkout_err *e);
/* Removes the line with this line id, or else the line of this product id. */
int checkout_item_remove(struct checkout *c, const struct shop_rules *r, const char *line_or_product,
                         struct checkout_err *e);
/* Sets a line's quantity (line id or product id); 0 removes the line. */
int checkout_item_set_quantity(struct checkout *c, const struct shop_rules *r,
                               const char *line_or_product, int64_t quantity,
                               struct checkout_err *e);
int checkout_buyer_set(struct checkout *c, const struct shop_rules *r,
                       const struct checkout_buyer *b, struct checkout_err *e);
/* Adds (or replaces, by id) a shipping destination and selects it. */
int checkout_destination_set(struct checkout *c, const struct shop_rules *r,
                             const struct postal_address *a, struct checkout_err *e);
int checkout_shipping_select(struct checkout *c, const struct shop_rules *r, const char *option_id,
                             struct checkout_err *e);
/* Replaces the discount codes (n = 0 clears). Unknown codes are kept and
 * reported as warnings (discount_code_invalid), not errors. */
int checkout_discounts_apply(struct checkout *c, const struct shop_rules *r,
                             const char *const *codes, size_t n, struct checkout_err *e);
/* Any non-terminal status -> canceled. */
int checkout_cancel(struct checkout *c, const struct shop_rules *r, struct checkout_err *e);
/* Business-side escalation (e.g. a review the API cannot collect). */
int checkout_escalate(struct checkout *c, const struct shop_rules *r, const char *code,
                      const char *content, enum checkout_severity sev, struct checkout_err *e);
int checkout_escalation_clear(struct checkout *c, const struct shop_rules *r,
                              struct checkout_err *e);

/* ready_for_complete -> complete_in_progress. Re-prices with the current
 * rules first; if the total differs from what the client last saw
 * (expected_total, or the stored total when expected_total < 0) the
 * checkout keeps the new prices, stays completable and AGENTD_ECONFLICT
 * (code total_changed) is returned. Not ready -> AGENTD_EUNPROCESSABLE
 * with the first missing item in *e (the refreshed messages are kept).
 * Items are checked strictly: out of stock -> AGENTD_EINVAL, unchanged. */
int checkout_begin_complete(struct checkout *c, const struct shop_rules *r, int64_t expected_total,
                            struct checkout_err *e);
/* complete_in_progress -> back to ready (payment declined: nothing charged). */
int checkout_abort_complete(struct checkout *c, const struct shop_rules *r, struct checkout_err *e);
/* complete_in_progress -> completed, with the order's id and permalink. */
int checkout_mark_completed(struct checkout *c, const struct shop_rules *r, const char *order_id,
                            const char *permalink_url, struct checkout_err *e);

/* Recomputes prices, fulfillment options, messages and status from the
 * content (no-op for terminal and in-progress sessions' status). Exposed
 * for the store layer after loading and for tests. */
int checkout_refresh(struct checkout *c, const struct shop_rules *r, struct checkout_err *e);

/* ---- operation keys (exactly-once tool calls) ---- */

/* 0 if key can be an operation key (1..CHECKOUT_OP_KEY_MAX bytes of valid
 * UTF-8 without NUL), else AGENTD_EINVAL with the reason in *e. */
int checkout_op_key_check(const char *key, struct checkout_err *e);
/* 1 if key is among c's operation keys. */
int checkout_op_key_has(const struct checkout *c, const char *key);
/* Records key as the newest; beyond CHECKOUT_OP_KEYS_MAX the oldest is
 * dropped. A key already there is not added twice. 0, AGENTD_EINVAL (see
 * checkout_op_key_check) or AGENTD_ENOMEM; c unchanged on error. */
int checkout_op_key_add(struct checkout *c, const char *key, struct checkout_err *e);
/* Sets c->completing (key: an operation key; by: NULL or up to
 * CHECKOUT_OP_KEY_MAX bytes of printable text). 0, AGENTD_EINVAL or
 * AGENTD_ENOMEM; c unchanged on error. */
int checkout_claim_set(struct checkout *c, const char *key, const char *by, int64_t at,
                       struct checkout_err *e);
/* The store document's internal part, doc._agentd: op_keys (an array,
 * oldest first) and completing ({key, by, at}); each removed when c has
 * none, _agentd created when missing. doc is a checkout_to_doc_json()
 * object. 0 or AGENTD_ENOMEM. */
int checkout_internal_to_doc(const struct checkout *c, json_t *doc);
/* Reads doc._agentd into c (replacing c's keys and claim). A document
 * without them (written before they existed) gives none. Not an array of
 * valid keys, or a malformed claim -> AGENTD_ECORRUPT; more than
 * CHECKOUT_OP_KEYS_MAX keys -> the newest are kept. */
int checkout_internal_from_doc(struct checkout *c, const json_t *doc, struct checkout_err *e);

/* ---- JSON pieces shared with ucp.c ---- */

/* Parses a buyer / postal address object (unknown fields ignored). */
int checkout_buyer_from_json(const json_t *j, struct checkout_buyer *out, struct checkout_err *e);
int checkout_address_from_json(const json_t *j, struct postal_address *out, struct checkout_err *e);
void checkout_buyer_clear(struct checkout_buyer *b);
void checkout_address_clear(struct postal_address *a);
int checkout_address_copy(struct postal_address *dst, const struct postal_address *src);

/* Sets *e (any field may be NULL). Returns status, for `return checkout_fail(...)`. */
int checkout_fail(struct checkout_err *e, int status, const char *code, const char *path,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
