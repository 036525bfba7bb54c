/* Parses the AGENTD_LLM* variables into struct llm_config, collecting every
 * problem like core/config.c does; API keys are read from NAME or NAME_FILE. */
#define _GNU_SOURCE
#include "llm/llm_config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <unistd.h>

#include "core/err.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_RETRIES 2
#define DEFAULT_BREAKER_FAILURES 5
#define DEFAULT_BREAKER_COOLDOWN_MS 30000

/* Value of NAME (or NAME_FILE when allow_file), allocated; NULL when unset
 * or on a problem (then *bad = 1). Empty values are problems: an operator
 * who sets a variable to nothing almost always meant something. */
static char *lookup(const char *name, int allow_file, config_getenv_fn get, void *ud,
                    struct config_problems *pr, int *bad)
{
    char fname[160];
    snprintf(fname, sizeof fname, "%s_FILE", name);
    const char *direct = get(name, ud);
    const char *file = allow_file ? get(fname, ud) : NULL;
    if (direct && file) {
        config_problems_add(pr, "%s and %s are both set: set only one", name, fname);
        *bad = 1;
        return NULL;
    }
    char *val = NULL;
    if (file) {
        struct agentd_error e;
        val = config_read_small_file(file, &e);
        if (!val) {
            config_problems_add(pr, "%s: %s", fname, e.msg);
            *bad = 1;
            return NULL;
        }
    } else if (direct) {
        val = strdup(direct);
        if (!val) {
            config_problems_add(pr, "%s: out of memory", name);
            *bad = 1;
            return NULL;
        }
    }
    if (val && !*val) {
        config_problems_add(pr, "%s is set but empty", file ? fname : name);
        free(val);
        *bad = 1;
        return NULL;
    }
    return val;
}

static int parse_int_range(const char *name, const char *s, int64_t lo, int64_t hi, int64_t *out,
                           struct config_problems *pr)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        config_problems_add(pr, "%s=%s: not an integer", name, s);
        return AGENTD_EINVAL;
    }
    if (v < lo || v > hi) {
        config_problems_add(pr, "%s=%s: out of range [%lld, %lld]", name, s, (long long)lo,
                            (long long)hi);
        return AGENTD_EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_duration_range(const char *name, const char *s, int64_t lo, int64_t hi,
                                int64_t *out, struct config_problems *pr)
{
    int64_t ms;
    if (config_parse_duration(s, &ms) != 0) {
        config_problems_add(pr, "%s=%s: not a duration (e.g. 250ms, 30s, 2m)", name, s);
        return AGENTD_EINVAL;
    }
    if (ms < lo || ms > hi) {
        config_problems_add(pr, "%s=%s: out of range [%lldms, %lldms]", name, s, (long long)lo,
                            (long long)hi);
        return AGENTD_EINVAL;
    }
    *out = ms;
    return 0;
}

/* Prices are decimals such as "2.50": USD per million tokens. */
static int parse_price(const char *name, const char *s, double *out, struct config_problems *pr)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e6) {
        config_problems_add(pr, "%s=%s: expected a price in USD per million tokens, e.g. 2.50",
                            name, s);
        return AGENTD_EINVAL;
    }
    *out = v;
    return 0;
}

static const char *const http2_names[] = { "auto", "prior", "off" };

/* auto | prior | off. Prior knowledge skips ALPN, so it is only for plain
 * http:// servers (a local model server); over https auto already
 * negotiates HTTP/2. url may be NULL (its own problem is reported). */
static int parse_http2(const char *name, const char *s, const char *url, int *out,
                       struct config_problems *pr)
{
    for (int i = 0; i < 3; i++)
        if (strcasecmp(s, http2_names[i]) == 0) {
            if (i == LLM_HTTP2_PRIOR && url && strncmp(url, "http://", 7) != 0) {
                config_problems_add(pr, "%s=%s: prior knowledge (h2c) is for http:// servers; over "
                                        "https:// auto negotiates HTTP/2", name, s);
                return AGENTD_EINVAL;
            }
            const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
            if (i == LLM_HTTP2_PRIOR && !(v->features & CURL_VERSION_HTTP2)) {
                config_problems_add(pr, "%s=%s: this libcurl (%s) has no HTTP/2", name, s, v->version);
                return AGENTD_EINVAL;
            }
            if (i == LLM_HTTP2_PRIOR && v->version_num < 0x080000) {
                /* curl #10634, fixed in 8.0.0: every request after the first
                 * on a prior-knowledge connection fails with "Error in the
                 * HTTP2 framing layer" (seen here with 7.88.1 and nginx) */
                config_problems_add(pr, "%s=%s: needs libcurl 8.0.0 or later (this is %s, whose "
                                        "prior-knowledge connections fail after their first request); "
                                        "use https:// with auto, or off", name, s, v->version);
                return AGENTD_EINVAL;
            }
            *out = i;
            return 0;
        }
    config_problems_add(pr, "%s=%s: expected auto, prior or off", name, s);
    return AGENTD_EINVAL;
}

