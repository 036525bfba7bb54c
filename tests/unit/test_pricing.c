/* pricing: totals, stacked discounts, tax fallback, rounding, exact
 * allocation and overflow guards, against a small fake shop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/checkout.h"
#include "commerce/money.h"
#include "commerce/pricing.h"
#include "commerce/catalog.h"
#include "core/err.h"

/* ---- fake shop ---- */

static struct product products[] = {
    {.id = "BISC-001", .name = "Chocochip Cookies", .price = 399, .stock = 10, .available = 1},
    {.id = "STRAW-001", .name = "Strawberries", .price = 250, .stock = 10, .available = 1},
    {.id = "GOLD-001", .name = "Gold Bar", .price = MONEY_AMOUNT_MAX, .stock = 10, .available = 1},
    {.id = "ROSES", .name = "Bouquet of Red Roses", .price = 3500, .stock = 10, .available = 1},
};
static struct shipping_rate rates[] = {
    {.id = "std-ship", .country = "*", .service_level = "standard", .title = "Standard", .price = 500},
    {.id = "exp-ship", .country = "*", .service_level = "express", .title = "Express", .price = 1500},
};
static struct discount discounts[] = {
    {.code = "10OFF", .type = DISCOUNT_PERCENTAGE, .value = 10, .description = "10% off"},
    {.code = "5DOLLARS", .type = DISCOUNT_FIXED_AMOUNT, .value = 500, .description = "$5 off"},
    {.code = "HALF", .type = DISCOUNT_PERCENTAGE, .value = 50, .description = "Half price"},
    {.code = "HUGE", .type = DISCOUNT_FIXED_AMOUNT, .value = 1000000, .description = "Huge"},
    {.code = "WELCOME20", .type = DISCOUNT_PERCENTAGE, .value = 20, .description = "20% Off"},
};
static struct tax_rate taxes[] = {
    {.country = "US", .region = "IL", .rate_bp = 825, .shipping_taxable = 1},
    {.country = "US", .region = "*", .rate_bp = 500, .shipping_taxable = 0},
    {.country = "*", .region = "*", .rate_bp = 100, .shipping_taxable = 0},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct product *f_product(void *ud, const char *id)
{
    (void)ud;
    for (size_t i = 0; i < N(products); i++)
        if (strcmp(products[i].id, id) == 0)
            return &products[i];
    return NULL;
}

static const struct shipping_rate *rate_ptrs[N(rates)];

static const struct shipping_rate *const *f_rates(void *ud, const char *country, size_t *n)
{
    (void)ud;
    (void)country;
    for (size_t i = 0; i < N(rates); i++)
        rate_ptrs[i] = &rates[i];
    *n = N(rates);
    return rate_ptrs;
}

static const struct shipping_rate *f_rate(void *ud, const char *id)
{
    (void)ud;
    for (size_t i = 0; i < N(rates); i++)
        if (strcmp(rates[i].id, id) == 0)
            return &rates[i];
    return NULL;
}

static const struct discount *f_discount(void *ud, const char *code)
{
    (void)ud;
    for (size_t i = 0; i < N(discounts); i++)
        if (strcasecmp(discounts[i].code, code) == 0)
            return &discounts[i];
    return NULL;
}

/* Exact match only: the domain must do the fallback itself. */
static const struct tax_rate *f_tax(void *ud, const char *country, const char *region)
{
    (void)ud;
    for (size_t i = 0; i < N(taxes); i++)
        if (strcasecmp(taxes[i].country, country) == 0 && strcasecmp(taxes[i].region, region) == 0)
            return &taxes[i];
    return NULL;
}

static json_t *handlers(void)
{
    return json_pack("[{s:s}]", "id", "mock_payment_handler");
}

static struct shop_rules rules(json_t *h)
{
    return (struct shop_rules){.product = f_product, .shipping_rates = f_rates,
                               .shipping_rate = f_rate, .discount = f_discount, .tax_rate = f_tax,
                               .currency = "USD", .now = 1768125600, .payment_handlers = h,
                               .flags = 0};
}

/* Builds a checkout from a compact request: lines "ID:qty,...", optional
 * country/region destination, shipping option and codes. */
static struct checkout *make(const struct shop_rules *r, const char *lines, const char *country,
                             const char *region, const char *option, const char *codes_csv)
{
    json_t *li = json_array();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", lines);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *colon = strchr(tok, ':');
        *colon = 0;
        json_array_append_new(li, json_pack("{s:{s:s}, s:I}", "item", "id", tok, "quantity",
                                            (json_int_t)atoll(colon + 1)));
    }
    json_t *req = json_pack("{s:o}", "line_items", li);
    if (country) {
        json_t *dest = json_pack("{s:s, s:s}", "id", "d1", "address_country", country);
        if (region)
            json_object_set_new(dest, "address_region", json_string(region));
        json_t *m = json_pack("{s:s, s:[o], s:s}", "type", "shipping", "destinations", dest,
                              "selected_destination_id", "d1");
        if (option)
            json_object_set_new(m, "groups", json_pack("[{s:s}]", "selected_option_id", option));
        json_object_set_new(req, "fulfillment", json_pack("{s:[o]}", "methods", m));
    }
    if (codes_csv) {
        json_t *ca = json_array();
        snprintf(buf, sizeof buf, "%s", codes_csv);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
            json_array_append_new(ca, json_string(tok));
        json_object_set_new(req, "discounts", json_pack("{s:o}", "codes", ca));
    }
    struct checkout *c = NULL;
    struct agentd_error e;
    int rc = checkout_create(req, r, "chk_1", &c, &e);
    json_decref(req);
    if (rc)
        print_message("create failed: %d %s %s\n", rc, e.code, e.msg);
    assert_int_equal(rc, 0);
    return c;
}

