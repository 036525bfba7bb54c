/* The simple chat front.
 *
 *   POST /chat                        one message = one turn; JSON answer, or
 *                                     {"stream": true} / Accept: text/event-stream:
 *                                     the turn's events as SSE, ending with its
 *                                     turn-completed / turn-failed event
 *   GET  /chat/sessions               the principal's sessions, newest first, by page
 *   GET  /chat/sessions/{id}          the session: its checkout and usage
 *   DELETE /chat/sessions/{id}        the session with its messages, events, tasks and
 *                                     turns (its order stays); 409 while a turn runs
 *   GET  /chat/sessions/{id}/events   its events after Last-Event-ID / ?after=N:
 *                                     SSE (replay, then live) or a JSON page
 *
 * The turn belongs to the server: if the client leaves, it still runs to
 * its end and is persisted; its events stay readable. Streams read the
 * store (the source of truth) when the event hub wakes them, and poll once
 * a second for events written by other replicas. */
#define _GNU_SOURCE
#include "api/chat.h"
#include "agent/budget.h"
#include "agent/events.h"
#include "api/a2a_ucp.h"
#include "agent/runner.h"
#include "api/follow.h"
#include "api/idempotency.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "http/sse.h"
#include "store/async.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>

#define HEARTBEAT_MS 15000
/* Documents with a cost_usd in them: budget.h says why the precision */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION))

static struct {
    struct agent *ag;
    struct store *st;
    struct events *ev;
} F;

/* ---- the JSON answer (also what an Idempotency-Key replays) ---- */

static json_t *usage_json(const struct turn_result *res)
{
    return json_pack("{s:I,s:I,s:f}", "prompt_tokens", (json_int_t)res->prompt_tokens,
                     "completion_tokens", (json_int_t)res->completion_tokens, "cost_usd",
                     budget_usd_round(res->cost_usd));
}

static json_t *result_json(const struct turn_result *res, const char *request_id, int *http)
{
    if (res->status == 0) {
        *http = 200;
        return json_pack("{s:s,s:s,s:O,s:s?,s:o,s:s}", "answer", res->message, "session_id",
                         res->session_id, "checkout", res->checkout ? res->checkout : json_null(),
                         "turn_id", res->turn_id, "usage", usage_json(res), "outcome",
                         res->outcome ? res->outcome : "completed");
    }
    *http = res->http_status ? res->http_status : 500;
    json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", res->code, "message",
                             res->message, "request_id", request_id ? request_id : "");
    /* the one error shape has "error" alone at the top (design §5); the
     * session a failed turn belongs to rides inside it, so a client can
     * continue that session */
    json_t *err = json_object_get(body, "error");
    if (res->session_id)
        json_object_set_new(err, "session_id", json_string(res->session_id));
    if (res->turn_id)
        json_object_set_new(err, "turn_id", json_string(res->turn_id));
    return body;
}

static int retry_after(const struct turn_result *res)
{
    if (res->http_status == 429)
        return res->retry_after_s > 0 ? res->retry_after_s : 60;
    if (res->http_status == 503)
        return res->retry_after_s > 0 ? res->retry_after_s : 5;
    return 0;
}

/* The turn's ids and outcome on the request's access line. */
static void note_turn(struct http_req *r, const char *session_id, const char *turn_id)
{
    if (session_id)
        http_req_note(r, "session_id", session_id);
    if (turn_id)
        http_req_note(r, "turn_id", turn_id);
}

static void turn_done(const struct turn_result *res, void *ud)
{
    struct http_req *r = ud;
    note_turn(r, res->session_id, res->turn_id);
    if (res->outcome)
        http_req_note(r, "outcome", res->outcome);
    int ra = retry_after(res);
    if (ra) {
        char v[16];
        snprintf(v, sizeof v, "%d", ra);
        http_set_header(r, "Retry-After", v);
    }
    int http;
    json_t *body = result_json(res, r->request_id, &http);
    http_reply_json(r, http, body);
}

