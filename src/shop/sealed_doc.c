/* Sealing the credential-bearing part of a checkout document before the store
 * sees it, opening it after, and re-sealing every checkout on key rotation. */
#include "shop/sealed_doc.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "commerce/checkout.h"
#include "core/buf.h"
#include "shop/checkout_cache.h"
#include "core/seal.h"
#include "core/jsondump.h"
#include "store/store.h"

#define PAYMENT "payment"
#define SEALED "payment_sealed"

/* 1 if any instrument of a payment object carries a credential token. */
static int has_token(const json_t *payment)
{
    size_t i;
    json_t *in;
    json_array_foreach(json_object_get(payment, "instruments"), i, in)
        if (json_object_get(json_object_get(in, "credential"), "token"))
            return 1;
    return 0;
}

static void cleanse_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int sealed_doc_seal(const struct seal_keyring *kr, const char *id, json_t *doc)
{
    json_t *in = json_object_get(doc, "_agentd");
    json_t *p = json_object_get(in, PAYMENT);
    if (!p || !has_token(p))
        return 0;
    char *text = jsondump(p, JSON_COMPACT, NULL), *sealed = NULL;
    int rc = text ? seal_seal(kr, id, text, strlen(text), &sealed) : AGENTD_ENOMEM;
    cleanse_free(text);
    if (rc == 0 && json_object_set_new(in, SEALED, json_string(sealed)))
        rc = AGENTD_ENOMEM;
    free(sealed);
    if (rc == 0)
        json_object_del(in, PAYMENT);
    return rc;
}

int sealed_doc_open(const struct seal_keyring *kr, const char *id, json_t *doc,
                    struct agentd_error *e)
{
    json_t *in = json_object_get(doc, "_agentd");
    const char *sealed = json_string_value(json_object_get(in, SEALED));
    if (!sealed)
        return 0;
    char *text = NULL;
    int rc = seal_open(kr, id, sealed, &text, NULL, e);
    json_t *p = NULL;
    if (rc == 0 && !(p = json_loads(text, 0, NULL)))
        rc = agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "sealed payment is not JSON");
    cleanse_free(text);
    if (rc == 0 && json_object_set_new(in, PAYMENT, p))
        return agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    json_object_del(in, SEALED);
    return rc == AGENTD_ENOMEM ? rc : rc ? AGENTD_ECORRUPT : 0;
}

struct seal_ctx {
    const struct seal_keyring *kr;
    const char *id;
    struct checkout_cache *cc;
    struct sealed_memo *memo;
};

void sealed_memo_clear(struct sealed_memo *m)
{
    if (m->plain)
        OPENSSL_cleanse(m->plain, m->len);
    free(m->plain);
    free(m->sealed);
    memset(m, 0, sizeof *m);
}

/* Why: sealing is an AES-GCM pass and a fresh nonce from the RNG per save
 * (~27 k instructions), and a flow saves the same instruments two or three
 * times. The same ciphertext for the same plaintext is what a second seal
 * would protect equally; a nonce is never used for another text. */
static int seal_cb(void *ctx, const char *text, size_t len, char **sealed)
{
    struct seal_ctx *x = ctx;
    *sealed = checkout_cache_sealed(x->cc, x->id, text, len);
    if (*sealed && !seal_is_current(x->kr, *sealed)) { /* sealed before a rotation */
        free(*sealed);
        *sealed = NULL;
    }
    int rc = *sealed ? 0 : seal_seal(x->kr, x->id, text, len, sealed);
    if (rc == 0 && x->memo) {
        sealed_memo_clear(x->memo);
        if ((x->memo->plain = malloc(len ? len : 1)) && (x->memo->sealed = strdup(*sealed))) {
            memcpy(x->memo->plain, text, len);
            x->memo->len = len;
        } else {
            sealed_memo_clear(x->memo); /* best effort: the next save seals again */
        }
    }
    return rc;
}

int sealed_doc_write(const struct seal_keyring *kr, const struct checkout *c, struct buf *b,
                     struct checkout_cache *cc, struct sealed_memo *memo)
{
    struct seal_ctx x = { kr, c->id, cc, memo };
    if (memo)
        sealed_memo_clear(memo);
    return checkout_doc_write(b, c, seal_cb, &x);
}

enum row_fate { ROW_CURRENT, ROW_RESEALED, ROW_SEALED, ROW_UNREADABLE, ROW_FAILED, ROW_NONE };

/* One checkout: what it needs and, if anything, the document to write. */
static enum row_fate row_plan(const struct seal_keyring *kr, const struct store_checkout *row,
                              char **write)
{
    *write = NULL;
    json_t *doc = json_loads(row->document, 0, NULL);
    json_t *in = json_object_get(doc, "_agentd");
    const char *sealed = json_string_value(json_object_get(in, SEALED));
    enum row_fate fate = ROW_NONE;
    if (sealed && seal_is_current(kr, sealed)) {
        fate = ROW_CURRENT;
    } else if (sealed) {
        struct agentd_error oe = { 0 };
        int rc = sealed_doc_open(kr, row->id, doc, &oe);
        fate = rc == AGENTD_ECORRUPT ? ROW_UNREADABLE : rc ? ROW_FAILED : ROW_RESEALED;
    } else if (has_token(json_object_get(in, PAYMENT))) {
        fate = ROW_SEALED;
    }
    if (fate == ROW_RESEALED || fate == ROW_SEALED) {
        if (sealed_doc_seal(kr, row->id, doc) || !(*write = jsondump(doc, JSON_COMPACT, NULL)))
            fate = ROW_FAILED;
    }
    json_decref(doc);
    return fate;
}

/* Plans and writes one checkout, reloading it after a lost compare-and-swap. */
static enum row_fate row_rotate(struct store *st, const struct seal_keyring *kr,
                                struct store_checkout *first)
{
    struct store_checkout *row = first, *again = NULL;
    enum row_fate fate = ROW_FAILED;
    for (int attempt = 0; attempt < 5; attempt++) {
        char *doc = NULL;
        fate = row_plan(kr, row, &doc);
        int rc = doc ? store_checkout_update(st, row->id, row->version, row->status, doc) : 0;
        cleanse_free(doc);
        if (rc == 0)
            break;
        fate = ROW_FAILED;
        store_checkout_free(again);
        again = NULL;
        if (rc != AGENTD_ECONFLICT || store_checkout_get(st, first->id, &again) != 0)
            break;
        row = again;
    }
    store_checkout_free(again);
    return fate;
}

int sealed_rotate_all(struct store *st, const struct seal_keyring *kr,
                      struct sealed_rotation *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    char *after = strdup("");
    int rc = after ? 0 : AGENTD_ENOMEM;
    while (rc == 0) {
        struct store_checkout *v = NULL;
        size_t n = 0;
        if ((rc = store_checkout_list_after(st, after, 100, &v, &n)) || n == 0) {
            store_checkout_list_free(v, n);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            size_t *counts[] = { &out->current, &out->resealed, &out->sealed, &out->unreadable,
                                 &out->failed, &out->none };
            (*counts[row_rotate(st, kr, &v[i])])++;
            out->scanned++;
        }
        free(after);
        after = strdup(v[n - 1].id);
        store_checkout_list_free(v, n);
        if (!after)
            rc = AGENTD_ENOMEM;
    }
    free(after);
    if (rc)
        return agentd_fail(e, rc, agentd_err_code(rc), NULL, "listing checkouts: %s",
                           agentd_err_msg(rc));
    return 0;
}
