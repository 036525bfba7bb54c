/* Turn state machine. Phases alternate between the worker pool (store and
 * tools) and the loop (the LLM call); every hop goes through store_async,
 * which completes on the loop that owns the turn. Every LLM reply and tool
 * result is checkpointed and appended to the session's messages before the
 * next step runs. */
#define _GNU_SOURCE
#include "agent/runner.h"
#include "agent/tools.h"
#include "commerce/ucp.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/reqid.h"
#include "llm/llm.h"
#include "shop/shop.h"
#include "store/async.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define HISTORY_MAX 200 /* messages of a session sent to the model */
/* A running turn holds its session's claim while its last heartbeat (begin,
 * each checkpoint, each step) is younger than its deadline plus this; past
 * that its process is taken to be dead and the next claim fails it. */
#define TURN_LEASE_GRACE_MS 30000
/* A turn waiting for its session polls the claim with this backoff. */
#define WAIT_FIRST_MS 50
#define WAIT_MAX_MS 100

static const char *const busy_names[] = { "enqueue", "reject", "interrupt" };

int agent_busy_policy_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, busy_names[i]) == 0)
            return i;
    return -1;
}

const char *agent_busy_policy_name(int policy)
{
    return policy >= 0 && policy < 3 ? busy_names[policy] : "enqueue";
}

const char AGENT_DEFAULT_PROMPT[] =
    "You are the shop's business agent. Help the buyer find products, build a checkout, set "
    "their details and shipping, and pay. Use the tools: search the catalog before adding "
    "products, add by product id, and never invent prices or ids. Payment credentials come from "
    "the buyer's client, never from the conversation: call complete_checkout when the buyer asks "
    "to pay. Keep answers short and concrete.";

struct turn {
    struct agent *ag;
    struct loop *loop;
    char *owner;
    char *session_id;
    char *turn_id;
    char *text;
    json_t *data;
    char request_id[REQID_MAX + 1];
    turn_done_fn done;
    void *ud;
    int req_policy;          /* from the request, -1 = none */
    int policy;              /* resolved in op_begin */
    json_t *ctx;             /* the session's context, loaded in op_begin */
    int session_ready;       /* session loaded or created */
    int claimed;             /* the store's turn row is ours (running) */
    int busy;                /* op_begin found the session busy: wait and retry */
    int interrupted;         /* a newer message asked this turn to stop */
    struct event *wait_ev;   /* the poll timer while waiting for the session */
    int wait_pending;
    int64_t wait_ms;

    json_t *messages;        /* system + history, OpenAI shape */
    struct tools_ctx tctx;   /* checkout id lives here */
    int step;
    int64_t started_ns;
    int64_t deadline_ms;
    struct llm_call *call;
    struct llm_reply *reply; /* the step's reply, between loop and worker */
    json_t *checkout;        /* for the final result */
    char *answer;
    int status;
    int http_status;
    int retry_after_s;
    char code[48];
    char message[512];
    struct turn *prev, *next; /* the agent's live turns */
};

/* ---- metrics ---- */

static struct metric *m_turns;
static struct metric_child *m_duration, *m_inflight;

/* Registered by agent_metrics_init() at start, before any loop runs. */
void agent_metrics_init(void)
{
    static const char *const outcome[] = { "outcome", NULL };
    m_turns = metric_register("agentd_turns_total", "Agent turns by outcome", METRIC_COUNTER,
                              outcome, NULL);
    m_duration = metric_only(metric_register("agentd_turn_duration_seconds", "Agent turn duration",
                                             METRIC_HISTOGRAM, NULL, METRICS_BUCKETS_LATENCY));
    m_inflight = metric_only(metric_register("agentd_turns_in_flight", "Agent turns running",
                                             METRIC_GAUGE, NULL, NULL));
}

static void turn_free(struct turn *t)
{
    pthread_mutex_lock(&t->ag->mu);
    if (t->prev)
        t->prev->next = t->next;
    else if (t->ag->live == t)
        t->ag->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&t->ag->mu);
    if (t->call)
        llm_call_cancel(t->call);
    llm_reply_free(t->reply);
    if (t->wait_ev)
        event_free(t->wait_ev);
    json_decref(t->ctx);
    json_decref(t->messages);
    json_decref(t->data);
    json_decref(t->checkout);
    free(t->tctx.checkout_id);
    free(t->owner);
    free(t->session_id);
    free(t->turn_id);
    free(t->text);
    free(t->answer);
    free(t);
}