/* ---- a resumed turn answers its Idempotency-Key ---- */

struct resumed_answer {
    char *principal, *key, *headers, *body;
    int status;
};

/* Kept whatever the status: a failed turn may have run tools (IDEM_KEEP_5XX). */
static int op_resumed_save(struct store *st, void *arg)
{
    struct resumed_answer *f = arg;
    return idem_record(st, f->principal, f->key, IDEM_KEEP_5XX, f->status, f->headers, f->body,
                       strlen(f->body));
}

static void resumed_saved(int status, void *arg)
{
    struct resumed_answer *f = arg;
    if (status != 0 && status != AGENTD_ENOTFOUND)
        log_msg(LOG_WARN, NULL, "the resumed turn's answer was not saved for its "
                                "Idempotency-Key: %s", agentd_err_msg(status));
    free(f->principal);
    free(f->key);
    free(f->headers);
    free(f->body);
    free(f);
}

static void resumed_done(const struct turn_result *res, const char *owner, const char *idem_key,
                         void *ud)
{
    (void)ud;
    struct resumed_answer *f = calloc(1, sizeof *f);
    if (!f)
        return;
    json_t *body = result_json(res, "", &f->status);
    json_t *h = json_pack("{s:s}", "Content-Type", "application/json");
    int ra = retry_after(res);
    if (ra) {
        char v[16];
        snprintf(v, sizeof v, "%d", ra);
        json_object_set_new(h, "Retry-After", json_string(v));
    }
    f->principal = strdup(owner);
    f->key = strdup(idem_key);
    f->body = body ? json_dumps(body, JSON_FLAGS) : NULL;
    f->headers = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(body);
    json_decref(h);
    if (!f->principal || !f->key || !f->body || !f->headers ||
        store_async(F.st, NULL, op_resumed_save, f, resumed_saved) != 0)
        resumed_saved(AGENTD_ENOMEM, f);
}

/* ---- event streams ---- */

struct stream {
    struct follow f;        /* the events after f.after, as SSE */
    char *session_id;
    char *turn_id;          /* POST: only this turn's events, ending at its last */
    int post;
    int turn_open;          /* POST: the turn's done() has not run */
    int done_seen;          /* POST: the turn's terminal event was sent */
    int answered;           /* r got its reply (an error, or the stream began) */
    json_t *final;          /* POST: the outcome, if the store never shows it */
    char *final_type;
};

static void stream_free_if_done(void *ud)
{
    struct stream *s = ud;
    if (follow_busy(&s->f) || s->turn_open)
        return;
    follow_free(&s->f);
    json_decref(s->final);
    free(s->final_type);
    free(s->session_id);
    free(s->turn_id);
    free(s);
}

static int is_terminal(const char *type)
{
    return strcmp(type, "turn-completed") == 0 || strcmp(type, "turn-failed") == 0;
}

static int send_event(struct stream *s, int64_t seq, const char *type, const char *turn_id,
                      const char *data)
{
    json_error_t je;
    json_t *d = data ? json_loads(data, 0, &je) : NULL;
    if (!json_is_object(d)) {
        json_decref(d);
        d = json_object();
    }
    if (turn_id)
        json_object_set_new(d, "turn_id", json_string(turn_id));
    json_object_set_new(d, "session_id", json_string(s->session_id));
    char *text = json_dumps(d, JSON_FLAGS);
    json_decref(d);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)seq);
    int rc = text ? sse_send(s->f.sse, type, seq > 0 ? id : NULL, text, strlen(text)) : AGENTD_ENOMEM;
    free(text);
    return rc;
}

