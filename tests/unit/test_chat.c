/* chat: the POST /chat body check (chat_request_parse), the seam the fuzzer
 * drives: what it accepts, what it refuses and with which answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "api/chat.h"
#include "core/err.h"

static int parse(const char *body, struct chat_request *q, struct agentd_error *e)
{
    memset(e, 0, sizeof *e);
    return chat_request_parse(body, strlen(body), q, e);
}

static void test_accepts(void **state)
{
    (void)state;
    struct chat_request q;
    struct agentd_error e;
    assert_int_equal(parse("{\"message\":\"hi\",\"session_id\":\"ses_1\",\"data\":{\"k\":1},"
                           "\"busy_policy\":\"reject\",\"stream\":false}", &q, &e), 0);
    assert_string_equal(json_string_value(q.message), "hi");
    assert_string_equal(json_string_value(q.session_id), "ses_1");
    assert_true(json_is_object(q.data));
    assert_true(q.busy_policy >= 0);
    assert_null(q.action_tool);
    chat_request_clear(&q);
    assert_null(q.body);

    /* an action stands in for the message */
    assert_int_equal(parse("{\"action\":{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\","
                           "\"quantity\":1}}", &q, &e), 0);
    assert_non_null(q.action_tool);
    assert_non_null(q.action_args);
    assert_non_null(strstr(q.action_text, "add_to_checkout"));
    assert_int_equal(q.busy_policy, -1);
    chat_request_clear(&q);
}

static void test_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *body, *want;
    } t[] = {
        { "", "a JSON body is required" },
        { "{\"message\":", "invalid JSON at line 1" },
        { "[1]", "the body must be a JSON object" },
        { "{\"message\":\"\"}", "\"message\" must be a non-empty string" },
        { "{\"message\":\"x\",\"session_id\":\"\"}", "\"session_id\" must be a session id" },
        { "{\"message\":\"x\",\"data\":[]}", "\"data\" must be an object" },
        { "{\"message\":\"x\",\"busy_policy\":\"later\"}", "\"busy_policy\" must be" },
        { "{\"message\":\"x\",\"stream\":\"yes\"}", "\"stream\" must be true or false" },
        { "{\"action\":\"start_payment\"}", "\"action\" must be an object" },
        { "{\"action\":{}}", "\"action\" must name the action" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct chat_request q;
        struct agentd_error e;
        int rc = parse(t[i].body, &q, &e);
        if (rc != AGENTD_EINVAL || !strstr(e.msg, t[i].want))
            fail_msg("case %zu: rc %d, %s", i, rc, e.msg);
        assert_null(q.body);
        assert_null(q.action_args);
        assert_null(q.action_text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
