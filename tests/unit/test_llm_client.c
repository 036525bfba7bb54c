/* llm client integration: a real loop thread and the Python fake LLM
 * (tests/fake_llm/fake_llm.py) prove non-streaming and streaming calls,
 * the request body, Retry-After, fallback, the breaker (and that a failure
 * of our own resources does not move it), deadlines, cancel and the
 * built-in model through llm_call. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent/offline_model.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "llm/llm.h"
#include "llm/llm_config.h"

#include "fake_llm_fixture.h"

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
    buf_append(ud, p, s * n);
    return s * n;
}

/* Blocking admin request from the test thread (never a loop thread). */
static json_t *admin(const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fake_port, path);
    CURL *e = curl_easy_init();
    struct buf out = { 0 };
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (!strcmp(method, "POST"))
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? body : "{}");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 5L);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    json_t *j = rc == CURLE_OK && out.data ? json_loads(out.data, 0, NULL) : NULL;
    buf_free(&out);
    return j;
}

static int path_count(const char *path)
{
    json_t *s = admin("GET", "/admin/stats", NULL);
    int n = (int)json_integer_value(json_object_get(json_object_get(s, "by_path"), path));
    json_decref(s);
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR); /* attempt warnings are expected here */
    loop_global_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return fake_start();
}

static int group_teardown(void **state)
{
    (void)state;
    fake_stop();
    curl_global_cleanup();
    metrics_reset();
    return 0;
}

/* ---- a loop thread per test ---- */

struct env {
    struct loop *loop;
    pthread_t thread;
    struct llm *llm;
};

const char *test_get(const char *name, void *ud);

static void *run_loop(void *arg)
{
    loop_run(arg);
    return NULL;
}

static void env_start(struct env *e, const char *const *kv, int builtin)
{
    struct llm_config cfg;
    struct config_problems pr = { 0 };
    int n = llm_config_load(&cfg, CONFIG_ENV_DEVELOPMENT, test_get, (void *)kv, &pr);
    for (int i = 0; i < pr.n; i++)
        fprintf(stderr, "config: %s\n", pr.items[i]);
    assert_int_equal(n, 0);
    assert_int_equal(cfg.builtin, builtin);
    e->llm = llm_new(&cfg, offline_model(), NULL);
    assert_non_null(e->llm);
    llm_config_free(&cfg);
    config_problems_free(&pr);
    e->loop = loop_new(0);
    assert_non_null(e->loop);
    assert_int_equal(pthread_create(&e->thread, NULL, run_loop, e->loop), 0);
    json_decref(admin("POST", "/admin/reset", NULL));
}

static void env_stop(struct env *e)
{
    loop_stop(e->loop);
    pthread_join(e->thread, NULL);
    llm_free(e->llm); /* after the thread, before the base goes */
    loop_free(e->loop);
}

/* A fake environment as NULL-terminated pairs, with the port substituted
 * for "PORT" inside values. */
static char subst_store[64][256];
const char *test_get(const char *name, void *ud)
{
    const char *const *kv = ud;
    for (int i = 0; kv[i]; i += 2)
        if (!strcmp(kv[i], name)) {
            const char *p = strstr(kv[i + 1], "PORT");
            if (!p)
                return kv[i + 1];
            char *slot = subst_store[i / 2];
            snprintf(slot, 256, "%.*s%d%s", (int)(p - kv[i + 1]), kv[i + 1], fake_port, p + 4);
            return slot;
        }
    return NULL;
}

/* ---- one call, waited for from the test thread ---- */

struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
    int status;
    struct llm_reply *reply;
    char error[300];
    int retry_after_s;
    struct buf deltas;
    int resets;
    int64_t elapsed_ms;
    int64_t started_ms;
};

struct job {
    struct env *e;
    json_t *messages;
    int stream;
    int64_t deadline_in_ms;
    int cancel_after_ms;
    struct result *res;
    struct llm_call *handle;
    struct event *cancel_ev;
    const json_t *tools;       /* optional request fields */
    const char *tool_choice;
    int max_tokens;
    const char *messages_json; /* sent in place of messages when set (kept by the caller) */
};

static void on_delta(const char *text, size_t len, void *ud)
{
    struct result *r = ud;
    if (!text) {
        r->resets++;
        r->deltas.len = 0;
        return;
    }
    buf_append(&r->deltas, text, len);
}

