/* catalog: money text, the shipped demo catalog, every validation message,
 * search ranking and filters, resolve. File I/O, slot, CSV: test_catalog_load.c. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commerce/catalog.h"
#include "shop/catalog_load.h"
#include "commerce/money.h"
#include "core/err.h"

#include "catalog_fixture.h"

/* ------------------------------------------------------------------ */
/* money */

static void test_money_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int exponent;
        int ok;
        int64_t want;
    } cases[] = {
        { "3.99", 2, 1, 399 },
        { "0.5", 2, 1, 50 },
        { "0", 2, 1, 0 },
        { "12", 2, 1, 1200 },
        { "007.10", 2, 1, 710 },
        { "0.01", 2, 1, 1 },
        { "1000000000000.00", 2, 1, MONEY_AMOUNT_MAX },
        { "1000000000000.01", 2, 0, 0 },
        { "99999999999999999999999999", 2, 0, 0 },
        { "1.999", 2, 0, 0 },
        { "-1", 2, 0, 0 },
        { "+1", 2, 0, 0 },
        { "", 2, 0, 0 },
        { ".5", 2, 0, 0 },
        { "5.", 2, 0, 0 },
        { "1e3", 2, 0, 0 },
        { " 1", 2, 0, 0 },
        { "1 ", 2, 0, 0 },
        { "1,00", 2, 0, 0 },
        { "abc", 2, 0, 0 },
        { "NaN", 2, 0, 0 },
        { "12", 0, 1, 12 },
        { "1.5", 0, 0, 0 },
        { "1.234", 3, 1, 1234 },
        { "1.2", 3, 1, 1200 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -7;
        int rc = money_parse(cases[i].in, cases[i].exponent, &v);
        if ((rc == 0) != cases[i].ok)
            print_error("case \"%s\"\n", cases[i].in);
        assert_int_equal(rc == 0, cases[i].ok);
        assert_int_equal(v, cases[i].ok ? cases[i].want : -7);
    }
    int64_t v;
    assert_int_equal(money_parse(NULL, 2, &v), AGENTD_EINVAL);
}

