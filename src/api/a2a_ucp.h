/* UCP over A2A: the retail parts of an A2A message, as pure JSON helpers the
 * A2A front (api/a2a.c) calls — UI actions a client sends, and the DataParts
 * agentd answers with (product results, the checkout). No I/O, no globals. */
#ifndef AGENTD_API_A2A_UCP_H
#define AGENTD_API_A2A_UCP_H

#include <jansson.h>

#include "core/err.h"

/* The UCP extension a client activates with X-A2A-Extensions. */
#define A2A_UCP_EXTENSION_URI "https://ucp.dev/specification/reference?v=2026-01-11"
/* DataPart keys (UCP's A2A binding and the sample client). */
#define A2A_KEY_CHECKOUT "a2a.ucp.checkout"
#define A2A_KEY_PAYMENT_DATA "a2a.ucp.checkout.payment_data"
#define A2A_KEY_RISK_SIGNALS "a2a.ucp.checkout.risk_signals"
#define A2A_KEY_PRODUCT_RESULTS "a2a.product_results"

/* A UI action in a message's parts: a text part whose whole text is a JSON
 * object with "action" (e.g. {"action":"add_to_checkout","product_id":"BISC-001",
 * "quantity":1}), or a data part whose data has "action". On 1, *tool is a
 * static tool name of agent/tools.c and *args a new reference the caller
 * frees. 0 = no action in the parts; AGENTD_EINVAL = an action that is not
 * valid (unknown action, bad fields): e->msg says what, in a message for the
 * client (*e is cleared first; e may be NULL). */
int a2a_ucp_action(const json_t *parts, const char **tool, json_t **args, struct agentd_error *e);

/* {"results": [schema.org Product ...]} for the tool result's products
 * array (search_shopping_catalog's "products"); a new reference, or NULL. */
json_t *a2a_ucp_product_results(const json_t *products);

#endif
