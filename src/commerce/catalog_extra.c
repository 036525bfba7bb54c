/* Catalog extras: promotions (free shipping), the merchant's customers and
 * their saved addresses, read from catalog JSON; lookups; the promotion rule. */
#define _GNU_SOURCE
#include "commerce/catalog.h"
#include "commerce/catalog_internal.h"
#include "commerce/money.h"
#include "core/err.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Loader state: the problem list, where we are, whether memory ran out. */
struct xl {
    struct catalog_problems *p;
    char path[96];
    int oom;
};

static void bad(struct xl *L, const char *field, const char *what)
{
    char where[160];
    snprintf(where, sizeof where, "%s.%s", L->path, field);
    catalog_problem_add(L->p, "catalog", 0, where, "%s", what);
}

static char *dup_or_oom(struct xl *L, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        L->oom = 1;
    return d;
}

/* A string member; required ones that are missing or empty are reported. */
static const char *str_of(struct xl *L, json_t *o, const char *k, int required)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v) && (json_string_length(v) > 0 || !required))
        return json_string_value(v);
    if (v && !json_is_null(v) && !json_is_string(v))
        bad(L, k, "must be a string");
    else if (required)
        bad(L, k, "is required");
    return NULL;
}

static void promotion_clear(struct promotion *p)
{
    free(p->id);
    for (size_t i = 0; i < p->n_eligible; i++)
        free(p->eligible[i]);
    free(p->eligible);
    free(p->description);
}

static int promotion_entry(struct xl *L, json_t *o, struct promotion *out)
{
    const char *id = str_of(L, o, "id", 1), *type = str_of(L, o, "type", 1);
    if (type && strcmp(type, "free_shipping") != 0) {
        bad(L, "type", "must be \"free_shipping\"");
        type = NULL;
    }
    json_t *min = json_object_get(o, "min_subtotal");
    int64_t min_subtotal = 0;
    if (json_is_integer(min) && json_integer_value(min) >= 0 &&
        json_integer_value(min) <= MONEY_AMOUNT_MAX)
        min_subtotal = json_integer_value(min);
    else if (min && !json_is_null(min)) {
        bad(L, "min_subtotal", "must be a whole number of minor units");
        type = NULL;
    }
    json_t *el = json_object_get(o, "eligible_item_ids");
    if (el && !json_is_null(el) && !json_is_array(el)) {
        bad(L, "eligible_item_ids", "must be an array of product ids");
        type = NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(el, i, v)
        if (!json_is_string(v) || !catalog_id_valid(json_string_value(v))) {
            bad(L, "eligible_item_ids", "must be an array of product ids");
            type = NULL;
            break;
        }
    if (!id || !type)
        return 0;
    *out = (struct promotion){.type = PROMOTION_FREE_SHIPPING, .min_subtotal = min_subtotal};
    out->id = dup_or_oom(L, id);
    out->description = dup_or_oom(L, str_of(L, o, "description", 0));
    size_t n = json_array_size(el);
    if (n && !(out->eligible = calloc(n, sizeof *out->eligible)))
        L->oom = 1;
    for (i = 0; out->eligible && i < n; i++)
        if ((out->eligible[out->n_eligible] = dup_or_oom(L, json_string_value(json_array_get(el, i)))))
            out->n_eligible++;
    return 1;
}

static void customer_clear(struct customer *c)
{
    free(c->id);
    free(c->name);
    free(c->email);
}

static int customer_entry(struct xl *L, json_t *o, struct customer *out)
{
    const char *id = str_of(L, o, "id", 1), *email = str_of(L, o, "email", 1);
    const char *name = str_of(L, o, "name", 0);
    if (!id || !email)
        return 0;
    out->id = dup_or_oom(L, id);
    out->name = dup_or_oom(L, name);
    out->email = dup_or_oom(L, email);
    return 1;
}

static void address_clear(struct saved_address *a)
{
    free(a->id);
    free(a->customer_id);
    free(a->street_address);
    free(a->city);
    free(a->state);
    free(a->postal_code);
    free(a->country);
}

static int address_entry(struct xl *L, json_t *o, struct saved_address *out)
{
    const char *id = str_of(L, o, "id", 1), *cust = str_of(L, o, "customer_id", 1);
    const char *country = str_of(L, o, "country", 1);
    if (country && !(strlen(country) == 2 && country[0] >= 'A' && country[0] <= 'Z' &&
                     country[1] >= 'A' && country[1] <= 'Z')) {
        bad(L, "country", "must be an ISO 3166-1 alpha-2 code like \"US\"");
        country = NULL;
    }
    const char *street = str_of(L, o, "street_address", 0), *city = str_of(L, o, "city", 0);
    const char *state = str_of(L, o, "state", 0), *postal = str_of(L, o, "postal_code", 0);
    if (!id || !cust || !country)
        return 0;
    out->id = dup_or_oom(L, id);
    out->customer_id = dup_or_oom(L, cust);
    out->street_address = dup_or_oom(L, street);
    out->city = dup_or_oom(L, city);
    out->state = dup_or_oom(L, state);
    out->postal_code = dup_or_oom(L, postal);
    out->country = dup_or_oom(L, country);
    return 1;
}

/* One section array into a fresh array of size-byte entries. */
static void *section(struct xl *L, json_t *root, const char *name, size_t size, size_t *count,
                     int (*fn)(struct xl *, json_t *, void *))
{
    *count = 0;
    json_t *arr = json_object_get(root, name);
    if (!arr || json_is_null(arr))
        return NULL;
    if (!json_is_array(arr)) {
        catalog_problem_add(L->p, "catalog", 0, name, "must be an array");
        return NULL;
    }
    size_t n = json_array_size(arr);
    char *items = n ? calloc(n, size) : NULL;
    if (n && !items) {
        L->oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n && !L->oom; i++) {
        snprintf(L->path, sizeof L->path, "%s[%zu]", name, i);
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) {
            catalog_problem_add(L->p, "catalog", 0, L->path, "must be an object");
            continue;
        }
        if (fn(L, o, items + *count * size))
            (*count)++;
    }
    return items;
}