static void on_done(int status, struct llm_reply *reply, const char *error, int retry_after_s, void *ud)
{
    struct result *r = ud;
    pthread_mutex_lock(&r->mu);
    r->status = status;
    r->reply = reply;
    snprintf(r->error, sizeof r->error, "%s", error ? error : "");
    r->retry_after_s = retry_after_s;
    r->elapsed_ms = clock_mono_ms() - r->started_ms;
    r->finished = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void start_job(void *arg)
{
    struct job *j = arg;
    struct llm_request req = {
        .messages = j->messages,
        .stream = j->stream,
        .deadline_ms = j->deadline_in_ms ? clock_mono_ms() + j->deadline_in_ms : 0,
        .request_id = "test-req",
        .tools = j->tools,
        .tool_choice = j->tool_choice,
        .max_tokens = j->max_tokens,
        .messages_json = j->messages_json,
        .messages_json_len = j->messages_json ? strlen(j->messages_json) : 0,
    };
    j->res->started_ms = clock_mono_ms();
    int rc = llm_call(j->e->llm, j->e->loop, &req, on_delta, on_done, j->res, &j->handle);
    assert_int_equal(rc, 0);
    /* the client serialized what it needs: changing or dropping the
     * messages now must not reach the provider */
    json_array_append_new(j->messages, json_pack("{s:s, s:s}", "role", "user", "content", "CHANGED"));
    json_decref(j->messages);
    j->messages = NULL;
}

static void cancel_job(void *arg)
{
    struct job *j = arg;
    llm_call_cancel(j->handle);
    pthread_mutex_lock(&j->res->mu);
    j->res->finished = 2; /* cancelled: done must never come */
    pthread_cond_signal(&j->res->cv);
    pthread_mutex_unlock(&j->res->mu);
}

static json_t *user_msg(const char *text)
{
    return json_pack("[{s:s, s:s}, {s:s, s:s}]", "role", "system", "content", "test", "role", "user",
                     "content", text);
}

/* Runs a call to the end (or cancels it after cancel_after_ms), with the
 * optional fields of *opt (tools, tool_choice, max_tokens) when given. */
static void call_opt(struct env *e, const char *text, int stream, int64_t deadline_in_ms,
                     int cancel_after_ms, struct result *r, const struct job *opt)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    struct job j = { e, user_msg(text), stream, deadline_in_ms, cancel_after_ms, r, NULL, NULL,
                     opt ? opt->tools : NULL, opt ? opt->tool_choice : NULL, opt ? opt->max_tokens : 0,
                     opt ? opt->messages_json : NULL };
    assert_int_equal(loop_post(e->loop, start_job, &j), 0);
    if (cancel_after_ms) {
        usleep((useconds_t)cancel_after_ms * 1000);
        loop_post(e->loop, cancel_job, &j);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&r->mu);
    while (!r->finished)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
            break;
    int fin = r->finished;
    pthread_mutex_unlock(&r->mu);
    assert_true(fin != 0); /* never a hang */
}

static void call(struct env *e, const char *text, int stream, int64_t deadline_in_ms,
                 int cancel_after_ms, struct result *r)
{
    call_opt(e, text, stream, deadline_in_ms, cancel_after_ms, r, NULL);
}

static void result_free(struct result *r)
{
    llm_reply_free(r->reply);
    buf_free(&r->deltas);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static double metric_of(const char *family, const char *const *labels)
{
    struct metric *m = metric_register(family, "", METRIC_COUNTER, NULL, NULL);
    return metric_value(metric_child(m, labels));
}

/* ---- tests ---- */

static const char *const ONE[] = { "AGENTD_LLM_URL", "http://127.0.0.1:PORT/v1", "AGENTD_LLM_MODEL", "fake-1",
                                   "AGENTD_LLM_API_KEY", "sk-test-key", "AGENTD_LLM_PRICE_IN", "500000",
                                   "AGENTD_LLM_PRICE_OUT", "1000000", NULL };

static void test_non_streaming(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    struct result r;
    call(&e, "hello there", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->content, "echo: hello there");
    assert_string_equal(r.reply->finish_reason, "stop");
    assert_string_equal(r.reply->provider, "default");
    assert_string_equal(r.reply->model, "fake-1");
    assert_int_equal(r.reply->attempts, 1);
    assert_true(r.reply->usage.prompt_tokens > 0 && r.reply->usage.completion_tokens > 0);
    /* prices are per million tokens: here 0.5 and 1 USD per token */
    assert_true(r.reply->usage.cost_usd == 0.5 * (double)r.reply->usage.prompt_tokens +
                                              (double)r.reply->usage.completion_tokens);
    json_t *s = admin("GET", "/admin/stats", NULL);
    json_t *last = json_object_get(s, "last");
    assert_string_equal(json_string_value(json_object_get(last, "authorization")), "Bearer sk-test-key");
    assert_string_equal(json_string_value(json_object_get(last, "model")), "fake-1");
    json_decref(s);
    result_free(&r);

    /* parallel tool calls, non-streaming */
    call(&e, "use two tools", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_null(r.reply->content);
    assert_int_equal(json_array_size(r.reply->tool_calls), 2);
    result_free(&r);
    const char *lv[] = { "default", "fake-1", "ok" };
    assert_true(metric_of("agentd_llm_requests_total", lv) >= 2);
    env_stop(&e);
}

static void test_streaming(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    struct result r;
    call(&e, "give me a long answer", 1, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.reply->content) > 1000);
    assert_non_null(r.deltas.data);
    assert_string_equal(r.deltas.data, r.reply->content); /* deltas add up to the reply */
    assert_true(r.reply->usage.completion_tokens > 0);    /* from the usage chunk */
    result_free(&r);

    call(&e, "use two tools", 1, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(json_array_size(r.reply->tool_calls), 2);
    json_t *f1 = json_object_get(json_array_get(r.reply->tool_calls, 1), "function");
    assert_string_equal(json_string_value(json_object_get(f1, "name")), "get_time");
    json_t *args = json_loads(json_string_value(json_object_get(f1, "arguments")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(args, "timezone")), "Europe/Paris");
    json_decref(args);
    assert_string_equal(r.reply->finish_reason, "tool_calls");
    result_free(&r);
    env_stop(&e);
}

static void test_429_then_success(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":429,\"retry_after\":\"1\"}]}"));
    struct result r;
    call(&e, "hello", 0, 10000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.reply->attempts, 2);
    fprintf(stderr, "429 + Retry-After: 1 -> answered after %lld ms\n", (long long)r.elapsed_ms);
    assert_true(r.elapsed_ms >= 1000 && r.elapsed_ms < 2500);
    result_free(&r);
    const char *lv[] = { "default", "fake-1", "retry" };
    assert_true(metric_of("agentd_llm_requests_total", lv) >= 1);
    env_stop(&e);
}