static void assert_invariants(const struct checkout *c)
{
    int64_t lines_disc = 0, lines_tax = 0, base = 0;
    for (size_t i = 0; i < c->n_lines; i++) {
        const struct line_totals *t = &c->lines[i].totals;
        assert_int_equal(t->base_amount, c->lines[i].price * c->lines[i].quantity);
        assert_int_equal(t->subtotal, t->base_amount - t->discount);
        assert_int_equal(t->total, t->subtotal + t->tax);
        assert_true(t->discount >= 0 && t->subtotal >= 0);
        lines_disc += t->discount;
        lines_tax += t->tax;
        base += t->base_amount;
    }
    assert_int_equal(base, c->totals.subtotal);
    /* codes are the order-level `discount` line; their allocation stays on lines */
    assert_int_equal(lines_disc, c->totals.discount);
    assert_int_equal(c->totals.items_discount, 0);
    assert_true(c->totals.tax >= lines_tax);
    for (size_t k = 0; k < c->n_applied; k++) {
        int64_t s = 0;
        for (size_t i = 0; i < c->applied[k].n_alloc; i++)
            s += c->applied[k].alloc[i];
        assert_int_equal(s, c->applied[k].amount);
    }
    assert_int_equal(c->totals.total, c->totals.subtotal - c->totals.items_discount -
                                          c->totals.discount + c->totals.fulfillment +
                                          c->totals.tax + c->totals.fee);
    assert_true(c->totals.total >= 0);
}

/* ---- table: totals ---- */

struct totals_case {
    const char *name, *lines, *country, *region, *option, *codes;
    int64_t subtotal, discount, fulfillment, tax, total;
};

