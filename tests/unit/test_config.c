/* config: defaults, every error path, _FILE secrets, production rules, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

/* A fake environment: NULL-terminated pairs. */
/* base64 of 32 bytes: production needs an encryption key */
#define TEST_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

static const char *fake_get(const char *name, void *ud)
{
    const char *const *kv = ud;
    for (int i = 0; kv[i]; i += 2)
        if (strcmp(kv[i], name) == 0)
            return kv[i + 1];
    return NULL;
}

static int load(struct config *c, const char *const *env, struct config_problems *pr)
{
    return config_load(c, fake_get, (void *)env, pr);
}

static int has_problem(const struct config_problems *pr, const char *needle)
{
    for (int i = 0; i < pr->n; i++)
        if (strstr(pr->items[i], needle))
            return 1;
    return 0;
}

static char *dump(const struct config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_dump(c, f);
    fclose(f);
    return text;
}

static void test_defaults(void **state)
{
    (void)state;
    const char *env[] = { NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_true(c.threads >= 1);
    assert_int_equal(c.env, CONFIG_ENV_DEVELOPMENT);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.drain_timeout_ms, 25000);
    assert_int_equal(c.session_ttl_ms, 24LL * 3600 * 1000);
    assert_string_equal(c.db, "./agentd-data/agentd.db");
    assert_int_equal(c.access_log, 1);
    config_free(&c);
    config_problems_free(&pr);
}

static void test_values(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_PORT", "9000", "AGENTD_THREADS", "3", "AGENTD_ENV", "PRODUCTION", "AGENTD_ENCRYPTION_KEY", TEST_KEY,
                          "AGENTD_LOG_LEVEL", "warn", "AGENTD_MAX_BODY_BYTES", "2m",
                          "AGENTD_DRAIN_TIMEOUT", "1500ms", "AGENTD_SESSION_TTL", "0",
                          "AGENTD_ACCESS_LOG", "off", "AGENTD_DB", "/tmp/x.db", "AGENTD_AUTH", "on",
                          NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 0);
    assert_int_equal(c.port, 9000);
    assert_int_equal(c.threads, 3);
    assert_int_equal(c.env, CONFIG_ENV_PRODUCTION);
    assert_int_equal(c.log_level, LOG_WARN);
    assert_int_equal(c.max_body_bytes, 2 << 20);
    assert_int_equal(c.drain_timeout_ms, 1500);
    assert_int_equal(c.session_ttl_ms, 0);
    assert_int_equal(c.access_log, 0);
    assert_string_equal(c.db, "/tmp/x.db");
    config_free(&c);
    config_problems_free(&pr);
}

static void test_every_problem_reported(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_PORT", "abc", "AGENTD_ENV", "staging", "AGENTD_MAX_BODY_BYTES", "-5",
                          "AGENTD_THREADS", "0", "AGENTD_READ_TIMEOUT", "soon",
                          "AGENTD_ACCESS_LOG", "maybe", "AGENTD_HOST", "", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 7);
    assert_true(has_problem(&pr, "AGENTD_PORT=abc"));
    assert_true(has_problem(&pr, "AGENTD_ENV=staging"));
    assert_true(has_problem(&pr, "development | production"));
    assert_true(has_problem(&pr, "AGENTD_MAX_BODY_BYTES=-5"));
    assert_true(has_problem(&pr, "AGENTD_THREADS=0: out of range"));
    assert_true(has_problem(&pr, "AGENTD_READ_TIMEOUT=soon"));
    assert_true(has_problem(&pr, "AGENTD_ACCESS_LOG=maybe"));
    assert_true(has_problem(&pr, "AGENTD_HOST is set but empty"));
    /* bad values fall back to defaults so the struct stays usable */
    assert_int_equal(c.port, 8080);
    config_free(&c);
    config_problems_free(&pr);
}

