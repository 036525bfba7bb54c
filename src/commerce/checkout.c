/* The checkout session: request parsing, the status machine, and every
 * operation, each applied to a copy and swapped in only on success. Pure. */
#include "commerce/checkout.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/money.h"
#include "commerce/pricing.h"
#include "core/err.h"

#define ID_MAX 64 /* client-supplied ids (lines, destinations, codes) */

/* What a refresh also enforces, beyond recomputing. */
#define REFRESH_CHECK_ITEMS 0x1u  /* unknown product / out of stock = error */
#define REFRESH_STRICT_OPTION 0x2u /* an unavailable selected option = error, not cleared */

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

static int oom(struct agentd_error *e)
{
    return agentd_fail(e, AGENTD_ENOMEM, "internal_error", NULL, "out of memory");
}

/* ---- small helpers ---- */

static int sdup(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return 0;
    *out = strdup(s);
    return *out ? 0 : AGENTD_ENOMEM;
}

static int sset(char **field, const char *s)
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
static int str_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int id_ok(const char *s)
{
    return s && s[0] && str_ok(s, ID_MAX);
}

/* Optional string member -> heap copy; absent or null -> NULL. */
static int jstr(const json_t *o, const char *key, char **out, const char *path,
                struct agentd_error *e)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        !str_ok(json_string_value(v), CHECKOUT_STR_MAX))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                             "%s must be a string of at most %d printable characters", key,
                             CHECKOUT_STR_MAX);
    *out = strdup(json_string_value(v));
    return *out ? 0 : oom(e);
}

static void next_id(struct checkout *c, const char *prefix, char *buf, size_t len)
{
    snprintf(buf, len, "%s_%u", prefix, (unsigned)++c->next_seq);
}

/* ---- clearing and copying ---- */

void checkout_buyer_clear(struct checkout_buyer *b)
{
    free(b->first_name);
    free(b->last_name);
    free(b->full_name);
    free(b->email);
    free(b->phone_number);
    memset(b, 0, sizeof *b);
}

void checkout_address_clear(struct postal_address *a)
{
    free(a->id);
    free(a->street_address);
    free(a->extended_address);
    free(a->address_locality);
    free(a->address_region);
    free(a->postal_code);
    free(a->address_country);
    free(a->first_name);
    free(a->last_name);
    free(a->full_name);
    free(a->phone_number);
    memset(a, 0, sizeof *a);
}

static void message_clear(struct checkout_message *m)
{
    free(m->code);
    free(m->content);
    free(m->path);
    memset(m, 0, sizeof *m);
}

static void messages_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->n_messages; i++)
        message_clear(&c->messages[i]);
    free(c->messages);
    c->messages = NULL;
    c->n_messages = 0;
}

static void line_clear(struct line_item *li)
{
    free(li->id);
    free(li->item_id);
    free(li->title);
    free(li->image_url);
    memset(li, 0, sizeof *li);
}

static void options_clear(struct fulfillment_group *g)
{
    for (size_t o = 0; o < g->n_options; o++) {
        free(g->options[o].id);
        free(g->options[o].title);
        free(g->options[o].description);
    }
    free(g->options);
    g->options = NULL;
    g->n_options = 0;
}

static void method_clear(struct fulfillment_method *m)
{
    free(m->id);
    free(m->type);
    for (size_t d = 0; d < m->n_destinations; d++)
        checkout_address_clear(&m->destinations[d]);
    free(m->destinations);
    free(m->selected_destination_id);
    for (size_t g = 0; g < m->n_groups; g++) {
        free(m->groups[g].id);
        free(m->groups[g].selected_option_id);
        options_clear(&m->groups[g]);
    }
    free(m->groups);
    memset(m, 0, sizeof *m);
}

static void methods_clear(struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++)
        method_clear(&c->methods[m]);
    free(c->methods);
    c->methods = NULL;
    c->n_methods = 0;
}

static void codes_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->n_codes; i++)
        free(c->codes[i]);
    free(c->codes);
    c->codes = NULL;
    c->n_codes = 0;
}

static void applied_free(struct checkout *c)
{
    for (size_t i = 0; i < c->n_applied; i++) {
        free(c->applied[i].code);
        free(c->applied[i].title);
        free(c->applied[i].alloc);
    }
    free(c->applied);
    c->applied = NULL;
    c->n_applied = 0;
}

static void instruments_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->payment.n_instruments; i++)
        payment_instrument_clear(&c->payment.instruments[i]);
    free(c->payment.instruments);
    c->payment.instruments = NULL;
    c->payment.n_instruments = 0;
    free(c->payment.selected_instrument_id);
    c->payment.selected_instrument_id = NULL;
}

static void links_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->n_links; i++) {
        free(c->links[i].type);
        free(c->links[i].url);
        free(c->links[i].title);
    }
    free(c->links);
    c->links = NULL;
    c->n_links = 0;
}

static void lines_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->n_lines; i++)
        line_clear(&c->lines[i]);
    free(c->lines);
    c->lines = NULL;
    c->n_lines = 0;
}

static void op_keys_clear(struct checkout *c)
{
    for (size_t i = 0; i < c->n_op_keys; i++)
        free(c->op_keys[i]);
    free(c->op_keys);
    c->op_keys = NULL;
    c->n_op_keys = 0;
}

static void claim_clear(struct checkout_claim *k)
{
    free(k->key);
    free(k->by);
    *k = (struct checkout_claim){ 0 };
}

