/* The checkout's types: status names, and new/free/clone of a checkout and
 * its pieces, all through the field tables below (one row per owned field). */
#include "commerce/checkout.h"

#include <stdlib.h>
#include <string.h>

#include "commerce/checkout_internal.h"

/* ---- field tables ---- */

#define T struct checkout_buyer
static const struct field buyer_fields[] = {
    FIELD_S(T, first_name, "first_name"), FIELD_S(T, last_name, "last_name"),
    FIELD_S(T, full_name, "full_name"),   FIELD_S(T, email, "email"),
    FIELD_S(T, phone_number, "phone_number"),
    FIELD_J(T, consent),
};
#undef T
const struct shape checkout_buyer_shape = {sizeof(struct checkout_buyer), buyer_fields,
                                           FIELDS_N(buyer_fields), NULL, NULL};

#define T struct postal_address
static const struct field address_fields[] = {
    FIELD_S(T, id, "id"),
    FIELD_S(T, street_address, "street_address"),
    FIELD_S(T, extended_address, "extended_address"),
    FIELD_S(T, address_locality, "address_locality"),
    FIELD_S(T, address_region, "address_region"),
    FIELD_S(T, postal_code, "postal_code"),
    FIELD_S(T, address_country, "address_country"),
    FIELD_S(T, first_name, "first_name"),
    FIELD_S(T, last_name, "last_name"),
    FIELD_S(T, full_name, "full_name"),
    FIELD_S(T, phone_number, "phone_number"),
};
#undef T
const struct shape postal_address_shape = {sizeof(struct postal_address), address_fields,
                                           FIELDS_N(address_fields), NULL, NULL};

#define T struct checkout_message
static const struct field message_fields[] = {
    FIELD_S(T, code, "code"), FIELD_S(T, content, "content"), FIELD_S(T, path, "path"),
};
#undef T
const struct shape checkout_message_shape = {sizeof(struct checkout_message), message_fields,
                                             FIELDS_N(message_fields), NULL, NULL};

#define T struct checkout_link
static const struct field link_fields[] = {
    FIELD_S(T, type, "type"), FIELD_S(T, url, "url"), FIELD_S(T, title, "title"),
};
#undef T
const struct shape checkout_link_shape = {sizeof(struct checkout_link), link_fields,
                                          FIELDS_N(link_fields), NULL, NULL};

#define T struct checkout_claim
static const struct field claim_fields[] = {FIELD_S(T, key, NULL), FIELD_S(T, by, NULL)};
#undef T
const struct shape checkout_claim_shape = {sizeof(struct checkout_claim), claim_fields,
                                           FIELDS_N(claim_fields), NULL, NULL};

#define T struct line_item
static const struct field line_fields[] = {
    FIELD_S(T, id, NULL), FIELD_S(T, item_id, NULL), FIELD_S(T, title, NULL),
    FIELD_S(T, image_url, NULL),
};
#undef T
const struct shape line_item_shape = {sizeof(struct line_item), line_fields,
                                      FIELDS_N(line_fields), NULL, NULL};

#define T struct fulfillment_option
static const struct field option_fields[] = {
    FIELD_S(T, id, "id"), FIELD_S(T, title, "title"), FIELD_S(T, description, "description"),
};
#undef T
const struct shape fulfillment_option_shape = {sizeof(struct fulfillment_option), option_fields,
                                               FIELDS_N(option_fields), NULL, NULL};

#define T struct fulfillment_group
static const struct field group_fields[] = {
    FIELD_S(T, id, "id"),
    FIELD_S(T, selected_option_id, "selected_option_id"),
    FIELD_A(T, options, n_options, fulfillment_option_shape),
};
#undef T
const struct shape fulfillment_group_shape = {sizeof(struct fulfillment_group), group_fields,
                                              FIELDS_N(group_fields), NULL, NULL};

#define T struct fulfillment_method
static const struct field method_fields[] = {
    FIELD_S(T, id, "id"),
    FIELD_S(T, type, "type"),
    FIELD_A(T, destinations, n_destinations, postal_address_shape),
    FIELD_S(T, selected_destination_id, "selected_destination_id"),
    FIELD_A(T, groups, n_groups, fulfillment_group_shape),
};
#undef T
const struct shape fulfillment_method_shape = {sizeof(struct fulfillment_method), method_fields,
                                               FIELDS_N(method_fields), NULL, NULL};

