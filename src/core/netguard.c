/* SSRF guard helpers: address classification by prefix tables, and the
 * host[:port] allow-list. Pure functions; the tables are the policy. */
#define _GNU_SOURCE /* memmem */
#include "core/netguard.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- classification ---- */

struct v4_range {
    uint32_t net;
    int bits;
    enum netguard_class cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* Everything a connection from a server should never reach unless the
 * operator says so. Order does not matter: ranges do not overlap. */
static const struct v4_range v4_ranges[] = {
    { V4(0, 0, 0, 0), 8, NETGUARD_UNSPECIFIED },        /* "this network" */
    { V4(10, 0, 0, 0), 8, NETGUARD_PRIVATE },
    { V4(100, 64, 0, 0), 10, NETGUARD_CGNAT },
    { V4(127, 0, 0, 0), 8, NETGUARD_LOOPBACK },
    { V4(169, 254, 0, 0), 16, NETGUARD_LINK_LOCAL },    /* metadata 169.254.169.254 */
    { V4(172, 16, 0, 0), 12, NETGUARD_PRIVATE },
    { V4(192, 0, 0, 0), 24, NETGUARD_RESERVED },        /* IETF protocol assignments */
    { V4(192, 0, 2, 0), 24, NETGUARD_RESERVED },        /* TEST-NET-1 */
    { V4(192, 88, 99, 0), 24, NETGUARD_RESERVED },      /* 6to4 relay anycast */
    { V4(192, 168, 0, 0), 16, NETGUARD_PRIVATE },
    { V4(198, 18, 0, 0), 15, NETGUARD_RESERVED },       /* benchmarking */
    { V4(198, 51, 100, 0), 24, NETGUARD_RESERVED },     /* TEST-NET-2 */
    { V4(203, 0, 113, 0), 24, NETGUARD_RESERVED },      /* TEST-NET-3 */
    { V4(224, 0, 0, 0), 4, NETGUARD_MULTICAST },
    { V4(255, 255, 255, 255), 32, NETGUARD_BROADCAST }, /* before 240/4 below */
    { V4(240, 0, 0, 0), 4, NETGUARD_RESERVED },
};

static enum netguard_class classify_v4(uint32_t a)
{
    for (size_t i = 0; i < sizeof v4_ranges / sizeof v4_ranges[0]; i++) {
        uint32_t mask = v4_ranges[i].bits ? 0xffffffffu << (32 - v4_ranges[i].bits) : 0;
        if ((a & mask) == v4_ranges[i].net)
            return v4_ranges[i].cls;
    }
    return NETGUARD_PUBLIC;
}

static uint32_t v4_at(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* First 16 bits of the address, for the /16 and shorter prefixes. */
static unsigned w16(const unsigned char *b, int i) { return ((unsigned)b[2 * i] << 8) | b[2 * i + 1]; }

static enum netguard_class classify_v6(const unsigned char b[16])
{
    if (all_zero(b, 16))
        return NETGUARD_UNSPECIFIED;
    if (all_zero(b, 15) && b[15] == 1)
        return NETGUARD_LOOPBACK;
    /* Forms that carry an IPv4 address: the kernel or a translator would
     * deliver them to that IPv4 address, so it decides. */
    if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) /* ::ffff:a.b.c.d mapped */
        return classify_v4(v4_at(b + 12));
    if (all_zero(b, 8) && b[8] == 0xff && b[9] == 0xff && !b[10] && !b[11]) /* ::ffff:0:a.b.c.d */
        return classify_v4(v4_at(b + 12));
    if (w16(b, 0) == 0x0064 && w16(b, 1) == 0xff9b && all_zero(b + 4, 8)) /* NAT64 64:ff9b::/96 */
        return classify_v4(v4_at(b + 12));
    if (w16(b, 0) == 0x2002) /* 6to4 2002:aabb:ccdd::/48 */
        return classify_v4(v4_at(b + 2));
    if (all_zero(b, 12)) /* ::a.b.c.d, IPv4-compatible (deprecated) */
        return NETGUARD_RESERVED;
    if (w16(b, 0) == 0x0064 && w16(b, 1) == 0xff9b && w16(b, 2) == 0x0001) /* 64:ff9b:1::/48 local NAT64 */
        return NETGUARD_PRIVATE;
    if ((b[0] & 0xfe) == 0xfc) /* fc00::/7 unique local (AWS metadata fd00:ec2::254) */
        return NETGUARD_PRIVATE;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) /* fe80::/10 */
        return NETGUARD_LINK_LOCAL;
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) /* fec0::/10 site-local (deprecated) */
        return NETGUARD_PRIVATE;
    if (b[0] == 0xff)
        return NETGUARD_MULTICAST;
    if (w16(b, 0) == 0x2001 && w16(b, 1) == 0x0000) /* Teredo: hides an IPv4 peer */
        return NETGUARD_RESERVED;
    if (w16(b, 0) == 0x2001 && w16(b, 1) == 0x0db8) /* documentation */
        return NETGUARD_RESERVED;
    if (w16(b, 0) == 0x3fff && (b[2] & 0xf0) == 0) /* documentation 3fff::/20 */
        return NETGUARD_RESERVED;
    if (w16(b, 0) == 0x0100 && all_zero(b + 2, 6)) /* discard 100::/64 */
        return NETGUARD_RESERVED;
    /* Only 2000::/3 is global unicast; the rest is unallocated. */
    if ((b[0] & 0xe0) != 0x20)
        return NETGUARD_RESERVED;
    return NETGUARD_PUBLIC;
}

