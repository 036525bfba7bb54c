/* Payment data at rest: a checkout's instrument token is sealed in the store,
 * opens on load, is dropped on completion, survives a key rotation, and a key
 * lost leaves the checkout readable without it (shop/sealed_doc.h). */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commerce/checkout.h"
#include "commerce/payment.h"
#include "core/err.h"
#include "core/seal.h"
#include "shop/addresses.h"
#include "shop/merchant.h"
#include "shop/sealed_doc.h"
#include "shop/shop_internal.h"
#include "shop/shop.h"
#include "store/store.h"

#define assert_ok(x) assert_int_equal((x), 0)
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA="
#define TOKEN "tok_at_rest_SECRET_7781"

struct ctx {
    char dir[256];
    struct store *st;
    struct merchant *m;
    struct shop *sh;
    struct seal_keyring *kr;
};

static struct seal_keyring *ring(const char *cur, const char *old)
{
    struct seal_keyring *kr = NULL;
    assert_ok(seal_keyring_new(cur, old, &kr, NULL));
    return kr;
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-seal-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s/agentd.db", c->dir);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    struct agentd_error err = { 0 };
    if (store_open(&o, &c->st, &err) != 0)
        return -1;
    c->m = merchant_new(c->st, NULL);
    if (!c->m || merchant_load(c->m, &err) != 0)
        return -1;
    c->sh = shop_new(c->st, c->m, "http://127.0.0.1:8080");
    c->kr = ring(KEY_A, NULL);
    shop_set_keyring(c->sh, c->kr);
    *state = c;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    shop_free(c->sh);
    merchant_free(c->m);
    store_close(c->st);
    seal_keyring_free(c->kr);
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

/* A create (or full update) body: buyer name and the instrument's token. */
static json_t *req_with(const char *name, const char *token)
{
    json_t *req = json_pack(
        "{s:[{s:{s:s}, s:I}], s:{s:s, s:s}, s:{s:[{s:s, s:[{s:s, s:s, s:s, s:s, s:s}],"
        " s:[{s:s}]}]}, s:{s:[{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}], s:s}}",
        "line_items", "item", "id", "BISC-001", "quantity", (json_int_t)1, "buyer", "full_name",
        name, "email", "jane@example.com", "fulfillment", "methods", "type", "shipping",
        "destinations", "id", "dest_1", "street_address", "1 Main St", "address_locality",
        "Springfield", "address_region", "IL", "address_country", "US", "groups",
        "selected_option_id", "std-ship", "payment", "instruments", "id", "instr_1",
        "handler_id", PAYMENT_MOCK_HANDLER_ID, "type", "card", "brand", "visa", "last_digits",
        "4242", "credential", "type", "token", "token", token, "selected_instrument_id",
        "instr_1");
    assert_non_null(req);
    return req;
}

/* A ready checkout whose instrument carries TOKEN. */
static char *checkout_with_token(struct ctx *c)
{
    json_t *req = req_with("Jane Doe", TOKEN);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    int rc = shop_checkout_create(c->sh, "alice", req, NULL, &co, NULL, &e);
    if (rc)
        fail_msg("create: %d %s: %s", rc, e.code, e.msg);
    json_decref(req);
    char *id = strdup(co->id);
    checkout_free(co);
    return id;
}

static char *stored_doc(struct ctx *c, const char *id)
{
    struct store_checkout *row = NULL;
    assert_ok(store_checkout_get(c->st, id, &row));
    char *d = strdup(row->document);
    store_checkout_free(row);
    return d;
}

static const char *token_of(const struct checkout *co)
{
    return co->payment.n_instruments ? co->payment.instruments[0].token : NULL;
}

static void test_token_sealed_in_store(void **state)
{
    struct ctx *c = *state;
    char *id = checkout_with_token(c);
    char *doc = stored_doc(c, id);
    assert_null(strstr(doc, TOKEN));
    assert_non_null(strstr(doc, "payment_sealed"));
    assert_non_null(strstr(doc, "4242")); /* brand and last digits stay readable */
    struct checkout *co = NULL;
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, NULL));
    assert_non_null(token_of(co));
    assert_string_equal(token_of(co), TOKEN);
    checkout_free(co);
    free(doc);
    free(id);
}

