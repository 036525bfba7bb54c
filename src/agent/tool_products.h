/* The catalog tools' products as JSON (agent-private): each product's tree
 * and texts built once per thread for the catalog they came from. */
#ifndef AGENTD_AGENT_TOOL_PRODUCTS_H
#define AGENTD_AGENT_TOOL_PRODUCTS_H

#include <jansson.h>

struct catalog;
struct catalog_hits;
struct product;

/* A product as the tools show it (new reference; NULL: no memory):
 * {"id","title","price","currency","in_stock","category","description",
 * "image"?,"brand"?,"url"?}, in that order. */
json_t *tool_product_json(const struct product *p, const char *currency, int64_t stock);

/* The search tool's result for hits of cat, {"products":[...],"total":N}
 * (new reference, or NULL on no memory), and its texts: *content as
 * jsondump(result, JSON_COMPACT) writes it, *escaped that text as a JSON
 * string (quotes included), both malloc'd and NULL when not made (no
 * memory, or a product outside cat): the caller then dumps the result. The
 * products' trees are shared with this thread's cache (read-only, like
 * every tool result). */
json_t *tool_products_search(struct catalog *cat, const struct catalog_hits *hits,
                             char **content, char **escaped);

/* Drops this thread's cache (and its catalog reference). Tests; threads
 * drop theirs when they end. */
void tool_products_reset(void);

#endif
