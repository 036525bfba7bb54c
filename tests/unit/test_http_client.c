/* http/client: HTTP/1.1 transfers fill one libcurl multi handle up to the
 * shard size before the next is opened, against the Python fake LLM on a
 * real loop; idle connections are reused afterwards, a connection cap limits
 * the handles. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/loop.h"
#include "http/client.h"

#include "fake_llm_fixture.h"

struct run {
    struct loop *loop;
    int want, done, ok;
    long new_connections; /* CURLINFO_NUM_CONNECTS summed: 0 when reused */
};

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p; (void)ud;
    return s * n;
}

static void on_done(CURL *easy, CURLcode res, void *ud)
{
    struct run *r = ud;
    long code = 0, conns = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &conns);
    if (res == CURLE_OK && code == 200)
        r->ok++;
    r->new_connections += conns;
    curl_easy_cleanup(easy);
    if (++r->done == r->want)
        loop_stop(r->loop);
}

/* n model calls at once, each answered after ms; runs the loop until all
 * ended */
static void calls(struct http_client *cl, struct run *r, int n, int ms)
{
    static char url[128], body[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", fake_port);
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi [[fault:latency ms=%d]]\"}]}",
             ms);
    r->want = n;
    r->done = r->ok = 0;
    r->new_connections = 0;
    for (int i = 0; i < n; i++) {
        CURL *e = curl_easy_init();
        assert_non_null(e);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 20000L);
        assert_int_equal(http_client_add(cl, e, on_done, r), 0);
    }
    assert_int_equal(loop_run(r->loop), 0);
    assert_int_equal(r->done, n);
}

static void test_shards_fill_then_reuse(void **state)
{
    (void)state;
    struct run r = { .loop = loop_new(0) };
    assert_non_null(r.loop);
    struct http_client *cl = http_client_new(r.loop);
    assert_non_null(cl);
    assert_int_equal(http_client_h1_handles(cl), 1);
    http_client_set_shard_transfers(cl, 4);

    /* 12 at once: three handles of 4, a connection each */
    calls(cl, &r, 12, 300);
    assert_int_equal(r.ok, 12);
    assert_int_equal(r.new_connections, 12);
    assert_int_equal(http_client_h1_handles(cl), 3);

    /* one at a time afterwards: the first handle's idle connection, no new
     * connection and no new handle */
    for (int i = 0; i < 3; i++) {
        calls(cl, &r, 1, 0);
        assert_int_equal(r.ok, 1);
        assert_int_equal(r.new_connections, 0);
    }
    /* 4 at once again fit the first handle's 4 idle connections */
    calls(cl, &r, 4, 100);
    assert_int_equal(r.ok, 4);
    assert_int_equal(r.new_connections, 0);
    assert_int_equal(http_client_h1_handles(cl), 3);
    assert_int_equal(http_client_active(cl), 0);
    http_client_free(cl);
    loop_free(r.loop);
}

/* A cap of 8 with shards of 4 allows two handles of 4 connections each:
 * 12 calls at once all end, on two handles, with at most 8 connections. */
static void test_cap_limits_handles(void **state)
{
    (void)state;
    struct run r = { .loop = loop_new(0) };
    assert_non_null(r.loop);
    struct http_client *cl = http_client_new(r.loop);
    assert_non_null(cl);
    http_client_set_shard_transfers(cl, 4);
    http_client_set_max_connections(cl, 8);
    calls(cl, &r, 12, 200);
    assert_int_equal(r.ok, 12);
    assert_int_equal(r.new_connections, 8);
    assert_int_equal(http_client_h1_handles(cl), 2);

    /* a cap under two shards keeps one handle */
    http_client_set_max_connections(cl, 3);
    assert_int_equal(http_client_active(cl), 0);
    http_client_free(cl);
    loop_free(r.loop);

    r.loop = loop_new(0);
    cl = http_client_new(r.loop);
    http_client_set_shard_transfers(cl, 4);
    http_client_set_max_connections(cl, 3);
    calls(cl, &r, 6, 200);
    assert_int_equal(r.ok, 6);
    assert_int_equal(r.new_connections, 3);
    assert_int_equal(http_client_h1_handles(cl), 1);
    http_client_free(cl);
    loop_free(r.loop);
}

static int group_setup(void **state)
{
    (void)state;
    loop_global_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return fake_start();
}

static int group_teardown(void **state)
{
    (void)state;
    fake_stop();
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shards_fill_then_reuse),
        cmocka_unit_test(test_cap_limits_handles),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
