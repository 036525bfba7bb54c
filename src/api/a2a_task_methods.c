/* A2A task methods: GetTask, CancelTask, SubscribeToTask (a stream from the
 * task's running turn, a2a_stream.c) and ListTasks, read from the task rows. */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "api/a2a_call.h"
#include "api/a2a_task_model.h"
#include "api/a2a_wire.h"
#include "core/err.h"
#include "http/server.h"
#include "store/async.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GetTask / CancelTask / SubscribeToTask ---- */

static int fn_cancel(json_t *task, void *arg)
{
    struct a2a_call *c = arg;
    const char *state = json_string_value(json_object_get(task, "state"));
    if (a2a_state_terminal(state))
        return A2A_TASK_ENDED;
    /* only this task's own running turn is stopped: another task of the
     * context may be the one running */
    c->cancel_running = strcmp(state, "working") == 0;
    json_object_set_new(task, "state", json_string("canceled"));
    char mid[48];
    id_new("msg_", mid, sizeof mid);
    json_object_set_new(task, "message",
                        json_pack("{s:s,s:s,s:[{s:s}],s:O,s:O}", "messageId", mid, "role",
                                  "agent", "parts", "text", "The task was canceled.",
                                  "contextId", json_object_get(task, "contextId"), "taskId",
                                  json_object_get(task, "id")));
    a2a_task_stamp(task);
    return 0;
}

static int op_task_get(struct store *st, void *arg)
{
    struct a2a_call *c = arg;
    int rc = c->m == A2A_M_CANCEL ? a2a_task_mutate(st, c->task_id, c->owner, fn_cancel, c, &c->task)
                                  : a2a_task_load(st, c->task_id, c->owner, &c->task);
    if (rc == AGENTD_ENOTFOUND) {
        c->err = A2A_TASK_NOT_FOUND;
        agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "no task %.64s", c->task_id);
        return 0;
    }
    if (rc == A2A_TASK_ENDED) {
        c->err = A2A_TASK_NOT_CANCELABLE;
        agentd_fail(&c->e, AGENTD_ECONFLICT, NULL, NULL, "task %.64s is %s and cannot be canceled",
                    c->task_id, json_string_value(json_object_get(c->task, "state")));
        return 0;
    }
    if (rc)
        return a2a_store_fail(c, rc), 0;
    /* a running turn stops at its next step boundary */
    if (c->m == A2A_M_CANCEL && c->cancel_running)
        store_turn_interrupt(st, json_string_value(json_object_get(c->task, "contextId")));
    return 0;
}

static void task_got(int status, void *arg)
{
    (void)status;
    struct a2a_call *c = arg;
    if (c->err) {
        a2a_reply_error(c, c->err, c->e.msg, c->err_data);
        c->err_data = NULL;
    } else if (c->m == A2A_M_SUBSCRIBE) {
        const char *st = json_string_value(json_object_get(c->task, "state"));
        if (a2a_state_terminal(st)) {
            agentd_fail(&c->e, AGENTD_ECONFLICT, NULL, NULL, "task %.64s is %s: nothing to "
                        "subscribe to", c->task_id, st);
            a2a_reply_error(c, A2A_UNSUPPORTED_OPERATION, c->e.msg, NULL);
        } else {
            struct http_req *r = c->r;
            c->r = NULL;
            const char *lei = http_req_header(r, "Last-Event-ID");
            long long after = json_integer_value(json_object_get(c->task, "since"));
            int resume = 0;
            if (lei && *lei) {
                char *end;
                long long v = strtoll(lei, &end, 10);
                if (!*end && v >= 0) {
                    after = v;
                    resume = 1;
                }
            }
            int running = strcmp(st, "working") == 0 &&
                          !json_is_true(json_object_get(c->task, "turnDone"));
            a2a_stream_open(r, c->ver, c->id, c->task,
                            running ? json_string_value(json_object_get(c->task, "turnId")) : NULL,
                            after, resume);
        }
    } else {
        a2a_reply_result(c, a2a_encode_task(c->task, c->ver, c->hist, 1));
    }
    a2a_call_free(c);
}