static const struct totals_case totals_cases[] = {
    {"plain", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, NULL, 1048, 0, 0, 0, 1048},
    /* 10% of 1048 = 104.8: truncated, like UCP's sample merchants */
    {"percentage truncates", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, "10OFF", 1048, 104, 0,
     0, 944},
    {"fixed", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, "5DOLLARS", 1048, 500, 0, 0, 548},
    {"fixed capped at subtotal", "STRAW-001:1", NULL, NULL, NULL, "HUGE", 250, 250, 0, 0, 0},
    /* in the order given: 500 off 1048 = 548, then 10% of 548 = 54.8 -> 54 */
    {"stacked fixed then pct", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, "5DOLLARS,10OFF", 1048,
     554, 0, 0, 494},
    /* 10% of 1048 = 104 -> 944, then 500 */
    {"stacked pct then fixed", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, "10OFF,5DOLLARS", 1048,
     604, 0, 0, 444},
    /* 50% of 1048 = 524, then 10% of 524 = 52.4 -> 52 */
    {"stacked two percentages", "BISC-001:2,STRAW-001:1", NULL, NULL, NULL, "HALF,10OFF", 1048, 576,
     0, 0, 472},
    /* the flower shop: 3500 -> 10% -> 3150 -> 20% -> 2520 */
    {"flower shop 10OFF + WELCOME20", "ROSES:1", NULL, NULL, NULL, "10OFF,WELCOME20", 3500, 980, 0,
     0, 2520},
    {"duplicate code counts once", "STRAW-001:4", NULL, NULL, NULL, "10OFF,10off", 1000, 100, 0, 0,
     900},
    {"unknown code ignored", "STRAW-001:4", NULL, NULL, NULL, "NOPE", 1000, 0, 0, 0, 1000},
    /* IL 8.25%: 798 -> 65.835 -> 66; 250 -> 20.625 -> 21; shipping 500 -> 41.25 -> 41 */
    {"tax by region, shipping taxable", "BISC-001:2,STRAW-001:1", "US", "IL", "std-ship", NULL, 1048,
     0, 500, 128, 1676},
    /* CA has no row: US/star 5%, shipping not taxable: 39.9 -> 40, 12.5 -> 13 */
    {"tax falls back to country", "BISC-001:2,STRAW-001:1", "US", "CA", "exp-ship", NULL, 1048, 0,
     1500, 53, 2601},
    /* FR: "*" 1%: 7.98 -> 8, 2.5 -> 3 */
    {"tax falls back to star", "BISC-001:2,STRAW-001:1", "FR", NULL, "std-ship", NULL, 1048, 0, 500,
     11, 1559},
    /* discount before tax: lines 417/131 after $5, IL: 34.4 -> 34, 10.8 -> 11, ship 41 */
    {"discount then tax", "BISC-001:2,STRAW-001:1", "US", "IL", "std-ship", "5DOLLARS", 1048, 500,
     500, 86, 1134},
};

static void test_totals_table(void **state)
{
    (void)state;
    json_t *h = handlers();
    struct shop_rules r = rules(h);
    for (size_t i = 0; i < N(totals_cases); i++) {
        const struct totals_case *tc = &totals_cases[i];
        struct checkout *c = make(&r, tc->lines, tc->country, tc->region, tc->option, tc->codes);
        print_message("case %s: sub %lld disc %lld ful %lld tax %lld total %lld\n", tc->name,
                      (long long)c->totals.subtotal, (long long)c->totals.discount,
                      (long long)c->totals.fulfillment, (long long)c->totals.tax,
                      (long long)c->totals.total);
        assert_int_equal(c->totals.subtotal, tc->subtotal);
        assert_int_equal(c->totals.discount, tc->discount);
        assert_int_equal(c->totals.items_discount, 0);
        assert_int_equal(c->totals.fulfillment, tc->fulfillment);
        assert_int_equal(c->totals.tax, tc->tax);
        assert_int_equal(c->totals.total, tc->total);
        assert_invariants(c);
        checkout_free(c);
    }
    json_decref(h);
}

