/* AGENTD_REDIS_URL parsing: redis://[[user]:password@]host[:port][/db] and
 * unix:[//][[user]:password@]/path[?db=N]. Messages never quote the password. */
#include "core/redis_url.h"
#include "core/hex.h"

#include <stdlib.h>
#include <string.h>

/* percent-decodes s[0..n) into out (size cap); -1 on a bad escape or overflow */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap || c == 0)
            return -1;
        out[o++] = c;
    }
    out[o] = 0;
    return 0;
}

/* a whole decimal number in [lo, hi] from s[0..n); -1 otherwise */
static long number(const char *s, size_t n, long lo, long hi)
{
    if (n == 0 || n > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v < lo || v > hi ? -1 : v;
}

static int bad(struct agentd_error *e, const char *why)
{
    return agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_REDIS_URL", "%s (expected "
                       "redis://[:password@]host[:port][/db] or unix:/path[?db=N])", why);
}

/* "[user]:password@" at the start of s, if there is one; advances *s */
static int credentials(const char **s, const char *end, struct redis_url *u, struct agentd_error *e)
{
    const char *at = memchr(*s, '@', (size_t)(end - *s));
    if (!at)
        return 0;
    const char *colon = memchr(*s, ':', (size_t)(at - *s));
    if (!colon)
        return bad(e, "credentials are [user]:password@");
    if (decode(*s, (size_t)(colon - *s), u->user, sizeof u->user) != 0 ||
        decode(colon + 1, (size_t)(at - colon - 1), u->password, sizeof u->password) != 0)
        return bad(e, "the user or password has a bad %-escape or is too long");
    *s = at + 1;
    return 0;
}

static int parse_unix(const char *s, struct redis_url *u, struct agentd_error *e)
{
    if (strncmp(s, "//", 2) == 0)
        s += 2;
    const char *end = s + strlen(s);
    const char *q = strchr(s, '?');
    if (q)
        end = q;
    if (credentials(&s, end, u, e) != 0)
        return AGENTD_EINVAL;
    if (*s != '/')
        return bad(e, "a unix socket path must be absolute");
    if ((size_t)(end - s) >= sizeof u->path)
        return bad(e, "the unix socket path is too long");
    memcpy(u->path, s, (size_t)(end - s));
    u->path[end - s] = 0;
    if (q) {
        long db = strncmp(q, "?db=", 4) == 0 ? number(q + 4, strlen(q + 4), 0, 9999) : -1;
        if (db < 0)
            return bad(e, "the only query is ?db=N, N from 0 to 9999");
        u->db = (int)db;
    }
    return 0;
}

static int parse_tcp(const char *s, struct redis_url *u, struct agentd_error *e)
{
    const char *end = s + strlen(s);
    const char *slash = strchr(s, '/');
    const char *hostend = slash ? slash : end;
    if (credentials(&s, hostend, u, e) != 0)
        return AGENTD_EINVAL;
    const char *h = s, *hend, *portp = NULL;
    if (*h == '[') {
        hend = memchr(h, ']', (size_t)(hostend - h));
        if (!hend)
            return bad(e, "an IPv6 host is written [addr]");
        h++;
        portp = hend + 1 < hostend && hend[1] == ':' ? hend + 2 : NULL;
        if (!portp && hend + 1 != hostend)
            return bad(e, "unexpected text after the host");
    } else {
        hend = memchr(h, ':', (size_t)(hostend - h));
        if (hend)
            portp = hend + 1;
        else
            hend = hostend;
    }
    if (hend == h || (size_t)(hend - h) >= sizeof u->host)
        return bad(e, "the host is missing or too long");
    memcpy(u->host, h, (size_t)(hend - h));
    u->host[hend - h] = 0;
    if (portp) {
        long port = number(portp, (size_t)(hostend - portp), 1, 65535);
        if (port < 0)
            return bad(e, "the port is a number from 1 to 65535");
        u->port = (int)port;
    }
    if (slash && slash[1]) {
        long db = number(slash + 1, strlen(slash + 1), 0, 9999);
        if (db < 0)
            return bad(e, "the path is the database number, 0 to 9999");
        u->db = (int)db;
    }
    return 0;
}

int redis_url_parse(const char *url, struct redis_url *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (!url)
        return bad(e, "no URL");
    if (strncmp(url, "unix:", 5) == 0)
        return parse_unix(url + 5, out, e);
    if (strncmp(url, "rediss://", 9) == 0)
        return bad(e, "rediss:// (TLS) is not supported by this build's hiredis; use a local "
                      "TLS tunnel or a unix socket");
    if (strncmp(url, "redis://", 8) != 0)
        return bad(e, "the scheme is redis:// or unix:");
    return parse_tcp(url + 8, out, e);
}
