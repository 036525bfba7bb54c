/* catalog I/O (src/shop/): reading catalog files, the live catalog slot
 * and reload, and the CSV import of UCP sample-merchant files. */
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
#include "shop/catalog_slot.h"
#include "core/err.h"

#include "catalog_fixture.h"

/* ------------------------------------------------------------------ */
/* files */

static void test_load_file_errors(void **state)
{
    (void)state;
    struct agentd_error err;
    struct catalog *c;
    assert_int_equal(catalog_load_file("/nonexistent/catalog.json", &c, &err),
                     AGENTD_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(err.msg, "/nonexistent/catalog.json: No such file"));
    assert_int_equal(catalog_load_file("/tmp", &c, &err), AGENTD_EIO);
    assert_non_null(strstr(err.msg, "/tmp: not a regular file"));
    assert_int_equal(catalog_load_file(NULL, &c, &err), AGENTD_EINVAL);
}

/* ------------------------------------------------------------------ */
/* ownership and the live slot */

static void test_refcount_and_slot(void **state)
{
    (void)state;
    struct catalog *c = load_demo();
    assert_ptr_equal(catalog_ref(c), c);
    const struct product *p = catalog_product(c, "BISC-001");
    catalog_unref(c); /* one reference left: still usable */
    assert_string_equal(p->id, "BISC-001");

    struct catalog_slot slot;
    catalog_slot_init(&slot, c); /* the slot owns the load reference */
    struct catalog *held = catalog_slot_get(&slot);
    assert_ptr_equal(held, c);

    struct catalog *next = load_demo();
    catalog_slot_set(&slot, next);
    /* a request that started on the old catalog finishes on it */
    assert_string_equal(catalog_product(held, "BISC-001")->name, "Chocolate Chip Cookies");
    catalog_unref(held); /* frees the old catalog */
    struct catalog *now = catalog_slot_get(&slot);
    assert_ptr_equal(now, next);
    catalog_unref(now);
    catalog_slot_destroy(&slot);
    catalog_unref(NULL);
    catalog_free(NULL);

    struct catalog_slot empty;
    catalog_slot_init(&empty, NULL);
    assert_null(catalog_slot_get(&empty));
    catalog_slot_destroy(&empty);
}

/* ------------------------------------------------------------------ */
/* CSV import */

struct tmpdir {
    char path[64];
};

static void tmp_make(struct tmpdir *t)
{
    snprintf(t->path, sizeof t->path, "/tmp/agentd-catalog-XXXXXX");
    assert_non_null(mkdtemp(t->path));
}