static void fail(struct turn *t, int status, int http, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void fail(struct turn *t, int status, int http, const char *code, const char *fmt, ...)
{
    t->status = status;
    t->http_status = http;
    snprintf(t->code, sizeof t->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->message, sizeof t->message, fmt, ap);
    va_end(ap);
}

/* ---- the end: persist the outcome, then answer ---- */

static int op_finish(struct store *st, void *arg)
{
    struct turn *t = arg;
    if (t->claimed)
        store_turn_finish(st, t->turn_id, t->interrupted ? "interrupted"
                                          : t->status == 0 ? "completed" : "failed");
    if (t->claimed && t->tctx.checkout_id) {
        /* the context keeps what else it holds (busy_policy) */
        json_t *ctx = json_is_object(t->ctx) ? json_incref(t->ctx) : json_object();
        json_object_set_new(ctx, "checkout_id", json_string(t->tctx.checkout_id));
        char *text = json_dumps(ctx, JSON_COMPACT);
        if (text)
            store_session_update(st, t->session_id, text);
        free(text);
        json_decref(ctx);
    }
    if (t->status == 0 && t->tctx.checkout_id) {
        struct checkout *co = NULL;
        struct checkout_err e = { 0 };
        if (shop_checkout_get(t->ag->shop, t->owner, t->tctx.checkout_id, &co, &e) == 0) {
            struct ucp_negotiated all;
            ucp_negotiated_all(&all);
            t->checkout = checkout_to_json(co, &all);
            checkout_free(co);
        }
    }
    return 0;
}

static void finish_done(int status, void *arg)
{
    (void)status;
    struct turn *t = arg;
    const char *outcome = t->status == 0 ? "completed" : t->code;
    const char *labels[] = { outcome };
    metric_inc(metric_child(m_turns, labels));
    metric_observe(m_duration, (double)(clock_mono_ns() - t->started_ns) / 1e9);
    metric_add(m_inflight, -1);
    struct turn_result res = {
        .status = t->status,
        .http_status = t->http_status,
        .code = t->code,
        .message = t->status == 0 ? (t->answer ? t->answer : "") : t->message,
        .session_id = t->session_id,
        .checkout = t->checkout,
        .retry_after_s = t->retry_after_s,
    };
    t->done(&res, t->ud);
    turn_free(t);
}

static void finish(struct turn *t)
{
    if (store_async(t->ag->st, t->loop, op_finish, t, finish_done) != 0)
        finish_done(0, t);
}

/* ---- after an LLM reply: checkpoint it, run its tools (worker) ---- */

static int append(struct store *st, struct turn *t, const json_t *msg, const char *kind)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text)
        return AGENTD_ENOMEM;
    int rc = 0;
    if (kind) { /* the user's message is durable as a message row alone */
        struct store_checkpoint cp = { .turn_id = t->turn_id,
                                       .step = (int64_t)json_array_size(t->messages),
                                       .kind = (char *)kind, .payload = text };
        rc = store_checkpoint_put(st, &cp);
        if (rc == AGENTD_EEXIST)
            rc = 0; /* a replayed step: the checkpoint is already there */
    }
    struct store_message m = { .session_id = t->session_id,
                               .role = (char *)json_string_value(json_object_get(msg, "role")),
                               .parts = text };
    if (rc == 0)
        rc = store_message_append(st, &m);
    free(text);
    if (rc == 0)
        json_array_append(t->messages, (json_t *)msg);
    return rc;
}

