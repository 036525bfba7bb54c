/* Configuration from the environment: one table describes every variable
 * (name, kind, default, bounds, secret or not); load, validation and the
 * redacted dump all walk that table, so they cannot drift apart. */
#define _GNU_SOURCE
#include "core/config.h"
#include "core/ratelimit.h"
#include "core/redis_url.h"
#include "core/err.h"
#include "core/log.h"
#include "core/netguard.h"
#include "core/seal.h"
#include "core/tls.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/ssl.h>

enum kind { K_STR, K_INT, K_I64, K_DURATION, K_SIZE, K_BOOL, K_ENUM, K_USD };

struct var {
    const char *name;
    enum kind kind;
    size_t off;
    const char *def;            /* default as text; NULL = unset */
    int64_t min, max;           /* numeric bounds */
    const char *const *choices; /* K_ENUM: NULL-terminated; value = index */
    int secret;                 /* SECRET_ALL, or SECRET_URL: only a URL's password */
};
enum { SECRET_ALL = 1, SECRET_URL = 2 };

static const char *const env_choices[] = { "development", "production", NULL };
static const char *const level_choices[] = { "debug", "info", "warn", "error", NULL };
static const char *const sync_choices[] = { "normal", "full", NULL };
/* the order of enum agent_busy_policy (agent/runner.h) */
static const char *const busy_choices[] = { "enqueue", "reject", "interrupt", NULL };
/* the order of enum config_turn_recovery */
static const char *const recovery_choices[] = { "resume", "fail", NULL };
static const char *const auth_choices[] = { "off", "on", NULL };
/* the order of enum config_guard_mode, enum config_guard_fail */
static const char *const guard_mode_choices[] = { "reject", "flag", NULL };
static const char *const guard_fail_choices[] = { "closed", "open", NULL };
/* the order of enum config_redis_down */
static const char *const redis_down_choices[] = { "open", "closed", NULL };