/* A page of events: sent (POST: this turn's only, ending at its last). */
static int stream_page(void *ud, int more)
{
    struct stream *s = ud;
    struct follow *f = &s->f;
    for (size_t i = 0; f->open && f->rc == 0 && i < f->n; i++) {
        const struct store_event *e = &f->v[i];
        f->after = e->seq;
        if (s->post && (!e->turn_id || strcmp(e->turn_id, s->turn_id) != 0))
            continue;
        if (send_event(s, e->seq, e->type, e->turn_id, e->data) != 0) {
            follow_end(f);
            break;
        }
        if (s->post && is_terminal(e->type)) {
            /* The reply ends once the turn's done() has run too, so the
             * access line carries the turn's outcome (the terminal event can
             * reach the store before done() reaches this loop). */
            s->done_seen = 1;
            if (!s->turn_open)
                follow_end(f);
            break;
        }
    }
    if (f->open && f->rc == AGENTD_ENOTFOUND && !s->post)
        follow_end(f); /* the session expired or was deleted */
    /* POST: the turn ended but its terminal event never reached the store
     * (a store fault): say how it ended anyway */
    if (f->open && s->post && !s->turn_open && !more && !f->again && s->final) {
        char *text = json_dumps(s->final, JSON_FLAGS);
        if (text)
            sse_send(f->sse, s->final_type, NULL, text, strlen(text));
        free(text);
        follow_end(f);
    }
    return more;
}

static const struct follow_ops stream_ops = {
    .page = stream_page,
    .release = stream_free_if_done,
};

static struct stream *stream_new(struct http_req *r)
{
    struct stream *s = calloc(1, sizeof *s);
    if (s)
        follow_init(&s->f, r, F.st, &stream_ops, s);
    return s;
}

/* Starts the SSE reply and the wake-ups. 0, or a negative AGENTD_E* (r
 * answered with an error). */
static int stream_open(struct stream *s)
{
    struct http_req *r = s->f.r;
    s->f.end_on_drain = !s->post; /* a turn's own stream ends with its turn */
    if (follow_watch(&s->f, F.ev, s->session_id) != 0) {
        http_reply_error(r, 503, "out_of_memory", "cannot start the event stream");
        return AGENTD_ENOMEM;
    }
    int rc = follow_open(&s->f, HEARTBEAT_MS);
    if (rc != 0)
        return rc;
    follow_start(&s->f);
    return 0;
}

/* ---- POST /chat ---- */

static void post_started(const char *session_id, const char *turn_id, int64_t seq, void *ud)
{
    struct stream *s = ud;
    s->session_id = strdup(session_id);
    s->turn_id = strdup(turn_id);
    s->f.after = seq > 0 ? seq - 1 : 0;
    s->answered = 1; /* by the stream, or by stream_open's error */
    note_turn(s->f.r, session_id, turn_id);
    if (!s->session_id || !s->turn_id) {
        http_reply_error(s->f.r, 503, "out_of_memory", "cannot start the event stream");
        return; /* the turn runs on; its done() frees s */
    }
    stream_open(s);
}

static void post_done(const struct turn_result *res, void *ud)
{
    struct stream *s = ud;
    s->turn_open = 0;
    if (!s->answered) {
        /* failed before it started (404, 409, 429...): a plain answer */
        turn_done(res, s->f.r);
        stream_free_if_done(s);
        return;
    }
    if (s->f.open) {
        if (res->outcome)
            http_req_note(s->f.r, "outcome", res->outcome);
        int http;
        s->final = result_json(res, s->f.r->request_id, &http);
        s->final_type = strdup(res->status == 0 ? "turn-completed" : "turn-failed");
        if (!s->final_type) {
            json_decref(s->final);
            s->final = NULL;
        }
        if (s->done_seen)
            follow_end(&s->f); /* its terminal event is already sent */
        else
            follow_read(&s->f); /* the terminal event is in the store by now */
        return;
    }
    stream_free_if_done(s);
}

static int wants_stream(struct http_req *r, const json_t *body)
{
    const json_t *st = json_object_get(body, "stream");
    if (json_is_boolean(st))
        return json_is_true(st);
    const char *accept = http_req_header(r, "Accept");
    return accept && strcasestr(accept, "text/event-stream") != NULL;
}

/* "action": a UI action as an A2A client's button sends it (api/a2a_ucp.h),
 * run as the turn's one tool call without the model. 1, or AGENTD_EINVAL
 * (e->msg says what) — no action is not an answer here. */
