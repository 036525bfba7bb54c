/* request ids: what is accepted from clients, and what is generated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_generated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
