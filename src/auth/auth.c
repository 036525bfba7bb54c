/* Scopes, the API key format (agd_<id>_<secret>) and its constant-time
 * check, and the route table saying which scope each route needs. Pure. */
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "store/store.h"

static const char *const scope_names[] = { "chat", "a2a", "ucp", "admin" };
#define NSCOPES (sizeof scope_names / sizeof scope_names[0])

int auth_scopes_parse(const char *list, unsigned *mask, struct agentd_error *e)
{
    *mask = 0;
    if (!list || !*list) {
        *mask = AUTH_SCOPES_DEFAULT;
        return 0;
    }
    const char *p = list;
    for (;;) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < NSCOPES && !(strlen(scope_names[i]) == n && strncmp(p, scope_names[i], n) == 0))
            i++;
        if (i == NSCOPES)
            return agentd_fail(e, AGENTD_EINVAL, "invalid_scope", NULL,
                               "unknown scope '%.*s' (scopes: chat, a2a, ucp, admin)",
                               (int)(n > 64 ? 64 : n), p);
        *mask |= 1u << i;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

void auth_scopes_format(unsigned mask, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < NSCOPES && used < len; i++)
        if (mask & (1u << i))
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "",
                                     scope_names[i]);
}

/* Longest prefix first within a kind; a template is matched exactly unless
 * its row ends in '/' (then it is a prefix). */
static const struct {
    const char *tmpl;
    int need;
} route_table[] = {
    { "/healthz", AUTH_ROUTE_PUBLIC },
    { "/readyz", AUTH_ROUTE_PUBLIC },
    { "/.well-known/", AUTH_ROUTE_PUBLIC }, /* agent card, UCP discovery */
    { "/metrics", AUTH_ROUTE_METRICS },
    { "/openapi.json", 0 },                 /* any key: it describes every front */
    { "/", AUTH_SCOPE_A2A },                /* A2A JSON-RPC */
    { "/chat", AUTH_SCOPE_CHAT },
    { "/chat/", AUTH_SCOPE_CHAT },
    { "/checkout-sessions", AUTH_SCOPE_UCP },
    { "/checkout-sessions/", AUTH_SCOPE_UCP },
    /* the buyer's order-status page (permalink_url): its token is its key
     * (api/order_page.c); before "/orders/", which it would match */
    { "/orders/{id}/status", AUTH_ROUTE_PUBLIC },
    { "/orders/", AUTH_SCOPE_UCP },
    { "/health", AUTH_SCOPE_ADMIN },        /* dependencies and internals */
    { "/testing/", AUTH_SCOPE_ADMIN },
};

int auth_route_need(const char *tmpl)
{
    if (!tmpl)
        return AUTH_SCOPE_ADMIN;
    for (size_t i = 0; i < sizeof route_table / sizeof route_table[0]; i++) {
        const char *t = route_table[i].tmpl;
        size_t n = strlen(t);
        int prefix = n > 1 && t[n - 1] == '/';
        if (prefix ? strncmp(tmpl, t, n) == 0 : strcmp(tmpl, t) == 0)
            return route_table[i].need;
    }
    return AUTH_SCOPE_ADMIN;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

int auth_key_generate(char key[AUTH_KEY_LEN + 1], char id[AUTH_KEY_ID_LEN + 1])
{
    unsigned char rnd[AUTH_KEY_ID_LEN / 2 + AUTH_KEY_SECRET_LEN / 2];
    if (RAND_bytes(rnd, (int)sizeof rnd) != 1)
        return AGENTD_EIO;
    char secret[AUTH_KEY_SECRET_LEN + 1];
    to_hex(rnd, AUTH_KEY_ID_LEN / 2, id);
    to_hex(rnd + AUTH_KEY_ID_LEN / 2, AUTH_KEY_SECRET_LEN / 2, secret);
    snprintf(key, AUTH_KEY_LEN + 1, "agd_%s_%s", id, secret);
    OPENSSL_cleanse(rnd, sizeof rnd);
    OPENSSL_cleanse(secret, sizeof secret);
    return 0;
}

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int auth_key_id(const char *key, char id[AUTH_KEY_ID_LEN + 1])
{
    if (!key || strlen(key) != AUTH_KEY_LEN || strncmp(key, "agd_", 4) != 0 ||
        key[4 + AUTH_KEY_ID_LEN] != '_' || !all_hex(key + 4, AUTH_KEY_ID_LEN) ||
        !all_hex(key + 5 + AUTH_KEY_ID_LEN, AUTH_KEY_SECRET_LEN))
        return AGENTD_EINVAL;
    memcpy(id, key + 4, AUTH_KEY_ID_LEN);
    id[AUTH_KEY_ID_LEN] = 0;
    return 0;
}

int auth_key_matches(const struct store_apikey *row, const char *key)
{
    char hash[65];
    store_apikey_hash(key, hash);
    /* the stored hash is 64 hex chars (store_apikey_create checks it) */
    int same = row->hash && strlen(row->hash) == 64 && CRYPTO_memcmp(row->hash, hash, 64) == 0;
    OPENSSL_cleanse(hash, sizeof hash);
    return same;
}

int auth_principal_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 100 || strcmp(name, "anonymous") == 0)
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@:-") == n;
}
