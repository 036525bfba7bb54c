/* A2A streams (SendStreamingMessage / message/stream, SubscribeToTask /
 * tasks/resubscribe): SSE frames that are JSON-RPC responses, read from the
 * session events like /chat's streams (the store is the source of truth; the
 * event hub wakes us; a poll catches other replicas). */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "agent/events.h"
#include "api/a2a_task.h"
#include "api/a2a_wire.h"
#include "core/err.h"
#include "core/loop.h"
#include "http/server.h"
#include "http/sse.h"
#include "store/async.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define PAGE 200
#define POLL_MS 1000
#define HEARTBEAT_MS 15000
#define STREAM_BACKLOG (256 * 1024)

static struct {
    struct store *st;
    struct events *ev;
} S;

struct astream {
    struct http_req *r;
    struct sse *sse;
    int ver;
    json_t *id;             /* the JSON-RPC request id */
    json_t *task;           /* the task model (a copy; refreshed at the end) */
    char *owner;
    char *session_id, *task_id, *turn_id;
    long long after;        /* the last event seq sent */
    long long final_seq;    /* the turn's terminal event, once seen */
    int started_art;        /* an artifact chunk went out */
    struct events_sub *sub;
    struct event *poll;
    int open, reading, again;
    /* read results */
    int rc;
    struct store_event *v;
    size_t n;
    json_t *fresh;          /* the task as stored, read with the events */
};

static void as_read(struct astream *s);

static void as_free_if_done(struct astream *s)
{
    if (s->open || s->reading)
        return;
    events_unsubscribe(s->sub);
    if (s->poll)
        event_free(s->poll);
    json_decref(s->id);
    json_decref(s->task);
    json_decref(s->fresh);
    free(s->owner);
    free(s->session_id);
    free(s->task_id);
    free(s->turn_id);
    free(s);
}

static void as_end(struct astream *s)
{
    if (!s->open)
        return;
    s->open = 0;
    if (s->poll)
        evtimer_del(s->poll);
    events_unsubscribe(s->sub);
    s->sub = NULL;
    s->r->on_abort = NULL;
    sse_end(s->sse);
    s->sse = NULL;
    as_free_if_done(s);
}

static void as_gone(struct sse *sse, void *ud)
{
    (void)sse;
    as_end(ud); /* the turn runs on: it belongs to the server */
}

static void as_abort(struct http_req *r, void *ud)
{
    (void)r;
    struct astream *s = ud;
    s->open = 0;
    sse_abort(s->sse);
    s->sse = NULL;
    events_unsubscribe(s->sub);
    s->sub = NULL;
    as_free_if_done(s);
}

/* One frame: {"jsonrpc":"2.0","id":..,"result":frame}, SSE id = seq. */
static int as_send(struct astream *s, long long seq, json_t *frame)
{
    json_t *doc = a2a_rpc_result(s->id, frame);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char id[24];
    snprintf(id, sizeof id, "%lld", seq);
    int rc = text ? sse_send(s->sse, NULL, id, text, strlen(text)) : -1;
    free(text);
    return rc;
}

static int op_read(struct store *st, void *arg)
{
    struct astream *s = arg;
    s->v = NULL;
    s->n = 0;
    s->rc = store_event_list(st, s->session_id, s->after, PAGE, &s->v, &s->n);
    json_decref(s->fresh);
    s->fresh = NULL;
    if (s->final_seq || s->rc == 0) {
        struct store_task *t = NULL;
        if (store_task_get(st, s->task_id, &t) == 0)
            s->fresh = a2a_task_model(t);
        store_task_free(t);
    }
    return 0;
}

/* The turn's terminal event was seen: end once the task shows its outcome
 * (the front writes it just after the turn's last event). */
static int as_try_final(struct astream *s)
{
    const json_t *t = s->fresh;
    const char *turn = json_string_value(json_object_get(t, "turnId"));
    const char *st = json_string_value(json_object_get(t, "state"));
    int done = t && st && (json_is_true(json_object_get(t, "turnDone")) ||
                           strcmp(st, "working") != 0) &&
               (!turn || strcmp(turn, s->turn_id) == 0);
    if (!done)
        return 0;
    const json_t *arts = json_object_get(t, "artifacts");
    const json_t *last = json_array_get(arts, json_array_size(arts) ? json_array_size(arts) - 1 : 0);
    const char *aid = json_string_value(json_object_get(last, "artifactId"));
    if (aid && strcmp(aid, s->turn_id) == 0 &&
        as_send(s, s->final_seq, a2a_encode_artifact_update(t, last, 0, 1, s->ver)) != 0)
        return 1;
    as_send(s, s->final_seq, a2a_encode_status_update(t, 1, s->ver));
    return 1;
}