#define OFF(f) offsetof(struct config, f)
#define DAY (86400000LL)
static const struct var vars[] = {
    { "AGENTD_HOST",             K_STR,      OFF(host),             "127.0.0.1", 0, 0, NULL, 0 },
    { "AGENTD_PORT",             K_INT,      OFF(port),             "8080", 0, 65535, NULL, 0 },
    { "AGENTD_THREADS",          K_INT,      OFF(threads),          NULL, 1, 256, NULL, 0 },
    { "AGENTD_WORKERS",          K_INT,      OFF(workers),          "16", 1, 256, NULL, 0 },
    { "AGENTD_ENV",              K_ENUM,     OFF(env),              "development", 0, 0, env_choices, 0 },
    { "AGENTD_LOG_LEVEL",        K_ENUM,     OFF(log_level),        "info", 0, 0, level_choices, 0 },
    { "AGENTD_ACCESS_LOG",       K_BOOL,     OFF(access_log),       "on", 0, 1, NULL, 0 },
    { "AGENTD_MAX_BODY_BYTES",   K_SIZE,     OFF(max_body_bytes),   "1048576", 1024, 1LL << 32, NULL, 0 },
    { "AGENTD_MAX_HEADER_BYTES", K_SIZE,     OFF(max_header_bytes), "16384", 256, 1LL << 20, NULL, 0 },
    { "AGENTD_READ_TIMEOUT",     K_DURATION, OFF(read_timeout_ms),  "10s", 100, DAY, NULL, 0 },
    { "AGENTD_IDLE_TIMEOUT",     K_DURATION, OFF(idle_timeout_ms),  "60s", 100, DAY, NULL, 0 },
    { "AGENTD_DRAIN_TIMEOUT",    K_DURATION, OFF(drain_timeout_ms), "25s", 0, DAY, NULL, 0 },
    { "AGENTD_MAX_CONNECTIONS",  K_INT,      OFF(max_connections),  NULL, 1, 1000000, NULL, 0 },
    { "AGENTD_DATA_DIR",         K_STR,      OFF(data_dir),         "./agentd-data", 0, 0, NULL, 0 },
    { "AGENTD_DB",               K_STR,      OFF(db),               NULL, 0, 0, NULL, SECRET_URL },
    { "AGENTD_DB_SYNC",          K_ENUM,     OFF(db_sync),          "normal", 0, 0, sync_choices, 0 },
    { "AGENTD_DB_POOL",          K_INT,      OFF(db_pool),          NULL, 1, 256, NULL, 0 },
    { "AGENTD_SESSION_TTL",      K_DURATION, OFF(session_ttl_ms),   "24h", 0, 3650 * DAY, NULL, 0 },
    { "AGENTD_AUDIT_RETENTION",  K_DURATION, OFF(audit_retention_ms),"90d", 0, 3650 * DAY, NULL, 0 },
    { "AGENTD_TURN_TIMEOUT",     K_DURATION, OFF(turn_timeout_ms),  "60s", 100, DAY, NULL, 0 },
    { "AGENTD_BUSY_POLICY",      K_ENUM,     OFF(busy_policy),      "enqueue", 0, 0, busy_choices, 0 },
    { "AGENTD_MAX_STEPS",        K_INT,      OFF(max_steps),        "8", 1, 100, NULL, 0 },
    { "AGENTD_HISTORY_MAX_BYTES",K_SIZE,     OFF(history_max_bytes),"65536", 1024, 1LL << 26, NULL, 0 },
    { "AGENTD_AGENT_PROMPT_FILE",K_STR,      OFF(agent_prompt_file),NULL, 0, 0, NULL, 0 },
    { "AGENTD_TURN_RECOVERY",    K_ENUM,     OFF(turn_recovery),    "resume", 0, 0, recovery_choices, 0 },
    { "AGENTD_TURN_TOKEN_BUDGET",K_I64,      OFF(turn_token_budget),"200000", 0, 1LL << 40, NULL, 0 },
    { "AGENTD_DAILY_TOKEN_BUDGET",K_I64,     OFF(daily_token_budget),"0", 0, 1LL << 50, NULL, 0 },
    { "AGENTD_DAILY_COST_BUDGET",K_USD,      OFF(daily_cost_budget_micro),"0", 0, 1000000LL * 1000000000LL, NULL, 0 },
    { "AGENTD_PUBLIC_URL",       K_STR,      OFF(public_url),       NULL, 0, 0, NULL, 0 },
    { "AGENTD_CATALOG",          K_STR,      OFF(catalog),          NULL, 0, 0, NULL, 0 },
    { "AGENTD_PROFILE_ALLOWLIST",K_STR,      OFF(profile_allowlist),NULL, 0, 0, NULL, 0 },
    { "AGENTD_PRIVACY_URL",      K_STR,      OFF(privacy_url),      NULL, 0, 0, NULL, 0 },
    { "AGENTD_TERMS_URL",        K_STR,      OFF(terms_url),        NULL, 0, 0, NULL, 0 },
    { "AGENTD_ALLOW_TEST_PAYMENTS",K_BOOL,   OFF(allow_test_payments),"off", 0, 1, NULL, 0 },
    { "AGENTD_PAYMENT_BUSINESS_ID",K_STR,    OFF(payment_business_id),"1234567890", 0, 0, NULL, 0 },
    { "AGENTD_SIMULATION_SECRET",K_STR,      OFF(simulation_secret),NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_FAILPOINT",        K_STR,      OFF(failpoint),        NULL, 0, 0, NULL, 0 },
    { "AGENTD_CORS_ORIGINS",     K_STR,      OFF(cors_origins),     NULL, 0, 0, NULL, 0 },
    { "AGENTD_AUTH",             K_ENUM,     OFF(auth),             "off", 0, 0, auth_choices, 0 },
    { "AGENTD_METRICS_TOKEN",    K_STR,      OFF(metrics_token),    NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_ENCRYPTION_KEY",   K_STR,      OFF(encryption_key),   NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_ENCRYPTION_KEYS_OLD",K_STR,    OFF(encryption_keys_old),NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_OIDC_ISSUER",      K_STR,      OFF(oidc_issuer),      NULL, 0, 0, NULL, 0 },
    { "AGENTD_OIDC_AUDIENCE",    K_STR,      OFF(oidc_audience),    NULL, 0, 0, NULL, 0 },
    { "AGENTD_OIDC_JWKS_URL",    K_STR,      OFF(oidc_jwks_url),    NULL, 0, 0, NULL, 0 },
    { "AGENTD_OIDC_JWKS_REFRESH",K_DURATION, OFF(oidc_jwks_refresh_ms),"30s", 0, DAY, NULL, 0 },
    { "AGENTD_JWT_HS256_SECRET", K_STR,      OFF(jwt_hs256_secret), NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_RATE_LIMIT",       K_STR,      OFF(rate_limit),       NULL, 0, 0, NULL, 0 },
    { "AGENTD_RATE_LIMIT_TURNS", K_STR,      OFF(rate_limit_turns), NULL, 0, 0, NULL, 0 },
    { "AGENTD_AUTH_FAIL_LIMIT",  K_STR,      OFF(auth_fail_limit),  "10/m,20", 0, 0, NULL, 0 },
    { "AGENTD_REDIS_URL",        K_STR,      OFF(redis_url),        NULL, 0, 0, NULL, SECRET_URL },
    { "AGENTD_RATE_LIMIT_ON_REDIS_DOWN",K_ENUM,OFF(rate_limit_on_redis_down),"open", 0, 0, redis_down_choices, 0 },
    { "AGENTD_EVENTS_POLL",      K_DURATION, OFF(events_poll_ms),   "1s", 100, 3600000, NULL, 0 },
    { "AGENTD_INSTANCE_DEAD_AFTER",K_DURATION,OFF(instance_dead_after_ms),"10s", 1000, 3600000, NULL, 0 },
    { "AGENTD_INSTANCE_HOST",    K_STR,      OFF(instance_host),    NULL, 0, 0, NULL, 0 },
    { "AGENTD_QUOTA_SESSIONS",   K_INT,      OFF(quota_sessions),   "10000", 0, 100000000, NULL, 0 },
    { "AGENTD_QUOTA_IDEMPOTENCY_KEYS",K_INT, OFF(quota_idempotency_keys),"10000", 0, 100000000, NULL, 0 },
    { "AGENTD_GUARD_MODE",       K_ENUM,     OFF(guard_mode),       "reject", 0, 0, guard_mode_choices, 0 },
    { "AGENTD_GUARD_URL",        K_STR,      OFF(guard_url),        NULL, 0, 0, NULL, SECRET_URL },
    { "AGENTD_GUARD_TIMEOUT",    K_DURATION, OFF(guard_timeout_ms), "2s", 10, 60000, NULL, 0 },
    { "AGENTD_GUARD_FAIL",       K_ENUM,     OFF(guard_fail),       "closed", 0, 0, guard_fail_choices, 0 },
    { "AGENTD_TLS_CERT_FILE",    K_STR,      OFF(tls_cert_file),    NULL, 0, 0, NULL, 0 },
    { "AGENTD_TLS_KEY_FILE",     K_STR,      OFF(tls_key_file),     NULL, 0, 0, NULL, 0 },
    { "AGENTD_BEHIND_PROXY",     K_BOOL,     OFF(behind_proxy),     "off", 0, 1, NULL, 0 },
    { "AGENTD_SIGNING_KEY",      K_STR,      OFF(signing_key),      NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_WEBHOOK_TIMEOUT",  K_DURATION, OFF(webhook_timeout_ms),"10s", 100, 300000, NULL, 0 },
    { "AGENTD_WEBHOOK_MAX_ATTEMPTS",K_INT,   OFF(webhook_max_attempts),"20", 1, 100, NULL, 0 },
    { "AGENTD_OTLP_ENDPOINT",    K_STR,      OFF(otlp_endpoint),    NULL, 0, 0, NULL, SECRET_URL },
    { "AGENTD_OTLP_HEADERS",     K_STR,      OFF(otlp_headers),     NULL, 0, 0, NULL, SECRET_ALL },
    { "AGENTD_TRACE_SAMPLE",     K_STR,      OFF(trace_sample),     NULL, 0, 0, NULL, 0 },
    { "AGENTD_SERVICE_NAME",     K_STR,      OFF(service_name),     "agentd", 0, 0, NULL, 0 },
};
#define NVARS (sizeof vars / sizeof vars[0])

/* ---- problems list ---- */

void config_problems_add(struct config_problems *p, const char *fmt, ...)
{
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 8;
        char **items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items)
            return;
        p->items = items;
        p->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) >= 0)
        p->items[p->n++] = s;
    va_end(ap);
}

void config_problems_free(struct config_problems *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->items[i]);
    free(p->items);
    *p = (struct config_problems){ 0 };
}

