/* auth/jwt: JWKS parsing and token verification — the valid RS256, ES256 and
 * HS256 cases and every forged one (alg none, HS/RS confusion, unknown kid,
 * wrong iss/aud, expired, nbf ahead, bad signature, malformed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>

#include "auth/auth.h"
#include "auth/jwt.h"

#define NOW 1800000000LL
#define SECRET "0123456789abcdef0123456789abcdef"

static cjose_jwk_t *rsa, *ec, *rsa_other;
static struct jwt_keyset *ks;
static const struct jwt_policy policy = { "https://idp.test", "agentd", SECRET, JWT_SKEW_S };

/* a JWKS with the public halves of rsa (kid r1) and ec (kid e1) */
static char *public_jwks(void)
{
    cjose_err err;
    json_t *keys = json_array();
    cjose_jwk_t *pair[] = { rsa, ec };
    const char *kids[] = { "r1", "e1" };
    for (int i = 0; i < 2; i++) {
        char *pub = cjose_jwk_to_json(pair[i], false, &err);
        json_t *k = json_loads(pub, 0, NULL);
        json_object_set_new(k, "kid", json_string(kids[i]));
        json_array_append_new(keys, k);
        free(pub);
    }
    /* skipped: an oct key (never from a URL), an encryption key, garbage */
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s}", "kty", "oct", "kid", "o1", "k",
                                          "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"));
    char *pub = cjose_jwk_to_json(rsa_other, false, &err);
    json_t *enc = json_loads(pub, 0, NULL);
    free(pub);
    json_object_set_new(enc, "kid", json_string("enc1"));
    json_object_set_new(enc, "use", json_string("enc"));
    json_array_append_new(keys, enc);
    json_array_append_new(keys, json_string("not a key"));
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    return text;
}

static int setup(void **state)
{
    (void)state;
    cjose_err err;
    static const uint8_t e65537[] = { 1, 0, 1 };
    rsa = cjose_jwk_create_RSA_random(2048, e65537, 3, &err);
    rsa_other = cjose_jwk_create_RSA_random(2048, e65537, 3, &err);
    ec = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    char *text = public_jwks();
    struct agentd_error e = { 0 };
    int rc = jwt_keyset_parse(text, strlen(text), &ks, &e);
    free(text);
    return rc || !rsa || !ec || !rsa_other;
}

static int teardown(void **state)
{
    (void)state;
    jwt_keyset_free(ks);
    cjose_jwk_release(rsa);
    cjose_jwk_release(rsa_other);
    cjose_jwk_release(ec);
    return 0;
}

static char *claims_text(const char *iss, const char *aud, const char *sub, long long exp,
                         long long nbf, const char *scope)
{
    json_t *c = json_object();
    if (iss)
        json_object_set_new(c, "iss", json_string(iss));
    if (aud)
        json_object_set_new(c, "aud", json_string(aud));
    if (sub)
        json_object_set_new(c, "sub", json_string(sub));
    if (exp)
        json_object_set_new(c, "exp", json_integer(exp));
    if (nbf)
        json_object_set_new(c, "nbf", json_integer(nbf));
    if (scope)
        json_object_set_new(c, "scope", json_string(scope));
    json_object_set_new(c, "iat", json_integer(NOW - 10));
    char *t = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return t;
}

/* signs claims with key under alg/kid; returns an allocated compact JWS */
static char *sign(cjose_jwk_t *key, const char *alg, const char *kid, const char *claims)
{
    cjose_err err;
    cjose_header_t *h = cjose_header_new(&err);
    cjose_header_set(h, CJOSE_HDR_ALG, alg, &err);
    if (kid)
        cjose_header_set(h, CJOSE_HDR_KID, kid, &err);
    cjose_jws_t *jws = cjose_jws_sign(key, h, (const uint8_t *)claims, strlen(claims), &err);
    const char *out = NULL;
    char *copy = jws && cjose_jws_export(jws, &out, &err) ? strdup(out) : NULL;
    cjose_jws_release(jws);
    cjose_header_release(h);
    assert_non_null(copy);
    return copy;
}

static char *good_claims(void)
{
    return claims_text("https://idp.test", "agentd", "user-1", NOW + 300, 0, NULL);
}

static int verify(const char *token, struct jwt_identity *id, struct agentd_error *e)
{
    memset(e, 0, sizeof *e);
    return jwt_verify(token, ks, &policy, NOW, id, e);
}

static void test_keyset(void **state)
{
    (void)state;
    assert_int_equal(jwt_keyset_count(ks), 2); /* r1 and e1; oct, enc and garbage skipped */
    struct jwt_keyset *bad = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(jwt_keyset_parse("{\"nokeys\":1}", 12, &bad, &e), AGENTD_EINVAL);
    assert_null(bad);
    assert_int_equal(jwt_keyset_parse("<html>", 6, &bad, &e), AGENTD_EINVAL);
}

