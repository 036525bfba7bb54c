/* Parsed checkouts kept by the exact document text they were stored as, so
 * the next operation on a checkout reads it without parsing it again. */
#ifndef AGENTD_SHOP_CHECKOUT_CACHE_H
#define AGENTD_SHOP_CHECKOUT_CACHE_H

#include <stddef.h>

#include "commerce/checkout.h"

struct checkout_cache;

/* sets * 4 entries at most (0 sets: a cache that keeps nothing). */
struct checkout_cache *checkout_cache_new(size_t sets);
void checkout_cache_free(struct checkout_cache *cc);
/* Drops every entry (the keyring that opens stored credentials changed). */
void checkout_cache_clear(struct checkout_cache *cc);

/* c was just stored as text: keeps a copy of both (best effort: out of
 * memory keeps nothing). Replaces what the cache held for c->id. */
void checkout_cache_put(struct checkout_cache *cc, const struct checkout *c, const char *text);

/* The same, with the sealed text of c's private payment and the plaintext
 * it seals (sealed_doc_write's memo; NULL: none), so the next save of the
 * same payment reuses the ciphertext instead of sealing again. */
void checkout_cache_put_sealed(struct checkout_cache *cc, const struct checkout *c,
                               const char *text, const char *plain, size_t plain_len,
                               const char *sealed);
/* A copy of the sealed text last stored for checkout id's private payment
 * when its plaintext was exactly plain[0..len), else NULL. */
char *checkout_cache_sealed(struct checkout_cache *cc, const char *id, const char *plain,
                            size_t len);

/* A copy of checkout id if the cache holds it as stored under exactly
 * text (what the store returned), else NULL: parse text then. Its version
 * is the cached one; the caller sets the row's. */
struct checkout *checkout_cache_get(struct checkout_cache *cc, const char *id, const char *text);

#endif
