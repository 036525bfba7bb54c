/* AES-256-GCM sealing with a keyring (core/seal.h): a random 96-bit nonce per
 * record, the key id in the clear so old records open after a rotation. */
#include "core/seal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define NONCE 12
#define TAG 16
#define MAX_KEYS 16

struct seal_key {
    unsigned char k[SEAL_KEY_BYTES];
    char kid[SEAL_KID_LEN + 1];
};

struct seal_keyring {
    struct seal_key keys[MAX_KEYS]; /* [0] is the current key */
    size_t n;
    int ephemeral;
};

static void key_id(struct seal_key *k)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(k->k, SEAL_KEY_BYTES, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < SEAL_KID_LEN / 2; i++)
        snprintf(k->kid + 2 * i, 3, "%02x", md[i]);
}

/* Standard base64 (with padding) of exactly want bytes; 0 or AGENTD_EINVAL. */
static int b64_decode(const char *s, size_t len, unsigned char *out, size_t cap, size_t *got)
{
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\r'))
        len--;
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    if (len == 0 || len % 4 || len / 4 * 3 > cap + 2)
        return AGENTD_EINVAL;
    unsigned char *tmp = malloc(len / 4 * 3 + 1);
    if (!tmp)
        return AGENTD_ENOMEM;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
    int rc = AGENTD_EINVAL;
    if (n >= 0) {
        size_t pad = (s[len - 1] == '=') + (s[len - 2] == '=');
        size_t m = (size_t)n - pad;
        if (m <= cap) {
            memcpy(out, tmp, m);
            *got = m;
            rc = 0;
        }
    }
    OPENSSL_cleanse(tmp, len / 4 * 3 + 1);
    free(tmp);
    return rc;
}

static int add_key(struct seal_keyring *kr, const char *s, size_t len, const char *what,
                   struct agentd_error *e)
{
    if (kr->n == MAX_KEYS)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", what, "%s: at most %d keys", what,
                           MAX_KEYS);
    struct seal_key *k = &kr->keys[kr->n];
    size_t got = 0;
    int rc = b64_decode(s, len, k->k, sizeof k->k, &got);
    if (rc == AGENTD_ENOMEM)
        return agentd_fail(e, rc, "out_of_memory", NULL, "out of memory");
    if (rc || got != SEAL_KEY_BYTES) {
        OPENSSL_cleanse(k->k, sizeof k->k);
        return agentd_fail(e, AGENTD_EINVAL, "invalid", what,
                           "%s: a key is the base64 of 32 random bytes (e.g. `openssl rand "
                           "-base64 32`)", what);
    }
    key_id(k);
    kr->n++;
    return 0;
}

int seal_keyring_new(const char *current, const char *old, struct seal_keyring **out,
                     struct agentd_error *e)
{
    *out = NULL;
    struct seal_keyring *kr = calloc(1, sizeof *kr);
    if (!kr)
        return agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    int rc = 0;
    if (current && current[0]) {
        rc = add_key(kr, current, strlen(current), "AGENTD_ENCRYPTION_KEY", e);
    } else {
        kr->ephemeral = 1;
        if (RAND_bytes(kr->keys[0].k, SEAL_KEY_BYTES) != 1)
            rc = agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "no random bytes");
        key_id(&kr->keys[0]);
        kr->n = 1;
    }
    for (const char *p = old; rc == 0 && p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len)
            rc = add_key(kr, p, len, "AGENTD_ENCRYPTION_KEYS_OLD", e);
        p = end ? end + 1 : p + len;
    }
    if (rc) {
        seal_keyring_free(kr);
        return rc;
    }
    *out = kr;
    return 0;
}

void seal_keyring_free(struct seal_keyring *kr)
{
    if (!kr)
        return;
    OPENSSL_cleanse(kr, sizeof *kr);
    free(kr);
}

const char *seal_keyring_kid(const struct seal_keyring *kr) { return kr->keys[0].kid; }
int seal_keyring_ephemeral(const struct seal_keyring *kr) { return kr->ephemeral; }

int seal_is_sealed(const char *s) { return s && strncmp(s, SEAL_PREFIX, strlen(SEAL_PREFIX)) == 0; }

int seal_is_current(const struct seal_keyring *kr, const char *s)
{
    size_t pl = strlen(SEAL_PREFIX);
    return seal_is_sealed(s) && strncmp(s + pl, kr->keys[0].kid, SEAL_KID_LEN) == 0 &&
           s[pl + SEAL_KID_LEN] == ':';
}

