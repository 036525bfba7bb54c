/* A2A streams (SendStreamingMessage / message/stream, SubscribeToTask /
 * tasks/resubscribe): SSE frames that are JSON-RPC responses, made from the
 * session's events as api/follow.c reads them (as for /chat's streams). */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "agent/events.h"
#include "api/a2a_task_model.h"
#include "api/a2a_wire.h"
#include "api/follow.h"
#include "core/err.h"
#include "http/server.h"
#include "http/sse.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEARTBEAT_MS 15000

static struct {
    struct store *st;
    struct events *ev;
} S;

struct astream {
    struct follow f;        /* the session's events after f.after, as SSE */
    int ver;
    json_t *id;             /* the JSON-RPC request id */
    json_t *task;           /* the task model (a copy; refreshed at the end) */
    char *owner;
    char *session_id, *task_id, *turn_id;
    long long final_seq;    /* the turn's terminal event, once seen */
    int started_art;        /* an artifact chunk went out */
    json_t *fresh;          /* the task as stored, read with the events */
};

static void as_free_if_done(void *ud)
{
    struct astream *s = ud;
    if (follow_busy(&s->f))
        return;
    follow_free(&s->f);
    json_decref(s->id);
    json_decref(s->task);
    json_decref(s->fresh);
    free(s->owner);
    free(s->session_id);
    free(s->task_id);
    free(s->turn_id);
    free(s);
}

/* One frame: {"jsonrpc":"2.0","id":..,"result":frame}, SSE id = seq. */
static int as_send(struct astream *s, long long seq, json_t *frame)
{
    json_t *doc = a2a_rpc_result(s->id, frame);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    char id[24];
    snprintf(id, sizeof id, "%lld", seq);
    int rc = text ? sse_send(s->f.sse, NULL, id, text, strlen(text)) : AGENTD_ENOMEM;
    free(text);
    return rc;
}

/* With the events, the task as stored (its outcome, once the turn ended). */
static int as_read_task(struct store *st, void *ud)
{
    struct astream *s = ud;
    json_decref(s->fresh);
    s->fresh = NULL;
    if (s->final_seq || s->f.rc == 0) {
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

/* A page of events: frames until the turn's terminal event, then the outcome. */
static int as_page(void *ud, int more)
{
    struct astream *s = ud;
    struct follow *f = &s->f;
    for (size_t i = 0; f->open && f->rc == 0 && i < f->n && !s->final_seq; i++) {
        f->after = f->v[i].seq;
        as_event(s, &f->v[i]);
    }
    if (f->open && f->rc == AGENTD_ENOTFOUND)
        follow_end(f); /* the session expired or was deleted */
    if (f->open && s->final_seq && as_try_final(s))
        follow_end(f);
    return more && !s->final_seq;
}

static const struct follow_ops as_ops = {
    .read_more = as_read_task,
    .page = as_page,
    .release = as_free_if_done,
};

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
    follow_init(&s->f, r, S.st, &as_ops, s);
    s->ver = ver;
    s->id = rpc_id ? json_incref((json_t *)rpc_id) : json_null();
    s->task = json_deep_copy(task);
    s->f.after = after;
    if (!s->task || (turn_id && follow_watch(&s->f, S.ev, s->session_id) != 0)) {
        as_free_if_done(s);
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    if (follow_open(&s->f, HEARTBEAT_MS) != 0) {
        as_free_if_done(s);
        return;
    }
    /* the task as it is now opens a stream (not a resumed one: that client
     * has it already); its SSE id is the point the frames after it follow */
    if (!resume && as_send(s, after, a2a_encode_task_frame(s->task, ver)) != 0) {
        follow_end(&s->f);
        return;
    }
    if (!turn_id) {
        /* nothing runs on this task: its status is all there is */
        as_send(s, after, a2a_encode_status_update(s->task, 1, ver));
        follow_end(&s->f);
        return;
    }
    follow_start(&s->f);
}

void a2a_stream_init(struct store *st, struct events *ev)
{
    S.st = st;
    S.ev = ev;
}
