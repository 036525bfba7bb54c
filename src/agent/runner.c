/* Turn state machine. Phases alternate between the worker pool (store and
 * tools) and the loop (the LLM call); every hop goes through store_async,
 * which completes on the loop that owns the turn. Every step — the user's
 * message, each LLM reply, each tool result — is one store transaction:
 * checkpoint + session message + the step's events, written before the
 * next step runs. Tool calls run with "<turn>/<reply step>/<index>/<call id>"
 * as their operation key, so a turn replayed after a crash (recover.c)
 * never applies an effect twice. */
#define _GNU_SOURCE
#include "agent/runner.h"
#include "agent/turn_metrics.h"
#include "agent/budget.h"
#include "agent/events.h"
#include "agent/outcome.h"
#include "agent/tools.h"
#include "agent/turn.h"
#include "commerce/ucp.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/failpoint.h"
#include "core/jsondump.h"
#include "core/log.h"
#include "core/loop.h"
#include "llm/llm.h"
#include "shop/shop.h"
#include "store/async.h"
#include "store/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

static const char *result_error_code(const json_t *result)
{
    if (!result)
        return "out_of_memory";
    const json_t *err = json_object_get(result, "error");
    if (!err)
        return NULL;
    const char *code = json_string_value(json_object_get(err, "code"));
    return code && *code ? code : "error";
}

/* ---- a turn's life ---- */

static void after_flush(struct turn *t);

struct turn *turn_alloc(struct agent *ag, struct loop *loop)
{
    struct turn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ag = ag;
    t->loop = loop;
    t->req_policy = -1;
    t->flushed = after_flush;
    t->conv_text = !llm_is_builtin(ag->llm);
    if (t->conv_text) {
        /* the system message's text is made once, in agent_init */
        buf_puts(&t->conv, "[");
        buf_puts(&t->conv, ag->system_msg_json ? ag->system_msg_json : "");
        if (!ag->system_msg_json || t->conv.oom) {
            buf_free(&t->conv);
            free(t);
            return NULL;
        }
    } else {
        t->messages = json_pack("[{s:s,s:s}]", "role", "system", "content",
                                ag->system_prompt ? ag->system_prompt : "");
        if (!t->messages) {
            free(t);
            return NULL;
        }
    }
    t->started_ns = clock_mono_ns();
    t->deadline_ms = clock_mono_ms() + ag->turn_timeout_ms;
    turn_trace_begin(t);
    return t;
}

void turn_link(struct turn *t)
{
    struct agent *ag = t->ag;
    pthread_mutex_lock(&ag->mu);
    t->next = ag->live;
    if (ag->live)
        ag->live->prev = t;
    ag->live = t;
    pthread_mutex_unlock(&ag->mu);
    turn_metrics_inflight(1);
}

void turn_free(struct turn *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->ag->mu);
    if (t->prev)
        t->prev->next = t->next;
    else if (t->ag->live == t)
        t->ag->live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&t->ag->mu);
    free(t->span); /* ended in finish_done; a turn that never ran has none to report */
    if (t->call)
        llm_call_cancel(t->call);
    if (t->guard_call)
        t->ag->guard.cancel(t->guard_call);
    llm_reply_free(t->reply);
    if (t->wait_ev)
        event_free(t->wait_ev);
    if (t->flush_ev)
        event_free(t->flush_ev);
    json_decref(t->ctx);
    json_decref(t->messages);
    buf_free(&t->conv);
    json_decref(t->data);
    json_decref(t->checkout);
    free(t->action_tool);
    json_decref(t->action_args);
    json_decref(t->action_result);
    json_decref(t->products);
    free(t->tctx.checkout_id);
    free(t->owner);
    free(t->session_id);
    free(t->turn_id);
    free(t->text);
    free(t->idem_key);
    free(t->answer);
    free(t->delta);
    free(t->flush_text);
    free(t);
}

void turn_fail(struct turn *t, int status, int http, const char *code, const char *fmt, ...)
{
    t->status = status;
    t->http_status = http;
    snprintf(t->code, sizeof t->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->message, sizeof t->message, fmt, ap);
    va_end(ap);
}
#define fail turn_fail

/* ---- events ---- */