static const char *const CHAIN[] = {
    "AGENTD_LLM_PROVIDERS", "primary,backup",
    "AGENTD_LLM_PRIMARY_URL", "http://127.0.0.1:PORT/primary/v1", "AGENTD_LLM_PRIMARY_MODEL", "p-model",
    "AGENTD_LLM_BACKUP_URL", "http://127.0.0.1:PORT/backup/v1", "AGENTD_LLM_BACKUP_MODEL", "b-model",
    "AGENTD_LLM_MAX_RETRIES", "2", "AGENTD_LLM_BREAKER_FAILURES", "5", NULL };

static void test_500_fallback(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, CHAIN, 0);
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":500,\"times\":3,\"path\":\"/primary\"}]}"));
    struct result r;
    call(&e, "hello", 0, 10000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->provider, "backup");
    assert_string_equal(r.reply->model, "b-model");
    assert_int_equal(r.reply->attempts, 4); /* 1 + 2 retries on primary, 1 on backup */
    assert_int_equal(path_count("/primary/v1/chat/completions"), 3);
    assert_int_equal(path_count("/backup/v1/chat/completions"), 1);
    /* backoff: at most 250 + 500 ms of jittered waits */
    fprintf(stderr, "500 x3 -> fallback answered after %lld ms\n", (long long)r.elapsed_ms);
    assert_true(r.elapsed_ms < 2000);
    result_free(&r);
    env_stop(&e);
}

static void test_breaker_opens(void **state)
{
    (void)state;
    const char *kv[] = {
        "AGENTD_LLM_PROVIDERS", "primary,backup",
        "AGENTD_LLM_PRIMARY_URL", "http://127.0.0.1:PORT/primary/v1", "AGENTD_LLM_PRIMARY_MODEL", "p-model",
        "AGENTD_LLM_BACKUP_URL", "http://127.0.0.1:PORT/backup/v1", "AGENTD_LLM_BACKUP_MODEL", "b-model",
        "AGENTD_LLM_MAX_RETRIES", "0", "AGENTD_LLM_BREAKER_FAILURES", "2",
        "AGENTD_LLM_BREAKER_COOLDOWN", "800ms", NULL };
    struct env e;
    env_start(&e, kv, 0);
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":503,\"times\":100,\"path\":\"/primary\"}]}"));
    struct result r;
    for (int i = 0; i < 4; i++) {
        call(&e, "hello", 0, 5000, 0, &r);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.reply->provider, "backup");
        result_free(&r);
    }
    /* two failures opened it: calls 3 and 4 went straight to the backup */
    assert_int_equal(path_count("/primary/v1/chat/completions"), 2);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "open");
    assert_string_equal(llm_provider_breaker(e.llm, 1), "closed");
    const char *ov[] = { "primary", "p-model", "breaker_open" };
    assert_true(metric_of("agentd_llm_requests_total", ov) >= 2);
    const char *gv[] = { "primary" };
    struct metric *g = metric_register("agentd_llm_breaker_state", "", METRIC_GAUGE, NULL, NULL);
    assert_true(metric_value(metric_child(g, gv)) == 2.0);
    /* after the cooldown a single probe goes; the provider is back: closed */
    usleep(900 * 1000);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "half_open");
    json_decref(admin("POST", "/admin/reset", NULL));
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->provider, "primary");
    result_free(&r);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "closed");
    env_stop(&e);
}

static void test_hang_deadline(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    struct result r;
    call(&e, "hello [[fault:hang seconds=30]]", 0, 1000, 0, &r);
    assert_int_equal(r.status, AGENTD_ETIMEOUT);
    fprintf(stderr, "hang, deadline 1000 ms -> ETIMEOUT after %lld ms\n", (long long)r.elapsed_ms);
    assert_true(r.elapsed_ms >= 900 && r.elapsed_ms <= 1100);
    assert_null(r.reply);
    result_free(&r);
    /* streaming too */
    call(&e, "hello [[fault:hang seconds=30]]", 1, 600, 0, &r);
    assert_int_equal(r.status, AGENTD_ETIMEOUT);
    assert_true(r.elapsed_ms >= 540 && r.elapsed_ms <= 660);
    result_free(&r);
    env_stop(&e);
}

