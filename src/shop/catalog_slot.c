/* The live catalog slot: a mutex held only to swap the pointer or take a
 * reference, never during a load or a search. */
#include "shop/catalog_slot.h"

void catalog_slot_init(struct catalog_slot *s, struct catalog *c)
{
    pthread_mutex_init(&s->mu, NULL);
    s->cur = c;
}

struct catalog *catalog_slot_get(struct catalog_slot *s)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *c = catalog_ref(s->cur);
    pthread_mutex_unlock(&s->mu);
    return c;
}

void catalog_slot_set(struct catalog_slot *s, struct catalog *c)
{
    pthread_mutex_lock(&s->mu);
    struct catalog *old = s->cur;
    s->cur = c;
    pthread_mutex_unlock(&s->mu);
    catalog_unref(old); /* outside the lock: freeing a catalog takes a while */
}

void catalog_slot_destroy(struct catalog_slot *s)
{
    catalog_unref(s->cur);
    s->cur = NULL;
    pthread_mutex_destroy(&s->mu);
}
