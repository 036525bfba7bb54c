/* The live catalog, swapped on SIGHUP reload: requests take a reference and
 * keep the catalog they started with; a failed reload keeps the old one. */
#ifndef AGENTD_SHOP_CATALOG_SLOT_H
#define AGENTD_SHOP_CATALOG_SLOT_H

#include <pthread.h>

#include "commerce/catalog.h"

/* Requests take a reference with catalog_slot_get() and drop it when done;
 * the reload path loads a new catalog and, only if that succeeded,
 * catalog_slot_set()s it. A bad file therefore keeps the old catalog, and
 * requests in flight finish on the catalog they started with.
 *
 * The server's current catalog. The mutex is held only to swap or to take a
 * reference (a few instructions), never during a load or a search: a plain
 * atomic pointer is not enough, because a reader could load the pointer,
 * lose the CPU, and take its reference after the writer freed it. */
struct catalog_slot {
    pthread_mutex_t mu;
    struct catalog *cur;
};

/* Takes over the caller's reference to c (may be NULL). */
void catalog_slot_init(struct catalog_slot *s, struct catalog *c);
/* A new reference to the current catalog (NULL if none); catalog_unref it. */
struct catalog *catalog_slot_get(struct catalog_slot *s);
/* Installs c (taking over the caller's reference) and drops the slot's
 * reference to the old one, which is freed once its last user unrefs. */
void catalog_slot_set(struct catalog_slot *s, struct catalog *c);
/* Drops the slot's reference and destroys the mutex. */
void catalog_slot_destroy(struct catalog_slot *s);

#endif
