/* Shop operations: the only place that combines the pure checkout domain
 * with the store. Pattern for every mutation: load (version v) -> apply a
 * pure function -> store_checkout_update(id, v, ...) -> on AGENTD_ECONFLICT
 * reload and apply again, a bounded number of times. Completion, the
 * operation with a payment in the middle, is shop_complete.c. */
#define _GNU_SOURCE
#include "shop/shop.h"
#include "shop/addresses.h"
#include "shop/checkout_cache.h"
#include "shop/merchant.h"
#include "commerce/catalog.h"
#include "commerce/fields.h"
#include "commerce/payment.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/log.h"
#include "core/reqid.h"
#include "core/seal.h"
#include "shop/sealed_doc.h"
#include "shop/shop_internal.h"
#include "shop/shop_ops.h"
#include "store/store.h"

#include <openssl/evp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAS_TRIES 64

/* 128 sets of 4: 512 checkouts of a few KiB each at most. */
#define CACHE_SETS 128


static json_t *handlers_advert(const struct shop *sh, size_t n);

struct shop *shop_new(struct store *st, struct merchant *m, const char *public_url)
{
    struct shop *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    sh->st = st;
    sh->m = m;
    sh->hs[0] = payment_handler_mock();
    sh->hs[1] = &sh->example;
    sh->n_hs = 2;
    if (payment_handler_example(&sh->example, PAYMENT_EXAMPLE_BUSINESS_ID) != 0) {
        free(sh);
        return NULL;
    }
    sh->public_url = strdup(public_url);
    sh->declared = m ? merchant_payment_handlers(m) : NULL; /* read at start */
    sh->handlers = handlers_advert(sh, sh->n_hs);
    if (seal_keyring_new(NULL, NULL, &sh->own_kr, NULL) == 0)
        sh->kr = sh->own_kr;
    sh->cache = checkout_cache_new(CACHE_SETS);
    sh->addr_memo = shop_addresses_memo_new();
    if (!sh->public_url || !sh->handlers || !sh->kr || !sh->cache || !sh->addr_memo ||
        asprintf(&sh->continue_base, "%s/checkout-sessions", public_url) < 0) {
        shop_free(sh);
        return NULL;
    }
    shop_metrics_init(m);
    return sh;
}

/* What payment.handlers advertises: our handlers in use (n), then the
 * merchant's declared ones. */
static json_t *handlers_advert(const struct shop *sh, size_t n)
{
    json_t *h = payment_handlers_json(sh->hs, n);
    size_t i;
    json_t *v;
    json_array_foreach(sh->declared, i, v)
    {
        if (h && json_array_append_new(h, json_deep_copy(v))) {
            json_decref(h);
            return NULL;
        }
    }
    return h;
}

int shop_set_test_payments(struct shop *sh, int accept)
{
    size_t n = accept ? sizeof sh->hs / sizeof sh->hs[0] : 0;
    json_t *h = handlers_advert(sh, n);
    if (!h)
        return AGENTD_ENOMEM;
    json_decref(sh->handlers);
    sh->handlers = h;
    sh->n_hs = n;
    return 0;
}

int shop_set_payment_business_id(struct shop *sh, const char *business_id)
{
    struct payment_handler ex;
    int rc = payment_handler_example(&ex, business_id);
    if (rc)
        return rc;
    payment_handler_example_clear(&sh->example);
    sh->example = ex;
    return shop_set_test_payments(sh, sh->n_hs > 0);
}

/* Replaces *a and *b with copies of av and bv (NULL allowed): both or,
 * out of memory, neither. 0 or AGENTD_ENOMEM. */
static int strs_set2(char **a, const char *av, char **b, const char *bv)
{
    char *x = av ? strdup(av) : NULL, *y = bv ? strdup(bv) : NULL;
    if ((av && !x) || (bv && !y)) {
        free(x);
        free(y);
        return AGENTD_ENOMEM;
    }
    free(*a);
    free(*b);
    *a = x;
    *b = y;
    return 0;
}

int shop_set_legal_links(struct shop *sh, const char *privacy_url, const char *terms_url)
{
    if (strs_set2(&sh->privacy_url, privacy_url, &sh->terms_url, terms_url))
        return AGENTD_ENOMEM;
    char *p = sh->privacy_url, *t = sh->terms_url;
    sh->n_links = 0;
    if (p)
        sh->links[sh->n_links++] = (struct checkout_link){ "privacy_policy", p, "Privacy policy" };
    if (t)
        sh->links[sh->n_links++] = (struct checkout_link){ "terms_of_service", t, "Terms of service" };
    return 0;
}

