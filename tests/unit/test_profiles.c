/* profiles + netguard: address classification, the allow-list, max-age,
 * profile validation, the cache (injected clock), and real fetches on a
 * loop against an in-process HTTP server (guard, coalescing, cancel). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "api/profiles.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/netguard.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- address classification ----
 * Pure classification of address strings: none of these addresses is ever
 * contacted (the fetch tests below only reach 127.0.0.1). */

static void test_classify_text(void **state)
{
    (void)state;
    static const struct {
        const char *ip;
        int cls;
    } t[] = {
        /* public */
        { "8.8.8.8", NETGUARD_PUBLIC },
        { "1.1.1.1", NETGUARD_PUBLIC },
        { "93.184.216.34", NETGUARD_PUBLIC },
        { "9.255.255.255", NETGUARD_PUBLIC },     /* just below 10/8 */
        { "11.0.0.0", NETGUARD_PUBLIC },          /* just above 10/8 */
        { "100.63.255.255", NETGUARD_PUBLIC },    /* below CGNAT */
        { "100.128.0.0", NETGUARD_PUBLIC },       /* above CGNAT */
        { "126.255.255.255", NETGUARD_PUBLIC },
        { "128.0.0.0", NETGUARD_PUBLIC },
        { "169.253.255.255", NETGUARD_PUBLIC },
        { "169.255.0.0", NETGUARD_PUBLIC },
        { "172.15.255.255", NETGUARD_PUBLIC },    /* below 172.16/12 */
        { "172.32.0.0", NETGUARD_PUBLIC },        /* above 172.16/12 */
        { "192.167.255.255", NETGUARD_PUBLIC },
        { "192.169.0.0", NETGUARD_PUBLIC },
        { "223.255.255.255", NETGUARD_PUBLIC },   /* below multicast */
        { "2606:4700:4700::1111", NETGUARD_PUBLIC },
        { "2001:4860:4860::8888", NETGUARD_PUBLIC },
        { "::ffff:8.8.8.8", NETGUARD_PUBLIC },    /* mapped public */
        { "64:ff9b::808:808", NETGUARD_PUBLIC },  /* NAT64 of 8.8.8.8 */
        { "2002:808:808::1", NETGUARD_PUBLIC },   /* 6to4 of 8.8.8.8 */
        /* loopback */
        { "127.0.0.1", NETGUARD_LOOPBACK },
        { "127.0.0.0", NETGUARD_LOOPBACK },
        { "127.255.255.254", NETGUARD_LOOPBACK },
        { "127.1.2.3", NETGUARD_LOOPBACK },
        { "::1", NETGUARD_LOOPBACK },
        { "0:0:0:0:0:0:0:1", NETGUARD_LOOPBACK },
        { "::ffff:127.0.0.1", NETGUARD_LOOPBACK },
        { "::ffff:7f00:1", NETGUARD_LOOPBACK },    /* the same, in hex */
        { "::ffff:0:127.0.0.1", NETGUARD_LOOPBACK }, /* IPv4-translated */
        { "64:ff9b::7f00:1", NETGUARD_LOOPBACK },  /* NAT64 of loopback */
        { "2002:7f00:1::", NETGUARD_LOOPBACK },    /* 6to4 of loopback */
        /* private */
        { "10.0.0.0", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "10.255.255.255", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "172.16.0.0", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "172.31.255.255", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "192.168.0.1", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "192.168.255.255", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "::ffff:10.1.2.3", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "::ffff:192.168.1.1", NETGUARD_PRIVATE }, /* never-contacted: classifier data */
        { "fc00::1", NETGUARD_PRIVATE },
        { "fd00:ec2::254", NETGUARD_PRIVATE },     /* AWS IPv6 metadata */
        { "fdff:ffff::1", NETGUARD_PRIVATE },
        { "fec0::1", NETGUARD_PRIVATE },           /* site-local */
        { "64:ff9b:1::a00:1", NETGUARD_PRIVATE },  /* local-use NAT64 */
        /* link-local and metadata */
        { "169.254.169.254", NETGUARD_LINK_LOCAL }, /* never contacted: classifier data */
        { "169.254.0.0", NETGUARD_LINK_LOCAL }, /* never contacted: classifier data */
        { "169.254.255.255", NETGUARD_LINK_LOCAL }, /* never contacted: classifier data */
        { "::ffff:169.254.169.254", NETGUARD_LINK_LOCAL }, /* never contacted: classifier data */
        { "::ffff:a9fe:a9fe", NETGUARD_LINK_LOCAL },
        { "fe80::1", NETGUARD_LINK_LOCAL },
        { "febf:ffff::1", NETGUARD_LINK_LOCAL },
        /* CGNAT */
        { "100.64.0.0", NETGUARD_CGNAT },
        { "100.100.100.200", NETGUARD_CGNAT },     /* Alibaba metadata */
        { "100.127.255.255", NETGUARD_CGNAT },
        { "::ffff:100.64.0.1", NETGUARD_CGNAT },
        /* unspecified, multicast, broadcast */
        { "0.0.0.0", NETGUARD_UNSPECIFIED },
        { "0.1.2.3", NETGUARD_UNSPECIFIED },
        { "::", NETGUARD_UNSPECIFIED },
        { "::ffff:0.0.0.0", NETGUARD_UNSPECIFIED },
        { "224.0.0.1", NETGUARD_MULTICAST },
        { "239.255.255.255", NETGUARD_MULTICAST },
        { "ff02::1", NETGUARD_MULTICAST },
        { "ff05::1:3", NETGUARD_MULTICAST },
        { "255.255.255.255", NETGUARD_BROADCAST },
        { "::ffff:255.255.255.255", NETGUARD_BROADCAST },
        /* reserved */
        { "240.0.0.1", NETGUARD_RESERVED },
        { "255.255.255.254", NETGUARD_RESERVED },
        { "192.0.0.170", NETGUARD_RESERVED },
        { "192.0.2.1", NETGUARD_RESERVED },
        { "198.18.0.1", NETGUARD_RESERVED },
        { "198.19.255.255", NETGUARD_RESERVED },
        { "198.51.100.7", NETGUARD_RESERVED },
        { "203.0.113.9", NETGUARD_RESERVED },
        { "::127.0.0.1", NETGUARD_RESERVED },      /* IPv4-compatible */
        { "::8.8.8.8", NETGUARD_RESERVED },
        { "2001:db8::1", NETGUARD_RESERVED },
        { "2001:0:4136:e378:8000:63bf:3fff:fdd2", NETGUARD_RESERVED }, /* Teredo */
        { "100::1", NETGUARD_RESERVED },
        { "3fff::1", NETGUARD_RESERVED },
        { "4000::1", NETGUARD_RESERVED },          /* outside 2000::/3 */
        { "1::1", NETGUARD_RESERVED },
    };
    for (size_t i = 0; i < N(t); i++) {
        int got = netguard_classify_text(t[i].ip);
        if (got != t[i].cls)
            fail_msg("%s: got %s, want %s", t[i].ip,
                     got < 0 ? "(not an address)" : netguard_class_name((enum netguard_class)got),
                     netguard_class_name((enum netguard_class)t[i].cls));
    }
    /* not numeric addresses */
    static const char *const bad[] = { "", "localhost", "127.1", "0x7f000001", "2130706433",
                                       "1.2.3.4.5", "::ffff:1.2.3", "[::1]", "fe80::1%eth0" };
    for (size_t i = 0; i < N(bad); i++)
        if (netguard_classify_text(bad[i]) != AGENTD_EINVAL)
            fail_msg("%s: classified as an address", bad[i]);
    assert_int_equal(netguard_classify_text(NULL), AGENTD_EINVAL);
}