/* ---- value parsers ---- */

static int parse_i64(const char *s, int64_t *out)
{
    if (!*s)
        return AGENTD_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return AGENTD_EINVAL;
    *out = v;
    return 0;
}

/* number followed by a unit from the table; mult of the unit */
static int parse_scaled(const char *s, int64_t *out, const char *const *units, const int64_t *mults,
                        int64_t bare_mult)
{
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return AGENTD_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno)
        return AGENTD_EINVAL;
    int64_t mult = -1;
    if (!*end) {
        mult = bare_mult;
    } else {
        for (int i = 0; units[i]; i++)
            if (strcasecmp(end, units[i]) == 0) {
                mult = mults[i];
                break;
            }
    }
    if (mult < 0 || (v > 0 && v > INT64_MAX / mult))
        return AGENTD_EINVAL;
    *out = v * mult;
    return 0;
}

int config_parse_duration(const char *s, int64_t *ms)
{
    static const char *const units[] = { "ms", "s", "m", "h", "d", NULL };
    static const int64_t mults[] = { 1, 1000, 60000, 3600000, 86400000 };
    return parse_scaled(s, ms, units, mults, 1000);
}

int config_parse_size(const char *s, int64_t *bytes)
{
    static const char *const units[] = { "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", NULL };
    static const int64_t mults[] = { 1, 1024, 1024, 1024, 1 << 20, 1 << 20, 1 << 20, 1 << 30, 1 << 30, 1 << 30 };
    return parse_scaled(s, bytes, units, mults, 1);
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = { "1", "on", "true", "yes", NULL };
    static const char *const no[] = { "0", "off", "false", "no", NULL };
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
    for (int i = 0; no[i]; i++)
        if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
    return AGENTD_EINVAL;
}

/* ---- reading NAME or NAME_FILE ---- */

const char *config_getenv_default(const char *name, void *ud)
{
    (void)ud;
    return getenv(name);
}

