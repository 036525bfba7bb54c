/* Shop operations: the only place that combines the pure checkout domain
 * with the store. Pattern for every mutation: load (version v) -> apply a
 * pure function -> store_checkout_update(id, v, ...) -> on AGENTD_ECONFLICT
 * reload and apply again, a bounded number of times. */
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
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/jsondump.h"
#include "core/log.h"
#include "core/reqid.h"
#include "core/seal.h"
#include "shop/sealed_doc.h"
#include "shop/shop_internal.h"
#include "store/store.h"

#include <openssl/evp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAS_TRIES 64
/* A completion whose process cannot be known dead (another host) may be
 * carried on by another call once its claim is this old: the payment call
 * and the order's transaction take seconds, not minutes. */
#define COMPLETION_LEASE_MS (120 * 1000)

struct shop {
    struct store *st;
    struct merchant *m;
    char *public_url;
    char *continue_base;
    char *privacy_url, *terms_url; /* NULL: that link is omitted (shop_set_legal_links) */
    struct checkout_link links[2];
    size_t n_links;
    json_t *handlers;
    json_t *declared; /* the merchant's payment_handlers.json (NULL: none), advertised too */
    /* mock_payment_handler, example_payment_provider: both test mode */
    struct payment_handler example;
    const struct payment_handler *hs[2];
    size_t n_hs;                   /* 0: test payments refused (shop_set_test_payments) */
    char *instance; /* this process, on completion claims (NULL: unknown) */
    char *lock_dir; /* instance lock files, to know a claim's process died */
    /* seals instrument credentials in stored documents: the server's ring
     * (shop_set_keyring), else an ephemeral one of our own */
    const struct seal_keyring *kr;
    struct seal_keyring *own_kr;
    /* checkouts as last stored, parsed (shop/checkout_cache.h) */
    struct checkout_cache *cache;
    /* saved addresses as last opened or saved (shop/addresses.h) */
    struct shop_address_memo *addr_memo;
};

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

struct rules_ctx {
    struct shop *sh;
    struct catalog *cat;
};

static const struct product *r_product(void *ud, const char *id)
{
    return catalog_product(((struct rules_ctx *)ud)->cat, id);
}

static int64_t r_stock(void *ud, const char *id)
{
    int64_t q;
    return store_stock_get(((struct rules_ctx *)ud)->sh->st, id, &q) == 0 ? q : -1;
}

static const struct shipping_rate *const *r_rates(void *ud, const char *country, size_t *n)
{
    return catalog_shipping_rates(((struct rules_ctx *)ud)->cat, country, n);
}

static const struct shipping_rate *r_rate(void *ud, const char *id)
{
    return catalog_shipping_rate(((struct rules_ctx *)ud)->cat, id);
}

static const struct discount *r_discount(void *ud, const char *code)
{
    return catalog_discount(((struct rules_ctx *)ud)->cat, code);
}

static const struct tax_rate *r_tax(void *ud, const char *country, const char *region)
{
    return catalog_tax_rate(((struct rules_ctx *)ud)->cat, country, region);
}

static size_t r_saved(void *ud, const char *email, struct postal_address *out, size_t max)
{
    struct rules_ctx *ctx = ud;
    return shop_addresses_lookup(ctx->sh->st, ctx->sh->kr, ctx->sh->addr_memo, ctx->cat, email,
                                 out, max);
}

static int r_remember(void *ud, const char *email, const struct postal_address *a, char *id,
                      size_t len)
{
    struct rules_ctx *ctx = ud;
    return shop_addresses_remember(ctx->sh->st, ctx->sh->kr, ctx->sh->addr_memo, email, a, id,
                                   len);
}

