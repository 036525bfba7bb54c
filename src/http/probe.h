/* A minimal blocking HTTP/1.1 GET for `agentd probe`: container and
 * orchestrator health checks without curl in the image. Plain sockets or
 * TLS, one request, one deadline for the whole exchange. Over TLS the
 * certificate is not verified: a probe asks "does this listener answer",
 * not "is this the right server" (docs/security.md). */
#ifndef AGENTD_HTTP_PROBE_H
#define AGENTD_HTTP_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct http_probe_target {
    char host[256];   /* a name or an address; IPv6 without brackets */
    int port;
    char path[1024];  /* starts with '/' */
    int tls;          /* https: TLS 1.2+, the certificate not verified */
};

/* Parses "http[s]://host[:port][/path]" (IPv6 as [::1]); the port defaults to
 * 80 (443 for https) and the path to "/". Returns 0, or AGENTD_EINVAL with the reason in *e. */
int http_probe_parse_url(const char *url, struct http_probe_target *t, struct agentd_error *e);

/* Where a server listening on `host` can be reached from this machine:
 * the wildcard addresses (0.0.0.0, ::, empty) become the loopback ones. */
const char *http_probe_local_host(const char *host);

/* GET t->path from t->host:t->port within timeout_ms. Returns 0 with the
 * response's status in *status and up to bodylen-1 bytes of its body in body
 * (NUL-terminated), or a negative AGENTD_E* with the reason in *e (refused,
 * timed out, not HTTP). */
int http_probe_get(const struct http_probe_target *t, int64_t timeout_ms, int *status,
                   char *body, size_t bodylen, struct agentd_error *e);

#endif
