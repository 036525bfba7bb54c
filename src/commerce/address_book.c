/* The address book in a checkout (pure): offer a known buyer's saved
 * addresses, and reuse a saved address's id for an equal destination. */
#include "commerce/address_book.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout.h"
#include "core/err.h"

/* Equal ignoring ASCII case and blanks at either end; NULL equals "". */
static int field_eq(const char *a, const char *b)
{
    a = a ? a : "";
    b = b ? b : "";
    while (isspace((unsigned char)*a))
        a++;
    while (isspace((unsigned char)*b))
        b++;
    size_t na = strlen(a), nb = strlen(b);
    while (na && isspace((unsigned char)a[na - 1]))
        na--;
    while (nb && isspace((unsigned char)b[nb - 1]))
        nb--;
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

int address_book_same(const struct postal_address *a, const struct postal_address *b)
{
    return field_eq(a->street_address, b->street_address) &&
           field_eq(a->address_locality, b->address_locality) &&
           field_eq(a->address_region, b->address_region) &&
           field_eq(a->postal_code, b->postal_code) &&
           field_eq(a->address_country, b->address_country);
}

static int is_shipping(const struct fulfillment_method *m)
{
    return !m->type || strcmp(m->type, "shipping") == 0;
}

/* Destination d takes saved id `id`; the method's selection follows. */
static int take_id(struct fulfillment_method *m, struct postal_address *d, const char *id)
{
    if (d->id && strcmp(d->id, id) == 0)
        return 0;
    char *nid = strdup(id);
    if (!nid)
        return AGENTD_ENOMEM;
    if (m->selected_destination_id && d->id && strcmp(m->selected_destination_id, d->id) == 0) {
        char *sel = strdup(id);
        if (!sel) {
            free(nid);
            return AGENTD_ENOMEM;
        }
        free(m->selected_destination_id);
        m->selected_destination_id = sel;
    }
    free(d->id);
    d->id = nid;
    return 0;
}

/* Destination d takes the id of an equal saved address, or is saved (and
 * appended to saved[], *n growing) when the book has room. */
static int match_or_save(struct checkout *c, const struct shop_rules *r,
                         struct fulfillment_method *m, struct postal_address *d,
                         struct postal_address *saved, size_t *n)
{
    for (size_t k = 0; k < *n; k++)
        if (saved[k].id && address_book_same(d, &saved[k]))
            return take_id(m, d, saved[k].id);
    if (!r->remember_address || *n >= ADDRESS_BOOK_OFFER_MAX || !d->street_address ||
        !d->street_address[0] || !d->address_country || !d->address_country[0])
        return 0;
    char id[64];
    if (r->remember_address(r->ud, c->buyer.email, d, id, sizeof id) != 0)
        return 0;
    if (checkout_address_copy(&saved[*n], d))
        return AGENTD_ENOMEM;
    (*n)++;
    char *sid = strdup(id);
    if (!sid)
        return AGENTD_ENOMEM;
    free(saved[*n - 1].id);
    saved[*n - 1].id = sid;
    return take_id(m, d, id);
}

int address_book_apply(struct checkout *c, const struct shop_rules *r)
{
    if (!r->saved_addresses || !c->has_buyer || !c->buyer.email || !c->buyer.email[0])
        return 0;
    struct postal_address saved[ADDRESS_BOOK_OFFER_MAX];
    memset(saved, 0, sizeof saved);
    size_t n = r->saved_addresses(r->ud, c->buyer.email, saved, ADDRESS_BOOK_OFFER_MAX);
    if (n > ADDRESS_BOOK_OFFER_MAX)
        n = ADDRESS_BOOK_OFFER_MAX;
    int rc = 0;
    for (size_t mi = 0; mi < c->n_methods && rc == 0; mi++) {
        struct fulfillment_method *m = &c->methods[mi];
        if (!is_shipping(m))
            continue;
        if (m->n_destinations == 0) {
            if (n == 0)
                continue;
            m->destinations = calloc(n, sizeof *m->destinations);
            if (!m->destinations) {
                rc = AGENTD_ENOMEM;
                break;
            }
            for (size_t k = 0; k < n && rc == 0; k++) {
                if (checkout_address_copy(&m->destinations[k], &saved[k]))
                    rc = AGENTD_ENOMEM;
                else
                    m->n_destinations++;
            }
            continue;
        }
        for (size_t d = 0; d < m->n_destinations && rc == 0; d++)
            rc = match_or_save(c, r, m, &m->destinations[d], saved, &n);
    }
    /* the slots written: the n given or saved, and the one a failed copy
     * may have half filled (the rest are still zero) */
    for (size_t k = 0; k <= n && k < ADDRESS_BOOK_OFFER_MAX; k++)
        checkout_address_clear(&saved[k]);
    return rc;
}