static void test_completion_drops_the_credential(void **state)
{
    struct ctx *c = *state;
    char *id = checkout_with_token(c);
    json_t *pd = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "id", "instr_1", "handler_id",
                           PAYMENT_MOCK_HANDLER_ID, "type", "card", "credential", "type",
                           "token", "token", PAYMENT_MOCK_TOKEN_SUCCESS);
    struct checkout *co = NULL;
    struct order *o = NULL;
    int declined = 0;
    struct agentd_error e = { 0 };
    int rc = shop_checkout_complete(c->sh, "alice", id, NULL, pd, &co, &o, &declined, NULL, &e);
    if (rc)
        fail_msg("complete: %d %s: %s", rc, e.code, e.msg);
    assert_null(token_of(co));
    assert_null(co->payment.instruments[0].credential_type);
    assert_string_equal(co->payment.instruments[0].last_digits, "4242");
    assert_string_equal(co->payment.instruments[0].brand, "visa");
    char *doc = stored_doc(c, id);
    assert_null(strstr(doc, TOKEN));
    assert_null(strstr(doc, "payment_sealed"));
    assert_null(strstr(doc, "credential"));
    assert_non_null(strstr(doc, "4242"));
    free(doc);
    checkout_free(co);
    order_free(o);
    json_decref(pd);
    free(id);
}

/* The stored document's payment_sealed member (malloc'd). */
static char *sealed_of(struct ctx *c, const char *id)
{
    char *doc = stored_doc(c, id);
    json_t *j = json_loads(doc, 0, NULL);
    const char *s =
        json_string_value(json_object_get(json_object_get(j, "_agentd"), "payment_sealed"));
    assert_non_null(s);
    char *out = strdup(s);
    json_decref(j);
    free(doc);
    return out;
}

static void update_to(struct ctx *c, const char *id, const char *name, const char *token)
{
    json_t *req = req_with(name, token);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    int rc = shop_checkout_update(c->sh, "alice", id, req, -1, &co, &e);
    if (rc)
        fail_msg("update: %d %s: %s", rc, e.code, e.msg);
    assert_string_equal(token_of(co), token);
    checkout_free(co);
    json_decref(req);
}

/* A save that leaves the instruments as they were stores the ciphertext it
 * stored before (no second seal); a changed instrument, or a key rotation,
 * seals afresh; every version opens to its own token. */
static void test_sealed_text_reused_while_unchanged(void **state)
{
    struct ctx *c = *state;
    char *id = checkout_with_token(c);
    char *s1 = sealed_of(c, id);
    update_to(c, id, "Jane Q Doe", TOKEN);
    char *s2 = sealed_of(c, id);
    assert_string_equal(s1, s2);
    update_to(c, id, "Jane Q Doe", "tok_other_2");
    char *s3 = sealed_of(c, id);
    assert_string_not_equal(s3, s2);
    struct checkout *co = NULL;
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, NULL));
    assert_string_equal(token_of(co), "tok_other_2");
    checkout_free(co);
    /* the same instruments under a new current key: sealed again, under it */
    struct seal_keyring *kr = ring(KEY_B, KEY_A);
    shop_set_keyring(c->sh, kr);
    update_to(c, id, "Jane R Doe", "tok_other_2");
    char *s4 = sealed_of(c, id);
    assert_string_not_equal(s4, s3);
    assert_true(seal_is_current(kr, s4));
    assert_false(seal_is_current(kr, s3));
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, NULL));
    assert_string_equal(token_of(co), "tok_other_2");
    checkout_free(co);
    shop_set_keyring(c->sh, c->kr);
    seal_keyring_free(kr);
    free(s1);
    free(s2);
    free(s3);
    free(s4);
    free(id);
}

