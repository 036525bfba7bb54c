/* Checkout completion: ready -> complete_in_progress (claimed) -> payment
 * authorized -> one transaction that takes stock, writes the order and
 * marks the checkout completed; a claim whose process died is taken over.
 * Split from shop.c; the two share shop/shop_ops.h. */
#define _GNU_SOURCE
#include "shop/shop.h"
#include "shop/checkout_cache.h"
#include "shop/shop_internal.h"
#include "shop/shop_ops.h"
#include "commerce/payment.h"
#include "core/err.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/reqid.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A completion whose process cannot be known dead (another host) may be
 * carried on by another call once its claim is this old: the payment call
 * and the order's transaction take seconds, not minutes. */
#define COMPLETION_LEASE_MS (120 * 1000)

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
int shop_claim_abandoned(const struct shop *sh, const struct checkout *c, int64_t now_s)
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
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS && shop_claim_abandoned(b->sh, c, r->now)) {
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
    if (shop_edit_op(sh, owner, id, NULL, edit_abort, (void *)ref, &c, NULL, &err) == 0)
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
    int rc = shop_edit_loop(sh, owner, id, op_key, op_key ? completion_replay : NULL,
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
    char *co_doc = shop_checkout_document(sh, done, NULL); /* completed: no credential left to seal */
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
            shop_store_fail(e, rc);
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
    struct shop_rules_ctx ctx;
    struct shop_rules r;
    char order_id[48], *permalink = NULL, token[SHOP_ORDER_TOKEN_LEN + 1], hash[65];
    id_new("ord_", order_id, sizeof order_id);
    struct order *o = NULL;
    shop_saved_reset(); /* the claim's document no longer describes done */
    int rc = shop_order_token_new(token, hash);
    if (rc == 0)
        rc = shop_rules_begin(sh, &ctx, &r, e);
    /* created without a receiver (no profile then): this request's, if any */
    if (rc == 0 && !done->webhook_url && shop_webhook_current() &&
        !(done->webhook_url = strdup(shop_webhook_current()))) {
        shop_rules_end(&ctx);
        rc = AGENTD_ENOMEM;
    }
    if (rc == 0) {
        /* the buyer's order-status page (api/order_page.c): the token is
         * its only key; the store keeps its hash for the check */
        if (asprintf(&permalink, "%s/orders/%s/status?t=%s", sh->public_url, order_id, token) < 0)
            permalink = NULL;
        rc = permalink ? checkout_mark_completed(done, &r, order_id, permalink, e) : AGENTD_ENOMEM;
        shop_rules_end(&ctx);
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
    if (shop_checkout_load(sh, owner, id, now, &le) == 0 && (*now)->status == CHECKOUT_COMPLETED &&
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
    shop_batch_begin(sh); /* the order and the audit row: one commit */
    rc = complete_place_order(sh, owner, c, &o, e);
    if (rc)
        shop_batch_end(sh, rc, e); /* nothing of ours pending: the order was not written */
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

int shop_checkout_complete(struct shop *sh, const char *owner, const char *id,
                           const char *op_key, const json_t *payment_data,
                           struct checkout **out, struct order **order_out, int *declined,
                           int *replayed, struct agentd_error *e)
{
    int rc = complete_op(sh, owner, id, op_key, payment_data, out, order_out, declined, replayed,
                         e);
    rc = shop_audit_row(sh, owner, "checkout.complete", id, rc, e);
    int crc = shop_batch_end(sh, rc, e);
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
