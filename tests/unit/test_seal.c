/* seal: AES-256-GCM round trip, wrong key, tampering, AAD mismatch, rotation
 * with an old key, and key parsing (core/seal.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/seal.h"

/* base64 of 32 bytes each */
#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA="

static struct seal_keyring *ring(const char *cur, const char *old)
{
    struct seal_keyring *kr = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(seal_keyring_new(cur, old, &kr, &e), 0);
    assert_non_null(kr);
    return kr;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct seal_keyring *kr = ring(KEY_A, NULL);
    assert_int_equal(strlen(seal_keyring_kid(kr)), SEAL_KID_LEN);
    assert_false(seal_keyring_ephemeral(kr));
    const char *msg = "{\"token\":\"tok_secret_4242\"}";
    char *s = NULL, *p = NULL, *s2 = NULL;
    size_t n = 0;
    assert_int_equal(seal_seal(kr, "chk_1", msg, strlen(msg), &s), 0);
    assert_true(seal_is_sealed(s));
    assert_true(seal_is_current(kr, s));
    assert_null(strstr(s, "tok_secret"));
    assert_int_equal(seal_open(kr, "chk_1", s, &p, &n, NULL), 0);
    assert_string_equal(p, msg);
    assert_int_equal(n, strlen(msg));
    /* a fresh nonce each time: the same text never seals the same way */
    assert_int_equal(seal_seal(kr, "chk_1", msg, strlen(msg), &s2), 0);
    assert_string_not_equal(s, s2);
    free(p);
    free(s2);
    p = NULL;
    assert_int_equal(seal_seal(kr, "chk_1", "", 0, &s2), 0);
    assert_int_equal(seal_open(kr, "chk_1", s2, &p, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_string_equal(p, "");
    free(p);
    free(s);
    free(s2);
    seal_keyring_free(kr);
}

static void test_wrong_key_and_aad(void **state)
{
    (void)state;
    struct seal_keyring *a = ring(KEY_A, NULL), *b = ring(KEY_B, NULL);
    char *s = NULL, *p = NULL;
    assert_int_equal(seal_seal(a, "chk_1", "secret", 6, &s), 0);
    struct agentd_error e = { 0 };
    assert_int_equal(seal_open(b, "chk_1", s, &p, NULL, &e), AGENTD_ECORRUPT);
    assert_string_equal(e.code, "unknown_key");
    assert_null(p);
    /* the same key id but another key (a forged kid) must fail too */
    char *forged = strdup(s);
    memcpy(forged + strlen(SEAL_PREFIX), seal_keyring_kid(b), SEAL_KID_LEN);
    assert_int_equal(seal_open(b, "chk_1", forged, &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_null(p);
    /* sealed for one record, read as another's */
    assert_int_equal(seal_open(a, "chk_2", s, &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_null(p);
    free(forged);
    free(s);
    seal_keyring_free(a);
    seal_keyring_free(b);
}

static void test_tampered(void **state)
{
    (void)state;
    struct seal_keyring *kr = ring(KEY_A, NULL);
    char *s = NULL, *p = NULL;
    assert_int_equal(seal_seal(kr, "x", "payment data here", 17, &s), 0);
    size_t len = strlen(s);
    /* flip a character in the ciphertext part (base64 stays valid) */
    size_t at = strlen(SEAL_PREFIX) + SEAL_KID_LEN + 1 + 20;
    s[at] = s[at] == 'A' ? 'B' : 'A';
    assert_int_equal(seal_open(kr, "x", s, &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_null(p);
    /* truncated, garbage, not sealed */
    s[len - 8] = '\0';
    assert_int_equal(seal_open(kr, "x", s, &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_int_equal(seal_open(kr, "x", "seal1:zz", &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_int_equal(seal_open(kr, "x", "plain", &p, NULL, NULL), AGENTD_ECORRUPT);
    assert_false(seal_is_sealed("plain"));
    free(s);
    seal_keyring_free(kr);
}

static void test_rotation(void **state)
{
    (void)state;
    struct seal_keyring *old = ring(KEY_A, NULL);
    char *s = NULL, *p = NULL;
    assert_int_equal(seal_seal(old, "chk_9", "tok", 3, &s), 0);
    /* the new ring: B current, A kept for reading */
    struct seal_keyring *kr = ring(KEY_B, " " KEY_A);
    assert_false(seal_is_current(kr, s));
    assert_int_equal(seal_open(kr, "chk_9", s, &p, NULL, NULL), 0);
    assert_string_equal(p, "tok");
    char *s2 = NULL;
    assert_int_equal(seal_seal(kr, "chk_9", p, strlen(p), &s2), 0);
    assert_true(seal_is_current(kr, s2));
    /* once re-sealed, the old key is no longer needed */
    struct seal_keyring *only_b = ring(KEY_B, NULL);
    free(p);
    p = NULL;
    assert_int_equal(seal_open(only_b, "chk_9", s2, &p, NULL, NULL), 0);
    assert_string_equal(p, "tok");
    free(p);
    free(s);
    free(s2);
    seal_keyring_free(old);
    seal_keyring_free(kr);
    seal_keyring_free(only_b);
}

static void test_bad_keys_and_ephemeral(void **state)
{
    (void)state;
    struct seal_keyring *kr = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(seal_keyring_new("c2hvcnQ=", NULL, &kr, &e), AGENTD_EINVAL);
    assert_null(kr);
    assert_non_null(strstr(e.msg, "AGENTD_ENCRYPTION_KEY"));
    assert_null(strstr(e.msg, "c2hvcnQ"));
    assert_int_equal(seal_keyring_new(KEY_A, KEY_B ",not base64!", &kr, &e), AGENTD_EINVAL);
    assert_non_null(strstr(e.msg, "AGENTD_ENCRYPTION_KEYS_OLD"));
    assert_int_equal(seal_keyring_new(NULL, NULL, &kr, &e), 0);
    assert_true(seal_keyring_ephemeral(kr));
    char *s = NULL, *p = NULL;
    assert_int_equal(seal_seal(kr, "a", "x", 1, &s), 0);
    assert_int_equal(seal_open(kr, "a", s, &p, NULL, NULL), 0);
    assert_string_equal(p, "x");
    free(p);
    free(s);
    seal_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_wrong_key_and_aad),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_bad_keys_and_ephemeral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
