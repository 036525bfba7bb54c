/* Our signing key (AGENTD_SIGNING_KEY): the EC P-256 key agentd signs what
 * it sends others with (order webhooks' Request-Signature), and its public
 * JWK, published in /.well-known/ucp signing_keys. */
#ifndef AGENTD_AUTH_SIGN_H
#define AGENTD_AUTH_SIGN_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

struct sign_key;

/* text: a private EC P-256 key as a JWK (JSON with "d"; its "kid" is kept)
 * or as PEM (PKCS#8 or SEC1); NULL = a fresh ephemeral key (development:
 * what it signed cannot be verified after a restart). The kid, when the
 * JWK has none, is its RFC 7638 thumbprint. AGENTD_EINVAL with the reason
 * in *e (never the key), AGENTD_ENOMEM. */
int sign_key_load(const char *text, struct sign_key **out, struct agentd_error *e);
void sign_key_free(struct sign_key *k);
int sign_key_ephemeral(const struct sign_key *k);
const char *sign_key_kid(const struct sign_key *k);
/* The public JWK {kty, crv, x, y, kid, use:"sig", alg:"ES256"} (a new
 * reference), or NULL when out of memory. */
json_t *sign_key_public_jwk(const struct sign_key *k);

/* A detached JWS (RFC 7515 appendix F) over body: "<header>..<signature>",
 * header {"alg":"ES256","kid":...}, ES256. *out is malloc'd. 0 or
 * AGENTD_ENOMEM / AGENTD_EINTERNAL. Thread-safe. */
int sign_detached(const struct sign_key *k, const void *body, size_t len, char **out);
/* 1 when sig is a detached ES256 JWS over body by the public key jwk (a
 * JWK object), else 0. For tests and tools. */
int sign_verify_detached(const json_t *jwk, const char *sig, const void *body, size_t len);

#endif
