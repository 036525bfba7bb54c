/* Authentication's pure parts: scopes, the API key format and its check, and
 * which scope each route needs. The gate that applies them is auth/gate.h. */
#ifndef AGENTD_AUTH_AUTH_H
#define AGENTD_AUTH_AUTH_H

#include <stddef.h>

#include "core/err.h"

struct store_apikey;

/* ---- scopes ---- */

enum auth_scope {
    AUTH_SCOPE_CHAT = 1 << 0,  /* /chat and its sessions */
    AUTH_SCOPE_A2A = 1 << 1,   /* A2A JSON-RPC at / */
    AUTH_SCOPE_UCP = 1 << 2,   /* UCP checkout sessions and orders */
    AUTH_SCOPE_ADMIN = 1 << 3, /* /health, the /testing routes, any route not in the table */
};
/* A key created without --scopes: every front, not admin. */
#define AUTH_SCOPES_DEFAULT (AUTH_SCOPE_CHAT | AUTH_SCOPE_A2A | AUTH_SCOPE_UCP)
#define AUTH_SCOPES_ALL (AUTH_SCOPES_DEFAULT | AUTH_SCOPE_ADMIN)

/* "chat,ucp" -> mask. NULL or "" is AUTH_SCOPES_DEFAULT (what a stored ""
 * means). An unknown name, or an empty item, is AGENTD_EINVAL with the
 * reason in *e. */
int auth_scopes_parse(const char *list, unsigned *mask, struct agentd_error *e);
/* mask -> "chat,a2a,ucp" (in the enum's order); "" for 0. */
void auth_scopes_format(unsigned mask, char *buf, size_t len);

/* ---- routes ---- */

#define AUTH_ROUTE_PUBLIC (-1)  /* no credentials asked */
#define AUTH_ROUTE_METRICS (-2) /* the metrics token when set, else open */
/* What a route template needs: AUTH_ROUTE_PUBLIC, AUTH_ROUTE_METRICS, or the
 * scope mask a key must hold (0 = any valid key). A template the table does
 * not know needs admin: a new route is closed until it is classified. */
int auth_route_need(const char *tmpl);

/* ---- API keys: agd_<id>_<secret> ---- */

#define AUTH_KEY_ID_LEN 12     /* hex: looked up by id, shown by `keys list`, logged */
#define AUTH_KEY_SECRET_LEN 64 /* hex of 32 random bytes */
#define AUTH_KEY_LEN (4 + AUTH_KEY_ID_LEN + 1 + AUTH_KEY_SECRET_LEN)

/* A new random key and its id (from OpenSSL's RAND_bytes). 0 or AGENTD_EIO. */
int auth_key_generate(char key[AUTH_KEY_LEN + 1], char id[AUTH_KEY_ID_LEN + 1]);
/* The id of a well-formed key, else AGENTD_EINVAL (not one of ours: a JWT or
 * garbage). Looks only at the shape. */
int auth_key_id(const char *key, char id[AUTH_KEY_ID_LEN + 1]);
/* 1 if key hashes to the row's stored hash (constant-time compare), else 0.
 * Ignores revocation: the caller says why it refuses. */
int auth_key_matches(const struct store_apikey *row, const char *key);

/* A principal name `keys create` accepts: 1..100 of [A-Za-z0-9._@:-], and
 * not "anonymous" (the development principal: its data must not become a
 * key holder's). */
int auth_principal_valid(const char *name);

#endif