static void test_classify_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(80) };
    inet_pton(AF_INET, "169.254.169.254", &in.sin_addr); /* never contacted: classifier data */
    assert_int_equal(netguard_classify((struct sockaddr *)&in, sizeof in), NETGUARD_LINK_LOCAL);
    inet_pton(AF_INET, "8.8.4.4", &in.sin_addr);
    assert_int_equal(netguard_classify((struct sockaddr *)&in, sizeof in), NETGUARD_PUBLIC);
    /* a truncated length is never trusted */
    assert_int_equal(netguard_classify((struct sockaddr *)&in, 4), NETGUARD_RESERVED);

    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    assert_int_equal(netguard_classify((struct sockaddr *)&in6, sizeof in6), NETGUARD_LOOPBACK);
    inet_pton(AF_INET6, "2a00:1450::1", &in6.sin6_addr);
    assert_int_equal(netguard_classify((struct sockaddr *)&in6, sizeof in6), NETGUARD_PUBLIC);
    assert_int_equal(netguard_classify((struct sockaddr *)&in6, sizeof in), NETGUARD_RESERVED);

    struct sockaddr_un un = { .sun_family = AF_UNIX };
    assert_int_equal(netguard_classify((struct sockaddr *)&un, sizeof un), NETGUARD_RESERVED);
    assert_int_equal(netguard_classify(NULL, 0), NETGUARD_RESERVED);
    assert_string_equal(netguard_class_name(NETGUARD_LINK_LOCAL), "link-local");
}

