/* What shop.c and shop_complete.c share: the shop itself and the steps of
 * an operation (rules, load, the store document, the edit loop, one commit
 * per operation). Only for those two files. */
#ifndef AGENTD_SHOP_OPS_H
#define AGENTD_SHOP_OPS_H

#include "shop/shop.h"
#include "commerce/payment.h"

struct catalog;
struct checkout_cache;
struct sealed_memo;
struct seal_keyring;
struct shop_address_memo;
struct store;

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

/* The catalog and live stock, for one operation: shop_rules_begin fills r
 * (0, or AGENTD_EUNAVAILABLE without a catalog); shop_rules_end after. */
struct shop_rules_ctx {
    struct shop *sh;
    struct catalog *cat;
};
int shop_rules_begin(struct shop *sh, struct shop_rules_ctx *ctx, struct shop_rules *r,
                     struct agentd_error *e);
void shop_rules_end(struct shop_rules_ctx *ctx);

/* A store failure rc in *e (not_found for AGENTD_ENOTFOUND); returns rc. */
int shop_store_fail(struct agentd_error *e, int rc);

/* One commit per operation: a store batch of our own unless the caller has
 * one open. shop_batch_end returns rc, or the commit's failure when rc was 0. */
void shop_batch_begin(struct shop *sh);
int shop_batch_end(struct shop *sh, int rc, struct agentd_error *e);

/* The checkout as stored (another owner's is AGENTD_ENOTFOUND), version set. */
int shop_checkout_load(struct shop *sh, const char *owner, const char *id, struct checkout **out,
                       struct agentd_error *e);
/* The store document of c, credentials sealed (memo may be NULL); malloc'd,
 * NULL on failure. */
char *shop_checkout_document(struct shop *sh, const struct checkout *c, struct sealed_memo *memo);

/* Whether a loaded checkout already shows the effect of the call op_key. */
typedef int (*shop_replay_fn)(const struct checkout *c, const char *op_key);

/* The mutation loop: load -> fn -> compare-and-swap save, retried. With
 * is_replay, a checkout already edited by op_key is handed back as loaded,
 * fn not run, *replayed = 1. */
int shop_edit_loop(struct shop *sh, const char *owner, const char *id, const char *op_key,
                   shop_replay_fn is_replay, shop_edit_fn fn, void *arg, struct checkout **out,
                   int *replayed, struct agentd_error *e);
/* shop_edit_loop with op_key recorded by the edit itself (a replay: as loaded). */
int shop_edit_op(struct shop *sh, const char *owner, const char *id, const char *op_key,
                 shop_edit_fn fn, void *arg, struct checkout **out, int *replayed,
                 struct agentd_error *e);

/* Whether the process completing c died (or has held it past the lease):
 * then another call may carry the completion on, or cancel it
 * (shop_complete.c). */
int shop_claim_abandoned(const struct shop *sh, const struct checkout *c, int64_t now_s);

#endif
