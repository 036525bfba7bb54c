/* The checkout's data: limits, statuses, the structs of a checkout session
 * and its pieces, the rules it is priced and checked against (struct
 * shop_rules) and its error. Shared by checkout.c (the operations) and
 * pricing.c (the amounts), which sits below it. See checkout.h for
 * ownership and purity. */
#ifndef AGENTD_COMMERCE_CHECKOUT_TYPES_H
#define AGENTD_COMMERCE_CHECKOUT_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "commerce/payment.h"
#include "core/err.h"
#include "commerce/types.h"

/* Limits: far above any real cart, low enough that a hostile request cannot
 * make the domain allocate much or overflow a sum. */
#define CHECKOUT_QTY_MAX 9999        /* per line */
#define CHECKOUT_QTY_PARSE_MAX 2147483647 /* parsed; over CHECKOUT_QTY_MAX refused at refresh */
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
#define CHECKOUT_CLAIM_BY_MAX 255    /* bytes of a completion claim's instance id */

enum checkout_status {
    CHECKOUT_INCOMPLETE = 0,
    CHECKOUT_REQUIRES_ESCALATION,
    CHECKOUT_READY_FOR_COMPLETE,
    CHECKOUT_COMPLETE_IN_PROGRESS,
    CHECKOUT_COMPLETED,
    CHECKOUT_CANCELED,
};

/* Flags in shop_rules.flags relaxing what "ready" requires. */
#define SHOP_FULFILLMENT_OPTIONAL 0x2u  /* digital goods: no shipping needed */

struct checkout_link {
    char *type;   /* privacy_policy, terms_of_service, ... */
    char *url;
    char *title;  /* optional */
};

/* Everything the domain needs to know about the shop for one operation.
 * The caller fills it per request; all callbacks must be pure lookups. */
struct postal_address;

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
    const json_t *payment_handlers;/* JSON array advertised in payment.handlers (borrowed; checkouts keep references: never edit it in place) */
    const struct checkout_link *links;
    size_t n_links;
    int64_t fee;                   /* flat fee per checkout, minor units; 0 = none */
    unsigned flags;                /* SHOP_* */
    /* Optional. Free-shipping promotions (borrowed, like the catalog). */
    const struct promotion *promotions;
    size_t n_promotions;
    /* Optional. The address book: up to max saved addresses of the
     * customer with this email into out (ids set; the caller's copies,
     * freed by the checkout); returns how many were written. */
    size_t (*saved_addresses)(void *ud, const char *email, struct postal_address *out,
                              size_t max);
    /* Optional. Saves a new address for the customer with this email;
     * its id into id (len bytes). 0 or a negative AGENTD_E*. */
    int (*remember_address)(void *ud, const char *email, const struct postal_address *a,
                            char *id, size_t len);
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
    /* dev.ucp.shopping.buyer_consent: the validated consent object
     * (booleans, marketing_channels[]), owned; NULL = none given */
    json_t *consent;
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
    json_t *handlers;   /* array, a reference to shop_rules' (shared, never edited in place) */
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

    /* Where this checkout's order events go: the webhook_url the platform
     * profile's order capability named when the checkout was created
     * (NULL: none). Kept so the event finds its receiver even when the
     * profile is gone later. Internal, like op_keys. */
    char *webhook_url;
};


#endif
