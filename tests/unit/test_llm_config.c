/* llm config: the single and chain forms, defaults, every error path, _FILE
 * keys, builtin selection, production without a provider, and a dump that
 * never shows a key. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "llm/llm_config.h"

static const char *fake_get(const char *name, void *ud)
{
    const char *const *kv = ud;
    for (int i = 0; kv[i]; i += 2)
        if (strcmp(kv[i], name) == 0)
            return kv[i + 1];
    return NULL;
}

static int load(struct llm_config *c, enum config_env env, const char *const *kv,
                struct config_problems *pr)
{
    return llm_config_load(c, env, fake_get, (void *)kv, pr);
}

static int has_problem(const struct config_problems *pr, const char *needle)
{
    for (int i = 0; i < pr->n; i++)
        if (strstr(pr->items[i], needle))
            return 1;
    return 0;
}

static int any_problem_contains(const struct config_problems *pr, const char *secret)
{
    return has_problem(pr, secret);
}

static char *dump(const struct llm_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    llm_config_dump(c, f);
    fclose(f);
    return text;
}

static void test_no_provider(void **state)
{
    (void)state;
    const char *env[] = { NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, env, &pr), 0);
    assert_true(c.builtin);
    assert_false(c.builtin_forced);
    assert_int_equal(c.n_providers, 0);
    assert_int_equal(c.max_retries, 2);
    assert_int_equal(c.breaker_failures, 5);
    assert_int_equal(c.breaker_cooldown_ms, 30000);
    assert_int_equal(c.max_connections, 0); /* no cap */
    llm_config_free(&c);
    /* production refuses to guess */
    assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 1);
    assert_true(has_problem(&pr, "production: no LLM provider"));
    assert_false(c.builtin);
    llm_config_free(&c);
    config_problems_free(&pr);
}

static void test_builtin_forced(void **state)
{
    (void)state;
    /* an explicit choice wins over provider variables, even in production */
    const char *env[] = { "AGENTD_LLM", "builtin", "AGENTD_LLM_URL", "http://x", NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 0);
    assert_true(c.builtin && c.builtin_forced);
    char *d = dump(&c);
    assert_non_null(strstr(d, "AGENTD_LLM=builtin\n"));
    free(d);
    llm_config_free(&c);
    const char *bad[] = { "AGENTD_LLM", "gpt", NULL };
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, bad, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_LLM=gpt: expected builtin or auto"));
    llm_config_free(&c);
    config_problems_free(&pr);
}

static void test_single(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_LLM_URL", "https://api.openai.com/v1/", "AGENTD_LLM_MODEL", "gpt-4o-mini",
                          "AGENTD_LLM_API_KEY", "sk-secret-123", "AGENTD_LLM_MAX_RETRIES", "4",
                          "AGENTD_LLM_BREAKER_FAILURES", "2", "AGENTD_LLM_BREAKER_COOLDOWN", "1500ms",
                          "AGENTD_LLM_MAX_CONNECTIONS", "4900", "AGENTD_LLM_STARTUP_CHECK", "1", NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 0);
    assert_false(c.builtin);
    assert_int_equal(c.n_providers, 1);
    assert_string_equal(c.providers[0].name, "default");
    assert_string_equal(c.providers[0].url, "https://api.openai.com/v1"); /* slash trimmed */
    assert_string_equal(c.providers[0].model, "gpt-4o-mini");
    assert_string_equal(c.providers[0].api_key, "sk-secret-123");
    assert_int_equal(c.providers[0].timeout_ms, 30000);
    assert_int_equal(c.max_retries, 4);
    assert_int_equal(c.breaker_failures, 2);
    assert_int_equal(c.breaker_cooldown_ms, 1500);
    assert_int_equal(c.max_connections, 4900);
    assert_int_equal(c.startup_check, 1);
    char *d = dump(&c);
    assert_non_null(strstr(d, "AGENTD_LLM_MAX_CONNECTIONS=4900\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_STARTUP_CHECK=on\n"));
    assert_null(strstr(d, "sk-secret-123"));
    assert_non_null(strstr(d, "AGENTD_LLM_API_KEY=***set***"));
    assert_non_null(strstr(d, "AGENTD_LLM_URL=https://api.openai.com/v1\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_MODEL=gpt-4o-mini"));
    free(d);
    /* a copy is independent */
    struct llm_config copy;
    assert_int_equal(llm_config_copy(&copy, &c), 0);
    llm_config_free(&c);
    assert_string_equal(copy.providers[0].api_key, "sk-secret-123");
    llm_config_free(&copy);
    config_problems_free(&pr);
}