static void test_per_call_timeout_then_unavailable(void **state)
{
    (void)state;
    const char *kv[] = { "AGENTD_LLM_URL", "http://127.0.0.1:PORT/v1", "AGENTD_LLM_MODEL", "m",
                         "AGENTD_LLM_TIMEOUT", "300ms", "AGENTD_LLM_MAX_RETRIES", "1", NULL };
    struct env e;
    env_start(&e, kv, 0);
    struct result r;
    /* each attempt times out at 300 ms; one retry; then nobody is left */
    call(&e, "hello [[fault:hang seconds=30]]", 0, 10000, 0, &r);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    assert_non_null(strstr(r.error, "timed out"));
    assert_true(r.elapsed_ms >= 600 && r.elapsed_ms < 1500);
    result_free(&r);
    /* 503 with a Retry-After beyond the deadline: hand over now, hint kept */
    call(&e, "hello [[fault:503 retry_after=5]]", 0, 2000, 0, &r);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    assert_int_equal(r.retry_after_s, 5);
    assert_true(r.elapsed_ms < 500);
    result_free(&r);
    env_stop(&e);
}

static void test_refused_and_malformed(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    struct result r;
    /* 400: the request itself is wrong; no retry, no fallback */
    call(&e, "hello [[fault:400]]", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EINVAL);
    assert_non_null(strstr(r.error, "HTTP 400"));
    assert_null(strstr(r.error, "sk-test-key"));
    assert_int_equal(path_count("/v1/chat/completions"), 1);
    result_free(&r);
    /* malformed JSON, a reply without choices, a reset, a truncated stream:
     * each a provider failure, retried */
    const char *faults[] = { "malformed", "no_choices", "reset", "truncate" };
    for (int i = 0; i < 4; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"faults\":[{\"%s\":true}]}", faults[i]);
        json_decref(admin("POST", "/admin/faults", body));
        int before = path_count("/v1/chat/completions");
        call(&e, "give me a long answer", i == 3, 5000, 0, &r);
        if (r.status != 0)
            fprintf(stderr, "%s: %s\n", faults[i], r.error);
        assert_int_equal(r.status, 0);
        assert_int_equal(path_count("/v1/chat/completions") - before, 2);
        /* a reset on a reused keep-alive connection is retried inside curl
         * (it never reached the server's reply), so it may cost us no attempt */
        if (strcmp(faults[i], "reset") != 0)
            assert_int_equal(r.reply->attempts, 2);
        if (i == 3) { /* the half-streamed text was withdrawn, then streamed whole */
            assert_int_equal(r.resets, 1);
            assert_string_equal(r.deltas.data, r.reply->content);
        }
        result_free(&r);
    }
    /* the unknown tool and bad arguments are the agent's to handle: they pass through */
    call(&e, "x [[fault:unknown_tool]]", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(r.reply->tool_calls, 0), "function"), "name")),
                        "no_such_tool");
    result_free(&r);
    env_stop(&e);
}

static void test_cancel(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    struct result r;
    call(&e, "hello [[fault:hang seconds=5]]", 1, 10000, 150, &r);
    assert_int_equal(r.finished, 2);
    usleep(100 * 1000);
    assert_int_equal(r.finished, 2); /* done() never came */
    result_free(&r);
    /* the loop still serves calls afterwards */
    call(&e, "after cancel", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    result_free(&r);
    env_stop(&e);
}

static void test_unreachable(void **state)
{
    (void)state;
    const char *kv[] = { "AGENTD_LLM_URL", "http://127.0.0.1:1/v1", "AGENTD_LLM_MODEL", "m",
                         "AGENTD_LLM_MAX_RETRIES", "1", NULL };
    struct env e;
    env_start(&e, kv, 0);
    struct result r;
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    assert_non_null(strstr(r.error, "default:"));
    result_free(&r);
    env_stop(&e);
}

/* The body is serialized once per call from the caller's messages (changed
 * by start_job right after llm_call returns), with the tools' text cached
 * per loop, and the model swapped on fallback. */
static void test_request_body(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    json_t *tools = json_pack("[{s:s, s:{s:s, s:s, s:{s:s}}}]", "type", "function", "function", "name",
                              "get_time", "description", "the time", "parameters", "type", "object");
    struct job opt = { .tools = tools, .tool_choice = "get_time", .max_tokens = 77 };
    struct result r;
    for (int i = 0; i < 2; i++) { /* the second call takes the cached tools text */
        call_opt(&e, "hello there", 0, 5000, 0, &r, &opt);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.reply->content, "echo: hello there"); /* not CHANGED */
        result_free(&r);
        json_t *s = admin("GET", "/admin/stats", NULL);
        json_t *last = json_object_get(s, "last");
        assert_string_equal(json_string_value(json_object_get(last, "model")), "fake-1");
        assert_true(json_is_true(json_object_get(last, "has_tools")));
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_object_get(last, "tool_choice"), "function"), "name")),
                            "get_time");
        assert_int_equal(json_integer_value(json_object_get(last, "max_tokens")), 77);
        assert_false(json_is_true(json_object_get(last, "stream")));
        json_decref(s);
    }
    opt.tool_choice = NULL;
    opt.max_tokens = 0;
    call_opt(&e, "hello", 1, 5000, 0, &r, &opt);
    assert_int_equal(r.status, 0);
    result_free(&r);
    json_t *s = admin("GET", "/admin/stats", NULL);
    json_t *last = json_object_get(s, "last");
    assert_string_equal(json_string_value(json_object_get(last, "tool_choice")), "auto");
    assert_true(json_is_true(json_object_get(last, "stream")));
    assert_true(json_is_null(json_object_get(last, "max_tokens"))); /* not sent */
    json_decref(s);
    env_stop(&e);
    json_decref(tools);

    /* fallback: the second provider gets its own model in the same body */
    env_start(&e, CHAIN, 0);
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":500,\"times\":3,\"path\":\"/primary\"}]}"));
    call(&e, "hello", 0, 10000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->content, "echo: hello");
    result_free(&r);
    s = admin("GET", "/admin/stats", NULL);
    last = json_object_get(s, "last");
    assert_string_equal(json_string_value(json_object_get(last, "path")), "/backup/v1/chat/completions");
    assert_string_equal(json_string_value(json_object_get(last, "model")), "b-model");
    json_decref(s);
    env_stop(&e);
}