/* One AES-256-GCM pass; enc = 1 seals (writes tag), 0 opens (checks tag). */
static int gcm(int enc, const unsigned char *key, const unsigned char *nonce, const char *aad,
               const unsigned char *in, size_t n, unsigned char *out, unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, ok = ctx && n <= INT32_MAX &&
                      EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) &&
                      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) &&
                      EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) &&
                      EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad,
                                       (int)strlen(aad)) &&
                      (n == 0 || EVP_CipherUpdate(ctx, out, &len, in, (int)n));
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, tag);
    ok = ok && EVP_CipherFinal_ex(ctx, out + (n ? len : 0), &len);
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag);
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : AGENTD_ECORRUPT;
}

int seal_seal(const struct seal_keyring *kr, const char *aad, const void *pt, size_t n,
              char **out)
{
    *out = NULL;
    size_t raw_len = NONCE + n + TAG;
    unsigned char *raw = malloc(raw_len);
    size_t pl = strlen(SEAL_PREFIX);
    char *text = malloc(pl + SEAL_KID_LEN + 1 + (raw_len + 2) / 3 * 4 + 1);
    int rc = raw && text ? 0 : AGENTD_ENOMEM;
    if (rc == 0 && RAND_bytes(raw, NONCE) != 1)
        rc = AGENTD_ENOMEM;
    if (rc == 0 && gcm(1, kr->keys[0].k, raw, aad ? aad : "", pt, n, raw + NONCE,
                       raw + NONCE + n))
        rc = AGENTD_ENOMEM; /* encryption fails only without memory */
    if (rc == 0) {
        size_t h = (size_t)snprintf(text, pl + SEAL_KID_LEN + 2, "%s%s:", SEAL_PREFIX,
                                    kr->keys[0].kid);
        EVP_EncodeBlock((unsigned char *)text + h, raw, (int)raw_len);
        *out = text;
        text = NULL;
    }
    free(raw);
    free(text);
    return rc;
}

int seal_open(const struct seal_keyring *kr, const char *aad, const char *sealed, char **out,
              size_t *n, struct agentd_error *e)
{
    *out = NULL;
    size_t pl = strlen(SEAL_PREFIX);
    if (!seal_is_sealed(sealed) || strlen(sealed) < pl + SEAL_KID_LEN + 1 ||
        sealed[pl + SEAL_KID_LEN] != ':')
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "not a sealed value");
    const struct seal_key *k = NULL;
    for (size_t i = 0; i < kr->n && !k; i++)
        if (strncmp(sealed + pl, kr->keys[i].kid, SEAL_KID_LEN) == 0)
            k = &kr->keys[i];
    if (!k)
        return agentd_fail(e, AGENTD_ECORRUPT, "unknown_key", NULL,
                           "sealed under key %.8s, which is not configured "
                           "(AGENTD_ENCRYPTION_KEY, AGENTD_ENCRYPTION_KEYS_OLD)", sealed + pl);
    const char *b = sealed + pl + SEAL_KID_LEN + 1;
    size_t blen = strlen(b), cap = blen / 4 * 3, got = 0;
    unsigned char *raw = malloc(cap + 1);
    if (!raw)
        return agentd_fail(e, AGENTD_ENOMEM, "out_of_memory", NULL, "out of memory");
    int rc = b64_decode(b, blen, raw, cap, &got);
    if (rc == 0 && got < NONCE + TAG)
        rc = AGENTD_EINVAL;
    char *pt = NULL;
    size_t m = rc == 0 ? got - NONCE - TAG : 0;
    if (rc == 0 && !(pt = malloc(m + 1)))
        rc = AGENTD_ENOMEM;
    if (rc == 0 && gcm(0, k->k, raw, aad ? aad : "", raw + NONCE, m, (unsigned char *)pt,
                       raw + NONCE + m))
        rc = AGENTD_ECORRUPT;
    free(raw);
    if (rc) {
        if (pt)
            OPENSSL_cleanse(pt, m + 1);
        free(pt);
        if (rc == AGENTD_ENOMEM)
            return agentd_fail(e, rc, "out_of_memory", NULL, "out of memory");
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                           "a sealed value does not open (tampered, or another record's)");
    }
    pt[m] = '\0';
    *out = pt;
    if (n)
        *n = m;
    return 0;
}
