/* Freeing what store.h hands out: every result struct and array, through one
 * table of each struct's heap fields. */
#include "store/store.h"

#include <stddef.h>
#include <stdlib.h>

/* The heap fields of each result struct, as offsets: one free routine
 * serves every struct and its arrays. */
#define OFFS(type, ...) static const size_t type##_heap[] = { __VA_ARGS__, (size_t)-1 }
#define AT(type, field) offsetof(struct store_##type, field)

OFFS(principal, AT(principal, id), AT(principal, name));
OFFS(apikey, AT(apikey, id), AT(apikey, principal_id), AT(apikey, hash), AT(apikey, scopes));
OFFS(session, AT(session, id), AT(session, owner), AT(session, context));
OFFS(message, AT(message, session_id), AT(message, role), AT(message, parts));
OFFS(task, AT(task, id), AT(task, context_id), AT(task, owner), AT(task, state),
     AT(task, artifacts));
OFFS(turn, AT(turn, id), AT(turn, session_id), AT(turn, state), AT(turn, owner),
     AT(turn, instance), AT(turn, input));
OFFS(event, AT(event, session_id), AT(event, turn_id), AT(event, type), AT(event, data));
OFFS(checkpoint, AT(checkpoint, turn_id), AT(checkpoint, kind), AT(checkpoint, payload));
OFFS(checkout, AT(checkout, id), AT(checkout, owner), AT(checkout, status),
     AT(checkout, document));
OFFS(order, AT(order, id), AT(order, checkout_id), AT(order, owner), AT(order, document),
     AT(order, access_hash));
OFFS(idem, AT(idem, principal), AT(idem, key), AT(idem, fingerprint), AT(idem, state),
     AT(idem, headers), AT(idem, body), AT(idem, owner));
OFFS(address, AT(address, id), AT(address, customer), AT(address, body));
OFFS(outbox, AT(outbox, id), AT(outbox, kind), AT(outbox, target), AT(outbox, headers),
     AT(outbox, body), AT(outbox, state), AT(outbox, last_error), AT(outbox, claimed_by),
     AT(outbox, seq_key));
OFFS(instance, AT(instance, id), AT(instance, host));
OFFS(audit, AT(audit, principal), AT(audit, action), AT(audit, target),
     AT(audit, request_id), AT(audit, outcome));

/* Frees n structs of size bytes at v (their heap fields, then v). */
static void items_free(void *v, size_t n, size_t size, const size_t *heap)
{
    for (size_t i = 0; v && i < n; i++)
        for (const size_t *off = heap; *off != (size_t)-1; off++)
            free(*(char **)((char *)v + i * size + *off));
    free(v);
}

#define FREE_ONE(type)                                                                  \
    void store_##type##_free(struct store_##type *p)                                   \
    {                                                                                   \
        items_free(p, 1, sizeof *p, type##_heap);                                       \
    }
#define FREE_LIST(type)                                                                 \
    void store_##type##_list_free(struct store_##type *v, size_t n)                    \
    {                                                                                   \
        items_free(v, n, sizeof *v, type##_heap);                                       \
    }

FREE_ONE(principal)
FREE_ONE(apikey)
FREE_LIST(apikey)
FREE_ONE(session)
FREE_LIST(session)
FREE_LIST(message)
FREE_ONE(task)
FREE_LIST(task)
FREE_ONE(turn)
FREE_LIST(checkout)
FREE_LIST(turn)
FREE_LIST(event)
FREE_LIST(checkpoint)
FREE_ONE(checkout)
FREE_ONE(order)
FREE_ONE(idem)
FREE_LIST(audit)
FREE_LIST(address)
FREE_ONE(outbox)
FREE_LIST(outbox)
FREE_LIST(instance)
