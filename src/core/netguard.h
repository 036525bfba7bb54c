/* Outbound network guard (SSRF): classifies the address a connection is
 * about to reach, and parses / matches the operator's host[:port] allow-list.
 *
 * Pure: no I/O, no globals. A caller that connects out (the profile fetcher
 * today; webhooks and JWKS later) refuses every non-public address unless
 * the URL's host[:port] is on the allow-list. Checking the address at
 * connect time (curl's CURLOPT_OPENSOCKETFUNCTION) rather than the name
 * also defeats DNS rebinding. */
#ifndef AGENTD_CORE_NETGUARD_H
#define AGENTD_CORE_NETGUARD_H

#include <stddef.h>
#include <sys/socket.h>

/* What an address is. Everything but NETGUARD_PUBLIC is refused by default. */
enum netguard_class {
    NETGUARD_PUBLIC = 0,
    NETGUARD_LOOPBACK,     /* 127/8, ::1 */
    NETGUARD_PRIVATE,      /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    NETGUARD_LINK_LOCAL,   /* 169.254/16 (cloud metadata 169.254.169.254), fe80::/10 */
    NETGUARD_CGNAT,        /* 100.64/10 (also some clouds' metadata, e.g. 100.100.100.200) */
    NETGUARD_UNSPECIFIED,  /* 0/8, :: */
    NETGUARD_MULTICAST,    /* 224/4, ff00::/8 */
    NETGUARD_BROADCAST,    /* 255.255.255.255 */
    NETGUARD_RESERVED,     /* 240/4, documentation, benchmarking, IETF, discard, Teredo,
                            * IPv4-compatible IPv6, unknown address families */
};

/* Classifies an IPv4 or IPv6 socket address. IPv6 forms that embed an IPv4
 * address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16)
 * are classified by the embedded IPv4 address. Other families: RESERVED. */
enum netguard_class netguard_classify(const struct sockaddr *sa, socklen_t len);
/* The same for a numeric address in text ("10.0.0.1", "::ffff:127.0.0.1").
 * Returns AGENTD_EINVAL if text is not a numeric IPv4 or IPv6 address. */
int netguard_classify_text(const char *text);
/* "public", "loopback", ... for logs. */
const char *netguard_class_name(enum netguard_class c);

/* ---- allow-list: comma-separated host[:port] ---- */

#define NETGUARD_HOST_MAX 253

struct netguard_allow {
    char host[NETGUARD_HOST_MAX + 3]; /* lower case; IPv6 literals keep their brackets */
    int port;                         /* 1..65535, or 0 = any port */
};

/* Owned by the caller; free with netguard_allowlist_free(). */
struct netguard_allowlist {
    struct netguard_allow *items;
    size_t n;
};

typedef void (*netguard_error_fn)(const char *message, void *ud);

/* Parses "host[:port],..." (spaces around entries ignored; an IPv6 literal
 * is written in brackets: "[::1]:8080"). Hosts are DNS names or numeric
 * addresses; ports 1..65535. Each bad entry is reported through on_error
 * (may be NULL) and skipped. Returns the number of bad entries, or AGENTD_ENOMEM when
 * out of memory. NULL or "" text gives an empty list. */
int netguard_allowlist_parse(const char *text, struct netguard_allowlist *out,
                             netguard_error_fn on_error, void *ud);
void netguard_allowlist_free(struct netguard_allowlist *al);

/* 1 when host (as in a URL: case-insensitive, IPv6 in brackets) and port
 * (the URL's port, explicit or the scheme's default) are listed: the host
 * must match exactly, and an entry without a port matches any port. */
int netguard_allowlist_match(const struct netguard_allowlist *al, const char *host, int port);

#endif
