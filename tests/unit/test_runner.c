/* The runner's step logic without sockets: a scripted local model (the LLM
 * client's llm_local_model seam) and a temp-file SQLite store drive whole
 * turns: a direct answer, a tool step then an answer, the step budget
 * stopping a loop of tool calls, and a failed checkout call as the outcome. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/runner.h"
#include "agent/tools.h"
#include "core/err.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "llm/llm.h"
#include "llm/llm_config.h"
#include "shop/merchant.h"
#include "shop/shop.h"
#include "store/store.h"

/* ---- the scripted model ---- */

#define MAX_SCRIPT 8

/* One reply: a tool call (tool != NULL, args its JSON text) or a text. A
 * script repeats its last entry once it runs out (a model stuck in a loop). */
struct line {
    const char *tool;
    const char *args;
    const char *text;
};

struct model {
    struct line script[MAX_SCRIPT];
    int n;
    int calls;                 /* plan() calls so far */
    int tool_results;          /* "tool" messages in the conversation of the last call */
    char last_tool_call_id[64]; /* tool_call_id of the last "tool" message seen */
};

static int scripted_plan(const json_t *messages, struct llm_reply *out, void *ud)
{
    struct model *m = ud;
    memset(out, 0, sizeof *out);
    const struct line *l = &m->script[m->calls < m->n ? m->calls : m->n - 1];
    m->calls++;
    m->tool_results = 0;
    size_t i;
    const json_t *msg;
    json_array_foreach(messages, i, msg) {
        const char *role = json_string_value(json_object_get(msg, "role"));
        if (role && strcmp(role, "tool") == 0) {
            m->tool_results++;
            snprintf(m->last_tool_call_id, sizeof m->last_tool_call_id, "%s",
                     json_string_value(json_object_get(msg, "tool_call_id")));
        }
    }
    if (l->tool) {
        char id[32];
        snprintf(id, sizeof id, "call_%d", m->calls);
        out->tool_calls = json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id", id, "type", "function",
                                    "function", "name", l->tool, "arguments", l->args);
        out->finish_reason = strdup("tool_calls");
    } else {
        out->content = strdup(l->text);
        out->finish_reason = strdup("stop");
    }
    out->usage.prompt_tokens = 10;
    out->usage.completion_tokens = 5;
    return (out->tool_calls || out->content) && out->finish_reason ? 0 : AGENTD_ENOMEM;
}

/* ---- the world: store, shop, pool, one loop, the agent ---- */

struct world {
    char dir[64];
    struct store *st;
    struct merchant *m;
    struct shop *sh;
    struct pool *pool;
    struct loop *loop;
    pthread_t thread;
    struct model model;
    struct llm *llm;
    struct agent ag;
};

/* What done() reported (copied: the result is borrowed). */
struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int status, http_status;
    char code[64], message[256], outcome[64];
    int has_turn_id;
    size_t products;
};