static void test_valid_tokens(void **state)
{
    (void)state;
    char *c = good_claims();
    struct jwt_identity id;
    struct agentd_error e;
    char *rs = sign(rsa, "RS256", "r1", c);
    assert_int_equal(verify(rs, &id, &e), 0);
    assert_string_equal(id.principal, "user-1");
    assert_int_equal(id.scopes, AUTH_SCOPES_DEFAULT);
    char *es = sign(ec, "ES256", "e1", c);
    assert_int_equal(verify(es, &id, &e), 0);
    assert_string_equal(id.principal, "user-1");
    cjose_err err;
    cjose_jwk_t *hs = cjose_jwk_create_oct_spec((const uint8_t *)SECRET, strlen(SECRET), &err);
    char *h = sign(hs, "HS256", NULL, c);
    assert_int_equal(verify(h, &id, &e), 0);
    /* no kid: every key of the alg's type is tried */
    char *nokid = sign(rsa, "RS256", NULL, c);
    assert_int_equal(verify(nokid, &id, &e), 0);
    /* aud as an array; scopes from the claim */
    char *c2 = claims_text("https://idp.test", NULL, "svc", NOW + 300, NOW - 5, "openid ucp admin");
    json_t *j = json_loads(c2, 0, NULL);
    json_object_set_new(j, "aud", json_pack("[ss]", "other", "agentd"));
    free(c2);
    c2 = json_dumps(j, 0);
    json_decref(j);
    char *arr = sign(rsa, "RS256", "r1", c2);
    assert_int_equal(verify(arr, &id, &e), 0);
    assert_int_equal(id.scopes, AUTH_SCOPE_UCP | AUTH_SCOPE_ADMIN);
    /* expired, but within the skew */
    char *c3 = claims_text("https://idp.test", "agentd", "u", NOW - 30, 0, NULL);
    char *skew = sign(rsa, "RS256", "r1", c3);
    assert_int_equal(verify(skew, &id, &e), 0);
    cjose_jwk_release(hs);
    free(c), free(c2), free(c3), free(rs), free(es), free(h), free(nokid), free(arr), free(skew);
}

static char *b64(const char *s)
{
    char *out = NULL;
    size_t n;
    cjose_err err;
    cjose_base64url_encode((const uint8_t *)s, strlen(s), &out, &n, &err);
    return out;
}

static void test_alg_none_and_unknown_algs(void **state)
{
    (void)state;
    char *c = good_claims();
    char *payload = b64(c);
    const char *headers[] = { "{\"alg\":\"none\"}", "{\"alg\":\"None\",\"kid\":\"r1\"}",
                              "{\"alg\":\"RS512\",\"kid\":\"r1\"}", "{\"kid\":\"r1\"}" };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *h = b64(headers[i]);
        char tok[2048];
        /* with an empty signature, and with a bogus one */
        for (int sig = 0; sig < 2; sig++) {
            snprintf(tok, sizeof tok, "%s.%s.%s", h, payload, sig ? "c2ln" : "");
            struct jwt_identity id;
            struct agentd_error e;
            assert_int_equal(verify(tok, &id, &e), AGENTD_EINVAL);
            assert_string_equal(id.principal, "");
        }
        free(h);
    }
    free(payload);
    free(c);
}

