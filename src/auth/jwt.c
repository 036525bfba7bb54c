/* JWT verification with cjose: a JWKS becomes a key set, a token is checked
 * (alg allow-list, key type bound to alg, signature, iss/aud/exp/nbf/iat, sub). Pure. */
#include "auth/jwt.h"
#include "auth/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>

struct jwt_key {
    cjose_jwk_t *jwk;
    char *kid;                 /* NULL when the JWKS gave none */
    cjose_jwk_kty_t kty;
};

struct jwt_keyset {
    struct jwt_key *keys;
    size_t n;
};

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++) {
        cjose_jwk_release(ks->keys[i].jwk);
        free(ks->keys[i].kid);
    }
    free(ks->keys);
    free(ks);
}

size_t jwt_keyset_count(const struct jwt_keyset *ks) { return ks ? ks->n : 0; }

/* 1 when the key may verify signatures agentd accepts */
/* base64url text cjose may decode: only the URL-safe alphabet, no padding,
 * and never a length that leaves one stray character (len % 4 == 1) —
 * cjose 0.6 asserts (aborts the process) on that one instead of failing,
 * so a crafted bearer token could stop the server (found by tests/fuzz). */
static int b64url_ok(const char *s, size_t n)
{
    if (n % 4 == 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* A JWK whose base64url members cjose would decode are all well formed. */
static int jwk_b64_ok(json_t *k)
{
    static const char *const fields[] = { "n", "e", "d", "p", "q", "dp", "dq", "qi",
                                          "x", "y", "k", NULL };
    for (int i = 0; fields[i]; i++) {
        json_t *v = json_object_get(k, fields[i]);
        if (v && (!json_is_string(v) ||
                  !b64url_ok(json_string_value(v), json_string_length(v))))
            return 0;
    }
    return 1;
}

int jwt_jwk_members_ok(json_t *k) { return json_is_object(k) && jwk_b64_ok(k); }

static int key_usable(json_t *k, cjose_jwk_t *jwk)
{
    const char *use = json_string_value(json_object_get(k, "use"));
    if (use && strcmp(use, "sig") != 0)
        return 0;
    cjose_err err;
    cjose_jwk_kty_t kty = cjose_jwk_get_kty(jwk, &err);
    if (kty == CJOSE_JWK_KTY_RSA)
        return cjose_jwk_get_keysize(jwk, &err) >= 2048; /* shorter RSA keys are forgeable */
    if (kty == CJOSE_JWK_KTY_EC)
        return cjose_jwk_EC_get_curve(jwk, &err) == CJOSE_JWK_EC_P_256;
    return 0; /* oct: a shared secret never comes from a URL */
}

int jwt_keyset_parse(const char *json, size_t len, struct jwt_keyset **out,
                     struct agentd_error *e)
{
    *out = NULL;
    json_t *doc = json_loadb(json, len, 0, NULL);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        return agentd_fail(e, AGENTD_EINVAL, "invalid_jwks", NULL,
                           "not a JWKS: a JSON object with a \"keys\" array");
    }
    struct jwt_keyset *ks = calloc(1, sizeof *ks);
    size_t cap = json_array_size(keys);
    if (!ks || (cap && !(ks->keys = calloc(cap, sizeof *ks->keys)))) {
        free(ks);
        json_decref(doc);
        return AGENTD_ENOMEM;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        if (!json_is_object(k) || !jwk_b64_ok(k))
            continue;
        cjose_err err;
        /* cjose borrows the object (cjose_header_t is jansson's json_t) */
        cjose_jwk_t *jwk = cjose_jwk_import_json((cjose_header_t *)k, &err);
        if (!jwk)
            continue;
        if (!key_usable(k, jwk)) {
            cjose_jwk_release(jwk);
            continue;
        }
        struct jwt_key *dst = &ks->keys[ks->n];
        const char *kid = json_string_value(json_object_get(k, "kid"));
        dst->jwk = jwk;
        dst->kty = cjose_jwk_get_kty(jwk, &err);
        if (kid && !(dst->kid = strdup(kid))) {
            cjose_jwk_release(jwk);
            jwt_keyset_free(ks);
            json_decref(doc);
            return AGENTD_ENOMEM;
        }
        ks->n++;
    }
    json_decref(doc);
    *out = ks;
    return 0;
}

/* the scope bit of one name (n bytes at p), 0 for a name agentd does not use */
static unsigned scope_bit(const char *p, size_t n)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = { { "chat", AUTH_SCOPE_CHAT }, { "a2a", AUTH_SCOPE_A2A },
                  { "ucp", AUTH_SCOPE_UCP }, { "admin", AUTH_SCOPE_ADMIN } };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == n && strncmp(p, names[i].name, n) == 0)
            return names[i].bit;
    return 0;
}