/* A long conversation's body (over 16 KB) is handed to libcurl through a
 * read callback, not copied: it arrives whole, streamed or not, and again
 * on a retry (a new attempt reads it from the start). */
static void test_large_body(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    char *want = NULL;
    assert_true(asprintf(&want, "echo: %s", big) > 0);
    struct result r;
    for (int stream = 0; stream < 2; stream++) {
        call(&e, big, stream, 10000, 0, &r);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.reply->content, want);
        result_free(&r);
    }
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":500,\"times\":1}]}"));
    call(&e, big, 0, 10000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->content, want);
    result_free(&r);

    /* the conversation as text is borrowed, not copied: what follows it
     * (tools, stream) still arrives, streamed or not */
    char *conv = NULL;
    assert_true(asprintf(&conv, "[{\"role\":\"user\",\"content\":\"%s\"}]", big) > 0);
    json_t *tools = json_pack("[{s:s, s:{s:s, s:s, s:{s:s}}}]", "type", "function", "function",
                              "name", "get_time", "description", "the time", "parameters", "type",
                              "object");
    struct job opt = { .tools = tools, .messages_json = conv };
    for (int stream = 0; stream < 2; stream++) {
        call_opt(&e, "unused", stream, 10000, 0, &r, &opt);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.reply->content, want);
        result_free(&r);
        json_t *s = admin("GET", "/admin/stats", NULL);
        json_t *last = json_object_get(s, "last");
        assert_true(json_is_true(json_object_get(last, "has_tools")));
        assert_int_equal(json_is_true(json_object_get(last, "stream")), stream);
        json_decref(s);
    }
    env_stop(&e);

    /* on fallback the second provider's model goes before the same borrowed
     * conversation (its head has another length) */
    env_start(&e, CHAIN, 0);
    json_decref(admin("POST", "/admin/faults",
                      "{\"faults\":[{\"status\":500,\"times\":3,\"path\":\"/primary\"}]}"));
    call_opt(&e, "unused", 0, 10000, 0, &r, &opt);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->content, want);
    result_free(&r);
    json_t *st = admin("GET", "/admin/stats", NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(st, "last"), "model")),
                        "b-model");
    json_decref(st);
    env_stop(&e);
    json_decref(tools);
    free(conv);
    free(want);
    free(big);
}

/* A loop's ended attempts leave their easy handles, reset, to the next
 * ones: calls alternating the inline body and the read callback, streamed
 * and not, each arrive whole and are answered as on a fresh handle. */
static void test_reused_handles(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    size_t n = 40 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    char *want_big = NULL;
    assert_true(asprintf(&want_big, "echo: %s", big) > 0);
    struct result r;
    for (int round = 0; round < 3; round++)
        for (int stream = 0; stream < 2; stream++) {
            call(&e, "small one", stream, 10000, 0, &r);
            assert_int_equal(r.status, 0);
            assert_string_equal(r.reply->content, "echo: small one");
            result_free(&r);
            call(&e, big, stream, 10000, 0, &r);
            assert_int_equal(r.status, 0);
            assert_string_equal(r.reply->content, want_big);
            result_free(&r);
            json_t *s = admin("GET", "/admin/stats", NULL);
            assert_int_equal(json_is_true(json_object_get(json_object_get(s, "last"), "stream")),
                             stream);
            json_decref(s);
        }
    env_stop(&e);
    free(want_big);
    free(big);
}

/* A call that fails for lack of OUR descriptors (socket() -> EMFILE) is an
 * error for that call, retried as any connect error, but it does not count
 * against the provider's circuit breaker: with a threshold of 1 the breaker
 * stays closed, and the next call goes through. A provider failure with the
 * same settings does open it. */