void checkout_free(struct checkout *c)
{
    if (!c)
        return;
    free(c->id);
    op_keys_clear(c);
    claim_clear(&c->completing);
    lines_clear(c);
    checkout_buyer_clear(&c->buyer);
    methods_clear(c);
    codes_clear(c);
    applied_free(c);
    json_decref(c->payment.handlers);
    instruments_clear(c);
    messages_clear(c);
    links_clear(c);
    if (c->escalation) {
        message_clear(c->escalation);
        free(c->escalation);
    }
    free(c->continue_url);
    free(c->order_id);
    free(c->order_permalink_url);
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

static int buyer_copy(struct checkout_buyer *d, const struct checkout_buyer *s)
{
    memset(d, 0, sizeof *d);
    if (sdup(s->first_name, &d->first_name) || sdup(s->last_name, &d->last_name) ||
        sdup(s->full_name, &d->full_name) || sdup(s->email, &d->email) ||
        sdup(s->phone_number, &d->phone_number)) {
        checkout_buyer_clear(d);
        return AGENTD_ENOMEM;
    }
    return 0;
}

int checkout_address_copy(struct postal_address *d, const struct postal_address *s)
{
    memset(d, 0, sizeof *d);
    if (sdup(s->id, &d->id) || sdup(s->street_address, &d->street_address) ||
        sdup(s->extended_address, &d->extended_address) ||
        sdup(s->address_locality, &d->address_locality) ||
        sdup(s->address_region, &d->address_region) || sdup(s->postal_code, &d->postal_code) ||
        sdup(s->address_country, &d->address_country) || sdup(s->first_name, &d->first_name) ||
        sdup(s->last_name, &d->last_name) || sdup(s->full_name, &d->full_name) ||
        sdup(s->phone_number, &d->phone_number)) {
        checkout_address_clear(d);
        return AGENTD_ENOMEM;
    }
    return 0;
}

static int message_copy(struct checkout_message *d, const struct checkout_message *s)
{
    *d = (struct checkout_message){.type = s->type, .severity = s->severity};
    if (sdup(s->code, &d->code) || sdup(s->content, &d->content) || sdup(s->path, &d->path)) {
        message_clear(d);
        return AGENTD_ENOMEM;
    }
    return 0;
}

static int method_copy(struct fulfillment_method *d, const struct fulfillment_method *s)
{
    memset(d, 0, sizeof *d);
    if (sdup(s->id, &d->id) || sdup(s->type, &d->type) ||
        sdup(s->selected_destination_id, &d->selected_destination_id))
        goto fail;
    if (s->n_destinations) {
        d->destinations = calloc(s->n_destinations, sizeof *d->destinations);
        if (!d->destinations)
            goto fail;
        for (; d->n_destinations < s->n_destinations; d->n_destinations++)
            if (checkout_address_copy(&d->destinations[d->n_destinations],
                                      &s->destinations[d->n_destinations]))
                goto fail;
    }
    if (s->n_groups) {
        d->groups = calloc(s->n_groups, sizeof *d->groups);
        if (!d->groups)
            goto fail;
        for (; d->n_groups < s->n_groups; d->n_groups++) {
            struct fulfillment_group *dg = &d->groups[d->n_groups];
            const struct fulfillment_group *sg = &s->groups[d->n_groups];
            if (sdup(sg->id, &dg->id) || sdup(sg->selected_option_id, &dg->selected_option_id))
                goto fail_group;
            if (sg->n_options) {
                dg->options = calloc(sg->n_options, sizeof *dg->options);
                if (!dg->options)
                    goto fail_group;
                for (; dg->n_options < sg->n_options; dg->n_options++) {
                    struct fulfillment_option *dopt = &dg->options[dg->n_options];
                    const struct fulfillment_option *so = &sg->options[dg->n_options];
                    dopt->amount = so->amount;
                    if (sdup(so->id, &dopt->id) || sdup(so->title, &dopt->title) ||
                        sdup(so->description, &dopt->description)) {
                        dg->n_options++; /* so options_clear frees the partial one */
                        goto fail_group;
                    }
                }
            }
            continue;
        fail_group:
            d->n_groups++;
            goto fail;
        }
    }
    return 0;
fail:
    method_clear(d);
    return AGENTD_ENOMEM;
}

struct checkout *checkout_clone(const struct checkout *s)
{
    struct checkout *c = checkout_new(s->id);
    if (!c)
        return NULL;
    c->status = s->status;
    memcpy(c->currency, s->currency, sizeof c->currency);
    c->has_buyer = s->has_buyer;
    c->created_at = s->created_at;
    c->updated_at = s->updated_at;
    c->expires_at = s->expires_at;
    c->version = s->version;
    c->next_seq = s->next_seq;
    c->totals = s->totals;
    if (sdup(s->continue_url, &c->continue_url) || sdup(s->order_id, &c->order_id) ||
        sdup(s->order_permalink_url, &c->order_permalink_url))
        goto fail;
    if (s->n_lines) {
        if (!(c->lines = calloc(s->n_lines, sizeof *c->lines)))
            goto fail;
        for (; c->n_lines < s->n_lines; c->n_lines++) {
            struct line_item *d = &c->lines[c->n_lines];
            const struct line_item *l = &s->lines[c->n_lines];
            d->price = l->price;
            d->quantity = l->quantity;
            d->totals = l->totals;
            if (sdup(l->id, &d->id) || sdup(l->item_id, &d->item_id) ||
                sdup(l->title, &d->title) || sdup(l->image_url, &d->image_url)) {
                c->n_lines++;
                goto fail;
            }
        }
    }
    if (buyer_copy(&c->buyer, &s->buyer))
        goto fail;
    if (s->n_methods) {
        if (!(c->methods = calloc(s->n_methods, sizeof *c->methods)))
            goto fail;
        for (; c->n_methods < s->n_methods; c->n_methods++)
            if (method_copy(&c->methods[c->n_methods], &s->methods[c->n_methods]))
                goto fail;
    }
    if (s->n_codes) {
        if (!(c->codes = calloc(s->n_codes, sizeof *c->codes)))
            goto fail;
        for (; c->n_codes < s->n_codes; c->n_codes++)
            if (sdup(s->codes[c->n_codes], &c->codes[c->n_codes]))
                goto fail;
    }
    if (s->n_applied) {
        if (!(c->applied = calloc(s->n_applied, sizeof *c->applied)))
            goto fail;
        for (; c->n_applied < s->n_applied; c->n_applied++) {
            struct applied_discount *d = &c->applied[c->n_applied];
            const struct applied_discount *a = &s->applied[c->n_applied];
            d->type = a->type;
            d->amount = a->amount;
            d->priority = a->priority;
            d->n_alloc = a->n_alloc;
            d->alloc = calloc(a->n_alloc ? a->n_alloc : 1, sizeof *d->alloc);
            if (d->alloc && a->n_alloc)
                memcpy(d->alloc, a->alloc, a->n_alloc * sizeof *d->alloc);
            if (!d->alloc || sdup(a->code, &d->code) || sdup(a->title, &d->title)) {
                c->n_applied++;
                goto fail;
            }
        }
    }
    if (s->payment.handlers && !(c->payment.handlers = json_deep_copy(s->payment.handlers)))
        goto fail;
    if (s->payment.n_instruments) {
        if (!(c->payment.instruments =
                  calloc(s->payment.n_instruments, sizeof *c->payment.instruments)))
            goto fail;
        for (; c->payment.n_instruments < s->payment.n_instruments; c->payment.n_instruments++)
            if (payment_instrument_copy(&c->payment.instruments[c->payment.n_instruments],
                                        &s->payment.instruments[c->payment.n_instruments]))
                goto fail;
    }
    if (sdup(s->payment.selected_instrument_id, &c->payment.selected_instrument_id))
        goto fail;
    if (s->n_messages) {
        if (!(c->messages = calloc(s->n_messages, sizeof *c->messages)))
            goto fail;
        for (; c->n_messages < s->n_messages; c->n_messages++)
            if (message_copy(&c->messages[c->n_messages], &s->messages[c->n_messages]))
                goto fail;
    }
    if (s->n_links) {
        if (!(c->links = calloc(s->n_links, sizeof *c->links)))
            goto fail;
        for (; c->n_links < s->n_links; c->n_links++) {
            struct checkout_link *d = &c->links[c->n_links];
            const struct checkout_link *l = &s->links[c->n_links];
            if (sdup(l->type, &d->type) || sdup(l->url, &d->url) || sdup(l->title, &d->title)) {
                c->n_links++;
                goto fail;
            }
        }
    }
    if (s->escalation) {
        if (!(c->escalation = calloc(1, sizeof *c->escalation)) ||
            message_copy(c->escalation, s->escalation))
            goto fail;
    }
    if (s->n_op_keys) {
        if (!(c->op_keys = calloc(s->n_op_keys, sizeof *c->op_keys)))
            goto fail;
        for (; c->n_op_keys < s->n_op_keys; c->n_op_keys++)
            if (sdup(s->op_keys[c->n_op_keys], &c->op_keys[c->n_op_keys]))
                goto fail;
    }
    c->completing.at = s->completing.at;
    if (sdup(s->completing.key, &c->completing.key) || sdup(s->completing.by, &c->completing.by))
        goto fail;
    return c;
fail:
    checkout_free(c);
    return NULL;
}

/* Swaps the contents of a working copy into c and frees the old state. */
static void commit(struct checkout *c, struct checkout *work)
{
    struct checkout old = *c;
    *c = *work;
    *work = old;
    checkout_free(work);
}

/* ---- operation keys ---- */

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): what jansson accepts as a JSON string. */
static int utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t len;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            len = 2;
            cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3;
            cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int checkout_op_key_check(const char *key, struct agentd_error *e)
{
    if (!key || !key[0])
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "the operation key is empty");
    size_t n = strlen(key);
    if (n > CHECKOUT_OP_KEY_MAX)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "the operation key is %zu bytes; at most %d", n, CHECKOUT_OP_KEY_MAX);
    if (!str_ok(key, CHECKOUT_OP_KEY_MAX) || !utf8_ok((const unsigned char *)key, n))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "the operation key must be printable UTF-8 text");
    return 0;
}

int checkout_op_key_has(const struct checkout *c, const char *key)
{
    for (size_t i = 0; c && key && i < c->n_op_keys; i++)
        if (strcmp(c->op_keys[i], key) == 0)
            return 1;
    return 0;
}

int checkout_op_key_add(struct checkout *c, const char *key, struct agentd_error *e)
{
    int rc = checkout_op_key_check(key, e);
    if (rc)
        return rc;
    if (checkout_op_key_has(c, key))
        return 0;
    char *k = strdup(key);
    if (!k)
        return oom(e);
    if (c->n_op_keys >= CHECKOUT_OP_KEYS_MAX) {
        /* Full: drop the oldest, keep the array (no allocation to fail). */
        size_t drop = c->n_op_keys - CHECKOUT_OP_KEYS_MAX + 1;
        for (size_t i = 0; i < drop; i++)
            free(c->op_keys[i]);
        memmove(c->op_keys, c->op_keys + drop, (c->n_op_keys - drop) * sizeof *c->op_keys);
        c->n_op_keys -= drop;
    } else {
        char **n = realloc(c->op_keys, (c->n_op_keys + 1) * sizeof *n);
        if (!n) {
            free(k);
            return oom(e);
        }
        c->op_keys = n;
    }
    c->op_keys[c->n_op_keys++] = k;
    return 0;
}

int checkout_claim_set(struct checkout *c, const char *key, const char *by, int64_t at,
                       struct agentd_error *e)
{
    int rc = checkout_op_key_check(key, e);
    size_t bl = by ? strlen(by) : 0;
    for (size_t i = 0; rc == 0 && by && i < bl; i++)
        if ((unsigned char)by[i] < 0x20 || (unsigned char)by[i] == 0x7f)
            bl = 0;
    if (rc == 0 && by && (bl == 0 || bl > CHECKOUT_CLAIM_BY_MAX))
        rc = agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "bad instance id");
    if (rc)
        return rc;
    struct checkout_claim k = { .at = at };
    if (sdup(key, &k.key) || sdup(by, &k.by)) {
        claim_clear(&k);
        return oom(e);
    }
    claim_clear(&c->completing);
    c->completing = k;
    return 0;
}

/* doc._agentd, created when missing (NULL out of memory). */
static json_t *internal_obj(json_t *doc)
{
    json_t *in = json_object_get(doc, "_agentd");
    if (json_is_object(in))
        return in;
    if (!(in = json_object()) || json_object_set_new(doc, "_agentd", in))
        return NULL;
    return in;
}

