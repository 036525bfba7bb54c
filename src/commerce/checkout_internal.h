/* Private to the checkout files (checkout*.c, pricing.c, ucp_checkout.c, order.c): the
 * field tables of the checkout's structs, small string helpers, refresh flags. */
#ifndef AGENTD_COMMERCE_CHECKOUT_INTERNAL_H
#define AGENTD_COMMERCE_CHECKOUT_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout.h"
#include "commerce/fields.h"
#include "core/err.h"

#define ID_MAX 64 /* client-supplied ids (lines, destinations, codes) */

/* What a refresh also enforces, beyond recomputing. */
#define REFRESH_CHECK_ITEMS 0x1u  /* unknown product / out of stock = error */
#define REFRESH_STRICT_OPTION 0x2u /* an unavailable selected option = error, not cleared */

/* One table per struct of checkout_types.h (checkout_types.c). Adding an
 * owned field to one of them means adding its row here. */
extern const struct shape checkout_shape;
extern const struct shape checkout_buyer_shape;
extern const struct shape postal_address_shape;
extern const struct shape checkout_message_shape;
extern const struct shape checkout_link_shape;
extern const struct shape checkout_claim_shape;
extern const struct shape line_item_shape;
extern const struct shape fulfillment_option_shape;
extern const struct shape fulfillment_group_shape;
extern const struct shape fulfillment_method_shape;
extern const struct shape applied_discount_shape;
extern const struct shape payment_instrument_shape;

static inline int oom(struct agentd_error *e)
{
    return agentd_fail(e, AGENTD_ENOMEM, "internal_error", NULL, "out of memory");
}

/* Heap copy of s (NULL stays NULL). 0 or AGENTD_ENOMEM. */
static inline int sdup(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : AGENTD_ENOMEM;
}

/* Replaces *field with a copy of s. 0 or AGENTD_ENOMEM (field unchanged). */
static inline int sset(char **field, const char *s)
{
    char *n = NULL;
    if (sdup(s, &n) != 0)
        return AGENTD_ENOMEM;
    free(*field);
    *field = n;
    return 0;
}

/* Client strings: bounded, no control characters (they end up in logs,
 * JSON documents and the LLM's context). */
static inline int str_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static inline int id_ok(const char *s)
{
    return s && s[0] && str_ok(s, ID_MAX);
}

/* A deterministic id for a line, destination, method or group,
 * "<prefix>_<seq>", as a heap string at *out. 0 or AGENTD_ENOMEM. */
static inline int next_id(struct checkout *c, const char *prefix, char **out)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%s_%u", prefix, (unsigned)++c->next_seq);
    return sdup(buf, out);
}

/* m's first fulfillment group, made with a fresh id when m has none (we
 * ship everything in one group). 0 or AGENTD_ENOMEM. */
static inline int first_group(struct checkout *c, struct fulfillment_method *m)
{
    if (m->n_groups)
        return 0;
    if (!(m->groups = calloc(1, sizeof *m->groups)))
        return AGENTD_ENOMEM;
    m->n_groups = 1;
    return next_id(c, "group", &m->groups[0].id);
}

/* checkout_parse.c: the mutable fields of a create/update body into w. */
int checkout_parse_body(struct checkout *w, const struct shop_rules *r, const void *req,
                        struct agentd_error *e);

/* checkout_refresh.c: recomputes w in place (no copy; flags REFRESH_*). */
int checkout_refresh_in_place(struct checkout *c, const struct shop_rules *r, unsigned flags,
                              struct agentd_error *e);
/* The method's selected destination, or NULL. */
const struct postal_address *checkout_selected_dest(const struct fulfillment_method *m);

/* ucp_checkout.c: JSON pieces the order (order.c) writes and reads alike. */
int checkout_has_destination(const struct checkout *c);
int checkout_has_selected_option(const struct checkout *c);
/* Sets key to a string when s is non-NULL; nonzero on failure. */
int ucp_json_put_str(json_t *o, const char *key, const char *s);
json_t *ucp_address_json(const struct postal_address *a, int with_id);
json_t *ucp_item_json(const struct line_item *li);
/* Optional string member -> copy (absent: NULL); wrong type AGENTD_ECORRUPT. */
int ucp_json_get_str(const json_t *o, const char *key, char **out);
int64_t ucp_json_get_int(const json_t *o, const char *key);
/* A stored document's string members of obj, by its field table
 * (ucp_json_get_str for each). */
int ucp_doc_strs(const struct shape *shp, void *obj, const json_t *j);
/* A line item's id, item {id, title, image_url, price} and totals[] from
 * UCP JSON (quantity is the caller's: it differs between checkout and
 * order). 0, AGENTD_ECORRUPT or AGENTD_ENOMEM. */
int ucp_line_from_json(const json_t *lj, struct line_item *li);
/* Amount of a given type in a UCP totals[] array (0 if absent). */
int64_t ucp_total_of(const json_t *totals, const char *type);
/* Every checkout total from a UCP totals[] array, or (exact) from the
 * document's {"subtotal": n, ...} object; absent amounts are 0. */
void ucp_totals_from_json(const json_t *j, int exact, struct checkout_totals *t);

#endif
