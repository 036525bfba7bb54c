/* UCP negotiation: the UCP-Agent header (an RFC 8941 dictionary), protocol
 * version dates and checks, capability intersection and their JSON. Pure. */
#include "commerce/ucp.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/jsondump.h"

/* ---- capabilities ---- */

static const struct {
    const char *name;
    const char *extends; /* NULL for root capabilities */
    unsigned bit;
    const char *spec;
    const char *schema;
} caps[] = {
    {UCP_CAP_CHECKOUT_NAME, NULL, UCP_CAP_CHECKOUT, "https://ucp.dev/specification/checkout",
     "https://ucp.dev/schemas/shopping/checkout.json"},
    {UCP_CAP_FULFILLMENT_NAME, UCP_CAP_CHECKOUT_NAME, UCP_CAP_FULFILLMENT,
     "https://ucp.dev/specification/fulfillment", "https://ucp.dev/schemas/shopping/fulfillment.json"},
    {UCP_CAP_DISCOUNT_NAME, UCP_CAP_CHECKOUT_NAME, UCP_CAP_DISCOUNT,
     "https://ucp.dev/specification/discount", "https://ucp.dev/schemas/shopping/discount.json"},
    {UCP_CAP_ORDER_NAME, NULL, UCP_CAP_ORDER, "https://ucp.dev/specification/order",
     "https://ucp.dev/schemas/shopping/order.json"},
    {UCP_CAP_BUYER_CONSENT_NAME, UCP_CAP_CHECKOUT_NAME, UCP_CAP_BUYER_CONSENT,
     "https://ucp.dev/specification/buyer-consent",
     "https://ucp.dev/schemas/shopping/buyer_consent.json"},
};
#define N_CAPS (sizeof caps / sizeof caps[0])

static unsigned cap_bit(const char *name)
{
    for (size_t i = 0; name && i < N_CAPS; i++)
        if (strcmp(caps[i].name, name) == 0)
            return caps[i].bit;
    return 0;
}

void ucp_negotiated_all(struct ucp_negotiated *out)
{
    snprintf(out->version, sizeof out->version, "%s", UCP_VERSION);
    out->caps = UCP_CAP_ALL;
    out->webhook_url[0] = 0;
}

int ucp_negotiate(const json_t *platform_caps, struct ucp_negotiated *out, struct agentd_error *e)
{
    (void)e;
    snprintf(out->version, sizeof out->version, "%s", UCP_VERSION);
    out->caps = 0;
    out->webhook_url[0] = 0;
    /* 1. intersection by name (an array of {name}, or keyed by name) */
    if (json_is_array(platform_caps)) {
        size_t i;
        json_t *v;
        json_array_foreach(platform_caps, i, v)
        {
            json_t *name = json_object_get(v, "name");
            if (json_is_string(name))
                out->caps |= cap_bit(json_string_value(name));
        }
    } else if (json_is_object(platform_caps)) {
        const char *name;
        json_t *v;
        json_object_foreach((json_t *)platform_caps, name, v)
            out->caps |= cap_bit(name);
    }
    /* 2. Our endpoints are checkout endpoints: calling one implies checkout.
     * A profile that says nothing about checkout (none of it nor its
     * extensions: e.g. only the order capability, to name its webhook) gets
     * checkout as we offer it, extensions included, as when no profile can
     * be read; one that lists any of them negotiates them. */
    unsigned family = UCP_CAP_CHECKOUT;
    for (size_t k = 0; k < N_CAPS; k++)
        if (caps[k].extends && strcmp(caps[k].extends, UCP_CAP_CHECKOUT_NAME) == 0)
            family |= caps[k].bit;
    if (!(out->caps & family))
        out->caps |= family;
    out->caps |= UCP_CAP_CHECKOUT;
    /* 3. prune extensions whose parent is gone, until stable (handles
     * chains of extensions). */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t k = 0; k < N_CAPS; k++) {
            if (!(out->caps & caps[k].bit) || !caps[k].extends)
                continue;
            if (!(out->caps & cap_bit(caps[k].extends))) {
                out->caps &= ~caps[k].bit;
                changed = 1;
            }
        }
    }
    return 0;
}

static json_t *meta_build(const char *version, unsigned set)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < N_CAPS; k++) {
        if (!(set & caps[k].bit))
            continue;
        if (json_array_append_new(a, json_pack("{s:s, s:s}", "name", caps[k].name, "version",
                                               UCP_VERSION))) {
            json_decref(a);
            return NULL;
        }
    }
    if (!a)
        return NULL;
    return json_pack("{s:s, s:o}", "version", version, "capabilities", a);
}

/* Every reply carries this block, and it depends only on the capability set
 * (the version is always ours): one tree per set, built on first use and
 * shared by reference — jansson's reference counts are atomic, and nothing
 * edits a reply's ucp member. Kept for the process's life. */