enum netguard_class netguard_classify(const struct sockaddr *sa, socklen_t len)
{
    if (!sa)
        return NETGUARD_RESERVED;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in in;
        memcpy(&in, sa, sizeof in); /* curl's buffer may be unaligned for the cast */
        return classify_v4(ntohl(in.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, sa, sizeof in6);
        return classify_v6(in6.sin6_addr.s6_addr);
    }
    return NETGUARD_RESERVED;
}

int netguard_classify_text(const char *text)
{
    unsigned char buf[16];
    if (!text)
        return AGENTD_EINVAL;
    if (inet_pton(AF_INET, text, buf) == 1)
        return (int)classify_v4(v4_at(buf));
    if (inet_pton(AF_INET6, text, buf) == 1)
        return (int)classify_v6(buf);
    return AGENTD_EINVAL;
}

const char *netguard_class_name(enum netguard_class c)
{
    switch (c) {
    case NETGUARD_PUBLIC: return "public";
    case NETGUARD_LOOPBACK: return "loopback";
    case NETGUARD_PRIVATE: return "private";
    case NETGUARD_LINK_LOCAL: return "link-local";
    case NETGUARD_CGNAT: return "cgnat";
    case NETGUARD_UNSPECIFIED: return "unspecified";
    case NETGUARD_MULTICAST: return "multicast";
    case NETGUARD_BROADCAST: return "broadcast";
    case NETGUARD_RESERVED: return "reserved";
    }
    return "reserved";
}

/* ---- allow-list ---- */

static void report(netguard_error_fn fn, void *ud, const char *fmt, const char *entry, size_t len)
{
    if (!fn)
        return;
    char msg[400];
    snprintf(msg, sizeof msg, fmt, (int)(len > 300 ? 300 : len), entry);
    fn(msg, ud);
}

/* A DNS name or dotted IPv4: letters, digits, '-', '_' in non-empty labels. */
static int host_name_valid(const char *s, size_t n)
{
    if (n == 0 || n > NETGUARD_HOST_MAX)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0; /* no trailing dot: URLs rarely carry one and it would never match */
}

static int port_parse(const char *s, size_t n, int *port)
{
    if (n == 0 || n > 5)
        return AGENTD_EINVAL;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return AGENTD_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return AGENTD_EINVAL;
    *port = v;
    return 0;
}