/* What a shop owns besides its example handler (see commerce/fields.h). */
#define T struct shop
static const struct field shop_fields[] = {
    FIELD_S(T, public_url, NULL), FIELD_S(T, continue_base, NULL), FIELD_S(T, privacy_url, NULL),
    FIELD_S(T, terms_url, NULL),  FIELD_S(T, instance, NULL),      FIELD_S(T, lock_dir, NULL),
    FIELD_J(T, handlers),         FIELD_J(T, declared),
};
#undef T
static const struct shape shop_shape = {sizeof(struct shop), shop_fields, FIELDS_N(shop_fields),
                                        NULL, NULL};

void shop_free(struct shop *sh)
{
    if (!sh)
        return;
    payment_handler_example_clear(&sh->example);
    seal_keyring_free(sh->own_kr);
    checkout_cache_free(sh->cache);
    shop_addresses_memo_free(sh->addr_memo);
    fields_clear(&shop_shape, sh);
    free(sh);
}

int shop_set_instance(struct shop *sh, const char *instance, const char *lock_dir)
{
    return strs_set2(&sh->instance, instance, &sh->lock_dir, lock_dir);
}

const json_t *shop_payment_handlers(const struct shop *sh) { return sh->handlers; }

void shop_set_keyring(struct shop *sh, const struct seal_keyring *kr)
{
    sh->kr = kr ? kr : sh->own_kr;
    /* a cached checkout holds what the old ring opened */
    checkout_cache_clear(sh->cache);
    shop_addresses_memo_clear(sh->addr_memo);
}

/* ---- rules: the catalog and live stock, for one operation ---- */

static const struct product *r_product(void *ud, const char *id)
{
    return catalog_product(((struct shop_rules_ctx *)ud)->cat, id);
}

static int64_t r_stock(void *ud, const char *id)
{
    int64_t q;
    return store_stock_get(((struct shop_rules_ctx *)ud)->sh->st, id, &q) == 0 ? q : -1;
}

static const struct shipping_rate *const *r_rates(void *ud, const char *country, size_t *n)
{
    return catalog_shipping_rates(((struct shop_rules_ctx *)ud)->cat, country, n);
}

static const struct shipping_rate *r_rate(void *ud, const char *id)
{
    return catalog_shipping_rate(((struct shop_rules_ctx *)ud)->cat, id);
}

static const struct discount *r_discount(void *ud, const char *code)
{
    return catalog_discount(((struct shop_rules_ctx *)ud)->cat, code);
}

static const struct tax_rate *r_tax(void *ud, const char *country, const char *region)
{
    return catalog_tax_rate(((struct shop_rules_ctx *)ud)->cat, country, region);
}

static size_t r_saved(void *ud, const char *email, struct postal_address *out, size_t max)
{
    struct shop_rules_ctx *ctx = ud;
    return shop_addresses_lookup(ctx->sh->st, ctx->sh->kr, ctx->sh->addr_memo, ctx->cat, email,
                                 out, max);
}

static int r_remember(void *ud, const char *email, const struct postal_address *a, char *id,
                      size_t len)
{
    struct shop_rules_ctx *ctx = ud;
    return shop_addresses_remember(ctx->sh->st, ctx->sh->kr, ctx->sh->addr_memo, email, a, id,
                                   len);
}

int shop_rules_begin(struct shop *sh, struct shop_rules_ctx *ctx, struct shop_rules *r,
                     struct agentd_error *e)
{
    ctx->sh = sh;
    ctx->cat = merchant_catalog(sh->m);
    if (!ctx->cat)
        return agentd_fail(e, AGENTD_EUNAVAILABLE, "unavailable", NULL, "the catalog is not loaded");
    *r = (struct shop_rules){
        .ud = ctx,
        .product = r_product,
        .stock = r_stock,
        .shipping_rates = r_rates,
        .shipping_rate = r_rate,
        .discount = r_discount,
        .tax_rate = r_tax,
        .currency = catalog_currency(ctx->cat),
        .now = clock_wall_ms() / 1000,
        .continue_url_base = sh->continue_base,
        .payment_handlers = sh->handlers,
        .links = sh->links,
        .n_links = sh->n_links,
        .saved_addresses = r_saved,
        .remember_address = r_remember,
    };
    r->promotions = catalog_promotions(ctx->cat, &r->n_promotions);
    return 0;
}