/* ---- allow-list ---- */

struct errs {
    int n;
    char last[400];
};

static void collect(const char *msg, void *ud)
{
    struct errs *e = ud;
    e->n++;
    snprintf(e->last, sizeof e->last, "%s", msg);
}

static void test_allowlist_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int bad;       /* entries refused */
        size_t n;      /* entries kept */
        const char *first_host;
        int first_port;
    } t[] = {
        { "127.0.0.1:8285", 0, 1, "127.0.0.1", 8285 },
        { "Platform.Example.COM", 0, 1, "platform.example.com", 0 },
        { " a.example:443 , b.example ,c.example:1", 0, 3, "a.example", 443 },
        { "[::1]:8080", 0, 1, "[::1]", 8080 },
        { "[FE80::1]", 0, 1, "[fe80::1]", 0 },
        { "localhost:65535", 0, 1, "localhost", 65535 },
        { "my_host.internal", 0, 1, "my_host.internal", 0 },
        { "a.example:0", 1, 0, NULL, 0 },
        { "a.example:65536", 1, 0, NULL, 0 },
        { "a.example:", 1, 0, NULL, 0 },
        { "a.example:80x", 1, 0, NULL, 0 },
        { "a.example:-1", 1, 0, NULL, 0 },
        { "a.example:123456", 1, 0, NULL, 0 },
        { "https://a.example", 1, 0, NULL, 0 },
        { "a.example/path", 1, 0, NULL, 0 },
        { "*.example", 1, 0, NULL, 0 },
        { "::1", 1, 0, NULL, 0 },
        { "[::1", 1, 0, NULL, 0 },
        { "[nope]:80", 1, 0, NULL, 0 },
        { "[]", 1, 0, NULL, 0 },
        { "[::1]x", 1, 0, NULL, 0 },
        { "a..example", 1, 0, NULL, 0 },
        { ".a.example", 1, 0, NULL, 0 },
        { "a.example.", 1, 0, NULL, 0 },
        { "user@a.example", 1, 0, NULL, 0 },
        { "a.example,,b.example", 1, 2, "a.example", 0 },
        { "a.example,", 1, 1, "a.example", 0 },
        { ":80", 1, 0, NULL, 0 },
        { "good.example:80,bad.example:99999,[::1]", 1, 2, "good.example", 80 },
    };
    for (size_t i = 0; i < N(t); i++) {
        struct netguard_allowlist al;
        struct errs e = { 0 };
        int bad = netguard_allowlist_parse(t[i].text, &al, collect, &e);
        if (bad != t[i].bad || al.n != t[i].n || e.n != t[i].bad)
            fail_msg("%s: bad %d (want %d), kept %zu (want %zu), reported %d", t[i].text, bad,
                     t[i].bad, al.n, t[i].n, e.n);
        if (t[i].first_host) {
            assert_string_equal(al.items[0].host, t[i].first_host);
            assert_int_equal(al.items[0].port, t[i].first_port);
        }
        if (bad)
            assert_true(e.last[0] != 0); /* a message was written */
        netguard_allowlist_free(&al);
    }
    struct netguard_allowlist al;
    assert_int_equal(netguard_allowlist_parse(NULL, &al, NULL, NULL), 0);
    assert_int_equal(al.n, 0);
    assert_int_equal(netguard_allowlist_parse("", &al, NULL, NULL), 0);
    assert_int_equal(al.n, 0);
    /* the message names the entry and says what is wrong */
    struct errs e = { 0 };
    assert_int_equal(netguard_allowlist_parse("ok.example,x.example:0", &al, collect, &e), 1);
    assert_non_null(strstr(e.last, "x.example:0"));
    assert_non_null(strstr(e.last, "1..65535"));
    netguard_allowlist_free(&al);
}