static void test_local_failure_spares_breaker(void **state)
{
    (void)state;
    const char *kv[] = { "AGENTD_LLM_URL", "http://127.0.0.1:PORT/v1", "AGENTD_LLM_MODEL", "m",
                         "AGENTD_LLM_MAX_RETRIES", "1", "AGENTD_LLM_BREAKER_FAILURES", "1",
                         "AGENTD_LLM_BREAKER_COOLDOWN", "60s", NULL };
    struct env e;
    env_start(&e, kv, 0);
    struct result r;
    /* create the loop's curl multi without leaving a pooled connection: a
     * call cancelled while the model hangs (its connection is closed) */
    call(&e, "warm up [[fault:hang seconds=2]]", 0, 10000, 150, &r);
    assert_int_equal(r.finished, 2);
    result_free(&r);
    const char *retry_lv[] = { "default", "m", "retry" };
    double retries = metric_of("agentd_llm_requests_total", retry_lv);

    /* no descriptor left: the lowest free one is at the soft limit */
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(probe >= 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    fprintf(stderr, "socket() EMFILE -> %d: %s\n", r.status, r.error);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    assert_non_null(strstr(r.error, "Too many open files"));
    assert_non_null(strstr(r.error, "not counted by the circuit breaker"));
    result_free(&r);
    assert_true(metric_of("agentd_llm_requests_total", retry_lv) == retries + 1); /* retried as before */
    assert_string_equal(llm_provider_breaker(e.llm, 0), "closed");
    assert_int_equal(path_count("/v1/chat/completions"), 1); /* only the warm-up reached it */

    /* descriptors are back: the provider answers at once */
    call(&e, "hello again", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->content, "echo: hello again");
    assert_int_equal(r.reply->attempts, 1);
    result_free(&r);

    /* the contrast: one provider failure opens this breaker */
    call(&e, "hello [[fault:503]]", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    result_free(&r);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "open");
    env_stop(&e);
}

/* Two calls started together on e's loop, both waited for. */
static void two_calls(struct env *e, const char *text, struct result r[2])
{
    struct job j[2];
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        pthread_mutex_init(&r[i].mu, NULL);
        pthread_cond_init(&r[i].cv, NULL);
        j[i] = (struct job){ .e = e, .messages = user_msg(text), .deadline_in_ms = 10000, .res = &r[i] };
        assert_int_equal(loop_post(e->loop, start_job, &j[i]), 0);
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&r[i].mu);
        while (!r[i].finished)
            if (pthread_cond_timedwait(&r[i].cv, &r[i].mu, &until) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&r[i].mu);
        assert_int_equal(r[i].finished, 1);
    }
}

/* AGENTD_LLM_MAX_CONNECTIONS=1: a second call in flight waits inside
 * libcurl for the one connection instead of opening another, then reuses
 * it; both succeed. When the wait eats the attempt's timeout, that timeout
 * is local: the breaker (threshold 1) stays closed; a provider that hangs
 * for the whole timeout does open it. */
static void test_max_connections(void **state)
{
    (void)state;
    const char *kv[] = { "AGENTD_LLM_URL", "http://127.0.0.1:PORT/v1", "AGENTD_LLM_MODEL", "m",
                         "AGENTD_LLM_MAX_CONNECTIONS", "1", "AGENTD_LLM_TIMEOUT", "1500ms",
                         "AGENTD_LLM_MAX_RETRIES", "0", "AGENTD_LLM_BREAKER_FAILURES", "1", NULL };
    struct env e;
    env_start(&e, kv, 0);
    struct result r[2];
    two_calls(&e, "slow [[fault:latency ms=300]]", r);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].reply->attempts, 1);
    }
    fprintf(stderr, "2 calls of 300 ms on 1 connection -> %lld and %lld ms\n",
            (long long)r[0].elapsed_ms, (long long)r[1].elapsed_ms);
    assert_true((r[0].elapsed_ms > r[1].elapsed_ms ? r[0].elapsed_ms : r[1].elapsed_ms) >= 600);
    for (int i = 0; i < 2; i++)
        result_free(&r[i]);

    /* 2 x 1000 ms on one connection with a 1500 ms timeout: the second call
     * waits 1000 ms, then the model has 500 ms (margins wide enough for a
     * loaded CI machine: the first call has 500 ms to spare) */
    two_calls(&e, "slow [[fault:latency ms=1000]]", r);
    int failed = r[0].status != 0 ? 0 : 1;
    assert_int_equal(r[!failed].status, 0);
    assert_int_equal(r[failed].status, AGENTD_EUNAVAILABLE);
    assert_non_null(strstr(r[failed].error, "timed out waiting for a free connection"));
    for (int i = 0; i < 2; i++)
        result_free(&r[i]);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "closed");

    /* the contrast: the model itself takes longer than the timeout */
    struct result one;
    call(&e, "hello [[fault:hang seconds=2]]", 0, 5000, 0, &one);
    assert_int_equal(one.status, AGENTD_EUNAVAILABLE);
    assert_non_null(strstr(one.error, "timed out"));
    assert_null(strstr(one.error, "free connection"));
    result_free(&one);
    assert_string_equal(llm_provider_breaker(e.llm, 0), "open");
    env_stop(&e);
}

