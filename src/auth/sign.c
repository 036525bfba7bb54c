/* The signing key: loading (JWK or PEM, or an ephemeral one), its public
 * JWK with a thumbprint kid, and detached ES256 JWS over a body (cjose). */
#define _GNU_SOURCE
#include "auth/sign.h"
#include "auth/jwt.h"

#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

struct sign_key {
    cjose_jwk_t *jwk;
    int ephemeral;
    char kid[96];
};

void sign_key_free(struct sign_key *k)
{
    if (!k)
        return;
    cjose_jwk_release(k->jwk);
    free(k);
}

int sign_key_ephemeral(const struct sign_key *k) { return k->ephemeral; }
const char *sign_key_kid(const struct sign_key *k) { return k->kid; }

static void cjose_free(void *p) { cjose_get_dealloc()(p); }

/* base64url (no padding) of n bytes into out; 0 or AGENTD_ENOMEM. */
static int b64url(const uint8_t *in, size_t n, char *out, size_t cap)
{
    cjose_err err;
    char *s = NULL;
    size_t len = 0;
    if (!cjose_base64url_encode(in, n, &s, &len, &err))
        return AGENTD_ENOMEM;
    int rc = len < cap ? 0 : AGENTD_EINTERNAL;
    if (rc == 0) {
        memcpy(out, s, len);
        out[len] = 0;
    }
    cjose_free(s);
    return rc;
}

/* The public members as JSON (no kid, no "d"): a new reference or NULL. */
static json_t *public_members(const cjose_jwk_t *jwk)
{
    cjose_err err;
    char *s = cjose_jwk_to_json(jwk, false, &err);
    if (!s)
        return NULL;
    json_t *j = json_loads(s, 0, NULL);
    cjose_free(s);
    json_object_del(j, "kid");
    return j;
}

/* RFC 7638: base64url(SHA-256({"crv","kty","x","y"} in that order)). */
static int thumbprint(const cjose_jwk_t *jwk, char *out, size_t cap)
{
    json_t *j = public_members(jwk);
    const char *crv = json_string_value(json_object_get(j, "crv"));
    const char *x = json_string_value(json_object_get(j, "x"));
    const char *y = json_string_value(json_object_get(j, "y"));
    char buf[512];
    int rc = AGENTD_ENOMEM;
    if (crv && x && y) {
        int n = snprintf(buf, sizeof buf, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
                         crv, x, y);
        uint8_t md[SHA256_DIGEST_LENGTH];
        SHA256((const uint8_t *)buf, (size_t)n, md);
        rc = b64url(md, sizeof md, out, cap);
    }
    json_decref(j);
    return rc;
}

static int from_jwk(const char *text, struct sign_key *k, struct agentd_error *e)
{
    json_t *j = json_loads(text, 0, NULL);
    const char *kid = json_string_value(json_object_get(j, "kid"));
    int rc = 0;
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "d")) ||
        !jwt_jwk_members_ok(j))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY", "AGENTD_SIGNING_KEY: not "
                         "a private JWK (a JSON object with \"d\")");
    else if (kid && (strlen(kid) >= sizeof k->kid || !*kid))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY",
                         "AGENTD_SIGNING_KEY: kid must be 1-%zu characters", sizeof k->kid - 1);
    cjose_err err;
    if (rc == 0 && !(k->jwk = cjose_jwk_import(text, strlen(text), &err)))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY",
                         "AGENTD_SIGNING_KEY: not a usable JWK");
    if (rc == 0 && kid)
        snprintf(k->kid, sizeof k->kid, "%s", kid);
    json_decref(j);
    return rc;
}

static int from_pem(const char *text, struct sign_key *k, struct agentd_error *e)
{
    BIO *bio = BIO_new_mem_buf(text, -1);
    EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    uint8_t d[32], pub[65];
    size_t publen = 0;
    char group[32] = "";
    BIGNUM *bn = NULL;
    int ok = pk && EVP_PKEY_is_a(pk, "EC") &&
             EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            NULL) &&
             strcmp(group, "prime256v1") == 0 &&
             EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn) &&
             BN_bn2binpad(bn, d, sizeof d) == sizeof d &&
             EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub,
                                             &publen) &&
             publen == sizeof pub && pub[0] == 4;
    BN_clear_free(bn);
    EVP_PKEY_free(pk);
    int rc = 0;
    if (!ok) {
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY",
                         "AGENTD_SIGNING_KEY: not an EC P-256 private key (a JWK or PEM)");
    } else {
        cjose_jwk_ec_keyspec spec = { .crv = CJOSE_JWK_EC_P_256, .d = d, .dlen = 32,
                                      .x = pub + 1, .xlen = 32, .y = pub + 33, .ylen = 32 };
        cjose_err err;
        if (!(k->jwk = cjose_jwk_create_EC_spec(&spec, &err)))
            rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY",
                             "AGENTD_SIGNING_KEY: not a usable EC key");
    }
    OPENSSL_cleanse(d, sizeof d);
    return rc;
}