static void test_allowlist_match(void **state)
{
    (void)state;
    struct netguard_allowlist al;
    assert_int_equal(netguard_allowlist_parse("127.0.0.1:8285, platform.example, "
                                              "[::1]:9000, Mixed.Case:443",
                                              &al, NULL, NULL),
                     0);
    static const struct {
        const char *host;
        int port;
        int want;
    } t[] = {
        { "127.0.0.1", 8285, 1 },
        { "127.0.0.1", 8286, 0 },  /* listed with a port: only that port */
        { "127.0.0.1", 80, 0 },
        { "127.0.0.2", 8285, 0 },
        { "platform.example", 443, 1 }, /* listed without a port: any port */
        { "platform.example", 8080, 1 },
        { "PLATFORM.example", 80, 1 },  /* case-insensitive */
        { "evil.platform.example", 443, 0 }, /* exact, not a suffix */
        { "platform.example.evil", 443, 0 },
        { "platform.exampl", 443, 0 },
        { "[::1]", 9000, 1 },
        { "[0:0:0:0:0:0:0:1]", 9000, 1 }, /* IPv6 compared by value */
        { "[::1]", 9001, 0 },
        { "[::2]", 9000, 0 },
        { "::1", 9000, 0 },          /* URL hosts keep their brackets */
        { "mixed.case", 443, 1 },
        { "mixed.case", 80, 0 },
        { "", 443, 0 },
        { "localhost", 8285, 0 },    /* names and addresses are not equated */
    };
    for (size_t i = 0; i < N(t); i++)
        if (netguard_allowlist_match(&al, t[i].host, t[i].port) != t[i].want)
            fail_msg("%s:%d: want %d", t[i].host, t[i].port, t[i].want);
    assert_int_equal(netguard_allowlist_match(&al, NULL, 80), 0);
    assert_int_equal(netguard_allowlist_match(NULL, "platform.example", 80), 0);
    netguard_allowlist_free(&al);
}

static void test_allowlisted_url(void **state)
{
    (void)state;
    struct agentd_error err;
    struct profiles *p = profiles_new("127.0.0.1:8285,platform.example", NULL, &err);
    assert_non_null(p);
    assert_true(profiles_allowlisted(p, "http://127.0.0.1:8285/profile"));
    assert_false(profiles_allowlisted(p, "http://127.0.0.1/profile"));      /* port 80 */
    assert_false(profiles_allowlisted(p, "http://127.0.0.1:8286/profile"));
    assert_true(profiles_allowlisted(p, "https://PLATFORM.example/p"));
    /* userinfo does not fool the host match: curl's parser decides */
    assert_false(profiles_allowlisted(p, "http://platform.example@evil.example/p"));
    assert_true(profiles_allowlisted(p, "http://evil.example@platform.example/p"));
    assert_false(profiles_allowlisted(p, "ftp://platform.example/p"));
    assert_false(profiles_allowlisted(p, "not a url"));
    assert_false(profiles_allowlisted(NULL, "http://127.0.0.1:8285/"));
    profiles_free(p);
    assert_null(profiles_new("x:0", NULL, &err));
    assert_non_null(strstr(err.msg, "AGENTD_PROFILE_ALLOWLIST"));
}

/* ---- Cache-Control ---- */

static void test_ttl(void **state)
{
    (void)state;
    struct profiles_options o;
    profiles_options_default(&o);
    static const struct {
        const char *cc;
        int64_t want_ms;
    } t[] = {
        { NULL, 300000 },
        { "", 300000 },
        { "public", 300000 },
        { "max-age=60", 60000 },
        { "public, max-age=120", 120000 },
        { "MAX-AGE=30", 30000 },
        { "max-age = 45", 45000 },
        { "max-age=\"90\"", 90000 },
        { "max-age=0", 0 },
        { "max-age=3600", 3600000 },
        { "max-age=3601", 3600000 },         /* capped at 1 h */
        { "max-age=999999999999999999999", 3600000 }, /* overflow saturates, then caps */
        { "max-age=-5", 300000 },            /* malformed: default */
        { "max-age=abc", 300000 },
        { "max-age=", 300000 },
        { "max-age=10s", 300000 },
        { "max-age=100,max-age=20", 20000 },  /* repeated: the smallest */
        { "no-store", 0 },
        { "max-age=600, no-cache", 0 },
        { "No-Store, max-age=600", 0 },
        { "s-maxage=10", 300000 },            /* for shared caches; not ours */
        { "private, max-age=15", 15000 },
        { "max-ages=5", 300000 },
        { "xmax-age=5", 300000 },
        { "must-revalidate,max-age=7", 7000 },
        { ",,, max-age=8 ,,", 8000 },
    };
    for (size_t i = 0; i < N(t); i++) {
        int64_t got = profiles_ttl_ms(t[i].cc, &o);
        if (got != t[i].want_ms)
            fail_msg("%s: got %lld, want %lld", t[i].cc ? t[i].cc : "(null)", (long long)got,
                     (long long)t[i].want_ms);
    }
}