void shop_rules_end(struct shop_rules_ctx *ctx) { catalog_unref(ctx->cat); }

/* ---- load and save ---- */

int shop_store_fail(struct agentd_error *e, int rc)
{
    if (rc == AGENTD_ENOTFOUND)
        return agentd_fail(e, rc, "not_found", NULL, "no such checkout session");
    return agentd_fail(e, rc, agentd_err_code(rc), NULL, "%s", agentd_err_msg(rc));
}

/* ---- the audit log ---- */

/* The request the calling thread's operations serve: the fronts run shop
 * calls in worker jobs, and a job sets this for its calls (shop_audit_as),
 * so no operation's signature carries it. */
static _Thread_local const char *tl_request_id, *tl_principal;

void shop_audit_as(const char *request_id, const char *principal)
{
    tl_request_id = request_id;
    tl_principal = principal;
}

/* One row per state change tried: the ids and the outcome (ok, or the
 * failure's code), never the document. A failed audit write is logged:
 * the change itself already holds. Returns rc. */
static int audited(struct shop *sh, const char *owner, const char *action, const char *target,
                   int rc, const struct agentd_error *e)
{
    const char *outcome = rc == 0 ? "ok" : e && e->code[0] ? e->code : agentd_err_code(rc);
    struct store_audit a = { .principal = (char *)(owner ? owner : tl_principal ? tl_principal : ""),
                             .action = (char *)action, .target = (char *)(target ? target : ""),
                             .request_id = (char *)(tl_request_id ? tl_request_id : ""),
                             .outcome = (char *)outcome };
    int arc = store_audit_append(sh->st, &a);
    if (arc != 0)
        log_msg(LOG_WARN, tl_request_id, "audit row %s %s not written: %s", action,
                a.target, agentd_err_msg(arc));
    return rc;
}

/* ---- one commit per operation ----
 *
 * An operation's writes (the checkout, an address it remembers, the order)
 * and its audit row commit together: a store batch of our own, unless the
 * caller has one open (its writes then join the caller's). Never around a
 * completion's claim: that commits before the payment is authorized. */
static _Thread_local struct store *tl_own_batch;

void shop_batch_begin(struct shop *sh)
{
    if (!tl_own_batch && store_batch_begin(sh->st) == 1)
        tl_own_batch = sh->st;
}

/* Ends our batch (if one is open): rc, or the commit's failure when rc was 0
 * (then nothing of the operation was kept). */
int shop_batch_end(struct shop *sh, int rc, struct agentd_error *e)
{
    if (tl_own_batch != sh->st)
        return rc;
    tl_own_batch = NULL;
    int crc = store_batch_end(sh->st);
    if (rc == 0 && crc != 0)
        return shop_store_fail(e, crc);
    return rc;
}

/* A lost compare-and-swap inside our batch: what it wrote so far (a saved
 * address) commits now, so the retry's reads see every commit before it. */
static int op_batch_flush(struct shop *sh, struct agentd_error *e)
{
    if (tl_own_batch != sh->st)
        return 0;
    int rc = shop_batch_end(sh, 0, e);
    shop_batch_begin(sh);
    return rc;
}

int shop_checkout_load(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                       struct agentd_error *e)
{
    struct store_checkout *row = NULL;
    int rc = store_checkout_get(sh->st, id, &row);
    if (rc == 0 && strcmp(row->owner, owner) != 0)
        rc = AGENTD_ENOTFOUND; /* another tenant's checkout does not exist for you */
    if (rc != 0) {
        store_checkout_free(row);
        return shop_store_fail(e, rc);
    }
    struct checkout *c = checkout_cache_get(sh->cache, id, row->document);
    if (c) { /* stored as we last saved it: what a parse would give */
        shop_documents_count(DOC_CACHED);
        c->version = row->version;
        store_checkout_free(row);
        *out = c;
        return 0;
    }
    json_error_t je;
    json_t *doc = json_loads(row->document, 0, &je);
    shop_documents_count(DOC_PARSED);
    struct agentd_error se = { 0 };
    if (doc && sealed_doc_open(sh->kr, id, doc, &se) == AGENTD_ECORRUPT)
        /* read on without the stored credentials: the buyer sends them again */
        log_msg(LOG_WARN, NULL, "checkout %s: its stored payment credential does not open (%s); "
                "the instrument must be sent again", id, se.msg);
    rc = doc ? checkout_from_json(doc, &c, e)
             : agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "stored checkout is not JSON");
    if (rc == 0 && (rc = checkout_internal_from_doc(c, doc, e)) != 0) {
        checkout_free(c);
        c = NULL;
    }
    json_decref(doc);
    if (rc == 0)
        c->version = row->version;
    store_checkout_free(row);
    *out = c;
    return rc;
}

