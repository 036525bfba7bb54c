/* Payment data at rest: the part of a stored checkout document that holds
 * instrument credentials, sealed (core/seal.h) on its way to the store. */
#ifndef AGENTD_SHOP_SEALED_DOC_H
#define AGENTD_SHOP_SEALED_DOC_H

#include <jansson.h>

#include "core/err.h"

struct seal_keyring;
struct store;
struct checkout;
struct buf;
struct checkout_cache;

/* doc._agentd.payment (the one copy with tokens) becomes
 * doc._agentd.payment_sealed when an instrument carries a token, sealed under
 * the checkout id (so it opens for that record only). 0 or AGENTD_ENOMEM. */
int sealed_doc_seal(const struct seal_keyring *kr, const char *id, json_t *doc);
/* The reverse, in place. 0 when nothing is sealed or it opened. When it does
 * not open (the ephemeral key of a process gone, a key no longer configured,
 * tampering) the sealed part is removed and AGENTD_ECORRUPT returned with e:
 * the checkout still reads, without the stored credentials. */
int sealed_doc_open(const struct seal_keyring *kr, const char *id, json_t *doc,
                    struct agentd_error *e);

/* What a save sealed: the private payment's plaintext (tokens: wiped by
 * sealed_memo_clear) and its sealed text; both NULL when nothing was. */
struct sealed_memo {
    char *plain;
    size_t len;
    char *sealed;
};
void sealed_memo_clear(struct sealed_memo *m);

/* c's store document appended to b, its instruments' credentials sealed as
 * sealed_doc_seal seals them (checkout_doc_write). When cc holds the
 * sealed text of the same plaintext for c, sealed under kr's current key,
 * that ciphertext is used again (the same plaintext under the same key and
 * AAD: no new nonce is needed, none is reused for other text); memo (may
 * be NULL) gets what was sealed, for checkout_cache_put_sealed. 0 or a
 * negative AGENTD_E*. */
int sealed_doc_write(const struct seal_keyring *kr, const struct checkout *c, struct buf *b,
                     struct checkout_cache *cc, struct sealed_memo *memo);

/* What a rotation did (counts of checkouts). */
struct sealed_rotation {
    size_t scanned;     /* every live checkout */
    size_t resealed;    /* sealed under an older key, now under the current one */
    size_t sealed;      /* held a token in plain text (written before sealing), now sealed */
    size_t current;     /* already under the current key: untouched */
    size_t none;        /* hold no credential (e.g. completed): untouched */
    size_t unreadable;  /* sealed under a key not in the ring: left as it is */
    size_t failed;      /* could not be written (e.g. changed under us repeatedly) */
};
/* Re-seals every stored checkout's payment part under kr's current key.
 * Idempotent: a second run finds everything current. Compare-and-swap per
 * checkout, so it is safe while servers run. 0 or a store error (e). */
int sealed_rotate_all(struct store *st, const struct seal_keyring *kr,
                      struct sealed_rotation *out, struct agentd_error *e);

#endif
