/* request ids: what is accepted from clients, and what is generated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "core/clock.h"
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

static uint64_t hex48(const char *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 12; i++)
        v = v * 16 + (uint64_t)(strchr("0123456789abcdef", s[i]) - "0123456789abcdef");
    return v;
}

/* id_new_ordered: the wall clock's ms first (12 hex, so ids made later sort
 * later: b-tree inserts append), then id_new's 96 random bits. */
static void test_ordered(void **state)
{
    (void)state;
    char a[48], b[48], c[48];
    uint64_t t0 = (uint64_t)clock_wall_ms();
    id_new_ordered("task_", a, sizeof a);
    uint64_t t1 = (uint64_t)clock_wall_ms();
    assert_int_equal(strlen(a), 5 + 12 + 24);
    assert_memory_equal(a, "task_", 5);
    for (size_t i = 5; i < strlen(a); i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_true(hex48(a + 5) >= t0 && hex48(a + 5) <= t1); /* the ms it was made at */
    struct timespec ts = { 0, 3 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    id_new_ordered("task_", b, sizeof b);
    assert_true(hex48(b + 5) >= hex48(a + 5) + 2); /* later, by the clock */
    assert_true(strcmp(a, b) < 0);
    /* the same ms: the random part tells them apart */
    id_new_ordered("task_", c, sizeof c);
    assert_string_not_equal(b, c);
    assert_memory_not_equal(b + 17, c + 17, 24);
    /* cut to fit (whole hex pairs), always terminated */
    char small[12];
    id_new_ordered("ses_", small, sizeof small);
    assert_int_equal(strlen(small), 4 + 6);
    assert_memory_equal(small, "ses_", 4);
    id_new("chk_", small, sizeof small);
    assert_int_equal(strlen(small), 4 + 6);
    char tiny[3];
    id_new("chk_", tiny, sizeof tiny);
    assert_string_equal(tiny, "ch");
}

/* id_new: the prefix and 24 hex characters, different every time */
static void test_id_new(void **state)
{
    (void)state;
    char a[48], b[48];
    id_new("chk_", a, sizeof a);
    id_new("chk_", b, sizeof b);
    assert_int_equal(strlen(a), 4 + 24);
    assert_memory_equal(a, "chk_", 4);
    for (int i = 4; i < 28; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_ordered),
        cmocka_unit_test(test_id_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
