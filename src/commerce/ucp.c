/* UCP 2026-01-11 mapping: checkout/order JSON both ways, the UCP-Agent
 * structured-field header, version checks and capability negotiation. Pure. */
#include "commerce/ucp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/money.h"
#include "commerce/pricing.h"
#include "core/err.h"

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
}

int ucp_negotiate(const json_t *platform_caps, struct ucp_negotiated *out, struct agentd_error *e)
{
    (void)e;
    snprintf(out->version, sizeof out->version, "%s", UCP_VERSION);
    out->caps = 0;
    if (!json_is_array(platform_caps))
        return 0;
    /* 1. intersection by name */
    size_t i;
    json_t *v;
    json_array_foreach(platform_caps, i, v)
    {
        json_t *name = json_object_get(v, "name");
        if (json_is_string(name))
            out->caps |= cap_bit(json_string_value(name));
    }
    /* 2-3. prune extensions whose parent is gone, until stable (handles
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

json_t *ucp_response_meta_json(const struct ucp_negotiated *neg)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    json_t *a = json_array();
    for (size_t k = 0; a && k < N_CAPS; k++) {
        if (!(neg->caps & caps[k].bit))
            continue;
        if (json_array_append_new(a, json_pack("{s:s, s:s}", "name", caps[k].name, "version",
                                               UCP_VERSION))) {
            json_decref(a);
            return NULL;
        }
    }
    if (!a)
        return NULL;
    return json_pack("{s:s, s:o}", "version", neg->version[0] ? neg->version : UCP_VERSION,
                     "capabilities", a);
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

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

int ucp_version_valid(const char *s)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return 0;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
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

static int sf_fail(char *err, size_t errlen, const char *fmt, const char *a, size_t off)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a ? a : "", off);
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
                        size_t vlen, const char *key, char *err, size_t errlen)
{
    const char *p = *pp;
    size_t n = 0;
    val[0] = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            char c = *p++;
            if (c == 0)
                return sf_fail(err, errlen, "UCP-Agent: unterminated string for '%s' (offset %zu)",
                               key, (size_t)(p - 1 - start));
            if (c == '\\') {
                c = *p++;
                if (c == 0)
                    return sf_fail(err, errlen,
                                   "UCP-Agent: unterminated string for '%s' (offset %zu)", key,
                                   (size_t)(p - 1 - start));
                if (c != '"' && c != '\\')
                    return sf_fail(err, errlen,
                                   "UCP-Agent: bad escape in string for '%s' (offset %zu)", key,
                                   (size_t)(p - 2 - start));
            } else if (c == '"') {
                break;
            } else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
                return sf_fail(err, errlen, "UCP-Agent: invalid character in string for '%s' "
                                            "(offset %zu)",
                               key, (size_t)(p - 1 - start));
            }
            if (n + 1 >= vlen)
                return sf_fail(err, errlen, "UCP-Agent: value of '%s' is too long (offset %zu)",
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
            return sf_fail(err, errlen, "UCP-Agent: bad number for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p) && fp <= 3)
                p++, fp++;
            if (ip > 12 || fp == 0 || fp > 3)
                return sf_fail(err, errlen, "UCP-Agent: bad decimal for '%s' (offset %zu)", key,
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
            return sf_fail(err, errlen, "UCP-Agent: bad byte sequence for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        p++;
        *type = SF_OTHER;
    } else if (*p == '?') {
        p++;
        if (*p != '0' && *p != '1')
            return sf_fail(err, errlen, "UCP-Agent: bad boolean for '%s' (offset %zu)", key,
                           (size_t)(p - start));
        p++;
        *type = SF_OTHER;
    } else {
        return sf_fail(err, errlen, "UCP-Agent: invalid value for '%s' (offset %zu)", key,
                       (size_t)(p - start));
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

static int agent_parse(const char *h, unsigned flags, struct ucp_agent *out, char *err,
                       size_t errlen)
{
    if (!h)
        return sf_fail(err, errlen, "UCP-Agent header is missing%s", NULL, 0);
    size_t len = strnlen(h, UCP_AGENT_HEADER_MAX + 1);
    if (len > UCP_AGENT_HEADER_MAX)
        return sf_fail(err, errlen, "UCP-Agent header is longer than %s%zu bytes", "",
                       (size_t)UCP_AGENT_HEADER_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c != '\t' && (c < 0x20 || c > 0x7e))
            return sf_fail(err, errlen, "UCP-Agent: non-ASCII or control byte%s at offset %zu",
                           NULL, i);
    }
    const char *p = h;
    while (*p == ' ')
        p++;
    if (!*p)
        return sf_fail(err, errlen, "UCP-Agent header is empty%s", NULL, 0);
    char keys[SF_MEMBERS_MAX][SF_KEY_MAX + 1];
    size_t nkeys = 0;
    int have_profile = 0;
    for (;;) {
        char key[SF_KEY_MAX + 1];
        size_t kn = 0;
        if (!lcalpha((unsigned char)*p) && *p != '*')
            return sf_fail(err, errlen, "UCP-Agent: expected a lowercase key%s at offset %zu", NULL,
                           (size_t)(p - h));
        while (lcalpha((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' ||
               *p == '-' || *p == '.' || *p == '*') {
            if (kn >= SF_KEY_MAX)
                return sf_fail(err, errlen, "UCP-Agent: key too long%s at offset %zu", NULL,
                               (size_t)(p - h));
            key[kn++] = *p++;
        }
        key[kn] = 0;
        for (size_t k = 0; k < nkeys; k++)
            if (strcmp(keys[k], key) == 0)
                return sf_fail(err, errlen, "UCP-Agent: duplicate key '%s' (offset %zu)", key,
                               (size_t)(p - h));
        if (nkeys >= SF_MEMBERS_MAX)
            return sf_fail(err, errlen, "UCP-Agent: too many members%s (offset %zu)", NULL,
                           (size_t)(p - h));
        memcpy(keys[nkeys++], key, kn + 1);

        enum sf_type type = SF_OTHER; /* a bare key is boolean true */
        char val[UCP_PROFILE_URL_MAX + 1];
        val[0] = 0;
        if (*p == '=') {
            p++;
            if (*p == '(')
                return sf_fail(err, errlen, "UCP-Agent: inner lists are not allowed ('%s', offset "
                                            "%zu)",
                               key, (size_t)(p - h));
            int rc = sf_bare_item(&p, h, &type, val, sizeof val, key, err, errlen);
            if (rc)
                return rc;
        }
        if (*p == ';')
            return sf_fail(err, errlen, "UCP-Agent: parameters are not allowed ('%s', offset %zu)",
                           key, (size_t)(p - h));
        if (strcmp(key, "profile") == 0) {
            if (type != SF_STRING)
                return sf_fail(err, errlen, "UCP-Agent: '%s' must be a quoted string (offset %zu)",
                               key, (size_t)(p - h));
            if (!profile_url_ok(val, flags))
                return sf_fail(err, errlen,
                               "UCP-Agent: profile must be an absolute https URL%s (offset %zu)",
                               NULL, (size_t)(p - h));
            memcpy(out->profile, val, strlen(val) + 1);
            have_profile = 1;
        } else if (strcmp(key, "version") == 0) {
            if (type != SF_STRING)
                return sf_fail(err, errlen, "UCP-Agent: '%s' must be a quoted string (offset %zu)",
                               key, (size_t)(p - h));
            if (!ucp_version_valid(val))
                return sf_fail(err, errlen, "UCP-Agent: version '%s' is not YYYY-MM-DD", val, 0);
            memcpy(out->version, val, 11);
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (*p != ',')
            return sf_fail(err, errlen, "UCP-Agent: expected ','%s at offset %zu", NULL,
                           (size_t)(p - h));
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return sf_fail(err, errlen, "UCP-Agent: trailing comma%s at offset %zu", NULL,
                           (size_t)(p - h));
    }
    if (!have_profile) {
        return sf_fail(err, errlen, "UCP-Agent: profile=\"https://...\" is required%s", NULL, 0);
    }
    if (err && errlen)
        err[0] = 0;
    return 0;
}