/* ---- profile bodies ---- */

#define CAP(n) "{\"name\":\"" n "\",\"version\":\"2026-01-11\"}"

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int rc;
        unsigned caps;
    } t[] = {
        { "{\"ucp\":{\"version\":\"2026-01-11\",\"capabilities\":[" CAP("dev.ucp.shopping.checkout") "]}}",
          0, UCP_CAP_CHECKOUT },
        { "{\"ucp\":{\"capabilities\":[" CAP("dev.ucp.shopping.checkout") "," CAP(
              "dev.ucp.shopping.fulfillment") "]}}",
          0, UCP_CAP_CHECKOUT | UCP_CAP_FULFILLMENT },
        /* calling a checkout endpoint implies checkout: its extensions stay */
        { "{\"ucp\":{\"capabilities\":[" CAP("dev.ucp.shopping.fulfillment") "," CAP(
              "dev.ucp.shopping.discount") "]}}",
          0, UCP_CAP_CHECKOUT | UCP_CAP_FULFILLMENT | UCP_CAP_DISCOUNT },
        /* nothing about checkout: checkout as we offer it */
        { "{\"ucp\":{\"capabilities\":[" CAP("com.example.other") "]}}", 0,
          UCP_CAP_ALL & ~UCP_CAP_ORDER },
        { "{\"ucp\":{\"capabilities\":[]}}", 0, UCP_CAP_ALL & ~UCP_CAP_ORDER },
        /* junk entries are skipped, not fatal */
        { "{\"ucp\":{\"capabilities\":[1,\"x\",{\"name\":7}," CAP("dev.ucp.shopping.order") "]}}",
          0, UCP_CAP_ALL },
        { "", AGENTD_EMALFORMED, 0 },
        { "not json", AGENTD_EMALFORMED, 0 },
        { "[1,2]", AGENTD_EINVAL, 0 },
        { "{}", AGENTD_EINVAL, 0 },
        { "{\"ucp\":[]}", AGENTD_EINVAL, 0 },
        { "{\"ucp\":{}}", AGENTD_EINVAL, 0 },
        /* the keyed form later versions and the sample platforms send */
        { "{\"ucp\":{\"capabilities\":{\"dev.ucp.shopping.order\":[{\"version\":\"2026-01-11\"}],"
          "\"dev.ucp.shopping.buyer_consent\":[{}]}}}",
          0, UCP_CAP_CHECKOUT | UCP_CAP_ORDER | UCP_CAP_BUYER_CONSENT },
        { "{\"ucp\":{\"capabilities\":7}}", AGENTD_EINVAL, 0 },
        { "{\"ucp\":{\"capabilities\":[" CAP("dev.ucp.shopping.checkout") "]}", AGENTD_EMALFORMED, 0 },
    };
    for (size_t i = 0; i < N(t); i++) {
        struct ucp_negotiated neg = { .caps = 0xff };
        struct agentd_error why = { 0 };
        int rc = profiles_parse(t[i].body, strlen(t[i].body), &neg, &why);
        if (rc != t[i].rc || (rc == 0 && neg.caps != t[i].caps))
            fail_msg("case %zu: rc %d caps %#x (%s)", i, rc, neg.caps, why.msg);
        if (rc != 0 && !why.msg[0])
            fail_msg("case %zu: no reason", i);
        if (rc == 0)
            assert_string_equal(neg.version, UCP_VERSION);
    }
}

/* ---- the cache ---- */