char *config_read_small_file(const char *path, struct agentd_error *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        agentd_fail(e, AGENTD_EIO, NULL, path, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    int toolong = buf && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    if (!buf) {
        agentd_fail(e, AGENTD_ENOMEM, NULL, path, "out of memory");
        return NULL;
    }
    if (toolong) {
        free(buf);
        agentd_fail(e, AGENTD_ETOOLARGE, NULL, path, "%s is larger than 64 KiB", path);
        return NULL;
    }
    buf[n] = 0;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    return buf;
}

int config_max_connections_for_fds(uint64_t fd_limit)
{
    if (fd_limit < 66)
        return 1;
    uint64_t n = (fd_limit - 64) / 2;
    return n > 10000 ? 10000 : (int)n;
}

/* serve raises its soft open-file limit to the hard one (main.c), so the
 * hard limit is what the default connection cap must fit. */
static int default_max_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
        return 10000;
    return config_max_connections_for_fds((uint64_t)rl.rlim_max);
}

/* Returns an allocated value, NULL when unset. Problems are recorded. */
static char *lookup(const struct var *v, config_getenv_fn get, void *ud, struct config_problems *pr)
{
    char fname[128];
    snprintf(fname, sizeof fname, "%s_FILE", v->name);
    const char *direct = get(v->name, ud);
    const char *file = get(fname, ud);
    if (direct && file) {
        config_problems_add(pr, "%s and %s are both set: set only one", v->name, fname);
        return NULL;
    }
    if (file) {
        struct agentd_error e;
        char *val = config_read_small_file(file, &e);
        if (!val)
            config_problems_add(pr, "%s: %s", fname, e.msg);
        return val;
    }
    return direct ? strdup(direct) : NULL;
}

static void describe_choices(const char *const *choices, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; choices[i] && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? " | " : "", choices[i]);
}