int checkout_internal_to_doc(const struct checkout *c, json_t *doc)
{
    if (!c || !json_is_object(doc))
        return AGENTD_EINVAL;
    json_t *in = json_object_get(doc, "_agentd");
    if (!c->n_op_keys && !c->completing.key) {
        if (json_is_object(in)) {
            json_object_del(in, "op_keys");
            json_object_del(in, "completing");
        }
        return 0;
    }
    if (!(in = internal_obj(doc)))
        return AGENTD_ENOMEM;
    if (!c->n_op_keys) {
        json_object_del(in, "op_keys");
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < c->n_op_keys; i++)
            if (json_array_append_new(arr, json_string(c->op_keys[i]))) {
                json_decref(arr);
                arr = NULL;
            }
        if (!arr || json_object_set_new(in, "op_keys", arr))
            return AGENTD_ENOMEM;
    }
    if (!c->completing.key) {
        json_object_del(in, "completing");
        return 0;
    }
    json_t *k = json_pack("{s:s,s:I}", "key", c->completing.key, "at",
                          (json_int_t)c->completing.at);
    if (k && c->completing.by && json_object_set_new(k, "by", json_string(c->completing.by))) {
        json_decref(k);
        k = NULL;
    }
    if (!k || json_object_set_new(in, "completing", k))
        return AGENTD_ENOMEM;
    return 0;
}

/* doc._agentd.completing into c->completing (absent: none). */
static int claim_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    const json_t *k = json_object_get(json_object_get(doc, "_agentd"), "completing");
    if (!k || json_is_null(k)) {
        claim_clear(&c->completing);
        return 0;
    }
    const json_t *key = json_object_get(k, "key"), *by = json_object_get(k, "by");
    const json_t *at = json_object_get(k, "at");
    if (!json_is_object(k) || !json_is_string(key) || (by && !json_is_string(by)) ||
        !json_is_integer(at))
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: bad completion claim");
    struct agentd_error ignored;
    int rc = checkout_claim_set(c, json_string_value(key), json_string_value(by),
                                json_integer_value(at), &ignored);
    if (rc == AGENTD_ENOMEM)
        return oom(e);
    if (rc)
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: bad completion claim");
    return 0;
}

/* doc._agentd.op_keys into c's keys. */
static int op_keys_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    const json_t *arr = json_object_get(json_object_get(doc, "_agentd"), "op_keys");
    if (!arr || json_is_null(arr)) {
        op_keys_clear(c);
        return 0;
    }
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: op_keys is not an array");
    size_t n = json_array_size(arr);
    size_t skip = n > CHECKOUT_OP_KEYS_MAX ? n - CHECKOUT_OP_KEYS_MAX : 0;
    char **keys = calloc(n - skip ? n - skip : 1, sizeof *keys);
    if (!keys)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (size_t i = skip; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || checkout_op_key_check(s, NULL)) {
            rc = agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                               "checkout document: bad operation key");
            break;
        }
        int dup = 0;
        for (size_t k = 0; k < got && !dup; k++)
            dup = strcmp(keys[k], s) == 0;
        if (dup)
            continue; /* harmless; we never write one */
        if (!(keys[got] = strdup(s))) {
            rc = oom(e);
            break;
        }
        got++;
    }
    if (rc) {
        for (size_t i = 0; i < got; i++)
            free(keys[i]);
        free(keys);
        return rc;
    }
    if (!got) {
        free(keys);
        keys = NULL;
    }
    op_keys_clear(c);
    c->op_keys = keys;
    c->n_op_keys = got;
    return 0;
}

int checkout_internal_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    int rc = op_keys_from_doc(c, doc, e);
    return rc ? rc : claim_from_doc(c, doc, e);
}

/* ---- JSON parsing of request pieces ---- */

int checkout_buyer_from_json(const json_t *j, struct checkout_buyer *b, struct agentd_error *e)
{
    memset(b, 0, sizeof *b);
    if (!json_is_object(j))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer", "buyer must be an object");
    int rc;
    if ((rc = jstr(j, "first_name", &b->first_name, "$.buyer.first_name", e)) ||
        (rc = jstr(j, "last_name", &b->last_name, "$.buyer.last_name", e)) ||
        (rc = jstr(j, "full_name", &b->full_name, "$.buyer.full_name", e)) ||
        (rc = jstr(j, "email", &b->email, "$.buyer.email", e)) ||
        (rc = jstr(j, "phone_number", &b->phone_number, "$.buyer.phone_number", e))) {
        checkout_buyer_clear(b);
        return rc;
    }
    return 0;
}

int checkout_address_from_json(const json_t *j, struct postal_address *a, struct agentd_error *e)
{
    memset(a, 0, sizeof *a);
    if (!json_is_object(j))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "a destination must be an object");
    static const struct {
        const char *key;
        size_t off;
    } fields[] = {
        {"id", offsetof(struct postal_address, id)},
        {"street_address", offsetof(struct postal_address, street_address)},
        {"extended_address", offsetof(struct postal_address, extended_address)},
        {"address_locality", offsetof(struct postal_address, address_locality)},
        {"address_region", offsetof(struct postal_address, address_region)},
        {"postal_code", offsetof(struct postal_address, postal_code)},
        {"address_country", offsetof(struct postal_address, address_country)},
        {"first_name", offsetof(struct postal_address, first_name)},
        {"last_name", offsetof(struct postal_address, last_name)},
        {"full_name", offsetof(struct postal_address, full_name)},
        {"phone_number", offsetof(struct postal_address, phone_number)},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char **slot = (char **)((char *)a + fields[i].off);
        int rc = jstr(j, fields[i].key, slot, "$.fulfillment", e);
        if (rc) {
            checkout_address_clear(a);
            return rc;
        }
    }
    if (a->id && !id_ok(a->id)) {
        checkout_address_clear(a);
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "destination id must be 1-%d printable characters", ID_MAX);
    }
    /* Country codes are compared with the catalog's upper-case ones. */
    for (char *p = a->address_country; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return 0;
}

/* line_items[] -> c->lines. old (may be NULL) supplies ids to keep. */
static int parse_lines(struct checkout *c, const json_t *arr, struct agentd_error *e)
{
    char path[96];
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.line_items",
                             "line_items must be an array");
    size_t n = json_array_size(arr);
    if (n > CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.line_items",
                             "at most %d line items", CHECKOUT_LINES_MAX);
    struct line_item *lines = calloc(n ? n : 1, sizeof *lines);
    if (!lines)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        const json_t *o = json_array_get(arr, got);
        struct line_item *li = &lines[got];
        snprintf(path, sizeof path, "$.line_items[%zu]", got);
        json_t *item = json_object_get(o, "item");
        json_t *iid = json_object_get(item, "id");
        json_t *qty = json_object_get(o, "quantity");
        if (!json_is_object(o) || !json_is_object(item) || !json_is_string(iid) ||
            !id_ok(json_string_value(iid))) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "line item %zu needs item.id (1-%d printable characters)", got,
                               ID_MAX);
            goto fail;
        }
        if (!json_is_integer(qty)) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "line item %zu needs an integer quantity", got);
            goto fail;
        }
        li->quantity = json_integer_value(qty);
        if (li->quantity < 1 || li->quantity > CHECKOUT_QTY_MAX) {
            rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", path,
                               "quantity of '%s' must be between 1 and %d",
                               json_string_value(iid), CHECKOUT_QTY_MAX);
            goto fail;
        }
        if (sdup(json_string_value(iid), &li->item_id)) {
            rc = oom(e);
            goto fail;
        }
        json_t *lid = json_object_get(o, "id");
        if (json_is_string(lid) && id_ok(json_string_value(lid))) {
            int dup = 0;
            for (size_t k = 0; k < got; k++)
                dup |= lines[k].id && strcmp(lines[k].id, json_string_value(lid)) == 0;
            if (!dup && sdup(json_string_value(lid), &li->id)) {
                rc = oom(e);
                goto fail;
            }
        }
    }
    /* Fresh ids for lines that did not bring a usable one. */
    for (size_t i = 0; i < n; i++) {
        char buf[32];
        if (lines[i].id)
            continue;
        do {
            next_id(c, "li", buf, sizeof buf);
            int clash = 0;
            for (size_t k = 0; k < n; k++)
                clash |= lines[k].id && strcmp(lines[k].id, buf) == 0;
            if (!clash)
                break;
        } while (1);
        if (sdup(buf, &lines[i].id)) {
            got = n;
            rc = oom(e);
            goto fail;
        }
    }
    lines_clear(c);
    c->lines = lines;
    c->n_lines = n;
    return 0;
fail:
    for (size_t i = 0; i <= got && i < n; i++)
        line_clear(&lines[i]);
    free(lines);
    return rc;
}