/* One trimmed entry into *out; returns 0, or AGENTD_EINVAL with the reason reported. */
static int entry_parse(const char *e, size_t n, struct netguard_allow *out, netguard_error_fn fn,
                       void *ud)
{
    memset(out, 0, sizeof *out);
    if (n == 0) {
        report(fn, ud, "empty entry%.*s", "", 0);
        return AGENTD_EINVAL;
    }
    const char *host = e, *rest;
    size_t hlen;
    if (memmem(e, n, "://", 3)) {
        report(fn, ud, "%.*s: give host[:port], not a URL", e, n);
        return AGENTD_EINVAL;
    }
    if (e[0] == '[') {
        const char *close = memchr(e, ']', n);
        if (!close) {
            report(fn, ud, "%.*s: unterminated [IPv6] address", e, n);
            return AGENTD_EINVAL;
        }
        hlen = (size_t)(close - e) + 1;
        char addr[64];
        unsigned char bin[16];
        size_t alen = hlen - 2;
        if (alen == 0 || alen >= sizeof addr) {
            report(fn, ud, "%.*s: not an IPv6 address", e, n);
            return AGENTD_EINVAL;
        }
        memcpy(addr, e + 1, alen);
        addr[alen] = 0;
        if (inet_pton(AF_INET6, addr, bin) != 1) {
            report(fn, ud, "%.*s: not an IPv6 address", e, n);
            return AGENTD_EINVAL;
        }
        rest = close + 1;
    } else {
        const char *colon = memchr(e, ':', n);
        hlen = colon ? (size_t)(colon - e) : n;
        if (colon && memchr(colon + 1, ':', n - hlen - 1)) {
            report(fn, ud, "%.*s: write an IPv6 address in brackets, e.g. [::1]:8080", e, n);
            return AGENTD_EINVAL;
        }
        if (!host_name_valid(e, hlen)) {
            report(fn, ud, "%.*s: not a host name or address", e, n);
            return AGENTD_EINVAL;
        }
        rest = e + hlen;
    }
    size_t rlen = n - (size_t)(rest - e);
    if (rlen) {
        if (rest[0] != ':' || port_parse(rest + 1, rlen - 1, &out->port) != 0) {
            report(fn, ud, "%.*s: the port must be 1..65535", e, n);
            return AGENTD_EINVAL;
        }
    }
    for (size_t i = 0; i < hlen; i++)
        out->host[i] = (char)tolower((unsigned char)host[i]);
    out->host[hlen] = 0;
    return 0;
}

int netguard_allowlist_parse(const char *text, struct netguard_allowlist *out,
                             netguard_error_fn on_error, void *ud)
{
    out->items = NULL;
    out->n = 0;
    if (!text || !*text)
        return 0;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    out->items = calloc(cap, sizeof *out->items);
    if (!out->items)
        return AGENTD_ENOMEM;
    int bad = 0;
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (entry_parse(a, (size_t)(b - a), &out->items[out->n], on_error, ud) == 0)
            out->n++;
        else
            bad++;
        if (!*end)
            break;
        p = end + 1;
    }
    return bad;
}

void netguard_allowlist_free(struct netguard_allowlist *al)
{
    if (!al)
        return;
    free(al->items);
    al->items = NULL;
    al->n = 0;
}

/* Bracketed IPv6 literals compare by value: "[::1]" == "[0:0::1]". */
static int same_host(const char *listed, const char *host)
{
    if (listed[0] == '[' && host[0] == '[') {
        char a[64], b[64];
        unsigned char ba[16], bb[16];
        size_t la = strlen(listed), lb = strlen(host);
        if (la < 3 || lb < 3 || la - 2 >= sizeof a || lb - 2 >= sizeof b || listed[la - 1] != ']' ||
            host[lb - 1] != ']')
            return 0;
        memcpy(a, listed + 1, la - 2);
        a[la - 2] = 0;
        memcpy(b, host + 1, lb - 2);
        b[lb - 2] = 0;
        return inet_pton(AF_INET6, a, ba) == 1 && inet_pton(AF_INET6, b, bb) == 1 &&
               memcmp(ba, bb, 16) == 0;
    }
    return strcasecmp(listed, host) == 0;
}

int netguard_allowlist_match(const struct netguard_allowlist *al, const char *host, int port)
{
    if (!al || !host || !*host)
        return 0;
    for (size_t i = 0; i < al->n; i++)
        if (same_host(al->items[i].host, host) && (al->items[i].port == 0 || al->items[i].port == port))
            return 1;
    return 0;
}
