/* llm retry: backoff bounds with full jitter and caps, Retry-After (seconds
 * and the three HTTP-date forms), retryable statuses, and every circuit
 * breaker transition under an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "llm/retry.h"

static void test_backoff_bounds(void **state)
{
    (void)state;
    /* the ceiling doubles per retry from base, then stays at cap */
    const int64_t expect[] = { 250, 500, 1000, 2000, 4000, 8000, 8000, 8000 };
    for (int retry = 0; retry < 8; retry++) {
        assert_int_equal(llm_backoff_ms(retry, 250, 8000, 0), 0);
        /* rnd = ceiling hits the top exactly; huge rnd values stay inside */
        assert_int_equal(llm_backoff_ms(retry, 250, 8000, (uint64_t)expect[retry]), expect[retry]);
        for (uint64_t r = 1; r < 2000; r += 97) {
            uint64_t rnd = r * 0x9e3779b97f4a7c15ull;
            int64_t d = llm_backoff_ms(retry, 250, 8000, rnd);
            assert_true(d >= 0 && d <= expect[retry]);
        }
    }
    /* far-out retries neither overflow nor exceed the cap */
    assert_true(llm_backoff_ms(1000, 250, 8000, UINT64_MAX) <= 8000);
    assert_int_equal(llm_backoff_ms(-3, 250, 8000, 250), 250);
    assert_int_equal(llm_backoff_ms(2, 0, 8000, 12345), 0);
}

static void test_backoff_spread(void **state)
{
    (void)state;
    /* full jitter: values cover the window, not cluster at its top */
    int low = 0, high = 0;
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        int64_t d = llm_backoff_ms(3, 250, 8000, s);
        low += d < 1000;
        high += d >= 1000;
    }
    assert_true(low > 4000 && high > 4000);
}