static int parse_codes(struct checkout *c, const json_t *disc, struct agentd_error *e)
{
    if (json_is_null(disc)) {
        codes_clear(c);
        return 0;
    }
    if (!json_is_object(disc))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts",
                             "discounts must be an object");
    json_t *codes = json_object_get(disc, "codes");
    if (!codes)
        return 0; /* {"applied": ...} echoed back: nothing to change */
    if (json_is_null(codes)) {
        codes_clear(c);
        return 0;
    }
    if (!json_is_array(codes))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                             "discounts.codes must be an array of strings");
    size_t n = json_array_size(codes);
    if (n > CHECKOUT_CODES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.discounts.codes",
                             "at most %d discount codes", CHECKOUT_CODES_MAX);
    const char *list[CHECKOUT_CODES_MAX];
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(codes, i);
        if (!json_is_string(v) || !id_ok(json_string_value(v)))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                                 "discount code %zu must be 1-%d printable characters", i,
                                 ID_MAX);
        list[i] = json_string_value(v);
    }
    char **nc = calloc(n ? n : 1, sizeof *nc);
    if (!nc)
        return oom(e);
    for (size_t i = 0; i < n; i++) {
        if (sdup(list[i], &nc[i])) {
            for (size_t k = 0; k < i; k++)
                free(nc[k]);
            free(nc);
            return oom(e);
        }
    }
    codes_clear(c);
    c->codes = nc;
    c->n_codes = n;
    return 0;
}

static int parse_payment(struct checkout *c, const json_t *p, struct agentd_error *e)
{
    if (json_is_null(p)) {
        instruments_clear(c);
        return 0;
    }
    if (!json_is_object(p))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment", "payment must be an object");
    /* payment.handlers from the client are ignored: handlers are what the
     * shop advertises, and the UCP conformance client echoes them back. */
    json_t *ins = json_object_get(p, "instruments");
    if (ins && !json_is_null(ins) && !json_is_array(ins))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.payment.instruments",
                             "payment.instruments must be an array");
    size_t n = json_array_size(ins);
    if (n > CHECKOUT_INSTRUMENTS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.payment.instruments",
                             "at most %d payment instruments", CHECKOUT_INSTRUMENTS_MAX);
    struct payment_instrument *list = calloc(n ? n : 1, sizeof *list);
    char *sel = NULL;
    int rc = 0;
    if (!list)
        return oom(e);
    size_t got = 0;
    for (; got < n; got++) {
        char err[200];
        rc = payment_instrument_parse(json_array_get(ins, got), &list[got], err, sizeof err);
        if (rc) {
            char path[64];
            snprintf(path, sizeof path, "$.payment.instruments[%zu]", got);
            rc = rc == AGENTD_ENOMEM ? oom(e)
                                     : agentd_fail(e, rc, "invalid_payment", path, "%s", err);
            goto fail;
        }
    }
    if ((rc = jstr(p, "selected_instrument_id", &sel, "$.payment.selected_instrument_id", e)))
        goto fail;
    instruments_clear(c);
    c->payment.instruments = list;
    c->payment.n_instruments = n;
    c->payment.selected_instrument_id = sel;
    return 0;
fail:
    for (size_t i = 0; i < got; i++)
        payment_instrument_clear(&list[i]);
    free(list);
    free(sel);
    return rc;
}

/* Parses destinations[] of a method into a fresh array, assigning ids. */
static int parse_destinations(struct checkout *c, const json_t *arr, size_t mi,
                              struct postal_address **out, size_t *nout, struct agentd_error *e)
{
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", mi);
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "destinations must be an array");
    size_t n = json_array_size(arr);
    if (n > CHECKOUT_DESTS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                             "at most %d destinations", CHECKOUT_DESTS_MAX);
    struct postal_address *d = calloc(n ? n : 1, sizeof *d);
    if (!d)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        if ((rc = checkout_address_from_json(json_array_get(arr, got), &d[got], e))) {
            if (e)
                snprintf(e->path, sizeof e->path, "%s[%zu]", path, got);
            goto fail;
        }
        for (size_t k = 0; k < got && d[got].id; k++) {
            if (d[k].id && strcmp(d[k].id, d[got].id) == 0) {
                got++;
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                                   "destination id '%s' appears twice", d[k].id);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (d[i].id)
            continue;
        char buf[32];
        next_id(c, "dest", buf, sizeof buf);
        if (sdup(buf, &d[i].id)) {
            rc = oom(e);
            goto fail;
        }
    }
    *out = d;
    *nout = n;
    return 0;
fail:
    for (size_t i = 0; i < got && i < n; i++)
        checkout_address_clear(&d[i]);
    free(d);
    return rc;
}

/* A method as requested, merged with the existing one of the same id (or
 * the only existing one): absent destinations/groups/selection are kept. */
static int parse_method(struct checkout *c, const json_t *o, size_t mi,
                        const struct fulfillment_method *old, struct fulfillment_method *m,
                        struct agentd_error *e)
{
    char path[96];
    snprintf(path, sizeof path, "$.fulfillment.methods[%zu]", mi);
    memset(m, 0, sizeof *m);
    if (!json_is_object(o))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "a method must be an object");
    int rc;
    char *type = NULL;
    if ((rc = jstr(o, "type", &type, path, e)))
        return rc;
    if (type && strcmp(type, "shipping") != 0) {
        rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "unsupported", path,
                           "fulfillment type '%.40s' is not offered; use shipping", type);
        free(type);
        return rc;
    }
    free(type);
    if (old) {
        if ((rc = method_copy(m, old)))
            return oom(e);
    } else {
        char *mid = NULL;
        if ((rc = jstr(o, "id", &mid, path, e)))
            return rc;
        if (mid && !id_ok(mid)) {
            free(mid);
            return agentd_fail(e, AGENTD_EINVAL, "invalid", path, "method id is invalid");
        }
        if (!mid) {
            char buf[32];
            next_id(c, "shipping", buf, sizeof buf);
            if (sdup(buf, &mid))
                return oom(e);
        }
        m->id = mid;
    }
    if (sset(&m->type, "shipping"))
        goto nomem;

    json_t *dests = json_object_get(o, "destinations");
    int dests_given = dests && !json_is_null(dests);
    if (dests_given) {
        struct postal_address *d = NULL;
        size_t nd = 0;
        if ((rc = parse_destinations(c, dests, mi, &d, &nd, e)))
            goto fail;
        for (size_t i = 0; i < m->n_destinations; i++)
            checkout_address_clear(&m->destinations[i]);
        free(m->destinations);
        m->destinations = d;
        m->n_destinations = nd;
    }

    json_t *sel = json_object_get(o, "selected_destination_id");
    if (sel) {
        if (!json_is_null(sel) && (!json_is_string(sel) || !id_ok(json_string_value(sel)))) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                               "selected_destination_id must be a string");
            goto fail;
        }
        if (sset(&m->selected_destination_id, json_is_null(sel) ? NULL : json_string_value(sel)))
            goto nomem;
    } else if (dests_given && m->n_destinations == 1) {
        /* One address given and none chosen: that is the choice. */
        if (sset(&m->selected_destination_id, m->destinations[0].id))
            goto nomem;
    }
    if (m->selected_destination_id) {
        int found = 0;
        for (size_t i = 0; i < m->n_destinations; i++)
            found |= strcmp(m->destinations[i].id, m->selected_destination_id) == 0;
        if (!found) {
            if (!sel) {
                /* A kept selection whose destination was replaced. */
                free(m->selected_destination_id);
                m->selected_destination_id = NULL;
            } else {
                rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                                   "selected_destination_id '%.64s' is not among the destinations",
                                   m->selected_destination_id);
                goto fail;
            }
        }
    }

    json_t *groups = json_object_get(o, "groups");
    if (groups && !json_is_null(groups)) {
        if (!json_is_array(groups)) {
            rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path, "groups must be an array");
            goto fail;
        }
        if (m->n_groups == 0) {
            if (!(m->groups = calloc(1, sizeof *m->groups)))
                goto nomem;
            m->n_groups = 1;
            char buf[32];
            next_id(c, "group", buf, sizeof buf);
            if (sdup(buf, &m->groups[0].id))
                goto nomem;
        }
        /* We ship everything in one group: a request group maps to ours by
         * id, or by position when it has no id (create requests). */
        size_t gi;
        json_t *g;
        json_array_foreach(groups, gi, g)
        {
            if (!json_is_object(g)) {
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path, "a group must be an object");
                goto fail;
            }
            json_t *gid = json_object_get(g, "id");
            struct fulfillment_group *target = NULL;
            if (json_is_string(gid)) {
                for (size_t k = 0; k < m->n_groups; k++)
                    if (strcmp(m->groups[k].id, json_string_value(gid)) == 0)
                        target = &m->groups[k];
            } else if (gi < m->n_groups) {
                target = &m->groups[gi];
            }
            if (!target)
                continue; /* a group we never offered: nothing to select in it */
            json_t *so = json_object_get(g, "selected_option_id");
            if (!so)
                continue;
            if (!json_is_null(so) && (!json_is_string(so) || !id_ok(json_string_value(so)))) {
                rc = agentd_fail(e, AGENTD_EINVAL, "invalid", path,
                                   "selected_option_id must be a string");
                goto fail;
            }
            if (sset(&target->selected_option_id, json_is_null(so) ? NULL : json_string_value(so)))
                goto nomem;
        }
    }
    return 0;
