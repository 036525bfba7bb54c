/* The A2A Agent Card, served at /.well-known/agent-card.json (and the older
 * agent.json): made once, with a strong ETag so clients revalidate cheaply. */
#include "api/a2a_card.h"
#include "api/a2a_ucp.h"
#include "commerce/ucp.h"
#include "http/router.h"
#include "http/server.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    char *text;
    char etag[24];
} C;

json_t *a2a_card_json(const char *public_url)
{
    char url[600];
    size_t n = strlen(public_url);
    /* the JSON-RPC endpoint is the root path, as the sample agent's is */
    snprintf(url, sizeof url, "%.*s/", (int)(n && public_url[n - 1] == '/' ? n - 1 : n),
             public_url);
    json_t *ext = json_pack("{s:s,s:s,s:b,s:{s:o}}", "uri", A2A_UCP_EXTENSION_URI, "description",
                            "UCP Extension: checkout state rides in DataParts (a2a.ucp.checkout)",
                            "required", 1, "params", "capabilities",
                            ucp_profile_capabilities_json());
    json_t *skills = json_pack(
        "[{s:s,s:s,s:s,s:[s,s,s],s:[s,s]},{s:s,s:s,s:s,s:[s],s:[s,s,s]}]", "id",
        "product_search", "name", "Perform product search", "description",
        "Finds products in the merchant's catalog for the buyer's criteria", "tags", "shopping",
        "search", "catalog search", "examples", "show me cookies", "Help me find a snack",
        "id", "checkout", "name", "Checkout", "description",
        "Builds and completes a UCP checkout: items, buyer, shipping, payment", "tags",
        "checkout", "examples", "add 2 BISC-001",
        "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com", "pay");
    json_t *modes = json_pack("[s,s,s]", "text", "text/plain", "application/json");
    /* no securitySchemes/security here: with AGENTD_AUTH=off nothing is
     * enforced (no requirement reads as none); a2a_card_require_auth adds them */
    return json_pack(
        "{s:s,s:s,s:s,s:{s:s,s:s},s:[{s:s,s:s,s:s}],s:{s:b,s:b,s:[o]},s:O,s:o,s:o,"
        "s:s,s:s,s:s,s:[{s:s,s:s}]}",
        "name", "agentd Merchant Agent", "description",
        "A retail business agent: product search and UCP checkout over A2A", "version",
        AGENTD_VERSION, "provider", "organization", "agentd", "url", url,
        "supportedInterfaces", "url", url, "protocolBinding", "JSONRPC", "protocolVersion",
        "1.0", "capabilities", "streaming", 1, "pushNotifications", 0, "extensions", ext,
        "defaultInputModes", modes, "defaultOutputModes", modes, "skills", skills,
        /* 0.3 fields: the same document serves both generations */
        "url", url, "protocolVersion", "0.3.0", "preferredTransport", "JSONRPC",
        "additionalInterfaces", "url", url, "transport", "JSONRPC");
}

/* FNV-1a of the document: changes whenever the card does */
static void card_etag(void)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)C.text; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    snprintf(C.etag, sizeof C.etag, "\"%016llx\"", (unsigned long long)h);
}

void a2a_card_add_security(json_t *card)
{
    /* One scheme object in both generations' shapes: 1.0's oneof member
     * (httpAuthSecurityScheme / apiKeySecurityScheme) beside 0.3's
     * OpenAPI-style "type"; each reader ignores the other's keys. */
    json_t *schemes = json_pack(
        "{s:{s:s,s:s,s:s,s:{s:s,s:s}},s:{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s}}}",
        "bearer", "type", "http", "scheme", "bearer", "description",
        "an agentd API key (agentd keys create), or a JWT of the operator's OIDC issuer "
        "when one is configured, as Authorization: Bearer <token>",
        "httpAuthSecurityScheme", "scheme", "Bearer", "description",
        "an agentd API key (agentd keys create), or a JWT of the operator's OIDC issuer "
        "when one is configured, as Authorization: Bearer <token>",
        "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key", "description",
        "an agentd API key in the X-API-Key header", "apiKeySecurityScheme", "location",
        "header", "name", "X-API-Key", "description", "an agentd API key in the X-API-Key header");
    json_object_set_new(card, "securitySchemes", schemes);
    /* either scheme, with the a2a scope (docs/security.md) */
    json_object_set_new(card, "security", json_pack("[{s:[s]},{s:[s]}]", "bearer", "a2a",
                                                    "apiKey", "a2a"));
    json_object_set_new(card, "securityRequirements",
                        json_pack("[{s:{s:{s:[s]}}},{s:{s:{s:[s]}}}]", "schemes", "bearer",
                                  "list", "a2a", "schemes", "apiKey", "list", "a2a"));
}

int a2a_card_require_auth(void)
{
    json_t *card = C.text ? json_loads(C.text, 0, NULL) : NULL;
    if (!card)
        return AGENTD_ENOMEM;
    a2a_card_add_security(card);
    char *text = json_dumps(card, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(card);
    if (!text)
        return AGENTD_ENOMEM;
    free(C.text);
    C.text = text;
    card_etag();
    return 0;
}

const char *a2a_card_text(void) { return C.text; }

static void h_card(struct http_req *r)
{
    const char *inm = http_req_header(r, "If-None-Match");
    http_set_header(r, "ETag", C.etag);
    http_set_header(r, "Cache-Control", "public, max-age=300");
    if (inm && (strstr(inm, C.etag) || strcmp(inm, "*") == 0)) {
        http_reply_raw(r, 304, NULL, NULL, 0);
        return;
    }
    http_reply_raw(r, 200, "application/json", C.text, strlen(C.text));
}

int a2a_card_routes(struct router *rt, const char *public_url)
{
    json_t *card = a2a_card_json(public_url);
    free(C.text);
    C.text = card ? json_dumps(card, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(card);
    if (!C.text)
        return AGENTD_ENOMEM;
    card_etag();
    static const struct router_route routes[] = {
        { HTTP_GET, "/.well-known/agent-card.json", h_card },
        { HTTP_GET, "/.well-known/agent.json", h_card },
    };
    return router_add_table(rt, routes, sizeof routes / sizeof routes[0], NULL);
}