int ucp_agent_parse(const char *h, unsigned flags, struct ucp_agent *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = agent_parse(h, flags, out, err, errlen);
    if (rc)
        memset(out, 0, sizeof *out); /* nothing half-parsed escapes */
    return rc;
}

/* ---- time ---- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int ucp_time_format(int64_t t, char *buf, size_t len)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return AGENTD_EINVAL;
    int n = snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    return n > 0 && (size_t)n < len ? 0 : AGENTD_EINVAL;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int ucp_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &se))
        return AGENTD_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60)
        return AGENTD_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return AGENTD_EINVAL;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return AGENTD_EINVAL;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return AGENTD_EINVAL;
    }
    if (*p)
        return AGENTD_EINVAL;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    return 0;
}

/* ---- messages and errors ---- */

static const char *msg_type_name(enum checkout_msg_type t)
{
    return t == CHECKOUT_MSG_WARNING ? "warning" : t == CHECKOUT_MSG_INFO ? "info" : "error";
}

json_t *ucp_message_json(const struct checkout_message *m)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "type", msg_type_name(m->type), "code",
                          m->code ? m->code : "", "content", m->content ? m->content : "");
    if (!o)
        return NULL;
    const char *sev = checkout_severity_name(m->severity);
    if (m->type == CHECKOUT_MSG_ERROR && !sev)
        sev = "recoverable"; /* required on errors by the schema */
    if ((sev && json_object_set_new(o, "severity", json_string(sev))) ||
        (m->path && m->path[0] && json_object_set_new(o, "path", json_string(m->path)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ucp_error_json(const char *code, const char *content, const char *severity,
                       const char *path)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "code",
                          code ? code : "invalid_request", "content", content ? content : "",
                          "severity", severity ? severity : "recoverable");
    if (m && path && path[0] && json_object_set_new(m, "path", json_string(path))) {
        json_decref(m);
        return NULL;
    }
    if (!m)
        return NULL;
    return json_pack("{s:s, s:[o]}", "status", "requires_escalation", "messages", m);
}

/* ---- checkout to JSON ---- */

/* Sets key to a string when s is non-NULL; returns nonzero on failure. */
static int put_str(json_t *o, const char *key, const char *s)
{
    return s ? json_object_set_new(o, key, json_string(s)) : 0;
}

static json_t *buyer_json(const struct checkout_buyer *b)
{
    json_t *o = json_object();
    if (!o || put_str(o, "first_name", b->first_name) || put_str(o, "last_name", b->last_name) ||
        put_str(o, "full_name", b->full_name) || put_str(o, "email", b->email) ||
        put_str(o, "phone_number", b->phone_number)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *address_json(const struct postal_address *a, int with_id)
{
    json_t *o = json_object();
    if (!o || (with_id && put_str(o, "id", a->id)) ||
        put_str(o, "street_address", a->street_address) ||
        put_str(o, "extended_address", a->extended_address) ||
        put_str(o, "address_locality", a->address_locality) ||
        put_str(o, "address_region", a->address_region) ||
        put_str(o, "postal_code", a->postal_code) ||
        put_str(o, "address_country", a->address_country) ||
        put_str(o, "first_name", a->first_name) || put_str(o, "last_name", a->last_name) ||
        put_str(o, "full_name", a->full_name) || put_str(o, "phone_number", a->phone_number)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *item_json(const struct line_item *li)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "id", li->item_id ? li->item_id : "", "title",
                          li->title ? li->title : (li->item_id ? li->item_id : ""), "price",
                          (json_int_t)li->price);
    if (o && put_str(o, "image_url", li->image_url)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *line_ids_json(const struct checkout *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n_lines; i++)
        if (json_array_append_new(a, json_string(c->lines[i].id))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *fulfillment_json(const struct checkout *c)
{
    json_t *methods = json_array();
    for (size_t mi = 0; methods && mi < c->n_methods; mi++) {
        const struct fulfillment_method *m = &c->methods[mi];
        json_t *dests = json_array(), *groups = json_array();
        for (size_t d = 0; dests && d < m->n_destinations; d++)
            if (json_array_append_new(dests, address_json(&m->destinations[d], 1)))
                goto fail_m;
        for (size_t g = 0; groups && g < m->n_groups; g++) {
            const struct fulfillment_group *fg = &m->groups[g];
            json_t *opts = json_array();
            for (size_t o = 0; opts && o < fg->n_options; o++) {
                const struct fulfillment_option *op = &fg->options[o];
                json_t *oj = json_pack("{s:s, s:s, s:[{s:s, s:I}]}", "id", op->id, "title",
                                       op->title ? op->title : op->id, "totals", "type", "total",
                                       "amount", (json_int_t)op->amount);
                if (!oj || put_str(oj, "description", op->description) ||
                    json_array_append_new(opts, oj)) {
                    json_decref(opts);
                    goto fail_m;
                }
            }
            json_t *gj = opts ? json_pack("{s:s, s:o, s:o}", "id", fg->id, "line_item_ids",
                                          line_ids_json(c), "options", opts)
                              : NULL;
            if (!gj || json_object_set_new(gj, "selected_option_id",
                                           fg->selected_option_id
                                               ? json_string(fg->selected_option_id)
                                               : json_null()) ||
                json_array_append_new(groups, gj))
                goto fail_m;
        }
        json_t *mj = json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", m->id, "type",
                               m->type ? m->type : "shipping", "line_item_ids", line_ids_json(c),
                               "destinations", dests, "groups", groups);
        dests = groups = NULL;
        if (!mj || json_object_set_new(mj, "selected_destination_id",
                                       m->selected_destination_id
                                           ? json_string(m->selected_destination_id)
                                           : json_null()) ||
            json_array_append_new(methods, mj)) {
            json_decref(methods);
            return NULL;
        }
        continue;
    fail_m:
        json_decref(dests);
        json_decref(groups);
        json_decref(methods);
        return NULL;
    }
    return methods ? json_pack("{s:o}", "methods", methods) : NULL;
}

static json_t *discounts_json(const struct checkout *c)
{
    json_t *codes = json_array(), *applied = json_array();
    for (size_t i = 0; codes && i < c->n_codes; i++)
        if (json_array_append_new(codes, json_string(c->codes[i])))
            goto fail;
    for (size_t i = 0; applied && i < c->n_applied; i++) {
        const struct applied_discount *a = &c->applied[i];
        json_t *allocs = json_array();
        for (size_t k = 0; allocs && k < a->n_alloc; k++) {
            if (!a->alloc[k])
                continue;
            char path[48];
            snprintf(path, sizeof path, "$.line_items[%zu]", k);
            if (json_array_append_new(allocs, json_pack("{s:s, s:I}", "path", path, "amount",
                                                        (json_int_t)a->alloc[k]))) {
                json_decref(allocs);
                goto fail;
            }
        }
        json_t *aj = allocs ? json_pack("{s:s, s:s, s:I, s:s, s:i, s:o}", "code", a->code,
                                        "title", a->title, "amount", (json_int_t)a->amount,
                                        "method",
                                        a->type == DISCOUNT_PERCENTAGE ? "each" : "across",
                                        "priority", a->priority, "allocations", allocs)
                            : NULL;
        if (!aj || json_array_append_new(applied, aj))
            goto fail;
    }
    if (!codes || !applied)
        goto fail;
    return json_pack("{s:o, s:o}", "codes", codes, "applied", applied);
fail:
    json_decref(codes);
    json_decref(applied);
    return NULL;
}

static int has_selected_option(const struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++)
        for (size_t g = 0; g < c->methods[m].n_groups; g++)
            if (c->methods[m].groups[g].selected_option_id)
                return 1;
    return 0;
}

static int has_destination(const struct checkout *c)
{
    for (size_t m = 0; m < c->n_methods; m++)
        if (c->methods[m].selected_destination_id)
            return 1;
    return 0;
}

static json_t *payment_json(const struct checkout *c, int include_tokens)
{
    json_t *h = c->payment.handlers ? json_deep_copy(c->payment.handlers) : json_array();
    json_t *ins = json_array();
    for (size_t i = 0; ins && i < c->payment.n_instruments; i++)
        if (json_array_append_new(ins, payment_instrument_to_json(&c->payment.instruments[i],
                                                                  include_tokens))) {
            json_decref(ins);
            ins = NULL;
        }
    if (!h || !ins) {
        json_decref(h);
        json_decref(ins);
        return NULL;
    }
    json_t *p = json_pack("{s:o, s:o}", "handlers", h, "instruments", ins);
    if (p && put_str(p, "selected_instrument_id", c->payment.selected_instrument_id)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *to_json(const struct checkout *c, const struct ucp_negotiated *neg, int doc)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    json_t *o = json_object();
    json_t *lines = json_array(), *msgs = json_array(), *links = json_array();
    if (!o || !lines || !msgs || !links)
        goto fail;
    for (size_t i = 0; i < c->n_lines; i++) {
        const struct line_item *li = &c->lines[i];
        json_t *lj = json_pack("{s:s, s:o, s:I, s:o}", "id", li->id, "item", item_json(li),
                               "quantity", (json_int_t)li->quantity, "totals",
                               pricing_line_totals_json(&li->totals));
        if (!lj || json_array_append_new(lines, lj))
            goto fail;
    }
    for (size_t i = 0; i < c->n_messages; i++)
        if (json_array_append_new(msgs, ucp_message_json(&c->messages[i])))
            goto fail;
    for (size_t i = 0; i < c->n_links; i++) {
        const struct checkout_link *l = &c->links[i];
        json_t *lj = json_pack("{s:s, s:s}", "type", l->type ? l->type : "", "url",
                               l->url ? l->url : "");
        if (!lj || put_str(lj, "title", l->title) || json_array_append_new(links, lj)) {
            json_decref(lj);
            goto fail;
        }
    }
    int bad = json_object_set_new(o, "ucp", ucp_response_meta_json(neg));
    bad |= json_object_set_new(o, "id", json_string(c->id));
    bad |= json_object_set_new(o, "status", json_string(checkout_status_name(c->status)));
    bad |= json_object_set_new(o, "currency", json_string(c->currency));
    bad |= json_object_set_new(o, "line_items", lines);
    lines = NULL;
    if (c->has_buyer)
        bad |= json_object_set_new(o, "buyer", buyer_json(&c->buyer));
    bad |= json_object_set_new(o, "totals", pricing_totals_json(&c->totals, has_selected_option(c),
                                                                has_destination(c)));
    if (c->n_messages) {
        bad |= json_object_set_new(o, "messages", msgs);
        msgs = NULL;
    }
    bad |= json_object_set_new(o, "links", links);
    links = NULL;
    if (c->expires_at) {
        char ts[32];
        if (ucp_time_format(c->expires_at, ts, sizeof ts) == 0)
            bad |= json_object_set_new(o, "expires_at", json_string(ts));
    }
    /* Terminal sessions have nowhere to continue to (checkout.md). */
    if (c->continue_url && !checkout_status_terminal(c->status))
        bad |= json_object_set_new(o, "continue_url", json_string(c->continue_url));
    bad |= json_object_set_new(o, "payment", payment_json(c, 0));
    if ((neg->caps & UCP_CAP_FULFILLMENT) && c->n_methods)
        bad |= json_object_set_new(o, "fulfillment", fulfillment_json(c));
    if ((neg->caps & UCP_CAP_DISCOUNT) && (c->n_codes || c->n_applied))
        bad |= json_object_set_new(o, "discounts", discounts_json(c));
    if (c->order_id)
        bad |= json_object_set_new(o, "order",
                                   json_pack("{s:s, s:s}", "id", c->order_id, "permalink_url",
                                             c->order_permalink_url ? c->order_permalink_url : ""));
    if (doc) {
        json_t *lt = json_array();
        for (size_t i = 0; lt && i < c->n_lines; i++) {
            const struct line_totals *t = &c->lines[i].totals;
            if (json_array_append_new(lt, json_pack("[I,I,I,I,I]", (json_int_t)t->base_amount,
                                                    (json_int_t)t->discount,
                                                    (json_int_t)t->subtotal, (json_int_t)t->tax,
                                                    (json_int_t)t->total))) {
                json_decref(lt);
                lt = NULL;
            }
        }
        const struct checkout_totals *t = &c->totals;
        json_t *in = json_pack(
            "{s:I, s:I, s:I, s:i, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "version",
            (json_int_t)c->version, "created_at", (json_int_t)c->created_at, "updated_at",
            (json_int_t)c->updated_at, "next_seq", (int)c->next_seq, "payment", payment_json(c, 1),
            "line_totals", lt ? lt : json_null(), "totals", "subtotal", (json_int_t)t->subtotal,
            "items_discount", (json_int_t)t->items_discount, "discount", (json_int_t)t->discount,
            "fulfillment", (json_int_t)t->fulfillment, "tax", (json_int_t)t->tax, "fee",
            (json_int_t)t->fee, "total", (json_int_t)t->total);
        if (in && c->escalation)
            bad |= json_object_set_new(in, "escalation", ucp_message_json(c->escalation));
        bad |= !in || json_object_set_new(o, "_agentd", in);
        /* The doc keeps the extensions' fields whatever was negotiated. */
        if (!(neg->caps & UCP_CAP_FULFILLMENT) && c->n_methods)
            bad |= json_object_set_new(o, "fulfillment", fulfillment_json(c));
        if (!(neg->caps & UCP_CAP_DISCOUNT) && (c->n_codes || c->n_applied))
            bad |= json_object_set_new(o, "discounts", discounts_json(c));
    }
    json_decref(msgs);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
fail:
    json_decref(o);
    json_decref(lines);
    json_decref(msgs);
    json_decref(links);
    return NULL;
}

json_t *checkout_to_json(const struct checkout *c, const struct ucp_negotiated *neg)
{
    return c ? to_json(c, neg, 0) : NULL;
}

json_t *checkout_to_doc_json(const struct checkout *c)
{
    return c ? to_json(c, NULL, 1) : NULL;
}

/* ---- checkout from JSON ---- */

static int corrupt(struct agentd_error *e, const char *what)
{
    return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "checkout document: %s", what);
}

/* Optional string -> copy; wrong type is corruption. */
static int get_str(const json_t *o, const char *key, char **out)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return AGENTD_ECORRUPT;
    *out = strdup(json_string_value(v));
    return *out ? 0 : AGENTD_ENOMEM;
}

static int64_t get_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static int parse_message(const json_t *j, struct checkout_message *m)
{
    memset(m, 0, sizeof *m);
    const char *t = json_string_value(json_object_get(j, "type"));
    const char *sev = json_string_value(json_object_get(j, "severity"));
    m->type = t && strcmp(t, "warning") == 0 ? CHECKOUT_MSG_WARNING
              : t && strcmp(t, "info") == 0  ? CHECKOUT_MSG_INFO
                                             : CHECKOUT_MSG_ERROR;
    m->severity = !sev                                         ? CHECKOUT_SEV_NONE
                  : strcmp(sev, "requires_buyer_input") == 0  ? CHECKOUT_SEV_REQUIRES_BUYER_INPUT
                  : strcmp(sev, "requires_buyer_review") == 0 ? CHECKOUT_SEV_REQUIRES_BUYER_REVIEW
                                                              : CHECKOUT_SEV_RECOVERABLE;
    int rc = get_str(j, "code", &m->code);
    if (!rc)
        rc = get_str(j, "content", &m->content);
    if (!rc)
        rc = get_str(j, "path", &m->path);
    if (rc) {
        free(m->code);
        free(m->content);
        free(m->path);
        memset(m, 0, sizeof *m);
    }
    return rc;
}

/* Amount of a given type in a UCP totals[] array (0 if absent). */
static int64_t total_of(const json_t *totals, const char *type)
{
    size_t i;
    json_t *v;
    json_array_foreach(totals, i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        if (t && strcmp(t, type) == 0)
            return get_int(v, "amount");
    }
    return 0;
}

static int parse_methods(const json_t *f, struct checkout *c, struct agentd_error *e)
{
    json_t *ms = json_object_get(f, "methods");
    if (!json_is_array(ms))
        return 0;
    size_t n = json_array_size(ms);
    if (n > CHECKOUT_METHODS_MAX)
        return corrupt(e, "too many fulfillment methods");
    if (!n)
        return 0;
    if (!(c->methods = calloc(n, sizeof *c->methods)))
        return AGENTD_ENOMEM;
    for (size_t mi = 0; mi < n; mi++) {
        const json_t *mj = json_array_get(ms, mi);
        struct fulfillment_method *m = &c->methods[mi];
        c->n_methods++;
        int rc = get_str(mj, "id", &m->id);
        if (!rc)
            rc = get_str(mj, "type", &m->type);
        if (!rc)
            rc = get_str(mj, "selected_destination_id", &m->selected_destination_id);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment method");
        if (!m->id)
            return corrupt(e, "fulfillment method without id");
        json_t *ds = json_object_get(mj, "destinations");
        size_t nd = json_array_size(ds);
        if (nd > CHECKOUT_DESTS_MAX)
            return corrupt(e, "too many destinations");
        if (nd && !(m->destinations = calloc(nd, sizeof *m->destinations)))
            return AGENTD_ENOMEM;
        for (size_t d = 0; d < nd; d++) {
            struct agentd_error ee;
            rc = checkout_address_from_json(json_array_get(ds, d), &m->destinations[d], &ee);
            if (rc)
                return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad destination");
            m->n_destinations++;
            if (!m->destinations[d].id)
                return corrupt(e, "destination without id");
        }
        json_t *gs = json_object_get(mj, "groups");
        size_t ng = json_array_size(gs);
        if (ng > CHECKOUT_METHODS_MAX)
            return corrupt(e, "too many groups");
        if (ng && !(m->groups = calloc(ng, sizeof *m->groups)))
            return AGENTD_ENOMEM;
        for (size_t g = 0; g < ng; g++) {
            const json_t *gj = json_array_get(gs, g);
            struct fulfillment_group *fg = &m->groups[g];
            m->n_groups++;
            rc = get_str(gj, "id", &fg->id);
            if (!rc)
                rc = get_str(gj, "selected_option_id", &fg->selected_option_id);
            if (rc || !fg->id)
                return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment group");
            json_t *os = json_object_get(gj, "options");
            size_t no = json_array_size(os);
            if (no > CHECKOUT_OPTIONS_MAX)
                return corrupt(e, "too many options");
            if (no && !(fg->options = calloc(no, sizeof *fg->options)))
                return AGENTD_ENOMEM;
            for (size_t k = 0; k < no; k++) {
                const json_t *oj = json_array_get(os, k);
                struct fulfillment_option *op = &fg->options[k];
                fg->n_options++;
                rc = get_str(oj, "id", &op->id);
                if (!rc)
                    rc = get_str(oj, "title", &op->title);
                if (!rc)
                    rc = get_str(oj, "description", &op->description);
                if (rc || !op->id)
                    return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad fulfillment option");
                op->amount = total_of(json_object_get(oj, "totals"), "total");
            }
        }
    }
    return 0;
}

static int parse_discounts(const json_t *d, struct checkout *c, struct agentd_error *e)
{
    json_t *codes = json_object_get(d, "codes");
    size_t n = json_array_size(codes);
    if (n > CHECKOUT_CODES_MAX)
        return corrupt(e, "too many codes");
    if (n && !(c->codes = calloc(n, sizeof *c->codes)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(codes, i));
        if (!s)
            return corrupt(e, "bad discount code");
        if (!(c->codes[i] = strdup(s)))
            return AGENTD_ENOMEM;
        c->n_codes++;
    }
    json_t *ap = json_object_get(d, "applied");
    size_t na = json_array_size(ap);
    if (na > CHECKOUT_CODES_MAX)
        return corrupt(e, "too many applied discounts");
    if (na && !(c->applied = calloc(na, sizeof *c->applied)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < na; i++) {
        const json_t *aj = json_array_get(ap, i);
        struct applied_discount *a = &c->applied[i];
        c->n_applied++;
        int rc = get_str(aj, "code", &a->code);
        if (!rc)
            rc = get_str(aj, "title", &a->title);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad applied discount");
        a->amount = get_int(aj, "amount");
        a->priority = (int)get_int(aj, "priority");
        const char *method = json_string_value(json_object_get(aj, "method"));
        a->type = method && strcmp(method, "each") == 0 ? DISCOUNT_PERCENTAGE
                                                       : DISCOUNT_FIXED_AMOUNT;
        a->n_alloc = c->n_lines;
        if (!(a->alloc = calloc(c->n_lines ? c->n_lines : 1, sizeof *a->alloc)))
            return AGENTD_ENOMEM;
        size_t k;
        json_t *al;
        json_array_foreach(json_object_get(aj, "allocations"), k, al)
        {
            const char *path = json_string_value(json_object_get(al, "path"));
            unsigned long idx;
            int used = 0;
            if (!path || sscanf(path, "$.line_items[%lu]%n", &idx, &used) != 1 || used == 0 ||
                path[used] != 0 || idx >= c->n_lines)
                continue;
            a->alloc[idx] = get_int(al, "amount");
        }
    }
    return 0;
}

static int parse_lines_doc(const json_t *doc, struct checkout *c, const json_t *lt,
                           struct agentd_error *e)
{
    json_t *lines = json_object_get(doc, "line_items");
    if (!json_is_array(lines))
        return corrupt(e, "line_items missing");
    size_t n = json_array_size(lines);
    if (n > CHECKOUT_LINES_MAX)
        return corrupt(e, "too many line items");
    if (n && !(c->lines = calloc(n, sizeof *c->lines)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *lj = json_array_get(lines, i);
        const json_t *item = json_object_get(lj, "item");
        struct line_item *li = &c->lines[i];
        c->n_lines++;
        int rc = get_str(lj, "id", &li->id);
        if (!rc)
            rc = get_str(item, "id", &li->item_id);
        if (!rc)
            rc = get_str(item, "title", &li->title);
        if (!rc)
            rc = get_str(item, "image_url", &li->image_url);
        if (rc || !li->id || !li->item_id)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad line item");
        li->price = get_int(item, "price");
        li->quantity = get_int(lj, "quantity");
        const json_t *t = json_array_get(lt, i);
        if (json_is_array(t) && json_array_size(t) == 5) {
            li->totals.base_amount = json_integer_value(json_array_get(t, 0));
            li->totals.discount = json_integer_value(json_array_get(t, 1));
            li->totals.subtotal = json_integer_value(json_array_get(t, 2));
            li->totals.tax = json_integer_value(json_array_get(t, 3));
            li->totals.total = json_integer_value(json_array_get(t, 4));
        } else {
            json_t *tot = json_object_get(lj, "totals");
            li->totals.base_amount = total_of(tot, "subtotal");
            li->totals.discount = total_of(tot, "items_discount");
            li->totals.subtotal = li->totals.base_amount - li->totals.discount;
            li->totals.tax = total_of(tot, "tax");
            li->totals.total = total_of(tot, "total");
        }
    }
    return 0;
}

static int parse_payment_doc(const json_t *p, struct checkout *c, struct agentd_error *e)
{
    if (!json_is_object(p))
        return 0;
    json_t *h = json_object_get(p, "handlers");
    c->payment.handlers = json_is_array(h) ? json_deep_copy(h) : json_array();
    if (!c->payment.handlers)
        return AGENTD_ENOMEM;
    json_t *ins = json_object_get(p, "instruments");
    size_t n = json_array_size(ins);
    if (n > CHECKOUT_INSTRUMENTS_MAX)
        return corrupt(e, "too many instruments");
    if (n && !(c->payment.instruments = calloc(n, sizeof *c->payment.instruments)))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char err[128];
        int rc = payment_instrument_parse(json_array_get(ins, i), &c->payment.instruments[i], err,
                                          sizeof err);
        if (rc)
            return rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad payment instrument");
        c->payment.n_instruments++;
    }
    int rc = get_str(p, "selected_instrument_id", &c->payment.selected_instrument_id);
    return rc == AGENTD_ECORRUPT ? corrupt(e, "bad selected_instrument_id") : rc;
}

int checkout_from_json(const json_t *doc, struct checkout **out, struct agentd_error *e)
{
    *out = NULL;
    if (!json_is_object(doc))
        return corrupt(e, "not an object");
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *cur = json_string_value(json_object_get(doc, "currency"));
    if (!id || !status || !cur || !money_currency_valid(cur))
        return corrupt(e, "id, status or currency missing");
    struct checkout *c = checkout_new(id);
    if (!c)
        return AGENTD_ENOMEM;
    int rc = 0;
    if (checkout_status_parse(status, &c->status)) {
        rc = corrupt(e, "unknown status");
        goto fail;
    }
    memcpy(c->currency, cur, COMMERCE_CURRENCY_LEN);
    const json_t *in = json_object_get(doc, "_agentd");
    if ((rc = parse_lines_doc(doc, c, json_object_get(in, "line_totals"), e)))
        goto fail;
    json_t *b = json_object_get(doc, "buyer");
    if (json_is_object(b)) {
        struct agentd_error ee;
        if ((rc = checkout_buyer_from_json(b, &c->buyer, &ee))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad buyer");
            goto fail;
        }
        c->has_buyer = 1;
    }
    json_t *f = json_object_get(doc, "fulfillment");
    if (json_is_object(f) && (rc = parse_methods(f, c, e)))
        goto fail;
    json_t *d = json_object_get(doc, "discounts");
    if (json_is_object(d) && (rc = parse_discounts(d, c, e)))
        goto fail;
    /* The doc's own payment copy carries instrument tokens; the wire
     * form never does. */
    json_t *p = json_object_get(in, "payment");
    if ((rc = parse_payment_doc(p ? p : json_object_get(doc, "payment"), c, e)))
        goto fail;
    if (!c->payment.handlers && !(c->payment.handlers = json_array())) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    json_t *ms = json_object_get(doc, "messages");
    size_t nm = json_array_size(ms);
    if (nm > 256) {
        rc = corrupt(e, "too many messages");
        goto fail;
    }
    if (nm && !(c->messages = calloc(nm, sizeof *c->messages))) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nm; i++) {
        if ((rc = parse_message(json_array_get(ms, i), &c->messages[i]))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad message");
            goto fail;
        }
        c->n_messages++;
    }
    json_t *ls = json_object_get(doc, "links");
    size_t nl = json_array_size(ls);
    if (nl > 64) {
        rc = corrupt(e, "too many links");
        goto fail;
    }
    if (nl && !(c->links = calloc(nl, sizeof *c->links))) {
        rc = AGENTD_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nl; i++) {
        const json_t *lj = json_array_get(ls, i);
        struct checkout_link *l = &c->links[i];
        c->n_links++;
        if ((rc = get_str(lj, "type", &l->type)) || (rc = get_str(lj, "url", &l->url)) ||
            (rc = get_str(lj, "title", &l->title))) {
            rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad link");
            goto fail;
        }
    }
    const char *exp = json_string_value(json_object_get(doc, "expires_at"));
    if (exp && ucp_time_parse(exp, &c->expires_at)) {
        rc = corrupt(e, "bad expires_at");
        goto fail;
    }
    if ((rc = get_str(doc, "continue_url", &c->continue_url))) {
        rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad continue_url");
        goto fail;
    }
    json_t *o = json_object_get(doc, "order");
    if (json_is_object(o) && ((rc = get_str(o, "id", &c->order_id)) ||
                              (rc = get_str(o, "permalink_url", &c->order_permalink_url)))) {
        rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad order");
        goto fail;
    }
    json_t *t = json_object_get(in, "totals");
    if (json_is_object(t)) {
        c->totals.subtotal = get_int(t, "subtotal");
        c->totals.items_discount = get_int(t, "items_discount");
        c->totals.discount = get_int(t, "discount");
        c->totals.fulfillment = get_int(t, "fulfillment");
        c->totals.tax = get_int(t, "tax");
        c->totals.fee = get_int(t, "fee");
        c->totals.total = get_int(t, "total");
    } else {
        json_t *ta = json_object_get(doc, "totals");
        c->totals.subtotal = total_of(ta, "subtotal");
        c->totals.items_discount = total_of(ta, "items_discount");
        c->totals.discount = total_of(ta, "discount");
        c->totals.fulfillment = total_of(ta, "fulfillment");
        c->totals.tax = total_of(ta, "tax");
        c->totals.fee = total_of(ta, "fee");
        c->totals.total = total_of(ta, "total");
    }
    if (json_is_object(in)) {
        c->version = get_int(in, "version");
        c->created_at = get_int(in, "created_at");
        c->updated_at = get_int(in, "updated_at");
        c->next_seq = (uint32_t)get_int(in, "next_seq");
        json_t *esc = json_object_get(in, "escalation");
        if (json_is_object(esc)) {
            if (!(c->escalation = calloc(1, sizeof *c->escalation))) {
                rc = AGENTD_ENOMEM;
                goto fail;
            }
            if ((rc = parse_message(esc, c->escalation))) {
                rc = rc == AGENTD_ENOMEM ? rc : corrupt(e, "bad escalation");
                goto fail;
            }
        }
    }
    *out = c;
    return 0;
fail:
    checkout_free(c);
    return rc;
}

/* ---- order ---- */

void order_free(struct order *o)
{
    if (!o)
        return;
    free(o->id);
    free(o->checkout_id);
    free(o->permalink_url);
    for (size_t i = 0; i < o->n_lines; i++) {
        struct line_item *li = &o->lines[i].line;
        free(li->id);
        free(li->item_id);
        free(li->title);
        free(li->image_url);
    }
    free(o->lines);
    for (size_t i = 0; i < o->n_expectations; i++) {
        free(o->expectations[i].id);
        free(o->expectations[i].method_type);
        free(o->expectations[i].description);
        checkout_address_clear(&o->expectations[i].destination);
    }
    free(o->expectations);
    free(o);
}

static int line_copy(struct line_item *d, const struct line_item *s)
{
    *d = (struct line_item){.price = s->price, .quantity = s->quantity, .totals = s->totals};
    if ((s->id && !(d->id = strdup(s->id))) || (s->item_id && !(d->item_id = strdup(s->item_id))) ||
        (s->title && !(d->title = strdup(s->title))) ||
        (s->image_url && !(d->image_url = strdup(s->image_url))))
        return AGENTD_ENOMEM;
    return 0;
}

int order_from_checkout(const struct checkout *c, struct order **out, struct agentd_error *e)
{
    *out = NULL;
    if (!c || c->status != CHECKOUT_COMPLETED || !c->order_id)
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                             "an order exists only for a completed checkout");
    struct order *o = calloc(1, sizeof *o);
    if (!o)
        return AGENTD_ENOMEM;
    memcpy(o->currency, c->currency, sizeof o->currency);
    o->totals = c->totals;
    o->has_tax = has_destination(c);
    o->has_fulfillment = has_selected_option(c);
    if (!(o->id = strdup(c->order_id)) || !(o->checkout_id = strdup(c->id)) ||
        !(o->permalink_url = strdup(c->order_permalink_url ? c->order_permalink_url : "")))
        goto nomem;
    if (c->n_lines && !(o->lines = calloc(c->n_lines, sizeof *o->lines)))
        goto nomem;
    for (size_t i = 0; i < c->n_lines; i++) {
        o->n_lines++;
        if (line_copy(&o->lines[i].line, &c->lines[i]))
            goto nomem;
    }
    for (size_t mi = 0; mi < c->n_methods; mi++) {
        const struct fulfillment_method *m = &c->methods[mi];
        const struct postal_address *dest = NULL;
        for (size_t d = 0; m->selected_destination_id && d < m->n_destinations; d++)
            if (strcmp(m->destinations[d].id, m->selected_destination_id) == 0)
                dest = &m->destinations[d];
        for (size_t g = 0; dest && g < m->n_groups; g++) {
            const struct fulfillment_group *fg = &m->groups[g];
            if (!fg->selected_option_id)
                continue;
            const char *title = fg->selected_option_id;
            for (size_t k = 0; k < fg->n_options; k++)
                if (strcmp(fg->options[k].id, fg->selected_option_id) == 0 && fg->options[k].title)
                    title = fg->options[k].title;
            struct order_expectation *n =
                realloc(o->expectations, (o->n_expectations + 1) * sizeof *n);
            if (!n)
                goto nomem;
            o->expectations = n;
            struct order_expectation *x = &n[o->n_expectations++];
            memset(x, 0, sizeof *x);
            char id[32];
            snprintf(id, sizeof id, "exp_%zu", o->n_expectations);
            if (!(x->id = strdup(id)) || !(x->method_type = strdup(m->type ? m->type : "shipping")) ||
                !(x->description = strdup(title)) || checkout_address_copy(&x->destination, dest))
                goto nomem;
        }
    }
    *out = o;
    return 0;
nomem:
    order_free(o);
    return AGENTD_ENOMEM;
}

json_t *order_to_json(const struct order *o, const struct ucp_negotiated *neg)
{
    struct ucp_negotiated all;
    if (!neg) {
        ucp_negotiated_all(&all);
        neg = &all;
    }
    json_t *lines = json_array(), *exps = json_array();
    for (size_t i = 0; lines && i < o->n_lines; i++) {
        const struct order_line *ol = &o->lines[i];
        const char *st = ol->fulfilled >= ol->line.quantity ? "fulfilled"
                         : ol->fulfilled > 0               ? "partial"
                                                           : "processing";
        json_t *lj = json_pack("{s:s, s:o, s:{s:I, s:I}, s:o, s:s}", "id", ol->line.id, "item",
                               item_json(&ol->line), "quantity", "total",
                               (json_int_t)ol->line.quantity, "fulfilled",
                               (json_int_t)ol->fulfilled, "totals",
                               pricing_line_totals_json(&ol->line.totals), "status", st);
        if (!lj || json_array_append_new(lines, lj))
            goto fail;
    }
    for (size_t i = 0; exps && i < o->n_expectations; i++) {
        const struct order_expectation *x = &o->expectations[i];
        json_t *li = json_array();
        for (size_t k = 0; li && k < o->n_lines; k++)
            if (json_array_append_new(li, json_pack("{s:s, s:I}", "id", o->lines[k].line.id,
                                                    "quantity",
                                                    (json_int_t)o->lines[k].line.quantity))) {
                json_decref(li);
                li = NULL;
            }
        json_t *xj = li ? json_pack("{s:s, s:o, s:s, s:o}", "id", x->id, "line_items", li,
                                    "method_type", x->method_type, "destination",
                                    address_json(&x->destination, 0))
                        : NULL;
        if (!xj || put_str(xj, "description", x->description) || json_array_append_new(exps, xj))
            goto fail;
    }
    if (!lines || !exps)
        goto fail;
    json_t *j = json_pack("{s:o, s:s, s:s, s:s, s:s, s:o, s:{s:o, s:[]}, s:o}", "ucp",
                          ucp_response_meta_json(neg), "id", o->id, "checkout_id", o->checkout_id,
                          "permalink_url", o->permalink_url, "currency", o->currency,
                          "line_items", lines, "fulfillment", "expectations", exps, "events",
                          "totals",
                          pricing_totals_json(&o->totals, o->has_fulfillment, o->has_tax));
    return j;
fail:
    json_decref(lines);
    json_decref(exps);
    return NULL;
}

int order_from_json(const json_t *j, struct order **out, struct agentd_error *e)
{
    *out = NULL;
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *cid = json_string_value(json_object_get(j, "checkout_id"));
    const char *url = json_string_value(json_object_get(j, "permalink_url"));
    const char *cur = json_string_value(json_object_get(j, "currency"));
    json_t *lines = json_object_get(j, "line_items");
    if (!id || !cid || !url || !json_is_array(lines) ||
        json_array_size(lines) > CHECKOUT_LINES_MAX)
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "order document is malformed");
    struct order *o = calloc(1, sizeof *o);
    if (!o)
        return AGENTD_ENOMEM;
    if (cur && money_currency_valid(cur))
        memcpy(o->currency, cur, COMMERCE_CURRENCY_LEN);
    if (!(o->id = strdup(id)) || !(o->checkout_id = strdup(cid)) ||
        !(o->permalink_url = strdup(url)))
        goto nomem;
    size_t n = json_array_size(lines);
    if (n && !(o->lines = calloc(n, sizeof *o->lines)))
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        const json_t *lj = json_array_get(lines, i);
        const json_t *item = json_object_get(lj, "item");
        const json_t *q = json_object_get(lj, "quantity");
        struct line_item *li = &o->lines[i].line;
        o->n_lines++;
        int rc = get_str(lj, "id", &li->id);
        if (!rc)
            rc = get_str(item, "id", &li->item_id);
        if (!rc)
            rc = get_str(item, "title", &li->title);
        if (!rc)
            rc = get_str(item, "image_url", &li->image_url);
        if (rc == AGENTD_ENOMEM)
            goto nomem;
        if (rc || !li->id || !li->item_id)
            goto corrupt_doc;
        li->price = get_int(item, "price");
        li->quantity = get_int(q, "total");
        o->lines[i].fulfilled = get_int(q, "fulfilled");
        json_t *tot = json_object_get(lj, "totals");
        li->totals.base_amount = total_of(tot, "subtotal");
        li->totals.discount = total_of(tot, "items_discount");
        li->totals.subtotal = li->totals.base_amount - li->totals.discount;
        li->totals.tax = total_of(tot, "tax");
        li->totals.total = total_of(tot, "total");
    }
    json_t *exps = json_object_get(json_object_get(j, "fulfillment"), "expectations");
    size_t ne = json_array_size(exps);
    if (ne > CHECKOUT_METHODS_MAX * CHECKOUT_METHODS_MAX)
        goto corrupt_doc;
    if (ne && !(o->expectations = calloc(ne, sizeof *o->expectations)))
        goto nomem;
    for (size_t i = 0; i < ne; i++) {
        const json_t *xj = json_array_get(exps, i);
        struct order_expectation *x = &o->expectations[i];
        o->n_expectations++;
        int rc = get_str(xj, "id", &x->id);
        if (!rc)
            rc = get_str(xj, "method_type", &x->method_type);
        if (!rc)
            rc = get_str(xj, "description", &x->description);
        if (rc == AGENTD_ENOMEM)
            goto nomem;
        struct agentd_error ee;
        json_t *dj = json_object_get(xj, "destination");
        if (rc || (dj && checkout_address_from_json(dj, &x->destination, &ee)))
            goto corrupt_doc;
    }
    json_t *ta = json_object_get(j, "totals");
    o->totals.subtotal = total_of(ta, "subtotal");
    o->totals.items_discount = total_of(ta, "items_discount");
    o->totals.discount = total_of(ta, "discount");
    o->totals.fulfillment = total_of(ta, "fulfillment");
    o->totals.tax = total_of(ta, "tax");
    o->totals.fee = total_of(ta, "fee");
    o->totals.total = total_of(ta, "total");
    size_t i;
    json_t *v;
    json_array_foreach(ta, i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        o->has_fulfillment |= t && strcmp(t, "fulfillment") == 0;
        o->has_tax |= t && strcmp(t, "tax") == 0;
    }
    *out = o;
    return 0;
corrupt_doc:
    order_free(o);
    return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL, "order document is malformed");
nomem:
    order_free(o);
    return AGENTD_ENOMEM;
}