static void test_chain(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_LLM_PROVIDERS", " primary , backup_2 ",
                          "AGENTD_LLM_PRIMARY_URL", "http://127.0.0.1:9/v1",
                          "AGENTD_LLM_PRIMARY_MODEL", "m1",
                          "AGENTD_LLM_PRIMARY_API_KEY", "k-primary",
                          "AGENTD_LLM_PRIMARY_TIMEOUT", "5s",
                          "AGENTD_LLM_PRIMARY_PRICE_IN", "2.50",
                          "AGENTD_LLM_PRIMARY_PRICE_OUT", "10",
                          "AGENTD_LLM_BACKUP_2_URL", "https://user:pw@backup.example/v1",
                          "AGENTD_LLM_BACKUP_2_MODEL", "m2",
                          NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 0);
    assert_int_equal(c.n_providers, 2);
    assert_string_equal(c.providers[0].name, "primary");
    assert_int_equal(c.providers[0].timeout_ms, 5000);
    assert_true(c.providers[0].price_in == 2.5 && c.providers[0].price_out == 10.0);
    assert_string_equal(c.providers[1].name, "backup_2");
    assert_null(c.providers[1].api_key); /* keyless local servers are fine */
    char *d = dump(&c);
    assert_non_null(strstr(d, "AGENTD_LLM_PROVIDERS=primary,backup_2\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_PRIMARY_API_KEY=***set***"));
    assert_non_null(strstr(d, "AGENTD_LLM_BACKUP_2_API_KEY=(unset)"));
    assert_non_null(strstr(d, "AGENTD_LLM_BACKUP_2_URL=https://user:***@backup.example/v1"));
    assert_null(strstr(d, "k-primary"));
    assert_null(strstr(d, ":pw@"));
    free(d);
    llm_config_free(&c);
    config_problems_free(&pr);
}

static void test_http2(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_LLM_PROVIDERS", "local,cloud,old",
                          "AGENTD_LLM_LOCAL_URL", "http://127.0.0.1:9/v1",
                          "AGENTD_LLM_LOCAL_MODEL", "m1",
                          "AGENTD_LLM_LOCAL_HTTP2", "PRIOR",
                          "AGENTD_LLM_CLOUD_URL", "https://api.example/v1",
                          "AGENTD_LLM_CLOUD_MODEL", "m2",
                          "AGENTD_LLM_CLOUD_CA_BUNDLE", "/dev/null",
                          "AGENTD_LLM_OLD_URL", "https://old.example/v1",
                          "AGENTD_LLM_OLD_MODEL", "m3",
                          "AGENTD_LLM_OLD_HTTP2", "off",
                          NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    if (curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        /* curl #10634: prior knowledge breaks on every reused connection */
        assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 1);
        assert_true(has_problem(&pr, "AGENTD_LLM_LOCAL_HTTP2=PRIOR: needs libcurl 8.0.0 or later"));
        llm_config_free(&c);
        config_problems_free(&pr);
        env[7] = "off"; /* the rest as below */
        assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 0);
        assert_int_equal(c.providers[0].http2, LLM_HTTP2_OFF);
        c.providers[0].http2 = LLM_HTTP2_PRIOR; /* for the dump and copy checks */
    } else {
        assert_int_equal(load(&c, CONFIG_ENV_PRODUCTION, env, &pr), 0);
    }
    assert_int_equal(c.providers[0].http2, LLM_HTTP2_PRIOR);
    assert_string_equal(c.providers[1].ca_bundle, "/dev/null");
    assert_null(c.providers[0].ca_bundle);
    assert_int_equal(c.providers[1].http2, LLM_HTTP2_AUTO); /* the default */
    assert_int_equal(c.providers[2].http2, LLM_HTTP2_OFF);
    char *d = dump(&c);
    assert_non_null(strstr(d, "AGENTD_LLM_LOCAL_HTTP2=prior\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_CLOUD_HTTP2=auto\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_OLD_HTTP2=off\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_CLOUD_CA_BUNDLE=/dev/null\n"));
    assert_non_null(strstr(d, "AGENTD_LLM_OLD_CA_BUNDLE=(system)\n"));
    free(d);
    struct llm_config copy;
    assert_int_equal(llm_config_copy(&copy, &c), 0);
    assert_int_equal(copy.providers[0].http2, LLM_HTTP2_PRIOR);
    assert_string_equal(copy.providers[1].ca_bundle, "/dev/null");
    assert_ptr_not_equal(copy.providers[1].ca_bundle, c.providers[1].ca_bundle);
    llm_config_free(&copy);
    llm_config_free(&c);
    config_problems_free(&pr);
}

