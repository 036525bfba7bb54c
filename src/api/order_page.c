/* The buyer's order-status page behind an order's permalink_url
 * (GET /orders/{id}/status?t=TOKEN): one self-contained HTML page. */
#include "api/order_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "commerce/money.h"
#include "core/buf.h"
#include "core/err.h"
#include "http/server.h"
#include "shop/shop.h"
#include "store/async.h"

/* The token is the page's only key: the route is public in the auth table
 * (auth/auth.c), read-only, and a missing order, an order without a token
 * and a wrong token are one 404. */

static struct {
    struct shop *shop;
    struct store *st;
} P;

struct page_job {
    struct http_req *r;
    const char *id; /* borrowed from r */
    char token[128];
    struct order *order;
    struct agentd_error e;
};

static void esc(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': buf_puts(b, "&lt;"); break;
        case '>': buf_puts(b, "&gt;"); break;
        case '&': buf_puts(b, "&amp;"); break;
        case '"': buf_puts(b, "&quot;"); break;
        case '\'': buf_puts(b, "&#39;"); break;
        default: buf_append(b, s, 1);
        }
    }
}

static void money(struct buf *b, const struct order *o, int64_t amount)
{
    char v[48];
    int exp = money_currency_exponent(o->currency);
    if (money_format(amount, exp < 0 ? 2 : exp, v, sizeof v) != 0)
        snprintf(v, sizeof v, "%lld", (long long)amount);
    esc(b, v);
    buf_puts(b, " ");
    esc(b, o->currency);
}

static int logged(const json_t *log, const char *key, const char *value)
{
    size_t i;
    const json_t *x;
    json_array_foreach(log, i, x)
    {
        const char *v = json_string_value(json_object_get(x, key));
        if (v && strcmp(v, value) == 0)
            return 1;
    }
    return 0;
}

/* The one word a person reads first. */
static const char *order_status(const struct order *o)
{
    if (logged(o->events, "type", "canceled") || logged(o->adjustments, "type", "cancellation"))
        return "Canceled";
    if (logged(o->events, "type", "delivered"))
        return "Delivered";
    int64_t ordered = 0, shipped = 0;
    for (size_t i = 0; i < o->n_lines; i++) {
        ordered += o->lines[i].line.quantity;
        shipped += o->lines[i].fulfilled;
    }
    return shipped >= ordered && ordered ? "Shipped" : shipped ? "Partially shipped" : "Processing";
}

static void log_rows(struct buf *b, const json_t *log, const char *const *keys, size_t n)
{
    size_t i;
    const json_t *x;
    json_array_foreach(log, i, x)
    {
        buf_puts(b, "<tr>");
        for (size_t k = 0; k < n; k++) {
            const json_t *v = json_object_get(x, keys[k]);
            buf_puts(b, "<td>");
            if (json_is_string(v))
                esc(b, json_string_value(v));
            else if (json_is_integer(v))
                buf_printf(b, "%lld", (long long)json_integer_value(v));
            buf_puts(b, "</td>");
        }
        buf_puts(b, "</tr>");
    }
}