static _Atomic(json_t *) meta_cache[UCP_CAP_ALL + 1];

json_t *ucp_response_meta_json(const struct ucp_negotiated *neg)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    unsigned set = neg->caps & UCP_CAP_ALL;
    if (neg->version[0] && strcmp(neg->version, UCP_VERSION) != 0)
        return meta_build(neg->version, set);
    json_t *m = atomic_load_explicit(&meta_cache[set], memory_order_acquire);
    if (!m) {
        json_t *fresh = meta_build(UCP_VERSION, set), *none = NULL;
        if (!fresh)
            return NULL;
        if (atomic_compare_exchange_strong_explicit(&meta_cache[set], &none, fresh,
                                                    memory_order_acq_rel, memory_order_acquire))
            m = fresh;
        else { /* another thread built it first */
            json_decref(fresh);
            m = none;
        }
    }
    return json_incref(m);
}

/* Why: every reply cut from a saved document starts with this member, and
 * dumping the tree was a tenth of the reply's cost. */
static _Atomic(char *) meta_text_cache[UCP_CAP_ALL + 1];

const char *ucp_response_meta_text(const struct ucp_negotiated *neg, size_t *len)
{
    unsigned set = neg->caps & UCP_CAP_ALL;
    if (neg->version[0] && strcmp(neg->version, UCP_VERSION) != 0)
        return NULL;
    char *t = atomic_load_explicit(&meta_text_cache[set], memory_order_acquire);
    if (!t) {
        json_t *m = ucp_response_meta_json(neg);
        char *fresh = m ? jsondump(m, JSON_COMPACT, NULL) : NULL, *none = NULL;
        json_decref(m);
        if (!fresh)
            return NULL;
        if (atomic_compare_exchange_strong_explicit(&meta_text_cache[set], &none, fresh,
                                                    memory_order_acq_rel, memory_order_acquire))
            t = fresh;
        else { /* another thread dumped it first */
            free(fresh);
            t = none;
        }
    }
    *len = strlen(t);
    return t;
}

json_t *ucp_profile_capabilities_json(void)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < N_CAPS; k++) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", caps[k].name, "version",
                              UCP_VERSION, "spec", caps[k].spec, "schema", caps[k].schema);
        if (o && caps[k].extends)
            json_object_set_new(o, "extends", json_string(caps[k].extends));
        if (!o || json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- versions ---- */

int ucp_version_valid(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= ucp_days_in_month(y, m);
}

int ucp_version_compare(const char *a, const char *b)
{
    if (!ucp_version_valid(a) || !ucp_version_valid(b))
        return AGENTD_EINVAL;
    /* Fixed-width YYYY-MM-DD: byte order is date order. */
    int c = strcmp(a, b);
    return c < 0 ? -1 : c > 0;
}

int ucp_version_check(const char *client_version, struct agentd_error *e)
{
    if (!client_version || !client_version[0])
        return 0;
    if (!ucp_version_valid(client_version))
        return agentd_fail(e, AGENTD_EINVAL, "invalid_version", NULL,
                             "'%.16s' is not a UCP version (YYYY-MM-DD)", client_version);
    if (ucp_version_compare(client_version, UCP_VERSION) > 0)
        return agentd_fail(e, AGENTD_EUNPROCESSABLE, "version_unsupported", NULL,
                             "Version %s is not supported. This business implements version %s.",
                             client_version, UCP_VERSION);
    return 0;
}

/* ---- UCP-Agent: RFC 8941 dictionary ---- */

#define SF_KEY_MAX 64
#define SF_MEMBERS_MAX 32

/* fmt is one of this file's literals, each taking a string and an offset. */
static int sf_fail(struct agentd_error *e, const char *fmt, const char *a, size_t off)
{
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, fmt, a ? a : "", off);
    agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "%s", msg);
    return AGENTD_EINVAL;
}

static int lcalpha(int c)
{
    return c >= 'a' && c <= 'z';
}