static int64_t fake_now;
static int64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static void test_cache(void **state)
{
    (void)state;
    fake_now = 1000;
    struct profiles_cache *c = profiles_cache_new(3, fake_clock, NULL);
    assert_non_null(c);
    struct profiles_cache_entry ok = { .ok = 1, .neg = { .version = "2026-01-11", .caps = UCP_CAP_CHECKOUT } };
    struct profiles_cache_entry fail = { 0 };
    struct profiles_cache_entry got;

    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 0);
    assert_int_equal(profiles_cache_put(c, "https://a/p", &ok, 300000), 0);
    assert_int_equal(profiles_cache_put(c, "https://b/p", &fail, 30000), 0);
    assert_int_equal(profiles_cache_size(c), 2);
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 1);
    assert_int_equal(got.ok, 1);
    assert_int_equal(got.neg.caps, UCP_CAP_CHECKOUT);
    assert_int_equal(profiles_cache_get(c, "https://b/p", &got), 1);
    assert_int_equal(got.ok, 0);
    assert_int_equal(profiles_cache_get(c, "https://a/P", &got), 0); /* exact URL */

    /* the negative entry ends first: 30 s */
    fake_now += 29999;
    assert_int_equal(profiles_cache_get(c, "https://b/p", &got), 1);
    fake_now += 1;
    assert_int_equal(profiles_cache_get(c, "https://b/p", &got), 0);
    assert_int_equal(profiles_cache_size(c), 1); /* an expired entry is dropped on sight */
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 1);
    fake_now = 1000 + 300000;
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 0);
    assert_int_equal(profiles_cache_size(c), 0);

    /* ttl 0 stores nothing and drops what was there */
    assert_int_equal(profiles_cache_put(c, "https://a/p", &ok, 1000), 0);
    assert_int_equal(profiles_cache_put(c, "https://a/p", &ok, 0), 0);
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 0);
    assert_int_equal(profiles_cache_size(c), 0);

    /* replacing refreshes the value and the lifetime, not the size */
    assert_int_equal(profiles_cache_put(c, "https://a/p", &fail, 1000), 0);
    assert_int_equal(profiles_cache_put(c, "https://a/p", &ok, 5000), 0);
    assert_int_equal(profiles_cache_size(c), 1);
    fake_now += 2000;
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 1);
    assert_int_equal(got.ok, 1);

    /* bounded: the oldest insertion goes */
    assert_int_equal(profiles_cache_put(c, "https://b/p", &ok, 100000), 0);
    assert_int_equal(profiles_cache_put(c, "https://c/p", &ok, 100000), 0);
    assert_int_equal(profiles_cache_size(c), 3);
    assert_int_equal(profiles_cache_put(c, "https://d/p", &ok, 100000), 0);
    assert_int_equal(profiles_cache_size(c), 3);
    assert_int_equal(profiles_cache_get(c, "https://a/p", &got), 0);
    assert_int_equal(profiles_cache_get(c, "https://b/p", &got), 1);
    assert_int_equal(profiles_cache_get(c, "https://d/p", &got), 1);
    /* a re-put moves an entry to the young end */
    assert_int_equal(profiles_cache_put(c, "https://b/p", &ok, 100000), 0);
    assert_int_equal(profiles_cache_put(c, "https://e/p", &ok, 100000), 0);
    assert_int_equal(profiles_cache_get(c, "https://c/p", &got), 0);
    assert_int_equal(profiles_cache_get(c, "https://b/p", &got), 1);
    profiles_cache_free(c);

    /* many URLs through a small cache: the bound holds, lookups stay right */
    c = profiles_cache_new(64, fake_clock, NULL);
    char url[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(url, sizeof url, "https://p%d.example/profile", i);
        assert_int_equal(profiles_cache_put(c, url, &ok, 100000), 0);
        assert_true(profiles_cache_size(c) <= 64);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(url, sizeof url, "https://p%d.example/profile", i);
        assert_int_equal(profiles_cache_get(c, url, &got), i >= 5000 - 64);
    }
    profiles_cache_free(c);
}

/* ---- real fetches on a loop, against an in-process HTTP server ---- */

struct srv {
    int fd, port;
    pthread_t thread;
    atomic_int requests;
    atomic_int stop;
    const char *response; /* whole HTTP response */
    int delay_ms;
};

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    while (!atomic_load(&s->stop)) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        if (atomic_load(&s->stop)) {
            close(c);
            break;
        }
        char buf[4096];
        size_t n = 0;
        while (n < sizeof buf - 1) {
            ssize_t r = read(c, buf + n, sizeof buf - 1 - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            buf[n] = 0;
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        atomic_fetch_add(&s->requests, 1);
        if (s->delay_ms)
            usleep((useconds_t)s->delay_ms * 1000);
        /* the client may have given up (timeout test): no SIGPIPE */
        ssize_t w = send(c, s->response, strlen(s->response), MSG_NOSIGNAL);
        (void)w;
        close(c);
    }
    return NULL;
}

static void srv_start(struct srv *s, const char *response)
{
    memset(s, 0, sizeof *s);
    s->response = response;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    /* wake accept() with one last connection */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c, (struct sockaddr *)&a, sizeof a) != 0) { /* already gone */ }
    close(c);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