static int chat_action(const json_t *action, const char **tool, json_t **args,
                       struct agentd_error *e)
{
    json_t *parts = json_pack("[{s:O}]", "data", action);
    int rc = parts ? a2a_ucp_action(parts, tool, args, e) : AGENTD_ENOMEM;
    json_decref(parts);
    if (rc == 0)
        return agentd_fail(e, AGENTD_EINVAL, NULL, "action", "\"action\" must name the action, "
                           "e.g. {\"action\":\"start_payment\"}");
    return rc;
}

void chat_request_clear(struct chat_request *q)
{
    json_decref(q->body);
    json_decref(q->action_args);
    free(q->action_text);
    memset(q, 0, sizeof *q);
    q->busy_policy = -1;
}

int chat_request_parse(const char *raw, size_t len, struct chat_request *out,
                       struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    out->busy_policy = -1;
    json_error_t je;
    json_t *body = len ? json_loadb(raw, len, JSON_DECODE_ANY, &je) : NULL;
    const char *problem = NULL;
    struct agentd_error why = { 0 };
    json_t *msg = json_object_get(body, "message");
    json_t *sid = json_object_get(body, "session_id");
    json_t *data = json_object_get(body, "data");
    json_t *busy = json_object_get(body, "busy_policy");
    json_t *stream = json_object_get(body, "stream");
    json_t *action = json_object_get(body, "action");
    const char *atool = NULL;
    json_t *aargs = NULL;
    char *atext = NULL;
    int policy = -1;
    if (!len)
        problem = "a JSON body is required";
    else if (!body) {
        agentd_fail(&why, AGENTD_EMALFORMED, NULL, NULL, "invalid JSON at line %d, column %d: %s",
                    je.line, je.column, je.text);
        problem = why.msg;
    } else if (!json_is_object(body))
        problem = "the body must be a JSON object";
    else if (action && !json_is_null(action) &&
             (!json_is_object(action) || !(atext = json_dumps(action, JSON_COMPACT)) ||
              chat_action(action, &atool, &aargs, &why) != 1))
        problem = json_is_object(action) ? why.msg : "\"action\" must be an object";
    else if (!atool && (!json_is_string(msg) || json_string_length(msg) == 0))
        problem = "\"message\" must be a non-empty string";
    else if (json_string_length(msg) > CHAT_MESSAGE_MAX)
        problem = "\"message\" is longer than 16384 bytes";
    else if (sid && !json_is_null(sid) && (!json_is_string(sid) || json_string_length(sid) == 0 ||
                                           json_string_length(sid) > 64))
        problem = "\"session_id\" must be a session id returned by an earlier answer";
    else if (data && !json_is_null(data) && !json_is_object(data))
        problem = "\"data\" must be an object";
    else if (busy && !json_is_null(busy) &&
             (policy = agent_busy_policy_parse(json_string_value(busy))) < 0)
        problem = "\"busy_policy\" must be \"enqueue\", \"reject\" or \"interrupt\"";
    else if (stream && !json_is_null(stream) && !json_is_boolean(stream))
        problem = "\"stream\" must be true or false";
    if (problem) {
        json_decref(aargs);
        free(atext);
        agentd_fail(e, AGENTD_EINVAL, "invalid_request", NULL, "%s", problem);
        json_decref(body);
        return AGENTD_EINVAL;
    }
    out->body = body;
    out->message = msg;
    out->session_id = sid;
    out->data = json_is_object(data) ? data : NULL;
    out->busy_policy = policy;
    out->action_tool = atool;
    out->action_args = aargs;
    out->action_text = atext;
    return 0;
}

