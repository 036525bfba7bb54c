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

/* The same for rows made in bulk (sessions, turns, A2A tasks and contexts):
 * prefix + 12 hex of wall-clock milliseconds (48 bits: no wrap before the
 * year 10889) + id_new's 24 random hex (96 bits), so ids sort by creation
 * time. Their b-tree inserts then append near the last page instead of
 * touching a random page of every index they are in (each such page is a
 * 4 KB WAL frame per commit, then a copy at the checkpoint). Still
 * unguessable; it tells when the row was made, which the row says anyway.
 * len must hold prefix + 36 + 1, or the random part is cut. */
void id_new_ordered(const char *prefix, char *out, size_t len);

#endif
