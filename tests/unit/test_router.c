/* router: literal and parameter segments, precedence, 404 vs 405, Allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "http/router.h"

static void h1(struct http_req *r) { (void)r; }
static void h2(struct http_req *r) { (void)r; }
static void h3(struct http_req *r) { (void)r; }

static struct router *make(void)
{
    struct router *rt = router_new();
    assert_int_equal(router_add(rt, HTTP_GET | HTTP_PUT, "/checkout-sessions/{id}", h1, NULL), 0);
    assert_int_equal(router_add(rt, HTTP_POST, "/checkout-sessions/{id}/complete", h2, NULL), 0);
    assert_int_equal(router_add(rt, HTTP_POST, "/checkout-sessions", h3, NULL), 0);
    assert_int_equal(router_add(rt, HTTP_GET, "/checkout-sessions/new", h3, NULL), 0);
    assert_int_equal(router_add(rt, HTTP_GET, "/healthz", h3, NULL), 0);
    return rt;
}

static void test_match_param(void **state)
{
    (void)state;
    struct router *rt = make();
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_GET, "/checkout-sessions/abc123", &m), 0);
    assert_ptr_equal(route_handler(m.route), h1);
    assert_string_equal(route_template(m.route), "/checkout-sessions/{id}");
    assert_string_equal(route_param(&m, "id"), "abc123");
    assert_null(route_param(&m, "nope"));
    assert_int_equal(router_match(rt, HTTP_POST, "/checkout-sessions/x/complete", &m), 0);
    assert_ptr_equal(route_handler(m.route), h2);
    assert_string_equal(route_param(&m, "id"), "x");
    router_free(rt);
}

static void test_literal_beats_param(void **state)
{
    (void)state;
    struct router *rt = make();
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_GET, "/checkout-sessions/new", &m), 0);
    assert_string_equal(route_template(m.route), "/checkout-sessions/new");
    assert_int_equal(m.nparams, 0);
    router_free(rt);
}

static void test_404_and_405(void **state)
{
    (void)state;
    struct router *rt = make();
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_GET, "/nope", &m), 404);
    assert_null(m.route);
    assert_int_equal(router_match(rt, HTTP_GET, "/checkout-sessions/a/b/c", &m), 404);
    assert_int_equal(router_match(rt, HTTP_GET, "/checkout-sessions//complete", &m), 404); /* empty id */
    assert_int_equal(router_match(rt, HTTP_DELETE, "/checkout-sessions/abc", &m), 405);
    char allow[64];
    http_allow_header(m.allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD, PUT");
    assert_int_equal(router_match(rt, HTTP_POST, "/healthz", &m), 405);
    http_allow_header(m.allow, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD");
    router_free(rt);
}

static void test_head_follows_get(void **state)
{
    (void)state;
    struct router *rt = make();
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_HEAD, "/healthz", &m), 0);
    router_free(rt);
}

static void test_trailing_slash_and_limits(void **state)
{
    (void)state;
    struct router *rt = make();
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_GET, "/healthz/", &m), 0);
    char longpath[ROUTER_MAX_PATH + 10];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = 0;
    assert_int_equal(router_match(rt, HTTP_GET, longpath, &m), 404);
    assert_int_equal(router_match(rt, HTTP_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", &m), 404);
    assert_int_equal(router_add(rt, HTTP_GET, "no-slash", h1, NULL), AGENTD_EINVAL);
    router_free(rt);
}

static void test_add_table(void **state)
{
    (void)state;
    struct router *rt = router_new();
    static const struct router_route ok[] = { { HTTP_GET, "/a", h1 }, { HTTP_POST, "/b/{id}", h2 } };
    assert_int_equal(router_add_table(rt, ok, 2, NULL), 0);
    struct route_match m;
    assert_int_equal(router_match(rt, HTTP_POST, "/b/7", &m), 0);
    /* the first failure stops the table and is returned; what came before stays */
    static const struct router_route bad[] = { { HTTP_GET, "/c", h3 }, { HTTP_GET, "d", h3 },
                                               { HTTP_GET, "/e", h3 } };
    assert_int_equal(router_add_table(rt, bad, 3, NULL), AGENTD_EINVAL);
    assert_int_equal(router_match(rt, HTTP_GET, "/c", &m), 0);
    assert_int_equal(router_match(rt, HTTP_GET, "/e", &m), 404);
    router_free(rt);
}

static void test_method_names(void **state)
{
    (void)state;
    assert_string_equal(http_method_name(HTTP_GET), "GET");
    assert_string_equal(http_method_name(HTTP_PATCH), "PATCH");
    assert_string_equal(http_method_name((enum http_method)0), "OTHER");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_param),
        cmocka_unit_test(test_literal_beats_param),
        cmocka_unit_test(test_404_and_405),
        cmocka_unit_test(test_add_table),
        cmocka_unit_test(test_head_follows_get),
        cmocka_unit_test(test_trailing_slash_and_limits),
        cmocka_unit_test(test_method_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