nomem:
    rc = oom(e);
fail:
    method_clear(m);
    return rc;
}

static int parse_fulfillment(struct checkout *c, const json_t *f, struct agentd_error *e)
{
    if (json_is_null(f)) {
        methods_clear(c);
        return 0;
    }
    if (!json_is_object(f))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                             "fulfillment must be an object");
    json_t *methods = json_object_get(f, "methods");
    if (!methods)
        return 0;
    if (json_is_null(methods)) {
        methods_clear(c);
        return 0;
    }
    if (!json_is_array(methods))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment.methods",
                             "fulfillment.methods must be an array");
    size_t n = json_array_size(methods);
    if (n > CHECKOUT_METHODS_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.fulfillment.methods",
                             "at most %d fulfillment methods", CHECKOUT_METHODS_MAX);
    struct fulfillment_method *ms = calloc(n ? n : 1, sizeof *ms);
    if (!ms)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (; got < n; got++) {
        const json_t *o = json_array_get(methods, got);
        const struct fulfillment_method *old = NULL;
        json_t *mid = json_object_get(o, "id");
        if (json_is_string(mid)) {
            for (size_t k = 0; k < c->n_methods; k++)
                if (strcmp(c->methods[k].id, json_string_value(mid)) == 0)
                    old = &c->methods[k];
        } else if (c->n_methods == 1 && n == 1) {
            old = &c->methods[0];
        }
        if ((rc = parse_method(c, o, got, old, &ms[got], e)))
            goto fail;
    }
    methods_clear(c);
    c->methods = ms;
    c->n_methods = n;
    return 0;
fail:
    for (size_t i = 0; i < got; i++)
        method_clear(&ms[i]);
    free(ms);
    return rc;
}

/* ---- refresh: catalog data, options, prices, messages, status ---- */

static int add_message(struct checkout *c, enum checkout_msg_type type, enum checkout_severity sev,
                       const char *code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int add_message(struct checkout *c, enum checkout_msg_type type, enum checkout_severity sev,
                       const char *code, const char *path, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    struct checkout_message *n = realloc(c->messages, (c->n_messages + 1) * sizeof *n);
    if (!n)
        return AGENTD_ENOMEM;
    c->messages = n;
    struct checkout_message *m = &n[c->n_messages];
    *m = (struct checkout_message){.type = type, .severity = sev};
    if (sdup(code, &m->code) || sdup(text, &m->content) || sdup(path, &m->path)) {
        message_clear(m);
        return AGENTD_ENOMEM;
    }
    c->n_messages++;
    return 0;
}

static int refresh_items(struct checkout *c, const struct shop_rules *r, unsigned flags,
                         struct agentd_error *e)
{
    char path[64];
    for (size_t i = 0; i < c->n_lines; i++) {
        struct line_item *li = &c->lines[i];
        const struct product *p = r->product ? r->product(r->ud, li->item_id) : NULL;
        snprintf(path, sizeof path, "$.line_items[%zu]", i);
        if (!p) {
            if (flags & REFRESH_CHECK_ITEMS)
                return agentd_fail(e, AGENTD_EINVAL, "not_found", path,
                                     "unknown item '%.64s'", li->item_id);
            /* Vanished from the catalog since it was added: keep the line
             * so the buyer sees it, and block completion. */
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "not_found", path,
                            "Item '%.64s' is no longer available; remove it", li->item_id))
                return oom(e);
            continue;
        }
        if (p->price < 0 || p->price > MONEY_AMOUNT_MAX)
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path,
                                 "item '%.64s' has no valid price", li->item_id);
        li->price = p->price;
        if (sset(&li->title, p->name ? p->name : p->id) || sset(&li->image_url, p->image_url))
            return oom(e);
        int64_t want = 0;
        for (size_t k = 0; k < c->n_lines; k++)
            if (strcmp(c->lines[k].item_id, li->item_id) == 0)
                want += c->lines[k].quantity;
        int64_t have = r->stock ? r->stock(r->ud, li->item_id) : -1;
        int out = !p->available || (have >= 0 && want > have);
        if (out) {
            if (flags & REFRESH_CHECK_ITEMS)
                return agentd_fail(e, AGENTD_EINVAL, "out_of_stock", path,
                                     "'%.64s' is out of stock (requested %lld, available %lld)",
                                     li->item_id, (long long)want,
                                     (long long)(p->available ? (have > 0 ? have : 0) : 0));
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "out_of_stock", path,
                            "'%.64s' is out of stock", li->item_id))
                return oom(e);
        }
    }
    return 0;
}

static const struct postal_address *selected_dest(const struct fulfillment_method *m)
{
    for (size_t d = 0; m->selected_destination_id && d < m->n_destinations; d++)
        if (strcmp(m->destinations[d].id, m->selected_destination_id) == 0)
            return &m->destinations[d];
    return NULL;
}

/* Rebuilds each group's options from the rules for its destination and
 * checks the selection against them. */
static int refresh_options(struct checkout *c, const struct shop_rules *r, unsigned flags,
                           struct agentd_error *e)
{
    char path[96];
    for (size_t mi = 0; mi < c->n_methods; mi++) {
        struct fulfillment_method *m = &c->methods[mi];
        if (m->n_groups == 0) {
            if (!(m->groups = calloc(1, sizeof *m->groups)))
                return oom(e);
            m->n_groups = 1;
            char buf[32];
            next_id(c, "group", buf, sizeof buf);
            if (sdup(buf, &m->groups[0].id))
                return oom(e);
        }
        const struct postal_address *dest = selected_dest(m);
        const char *country = dest ? dest->address_country : NULL;
        size_t nr = 0;
        const struct shipping_rate *const *rates =
            country && r->shipping_rates ? r->shipping_rates(r->ud, country, &nr) : NULL;
        if (!rates)
            nr = 0;
        if (nr > CHECKOUT_OPTIONS_MAX)
            nr = CHECKOUT_OPTIONS_MAX;
        for (size_t gi = 0; gi < m->n_groups; gi++) {
            struct fulfillment_group *g = &m->groups[gi];
            options_clear(g);
            if (nr && !(g->options = calloc(nr, sizeof *g->options)))
                return oom(e);
            for (size_t k = 0; k < nr; k++) {
                const struct shipping_rate *s = rates[k];
                struct fulfillment_option *o = &g->options[g->n_options];
                if (!s || !s->id || s->price < 0 || s->price > MONEY_AMOUNT_MAX)
                    continue;
                o->amount = s->price;
                g->n_options++;
                if (sdup(s->id, &o->id) || sdup(s->title ? s->title : s->id, &o->title) ||
                    sdup(s->service_level, &o->description))
                    return oom(e);
            }
            if (!g->selected_option_id)
                continue;
            int found = 0;
            for (size_t k = 0; k < g->n_options; k++)
                found |= strcmp(g->options[k].id, g->selected_option_id) == 0;
            if (found)
                continue;
            snprintf(path, sizeof path, "$.fulfillment.methods[%zu].groups[%zu].selected_option_id",
                     mi, gi);
            const struct shipping_rate *known =
                r->shipping_rate ? r->shipping_rate(r->ud, g->selected_option_id) : NULL;
            if (!dest) {
                /* No address yet: keep a selection the shop knows, to be
                 * checked once the destination arrives. */
                if (known)
                    continue;
                if (flags & REFRESH_STRICT_OPTION)
                    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                         "unknown shipping option '%.64s'", g->selected_option_id);
            } else if (flags & REFRESH_STRICT_OPTION) {
                if (!known)
                    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                         "unknown shipping option '%.64s'", g->selected_option_id);
                /* Known but not offered here: another country's rate, or a
                 * default that a country rate of the same level overrides. */
                return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_option", path,
                                     "shipping option '%.64s' is not available for %.8s",
                                     g->selected_option_id, country ? country : "?");
            }
            /* The destination changed under a selection: drop it and let
             * the missing-option message ask again. */
            if (add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE, "fulfillment_changed", path,
                            "Shipping option '%.64s' is not available for this address",
                            g->selected_option_id))
                return oom(e);
            free(g->selected_option_id);
            g->selected_option_id = NULL;
        }
    }
    return 0;
}

static int email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && strchr(at + 1, '.') &&
           !strchr(s, ' ');
}

