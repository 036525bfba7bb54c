/* The shop's metrics: orders placed (count and value by currency) and the
 * checkout documents its operations parse, serialise or find cached. */
#include "shop/shop_internal.h"
#include "shop/merchant.h"
#include "commerce/catalog.h"
#include "core/metrics.h"

/* Looked up at each use (the registry returns the existing family): orders
 * are rare, and no pointer outlives a metrics_reset(). */
static struct metric *orders_family(int value)
{
    static const char *const labels[] = { "currency", NULL };
    return value ? metric_register("agentd_order_value_minor_units_total",
                                   "Total value of the orders placed, in minor units of their "
                                   "currency (cents for USD)",
                                   METRIC_COUNTER, labels, NULL)
                 : metric_register("agentd_orders_total", "Orders placed, by currency",
                                   METRIC_COUNTER, labels, NULL);
}

/* The merchant's currency at 0 from the start. */
static void orders_metrics_init(struct merchant *m)
{
    struct catalog *cat = m ? merchant_catalog(m) : NULL;
    const char *v[] = { cat ? catalog_currency(cat) : NULL };
    for (int value = 0; value < 2; value++) {
        struct metric *f = orders_family(value);
        if (v[0])
            metric_child(f, v);
    }
    if (cat)
        catalog_unref(cat);
}

/* One order written (once per order: replays answer without writing). */
void shop_orders_count(const struct checkout *c)
{
    const char *v[] = { c->currency };
    metric_inc(metric_child(orders_family(0), v));
    metric_add(metric_child(orders_family(1), v), (double)c->totals.total);
}

/* Checkout documents the shop parsed (loads), serialised (saves, the
 * order's document with it) or found parsed already (loads the cache
 * served): jansson and malloc were half of a checkout flow's CPU, so
 * test_checkout_roundtrips.py holds each operation to its count. Looked up
 * at each use, as above. */
static struct metric_child *documents_child(enum doc_way way)
{
    static const char *const labels[] = { "way", NULL };
    static const char *const names[] = { "parsed", "serialised", "cached", "reply" };
    const char *v[] = { names[way] };
    return metric_child(metric_register("agentd_checkout_documents_total",
                                        "Checkout and order documents the shop parsed "
                                        "from or serialised for the store, or found "
                                        "parsed in its cache, or replies cut from the document just "
                                        "saved instead of rendered",
                                        METRIC_COUNTER, labels, NULL),
                        v);
}

void shop_documents_count(enum doc_way way) { metric_inc(documents_child(way)); }

void shop_metrics_init(struct merchant *m)
{
    orders_metrics_init(m);
    for (enum doc_way w = DOC_PARSED; w <= DOC_REPLY; w++)
        documents_child(w); /* every series from the start, at 0 */
}

