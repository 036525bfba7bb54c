/* auth: scope lists, the route table (public, metrics, scopes, closed by
 * default), the key format and its check, principal names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "store/store.h"

static void test_scopes(void **state)
{
    (void)state;
    unsigned m = 0;
    struct agentd_error e = { 0 };
    assert_int_equal(auth_scopes_parse(NULL, &m, &e), 0);
    assert_int_equal(m, AUTH_SCOPES_DEFAULT);
    assert_false(m & AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_scopes_parse("", &m, &e), 0);
    assert_int_equal(m, AUTH_SCOPES_DEFAULT);
    assert_int_equal(auth_scopes_parse("ucp", &m, &e), 0);
    assert_int_equal(m, AUTH_SCOPE_UCP);
    assert_int_equal(auth_scopes_parse("admin,chat", &m, &e), 0);
    assert_int_equal(m, AUTH_SCOPE_ADMIN | AUTH_SCOPE_CHAT);
    assert_int_equal(auth_scopes_parse("chat,bogus", &m, &e), AGENTD_EINVAL);
    assert_non_null(strstr(e.msg, "bogus"));
    assert_int_equal(auth_scopes_parse("chat,", &m, &e), AGENTD_EINVAL);
    assert_int_equal(auth_scopes_parse("chatx", &m, &e), AGENTD_EINVAL);

    char buf[64];
    auth_scopes_format(AUTH_SCOPES_ALL, buf, sizeof buf);
    assert_string_equal(buf, "chat,a2a,ucp,admin");
    auth_scopes_format(AUTH_SCOPE_UCP, buf, sizeof buf);
    assert_string_equal(buf, "ucp");
    auth_scopes_format(0, buf, sizeof buf);
    assert_string_equal(buf, "");
}

static void test_routes(void **state)
{
    (void)state;
    assert_int_equal(auth_route_need("/healthz"), AUTH_ROUTE_PUBLIC);
    assert_int_equal(auth_route_need("/readyz"), AUTH_ROUTE_PUBLIC);
    assert_int_equal(auth_route_need("/.well-known/agent-card.json"), AUTH_ROUTE_PUBLIC);
    assert_int_equal(auth_route_need("/.well-known/ucp"), AUTH_ROUTE_PUBLIC);
    assert_int_equal(auth_route_need("/metrics"), AUTH_ROUTE_METRICS);
    assert_int_equal(auth_route_need("/"), AUTH_SCOPE_A2A);
    assert_int_equal(auth_route_need("/chat"), AUTH_SCOPE_CHAT);
    assert_int_equal(auth_route_need("/chat/sessions/{id}/events"), AUTH_SCOPE_CHAT);
    assert_int_equal(auth_route_need("/checkout-sessions"), AUTH_SCOPE_UCP);
    assert_int_equal(auth_route_need("/checkout-sessions/{id}/complete"), AUTH_SCOPE_UCP);
    assert_int_equal(auth_route_need("/orders/{id}"), AUTH_SCOPE_UCP);
    assert_int_equal(auth_route_need("/openapi.json"), 0);
    assert_int_equal(auth_route_need("/health"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_need("/testing/routes"), AUTH_SCOPE_ADMIN);
    /* unknown routes are closed: admin only; near misses are not prefixes */
    assert_int_equal(auth_route_need("/new-thing"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_need("/healthzz"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_need("/chatter"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_need("/.well-known"), AUTH_SCOPE_ADMIN);
    assert_int_equal(auth_route_need(NULL), AUTH_SCOPE_ADMIN);
}

static void test_keys(void **state)
{
    (void)state;
    char key[AUTH_KEY_LEN + 1], id[AUTH_KEY_ID_LEN + 1], key2[AUTH_KEY_LEN + 1],
        id2[AUTH_KEY_ID_LEN + 1], parsed[AUTH_KEY_ID_LEN + 1];
    assert_int_equal(auth_key_generate(key, id), 0);
    assert_int_equal(auth_key_generate(key2, id2), 0);
    assert_int_equal(strlen(key), AUTH_KEY_LEN);
    assert_int_equal(strncmp(key, "agd_", 4), 0);
    assert_string_not_equal(key, key2);
    assert_int_equal(auth_key_id(key, parsed), 0);
    assert_string_equal(parsed, id);

    char hash[65];
    store_apikey_hash(key, hash);
    struct store_apikey row = { .id = id, .hash = hash };
    assert_int_equal(auth_key_matches(&row, key), 1);
    assert_int_equal(auth_key_matches(&row, key2), 0);
    /* same id, other secret: the hash decides */
    char forged[AUTH_KEY_LEN + 1];
    memcpy(forged, key, sizeof forged);
    forged[AUTH_KEY_LEN - 1] = forged[AUTH_KEY_LEN - 1] == '0' ? '1' : '0';
    assert_int_equal(auth_key_id(forged, parsed), 0);
    assert_int_equal(auth_key_matches(&row, forged), 0);
    struct store_apikey empty = { .id = id, .hash = "" };
    assert_int_equal(auth_key_matches(&empty, key), 0);

    /* not our shape: a JWT, truncated, upper-case hex, wrong separator */
    assert_int_equal(auth_key_id("eyJhbGciOiJIUzI1NiJ9.e30.x", parsed), AGENTD_EINVAL);
    assert_int_equal(auth_key_id("agd_", parsed), AGENTD_EINVAL);
    char bad[AUTH_KEY_LEN + 1];
    memcpy(bad, key, sizeof bad);
    bad[5] = 'A';
    assert_int_equal(auth_key_id(bad, parsed), AGENTD_EINVAL);
    memcpy(bad, key, sizeof bad);
    bad[4 + AUTH_KEY_ID_LEN] = '-';
    assert_int_equal(auth_key_id(bad, parsed), AGENTD_EINVAL);
    assert_int_equal(auth_key_id(NULL, parsed), AGENTD_EINVAL);
}

static void test_principal_names(void **state)
{
    (void)state;
    assert_true(auth_principal_valid("alice"));
    assert_true(auth_principal_valid("svc-checkout@shop.example"));
    assert_false(auth_principal_valid(""));
    assert_false(auth_principal_valid(NULL));
    assert_false(auth_principal_valid("anonymous"));
    assert_false(auth_principal_valid("has space"));
    assert_false(auth_principal_valid("quote\""));
    char longname[120];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_false(auth_principal_valid(longname));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_principal_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