unsigned jwt_scopes_from_claim(const char *scope)
{
    unsigned mask = 0;
    for (const char *p = scope; p && *p;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        mask |= scope_bit(p, n);
        p += n;
    }
    return mask ? mask : AUTH_SCOPES_DEFAULT;
}

/* RFC 8693 4.2 "scope" (space-separated); else "scp", which some
 * identity providers send as a list of strings or a string */
static unsigned scopes_of(json_t *c)
{
    json_t *scope = json_object_get(c, "scope");
    if (json_is_string(scope))
        return jwt_scopes_from_claim(json_string_value(scope));
    json_t *scp = json_object_get(c, "scp");
    if (json_is_string(scp))
        return jwt_scopes_from_claim(json_string_value(scp));
    unsigned mask = 0;
    size_t i;
    json_t *v;
    json_array_foreach(scp, i, v) {
        const char *name = json_string_value(v);
        if (name)
            mask |= scope_bit(name, strlen(name));
    }
    return mask ? mask : AUTH_SCOPES_DEFAULT;
}

/* ---- signature ---- */

enum alg { ALG_RS256, ALG_ES256, ALG_HS256 };

static int verify_with_keys(cjose_jws_t *jws, enum alg alg, const char *kid,
                            const struct jwt_keyset *ks, struct agentd_error *e)
{
    cjose_jwk_kty_t want = alg == ALG_RS256 ? CJOSE_JWK_KTY_RSA : CJOSE_JWK_KTY_EC;
    int candidates = 0;
    for (size_t i = 0; ks && i < ks->n; i++) {
        const struct jwt_key *k = &ks->keys[i];
        if (kid ? !k->kid || strcmp(k->kid, kid) != 0 : 0)
            continue;
        /* the key's type must match the alg: no RSA key verifies an ES token, and so on */
        if (k->kty != want)
            continue;
        candidates++;
        cjose_err err;
        if (cjose_jws_verify(jws, k->jwk, &err))
            return 0;
    }
    if (!candidates)
        return agentd_fail(e, AGENTD_ENOTFOUND, "unknown_kid", NULL,
                           "no %s key with this kid in the JWKS",
                           alg == ALG_RS256 ? "RSA" : "EC P-256");
    return agentd_fail(e, AGENTD_EINVAL, "bad_signature", NULL, "the signature does not verify");
}

static int verify_hs256(cjose_jws_t *jws, const char *secret, struct agentd_error *e)
{
    if (!secret)
        return agentd_fail(e, AGENTD_EINVAL, "unsupported_alg", NULL,
                           "HS256 tokens are not accepted (no AGENTD_JWT_HS256_SECRET)");
    cjose_err err;
    cjose_jwk_t *jwk = cjose_jwk_create_oct_spec((const uint8_t *)secret, strlen(secret), &err);
    if (!jwk)
        return AGENTD_ENOMEM;
    int ok = cjose_jws_verify(jws, jwk, &err);
    cjose_jwk_release(jwk);
    return ok ? 0
              : agentd_fail(e, AGENTD_EINVAL, "bad_signature", NULL,
                            "the signature does not verify");
}

/* ---- claims ---- */

static int claim_time(json_t *claims, const char *name, int required, int64_t *t,
                      struct agentd_error *e)
{
    json_t *v = json_object_get(claims, name);
    if (!v) {
        if (required)
            return agentd_fail(e, AGENTD_EINVAL, "invalid_claims", name, "the token has no %s",
                               name);
        return 1;
    }
    if (!json_is_number(v))
        return agentd_fail(e, AGENTD_EINVAL, "invalid_claims", name, "%s is not a number", name);
    *t = (int64_t)json_number_value(v);
    return 0;
}

static int audience_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *a;
    json_array_foreach(aud, i, a) {
        if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
            return 1;
    }
    return 0;
}

/* sub becomes the principal: printable ASCII without spaces (it is logged
 * and stored), never "anonymous" (development's principal) */
static int subject_ok(const char *sub)
{
    size_t n = sub ? strlen(sub) : 0;
    if (n == 0 || n >= sizeof((struct jwt_identity *)0)->principal ||
        strcmp(sub, "anonymous") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)sub[i] < 0x21 || (unsigned char)sub[i] > 0x7e)
            return 0;
    return 1;
}