static void chat_inner(struct http_req *r)
{
    struct chat_request q;
    struct agentd_error why = { 0 };
    if (chat_request_parse(r->body, r->body_len, &q, &why) != 0) {
        http_reply_error(r, 400, "invalid_request", why.msg);
        return;
    }
    struct turn_start ts = {
        .owner = r->principal,
        .session_id = json_string_value(q.session_id),
        .text = q.action_tool && !json_is_string(q.message) ? q.action_text
                                                            : json_string_value(q.message),
        .action_tool = q.action_tool,
        .action_args = q.action_args,
        .data = q.data,
        .busy_policy = q.busy_policy,
        .request_id = r->request_id,
        .idem_key = http_req_header(r, "Idempotency-Key"),
    };
    int rc;
    if (wants_stream(r, q.body)) {
        struct stream *s = stream_new(r);
        if (!s) {
            chat_request_clear(&q);
            http_reply_err(r, AGENTD_ENOMEM, NULL);
            return;
        }
        s->post = 1;
        s->turn_open = 1;
        ts.started = post_started;
        ts.stream = 1;
        rc = agent_turn_start(F.ag, r->loop, &ts, post_done, s);
        if (rc != 0)
            free(s);
    } else {
        rc = agent_turn_start(F.ag, r->loop, &ts, turn_done, r);
    }
    chat_request_clear(&q);
    if (rc != 0)
        http_reply_err(r, rc, NULL);
}

static void h_chat(struct http_req *r)
{
    struct agentd_error why = { 0 };
    int bad = http_req_check_json(r, &why);
    if (bad != 0) {
        http_reply_err(r, bad, why.msg);
        return;
    }
    const char *accept = http_req_header(r, "Accept");
    if (http_req_header(r, "Idempotency-Key") &&
        ((accept && strcasestr(accept, "text/event-stream")) ||
         (r->body_len && memmem(r->body, r->body_len, "\"stream\"", 8)))) {
        /* a stored answer cannot replay a stream: a client that lost its
         * stream reconnects to GET /chat/sessions/{id}/events instead */
        json_error_t je;
        json_t *b = json_loadb(r->body, r->body_len, 0, &je);
        int streaming = wants_stream(r, b);
        json_decref(b);
        if (streaming) {
            http_reply_error(r, 400, "invalid_request",
                             "Idempotency-Key cannot be combined with a streamed answer; after a "
                             "lost stream, reconnect to GET /chat/sessions/{id}/events");
            return;
        }
    }
    idem_handle(r, F.st, r->principal, chat_inner, NULL, IDEM_KEEP_5XX);
}

/* ---- GET /chat/sessions/{id}[/events] ---- */

struct lookup {
    struct http_req *r;
    char *id;
    char *owner;
    int events;             /* /events */
    int sse;
    int64_t after;
    struct store_session *s;
    struct store_usage u;
    struct store_event *v;
    size_t n;
};

static void lookup_free(struct lookup *l)
{
    store_session_free(l->s);
    store_event_list_free(l->v, l->n);
    free(l->id);
    free(l->owner);
    free(l);
}

static int op_lookup(struct store *st, void *arg)
{
    struct lookup *l = arg;
    int rc = store_session_get(st, l->id, &l->s);
    if (rc == 0 && strcmp(l->s->owner, l->owner) != 0)
        return AGENTD_ENOTFOUND; /* another principal's session does not exist for you */
    if (rc == 0 && !l->events)
        rc = store_usage_session(st, l->id, &l->u);
    if (rc == 0 && l->events && !l->sse)
        rc = store_event_list(st, l->id, l->after, FOLLOW_PAGE, &l->v, &l->n);
    return rc;
}

static json_t *event_json(const struct store_event *e)
{
    json_error_t je;
    json_t *d = e->data ? json_loads(e->data, 0, &je) : NULL;
    return json_pack("{s:I,s:s,s:s?,s:o,s:I}", "seq", (json_int_t)e->seq, "type", e->type,
                     "turn_id", e->turn_id, "data", d ? d : json_null(), "created_at",
                     (json_int_t)e->created_at);
}