static int rules_begin(struct shop *sh, struct rules_ctx *ctx, struct shop_rules *r,
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

static void rules_end(struct rules_ctx *ctx) { catalog_unref(ctx->cat); }

/* ---- load and save ---- */

static int store_fail(struct agentd_error *e, int rc)
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

static void op_batch_begin(struct shop *sh)
{
    if (!tl_own_batch && store_batch_begin(sh->st) == 1)
        tl_own_batch = sh->st;
}

/* Ends our batch (if one is open): rc, or the commit's failure when rc was 0
 * (then nothing of the operation was kept). */
static int op_batch_end(struct shop *sh, int rc, struct agentd_error *e)
{
    if (tl_own_batch != sh->st)
        return rc;
    tl_own_batch = NULL;
    int crc = store_batch_end(sh->st);
    if (rc == 0 && crc != 0)
        return store_fail(e, crc);
    return rc;
}

/* A lost compare-and-swap inside our batch: what it wrote so far (a saved
 * address) commits now, so the retry's reads see every commit before it. */
static int op_batch_flush(struct shop *sh, struct agentd_error *e)
{
    if (tl_own_batch != sh->st)
        return 0;
    int rc = op_batch_end(sh, 0, e);
    op_batch_begin(sh);
    return rc;
}

static int load(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                struct agentd_error *e)
{
    struct store_checkout *row = NULL;
    int rc = store_checkout_get(sh->st, id, &row);
    if (rc == 0 && strcmp(row->owner, owner) != 0)
        rc = AGENTD_ENOTFOUND; /* another tenant's checkout does not exist for you */
    if (rc != 0) {
        store_checkout_free(row);
        return store_fail(e, rc);
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
static char *document(struct shop *sh, const struct checkout *c, struct sealed_memo *memo)
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
    char *doc = document(sh, c, &memo);
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
        store_fail(e, rc);
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
        rc = load(sh, owner, id, &c, &le);
        if (rc == 0)
            goto replay;
        if (rc != AGENTD_ENOTFOUND) {
            *e = le;
            return rc;
        }
    } else {
        id_new("chk_", id, sizeof id);
    }
    struct rules_ctx ctx;
    struct shop_rules r;
    if ((rc = rules_begin(sh, &ctx, &r, e)))
        return rc;
    rc = checkout_create(req, &r, id, &c, e);
    rules_end(&ctx);
    if (rc == 0 && shop_webhook_current() && !(c->webhook_url = strdup(shop_webhook_current())))
        rc = agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    if (rc == 0 && op_key)
        rc = checkout_op_key_add(c, op_key, e);
    if (rc) {
        checkout_free(c);
        return rc;
    }
    struct sealed_memo memo = { 0 };
    char *doc = document(sh, c, &memo);
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
        if ((rc = load(sh, owner, id, &c, e)))
            return rc;
        goto replay;
    }
    if (rc) {
        checkout_free(c);
        return store_fail(e, rc);
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
    op_batch_begin(sh);
    int rc = create_op(sh, owner, req, op_key, out, replayed, e);
    rc = audited(sh, owner, "checkout.create", rc == 0 ? (*out)->id : "", rc, e);
    int crc = op_batch_end(sh, rc, e);
    if (crc != rc) { /* done, then its commit failed: nothing was kept */
        checkout_free(*out);
        *out = NULL;
    }
    return crc;
}

int shop_checkout_get(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                      struct agentd_error *e)
{
    return load(sh, owner, id, out, e);
}

/* Whether a loaded checkout already shows the effect of the call op_key. */
typedef int (*replay_fn)(const struct checkout *c, const char *op_key);

/* The mutation loop: load -> fn -> compare-and-swap save, retried. With
 * is_replay, a checkout it recognises as already edited by op_key is handed
 * back as loaded, fn not run, *replayed = 1. fn records the key itself, so
 * the key and the effect land in the same save. */
static int edit_loop(struct shop *sh, const char *owner, const char *id, const char *op_key,
                     replay_fn is_replay, shop_edit_fn fn, void *arg, struct checkout **out,
                     int *replayed, struct agentd_error *e)
{
    if (replayed)
        *replayed = 0;
    for (int attempt = 0; attempt < CAS_TRIES; attempt++) {
        struct checkout *c = NULL;
        int rc = load(sh, owner, id, &c, e);
        if (rc)
            return rc;
        if (is_replay && is_replay(c, op_key)) {
            if (replayed)
                *replayed = 1;
            *out = c;
            return 0;
        }
        struct rules_ctx ctx;
        struct shop_rules r;
        rc = rules_begin(sh, &ctx, &r, e);
        if (rc == 0) {
            rc = fn(c, &r, arg, e);
            rules_end(&ctx);
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

static int edit_op(struct shop *sh, const char *owner, const char *id, const char *op_key,
                   shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                   struct agentd_error *e)
{
    if (!op_key)
        return edit_loop(sh, owner, id, NULL, NULL, fn, arg, out, replayed, e);
    if (replayed)
        *replayed = 0;
    int rc = checkout_op_key_check(op_key, e);
    if (rc)
        return rc;
    struct keyed_arg k = { fn, arg, op_key };
    return edit_loop(sh, owner, id, op_key, checkout_op_key_has, edit_keyed, &k, out, replayed, e);
}

int shop_checkout_edit(struct shop *sh, const char *owner, const char *id, const char *op_key,
                       shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                       struct agentd_error *e)
{
    op_batch_begin(sh);
    int rc = edit_op(sh, owner, id, op_key, fn, arg, out, replayed, e);
    rc = audited(sh, owner, "checkout.update", id, rc, e);
    int crc = op_batch_end(sh, rc, e);
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

static int claim_abandoned(const struct shop *sh, const struct checkout *c, int64_t now_s);

/* Not while a live process completes the checkout: it may have authorized
 * the payment already, and a cancel then would leave an authorization
 * without an order. One whose process died may be canceled. */
static int edit_cancel(struct checkout *c, const struct shop_rules *r, void *arg,
                       struct agentd_error *e)
{
    const struct shop *sh = arg;
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS && !claim_abandoned(sh, c, r->now))
        return agentd_fail(e, AGENTD_ECONFLICT, "complete_in_progress", NULL,
                             "checkout %.64s is being completed; cancel it if that fails",
                             c->id);
    return checkout_cancel(c, r, e);
}

int shop_checkout_cancel(struct shop *sh, const char *owner, const char *id,
                         struct checkout **out, struct agentd_error *e)
{
    op_batch_begin(sh);
    int rc = edit_op(sh, owner, id, NULL, edit_cancel, sh, out, NULL, e);
    rc = audited(sh, owner, "checkout.cancel", id, rc, e);
    int crc = op_batch_end(sh, rc, e);
    if (crc != rc) { /* done, then its commit failed: nothing was kept */
        checkout_free(*out);
        *out = NULL;
    }
    return crc;
}

/* ---- completion ---- */

struct begin_arg {
    struct shop *sh;
    const char *op_key; /* recorded with the move to complete_in_progress */
    int total_changed;
    int out_of_stock;
    int took_over;
    struct agentd_error stock_err;
};

/* Whether the process completing c died (or has held it past the lease):
 * then another call may carry the completion on. */
static int claim_abandoned(const struct shop *sh, const struct checkout *c, int64_t now_s)
{
    const struct checkout_claim *k = &c->completing;
    int64_t age_ms = (now_s - (k->key ? k->at : c->updated_at)) * 1000;
    if (!k->by)
        return age_ms > COMPLETION_LEASE_MS; /* its process is not known */
    if (sh->instance && strcmp(k->by, sh->instance) == 0) /* ours: an abort that failed */
        return age_ms > COMPLETION_LEASE_MS;
    return instance_orphaned(sh->instance ? sh->instance : "", k->by, age_ms, COMPLETION_LEASE_MS,
                             instance_probe, sh->lock_dir,
                             instance_pid_dead);
}

/* Claims the completion for this process under key (the authorization's
 * idempotency key), with the call's op_key. */
static int claim(struct checkout *c, const struct shop_rules *r, const struct begin_arg *b,
                 const char *key, struct agentd_error *e)
{
    int rc = checkout_claim_set(c, key, b->sh->instance, r->now, e);
    if (rc == 0 && b->op_key)
        rc = checkout_op_key_add(c, b->op_key, e);
    return rc;
}

/* ready -> complete_in_progress at the stored total. If re-pricing moved the
 * total, the new prices are saved (so the buyer sees them) and the caller
 * answers 409: nothing is charged at a price the buyer did not see. Stock
 * that ran out since the cart was built is saved the same way (the session
 * shows the out_of_stock message) and answered 409 out_of_stock, as when
 * the order's own stock transaction finds it short: a buyer racing for the
 * last unit gets one answer whichever step noticed.
 *
 * A checkout left complete_in_progress by a process that died (kill -9
 * between the claim and the order) is taken over: the claim becomes ours,
 * its authorization key stays, and this call carries the completion on —
 * whatever key, or none, it came with. */
static int edit_begin_complete(struct checkout *c, const struct shop_rules *r, void *arg,
                               struct agentd_error *e)
{
    struct begin_arg *b = arg;
    b->total_changed = b->out_of_stock = b->took_over = 0; /* this attempt's outcome only */
    char key[CHECKOUT_OP_KEY_MAX + 1];
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS && claim_abandoned(b->sh, c, r->now)) {
        /* a claim from before claims were kept: the key its keyless
         * attempt used (the checkout's id and version after its move) */
        snprintf(key, sizeof key, "%s", c->completing.key ? c->completing.key : "");
        if (!key[0])
            snprintf(key, sizeof key, "%s/v%lld", c->id, (long long)c->version);
        int rc = claim(c, r, b, key, e);
        b->took_over = rc == 0;
        return rc;
    }
    int rc = checkout_begin_complete(c, r, -1, e);
    if (rc == AGENTD_ECONFLICT && strcmp(e->code, "total_changed") == 0) {
        b->total_changed = 1;
        return 0;
    }
    if (rc == AGENTD_EINVAL && strcmp(e->code, "out_of_stock") == 0) {
        b->out_of_stock = 1;
        b->stock_err = *e;
        memset(e, 0, sizeof *e); /* a lost compare-and-swap must retry, not stop */
        return checkout_refresh(c, r, e);
    }
    if (rc)
        return rc;
    /* the authorization's key: the call's, else this attempt's own (the
     * checkout and its version once this move is saved) */
    if (b->op_key)
        snprintf(key, sizeof key, "%s", b->op_key);
    else
        snprintf(key, sizeof key, "%s/v%lld", c->id, (long long)c->version + 1);
    return claim(c, r, b, key, e);
}

/* A completion replay: this call's key already moved the checkout on. */
static int completion_replay(const struct checkout *c, const char *op_key)
{
    return (c->status == CHECKOUT_COMPLETE_IN_PROGRESS || c->status == CHECKOUT_COMPLETED) &&
           checkout_op_key_has(c, op_key);
}

/* Answers a replayed completion with the completed checkout c and its
 * order. Takes c. */
static int completed_reply(struct shop *sh, const char *owner, struct checkout *c,
                           struct checkout **out, struct order **order_out, int *replayed,
                           struct agentd_error *e);

/* Our claim, as step 1 left it: an abort undoes only that. */
struct claim_ref {
    const char *by;
    int64_t at;
};

static int str_same(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static int edit_abort(struct checkout *c, const struct shop_rules *r, void *arg,
                      struct agentd_error *e)
{
    const struct claim_ref *ours = arg;
    if (c->status != CHECKOUT_COMPLETE_IN_PROGRESS || c->completing.at != ours->at ||
        !str_same(c->completing.by, ours->by))
        return agentd_fail(e, AGENTD_ECONFLICT, "not_ours", NULL,
                             "the completion is no longer ours"); /* nothing to save */
    return checkout_abort_complete(c, r, e);
}

/* Back to ready after a decline or short stock; keeps the first error.
 * Not when another process has taken the completion over meanwhile (we
 * outlived the claim's lease): it is carrying it on. */
static void abort_complete(struct shop *sh, const char *owner, const char *id,
                           const struct claim_ref *ref)
{
    struct checkout *c = NULL;
    struct agentd_error err = { 0 };
    if (edit_op(sh, owner, id, NULL, edit_abort, (void *)ref, &c, NULL, &err) == 0)
        checkout_free(c);
    else if (strcmp(err.code, "not_ours") != 0)
        log_msg(LOG_ERROR, NULL, "checkout %s left complete_in_progress: %s", id, err.msg);
}

/* Names the first line whose product lacks stock (for a clear 409). */
static void name_short_item(struct shop *sh, const struct checkout *c, struct agentd_error *e)
{
    for (size_t i = 0; i < c->n_lines; i++) {
        int64_t q = 0;
        if (store_stock_get(sh->st, c->lines[i].item_id, &q) != 0 || q < c->lines[i].quantity) {
            agentd_fail(e, AGENTD_ESTOCK, "out_of_stock", NULL,
                          "Insufficient stock for item %s (%s): %lld left, %lld in the checkout",
                          c->lines[i].item_id, c->lines[i].title ? c->lines[i].title : "",
                          (long long)(q < 0 ? 0 : q), (long long)c->lines[i].quantity);
            return;
        }
    }
    /* Every read shows enough: the purchase that took the last units is
     * still in the writer's open group commit, which reads do not see yet.
     * Name the checkout's items rather than none. */
    if (c->n_lines == 1) {
        agentd_fail(e, AGENTD_ESTOCK, "out_of_stock", NULL,
                    "Insufficient stock for item %s (%s): another order has just taken the "
                    "last units",
                    c->lines[0].item_id, c->lines[0].title ? c->lines[0].title : "");
        return;
    }
    char ids[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < c->n_lines && used < sizeof ids; i++) {
        int w = snprintf(ids + used, sizeof ids - used, "%s%s", i ? ", " : "",
                         c->lines[i].item_id);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    agentd_fail(e, AGENTD_ESTOCK, "out_of_stock", NULL,
                "Insufficient stock for an item of this checkout (%s): another order has just "
                "taken the last units",
                ids);
}

/* A test-mode handler of ours (refused while test payments are). */
static int test_handler(const struct shop *sh, const char *id)
{
    for (size_t i = 0; i < sizeof sh->hs / sizeof sh->hs[0]; i++)
        if (sh->hs[i]->test_mode && strcmp(sh->hs[i]->id, id) == 0)
            return 1;
    return 0;
}

/* payment_data checked and its instrument parsed, before anything moves:
 * no card numbers, and a test credential never reaches a production
 * checkout, not even as a claim. */
static int complete_payment_parse(const struct shop *sh, const json_t *payment_data,
                                  struct payment_instrument *pi, struct agentd_error *e)
{
    char path[128] = "";
    if (!json_is_object(payment_data))
        return agentd_fail(e, AGENTD_EINVAL, "missing", "$.payment_data",
                             "payment_data is required to complete the checkout");
    if (payment_find_pan_outside_card(payment_data, path, sizeof path))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                             "full card numbers are not accepted: send a payment token");
    struct agentd_error pe = { 0 };
    if (payment_instrument_parse(payment_data, pi, &pe) != 0)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment_data", "%s", pe.msg);
    if (!sh->n_hs && test_handler(sh, pi->handler_id)) {
        agentd_fail(e, AGENTD_EUNPROCESSABLE, "payment_handler_unavailable",
                      "$.payment_data.handler_id",
                      "payment handler '%.64s' is a test handler and is refused in production "
                      "(AGENTD_ALLOW_TEST_PAYMENTS=1 accepts it); nothing was charged",
                      pi->handler_id);
        payment_instrument_clear(pi);
        return AGENTD_EUNPROCESSABLE;
    }
    return 0;
}

/* Step 1: ready -> complete_in_progress, claimed by us (or save the new
 * prices or the short stock and stop). With a key, a checkout this call
 * already moved on is a replay: *resumed = 1, and *out may then be the
 * completed checkout. A completion whose process died is taken over. */
static int complete_claim(struct shop *sh, const char *owner, const char *id, const char *op_key,
                          struct checkout **out, int *resumed, struct agentd_error *e)
{
    struct begin_arg b = { .sh = sh, .op_key = op_key };
    struct checkout *c = NULL;
    int rc = edit_loop(sh, owner, id, op_key, op_key ? completion_replay : NULL,
                       edit_begin_complete, &b, &c, resumed, e);
    if (rc)
        return rc;
    if (*resumed && c->status == CHECKOUT_COMPLETED) {
        *out = c; /* done before: the caller answers as then, charging nothing */
        return 0;
    }
    if (b.took_over) {
        instance_recovered("completion");
        log_msg(LOG_WARN, NULL, "checkout %s: carrying on a completion whose process died", id);
    }
    failpoint("complete_in_progress"); /* tests: a crash between steps 1 and 2 */
    /* resumed (complete_in_progress with our key) or taken over (its
     * process died): carry on from step 2 under the claim's key */
    if (b.out_of_stock) {
        checkout_free(c);
        *e = b.stock_err;
        return AGENTD_ESTOCK;
    }
    if (b.total_changed) {
        checkout_free(c);
        return agentd_fail(e, AGENTD_ECONFLICT, "total_changed", NULL,
                             "prices changed since the checkout was shown; review the new totals "
                             "and complete again");
    }
    *out = c;
    return 0;
}

/* Step 2: authorize exactly the total the buyer saw, under the claim's
 * idempotency key (the call's op_key, or the first attempt's own): a
 * resumed or taken-over completion authorizes again under the same key —
 * the same authorization, never a second charge. */
static int complete_authorize(struct shop *sh, const struct checkout *c, const char *op_key,
                              const struct payment_instrument *pi, int *declined,
                              struct agentd_error *e)
{
    enum payment_result res = PAYMENT_INVALID;
    char ref[128] = "", akey[160];
    struct agentd_error pe = { 0 };
    if (c->completing.key)
        snprintf(akey, sizeof akey, "%s", c->completing.key);
    else if (op_key) /* claimed before claims were kept */
        snprintf(akey, sizeof akey, "%s", op_key);
    else
        snprintf(akey, sizeof akey, "%s/v%lld", c->id, (long long)c->version);
    int rc = payment_authorize(sh->hs, sh->n_hs, pi, c->totals.total, c->currency, akey, &res, ref,
                               sizeof ref, &pe);
    if (rc == 0 && res == PAYMENT_APPROVED)
        return 0;
    if (rc == 0 && res == PAYMENT_DECLINED) {
        *declined = 1;
        return agentd_fail(e, AGENTD_EINVAL, "payment_declined", "$.payment_data",
                             "%s; nothing was charged",
                             pe.msg[0] ? pe.msg : "the payment was declined");
    }
    return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment_data", "%s",
                         pe.msg[0] ? pe.msg : "the payment credential is not usable");
}

/* The order's and the completed checkout's documents, and the stock to
 * take, for step 3's one transaction. */
static int complete_write(struct shop *sh, const char *owner,
                          const struct checkout *done, const struct order *o,
                          const char *access_hash, struct agentd_error *e)
{
    /* the placed event rides in the order's transaction: no crash keeps
     * the order (and the buyer's answer) without it */
    char *order_doc = shop_order_document(o, done->webhook_url);
    shop_documents_count(DOC_SERIALISED);
    char *co_doc = document(sh, done, NULL); /* completed: no credential left to seal */
    struct store_stock_line *take = calloc(done->n_lines ? done->n_lines : 1, sizeof *take);
    struct store_outbox ev = { 0 };
    int rc = order_doc && co_doc && take ? 0 : AGENTD_ENOMEM;
    if (rc == 0 && done->webhook_url)
        rc = shop_order_event_build("order_placed", o, done->webhook_url, &ev);
    if (rc == 0) {
        for (size_t i = 0; i < done->n_lines; i++)
            take[i] = (struct store_stock_line){ done->lines[i].item_id, done->lines[i].quantity };
        struct store_order row = { .id = done->order_id, .checkout_id = done->id,
                                   .owner = (char *)owner, .document = order_doc,
                                   .access_hash = (char *)access_hash,
                                   .event = done->webhook_url ? &ev : NULL };
        rc = store_order_create(sh->st, &row, done->version, checkout_status_name(done->status), co_doc,
                                take, done->n_lines);
        if (rc == 0) {
            checkout_cache_put(sh->cache, done, co_doc);
            shop_saved_keep(done, co_doc, done->version + 1); /* the caller moves it on */
        } else if (rc == AGENTD_ESTOCK)
            name_short_item(sh, done, e);
        else if (rc)
            store_fail(e, rc);
    }
    shop_order_event_clear(&ev);
    free(take);
    free(order_doc);
    free(co_doc);
    return rc;
}

/* Step 3: one transaction takes stock, writes the order and marks the
 * checkout completed. done (ours, complete_in_progress) becomes the
 * completed checkout, in place — no copy: on failure the caller drops it
 * and undoes the claim from the store's copy — and *order_out its order. */
static int complete_place_order(struct shop *sh, const char *owner, struct checkout *done,
                                struct order **order_out, struct agentd_error *e)
{
    struct rules_ctx ctx;
    struct shop_rules r;
    char order_id[48], *permalink = NULL, token[SHOP_ORDER_TOKEN_LEN + 1], hash[65];
    id_new("ord_", order_id, sizeof order_id);
    struct order *o = NULL;
    shop_saved_reset(); /* the claim's document no longer describes done */
    int rc = shop_order_token_new(token, hash);
    if (rc == 0)
        rc = rules_begin(sh, &ctx, &r, e);
    /* created without a receiver (no profile then): this request's, if any */
    if (rc == 0 && !done->webhook_url && shop_webhook_current() &&
        !(done->webhook_url = strdup(shop_webhook_current()))) {
        rules_end(&ctx);
        rc = AGENTD_ENOMEM;
    }
    if (rc == 0) {
        /* the buyer's order-status page (api/order_page.c): the token is
         * its only key; the store keeps its hash for the check */
        if (asprintf(&permalink, "%s/orders/%s/status?t=%s", sh->public_url, order_id, token) < 0)
            permalink = NULL;
        rc = permalink ? checkout_mark_completed(done, &r, order_id, permalink, e) : AGENTD_ENOMEM;
        rules_end(&ctx);
    }
    free(permalink);
    if (rc == 0)
        rc = order_from_checkout(done, &o, e);
    if (rc == 0)
        rc = complete_write(sh, owner, done, o, hash, e);
    if (rc) {
        order_free(o);
        return rc;
    }
    shop_orders_count(done);
    done->version++;
    *order_out = o;
    return 0;
}

/* Step 3 lost to the same keyed call running elsewhere (two replicas
 * resuming one turn)? Then its result is ours: 1 with *now completed. */
static int complete_lost_race(struct shop *sh, const char *owner, const char *id,
                              const char *op_key, struct checkout **now)
{
    struct agentd_error le = { 0 };
    *now = NULL;
    if (load(sh, owner, id, now, &le) == 0 && (*now)->status == CHECKOUT_COMPLETED &&
        checkout_op_key_has(*now, op_key))
        return 1;
    checkout_free(*now);
    *now = NULL;
    return 0;
}

static int complete_op(struct shop *sh, const char *owner, const char *id,
                       const char *op_key, const json_t *payment_data,
                       struct checkout **out, struct order **order_out, int *declined,
                       int *replayed, struct agentd_error *e)
{
    *declined = 0;
    if (replayed)
        *replayed = 0;
    int rc;
    if (op_key && (rc = checkout_op_key_check(op_key, e)))
        return rc;
    struct payment_instrument pi = { 0 };
    if ((rc = complete_payment_parse(sh, payment_data, &pi, e)))
        return rc;
    struct checkout *c = NULL;
    int resumed = 0;
    rc = complete_claim(sh, owner, id, op_key, &c, &resumed, e);
    if (rc == 0 && resumed && c->status == CHECKOUT_COMPLETED) {
        payment_instrument_clear(&pi);
        return completed_reply(sh, owner, c, out, order_out, replayed, e);
    }
    if (rc == 0)
        rc = complete_authorize(sh, c, op_key, &pi, declined, e);
    payment_instrument_clear(&pi);
    if (rc) {
        if (c) { /* claimed, then not authorized: back to ready, nothing charged */
            struct claim_ref ref = { c->completing.by, c->completing.at };
            abort_complete(sh, owner, id, &ref);
        }
        checkout_free(c);
        return rc;
    }
    /* our claim, kept apart: step 3 turns c into the completed checkout */
    struct claim_ref ours = { c->completing.by ? strdup(c->completing.by) : NULL,
                              c->completing.at };
    if (c->completing.by && !ours.by) {
        checkout_free(c);
        return agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    }
    struct order *o = NULL;
    op_batch_begin(sh); /* the order and the audit row: one commit */
    rc = complete_place_order(sh, owner, c, &o, e);
    if (rc)
        op_batch_end(sh, rc, e); /* nothing of ours pending: the order was not written */
    if (rc == 0) {
        free((char *)ours.by);
        *out = c;
        *order_out = o;
        if (replayed)
            *replayed = resumed;
        return 0;
    }
    struct checkout *now = NULL;
    if (op_key && (rc == AGENTD_ECONFLICT || rc == AGENTD_EEXIST) &&
        complete_lost_race(sh, owner, id, op_key, &now)) {
        free((char *)ours.by);
        checkout_free(c);
        memset(e, 0, sizeof *e);
        return completed_reply(sh, owner, now, out, order_out, replayed, e);
    }
    if (!e->code[0])
        agentd_fail(e, rc, agentd_err_code(rc), NULL, "%s", agentd_err_msg(rc));
    abort_complete(sh, owner, id, &ours); /* undo step 1: back to ready */
    free((char *)ours.by);
    checkout_free(c);
    return rc;
}

/* ---- orders ---- */

int shop_checkout_complete(struct shop *sh, const char *owner, const char *id,
                           const char *op_key, const json_t *payment_data,
                           struct checkout **out, struct order **order_out, int *declined,
                           int *replayed, struct agentd_error *e)
{
    int rc = complete_op(sh, owner, id, op_key, payment_data, out, order_out, declined, replayed,
                         e);
    rc = audited(sh, owner, "checkout.complete", id, rc, e);
    int crc = op_batch_end(sh, rc, e);
    if (crc != rc) { /* the order's commit failed: nothing was placed */
        checkout_free(*out);
        *out = NULL;
        order_free(*order_out);
        *order_out = NULL;
    }
    return crc;
}

static int completed_reply(struct shop *sh, const char *owner, struct checkout *c,
                           struct checkout **out, struct order **order_out, int *replayed,
                           struct agentd_error *e)
{
    struct order *o = NULL;
    int rc = c->order_id ? shop_order_load(sh, owner, c->order_id, &o, e)
                         : agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                                         "completed checkout %s names no order", c->id);
    if (rc) {
        checkout_free(c);
        return rc;
    }
    *out = c;
    *order_out = o;
    if (replayed)
        *replayed = 1;
    return 0;
}

/* ---- for the shop's other files (shop_internal.h) ---- */

struct store *shop_store(const struct shop *sh) { return sh->st; }
const char *shop_public_url(const struct shop *sh) { return sh->public_url; }

int shop_audit_row(struct shop *sh, const char *owner, const char *action, const char *target,
                   int rc, const struct agentd_error *e)
{
    return audited(sh, owner, action, target, rc, e);
}