static void test_rotation_and_lost_key(void **state)
{
    struct ctx *c = *state;
    char *id = checkout_with_token(c);
    char *before = stored_doc(c, id);
    /* rotate: B is current, A kept for reading */
    struct seal_keyring *kr = ring(KEY_B, KEY_A);
    struct sealed_rotation r;
    assert_ok(sealed_rotate_all(c->st, kr, &r, NULL));
    assert_int_equal(r.scanned, 1);
    assert_int_equal(r.resealed, 1);
    assert_ok(sealed_rotate_all(c->st, kr, &r, NULL)); /* idempotent */
    assert_int_equal(r.current, 1);
    assert_int_equal(r.resealed, 0);
    char *after = stored_doc(c, id);
    assert_string_not_equal(before, after);
    assert_null(strstr(after, TOKEN));
    /* A is no longer needed */
    struct seal_keyring *only_b = ring(KEY_B, NULL);
    shop_set_keyring(c->sh, only_b);
    struct checkout *co = NULL;
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, NULL));
    assert_string_equal(token_of(co), TOKEN);
    checkout_free(co);
    /* a ring without the key (an ephemeral key of a process gone): the
     * checkout still reads, without the stored credential */
    shop_set_keyring(c->sh, c->kr);
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, NULL));
    assert_null(token_of(co));
    assert_string_equal(co->payment.instruments[0].last_digits, "4242");
    checkout_free(co);
    assert_ok(sealed_rotate_all(c->st, c->kr, &r, NULL));
    assert_int_equal(r.unreadable, 1);
    seal_keyring_free(kr);
    seal_keyring_free(only_b);
    free(before);
    free(after);
    free(id);
}

static void test_plain_rows_sealed_by_rotation(void **state)
{
    struct ctx *c = *state;
    char *id = checkout_with_token(c);
    /* a row written before sealing: the token in plain text */
    struct store_checkout *row = NULL;
    assert_ok(store_checkout_get(c->st, id, &row));
    json_t *doc = json_loads(row->document, 0, NULL);
    assert_ok(sealed_doc_open(c->kr, id, doc, NULL));
    char *plain = json_dumps(doc, JSON_COMPACT);
    assert_non_null(strstr(plain, TOKEN));
    assert_ok(store_checkout_update(c->st, id, row->version, row->status, plain));
    struct sealed_rotation r;
    assert_ok(sealed_rotate_all(c->st, c->kr, &r, NULL));
    assert_int_equal(r.sealed, 1);
    char *now = stored_doc(c, id);
    assert_null(strstr(now, TOKEN));
    /* the AAD binds the sealed part to its checkout */
    json_t *moved = json_loads(now, 0, NULL);
    struct agentd_error e = { 0 };
    assert_int_equal(sealed_doc_open(c->kr, "chk_other", moved, &e), AGENTD_ECORRUPT);
    json_decref(moved);
    free(now);
    free(plain);
    json_decref(doc);
    store_checkout_free(row);
    free(id);
}

/* A saved address: what is sealed is json_dumps's text of its fields (the
 * escapes, UTF-8, absent fields left out), each save under a fresh nonce,
 * and a lookup opens it back (the country upper-cased, the row's id). */
