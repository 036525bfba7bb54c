/* Fuzz target: JWT bearer tokens (auth/jwt.c), which an outsider sends on
 * every request once AGENTD_OIDC_ISSUER is set. The first byte picks what the
 * rest is: 't' a token verified against a fixed key set and HS256 secret (the
 * corpus holds one valid token per algorithm), anything else a JWKS document. */
#include "fuzz.h"
#include "auth/jwt.h"
#include "core/err.h"

#include <string.h>

/* One RSA and one EC P-256 signing key (kids rsa1, ec1): the public halves
 * of the keys that signed the corpus's rs256 and es256 seeds. */
static const char JWKS[] = "{\"keys\":[{\"kty\":\"RSA\",\"key_ops\":[\"verify\"],\"n\":\"wCqBlC9RvYsyDqsREXAI56dkMdzWZJ-4nhSqPDv0lOYXAUjzXeFze1E1fcR-Z-uBcdCSanhAd7Bop-ZdNtHU6Yk48-MsPgeoPLlXsBGmyAE791IX6ID8PFkdUdA9rHnRWWKNBUKvGx_zhEwHp5UsI-NpQrxfad2KIFPWdM7zmHI7IW9pALcrmEmweF_v6vXUgppxuS0IuZ2RVpqv_N2wZcL-BW6Rdyi8eCSt6wMqdJjGJblimyM3vTGEld9ixBo_FV03Nlhyh85mFYRxNx_PSNM1lfSb9jTU0BbhUxSnStil1_zXYTsAHNxOgDXKL0I1NreIDRbusTlxPuq3P0FMRw\",\"e\":\"AQAB\",\"kid\":\"rsa1\",\"use\":\"sig\",\"alg\":\"RS256\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"P1mrOa5j5yFeo-1zVJDNaWHP2hpQ7tGS7sP_vO5acEQ\",\"y\":\"8993N8OyYvU5Ryirc4CA59cNoUiI8av96vsff7S4fes\",\"kid\":\"ec1\",\"use\":\"sig\",\"alg\":\"ES256\"}]}";
static const char SECRET[] = "fuzz-secret-of-at-least-32-bytes!!";
#define NOW 1800000000 /* the seeds' exp is 1900000000 */

static void check_token(const char *token, size_t len)
{
    static struct jwt_keyset *ks;
    if (!ks) {
        struct agentd_error e;
        FUZZ_CHECK(jwt_keyset_parse(JWKS, strlen(JWKS), &ks, &e) == 0);
        FUZZ_CHECK(jwt_keyset_count(ks) == 2);
    }
    const struct jwt_policy p = { "https://idp.fuzz", "agentd", SECRET, JWT_SKEW_S };
    struct jwt_identity id;
    struct agentd_error e = { 0 };
    int rc = jwt_verify(token, ks, &p, NOW, &id, &e);
    FUZZ_CHECK(rc == 0 || rc == AGENTD_EINVAL || rc == AGENTD_ENOTFOUND || rc == AGENTD_ENOMEM);
    if (rc == 0) {
        size_t n = strlen(id.principal);
        FUZZ_CHECK(n > 0 && n < sizeof id.principal);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(id.principal[i] > 0x20 && id.principal[i] < 0x7f);
        return;
    }
    if (rc == AGENTD_EINVAL)
        FUZZ_CHECK(e.msg[0] != 0);
    /* a refusal never quotes the token back (it would reach a log line) */
    if (len >= 24)
        FUZZ_CHECK(strstr(e.msg, token) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *text = malloc(size); /* NUL-terminated copy of the rest */
    FUZZ_CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    if (data[0] == 't') {
        check_token(text, strlen(text));
    } else {
        struct jwt_keyset *ks = NULL;
        struct agentd_error e = { 0 };
        int rc = jwt_keyset_parse(text, size - 1, &ks, &e);
        FUZZ_CHECK(rc == 0 || rc == AGENTD_EINVAL || rc == AGENTD_ENOMEM);
        FUZZ_CHECK((rc == 0) == (ks != NULL));
        if (rc == AGENTD_EINVAL)
            FUZZ_CHECK(e.msg[0] != 0);
        jwt_keyset_free(ks);
    }
    free(text);
    return 0;
}
