/* Order operations over the store: read, the PUT's full update and the
 * shipping simulation (compare-and-swap on the order's version), and the
 * permalink page's token check. */
#include "shop/shop.h"
#include "shop/shop_internal.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/reqid.h"
#include "store/store.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORDER_CAS_TRIES 16

static int order_fail(struct agentd_error *e, int rc)
{
    if (rc == AGENTD_ENOTFOUND)
        return agentd_fail(e, rc, "not_found", NULL, "no such order");
    if (rc == AGENTD_ECONFLICT)
        return agentd_fail(e, rc, "version_conflict", NULL,
                           "the order changed since it was read: read it again");
    return agentd_fail(e, rc, agentd_err_code(rc), NULL, "%s", agentd_err_msg(rc));
}

static int row_load(struct shop *sh, const char *owner, const char *id, struct store_order **row,
                    struct agentd_error *e)
{
    int rc = store_order_get(shop_store(sh), id, row);
    if (rc == 0 && owner && strcmp((*row)->owner, owner) != 0)
        rc = AGENTD_ENOTFOUND; /* another principal's order does not exist for you */
    if (rc) {
        store_order_free(*row);
        *row = NULL;
        return order_fail(e, rc);
    }
    return 0;
}

static int row_order(const struct store_order *row, struct order **out, struct agentd_error *e)
{
    json_error_t je;
    json_t *doc = json_loads(row->document, 0, &je);
    int rc = doc ? order_from_json(doc, out, e)
                 : agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "stored order is not JSON");
    json_decref(doc);
    if (rc == 0)
        (*out)->version = row->version;
    return rc;
}

/* The order and the webhook receiver its document keeps (*webhook NULL:
 * none; malloc'd) */
static int order_load_for_edit(struct shop *sh, const char *owner, const char *id,
                               struct order **out, char **webhook, struct agentd_error *e)
{
    struct store_order *row = NULL;
    *out = NULL;
    *webhook = NULL;
    int rc = row_load(sh, owner, id, &row, e);
    if (rc == 0)
        rc = row_order(row, out, e);
    if (rc == 0 && strstr(row->document, "\"_agentd\"") &&
        !(*webhook = shop_order_stored_webhook(row->document))) {
        order_free(*out);
        *out = NULL;
        rc = order_fail(e, AGENTD_ENOMEM);
    }
    store_order_free(row);
    return rc;
}

int shop_order_load(struct shop *sh, const char *owner, const char *id, struct order **out,
                    struct agentd_error *e)
{
    struct store_order *row = NULL;
    *out = NULL;
    int rc = row_load(sh, owner, id, &row, e);
    if (rc == 0)
        rc = row_order(row, out, e);
    store_order_free(row);
    return rc;
}

int shop_order_get(struct shop *sh, const char *owner, const char *id, struct order **out,
                   struct agentd_error *e)
{
    return shop_order_load(sh, owner, id, out, e);
}

/* the order webhook a change sends (NULL: none) */
static const char *change_event(unsigned changes)
{
    if (changes & ORDER_CHANGE_CANCELED)
        return "order_canceled";
    if (changes & ORDER_CHANGE_SHIPPED)
        return "order_shipped";
    return changes & ORDER_CHANGE_UPDATED ? "order_updated" : NULL;
}

/* o over version o->version, with its webhook event (when it has a
 * receiver) in the same transaction; on success the version moves on. */
static int order_save(struct shop *sh, struct order *o, const char *webhook, unsigned changes)
{
    char *doc = shop_order_document(o, webhook);
    struct store_outbox ev = { 0 };
    const char *type = change_event(changes);
    int rc = doc ? 0 : AGENTD_ENOMEM;
    if (rc == 0 && webhook && type)
        rc = shop_order_event_build(type, o, webhook, &ev);
    if (rc == 0)
        rc = store_order_update(shop_store(sh), o->id, o->version, doc, ev.id ? &ev : NULL);
    shop_order_event_clear(&ev);
    free(doc);
    if (rc == 0)
        o->version++;
    return rc;
}

typedef int (*order_edit_fn)(struct order *o, void *arg, unsigned *changes,
                             struct agentd_error *e);

/* load -> edit -> compare-and-swap, again on a lost race unless the caller
 * named the version it read (if_match >= 0). */
