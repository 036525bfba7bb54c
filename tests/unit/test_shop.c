/* shop: exactly-once tool calls over a real SQLite store and the built-in
 * catalog. A call replayed with the same operation key (after a crash
 * between its effect and the turn's checkpoint) applies nothing twice and
 * answers success again; a mid-completion crash is carried on. */
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
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "commerce/checkout.h"
#include "commerce/payment.h"
#include "commerce/ucp.h"
#include "core/err.h"
#include "shop/merchant.h"
#include "shop/shop.h"
#include "store/store.h"

#define assert_ok(x) assert_int_equal((x), 0)

struct ctx {
    char dir[256];
    struct store *st;
    struct merchant *m;
    struct shop *sh;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-shop-XXXXXX");
    if (!mkdtemp(c->dir)) {
        free(c);
        return -1;
    }
    char url[512];
    struct agentd_error err = { 0 };
    snprintf(url, sizeof url, "%s/agentd.db", c->dir);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    struct agentd_error serr = { 0 };
    if (store_open(&o, &c->st, &serr) != 0) {
        fprintf(stderr, "store_open: %s\n", serr.msg);
        return -1;
    }
    /* as src/main.c: no AGENTD_CATALOG, no import -> the built-in catalog */
    c->m = merchant_new(c->st, NULL);
    if (!c->m || merchant_load(c->m, &err) != 0) {
        fprintf(stderr, "merchant_load: %s\n", err.msg);
        return -1;
    }
    c->sh = shop_new(c->st, c->m, "http://127.0.0.1:8080");
    if (!c->sh)
        return -1;
    *state = c;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    shop_free(c->sh);
    merchant_free(c->m);
    store_close(c->st);
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

/* ---- helpers ---- */

static int64_t stock_of(struct ctx *c, const char *product)
{
    int64_t q = -1;
    assert_ok(store_stock_get(c->st, product, &q));
    return q;
}

static int64_t qty_of(const struct checkout *co, const char *product)
{
    for (size_t i = 0; i < co->n_lines; i++)
        if (strcmp(co->lines[i].item_id, product) == 0)
            return co->lines[i].quantity;
    return 0;
}

static int64_t stored_version(struct ctx *c, const char *id)
{
    struct store_checkout *row = NULL;
    assert_ok(store_checkout_get(c->st, id, &row));
    int64_t v = row->version;
    store_checkout_free(row);
    return v;
}

/* A checkout ready to complete: qty of BISC-001, buyer, US address,
 * standard shipping. */
static char *ready_checkout(struct ctx *c, const char *owner, int64_t qty)
{
    json_t *req = json_pack(
        "{s:[{s:{s:s}, s:I}], s:{s:s, s:s}, s:{s:[{s:s, s:[{s:s, s:s, s:s, s:s, s:s}],"
        " s:[{s:s}]}]}}",
        "line_items", "item", "id", "BISC-001", "quantity", (json_int_t)qty, "buyer", "full_name",
        "Jane Doe", "email", "jane@example.com", "fulfillment", "methods", "type", "shipping",
        "destinations", "id", "dest_1", "street_address", "1 Main St", "address_locality",
        "Springfield", "address_region", "IL", "address_country", "US", "groups",
        "selected_option_id", "std-ship");
    assert_non_null(req);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    int rc = shop_checkout_create(c->sh, owner, req, NULL, &co, NULL, &e);
    if (rc)
        fail_msg("create: %d %s: %s", rc, e.code, e.msg);
    json_decref(req);
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    char *id = strdup(co->id);
    checkout_free(co);
    return id;
}

static json_t *payment(const char *token)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "id", "instr_1", "handler_id",
                     PAYMENT_MOCK_HANDLER_ID, "type", "card", "credential", "type", "token",
                     "token", token);
}

struct done {
    int rc, declined, replayed;
    struct agentd_error e;
    struct checkout *co;
    struct order *o;
};

static struct done complete(struct ctx *c, const char *owner, const char *id, const char *key,
                            const char *token)
{
    struct done d = { 0 };
    json_t *pd = payment(token);
    d.replayed = -1;
    d.rc = shop_checkout_complete(c->sh, owner, id, key, pd, &d.co, &d.o, &d.declined,
                                      &d.replayed, &d.e);
    json_decref(pd);
    return d;
}

static void done_free(struct done *d)
{
    checkout_free(d->co);
    order_free(d->o);
    d->co = NULL;
    d->o = NULL;
}

/* ---- the audit log ---- */

/* Each state change writes one row under the thread's request id: the
 * principal, the action, the target id and the outcome; never the card
 * token or the buyer's address. */