/* Apply text `s` to the field; returns 0 or -1 with a problem recorded. */
static int apply(struct config *cfg, const struct var *v, const char *s, int is_default,
                 struct config_problems *pr)
{
    char *field = (char *)cfg + v->off;
    int64_t n = 0;
    int b = 0;
    /* a secret's value never appears in a problem line */
    const char *shown = v->secret == SECRET_ALL ? "***" : s;
    switch (v->kind) {
    case K_STR:
        free(*(char **)field);
        *(char **)field = strdup(s);
        return 0;
    case K_INT:
    case K_I64:
        if (parse_i64(s, &n) != 0) {
            config_problems_add(pr, "%s=%s: not an integer", v->name, shown);
            return AGENTD_EINVAL;
        }
        break;
    case K_DURATION:
        if (config_parse_duration(s, &n) != 0) {
            config_problems_add(pr, "%s=%s: not a duration (e.g. 250ms, 10s, 5m, 24h)", v->name, shown);
            return AGENTD_EINVAL;
        }
        break;
    case K_SIZE:
        if (config_parse_size(s, &n) != 0) {
            config_problems_add(pr, "%s=%s: not a size (e.g. 1048576, 512k, 1m)", v->name, shown);
            return AGENTD_EINVAL;
        }
        break;
    case K_BOOL:
        if (parse_bool(s, &b) != 0) {
            config_problems_add(pr, "%s=%s: expected on or off", v->name, shown);
            return AGENTD_EINVAL;
        }
        *(int *)field = b;
        return 0;
    case K_USD: { /* decimal US dollars, kept in micro-dollars */
        char *end = NULL;
        errno = 0;
        double d = strtod(s, &end);
        if (errno || end == s || *end || !(d >= 0) || d > 1e9) {
            config_problems_add(pr, "%s=%s: not an amount of US dollars (e.g. 25 or 2.50)", v->name,
                                shown);
            return AGENTD_EINVAL;
        }
        n = (int64_t)(d * 1e6 + 0.5);
        break;
    }
    case K_ENUM:
        for (int i = 0; v->choices[i]; i++)
            if (strcasecmp(s, v->choices[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        char list[256];
        describe_choices(v->choices, list, sizeof list);
        config_problems_add(pr, "%s=%s: expected one of %s", v->name, shown, list);
        return AGENTD_EINVAL;
    }
    if ((v->min || v->max) && (n < v->min || n > v->max) && !is_default) {
        config_problems_add(pr, "%s=%s: out of range [%lld, %lld]", v->name, shown,
                            (long long)v->min, (long long)v->max);
        return AGENTD_EINVAL;
    }
    if (v->kind == K_INT)
        *(int *)field = (int)n;
    else
        *(int64_t *)field = n;
    return 0;
}

static void allowlist_problem(const char *message, void *ud)
{
    config_problems_add(ud, "AGENTD_PROFILE_ALLOWLIST: %s", message);
}

/* 1 if url is https://host..., or (development only) http:// to a loopback host */
static int oidc_url_ok(const char *url, int production)
{
    if (strncmp(url, "https://", 8) == 0)
        return url[8] != 0 && url[8] != '/';
    if (production || strncmp(url, "http://", 7) != 0)
        return 0;
    const char *h = url + 7;
    static const char *const loopback[] = { "127.0.0.1", "localhost", "[::1]" };
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        size_t n = strlen(loopback[i]);
        if (strncmp(h, loopback[i], n) == 0 && (h[n] == 0 || h[n] == ':' || h[n] == '/'))
            return 1;
    }
    return 0;
}

/* JWT settings come as a set: tokens are only meaningful for one issuer and
 * one audience, and an HS256 key shorter than its hash is guessable. */
static void check_jwt(const struct config *cfg, struct config_problems *pr)
{
    int prod = cfg->env == CONFIG_ENV_PRODUCTION;
    const char *need = prod ? "an https:// URL" : "an https:// URL (or http:// to a loopback host)";
    if (cfg->jwt_hs256_secret && strlen(cfg->jwt_hs256_secret) < 32)
        config_problems_add(pr, "AGENTD_JWT_HS256_SECRET: at least 32 bytes (it is the HMAC key)");
    if (!cfg->oidc_issuer) {
        if (cfg->oidc_audience || cfg->oidc_jwks_url || cfg->jwt_hs256_secret)
            config_problems_add(pr, "AGENTD_OIDC_ISSUER is required with AGENTD_OIDC_AUDIENCE, "
                                    "AGENTD_OIDC_JWKS_URL or AGENTD_JWT_HS256_SECRET");
        return;
    }
    if (!oidc_url_ok(cfg->oidc_issuer, prod))
        config_problems_add(pr, "AGENTD_OIDC_ISSUER=%s: must be %s", cfg->oidc_issuer, need);
    if (!cfg->oidc_audience)
        config_problems_add(pr, "AGENTD_OIDC_AUDIENCE is required with AGENTD_OIDC_ISSUER");
    if (cfg->oidc_jwks_url && !oidc_url_ok(cfg->oidc_jwks_url, prod))
        config_problems_add(pr, "AGENTD_OIDC_JWKS_URL=%s: must be %s", cfg->oidc_jwks_url, need);
}

/* Traces (docs/operations.md "Traces"): the collector is operator config,
 * so loopback and private hosts are fine; what no collector is (cloud
 * metadata and other link-local, unspecified, multicast addresses) and
 * credentials in the URL (they belong in AGENTD_OTLP_HEADERS) are refused. */
static void check_traces(struct config *cfg, struct config_problems *pr)
{
    cfg->trace_sample_ratio = 1.0;
    if (cfg->trace_sample) {
        char *end = NULL;
        errno = 0;
        double r = strtod(cfg->trace_sample, &end);
        if (errno || end == cfg->trace_sample || *end || !(r >= 0.0 && r <= 1.0))
            config_problems_add(pr, "AGENTD_TRACE_SAMPLE=%s: a ratio from 0 to 1", cfg->trace_sample);
        else
            cfg->trace_sample_ratio = r;
    }
    if (cfg->otlp_headers) {
        for (const char *p = cfg->otlp_headers; *p; p++)
            if (*p == '\r' || *p == '\n') {
                config_problems_add(pr, "AGENTD_OTLP_HEADERS: no line breaks (name=value,...)");
                break;
            }
    }
    if (!cfg->otlp_endpoint)
        return;
    const char *url = cfg->otlp_endpoint, *why = NULL;
    const char *auth = strncmp(url, "http://", 7) == 0    ? url + 7
                       : strncmp(url, "https://", 8) == 0 ? url + 8
                                                          : NULL;
    size_t alen = auth ? strcspn(auth, "/") : 0;
    if (!auth || alen == 0)
        why = "an http:// or https:// base URL";
    else if (memchr(auth, '@', alen) || strpbrk(url, "?#"))
        why = "no credentials or query in the URL (headers go in AGENTD_OTLP_HEADERS)";
    else {
        /* a numeric host is classified as the SSRF guard would */
        char lit[NETGUARD_HOST_MAX + 3];
        size_t hl = auth[0] == '[' ? strcspn(auth + 1, "]") : strcspn(auth, ":/");
        snprintf(lit, sizeof lit, "%.*s", (int)(hl < sizeof lit ? hl : sizeof lit - 1),
                 auth[0] == '[' ? auth + 1 : auth);
        int c = netguard_classify_text(lit);
        if (c == NETGUARD_LINK_LOCAL || c == NETGUARD_UNSPECIFIED || c == NETGUARD_MULTICAST ||
            c == NETGUARD_BROADCAST)
            why = "a collector's address (not link-local, unspecified or multicast)";
    }
    if (why)
        config_problems_add(pr, "AGENTD_OTLP_ENDPOINT: must be %s", why);
}

/* Native HTTPS: both files or neither, and they must load now (a bad
 * certificate found at the first handshake would be found by a client). */
static void check_tls(const struct config *cfg, struct config_problems *pr)
{
    if (!cfg->tls_cert_file != !cfg->tls_key_file) {
        config_problems_add(pr, "%s is set without %s: native HTTPS needs both (or neither)",
                            cfg->tls_cert_file ? "AGENTD_TLS_CERT_FILE" : "AGENTD_TLS_KEY_FILE",
                            cfg->tls_cert_file ? "AGENTD_TLS_KEY_FILE" : "AGENTD_TLS_CERT_FILE");
        return;
    }
    SSL_CTX *ctx = NULL;
    struct agentd_error e = { 0 };
    if (cfg->tls_cert_file && tls_ctx_load(cfg->tls_cert_file, cfg->tls_key_file, &ctx, &e) != 0)
        config_problems_add(pr, "%s", e.msg);
    SSL_CTX_free(ctx);
}

int config_load(struct config *cfg, config_getenv_fn get, void *ud, struct config_problems *pr)
{
    memset(cfg, 0, sizeof *cfg);
    if (!get)
        get = config_getenv_default;
    int before = pr->n;
    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        if (v->def)
            apply(cfg, v, v->def, 1, pr);
        char *val = lookup(v, get, ud, pr);
        if (val) {
            if (*val)
                apply(cfg, v, val, 0, pr);
            else
                config_problems_add(pr, "%s is set but empty", v->name);
            free(val);
        }
    }

    /* derived defaults and cross-field rules */
    if (cfg->threads == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = ncpu > 0 ? (int)(ncpu > 256 ? 256 : ncpu) : 1;
    }
    if (cfg->max_connections == 0) {
        cfg->max_connections = default_max_connections();
        cfg->max_connections_auto = 1;
    }
    if (!cfg->db && cfg->data_dir) {
        size_t len = strlen(cfg->data_dir) + sizeof "/agentd.db";
        cfg->db = malloc(len);
        if (cfg->db)
            snprintf(cfg->db, len, "%s/agentd.db", cfg->data_dir);
    }
    /* a PostgreSQL URL is told from a file path by its scheme alone */
    if (cfg->db && strncmp(cfg->db, "postgres", 8) == 0 && strstr(cfg->db, "://") &&
        strncmp(cfg->db, "postgres://", 11) != 0 && strncmp(cfg->db, "postgresql://", 13) != 0)
        config_problems_add(pr, "AGENTD_DB: a PostgreSQL URL starts with postgres:// or "
                                "postgresql://");
    if (cfg->public_url) {
        size_t n = strlen(cfg->public_url);
        if (strncmp(cfg->public_url, "http://", 7) != 0 && strncmp(cfg->public_url, "https://", 8) != 0)
            config_problems_add(pr, "AGENTD_PUBLIC_URL=%s: must start with http:// or https://",
                                cfg->public_url);
        while (n > 0 && cfg->public_url[n - 1] == '/') /* no trailing slash: we append paths */
            cfg->public_url[--n] = 0;
    } else if (cfg->host) {
        int ipv6 = strchr(cfg->host, ':') != NULL;
        if (asprintf(&cfg->public_url, ipv6 ? "%s://[%s]:%d" : "%s://%s:%d",
                     cfg->tls_cert_file ? "https" : "http", cfg->host, cfg->port) < 0)
            cfg->public_url = NULL;
    }
    /* payment data at rest: a key that cannot seal is a start-up problem */
    struct seal_keyring *kr = NULL;
    struct agentd_error ke = { 0 };
    if ((cfg->encryption_key || cfg->encryption_keys_old) &&
        seal_keyring_new(cfg->encryption_key, cfg->encryption_keys_old, &kr, &ke) != 0)
        config_problems_add(pr, "%s", ke.msg);
    seal_keyring_free(kr);
    /* legal links are handed to buyers: an absolute URL, https in production */
    const char *legal[][2] = { { "AGENTD_PRIVACY_URL", cfg->privacy_url },
                               { "AGENTD_TERMS_URL", cfg->terms_url } };
    for (int i = 0; i < 2; i++) {
        const char *u = legal[i][1];
        if (!u)
            continue;
        int https = strncmp(u, "https://", 8) == 0 && u[8];
        if (!https && !(strncmp(u, "http://", 7) == 0 && u[7]))
            config_problems_add(pr, "%s=%s: must be an absolute http:// or https:// URL",
                                legal[i][0], u);
        else if (!https && cfg->env == CONFIG_ENV_PRODUCTION)
            config_problems_add(pr, "production: %s=%s: use an https:// URL", legal[i][0], u);
    }
    if (cfg->profile_allowlist) {
        /* every bad entry is its own problem; the parsed list is rebuilt by
         * its users (api/profiles), which keeps struct config plain text */
        struct netguard_allowlist al;
        if (netguard_allowlist_parse(cfg->profile_allowlist, &al, allowlist_problem, pr) < 0)
            config_problems_add(pr, "AGENTD_PROFILE_ALLOWLIST: out of memory");
        netguard_allowlist_free(&al);
    }
    if (cfg->cors_origins) {
        /* an origin is scheme://host[:port], as browsers send it: no path, no wildcard */
        for (const char *p = cfg->cors_origins; *p;) {
            size_t n = strcspn(p, ", ");
            if (n) {
                int ok = (strncmp(p, "http://", 7) == 0 && n > 7) ||
                         (strncmp(p, "https://", 8) == 0 && n > 8);
                if (ok && memchr(p + 8, '/', n - 8)) /* n >= 8 when ok */
                    ok = 0;
                if (!ok)
                    config_problems_add(pr, "AGENTD_CORS_ORIGINS: \"%.*s\" is not an origin "
                                            "(scheme://host[:port])", (int)(n > 100 ? 100 : n), p);
            }
            p += n;
            p += strspn(p, ", ");
        }
    }
    check_jwt(cfg, pr);
    check_tls(cfg, pr);
    /* the guard reads every user message: plain http only on this host */
    if (cfg->guard_url && !oidc_url_ok(cfg->guard_url, cfg->env == CONFIG_ENV_PRODUCTION))
        config_problems_add(pr, "AGENTD_GUARD_URL: must be an https:// URL%s",
                            cfg->env == CONFIG_ENV_PRODUCTION ? "" : " (or http:// to a loopback host)");
    /* rate limits: off in development unless set, generous in production */
    const char *rl[][3] = { { "AGENTD_RATE_LIMIT", "rate_limit", "20/s,40" },
                            { "AGENTD_RATE_LIMIT_TURNS", "rate_limit_turns", "30/m,10" } };
    char **rlf[] = { &cfg->rate_limit, &cfg->rate_limit_turns };
    for (int i = 0; i < 2; i++) {
        if (!*rlf[i])
            *rlf[i] = strdup(cfg->env == CONFIG_ENV_PRODUCTION ? rl[i][2] : "off");
        struct ratelimit_rule rule;
        struct agentd_error e;
        if (*rlf[i] && ratelimit_rule_parse(*rlf[i], &rule, &e) != 0)
            config_problems_add(pr, "%s: %s", rl[i][0], e.msg);
    }
    struct ratelimit_rule afl;
    struct agentd_error ae;
    if (cfg->auth_fail_limit && ratelimit_rule_parse(cfg->auth_fail_limit, &afl, &ae) != 0)
        config_problems_add(pr, "AGENTD_AUTH_FAIL_LIMIT: %s", ae.msg);
    struct redis_url ru;
    struct agentd_error re;
    if (cfg->redis_url && redis_url_parse(cfg->redis_url, &ru, &re) != 0)
        config_problems_add(pr, "AGENTD_REDIS_URL: %s", re.msg);
    check_traces(cfg, pr);
    config_check_production(cfg, pr);
    return pr->n - before;
}

/* ---- unknown variables ---- */

const char *config_getenv_seen(const char *name, void *ud)
{
    struct config_seen *s = ud;
    int known = 0;
    for (int i = 0; i < s->n && !known; i++)
        known = strcmp(s->names[i], name) == 0;
    if (!known) {
        if (s->n == s->cap) {
            int cap = s->cap ? s->cap * 2 : 64;
            char **names = realloc(s->names, (size_t)cap * sizeof *names);
            if (names) {
                s->names = names;
                s->cap = cap;
            }
        }
        char *copy = s->n < s->cap ? strdup(name) : NULL;
        if (copy)
            s->names[s->n++] = copy;
    }
    return (s->get ? s->get : config_getenv_default)(name, s->ud);
}

void config_seen_free(struct config_seen *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->names[i]);
    free(s->names);
    s->names = NULL;
    s->n = s->cap = 0;
}

