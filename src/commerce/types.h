/* Commerce value types shared by the catalog, checkout and pricing modules.
 * Pure data: no I/O, no globals. Money is always integer minor units (cents)
 * with an ISO 4217 currency code; no floating point ever touches an amount. */
#ifndef AGENTD_COMMERCE_TYPES_H
#define AGENTD_COMMERCE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#define COMMERCE_ID_MAX 64
#define COMMERCE_CURRENCY_LEN 4 /* "USD" + NUL */

struct money {
    int64_t amount;                      /* minor units */
    char currency[COMMERCE_CURRENCY_LEN];
};

/* A sellable product (schema.org Product shape in data/catalog.json). */
struct product {
    char *id;          /* productID, e.g. "BISC-001" */
    char *sku;
    char *name;        /* UCP item title */
    char *description;
    char *brand;
    char *image_url;
    char *url;         /* the product's page (schema.org url), or NULL */
    char *category;
    char *gtin;
    int64_t price;     /* minor units, in catalog currency */
    int64_t stock;     /* initial stock (seed); live stock is in the store */
    int available;     /* offers.availability is InStock */
};

/* A shipping option; country "default" (stored as "*") matches any. */
struct shipping_rate {
    char *id;            /* e.g. "std-ship" */
    char *country;       /* ISO 3166-1 alpha-2, or "*" */
    char *service_level; /* "standard" | "express" | ... */
    char *title;
    int64_t price;       /* minor units */
};

enum discount_type { DISCOUNT_PERCENTAGE, DISCOUNT_FIXED_AMOUNT };

struct discount {
    char *code;          /* matched case-insensitively */
    enum discount_type type;
    int64_t value;       /* percentage: whole percent 1..100; fixed: minor units */
    char *description;
};

/* A promotion (promotions.csv). free_shipping: the standard shipping
 * option costs 0 when the item subtotal reaches min_subtotal (> 0) or the
 * cart holds one of the eligible product ids. */
enum promotion_type { PROMOTION_FREE_SHIPPING };

struct promotion {
    char *id;
    enum promotion_type type;
    int64_t min_subtotal;  /* minor units; 0 = no threshold */
    char **eligible;       /* product ids; NULL when n_eligible is 0 */
    size_t n_eligible;
    char *description;
};

/* A merchant's customer (customers.csv) and a saved address
 * (addresses.csv); personal data: never logged. */
struct customer {
    char *id;
    char *name;
    char *email;
};

struct saved_address {
    char *id;
    char *customer_id;
    char *street_address;
    char *city;
    char *state;
    char *postal_code;
    char *country;
};

/* Tax by region: the most specific row wins (country+region, then country,
 * then "*"). Rate in basis points (825 = 8.25%). */
struct tax_rate {
    char *country;       /* ISO 3166-1 alpha-2 or "*" */
    char *region;        /* state/province code or "*" */
    int32_t rate_bp;
    int shipping_taxable;
};

#endif