static void test_builtin_via_call(void **state)
{
    (void)state;
    const char *kv[] = { NULL };
    struct env e;
    env_start(&e, kv, 1);
    assert_true(llm_is_builtin(e.llm));
    assert_int_equal(llm_provider_count(e.llm), 1);
    assert_string_equal(llm_provider_name(e.llm, 0), "builtin");
    struct result r;
    call(&e, "hello", 1, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.reply->provider, "builtin");
    assert_string_equal(r.deltas.data, r.reply->content);
    result_free(&r);
    call(&e, "show me cookies", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(r.reply->tool_calls, 0), "function"), "name")),
                        "search_shopping_catalog");
    result_free(&r);
    env_stop(&e);
}

/* ---- a provider that refuses its configuration ---- */

static void set_required_key(const char *key)
{
    char body[128];
    snprintf(body, sizeof body, "{\"api_key\":\"%s\"}", key);
    json_decref(admin("POST", "/admin/auth", body));
}

static void test_unauthorized(void **state)
{
    (void)state;
    struct env e;
    env_start(&e, ONE, 0);
    assert_string_equal(llm_provider_state(e.llm, 0, NULL), "unknown");
    set_required_key("sk-the-right-one");
    struct result r;
    call(&e, "hello", 0, 5000, 0, &r);
    /* a configuration error: not retried, not "unavailable", names the cure */
    assert_int_equal(r.status, AGENTD_EMODELREFUSED);
    assert_int_equal(r.retry_after_s, 0);
    assert_non_null(strstr(r.error, "provider 'default' refused the API key (HTTP 401)"));
    assert_non_null(strstr(r.error, "AGENTD_LLM_API_KEY"));
    assert_null(strstr(r.error, "sk-test-key"));
    assert_int_equal(path_count("/v1/chat/completions"), 1);
    int st = 0;
    assert_string_equal(llm_provider_state(e.llm, 0, &st), "unauthorized");
    assert_int_equal(st, 401);
    result_free(&r);
    /* never a breaker failure: many refusals leave it closed */
    for (int i = 0; i < 6; i++) {
        call(&e, "hello", 0, 5000, 0, &r);
        assert_int_equal(r.status, AGENTD_EMODELREFUSED);
        result_free(&r);
    }
    assert_string_equal(llm_provider_breaker(e.llm, 0), "closed");
    const char *lv[] = { "default", "fake-1", "refused" };
    assert_true(metric_of("agentd_llm_requests_total", lv) >= 7);
    /* the key works again (rotated at the provider): the next call clears it */
    set_required_key("sk-test-key");
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(llm_provider_state(e.llm, 0, &st), "ok");
    result_free(&r);
    /* 403: the key may not use this model */
    call(&e, "hello [[fault:403]]", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EMODELREFUSED);
    assert_non_null(strstr(r.error, "HTTP 403"));
    assert_string_equal(llm_provider_state(e.llm, 0, &st), "unauthorized");
    assert_int_equal(st, 403);
    result_free(&r);
    /* 404: the model (or URL) is wrong */
    call(&e, "hello [[fault:404]]", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EMODELREFUSED);
    assert_non_null(strstr(r.error, "model 'fake-1'"));
    assert_non_null(strstr(r.error, "AGENTD_LLM_MODEL"));
    assert_string_equal(llm_provider_state(e.llm, 0, &st), "model_not_found");
    assert_int_equal(st, 404);
    result_free(&r);
    env_stop(&e);
}

static void test_unauthorized_fallback(void **state)
{
    (void)state;
    const char *kv[] = {
        "AGENTD_LLM_PROVIDERS", "primary,backup",
        "AGENTD_LLM_PRIMARY_URL", "http://127.0.0.1:PORT/primary/v1", "AGENTD_LLM_PRIMARY_MODEL", "p-model",
        "AGENTD_LLM_PRIMARY_API_KEY", "sk-wrong",
        "AGENTD_LLM_BACKUP_URL", "http://127.0.0.1:PORT/backup/v1", "AGENTD_LLM_BACKUP_MODEL", "b-model",
        "AGENTD_LLM_BACKUP_API_KEY", "sk-good",
        "AGENTD_LLM_MAX_RETRIES", "2", "AGENTD_LLM_BREAKER_FAILURES", "2", NULL };
    struct env e;
    env_start(&e, kv, 0);
    set_required_key("sk-good");
    struct result r;
    for (int i = 0; i < 3; i++) {
        call(&e, "hello", 0, 5000, 0, &r);
        assert_int_equal(r.status, 0);
        assert_string_equal(r.reply->provider, "backup");
        assert_int_equal(r.reply->attempts, 2); /* one refusal, no retry on it */
        result_free(&r);
    }
    assert_int_equal(path_count("/primary/v1/chat/completions"), 3);
    assert_string_equal(llm_provider_state(e.llm, 0, NULL), "unauthorized");
    assert_string_equal(llm_provider_state(e.llm, 1, NULL), "ok");
    assert_string_equal(llm_provider_breaker(e.llm, 0), "closed");
    /* every provider refusing: model_refused naming each */
    set_required_key("sk-neither");
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EMODELREFUSED);
    assert_non_null(strstr(r.error, "provider 'primary' refused the API key (HTTP 401): check "
                                    "AGENTD_LLM_PRIMARY_API_KEY"));
    assert_non_null(strstr(r.error, "AGENTD_LLM_BACKUP_API_KEY"));
    assert_null(strstr(r.error, "sk-"));
    result_free(&r);
    /* one refused, the other down: a retry may help, so unavailable */
    set_required_key("sk-good");
    json_decref(admin("POST", "/admin/faults", "{\"faults\":[{\"status\":503,\"times\":3,\"path\":\"/backup\"}]}"));
    call(&e, "hello", 0, 5000, 0, &r);
    assert_int_equal(r.status, AGENTD_EUNAVAILABLE);
    result_free(&r);
    env_stop(&e);
}

