/* The stored checkout and order documents written straight from the model
 * into a buffer: the bytes their jansson trees give dumped compact. */
#include "commerce/checkout.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout_internal.h"
#include "commerce/fields.h"
#include "commerce/order.h"
#include "commerce/ucp.h"
#include "core/err.h"
#include "core/jsondump.h"

/* Why: building a jansson tree of the document and dumping it was a third
 * of a checkout flow's instructions (a node, a hashtable slot and a key copy
 * per member, then a walk). The order of members here is the tree's
 * insertion order (ucp_checkout.c to_json, checkout_doc.c, sealed_doc.c);
 * tests/unit/test_checkout_write.c holds the two to the same bytes. */

struct w {
    struct buf *b;
    int bad;
};

#define LIT(w, s) buf_append((w)->b, s, sizeof(s) - 1)
/* a literal that opens with a comma, written without it for a first element */
#define LITC(w, first, s) buf_append((w)->b, (s) + !!(first), sizeof(s) - 1 - !!(first))

static void wstr(struct w *w, const char *s)
{
    if (!s) { /* json_string(NULL) fails the tree the same way */
        w->bad = 1;
        return;
    }
    if (buf_json_str(w->b, s, strlen(s)))
        w->bad = 1;
}

/* An integer as "%" PRId64 writes it; snprintf's format parsing was a
 * sixth of the documents' cost (~60 numbers a document). */
static void wint(struct w *w, int64_t v)
{
    char t[24], *p = t + sizeof t;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    buf_append(w->b, p, (size_t)(t + sizeof t - p));
}

/* ,"key": or "key": for the first member (keys are our literals: no escapes) */
#define KEY(w, first, k) ((first) ? LIT(w, "\"" k "\":") : LIT(w, ",\"" k "\":"))

static void wany(struct w *w, const json_t *j)
{
    if (jsondump_buf(w->b, j, JSON_COMPACT | JSON_ENCODE_ANY))
        w->bad = 1;
}

static void wstrs(struct w *w, const struct shape *s, const void *obj, int skip_id, int first)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        const char *v = NULL;
        if (f->kind == FIELD_STR && f->json)
            memcpy(&v, (const char *)obj + f->off, sizeof v);
        if (!v || (skip_id && strcmp(f->json, "id") == 0))
            continue;
        if (!first)
            LIT(w, ",");
        first = 0;
        wstr(w, f->json);
        LIT(w, ":");
        wstr(w, v);
    }
}

static void wmessage(struct w *w, const struct checkout_message *m)
{
    LIT(w, "{\"type\":");
    wstr(w, m->type == CHECKOUT_MSG_WARNING ? "warning"
            : m->type == CHECKOUT_MSG_INFO  ? "info"
                                            : "error");
    LIT(w, ",\"code\":");
    wstr(w, m->code ? m->code : "");
    LIT(w, ",\"content\":");
    wstr(w, m->content ? m->content : "");
    const char *sev = checkout_severity_name(m->severity);
    if (m->type == CHECKOUT_MSG_ERROR && !sev)
        sev = "recoverable";
    if (sev) {
        LIT(w, ",\"severity\":");
        wstr(w, sev);
    }
    if (m->path && m->path[0]) {
        LIT(w, ",\"path\":");
        wstr(w, m->path);
    }
    LIT(w, "}");
}

static void wtotal(struct w *w, int first, const char *type, const char *text, int64_t amount)
{
    LITC(w, first, ",{\"type\":");
    wstr(w, type);
    if (text) {
        LIT(w, ",\"display_text\":");
        wstr(w, text);
    }
    LIT(w, ",\"amount\":");
    wint(w, amount);
    LIT(w, "}");
}

/* ucp_item_json */
static void witem(struct w *w, const struct line_item *li)
{
    LIT(w, "{\"id\":");
    wstr(w, li->item_id ? li->item_id : "");
    LIT(w, ",\"title\":");
    wstr(w, li->title ? li->title : (li->item_id ? li->item_id : ""));
    LIT(w, ",\"price\":");
    wint(w, li->price);
    if (li->image_url) {
        LIT(w, ",\"image_url\":");
        wstr(w, li->image_url);
    }
    LIT(w, "}");
}