static int op_step(struct store *st, void *arg)
{
    struct turn *t = arg;
    struct llm_reply *r = t->reply;
    /* The step boundary: heartbeat the claim and see whether a newer
     * message asked this turn to stop. An interrupted turn drops this reply
     * unsaved, so the history never holds a tool call without its result. */
    int intr = 0;
    int rc = store_turn_touch(st, t->turn_id, &intr);
    if (rc == AGENTD_ECONFLICT || (rc == 0 && intr)) {
        t->interrupted = 1;
        fail(t, AGENTD_ECONFLICT, 409, "turn_interrupted",
             rc ? "the turn lost its claim on the session" :
                  "a newer message on this session interrupted this turn");
        return AGENTD_ECONFLICT;
    }
    if (rc)
        return rc;
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content", r->content ? json_string(r->content) : json_null());
    if (r->tool_calls && json_array_size(r->tool_calls))
        json_object_set(msg, "tool_calls", r->tool_calls);
    rc = append(st, t, msg, "llm_reply");
    json_decref(msg);
    if (rc)
        return rc;
    size_t i;
    json_t *call;
    json_array_foreach(r->tool_calls, i, call) {
        const json_t *fn = json_object_get(call, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *result = tools_run(&t->tctx, name, args);
        char *content = result ? json_dumps(result, JSON_COMPACT) : NULL;
        json_decref(result);
        json_t *tmsg = json_pack("{s:s,s:s,s:s}", "role", "tool", "tool_call_id",
                                 json_string_value(json_object_get(call, "id")) ?: "", "content",
                                 content ? content : "{\"error\":{\"code\":\"out_of_memory\"}}");
        free(content);
        rc = append(st, t, tmsg, "tool_result");
        json_decref(tmsg);
        if (rc)
            return rc;
    }
    return 0;
}

static void llm_step(struct turn *t);

static void step_done(int status, void *arg)
{
    struct turn *t = arg;
    int had_tools = t->reply->tool_calls && json_array_size(t->reply->tool_calls) > 0;
    if (status != 0) {
        if (!t->interrupted)
            fail(t, status, agentd_err_http(status), agentd_err_code(status),
                 "the turn could not be saved: %s", agentd_err_msg(status));
        finish(t);
        return;
    }
    if (!had_tools) {
        t->answer = t->reply->content ? strdup(t->reply->content) : strdup("");
        llm_reply_free(t->reply);
        t->reply = NULL;
        finish(t);
        return;
    }
    llm_reply_free(t->reply);
    t->reply = NULL;
    if (++t->step >= t->ag->max_steps) {
        fail(t, AGENTD_ERATELIMIT, 422, "step_budget_exhausted",
             "the turn was stopped after %d model steps (AGENTD_MAX_STEPS): a runaway tool loop",
             t->ag->max_steps);
        finish(t);
        return;
    }
    llm_step(t);
}

/* ---- the LLM step (loop) ---- */

static void on_reply(int status, struct llm_reply *reply, const char *error, int retry_after_s,
                     void *ud)
{
    struct turn *t = ud;
    t->retry_after_s = retry_after_s;
    t->call = NULL;
    if (status != 0) {
        llm_reply_free(reply);
        if (status == AGENTD_ETIMEOUT)
            fail(t, status, 504, "turn_timeout", "the model did not answer within the turn deadline");
        else
            fail(t, status, status == AGENTD_EINVAL ? 502 : 503,
                 status == AGENTD_EINVAL ? "model_refused" : "model_unavailable", "%s",
                 error ? error : "the model is unavailable");
        finish(t);
        return;
    }
    t->reply = reply;
    if (store_async(t->ag->st, t->loop, op_step, t, step_done) != 0) {
        fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        finish(t);
    }
}

static void llm_step(struct turn *t)
{
    if (t->ag->stopping) {
        fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "the server is shutting down; retry");
        finish(t);
        return;
    }
    if (clock_mono_ms() >= t->deadline_ms) {
        fail(t, AGENTD_ETIMEOUT, 504, "turn_timeout", "the turn ran out of time");
        finish(t);
        return;
    }
    struct llm_request req = {
        .messages = t->messages,
        .tools = t->ag->tools,
        .deadline_ms = t->deadline_ms,
        .request_id = t->request_id,
    };
    int rc = llm_call(t->ag->llm, t->loop, &req, NULL, on_reply, t, &t->call);
    if (rc != 0) {
        fail(t, rc, 503, "model_unavailable", "the model call could not start: %s", agentd_err_msg(rc));
        finish(t);
    }
}

/* ---- the start: session, turn row, user message, history (worker) ---- */