static void test_algorithm_confusion(void **state)
{
    (void)state;
    char *c = good_claims();
    struct jwt_identity id;
    struct agentd_error e;
    cjose_err err;
    /* HS256 keyed with the RSA public key's bytes, pointing at the RSA kid */
    char *pub = cjose_jwk_to_json(rsa, false, &err);
    cjose_jwk_t *forged = cjose_jwk_create_oct_spec((const uint8_t *)pub, strlen(pub), &err);
    char *t = sign(forged, "HS256", "r1", c);
    assert_int_equal(verify(t, &id, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "bad_signature");
    /* without a configured secret HS256 is refused outright */
    struct jwt_policy nohs = policy;
    nohs.hs256_secret = NULL;
    assert_int_equal(jwt_verify(t, ks, &nohs, NOW, &id, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "unsupported_alg");
    /* an ES256 token naming the RSA key, an RS256 token naming the EC key */
    char *es_on_rsa = sign(ec, "ES256", "r1", c);
    assert_int_equal(verify(es_on_rsa, &id, &e), AGENTD_ENOTFOUND);
    char *rs_on_ec = sign(rsa, "RS256", "e1", c);
    assert_int_equal(verify(rs_on_ec, &id, &e), AGENTD_ENOTFOUND);
    /* the oct key of the JWKS (skipped) never verifies anything */
    cjose_jwk_t *oct = cjose_jwk_create_oct_spec((const uint8_t *)"secretsecretsecretsecret", 24, &err);
    char *o = sign(oct, "HS256", "o1", c);
    assert_int_equal(verify(o, &id, &e), AGENTD_EINVAL);
    cjose_jwk_release(forged);
    cjose_jwk_release(oct);
    free(pub), free(t), free(es_on_rsa), free(rs_on_ec), free(o), free(c);
}

static void test_unknown_kid_and_bad_signature(void **state)
{
    (void)state;
    char *c = good_claims();
    struct jwt_identity id;
    struct agentd_error e;
    char *unknown = sign(rsa_other, "RS256", "r2", c);
    assert_int_equal(verify(unknown, &id, &e), AGENTD_ENOTFOUND);
    assert_string_equal(e.code, "unknown_kid");
    assert_int_equal(jwt_verify(unknown, NULL, &policy, NOW, &id, &e), AGENTD_ENOTFOUND);
    /* the right kid, another key's signature */
    char *wrongkey = sign(rsa_other, "RS256", "r1", c);
    assert_int_equal(verify(wrongkey, &id, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "bad_signature");
    /* a valid token with its payload swapped */
    char *good = sign(rsa, "RS256", "r1", c);
    char *other = claims_text("https://idp.test", "agentd", "admin", NOW + 300, 0, "admin");
    char *p2 = b64(other);
    char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char tampered[4096];
    snprintf(tampered, sizeof tampered, "%.*s.%s%s", (int)(d1 - good), good, p2, d2);
    assert_int_equal(verify(tampered, &id, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "bad_signature");
    /* a flipped signature byte */
    good[strlen(good) - 5] ^= 1;
    assert_int_equal(verify(good, &id, &e), AGENTD_EINVAL);
    free(unknown), free(wrongkey), free(good), free(other), free(p2), free(c);
}

static void expect_claims_refused(const char *claims, const char *code)
{
    char *t = sign(rsa, "RS256", "r1", claims);
    struct jwt_identity id;
    struct agentd_error e;
    assert_int_equal(verify(t, &id, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, code);
    free(t);
}

static void test_claims(void **state)
{
    (void)state;
    const char *iss = "https://idp.test";
    struct {
        char *claims;
        const char *code;
    } cases[] = {
        { claims_text("https://evil.test", "agentd", "u", NOW + 300, 0, NULL), "wrong_issuer" },
        { claims_text(NULL, "agentd", "u", NOW + 300, 0, NULL), "wrong_issuer" },
        { claims_text(iss, "other", "u", NOW + 300, 0, NULL), "wrong_audience" },
        { claims_text(iss, NULL, "u", NOW + 300, 0, NULL), "wrong_audience" },
        { claims_text(iss, "agentd", "u", NOW - 61, 0, NULL), "expired" },
        { claims_text(iss, "agentd", "u", 0, 0, NULL), "invalid_claims" },
        { claims_text(iss, "agentd", "u", NOW + 300, NOW + 120, NULL), "not_yet_valid" },
        { claims_text(iss, "agentd", NULL, NOW + 300, 0, NULL), "invalid_subject" },
        { claims_text(iss, "agentd", "", NOW + 300, 0, NULL), "invalid_subject" },
        { claims_text(iss, "agentd", "anonymous", NOW + 300, 0, NULL), "invalid_subject" },
        { claims_text(iss, "agentd", "a b", NOW + 300, 0, NULL), "invalid_subject" },
        { strdup("[1,2]"), "invalid_claims" },
        { strdup("not json"), "invalid_claims" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_claims_refused(cases[i].claims, cases[i].code);
        free(cases[i].claims);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = { "", "abc", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.",
                          "eyJhbGciOiJSUzI1NiJ9.!!!.c2ln", "%%%.%%%.%%%" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct jwt_identity id;
        struct agentd_error e;
        assert_int_equal(verify(bad[i], &id, &e), AGENTD_EINVAL);
    }
    char *big = malloc(JWT_MAX_TOKEN + 10);
    memset(big, 'a', JWT_MAX_TOKEN + 9);
    big[10] = big[20] = '.';
    big[JWT_MAX_TOKEN + 9] = 0;
    struct jwt_identity id;
    struct agentd_error e;
    assert_int_equal(verify(big, &id, &e), AGENTD_EINVAL);
    free(big);
}

static void test_scope_claim(void **state)
{
    (void)state;
    assert_int_equal(jwt_scopes_from_claim(NULL), AUTH_SCOPES_DEFAULT);
    assert_int_equal(jwt_scopes_from_claim("openid profile"), AUTH_SCOPES_DEFAULT);
    assert_int_equal(jwt_scopes_from_claim("chat"), AUTH_SCOPE_CHAT);
    assert_int_equal(jwt_scopes_from_claim("  a2a   chat "), AUTH_SCOPE_CHAT | AUTH_SCOPE_A2A);
    assert_int_equal(jwt_scopes_from_claim("administrator chatty"), AUTH_SCOPES_DEFAULT);
    assert_int_equal(jwt_scopes_from_claim("admin"), AUTH_SCOPE_ADMIN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyset),
        cmocka_unit_test(test_valid_tokens),
        cmocka_unit_test(test_alg_none_and_unknown_algs),
        cmocka_unit_test(test_algorithm_confusion),
        cmocka_unit_test(test_unknown_kid_and_bad_signature),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_scope_claim),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