/* The store document: the checkout's doc JSON with its operation keys, its
 * instrument credentials sealed. */
char *shop_checkout_document(struct shop *sh, const struct checkout *c, struct sealed_memo *memo)
{
    struct buf b = { 0 };
    if (sealed_doc_write(sh->kr, c, &b, sh->cache, memo) != 0) {
        buf_free(&b);
        if (memo)
            sealed_memo_clear(memo);
        return NULL;
    }
    shop_documents_count(DOC_SERIALISED);
    return b.data;
}

/* c was stored as doc: the parsed-checkout cache keeps both, and what was sealed. */
static void cache_put(struct shop *sh, const struct checkout *c, const char *doc,
                      struct sealed_memo *memo)
{
    checkout_cache_put_sealed(sh->cache, c, doc, memo->plain, memo->len, memo->sealed);
}

/* Saves c over version c->version; on success c->version moves on. */
static int save(struct shop *sh, struct checkout *c, struct agentd_error *e)
{
    struct sealed_memo memo = { 0 };
    char *doc = shop_checkout_document(sh, c, &memo);
    if (!doc)
        return agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    int rc = store_checkout_update(sh->st, c->id, c->version, checkout_status_name(c->status), doc);
    if (rc == 0) {
        c->version++;
        /* a claim's checkout (complete_in_progress) is replaced by the
         * completed one a moment later in the same operation: caching it
         * was a copy made to be dropped. After a decline it is read back
         * parsed; the cache keeps what it held (the text differs, so it is
         * not answered from, and its sealed payment can still be reused). */
        if (c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
            cache_put(sh, c, doc, &memo);
        shop_saved_keep(c, doc, c->version);
    } else if (rc != AGENTD_ECONFLICT) {
        shop_store_fail(e, rc);
    }
    sealed_memo_clear(&memo);
    free(doc);
    return rc;
}

/* A short random pause before retrying a lost compare-and-swap, so
 * contending writers spread out instead of colliding again. */
static void backoff(int attempt)
{
    unsigned char r = 0;
    random_bytes(&r, 1);
    if (attempt < 2)
        sched_yield();
    else
        usleep((useconds_t)(r % (attempt < 8 ? 200 : 2000)));
}

/* ---- operations ---- */

/* "chk_" + the first 24 hex digits of SHA-256(owner "\n" op_key): the
 * same call replayed names the same checkout, another owner another one.
 * Same shape as new_id's random ids. */
static int keyed_id(const char *owner, const char *op_key, char *out, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, owner, strlen(owner)) && EVP_DigestUpdate(ctx, "\n", 1) &&
             EVP_DigestUpdate(ctx, op_key, strlen(op_key)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 12;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return AGENTD_ENOMEM; /* OpenSSL fails here only without memory */
    size_t n = (size_t)snprintf(out, len, "chk_");
    for (size_t i = 0; i < 12 && n + 2 < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%02x", md[i]);
    return 0;
}

static int create_op(struct shop *sh, const char *owner, const json_t *req,
                     const char *op_key, struct checkout **out, int *replayed,
                     struct agentd_error *e)
{
    int rc;
    char id[48];
    struct checkout *c = NULL;
    if (replayed)
        *replayed = 0;
    if (op_key) {
        if ((rc = checkout_op_key_check(op_key, e)))
            return rc;
        if ((rc = keyed_id(owner, op_key, id, sizeof id)))
            return agentd_fail(e, rc, "out_of_memory", NULL, "out of memory");
        /* A replay finds what the first call created, whatever the request
         * would give now (stock may have run out since). */
        struct agentd_error le = { 0 };
        rc = shop_checkout_load(sh, owner, id, &c, &le);
        if (rc == 0)
            goto replay;
        if (rc != AGENTD_ENOTFOUND) {
            *e = le;
            return rc;
        }
    } else {
        id_new("chk_", id, sizeof id);
    }
    struct shop_rules_ctx ctx;
    struct shop_rules r;
    if ((rc = shop_rules_begin(sh, &ctx, &r, e)))
        return rc;
    rc = checkout_create(req, &r, id, &c, e);
    shop_rules_end(&ctx);
    if (rc == 0 && shop_webhook_current() && !(c->webhook_url = strdup(shop_webhook_current())))
        rc = agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    if (rc == 0 && op_key)
        rc = checkout_op_key_add(c, op_key, e);
    if (rc) {
        checkout_free(c);
        return rc;
    }
    struct sealed_memo memo = { 0 };
    char *doc = shop_checkout_document(sh, c, &memo);
    struct store_checkout row = { .id = c->id, .owner = (char *)owner,
                                  .status = (char *)checkout_status_name(c->status), .document = doc,
                                  .expires_at = c->expires_at * 1000 };
    rc = doc ? store_checkout_create(sh->st, &row) : AGENTD_ENOMEM;
    if (rc == 0) {
        cache_put(sh, c, doc, &memo);
        shop_saved_keep(c, doc, row.version);
    }
    sealed_memo_clear(&memo);
    free(doc);
    if (rc == AGENTD_EEXIST && op_key) {
        /* The same call, running at the same time, got there first. */
        checkout_free(c);
        c = NULL;
        if ((rc = shop_checkout_load(sh, owner, id, &c, e)))
            return rc;
        goto replay;
    }
    if (rc) {
        checkout_free(c);
        return shop_store_fail(e, rc);
    }
    c->version = row.version;
    *out = c;
    return 0;
replay:
    if (replayed)
        *replayed = 1;
    *out = c;
    return 0;
}

int shop_checkout_create(struct shop *sh, const char *owner, const json_t *req,
                         const char *op_key, struct checkout **out, int *replayed,
                         struct agentd_error *e)
{
    shop_batch_begin(sh);
    int rc = create_op(sh, owner, req, op_key, out, replayed, e);
    rc = audited(sh, owner, "checkout.create", rc == 0 ? (*out)->id : "", rc, e);
    int crc = shop_batch_end(sh, rc, e);
    if (crc != rc) { /* done, then its commit failed: nothing was kept */
        checkout_free(*out);
        *out = NULL;
    }
    return crc;
}

int shop_checkout_get(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                      struct agentd_error *e)
{
    return shop_checkout_load(sh, owner, id, out, e);
}

/* The mutation loop: load -> fn -> compare-and-swap save, retried. With
 * is_replay, a checkout it recognises as already edited by op_key is handed
 * back as loaded, fn not run, *replayed = 1. fn records the key itself, so
 * the key and the effect land in the same save. */
int shop_edit_loop(struct shop *sh, const char *owner, const char *id, const char *op_key,
                   shop_replay_fn is_replay, shop_edit_fn fn, void *arg, struct checkout **out,
                   int *replayed, struct agentd_error *e)
{
    if (replayed)
        *replayed = 0;
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        struct checkout *c = NULL;
        int rc = shop_checkout_load(sh, owner, id, &c, e);
        if (rc)
            return rc;
        if (is_replay && is_replay(c, op_key)) {
            if (replayed)
                *replayed = 1;
            *out = c;
            return 0;
        }
        struct shop_rules_ctx ctx;
        struct shop_rules r;
        rc = shop_rules_begin(sh, &ctx, &r, e);
        if (rc == 0) {
            rc = fn(c, &r, arg, e);
            shop_rules_end(&ctx);
        }
        if (rc == 0)
            rc = save(sh, c, e);
        if (rc == 0) {
            *out = c;
            return 0;
        }
        checkout_free(c);
        if (rc != AGENTD_ECONFLICT || e->code[0])
            return rc; /* a domain conflict (e.g. terminal state) is final */
        if ((rc = op_batch_flush(sh, e)))
            return rc;
        backoff(attempt);
    }
    return agentd_fail(e, AGENTD_ECONFLICT, "conflict", NULL,
                         "the checkout is being changed by many requests at once; retry");
}

struct keyed_arg {
    shop_edit_fn fn;
    void *arg;
    const char *op_key;
};

/* The caller's edit, then its key, on the same working checkout. */
static int edit_keyed(struct checkout *c, const struct shop_rules *r, void *arg,
                      struct agentd_error *e)
{
    struct keyed_arg *k = arg;
    int rc = k->fn(c, r, k->arg, e);
    return rc ? rc : checkout_op_key_add(c, k->op_key, e);
}

int shop_edit_op(struct shop *sh, const char *owner, const char *id, const char *op_key,
                 shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                 struct agentd_error *e)
{
    if (!op_key)
        return shop_edit_loop(sh, owner, id, NULL, NULL, fn, arg, out, replayed, e);
    if (replayed)
        *replayed = 0;
    int rc = checkout_op_key_check(op_key, e);
    if (rc)
        return rc;
    struct keyed_arg k = { fn, arg, op_key };
    return shop_edit_loop(sh, owner, id, op_key, checkout_op_key_has, edit_keyed, &k, out,
                          replayed, e);
}

int shop_checkout_edit(struct shop *sh, const char *owner, const char *id, const char *op_key,
                       shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                       struct agentd_error *e)
{
    shop_batch_begin(sh);
    int rc = shop_edit_op(sh, owner, id, op_key, fn, arg, out, replayed, e);
    rc = audited(sh, owner, "checkout.update", id, rc, e);
    int crc = shop_batch_end(sh, rc, e);
    if (crc != rc) { /* done, then its commit failed: nothing was kept */
        checkout_free(*out);
        *out = NULL;
    }
    return crc;
}

struct update_arg {
    const json_t *req;
    int64_t if_match;
};

static int edit_update(struct checkout *c, const struct shop_rules *r, void *arg,
                       struct agentd_error *e)
{
    struct update_arg *u = arg;
    if (u->if_match >= 0 && c->version != u->if_match)
        return agentd_fail(e, AGENTD_ECONFLICT, "version_conflict", NULL,
                             "the checkout changed (version %lld, If-Match %lld): reload and retry",
                             (long long)c->version, (long long)u->if_match);
    return checkout_update(c, r, u->req, e);
}

int shop_checkout_update(struct shop *sh, const char *owner, const char *id, const json_t *req,
                         int64_t if_match, struct checkout **out, struct agentd_error *e)
{
    struct update_arg u = { req, if_match };
    return shop_checkout_edit(sh, owner, id, NULL, edit_update, &u, out, NULL, e);
}

struct add_arg {
    const char *product_id;
    int64_t quantity;
};

static int edit_add(struct checkout *c, const struct shop_rules *r, void *arg,
                    struct agentd_error *e)
{
    struct add_arg *a = arg;
    return checkout_item_add(c, r, a->product_id, a->quantity, e);
}

int shop_checkout_add_item(struct shop *sh, const char *owner, const char *id,
                               const char *op_key, const char *product_id, int64_t quantity,
                               struct checkout **out, int *replayed, struct agentd_error *e)
{
    struct add_arg a = { product_id, quantity };
    return shop_checkout_edit(sh, owner, id, op_key, edit_add, &a, out, replayed, e);
}

/* Not while a live process completes the checkout: it may have authorized
 * the payment already, and a cancel then would leave an authorization
 * without an order. One whose process died may be canceled. */
static int edit_cancel(struct checkout *c, const struct shop_rules *r, void *arg,
                       struct agentd_error *e)
{
    const struct shop *sh = arg;
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS && !shop_claim_abandoned(sh, c, r->now))
        return agentd_fail(e, AGENTD_ECONFLICT, "complete_in_progress", NULL,
                             "checkout %.64s is being completed; cancel it if that fails",
                             c->id);
    return checkout_cancel(c, r, e);
}

int shop_checkout_cancel(struct shop *sh, const char *owner, const char *id,
                         struct checkout **out, struct agentd_error *e)
{
    shop_batch_begin(sh);
    int rc = shop_edit_op(sh, owner, id, NULL, edit_cancel, sh, out, NULL, e);
    rc = audited(sh, owner, "checkout.cancel", id, rc, e);
    int crc = shop_batch_end(sh, rc, e);
    if (crc != rc) { /* done, then its commit failed: nothing was kept */
        checkout_free(*out);
        *out = NULL;
    }
    return crc;
}

/* ---- for the shop's other files (shop_internal.h) ---- */

struct store *shop_store(const struct shop *sh) { return sh->st; }
const char *shop_public_url(const struct shop *sh) { return sh->public_url; }

int shop_audit_row(struct shop *sh, const char *owner, const char *action, const char *target,
                   int rc, const struct agentd_error *e)
{
    return audited(sh, owner, action, target, rc, e);
}