static void test_discount_then_tax_exact(void **state)
{
    (void)state;
    json_t *h = handlers();
    struct shop_rules r = rules(h);
    struct checkout *c = make(&r, "BISC-001:2,STRAW-001:1", "US", "IL", "std-ship", "5DOLLARS");
    /* 500 over 798/250: 380.7 -> 380 (+1 by remainder .7 vs .3) = 381, 119 */
    assert_int_equal(c->lines[0].totals.discount, 381);
    assert_int_equal(c->lines[1].totals.discount, 119);
    /* 417 * 8.25% = 34.4 -> 34; 131 * 8.25% = 10.8 -> 11; ship 41 */
    assert_int_equal(c->lines[0].totals.tax, 34);
    assert_int_equal(c->lines[1].totals.tax, 11);
    assert_int_equal(c->totals.tax, 34 + 11 + 41);
    assert_int_equal(c->totals.total, 1048 - 500 + 500 + 86);
    assert_invariants(c);
    checkout_free(c);
    json_decref(h);
}

/* ---- rounding and allocation ---- */

static void test_mul_div(void **state)
{
    (void)state;
    static const struct {
        int64_t v, num, den, want;
    } t[] = {
        {5, 1, 2, 3},       /* 2.5 -> 3 (half up) */
        {4, 1, 3, 1},       /* 1.33 -> 1 */
        {2, 1, 3, 1},       /* 0.67 -> 1 */
        {1, 1, 2, 1},       /* 0.5 -> 1 */
        {1, 1, 3, 0},       /* 0.33 -> 0 */
        {0, 825, 10000, 0},
        {1048, 10, 100, 105},
        {798, 825, 10000, 66},
        {MONEY_AMOUNT_MAX, 1, 1, MONEY_AMOUNT_MAX},
        {MONEY_AMOUNT_MAX, 2, 1, -1}, /* over the cap */
        {-1, 1, 1, -1},
        {1, 1, 0, -1},
        {INT64_MAX, INT64_MAX, 1, -1}, /* 128-bit product, no UB */
    };
    for (size_t i = 0; i < N(t); i++)
        assert_int_equal(pricing_mul_div(t[i].v, t[i].num, t[i].den), t[i].want);
}

static void test_allocate(void **state)
{
    (void)state;
    static const struct {
        int64_t amount;
        int64_t w[5];
        size_t n;
        int64_t want[5];
    } t[] = {
        {105, {798, 250}, 2, {80, 25}},
        {1, {1, 1, 1}, 3, {1, 0, 0}},  /* ties: earlier index */
        {2, {1, 1, 1}, 3, {1, 1, 0}},
        {3, {1, 1, 1}, 3, {1, 1, 1}},
        {10, {0, 5, 5}, 3, {0, 5, 5}}, /* zero weight gets nothing */
        {7, {3, 3, 1}, 3, {3, 3, 1}},
        {100, {10, 20, 30, 40}, 4, {10, 20, 30, 40}},
        {10, {10, 20, 30, 40}, 4, {1, 2, 3, 4}},
        {99, {100, 100, 100}, 3, {33, 33, 33}},
        {100, {100, 100, 100}, 3, {34, 33, 33}},
        {0, {5, 5}, 2, {0, 0}},
    };
    for (size_t i = 0; i < N(t); i++) {
        int64_t out[5] = {0};
        assert_int_equal(pricing_allocate(t[i].amount, t[i].w, t[i].n, out), 0);
        int64_t s = 0;
        for (size_t k = 0; k < t[i].n; k++) {
            assert_int_equal(out[k], t[i].want[k]);
            assert_true(out[k] <= t[i].w[k]);
            s += out[k];
        }
        assert_int_equal(s, t[i].amount);
    }
    /* Exactness over many random-ish shapes. */
    uint64_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        int64_t w[7], out[7], sum = 0;
        size_t n = 1 + (size_t)(round % 7);
        for (size_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            w[k] = (int64_t)(seed >> 40) % 100000;
            sum += w[k];
        }
        seed = seed * 6364136223846793005ULL + 1;
        int64_t amount = sum ? (int64_t)((seed >> 33) % (uint64_t)(sum + 1)) : 0;
        assert_int_equal(pricing_allocate(amount, w, n, out), 0);
        int64_t s = 0;
        for (size_t k = 0; k < n; k++) {
            assert_true(out[k] >= 0 && out[k] <= w[k]);
            s += out[k];
        }
        assert_int_equal(s, amount);
    }
    int64_t w[2] = {1, -1}, out[2];
    assert_int_equal(pricing_allocate(1, w, 2, out), AGENTD_EINVAL);
    int64_t big[2] = {MONEY_AMOUNT_MAX, 1};
    assert_int_equal(pricing_allocate(1, big, 2, out), AGENTD_EINVAL);
    int64_t zero[2] = {0, 0};
    assert_int_equal(pricing_allocate(1, zero, 2, out), AGENTD_EINVAL);
    assert_int_equal(pricing_allocate(-1, zero, 2, out), AGENTD_EINVAL);
}

