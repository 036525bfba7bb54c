/* The A2A Agent Card: one document read by 1.0 clients (supportedInterfaces)
 * and 0.3 clients (url, protocolVersion, preferredTransport). */
#ifndef AGENTD_API_A2A_CARD_H
#define AGENTD_API_A2A_CARD_H

#include <jansson.h>

struct router;

/* The card for an agent reached at public_url (its JSON-RPC endpoint is
 * public_url + "/"). A new reference. */
json_t *a2a_card_json(const char *public_url);
/* The card as a compact JSON text, made once at a2a_card_routes (borrowed). */
const char *a2a_card_text(void);
/* GET /.well-known/agent-card.json and /.well-known/agent.json. */
int a2a_card_routes(struct router *rt, const char *public_url);
/* AGENTD_AUTH=on: the served card then names what is enforced (Bearer or
 * X-API-Key with the a2a scope) in both the 1.0 (securitySchemes oneof
 * members, securityRequirements) and 0.3 (type, security) shapes. Call
 * after a2a_card_routes, before serving. */
int a2a_card_require_auth(void);
void a2a_card_add_security(json_t *card);

#endif
