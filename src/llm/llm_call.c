/* An LLM call's lifetime: start, its one exit (done exactly once, never
 * inside llm_call), cancel, and the local model's answer on the loop. */
#define _GNU_SOURCE
#include "llm/llm_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/metrics.h"

/* Replaces a heap message (the rarely used texts of a call are allocated
 * only when there is something to say: a call in flight stays small). */

void llm_set_msg(char **dst, const char *fmt, ...)
{
    char *m = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    va_end(ap);
    free(*dst);
    *dst = m;
}

static void call_unlink(struct llm_call *c)
{
    if (!c->ll)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->ll->calls == c)
        c->ll->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->ll = NULL;
}

void llm_call_free(struct llm_call *c)
{
    if (c->probe) /* a probe that ends without a verdict lets the next one go */
        llm_breaker_release(&c->llm->prov[c->prov].breaker);
    c->probe = 0;
    llm_attempt_clear(c);
    call_unlink(c);
    if (c->timer)
        event_free(c->timer);
    json_decref(c->local_msgs);
    free(c->body);
    free(c->write_err);
    free(c->pending_err);
    free(c->last_err);
    free(c->refused_msg);
    free(c->span); /* ended in llm_call_finish; a cancelled call reports none */
    free(c->ts_line);
    free(c);
}

/* The model call's span ends with what answered and what it cost
 * (gen_ai.* semantic conventions where they fit). */
static void span_end(struct llm_call *c, int status, const struct llm_reply *reply)
{
    struct trace_span *sp = c->span;
    const char *model = reply && reply->model ? reply->model : NULL;
    snprintf(sp->name, sizeof sp->name, "chat %s", model ? model : "");
    trace_attr_str(sp, "gen_ai.operation.name", "chat");
    if (reply) {
        trace_attr_str(sp, "gen_ai.provider.name", reply->provider);
        trace_attr_str(sp, "gen_ai.response.model", reply->model);
        trace_attr_int(sp, "gen_ai.usage.input_tokens", reply->usage.prompt_tokens);
        trace_attr_int(sp, "gen_ai.usage.output_tokens", reply->usage.completion_tokens);
        trace_attr_str(sp, "gen_ai.response.finish_reasons", reply->finish_reason);
    }
    trace_attr_int(sp, "agentd.llm.attempts", reply ? reply->attempts : c->attempts);
    trace_attr_int(sp, "agentd.llm.retries",
                   (reply ? reply->attempts : c->attempts) > 1
                       ? (reply ? reply->attempts : c->attempts) - 1 : 0);
    trace_attr_bool(sp, "agentd.llm.stream", c->stream);
    if (status) {
        trace_attr_str(sp, "error.type", agentd_err_code(status));
        trace_span_set_status(sp, TRACE_STATUS_ERROR);
    }
    trace_span_end(sp);
}

static void on_deferred_finish(evutil_socket_t fd, short what, void *arg);

/* The one exit: exactly one done() per call, never inside llm_call. */
void llm_call_finish(struct llm_call *c, int status, struct llm_reply *reply, const char *err,
                     int hint_s)
{
    if (c->starting) {
        c->pending_status = status;
        c->pending_hint = hint_s;
        llm_set_msg(&c->pending_err, "%s", err ? err : "");
        struct timeval zero = { 0, 0 };
        event_del(c->timer);
        event_assign(c->timer, event_get_base(c->timer), -1, 0, on_deferred_finish, c);
        evtimer_add(c->timer, &zero);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err ? err : "");
    llm_done_fn done = c->done;
    void *ud = c->ud;
    if (c->span)
        span_end(c, status, reply);
    struct trace_ctx prev = trace_enter(&c->parent); /* the caller's context again */
    llm_call_free(c);
    done(status, reply, status == 0 ? NULL : msg, hint_s, ud);
    trace_leave(prev);
}

static void on_deferred_finish(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct llm_call *c = arg;
    llm_call_finish(c, c->pending_status, NULL, c->pending_err ? c->pending_err : "out of memory",
                    c->pending_hint);
}