#define T struct applied_discount
static const struct field applied_fields[] = {
    FIELD_S(T, code, "code"), FIELD_S(T, title, "title"),
    FIELD_A(T, alloc, n_alloc, fields_i64_shape),
};
#undef T
const struct shape applied_discount_shape = {sizeof(struct applied_discount), applied_fields,
                                             FIELDS_N(applied_fields), NULL, NULL};

/* Owned by payment.c, which knows which of its fields are secrets. */
static void instrument_clear(void *p) { payment_instrument_clear(p); }
static int instrument_copy(void *d, const void *s) { return payment_instrument_copy(d, s); }
const struct shape payment_instrument_shape = {sizeof(struct payment_instrument), NULL, 0,
                                               instrument_clear, instrument_copy};

#define T struct checkout_payment
static const struct field payment_fields[] = {
    FIELD_JS(T, handlers), /* the shop's advertisement, shared (never edited) */
    FIELD_A(T, instruments, n_instruments, payment_instrument_shape),
    FIELD_S(T, selected_instrument_id, "selected_instrument_id"),
};
#undef T
static const struct shape payment_shape = {sizeof(struct checkout_payment), payment_fields,
                                           FIELDS_N(payment_fields), NULL, NULL};

#define T struct checkout
static const struct field checkout_fields[] = {
    FIELD_S(T, id, NULL),
    FIELD_A(T, lines, n_lines, line_item_shape),
    FIELD_U(T, buyer, checkout_buyer_shape),
    FIELD_A(T, methods, n_methods, fulfillment_method_shape),
    FIELD_A(T, codes, n_codes, fields_str_shape),
    FIELD_A(T, applied, n_applied, applied_discount_shape),
    FIELD_U(T, payment, payment_shape),
    FIELD_A(T, messages, n_messages, checkout_message_shape),
    FIELD_A(T, links, n_links, checkout_link_shape),
    FIELD_O(T, escalation, checkout_message_shape),
    FIELD_S(T, continue_url, NULL),
    FIELD_S(T, order_id, NULL),
    FIELD_S(T, order_permalink_url, NULL),
    FIELD_A(T, op_keys, n_op_keys, fields_str_shape),
    FIELD_U(T, completing, checkout_claim_shape),
    FIELD_S(T, webhook_url, NULL),
};
#undef T
const struct shape checkout_shape = {sizeof(struct checkout), checkout_fields,
                                     FIELDS_N(checkout_fields), NULL, NULL};

/* ---- names ---- */

static const char *const status_names[] = {
    "incomplete", "requires_escalation", "ready_for_complete",
    "complete_in_progress", "completed", "canceled",
};

const char *checkout_status_name(enum checkout_status s)
{
    if ((unsigned)s < sizeof status_names / sizeof status_names[0])
        return status_names[s];
    return "incomplete";
}

int checkout_status_parse(const char *name, enum checkout_status *out)
{
    for (size_t i = 0; name && i < sizeof status_names / sizeof status_names[0]; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum checkout_status)i;
            return 0;
        }
    }
    return AGENTD_EINVAL;
}

int checkout_status_terminal(enum checkout_status s)
{
    return s == CHECKOUT_COMPLETED || s == CHECKOUT_CANCELED;
}

const char *checkout_severity_name(enum checkout_severity s)
{
    switch (s) {
    case CHECKOUT_SEV_RECOVERABLE: return "recoverable";
    case CHECKOUT_SEV_REQUIRES_BUYER_INPUT: return "requires_buyer_input";
    case CHECKOUT_SEV_REQUIRES_BUYER_REVIEW: return "requires_buyer_review";
    default: return NULL;
    }
}

/* ---- lifetime ---- */

void checkout_buyer_clear(struct checkout_buyer *b) { fields_clear(&checkout_buyer_shape, b); }
void checkout_address_clear(struct postal_address *a) { fields_clear(&postal_address_shape, a); }

int checkout_address_copy(struct postal_address *d, const struct postal_address *s)
{
    return fields_copy(&postal_address_shape, d, s);
}

void checkout_free(struct checkout *c)
{
    if (!c)
        return;
    fields_clear(&checkout_shape, c);
    free(c);
}

struct checkout *checkout_new(const char *id)
{
    struct checkout *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (sdup(id ? id : "", &c->id) != 0) {
        free(c);
        return NULL;
    }
    c->status = CHECKOUT_INCOMPLETE;
    return c;
}

struct checkout *checkout_clone(const struct checkout *s)
{
    struct checkout *c = malloc(sizeof *c);
    if (!c || fields_copy(&checkout_shape, c, s)) {
        free(c);
        return NULL;
    }
    return c;
}
