/* core/jsonalloc: jansson's per-thread cache of small blocks — reuse, the
 * cap, blocks that stay free()-able, a thread's cache dropped at exit, and
 * one thread's overflow serving another through the depot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/jsonalloc.h"

static void test_reuse_same_class(void **state)
{
    (void)state;
    size_t before = jsonalloc_cached();
    void *a = jsonalloc_malloc(40);
    assert_non_null(a);
    memset(a, 0xab, 40);
    jsonalloc_free(a);
    assert_int_equal(jsonalloc_cached(), before + 1);
    void *b = jsonalloc_malloc(33); /* the same 48-byte class */
    assert_ptr_equal(a, b);
    assert_int_equal(jsonalloc_cached(), before);
    free(b); /* a plain malloc block */
}

static void test_large_not_cached(void **state)
{
    (void)state;
    size_t before = jsonalloc_cached();
    void *p = jsonalloc_malloc(4096);
    assert_non_null(p);
    jsonalloc_free(p);
    assert_int_equal(jsonalloc_cached(), before);
    jsonalloc_free(NULL);
    assert_int_equal(jsonalloc_cached(), before);
}

static void test_cap_per_class(void **state)
{
    (void)state;
    enum { N = 400 };
    void *v[N];
    size_t before = jsonalloc_cached();
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = malloc(100)); /* from elsewhere: joins the cache all the same */
    for (int i = 0; i < N; i++)
        jsonalloc_free(v[i]);
    size_t kept = jsonalloc_cached() - before;
    assert_true(kept > 0);
    assert_true(kept < N); /* bounded: the rest went back to malloc */
    for (size_t i = 0; i < kept; i++)
        free(jsonalloc_malloc(96)); /* leave the cache as found (104 usable bytes serve 96) */
    assert_int_equal(jsonalloc_cached(), before);
}

static void *cache_some(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        jsonalloc_free(jsonalloc_malloc(64));
    return (void *)jsonalloc_cached();
}

/* A thread's cache is its own (and freed when it exits: the sanitizer
 * build's leak check would say otherwise). */
static void test_per_thread(void **state)
{
    (void)state;
    size_t before = jsonalloc_cached();
    pthread_t t;
    void *theirs = NULL;
    assert_int_equal(pthread_create(&t, NULL, cache_some, NULL), 0);
    assert_int_equal(pthread_join(t, &theirs), 0);
    assert_int_equal((size_t)theirs, 1);
    assert_int_equal(jsonalloc_cached(), before);
}

/* jansson through it: trees built and dropped, json_dumps text free()d. */
static void test_jansson_through_it(void **state)
{
    (void)state;
    json_set_alloc_funcs(jsonalloc_malloc, jsonalloc_free);
    for (int round = 0; round < 3; round++) {
        json_t *j = json_loads("{\"a\":[1,2,{\"b\":\"text\"}],\"c\":null,\"d\":\"x\"}", 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_object_set_new(j, "e", json_string("more")), 0);
        char *s = json_dumps(j, JSON_COMPACT);
        assert_string_equal(s, "{\"a\":[1,2,{\"b\":\"text\"}],\"c\":null,\"d\":\"x\",\"e\":\"more\"}");
        free(s);
        json_decref(j);
    }
    assert_true(jsonalloc_cached() > 0);
    json_set_alloc_funcs(malloc, free);
}

/* the blocks one thread drops, as a tree built on a worker and freed on
 * the loop is */
struct drop {
    void **v;
    int n;
};

static void *drop_all(void *arg)
{
    struct drop *d = arg;
    for (int i = 0; i < d->n; i++)
        jsonalloc_free(d->v[i]);
    return NULL;
}

static void *take_one(void *arg)
{
    void **got = arg;
    got[0] = jsonalloc_malloc(240);
    got[1] = (void *)jsonalloc_cached();
    jsonalloc_free(got[0]); /* this thread's cache, dropped at its exit */
    return NULL;
}

/* What one thread frees beyond its cap serves another thread that misses: a
 * whole batch of blocks moves (the taker's cache holds the rest of it). */
static void test_overflow_serves_another_thread(void **state)
{
    (void)state;
    enum { N = 128 + 4 * 64 };
    static void *v[N];
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = jsonalloc_malloc(240)); /* a class no other test uses */
    size_t before = jsonalloc_depot();
    struct drop d = { v, N };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drop_all, &d), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(jsonalloc_depot() >= before + 64);

    void *got[2] = { 0 };
    assert_int_equal(pthread_create(&t, NULL, take_one, got), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    int mine = 0;
    for (int i = 0; i < N; i++)
        mine |= v[i] == got[0];
    assert_true(mine);                       /* one of the dropped blocks */
    assert_int_equal((size_t)got[1], 64 - 1); /* and the rest of its batch */
}

/* The depot is bounded: a thread dropping far more than it can use gives
 * the rest back to malloc. */
static void test_depot_bounded(void **state)
{
    (void)state;
    enum { N = 100 * 64 };
    void **v = calloc(N, sizeof *v);
    assert_non_null(v);
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = malloc(240)); /* the same class as above */
    size_t before = jsonalloc_depot();
    struct drop d = { v, N };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drop_all, &d), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    size_t after = jsonalloc_depot();
    assert_true(after > before);
    assert_true(after - before <= 16 * 64); /* DEPOT_CAP batches of the class */
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_same_class), cmocka_unit_test(test_large_not_cached),
        cmocka_unit_test(test_cap_per_class), cmocka_unit_test(test_per_thread),
        cmocka_unit_test(test_jansson_through_it),
        cmocka_unit_test(test_overflow_serves_another_thread),
        cmocka_unit_test(test_depot_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
