/* Request id generation: a per-thread 128-bit state seeded from getrandom,
 * advanced with splitmix64; cheap enough for every request. */
#include "core/reqid.h"

#include "core/clock.h"
#include "core/err.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int random_bytes(void *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = getrandom((char *)buf + off, n - off, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return AGENTD_EIO;
        }
        off += (size_t)r;
    }
    return 0;
}

int reqid_valid(const char *s)
{
    if (!s || !*s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (n >= REQID_MAX)
            return 0;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void reqid_generate(char *out)
{
    static _Thread_local uint64_t state[2];
    static _Thread_local int seeded;
    static const char hex[] = "0123456789abcdef";
    if (!seeded) {
        if (random_bytes(state, sizeof state) != 0) {
            state[0] = (uint64_t)(uintptr_t)&state ^ 0x1234567;
            state[1] = (uint64_t)(uintptr_t)out;
        }
        seeded = 1;
    }
    uint64_t a = splitmix(&state[0]), b = splitmix(&state[1]);
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = 0;
}

/* prefix then the bytes in lowercase hex, whole pairs only, cut to fit len
 * (a hex table: snprintf per byte was most of an id's cost) */
static void id_write(const char *prefix, const unsigned char *raw, size_t nraw, char *out,
                     size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (len == 0)
        return;
    size_t n = strlen(prefix);
    if (n >= len)
        n = len - 1;
    memcpy(out, prefix, n);
    for (size_t i = 0; i < nraw && n + 2 < len; i++) {
        out[n++] = hex[raw[i] >> 4];
        out[n++] = hex[raw[i] & 15];
    }
    out[n] = 0;
}

void id_new(const char *prefix, char *out, size_t len)
{
    unsigned char raw[12];
    if (random_bytes(raw, sizeof raw) != 0)
        memset(raw, 0, sizeof raw); /* never: getrandom does not fail after boot */
    id_write(prefix, raw, sizeof raw, out, len);
}

void id_new_ordered(const char *prefix, char *out, size_t len)
{
    unsigned char raw[6 + 12];
    uint64_t ms = (uint64_t)clock_wall_ms();
    for (int i = 0; i < 6; i++) /* 48 bits, big-endian: the hex sorts as the number */
        raw[i] = (unsigned char)(ms >> (40 - 8 * i));
    if (random_bytes(raw + 6, 12) != 0)
        memset(raw + 6, 0, 12); /* never: getrandom does not fail after boot */
    id_write(prefix, raw, sizeof raw, out, len);
}