static int tchar(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

enum sf_type { SF_STRING, SF_OTHER };

/* Parses one bare item at *pp into val (strings only are kept). */
static int sf_bare_item(const char **pp, const char *start, enum sf_type *type, char *val,
                        size_t vlen, const char *key, struct agentd_error *e)
{
    const char *p = *pp;
    size_t n = 0;
    val[0] = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            char c = *p++;
            if (c == 0)
                return sf_fail(e, "UCP-Agent: unterminated string for '%s' (offset %zu)",
                               key, (size_t)(p - 1 - start));
            if (c == '\\') {
                c = *p++;
                if (c == 0)
                    return sf_fail(e,
                                   "UCP-Agent: unterminated string for '%s' (offset %zu)", key,
                                   (size_t)(p - 1 - start));
                if (c != '"' && c != '\\')
                    return sf_fail(e,
                                   "UCP-Agent: bad escape in string for '%s' (offset %zu)", key,
                                   (size_t)(p - 2 - start));
            } else if (c == '"') {
                break;
            } else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
                return sf_fail(e, "UCP-Agent: invalid character in string for '%s' "
                                            "(offset %zu)",
                               key, (size_t)(p - 1 - start));
            }
            if (n + 1 >= vlen)
                return sf_fail(e, "UCP-Agent: value of '%s' is too long (offset %zu)",
                               key, (size_t)(p - start));
            val[n++] = c;
        }
        val[n] = 0;
        *type = SF_STRING;
    } else if (*p == '-' || isdigit((unsigned char)*p)) {
        /* sf-integer (<= 15 digits) or sf-decimal (<= 12 + 3 digits) */
        if (*p == '-')
            p++;
        size_t ip = 0, fp = 0;
        while (isdigit((unsigned char)*p) && ip <= 15)
            p++, ip++;
        if (ip == 0 || ip > 15)
            return sf_fail(e, "UCP-Agent: bad number for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p) && fp <= 3)
                p++, fp++;
            if (ip > 12 || fp == 0 || fp > 3)
                return sf_fail(e, "UCP-Agent: bad decimal for '%s' (offset %zu)", key,
                               (size_t)(p - start));
        }
        *type = SF_OTHER;
    } else if (isalpha((unsigned char)*p) || *p == '*') {
        p++;
        while (tchar((unsigned char)*p) || *p == ':' || *p == '/')
            p++;
        *type = SF_OTHER;
    } else if (*p == ':') {
        p++;
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '/' || *p == '=')
            p++;
        if (*p != ':')
            return sf_fail(e, "UCP-Agent: bad byte sequence for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        p++;
        *type = SF_OTHER;
    } else if (*p == '?') {
        p++;
        if (*p != '0' && *p != '1')
            return sf_fail(e, "UCP-Agent: bad boolean for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        p++;
        *type = SF_OTHER;
    } else {
        return sf_fail(e, "UCP-Agent: invalid value for '%s' (offset %zu)", key,
                       (size_t)(p - start));
    }
    *pp = p;
    return 0;
}

/* Parameters after a member (";key[=item]"...). A "version" parameter is
 * kept in version (checked like the member); the rest are parsed and
 * ignored, as RFC 8941 lets a receiver ignore what it does not know. */