static char *render(const struct order *o)
{
    struct buf b = { 0 };
    buf_puts(&b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                 "<meta name=\"viewport\" content=\"width=device-width\">"
                 "<meta name=\"referrer\" content=\"no-referrer\"><title>Order ");
    esc(&b, o->id);
    buf_puts(&b, "</title><style>body{font-family:sans-serif;max-width:40em;margin:2em auto;"
                 "padding:0 1em}table{border-collapse:collapse;width:100%}td,th{text-align:left;"
                 "padding:.3em;border-bottom:1px solid #ddd}</style></head><body><h1>Order ");
    esc(&b, o->id);
    buf_puts(&b, "</h1><p>Status: <strong id=\"status\">");
    esc(&b, order_status(o));
    buf_puts(&b, "</strong></p><h2>Items</h2><table><tr><th>Item</th><th>Quantity</th>"
                 "<th>Shipped</th></tr>");
    for (size_t i = 0; i < o->n_lines; i++) {
        const struct order_line *l = &o->lines[i];
        buf_puts(&b, "<tr><td>");
        esc(&b, l->line.title ? l->line.title : l->line.item_id);
        buf_printf(&b, "</td><td>%lld</td><td>%lld</td></tr>", (long long)l->line.quantity,
                   (long long)l->fulfilled);
    }
    buf_puts(&b, "</table><p>Total: ");
    money(&b, o, o->totals.total);
    buf_puts(&b, "</p>");
    for (size_t i = 0; i < o->n_expectations; i++) {
        const struct order_expectation *x = &o->expectations[i];
        buf_puts(&b, "<p>Delivery: ");
        esc(&b, x->description);
        buf_puts(&b, " to ");
        esc(&b, x->destination.street_address);
        buf_puts(&b, ", ");
        esc(&b, x->destination.address_locality);
        buf_puts(&b, "</p>");
    }
    if (json_array_size(o->events)) {
        static const char *const k[] = { "occurred_at", "type", "carrier", "tracking_number",
                                         "description" };
        buf_puts(&b, "<h2>Shipments</h2><table><tr><th>When</th><th>Event</th><th>Carrier</th>"
                     "<th>Tracking</th><th>Details</th></tr>");
        log_rows(&b, o->events, k, sizeof k / sizeof k[0]);
        buf_puts(&b, "</table>");
    }
    if (json_array_size(o->adjustments)) {
        static const char *const k[] = { "occurred_at", "type", "status", "amount",
                                         "description" };
        buf_puts(&b, "<h2>Adjustments</h2><table><tr><th>When</th><th>Type</th><th>Status</th>"
                     "<th>Amount (minor units)</th><th>Details</th></tr>");
        log_rows(&b, o->adjustments, k, sizeof k / sizeof k[0]);
        buf_puts(&b, "</table>");
    }
    buf_puts(&b, "</body></html>\n");
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

static int run(struct store *st, void *arg)
{
    (void)st;
    struct page_job *j = arg;
    return shop_order_by_token(P.shop, j->id, j->token, &j->order, &j->e);
}

static void done(int rc, void *arg)
{
    struct page_job *j = arg;
    char *html = rc == 0 ? render(j->order) : NULL;
    if (rc == AGENTD_ENOTFOUND) {
        http_reply_error(j->r, 404, "not_found", "no such order");
    } else if (!html) {
        http_set_header(j->r, "Retry-After", "1");
        http_reply_err(j->r, rc ? rc : AGENTD_ENOMEM, NULL);
    } else {
        /* self-contained: no script, no external asset, never framed (the
         * server adds no-store and nosniff to every reply) */
        http_set_header(j->r, "Content-Security-Policy",
                        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                        "base-uri 'none'; form-action 'none'");
        http_set_header(j->r, "X-Frame-Options", "DENY");
        http_set_header(j->r, "Referrer-Policy", "no-referrer");
        http_reply_raw(j->r, 200, "text/html; charset=utf-8", html, strlen(html));
    }
    free(html);
    order_free(j->order);
    free(j);
}

static void h_page(struct http_req *r)
{
    struct page_job *j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    j->r = r;
    j->id = route_param(&r->match, "id");
    struct evkeyvalq q;
    if (r->query && evhttp_parse_query_str(r->query, &q) == 0) {
        const char *t = evhttp_find_header(&q, "t");
        if (t && strlen(t) < sizeof j->token)
            snprintf(j->token, sizeof j->token, "%s", t);
        evhttp_clear_headers(&q);
    }
    int rc = store_async(P.st, r->loop, run, j, done);
    if (rc != 0) {
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, rc, NULL);
        free(j);
    }
}

int order_page_routes(struct router *rt, struct shop *shop, struct store *st)
{
    P.shop = shop;
    P.st = st;
    return router_add(rt, HTTP_GET, "/orders/{id}/status", h_page, NULL);
}