/* An event whose data text is made already (owned: freed on failure). */
static void evs_add_text(struct evs *e, const struct turn *t, const char *type, char *text)
{
    if (!text)
        return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 4;
        struct store_event *v = realloc(e->v, cap * sizeof *v);
        if (!v) {
            free(text);
            return;
        }
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = (struct store_event){ .session_id = t->session_id, .turn_id = t->turn_id,
                                         .type = (char *)type, .data = text };
}

void turn_evs_add(struct evs *e, const struct turn *t, const char *type, json_t *data)
{
    if (!data)
        return;
    char *text = jsondump(data, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION), NULL);
    json_decref(data);
    evs_add_text(e, t, type, text);
}

void turn_evs_clear(struct evs *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i].data);
    free(e->v);
    *e = (struct evs){ 0 };
}

void turn_publish(struct turn *t)
{
    if (t->batched) { /* not committed yet: after the batch */
        t->publish_due = 1;
        return;
    }
    if (t->ag->events)
        events_publish(t->ag->events, t->session_id);
}

/* Tools that change the checkout: their results are checkout-updated events. */
void turn_note_tool(struct turn *t, const char *name, const json_t *result)
{
    if (tools_mutates_checkout(name))
        outcome_note_checkout(t->tool_fail, sizeof t->tool_fail, result_error_code(result));
    /* The session's checkout may hold an order an earlier turn placed: only
     * a successful complete_checkout of this turn says this turn placed it. */
    if (name && strcmp(name, "complete_checkout") == 0 && !result_error_code(result) &&
        json_is_object(json_object_get(result, "order")))
        t->order_placed = 1;
    json_t *products = json_object_get(result, "products");
    if (name && strcmp(name, "search_shopping_catalog") == 0 && json_is_array(products)) {
        json_decref(t->products);
        t->products = json_incref(products);
    }
    if (t->action_tool && name && result && strcmp(name, t->action_tool) == 0) {
        json_decref(t->action_result);
        t->action_result = json_incref((json_t *)result);
    }
}

/* ---- the conversation for the model ---- */

/* One more message: its stored text, or (built-in model) its JSON. text
 * may be NULL when only json is at hand, json NULL when only text is. */
int turn_conv_add(struct turn *t, const char *text, const json_t *json)
{
    if (t->conv_text) {
        char *own = NULL;
        if (!text && !(text = own = jsondump(json, JSON_COMPACT, NULL)))
            return AGENTD_ENOMEM;
        if (t->conv_closed) { /* the model call that read it is over */
            t->conv.data[--t->conv.len] = '\0';
            t->conv_closed = 0;
        }
        size_t n = strlen(text) + 1;
        if (t->conv.len + n + 1 > t->conv.cap) /* grow by an eighth, not by doubling */
            buf_reserve(&t->conv, n + t->conv.len / 8);
        buf_puts(&t->conv, ",");
        buf_puts(&t->conv, text);
        free(own);
        return t->conv.oom ? AGENTD_ENOMEM : 0;
    }
    if (json)
        return json_array_append(t->messages, (json_t *)json) ? AGENTD_ENOMEM : 0;
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    if (!m)
        return 0; /* a stored message that is not JSON is left out */
    return json_array_append_new(t->messages, m) ? AGENTD_ENOMEM : 0;
}

/* ---- steps: checkpoint + message + events, one transaction (worker) ---- */

/* A model step's usage, written with its reply (record_step). */
struct step_usage {
    const char *model;
    const struct store_usage *u;
    int interrupted; /* out: a newer message asked the turn to stop; nothing recorded */
};

/* Records a step; with su, in the same transaction as the model call's
 * usage and heartbeat (store_turn_step_record). */
static int record_text(struct store *st, struct turn *t, const char *kind, char *text,
                       const char *role, const json_t *msg, struct evs *e, struct step_usage *su);

static int record_step(struct store *st, struct turn *t, const char *kind, const json_t *msg,
                       struct evs *e, struct step_usage *su)
{
    char *text = jsondump(msg, JSON_COMPACT, NULL);
    if (!text) {
        if (su) /* the call is paid for all the same */
            store_turn_step(st, t->turn_id, t->owner, su->model, su->u, NULL);
        return AGENTD_ENOMEM;
    }
    return record_text(st, t, kind, text, json_string_value(json_object_get(msg, "role")), msg,
                       e, su);
}

/* record_step with the message's text made already (owned, freed here);
 * msg, its tree, may be NULL (the built-in model's conversation then
 * parses the text). */