static void test_audit_rows(void **state)
{
    struct ctx *c = *state;
    shop_audit_as("req-1", "alice");
    char *id = ready_checkout(c, "alice", 1);
    struct done d = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(d.rc);
    struct done again = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(again.rc, AGENTD_ECONFLICT);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(shop_checkout_cancel(c->sh, "bob", id, &co, &e), AGENTD_ENOTFOUND);
    shop_audit_as(NULL, NULL);

    struct store_audit *v = NULL;
    size_t n = 0;
    assert_ok(store_audit_list(c->st, &(struct store_audit_query){ 0 }, &v, &n));
    assert_int_equal(n, 4);
    const char *want[][3] = { { "alice", "checkout.create", "ok" },
                              { "alice", "checkout.complete", "ok" },
                              { "alice", "checkout.complete", "not_modifiable" },
                              { "bob", "checkout.cancel", "not_found" } };
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(v[i].principal, want[i][0]);
        assert_string_equal(v[i].action, want[i][1]);
        assert_string_equal(v[i].outcome, want[i][2]);
        assert_string_equal(v[i].target, id);
        assert_string_equal(v[i].request_id, "req-1");
        assert_null(strstr(v[i].target, PAYMENT_MOCK_TOKEN_SUCCESS));
        assert_null(strstr(v[i].outcome, "Main St"));
    }
    store_audit_list_free(v, n);
    done_free(&d);
    done_free(&again);
    free(id);
}

/* ---- add_item / edit ---- */

static void test_add_item_key_once(void **state)
{
    struct ctx *c = *state;
    char *id = ready_checkout(c, "alice", 1);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    int replayed = -1;

    assert_ok(shop_checkout_add_item(c->sh, "alice", id, "turn_1/call_1", "BISC-001", 2, &co,
                                         &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_int_equal(qty_of(co, "BISC-001"), 3);
    assert_true(checkout_op_key_has(co, "turn_1/call_1"));
    int64_t v = stored_version(c, id);
    checkout_free(co);

    /* the replay: nothing added, nothing written, same kind of answer */
    replayed = -1;
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, "turn_1/call_1", "BISC-001", 2, &co,
                                         &replayed, &e));
    assert_int_equal(replayed, 1);
    assert_int_equal(qty_of(co, "BISC-001"), 3);
    assert_int_equal(stored_version(c, id), v);
    checkout_free(co);

    /* the key survives a load from the store (it is in the document) */
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_true(checkout_op_key_has(co, "turn_1/call_1"));
    /* ... and never reaches the UCP JSON */
    json_t *wire = checkout_to_json(co, NULL);
    char *text = json_dumps(wire, 0);
    assert_null(strstr(text, "turn_1/call_1"));
    free(text);
    json_decref(wire);
    checkout_free(co);

    /* another call (another key) adds again */
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, "turn_1/call_2", "BISC-001", 2, &co,
                                         &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_int_equal(qty_of(co, "BISC-001"), 5);
    checkout_free(co);

    /* NULL key: the plain call, applied every time (replayed may be NULL) */
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, NULL, "BISC-001", 1, &co, NULL, &e));
    assert_int_equal(qty_of(co, "BISC-001"), 6);
    checkout_free(co);
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, NULL, "BISC-001", 1, &co, NULL, &e));
    assert_int_equal(qty_of(co, "BISC-001"), 7);
    assert_int_equal(co->n_op_keys, 2);
    checkout_free(co);

    /* another tenant's checkout does not exist, key or not */
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_add_item(c->sh, "bob", id, "turn_1/call_1", "BISC-001", 2,
                                                &co, &replayed, &e),
                     AGENTD_ENOTFOUND);

    /* a failed call records nothing: its replay fails the same way */
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_add_item(c->sh, "alice", id, "turn_1/call_3", "NOPE-404",
                                                1, &co, &replayed, &e),
                     AGENTD_EINVAL);
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_false(checkout_op_key_has(co, "turn_1/call_3"));
    checkout_free(co);

    /* keys over 128 bytes are refused before anything happens */
    char longkey[CHECKOUT_OP_KEY_MAX + 2];
    memset(longkey, 'x', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_add_item(c->sh, "alice", id, longkey, "BISC-001", 1, &co,
                                                &replayed, &e),
                     AGENTD_EINVAL);
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(qty_of(co, "BISC-001"), 7);
    checkout_free(co);
    free(id);
}

struct set_qty {
    const char *product;
    int64_t quantity;
    int calls;
};

static int edit_set_qty(struct checkout *co, const struct shop_rules *r, void *arg,
                        struct agentd_error *e)
{
    struct set_qty *a = arg;
    a->calls++;
    return checkout_item_set_quantity(co, r, a->product, co->lines[0].quantity + a->quantity, e);
}