/* The base URL must be the part before /chat/completions: we append it. */
static int check_url(const char *name, char *url, struct config_problems *pr)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        char *shown = config_redact_url(url);
        config_problems_add(pr, "%s=%s: must start with http:// or https://", name,
                            shown ? shown : "***");
        free(shown);
        return AGENTD_EINVAL;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = 0;
    static const char suffix[] = "/chat/completions";
    if (n >= sizeof suffix - 1 && strcmp(url + n - (sizeof suffix - 1), suffix) == 0) {
        char *shown = config_redact_url(url);
        config_problems_add(pr,
                            "%s=%s: give the base URL (ending before /chat/completions, "
                            "e.g. https://api.openai.com/v1)",
                            name, shown ? shown : "***");
        free(shown);
        return AGENTD_EINVAL;
    }
    return 0;
}

/* Reads one provider's variables under `prefix` ("AGENTD_LLM" or
 * "AGENTD_LLM_PRIMARY"). Returns 0 when complete, AGENTD_EINVAL on a problem. */
static int load_provider(struct llm_provider_config *p, const char *name, const char *prefix,
                         config_getenv_fn get, void *ud, struct config_problems *pr)
{
    char var[160];
    int bad = 0;
    p->name = strdup(name);
    p->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!p->name) {
        config_problems_add(pr, "%s: out of memory", prefix);
        return AGENTD_EINVAL;
    }

    /* "required" only when the variable is really absent, not when its
     * lookup already reported a problem (vbad) */
    int vbad = 0;
    snprintf(var, sizeof var, "%s_URL", prefix);
    p->url = lookup(var, 1, get, ud, pr, &vbad);
    if (p->url && check_url(var, p->url, pr) != 0)
        vbad = 1;
    else if (!p->url && !vbad) {
        config_problems_add(pr, "%s is required for LLM provider %s", var, name);
        vbad = 1;
    }
    bad |= vbad;

    vbad = 0;
    snprintf(var, sizeof var, "%s_MODEL", prefix);
    p->model = lookup(var, 1, get, ud, pr, &vbad);
    if (!p->model && !vbad) {
        config_problems_add(pr, "%s is required for LLM provider %s", var, name);
        vbad = 1;
    }
    bad |= vbad;

    snprintf(var, sizeof var, "%s_API_KEY", prefix);
    p->api_key = lookup(var, 1, get, ud, pr, &bad);
    if (p->api_key) {
        /* a key with a newline or space inside would corrupt the header */
        for (const char *c = p->api_key; *c; c++)
            if (isspace((unsigned char)*c) || iscntrl((unsigned char)*c)) {
                config_problems_add(pr, "%s contains whitespace or control characters", var);
                bad = 1;
                break;
            }
    }

    char *s;
    snprintf(var, sizeof var, "%s_TIMEOUT", prefix);
    if ((s = lookup(var, 0, get, ud, pr, &bad))) {
        if (parse_duration_range(var, s, 100, 600000, &p->timeout_ms, pr) != 0)
            bad = 1;
        free(s);
    }
    snprintf(var, sizeof var, "%s_PRICE_IN", prefix);
    if ((s = lookup(var, 0, get, ud, pr, &bad))) {
        if (parse_price(var, s, &p->price_in, pr) != 0)
            bad = 1;
        free(s);
    }
    snprintf(var, sizeof var, "%s_PRICE_OUT", prefix);
    if ((s = lookup(var, 0, get, ud, pr, &bad))) {
        if (parse_price(var, s, &p->price_out, pr) != 0)
            bad = 1;
        free(s);
    }
    snprintf(var, sizeof var, "%s_CA_BUNDLE", prefix);
    if ((p->ca_bundle = lookup(var, 0, get, ud, pr, &bad)) && access(p->ca_bundle, R_OK) != 0) {
        config_problems_add(pr, "%s=%s: cannot read it (%s)", var, p->ca_bundle, strerror(errno));
        bad = 1;
    }
    snprintf(var, sizeof var, "%s_HTTP2", prefix);
    if ((s = lookup(var, 0, get, ud, pr, &bad))) {
        if (parse_http2(var, s, p->url, &p->http2, pr) != 0)
            bad = 1;
        free(s);
    }
    return bad ? AGENTD_EINVAL : 0;
}