/* Messages saying what is missing, in the order a buyer would fix them. */
static int compute_messages(struct checkout *c, const struct shop_rules *r)
{
    char path[128];
    if (c->n_lines == 0 &&
        add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", "$.line_items",
                    "Add at least one item"))
        return AGENTD_ENOMEM;
    if (!(r->flags & SHOP_BUYER_EMAIL_OPTIONAL)) {
        if (!c->has_buyer || !c->buyer.email || !c->buyer.email[0]) {
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                            "$.buyer.email", "Buyer email is required"))
                return AGENTD_ENOMEM;
        } else if (!email_ok(c->buyer.email) &&
                   add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "invalid",
                               "$.buyer.email", "Buyer email is not a valid address")) {
            return AGENTD_ENOMEM;
        }
    }
    if (!(r->flags & SHOP_FULFILLMENT_OPTIONAL)) {
        if (c->n_methods == 0) {
            if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                            "$.fulfillment.methods", "Fulfillment address is required"))
                return AGENTD_ENOMEM;
        }
        for (size_t mi = 0; mi < c->n_methods; mi++) {
            const struct fulfillment_method *m = &c->methods[mi];
            const struct postal_address *d = selected_dest(m);
            if (!d) {
                snprintf(path, sizeof path, "$.fulfillment.methods[%zu].selected_destination_id",
                         mi);
                if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", path,
                                "Fulfillment address is required"))
                    return AGENTD_ENOMEM;
                continue;
            }
            if (!d->address_country || !d->address_country[0]) {
                snprintf(path, sizeof path, "$.fulfillment.methods[%zu].destinations", mi);
                if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing", path,
                                "The shipping address needs a country"))
                    return AGENTD_ENOMEM;
                continue;
            }
            for (size_t gi = 0; gi < m->n_groups; gi++) {
                const struct fulfillment_group *g = &m->groups[gi];
                if (g->selected_option_id)
                    continue;
                snprintf(path, sizeof path,
                         "$.fulfillment.methods[%zu].groups[%zu].selected_option_id", mi, gi);
                if (g->n_options == 0) {
                    if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE,
                                    "fulfillment_unavailable", path,
                                    "We do not ship to %.8s", d->address_country))
                        return AGENTD_ENOMEM;
                } else if (add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                                       path, "Please select a fulfillment option")) {
                    return AGENTD_ENOMEM;
                }
            }
        }
    }
    if (json_array_size(c->payment.handlers) == 0 &&
        add_message(c, CHECKOUT_MSG_ERROR, CHECKOUT_SEV_RECOVERABLE, "missing",
                    "$.payment.handlers", "No payment handler is available"))
        return AGENTD_ENOMEM;
    /* Rejected codes are warnings (UCP discount extension): the buyer
     * expected a saving and must be told, but checkout can go on. */
    for (size_t i = 0; i < c->n_codes; i++) {
        snprintf(path, sizeof path, "$.discounts.codes[%zu]", i);
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= strcasecmp(c->codes[k], c->codes[i]) == 0;
        const struct discount *d = r->discount ? r->discount(r->ud, c->codes[i]) : NULL;
        if (dup) {
            if (add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE,
                            "discount_code_already_applied", path,
                            "Code '%.64s' is already applied", c->codes[i]))
                return AGENTD_ENOMEM;
        } else if (!d && add_message(c, CHECKOUT_MSG_WARNING, CHECKOUT_SEV_NONE,
                                     "discount_code_invalid", path,
                                     "Code '%.64s' is not a valid discount code", c->codes[i])) {
            return AGENTD_ENOMEM;
        }
    }
    if (c->escalation) {
        struct checkout_message *n = realloc(c->messages, (c->n_messages + 1) * sizeof *n);
        if (!n)
            return AGENTD_ENOMEM;
        c->messages = n;
        if (message_copy(&n[c->n_messages], c->escalation))
            return AGENTD_ENOMEM;
        c->n_messages++;
    }
    return 0;
}

static enum checkout_status status_from_messages(const struct checkout *c)
{
    int errors = 0, escalate = 0;
    for (size_t i = 0; i < c->n_messages; i++) {
        if (c->messages[i].type != CHECKOUT_MSG_ERROR)
            continue;
        errors++;
        escalate |= c->messages[i].severity == CHECKOUT_SEV_REQUIRES_BUYER_INPUT ||
                    c->messages[i].severity == CHECKOUT_SEV_REQUIRES_BUYER_REVIEW;
    }
    if (escalate)
        return CHECKOUT_REQUIRES_ESCALATION;
    return errors ? CHECKOUT_INCOMPLETE : CHECKOUT_READY_FOR_COMPLETE;
}

static int refresh(struct checkout *c, const struct shop_rules *r, unsigned flags,
                   struct agentd_error *e)
{
    int rc;
    messages_clear(c);
    if (r->currency && money_currency_valid(r->currency))
        memcpy(c->currency, r->currency, COMMERCE_CURRENCY_LEN);
    json_t *h = r->payment_handlers && json_is_array(r->payment_handlers)
                    ? json_deep_copy(r->payment_handlers)
                    : json_array();
    if (!h)
        return oom(e);
    json_decref(c->payment.handlers);
    c->payment.handlers = h;
    links_clear(c);
    if (r->n_links) {
        if (!(c->links = calloc(r->n_links, sizeof *c->links)))
            return oom(e);
        for (; c->n_links < r->n_links; c->n_links++) {
            struct checkout_link *d = &c->links[c->n_links];
            if (sdup(r->links[c->n_links].type, &d->type) ||
                sdup(r->links[c->n_links].url, &d->url) ||
                sdup(r->links[c->n_links].title, &d->title)) {
                c->n_links++;
                return oom(e);
            }
        }
    }
    if ((rc = refresh_items(c, r, flags, e)) || (rc = refresh_options(c, r, flags, e)) ||
        (rc = pricing_compute(c, r, e)))
        return rc;
    if (compute_messages(c, r))
        return oom(e);
    if (!checkout_status_terminal(c->status) && c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
        c->status = status_from_messages(c);
    if (r->now)
        c->updated_at = r->now;
    return 0;
}

int checkout_refresh(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    struct checkout *w = checkout_clone(c);
    if (!w)
        return oom(e);
    int rc = refresh(w, r, 0, e);
    if (rc) {
        checkout_free(w);
        return rc;
    }
    commit(c, w);
    return 0;
}

/* ---- state guards ---- */

static int guard_mutable(const struct checkout *c, struct agentd_error *e)
{
    if (checkout_status_terminal(c->status))
        return agentd_fail(e, AGENTD_ECONFLICT, "not_modifiable", NULL,
                             "checkout %.64s is %s and can no longer change", c->id,
                             checkout_status_name(c->status));
    if (c->status == CHECKOUT_COMPLETE_IN_PROGRESS)
        return agentd_fail(e, AGENTD_ECONFLICT, "complete_in_progress", NULL,
                             "checkout %.64s is being completed", c->id);
    return 0;
}

/* Runs fn on a working copy of c, refreshes, and commits on success. */
typedef int (*mutate_fn)(struct checkout *w, const struct shop_rules *r, const void *arg,
                         struct agentd_error *e);

static int mutate(struct checkout *c, const struct shop_rules *r, unsigned flags, mutate_fn fn,
                  const void *arg, struct agentd_error *e)
{
    if (!c || !r)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout or rules");
    int rc = guard_mutable(c, e);
    if (rc)
        return rc;
    struct checkout *w = checkout_clone(c);
    if (!w)
        return oom(e);
    if ((rc = fn(w, r, arg, e)) == 0 && (rc = refresh(w, r, flags, e)) == 0) {
        commit(c, w);
        return 0;
    }
    checkout_free(w);
    return rc;
}

/* ---- create / update ---- */

static int check_currency(const json_t *req, const struct shop_rules *r, struct agentd_error *e)
{
    json_t *cur = json_object_get(req, "currency");
    if (!cur || json_is_null(cur))
        return 0;
    if (!json_is_string(cur) || !r->currency || strcasecmp(json_string_value(cur), r->currency) != 0)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "unsupported_currency", "$.currency",
                             "this shop sells in %s only", r->currency ? r->currency : "?");
    return 0;
}

/* The mutable fields of a create/update body; `full` = PUT semantics for
 * the required fields. */
static int apply_body(struct checkout *w, const struct shop_rules *r, const void *arg,
                      struct agentd_error *e)
{
    const json_t *req = arg;
    int rc;
    if (!json_is_object(req))
        return agentd_fail(e, AGENTD_EMALFORMED, "invalid", "$", "the body must be a JSON object");
    if ((rc = check_currency(req, r, e)))
        return rc;
    json_t *lines = json_object_get(req, "line_items");
    if (!lines)
        return agentd_fail(e, AGENTD_EINVAL, "missing", "$.line_items", "line_items is required");
    if ((rc = parse_lines(w, lines, e)))
        return rc;
    json_t *buyer = json_object_get(req, "buyer");
    if (buyer) {
        checkout_buyer_clear(&w->buyer);
        w->has_buyer = 0;
        if (!json_is_null(buyer)) {
            if ((rc = checkout_buyer_from_json(buyer, &w->buyer, e)))
                return rc;
            w->has_buyer = 1;
        }
    }
    json_t *f = json_object_get(req, "fulfillment");
    if (f && (rc = parse_fulfillment(w, f, e)))
        return rc;
    json_t *d = json_object_get(req, "discounts");
    if (d && (rc = parse_codes(w, d, e)))
        return rc;
    json_t *p = json_object_get(req, "payment");
    if (p && (rc = parse_payment(w, p, e)))
        return rc;
    return 0;
}

