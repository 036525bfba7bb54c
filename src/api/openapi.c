/* The OpenAPI 3.1 document (src/api/openapi.json) compiled into the binary
 * and served at GET /openapi.json; tests/e2e/test_openapi.py holds it to the
 * routes the binary registers, both ways. With AGENTD_AUTH=on the served
 * copy names the security each operation enforces (auth/auth.h's table). */
#include "api/openapi.h"
#include "auth/auth.h"
#include "http/server.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#ifndef AGENTD_OPENAPI_JSON
#error "AGENTD_OPENAPI_JSON must name src/api/openapi.json (set by CMake)"
#endif

__asm__(".section .rodata\n"
        ".balign 16\n"
        "agentd_openapi_start:\n"
        ".incbin \"" AGENTD_OPENAPI_JSON "\"\n"
        "agentd_openapi_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char agentd_openapi_start[] __asm__("agentd_openapi_start");
extern const char agentd_openapi_end[] __asm__("agentd_openapi_end");

const char *openapi_document(size_t *len)
{
    *len = (size_t)(agentd_openapi_end - agentd_openapi_start);
    return agentd_openapi_start;
}

static char *secured; /* the document with security, when auth is on */

static void h_openapi(struct http_req *r)
{
    size_t len;
    const char *doc = secured ? secured : openapi_document(&len);
    if (secured)
        len = strlen(secured);
    http_reply_raw(r, 200, "application/json", doc, len);
}

/* [{"bearer": scopes}, {"apiKey": scopes}] for a scope mask (0: any key) */
static json_t *requirement(unsigned need)
{
    json_t *bearer = json_array(), *key = json_array();
    char list[64];
    auth_scopes_format(need, list, sizeof list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        json_array_append_new(bearer, json_string(tok));
        json_array_append_new(key, json_string(tok));
    }
    return json_pack("[{s:o},{s:o}]", "bearer", bearer, "apiKey", key);
}

int openapi_require_auth(int metrics_token)
{
    size_t len;
    const char *text = openapi_document(&len);
    json_t *doc = json_loadb(text, len, 0, NULL);
    json_t *comp = json_object_get(doc, "components");
    json_t *paths = json_object_get(doc, "paths");
    if (!json_is_object(comp) || !json_is_object(paths)) {
        json_decref(doc);
        return AGENTD_ENOMEM;
    }
    json_object_set_new(
        comp, "securitySchemes",
        json_pack("{s:{s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s},s:{s:s,s:s,s:s}}", "bearer", "type",
                  "http", "scheme", "bearer", "description",
                  "an agentd API key (agentd keys create), or a JWT of the operator's OIDC issuer "
                  "when one is configured; the requirement lists the scopes it must hold "
                  "(docs/security.md)",
                  "apiKey", "type", "apiKey", "in", "header", "name", "X-API-Key", "description",
                  "the same API key in the X-API-Key header", "metricsToken", "type", "http",
                  "scheme", "bearer", "description", "AGENTD_METRICS_TOKEN"));
    json_object_set_new(doc, "security", requirement(0));
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        int need = auth_route_need(path);
        json_t *sec = need == AUTH_ROUTE_PUBLIC ? json_array()
                      : need == AUTH_ROUTE_METRICS
                          ? (metrics_token ? json_pack("[{s:[]}]", "metricsToken") : json_array())
                          : requirement((unsigned)need);
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op)
            if (json_is_object(op) && strcmp(method, "parameters") != 0)
                json_object_set(op, "security", sec);
        json_decref(sec);
    }
    free(secured);
    secured = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return secured ? 0 : AGENTD_ENOMEM;
}

int openapi_routes(struct router *rt)
{
    return router_add(rt, HTTP_GET, "/openapi.json", h_openapi, NULL);
}