/* Edit distance with adjacent transpositions (PORT/PROT is one typo). */
static size_t typo_distance(const char *a, size_t la, const char *b, size_t lb)
{
    enum { MAXL = 96 };
    if (la >= MAXL || lb >= MAXL)
        return (size_t)-1;
    static _Thread_local size_t d[MAXL][MAXL];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

int config_check_unknown(char *const *envp, const struct config_seen *seen,
                         struct config_problems *pr)
{
    int n = 0;
    for (; envp && *envp; envp++) {
        const char *kv = *envp;
        const char *eq = strchr(kv, '=');
        size_t len = eq ? (size_t)(eq - kv) : strlen(kv);
        if (len < 7 || strncmp(kv, "AGENTD_", 7) != 0)
            continue;
        int known = 0;
        const char *near = NULL;
        size_t best = (size_t)-1;
        for (int i = 0; i < seen->n && !known; i++) {
            const char *k = seen->names[i];
            size_t kl = strlen(k);
            if (kl == len && memcmp(k, kv, len) == 0)
                known = 1;
            size_t dist = typo_distance(kv, len, k, kl);
            if (dist < best) {
                best = dist;
                near = k;
            }
        }
        if (known)
            continue;
        /* a suggestion only when it is plausibly the same name mistyped */
        if (near && best <= (len < 16 ? 2 : 3))
            config_problems_add(pr, "%.*s: unknown variable (did you mean %s?)", (int)len, kv, near);
        else
            config_problems_add(pr, "%.*s: unknown variable", (int)len, kv);
        n++;
    }
    return n;
}

/* ---- production safety: each row names a setting that production refuses ---- */

struct prod_rule {
    const char *problem;
    int (*unsafe)(const struct config *cfg);
};

static int simulation_enabled(const struct config *c) { return c->simulation_secret != NULL; }
static int debug_logging(const struct config *c) { return c->log_level == LOG_DEBUG; }
static int failpoint_set(const struct config *c) { return c->failpoint != NULL; }
static int body_limit_large(const struct config *c) { return c->max_body_bytes > (16LL << 20); }
static int read_timeout_long(const struct config *c) { return c->read_timeout_ms > 60000; }
static int auth_off(const struct config *c) { return !c->auth; }
static int no_encryption_key(const struct config *c) { return c->encryption_key == NULL; }
int config_host_is_loopback(const char *h)
{
    if (!h)
        return 0;
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 ||
           strcmp(h, "[::1]") == 0;
}
/* plain HTTP reachable from other hosts, with no proxy said to terminate TLS */
static int plain_http_exposed(const struct config *c)
{
    return !c->tls_cert_file && !c->behind_proxy && !config_host_is_loopback(c->host);
}
static int public_url_http(const struct config *c)
{
    return c->public_url && !oidc_url_ok(c->public_url, 0); /* https, or http to loopback */
}

static const struct prod_rule prod_rules[] = {
    { "AGENTD_SIMULATION_SECRET is set: test-only simulation routes are refused in production",
      simulation_enabled },
    { "AGENTD_LOG_LEVEL=debug: debug logs may carry request details; use info or higher in production",
      debug_logging },
    { "AGENTD_FAILPOINT is set: a test-only crash switch is refused in production", failpoint_set },
    { "AGENTD_MAX_BODY_BYTES is over 16 MiB: a body that large only ties up memory", body_limit_large },
    { "AGENTD_READ_TIMEOUT is over 60s: slow clients would hold connections that long",
      read_timeout_long },
    { "AGENTD_AUTH=off: every request would be the anonymous principal; set AGENTD_AUTH=on and "
      "create keys with `agentd keys create --principal NAME`", auth_off },
    { "AGENTD_ENCRYPTION_KEY is not set: payment credentials would be sealed with a key that dies "
      "with the process; set it (`openssl rand -base64 32`)", no_encryption_key },
    { "plain HTTP on a non-loopback AGENTD_HOST: set AGENTD_TLS_CERT_FILE and AGENTD_TLS_KEY_FILE, "
      "or AGENTD_BEHIND_PROXY=1 when a proxy in front terminates TLS", plain_http_exposed },
    { "AGENTD_PUBLIC_URL is http:// to a host that is not loopback: clients would send keys and "
      "payment data in the clear; set AGENTD_PUBLIC_URL to the https:// URL clients use",
      public_url_http },
};

int config_check_production(const struct config *cfg, struct config_problems *pr)
{
    if (cfg->env != CONFIG_ENV_PRODUCTION)
        return 0;
    int n = 0;
    for (size_t i = 0; i < sizeof prod_rules / sizeof prod_rules[0]; i++)
        if (prod_rules[i].unsafe(cfg)) {
            config_problems_add(pr, "production: %s", prod_rules[i].problem);
            n++;
        }
    return n;
}

/* ---- dump ---- */

char *config_redact_url(const char *url)
{
    /* scheme://user:password@host/... -> scheme://user:***@host/... */
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at && slash && slash < at)
        at = NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) : NULL;
    if (!colon)
        return strdup(url);
    char *out = NULL;
    if (asprintf(&out, "%.*s:***%s", (int)(colon - url), url, at) < 0)
        return NULL;
    return out;
}