static int record_text(struct store *st, struct turn *t, const char *kind, char *text,
                       const char *role, const json_t *msg, struct evs *e, struct step_usage *su)
{
    struct store_checkpoint cp = { .turn_id = t->turn_id, .step = t->cp_step, .kind = (char *)kind,
                                   .payload = text };
    struct store_message m = { .session_id = t->session_id, .role = (char *)role, .parts = text };
    int rc, intr = 0;
    if (su) {
        rc = store_turn_step_record(st, t->turn_id, t->owner, su->model, su->u, &intr, &cp, &m,
                                    e ? e->v : NULL, e ? e->n : 0);
        if (rc == AGENTD_ENOTFOUND)
            rc = AGENTD_ECONFLICT; /* its row is gone (the session was deleted) */
        if (rc == 0 && intr) {
            su->interrupted = 1;
            free(text);
            return 0;
        }
    } else {
        rc = store_turn_record(st, &cp, &m, e ? e->v : NULL, e ? e->n : 0);
    }
    if (rc == AGENTD_EEXIST)
        rc = AGENTD_ECONFLICT; /* someone else wrote this step: the turn is not ours */
    if (rc == 0)
        rc = turn_conv_add(t, text, msg);
    free(text);
    if (rc == 0) {
        t->cp_step++;
        if (e && e->n)
            turn_publish(t);
    }
    if (rc == AGENTD_ECONFLICT && !t->code[0]) {
        t->interrupted = 1;
        fail(t, rc, 409, "turn_interrupted", "the turn lost its claim on the session");
    }
    return rc;
}

int turn_record_msg(struct store *st, struct turn *t, const char *kind, const json_t *msg,
                    struct evs *e)
{
    return record_step(st, t, kind, msg, e, NULL);
}

/* The turn's audit row (ids and outcome only, never the text). Written
 * inside the turn's first and last store transactions, so it costs no
 * commit of its own; a failed write is logged, the turn goes on. */
void turn_audit(struct store *st, struct turn *t, const char *action, const char *outcome)
{
    struct store_audit a = { .principal = t->owner ? t->owner : "", .action = (char *)action,
                             .target = t->turn_id, .request_id = t->request_id,
                             .outcome = (char *)outcome };
    int rc = store_audit_append(st, &a);
    if (rc != 0)
        log_msg(LOG_WARN, t->request_id, "audit row %s of turn %s not written: %s", action,
                t->turn_id, agentd_err_msg(rc));
}

/* The input guard's verdict (screen.c), once: a flag with the turn's start,
 * a refusal (the turn never started) on its own at the end. The target is
 * the turn, or the session when there is no turn yet. */
void turn_guard_audit(struct store *st, struct turn *t)
{
    if (!t->guard_action)
        return;
    struct store_audit a = { .principal = t->owner ? t->owner : "",
                             .action = (char *)t->guard_action,
                             .target = t->turn_id ? t->turn_id
                                                  : t->session_id ? t->session_id : "",
                             .request_id = t->request_id, .outcome = t->guard_outcome };
    t->guard_action = NULL;
    int rc = store_audit_append(st, &a);
    if (rc != 0)
        log_msg(LOG_WARN, t->request_id, "audit row %s not written: %s", a.action,
                agentd_err_msg(rc));
}

/* Closes a batch begin_tx or op_finish opened for themselves: what waited
 * for its commit is published, or dropped with it. */
int turn_own_batch_end(struct store *st, struct turn *t, int rc)
{
    t->batched = 0;
    int crc = store_batch_end(st);
    if (crc == 0 && t->publish_due)
        turn_publish(t);
    t->publish_due = 0;
    return rc ? rc : crc;
}

/* The session remembers its checkout as soon as a tool made one, so a turn
 * resumed after a crash finds it. */
static int save_context(struct store *st, struct turn *t)
{
    json_t *ctx = json_is_object(t->ctx) ? json_incref(t->ctx) : json_object();
    if (t->tctx.checkout_id)
        json_object_set_new(ctx, "checkout_id", json_string(t->tctx.checkout_id));
    char *text = jsondump(ctx, JSON_COMPACT, NULL);
    json_decref(t->ctx);
    t->ctx = ctx;
    int rc = text ? store_session_update(st, t->session_id, text) : AGENTD_ENOMEM;
    free(text);
    return rc;
}