static int check_claims(json_t *c, const struct jwt_policy *p, int64_t now,
                        struct jwt_identity *out, struct agentd_error *e)
{
    if (!json_is_object(c))
        return agentd_fail(e, AGENTD_EINVAL, "invalid_claims", NULL,
                           "the payload is not a JSON object");
    int64_t exp = 0, nbf = 0, iat = 0;
    int rc;
    if ((rc = claim_time(c, "exp", 1, &exp, e)) < 0)
        return rc;
    if (now > exp + p->skew_s)
        return agentd_fail(e, AGENTD_EINVAL, "expired", "exp", "the token has expired");
    if ((rc = claim_time(c, "nbf", 0, &nbf, e)) < 0)
        return rc;
    if (rc == 0 && nbf > now + p->skew_s)
        return agentd_fail(e, AGENTD_EINVAL, "not_yet_valid", "nbf", "the token is not valid yet");
    if ((rc = claim_time(c, "iat", 0, &iat, e)) < 0)
        return rc;
    if (rc == 0 && iat > now + p->skew_s)
        return agentd_fail(e, AGENTD_EINVAL, "not_yet_valid", "iat",
                           "the token was issued in the future");
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || !p->issuer || strcmp(iss, p->issuer) != 0)
        return agentd_fail(e, AGENTD_EINVAL, "wrong_issuer", "iss", "the issuer is not trusted");
    if (!p->audience || !audience_has(json_object_get(c, "aud"), p->audience))
        return agentd_fail(e, AGENTD_EINVAL, "wrong_audience", "aud",
                           "the token is not meant for this audience");
    const char *sub = json_string_value(json_object_get(c, "sub"));
    if (!subject_ok(sub))
        return agentd_fail(e, AGENTD_EINVAL, "invalid_subject", "sub",
                           "sub is missing, empty, too long or not printable ASCII");
    snprintf(out->principal, sizeof out->principal, "%s", sub);
    out->scopes = scopes_of(c);
    return 0;
}

/* ---- the token ---- */

static int parse_alg(cjose_jws_t *jws, enum alg *alg, const char **kid, struct agentd_error *e)
{
    json_t *hdr = (json_t *)cjose_jws_get_protected(jws);
    const char *a = json_string_value(json_object_get(hdr, "alg"));
    *kid = json_string_value(json_object_get(hdr, "kid"));
    if (json_object_get(hdr, "crit"))
        return agentd_fail(e, AGENTD_EINVAL, "unsupported_header", "crit",
                           "critical header extensions are not supported");
    if (a && strcmp(a, "RS256") == 0)
        *alg = ALG_RS256;
    else if (a && strcmp(a, "ES256") == 0)
        *alg = ALG_ES256;
    else if (a && strcmp(a, "HS256") == 0)
        *alg = ALG_HS256;
    else
        return agentd_fail(e, AGENTD_EINVAL, "unsupported_alg", "alg",
                           "alg must be RS256, ES256 or HS256");
    return 0;
}

int jwt_verify(const char *token, const struct jwt_keyset *ks, const struct jwt_policy *p,
               int64_t now, struct jwt_identity *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    size_t len = token ? strlen(token) : 0;
    /* three segments, the first two non-empty: cjose would also take other shapes */
    const char *d1 = token ? strchr(token, '.') : NULL;
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!len || len > JWT_MAX_TOKEN || !d1 || d1 == token || !d2 || d2 == d1 + 1 ||
        strchr(d2 + 1, '.') || !d2[1])
        return agentd_fail(e, AGENTD_EINVAL, "malformed", NULL,
                           "not a signed JWT (header.payload.signature)");
    if (!b64url_ok(token, (size_t)(d1 - token)) || !b64url_ok(d1 + 1, (size_t)(d2 - d1 - 1)) ||
        !b64url_ok(d2 + 1, len - (size_t)(d2 + 1 - token)))
        return agentd_fail(e, AGENTD_EINVAL, "malformed", NULL,
                           "the token is not base64url (RFC 7515: no padding, URL-safe alphabet)");
    cjose_err err;
    cjose_jws_t *jws = cjose_jws_import(token, len, &err);
    if (!jws)
        return agentd_fail(e, AGENTD_EINVAL, "malformed", NULL, "the token cannot be parsed");
    enum alg alg = ALG_RS256;
    const char *kid;
    int rc = parse_alg(jws, &alg, &kid, e);
    if (rc == 0)
        rc = alg == ALG_HS256 ? verify_hs256(jws, p->hs256_secret, e)
                              : verify_with_keys(jws, alg, kid, ks, e);
    if (rc == 0) {
        uint8_t *plain = NULL;
        size_t plen = 0;
        if (!cjose_jws_get_plaintext(jws, &plain, &plen, &err)) {
            rc = agentd_fail(e, AGENTD_EINVAL, "malformed", NULL, "the payload cannot be read");
        } else {
            json_t *claims = json_loadb((const char *)plain, plen, 0, NULL);
            rc = check_claims(claims, p, now, out, e);
            json_decref(claims);
        }
    }
    cjose_jws_release(jws);
    return rc;
}