static void lookup_done(int status, void *arg)
{
    struct lookup *l = arg;
    struct http_req *r = l->r;
    if (status == AGENTD_ENOTFOUND) {
        http_reply_error(r, 404, "session_not_found", "no such session (it may have expired)");
    } else if (status != 0) {
        http_reply_err(r, status, NULL);
    } else if (!l->events) {
        json_error_t je;
        json_t *ctx = json_loads(l->s->context, 0, &je);
        json_t *body = json_pack(
            "{s:s,s:O,s:I,s:I,s:I,s:{s:I,s:I,s:f,s:I}}", "session_id", l->s->id, "checkout_id",
            json_object_get(ctx, "checkout_id") ? json_object_get(ctx, "checkout_id") : json_null(),
            "created_at", (json_int_t)l->s->created_at, "updated_at",
            (json_int_t)l->s->updated_at, "expires_at", (json_int_t)l->s->expires_at, "usage",
            "prompt_tokens", (json_int_t)l->u.prompt_tokens, "completion_tokens",
            (json_int_t)l->u.completion_tokens, "cost_usd", budget_usd_round(l->u.cost_usd), "model_calls",
            (json_int_t)l->u.calls);
        json_decref(ctx);
        http_reply_json(r, 200, body);
    } else if (!l->sse) {
        json_t *list = json_array();
        int64_t next = l->after;
        for (size_t i = 0; i < l->n; i++) {
            json_array_append_new(list, event_json(&l->v[i]));
            next = l->v[i].seq;
        }
        http_reply_json(r, 200, json_pack("{s:s,s:o,s:I,s:b}", "session_id", l->id, "events",
                                          list, "next_after", (json_int_t)next, "more",
                                          l->n == FOLLOW_PAGE));
    } else {
        struct stream *s = stream_new(r);
        if (s) {
            s->session_id = l->id;
            l->id = NULL;
            s->f.after = l->after;
        }
        if (!s || !s->session_id) {
            free(s);
            http_reply_err(r, AGENTD_ENOMEM, NULL);
        } else if (stream_open(s) != 0) {
            follow_free(&s->f);
            free(s->session_id);
            free(s);
        }
    }
    lookup_free(l);
}

/* ?after=N or Last-Event-ID: N (the header wins: it is what a
 * reconnecting EventSource sends). AGENTD_EINVAL when malformed. */
static int64_t parse_after(struct http_req *r)
{
    const char *v = http_req_header(r, "Last-Event-ID");
    if (!v && r->query) {
        for (const char *p = r->query; p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
            if (strncmp(p, "after=", 6) == 0) {
                v = p + 6;
                break;
            }
    }
    if (!v || !*v || *v == '&')
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || n < 0 || (*end && *end != '&'))
        return AGENTD_EINVAL;
    return n;
}

static void h_session(struct http_req *r, int events)
{
    const char *id = route_param(&r->match, "id");
    struct lookup *l = calloc(1, sizeof *l);
    if (!l || !(l->id = strdup(id ? id : "")) || !(l->owner = strdup(r->principal))) {
        if (l)
            lookup_free(l);
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    l->r = r;
    l->events = events;
    http_req_note(r, "session_id", l->id);
    if (events) {
        const char *accept = http_req_header(r, "Accept");
        l->sse = accept && strcasestr(accept, "text/event-stream") != NULL;
        l->after = parse_after(r);
        if (l->after < 0) {
            lookup_free(l);
            http_reply_error(r, 400, "invalid_request",
                             "after / Last-Event-ID must be a non-negative event id");
            return;
        }
    }
    int rc = store_async(F.st, r->loop, op_lookup, l, lookup_done);
    if (rc != 0) {
        lookup_free(l);
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, rc, NULL);
    }
}

static void h_session_get(struct http_req *r) { h_session(r, 0); }
static void h_session_events(struct http_req *r) { h_session(r, 1); }

/* ---- GET /chat/sessions, DELETE /chat/sessions/{id} ---- */

#define LIST_DEFAULT 20
#define LIST_MAX 100
#define TOKEN_ID_MAX 255        /* longest session id a page token carries */
#define TOKEN_PLAIN_MAX (24 + TOKEN_ID_MAX)

