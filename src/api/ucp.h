/* UCP (Universal Commerce Protocol 2026-01-11) REST binding: checkout
 * sessions, orders, discovery (/.well-known/ucp), and the test-only
 * shipping simulation. */
#ifndef AGENTD_API_UCP_H
#define AGENTD_API_UCP_H

struct router;
struct shop;
struct store;
struct config;

/* public_url is borrowed and must outlive the routes. */
int ucp_routes(struct router *rt, struct shop *shop, struct store *st, const struct config *cfg,
               const char *public_url);

/* The key whose public JWK /.well-known/ucp publishes in signing_keys
 * (borrowed; NULL = none). Call before serving. */
struct sign_key;
void ucp_set_signing_key(const struct sign_key *k);

#endif