/* Asks for every variable of a provider prefix without reading it, so a
 * recording getter (config_getenv_seen) knows them even when unused. */
static void touch_provider_names(const char *prefix, config_getenv_fn get, void *ud)
{
    static const char *const suffix[] = { "_URL", "_MODEL", "_API_KEY", "_URL_FILE", "_MODEL_FILE",
                                          "_API_KEY_FILE", "_TIMEOUT", "_PRICE_IN", "_PRICE_OUT",
                                          "_HTTP2", "_CA_BUNDLE", NULL };
    char var[160];
    for (int i = 0; suffix[i]; i++) {
        snprintf(var, sizeof var, "%s%s", prefix, suffix[i]);
        (void)get(var, ud);
    }
}

/* Chain names become part of variable names: letters, digits, underscore. */
static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

static void provider_free(struct llm_provider_config *p)
{
    free(p->name);
    free(p->url);
    free(p->model);
    free(p->ca_bundle);
    if (p->api_key) {
        /* keys do not linger in freed heap memory */
        explicit_bzero(p->api_key, strlen(p->api_key));
        free(p->api_key);
    }
    memset(p, 0, sizeof *p);
}

static int load_chain(struct llm_config *out, const char *list, config_getenv_fn get, void *ud,
                      struct config_problems *pr)
{
    int bad = 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - p);
        while (n && p[n - 1] == ' ')
            n--;
        if (!valid_name(p, n)) {
            config_problems_add(pr,
                                "AGENTD_LLM_PROVIDERS: \"%.*s\" is not a valid provider name "
                                "(letters, digits, underscore; at most 32)",
                                (int)(n > 64 ? 64 : n), p);
            bad = 1;
        } else if (out->n_providers == LLM_MAX_PROVIDERS) {
            config_problems_add(pr, "AGENTD_LLM_PROVIDERS: at most %d providers", LLM_MAX_PROVIDERS);
            bad = 1;
            break;
        } else {
            char lower[40], upper[40], prefix[64];
            for (size_t i = 0; i < n; i++) {
                lower[i] = (char)tolower((unsigned char)p[i]);
                upper[i] = (char)toupper((unsigned char)p[i]);
            }
            lower[n] = upper[n] = 0;
            int dup = 0;
            for (int i = 0; i < out->n_providers; i++)
                if (strcmp(out->providers[i].name, lower) == 0)
                    dup = 1;
            if (dup) {
                config_problems_add(pr, "AGENTD_LLM_PROVIDERS: %s is listed twice", lower);
                bad = 1;
            } else {
                snprintf(prefix, sizeof prefix, "AGENTD_LLM_%s", upper);
                struct llm_provider_config *pc = &out->providers[out->n_providers++];
                if (load_provider(pc, lower, prefix, get, ud, pr) != 0)
                    bad = 1;
            }
        }
        p = e;
    }
    if (!bad && out->n_providers == 0) {
        config_problems_add(pr, "AGENTD_LLM_PROVIDERS is set but names no provider");
        bad = 1;
    }
    return bad ? AGENTD_EINVAL : 0;
}

int llm_config_load(struct llm_config *out, enum config_env env, config_getenv_fn get, void *ud,
                    struct config_problems *pr)
{
    memset(out, 0, sizeof *out);
    out->max_retries = DEFAULT_RETRIES;
    out->breaker_failures = DEFAULT_BREAKER_FAILURES;
    out->breaker_cooldown_ms = DEFAULT_BREAKER_COOLDOWN_MS;
    if (!get)
        get = config_getenv_default;
    int before = pr->n;
    int bad = 0;
    char *s;