static void on_local_model(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct llm_call *c = arg;
    struct llm_reply *r = calloc(1, sizeof *r);
    const struct llm_local_model *m = &c->llm->local;
    int rc = r ? m->plan(c->local_msgs, r, m->ud) : AGENTD_ENOMEM;
    if (rc != 0) {
        free(r);
        llm_call_finish(c, rc, NULL,
                        rc == AGENTD_ENOMEM ? "out of memory in the built-in model" : agentd_err_msg(rc), 0);
        return;
    }
    r->provider = strdup("builtin");
    r->model = strdup(m->name);
    r->attempts = 1;
    if (c->stream && c->on_delta && r->content && *r->content) {
        c->in_callback = 1;
        c->on_delta(r->content, strlen(r->content), c->ud);
        c->in_callback = 0;
        if (c->cancelled) {
            llm_reply_free(r);
            llm_call_free(c);
            return;
        }
    }
    metric_inc(c->llm->m_local_ok);
    if (!r->provider || !r->model) {
        llm_reply_free(r);
        llm_call_finish(c, AGENTD_ENOMEM, NULL, "out of memory", 0);
        return;
    }
    llm_call_finish(c, 0, r, NULL, 0);
}

int llm_call(struct llm *l, struct loop *loop, const struct llm_request *req, llm_delta_fn on_delta,
             llm_done_fn done, void *ud, struct llm_call **handle)
{
    if (handle)
        *handle = NULL;
    if (!l || !loop || !req || !done || (req->messages && !json_is_array(req->messages)))
        return AGENTD_EINVAL;
    struct llm_loop *ll = llm_loop_state(l, loop);
    if (!ll)
        return AGENTD_ENOMEM;
    struct llm_call *c = calloc(1, sizeof *c);
    if (!c)
        return AGENTD_ENOMEM;
    c->llm = l;
    c->on_delta = on_delta;
    c->done = done;
    c->ud = ud;
    c->stream = req->stream;
    c->deadline_ms = req->deadline_ms;
    c->body_prov = -1;
    if (req->request_id)
        snprintf(c->request_id, sizeof c->request_id, "%s", req->request_id);
    if (trace_enabled() && (c->span = malloc(sizeof *c->span)) != NULL) {
        const struct trace_ctx *parent = trace_current();
        if (parent)
            c->parent = *parent;
        trace_span_start(c->span, "chat", TRACE_CLIENT, parent);
        char ts[TRACESTATE_MAX + 1];
        if (trace_state_lookup(&c->span->ctx, ts) && asprintf(&c->ts_line, "tracestate: %s", ts) < 0)
            c->ts_line = NULL; /* passed through when there is memory for it */
    }
    int built;
    if (l->nprov)
        built = llm_request_build(c, ll, req) == 0;
    else /* the local model reads them later, on the loop */
        built = (c->local_msgs = req->messages ? json_deep_copy(req->messages) : json_array()) != NULL;
    c->timer = evtimer_new(loop_base(loop), llm_on_retry_timer, c);
    if (!built || !c->timer) {
        llm_call_free(c);
        return AGENTD_ENOMEM;
    }
    c->ll = ll;
    c->next = ll->calls;
    if (ll->calls)
        ll->calls->prev = c;
    ll->calls = c;
    if (handle)
        *handle = c;
    if (!l->nprov) {
        struct timeval zero = { 0, 0 };
        event_assign(c->timer, loop_base(loop), -1, 0, on_local_model, c);
        evtimer_add(c->timer, &zero);
        return 0;
    }
    c->starting = 1;
    llm_try_providers(c);
    c->starting = 0;
    return 0;
}

void llm_call_cancel(struct llm_call *c)
{
    if (!c)
        return;
    if (c->in_callback) {
        /* inside curl's write callback or our delta: the transfer aborts and
         * the completion frees the call. The caller may free the borrowed
         * conversation as soon as we return: never read it again. */
        c->cancelled = 1;
        c->msgs = NULL;
        return;
    }
    llm_call_free(c);
}
