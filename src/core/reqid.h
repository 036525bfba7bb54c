/* Request ids: accept a sane client-sent X-Request-Id, otherwise make one. */
#ifndef AGENTD_CORE_REQID_H
#define AGENTD_CORE_REQID_H

#include <stddef.h>

#define REQID_MAX 128

/* 1 when s is 1..REQID_MAX characters of [A-Za-z0-9._:-]. Anything else
 * (spaces, quotes, control bytes, too long) could forge log lines. */
int reqid_valid(const char *s);

/* Writes 32 lowercase hex characters and a NUL into out (>= 33 bytes).
 * Unique per process and unpredictable; never blocks. */
void reqid_generate(char *out);

/* n random bytes from the kernel CSPRNG (getrandom); 0 or AGENTD_EIO. */
int random_bytes(void *buf, size_t n);

/* The one id maker for stored things: prefix + 24 hex characters of CSPRNG
 * output ("chk_9f3a..."), NUL-terminated, cut to fit len (48 always fits a
 * prefix up to 23 characters). Unguessable: ids appear in URLs. */
void id_new(const char *prefix, char *out, size_t len);

/* The same shape (prefix + 24 hex), for rows inserted at a high rate under
 * a text primary key: 8 hex of the wall clock in ms (wrapping every ~50
 * days) then 16 hex (64 bits) of CSPRNG output. Ids made close in time sort
 * close, so their index inserts land on the b-tree's last pages instead of
 * a random page each (fewer WAL frames per commit). Still unguessable; it
 * tells roughly when the row was made, which the row says anyway. */
void id_new_ordered(const char *prefix, char *out, size_t len);

#endif