static int sf_params(const char **pp, const char *start, const char *member, char *version,
                     struct agentd_error *e)
{
    const char *p = *pp;
    while (*p == ';') {
        p++;
        while (*p == ' ')
            p++;
        char key[SF_KEY_MAX + 1];
        size_t kn = 0;
        if (!lcalpha((unsigned char)*p) && *p != '*')
            return sf_fail(e, "UCP-Agent: expected a lowercase parameter key after '%s' "
                              "(offset %zu)",
                           member, (size_t)(p - start));
        while (lcalpha((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
               *p == '-' || *p == '.' || *p == '*') {
            if (kn >= SF_KEY_MAX)
                return sf_fail(e, "UCP-Agent: parameter key too long%s at offset %zu", NULL,
                               (size_t)(p - start));
            key[kn++] = *p++;
        }
        key[kn] = 0;
        enum sf_type type = SF_OTHER;
        char val[UCP_PROFILE_URL_MAX + 1];
        val[0] = 0;
        if (*p == '=') {
            p++;
            int rc = sf_bare_item(&p, start, &type, val, sizeof val, key, e);
            if (rc)
                return rc;
        }
        if (strcmp(key, "version") == 0 && strcmp(member, "profile") == 0) {
            if (type != SF_STRING)
                return sf_fail(e, "UCP-Agent: '%s' must be a quoted string (offset %zu)", key,
                               (size_t)(p - start));
            if (!ucp_version_valid(val))
                return sf_fail(e, "UCP-Agent: version '%s' is not YYYY-MM-DD", val, 0);
            memcpy(version, val, 11);
        }
    }
    *pp = p;
    return 0;
}

/* An absolute URL we are willing to fetch a profile from: scheme, a host,
 * no userinfo (an '@' lets "https://trusted@evil" fool readers), no
 * spaces or quotes. */
static int profile_url_ok(const char *u, unsigned flags)
{
    const char *rest;
    if (strncmp(u, "https://", 8) == 0)
        rest = u + 8;
    else if ((flags & UCP_AGENT_ALLOW_HTTP) && strncmp(u, "http://", 7) == 0)
        rest = u + 7;
    else
        return 0;
    size_t host = strcspn(rest, "/?#");
    if (host == 0)
        return 0;
    for (size_t i = 0; i < host; i++) {
        char c = rest[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '[' ||
              c == ']'))
            return 0;
    }
    for (const char *p = u; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '\\' || *p == '<' || *p == '>')
            return 0;
    return 1;
}

static int agent_parse(const char *h, unsigned flags, struct ucp_agent *out, struct agentd_error *e)
{
    if (!h)
        return sf_fail(e, "UCP-Agent header is missing%s", NULL, 0);
    size_t len = strnlen(h, UCP_AGENT_HEADER_MAX + 1);
    if (len > UCP_AGENT_HEADER_MAX)
        return sf_fail(e, "UCP-Agent header is longer than %s%zu bytes", "",
                       (size_t)UCP_AGENT_HEADER_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c != '\t' && (c < 0x20 || c > 0x7e))
            return sf_fail(e, "UCP-Agent: non-ASCII or control byte%s at offset %zu",
                           NULL, i);
    }
    const char *p = h;
    while (*p == ' ')
        p++;
    if (!*p)
        return sf_fail(e, "UCP-Agent header is empty%s", NULL, 0);
    char keys[SF_MEMBERS_MAX][SF_KEY_MAX + 1];
    size_t nkeys = 0;
    int have_profile = 0, have_version = 0;
    for (;;) {
        char key[SF_KEY_MAX + 1];
        size_t kn = 0;
        if (!lcalpha((unsigned char)*p) && *p != '*')
            return sf_fail(e, "UCP-Agent: expected a lowercase key%s at offset %zu", NULL,
                           (size_t)(p - h));
        while (lcalpha((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
               *p == '-' || *p == '.' || *p == '*') {
            if (kn >= SF_KEY_MAX)
                return sf_fail(e, "UCP-Agent: key too long%s at offset %zu", NULL,
                               (size_t)(p - h));
            key[kn++] = *p++;
        }
        key[kn] = 0;
        for (size_t k = 0; k < nkeys; k++)
            if (strcmp(keys[k], key) == 0)
                return sf_fail(e, "UCP-Agent: duplicate key '%s' (offset %zu)", key,
                               (size_t)(p - h));
        if (nkeys >= SF_MEMBERS_MAX)
            return sf_fail(e, "UCP-Agent: too many members%s (offset %zu)", NULL,
                           (size_t)(p - h));
        memcpy(keys[nkeys++], key, kn + 1);

        enum sf_type type = SF_OTHER; /* a bare key is boolean true */
        char val[UCP_PROFILE_URL_MAX + 1];
        val[0] = 0;
        if (*p == '=') {
            p++;
            if (*p == '(')
                return sf_fail(e, "UCP-Agent: inner lists are not allowed ('%s', offset "
                                            "%zu)",
                               key, (size_t)(p - h));
            int rc = sf_bare_item(&p, h, &type, val, sizeof val, key, e);
            if (rc)
                return rc;
        }
        char param_version[11] = "";
        int rc = sf_params(&p, h, key, param_version, e);
        if (rc)
            return rc;
        if (strcmp(key, "profile") == 0) {
            if (type != SF_STRING)
                return sf_fail(e, "UCP-Agent: '%s' must be a quoted string (offset %zu)",
                               key, (size_t)(p - h));
            if (!profile_url_ok(val, flags))
                return sf_fail(e,
                               "UCP-Agent: profile must be an absolute https URL%s (offset %zu)",
                               NULL, (size_t)(p - h));
            memcpy(out->profile, val, strlen(val) + 1);
            have_profile = 1;
            if (param_version[0] && !have_version)
                memcpy(out->version, param_version, sizeof param_version);
        } else if (strcmp(key, "version") == 0) {
            if (type != SF_STRING)
                return sf_fail(e, "UCP-Agent: '%s' must be a quoted string (offset %zu)",
                               key, (size_t)(p - h));
            if (!ucp_version_valid(val))
                return sf_fail(e, "UCP-Agent: version '%s' is not YYYY-MM-DD", val, 0);
            memcpy(out->version, val, 11);
            have_version = 1;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (*p != ',')
            return sf_fail(e, "UCP-Agent: expected ','%s at offset %zu", NULL,
                           (size_t)(p - h));
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return sf_fail(e, "UCP-Agent: trailing comma%s at offset %zu", NULL,
                           (size_t)(p - h));
    }
    if (!have_profile) {
        return sf_fail(e, "UCP-Agent: profile=\"https://...\" is required%s", NULL, 0);
    }
    if (e)
        *e = (struct agentd_error){ 0 };
    return 0;
}

int ucp_agent_parse(const char *h, unsigned flags, struct ucp_agent *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    int rc = agent_parse(h, flags, out, e);
    if (rc)
        memset(out, 0, sizeof *out); /* nothing half-parsed escapes */
    return rc;
}
