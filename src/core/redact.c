/* Redaction rules. Deliberately over-broad: a false positive costs a
 * "***" in a log, a false negative leaks a credential. */
#define _GNU_SOURCE
#include "core/redact.h"

#include <ctype.h>
#include <string.h>

static const char *const secret_parts[] = {
    "authorization", "cookie", "api-key", "api_key", "apikey", "x-api-key", "token",
    "secret", "password", "passwd", "credential", "card_number", "cardnumber", "cvc", "cvv",
    "pan", "private_key", "session-secret", "simulation-secret", "signature", NULL,
};

int redact_key_is_secret(const char *key)
{
    if (!key)
        return 0;
    for (int i = 0; secret_parts[i]; i++) {
        const char *part = secret_parts[i];
        /* "pan" only as the whole key: "company" must stay readable */
        if (strcmp(part, "pan") == 0) {
            if (strcasecmp(key, "pan") == 0)
                return 1;
            continue;
        }
        if (strcasestr(key, part))
            return 1;
    }
    return 0;
}

int redact_value_is_secret(const char *val, size_t len)
{
    if (!val)
        return 0;
    if (len >= 7 && strncasecmp(val, "bearer ", 7) == 0)
        return 1;
    if (len >= 6 && strncasecmp(val, "basic ", 6) == 0)
        return 1;
    /* a JWT: three base64url segments starting with {"  */
    if (len > 20 && strncmp(val, "eyJ", 3) == 0 && memchr(val, '.', len))
        return 1;
    /* 13-19 digits in a row (spaces/dashes allowed) look like a card number */
    int run = 0;
    for (size_t i = 0; i < len; i++) {
        if (isdigit((unsigned char)val[i])) {
            if (++run >= 13)
                return 1;
        } else if (val[i] != ' ' && val[i] != '-') {
            run = 0;
        }
    }
    return 0;
}
