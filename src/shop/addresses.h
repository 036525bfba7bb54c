/* The merchant's address book, the I/O side: a customer's saved addresses
 * from the catalog (addresses.csv) and the store (given at checkout, sealed). */
#ifndef AGENTD_SHOP_ADDRESSES_H
#define AGENTD_SHOP_ADDRESSES_H

#include <stddef.h>

struct catalog;
struct postal_address;
struct seal_keyring;
struct store;

/* Up to max saved addresses of the customer with this email (ASCII
 * case-insensitive) into out: the catalog's first, then those saved at
 * checkout, oldest first. A stored address that does not open (a key no
 * longer in the ring) is skipped. Returns how many were written. */
size_t shop_addresses_lookup(struct store *st, const struct seal_keyring *kr,
                             const struct catalog *cat, const char *email,
                             struct postal_address *out, size_t max);

/* Saves a for this email under a new id ("addr_..."), written to id (len
 * bytes). The address is sealed under its id; the email is the lookup key.
 * 0, AGENTD_EINVAL or a store error. */
int shop_addresses_remember(struct store *st, const struct seal_keyring *kr, const char *email,
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