static void test_money_format(void **state)
{
    (void)state;
    static const struct {
        int64_t amount;
        int exponent;
        const char *want;
    } cases[] = {
        { 399, 2, "3.99" },     { 5, 2, "0.05" },     { 0, 2, "0.00" },
        { 50, 2, "0.50" },      { -5, 2, "-0.05" },   { -1234, 2, "-12.34" },
        { 1200, 0, "1200" },    { 0, 0, "0" },        { 1234, 3, "1.234" },
        { INT64_MAX, 2, "92233720368547758.07" },     { INT64_MIN, 2, "-92233720368547758.08" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[MONEY_FORMAT_MAX];
        int n = money_format(cases[i].amount, cases[i].exponent, buf, sizeof buf);
        assert_int_equal(n, (int)strlen(cases[i].want));
        assert_string_equal(buf, cases[i].want);
        /* parse(format(x)) == x for every amount the parser accepts */
        int64_t back;
        if (cases[i].amount >= 0 && cases[i].amount <= MONEY_AMOUNT_MAX) {
            assert_int_equal(money_parse(buf, cases[i].exponent, &back), 0);
            assert_int_equal(back, cases[i].amount);
        }
    }
    char small[4], exact[5];
    assert_int_equal(money_format(99, 2, small, sizeof small), AGENTD_EINVAL);
    assert_int_equal(money_format(99, 2, exact, sizeof exact), 4);
    assert_string_equal(exact, "0.99");
}

static void test_money_currency(void **state)
{
    (void)state;
    assert_true(money_currency_valid("USD"));
    assert_false(money_currency_valid("usd"));
    assert_false(money_currency_valid("US"));
    assert_false(money_currency_valid("USDX"));
    assert_false(money_currency_valid(NULL));
    assert_int_equal(money_currency_exponent("USD"), 2);
    assert_int_equal(money_currency_exponent("JPY"), 0);
    assert_int_equal(money_currency_exponent("KWD"), 3);
}

/* ------------------------------------------------------------------ */
/* the shipped demo catalog */

static void test_demo_loads(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    size_t n;
    const struct product *ps = catalog_products(c, &n);
    assert_true(n >= 30);
    assert_string_equal(catalog_currency(c), "USD");
    static const char *const ucp[] = { "BISC-001",      "STRAW-001",    "CHIPS-001",
                                       "SW-CHIPS-001", "O-COOKIES-001", "NUTRIBAR-001" };
    for (size_t i = 0; i < 6; i++) {
        const struct product *p = catalog_product(c, ucp[i]);
        assert_non_null(p);
        assert_string_equal(p->id, ucp[i]);
        assert_true(p->available);
        assert_true(p->stock > 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_true(ps[i].price > 0);
        assert_true(*ps[i].name);
        assert_non_null(ps[i].description);
        assert_non_null(ps[i].gtin);
        if (i)
            assert_true(strcasecmp(ps[i - 1].id, ps[i].id) < 0);
    }
    const struct product *b = catalog_product(c, "BISC-001");
    assert_int_equal(b->price, 499);
    assert_string_equal(b->name, "Chocolate Chip Cookies");
    assert_string_equal(b->brand, "CookieCo");
    assert_string_equal(b->image_url, "https://example.com/images/bisc-001.jpg");
    /* one product is sold out, for out-of-stock paths */
    const struct product *pie = catalog_product(c, "PIE-001");
    assert_non_null(pie);
    assert_false(pie->available);
    assert_int_equal(pie->stock, 0);
    catalog_free(c);
}

static void test_demo_lookups(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    assert_null(catalog_product(c, "bisc-001")); /* exact lookup is case-sensitive */
    assert_null(catalog_product(c, "NOPE"));
    assert_null(catalog_product(c, NULL));

    const struct shipping_rate *std = catalog_shipping_rate(c, "std-ship");
    assert_non_null(std);
    assert_string_equal(std->country, "*");
    assert_string_equal(std->service_level, "standard");
    assert_int_equal(std->price, 500);
    const struct shipping_rate *exp = catalog_shipping_rate(c, "exp-ship");
    assert_non_null(exp);
    assert_string_equal(exp->service_level, "express");
    assert_null(catalog_shipping_rate(c, "STD-SHIP"));

    size_t n;
    const struct shipping_rate *const *r = catalog_shipping_rates(c, "US", &n);
    assert_int_equal(n, 3);
    assert_string_equal(r[0]->id, "us-overnight");
    assert_string_equal(r[1]->id, "std-ship");
    assert_string_equal(r[2]->id, "exp-ship");
    r = catalog_shipping_rates(c, "us", &n);
    assert_int_equal(n, 3);
    r = catalog_shipping_rates(c, "DE", &n);
    assert_int_equal(n, 2);
    assert_string_equal(r[0]->id, "std-ship");
    r = catalog_shipping_rates(c, NULL, &n);
    assert_int_equal(n, 2);

    const struct discount *d = catalog_discount(c, "10off");
    assert_non_null(d);
    assert_string_equal(d->code, "10OFF");
    assert_int_equal(d->type, DISCOUNT_PERCENTAGE);
    assert_int_equal(d->value, 10);
    d = catalog_discount(c, "FiveOff");
    assert_non_null(d);
    assert_int_equal(d->type, DISCOUNT_FIXED_AMOUNT);
    assert_int_equal(d->value, 500);
    assert_non_null(catalog_discount(c, "WELCOME20"));
    assert_null(catalog_discount(c, "FREE"));
    assert_null(catalog_discount(c, NULL));
    catalog_discounts(c, &n);
    assert_int_equal(n, 3);

    const struct tax_rate *t = catalog_tax_rate(c, "US", "IL");
    assert_non_null(t);
    assert_int_equal(t->rate_bp, 625);
    assert_false(t->shipping_taxable);
    t = catalog_tax_rate(c, "us", "ny");
    assert_int_equal(t->rate_bp, 400);
    assert_true(t->shipping_taxable);
    t = catalog_tax_rate(c, "US", "ZZ");
    assert_string_equal(t->country, "*");
    assert_int_equal(t->rate_bp, 0);
    t = catalog_tax_rate(c, "DE", NULL);
    assert_string_equal(t->country, "*");
    catalog_free(c);
}

#define MINI_HEAD "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A-1\",\"name\":\"Apple\"," \
                  "\"offers\":{\"price\":\"1.00\",\"priceCurrency\":\"USD\"},"               \
                  "\"inventory\":{\"quantity\":5}}]"

static void test_shipping_country_overrides_default(void **state)
{
    (void)state;
    struct catalog *c = load_text(
        MINI_HEAD ",\"shipping_rates\":["
        "{\"id\":\"std\",\"country_code\":\"default\",\"service_level\":\"standard\",\"price\":500,\"title\":\"S\"},"
        "{\"id\":\"exp\",\"country_code\":\"default\",\"service_level\":\"express\",\"price\":1500,\"title\":\"E\"},"
        "{\"id\":\"us-std\",\"country_code\":\"US\",\"service_level\":\"standard\",\"price\":0,\"title\":\"Free US\"},"
        "{\"id\":\"ca-std\",\"country_code\":\"CA\",\"service_level\":\"standard\",\"price\":900,\"title\":\"CA\"}]}");
    size_t n;
    const struct shipping_rate *const *r = catalog_shipping_rates(c, "US", &n);
    assert_int_equal(n, 2); /* us-std replaces the default standard rate */
    assert_string_equal(r[0]->id, "us-std");
    assert_string_equal(r[1]->id, "exp");
    r = catalog_shipping_rates(c, "CA", &n);
    assert_int_equal(n, 2);
    assert_string_equal(r[0]->id, "ca-std");
    r = catalog_shipping_rates(c, "FR", &n);
    assert_int_equal(n, 2);
    assert_string_equal(r[0]->id, "std");
    catalog_free(c);
}

static void test_tax_most_specific(void **state)
{
    (void)state;
    struct catalog *c = load_text(
        MINI_HEAD ",\"tax_rates\":["
        "{\"country\":\"*\",\"region\":\"*\",\"rate_bp\":100},"
        "{\"country\":\"US\",\"region\":\"IL\",\"rate_bp\":625},"
        "{\"country\":\"US\",\"rate_bp\":500}]}");
    assert_int_equal(catalog_tax_rate(c, "US", "IL")->rate_bp, 625);
    assert_int_equal(catalog_tax_rate(c, "US", "WA")->rate_bp, 500);
    assert_int_equal(catalog_tax_rate(c, "US", NULL)->rate_bp, 500);
    assert_int_equal(catalog_tax_rate(c, "FR", "IL")->rate_bp, 100);
    catalog_free(c);
    c = load_text(MINI_HEAD "}");
    assert_null(catalog_tax_rate(c, "US", "IL")); /* no rows: no tax */
    size_t n;
    catalog_shipping_rates(c, "US", &n);
    assert_int_equal(n, 0);
    catalog_free(c);
}

static void test_schema_org_variants(void **state)
{
    (void)state;
    /* UCP's sample products.json shape: brand object, image array */
    struct catalog *c = load_text(
        "{\"currency\":\"USD\",\"products\":[{\"@type\":\"Product\",\"productID\":\"X-1\","
        "\"name\":\"X\",\"brand\":{\"@type\":\"Brand\",\"name\":\"Acme\"},"
        "\"image\":[\"https://e.com/a.jpg\",\"https://e.com/b.jpg\"],"
        "\"offers\":{\"price\":\"2\",\"priceCurrency\":\"USD\",\"availability\":\"http://schema.org/OutOfStock\"},"
        "\"inventory\":{\"quantity\":0},\"keywords\":\"foo, bar\",\"alternateName\":\"Ex\"}]}");
    const struct product *p = catalog_product(c, "X-1");
    assert_string_equal(p->brand, "Acme");
    assert_string_equal(p->image_url, "https://e.com/a.jpg");
    assert_string_equal(p->sku, "X-1"); /* sku defaults to the id */
    assert_string_equal(p->description, "");
    assert_int_equal(p->price, 200);
    assert_false(p->available);
    int rc;
    assert_string_equal(resolve_id(c, "bar", &rc), "X-1");
    assert_string_equal(resolve_id(c, "ex", &rc), "X-1");
    catalog_free(c);
}

/* ------------------------------------------------------------------ */
/* validation */

#define P_OK "{\"productID\":\"A-1\",\"name\":\"Apple\",\"offers\":{\"price\":\"1.00\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":5}}"

static void test_validation_messages(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int rc;
        const char *want;
    } cases[] = {
        { "[1,2]", AGENTD_EINVAL, "t.json: the top level must be a JSON object, not an array" },
        { "{\"currency\":\"USD\",", AGENTD_EMALFORMED, "t.json:1:" },
        { "{\"currency\":\"USD\",\"currency\":\"USD\",\"products\":[]}", AGENTD_EMALFORMED,
          "duplicate object key" },
        { "{\"products\":[]}", AGENTD_EINVAL, "t.json:1: currency: required" },
        { "{\"currency\":\"usd\",\"products\":[]}", AGENTD_EINVAL,
          "currency: \"usd\" must be an ISO 4217 code like \"USD\"" },
        { "{\"currency\":\"USD\"}", AGENTD_EINVAL, "products: required" },
        { "{\"currency\":\"USD\",\"products\":{}}", AGENTD_EINVAL,
          "products: must be an array, not an object" },
        { "{\"currency\":\"USD\",\"products\":[7]}", AGENTD_EINVAL,
          "products[0]: must be an object, not an integer" },
        { "{\"currency\":\"USD\",\"products\":[{\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].productID: required" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"a b\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].productID: \"a b\" must be 1-63 characters of A-Z a-z 0-9 . _ -" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].name: required" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].name: must not be empty" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":7,\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].name: must be a string, not an integer" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers: required" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"abc\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: must be a non-negative amount with at most 2 decimals" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1.999\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: must be a non-negative amount with at most 2 decimals" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"-1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: must be a non-negative amount" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":3.99,\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: must be a decimal string like \"3.99\", not a JSON number" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: required" },
        { "{\"currency\":\"JPY\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1.5\",\"priceCurrency\":\"JPY\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.price: must be a non-negative amount with at most 0 decimals" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"EUR\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.priceCurrency: \"EUR\" differs from the catalog currency \"USD\"" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\",\"availability\":\"Maybe\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].offers.availability: \"Maybe\" must be https://schema.org/InStock or https://schema.org/OutOfStock" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"}}]}",
          AGENTD_EINVAL, "products[0].inventory: required" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":-4}}]}",
          AGENTD_EINVAL, "products[0].inventory.quantity: must be an integer from 0 to 1000000000" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":\"9\"}}]}",
          AGENTD_EINVAL, "products[0].inventory.quantity: must be an integer, not a string" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"image\":\"ftp://x/y.jpg\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].image: \"ftp://x/y.jpg\" must be an http(s) URL" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"url\":\"/p/a\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].url: \"/p/a\" must be an http(s) URL" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"gtin\":\"12x\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].gtin: \"12x\" must be 8, 12, 13 or 14 digits" },
        { "{\"currency\":\"USD\",\"products\":[{\"productID\":\"A\",\"name\":\"A\",\"keywords\":[\"ok\",5],\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].keywords[1]: must be a string, not an integer" },
        { "{\"currency\":\"USD\",\"products\":[{\"@type\":\"Offer\",\"productID\":\"A\",\"name\":\"A\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[0].@type: must be \"Product\", not \"Offer\"" },
        { "{\"currency\":\"USD\",\"products\":[" P_OK "," P_OK "]}", AGENTD_EINVAL,
          "products[1].productID: duplicate id \"A-1\" (products[0] has it)" },
        { "{\"currency\":\"USD\",\"products\":[" P_OK ",{\"productID\":\"a-1\",\"name\":\"B\",\"offers\":{\"price\":\"1\",\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}]}",
          AGENTD_EINVAL, "products[1].productID: duplicate id \"a-1\" (products[0] has it, ignoring case)" },
        { "{\"currency\":\"USD\",\"products\":[],\"shipping_rates\":[{\"id\":\"s\",\"country_code\":\"USA\",\"service_level\":\"standard\",\"price\":1,\"title\":\"S\"}]}",
          AGENTD_EINVAL, "shipping_rates[0].country_code: \"USA\" must be \"default\" or an ISO 3166-1 alpha-2 code like \"US\"" },
        { "{\"currency\":\"USD\",\"products\":[],\"shipping_rates\":[{\"id\":\"s\",\"country_code\":\"US\",\"service_level\":\"standard\",\"price\":-1,\"title\":\"S\"}]}",
          AGENTD_EINVAL, "shipping_rates[0].price: must be an integer from 0 to" },
        { "{\"currency\":\"USD\",\"products\":[],\"shipping_rates\":[{\"id\":\"s\",\"country_code\":\"US\",\"service_level\":\"standard\",\"price\":1}]}",
          AGENTD_EINVAL, "shipping_rates[0].title: required" },
        { "{\"currency\":\"USD\",\"products\":[],\"shipping_rates\":[{\"id\":\"s\",\"country_code\":\"US\",\"service_level\":\"standard\",\"price\":1,\"title\":\"S\"},{\"id\":\"s\",\"country_code\":\"US\",\"service_level\":\"express\",\"price\":1,\"title\":\"E\"}]}",
          AGENTD_EINVAL, "shipping_rates[1].id: duplicate id \"s\" (shipping_rates[0] has it)" },
        { "{\"currency\":\"USD\",\"products\":[],\"discounts\":[{\"code\":\"X\",\"type\":\"bogo\",\"value\":1}]}",
          AGENTD_EINVAL, "discounts[0].type: \"bogo\" must be \"percentage\" or \"fixed_amount\"" },
        { "{\"currency\":\"USD\",\"products\":[],\"discounts\":[{\"code\":\"X\",\"type\":\"percentage\",\"value\":150}]}",
          AGENTD_EINVAL, "discounts[0].value: must be an integer from 1 to 100" },
        { "{\"currency\":\"USD\",\"products\":[],\"discounts\":[{\"code\":\"X\",\"type\":\"fixed_amount\",\"value\":0}]}",
          AGENTD_EINVAL, "discounts[0].value: must be an integer from 1 to" },
        { "{\"currency\":\"USD\",\"products\":[],\"discounts\":[{\"code\":\"X\",\"type\":\"percentage\",\"value\":5},{\"code\":\"x\",\"type\":\"percentage\",\"value\":5}]}",
          AGENTD_EINVAL, "discounts[1].code: duplicate code \"x\" (codes ignore case)" },
        { "{\"currency\":\"USD\",\"products\":[],\"tax_rates\":[{\"country\":\"US\",\"region\":\"IL\",\"rate_bp\":20000}]}",
          AGENTD_EINVAL, "tax_rates[0].rate_bp: must be an integer from 0 to 10000" },
        { "{\"currency\":\"USD\",\"products\":[],\"tax_rates\":[{\"country\":\"*\",\"region\":\"IL\",\"rate_bp\":1}]}",
          AGENTD_EINVAL, "tax_rates[0].region: must be \"*\" when country is \"*\"" },
        { "{\"currency\":\"USD\",\"products\":[],\"tax_rates\":[{\"country\":\"US\",\"rate_bp\":1},{\"country\":\"US\",\"region\":\"*\",\"rate_bp\":2}]}",
          AGENTD_EINVAL, "tax_rates[1]: duplicate rate for US/* (tax_rates[0] has it)" },
        { "{\"currency\":\"USD\",\"products\":[],\"tax_rates\":[{\"country\":\"US\",\"rate_bp\":1,\"shipping_taxable\":\"yes\"}]}",
          AGENTD_EINVAL, "tax_rates[0].shipping_taxable: must be true or false, not a string" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct agentd_error err;
        struct catalog *c = (struct catalog *)1;
        int rc = catalog_load_json(cases[i].json, strlen(cases[i].json), "t.json", &c, &err);
        if (rc != cases[i].rc || !strstr(err.msg, cases[i].want))
            print_error("case %zu: rc %d\n got: %s\nwant: %s\n", i, rc, err.msg, cases[i].want);
        assert_int_equal(rc, cases[i].rc);
        assert_null(c);
        assert_non_null(strstr(err.msg, cases[i].want));
    }
}

static void test_validation_lines_and_all_problems(void **state)
{
    (void)state;
    const char *json = "{\n"
                       "  \"currency\": \"USD\",\n"
                       "  \"products\": [\n"
                       "    {\"productID\": \"A\", \"name\": \"A\",\n"
                       "     \"offers\": {\"price\": \"1.00\", \"priceCurrency\": \"USD\"},\n"
                       "     \"inventory\": {\"quantity\": 1}},\n"
                       "    {\"productID\": \"B\",\n"
                       "     \"offers\": {\n"
                       "        \"price\": \"x\",\n"
                       "        \"priceCurrency\": \"USD\"},\n"
                       "     \"inventory\": {\"quantity\": 1}}\n"
                       "  ],\n"
                       "  \"discounts\": [{\"code\": \"Q\", \"type\": \"nope\", \"value\": 1}]\n"
                       "}\n";
    struct agentd_error err;
    struct catalog *c;
    assert_int_equal(catalog_load_json(json, strlen(json), "data/catalog.json", &c, &err),
                     AGENTD_EINVAL);
    /* every problem, each with the line of the field (or of its object) */
    assert_non_null(strstr(err.msg, "data/catalog.json:7: products[1].name: required"));
    assert_non_null(strstr(err.msg, "data/catalog.json:9: products[1].offers.price: must be a "
                                "non-negative amount with at most 2 decimals"));
    assert_non_null(strstr(err.msg, "data/catalog.json:13: discounts[0].type: \"nope\""));
}

static void test_validation_caps_at_20(void **state)
{
    (void)state;
    char json[16384];
    size_t n = (size_t)snprintf(json, sizeof json, "{\"currency\":\"USD\",\"products\":[");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(json + n, sizeof json - n,
                              "%s{\"productID\":\"P%d\",\"name\":\"N\",\"offers\":{\"price\":\"bad\","
                              "\"priceCurrency\":\"USD\"},\"inventory\":{\"quantity\":1}}",
                              i ? "," : "", i);
    snprintf(json + n, sizeof json - n, "]}");
    struct agentd_error err;
    struct catalog *c;
    assert_int_equal(catalog_load_json(json, strlen(json), "t.json", &c, &err),
                     AGENTD_EINVAL);
    int lines = 1;
    for (const char *p = err.msg; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, CATALOG_ERRORS_MAX + 1);
    assert_non_null(strstr(err.msg, "products[19].offers.price"));
    assert_null(strstr(err.msg, "products[20].offers.price"));
    assert_non_null(strstr(err.msg, "(10 more problems not shown)"));
    /* a list longer than the message (each line names a long source)
     * truncates but stays a C string, writing nothing past it */
    char source[400];
    memset(source, 's', sizeof source - 1);
    source[sizeof source - 1] = 0;
    struct {
        struct agentd_error e;
        char after[16];
    } big;
    memset(&big, 'X', sizeof big);
    assert_int_equal(catalog_load_json(json, strlen(json), source, &c, &big.e), AGENTD_EINVAL);
    assert_int_equal(strlen(big.e.msg), sizeof big.e.msg - 1);
    for (size_t i = 0; i < sizeof big.after; i++)
        assert_int_equal(big.after[i], 'X');
    /* and no struct at all is allowed */
    assert_int_equal(catalog_load_json(json, strlen(json), "t.json", &c, NULL), AGENTD_EINVAL);
}


/* ------------------------------------------------------------------ */
/* search and resolve */

static void search(const struct catalog *c, const struct catalog_query *q, struct catalog_hits *h)
{
    assert_int_equal(catalog_search(c, q, h), 0);
}

static int is_cookie(const struct product *p) { return strstr(p->name, "Cookies") != NULL; }

static void test_search_cookies(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    struct catalog_hits h;
    search(c, &(struct catalog_query){ .text = "cookies" }, &h);
    assert_true(h.total >= 5);
    assert_int_equal(h.terms, 1);
    for (size_t i = 0; i < 5; i++)
        assert_true(is_cookie(h.hits[i].product));
    /* deterministic: equal scores are ordered by id */
    for (size_t i = 1; i < h.n; i++)
        if (h.hits[i].score == h.hits[i - 1].score && h.hits[i].matched == h.hits[i - 1].matched)
            assert_true(strcasecmp(h.hits[i - 1].product->id, h.hits[i].product->id) < 0);
    /* singular, case, punctuation and chatter give the same list */
    static const char *const same[] = { "cookie", "COOKIES", "Cookies!!!", "show me cookies",
                                        "cookies, please" };
    for (size_t k = 0; k < sizeof same / sizeof same[0]; k++) {
        struct catalog_hits h2;
        search(c, &(struct catalog_query){ .text = same[k] }, &h2);
        assert_int_equal(h2.total, h.total);
        for (size_t i = 0; i < h.n; i++)
            assert_ptr_equal(h2.hits[i].product, h.hits[i].product);
    }
    catalog_free(c);
}

static void test_search_chocochip_first(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    static const char *const qs[] = { "chocochip cookies", "Chocochip Cookies", "chocochip",
                                      "chocolate chip cookies", "choc chip cookie",
                                      "add 2 chocochip cookies" };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        struct catalog_hits h;
        search(c, &(struct catalog_query){ .text = qs[i] }, &h);
        assert_true(h.n >= 1);
        if (strcmp(h.hits[0].product->id, "BISC-001") != 0)
            print_error("query \"%s\" ranked %s first\n", qs[i], h.hits[0].product->id);
        assert_string_equal(h.hits[0].product->id, "BISC-001");
        int rc;
        assert_string_equal(resolve_id(c, qs[i], &rc), "BISC-001");
        assert_int_equal(rc, 0);
    }
    catalog_free(c);
}

static void test_search_chips_ranks_chips(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    struct catalog_hits h;
    search(c, &(struct catalog_query){ .text = "chips" }, &h);
    assert_true(h.n >= 4);
    /* potato/tortilla chips before the chocolate chip cookies */
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(h.hits[i].product->category, "Chips & Crisps");
    search(c, &(struct catalog_query){ .text = "strawberry" }, &h);
    assert_string_equal(h.hits[0].product->id, "STRAW-001");
    search(c, &(struct catalog_query){ .text = "berries" }, &h);
    assert_int_equal(h.total, 2);
    search(c, &(struct catalog_query){ .text = "xyzzy" }, &h);
    assert_int_equal(h.total, 0);
    assert_int_equal(h.n, 0);
    /* partial matches rank below products matching every term */
    search(c, &(struct catalog_query){ .text = "oat cookies" }, &h);
    assert_string_equal(h.hits[0].product->id, "O-COOKIES-001");
    assert_int_equal(h.hits[0].matched, 2);
    assert_true(h.hits[h.n - 1].matched < 2);
    catalog_free(c);
}

/* A term scores by the one field it is in, exact or as a word's prefix:
 * the joined fields' quick check never hides a field's match. */
static void test_search_each_field(void **state)
{
    (void)state;
    const char *json =
        "{\"currency\":\"USD\",\"products\":[{\"productID\":\"Z-1\",\"name\":\"Zephyr Kettle\","
        "\"keywords\":[\"quokka\"],\"category\":\"Lumens\",\"brand\":\"Brandix\","
        "\"description\":\"glazed obsidian\",\"offers\":{\"price\":\"1.00\",\"priceCurrency\":\"USD\","
        "\"availability\":\"https://schema.org/InStock\"},\"inventory\":{\"quantity\":1}}]}";
    struct catalog *c = NULL;
    struct agentd_error e = { 0 };
    if (catalog_load_json(json, strlen(json), "t.json", &c, &e) != 0)
        fail_msg("%s", e.msg);
    static const struct {
        const char *q;
        int score;
    } want[] = { { "zephyr", 30 }, { "quokka", 25 }, { "lumens", 15 }, { "brandix", 10 },
                 { "obsidian", 5 }, { "zep", 12 }, { "quo", 10 }, { "lum", 6 },
                 { "bra", 4 },      { "obs", 2 },  { "ob", 0 },   { "idian", 0 } };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct catalog_hits h;
        search(c, &(struct catalog_query){ .text = want[i].q }, &h);
        assert_int_equal(h.n, want[i].score ? 1 : 0);
        if (h.n && h.hits[0].score != want[i].score)
            fail_msg("query %s scored %d, not %d", want[i].q, h.hits[0].score, want[i].score);
    }
    catalog_free(c);
}

