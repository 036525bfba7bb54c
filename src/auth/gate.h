/* The authentication gate: installed between routing and every handler
 * (http_server_set_gate), it sets the request's principal or answers 401/403. */
#ifndef AGENTD_AUTH_GATE_H
#define AGENTD_AUTH_GATE_H

struct config;
struct store;
struct http_req;
struct http_server;

struct auth_gate;

/* The gate for cfg (AGENTD_AUTH, AGENTD_METRICS_TOKEN), looking keys up in
 * st. NULL without memory. cfg and st outlive it. */
struct auth_gate *auth_gate_new(const struct config *cfg, struct store *st);
void auth_gate_free(struct auth_gate *g);
/* Installs g on srv when it has anything to enforce (auth on, or a metrics
 * token); with neither every request stays "anonymous" and nothing is added. */
void auth_gate_install(struct auth_gate *g, struct http_server *srv);
/* Throttles authentication failures per client address with t
 * (AGENTD_AUTH_FAIL_LIMIT), which g takes; NULL: none. */
struct auth_throttle;
void auth_gate_set_throttle(struct auth_gate *g, struct auth_throttle *t);

/* Why a request was refused: the label of agentd_auth_failures_total. */
enum auth_failure {
    AUTH_FAIL_MISSING,    /* no credentials */
    AUTH_FAIL_INVALID,    /* not a key we issued, or the secret does not match */
    AUTH_FAIL_REVOKED,    /* a revoked key */
    AUTH_FAIL_SCOPE,      /* a valid key without the route's scope: 403 */
    AUTH_FAIL_METRICS,    /* /metrics without its token */
};

/* ---- the seam for other bearer tokens (JWT/OIDC) ----
 * A bearer token that is not shaped like an agentd API key goes to the
 * verifier when one is set (else it is refused as invalid). The verifier
 * owns nothing of r; it must end, on r's loop, at once or later, with
 * exactly one of auth_gate_accept() or auth_gate_refuse(). `need` is the
 * route's scope mask (auth_route_need), passed back to auth_gate_accept. */
typedef void (*auth_token_verifier)(struct http_req *r, const char *token, unsigned need,
                                    void *ud);
void auth_gate_set_verifier(struct auth_gate *g, auth_token_verifier v, void *ud);
/* The token is valid for principal with scopes: 403 when scopes lack need,
 * else the handler runs as principal. */
void auth_gate_accept(struct http_req *r, const char *principal, unsigned scopes,
                      unsigned need);
/* 401 (403 for AUTH_FAIL_SCOPE), counted and logged; token_given adds
 * error="invalid_token" to WWW-Authenticate. key_id may be NULL. A given
 * token refused as invalid or revoked is charged to the address's
 * failure budget (auth_gate_set_throttle). */
void auth_gate_refuse(struct http_req *r, enum auth_failure why, int token_given,
                      const char *key_id);

#endif
