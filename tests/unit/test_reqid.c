/* request ids: what is accepted from clients, and what is generated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "core/reqid.h"

static void test_valid(void **state)
{
    (void)state;
    assert_true(reqid_valid("abc-123.x:y_z"));
    assert_true(reqid_valid("0f8fad5b-d9cb-469f-a165-70867728950e"));
    assert_false(reqid_valid(""));
    assert_false(reqid_valid(NULL));
    assert_false(reqid_valid("has space"));
    assert_false(reqid_valid("quote\""));
    assert_false(reqid_valid("nl\n"));
    assert_false(reqid_valid("{\"json\":1}"));
    char longid[REQID_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_false(reqid_valid(longid));
    longid[REQID_MAX] = 0;
    assert_true(reqid_valid(longid));
}

static void test_generated(void **state)
{
    (void)state;
    char a[33], b[33];
    reqid_generate(a);
    reqid_generate(b);
    assert_int_equal(strlen(a), 32);
    assert_true(reqid_valid(a));
    assert_string_not_equal(a, b);
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
}

/* Ids of rows inserted in bulk (sessions, turns) sort by creation time,
 * so B-tree inserts append instead of landing on random pages; they keep
 * id_new's 96 random bits after the time. */
static void test_ordered(void **state)
{
    (void)state;
    char a[48], b[48], c[48];
    id_new_ordered("ses_", a, sizeof a);
    id_new_ordered("ses_", b, sizeof b);
    assert_int_equal(strlen(a), 4 + 12 + 24);
    assert_memory_equal(a, "ses_", 4);
    for (size_t i = 4; i < strlen(a); i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b);
    assert_true(memcmp(a, b, 4 + 12) <= 0); /* same or later millisecond */
    struct timespec ms = { 0, 2 * 1000 * 1000 };
    nanosleep(&ms, NULL);
    id_new_ordered("ses_", c, sizeof c);
    assert_true(strcmp(b, c) < 0); /* a later millisecond sorts after */
    char small[12]; /* cut to fit, as id_new */
    id_new_ordered("turn_", small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_ordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
