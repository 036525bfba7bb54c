/* redact_key_is_secret's one-pass match against the strcasestr scan it
 * replaced (the reference below): the same verdict for every part in any
 * case and position, near misses, "pan" alone, long and non-ASCII keys. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/redact.h"

static const char *const parts[] = {
    "authorization", "cookie", "api-key", "api_key", "apikey", "x-api-key", "token",
    "secret", "password", "passwd", "credential", "card_number", "cardnumber", "cvc", "cvv",
    "pan", "private_key", "session-secret", "simulation-secret", "signature", NULL,
};

static int reference(const char *key)
{
    if (!key)
        return 0;
    for (int i = 0; parts[i]; i++) {
        if (strcmp(parts[i], "pan") == 0) {
            if (strcasecmp(key, "pan") == 0)
                return 1;
            continue;
        }
        if (strcasestr(key, parts[i]))
            return 1;
    }
    return 0;
}

static void check(const char *key)
{
    if (redact_key_is_secret(key) != reference(key))
        fail_msg("key \"%s\": %d, the scan says %d", key ? key : "(null)", redact_key_is_secret(key),
                 reference(key));
}

static void test_same_verdict_as_the_scan(void **state)
{
    (void)state;
    static const char *const plain[] = {
        "request_id", "principal", "method", "route", "status", "duration_ms", "remote",
        "bytes", "code", "company", "span", "pan", "PAN", "Pan", "pans", "", "toke", "tokn",
        "cv", "secre", "api", "apikE", "X-Api-KEY", "Authorization", "AGENTD_LLM_API_KEY",
        "SiMuLaTiOn-SeCrEt", "card-number", "card_numbe", "x", "\xc3\xa9token", "tok\xc3\xa9n",
        "sign", "signatur", "a_credential_b", "passwdx", "ppassword", "tokentoken",
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        check(plain[i]);
    check(NULL);
    /* each part alone, upper-cased, inside other text, and cut short */
    for (int i = 0; parts[i]; i++) {
        char k[96];
        size_t n = strlen(parts[i]);
        check(parts[i]);
        for (size_t j = 0; j < n; j++)
            k[j] = (char)(parts[i][j] >= 'a' && parts[i][j] <= 'z' ? parts[i][j] - 32 : parts[i][j]);
        k[n] = '\0';
        check(k);
        snprintf(k, sizeof k, "my_%s_field", parts[i]);
        check(k);
        snprintf(k, sizeof k, "%s%s", parts[i], parts[i]);
        check(k);
        snprintf(k, sizeof k, "%.*s", (int)n - 1, parts[i]);
        check(k);
        snprintf(k, sizeof k, "zz%s", parts[i] + 1);
        check(k);
    }
    /* keys longer than the lowering buffer: a part at the very end counts */
    char longk[600];
    memset(longk, 'q', sizeof longk - 1);
    longk[sizeof longk - 1] = '\0';
    check(longk);
    memcpy(longk + sizeof longk - 1 - 5, "TOKEN", 5);
    check(longk);
    assert_true(redact_key_is_secret(longk));
    for (size_t len = 250; len < 260; len++) { /* around the buffer's edge */
        char k[300];
        memset(k, 'q', len);
        memcpy(k + len - 3, "cvc", 3);
        k[len] = '\0';
        check(k);
        assert_true(redact_key_is_secret(k));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_verdict_as_the_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
