/* The merchant's address book in a checkout: saved addresses offered as
 * destinations, a given address that equals a saved one taking its id. */
#ifndef AGENTD_COMMERCE_ADDRESS_BOOK_H
#define AGENTD_COMMERCE_ADDRESS_BOOK_H

#include "commerce/checkout_types.h"

/* Most saved addresses one customer is offered (CHECKOUT_DESTS_MAX). */
#define ADDRESS_BOOK_OFFER_MAX CHECKOUT_DESTS_MAX

/* With a buyer email and r->saved_addresses: a shipping method without
 * destinations gets the customer's saved addresses (none selected); a
 * destination equal to a saved one (street, locality, region, postal code,
 * country; case and surrounding blanks ignored) takes the saved id, and the
 * selection follows it; any other destination with a street and a country
 * is saved through r->remember_address (while the customer has fewer than
 * ADDRESS_BOOK_OFFER_MAX) and takes the id it is saved under. A failed save
 * is not an error: the checkout goes on without it. 0 or AGENTD_ENOMEM (c then partly updated: callers
 * work on a copy). */
int address_book_apply(struct checkout *c, const struct shop_rules *r);

/* 1 when a and b are the same place by the fields above. */
int address_book_same(const struct postal_address *a, const struct postal_address *b);

#endif