static int order_edit(struct shop *sh, const char *owner, const char *id, int64_t if_match,
                      order_edit_fn fn, void *arg, struct order **out, unsigned *changes,
                      struct agentd_error *e)
{
    *out = NULL;
    *changes = 0;
    for (int attempt = 0; attempt < ORDER_CAS_TRIES; attempt++) {
        struct order *o = NULL;
        char *webhook = NULL;
        int rc = order_load_for_edit(sh, owner, id, &o, &webhook, e);
        if (rc == 0 && if_match >= 0 && o->version != if_match)
            rc = order_fail(e, AGENTD_ECONFLICT);
        if (rc == 0)
            rc = fn(o, arg, changes, e);
        if (rc == 0)
            rc = order_save(sh, o, webhook, *changes);
        free(webhook);
        if (rc == AGENTD_ECONFLICT && if_match < 0) {
            order_free(o);
            *changes = 0;
            continue; /* someone else's update landed first: apply ours to theirs */
        }
        if (rc == 0) {
            *out = o;
            return 0;
        }
        order_free(o);
        if (!e || !e->code[0])
            order_fail(e, rc);
        return rc;
    }
    return order_fail(e, AGENTD_ECONFLICT);
}

static int edit_put(struct order *o, void *arg, unsigned *changes, struct agentd_error *e)
{
    return order_apply_update(o, arg, changes, e);
}

int shop_order_update(struct shop *sh, const char *owner, const char *id, const json_t *req,
                      int64_t if_match, struct order **out, unsigned *changes,
                      struct agentd_error *e)
{
    int rc = order_edit(sh, owner, id, if_match, edit_put, (void *)req, out, changes, e);
    return shop_audit_row(sh, owner, "order.update", id, rc, e);
}

static int edit_ship(struct order *o, void *arg, unsigned *changes, struct agentd_error *e)
{
    (void)arg;
    char ev[48], trk[48], url[128];
    id_new("fev_", ev, sizeof ev);
    id_new("TRK", trk, sizeof trk);
    /* a reserved name (RFC 2606): data for the buyer, never contacted */
    snprintf(url, sizeof url, "https://tracking.example/track/%s", trk);
    int rc = order_append_shipped(o, ev, clock_wall_ms() / 1000, "Mock Carrier", trk, url, e);
    if (rc == 0)
        *changes = ORDER_CHANGE_UPDATED | ORDER_CHANGE_SHIPPED;
    return rc;
}

int shop_order_mark_shipped(struct shop *sh, const char *id, struct order **out,
                            unsigned *changes, struct agentd_error *e)
{
    int rc = order_edit(sh, NULL, id, -1, edit_ship, NULL, out, changes, e);
    return shop_audit_row(sh, NULL, "order.update", id, rc, e);
}

/* ---- the permalink page's token ---- */

int shop_order_token_new(char token[SHOP_ORDER_TOKEN_LEN + 1], char hash[65])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[24]; /* 192 bits */
    if (RAND_bytes(raw, sizeof raw) != 1)
        return AGENTD_EINTERNAL;
    for (size_t i = 0, o = 0; i < sizeof raw; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        token[o++] = b64[v >> 18 & 63];
        token[o++] = b64[v >> 12 & 63];
        token[o++] = b64[v >> 6 & 63];
        token[o++] = b64[v & 63];
    }
    token[SHOP_ORDER_TOKEN_LEN] = 0;
    OPENSSL_cleanse(raw, sizeof raw);
    store_apikey_hash(token, hash); /* SHA-256 hex, the same digest as API keys */
    return 0;
}

int shop_order_by_token(struct shop *sh, const char *id, const char *token, struct order **out,
                        struct agentd_error *e)
{
    *out = NULL;
    struct store_order *row = NULL;
    int rc = token && *token ? row_load(sh, NULL, id, &row, e) : order_fail(e, AGENTD_ENOTFOUND);
    if (rc)
        return rc;
    char hash[65];
    store_apikey_hash(token, hash);
    int ok = row->access_hash && strlen(row->access_hash) == 64 &&
             CRYPTO_memcmp(hash, row->access_hash, 64) == 0;
    rc = ok ? row_order(row, out, e) : order_fail(e, AGENTD_ENOTFOUND);
    store_order_free(row);
    return rc;
}