struct probe_job {
    struct env *e;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished, refused;
    char report[512];
};

static void probe_done(int refused, const char *report, void *ud)
{
    struct probe_job *j = ud;
    pthread_mutex_lock(&j->mu);
    j->refused = refused;
    snprintf(j->report, sizeof j->report, "%s", report ? report : "");
    j->finished = 1;
    pthread_cond_signal(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static void probe_start(void *arg)
{
    struct probe_job *j = arg;
    assert_int_equal(llm_probe(j->e->llm, j->e->loop, probe_done, j), 0);
}

static void probe(struct env *e, struct probe_job *j)
{
    memset(j, 0, sizeof *j);
    j->e = e;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    assert_int_equal(loop_post(e->loop, probe_start, j), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&j->mu);
    while (!j->finished)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &until) == ETIMEDOUT)
            break;
    int fin = j->finished;
    pthread_mutex_unlock(&j->mu);
    assert_true(fin);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
}

static void test_startup_probe(void **state)
{
    (void)state;
    const char *kv[] = {
        "AGENTD_LLM_PROVIDERS", "primary,backup,gone",
        "AGENTD_LLM_PRIMARY_URL", "http://127.0.0.1:PORT/primary/v1", "AGENTD_LLM_PRIMARY_MODEL", "fake",
        "AGENTD_LLM_PRIMARY_API_KEY", "sk-wrong",
        "AGENTD_LLM_BACKUP_URL", "http://127.0.0.1:PORT/backup/v1", "AGENTD_LLM_BACKUP_MODEL", "fake",
        "AGENTD_LLM_BACKUP_API_KEY", "sk-good",
        /* nothing listens there: a network failure is a warning, not a refusal */
        "AGENTD_LLM_GONE_URL", "http://127.0.0.1:1/v1", "AGENTD_LLM_GONE_MODEL", "fake", NULL };
    struct env e;
    env_start(&e, kv, 0);
    set_required_key("sk-good");
    struct probe_job j;
    probe(&e, &j);
    assert_int_equal(j.refused, 1);
    assert_non_null(strstr(j.report, "provider 'primary' refused the API key (HTTP 401)"));
    assert_non_null(strstr(j.report, "gone"));
    assert_null(strstr(j.report, "sk-"));
    assert_int_equal(path_count("/primary/v1/models"), 1);
    assert_int_equal(path_count("/backup/v1/models"), 1);
    assert_string_equal(llm_provider_state(e.llm, 0, NULL), "unauthorized");
    assert_string_equal(llm_provider_state(e.llm, 1, NULL), "ok");
    assert_string_equal(llm_provider_state(e.llm, 2, NULL), "unknown");
    assert_int_equal(path_count("/primary/v1/chat/completions"), 0); /* a probe costs no tokens */
    /* the verdict follows the provider: now only the primary's key works */
    set_required_key("sk-wrong");
    probe(&e, &j);
    assert_int_equal(j.refused, 1); /* now the backup's key is the wrong one */
    assert_non_null(strstr(j.report, "'backup'"));
    assert_string_equal(llm_provider_state(e.llm, 0, NULL), "ok");
    env_stop(&e);
}

static void test_provider_host(void **state)
{
    (void)state;
    char h[128];
    assert_string_equal(llm_url_host("https://api.openai.com/v1", h, sizeof h), "api.openai.com");
    assert_string_equal(llm_url_host("http://u:pw@127.0.0.1:8080/v1", h, sizeof h), "127.0.0.1:8080");
    assert_string_equal(llm_url_host("http://[::1]:9/x", h, sizeof h), "[::1]:9");
    assert_string_equal(llm_url_host("https://host.example", h, sizeof h), "host.example");
    char v[64];
    assert_string_equal(llm_provider_var_prefix("default", v, sizeof v), "AGENTD_LLM");
    assert_string_equal(llm_provider_var_prefix("primary", v, sizeof v), "AGENTD_LLM_PRIMARY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_streaming),
        cmocka_unit_test(test_request_body),
        cmocka_unit_test(test_large_body),
        cmocka_unit_test(test_reused_handles),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_429_then_success),
        cmocka_unit_test(test_500_fallback),
        cmocka_unit_test(test_breaker_opens),
        cmocka_unit_test(test_hang_deadline),
        cmocka_unit_test(test_per_call_timeout_then_unavailable),
        cmocka_unit_test(test_refused_and_malformed),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_local_failure_spares_breaker),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_builtin_via_call),
        cmocka_unit_test(test_unauthorized),
        cmocka_unit_test(test_unauthorized_fallback),
        cmocka_unit_test(test_startup_probe),
        cmocka_unit_test(test_provider_host),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