struct listing {
    struct http_req *r;
    char *owner;
    char *delete_id;            /* DELETE: the session */
    int limit;
    int64_t before_created;     /* the cursor: the previous page's last session */
    char before_id[TOKEN_ID_MAX + 1];
    struct store_session *v;
    size_t n;
};

static void listing_free(struct listing *l)
{
    store_session_list_free(l->v, l->n);
    free(l->owner);
    free(l->delete_id);
    free(l);
}

/* The page token is opaque to clients: hex of "<created_at>/<id>" of the
 * page's last session (a keyset cursor, stable while sessions come and go). */
static int token_encode(const struct store_session *last, char *out, size_t len)
{
    char plain[TOKEN_PLAIN_MAX + 1];
    int n = snprintf(plain, sizeof plain, "%lld/%s", (long long)last->created_at, last->id);
    if (n < 0 || (size_t)n >= sizeof plain || 2 * (size_t)n + 1 > len)
        return AGENTD_EINVAL;
    for (int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)plain[i]);
    return 0;
}

/* 0, or AGENTD_EINVAL when the token is not one we handed out. */
static int token_decode(const char *tok, struct listing *l)
{
    char plain[TOKEN_PLAIN_MAX + 1];
    size_t n = strlen(tok);
    if (n == 0 || n % 2 || n / 2 >= sizeof plain)
        return AGENTD_EINVAL;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1 || !v)
            return AGENTD_EINVAL;
        plain[i] = (char)v;
    }
    plain[n / 2] = '\0';
    char *slash = strchr(plain, '/');
    char *end = NULL;
    errno = 0;
    long long created = strtoll(plain, &end, 10);
    if (!slash || end != slash || errno || created < 0 || !slash[1] ||
        strlen(slash + 1) >= sizeof l->before_id)
        return AGENTD_EINVAL;
    l->before_created = created;
    snprintf(l->before_id, sizeof l->before_id, "%s", slash + 1);
    return 0;
}

static int op_list(struct store *st, void *arg)
{
    struct listing *l = arg;
    /* one more than the page: its presence says there is a next page */
    return store_session_list(st, l->owner, l->before_created,
                              l->before_id[0] ? l->before_id : NULL, l->limit + 1, &l->v, &l->n);
}

static json_t *session_summary(const struct store_session *v)
{
    json_error_t je;
    json_t *ctx = json_loads(v->context, 0, &je);
    json_t *co = json_object_get(ctx, "checkout_id");
    /* the fields and conventions of GET /chat/sessions/{id} (expires_at 0 = never) */
    json_t *o = json_pack("{s:s,s:O,s:I,s:I,s:I}", "session_id", v->id, "checkout_id",
                          json_is_string(co) ? co : json_null(), "created_at",
                          (json_int_t)v->created_at, "updated_at", (json_int_t)v->updated_at,
                          "expires_at", (json_int_t)v->expires_at);
    json_decref(ctx);
    return o;
}

static void list_done(int status, void *arg)
{
    struct listing *l = arg;
    if (status != 0) {
        http_reply_err(l->r, status, NULL);
        listing_free(l);
        return;
    }
    json_t *list = json_array();
    size_t shown = l->n > (size_t)l->limit ? (size_t)l->limit : l->n;
    for (size_t i = 0; i < shown; i++)
        json_array_append_new(list, session_summary(&l->v[i]));
    char tok[2 * TOKEN_PLAIN_MAX + 1];
    if (l->n > shown && token_encode(&l->v[shown - 1], tok, sizeof tok) != 0) {
        json_decref(list);
        http_reply_err(l->r, AGENTD_EINTERNAL, "a session id is too long for a page token");
        listing_free(l);
        return;
    }
    http_reply_json(l->r, 200, json_pack("{s:o,s:s?}", "sessions", list, "next_page_token",
                                         l->n > shown ? tok : NULL));
    listing_free(l);
}