int checkout_create(const json_t *req, const struct shop_rules *r, const char *id,
                    struct checkout **out, struct agentd_error *e)
{
    *out = NULL;
    if (!r || !r->product || !r->currency || !money_currency_valid(r->currency))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "shop rules are incomplete");
    if (!id_ok(id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "invalid checkout id");
    struct checkout *c = checkout_new(id);
    if (!c)
        return oom(e);
    memcpy(c->currency, r->currency, COMMERCE_CURRENCY_LEN);
    c->created_at = c->updated_at = r->now;
    c->expires_at = r->now + (r->ttl_seconds > 0 ? r->ttl_seconds : CHECKOUT_DEFAULT_TTL);
    if (r->continue_url_base) {
        size_t n = strlen(r->continue_url_base) + strlen(id) + 2;
        if (!(c->continue_url = malloc(n))) {
            checkout_free(c);
            return oom(e);
        }
        snprintf(c->continue_url, n, "%s/%s", r->continue_url_base, id);
    }
    int rc = apply_body(c, r, req, e);
    if (!rc)
        rc = refresh(c, r, REFRESH_CHECK_ITEMS | REFRESH_STRICT_OPTION, e);
    if (rc) {
        checkout_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int checkout_update(struct checkout *c, const struct shop_rules *r, const json_t *req,
                    struct agentd_error *e)
{
    if (c && json_is_object(req)) {
        json_t *id = json_object_get(req, "id");
        if (json_is_string(id) && strcmp(json_string_value(id), c->id) != 0)
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.id",
                                 "the body's id does not match the checkout");
    }
    return mutate(c, r, REFRESH_CHECK_ITEMS | REFRESH_STRICT_OPTION, apply_body, req, e);
}

/* ---- agent tools ---- */

struct item_arg {
    const char *key;
    int64_t qty;
};

static int check_qty(int64_t q, const char *what, struct agentd_error *e)
{
    if (q < 1 || q > CHECKOUT_QTY_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid_quantity", "$.line_items",
                             "quantity of '%.64s' must be between 1 and %d", what,
                             CHECKOUT_QTY_MAX);
    return 0;
}

static int do_item_add(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    const struct item_arg *a = arg;
    int rc;
    if (!id_ok(a->key))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.line_items", "invalid item id");
    if ((rc = check_qty(a->qty, a->key, e)))
        return rc;
    if (!r->product(r->ud, a->key))
        return agentd_fail(e, AGENTD_EINVAL, "not_found", "$.line_items",
                             "unknown item '%.64s'", a->key);
    for (size_t i = 0; i < w->n_lines; i++) {
        if (strcmp(w->lines[i].item_id, a->key) == 0) {
            int64_t q = w->lines[i].quantity + a->qty;
            if ((rc = check_qty(q, a->key, e)))
                return rc;
            w->lines[i].quantity = q;
            return 0;
        }
    }
    if (w->n_lines >= CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.line_items",
                             "at most %d line items", CHECKOUT_LINES_MAX);
    struct line_item *n = realloc(w->lines, (w->n_lines + 1) * sizeof *n);
    if (!n)
        return oom(e);
    w->lines = n;
    struct line_item *li = &n[w->n_lines];
    memset(li, 0, sizeof *li);
    char buf[32];
    next_id(w, "li", buf, sizeof buf);
    li->quantity = a->qty;
    if (sdup(buf, &li->id) || sdup(a->key, &li->item_id)) {
        line_clear(li);
        return oom(e);
    }
    w->n_lines++;
    return 0;
}

int checkout_item_add(struct checkout *c, const struct shop_rules *r, const char *product_id,
                      int64_t quantity, struct agentd_error *e)
{
    struct item_arg a = {product_id, quantity};
    return mutate(c, r, REFRESH_CHECK_ITEMS, do_item_add, &a, e);
}

static long find_line(const struct checkout *w, const char *key)
{
    if (!key)
        return -1;
    for (size_t i = 0; i < w->n_lines; i++)
        if (strcmp(w->lines[i].id, key) == 0)
            return (long)i;
    for (size_t i = 0; i < w->n_lines; i++)
        if (strcmp(w->lines[i].item_id, key) == 0)
            return (long)i;
    return -1;
}

static int do_item_set(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    (void)r;
    const struct item_arg *a = arg;
    long i = find_line(w, a->key);
    if (i < 0)
        return agentd_fail(e, AGENTD_ENOTFOUND, "not_found", "$.line_items",
                             "'%.64s' is not in the checkout", a->key ? a->key : "");
    if (a->qty == 0) {
        line_clear(&w->lines[i]);
        memmove(&w->lines[i], &w->lines[i + 1], (w->n_lines - (size_t)i - 1) * sizeof *w->lines);
        w->n_lines--;
        return 0;
    }
    int rc = check_qty(a->qty, w->lines[i].item_id, e);
    if (rc)
        return rc;
    w->lines[i].quantity = a->qty;
    return 0;
}

int checkout_item_remove(struct checkout *c, const struct shop_rules *r,
                         const char *line_or_product, struct agentd_error *e)
{
    struct item_arg a = {line_or_product, 0};
    return mutate(c, r, 0, do_item_set, &a, e);
}

int checkout_item_set_quantity(struct checkout *c, const struct shop_rules *r,
                               const char *line_or_product, int64_t quantity,
                               struct agentd_error *e)
{
    struct item_arg a = {line_or_product, quantity};
    if (quantity < 0 || quantity > CHECKOUT_QTY_MAX)
        return check_qty(quantity, line_or_product ? line_or_product : "", e);
    return mutate(c, r, quantity ? REFRESH_CHECK_ITEMS : 0, do_item_set, &a, e);
}

static int do_buyer(struct checkout *w, const struct shop_rules *r, const void *arg,
                    struct agentd_error *e)
{
    (void)r;
    const struct checkout_buyer *b = arg;
    const char *f[] = {b->first_name, b->last_name, b->full_name, b->email, b->phone_number};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i] && !str_ok(f[i], CHECKOUT_STR_MAX))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer",
                                 "buyer fields must be printable text");
    struct checkout_buyer nb;
    if (buyer_copy(&nb, b))
        return oom(e);
    checkout_buyer_clear(&w->buyer);
    w->buyer = nb;
    w->has_buyer = 1;
    return 0;
}

int checkout_buyer_set(struct checkout *c, const struct shop_rules *r,
                       const struct checkout_buyer *b, struct agentd_error *e)
{
    if (!b)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.buyer", "no buyer");
    return mutate(c, r, 0, do_buyer, b, e);
}

static int do_destination(struct checkout *w, const struct shop_rules *r, const void *arg,
                          struct agentd_error *e)
{
    (void)r;
    const struct postal_address *a = arg;
    const char *f[] = {a->id, a->street_address, a->extended_address, a->address_locality,
                       a->address_region, a->postal_code, a->address_country, a->first_name,
                       a->last_name, a->full_name, a->phone_number};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i] && !str_ok(f[i], CHECKOUT_STR_MAX))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment",
                                 "address fields must be printable text");
    if (a->id && !id_ok(a->id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment", "invalid destination id");
    if (w->n_methods == 0) {
        if (!(w->methods = calloc(1, sizeof *w->methods)))
            return oom(e);
        w->n_methods = 1;
        char buf[32];
        next_id(w, "shipping", buf, sizeof buf);
        if (sdup(buf, &w->methods[0].id) || sdup("shipping", &w->methods[0].type))
            return oom(e);
    }
    struct fulfillment_method *m = &w->methods[0];
    struct postal_address na;
    if (checkout_address_copy(&na, a))
        return oom(e);
    for (char *p = na.address_country; p && *p; p++)
        *p = (char)toupper((unsigned char)*p);
    if (!na.id) {
        char buf[32];
        next_id(w, "dest", buf, sizeof buf);
        if (sdup(buf, &na.id)) {
            checkout_address_clear(&na);
            return oom(e);
        }
    }
    size_t slot = m->n_destinations;
    for (size_t i = 0; i < m->n_destinations; i++)
        if (strcmp(m->destinations[i].id, na.id) == 0)
            slot = i;
    if (slot == m->n_destinations) {
        if (m->n_destinations >= CHECKOUT_DESTS_MAX) {
            checkout_address_clear(&na);
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.fulfillment",
                                 "at most %d destinations", CHECKOUT_DESTS_MAX);
        }
        struct postal_address *n = realloc(m->destinations, (slot + 1) * sizeof *n);
        if (!n) {
            checkout_address_clear(&na);
            return oom(e);
        }
        m->destinations = n;
        m->n_destinations++;
    } else {
        checkout_address_clear(&m->destinations[slot]);
    }
    m->destinations[slot] = na;
    return sset(&m->selected_destination_id, na.id) ? oom(e) : 0;
}