static void test_edit_key_once(void **state)
{
    struct ctx *c = *state;
    char *id = ready_checkout(c, "alice", 1);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    int replayed = -1;
    struct set_qty a = { "BISC-001", 4, 0 };

    assert_ok(shop_checkout_edit(c->sh, "alice", id, "t/edit", edit_set_qty, &a, &co,
                                     &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(qty_of(co, "BISC-001"), 5);
    checkout_free(co);

    assert_ok(shop_checkout_edit(c->sh, "alice", id, "t/edit", edit_set_qty, &a, &co,
                                     &replayed, &e));
    assert_int_equal(replayed, 1);
    assert_int_equal(a.calls, 1); /* the edit did not even run */
    assert_int_equal(qty_of(co, "BISC-001"), 5);
    checkout_free(co);

    assert_ok(shop_checkout_edit(c->sh, "alice", id, "t/edit2", edit_set_qty, &a, &co, NULL,
                                     &e));
    assert_int_equal(a.calls, 2);
    assert_int_equal(qty_of(co, "BISC-001"), 9);
    checkout_free(co);

    /* a replay still answers after the checkout moved on (here: canceled),
     * as the first call did; a new call gets the normal error */
    assert_ok(shop_checkout_cancel(c->sh, "alice", id, &co, &e));
    checkout_free(co);
    assert_ok(shop_checkout_edit(c->sh, "alice", id, "t/edit", edit_set_qty, &a, &co,
                                     &replayed, &e));
    assert_int_equal(replayed, 1);
    assert_int_equal(co->status, CHECKOUT_CANCELED);
    checkout_free(co);
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_edit(c->sh, "alice", id, "t/edit3", edit_set_qty, &a, &co,
                                            &replayed, &e),
                     AGENTD_ECONFLICT);
    assert_string_equal(e.code, "not_modifiable");
    free(id);
}

/* The last 32 keys are remembered, across saves. */
static void test_keys_bounded_in_store(void **state)
{
    struct ctx *c = *state;
    char *id = ready_checkout(c, "alice", 1);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    char key[32];
    for (int i = 0; i < CHECKOUT_OP_KEYS_MAX + 3; i++) {
        snprintf(key, sizeof key, "t/%d", i);
        assert_ok(shop_checkout_add_item(c->sh, "alice", id, key, "BISC-001", 1, &co, NULL,
                                             &e));
        checkout_free(co);
    }
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(co->n_op_keys, CHECKOUT_OP_KEYS_MAX);
    assert_false(checkout_op_key_has(co, "t/2"));
    assert_true(checkout_op_key_has(co, "t/3"));
    assert_int_equal(qty_of(co, "BISC-001"), 1 + CHECKOUT_OP_KEYS_MAX + 3);
    checkout_free(co);
    free(id);
}

/* ---- create ---- */

static void expect_id(const char *owner, const char *key, const char *got)
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    assert_true(EVP_DigestInit_ex(x, EVP_sha256(), NULL));
    EVP_DigestUpdate(x, owner, strlen(owner));
    EVP_DigestUpdate(x, "\n", 1);
    EVP_DigestUpdate(x, key, strlen(key));
    EVP_DigestFinal_ex(x, md, &n);
    EVP_MD_CTX_free(x);
    char want[64] = "chk_";
    for (int i = 0; i < 12; i++)
        snprintf(want + 4 + 2 * i, sizeof want - 4 - 2 * (size_t)i, "%02x", md[i]);
    assert_string_equal(got, want);
}