static void test_key_file(void **state)
{
    (void)state;
    char path[] = "/tmp/llmkeyXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "sk-from-file\n", 13), 13);
    close(fd);
    const char *env[] = { "AGENTD_LLM_URL", "http://h/v1", "AGENTD_LLM_MODEL", "m",
                          "AGENTD_LLM_API_KEY_FILE", path, NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, env, &pr), 0);
    assert_string_equal(c.providers[0].api_key, "sk-from-file");
    llm_config_free(&c);
    /* both forms at once, an unreadable file, an empty file */
    const char *both[] = { "AGENTD_LLM_URL", "http://h/v1", "AGENTD_LLM_MODEL", "m",
                           "AGENTD_LLM_API_KEY", "sk-direct", "AGENTD_LLM_API_KEY_FILE", path, NULL };
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, both, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_LLM_API_KEY and AGENTD_LLM_API_KEY_FILE are both set"));
    llm_config_free(&c);
    unlink(path);
    const char *missing[] = { "AGENTD_LLM_URL", "http://h/v1", "AGENTD_LLM_MODEL", "m",
                              "AGENTD_LLM_API_KEY_FILE", "/nonexistent/key", NULL };
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, missing, &pr), 1);
    assert_true(has_problem(&pr, "AGENTD_LLM_API_KEY_FILE: cannot read /nonexistent/key"));
    llm_config_free(&c);
    assert_false(any_problem_contains(&pr, "sk-direct"));
    assert_false(any_problem_contains(&pr, "sk-from-file"));
    config_problems_free(&pr);
}