static void test_retry_after(void **state)
{
    (void)state;
    const int64_t cap = 30000;
    /* 1994-11-06T08:49:37Z */
    const int64_t t0 = 784111777LL * 1000;
    assert_int_equal(llm_retry_after_ms("1", t0, cap), 1000);
    assert_int_equal(llm_retry_after_ms(" 0 ", t0, cap), 0);
    assert_int_equal(llm_retry_after_ms("120", t0, cap), cap);
    assert_int_equal(llm_retry_after_ms("99999999999999999999", t0, cap), -1);
    assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 08:49:39 GMT", t0, cap), 2000);
    assert_int_equal(llm_retry_after_ms("Sunday, 06-Nov-94 08:49:42 GMT", t0, cap), 5000);
    assert_int_equal(llm_retry_after_ms("Sun Nov  6 08:49:47 1994", t0, cap), 10000);
    /* a date already past means "now"; one far ahead is capped */
    assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 08:00:00 GMT", t0, cap), 0);
    assert_int_equal(llm_retry_after_ms("Mon, 07 Nov 1994 08:49:37 GMT", t0, cap), cap);
    /* the caller's now counts in ms */
    assert_int_equal(llm_retry_after_ms("Sun, 06 Nov 1994 08:49:39 GMT", t0 + 250, cap), 1750);
    const char *bad[] = { "", "soon", "1.5", "-1", "Sun, 06 Nov 1994 08:49:39 PST", "Sun, 06 Foo 1994 08:49:39 GMT",
                          "5s" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(llm_retry_after_ms(bad[i], t0, cap), -1);
    assert_int_equal(llm_retry_after_ms(NULL, t0, cap), -1);
}

static void test_retryable(void **state)
{
    (void)state;
    const long yes[] = { 408, 429, 500, 502, 503, 504 };
    const long no[] = { 200, 400, 401, 403, 404, 409, 413, 422, 501, 505 };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(llm_http_retryable(yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(llm_http_retryable(no[i]));
}

/* A provider's answer that says its entry is misconfigured (key, access,
 * model or URL) rather than this request being wrong or a passing failure. */
static void test_refusal(void **state)
{
    (void)state;
    assert_int_equal(llm_http_refusal(401, NULL, 0), LLM_REFUSAL_KEY);
    assert_int_equal(llm_http_refusal(403, NULL, 0), LLM_REFUSAL_ACCESS);
    assert_int_equal(llm_http_refusal(404, NULL, 0), LLM_REFUSAL_MODEL);
    /* OpenAI's and vLLM's shapes of "no such model" on a 400 */
    const char *oa = "{\"error\":{\"message\":\"The model `gpt-9` does not exist or you do not have "
                     "access to it.\",\"type\":\"invalid_request_error\",\"code\":\"model_not_found\"}}";
    assert_int_equal(llm_http_refusal(400, oa, strlen(oa)), LLM_REFUSAL_MODEL);
    const char *vl = "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\"}}";
    assert_int_equal(llm_http_refusal(400, vl, strlen(vl)), LLM_REFUSAL_MODEL);
    const char *nf = "{\"error\":{\"message\":\"model 'x' not found\"}}";
    assert_int_equal(llm_http_refusal(422, nf, strlen(nf)), LLM_REFUSAL_MODEL);
    /* other 400s are about the request: another provider would refuse it too */
    const char *ctx = "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens\","
                      "\"code\":\"context_length_exceeded\"}}";
    assert_int_equal(llm_http_refusal(400, ctx, strlen(ctx)), LLM_REFUSAL_NONE);
    const char *tool = "{\"error\":{\"message\":\"tool 'x' not found\"}}";
    assert_int_equal(llm_http_refusal(400, tool, strlen(tool)), LLM_REFUSAL_NONE);
    assert_int_equal(llm_http_refusal(400, "not json", 8), LLM_REFUSAL_NONE);
    assert_int_equal(llm_http_refusal(400, NULL, 0), LLM_REFUSAL_NONE);
    /* neither transient failures nor successes are refusals */
    const long none[] = { 200, 408, 409, 429, 500, 502, 503, 504 };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        assert_int_equal(llm_http_refusal(none[i], oa, strlen(oa)), LLM_REFUSAL_NONE);
    /* and a refusal is never retried on the same provider */
    assert_false(llm_http_retryable(401));
    assert_false(llm_http_retryable(403));
    assert_false(llm_http_retryable(404));
}

static void test_breaker_transitions(void **state)
{
    (void)state;
    struct llm_breaker b;
    llm_breaker_init(&b, 3, 1000);
    int64_t t = 5000;
    assert_int_equal(llm_breaker_state(&b, t), LLM_BREAKER_CLOSED);
    /* failures below the threshold, then a success resets the count */
    llm_breaker_failure(&b, t);
    llm_breaker_failure(&b, t);
    llm_breaker_success(&b);
    llm_breaker_failure(&b, t);
    llm_breaker_failure(&b, t);
    assert_int_equal(llm_breaker_allow(&b, t), 1);
    /* the third consecutive failure opens it */
    llm_breaker_failure(&b, t);
    assert_int_equal(llm_breaker_state(&b, t), LLM_BREAKER_OPEN);
    assert_int_equal(llm_breaker_allow(&b, t + 999), 0);
    assert_int_equal(llm_breaker_wait_ms(&b, t + 400), 600);
    /* late failures of attempts started before it opened do not extend it */
    llm_breaker_failure(&b, t + 500);
    assert_int_equal(llm_breaker_wait_ms(&b, t + 500), 500);
    /* after the cooldown: half-open, one probe at a time */
    assert_int_equal(llm_breaker_state(&b, t + 1000), LLM_BREAKER_HALF_OPEN);
    assert_int_equal(llm_breaker_allow(&b, t + 1000), 2);
    assert_int_equal(llm_breaker_allow(&b, t + 1001), 0);
    /* the probe fails: open again from now */
    llm_breaker_failure(&b, t + 1200);
    assert_int_equal(llm_breaker_state(&b, t + 1300), LLM_BREAKER_OPEN);
    assert_int_equal(llm_breaker_allow(&b, t + 2199), 0);
    assert_int_equal(llm_breaker_allow(&b, t + 2200), 2);
    /* an abandoned probe lets another go */
    llm_breaker_release(&b);
    assert_int_equal(llm_breaker_allow(&b, t + 2201), 2);
    /* the probe succeeds: closed, counting from zero */
    llm_breaker_success(&b);
    assert_int_equal(llm_breaker_state(&b, t + 2300), LLM_BREAKER_CLOSED);
    assert_int_equal(llm_breaker_wait_ms(&b, t + 2300), 0);
    llm_breaker_failure(&b, t + 2400);
    llm_breaker_failure(&b, t + 2400);
    assert_int_equal(llm_breaker_allow(&b, t + 2400), 1);
    llm_breaker_destroy(&b);
}

static void test_breaker_threshold_one(void **state)
{
    (void)state;
    struct llm_breaker b;
    llm_breaker_init(&b, 0, 50); /* clamped to 1 */
    llm_breaker_failure(&b, 0);
    assert_int_equal(llm_breaker_allow(&b, 10), 0);
    assert_int_equal(llm_breaker_allow(&b, 50), 2);
    llm_breaker_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_spread),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_refusal),
        cmocka_unit_test(test_breaker_transitions),
        cmocka_unit_test(test_breaker_threshold_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