static void new_id(const char *prefix, char **out)
{
    unsigned char raw[12];
    random_bytes(raw, sizeof raw);
    char hex[25];
    for (int i = 0; i < 12; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    if (asprintf(out, "%s%s", prefix, hex) < 0)
        *out = NULL;
}

/* The session: loaded (its owner checked, its context kept) or created. */
static int begin_session(struct store *st, struct turn *t)
{
    int rc;
    if (t->session_id) {
        struct store_session *s = NULL;
        rc = store_session_get(st, t->session_id, &s);
        if (rc == 0 && strcmp(s->owner, t->owner) != 0)
            rc = AGENTD_ENOTFOUND; /* another principal's session does not exist for you */
        if (rc == 0) {
            json_error_t je;
            t->ctx = json_loads(s->context, 0, &je);
            const char *co = json_string_value(json_object_get(t->ctx, "checkout_id"));
            if (co)
                t->tctx.checkout_id = strdup(co);
        }
        store_session_free(s);
        if (rc == AGENTD_ENOTFOUND) {
            fail(t, rc, 404, "session_not_found", "no such session (it may have expired)");
            return rc;
        }
    } else {
        new_id("ses_", &t->session_id);
        t->ctx = t->req_policy >= 0
                     ? json_pack("{s:s}", "busy_policy", agent_busy_policy_name(t->req_policy))
                     : json_object();
        char *text = t->ctx ? json_dumps(t->ctx, JSON_COMPACT) : NULL;
        struct store_session s = { .id = t->session_id, .owner = t->owner, .context = text };
        rc = t->session_id && text ? store_session_create(st, &s) : AGENTD_ENOMEM;
        free(text);
    }
    if (rc == 0) {
        int p = agent_busy_policy_parse(
            json_string_value(json_object_get(t->ctx, "busy_policy")));
        t->policy = t->req_policy >= 0 ? t->req_policy : p >= 0 ? p : t->ag->busy_policy;
        t->session_ready = 1;
    }
    return rc;
}

static int op_begin(struct store *st, void *arg)
{
    struct turn *t = arg;
    int rc = 0;
    t->busy = 0;
    if (!t->session_ready)
        rc = begin_session(st, t);
    if (rc == 0 && !t->turn_id) {
        new_id("turn_", &t->turn_id);
        if (!t->turn_id)
            rc = AGENTD_ENOMEM;
    }
    if (rc == 0) {
        struct store_turn tr = { .id = t->turn_id, .session_id = t->session_id };
        rc = store_turn_begin(st, &tr, t->ag->turn_timeout_ms + TURN_LEASE_GRACE_MS);
        if (rc == AGENTD_ECONFLICT) { /* another turn runs on this session */
            if (t->policy == AGENT_BUSY_REJECT) {
                fail(t, rc, 409, "turn_in_progress",
                     "another turn is running on this session; retry when it has answered");
                return rc;
            }
            if (t->policy == AGENT_BUSY_INTERRUPT)
                store_turn_interrupt(st, t->session_id); /* may have just finished */
            t->busy = 1;
            return 0;
        }
        t->claimed = rc == 0;
    }
    if (rc == 0) {
        /* history first, then this message */
        struct store_message *v = NULL;
        size_t n = 0;
        rc = store_message_list(st, t->session_id, 0, 0, &v, &n);
        size_t from = n > HISTORY_MAX ? n - HISTORY_MAX : 0;
        /* never start the window on a tool result: its call would be missing */
        while (from < n && strcmp(v[from].role, "tool") == 0)
            from++;
        for (size_t i = from; rc == 0 && i < n; i++) {
            json_error_t je;
            json_t *m = json_loads(v[i].parts, 0, &je);
            if (m)
                json_array_append_new(t->messages, m);
        }
        store_message_list_free(v, n);
    }
    if (rc == 0) {
        json_t *user = json_pack("{s:s,s:s}", "role", "user", "content", t->text);
        rc = append(st, t, user, NULL);
        json_decref(user);
    }
    if (rc != 0 && !t->code[0])
        fail(t, rc, agentd_err_http(rc), agentd_err_code(rc), "%s", agentd_err_msg(rc));
    return rc;
}

static void begin_done(int status, void *arg);

/* The poll timer of a turn waiting for its session (loop). */
static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct turn *t = arg;
    t->wait_pending = 0;
    if (t->ag->stopping) {
        fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "the server is shutting down; retry");
        finish(t);
        return;
    }
    if (store_async(t->ag->st, t->loop, op_begin, t, begin_done) != 0) {
        fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        finish(t);
    }
}

/* Waits for the session without blocking the loop: a timer, then the
 * claim again, with backoff, within this turn's own deadline. */
static void wait_for_session(struct turn *t)
{
    int64_t left = t->deadline_ms - clock_mono_ms();
    if (left <= 0) {
        fail(t, AGENTD_ETIMEOUT, 504, "turn_timeout",
             "another turn kept this session busy past this turn's deadline");
        finish(t);
        return;
    }
    if (!t->wait_ev)
        t->wait_ev = evtimer_new(loop_base(t->loop), on_wait, t);
    if (!t->wait_ev) {
        fail(t, AGENTD_ENOMEM, 503, "busy", "the server is busy");
        finish(t);
        return;
    }
    t->wait_ms = t->wait_ms ? t->wait_ms * 3 / 2 : WAIT_FIRST_MS;
    if (t->wait_ms > WAIT_MAX_MS)
        t->wait_ms = WAIT_MAX_MS;
    int64_t ms = t->wait_ms < left ? t->wait_ms : left;
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    t->wait_pending = 1;
    evtimer_add(t->wait_ev, &tv);
}

