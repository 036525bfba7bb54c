/* Unit tests for core/redis_url: AGENTD_REDIS_URL's forms (redis:// with
 * password, user, db; unix: with db) and the refusals check-config shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/redis_url.h"

static void test_tcp_forms(void **state)
{
    (void)state;
    struct redis_url u;
    struct agentd_error e;
    assert_int_equal(redis_url_parse("redis://127.0.0.1:6380", &u, &e), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_string_equal(u.path, "");
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("redis://localhost", &u, &e), 0);
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 6379);
    /* a private-range address as data only: parsed, never contacted */
    assert_int_equal(redis_url_parse("redis://:s3cr%40t@10.0.0.5:7000/3", &u, &e), 0);  /* never contacted */
    assert_string_equal(u.host, "10.0.0.5");  /* never contacted */
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cr@t");
    assert_int_equal(u.db, 3);
    assert_int_equal(redis_url_parse("redis://agentd:pw@[::1]:6379/0", &u, &e), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.user, "agentd");
    assert_string_equal(u.password, "pw");
    assert_int_equal(redis_url_parse("redis://h/", &u, &e), 0);
    assert_int_equal(u.db, 0);
}

static void test_unix_forms(void **state)
{
    (void)state;
    struct redis_url u;
    struct agentd_error e;
    assert_int_equal(redis_url_parse("unix:/run/redis/redis.sock", &u, &e), 0);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_string_equal(u.host, "");
    assert_int_equal(u.db, 0);
    assert_int_equal(redis_url_parse("unix:///tmp/r.sock?db=2", &u, &e), 0);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_int_equal(u.db, 2);
    assert_int_equal(redis_url_parse("unix://:pw@/tmp/r.sock", &u, &e), 0);
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_string_equal(u.password, "pw");
}

static void test_refusals_never_show_the_password(void **state)
{
    (void)state;
    struct redis_url u;
    struct agentd_error e;
    const char *bad[] = { "", "localhost:6379", "http://h:6379", "rediss://h:6379",
                          "redis://", "redis://h:0", "redis://h:65536", "redis://h:12x",
                          "redis://h/db", "redis://h/-1", "redis://h/100000", "unix:",
                          "unix:relative.sock", "redis://:pw%zz@h", "redis://h:6379/1/2",
                          "unix:/tmp/r.sock?db=x" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        assert_int_equal(redis_url_parse(bad[i], &u, &e), AGENTD_EINVAL);
        assert_true(e.msg[0] != 0);
    }
    memset(&e, 0, sizeof e);
    assert_int_equal(redis_url_parse("redis://:hunter2@h:notaport", &u, &e), AGENTD_EINVAL);
    assert_null(strstr(e.msg, "hunter2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_forms),
        cmocka_unit_test(test_unix_forms),
        cmocka_unit_test(test_refusals_never_show_the_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