int turn_run_tools(struct store *st, struct turn *t, const json_t *calls, int64_t reply_step,
                   size_t from)
{
    for (size_t i = from; i < json_array_size(calls); i++) {
        const json_t *call = json_array_get(calls, i);
        const json_t *fn = json_object_get(call, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        const char *id = json_string_value(json_object_get(call, "id")) ?: "";
        /* the operation key that makes a replayed call a no-op: the same
         * reply step and call give the same key, however often replayed */
        char key[128], safe[41];
        size_t k = 0; /* the model's call id, reduced to plain ASCII (keys must be) */
        for (const char *p = id; *p && k < sizeof safe - 1; p++)
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.')
                safe[k++] = *p;
        safe[k] = '\0';
        snprintf(key, sizeof key, "%s/%lld/%zu/%s", t->turn_id, (long long)reply_step, i, safe);
        t->tctx.op_key = key;
        char *before = t->tctx.checkout_id ? strdup(t->tctx.checkout_id) : NULL;
        int64_t t0 = clock_mono_ns();
        /* the tool's span is current while it runs: its store calls are children */
        struct trace_span sp;
        trace_span_start(&sp, "agent.tool", TRACE_INTERNAL, t->span ? &t->span->ctx : NULL);
        struct trace_ctx prev = trace_enter(sp.ctx.valid ? &sp.ctx : trace_current());
        shop_audit_as(t->request_id, t->owner); /* the shop's audit rows name this turn's request */
        char *content = NULL, *tmsg = NULL; /* the result dumped once: its event and
                                              message are built around that text */
        json_t *result = tools_run_texts(&t->tctx, name, args, id, &content, &tmsg);
        shop_audit_as(NULL, NULL);
        trace_leave(prev);
        turn_trace_tool(&sp, name, id, result_error_code(result));
        t->tctx.op_key = NULL;
        turn_metrics_tool(t->ag, name, outcome_tool(result_error_code(result)),
                          clock_mono_ns() - t0);
        turn_note_tool(t, name, result);
        if (tools_mutates_checkout(name))
            failpoint("after_tool_effect"); /* tests: the effect is saved, its checkpoint not */
        int rc = 0;
        if (t->tctx.checkout_id && (!before || strcmp(before, t->tctx.checkout_id) != 0))
            rc = save_context(st, t);
        free(before);
        struct evs e = { 0 };
        evs_add_text(&e, t, "tool-result", tools_result_event(id, name, result, content));
        free(content);
        if (result && tools_mutates_checkout(name) && !json_object_get(result, "error"))
            turn_evs_add(&e, t, "checkout-updated", json_pack("{s:O}", "checkout", result));
        json_decref(result);
        if (rc == 0 && tmsg) {
            rc = record_text(st, t, "tool_result", tmsg, "tool", NULL, &e, NULL);
            tmsg = NULL;
        } else if (rc == 0) {
            rc = AGENTD_ENOMEM;
        }
        free(tmsg);
        turn_evs_clear(&e);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- budgets (the decisions are in budget.c) ---- */

static struct budget_limits limits(const struct agent *ag)
{
    return (struct budget_limits){ .max_steps = ag->max_steps,
                                   .turn_tokens = ag->turn_token_budget,
                                   .day_tokens = ag->daily_token_budget,
                                   .day_cost_micro = ag->daily_cost_budget_micro };
}

/* 0, or fails t when its principal spent today's tokens or money (worker). */
int turn_check_daily(struct store *st, struct turn *t)
{
    struct budget_limits b = limits(t->ag);
    if (budget_daily_unlimited(&b))
        return 0;
    int64_t now = clock_wall_ms();
    struct store_usage u = { 0 };
    int rc = store_usage_day(st, t->owner, budget_day(now), &u);
    if (rc)
        return rc;
    int64_t tokens = u.prompt_tokens + u.completion_tokens;
    switch (budget_daily(&b, tokens, u.cost_usd)) {
    case BUDGET_DAY_TOKENS:
        t->retry_after_s = budget_seconds_to_midnight(now);
        fail(t, AGENTD_ERATELIMIT, 429, "daily_budget_exhausted",
             "this principal used its daily model budget (%lld of %lld tokens, "
             "AGENTD_DAILY_TOKEN_BUDGET); it renews at 00:00 UTC",
             (long long)tokens, (long long)b.day_tokens);
        return AGENTD_ERATELIMIT;
    case BUDGET_DAY_COST:
        t->retry_after_s = budget_seconds_to_midnight(now);
        fail(t, AGENTD_ERATELIMIT, 429, "daily_budget_exhausted",
             "this principal used its daily model budget (USD %.4f of %.4f, "
             "AGENTD_DAILY_COST_BUDGET); it renews at 00:00 UTC",
             u.cost_usd, (double)b.day_cost_micro / 1e6);
        return AGENTD_ERATELIMIT;
    default:
        return 0;
    }
}

/* ---- the end: persist the outcome, then answer ---- */

/* What done() gets (and the finishing hook): borrowed from t. */
void turn_result_of(const struct turn *t, const char *outcome, struct turn_result *res)
{
    *res = (struct turn_result){
        .status = t->status,
        .http_status = t->http_status,
        .code = t->code,
        .message = t->status == 0 ? (t->answer ? t->answer : "") : t->message,
        .session_id = t->session_id,
        .turn_id = t->claimed ? t->turn_id : NULL,
        .checkout = t->checkout,
        .retry_after_s = t->retry_after_s,
        .prompt_tokens = t->prompt_tokens,
        .completion_tokens = t->completion_tokens,
        .cost_usd = t->cost_usd,
        .resumed = t->resumed,
        .products = t->products,
        .order_placed = t->order_placed,
        .outcome = outcome,
        .task_written = t->task_written,
        .refused = t->refused,
    };
}

static int op_finish(struct store *st, void *arg)
{
    struct turn *t = arg;
    if (t->status == 0 && t->tctx.checkout_id) {
        struct checkout *co = NULL;
        struct agentd_error e = { 0 };
        if (shop_checkout_get(t->ag->shop, t->owner, t->tctx.checkout_id, &co, &e) == 0) {
            struct ucp_negotiated all;
            ucp_negotiated_all(&all);
            t->checkout = checkout_to_json(co, &all);
            checkout_free(co);
        }
    }
    if (!t->claimed) {
        turn_guard_audit(st, t); /* refused before it started */
        return 0;
    }
    struct evs e = { 0 };
    json_t *usage = json_pack("{s:I,s:I,s:f}", "prompt_tokens", (json_int_t)t->prompt_tokens,
                              "completion_tokens", (json_int_t)t->completion_tokens, "cost_usd",
                              budget_usd_round(t->cost_usd));
    const char *outcome = outcome_turn(t->status != 0, t->code, t->tool_fail);
    if (t->status == 0)
        turn_evs_add(&e, t, "turn-completed",
                json_pack("{s:s,s:O?,s:o,s:b,s:s}", "answer", t->answer ? t->answer : "",
                          "checkout", t->checkout, "usage", usage, "resumed", t->resumed,
                          "outcome", outcome));
    else
        turn_evs_add(&e, t, "turn-failed",
                json_pack("{s:s,s:s,s:i,s:o,s:b,s:s}", "code", t->code, "message", t->message,
                          "http_status", t->http_status, "usage", usage, "resumed", t->resumed,
                          "outcome", outcome));
    /* the end and its event in one transaction; a turn finished elsewhere
     * (its claim was taken) is not ours to report */
    const char *end = t->interrupted ? "interrupted" : t->status == 0 ? "completed" : "failed";
    struct store_task_write tw = { 0 };
    if (t->finishing) {
        struct turn_result res;
        turn_result_of(t, outcome, &res);
        t->finishing(st, &res, t->ud, &tw);
    }
    int own = store_batch_begin(st) == 1; /* the end and its audit row: one commit */
    int rc = tw.id ? store_turn_finish_task(st, t->turn_id, end, e.v, e.n, &tw, &t->task_written)
                   : store_turn_finish_events(st, t->turn_id, end, e.v, e.n);
    if (rc == 0)
        turn_audit(st, t, "turn.end", t->status == 0 || t->interrupted ? end : t->code);
    if (own) {
        int crc = store_batch_end(st);
        rc = rc ? rc : crc;
    }
    if (rc == 0 && e.n)
        turn_publish(t);
    turn_evs_clear(&e);
    return 0;
}

static void finish_done(int status, void *arg)
{
    (void)status;
    struct turn *t = arg;
    const char *outcome = outcome_turn(t->status != 0, t->code, t->tool_fail);
    turn_metrics_end(outcome, clock_mono_ns() - t->started_ns);
    turn_trace_end(t, outcome);
    struct turn_result res;
    turn_result_of(t, outcome, &res);
    if (t->done) {
        t->done(&res, t->ud);
    } else {
        log_msg(t->status ? LOG_WARN : LOG_INFO, t->request_id,
                "resumed turn %s of session %s %s%s", t->turn_id, t->session_id,
                t->status ? "failed: " : "completed", t->status ? t->code : "");
        if (t->ag->resumed_done && t->idem_key)
            t->ag->resumed_done(&res, t->owner, t->idem_key, t->ag->resumed_ud);
    }
    turn_free(t);
}

/* A turn's store work runs in the turn's trace context: its store calls,
 * tools and the model calls made from their completions are its children. */
int turn_store_async(struct turn *t, int (*op)(struct store *, void *),
                     void (*done)(int status, void *))
{
    turn_metrics_store_job();
    if (!t->span)
        return store_async(t->ag->st, t->loop, op, t, done);
    struct trace_ctx prev = trace_enter(&t->span->ctx);
    int rc = store_async(t->ag->st, t->loop, op, t, done);
    trace_leave(prev);
    return rc;
}

void turn_finish(struct turn *t)
{
    turn_text_stop(t);
    if (t->flushing) { /* its events must not overtake the last deltas */
        t->finish_waiting = 1;
        return;
    }
    if (t->ended) { /* the last step's job wrote the end too */
        finish_done(0, t);
        return;
    }
    if (turn_store_async(t, op_finish, finish_done) != 0)
        finish_done(0, t);
}

/* ---- after an LLM reply: usage, budgets, checkpoint, tools (worker) ---- */

static void evs_tool_calls(struct evs *e, const struct turn *t, const json_t *calls)
{
    size_t i;
    const json_t *call;
    json_array_foreach(calls, i, call) {
        const json_t *fn = json_object_get(call, "function");
        turn_evs_add(e, t, "tool-call",
                json_pack("{s:s?,s:s?,s:s?}", "id", json_string_value(json_object_get(call, "id")),
                          "name", json_string_value(json_object_get(fn, "name")), "arguments",
                          json_string_value(json_object_get(fn, "arguments"))));
    }
}

int turn_record_assistant(struct store *st, struct turn *t, const json_t *msg)
{
    struct evs e = { 0 };
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (content && *content)
        turn_evs_add(&e, t, "text-delta",
                json_pack("{s:s,s:i,s:b}", "text", content, "step", t->step, "reset", 0));
    evs_tool_calls(&e, t, json_object_get(msg, "tool_calls"));
    int rc = turn_record_msg(st, t, "llm_reply", msg, &e);
    turn_evs_clear(&e);
    if (rc == 0)
        t->said = 1;
    return rc;
}

static int op_step(struct store *st, void *arg)
{
    struct turn *t = arg;
    struct llm_reply *r = t->reply;
    /* Every model call is paid for, whatever happens next. */
    struct store_usage u = { .prompt_tokens = r->usage.prompt_tokens,
                             .completion_tokens = r->usage.completion_tokens,
                             .cost_usd = r->usage.cost_usd, .calls = 1 };
    t->prompt_tokens += u.prompt_tokens;
    t->completion_tokens += u.completion_tokens;
    t->cost_usd += u.cost_usd;
    json_t *msg = json_pack("{s:s}", "role", "assistant");
    json_object_set_new(msg, "content", r->content ? json_string(r->content) : json_null());
    int has_tools = r->tool_calls && json_array_size(r->tool_calls);
    if (has_tools)
        json_object_set(msg, "tool_calls", r->tool_calls);
    struct evs e = { 0 };
    if (t->streamed) { /* what the last flush did not carry (no delta runs now) */
        if (t->delta_len || t->delta_reset)
            turn_evs_add(&e, t, "text-delta",
                    json_pack("{s:s#,s:i,s:b}", "text", t->delta ? t->delta : "",
                              (int)t->delta_len, "step", t->step, "reset", t->delta_reset));
        t->delta_len = 0;
        t->delta_reset = 0;
        t->streamed = 0;
    } else if (r->content && *r->content) {
        /* reset: a resumed turn's text replaces what a crashed stream sent */
        turn_evs_add(&e, t, "text-delta", json_pack("{s:s,s:i,s:b}", "text", r->content, "step",
                                               t->step, "reset", t->resumed && !t->said));
    }
    evs_tool_calls(&e, t, has_tools ? r->tool_calls : NULL);
    /* The step boundary, one transaction: the call's usage (kept whatever
     * happens next), the claim's heartbeat, whether a newer message asked
     * this turn to stop, and — unless it did — the reply. An interrupted
     * turn drops this reply unsaved, so the history never holds a tool call
     * without its result. */
    int64_t reply_step = t->cp_step;
    struct step_usage su = { .model = r->model ? r->model : "", .u = &u };
    int rc = AGENTD_ENOMEM;
    if (msg)
        rc = record_step(st, t, "llm_reply", msg, &e, &su);
    else /* the call is paid for all the same */
        store_turn_step(st, t->turn_id, t->owner, su.model, &u, NULL);
    turn_evs_clear(&e);
    json_decref(msg);
    if (su.interrupted) {
        t->interrupted = 1;
        fail(t, AGENTD_ECONFLICT, 409, "turn_interrupted",
             "a newer message on this session interrupted this turn");
        return AGENTD_ECONFLICT;
    }
    if (rc)
        return rc;
    t->said = 1;
    rc = turn_run_tools(st, t, r->tool_calls, reply_step, 0);
    if (rc == 0 && has_tools && !t->batched) /* batched: after the commit (op_step_job) */
        rc = turn_check_daily(st, t);
    return rc;
}

/* 1 if every call of the reply runs a tool that never touches the store:
 * its step can commit once, reply and results together, since nothing in
 * it reads what the step wrote. */
static int calls_store_free(const json_t *calls)
{
    size_t i;
    const json_t *call;
    json_array_foreach(calls, i, call) {
        const json_t *fn = json_object_get(call, "function");
        if (!tools_store_free(json_string_value(json_object_get(fn, "name"))))
            return 0;
    }
    return 1;
}

/* The model's last step (no tool call) and the turn's end in one job and
 * one commit: the reply, its usage, the end and its events. A tool step
 * commits once when its tools never touch the store; else the reply and
 * each result commit on their own (those tools read what they wrote). */
static int op_step_job(struct store *st, void *arg)
{
    struct turn *t = arg;
    struct llm_reply *r = t->reply;
    if (r->tool_calls && json_array_size(r->tool_calls)) {
        /* a catalog step commits once; the daily budget then reads its usage */
        int own = calls_store_free(r->tool_calls) && !t->batched && store_batch_begin(st) == 1;
        if (!own)
            return op_step(st, t);
        t->batched = 1;
        int rc = turn_own_batch_end(st, t, op_step(st, t));
        return rc == 0 ? turn_check_daily(st, t) : rc;
    }
    int own = !t->batched && store_batch_begin(st) == 1;
    t->batched |= own;
    int rc = op_step(st, t);
    if (rc == 0 && !t->answer) {
        t->answer = strdup(r->content ? r->content : "");
        if (!t->answer)
            fail(t, AGENTD_ENOMEM, 503, "busy", "out of memory");
    }
    if (rc == 0) {
        op_finish(st, t);
        t->ended = 1;
    }
    if (own)
        rc = turn_own_batch_end(st, t, rc);
    if (rc != 0 && t->ended) { /* the commit failed: the end is written again */
        t->ended = 0;
        if (!t->code[0])
            fail(t, rc, agentd_err_http(rc), agentd_err_code(rc),
                 "the turn could not be saved: %s", agentd_err_msg(rc));
    }
    return rc;
}

/* Before another model call: the step and token budgets. 0 = go on. */
static int budget_left(struct turn *t)
{
    struct budget_limits b = limits(t->ag);
    int64_t used = t->prompt_tokens + t->completion_tokens;
    switch (budget_next_step(&b, t->step, used)) {
    case BUDGET_STEPS:
        fail(t, AGENTD_ERATELIMIT, 422, "step_budget_exhausted",
             "the turn was stopped after %d model steps (AGENTD_MAX_STEPS): a runaway tool loop",
             b.max_steps);
        return 0;
    case BUDGET_TURN_TOKENS:
        fail(t, AGENTD_ERATELIMIT, 422, "token_budget_exhausted",
             "the turn was stopped after using %lld tokens (AGENTD_TURN_TOKEN_BUDGET = %lld)",
             (long long)used, (long long)b.turn_tokens);
        return 0;
    default:
        return 1;
    }
}

static void step_done(int status, void *arg)
{
    struct turn *t = arg;
    int had_tools = t->reply->tool_calls && json_array_size(t->reply->tool_calls) > 0;
    if (status != 0) {
        if (!t->code[0])
            fail(t, status, agentd_err_http(status), agentd_err_code(status),
                 "the turn could not be saved: %s", agentd_err_msg(status));
        turn_finish(t);
        return;
    }
    if (!had_tools) {
        if (!t->answer)
            t->answer = t->reply->content ? strdup(t->reply->content) : strdup("");
        llm_reply_free(t->reply);
        t->reply = NULL;
        turn_finish(t);
        return;
    }
    llm_reply_free(t->reply);
    t->reply = NULL;
    t->step++;
    if (!budget_left(t)) {
        turn_finish(t);
        return;
    }
    turn_llm_step(t);
}

/* ---- the LLM step (loop) ---- */

static void submit_step(struct turn *t)
{
    if (turn_store_async(t, op_step_job, step_done) != 0) {
        fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        turn_finish(t);
    }
}

/* A text flush ended while the step or the turn waited for it. */
static void after_flush(struct turn *t)
{
    if (t->finish_waiting) {
        t->finish_waiting = 0;
        turn_finish(t);
    } else if (t->step_waiting) {
        t->step_waiting = 0;
        submit_step(t);
    }
}

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
        else if (status == AGENTD_EINVAL || status == AGENTD_EMODELREFUSED)
            /* the provider refused the request or its own configuration:
             * retrying cannot help, so no 503 (no Retry-After) */
            fail(t, status, 502, "model_refused", "%s", error ? error : "the model refused");
        else
            fail(t, status, 503, "model_unavailable", "%s", error ? error : "the model is unavailable");
        turn_finish(t);
        return;
    }
    t->reply = reply;
    turn_text_stop(t); /* op_step stores what is left */
    if (t->flushing) { /* the last deltas first */
        t->step_waiting = 1;
        return;
    }
    submit_step(t);
}

void turn_llm_step(struct turn *t)
{
    if (t->ag->stopping) {
        fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "the server is shutting down; retry");
        turn_finish(t);
        return;
    }
    if (clock_mono_ms() >= t->deadline_ms) {
        fail(t, AGENTD_ETIMEOUT, 504, "turn_timeout", "the turn ran out of time");
        turn_finish(t);
        return;
    }
    struct llm_request req = {
        .messages = t->messages,
        .tools = t->ag->tools,
        .messages_json = t->conv_text ? t->conv.data : NULL,
        .deadline_ms = t->deadline_ms,
        .request_id = t->request_id,
        .stream = t->stream,
    };
    if (t->conv_text) { /* closed for the call, which may read it until it ends; the next
                           conv_add reopens it */
        if (!t->conv_closed)
            buf_puts(&t->conv, "]");
        t->conv_closed = !t->conv.oom; /* an append that failed added nothing */
        if (t->conv.oom) {
            fail(t, AGENTD_ENOMEM, 503, "busy", "out of memory");
            turn_finish(t);
            return;
        }
        req.messages_json = t->conv.data;
        req.messages_json_len = t->conv.len;
    }
    struct trace_ctx prev = trace_enter(t->span ? &t->span->ctx : trace_current());
    int rc = llm_call(t->ag->llm, t->loop, &req, t->stream ? turn_text_delta : NULL, on_reply, t,
                      &t->call);
    trace_leave(prev);
    if (rc != 0) {
        fail(t, rc, 503, "model_unavailable", "the model call could not start: %s", agentd_err_msg(rc));
        turn_finish(t);
    }
}

void turn_resume_go(void *arg)
{
    struct turn *t = arg;
    if (t->code[0] || t->answer) {
        turn_finish(t);
        return;
    }
    if (t->action_tool) { /* never the model */
        turn_action_go(t);
        return;
    }
    if (!budget_left(t)) {
        turn_finish(t);
        return;
    }
    turn_llm_step(t);
}