struct got {
    struct loop *loop;
    int calls, want;
    struct profiles_result res;
};

static void got_done(const struct profiles_result *res, void *ud)
{
    struct got *g = ud;
    g->calls++;
    g->res = *res;
    if (g->calls >= g->want)
        loop_stop(g->loop);
}

/* One resolution, waited for on this thread's loop. */
static int resolve_wait(struct profiles *p, struct loop *l, const char *url,
                        struct profiles_result *out)
{
    struct got g = { .loop = l, .want = 1 };
    struct profiles_wait w;
    int rc = profiles_resolve(p, l, url, out, &w, got_done, &g);
    if (rc == PROFILES_PENDING) {
        loop_run(l);
        assert_int_equal(g.calls, 1);
        *out = g.res;
    }
    return rc;
}

static double counter(const char *outcome)
{
    static const char *const labels[] = { "outcome", NULL };
    struct metric *m = metric_register("agentd_ucp_profile_fetch_total", "", METRIC_COUNTER, labels,
                                       NULL);
    const char *v[] = { outcome };
    return metric_value(metric_child(m, v));
}

#define PROFILE_CHECKOUT_ONLY                                                                        \
    "{\"ucp\":{\"version\":\"2026-01-11\",\"capabilities\":[" CAP("dev.ucp.shopping.checkout") "]}}"

static void test_fetch(void **state)
{
    (void)state;
    static char resp[1024];
    snprintf(resp, sizeof resp,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=60\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(PROFILE_CHECKOUT_ONLY), PROFILE_CHECKOUT_ONLY);
    struct srv s;
    srv_start(&s, resp);
    char allow[64], url[128];
    struct agentd_error err;
    snprintf(allow, sizeof allow, "127.0.0.1:%d", s.port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/profile", s.port);

    struct loop *l = loop_new(0);
    assert_non_null(l);

    /* 1. not on the allow-list: refused at connect, the server never sees it */
    struct profiles *p = profiles_new(NULL, NULL, &err);
    assert_non_null(p);
    double refused0 = counter("refused"), cached0 = counter("cached"), ok0 = counter("ok");
    struct profiles_result res;
    assert_int_equal(resolve_wait(p, l, url, &res), PROFILES_PENDING);
    assert_int_equal(res.outcome, PROFILES_REFUSED);
    assert_int_equal(res.degraded, 1);
    assert_int_equal(res.neg.caps, UCP_CAP_ALL);
    assert_int_equal(atomic_load(&s.requests), 0);
    assert_true(counter("refused") == refused0 + 1);
    /* remembered: the next request is answered at once, still degraded */
    assert_int_equal(resolve_wait(p, l, url, &res), 0);
    assert_int_equal(res.outcome, PROFILES_CACHED);
    assert_int_equal(res.degraded, 1);
    assert_true(counter("cached") == cached0 + 1);
    /* names that resolve to loopback are refused the same way */
    char named[128];
    snprintf(named, sizeof named, "http://localhost:%d/profile", s.port);
    assert_int_equal(resolve_wait(p, l, named, &res), PROFILES_PENDING);
    assert_int_equal(res.outcome, PROFILES_REFUSED);
    assert_int_equal(atomic_load(&s.requests), 0);
    profiles_free(p);

    /* 2. allow-listed: fetched once, negotiated, cached; concurrent
     *    requests on the loop share the one fetch; a cancelled waiter is
     *    never called */
    p = profiles_new(allow, NULL, &err);
    assert_non_null(p);
    struct got g = { .loop = l, .want = 2 };
    struct got never = { .loop = l, .want = 1 };
    struct profiles_wait w1, w2, w3;
    assert_int_equal(profiles_resolve(p, l, url, &res, &w1, got_done, &g), PROFILES_PENDING);
    assert_int_equal(profiles_resolve(p, l, url, &res, &w2, got_done, &never), PROFILES_PENDING);
    assert_int_equal(profiles_resolve(p, l, url, &res, &w3, got_done, &g), PROFILES_PENDING);
    profiles_cancel(&w2);
    profiles_cancel(&w2); /* twice is harmless */
    loop_run(l);
    assert_int_equal(g.calls, 2);
    assert_int_equal(never.calls, 0);
    assert_int_equal(g.res.outcome, PROFILES_OK);
    assert_int_equal(g.res.degraded, 0);
    assert_int_equal(g.res.neg.caps, UCP_CAP_CHECKOUT);
    assert_int_equal(atomic_load(&s.requests), 1);
    assert_true(counter("ok") == ok0 + 1);
    profiles_cancel(&w1); /* after completion: a no-op */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(resolve_wait(p, l, url, &res), 0);
        assert_int_equal(res.outcome, PROFILES_CACHED);
        assert_int_equal(res.neg.caps, UCP_CAP_CHECKOUT);
    }
    assert_int_equal(atomic_load(&s.requests), 1);

    /* 3. allow-listed but nobody listens: an error, not a refusal */
    char closed[128];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d/gone", s.port);
    profiles_free(p);
    srv_stop(&s);
    p = profiles_new(allow, NULL, &err);
    assert_int_equal(resolve_wait(p, l, closed, &res), PROFILES_PENDING);
    assert_int_equal(res.outcome, PROFILES_ERROR);
    assert_int_equal(res.degraded, 1);

    /* 4. shutdown with a fetch in flight: the waiter is unlinked, no callback */
    struct profiles_wait w4;
    struct got g4 = { .loop = l, .want = 1 };
    assert_int_equal(profiles_resolve(p, l, "http://127.0.0.1:1/late", &res, &w4, got_done, &g4),
                     PROFILES_PENDING);
    profiles_free(p);
    assert_null(w4.f);
    profiles_cancel(&w4); /* what a request's abort path does later: safe */
    assert_int_equal(g4.calls, 0);
    loop_free(l);
}