/* pricing_line_totals_json */
static void wline_totals(struct w *w, const struct line_totals *t)
{
    LIT(w, "[");
    wtotal(w, 1, "subtotal", NULL, t->base_amount);
    if (t->discount)
        wtotal(w, 0, "items_discount", NULL, t->discount);
    if (t->tax)
        wtotal(w, 0, "tax", NULL, t->tax);
    wtotal(w, 0, "total", NULL, t->total);
    LIT(w, "]");
}

/* pricing_totals_json */
static void wtotals(struct w *w, const struct checkout_totals *t, int has_fulfillment, int has_tax)
{
    LIT(w, "[");
    wtotal(w, 1, "subtotal", "Subtotal", t->subtotal);
    if (t->items_discount)
        wtotal(w, 0, "items_discount", "Item Discounts", t->items_discount);
    if (t->discount)
        wtotal(w, 0, "discount", "Order Discount", t->discount);
    if (has_fulfillment || t->fulfillment)
        wtotal(w, 0, "fulfillment", "Shipping", t->fulfillment);
    if (has_tax || t->tax)
        wtotal(w, 0, "tax", "Tax", t->tax);
    if (t->fee)
        wtotal(w, 0, "fee", "Fees", t->fee);
    wtotal(w, 0, "total", "Total", t->total);
    LIT(w, "]");
}

static void wline(struct w *w, const struct line_item *li)
{
    LIT(w, "{\"id\":");
    wstr(w, li->id);
    LIT(w, ",\"item\":");
    witem(w, li);
    LIT(w, ",\"quantity\":");
    wint(w, li->quantity);
    LIT(w, ",\"totals\":");
    wline_totals(w, &li->totals);
    LIT(w, "}");
}

static void wline_ids(struct w *w, const struct checkout *c)
{
    LIT(w, "[");
    for (size_t i = 0; i < c->n_lines; i++) {
        if (i)
            LIT(w, ",");
        wstr(w, c->lines[i].id);
    }
    LIT(w, "]");
}

static void wgroup(struct w *w, const struct checkout *c, const struct fulfillment_group *fg)
{
    LIT(w, "{\"id\":");
    wstr(w, fg->id);
    LIT(w, ",\"line_item_ids\":");
    wline_ids(w, c);
    LIT(w, ",\"options\":[");
    for (size_t o = 0; o < fg->n_options; o++) {
        const struct fulfillment_option *op = &fg->options[o];
        LITC(w, !(o), ",{\"id\":");
        wstr(w, op->id);
        LIT(w, ",\"title\":");
        wstr(w, op->title ? op->title : op->id);
        LIT(w, ",\"totals\":[{\"type\":\"total\",\"amount\":");
        wint(w, op->amount);
        LIT(w, "}]");
        if (op->description) {
            LIT(w, ",\"description\":");
            wstr(w, op->description);
        }
        LIT(w, "}");
    }
    LIT(w, "],\"selected_option_id\":");
    if (fg->selected_option_id)
        wstr(w, fg->selected_option_id);
    else
        LIT(w, "null");
    LIT(w, "}");
}

static void wfulfillment(struct w *w, const struct checkout *c)
{
    LIT(w, "{\"methods\":[");
    for (size_t mi = 0; mi < c->n_methods; mi++) {
        const struct fulfillment_method *m = &c->methods[mi];
        LITC(w, !(mi), ",{\"id\":");
        wstr(w, m->id);
        LIT(w, ",\"type\":");
        wstr(w, m->type ? m->type : "shipping");
        LIT(w, ",\"line_item_ids\":");
        wline_ids(w, c);
        LIT(w, ",\"destinations\":[");
        for (size_t d = 0; d < m->n_destinations; d++) {
            LITC(w, !(d), ",{");
            wstrs(w, &postal_address_shape, &m->destinations[d], 0, 1);
            LIT(w, "}");
        }
        LIT(w, "],\"groups\":[");
        for (size_t g = 0; g < m->n_groups; g++) {
            if (g)
                LIT(w, ",");
            wgroup(w, c, &m->groups[g]);
        }
        LIT(w, "],\"selected_destination_id\":");
        if (m->selected_destination_id)
            wstr(w, m->selected_destination_id);
        else
            LIT(w, "null");
        LIT(w, "}");
    }
    LIT(w, "]}");
}