static void test_overflow(void **state)
{
    (void)state;
    json_t *h = handlers();
    struct shop_rules r = rules(h);
    json_t *req = json_pack("{s:[{s:{s:s}, s:i}]}", "line_items", "item", "id", "GOLD-001",
                            "quantity", 2);
    struct checkout *c = NULL;
    struct agentd_error e;
    assert_int_equal(checkout_create(req, &r, "chk_big", &c, &e), AGENTD_EUNPROCESSABLE);
    assert_string_equal(e.code, "amount_too_large");
    assert_null(c);
    json_decref(req);
    /* One at the cap is fine; adding a second line overflows the subtotal. */
    req = json_pack("{s:[{s:{s:s}, s:i}]}", "line_items", "item", "id", "GOLD-001", "quantity", 1);
    assert_int_equal(checkout_create(req, &r, "chk_big", &c, &e), 0);
    assert_int_equal(c->totals.total, MONEY_AMOUNT_MAX);
    assert_int_equal(checkout_item_add(c, &r, "BISC-001", 1, &e), AGENTD_EUNPROCESSABLE);
    assert_int_equal(c->n_lines, 1); /* unchanged */
    checkout_free(c);
    json_decref(req);
    json_decref(h);
}

static void test_totals_json(void **state)
{
    (void)state;
    static const char *const allowed[] = {"items_discount", "subtotal", "discount", "fulfillment",
                                          "tax", "fee", "total"};
    struct checkout_totals t = {.subtotal = 1048, .items_discount = 105, .fulfillment = 500,
                                .tax = 80, .fee = 30};
    t.total = t.subtotal - t.items_discount + t.fulfillment + t.tax + t.fee;
    json_t *a = pricing_totals_json(&t, 1, 1);
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 6);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *type = json_string_value(json_object_get(v, "type"));
        int ok = 0;
        for (size_t k = 0; k < N(allowed); k++)
            ok |= strcmp(type, allowed[k]) == 0;
        assert_true(ok);
        assert_true(json_integer_value(json_object_get(v, "amount")) >= 0);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "type")),
                        "subtotal");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 5), "type")), "total");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 5), "amount")), 1553);
    json_decref(a);
    /* Minimal: subtotal and total only. */
    struct checkout_totals z = {.subtotal = 5, .total = 5};
    a = pricing_totals_json(&z, 0, 0);
    assert_int_equal(json_array_size(a), 2);
    json_decref(a);
    struct line_totals lt = {.base_amount = 798, .discount = 80, .subtotal = 718, .tax = 59,
                             .total = 777};
    a = pricing_line_totals_json(&lt);
    assert_int_equal(json_array_size(a), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 1), "type")),
                        "items_discount");
    json_decref(a);
}