static void test_fetch_bad_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *response;
        const char *why;
    } t[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!", "garbage" },
        { "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", "404" },
        { "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n" /* never contacted: classifier data */
          "Connection: close\r\n\r\n", "redirect" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 999999\r\nConnection: close\r\n\r\n{", "too large" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n[1,2]", "not an object" },
    };
    struct loop *l = loop_new(0);
    for (size_t i = 0; i < N(t); i++) {
        struct srv s;
        srv_start(&s, t[i].response);
        char allow[64], url[128];
        struct agentd_error err;
        snprintf(allow, sizeof allow, "127.0.0.1:%d", s.port);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/profile", s.port);
        struct profiles *p = profiles_new(allow, NULL, &err);
        struct profiles_result res;
        assert_int_equal(resolve_wait(p, l, url, &res), PROFILES_PENDING);
        if (res.outcome != PROFILES_ERROR || !res.degraded || res.neg.caps != UCP_CAP_ALL)
            fail_msg("%s: outcome %d degraded %d", t[i].why, res.outcome, res.degraded);
        assert_int_equal(atomic_load(&s.requests), 1);
        profiles_free(p);
        srv_stop(&s);
    }
    loop_free(l);
}

static void test_fetch_timeout(void **state)
{
    (void)state;
    struct srv s;
    srv_start(&s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    s.delay_ms = 1500;
    char allow[64], url[128];
    struct agentd_error err;
    snprintf(allow, sizeof allow, "127.0.0.1:%d", s.port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/slow", s.port);
    struct profiles_options o;
    profiles_options_default(&o);
    o.timeout_ms = 300;
    struct loop *l = loop_new(0);
    struct profiles *p = profiles_new(allow, &o, &err);
    struct profiles_result res;
    int64_t t0 = clock_mono_ms();
    assert_int_equal(resolve_wait(p, l, url, &res), PROFILES_PENDING);
    int64_t took = clock_mono_ms() - t0;
    assert_int_equal(res.outcome, PROFILES_ERROR);
    assert_true(took >= 250 && took < 1400);
    profiles_free(p);
    loop_free(l);
    srv_stop(&s);
}

static void test_no_instance(void **state)
{
    (void)state;
    struct profiles_result res;
    struct profiles_wait w;
    assert_int_equal(profiles_resolve(NULL, NULL, "https://x/p", &res, &w, got_done, NULL), 0);
    assert_int_equal(res.degraded, 0);
    assert_int_equal(res.neg.caps, UCP_CAP_ALL);
    assert_null(w.f);
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR); /* the failures here warn by design */
    loop_global_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    metrics_reset();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_text),  cmocka_unit_test(test_classify_sockaddr),
        cmocka_unit_test(test_allowlist_parse), cmocka_unit_test(test_allowlist_match),
        cmocka_unit_test(test_allowlisted_url), cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_cache),
        cmocka_unit_test(test_fetch),           cmocka_unit_test(test_fetch_bad_bodies),
        cmocka_unit_test(test_fetch_timeout),   cmocka_unit_test(test_no_instance),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
