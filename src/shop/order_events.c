/* Order events: what an order change sends to the platform that placed it
 * (a row in the store's outbox, written with the change itself), and where
 * to (the webhook_url kept in the order's store document). */
#define _GNU_SOURCE
#include "shop/shop.h"
#include "shop/shop_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/reqid.h"
#include "core/trace.h"
#include "store/store.h"

static _Thread_local const char *tl_webhook;

void shop_webhook_as(const char *webhook_url) { tl_webhook = webhook_url && *webhook_url ? webhook_url : NULL; }

const char *shop_webhook_current(void) { return tl_webhook; }

char *shop_order_document(const struct order *o, const char *webhook_url)
{
    struct buf b = { 0 };
    if (order_doc_write(&b, o, webhook_url) != 0) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

int shop_order_event_build(const char *event_type, const struct order *o, const char *webhook_url,
                           struct store_outbox *ev)
{
    memset(ev, 0, sizeof *ev);
    struct ucp_negotiated all;
    ucp_negotiated_all(&all);
    char id[48];
    id_new("evt_", id, sizeof id);
    json_t *body = json_pack("{s:s,s:s?,s:o?}", "event_type", event_type, "checkout_id",
                             o->checkout_id, "order", order_to_json(o, &all));
    ev->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    ev->id = strdup(id);
    ev->kind = strdup(SHOP_EVENT_KIND);
    ev->target = strdup(webhook_url);
    /* an order's events go out in the order of its versions: the placement
     * (o->version 0, not stored yet) is 1, the change over version v is v+1 */
    ev->seq_key = strdup(o->id);
    ev->seq = o->version + 1;
    /* the delivery joins the trace of the change that queued it (the
     * outbox sends a traceparent of its own span under this one) */
    const struct trace_ctx *tc = trace_current();
    int traced = tc != NULL;
    if (traced) {
        char tp[TRACEPARENT_LEN + 1];
        trace_format_traceparent(tc, tp);
        char ts[TRACESTATE_MAX + 1];
        json_t *h = json_pack("{s:s,s:s?}", "traceparent", tp, "tracestate",
                              trace_state_lookup(tc, ts) ? ts : NULL);
        ev->headers = h ? json_dumps(h, JSON_COMPACT) : NULL;
        json_decref(h);
    }
    if (!ev->body || !ev->id || !ev->kind || !ev->target || !ev->seq_key ||
        (traced && !ev->headers)) {
        shop_order_event_clear(ev);
        return AGENTD_ENOMEM;
    }
    return 0;
}

void shop_order_event_clear(struct store_outbox *ev)
{
    free(ev->id);
    free(ev->kind);
    free(ev->target);
    free(ev->headers);
    free(ev->body);
    free(ev->seq_key);
    memset(ev, 0, sizeof *ev);
}

char *shop_order_stored_webhook(const char *document)
{
    json_t *doc = json_loads(document, 0, NULL);
    const char *u = json_string_value(json_object_get(json_object_get(doc, "_agentd"), "webhook_url"));
    char *url = u ? strdup(u) : NULL;
    json_decref(doc);
    return url;
}