static void wdiscounts(struct w *w, const struct checkout *c)
{
    LIT(w, "{\"codes\":[");
    for (size_t i = 0; i < c->n_codes; i++) {
        if (i)
            LIT(w, ",");
        wstr(w, c->codes[i]);
    }
    LIT(w, "],\"applied\":[");
    for (size_t i = 0; i < c->n_applied; i++) {
        const struct applied_discount *a = &c->applied[i];
        LITC(w, !(i), ",{\"code\":");
        wstr(w, a->code);
        LIT(w, ",\"title\":");
        wstr(w, a->title);
        LIT(w, ",\"amount\":");
        wint(w, a->amount);
        LIT(w, ",\"method\":");
        wstr(w, a->type == DISCOUNT_PERCENTAGE ? "each" : "across");
        LIT(w, ",\"priority\":");
        wint(w, a->priority);
        LIT(w, ",\"allocations\":[");
        int first = 1;
        for (size_t k = 0; k < a->n_alloc; k++) {
            if (!a->alloc[k])
                continue;
            char path[48];
            snprintf(path, sizeof path, "$.line_items[%zu]", k);
            LITC(w, first, ",{\"path\":");
            first = 0;
            wstr(w, path);
            LIT(w, ",\"amount\":");
            wint(w, a->alloc[k]);
            LIT(w, "}");
        }
        LIT(w, "]}");
    }
    LIT(w, "]}");
}

static void winstrument(struct w *w, const struct payment_instrument *pi, int include_token)
{
    int first = 1;
    LIT(w, "{");
    if (pi->id) {
        KEY(w, first, "id");
        first = 0;
        wstr(w, pi->id);
    }
    if (pi->handler_id) {
        KEY(w, first, "handler_id");
        first = 0;
        wstr(w, pi->handler_id);
    }
    KEY(w, first, "type");
    wstr(w, pi->type ? pi->type : "card");
    if (pi->brand) {
        LIT(w, ",\"brand\":");
        wstr(w, pi->brand);
    }
    if (pi->last_digits) {
        LIT(w, ",\"last_digits\":");
        wstr(w, pi->last_digits);
    }
    if (pi->expiry_month) {
        LIT(w, ",\"expiry_month\":");
        wint(w, pi->expiry_month);
    }
    if (pi->expiry_year) {
        LIT(w, ",\"expiry_year\":");
        wint(w, pi->expiry_year);
    }
    if (pi->credential_type || (include_token && pi->token)) {
        LIT(w, ",\"credential\":{");
        if (pi->credential_type) {
            LIT(w, "\"type\":");
            wstr(w, pi->credential_type);
        }
        if (include_token && pi->token) {
            KEY(w, !pi->credential_type, "token");
            wstr(w, pi->token);
        }
        LIT(w, "}");
    }
    LIT(w, "}");
}

/* Why: the handlers are the shop's advertisement, shared by every checkout
 * and never edited (checkout_types.h, FIELD_JS), and their dump was a third
 * of a document. The last tree dumped on this thread is kept with a
 * reference (so its address cannot be reused by another tree) and its text. */
static _Thread_local struct {
    json_t *j;
    struct buf text;
    int hooked; /* its exit hook is set */
} tl_handlers;
static pthread_key_t handlers_key;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void handlers_drop(void *arg)
{
    (void)arg;
    json_decref(tl_handlers.j);
    tl_handlers.j = NULL;
    buf_free(&tl_handlers.text);
}

static void handlers_key_make(void) { (void)pthread_key_create(&handlers_key, handlers_drop); }

