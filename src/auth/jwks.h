/* The JWT verifier the gate calls for bearer tokens that are not API keys:
 * the issuer's JWKS fetched on the request's loop, cached, refreshed on an unknown kid. */
#ifndef AGENTD_AUTH_JWKS_H
#define AGENTD_AUTH_JWKS_H

struct config;
struct http_req;
struct jwks;

#define JWKS_FETCH_TIMEOUT_MS 5000   /* a request waits at most this long for the keys */
#define JWKS_MAX_BYTES (512 * 1024)
#define JWKS_MAX_AGE_MS (3600 * 1000) /* older keys are refetched (removed keys stop working) */
#define JWKS_RETRY_MS 5000           /* with no keys yet, a failed fetch is retried this soon */
#define JWKS_RETRY_AFTER "5"         /* ... which the 503 tells clients */

/* The verifier for cfg (AGENTD_OIDC_*, AGENTD_JWT_HS256_SECRET; cfg outlives
 * it). NULL when cfg sets no issuer, or without memory (*oom = 1). Each
 * loop keeps its own key cache and fetches on its own, so no request ever
 * waits for another thread. */
struct jwks *jwks_new(const struct config *cfg, int *oom);
/* After the loops stopped, before their bases are freed (http_server_free):
 * ends every fetch; requests still waiting are left to the server's drop. */
void jwks_free(struct jwks *j);

/* The auth_token_verifier (auth/gate.h): ends with auth_gate_accept or
 * auth_gate_refuse, or 503 when no keys could be fetched at all. */
void jwks_verify(struct http_req *r, const char *token, unsigned need, void *ud);


#endif
