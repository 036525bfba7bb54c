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

/* Masks personal data inside a value: email addresses, phone numbers (8+
 * digits with spaces, dashes, parentheses or a leading +), card-like digit
 * runs and street addresses ("12 Main St", "Hauptstrasse 5") each become
 * REDACTED. out has room for len bytes (masking never lengthens a value);
 * *out_len is the masked length. Returns how many spans were masked.
 * Pure; deliberately over-broad, like the rest of this gate. */
int redact_pii(const char *in, size_t len, char *out, size_t *out_len);

/* 1 when a log field holds an id that is never masked: request_id and
 * trace_id (validated to [A-Za-z0-9._:-] before they get here), and any
 * "id" / "..._id" field whose value has the shape of our ids (id_new:
 * "prefix_" and 16+ hex digits), which may hold 13 digits in a row. A
 * client-chosen value under an _id key is checked like any other. */
int redact_key_is_id(const char *key, const char *val, size_t len);

#define REDACTED "***"

#endif