/* The stacking math on its own: truncation, fixed amounts, never below 0. */
static void test_discount_amount(void **state)
{
    (void)state;
    struct discount pct10 = {.code = "10OFF", .type = DISCOUNT_PERCENTAGE, .value = 10};
    struct discount pct20 = {.code = "WELCOME20", .type = DISCOUNT_PERCENTAGE, .value = 20};
    struct discount fix500 = {.code = "FIXED500", .type = DISCOUNT_FIXED_AMOUNT, .value = 500};
    assert_int_equal(pricing_discount_amount(&pct10, 3500), 350);
    assert_int_equal(pricing_discount_amount(&pct20, 3150), 630);
    assert_int_equal(pricing_discount_amount(&pct10, 1049), 104); /* 104.9 truncates */
    assert_int_equal(pricing_discount_amount(&pct10, 9), 0);
    assert_int_equal(pricing_discount_amount(&fix500, 3500), 500);
    assert_int_equal(pricing_discount_amount(&fix500, 300), 300); /* capped */
    assert_int_equal(pricing_discount_amount(&fix500, 0), 0);
}

/* Free shipping: a threshold on the item subtotal, or an eligible item. */
static void test_promotion_eligibility(void **state)
{
    (void)state;
    char *roses[] = {"bouquet_roses"};
    struct promotion p[] = {
        {.id = "promo_1", .type = PROMOTION_FREE_SHIPPING, .min_subtotal = 10000},
        {.id = "promo_2", .type = PROMOTION_FREE_SHIPPING, .eligible = roses, .n_eligible = 1},
    };
    const char *tulips[] = {"bouquet_tulips"}, *mixed[] = {"pot_ceramic", "bouquet_roses"};
    assert_false(promotion_free_shipping(p, 2, 9999, tulips, 1));
    assert_true(promotion_free_shipping(p, 2, 10000, tulips, 1));
    assert_true(promotion_free_shipping(p, 2, 1500, mixed, 2));
    assert_false(promotion_free_shipping(p, 1, 1500, mixed, 2)); /* threshold only */
    assert_false(promotion_free_shipping(p + 1, 1, 50000, tulips, 1)); /* items only */
    assert_false(promotion_free_shipping(NULL, 0, 50000, mixed, 2));
}

/* ---- promotions and the address book through refresh ---- */

static int remembered;

static size_t f_saved(void *ud, const char *email, struct postal_address *out, size_t max)
{
    (void)ud;
    if (strcasecmp(email, "john@example.com") != 0 || max < 2)
        return 0;
    out[0] = (struct postal_address){.id = strdup("addr_1"), .street_address = strdup("1 Main St"),
                                     .address_locality = strdup("Springfield"),
                                     .address_region = strdup("IL"), .postal_code = strdup("62704"),
                                     .address_country = strdup("US")};
    out[1] = (struct postal_address){.id = strdup("addr_2"), .street_address = strdup("2 Oak Ave"),
                                     .address_country = strdup("FR")};
    return 2;
}

static int f_remember(void *ud, const char *email, const struct postal_address *a, char *id,
                      size_t len)
{
    (void)ud;
    (void)email;
    (void)a;
    remembered++;
    snprintf(id, len, "addr_new%d", remembered);
    return 0;
}

static struct checkout *create_json(const struct shop_rules *r, const char *body)
{
    json_t *req = json_loads(body, 0, NULL);
    assert_non_null(req);
    struct checkout *c = NULL;
    struct agentd_error e;
    assert_int_equal(checkout_create(req, r, "chk_ab", &c, &e), 0);
    json_decref(req);
    return c;
}