static int promotion_fn(struct xl *L, json_t *o, void *slot) { return promotion_entry(L, o, slot); }
static int customer_fn(struct xl *L, json_t *o, void *slot) { return customer_entry(L, o, slot); }
static int address_fn(struct xl *L, json_t *o, void *slot) { return address_entry(L, o, slot); }

int catalog_extra_load(struct catalog *c, json_t *root, struct catalog_problems *p)
{
    struct xl L = {.p = p};
    c->promotions = section(&L, root, "promotions", sizeof *c->promotions, &c->npromotions,
                            promotion_fn);
    c->customers = section(&L, root, "customers", sizeof *c->customers, &c->ncustomers,
                           customer_fn);
    c->addresses = section(&L, root, "addresses", sizeof *c->addresses, &c->naddresses,
                           address_fn);
    for (size_t i = 0; i < c->naddresses && !L.oom; i++) {
        int known = 0;
        for (size_t k = 0; k < c->ncustomers && !known; k++)
            known = strcmp(c->customers[k].id, c->addresses[i].customer_id) == 0;
        for (size_t k = 0; k < i && known; k++)
            if (strcmp(c->addresses[k].id, c->addresses[i].id) == 0) {
                snprintf(L.path, sizeof L.path, "addresses[%zu]", i);
                bad(&L, "id", "is a duplicate");
            }
        if (!known) {
            snprintf(L.path, sizeof L.path, "addresses[%zu]", i);
            bad(&L, "customer_id", "names no customer");
        }
    }
    return L.oom ? AGENTD_ENOMEM : 0;
}

void catalog_extra_free(struct catalog *c)
{
    for (size_t i = 0; i < c->npromotions; i++)
        promotion_clear(&c->promotions[i]);
    free(c->promotions);
    for (size_t i = 0; i < c->ncustomers; i++)
        customer_clear(&c->customers[i]);
    free(c->customers);
    for (size_t i = 0; i < c->naddresses; i++)
        address_clear(&c->addresses[i]);
    free(c->addresses);
}

const struct promotion *catalog_promotions(const struct catalog *c, size_t *n)
{
    if (n)
        *n = c->npromotions;
    return c->promotions;
}

int promotion_free_shipping(const struct promotion *p, size_t n, int64_t subtotal,
                            const char *const *item_ids, size_t n_items)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].type != PROMOTION_FREE_SHIPPING)
            continue;
        if (p[i].min_subtotal > 0 && subtotal >= p[i].min_subtotal)
            return 1;
        for (size_t e = 0; e < p[i].n_eligible; e++)
            for (size_t k = 0; k < n_items; k++)
                if (item_ids[k] && strcmp(item_ids[k], p[i].eligible[e]) == 0)
                    return 1;
    }
    return 0;
}

const struct customer *catalog_customer_by_email(const struct catalog *c, const char *email)
{
    for (size_t i = 0; email && i < c->ncustomers; i++)
        if (cat_casecmp(c->customers[i].email, email) == 0)
            return &c->customers[i];
    return NULL;
}

size_t catalog_customer_addresses(const struct catalog *c, const char *customer_id,
                                  const struct saved_address **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; customer_id && i < c->naddresses; i++)
        if (strcmp(c->addresses[i].customer_id, customer_id) == 0) {
            if (n < max)
                out[n] = &c->addresses[i];
            n++;
        }
    return n;
}