static void as_event(struct astream *s, const struct store_event *e)
{
    if (!e->turn_id || strcmp(e->turn_id, s->turn_id) != 0)
        return;
    if (strcmp(e->type, "turn-started") == 0) {
        json_t *t = json_deep_copy(s->task);
        json_object_set_new(t, "state", json_string("working"));
        json_object_del(t, "message");
        as_send(s, e->seq, a2a_encode_status_update(t, 0, s->ver));
        json_decref(t);
    } else if (strcmp(e->type, "text-delta") == 0) {
        json_error_t je;
        json_t *d = json_loads(e->data, 0, &je);
        const char *text = json_string_value(json_object_get(d, "text"));
        if (text && *text) {
            json_t *art = json_pack("{s:s,s:s,s:[{s:s}]}", "artifactId", s->turn_id, "name",
                                    "answer", "parts", "text", text);
            as_send(s, e->seq, a2a_encode_artifact_update(s->task, art, s->started_art, 0,
                                                          s->ver));
            s->started_art = 1;
            json_decref(art);
        }
        json_decref(d);
    } else if (strcmp(e->type, "turn-completed") == 0 || strcmp(e->type, "turn-failed") == 0) {
        s->final_seq = e->seq;
    }
}

static void read_done(int status, void *arg)
{
    (void)status;
    struct astream *s = arg;
    int more = s->rc == 0 && s->n == PAGE;
    for (size_t i = 0; s->open && s->rc == 0 && i < s->n && !s->final_seq; i++) {
        s->after = s->v[i].seq;
        as_event(s, &s->v[i]);
    }
    store_event_list_free(s->v, s->n);
    s->v = NULL;
    s->n = 0;
    if (s->open && s->rc == AGENTD_ENOTFOUND)
        as_end(s); /* the session expired or was deleted */
    if (s->open && s->final_seq && as_try_final(s))
        as_end(s);
    s->reading = 0;
    if (s->open && (s->again || (more && !s->final_seq))) {
        s->again = 0;
        as_read(s);
        return;
    }
    as_free_if_done(s);
}

static void as_read(struct astream *s)
{
    if (!s->open)
        return;
    if (http_stream_pending(s->r) > STREAM_BACKLOG)
        return;
    if (s->reading) {
        s->again = 1;
        return;
    }
    s->reading = 1;
    if (store_async(S.st, s->r->loop, op_read, s, read_done) != 0)
        s->reading = 0;
}

static void as_wake(void *ud) { as_read(ud); }

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct astream *s = arg;
    if (!s->open)
        return;
    if (http_server_draining(s->r->srv)) {
        as_end(s);
        return;
    }
    as_read(s);
    struct timeval tv = { POLL_MS / 1000, (POLL_MS % 1000) * 1000 };
    evtimer_add(s->poll, &tv);
}

void a2a_stream_open(struct http_req *r, int ver, const json_t *rpc_id, const json_t *task,
                     const char *turn_id, long long after, int resume)
{
    struct astream *s = calloc(1, sizeof *s);
    const char *ctx = json_string_value(json_object_get(task, "contextId"));
    const char *tid = json_string_value(json_object_get(task, "id"));
    if (!s || !ctx || !tid || !(s->session_id = strdup(ctx)) || !(s->task_id = strdup(tid)) ||
        (turn_id && !(s->turn_id = strdup(turn_id)))) {
        if (s) {
            free(s->session_id);
            free(s->task_id);
            free(s);
        }
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    s->r = r;
    s->ver = ver;
    s->id = rpc_id ? json_incref((json_t *)rpc_id) : json_null();
    s->task = json_deep_copy(task);
    s->after = after;
    if (turn_id) {
        s->poll = evtimer_new(loop_base(r->loop), on_poll, s);
        s->sub = S.ev ? events_subscribe(S.ev, s->session_id, r->loop, as_wake, s) : NULL;
    }
    if (!s->task || (turn_id && (!s->poll || (S.ev && !s->sub)))) {
        as_free_if_done(s);
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    s->sse = sse_start(r, HEARTBEAT_MS, as_gone, s);
    if (!s->sse) {
        as_free_if_done(s);
        return;
    }
    s->open = 1;
    r->on_abort = as_abort;
    r->abort_ud = s;
    /* the task as it is now opens a stream (not a resumed one: that client
     * has it already); its SSE id is the point the frames after it follow */
    if (!resume && as_send(s, after, a2a_encode_task_frame(s->task, ver)) != 0) {
        as_end(s);
        return;
    }
    if (!turn_id) {
        /* nothing runs on this task: its status is all there is */
        as_send(s, after, a2a_encode_status_update(s->task, 1, ver));
        as_end(s);
        return;
    }
    struct timeval tv = { POLL_MS / 1000, (POLL_MS % 1000) * 1000 };
    evtimer_add(s->poll, &tv);
    as_read(s);
}

void a2a_stream_init(struct store *st, struct events *ev)
{
    S.st = st;
    S.ev = ev;
}