static void test_port_range(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_PORT", "70000", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 1);
    assert_true(has_problem(&pr, "out of range [0, 65535]"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_secret_file(void **state)
{
    (void)state;
    char path[] = "/tmp/agentd-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cr3t-value\n", 13), 13);
    close(fd);
    const char *env[] = { "AGENTD_SIMULATION_SECRET_FILE", path, NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 0);
    assert_string_equal(c.simulation_secret, "s3cr3t-value"); /* trailing newline stripped */
    char *text = dump(&c);
    assert_non_null(strstr(text, "AGENTD_SIMULATION_SECRET=***set***"));
    assert_null(strstr(text, "s3cr3t"));
    free(text);
    config_free(&c);
    config_problems_free(&pr);
    unlink(path);
}

static void test_secret_file_errors(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_SIMULATION_SECRET_FILE", "/nonexistent/secret", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_SIMULATION_SECRET_FILE: cannot read /nonexistent/secret"));
    config_free(&c);
    config_problems_free(&pr);

    const char *both[] = { "AGENTD_SIMULATION_SECRET", "a", "AGENTD_SIMULATION_SECRET_FILE", "/x", NULL };
    assert_int_equal(load(&c, both, &pr), 1);
    assert_true(has_problem(&pr, "both set"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_secret_never_in_problem(void **state)
{
    (void)state;
    /* a bad value of a secret variable is not echoed back */
    const char *env[] = { "AGENTD_SIMULATION_SECRET", "", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    load(&c, env, &pr);
    for (int i = 0; i < pr.n; i++)
        assert_null(strstr(pr.items[i], "hunter2"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_production_rules(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_SIMULATION_SECRET", "x",
                          "AGENTD_LOG_LEVEL", "debug", "AGENTD_AUTH", "on", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 2);
    assert_true(has_problem(&pr, "production: AGENTD_SIMULATION_SECRET"));
    assert_true(has_problem(&pr, "production: AGENTD_LOG_LEVEL=debug"));
    config_free(&c);
    config_problems_free(&pr);

    const char *dev[] = { "AGENTD_SIMULATION_SECRET", "x", "AGENTD_LOG_LEVEL", "debug", NULL };
    assert_int_equal(load(&c, dev, &pr), 0);
    config_free(&c);
    config_problems_free(&pr);
}

/* AGENTD_AUTH: off by default in development; production refuses off,
 * given or defaulted. The metrics token is a secret. */
static void test_auth_switch(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *dev[] = { NULL };
    assert_int_equal(load(&c, dev, &pr), 0);
    assert_int_equal(c.auth, 0);
    assert_null(c.metrics_token);
    config_free(&c);
    config_problems_free(&pr);

    const char *prod[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, NULL };
    assert_int_equal(load(&c, prod, &pr), 1);
    assert_true(has_problem(&pr, "production: AGENTD_AUTH=off"));
    config_free(&c);
    config_problems_free(&pr);
    const char *prod_off[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_AUTH", "off", NULL };
    assert_int_equal(load(&c, prod_off, &pr), 1);
    config_free(&c);
    config_problems_free(&pr);

    const char *on[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_AUTH", "on",
                         "AGENTD_METRICS_TOKEN", "metrics-s3cret", NULL };
    assert_int_equal(load(&c, on, &pr), 0);
    assert_int_equal(c.auth, 1);
    assert_string_equal(c.metrics_token, "metrics-s3cret");
    char *text = dump(&c);
    assert_non_null(strstr(text, "AGENTD_AUTH=on"));
    assert_null(strstr(text, "metrics-s3cret"));
    free(text);
    config_free(&c);
    config_problems_free(&pr);

    const char *bad[] = { "AGENTD_AUTH", "maybe", NULL };
    assert_int_equal(load(&c, bad, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_AUTH=maybe"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_guard_settings(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *none[] = { NULL };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_int_equal(c.guard_mode, CONFIG_GUARD_REJECT);
    assert_int_equal(c.guard_fail, CONFIG_GUARD_FAIL_CLOSED);
    assert_int_equal(c.guard_timeout_ms, 2000);
    assert_null(c.guard_url);
    config_free(&c);
    const char *set[] = { "AGENTD_GUARD_URL", "http://127.0.0.1:9/check", "AGENTD_GUARD_MODE",
                          "flag", "AGENTD_GUARD_FAIL", "open", "AGENTD_GUARD_TIMEOUT", "500ms",
                          NULL };
    assert_int_equal(load(&c, set, &pr), 0);
    assert_int_equal(c.guard_mode, CONFIG_GUARD_FLAG);
    assert_int_equal(c.guard_fail, CONFIG_GUARD_FAIL_OPEN);
    assert_int_equal(c.guard_timeout_ms, 500);
    config_free(&c);
    const char *bad[] = { "AGENTD_GUARD_URL", "http://guard.example/check", "AGENTD_GUARD_MODE",
                          "block", NULL };
    assert_int_equal(load(&c, bad, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_GUARD_URL: must be an https"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_trace_settings(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *none[] = { NULL };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_null(c.otlp_endpoint);
    assert_string_equal(c.service_name, "agentd");
    assert_true(c.trace_sample_ratio == 1.0);
    config_free(&c);
    /* a private-range collector as data only: config is checked, never contacted */
    const char *set[] = { "AGENTD_OTLP_ENDPOINT", "http://10.0.0.7:4318", "AGENTD_TRACE_SAMPLE",  /* never contacted */
                          "0.25", "AGENTD_SERVICE_NAME", "shop-eu", "AGENTD_OTLP_HEADERS",
                          "authorization=Basic abc", NULL };
    assert_int_equal(load(&c, set, &pr), 0);
    assert_true(c.trace_sample_ratio == 0.25);
    assert_string_equal(c.service_name, "shop-eu");
    config_free(&c);
    /* the metadata address as data only (refused): never contacted */
    const char *bad[] = { "AGENTD_OTLP_ENDPOINT", "http://169.254.169.254/", "AGENTD_TRACE_SAMPLE",  /* never contacted */
                          "1.5", NULL };
    assert_int_equal(load(&c, bad, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_OTLP_ENDPOINT: must be a collector's address"));
    assert_true(has_problem(&pr, "AGENTD_TRACE_SAMPLE=1.5"));
    config_free(&c);
    config_problems_free(&pr);
    const char *bad2[] = { "AGENTD_OTLP_ENDPOINT", "http://u:p@[::1]:4318", NULL };
    assert_int_equal(load(&c, bad2, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_OTLP_ENDPOINT: must be no credentials"));
    config_free(&c);
    config_problems_free(&pr);
    const char *bad3[] = { "AGENTD_OTLP_ENDPOINT", "collector:4318", "AGENTD_TRACE_SAMPLE", "x",
                           NULL };
    assert_int_equal(load(&c, bad3, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_OTLP_ENDPOINT: must be an http"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_redis_settings(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *none[] = { NULL };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_null(c.redis_url);
    assert_int_equal(c.rate_limit_on_redis_down, CONFIG_REDIS_DOWN_OPEN);
    config_free(&c);
    const char *set[] = { "AGENTD_REDIS_URL", "redis://:hunter2-pw@127.0.0.1:6390/2",
                          "AGENTD_RATE_LIMIT_ON_REDIS_DOWN", "closed", NULL };
    assert_int_equal(load(&c, set, &pr), 0);
    assert_int_equal(c.rate_limit_on_redis_down, CONFIG_REDIS_DOWN_CLOSED);
    char *text = dump(&c); /* the password is a secret: check-config shows *** */
    assert_null(strstr(text, "hunter2-pw"));
    assert_non_null(strstr(text, "AGENTD_REDIS_URL=redis://:***@127.0.0.1:6390/2"));
    free(text);
    config_free(&c);
    const char *bad[] = { "AGENTD_REDIS_URL", "redis://:hunter2-pw@127.0.0.1:x",
                          "AGENTD_RATE_LIMIT_ON_REDIS_DOWN", "maybe", NULL };
    assert_int_equal(load(&c, bad, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_REDIS_URL: the port"));
    for (int i = 0; i < pr.n; i++)
        assert_null(strstr(pr.items[i], "hunter2-pw"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_jwt_settings(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *secret = "0123456789abcdef0123456789abcdef-hs";
    const char *dev[] = { "AGENTD_OIDC_ISSUER", "http://127.0.0.1:9000/", "AGENTD_OIDC_AUDIENCE",
                          "agentd", "AGENTD_JWT_HS256_SECRET", secret, NULL };
    assert_int_equal(load(&c, dev, &pr), 0);
    assert_string_equal(c.oidc_audience, "agentd");
    assert_int_equal(c.oidc_jwks_refresh_ms, 30000);
    char *text = dump(&c);
    assert_null(strstr(text, secret));
    free(text);
    config_free(&c);
    config_problems_free(&pr);

    /* http only to loopback and only in development; the set comes whole */
    const char *remote[] = { "AGENTD_OIDC_ISSUER", "http://idp.example", "AGENTD_OIDC_AUDIENCE",
                             "agentd", "AGENTD_OIDC_JWKS_URL", "ftp://idp.example/jwks", NULL };
    assert_int_equal(load(&c, remote, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_OIDC_ISSUER=http://idp.example: must be"));
    assert_true(has_problem(&pr, "AGENTD_OIDC_JWKS_URL=ftp://"));
    config_free(&c);
    config_problems_free(&pr);
    const char *prod[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY,
                           "AGENTD_AUTH", "on", "AGENTD_OIDC_ISSUER",
                           "http://127.0.0.1:9000", "AGENTD_OIDC_AUDIENCE", "agentd", NULL };
    assert_int_equal(load(&c, prod, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_OIDC_ISSUER=http://127.0.0.1:9000: must be an https"));
    config_free(&c);
    config_problems_free(&pr);
    const char *partial[] = { "AGENTD_JWT_HS256_SECRET", "short", NULL };
    assert_int_equal(load(&c, partial, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_OIDC_ISSUER is required"));
    assert_true(has_problem(&pr, "at least 32 bytes"));
    assert_false(has_problem(&pr, "short"));
    config_free(&c);
    config_problems_free(&pr);
    const char *no_aud[] = { "AGENTD_OIDC_ISSUER", "https://idp.example", NULL };
    assert_int_equal(load(&c, no_aud, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_OIDC_AUDIENCE is required"));
    config_free(&c);
    config_problems_free(&pr);
}

static void test_url_redaction(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_DB", "postgres://agent:pa55word@db.local:5432/agentd", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, env, &pr), 0);
    char *text = dump(&c);
    assert_non_null(strstr(text, "AGENTD_DB=postgres://agent:***@db.local:5432/agentd"));
    assert_null(strstr(text, "pa55word"));
    free(text);
    config_free(&c);
    config_problems_free(&pr);
    /* the pool size, and a postgres-ish scheme that libpq would not take */
    const char *pool[] = { "AGENTD_DB", "postgresql://agent:pa55word@db.local/agentd",
                           "AGENTD_DB_POOL", "8", NULL };
    assert_int_equal(load(&c, pool, &pr), 0);
    assert_int_equal(c.db_pool, 8);
    config_free(&c);
    const char *bad[] = { "AGENTD_DB", "postgresx://agent:pa55word@db.local/agentd",
                          "AGENTD_DB_POOL", "0", NULL };
    assert_int_equal(load(&c, bad, &pr), 2);
    assert_true(has_problem(&pr, "AGENTD_DB: a PostgreSQL URL starts with postgres://"));
    assert_true(has_problem(&pr, "AGENTD_DB_POOL"));
    for (int i = 0; i < pr.n; i++)
        assert_null(strstr(pr.items[i], "pa55word"));
    config_free(&c);
    config_problems_free(&pr);
    char *r = config_redact_url("/var/lib/agentd/agentd.db");
    assert_string_equal(r, "/var/lib/agentd/agentd.db");
    free(r);
}

static void test_parsers(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(config_parse_duration("250ms", &v), 0); assert_int_equal(v, 250);
    assert_int_equal(config_parse_duration("10", &v), 0); assert_int_equal(v, 10000);
    assert_int_equal(config_parse_duration("5m", &v), 0); assert_int_equal(v, 300000);
    assert_int_equal(config_parse_duration("2d", &v), 0); assert_int_equal(v, 172800000);
    assert_int_equal(config_parse_duration("-1s", &v), AGENTD_EINVAL);
    assert_int_equal(config_parse_duration("1x", &v), AGENTD_EINVAL);
    assert_int_equal(config_parse_duration("", &v), AGENTD_EINVAL);
    assert_int_equal(config_parse_duration("99999999999999999999", &v), AGENTD_EINVAL);
    assert_int_equal(config_parse_size("512k", &v), 0); assert_int_equal(v, 524288);
    assert_int_equal(config_parse_size("1MiB", &v), 0); assert_int_equal(v, 1048576);
    assert_int_equal(config_parse_size("1.5m", &v), AGENTD_EINVAL);
}

/* Legal links are handed to buyers: absolute http(s), https in production;
 * test payments are off unless asked for. */
static void test_legal_links_and_test_payments(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *none[] = { NULL };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_null(c.privacy_url);
    assert_null(c.terms_url);
    assert_int_equal(c.allow_test_payments, 0);
    config_free(&c);
    const char *ok[] = { "AGENTD_PRIVACY_URL", "http://shop.local/privacy", "AGENTD_TERMS_URL",
                         "https://shop.example/terms", "AGENTD_ALLOW_TEST_PAYMENTS", "1", NULL };
    assert_int_equal(load(&c, ok, &pr), 0);
    assert_string_equal(c.privacy_url, "http://shop.local/privacy");
    assert_string_equal(c.terms_url, "https://shop.example/terms");
    assert_int_equal(c.allow_test_payments, 1);
    config_free(&c);
    const char *bad[] = { "AGENTD_PRIVACY_URL", "shop.example/privacy", "AGENTD_TERMS_URL",
                          "https://", "AGENTD_ALLOW_TEST_PAYMENTS", "sure", NULL };
    assert_int_equal(load(&c, bad, &pr), 3);
    assert_true(has_problem(&pr, "AGENTD_PRIVACY_URL=shop.example/privacy: must be an absolute"));
    assert_true(has_problem(&pr, "AGENTD_TERMS_URL=https://: must be an absolute"));
    assert_true(has_problem(&pr, "AGENTD_ALLOW_TEST_PAYMENTS=sure"));
    config_free(&c);
    config_problems_free(&pr);
    const char *prod[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_PRIVACY_URL", "http://shop.local/p",
                           "AGENTD_TERMS_URL", "https://shop.example/t", "AGENTD_AUTH", "on",
                           NULL };
    assert_int_equal(load(&c, prod, &pr), 1);
    assert_true(has_problem(&pr, "production: AGENTD_PRIVACY_URL=http://shop.local/p: use an https:// URL"));
    config_free(&c);
    config_problems_free(&pr);
}

/* AGENTD_MAX_CONNECTIONS unset: derived from the open-file limit so a
 * default start fits it (2 descriptors per connection + 64 spare). */
static void test_max_connections_default(void **state)
{
    (void)state;
    assert_int_equal(config_max_connections_for_fds(20000), 9968);
    assert_int_equal(config_max_connections_for_fds(1024), 480);
    assert_int_equal(config_max_connections_for_fds(65536), 10000);
    assert_int_equal(config_max_connections_for_fds(UINT64_MAX), 10000);
    assert_int_equal(config_max_connections_for_fds(100), 18);
    assert_int_equal(config_max_connections_for_fds(10), 1);
    assert_int_equal(config_max_connections_for_fds(0), 1);

    const char *none[] = { NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_true(c.max_connections_auto);
    assert_true(c.max_connections >= 1 && c.max_connections <= 10000);
    config_free(&c);

    const char *set[] = { "AGENTD_MAX_CONNECTIONS", "50000", NULL };
    assert_int_equal(load(&c, set, &pr), 0);
    assert_false(c.max_connections_auto);
    assert_int_equal(c.max_connections, 50000);
    config_free(&c);
    config_problems_free(&pr);
}

/* Every name a loader asks for is known; anything else under AGENTD_ is a
 * problem with the nearest known name, so a misspelling is never ignored. */
static void test_unknown_variables(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_PORT", "9000", NULL };
    struct config_seen seen = { .get = fake_get, .ud = (void *)env };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(config_load(&c, config_getenv_seen, &seen, &pr), 0);
    assert_int_equal(c.port, 9000);
    char *envp[] = { "PATH=/bin", "AGENTD_PORT=9000", "AGENTD_HOST_FILE=/x", "AGENTD_PROT=1",
                     "AGENTD_MAX_BODY_BYTE=2", "AGENTD_ZZZZZZZZZZZZZZZZZZ=1", "AGENTD_BIN=/a", NULL };
    assert_int_equal(config_check_unknown(envp, &seen, &pr), 4);
    assert_true(has_problem(&pr, "AGENTD_PROT: unknown variable (did you mean AGENTD_PORT?)"));
    assert_true(has_problem(&pr, "AGENTD_MAX_BODY_BYTE: unknown variable (did you mean "
                                 "AGENTD_MAX_BODY_BYTES?)"));
    assert_true(has_problem(&pr, "AGENTD_ZZZZZZZZZZZZZZZZZZ: unknown variable"));
    assert_false(has_problem(&pr, "AGENTD_ZZZZZZZZZZZZZZZZZZ: unknown variable (did"));
    assert_true(has_problem(&pr, "AGENTD_BIN: unknown variable"));
    assert_false(has_problem(&pr, "AGENTD_PORT:"));
    assert_false(has_problem(&pr, "AGENTD_HOST_FILE"));
    config_seen_free(&seen);
    config_problems_free(&pr);
    config_free(&c);
}

/* Production caps what a client can hold: body size and read time. */
static void test_production_limits(void **state)
{
    (void)state;
    const char *big[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_AUTH", "on",
                          "AGENTD_MAX_BODY_BYTES", "17m", "AGENTD_READ_TIMEOUT", "61s", NULL };
    struct config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, big, &pr), 2);
    assert_true(has_problem(&pr, "production: AGENTD_MAX_BODY_BYTES is over 16 MiB"));
    assert_true(has_problem(&pr, "production: AGENTD_READ_TIMEOUT is over 60s"));
    config_problems_free(&pr);
    config_free(&c);
    const char *ok[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_AUTH", "on",
                         "AGENTD_MAX_BODY_BYTES", "16m", "AGENTD_READ_TIMEOUT", "60s", NULL };
    assert_int_equal(load(&c, ok, &pr), 0);
    config_problems_free(&pr);
    config_free(&c);
}

/* Payment data at rest: production refuses no key; a key must be base64 of
 * 32 bytes (and never appears in the problem); both keys are secrets. */
static void test_encryption_key(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *prod[] = { "AGENTD_ENV", "production", "AGENTD_AUTH", "on", NULL };
    assert_int_equal(load(&c, prod, &pr), 1);
    assert_true(has_problem(&pr, "production: AGENTD_ENCRYPTION_KEY is not set"));
    config_free(&c);
    config_problems_free(&pr);
    const char *dev[] = { NULL };
    assert_int_equal(load(&c, dev, &pr), 0);
    assert_null(c.encryption_key);
    config_free(&c);
    config_problems_free(&pr);
    const char *bad[] = { "AGENTD_ENCRYPTION_KEY", "c2VjcmV0LWJ1dC1zaG9ydA==",
                          "AGENTD_ENCRYPTION_KEYS_OLD", TEST_KEY ",nope", NULL };
    assert_int_equal(load(&c, bad, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_ENCRYPTION_KEY: a key is the base64 of 32"));
    assert_false(has_problem(&pr, "c2VjcmV0"));
    config_free(&c);
    config_problems_free(&pr);
    const char *good[] = { "AGENTD_ENCRYPTION_KEY", TEST_KEY, "AGENTD_ENCRYPTION_KEYS_OLD",
                           TEST_KEY, NULL };
    assert_int_equal(load(&c, good, &pr), 0);
    char *text = dump(&c);
    assert_null(strstr(text, "AAECAwQF"));
    free(text);
    config_free(&c);
    config_problems_free(&pr);
}

static void test_rate_limits_and_quotas(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *none[] = { NULL };
    assert_int_equal(load(&c, none, &pr), 0);
    assert_string_equal(c.rate_limit, "off"); /* development */
    assert_string_equal(c.rate_limit_turns, "off");
    assert_int_equal(c.quota_sessions, 10000);
    assert_int_equal(c.quota_idempotency_keys, 10000);
    config_free(&c);
    const char *prod[] = { "AGENTD_ENV", "production", "AGENTD_AUTH", "on",
                           "AGENTD_ENCRYPTION_KEY", TEST_KEY, NULL };
    assert_int_equal(load(&c, prod, &pr), 0);
    assert_string_equal(c.rate_limit, "20/s,40");
    assert_string_equal(c.rate_limit_turns, "30/m,10");
    config_free(&c);
    const char *bad[] = { "AGENTD_RATE_LIMIT", "fast", "AGENTD_RATE_LIMIT_TURNS", "10/s,0",
                          "AGENTD_QUOTA_SESSIONS", "-1", NULL };
    assert_int_equal(load(&c, bad, &pr), 3);
    assert_true(has_problem(&pr, "AGENTD_RATE_LIMIT: \"fast\""));
    assert_true(has_problem(&pr, "AGENTD_RATE_LIMIT_TURNS: \"10/s,0\""));
    config_problems_free(&pr);
    config_free(&c);
}

/* Native HTTPS comes as a pair; production refuses plain HTTP off loopback
 * unless a proxy terminates TLS, and an http:// public URL off loopback. */
static void test_tls_and_plain_http(void **state)
{
    (void)state;
    struct config c;
    struct config_problems pr = { 0 };
    const char *half[] = { "AGENTD_TLS_KEY_FILE", "/nonexistent.key", NULL };
    assert_int_equal(load(&c, half, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_TLS_KEY_FILE is set without AGENTD_TLS_CERT_FILE"));
    config_free(&c);
    config_problems_free(&pr);

    const char *missing[] = { "AGENTD_TLS_CERT_FILE", "/nonexistent.crt",
                              "AGENTD_TLS_KEY_FILE", "/nonexistent.key", NULL };
    assert_int_equal(load(&c, missing, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_TLS_CERT_FILE=/nonexistent.crt: not a usable PEM"));
    config_free(&c);
    config_problems_free(&pr);

    const char *open_prod[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY,
                                "AGENTD_AUTH", "on", "AGENTD_HOST", "0.0.0.0", NULL };
    assert_int_equal(load(&c, open_prod, &pr), 2);
    assert_true(has_problem(&pr, "production: plain HTTP on a non-loopback AGENTD_HOST"));
    assert_true(has_problem(&pr, "production: AGENTD_PUBLIC_URL is http://"));
    config_free(&c);
    config_problems_free(&pr);

    const char *proxied[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY,
                              "AGENTD_AUTH", "on", "AGENTD_HOST", "0.0.0.0",
                              "AGENTD_BEHIND_PROXY", "1",
                              "AGENTD_PUBLIC_URL", "https://shop.example.com", NULL };
    assert_int_equal(load(&c, proxied, &pr), 0);
    config_free(&c);
    config_problems_free(&pr);

    const char *local[] = { "AGENTD_ENV", "production", "AGENTD_ENCRYPTION_KEY", TEST_KEY,
                            "AGENTD_AUTH", "on", NULL }; /* 127.0.0.1, http://127.0.0.1:8080 */
    assert_int_equal(load(&c, local, &pr), 0);
    config_free(&c);
    config_problems_free(&pr);

    assert_true(config_host_is_loopback("127.0.0.1"));
    assert_true(config_host_is_loopback("127.1.2.3"));
    assert_true(config_host_is_loopback("::1"));
    assert_true(config_host_is_loopback("localhost"));
    assert_false(config_host_is_loopback("0.0.0.0"));
    assert_false(config_host_is_loopback("::"));
    /* a private-range address as data only: never contacted */
    assert_false(config_host_is_loopback("10.0.0.1"));  /* never contacted */
    assert_false(config_host_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encryption_key),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_every_problem_reported),
        cmocka_unit_test(test_port_range),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_secret_file_errors),
        cmocka_unit_test(test_secret_never_in_problem),
        cmocka_unit_test(test_production_rules),
        cmocka_unit_test(test_auth_switch),
        cmocka_unit_test(test_legal_links_and_test_payments),
        cmocka_unit_test(test_url_redaction),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_max_connections_default),
        cmocka_unit_test(test_unknown_variables),
        cmocka_unit_test(test_production_limits),
        cmocka_unit_test(test_jwt_settings),
        cmocka_unit_test(test_guard_settings),
        cmocka_unit_test(test_trace_settings),
        cmocka_unit_test(test_redis_settings),
        cmocka_unit_test(test_rate_limits_and_quotas),
        cmocka_unit_test(test_tls_and_plain_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