static void test_address_book_in_refresh(void **state)
{
    (void)state;
    json_t *h = handlers();
    struct shop_rules r = rules(h);
    r.saved_addresses = f_saved;
    r.remember_address = f_remember;
    remembered = 0;
    /* a known email, a method without destinations: the saved ones, none selected */
    struct checkout *c = create_json(&r, "{\"line_items\":[{\"item\":{\"id\":\"STRAW-001\"},"
                                         "\"quantity\":1}],\"buyer\":{\"email\":\"JOHN@example.com\"},"
                                         "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\"}]}}");
    assert_int_equal(c->methods[0].n_destinations, 2);
    assert_string_equal(c->methods[0].destinations[0].id, "addr_1");
    assert_string_equal(c->methods[0].destinations[1].address_country, "FR");
    assert_null(c->methods[0].selected_destination_id);
    assert_int_equal(remembered, 0);
    checkout_free(c);
    /* an unknown email: none */
    c = create_json(&r, "{\"line_items\":[{\"item\":{\"id\":\"STRAW-001\"},\"quantity\":1}],"
                        "\"buyer\":{\"email\":\"x@example.com\"},"
                        "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\"}]}}");
    assert_int_equal(c->methods[0].n_destinations, 0);
    checkout_free(c);
    /* equal to a saved one (case and blanks aside): its id, the selection follows */
    c = create_json(&r, "{\"line_items\":[{\"item\":{\"id\":\"STRAW-001\"},\"quantity\":1}],"
                        "\"buyer\":{\"email\":\"john@example.com\"},"
                        "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{"
                        "\"id\":\"mine\",\"street_address\":\" 1 MAIN ST\",\"address_locality\":"
                        "\"springfield\",\"address_region\":\"IL\",\"postal_code\":\"62704\","
                        "\"address_country\":\"US\"}],\"selected_destination_id\":\"mine\"}]}}");
    assert_string_equal(c->methods[0].destinations[0].id, "addr_1");
    assert_string_equal(c->methods[0].selected_destination_id, "addr_1");
    assert_int_equal(remembered, 0);
    checkout_free(c);
    /* a new one is remembered and takes the id it was saved under */
    c = create_json(&r, "{\"line_items\":[{\"item\":{\"id\":\"STRAW-001\"},\"quantity\":1}],"
                        "\"buyer\":{\"email\":\"john@example.com\"},"
                        "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{"
                        "\"id\":\"mine\",\"street_address\":\"9 Elm St\",\"address_country\":\"US\"}],"
                        "\"selected_destination_id\":\"mine\"}]}}");
    assert_int_equal(remembered, 1);
    assert_string_equal(c->methods[0].destinations[0].id, "addr_new1");
    assert_string_equal(c->methods[0].selected_destination_id, "addr_new1");
    checkout_free(c);
    json_decref(h);
}

static void test_free_shipping_in_refresh(void **state)
{
    (void)state;
    json_t *h = handlers();
    struct shop_rules r = rules(h);
    static char *eligible[] = {"BISC-001"};
    struct promotion promos[] = {
        {.id = "p1", .type = PROMOTION_FREE_SHIPPING, .min_subtotal = 1000},
        {.id = "p2", .type = PROMOTION_FREE_SHIPPING, .eligible = eligible, .n_eligible = 1},
    };
    r.promotions = promos;
    r.n_promotions = 2;
    struct checkout *c = make(&r, "STRAW-001:1", "US", "IL", "std-ship", NULL);
    assert_int_equal(c->totals.fulfillment, 500); /* 250 < 1000, no eligible item */
    assert_string_equal(c->methods[0].groups[0].options[0].title, "Standard");
    checkout_free(c);
    c = make(&r, "STRAW-001:4", "US", "IL", "std-ship", NULL); /* 1000: the threshold */
    assert_int_equal(c->totals.fulfillment, 0);
    assert_string_equal(c->methods[0].groups[0].options[0].title, "Standard (Free)");
    assert_int_equal(c->methods[0].groups[0].options[1].amount, 1500); /* express is not */
    checkout_free(c);
    c = make(&r, "BISC-001:1", "US", "IL", "std-ship", NULL); /* an eligible item */
    assert_int_equal(c->totals.fulfillment, 0);
    checkout_free(c);
    json_decref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals_table), cmocka_unit_test(test_discount_then_tax_exact),
        cmocka_unit_test(test_discount_amount), cmocka_unit_test(test_promotion_eligibility),
        cmocka_unit_test(test_address_book_in_refresh),
        cmocka_unit_test(test_free_shipping_in_refresh),
        cmocka_unit_test(test_mul_div),      cmocka_unit_test(test_allocate),
        cmocka_unit_test(test_overflow),     cmocka_unit_test(test_totals_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