void a2a_task_method(struct a2a_call *c)
{
    json_t *p = json_object_get(c->body, "params");
    const char *id = json_string_value(json_object_get(p, "id"));
    const json_t *hl = json_object_get(p, "historyLength");
    c->hist = -1;
    if (!id || !*id || strlen(id) > A2A_ID_MAX) {
        a2a_reply_error(c, A2A_INVALID_PARAMS, "params.id must be a task id", NULL);
        a2a_call_free(c);
        return;
    }
    if (hl && !json_is_null(hl)) {
        if (!json_is_integer(hl) || json_integer_value(hl) < 0) {
            a2a_reply_error(c, A2A_INVALID_PARAMS, "params.historyLength must be an integer >= 0",
                        NULL);
            a2a_call_free(c);
            return;
        }
        c->hist = (int)json_integer_value(hl);
    }
    c->task_id = strdup(id);
    if (!c->task_id || store_async(a2a_front.st, c->r->loop, op_task_get, c, task_got) != 0) {
        a2a_reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry", NULL);
        a2a_call_free(c);
    }
}

/* ---- ListTasks ---- */

static int op_task_list(struct store *st, void *arg)
{
    struct a2a_call *c = arg;
    struct store_task *v = NULL;
    size_t n = 0;
    int want = c->q.limit;
    c->q.limit = want + 1; /* one more tells whether a next page exists */
    int rc = store_task_list_owner(st, &c->q, &v, &n);
    if (rc)
        return a2a_store_fail(c, rc), 0;
    c->list = json_array();
    for (size_t i = 0; i < n && i < (size_t)want; i++) {
        json_t *t = a2a_task_model(&v[i]);
        json_array_append_new(c->list, a2a_encode_task(t, c->ver, c->hist, c->with_artifacts));
        json_decref(t);
    }
    if (n > (size_t)want &&
        asprintf(&c->next_token, "%lld.%s", (long long)v[want - 1].updated_at, v[want - 1].id) < 0)
        c->next_token = NULL;
    store_task_list_free(v, n);
    return 0;
}

static void list_done(int status, void *arg)
{
    (void)status;
    struct a2a_call *c = arg;
    if (c->err) {
        a2a_reply_error(c, c->err, c->e.msg, c->err_data);
        c->err_data = NULL;
    } else {
        a2a_reply_result(c, json_pack("{s:O,s:s,s:i}", "tasks", c->list, "nextPageToken",
                                  c->next_token ? c->next_token : "", "pageSize", c->q.limit - 1));
    }
    a2a_call_free(c);
}

void a2a_list_tasks(struct a2a_call *c)
{
    json_t *p = json_object_get(c->body, "params");
    const json_t *ctx = json_object_get(p, "contextId");
    const json_t *state = json_object_get(p, "status");
    const json_t *size = json_object_get(p, "pageSize");
    const json_t *tok = json_object_get(p, "pageToken");
    const json_t *hl = json_object_get(p, "historyLength");
    const json_t *ia = json_object_get(p, "includeArtifacts");
    const char *why = NULL;
    c->q.owner = c->owner;
    c->q.limit = 50;
    c->hist = -1;
    if (ctx && !json_is_null(ctx) && !json_is_string(ctx))
        why = "params.contextId must be a string";
    else if (state && !json_is_null(state) &&
             !(c->q.state = a2a_state_parse(json_string_value(state))))
        why = "params.status must be a task state";
    else if (size && !json_is_null(size) &&
             (!json_is_integer(size) || json_integer_value(size) < 1 ||
              json_integer_value(size) > 100))
        why = "params.pageSize must be 1..100";
    else if (hl && !json_is_null(hl) && (!json_is_integer(hl) || json_integer_value(hl) < 0))
        why = "params.historyLength must be an integer >= 0";
    else if (ia && !json_is_null(ia) && !json_is_boolean(ia))
        why = "params.includeArtifacts must be true or false";
    else if (tok && !json_is_null(tok) && json_string_length(tok) > 0) {
        const char *t = json_string_value(tok);
        char *end;
        long long at = t ? strtoll(t, &end, 10) : -1;
        if (!t || at < 0 || *end != '.' || !end[1] || strlen(end + 1) > A2A_ID_MAX)
            why = "params.pageToken is not a token from an earlier ListTasks";
        else {
            c->q.before_updated = at;
            c->q_before = strdup(end + 1);
            c->q.before_id = c->q_before;
        }
    }
    if (why) {
        a2a_reply_error(c, A2A_INVALID_PARAMS, why, NULL);
        a2a_call_free(c);
        return;
    }
    if (json_is_string(ctx)) {
        c->q_ctx = strdup(json_string_value(ctx));
        c->q.context_id = c->q_ctx;
    }
    c->with_artifacts = json_is_true(ia);
    if (json_is_integer(size))
        c->q.limit = (int)json_integer_value(size);
    if (json_is_integer(hl))
        c->hist = (int)json_integer_value(hl);
    if (store_async(a2a_front.st, c->r->loop, op_task_list, c, list_done) != 0) {
        a2a_reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry", NULL);
        a2a_call_free(c);
    }
}