static void begin_done(int status, void *arg)
{
    struct turn *t = arg;
    if (status != 0) {
        finish(t);
        return;
    }
    if (t->busy) {
        wait_for_session(t);
        return;
    }
    llm_step(t);
}

int agent_turn_start(struct agent *ag, struct loop *loop, const char *owner, const char *session_id,
                     const char *text, const json_t *data, int busy_policy,
                     const char *request_id, turn_done_fn done, void *ud)
{
    struct turn *t = calloc(1, sizeof *t);
    if (!t)
        return AGENTD_ENOMEM;
    t->ag = ag;
    t->loop = loop;
    t->done = done;
    t->ud = ud;
    t->req_policy = busy_policy >= 0 && busy_policy <= AGENT_BUSY_INTERRUPT ? busy_policy : -1;
    t->owner = strdup(owner);
    t->session_id = session_id ? strdup(session_id) : NULL;
    t->text = strdup(text);
    t->data = data ? json_deep_copy(data) : NULL;
    t->messages = json_pack("[{s:s,s:s}]", "role", "system", "content", ag->system_prompt);
    snprintf(t->request_id, sizeof t->request_id, "%s", request_id ? request_id : "");
    t->tctx = (struct tools_ctx){ .shop = ag->shop, .merchant = ag->merchant, .owner = t->owner,
                                  .client_data = t->data };
    t->started_ns = clock_mono_ns();
    t->deadline_ms = clock_mono_ms() + ag->turn_timeout_ms;
    if (!t->owner || !t->text || !t->messages || (session_id && !t->session_id)) {
        turn_free(t);
        return AGENTD_ENOMEM;
    }
    pthread_mutex_lock(&ag->mu);
    t->next = ag->live;
    if (ag->live)
        ag->live->prev = t;
    ag->live = t;
    pthread_mutex_unlock(&ag->mu);
    int rc = store_async(ag->st, loop, op_begin, t, begin_done);
    if (rc != 0) {
        turn_free(t);
        return rc;
    }
    metric_add(m_inflight, 1);
    return 0;
}

void agent_init(struct agent *ag)
{
    pthread_mutex_init(&ag->mu, NULL);
    ag->live = NULL;
    ag->stopping = 0;
}

void agent_stop(struct agent *ag)
{
    /* The loops have stopped, so only this thread walks the list now. The
     * lock is not held across finish(): if it completes inline it frees the
     * turn, which takes the lock. */
    pthread_mutex_lock(&ag->mu);
    ag->stopping = 1;
    pthread_mutex_unlock(&ag->mu);
    for (;;) {
        struct turn *t;
        pthread_mutex_lock(&ag->mu);
        for (t = ag->live; t && !t->call && !t->wait_pending; t = t->next)
            ;
        if (t && t->call) {
            llm_call_cancel(t->call);
            t->call = NULL;
        } else if (t) {
            evtimer_del(t->wait_ev);
            t->wait_pending = 0;
        }
        pthread_mutex_unlock(&ag->mu);
        if (!t)
            break;
        fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "the server stopped during the turn; retry");
        finish(t);
    }
}

void agent_abort_waiting_here(struct agent *ag)
{
    struct loop *here = loop_current();
    for (;;) {
        struct turn *t;
        pthread_mutex_lock(&ag->mu);
        for (t = ag->live; t && !((t->call || t->wait_pending) && t->loop == here);
             t = t->next)
            ;
        if (t && t->call) {
            llm_call_cancel(t->call);
            t->call = NULL;
        } else if (t) {
            evtimer_del(t->wait_ev);
            t->wait_pending = 0;
        }
        pthread_mutex_unlock(&ag->mu);
        if (!t)
            break;
        fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "the server is shutting down; retry");
        finish(t);
    }
}

void agent_destroy(struct agent *ag) { pthread_mutex_destroy(&ag->mu); }

int agent_fail_unfinished(struct store *st)
{
    struct store_turn *v = NULL;
    size_t n = 0;
    if (store_turn_list_unfinished(st, 0, &v, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        store_turn_finish(st, v[i].id, "failed");
        log_msg(LOG_WARN, NULL, "turn %s of session %s was interrupted by a restart: marked failed",
                v[i].id, v[i].session_id);
    }
    store_turn_list_free(v, n);
    return (int)n;
}