static void test_saved_address_text(void **state)
{
    struct ctx *c = *state;
    struct postal_address a = { .street_address = "1 \"Main\" St\\\n\x01\x1f/",
                                .address_locality = "Z\xc3\xbcrich",
                                .postal_code = "8001",
                                .address_country = "ch" };
    char id1[64], id2[64];
    assert_ok(shop_addresses_remember(c->st, c->kr, NULL, "Ann@Example.com", &a, id1, sizeof id1));
    assert_ok(shop_addresses_remember(c->st, c->kr, NULL, "ann@example.com", &a, id2, sizeof id2));
    json_t *want = json_pack("{s:s, s:s, s:s, s:s}", "street_address", a.street_address,
                             "address_locality", a.address_locality, "postal_code",
                             a.postal_code, "address_country", a.address_country);
    char *wtext = json_dumps(want, JSON_COMPACT);
    struct store_address *rows = NULL;
    size_t n = 0;
    assert_ok(store_address_list(c->st, "ann@example.com", 10, &rows, &n));
    assert_int_equal(n, 2);
    assert_string_not_equal(rows[0].body, rows[1].body);
    for (size_t i = 0; i < n; i++) {
        char *plain = NULL;
        size_t len = 0;
        assert_ok(seal_open(c->kr, rows[i].id, rows[i].body, &plain, &len, NULL));
        assert_int_equal(len, strlen(wtext));
        assert_string_equal(plain, wtext);
        free(plain);
    }
    /* controls never pass the request's parse, so a lookup skips them; a
     * printable address opens back */
    struct postal_address out[4];
    memset(out, 0, sizeof out);
    assert_int_equal(shop_addresses_lookup(c->st, c->kr, NULL, NULL, "ann@example.com", out, 4), 0);
    a.street_address = "1 \"Main\" St\\/";
    assert_ok(shop_addresses_remember(c->st, c->kr, NULL, "bo@example.com", &a, id1, sizeof id1));
    assert_ok(shop_addresses_remember(c->st, c->kr, NULL, "bo@example.com", &a, id2, sizeof id2));
    store_address_list_free(rows, n);
    assert_ok(store_address_list(c->st, "bo@example.com", 10, &rows, &n));
    assert_int_equal(shop_addresses_lookup(c->st, c->kr, NULL, NULL, "BO@example.com", out, 4), 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(out[i].id, rows[i].id);
        assert_string_equal(out[i].street_address, a.street_address);
        assert_string_equal(out[i].address_locality, a.address_locality);
        assert_string_equal(out[i].postal_code, "8001");
        assert_string_equal(out[i].address_country, "CH");
        assert_null(out[i].extended_address);
        assert_null(out[i].address_region);
        checkout_address_clear(&out[i]);
    }
    assert_true(strcmp(id1, rows[0].id) == 0 || strcmp(id1, rows[1].id) == 0);
    store_address_list_free(rows, n);
    free(wtext);
    json_decref(want);
}

static void assert_same_address(const struct postal_address *x, const struct postal_address *y)
{
    const char *const *a = (const char *const *)x, *const *b = (const char *const *)y;
    for (size_t i = 0; i < sizeof *x / sizeof(char *); i++) {
        if (!a[i] || !b[i])
            assert_ptr_equal(a[i], b[i]);
        else
            assert_string_equal(a[i], b[i]);
    }
}

/* The memo of opened addresses: a row saved (or opened) once is read back
 * without opening, as opening gives it; a row re-sealed, a ring that cannot
 * open it, or a clear is not answered from the memo. */
static void test_address_memo(void **state)
{
    struct ctx *c = *state;
    struct shop_address_memo *memo = shop_addresses_memo_new();
    struct postal_address a = { .street_address = "9 Elm St", .extended_address = "Apt \"2\"",
                                .address_locality = "Springfield", .address_region = "IL",
                                .postal_code = "62701", .address_country = "us" };
    char id[64];
    assert_ok(shop_addresses_remember(c->st, c->kr, memo, "cy@example.com", &a, id, sizeof id));
    struct postal_address opened = { 0 }, got = { 0 };
    assert_int_equal(shop_addresses_lookup(c->st, c->kr, NULL, NULL, "cy@example.com", &opened, 1), 1);
    assert_int_equal(shop_addresses_memo_hits(memo), 0);
    assert_int_equal(shop_addresses_lookup(c->st, c->kr, memo, NULL, "cy@example.com", &got, 1), 1);
    assert_int_equal(shop_addresses_memo_hits(memo), 1);
    assert_string_equal(got.id, id);
    assert_string_equal(got.address_country, "US");
    assert_same_address(&got, &opened);
    checkout_address_clear(&got);
    /* re-sealed (a rotation): another text, opened again, then kept */
    struct store_address *rows = NULL;
    size_t n = 0;
    assert_ok(store_address_list(c->st, "cy@example.com", 4, &rows, &n));
    assert_int_equal(n, 1);
    char *plain = NULL, *resealed = NULL;
    size_t len = 0;
    assert_ok(seal_open(c->kr, id, rows[0].body, &plain, &len, NULL));
    assert_ok(seal_seal(c->kr, id, plain, len, &resealed));
    assert_ok(store_address_reseal(c->st, id, rows[0].body, resealed));
    for (size_t want = 1; want <= 2; want++) {
        assert_int_equal(shop_addresses_lookup(c->st, c->kr, memo, NULL, "cy@example.com", &got, 1), 1);
        assert_int_equal(shop_addresses_memo_hits(memo), want);
        assert_same_address(&got, &opened);
        checkout_address_clear(&got);
    }
    /* a ring without the key opens nothing, memo or not */
    struct seal_keyring *only_b = ring(KEY_B, NULL);
    assert_int_equal(shop_addresses_lookup(c->st, only_b, memo, NULL, "cy@example.com", &got, 1), 0);
    assert_int_equal(shop_addresses_memo_hits(memo), 2);
    /* cleared: opened again */
    shop_addresses_memo_clear(memo);
    assert_int_equal(shop_addresses_lookup(c->st, c->kr, memo, NULL, "cy@example.com", &got, 1), 1);
    assert_int_equal(shop_addresses_memo_hits(memo), 2);
    assert_same_address(&got, &opened);
    checkout_address_clear(&got);
    checkout_address_clear(&opened);
    seal_keyring_free(only_b);
    free(plain);
    free(resealed);
    store_address_list_free(rows, n);
    shop_addresses_memo_free(memo);
}

