/* JWT bearer tokens, the pure part: a JWKS parsed into a key set, and one
 * token verified against it (or the HS256 secret) at a given time. */
#ifndef AGENTD_AUTH_JWT_H
#define AGENTD_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define JWT_MAX_TOKEN 8192   /* longer bearer tokens are refused unread */
#define JWT_SKEW_S 60        /* leeway for exp / nbf / iat against clock drift */

/* The signing keys of a JWKS document: RSA (2048 bits or more) and EC P-256
 * keys meant for signatures. Symmetric ("oct") keys in a JWKS are skipped:
 * an HS256 token is only ever checked against the configured secret. */
struct jwt_keyset;

/* Parses a JWKS ({"keys":[...]}). Keys agentd cannot use are skipped, not
 * fatal. AGENTD_EINVAL (not a JWKS) with the reason in *e, AGENTD_ENOMEM. */
int jwt_keyset_parse(const char *json, size_t len, struct jwt_keyset **out,
                     struct agentd_error *e);
void jwt_keyset_free(struct jwt_keyset *ks);
size_t jwt_keyset_count(const struct jwt_keyset *ks);

/* What a token must satisfy. hs256_secret NULL = HS256 tokens refused. */
struct jwt_policy {
    const char *issuer;       /* `iss` must equal it */
    const char *audience;     /* `aud` (string or array) must contain it */
    const char *hs256_secret;
    int64_t skew_s;
};

struct jwt_identity {
    char principal[128];      /* `sub` */
    unsigned scopes;          /* auth_scope mask from the `scope` claim */
};

/* Verifies token at time now (Unix seconds) against ks (may be NULL) and p.
 * 0 with *out filled; AGENTD_ENOTFOUND when the token needs a key ks lacks
 * (an unknown kid: the caller may refresh the JWKS and try again);
 * AGENTD_EINVAL when the token is refused, with the reason in *e (never the
 * token). Only RS256, ES256 and HS256 are accepted, and each alg only with
 * its own key type. */
int jwt_verify(const char *token, const struct jwt_keyset *ks, const struct jwt_policy *p,
               int64_t now, struct jwt_identity *out, struct agentd_error *e);

/* The scopes a `scope` claim grants: the agentd scope names it lists
 * (others, such as "openid", are ignored); NULL, or no agentd name at all,
 * gives AUTH_SCOPES_DEFAULT. admin is only ever granted by name. */
unsigned jwt_scopes_from_claim(const char *scope);

/* 1 when k is a JSON object whose base64url members (n, e, d, x, y, k...)
 * cjose may decode without aborting (cjose 0.6 asserts on a stray
 * character); check before handing any JWK to cjose. */
int jwt_jwk_members_ok(json_t *k);

#endif
