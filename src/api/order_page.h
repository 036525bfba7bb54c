/* The buyer's order-status page behind an order's permalink_url: public
 * in the auth table, authorised only by the token in the link. */
#ifndef AGENTD_API_ORDER_PAGE_H
#define AGENTD_API_ORDER_PAGE_H

struct router;
struct shop;
struct store;

/* GET /orders/{id}/status?t=TOKEN. */
int order_page_routes(struct router *rt, struct shop *shop, struct store *st);

#endif
