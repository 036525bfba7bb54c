/* The OpenAPI 3.1 document (src/api/openapi.json) compiled into the binary
 * and served at GET /openapi.json; tests/e2e/test_openapi.py holds it to the
 * routes the binary registers, both ways. */
#include "api/openapi.h"
#include "http/server.h"

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

static void h_openapi(struct http_req *r)
{
    size_t len;
    const char *doc = openapi_document(&len);
    http_reply_raw(r, 200, "application/json", doc, len);
}

int openapi_routes(struct router *rt)
{
    return router_add(rt, HTTP_GET, "/openapi.json", h_openapi, NULL);
}