    if ((s = lookup("AGENTD_LLM_MAX_RETRIES", 0, get, ud, pr, &bad))) {
        int64_t v;
        if (parse_int_range("AGENTD_LLM_MAX_RETRIES", s, 0, 10, &v, pr) == 0)
            out->max_retries = (int)v;
        free(s);
    }
    if ((s = lookup("AGENTD_LLM_BREAKER_FAILURES", 0, get, ud, pr, &bad))) {
        int64_t v;
        if (parse_int_range("AGENTD_LLM_BREAKER_FAILURES", s, 1, 1000, &v, pr) == 0)
            out->breaker_failures = (int)v;
        free(s);
    }
    if ((s = lookup("AGENTD_LLM_BREAKER_COOLDOWN", 0, get, ud, pr, &bad))) {
        parse_duration_range("AGENTD_LLM_BREAKER_COOLDOWN", s, 100, 3600000,
                             &out->breaker_cooldown_ms, pr);
        free(s);
    }
    if ((s = lookup("AGENTD_LLM_MAX_CONNECTIONS", 0, get, ud, pr, &bad))) {
        int64_t v;
        if (parse_int_range("AGENTD_LLM_MAX_CONNECTIONS", s, 0, 1000000, &v, pr) == 0)
            out->max_connections = (int)v;
        free(s);
    }

    if ((s = lookup("AGENTD_LLM_STARTUP_CHECK", 0, get, ud, pr, &bad))) {
        if (!strcasecmp(s, "1") || !strcasecmp(s, "on") || !strcasecmp(s, "true") || !strcasecmp(s, "yes"))
            out->startup_check = 1;
        else if (strcasecmp(s, "0") && strcasecmp(s, "off") && strcasecmp(s, "false") && strcasecmp(s, "no"))
            config_problems_add(pr, "AGENTD_LLM_STARTUP_CHECK=%s: expected on or off", s);
        free(s);
    }

    int forced = 0;
    if ((s = lookup("AGENTD_LLM", 0, get, ud, pr, &bad))) {
        if (strcasecmp(s, "builtin") == 0)
            forced = 1;
        else if (strcasecmp(s, "auto") != 0)
            config_problems_add(pr, "AGENTD_LLM=%s: expected builtin or auto", s);
        free(s);
    }

    const char *list = get("AGENTD_LLM_PROVIDERS", ud);
    const char *single[] = { "AGENTD_LLM_URL", "AGENTD_LLM_MODEL", "AGENTD_LLM_API_KEY",
                             "AGENTD_LLM_API_KEY_FILE", "AGENTD_LLM_URL_FILE", "AGENTD_LLM_MODEL_FILE" };
    int any_single = 0;
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (get(single[i], ud))
            any_single = 1;

    if (forced) {
        /* an explicit choice: the provider variables are ignored, not errors */
        out->builtin = out->builtin_forced = 1;
        if (list) { /* read into a scratch copy so the chain's names count as known */
            struct llm_config scratch = { 0 };
            struct config_problems ignored = { 0 };
            load_chain(&scratch, list, get, ud, &ignored);
            config_problems_free(&ignored);
            llm_config_free(&scratch);
        }
    } else if (list) {
        if (any_single)
            config_problems_add(pr, "AGENTD_LLM_PROVIDERS and AGENTD_LLM_URL/_MODEL/_API_KEY are "
                                    "both set: use the chain's AGENTD_LLM_<NAME>_* variables only");
        load_chain(out, list, get, ud, pr); /* problems are recorded */
    } else if (any_single) {
        out->n_providers = 1;
        load_provider(&out->providers[0], "default", "AGENTD_LLM", get, ud, pr);
    } else if (env == CONFIG_ENV_PRODUCTION) {
        config_problems_add(pr, "production: no LLM provider configured (set AGENTD_LLM_URL, "
                                "AGENTD_LLM_MODEL and AGENTD_LLM_API_KEY, or AGENTD_LLM_PROVIDERS; "
                                "AGENTD_LLM=builtin forces the offline model)");
    } else {
        out->builtin = 1;
    }
    touch_provider_names("AGENTD_LLM", get, ud);
    return pr->n - before;
}

