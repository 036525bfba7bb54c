/* Fuzz target: the UCP checkout request parsers (commerce/checkout_parse.c)
 * through checkout_create and checkout_update against a small fake shop, then
 * the store document round trip (checkout_to_doc_json -> checkout_from_json).
 * Input: a create body, or an array [create, update, ...]. */
#include "fuzz.h"
#include "commerce/checkout.h"
#include "commerce/payment.h"
#include "commerce/ucp.h"
#include "core/err.h"

#include <string.h>
#include <strings.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct product products[] = {
    { .id = "BISC-001", .name = "Chocochip Cookies", .price = 399, .available = 1 },
    { .id = "STRAW-001", .name = "Strawberries", .price = 250, .available = 1 },
    { .id = "CHIPS-001", .name = "Chips", .price = 199, .available = 0 },
    /* near the catalog's price limit: sums must be refused, not overflow */
    { .id = "GOLD-001", .name = "Gold", .price = 9999999999999LL, .available = 1 },
};
static const int64_t stock[] = { 100, 3, 0, -1 };
static struct shipping_rate rates[] = {
    { .id = "std-ship", .country = "*", .service_level = "standard", .title = "Standard", .price = 500 },
    { .id = "exp-ship", .country = "*", .service_level = "express", .title = "Express", .price = 1500 },
    { .id = "ca-ship", .country = "CA", .service_level = "standard", .title = "Canada", .price = 800 },
};
static const struct shipping_rate *rate_ptrs[N(rates)];
static struct discount discounts[] = {
    { .code = "10OFF", .type = DISCOUNT_PERCENTAGE, .value = 10, .description = "10% off" },
    { .code = "5DOLLARS", .type = DISCOUNT_FIXED_AMOUNT, .value = 500, .description = "$5 off" },
};
static struct tax_rate tax = { .country = "US", .region = "*", .rate_bp = 800 };

static const struct product *f_product(void *ud, const char *id)
{
    for (size_t i = 0; i < N(products); i++)
        if (strcmp(products[i].id, id) == 0)
            return &products[i];
    return NULL;
}

static int64_t f_stock(void *ud, const char *id)
{
    for (size_t i = 0; i < N(products); i++)
        if (strcmp(products[i].id, id) == 0)
            return stock[i];
    return -1;
}

static const struct shipping_rate *const *f_rates(void *ud, const char *country, size_t *n)
{
    *n = 0;
    for (size_t i = 0; i < N(rates); i++)
        if (strcmp(rates[i].country, "*") == 0 || strcasecmp(rates[i].country, country) == 0)
            rate_ptrs[(*n)++] = &rates[i];
    return rate_ptrs;
}

static const struct shipping_rate *f_rate(void *ud, const char *id)
{
    for (size_t i = 0; i < N(rates); i++)
        if (strcmp(rates[i].id, id) == 0)
            return &rates[i];
    return NULL;
}

static const struct discount *f_discount(void *ud, const char *code)
{
    for (size_t i = 0; i < N(discounts); i++)
        if (strcasecmp(discounts[i].code, code) == 0)
            return &discounts[i];
    return NULL;
}

static const struct tax_rate *f_tax(void *ud, const char *country, const char *region)
{
    return strcasecmp(country, tax.country) == 0 ? &tax : NULL;
}

/* What the buyer is shown adds up: quantities in range, no negative amount,
 * the total the sum of its parts and of its lines. */
static void totals_ok(const struct checkout *c)
{
    const struct checkout_totals *t = &c->totals;
    int64_t base = 0, line_discounts = 0;
    for (size_t i = 0; i < c->n_lines; i++) {
        const struct line_item *li = &c->lines[i];
        FUZZ_CHECK(li->quantity >= 1 && li->quantity <= CHECKOUT_QTY_MAX);
        FUZZ_CHECK(li->totals.base_amount == li->price * li->quantity);
        FUZZ_CHECK(li->totals.discount >= 0 && li->totals.discount <= li->totals.base_amount);
        base += li->totals.base_amount;
        line_discounts += li->totals.discount;
    }
    FUZZ_CHECK(c->n_lines <= CHECKOUT_LINES_MAX);
    FUZZ_CHECK(t->subtotal == base && t->discount == line_discounts && t->items_discount == 0);
    FUZZ_CHECK(t->discount <= t->subtotal);
    FUZZ_CHECK(t->fulfillment >= 0 && t->tax >= 0 && t->fee >= 0 && t->discount >= 0);
    FUZZ_CHECK(t->total == t->subtotal - t->items_discount - t->discount + t->fulfillment +
                               t->tax + t->fee);
    FUZZ_CHECK(t->total >= 0);
}

/* The store document survives a save and a load unchanged. */
static void roundtrip(const struct checkout *c)
{
    json_t *doc = checkout_to_doc_json(c);
    FUZZ_CHECK(doc != NULL);
    FUZZ_CHECK(checkout_internal_to_doc(c, doc) == 0);
    struct checkout *back = NULL;
    struct agentd_error e = { 0 };
    int rc = checkout_from_json(doc, &back, &e);
    if (rc != 0)
        fprintf(stderr, "checkout_from_json: %s\n", e.msg);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(checkout_internal_from_doc(back, doc, &e) == 0);
    json_t *again = checkout_to_doc_json(back);
    FUZZ_CHECK(again && checkout_internal_to_doc(back, again) == 0);
    FUZZ_CHECK(json_equal(doc, again));
    json_t *wire = checkout_to_json(c, NULL);
    FUZZ_CHECK(wire != NULL);
    json_decref(wire);
    json_decref(again);
    json_decref(doc);
    checkout_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *handlers;
    static const struct checkout_link links[] = {
        { .type = "terms_of_service", .url = "https://shop.example/terms" },
    };
    if (!handlers) {
        const struct payment_handler *h = payment_handler_mock();
        handlers = payment_handlers_json(&h, 1);
    }
    struct shop_rules r = {
        .product = f_product, .stock = f_stock, .shipping_rates = f_rates,
        .shipping_rate = f_rate, .discount = f_discount, .tax_rate = f_tax,
        .currency = "USD", .now = 1768125600,
        .continue_url_base = "https://shop.example/checkout-sessions",
        .payment_handlers = handlers, .links = links, .n_links = N(links),
    };
    json_error_t je;
    json_t *in = json_loadb((const char *)data, size, 0, &je);
    if (!in)
        return 0;
    const json_t *create = json_is_array(in) ? json_array_get(in, 0) : in;
    struct checkout *c = NULL;
    struct agentd_error e = { 0 };
    int rc = checkout_create(create, &r, "chk_fuzz", &c, &e);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && c == NULL && e.msg[0]);
        json_decref(in);
        return 0;
    }
    FUZZ_CHECK(c != NULL);
    totals_ok(c);
    roundtrip(c);
    size_t n = json_is_array(in) ? json_array_size(in) : 2;
    for (size_t i = 1; i < n && i < 5; i++) {
        const json_t *upd = json_is_array(in) ? json_array_get(in, i) : in;
        json_t *before = checkout_to_doc_json(c);
        rc = checkout_update(c, &r, upd, &e);
        json_t *after = checkout_to_doc_json(c);
        /* a refused update leaves the checkout exactly as it was */
        if (rc != 0)
            FUZZ_CHECK(json_equal(before, after));
        json_decref(before);
        json_decref(after);
        totals_ok(c);
        roundtrip(c);
    }
    checkout_free(c);
    json_decref(in);
    return 0;
}
