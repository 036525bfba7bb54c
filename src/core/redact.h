/* The one redaction gate: decides what may never reach a log line.
 * Header names and JSON keys are checked case-insensitively. */
#ifndef AGENTD_CORE_REDACT_H
#define AGENTD_CORE_REDACT_H

#include <stddef.h>

/* 1 when a header or field named `key` holds a credential or payment data
 * (authorization, cookie, api key, token, secret, password, card number...). */
int redact_key_is_secret(const char *key);

/* 1 when a value looks like a credential whatever its key says (a bearer
 * token, a JWT, a long run of card-like digits). */
int redact_value_is_secret(const char *val, size_t len);

#define REDACTED "***"

#endif
