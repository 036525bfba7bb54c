/* The merchant's address book, the I/O side: a customer's saved addresses
 * from the catalog (addresses.csv) and the store (given at checkout, sealed). */
#ifndef AGENTD_SHOP_ADDRESSES_H
#define AGENTD_SHOP_ADDRESSES_H

#include <stddef.h>

struct catalog;
struct postal_address;
struct seal_keyring;
struct store;

/* Saved addresses as last opened (or saved) by this process, kept by row
 * id and exact sealed text, so reading a row again neither opens nor
 * parses it (a hit is what opening gives). Thread-safe; best effort. */
struct shop_address_memo;
struct shop_address_memo *shop_addresses_memo_new(void);
void shop_addresses_memo_free(struct shop_address_memo *m);
/* Drops every row (the keyring changed). */
void shop_addresses_memo_clear(struct shop_address_memo *m);
/* Rows read from the memo so far (tests). */
size_t shop_addresses_memo_hits(struct shop_address_memo *m);

/* Up to max saved addresses of the customer with this email (ASCII
 * case-insensitive) into out: the catalog's first, then those saved at
 * checkout, oldest first. A stored address that does not open (a key no
 * longer in the ring) is skipped; memo (NULL: none) spares opening rows it
 * holds. Returns how many were written. */
size_t shop_addresses_lookup(struct store *st, const struct seal_keyring *kr,
                             struct shop_address_memo *memo, const struct catalog *cat, const char *email,
                             struct postal_address *out, size_t max);

/* Saves a for this email under a new id ("addr_..."), written to id (len
 * bytes). The address is sealed under its id (a fresh nonce each time);
 * the email is the lookup key; memo (NULL: none) keeps the row as saved.
 * 0, AGENTD_EINVAL or a store error. */
int shop_addresses_remember(struct store *st, const struct seal_keyring *kr,
                            struct shop_address_memo *memo, const char *email,
                            const struct postal_address *a, char *id, size_t len);

/* Re-seals every saved address under kr's current key (agentd keys
 * rotate-encryption), counts into out (scanned, resealed, current,
 * unreadable, failed; `sealed` and `none` stay 0: an address is sealed from
 * its first write). Idempotent; compare-and-swap per row, so safe while
 * servers run. 0 or a store error (e). */
struct sealed_rotation;
struct agentd_error;
int shop_addresses_rotate(struct store *st, const struct seal_keyring *kr,
                          struct sealed_rotation *out, struct agentd_error *e);

#endif
