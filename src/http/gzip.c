/* gzip for replies: Accept-Encoding parsing (RFC 9110 §12.5.3, q-values)
 * and a one-shot zlib deflate into a gzip member. */
#include "http/gzip.h"
#include "core/err.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* The q-value of one list member's parameters ("; q=0.5"): 1000ths, so
 * "0.001" is not mistaken for 0. A malformed q counts as 0: refusing to
 * compress is always safe. */
static int parse_q(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            p += 2;
            if (p < end && *p == '1')
                return 1000;
            if (p >= end || *p != '0')
                return 0;
            p++;
            int q = 0, scale = 100;
            if (p < end && *p == '.')
                for (p++; p < end && *p >= '0' && *p <= '9' && scale; p++, scale /= 10)
                    q += (*p - '0') * scale;
            return q;
        }
        while (p < end && *p != ';')
            p++;
    }
    return 1000;
}

int gzip_accepted(const char *ae)
{
    if (!ae)
        return 0;
    int gzip_q = -1, star_q = -1;
    const char *p = ae;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tl = (size_t)(p - tok);
        const char *params = p;
        while (*p && *p != ',')
            p++;
        if (!tl)
            continue;
        int q = parse_q(params, p);
        if ((tl == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (tl == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
            gzip_q = gzip_q < 0 || q > gzip_q ? q : gzip_q;
        else if (tl == 1 && *tok == '*')
            star_q = q;
    }
    if (gzip_q >= 0)
        return gzip_q > 0;
    return star_q > 0;
}

int gzip_compressible(const char *ct)
{
    if (!ct)
        return 0;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    if (n > 17 && strncasecmp(ct, "application/", 12) == 0 && strncasecmp(ct + n - 5, "+json", 5) == 0)
        return 1;
    return n == 10 && strncasecmp(ct, "text/plain", 10) == 0;
}

int gzip_encode(const char *in, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len > UINT_MAX / 2)
        return AGENTD_EINVAL; /* zlib counts in uInt; no reply is this large */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 16 + 15: a gzip wrapper around the deflate stream;
     * level 6 (zlib's default) is the usual size/CPU balance */
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return AGENTD_ENOMEM;
    uLong cap = deflateBound(&zs, (uLong)len);
    char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        deflateEnd(&zs);
        return AGENTD_ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)buf;
    zs.avail_out = (uInt)cap;
    /* deflateBound guarantees one Z_FINISH call completes */
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = (size_t)zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return AGENTD_EINTERNAL;
    }
    *out = buf;
    *out_len = produced;
    return 0;
}

#define GZIP_SUFFIX "-gzip"
#define GZIP_SUFFIX_LEN 5

int gzip_etag_variant(const char *etag, char *out, size_t len)
{
    size_t n = strlen(etag);
    size_t open = strncmp(etag, "W/", 2) == 0 ? 2 : 0;
    if (n < open + 2 || etag[open] != '"' || etag[n - 1] != '"' || n + GZIP_SUFFIX_LEN + 1 > len)
        return AGENTD_EINVAL;
    memcpy(out, etag, n - 1);
    memcpy(out + n - 1, GZIP_SUFFIX "\"", GZIP_SUFFIX_LEN + 2);
    return 0;
}

int gzip_etag_strip(const char *value, char *out, size_t len)
{
    if (!strstr(value, GZIP_SUFFIX "\""))
        return 0;
    size_t o = 0;
    for (const char *p = value; *p;) {
        if (strncmp(p, GZIP_SUFFIX "\"", GZIP_SUFFIX_LEN + 1) == 0) {
            p += GZIP_SUFFIX_LEN; /* the quote is copied next */
            continue;
        }
        if (o + 1 >= len)
            return AGENTD_ETOOLARGE;
        out[o++] = *p++;
    }
    out[o] = '\0';
    return 1;
}