int checkout_destination_set(struct checkout *c, const struct shop_rules *r,
                             const struct postal_address *a, struct agentd_error *e)
{
    if (!a)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment", "no address");
    return mutate(c, r, 0, do_destination, a, e);
}

static int do_select(struct checkout *w, const struct shop_rules *r, const void *arg,
                     struct agentd_error *e)
{
    const char *id = arg;
    if (!id_ok(id))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.fulfillment", "invalid option id");
    if (w->n_methods == 0 || !selected_dest(&w->methods[0]))
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "missing",
                             "$.fulfillment.methods[0].selected_destination_id",
                             "set a shipping address before choosing a shipping option");
    struct fulfillment_method *m = &w->methods[0];
    if (m->n_groups == 0) {
        if (!(m->groups = calloc(1, sizeof *m->groups)))
            return oom(e);
        m->n_groups = 1;
        char buf[32];
        next_id(w, "group", buf, sizeof buf);
        if (sdup(buf, &m->groups[0].id))
            return oom(e);
    }
    (void)r;
    return sset(&m->groups[0].selected_option_id, id) ? oom(e) : 0;
}

int checkout_shipping_select(struct checkout *c, const struct shop_rules *r, const char *option_id,
                             struct agentd_error *e)
{
    return mutate(c, r, REFRESH_STRICT_OPTION, do_select, option_id, e);
}

struct codes_arg {
    const char *const *codes;
    size_t n;
};

static int do_codes(struct checkout *w, const struct shop_rules *r, const void *arg,
                    struct agentd_error *e)
{
    (void)r;
    const struct codes_arg *a = arg;
    if (a->n > CHECKOUT_CODES_MAX)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", "$.discounts.codes",
                             "at most %d discount codes", CHECKOUT_CODES_MAX);
    for (size_t i = 0; i < a->n; i++)
        if (!id_ok(a->codes[i]))
            return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.discounts.codes",
                                 "discount codes must be 1-%d printable characters", ID_MAX);
    char **nc = calloc(a->n ? a->n : 1, sizeof *nc);
    if (!nc)
        return oom(e);
    for (size_t i = 0; i < a->n; i++) {
        if (sdup(a->codes[i], &nc[i])) {
            for (size_t k = 0; k < i; k++)
                free(nc[k]);
            free(nc);
            return oom(e);
        }
    }
    codes_clear(w);
    w->codes = nc;
    w->n_codes = a->n;
    return 0;
}

int checkout_discounts_apply(struct checkout *c, const struct shop_rules *r,
                             const char *const *codes, size_t n, struct agentd_error *e)
{
    struct codes_arg a = {codes, n};
    return mutate(c, r, 0, do_codes, &a, e);
}

/* ---- escalation ---- */

struct esc_arg {
    const char *code, *content;
    enum checkout_severity sev;
};

static int do_escalate(struct checkout *w, const struct shop_rules *r, const void *arg,
                       struct agentd_error *e)
{
    (void)r;
    const struct esc_arg *a = arg;
    if (a->sev != CHECKOUT_SEV_REQUIRES_BUYER_INPUT && a->sev != CHECKOUT_SEV_REQUIRES_BUYER_REVIEW)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "escalation needs a requires_buyer_* severity");
    if (!a->code || !a->content || !str_ok(a->code, ID_MAX) || !str_ok(a->content, 256))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "escalation needs code and content");
    struct checkout_message *m = calloc(1, sizeof *m);
    if (!m)
        return oom(e);
    m->type = CHECKOUT_MSG_ERROR;
    m->severity = a->sev;
    if (sdup(a->code, &m->code) || sdup(a->content, &m->content)) {
        message_clear(m);
        free(m);
        return oom(e);
    }
    if (w->escalation) {
        message_clear(w->escalation);
        free(w->escalation);
    }
    w->escalation = m;
    return 0;
}

int checkout_escalate(struct checkout *c, const struct shop_rules *r, const char *code,
                      const char *content, enum checkout_severity sev, struct agentd_error *e)
{
    struct esc_arg a = {code, content, sev};
    return mutate(c, r, 0, do_escalate, &a, e);
}

static int do_unescalate(struct checkout *w, const struct shop_rules *r, const void *arg,
                         struct agentd_error *e)
{
    (void)r;
    (void)arg;
    (void)e;
    if (w->escalation) {
        message_clear(w->escalation);
        free(w->escalation);
        w->escalation = NULL;
    }
    return 0;
}

int checkout_escalation_clear(struct checkout *c, const struct shop_rules *r,
                              struct agentd_error *e)
{
    return mutate(c, r, 0, do_unescalate, NULL, e);
}

/* ---- cancel and complete ---- */

int checkout_cancel(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    if (!c)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout");
    if (checkout_status_terminal(c->status))
        return agentd_fail(e, AGENTD_ECONFLICT, "not_modifiable", NULL,
                             "checkout %.64s is already %s", c->id, checkout_status_name(c->status));
    c->status = CHECKOUT_CANCELED;
    claim_clear(&c->completing); /* canceled mid-completion: nobody carries it on */
    if (r && r->now)
        c->updated_at = r->now;
    return 0;
}

static int first_error(const struct checkout *c, struct agentd_error *e)
{
    for (size_t i = 0; i < c->n_messages; i++) {
        const struct checkout_message *m = &c->messages[i];
        if (m->type == CHECKOUT_MSG_ERROR)
            return agentd_fail(e, AGENTD_EUNPROCESSABLE, m->code, m->path,
                                 "checkout is not ready: %s", m->content);
    }
    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "not_ready", NULL, "checkout is not ready");
}

int checkout_begin_complete(struct checkout *c, const struct shop_rules *r, int64_t expected_total,
                            struct agentd_error *e)
{
    if (!c || !r)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout or rules");
    int rc = guard_mutable(c, e);
    if (rc)
        return rc;
    int64_t seen = expected_total >= 0 ? expected_total : c->totals.total;
    struct checkout *w = checkout_clone(c);
    if (!w)
        return oom(e);
    /* Items are checked strictly: stock may have run out since the cart
     * was built, and that must stop completion, not slip through. */
    if ((rc = refresh(w, r, REFRESH_CHECK_ITEMS, e))) {
        checkout_free(w);
        return rc;
    }
    if (w->status != CHECKOUT_READY_FOR_COMPLETE) {
        rc = first_error(w, e);
        if (w->status == CHECKOUT_REQUIRES_ESCALATION)
            rc = agentd_fail(e, AGENTD_EUNPROCESSABLE, "requires_escalation", NULL,
                               "the buyer must continue at the continue_url");
        commit(c, w); /* the fresh messages are worth keeping */
        return rc;
    }
    if (w->totals.total != seen) {
        int64_t now_total = w->totals.total;
        commit(c, w);
        return agentd_fail(e, AGENTD_ECONFLICT, "total_changed", "$.totals",
                             "the total changed from %lld to %lld; review and retry",
                             (long long)seen, (long long)now_total);
    }
    w->status = CHECKOUT_COMPLETE_IN_PROGRESS;
    commit(c, w);
    return 0;
}

int checkout_abort_complete(struct checkout *c, const struct shop_rules *r, struct agentd_error *e)
{
    if (!c || !r)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout or rules");
    if (checkout_status_terminal(c->status))
        return guard_mutable(c, e);
    if (c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                             "checkout is %s, not complete_in_progress",
                             checkout_status_name(c->status));
    struct checkout *w = checkout_clone(c);
    if (!w)
        return oom(e);
    w->status = CHECKOUT_INCOMPLETE; /* recomputed below */
    claim_clear(&w->completing);
    int rc = refresh(w, r, 0, e);
    if (rc) {
        checkout_free(w);
        return rc;
    }
    commit(c, w);
    return 0;
}

int checkout_mark_completed(struct checkout *c, const struct shop_rules *r, const char *order_id,
                            const char *permalink_url, struct agentd_error *e)
{
    if (!c)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "no checkout");
    if (checkout_status_terminal(c->status))
        return guard_mutable(c, e);
    if (c->status != CHECKOUT_COMPLETE_IN_PROGRESS)
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                             "checkout is %s, not complete_in_progress",
                             checkout_status_name(c->status));
    if (!id_ok(order_id) || !permalink_url || !str_ok(permalink_url, CHECKOUT_STR_MAX))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "invalid order id or permalink");
    char *oid = NULL, *url = NULL;
    if (sdup(order_id, &oid) || sdup(permalink_url, &url)) {
        free(oid);
        return oom(e);
    }
    free(c->order_id);
    free(c->order_permalink_url);
    c->order_id = oid;
    c->order_permalink_url = url;
    c->status = CHECKOUT_COMPLETED;
    claim_clear(&c->completing);
    if (r && r->now)
        c->updated_at = r->now;
    /* A completed session has nothing left to fix. */
    messages_clear(c);
    return 0;
}