static void test_create_key_once(void **state)
{
    struct ctx *c = *state;
    json_t *req = json_pack("{s:[{s:{s:s}, s:i}]}", "line_items", "item", "id", "BISC-001",
                            "quantity", 2);
    struct checkout *a = NULL, *b = NULL, *o = NULL;
    struct agentd_error e = { 0 };
    int replayed = -1;

    assert_ok(shop_checkout_create(c->sh, "alice", req, "turn_9/call_1", &a, &replayed, &e));
    assert_int_equal(replayed, 0);
    expect_id("alice", "turn_9/call_1", a->id);
    assert_int_equal(strlen(a->id), 4 + 24);
    assert_true(checkout_op_key_has(a, "turn_9/call_1"));
    assert_int_equal(stored_version(c, a->id), 1);

    /* the replay: same checkout, nothing written */
    assert_ok(shop_checkout_create(c->sh, "alice", req, "turn_9/call_1", &b, &replayed, &e));
    assert_int_equal(replayed, 1);
    assert_string_equal(a->id, b->id);
    assert_int_equal(qty_of(b, "BISC-001"), 2);
    assert_int_equal(stored_version(c, a->id), 1);
    checkout_free(b);

    /* even if the request would now fail (the replay finds, not re-makes) */
    json_t *bad = json_pack("{s:[{s:{s:s}, s:i}]}", "line_items", "item", "id", "NOPE-404",
                            "quantity", 1);
    assert_ok(shop_checkout_create(c->sh, "alice", bad, "turn_9/call_1", &b, &replayed, &e));
    assert_int_equal(replayed, 1);
    assert_string_equal(a->id, b->id);
    checkout_free(b);
    json_decref(bad);

    /* another owner, same key: another checkout */
    assert_ok(shop_checkout_create(c->sh, "bob", req, "turn_9/call_1", &o, &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_string_not_equal(o->id, a->id);
    expect_id("bob", "turn_9/call_1", o->id);
    /* ... which alice cannot see */
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_get(c->sh, "alice", o->id, &b, &e), AGENTD_ENOTFOUND);
    checkout_free(o);

    /* another key: another checkout; no key: a random id each time */
    assert_ok(shop_checkout_create(c->sh, "alice", req, "turn_9/call_2", &b, &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_string_not_equal(b->id, a->id);
    checkout_free(b);
    assert_ok(shop_checkout_create(c->sh, "alice", req, NULL, &b, NULL, &e));
    assert_int_equal(b->n_op_keys, 0);
    assert_ok(shop_checkout_create(c->sh, "alice", req, NULL, &o, &replayed, &e));
    assert_int_equal(replayed, 0);
    assert_string_not_equal(b->id, o->id);
    checkout_free(b);
    checkout_free(o);

    /* bad keys */
    memset(&e, 0, sizeof e);
    assert_int_equal(shop_checkout_create(c->sh, "alice", req, "", &b, &replayed, &e),
                     AGENTD_EINVAL);
    checkout_free(a);
    json_decref(req);
}

/* ---- complete ---- */

static void test_complete_key_replay_after_success(void **state)
{
    struct ctx *c = *state;
    int64_t before = stock_of(c, "BISC-001");
    char *id = ready_checkout(c, "alice", 3);

    struct done d1 = complete(c, "alice", id, "turn_5/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    if (d1.rc)
        fail_msg("complete: %d %s: %s", d1.rc, d1.e.code, d1.e.msg);
    assert_int_equal(d1.replayed, 0);
    assert_int_equal(d1.co->status, CHECKOUT_COMPLETED);
    assert_non_null(d1.o);
    assert_true(checkout_op_key_has(d1.co, "turn_5/pay"));
    assert_int_equal(stock_of(c, "BISC-001"), before - 3);
    int64_t v = stored_version(c, id);

    /* the replay: the same order, no second charge, stock taken once */
    struct done d2 = complete(c, "alice", id, "turn_5/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(d2.rc);
    assert_int_equal(d2.replayed, 1);
    assert_int_equal(d2.declined, 0);
    assert_int_equal(d2.co->status, CHECKOUT_COMPLETED);
    assert_string_equal(d2.o->id, d1.o->id);
    assert_string_equal(d2.co->order_id, d1.o->id);
    assert_int_equal(stock_of(c, "BISC-001"), before - 3);
    assert_int_equal(stored_version(c, id), v);
    /* the completed document kept the key */
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_true(checkout_op_key_has(co, "turn_5/pay"));
    checkout_free(co);

    /* another call on the completed checkout: the normal error */
    struct done d3 = complete(c, "alice", id, "turn_6/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d3.rc, AGENTD_ECONFLICT);
    assert_string_equal(d3.e.code, "not_modifiable");
    assert_int_equal(d3.replayed, 0);
    struct done d4 = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d4.rc, AGENTD_ECONFLICT);
    /* another owner with the right key finds nothing */
    struct done d5 = complete(c, "bob", id, "turn_5/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d5.rc, AGENTD_ENOTFOUND);
    assert_int_equal(stock_of(c, "BISC-001"), before - 3);

    done_free(&d1);
    done_free(&d2);
    done_free(&d3);
    done_free(&d4);
    done_free(&d5);
    free(id);
}

/* What step 1 of a completion saves, written straight to the store: the
 * process died right after it (before the order). claim_by NULL: a claim
 * from before claims were kept (only the key); else the claim {key,
 * claim_by, claim_at}. */
static void crash_after_begin_as(struct ctx *c, const char *id, const char *key,
                                 const char *claim_by, int64_t claim_at)
{
    struct store_checkout *row = NULL;
    assert_ok(store_checkout_get(c->st, id, &row));
    json_t *doc = json_loads(row->document, 0, NULL);
    assert_non_null(doc);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(checkout_from_json(doc, &co, &e));
    assert_ok(checkout_internal_from_doc(co, doc, &e));
    json_decref(doc);
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    co->status = CHECKOUT_COMPLETE_IN_PROGRESS;
    assert_ok(checkout_op_key_add(co, key, &e));
    if (claim_by)
        assert_ok(checkout_claim_set(co, key, claim_by, claim_at, &e));
    doc = checkout_to_doc_json(co);
    assert_ok(checkout_internal_to_doc(co, doc));
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_ok(store_checkout_update(c->st, id, row->version, "complete_in_progress", text));
    free(text);
    json_decref(doc);
    checkout_free(co);
    store_checkout_free(row);
}

static void crash_after_begin(struct ctx *c, const char *id, const char *key)
{
    crash_after_begin_as(c, id, key, NULL, 0);
}

static void test_complete_key_resumes_after_crash(void **state)
{
    struct ctx *c = *state;
    int64_t before = stock_of(c, "BISC-001");
    char *id = ready_checkout(c, "alice", 2);
    crash_after_begin(c, id, "turn_7/pay");

    /* a new call cannot complete a checkout another one is completing */
    struct done other = complete(c, "alice", id, "turn_8/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(other.rc, AGENTD_ECONFLICT);
    assert_string_equal(other.e.code, "complete_in_progress");
    struct done plain = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(plain.rc, AGENTD_ECONFLICT);
    assert_int_equal(stock_of(c, "BISC-001"), before);

    /* the replayed call carries on: one order, stock taken once */
    struct done d = complete(c, "alice", id, "turn_7/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    if (d.rc)
        fail_msg("resume: %d %s: %s", d.rc, d.e.code, d.e.msg);
    assert_int_equal(d.replayed, 1);
    assert_int_equal(d.co->status, CHECKOUT_COMPLETED);
    assert_non_null(d.o);
    assert_string_equal(d.co->order_id, d.o->id);
    assert_int_equal(stock_of(c, "BISC-001"), before - 2);
    struct order *o = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_order_get(c->sh, "alice", d.o->id, &o, &e));
    order_free(o);

    /* replaying it once more: the same order, nothing taken */
    struct done again = complete(c, "alice", id, "turn_7/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(again.rc);
    assert_int_equal(again.replayed, 1);
    assert_string_equal(again.o->id, d.o->id);
    assert_int_equal(stock_of(c, "BISC-001"), before - 2);

    done_free(&other);
    done_free(&plain);
    done_free(&d);
    done_free(&again);
    free(id);
}

/* A resumed completion whose payment is declined goes back to ready,
 * like the first attempt would have. */
static void test_complete_key_resume_declined(void **state)
{
    struct ctx *c = *state;
    int64_t before = stock_of(c, "BISC-001");
    char *id = ready_checkout(c, "alice", 1);
    crash_after_begin(c, id, "turn_3/pay");
    struct done d = complete(c, "alice", id, "turn_3/pay", PAYMENT_MOCK_TOKEN_FAIL);
    assert_int_equal(d.rc, AGENTD_EINVAL);
    assert_int_equal(d.declined, 1);
    assert_string_equal(d.e.code, "payment_declined");
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(co);
    assert_int_equal(stock_of(c, "BISC-001"), before);
    /* the buyer pays with another credential: a new call, completes */
    struct done ok = complete(c, "alice", id, "turn_4/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(ok.rc);
    assert_int_equal(ok.replayed, 0);
    assert_int_equal(stock_of(c, "BISC-001"), before - 1);
    done_free(&d);
    done_free(&ok);
    free(id);
}

/* A declined keyed call records its key but leaves the checkout ready: its
 * replay is the normal flow again (declined again, nothing charged). */
static void test_complete_key_declined_replay(void **state)
{
    struct ctx *c = *state;
    char *id = ready_checkout(c, "alice", 1);
    struct done d1 = complete(c, "alice", id, "turn_2/pay", PAYMENT_MOCK_TOKEN_FAIL);
    assert_int_equal(d1.rc, AGENTD_EINVAL);
    assert_int_equal(d1.declined, 1);
    struct done d2 = complete(c, "alice", id, "turn_2/pay", PAYMENT_MOCK_TOKEN_FAIL);
    assert_int_equal(d2.rc, AGENTD_EINVAL);
    assert_int_equal(d2.declined, 1);
    assert_int_equal(d2.replayed, 0);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(co);
    /* a bad key is refused before anything */
    char longkey[CHECKOUT_OP_KEY_MAX + 2];
    memset(longkey, 'y', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    struct done d3 = complete(c, "alice", id, longkey, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d3.rc, AGENTD_EINVAL);
    assert_int_equal(d3.declined, 0);
    done_free(&d1);
    done_free(&d2);
    done_free(&d3);
    free(id);
}

/* Whether the stored document still holds a completion claim. */
static int stored_claim(struct ctx *c, const char *id)
{
    struct store_checkout *row = NULL;
    assert_ok(store_checkout_get(c->st, id, &row));
    int has = strstr(row->document, "\"completing\"") != NULL;
    store_checkout_free(row);
    return has;
}

/* A completion whose process died is carried on by the next call, with or
 * without a key: its process is known dead (here: our own pid under
 * another nonce, "the process before us"). One order, stock taken once,
 * the claim gone. */
static void test_complete_taken_over_when_its_process_died(void **state)
{
    struct ctx *c = *state;
    char ours[96], dead[96];
    snprintf(ours, sizeof ours, "testhost@ns/%ld/aaaaaa", (long)getpid());
    snprintf(dead, sizeof dead, "testhost@ns/%ld/bbbbbb", (long)getpid());
    assert_ok(shop_set_instance(c->sh, ours, NULL));
    int64_t before = stock_of(c, "BISC-001");
    char *id = ready_checkout(c, "alice", 2);
    crash_after_begin_as(c, id, "chk/v9", dead, (int64_t)time(NULL));
    assert_true(stored_claim(c, id));
    struct done d = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    if (d.rc)
        fail_msg("take over: %d %s: %s", d.rc, d.e.code, d.e.msg);
    assert_int_equal(d.replayed, 0);
    assert_int_equal(d.co->status, CHECKOUT_COMPLETED);
    assert_null(d.co->completing.key);
    assert_false(stored_claim(c, id));
    assert_int_equal(stock_of(c, "BISC-001"), before - 2);
    /* done: a further call is refused, nothing taken */
    struct done again = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(again.rc, AGENTD_ECONFLICT);
    assert_int_equal(stock_of(c, "BISC-001"), before - 2);
    done_free(&d);
    done_free(&again);
    free(id);
}

/* A completion held by a process that may be alive (another host) is left
 * alone — 409 — until its claim's lease (2 minutes) runs out. */
static void test_complete_waits_for_a_live_claim_then_its_lease(void **state)
{
    struct ctx *c = *state;
    assert_ok(shop_set_instance(c->sh, "testhost@ns/1/aaaaaa", NULL));
    int64_t before = stock_of(c, "BISC-001");
    char *fresh = ready_checkout(c, "alice", 1);
    crash_after_begin_as(c, fresh, "idem:k1", "otherhost@ns/1/cccccc", (int64_t)time(NULL));
    struct done d1 = complete(c, "alice", fresh, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d1.rc, AGENTD_ECONFLICT);
    assert_string_equal(d1.e.code, "complete_in_progress");
    struct done d2 = complete(c, "alice", fresh, "turn_9/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d2.rc, AGENTD_ECONFLICT);
    assert_true(stored_claim(c, fresh));
    assert_int_equal(stock_of(c, "BISC-001"), before);

    /* our own claim (an abort that failed) waits for the lease too */
    char *own = ready_checkout(c, "alice", 1), *own_old = ready_checkout(c, "alice", 1);
    crash_after_begin_as(c, own, "idem:k0", "testhost@ns/1/aaaaaa", (int64_t)time(NULL));
    crash_after_begin_as(c, own_old, "idem:k9", "testhost@ns/1/aaaaaa",
                         (int64_t)time(NULL) - 121);
    struct done o1 = complete(c, "alice", own, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(o1.rc, AGENTD_ECONFLICT);
    assert_string_equal(o1.e.code, "complete_in_progress");
    struct done o2 = complete(c, "alice", own_old, NULL, PAYMENT_MOCK_TOKEN_SUCCESS);
    if (o2.rc)
        fail_msg("own claim after the lease: %d %s: %s", o2.rc, o2.e.code, o2.e.msg);
    assert_int_equal(o2.co->status, CHECKOUT_COMPLETED);
    done_free(&o1);
    done_free(&o2);
    free(own);
    free(own_old);
    before -= 1;

    char *stale = ready_checkout(c, "alice", 1);
    crash_after_begin_as(c, stale, "idem:k2", "otherhost@ns/1/cccccc",
                         (int64_t)time(NULL) - 121);
    struct done d3 = complete(c, "alice", stale, "turn_9/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    if (d3.rc)
        fail_msg("after the lease: %d %s: %s", d3.rc, d3.e.code, d3.e.msg);
    assert_int_equal(d3.co->status, CHECKOUT_COMPLETED);
    assert_int_equal(stock_of(c, "BISC-001"), before - 1);
    /* the taking call's key was recorded: its replay answers the order */
    struct done d4 = complete(c, "alice", stale, "turn_9/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(d4.rc);
    assert_int_equal(d4.replayed, 1);
    assert_string_equal(d4.o->id, d3.o->id);
    done_free(&d1);
    done_free(&d2);
    done_free(&d3);
    done_free(&d4);
    free(fresh);
    free(stale);
}

/* A taken-over completion declined by the payment goes back to ready (the
 * claim is ours now, so our abort applies), nothing taken. */
static void test_complete_taken_over_then_declined(void **state)
{
    struct ctx *c = *state;
    int64_t before = stock_of(c, "BISC-001");
    char *id = ready_checkout(c, "alice", 1);
    /* no instance set: a claim by an unknown process waits for the lease */
    crash_after_begin_as(c, id, "idem:k3", "otherhost@ns/1/dddddd", (int64_t)time(NULL) - 500);
    struct done d = complete(c, "alice", id, NULL, PAYMENT_MOCK_TOKEN_FAIL);
    assert_int_equal(d.rc, AGENTD_EINVAL);
    assert_int_equal(d.declined, 1);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_null(co->completing.key);
    checkout_free(co);
    assert_int_equal(stock_of(c, "BISC-001"), before);
    done_free(&d);
    free(id);
}

/* Cancel waits for a live completion (it may have authorized the payment)
 * but takes one whose process died. */
static void test_cancel_during_a_completion(void **state)
{
    struct ctx *c = *state;
    assert_ok(shop_set_instance(c->sh, "testhost@ns/1/aaaaaa", NULL));
    char *live = ready_checkout(c, "alice", 1), *gone = ready_checkout(c, "alice", 1);
    crash_after_begin_as(c, live, "idem:c1", "otherhost@ns/1/cccccc", (int64_t)time(NULL));
    crash_after_begin_as(c, gone, "idem:c2", "otherhost@ns/1/cccccc", (int64_t)time(NULL) - 500);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(shop_checkout_cancel(c->sh, "alice", live, &co, &e), AGENTD_ECONFLICT);
    assert_string_equal(e.code, "complete_in_progress");
    assert_null(co);
    memset(&e, 0, sizeof e);
    assert_ok(shop_checkout_cancel(c->sh, "alice", gone, &co, &e));
    assert_int_equal(co->status, CHECKOUT_CANCELED);
    assert_null(co->completing.key);
    checkout_free(co);
    /* a checkout nobody completes cancels as before */
    char *idle = ready_checkout(c, "alice", 1);
    assert_ok(shop_checkout_cancel(c->sh, "alice", idle, &co, &e));
    assert_int_equal(co->status, CHECKOUT_CANCELED);
    checkout_free(co);
    free(live);
    free(gone);
    free(idle);
}

/* Production without AGENTD_ALLOW_TEST_PAYMENTS: the mock handler is
 * neither offered nor accepted, and refusing it moves nothing. */
static void test_test_payments_refused(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(json_array_size(shop_payment_handlers(c->sh)), 2);
    char *id = ready_checkout(c, "alice", 1);
    int64_t v = stored_version(c, id);
    int64_t before = stock_of(c, "BISC-001");
    assert_ok(shop_set_test_payments(c->sh, 0));
    assert_int_equal(json_array_size(shop_payment_handlers(c->sh)), 0);
    struct done d = complete(c, "alice", id, "turn_1/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_int_equal(d.rc, AGENTD_EUNPROCESSABLE);
    assert_string_equal(d.e.code, "payment_handler_unavailable");
    assert_non_null(strstr(d.e.msg, "AGENTD_ALLOW_TEST_PAYMENTS"));
    assert_int_equal(stored_version(c, id), v); /* not even a claim */
    assert_int_equal(stock_of(c, "BISC-001"), before);
    done_free(&d);
    /* a refreshed checkout no longer advertises it, so it cannot be ready */
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, NULL, "BISC-001", 1, &co, NULL, &e));
    assert_int_equal(json_array_size(co->payment.handlers), 0);
    assert_int_not_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(co);
    /* allowed again (AGENTD_ALLOW_TEST_PAYMENTS=1): it completes */
    assert_ok(shop_set_test_payments(c->sh, 1));
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, NULL, "BISC-001", 1, &co, NULL, &e));
    assert_int_equal(co->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(co);
    d = complete(c, "alice", id, "turn_2/pay", PAYMENT_MOCK_TOKEN_SUCCESS);
    assert_ok(d.rc);
    assert_int_equal(d.co->status, CHECKOUT_COMPLETED);
    done_free(&d);
    free(id);
}

static void test_legal_links(void **state)
{
    struct ctx *c = *state;
    char *id = ready_checkout(c, "alice", 1);
    struct checkout *co = NULL;
    struct agentd_error e = { 0 };
    assert_ok(shop_checkout_get(c->sh, "alice", id, &co, &e));
    assert_int_equal(co->n_links, 0); /* none configured: none handed out */
    checkout_free(co);
    assert_ok(shop_set_legal_links(c->sh, NULL, "https://shop.example/terms"));
    assert_ok(shop_checkout_add_item(c->sh, "alice", id, NULL, "BISC-001", 1, &co, NULL, &e));
    assert_int_equal(co->n_links, 1);
    assert_string_equal(co->links[0].type, "terms_of_service");
    assert_string_equal(co->links[0].url, "https://shop.example/terms");
    checkout_free(co);
    free(id);
}

/* The sample client's instrument (mocks/credentialProviderProxy.ts), with
 * the merchant's example_payment_provider. */
static struct done complete_example(struct ctx *c, const char *id, const char *key,
                                    const char *token)
{
    struct done d = { 0 };
    json_t *pd = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:{s:s,s:s}}", "id", "instr_2",
                           "type", "card", "brand", "visa", "last_digits", "8888", "expiry_month",
                           12, "expiry_year", 2026, "handler_id", PAYMENT_EXAMPLE_HANDLER_ID,
                           "handler_name", "example.payment.provider", "credential", "type",
                           "token", "token", token);
    d.replayed = -1;
    d.rc = shop_checkout_complete(c->sh, "alice", id, key, pd, &d.co, &d.o, &d.declined,
                                      &d.replayed, &d.e);
    json_decref(pd);
    return d;
}

/* example_payment_provider: declared (config business_id), any token but
 * fail_token approves, fail_token declines, production refuses it. */
static void test_example_payment_provider(void **state)
{
    struct ctx *c = *state;
    const json_t *hs = shop_payment_handlers(c->sh);
    const json_t *ex = json_array_get(hs, 1);
    assert_string_equal(json_string_value(json_object_get(ex, "id")), PAYMENT_EXAMPLE_HANDLER_ID);
    assert_string_equal(json_string_value(json_object_get(ex, "name")), "example.payment.provider");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ex, "config"), "business_id")),
        "1234567890");
    assert_int_equal(shop_set_payment_business_id(c->sh, "merchant-42"), 0);
    assert_int_equal(shop_set_payment_business_id(c->sh, ""), AGENTD_EINVAL);
    assert_int_equal(shop_set_payment_business_id(c->sh, "bad\nid"), AGENTD_EINVAL);
    ex = json_array_get(shop_payment_handlers(c->sh), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(ex, "config"), "business_id")),
        "merchant-42");

    /* declined: 402 at the front, the checkout stays completable */
    char *id = ready_checkout(c, "alice", 1);
    struct done d = complete_example(c, id, "turn_1/pay", PAYMENT_MOCK_TOKEN_FAIL);
    assert_int_equal(d.declined, 1);
    assert_int_not_equal(d.rc, 0);
    done_free(&d);
    /* production: refused before anything moves */
    int64_t v = stored_version(c, id);
    assert_ok(shop_set_test_payments(c->sh, 0));
    d = complete_example(c, id, "turn_2/pay", "mock_token_0b1c");
    assert_int_equal(d.rc, AGENTD_EUNPROCESSABLE);
    assert_string_equal(d.e.code, "payment_handler_unavailable");
    assert_non_null(strstr(d.e.msg, PAYMENT_EXAMPLE_HANDLER_ID));
    assert_int_equal(stored_version(c, id), v);
    done_free(&d);
    assert_ok(shop_set_test_payments(c->sh, 1));
    /* any other token approves: the order is placed */
    d = complete_example(c, id, "turn_3/pay", "mock_token_6f1e9a52-2b1c-4c43-9f7a-3f0a1d2e4b5c");
    assert_ok(d.rc);
    assert_int_equal(d.co->status, CHECKOUT_COMPLETED);
    assert_non_null(d.o);
    done_free(&d);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_item_key_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_key_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_bounded_in_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_key_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_key_replay_after_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_key_resumes_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_key_resume_declined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_key_declined_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_taken_over_when_its_process_died, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_waits_for_a_live_claim_then_its_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_taken_over_then_declined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_during_a_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_test_payments_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_example_payment_provider, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legal_links, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