static void *run_loop(void *arg)
{
    loop_run(arg);
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void world_start(struct world *w, const struct line *script, int n, int max_steps)
{
    memset(w, 0, sizeof *w);
    snprintf(w->dir, sizeof w->dir, "/tmp/agentd-test-runner-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    char url[256];
    struct agentd_error err = { 0 };
    snprintf(url, sizeof url, "%s/agentd.db", w->dir);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    assert_int_equal(store_open(&o, &w->st, NULL), 0);
    w->m = merchant_new(w->st, NULL); /* the demo catalog */
    assert_non_null(w->m);
    assert_int_equal(merchant_load(w->m, &err), 0);
    w->sh = shop_new(w->st, w->m, "http://127.0.0.1:8080");
    assert_non_null(w->sh);
    w->pool = pool_new(2, 1000);
    assert_non_null(w->pool);
    pool_set_default(w->pool);

    memcpy(w->model.script, script, (size_t)n * sizeof *script);
    w->model.n = n;
    struct llm_config cfg = { .builtin = 1 };
    struct llm_local_model local = { "scripted", scripted_plan, &w->model };
    w->llm = llm_new(&cfg, &local, NULL);
    assert_non_null(w->llm);

    w->ag = (struct agent){ .llm = w->llm, .shop = w->sh, .merchant = w->m, .st = w->st,
                            .tools = tools_definitions(), .system_prompt = "test",
                            .max_steps = max_steps, .turn_timeout_ms = 20000 };
    agent_init(&w->ag);
    w->loop = loop_new(0);
    assert_non_null(w->loop);
    assert_int_equal(pthread_create(&w->thread, NULL, run_loop, w->loop), 0);
}

static void world_stop(struct world *w)
{
    loop_stop(w->loop);
    pthread_join(w->thread, NULL);
    agent_stop(&w->ag);
    llm_free(w->llm); /* after the loop's thread, before its base goes */
    loop_free(w->loop);
    pool_set_default(NULL);
    pool_free(w->pool);
    agent_destroy(&w->ag);
    json_decref(w->ag.tools);
    shop_free(w->sh);
    merchant_free(w->m);
    store_close(w->st);
    nftw(w->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_done(const struct turn_result *res, void *ud)
{
    struct outcome *o = ud;
    pthread_mutex_lock(&o->mu);
    o->status = res->status;
    o->http_status = res->http_status;
    snprintf(o->code, sizeof o->code, "%s", res->code ? res->code : "");
    snprintf(o->message, sizeof o->message, "%s", res->message ? res->message : "");
    snprintf(o->outcome, sizeof o->outcome, "%s", res->outcome ? res->outcome : "");
    o->has_turn_id = res->turn_id != NULL;
    o->products = json_array_size(res->products);
    o->done = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

struct start {
    struct world *w;
    const char *text;
    struct outcome *o;
};

/* On the loop's thread, as a front starts a turn. */
static void start_on_loop(void *arg)
{
    struct start *s = arg;
    struct turn_start ts = { .owner = "tester", .text = s->text, .busy_policy = -1,
                             .request_id = "req-turn" };
    int rc = agent_turn_start(&s->w->ag, s->w->loop, &ts, on_done, s->o);
    if (rc != 0) { /* done() will not run: report the refusal itself */
        struct turn_result res = { .status = rc };
        on_done(&res, s->o);
    }
}

/* Runs one turn of `text` in a new session and waits for its end. */
static void turn(struct world *w, const char *text, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    struct start s = { w, text, o };
    assert_int_equal(loop_post(w->loop, start_on_loop, &s), 0);
    pthread_mutex_lock(&o->mu);
    while (!o->done)
        pthread_cond_wait(&o->cv, &o->mu);
    pthread_mutex_unlock(&o->mu);
    pthread_cond_destroy(&o->cv);
    pthread_mutex_destroy(&o->mu);
}

/* ---- the turns ---- */

static void test_direct_answer(void **state)
{
    (void)state;
    static const struct line script[] = { { NULL, NULL, "Hello! What can I find for you?" } };
    struct world w;
    world_start(&w, script, 1, 8);
    struct outcome o;
    turn(&w, "hi", &o);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.message, "Hello! What can I find for you?");
    assert_string_equal(o.outcome, "completed");
    assert_true(o.has_turn_id);
    assert_int_equal(w.model.calls, 1);
    assert_int_equal(w.model.tool_results, 0);
    /* the turn's start and end are audited under its request id */
    struct store_audit *v = NULL;
    size_t n = 0;
    assert_int_equal(store_audit_list(w.st, &(struct store_audit_query){ 0 }, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].action, "turn.start");
    assert_string_equal(v[1].action, "turn.end");
    assert_string_equal(v[1].outcome, "completed");
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(v[i].principal, "tester");
        assert_string_equal(v[i].request_id, "req-turn");
        assert_int_equal(strncmp(v[i].target, "turn_", 5), 0);
    }
    store_audit_list_free(v, n);
    world_stop(&w);
}

static void test_tool_step_then_answer(void **state)
{
    (void)state;
    static const struct line script[] = {
        { "search_shopping_catalog", "{\"query\":\"cookies\"}", NULL },
        { NULL, NULL, "Here are our cookies." },
    };
    struct world w;
    world_start(&w, script, 2, 8);
    struct outcome o;
    turn(&w, "show me cookies", &o);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.message, "Here are our cookies.");
    assert_string_equal(o.outcome, "completed");
    /* the model's second step saw the tool's result, answering its call */
    assert_int_equal(w.model.calls, 2);
    assert_int_equal(w.model.tool_results, 1);
    assert_string_equal(w.model.last_tool_call_id, "call_1");
    /* the search's products are the turn's */
    assert_true(o.products > 0);
    world_stop(&w);
}

/* agentd_store_commits_total, from the metrics text */
static double commits(void)
{
    struct buf b = { 0 };
    metrics_render(&b);
    assert_non_null(b.data);
    const char *p = strstr(b.data, "\nagentd_store_commits_total ");
    assert_non_null(p);
    double v = strtod(p + strlen("\nagentd_store_commits_total "), NULL);
    buf_free(&b);
    return v;
}

/* A tool step whose tools never touch the store (a catalog search) commits
 * once: the model's reply and the tool's result together. */
static void test_store_free_tool_step_commits_once(void **state)
{
    (void)state;
    static const struct line script[] = {
        { "search_shopping_catalog", "{\"query\":\"cookies\"}", NULL },
        { NULL, NULL, "Here are our cookies." },
    };
    static const struct line direct[] = { { NULL, NULL, "Hello." } };
    struct world w;
    struct outcome o;
    world_start(&w, direct, 1, 8);
    double c0 = commits();
    turn(&w, "hi", &o);
    assert_int_equal(o.status, 0);
    double per_direct = commits() - c0;
    world_stop(&w);
    assert_true(per_direct >= 1);

    world_start(&w, script, 2, 8);
    c0 = commits();
    turn(&w, "show me cookies", &o);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.message, "Here are our cookies.");
    assert_int_equal(w.model.tool_results, 1);
    assert_true(o.products > 0);
    assert_int_equal((int)(commits() - c0), (int)per_direct + 1);
    world_stop(&w);
}

static void test_step_budget_stops_a_tool_loop(void **state)
{
    (void)state;
    /* a model that never stops calling tools */
    static const struct line script[] = { { "get_checkout", "{}", NULL } };
    struct world w;
    world_start(&w, script, 1, 3);
    struct outcome o;
    turn(&w, "what is in my cart?", &o);
    assert_int_equal(o.status, AGENTD_ERATELIMIT);
    assert_int_equal(o.http_status, 422);
    assert_string_equal(o.code, "step_budget_exhausted");
    assert_non_null(strstr(o.message, "after 3 model steps"));
    assert_string_equal(o.outcome, "step_budget_exhausted");
    assert_int_equal(w.model.calls, 3);
    world_stop(&w);
}

static void test_tool_error_is_the_outcome(void **state)
{
    (void)state;
    static const struct line script[] = {
        { "add_to_checkout", "{\"product_id\":\"NOPE-404\",\"quantity\":1}", NULL },
        { NULL, NULL, "Sorry, I could not add that." },
    };
    struct world w;
    world_start(&w, script, 2, 8);
    struct outcome o;
    turn(&w, "add NOPE-404", &o);
    /* the turn answered, but its checkout call failed and nothing fixed it */
    assert_int_equal(o.status, 0);
    assert_string_equal(o.message, "Sorry, I could not add that.");
    assert_string_equal(o.outcome, "tool_error");
    assert_int_equal(w.model.tool_results, 1);
    world_stop(&w);
}

int main(void)
{
    loop_global_init();
    agent_metrics_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_answer),
        cmocka_unit_test(test_tool_step_then_answer),
        cmocka_unit_test(test_store_free_tool_step_commits_once),
        cmocka_unit_test(test_step_budget_stops_a_tool_loop),
        cmocka_unit_test(test_tool_error_is_the_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