static void test_errors(void **state)
{
    (void)state;
    struct { const char *env[24]; const char *problem; } cases[] = {
        { { "AGENTD_LLM_MODEL", "m", NULL }, "AGENTD_LLM_URL is required" },
        { { "AGENTD_LLM_URL", "http://h/v1", NULL }, "AGENTD_LLM_MODEL is required" },
        { { "AGENTD_LLM_URL", "ftp://h/v1", "AGENTD_LLM_MODEL", "m", NULL }, "must start with http:// or https://" },
        { { "AGENTD_LLM_URL", "https://h/v1/chat/completions", "AGENTD_LLM_MODEL", "m", NULL },
          "give the base URL" },
        { { "AGENTD_LLM_URL", "", "AGENTD_LLM_MODEL", "m", NULL }, "AGENTD_LLM_URL is set but empty" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_API_KEY", "sk with space", NULL },
          "contains whitespace" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_TIMEOUT", "soon", NULL },
          "AGENTD_LLM_TIMEOUT=soon: not a duration" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_TIMEOUT", "20m", NULL },
          "AGENTD_LLM_TIMEOUT=20m: out of range" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_PRICE_IN", "cheap", NULL },
          "AGENTD_LLM_PRICE_IN=cheap: expected a price" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_PRICE_OUT", "-1", NULL },
          "AGENTD_LLM_PRICE_OUT=-1: expected a price" },
        { { "AGENTD_LLM_URL", "https://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_CA_BUNDLE",
            "/nonexistent/ca.pem", NULL }, "AGENTD_LLM_CA_BUNDLE=/nonexistent/ca.pem: cannot read it" },
        { { "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_HTTP2", "yes", NULL },
          "AGENTD_LLM_HTTP2=yes: expected auto, prior or off" },
        { { "AGENTD_LLM_URL", "https://h", "AGENTD_LLM_MODEL", "m", "AGENTD_LLM_HTTP2", "prior", NULL },
          "AGENTD_LLM_HTTP2=prior: prior knowledge (h2c) is for http:// servers" },
        { { "AGENTD_LLM_PROVIDERS", "p", "AGENTD_LLM_P_URL", "http://h", "AGENTD_LLM_P_MODEL", "m",
            "AGENTD_LLM_P_HTTP2", "", NULL }, "AGENTD_LLM_P_HTTP2 is set but empty" },
        { { "AGENTD_LLM_MAX_RETRIES", "11", NULL }, "AGENTD_LLM_MAX_RETRIES=11: out of range" },
        { { "AGENTD_LLM_MAX_RETRIES", "two", NULL }, "AGENTD_LLM_MAX_RETRIES=two: not an integer" },
        { { "AGENTD_LLM_BREAKER_FAILURES", "0", NULL }, "AGENTD_LLM_BREAKER_FAILURES=0: out of range" },
        { { "AGENTD_LLM_BREAKER_COOLDOWN", "2h", NULL }, "AGENTD_LLM_BREAKER_COOLDOWN=2h: out of range" },
        { { "AGENTD_LLM_MAX_CONNECTIONS", "-1", NULL }, "AGENTD_LLM_MAX_CONNECTIONS=-1: out of range" },
        { { "AGENTD_LLM_MAX_CONNECTIONS", "many", NULL }, "AGENTD_LLM_MAX_CONNECTIONS=many: not an integer" },
        { { "AGENTD_LLM_STARTUP_CHECK", "maybe", NULL }, "AGENTD_LLM_STARTUP_CHECK=maybe: expected on or off" },
        { { "AGENTD_LLM_PROVIDERS", "a,a", "AGENTD_LLM_A_URL", "http://h", "AGENTD_LLM_A_MODEL", "m", NULL },
          "a is listed twice" },
        { { "AGENTD_LLM_PROVIDERS", "a-b", NULL }, "\"a-b\" is not a valid provider name" },
        { { "AGENTD_LLM_PROVIDERS", " , ", NULL }, "names no provider" },
        { { "AGENTD_LLM_PROVIDERS", "a,b,c,d,e,f,g,h,i", NULL }, "at most 8 providers" },
        { { "AGENTD_LLM_PROVIDERS", "p", "AGENTD_LLM_P_URL", "http://h", NULL }, "AGENTD_LLM_P_MODEL is required" },
        { { "AGENTD_LLM_PROVIDERS", "p", "AGENTD_LLM_URL", "http://h", "AGENTD_LLM_P_URL", "http://h",
            "AGENTD_LLM_P_MODEL", "m", NULL }, "both set" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct llm_config c;
        struct config_problems pr = { 0 };
        int n = load(&c, CONFIG_ENV_DEVELOPMENT, cases[i].env, &pr);
        if (n < 1 || !has_problem(&pr, cases[i].problem)) {
            fprintf(stderr, "case %zu: expected \"%s\", got %d problem(s):\n", i, cases[i].problem, n);
            for (int k = 0; k < pr.n; k++)
                fprintf(stderr, "  %s\n", pr.items[k]);
            fail();
        }
        assert_false(any_problem_contains(&pr, "sk with space"));
        llm_config_free(&c);
        config_problems_free(&pr);
    }
}

static void test_all_problems_at_once(void **state)
{
    (void)state;
    const char *env[] = { "AGENTD_LLM_PROVIDERS", "a,b", "AGENTD_LLM_A_URL", "nope",
                          "AGENTD_LLM_B_URL", "http://h", "AGENTD_LLM_B_TIMEOUT", "x",
                          "AGENTD_LLM_MAX_RETRIES", "-1", NULL };
    struct llm_config c;
    struct config_problems pr = { 0 };
    /* A: bad URL + no model; B: no model + bad timeout; retries out of range */
    assert_int_equal(load(&c, CONFIG_ENV_DEVELOPMENT, env, &pr), 5);
    llm_config_free(&c);
    config_problems_free(&pr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_provider),
        cmocka_unit_test(test_builtin_forced),
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_http2),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_all_problems_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