void llm_config_dump(const struct llm_config *c, FILE *out)
{
    if (c->builtin) {
        fprintf(out, "AGENTD_LLM=builtin%s\n", c->builtin_forced ? "" : " (no provider configured)");
    } else {
        fputs("AGENTD_LLM=auto\n", out);
        fputs("AGENTD_LLM_PROVIDERS=", out);
        for (int i = 0; i < c->n_providers; i++)
            fprintf(out, "%s%s", i ? "," : "", c->providers[i].name ? c->providers[i].name : "?");
        fputc('\n', out);
    }
    for (int i = 0; !c->builtin && i < c->n_providers; i++) {
        const struct llm_provider_config *p = &c->providers[i];
        char prefix[64];
        llm_provider_var_prefix(p->name, prefix, sizeof prefix);
        char *url = p->url ? config_redact_url(p->url) : NULL;
        fprintf(out, "%s_URL=%s\n", prefix, p->url ? (url ? url : "***set***") : "(unset)");
        free(url);
        fprintf(out, "%s_MODEL=%s\n", prefix, p->model ? p->model : "(unset)");
        fprintf(out, "%s_API_KEY=%s\n", prefix, p->api_key ? "***set***" : "(unset)");
        fprintf(out, "%s_TIMEOUT=%lldms\n", prefix, (long long)p->timeout_ms);
        fprintf(out, "%s_PRICE_IN=%g\n", prefix, p->price_in);
        fprintf(out, "%s_PRICE_OUT=%g\n", prefix, p->price_out);
        fprintf(out, "%s_HTTP2=%s\n", prefix,
                p->http2 >= 0 && p->http2 < 3 ? http2_names[p->http2] : "?");
        fprintf(out, "%s_CA_BUNDLE=%s\n", prefix, p->ca_bundle ? p->ca_bundle : "(system)");
    }
    fprintf(out, "AGENTD_LLM_MAX_RETRIES=%d\n", c->max_retries);
    fprintf(out, "AGENTD_LLM_BREAKER_FAILURES=%d\n", c->breaker_failures);
    fprintf(out, "AGENTD_LLM_BREAKER_COOLDOWN=%lldms\n", (long long)c->breaker_cooldown_ms);
    fprintf(out, "AGENTD_LLM_MAX_CONNECTIONS=%d\n", c->max_connections);
    fprintf(out, "AGENTD_LLM_STARTUP_CHECK=%s\n", c->startup_check ? "on" : "off");
}

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = 1;
    return d;
}

int llm_config_copy(struct llm_config *dst, const struct llm_config *src)
{
    *dst = *src;
    int oom = 0;
    for (int i = 0; i < src->n_providers; i++) {
        const struct llm_provider_config *s = &src->providers[i];
        struct llm_provider_config *d = &dst->providers[i];
        d->name = dup_or_null(s->name, &oom);
        d->url = dup_or_null(s->url, &oom);
        d->model = dup_or_null(s->model, &oom);
        d->api_key = dup_or_null(s->api_key, &oom);
        d->ca_bundle = dup_or_null(s->ca_bundle, &oom);
    }
    if (oom) {
        llm_config_free(dst);
        return AGENTD_ENOMEM;
    }
    return 0;
}

void llm_config_free(struct llm_config *c)
{
    for (int i = 0; i < LLM_MAX_PROVIDERS; i++)
        provider_free(&c->providers[i]);
    memset(c, 0, sizeof *c);
}

const char *llm_provider_var_prefix(const char *name, char *out, size_t len)
{
    if (!name || strcmp(name, "default") == 0) {
        snprintf(out, len, "AGENTD_LLM");
        return out;
    }
    size_t k = (size_t)snprintf(out, len, "AGENTD_LLM_");
    for (const char *n = name; *n && k + 1 < len; n++)
        out[k++] = (char)toupper((unsigned char)*n);
    if (k < len)
        out[k] = 0;
    return out;
}

const char *llm_url_host(const char *url, char *out, size_t len)
{
    const char *h = url ? strstr(url, "://") : NULL;
    h = h ? h + 3 : (url ? url : "");
    size_t n = strcspn(h, "/?#");
    /* user:password@ never leaves this function */
    const char *at = memchr(h, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    snprintf(out, len, "%.*s", (int)n, h);
    return out;
}