int sign_key_load(const char *text, struct sign_key **out, struct agentd_error *e)
{
    struct sign_key *k = calloc(1, sizeof *k);
    if (!k)
        return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    int rc = 0;
    cjose_err err;
    const char *t = text;
    while (t && (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r'))
        t++;
    if (!text) {
        k->ephemeral = 1;
        if (!(k->jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err)))
            rc = agentd_fail(e, AGENTD_EINTERNAL, NULL, NULL, "cannot create a signing key");
    } else if (*t == '{') {
        rc = from_jwk(t, k, e);
    } else {
        rc = from_pem(t, k, e);
    }
    if (rc == 0 && (cjose_jwk_get_kty(k->jwk, &err) != CJOSE_JWK_KTY_EC ||
                    cjose_jwk_EC_get_curve(k->jwk, &err) != CJOSE_JWK_EC_P_256))
        rc = agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_SIGNING_KEY",
                         "AGENTD_SIGNING_KEY: must be an EC P-256 key (ES256)");
    if (rc == 0 && !k->kid[0] && thumbprint(k->jwk, k->kid, sizeof k->kid) != 0)
        rc = agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
    if (rc) {
        sign_key_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

json_t *sign_key_public_jwk(const struct sign_key *k)
{
    json_t *j = public_members(k->jwk);
    if (j && (json_object_set_new(j, "kid", json_string(k->kid)) ||
              json_object_set_new(j, "use", json_string("sig")) ||
              json_object_set_new(j, "alg", json_string("ES256")))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

int sign_detached(const struct sign_key *k, const void *body, size_t len, char **out)
{
    cjose_err err;
    cjose_header_t *h = cjose_header_new(&err);
    if (!h)
        return AGENTD_ENOMEM;
    cjose_jws_t *jws = NULL;
    int rc = AGENTD_EINTERNAL;
    if (cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err) &&
        cjose_header_set(h, CJOSE_HDR_KID, k->kid, &err) &&
        (jws = cjose_jws_sign(k->jwk, h, body, len, &err)) != NULL) {
        const char *compact = NULL;
        if (cjose_jws_export(jws, &compact, &err)) {
            /* header.payload.signature -> header..signature */
            const char *p1 = strchr(compact, '.');
            const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
            if (p2 && asprintf(out, "%.*s.%s", (int)(p1 - compact), compact, p2) >= 0)
                rc = 0;
            else if (p2)
                rc = AGENTD_ENOMEM;
        }
    }
    cjose_jws_release(jws);
    cjose_header_release(h);
    return rc;
}

int sign_verify_detached(const json_t *jwk, const char *sig, const void *body, size_t len)
{
    const char *p1 = sig ? strstr(sig, "..") : NULL;
    if (!p1 || strchr(p1 + 2, '.'))
        return 0;
    char *jt = jwt_jwk_members_ok((json_t *)jwk) ? json_dumps(jwk, JSON_COMPACT) : NULL;
    cjose_err err;
    cjose_jwk_t *k = jt ? cjose_jwk_import(jt, strlen(jt), &err) : NULL;
    free(jt);
    char *payload = NULL, *compact = NULL;
    size_t plen = 0;
    int ok = 0;
    if (k && cjose_base64url_encode(body, len, &payload, &plen, &err) &&
        asprintf(&compact, "%.*s.%s%s", (int)(p1 - sig), sig, payload, p1 + 1) >= 0) {
        cjose_jws_t *jws = cjose_jws_import(compact, strlen(compact), &err);
        ok = jws && cjose_jws_verify(jws, k, &err);
        cjose_jws_release(jws);
    }
    free(compact);
    cjose_free(payload);
    cjose_jwk_release(k);
    return ok;
}
