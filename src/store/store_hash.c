/* The store's digests: an API key's stored hash and an idempotent request's
 * fingerprint, both SHA-256 in lowercase hex. */
#include "store/store.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

static void hex(const unsigned char *md, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = 0;
}

/* SHA-256 fetched once: EVP_sha256() in a digest init makes OpenSSL 3
 * look the implementation up again (locks, property queries) on every call,
 * which cost more than hashing a request's few hundred bytes. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static void sha256_fetch(void) { sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

/* SHA-256 over the parts in order. OpenSSL only fails here without memory;
 * an all-zero digest then can match no real key or request. */
static void sha256_hex(const void *const *parts, const size_t *lens, int nparts, char out[65])
{
    unsigned char md[32] = { 0 };
    pthread_once(&sha256_once, sha256_fetch);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, sha256_md ? sha256_md : EVP_sha256(), NULL)) {
        int ok = 1;
        for (int i = 0; i < nparts && ok; i++)
            ok = EVP_DigestUpdate(ctx, parts[i], lens[i]);
        if (!ok || !EVP_DigestFinal_ex(ctx, md, NULL))
            memset(md, 0, sizeof md);
    }
    EVP_MD_CTX_free(ctx);
    hex(md, out);
}

void store_apikey_hash(const char *secret, char out[65])
{
    const void *parts[] = { secret };
    size_t lens[] = { strlen(secret) };
    sha256_hex(parts, lens, 1, out);
}

void store_idem_fingerprint(const char *method, const char *path, const void *body,
                            size_t body_len, char out[65])
{
    const void *parts[] = { method, "\n", path, "\n", body ? body : "" };
    size_t lens[] = { strlen(method), 1, strlen(path), 1, body ? body_len : 0 };
    sha256_hex(parts, lens, 5, out);
}
