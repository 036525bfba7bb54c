/* GET /openapi.json: the OpenAPI 3.1 document of agentd's HTTP API
 * (src/api/openapi.json, compiled into the binary). */
#ifndef AGENTD_API_OPENAPI_H
#define AGENTD_API_OPENAPI_H

#include <stddef.h>

struct router;

int openapi_routes(struct router *rt);
/* AGENTD_AUTH=on: serve the document with components.securitySchemes and
 * each operation's security (none for public routes, the metrics token for
 * /metrics when metrics_token). Once, before serving. */
int openapi_require_auth(int metrics_token);
/* The embedded document (NUL-terminated; len excludes the NUL). */
const char *openapi_document(size_t *len);

#endif