static void test_resolve(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    static const struct {
        const char *text;
        int rc;
        const char *id;
    } cases[] = {
        { "BISC-001", 0, "BISC-001" },
        { "bisc-001", 0, "BISC-001" },
        { "  BISC-001. ", 0, "BISC-001" },
        { "2 BISC-001", 0, "BISC-001" },
        { "o-cookies-001", 0, "O-COOKIES-001" },
        { "strawberries", 0, "STRAW-001" },
        { "oat cookies", 0, "O-COOKIES-001" },
        { "sweet potato chips", 0, "SW-CHIPS-001" },
        { "nutri-bar", 0, "NUTRIBAR-001" },
        { "nutribar", 0, "NUTRIBAR-001" },
        { "snickerdoodles", 0, "COOKIE-SNICK-001" },
        { "cookies", AGENTD_ECONFLICT, NULL },
        { "potato chips", AGENTD_ECONFLICT, NULL },
        { "chocolate", AGENTD_ECONFLICT, NULL },
        { "chocolate milk", AGENTD_ENOTFOUND, NULL },
        { "xyzzy", AGENTD_ENOTFOUND, NULL },
        { "2", AGENTD_ENOTFOUND, NULL },
        { "please", AGENTD_ENOTFOUND, NULL },
        { "", AGENTD_ENOTFOUND, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        const char *id = resolve_id(c, cases[i].text, &rc);
        if (rc != cases[i].rc)
            print_error("resolve \"%s\": rc %d id %s\n", cases[i].text, rc, id ? id : "-");
        assert_int_equal(rc, cases[i].rc);
        if (cases[i].id)
            assert_string_equal(id, cases[i].id);
        else
            assert_null(id);
    }
    const struct product *p;
    assert_int_equal(catalog_resolve(c, NULL, &p), AGENTD_EINVAL);
    catalog_free(c);
}

static int64_t live_stock(void *ud, const char *id)
{
    (*(int *)ud)++;
    if (strcmp(id, "BISC-001") == 0)
        return 0;
    if (strcmp(id, "PIE-001") == 0)
        return 5;
    return -1; /* unknown: use the catalog */
}

static void test_search_filters(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    struct catalog_hits h;
    search(c, &(struct catalog_query){ .category = "dairy & EGGS", .limit = 50 }, &h);
    assert_int_equal(h.total, 5);
    for (size_t i = 0; i < h.n; i++)
        assert_string_equal(h.hits[i].product->category, "Dairy & Eggs");
    search(c, &(struct catalog_query){ .category = "Dairy", .limit = 50 }, &h);
    assert_int_equal(h.total, 0); /* exact category, not a prefix */

    search(c, &(struct catalog_query){ .max_price = 300, .limit = 50 }, &h);
    assert_true(h.total > 0);
    for (size_t i = 0; i < h.n; i++)
        assert_true(h.hits[i].product->price <= 300);
    search(c, &(struct catalog_query){ .text = "cookies", .max_price = 450 }, &h);
    for (size_t i = 0; i < h.n; i++)
        assert_true(h.hits[i].product->price <= 450);

    size_t n;
    catalog_products(c, &n);
    search(c, &(struct catalog_query){ .in_stock_only = 1, .limit = 50 }, &h);
    assert_int_equal(h.total, n - 1); /* the sold-out pie */
    for (size_t i = 0; i < h.n; i++)
        assert_string_not_equal(h.hits[i].product->id, "PIE-001");

    /* live stock overrides the catalog: cookies sold out, pie restocked
     * (but still not offered, its availability is OutOfStock) */
    int calls = 0;
    search(c,
           &(struct catalog_query){ .in_stock_only = 1, .stock = live_stock, .stock_ud = &calls,
                                    .limit = 50 },
           &h);
    assert_true(calls > 0);
    assert_int_equal(h.total, n - 2);
    for (size_t i = 0; i < h.n; i++) {
        assert_string_not_equal(h.hits[i].product->id, "BISC-001");
        assert_string_not_equal(h.hits[i].product->id, "PIE-001");
    }
    /* filters combine with text */
    search(c, &(struct catalog_query){ .text = "cookies", .category = "Cookies & Biscuits",
                                       .max_price = 500 },
           &h);
    for (size_t i = 0; i < h.n; i++) {
        assert_true(h.hits[i].product->price <= 500);
        assert_string_equal(h.hits[i].product->category, "Cookies & Biscuits");
    }
    assert_int_equal(catalog_search(NULL, &(struct catalog_query){ 0 }, &h), AGENTD_EINVAL);
    catalog_free(c);
}

static void test_search_pagination(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    size_t n;
    const struct product *all = catalog_products(c, &n);
    struct catalog_hits h;
    search(c, &(struct catalog_query){ 0 }, &h);
    assert_int_equal(h.total, n);
    assert_int_equal(h.n, CATALOG_SEARCH_DEFAULT);
    search(c, &(struct catalog_query){ .limit = 1000 }, &h);
    assert_int_equal(h.n, n < CATALOG_SEARCH_MAX ? n : CATALOG_SEARCH_MAX);
    /* pages of 7 concatenate to the full list, in id order */
    size_t seen = 0;
    for (size_t off = 0; off < n + 7; off += 7) {
        search(c, &(struct catalog_query){ .offset = off, .limit = 7 }, &h);
        assert_int_equal(h.total, n);
        for (size_t i = 0; i < h.n; i++)
            assert_ptr_equal(h.hits[i].product, &all[seen++]);
    }
    assert_int_equal(seen, n);
    search(c, &(struct catalog_query){ .text = "cookies", .offset = 1000 }, &h);
    assert_int_equal(h.n, 0);
    assert_true(h.total >= 5);
    catalog_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_parse),
        cmocka_unit_test(test_money_format),
        cmocka_unit_test(test_money_currency),
        cmocka_unit_test(test_demo_loads),
        cmocka_unit_test(test_demo_lookups),
        cmocka_unit_test(test_shipping_country_overrides_default),
        cmocka_unit_test(test_tax_most_specific),
        cmocka_unit_test(test_schema_org_variants),
        cmocka_unit_test(test_validation_messages),
        cmocka_unit_test(test_validation_lines_and_all_problems),
        cmocka_unit_test(test_validation_caps_at_20),
        cmocka_unit_test(test_search_cookies),
        cmocka_unit_test(test_search_chocochip_first),
        cmocka_unit_test(test_search_chips_ranks_chips),
        cmocka_unit_test(test_search_each_field),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_search_filters),
        cmocka_unit_test(test_search_pagination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