static void tmp_write(struct tmpdir *t, const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", t->path, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static void tmp_remove(struct tmpdir *t)
{
    static const char *const names[] = { "products.csv", "inventory.csv", "shipping_rates.csv",
                                         "discounts.csv", "promotions.csv", "customers.csv",
                                         "addresses.csv" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", t->path, names[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(t->path), 0);
}

static void test_csv_import_roundtrip(void **state)
{
    (void)state;
    struct tmpdir t;
    tmp_make(&t);
    /* BOM, CRLF, quoted commas, doubled quotes, an embedded newline, an
     * extra column, columns in another order, a blank line */
    tmp_write(&t, "products.csv",
              "\xEF\xBB\xBFid,title,color,price,image_url\r\n"
              "CK-1,\"Cookies, \"\"Best\"\" Ever\",brown,399,https://e.com/ck.jpg\r\n"
              "MILK-1,Whole Milk,white,250,\r\n"
              "\r\n"
              "NOTE-1,\"Two\r\nlines\",red,5,\r\n");
    tmp_write(&t, "inventory.csv", "quantity,product_id\n12,CK-1\n0,MILK-1\n");
    tmp_write(&t, "shipping_rates.csv",
              "id,country_code,service_level,price,title\n"
              "std-ship,default,standard,500,Standard\n"
              "exp-ship,default,express,1500,Express\n"
              "us-2day,us,express,900,\"2-day, US\"\n");
    tmp_write(&t, "discounts.csv",
              "code,type,value,description\n"
              "10OFF,percentage,10,10% off\n"
              "FIVEOFF,fixed_amount,500,\"$5 off, any order\"\n");
    /* promotions: the sample's JSON-ish list, a quoted one, a bare list,
     * an empty one; customers and their saved addresses */
    tmp_write(&t, "promotions.csv",
              "id,type,min_subtotal,eligible_item_ids,description\n"
              "p1,free_shipping,10000,,Free over $100\n"
              "p2,free_shipping,,[\"CK-1\"],Free with cookies\n"
              "p3,free_shipping,,\"[\"\"MILK-1\"\", \"\"NOTE-1\"\"]\",Two\n"
              "p4,free_shipping,,CK-1 MILK-1,Bare\n");
    tmp_write(&t, "customers.csv", "id,name,email\nc1,John Doe,john@example.com\n");
    tmp_write(&t, "addresses.csv",
              "id,customer_id,street_address,city,state,postal_code,country\n"
              "a1,c1,123 Main St,Springfield,IL,62704,us\n");
    struct agentd_error err;
    char *json = NULL;
    int rc = catalog_import_csv_dir(t.path, &json, &err);
    if (rc)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(json);

    struct catalog *c = load_text(json);
    size_t n;
    catalog_products(c, &n);
    assert_int_equal(n, 3);
    const struct product *p = catalog_product(c, "CK-1");
    assert_string_equal(p->name, "Cookies, \"Best\" Ever");
    assert_int_equal(p->price, 399);
    assert_int_equal(p->stock, 12);
    assert_true(p->available);
    assert_string_equal(p->image_url, "https://e.com/ck.jpg");
    assert_string_equal(p->description, "");
    p = catalog_product(c, "MILK-1");
    assert_int_equal(p->stock, 0);
    assert_false(p->available);
    assert_string_equal(p->image_url, "");
    p = catalog_product(c, "NOTE-1"); /* no inventory row: none in stock */
    assert_string_equal(p->name, "Two\r\nlines");
    assert_int_equal(p->stock, 0);
    assert_string_equal(catalog_currency(c), "USD");
    const struct shipping_rate *const *r = catalog_shipping_rates(c, "US", &n);
    assert_int_equal(n, 2);
    assert_string_equal(r[0]->id, "us-2day");
    assert_string_equal(r[0]->country, "US");
    assert_string_equal(r[0]->title, "2-day, US");
    assert_string_equal(r[1]->id, "std-ship");
    assert_string_equal(catalog_shipping_rate(c, "std-ship")->country, "*");
    const struct discount *d = catalog_discount(c, "fiveoff");
    assert_int_equal(d->type, DISCOUNT_FIXED_AMOUNT);
    assert_int_equal(d->value, 500);
    assert_string_equal(d->description, "$5 off, any order");
    const struct promotion *pr = catalog_promotions(c, &n);
    assert_int_equal(n, 4);
    assert_int_equal(pr[0].min_subtotal, 10000);
    assert_int_equal(pr[0].n_eligible, 0);
    assert_int_equal(pr[1].n_eligible, 1);
    assert_string_equal(pr[1].eligible[0], "CK-1");
    assert_int_equal(pr[2].n_eligible, 2);
    assert_string_equal(pr[2].eligible[1], "NOTE-1");
    assert_int_equal(pr[3].n_eligible, 2);
    assert_string_equal(pr[3].eligible[1], "MILK-1");
    assert_string_equal(pr[1].description, "Free with cookies");
    const struct customer *cu = catalog_customer_by_email(c, "JOHN@example.com");
    assert_non_null(cu);
    assert_string_equal(cu->id, "c1");
    assert_null(catalog_customer_by_email(c, "nobody@example.com"));
    const struct saved_address *sa[4];
    assert_int_equal(catalog_customer_addresses(c, "c1", sa, 4), 1);
    assert_string_equal(sa[0]->street_address, "123 Main St");
    assert_string_equal(sa[0]->country, "US");
    assert_int_equal(catalog_customer_addresses(c, "c2", sa, 4), 0);
    int rrc;
    assert_string_equal(resolve_id(c, "best cookies", &rrc), "CK-1");
    catalog_free(c);
    free(json);
    tmp_remove(&t);
}

static void test_csv_missing_files(void **state)
{
    (void)state;
    struct tmpdir t;
    tmp_make(&t);
    struct agentd_error err;
    char *json = (char *)1;
    assert_int_equal(catalog_import_csv_dir(t.path, &json, &err), AGENTD_ENOTFOUND);
    assert_null(json);
    assert_non_null(strstr(err.msg, "none of products.csv"));

    tmp_write(&t, "discounts.csv", "code,type,value\nX,percentage,5\n");
    assert_int_equal(catalog_import_csv_dir(t.path, &json, &err), 0);
    struct catalog *c = load_text(json);
    size_t n;
    catalog_products(c, &n);
    assert_int_equal(n, 0);
    catalog_shipping_rates(c, "US", &n);
    assert_int_equal(n, 0);
    assert_string_equal(catalog_discount(c, "x")->description, "");
    catalog_free(c);
    free(json);
    tmp_remove(&t);

    assert_int_equal(catalog_import_csv_dir("/nonexistent-dir", &json, &err),
                     AGENTD_ENOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent-dir: No such file"));
    assert_int_equal(catalog_import_csv_dir("/etc/hostname", &json, &err),
                     AGENTD_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not a directory"));
}

static void test_csv_errors(void **state)
{
    (void)state;
    static const char *const P = "id,title,price,image_url\nA,Apple,100,\n";
    static const struct {
        const char *file, *text;
        const char *want;
    } cases[] = {
        { "products.csv", "id,title,price,image_url\nA,Apple,100,\nB,Pear,abc,\n",
          "products.csv:3: price: \"abc\" is not an integer" },
        { "products.csv", "id,title,price\nA,Apple,-5\n",
          "products.csv:2: price: \"-5\" must not be negative" },
        { "products.csv", "id,title,price\nA,Apple,99999999999999999999\n",
          "products.csv:2: price: \"99999999999999999999\" must be from 0 to 100000000000000" },
        { "products.csv", "id,title,image_url\nA,Apple,\n",
          "products.csv:1: missing column \"price\"" },
        { "products.csv", "id,title,price,ID\nA,Apple,1,A\n",
          "products.csv:1: column \"id\" appears twice" },
        { "products.csv", "id,title,price\nA,Apple,1\nB,Pear,2\nA,Again,3\n",
          "products.csv:4: id: duplicate \"A\" (first on line 2)" },
        { "products.csv", "id,title,price\nA,Apple,1\na,Again,3\n",
          "products.csv:3: id: duplicate \"a\" (first on line 2, ignoring case)" },
        { "products.csv", "id,title,price\nA,,1\n", "products.csv:2: title: must not be empty" },
        { "products.csv", "id,title,price\n,Apple,1\n", "products.csv:2: id: must not be empty" },
        { "products.csv", "id,title,price\na b,Apple,1\n",
          "products.csv:2: id: \"a b\" must be 1-63 characters" },
        { "products.csv", "id,title,price\nA,Apple, large,1\n",
          "products.csv:2: 4 fields, but the header has 3 (quote values that contain commas)" },
        { "products.csv", "id,title,price\nA,Apple\n",
          "products.csv:2: 2 fields, but the header has 3" },
        { "products.csv", "id,title,price\nA,\"Apple,1\n",
          "products.csv:2: a quoted field is never closed" },
        { "products.csv", "id,title,price\nA,\"Apple\"x,1\n",
          "products.csv:2: unexpected text after a closing quote" },
        { "products.csv", "id,title,price,image_url\nA,Apple,1,ftp://x\n",
          "products.csv:2: image_url: \"ftp://x\" must be an http(s) URL" },
        { "products.csv", "id,title,price\nA,\"multi\nline\ntitle\",1\nB,Pear,zz\n",
          "products.csv:5: price: \"zz\" is not an integer" },
        { "products.csv", "id,title,price\r\nA,\"multi\r\nline\",1\r\nB,Pear,zz\r\n",
          "products.csv:4: price: \"zz\" is not an integer" },
        { "products.csv", "id,title,price\nA,Bad \xff\xfe,1\n",
          "products.csv:2: title: is not valid UTF-8 text" },
        { "inventory.csv", "product_id,quantity\nZZZ,4\n",
          "inventory.csv:2: product_id: \"ZZZ\" is not in products.csv" },
        { "inventory.csv", "product_id,quantity\nA,-3\n",
          "inventory.csv:2: quantity: \"-3\" must not be negative" },
        { "inventory.csv", "product_id,quantity\nA,1\nA,2\n",
          "inventory.csv:3: product_id: \"A\" appears twice" },
        { "inventory.csv", "product_id\nA\n", "inventory.csv:1: missing column \"quantity\"" },
        { "shipping_rates.csv", "id,country_code,service_level,price,title\ns,USA,standard,1,S\n",
          "shipping_rates.csv:2: country_code: \"USA\" must be \"default\" or a two-letter country code like \"US\"" },
        { "shipping_rates.csv", "id,country_code,service_level,price,title\ns,US,standard,1.5,S\n",
          "shipping_rates.csv:2: price: \"1.5\" is not an integer" },
        { "shipping_rates.csv", "id,country_code,service_level,price,title\ns,US,,1,S\n",
          "shipping_rates.csv:2: service_level: must not be empty" },
        { "shipping_rates.csv",
          "id,country_code,service_level,price,title\ns,US,standard,1,S\ns,US,express,2,E\n",
          "shipping_rates.csv:3: id: duplicate \"s\" (first on line 2)" },
        { "discounts.csv", "code,type,value,description\nX,bogo,1,d\n",
          "discounts.csv:2: type: \"bogo\" must be percentage or fixed_amount" },
        { "discounts.csv", "code,type,value,description\nX,percentage,150,d\n",
          "discounts.csv:2: value: \"150\" must be from 1 to 100" },
        { "discounts.csv", "code,type,value,description\nX,fixed_amount,0,d\n",
          "discounts.csv:2: value: \"0\" must be from 1 to" },
        { "discounts.csv", "code,type,value\nX,percentage,5\nx,percentage,6\n",
          "discounts.csv:3: code: duplicate \"x\" (first on line 2; codes ignore case)" },
        { "discounts.csv", "code,type,value\nX,percentage,\n",
          "discounts.csv:2: value: \"\" is not an integer" },
        { "promotions.csv", "id,type,min_subtotal,eligible_item_ids\np,bogo,,\n",
          "promotions.csv:2: type: \"bogo\" must be free_shipping" },
        { "promotions.csv", "id,type,min_subtotal,eligible_item_ids\np,free_shipping,ten,\n",
          "promotions.csv:2: min_subtotal: \"ten\" is not an integer" },
        { "promotions.csv", "id,type,min_subtotal,eligible_item_ids\np,free_shipping,,[1]\n",
          "promotions.csv:2: eligible_item_ids: \"[1]\" must be a list of product ids" },
        { "customers.csv", "id,name,email\nc1,Jo,\n", "customers.csv:2: email: must not be empty" },
        { "addresses.csv", "id,customer_id,street_address,city,state,postal_code,country\n"
                           "a1,c1,1 Main,X,IL,1,USA\n",
          "addresses.csv:2: country: \"USA\" must be a two-letter country code" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tmpdir t;
        tmp_make(&t);
        if (strcmp(cases[i].file, "products.csv") != 0)
            tmp_write(&t, "products.csv", P);
        tmp_write(&t, cases[i].file, cases[i].text);
        struct agentd_error err;
        char *json = (char *)1;
        int rc = catalog_import_csv_dir(t.path, &json, &err);
        if (rc != AGENTD_EINVAL || !strstr(err.msg, cases[i].want))
            print_error("case %zu: rc %d\n got: %s\nwant: %s\n", i, rc, err.msg, cases[i].want);
        assert_int_equal(rc, AGENTD_EINVAL);
        assert_null(json);
        assert_non_null(strstr(err.msg, cases[i].want));
        tmp_remove(&t);
        /* the in-memory import (the fuzzer's entry) says exactly the same,
         * the label standing for the directory */
        static const char *const names[CATALOG_CSV_FILES] = {
            "products.csv", "inventory.csv", "shipping_rates.csv", "discounts.csv",
            "promotions.csv", "customers.csv", "addresses.csv"
        };
        const char *texts[CATALOG_CSV_FILES] = { 0 };
        size_t lens[CATALOG_CSV_FILES] = { 0 };
        for (int k = 0; k < CATALOG_CSV_FILES; k++) {
            if (strcmp(cases[i].file, names[k]) == 0)
                texts[k] = cases[i].text;
            else if (k == 0)
                texts[k] = P;
            lens[k] = texts[k] ? strlen(texts[k]) : 0;
        }
        struct agentd_error err2;
        char want2[sizeof err.msg + 8];
        const char *tpath = strstr(err.msg, t.path) == err.msg ? err.msg + strlen(t.path) : NULL;
        json = (char *)1;
        assert_int_equal(catalog_import_csv_mem("mem", texts, lens, &json, &err2),
                         AGENTD_EINVAL);
        assert_null(json);
        snprintf(want2, sizeof want2, "%s", err.msg);
        if (tpath) /* a problem about the whole import names its source first */
            snprintf(want2, sizeof want2, "mem%s", tpath);
        assert_string_equal(err2.msg, want2);
    }
}

static void test_csv_reports_all_problems(void **state)
{
    (void)state;
    struct tmpdir t;
    tmp_make(&t);
    tmp_write(&t, "products.csv", "id,title,price\nA,,x\nB,Pear,2\n");
    tmp_write(&t, "inventory.csv", "product_id,quantity\nB,lots\n");
    tmp_write(&t, "discounts.csv", "code,type,value\nQ,half,1\n");
    struct agentd_error err;
    char *json;
    assert_int_equal(catalog_import_csv_dir(t.path, &json, &err), AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "products.csv:2: title: must not be empty"));
    assert_non_null(strstr(err.msg, "products.csv:2: price: \"x\" is not an integer"));
    assert_non_null(strstr(err.msg, "inventory.csv:2: quantity: \"lots\" is not an integer"));
    assert_non_null(strstr(err.msg, "discounts.csv:2: type: \"half\""));
    tmp_remove(&t);

    /* more than the cap: listed up to it, then counted */
    tmp_make(&t);
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "id,title,price\n");
    for (int i = 0; i < 25; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "P%d,T,bad\n", i);
    tmp_write(&t, "products.csv", big);
    assert_int_equal(catalog_import_csv_dir(t.path, &json, &err), AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "(5 more problems not shown)"));
    tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_refcount_and_slot),
        cmocka_unit_test(test_csv_import_roundtrip),
        cmocka_unit_test(test_csv_missing_files),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_reports_all_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