/* limit and page_token from the query string; 0, or -1 with r answered. */
static int list_params(struct http_req *r, struct listing *l)
{
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    if (r->query && evhttp_parse_query_str(r->query, &q) != 0) {
        http_reply_error(r, 400, "invalid_request", "malformed query string");
        return AGENTD_EINVAL;
    }
    const char *lim = evhttp_find_header(&q, "limit");
    const char *tok = evhttp_find_header(&q, "page_token");
    const char *problem = NULL;
    l->limit = LIST_DEFAULT;
    if (lim) {
        char *end = NULL;
        errno = 0;
        long v = strtol(lim, &end, 10);
        if (!*lim || *end || errno || v < 1 || v > LIST_MAX)
            problem = "limit must be an integer from 1 to 100";
        else
            l->limit = (int)v;
    }
    if (!problem && tok && *tok && token_decode(tok, l) != 0)
        problem = "page_token must be a next_page_token from an earlier page";
    evhttp_clear_headers(&q);
    if (problem) {
        http_reply_error(r, 400, "invalid_request", problem);
        return AGENTD_EINVAL;
    }
    return 0;
}

static void h_sessions_list(struct http_req *r)
{
    struct listing *l = calloc(1, sizeof *l);
    if (!l || !(l->owner = strdup(r->principal))) {
        free(l);
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    l->r = r;
    if (list_params(r, l) != 0) {
        listing_free(l);
        return;
    }
    int rc = store_async(F.st, r->loop, op_list, l, list_done);
    if (rc != 0) {
        listing_free(l);
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, rc, NULL);
    }
}

static int op_delete(struct store *st, void *arg)
{
    struct listing *l = arg;
    return store_session_delete_idle(st, l->delete_id, l->owner);
}

static void delete_done(int status, void *arg)
{
    struct listing *l = arg;
    struct http_req *r = l->r;
    if (status == 0) {
        /* open event streams of the session read again, find it gone and end */
        if (F.ev)
            events_publish(F.ev, l->delete_id);
        http_reply_raw(r, 204, NULL, NULL, 0);
    } else if (status == AGENTD_ENOTFOUND) {
        http_reply_error(r, 404, "session_not_found", "no such session (it may have expired)");
    } else if (status == AGENTD_ECONFLICT) {
        json_t *body = json_pack("{s:{s:s,s:s,s:s,s:s}}", "error", "code", "turn_in_progress",
                                 "message", "a turn is running in this session; delete it once "
                                            "the turn has answered",
                                 "request_id", r->request_id, "session_id", l->delete_id);
        http_set_header(r, "Retry-After", "1");
        http_reply_json(r, 409, body);
    } else {
        http_reply_err(r, status, NULL);
    }
    listing_free(l);
}

static void h_session_delete(struct http_req *r)
{
    const char *id = route_param(&r->match, "id");
    struct listing *l = calloc(1, sizeof *l);
    if (!l || !(l->owner = strdup(r->principal)) || !(l->delete_id = strdup(id ? id : ""))) {
        if (l)
            listing_free(l);
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    l->r = r;
    http_req_note(r, "session_id", l->delete_id);
    int rc = store_async(F.st, r->loop, op_delete, l, delete_done);
    if (rc != 0) {
        listing_free(l);
        http_set_header(r, "Retry-After", "1");
        http_reply_err(r, rc, NULL);
    }
}

int chat_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev)
{
    F.ag = ag;
    F.st = st;
    F.ev = ev;
    ag->resumed_done = resumed_done;
    static const struct router_route routes[] = {
        { HTTP_POST, "/chat", h_chat },
        { HTTP_GET, "/chat/sessions", h_sessions_list },
        { HTTP_GET, "/chat/sessions/{id}", h_session_get },
        { HTTP_DELETE, "/chat/sessions/{id}", h_session_delete },
        { HTTP_GET, "/chat/sessions/{id}/events", h_session_events },
    };
    return router_add_table(rt, routes, sizeof routes / sizeof routes[0], NULL);
}