/* The reply cut from a saved document: the members before the last
 * top-level ,"_agentd": (found from the end), nothing when there is none or
 * a real sits in the free-form JSON (the handlers' verdict kept per tree). */
static void test_saved_reply_cut(void **state)
{
    (void)state;
    struct checkout *c = calloc(1, sizeof *c);
    json_t *plain = json_pack("[{s:s, s:i}]", "id", "h1", "n", 3);
    json_t *real = json_pack("[{s:s, s:f}]", "id", "h2", "x", 1.5);
    c->payment.handlers = plain;
    c->version = 4;
    const struct {
        const char *doc;
        const char *want; /* NULL: nothing kept */
    } t[] = {
        {"{\"id\":\"a\",\"n\":\"x,\\\"_agentd\\\":y\",\"_agentd\":{\"k\":\",\\\"_agentd\\\":\"}}",
         "\"id\":\"a\",\"n\":\"x,\\\"_agentd\\\":y\""},
        {"{,\"_agentd\":}", ""},
        {"{\"a\":1,\"_agentd\":{}}", "\"a\":1"},
        {",\"_agentd\":", NULL},
        {"{\"_agentd\":{}}", NULL},
        {"{\"a\":1}", NULL},
        {"{\"a\":[1,2,3],\"b\":{\"c\":\",\"},\"_agentd\":{\"x\":[1,2]}}", "\"a\":[1,2,3],\"b\":{\"c\":\",\"}"},
    };
    for (int round = 0; round < 2; round++) /* the second: the handlers' verdict kept */
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            shop_saved_keep(c, t[i].doc, 4);
            size_t len = 0;
            char *got = shop_saved_take(c, &len);
            if (!t[i].want) {
                assert_null(got);
                continue;
            }
            assert_non_null(got);
            assert_int_equal(len, strlen(t[i].want));
            assert_memory_equal(got, t[i].want, len);
            free(got);
        }
    /* another version, or another handlers tree holding a real: nothing */
    shop_saved_keep(c, t[2].doc, 5);
    size_t len = 0;
    assert_null(shop_saved_take(c, &len));
    c->payment.handlers = real;
    shop_saved_keep(c, t[2].doc, 4);
    assert_null(shop_saved_take(c, &len));
    c->payment.handlers = plain;
    shop_saved_keep(c, t[2].doc, 4);
    char *got = shop_saved_take(c, &len);
    assert_non_null(got);
    free(got);
    json_decref(plain);
    json_decref(real);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_sealed_in_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_drops_the_credential, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_and_lost_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_rows_sealed_by_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_text_reused_while_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saved_address_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_memo, setup, teardown),
        cmocka_unit_test(test_saved_reply_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
