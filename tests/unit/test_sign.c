/* The signing key: an ephemeral key, a PEM and a JWK load; a detached JWS
 * verifies against the published public JWK and fails on any change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/sign.h"

/* a throwaway test key, generated for this file */
static const char pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyZDzp8EjbZc3YCBr\n"
    "MYCR1iWEsxMcsc4OxT/CSoUSt4+hRANCAASEwwYPld5c0p6blx2+/OE9qD+CyGlQ\n"
    "IqjfT1z3mxnoTQVJmUChxdT3+h5/Id8HXEzfBvaJFR6Pu+QgmeANOztG\n"
    "-----END PRIVATE KEY-----\n";

static void sign_and_check(struct sign_key *k)
{
    const char body[] = "{\"event_type\":\"order_placed\"}";
    char *sig = NULL;
    assert_int_equal(sign_detached(k, body, strlen(body), &sig), 0);
    assert_non_null(strstr(sig, ".."));
    json_t *jwk = sign_key_public_jwk(k);
    assert_non_null(jwk);
    assert_null(json_object_get(jwk, "d")); /* never the private part */
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")), sign_key_kid(k));
    assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "ES256");
    assert_int_equal(sign_verify_detached(jwk, sig, body, strlen(body)), 1);
    const char other[] = "{\"event_type\":\"order_placed \"}";
    assert_int_equal(sign_verify_detached(jwk, sig, other, strlen(other)), 0);
    sig[strlen(sig) - 2] ^= 1;
    assert_int_equal(sign_verify_detached(jwk, sig, body, strlen(body)), 0);
    json_decref(jwk);
    free(sig);
}

static void test_ephemeral(void **state)
{
    (void)state;
    struct sign_key *a = NULL, *b = NULL;
    assert_int_equal(sign_key_load(NULL, &a, NULL), 0);
    assert_int_equal(sign_key_load(NULL, &b, NULL), 0);
    assert_true(sign_key_ephemeral(a));
    assert_string_not_equal(sign_key_kid(a), sign_key_kid(b));
    sign_and_check(a);
    /* a's signature does not verify under b's key */
    char *sig = NULL;
    assert_int_equal(sign_detached(a, "x", 1, &sig), 0);
    json_t *jb = sign_key_public_jwk(b);
    assert_int_equal(sign_verify_detached(jb, sig, "x", 1), 0);
    json_decref(jb);
    free(sig);
    sign_key_free(a);
    sign_key_free(b);
}

static void test_pem_and_jwk(void **state)
{
    (void)state;
    struct sign_key *k = NULL;
    assert_int_equal(sign_key_load(pem, &k, NULL), 0);
    assert_false(sign_key_ephemeral(k));
    assert_int_equal(strlen(sign_key_kid(k)), 43); /* a SHA-256 thumbprint */
    sign_and_check(k);
    char kid[96];
    strcpy(kid, sign_key_kid(k));
    sign_key_free(k);
    /* the same PEM gives the same kid: a verifier's key survives restarts */
    assert_int_equal(sign_key_load(pem, &k, NULL), 0);
    assert_string_equal(sign_key_kid(k), kid);
    sign_key_free(k);

    struct sign_key *r = NULL;
    assert_int_equal(sign_key_load(NULL, &r, NULL), 0);
    json_t *pub = sign_key_public_jwk(r);
    char *text = json_dumps(pub, 0);
    struct agentd_error e = { 0 };
    assert_int_equal(sign_key_load(text, &k, &e), AGENTD_EINVAL); /* public only */
    assert_non_null(strstr(e.msg, "private"));
    free(text);
    json_decref(pub);
    sign_key_free(r);

    const char jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"merchant-2026\","
                       "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                       "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","
                       "\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}";
    assert_int_equal(sign_key_load(jwk, &k, NULL), 0);
    assert_string_equal(sign_key_kid(k), "merchant-2026");
    sign_and_check(k);
    sign_key_free(k);

    assert_int_equal(sign_key_load("-----BEGIN PRIVATE KEY-----\nnope\n", &k, &e), AGENTD_EINVAL);
    assert_int_equal(sign_key_load("{\"kty\":\"oct\",\"k\":\"abc\"}", &k, &e), AGENTD_EINVAL);
    /* a member cjose would abort on (4n+1 characters) is refused first */
    assert_int_equal(sign_key_load("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"abcde\","
                                   "\"y\":\"abcd\",\"d\":\"abcd\"}", &k, &e), AGENTD_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ephemeral),
        cmocka_unit_test(test_pem_and_jwk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