void config_dump(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        const char *field = (const char *)cfg + v->off;
        fprintf(out, "%s=", v->name);
        if (v->secret == SECRET_URL && *(char *const *)field) {
            char *shown = config_redact_url(*(char *const *)field);
            fputs(shown ? shown : "***set***", out);
            free(shown);
        } else if (v->secret) {
            fputs(*(char *const *)field ? "***set***" : "(unset)", out);
        } else {
            switch (v->kind) {
            case K_STR: {
                const char *s = *(char *const *)field;
                fputs(s ? s : "(unset)", out);
                break;
            }
            case K_INT: fprintf(out, "%d", *(const int *)field); break;
            case K_BOOL: fputs(*(const int *)field ? "on" : "off", out); break;
            case K_ENUM: fputs(v->choices[*(const int *)field], out); break;
            case K_DURATION: fprintf(out, "%lldms", (long long)*(const int64_t *)field); break;
            case K_I64:
            case K_SIZE: fprintf(out, "%lld", (long long)*(const int64_t *)field); break;
            case K_USD: fprintf(out, "%.6f", (double)*(const int64_t *)field / 1e6); break;
            }
        }
        fputc('\n', out);
    }
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NVARS; i++)
        if (vars[i].kind == K_STR)
            free(*(char **)((char *)cfg + vars[i].off));
    /* AGENTD_DB is K_STR too, including the derived default */
    memset(cfg, 0, sizeof *cfg);
}