static void whandlers(struct w *w, const json_t *h)
{
    if (tl_handlers.j != h) {
        handlers_drop(NULL);
        if (!tl_handlers.hooked) {
            (void)pthread_once(&handlers_once, handlers_key_make);
            tl_handlers.hooked = pthread_setspecific(handlers_key, &tl_handlers) == 0 ? 1 : -1;
        }
        if (tl_handlers.hooked < 0 ||
            jsondump_buf(&tl_handlers.text, h, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
            buf_free(&tl_handlers.text);
            wany(w, h); /* no memo: dumped each time, or failing as the tree would */
            return;
        }
        tl_handlers.j = json_incref((json_t *)h);
    }
    buf_append(w->b, tl_handlers.text.data, tl_handlers.text.len);
}

/* payment_json: the public copy with the handlers, the private one with tokens */
static void wpayment(struct w *w, const struct checkout *c, int include_tokens)
{
    LIT(w, "{");
    if (!include_tokens) {
        LIT(w, "\"handlers\":");
        if (c->payment.handlers)
            whandlers(w, c->payment.handlers);
        else
            LIT(w, "[]");
        LIT(w, ",");
    }
    LIT(w, "\"instruments\":[");
    for (size_t i = 0; i < c->payment.n_instruments; i++) {
        if (i)
            LIT(w, ",");
        winstrument(w, &c->payment.instruments[i], include_tokens);
    }
    LIT(w, "]");
    if (c->payment.selected_instrument_id) {
        LIT(w, ",\"selected_instrument_id\":");
        wstr(w, c->payment.selected_instrument_id);
    }
    LIT(w, "}");
}

static int has_token(const struct checkout *c)
{
    for (size_t i = 0; i < c->payment.n_instruments; i++)
        if (c->payment.instruments[i].token)
            return 1;
    return 0;
}

/* The public members, "id" to "order" (to_json with every capability). */
static void wpublic(struct w *w, const struct checkout *c)
{
    LIT(w, "{\"id\":");
    wstr(w, c->id);
    LIT(w, ",\"status\":");
    wstr(w, checkout_status_name(c->status));
    LIT(w, ",\"currency\":");
    wstr(w, c->currency);
    LIT(w, ",\"line_items\":[");
    for (size_t i = 0; i < c->n_lines; i++) {
        if (i)
            LIT(w, ",");
        wline(w, &c->lines[i]);
    }
    LIT(w, "]");
    if (c->has_buyer) {
        LIT(w, ",\"buyer\":{");
        wstrs(w, &checkout_buyer_shape, &c->buyer, 0, 1);
        if (c->buyer.consent) {
            if (w->b->len && w->b->data[w->b->len - 1] != '{')
                LIT(w, ",");
            LIT(w, "\"consent\":");
            wany(w, c->buyer.consent);
        }
        LIT(w, "}");
    }
    LIT(w, ",\"totals\":");
    wtotals(w, &c->totals, checkout_has_selected_option(c), checkout_has_destination(c));
    if (c->n_messages) {
        LIT(w, ",\"messages\":[");
        for (size_t i = 0; i < c->n_messages; i++) {
            if (i)
                LIT(w, ",");
            wmessage(w, &c->messages[i]);
        }
        LIT(w, "]");
    }
    LIT(w, ",\"links\":[");
    for (size_t i = 0; i < c->n_links; i++) {
        const struct checkout_link *l = &c->links[i];
        LITC(w, !(i), ",{\"type\":");
        wstr(w, l->type ? l->type : "");
        LIT(w, ",\"url\":");
        wstr(w, l->url ? l->url : "");
        if (l->title) {
            LIT(w, ",\"title\":");
            wstr(w, l->title);
        }
        LIT(w, "}");
    }
    LIT(w, "]");
    char ts[32];
    if (c->expires_at && ucp_time_format(c->expires_at, ts, sizeof ts) == 0) {
        LIT(w, ",\"expires_at\":");
        wstr(w, ts);
    }
    if (c->continue_url && !checkout_status_terminal(c->status)) {
        LIT(w, ",\"continue_url\":");
        wstr(w, c->continue_url);
    }
    LIT(w, ",\"payment\":");
    wpayment(w, c, 0);
    if (c->n_methods) {
        LIT(w, ",\"fulfillment\":");
        wfulfillment(w, c);
    }
    if (c->n_codes || c->n_applied) {
        LIT(w, ",\"discounts\":");
        wdiscounts(w, c);
    }
    if (c->order_id) {
        LIT(w, ",\"order\":{\"id\":");
        wstr(w, c->order_id);
        LIT(w, ",\"permalink_url\":");
        wstr(w, c->order_permalink_url ? c->order_permalink_url : "");
        LIT(w, "}");
    }
}

/* The private member's fields after the payment, "line_totals" to "completing". */
static void wprivate_tail(struct w *w, const struct checkout *c)
{
    LIT(w, ",\"line_totals\":[");
    for (size_t i = 0; i < c->n_lines; i++) {
        const struct line_totals *t = &c->lines[i].totals;
        LITC(w, !(i), ",[");
        wint(w, t->base_amount);
        LIT(w, ",");
        wint(w, t->discount);
        LIT(w, ",");
        wint(w, t->subtotal);
        LIT(w, ",");
        wint(w, t->tax);
        LIT(w, ",");
        wint(w, t->total);
        LIT(w, "]");
    }
    const struct checkout_totals *t = &c->totals;
    LIT(w, "],\"totals\":{\"subtotal\":");
    wint(w, t->subtotal);
    LIT(w, ",\"items_discount\":");
    wint(w, t->items_discount);
    LIT(w, ",\"discount\":");
    wint(w, t->discount);
    LIT(w, ",\"fulfillment\":");
    wint(w, t->fulfillment);
    LIT(w, ",\"tax\":");
    wint(w, t->tax);
    LIT(w, ",\"fee\":");
    wint(w, t->fee);
    LIT(w, ",\"total\":");
    wint(w, t->total);
    LIT(w, "}");
    if (c->escalation) {
        LIT(w, ",\"escalation\":");
        wmessage(w, c->escalation);
    }
    if (c->webhook_url) {
        LIT(w, ",\"webhook_url\":");
        wstr(w, c->webhook_url);
    }
    if (c->n_op_keys) {
        LIT(w, ",\"op_keys\":[");
        for (size_t i = 0; i < c->n_op_keys; i++) {
            if (i)
                LIT(w, ",");
            wstr(w, c->op_keys[i]);
        }
        LIT(w, "]");
    }
    if (c->completing.key) {
        LIT(w, ",\"completing\":{\"key\":");
        wstr(w, c->completing.key);
        LIT(w, ",\"at\":");
        wint(w, c->completing.at);
        if (c->completing.by) {
            LIT(w, ",\"by\":");
            wstr(w, c->completing.by);
        }
        LIT(w, "}");
    }
}

int checkout_doc_write(struct buf *b, const struct checkout *c, checkout_seal_fn seal, void *ctx)
{
    if (!c)
        return AGENTD_EINVAL;
    struct w w = { .b = b };
    wpublic(&w, c);
    LIT(&w, ",\"_agentd\":{\"version\":");
    wint(&w, c->version);
    LIT(&w, ",\"created_at\":");
    wint(&w, c->created_at);
    LIT(&w, ",\"updated_at\":");
    wint(&w, c->updated_at);
    LIT(&w, ",\"next_seq\":");
    wint(&w, (int)c->next_seq);
    int sealed = seal && has_token(c);
    if (!sealed) {
        LIT(&w, ",\"payment\":");
        wpayment(&w, c, 1);
    }
    wprivate_tail(&w, c);
    int rc = 0;
    if (sealed && !w.bad) {
        /* sealed_doc.c: the private payment moves to "payment_sealed", last */
        struct buf p = { 0 };
        struct w pw = { .b = &p };
        wpayment(&pw, c, 1);
        char *text = NULL;
        rc = pw.bad ? AGENTD_EINVAL : p.oom ? AGENTD_ENOMEM : seal(ctx, p.data, p.len, &text);
        if (rc == 0) {
            LIT(&w, ",\"payment_sealed\":");
            wstr(&w, text);
        }
        free(text);
        if (p.data) /* it holds the instruments' tokens in the clear */
            explicit_bzero(p.data, p.cap);
        buf_free(&p);
    }
    LIT(&w, "}}");
    if (rc == 0 && w.bad)
        rc = AGENTD_EINVAL;
    if (rc == 0 && b->oom)
        rc = AGENTD_ENOMEM;
    return rc;
}

/* order_to_json with every capability, and the private member. */
int order_doc_write(struct buf *b, const struct order *o, const char *webhook_url)
{
    struct w w = { .b = b };
    struct ucp_negotiated all;
    ucp_negotiated_all(&all);
    json_t *meta = ucp_response_meta_json(&all);
    LIT(&w, "{\"ucp\":");
    if (meta)
        wany(&w, meta);
    else
        w.bad = 1;
    json_decref(meta);
    LIT(&w, ",\"id\":");
    wstr(&w, o->id);
    LIT(&w, ",\"checkout_id\":");
    wstr(&w, o->checkout_id);
    LIT(&w, ",\"permalink_url\":");
    wstr(&w, o->permalink_url);
    LIT(&w, ",\"currency\":");
    wstr(&w, o->currency);
    LIT(&w, ",\"line_items\":[");
    for (size_t i = 0; i < o->n_lines; i++) {
        const struct order_line *ol = &o->lines[i];
        LITC(&w, !i, ",{\"id\":");
        wstr(&w, ol->line.id);
        LIT(&w, ",\"item\":");
        witem(&w, &ol->line);
        LIT(&w, ",\"quantity\":{\"total\":");
        wint(&w, ol->line.quantity);
        LIT(&w, ",\"fulfilled\":");
        wint(&w, ol->fulfilled);
        LIT(&w, "},\"totals\":");
        wline_totals(&w, &ol->line.totals);
        LIT(&w, ",\"status\":");
        wstr(&w, ol->fulfilled >= ol->line.quantity ? "fulfilled"
                 : ol->fulfilled > 0               ? "partial"
                                                   : "processing");
        LIT(&w, "}");
    }
    LIT(&w, "],\"fulfillment\":{\"expectations\":[");
    for (size_t i = 0; i < o->n_expectations; i++) {
        const struct order_expectation *x = &o->expectations[i];
        LITC(&w, !i, ",{\"id\":");
        wstr(&w, x->id);
        LIT(&w, ",\"line_items\":[");
        for (size_t k = 0; k < o->n_lines; k++) {
            LITC(&w, !k, ",{\"id\":");
            wstr(&w, o->lines[k].line.id);
            LIT(&w, ",\"quantity\":");
            wint(&w, o->lines[k].line.quantity);
            LIT(&w, "}");
        }
        LIT(&w, "],\"method_type\":");
        wstr(&w, x->method_type);
        LIT(&w, ",\"destination\":{");
        wstrs(&w, &postal_address_shape, &x->destination, 1, 1);
        LIT(&w, "}");
        if (x->description) {
            LIT(&w, ",\"description\":");
            wstr(&w, x->description);
        }
        LIT(&w, "}");
    }
    LIT(&w, "],\"events\":");
    if (o->events)
        wany(&w, o->events);
    else
        LIT(&w, "[]");
    LIT(&w, "},\"adjustments\":");
    if (o->adjustments)
        wany(&w, o->adjustments);
    else
        LIT(&w, "[]");
    LIT(&w, ",\"totals\":");
    wtotals(&w, &o->totals, o->has_fulfillment, o->has_tax);
    if (o->buyer) { /* every capability: the consent stays */
        LIT(&w, ",\"buyer\":");
        wany(&w, o->buyer);
    }
    if (webhook_url) {
        LIT(&w, ",\"_agentd\":{\"webhook_url\":");
        wstr(&w, webhook_url);
        LIT(&w, "}");
    }
    LIT(&w, "}");
    return w.bad ? AGENTD_EINVAL : b->oom ? AGENTD_ENOMEM : 0;
}
