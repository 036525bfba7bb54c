/* Sealing secrets at rest (payment credentials): AES-256-GCM with a keyring —
 * one current key that seals, older keys that still open records sealed before a rotation. */
#ifndef AGENTD_CORE_SEAL_H
#define AGENTD_CORE_SEAL_H

#include <stddef.h>

#include "core/err.h"

#define SEAL_KEY_BYTES 32
#define SEAL_KID_LEN 8 /* hex digits: the first 4 bytes of SHA-256(key) */
#define SEAL_PREFIX "seal1:"

struct seal_keyring;

/* current: the base64 of a 32-byte key; NULL or "" = an ephemeral random key
 * (development: what it sealed is unreadable after the process ends).
 * old: comma-separated base64 keys that only open (NULL/"" = none).
 * 0, AGENTD_EINVAL (a key is not base64 of 32 bytes; e says which, never the
 * key) or AGENTD_ENOMEM. */
int seal_keyring_new(const char *current, const char *old, struct seal_keyring **out,
                     struct agentd_error *e);
void seal_keyring_free(struct seal_keyring *kr);
/* The current key's id (SEAL_KID_LEN hex digits). */
const char *seal_keyring_kid(const struct seal_keyring *kr);
int seal_keyring_ephemeral(const struct seal_keyring *kr);

/* Seals n bytes under the current key, bound to aad (e.g. the record's id:
 * a sealed value moved to another record does not open). *out is
 * "seal1:<kid>:<base64(nonce 12 | ciphertext | tag 16)>" (free()).
 * 0 or AGENTD_ENOMEM. */
int seal_seal(const struct seal_keyring *kr, const char *aad, const void *pt, size_t n,
              char **out);
/* Opens what seal_seal made, with whichever key of the ring has its id.
 * *out is NUL-terminated (free(); cleanse first if it matters), *n its
 * length (n may be NULL). AGENTD_ECORRUPT when the text is malformed, its
 * key is not in the ring, or it fails authentication (tampered, wrong aad,
 * wrong key); AGENTD_ENOMEM. */
int seal_open(const struct seal_keyring *kr, const char *aad, const char *sealed, char **out,
              size_t *n, struct agentd_error *e);
/* 1 if s looks sealed (has the prefix). */
int seal_is_sealed(const char *s);
/* 1 if s is sealed under the current key. */
int seal_is_current(const struct seal_keyring *kr, const char *s);

#endif
