/* shop/checkout_cache: a parsed checkout comes back only for the exact
 * document text it was stored as; bounded, least recently used out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "shop/checkout_cache.h"

static struct checkout *named(const char *id, int64_t total)
{
    struct checkout *c = checkout_new(id);
    assert_non_null(c);
    c->totals.total = total;
    return c;
}

static void test_hit_only_on_the_same_text(void **state)
{
    (void)state;
    struct checkout_cache *cc = checkout_cache_new(4);
    struct checkout *c = named("chk_a", 1560);
    checkout_cache_put(cc, c, "{\"v\":1}");
    struct checkout *got = checkout_cache_get(cc, "chk_a", "{\"v\":1}");
    assert_non_null(got);
    assert_ptr_not_equal(got, c); /* a copy: the caller owns it */
    assert_string_equal(got->id, "chk_a");
    assert_int_equal(got->totals.total, 1560);
    checkout_free(got);
    /* another writer stored something else: parse that */
    assert_null(checkout_cache_get(cc, "chk_a", "{\"v\":2}"));
    assert_null(checkout_cache_get(cc, "chk_a", "{\"v\":1} "));
    assert_null(checkout_cache_get(cc, "chk_b", "{\"v\":1}"));
    /* a newer save replaces the entry */
    c->totals.total = 99;
    checkout_cache_put(cc, c, "{\"v\":2}");
    assert_null(checkout_cache_get(cc, "chk_a", "{\"v\":1}"));
    got = checkout_cache_get(cc, "chk_a", "{\"v\":2}");
    assert_non_null(got);
    assert_int_equal(got->totals.total, 99);
    checkout_free(got);
    checkout_cache_clear(cc);
    assert_null(checkout_cache_get(cc, "chk_a", "{\"v\":2}"));
    checkout_free(c);
    checkout_cache_free(cc);
}

/* One set of 4: the fifth checkout evicts the least recently used. */
static void test_bounded_lru(void **state)
{
    (void)state;
    struct checkout_cache *cc = checkout_cache_new(1);
    char id[16];
    for (int i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "chk_%d", i);
        struct checkout *c = named(id, i);
        checkout_cache_put(cc, c, id);
        checkout_free(c);
    }
    struct checkout *got = checkout_cache_get(cc, "chk_0", "chk_0"); /* 0 used again */
    assert_non_null(got);
    checkout_free(got);
    struct checkout *c = named("chk_4", 4);
    checkout_cache_put(cc, c, "chk_4");
    checkout_free(c);
    assert_null(checkout_cache_get(cc, "chk_1", "chk_1")); /* the oldest went */
    const char *kept[] = { "chk_0", "chk_2", "chk_3", "chk_4" };
    for (int i = 0; i < 4; i++) {
        got = checkout_cache_get(cc, kept[i], kept[i]);
        assert_non_null(got);
        checkout_free(got);
    }
    checkout_cache_free(cc);
    /* no sets: keeps nothing */
    cc = checkout_cache_new(0);
    c = named("chk_x", 1);
    checkout_cache_put(cc, c, "x");
    assert_null(checkout_cache_get(cc, "chk_x", "x"));
    checkout_free(c);
    checkout_cache_free(cc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_only_on_the_same_text),
        cmocka_unit_test(test_bounded_lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
