/* The A2A JSON-RPC front (POST /): envelope, version negotiation, the UCP
 * extension check, and the task methods over the agent's turns.
 *
 * One task carries one shopping goal (design §8): contextId is the session;
 * a message with a taskId continues that task; one without continues the
 * context's open (non-terminal) task, else starts a new one. The task row
 * keeps state in its column and the rest of the model (status message,
 * artifacts, history, the current turn) as JSON in its artifacts column.
 * A messageId is claimed per principal in the idempotency records, so a
 * retried message answers the task it started and runs nothing. */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "agent/events.h"
#include "agent/runner.h"
#include "api/a2a_card.h"
#include "api/a2a_task.h"
#include "api/a2a_ucp.h"
#include "api/a2a_wire.h"
#include "api/profiles.h"
#include "commerce/ucp.h"
#include "core/reqid.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "store/async.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MSG_IDEM_PREFIX "a2a-message:"
#define MSG_IDEM_TTL_MS (24LL * 3600 * 1000)
#define TEXT_MAX 16384
#define ID_MAX 64

static struct {
    struct agent *ag;
    struct store *st;
    struct events *ev;
    const char *public_url;
    int production;
} F;

/* One JSON-RPC call. Outlives its request when the turn runs on after a
 * returnImmediately answer (r is then NULL). */
struct call {
    struct http_req *r;
    struct loop *loop;      /* r's loop, kept after r is answered: completions come back here */
    int ver;
    json_t *body;
    json_t *id;             /* the request id (a reference) */
    enum a2a_method m;
    const char *ext_header; /* the header name the client activated extensions with */
    /* SendMessage */
    json_t *msg;            /* the internal user message */
    char *text;
    json_t *data;
    const char *action_tool;
    json_t *action_args;
    char *message_id, *context_id, *task_id;
    char fingerprint[65];
    int stream, immediate, hist;
    /* results of a store job */
    int err;                /* a JSON-RPC error code, or 0 */
    char why[300];
    json_t *err_data;
    json_t *task;           /* the task model */
    int dup;                /* a retried messageId: the first message's task */
    char *prior_state;      /* a continued task's state before this message; NULL = new */
    char *prior_doc;        /* and its artifacts column as read (the accept's compare) */
    json_t *prior_turn;     /* and its turnId / turnDone / since, for a turn that never runs */
    int new_context;        /* the context is created with the task */
    int named_context;      /* its id was chosen here (known to no one before the turn) */
    long long since;        /* an event seq before any of this turn's events */
    char turn[48];          /* the turn's id, chosen at the accept */
    /* the task as the accept wrote it (the finish's compare-and-swap
     * expects it), and the outcome written with the turn's end
     * (send_finishing), kept until done */
    char *acc_doc;
    json_t *fin_task;
    char *fin_doc;
    int res_copied;
    struct turn_result_copy {
        int status, http_status, retry_after_s, order_placed;
        char *code, *message, *turn_id;
        json_t *checkout, *products;
    } res;
    /* GetTask / ListTasks / CancelTask */
    struct store_task_query q;
    char *q_owner, *q_ctx, *q_before;
    json_t *list;
    char *next_token;
    int with_artifacts;     /* ListTasks' includeArtifacts */
    int cancel_running;     /* CancelTask found the task's turn running */
    char owner[128];
    struct profiles_wait wait; /* while the UCP-Agent profile is fetched */
};

static void call_free(struct call *c)
{
    profiles_cancel(&c->wait);
    json_decref(c->body);
    json_decref(c->id);
    json_decref(c->msg);
    free(c->text);
    json_decref(c->data);
    json_decref(c->action_args);
    free(c->message_id);
    free(c->context_id);
    free(c->task_id);
    json_decref(c->err_data);
    json_decref(c->task);
    free(c->prior_state);
    free(c->prior_doc);
    json_decref(c->prior_turn);
    free(c->acc_doc);
    json_decref(c->fin_task);
    free(c->fin_doc);
    free(c->res.code);
    free(c->res.message);
    free(c->res.turn_id);
    json_decref(c->res.checkout);
    json_decref(c->res.products);
    free(c->q_ctx);
    free(c->q_before);
    json_decref(c->list);
    free(c->next_token);
    free(c);
}

/* ---- replies ---- */

static void reply_body(struct call *c, json_t *doc)
{
    struct http_req *r = c->r;
    c->r = NULL;
    if (!r) {
        json_decref(doc);
        return;
    }
    if (c->ext_header)
        http_set_header(r, c->ext_header, A2A_UCP_EXTENSION_URI);
    /* JSON-RPC errors travel in a 200 reply, as the A2A JSON-RPC binding does */
    http_reply_json(r, 200, doc);
}

static void reply_result(struct call *c, json_t *result)
{
    reply_body(c, a2a_rpc_result(c->id, result));
}

static void reply_error(struct call *c, int code, const char *message, json_t *data)
{
    if (c->r) {
        char v[16];
        snprintf(v, sizeof v, "%d", code);
        http_req_note(c->r, "rpc_error", v);
    }
    reply_body(c, a2a_rpc_error(c->id, code, message, data));
}

static int store_fail(struct call *c, int rc)
{
    c->err = A2A_INTERNAL_ERROR;
    snprintf(c->why, sizeof c->why, "%s", agentd_err_msg(rc));
    c->err_data = json_pack("{s:s}", "code", agentd_err_code(rc));
    return rc;
}

/* ---- SendMessage: find the context and the task, then accept ---- */

/* A messageId already held (ex, consumed): a different message under it is
 * refused, a finished one answers with its task (c->dup). Returns
 * AGENTD_EBUSY while it is still being claimed (wait, then look again),
 * else AGENTD_EEXIST with c->err or c->dup set. */
static int claim_seen(struct store *st, struct call *c, struct store_idem *ex)
{
    int rc = AGENTD_EEXIST;
    if (strcmp(ex->fingerprint, c->fingerprint) != 0) {
        c->err = A2A_INVALID_PARAMS;
        snprintf(c->why, sizeof c->why, "message.messageId %s was already used for a "
                                        "different message", c->message_id);
    } else if (strcmp(ex->state, STORE_IDEM_DONE) == 0) {
        json_decref(c->task);
        c->task = NULL;
        int lr = a2a_task_load(st, ex->body, c->owner, &c->task);
        if (lr == AGENTD_ENOTFOUND) {
            c->err = A2A_TASK_NOT_FOUND;
            snprintf(c->why, sizeof c->why, "the task of message %s has expired",
                     c->message_id);
        } else if (lr) {
            store_fail(c, lr);
        } else {
            c->dup = 1;
        }
    } else {
        rc = AGENTD_EBUSY;
    }
    store_idem_free(ex);
    return rc;
}

/* Waits a little for a claim another copy of the message holds: it is
 * between its claim and its task, a store job of a few ms. 0 to look
 * again, else an error is set. */
static int claim_wait(struct call *c, int *waits)
{
    if (++*waits > 100) {
        c->err = A2A_INTERNAL_ERROR;
        snprintf(c->why, sizeof c->why, "message %s is still being accepted; retry",
                 c->message_id);
        return AGENTD_EBUSY;
    }
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    return 0;
}

/* The message was refused before it was accepted (a bad taskId, a terminal
 * task...): a retried message still answers its first copy's task, so the
 * messageId is looked at before the refusal stands. Only this error path
 * claims (and gives back) on its own; an accepted message claims inside
 * store_task_accept. */
static void refuse_unless_seen(struct store *st, struct call *c)
{
    char key[sizeof MSG_IDEM_PREFIX + 256];
    snprintf(key, sizeof key, MSG_IDEM_PREFIX "%s", c->message_id);
    int err = c->err, waits = 0;
    char why[sizeof c->why];
    memcpy(why, c->why, sizeof why);
    json_t *data = c->err_data;
    c->err = 0;
    c->err_data = NULL;
    for (;;) {
        struct store_idem *ex = NULL;
        int rc = store_idem_begin(st, c->owner, key, c->fingerprint,
                                  clock_wall_ms() + MSG_IDEM_TTL_MS, &ex);
        if (rc == 0)
            store_idem_abandon(st, c->owner, key);
        else if (rc != AGENTD_EEXIST)
            store_fail(c, rc);
        else if (claim_seen(st, c, ex) == AGENTD_EBUSY && claim_wait(c, &waits) == 0)
            continue;
        break;
    }
    if (c->err || c->dup) {
        json_decref(data);
        return;
    }
    c->err = err;
    memcpy(c->why, why, sizeof why);
    c->err_data = data;
}

/* The context: the caller's (c->new_context = 0), or one to create with
 * the task (a new or client-chosen id: c->new_context = 1). */
static int find_context(struct store *st, struct call *c)
{
    c->new_context = 0;
    if (!c->context_id) {
        char id[48];
        id_new("ses_", id, sizeof id);
        c->context_id = strdup(id);
        c->new_context = c->named_context = 1;
        return c->context_id ? 0 : store_fail(c, AGENTD_ENOMEM);
    }
    struct store_session *s = NULL;
    int rc = store_session_get(st, c->context_id, &s);
    int mine = rc == 0 && strcmp(s->owner, c->owner) == 0;
    store_session_free(s);
    if (rc == 0 && mine)
        return 0;
    if (rc != 0 && rc != AGENTD_ENOTFOUND)
        return store_fail(c, rc);
    if (rc == 0) {
        c->err = A2A_INVALID_PARAMS;
        snprintf(c->why, sizeof c->why, "message.contextId names no context of yours");
        return AGENTD_ENOTFOUND;
    }
    c->new_context = 1; /* a client-chosen (or expired) contextId starts that context */
    return 0;
}

/* A task row read to continue: its model, and its columns as read (what
 * the accept's compare-and-swap expects). */
static int take_row(struct call *c, const struct store_task *t)
{
    c->task = a2a_task_model(t);
    c->prior_state = strdup(t->state);
    c->prior_doc = strdup(t->artifacts);
    return c->task && c->prior_state && c->prior_doc ? 0 : store_fail(c, AGENTD_ENOMEM);
}

/* The task with its id (checked), else the context's open task, else a
 * new one; c->since := a seq before any event of the turn to come. */
static int find_task(struct store *st, struct call *c)
{
    if (c->task_id) {
        struct store_task *t = NULL;
        int rc = store_task_get(st, c->task_id, &t);
        if (rc == 0 && strcmp(t->owner, c->owner) != 0)
            rc = AGENTD_ENOTFOUND;
        if (rc == AGENTD_ENOTFOUND) {
            c->err = A2A_TASK_NOT_FOUND;
            snprintf(c->why, sizeof c->why, "message.taskId: no task %.64s", c->task_id);
        } else if (rc) {
            store_fail(c, rc);
        } else if (c->context_id && strcmp(t->context_id, c->context_id) != 0) {
            c->err = A2A_INVALID_PARAMS;
            snprintf(c->why, sizeof c->why, "message.contextId does not match the task's "
                                            "context %.64s", t->context_id);
            rc = AGENTD_EINVAL;
        } else if (a2a_state_terminal(t->state)) {
            c->err = A2A_UNSUPPORTED_OPERATION;
            snprintf(c->why, sizeof c->why, "task %.64s is %s: a terminal task takes no more "
                     "messages (send without taskId to start a new one)", c->task_id, t->state);
            rc = AGENTD_ECONFLICT;
        } else {
            free(c->context_id);
            c->context_id = strdup(t->context_id);
            rc = c->context_id ? take_row(c, t) : store_fail(c, AGENTD_ENOMEM);
        }
        store_task_free(t);
        if (rc == 0)
            c->since = json_integer_value(json_object_get(c->task, "since"));
        return rc;
    }
    int rc = find_context(st, c);
    if (rc)
        return rc;
    c->since = 0;
    if (!c->new_context) {
        /* no taskId: the context's open task goes on (clients that never
         * send taskId still keep one task per shopping goal) */
        struct store_task *v = NULL;
        size_t n = 0;
        rc = store_task_list(st, c->context_id, &v, &n);
        if (rc)
            return store_fail(c, rc);
        for (size_t i = n; rc == 0 && !c->task && i-- > 0;)
            if (strcmp(v[i].owner, c->owner) == 0 && !a2a_state_terminal(v[i].state))
                rc = take_row(c, &v[i]);
        /* any earlier turn's start is before this one's events */
        json_t *last = c->task ? json_incref(c->task) : n ? a2a_task_model(&v[n - 1]) : NULL;
        c->since = json_integer_value(json_object_get(last, "since"));
        json_decref(last);
        store_task_list_free(v, n);
        if (rc || c->task)
            return rc;
    }
    char id[48];
    id_new("task_", id, sizeof id);
    c->task = json_pack("{s:s,s:s,s:s,s:[],s:[]}", "id", id, "contextId", c->context_id, "state",
                        "submitted", "artifacts", "history");
    return c->task ? 0 : store_fail(c, AGENTD_ENOMEM);
}

/* The user's message joins the task, which works on it; the task names the
 * turn to come (chosen here, so streams and SubscribeToTask find it with no
 * write when it starts). The task's previous turn is kept in c->prior_turn
 * for a turn that never runs. */
static void task_accept_message(json_t *task, struct call *c)
{
    json_t *m = json_deep_copy(c->msg);
    json_object_set_new(m, "contextId", json_string(c->context_id));
    json_object_set(m, "taskId", json_object_get(task, "id"));
    json_array_append_new(json_object_get(task, "history"), m);
    json_object_set_new(task, "state", json_string("working"));
    json_decref(c->prior_turn);
    c->prior_turn = json_object();
    static const char *const keys[] = { "turnId", "turnDone", "since" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(task, keys[i]);
        if (v && c->prior_turn)
            json_object_set(c->prior_turn, keys[i], v);
    }
    json_object_set_new(task, "turnId", json_string(c->turn));
    json_object_set_new(task, "since", json_integer(c->since));
    json_object_del(task, "turnDone");
    a2a_task_stamp(task);
}

/* Forgets what one attempt read, before reading again. */
static void prepare_reset(struct call *c)
{
    json_decref(c->task);
    c->task = NULL;
    free(c->prior_state);
    free(c->prior_doc);
    c->prior_state = c->prior_doc = NULL;
}

/* Reads the context and the task, then writes the messageId's claim, a new
 * context and the task in ONE transaction (store_task_accept); a lost race
 * on the task reads again. */
static int op_send_prepare(struct store *st, void *arg)
{
    struct call *c = arg;
    char key[sizeof MSG_IDEM_PREFIX + 256];
    snprintf(key, sizeof key, MSG_IDEM_PREFIX "%s", c->message_id);
    int waits = 0;
    for (int tries = 0; tries < 150; tries++) {
        prepare_reset(c);
        if (find_task(st, c) != 0) {
            refuse_unless_seen(st, c);
            return 0;
        }
        task_accept_message(c->task, c);
        char *doc = a2a_task_doc(c->task);
        if (!doc || !c->prior_turn) {
            free(doc);
            store_fail(c, AGENTD_ENOMEM);
            return 0;
        }
        struct store_session ses = { .id = c->context_id, .owner = c->owner, .context = "{}" };
        struct store_task t = { .id = (char *)json_string_value(json_object_get(c->task, "id")),
                                .context_id = c->context_id, .owner = c->owner,
                                .state = "working", .artifacts = doc };
        struct store_task_accept a = { .principal = c->owner, .key = key,
                                       .fingerprint = c->fingerprint,
                                       .expires_at = clock_wall_ms() + MSG_IDEM_TTL_MS,
                                       .session = c->new_context ? &ses : NULL, .task = &t,
                                       .old_state = c->prior_state,
                                       .old_artifacts = c->prior_doc };
        struct store_idem *ex = NULL;
        int rc = store_task_accept(st, &a, &ex);
        if (rc == 0) {
            c->acc_doc = doc;
            c->fin_task = json_deep_copy(c->task); /* the worker's own copy */
            return 0;
        }
        free(doc);
        if (rc == AGENTD_ECONFLICT || (rc == AGENTD_ENOTFOUND && !c->new_context))
            continue; /* the task moved on, or the context expired: read again */
        if (rc == AGENTD_EEXIST && ex) {
            if (claim_seen(st, c, ex) == AGENTD_EBUSY && claim_wait(c, &waits) == 0)
                continue;
            return 0;
        }
        if (rc == AGENTD_EEXIST) {
            c->err = A2A_INVALID_PARAMS; /* another principal made that context meanwhile */
            snprintf(c->why, sizeof c->why, "message.contextId names no context of yours");
            return 0;
        }
        store_fail(c, rc);
        return 0;
    }
    store_fail(c, AGENTD_EBUSY);
    return 0;
}

/* ---- the turn's outcome -> the task ---- */

/* A checkout an earlier task finished (paid or canceled): a new goal's
 * answer does not carry it, or a client would show the old order again. */
static int checkout_finished(const json_t *co)
{
    const char *st = json_string_value(json_object_get(co, "status"));
    return st && (strcmp(st, "completed") == 0 || strcmp(st, "canceled") == 0);
}

/* The turn's answer (or error) joins the task and decides its state; a
 * task canceled meanwhile stays canceled. */
static int fn_outcome(json_t *cur, void *arg)
{
    struct call *c = arg;
    const char *tid = json_string_value(json_object_get(cur, "id"));
    const char *state = json_string_value(json_object_get(cur, "state"));
    int canceled = state && strcmp(state, "canceled") == 0;
    json_t *parts = json_array();
    if (c->res.status == 0) {
        json_array_append_new(parts, json_pack("{s:s}", "text", c->res.message ? c->res.message
                                                                               : ""));
        json_t *pr = c->res.products ? a2a_ucp_product_results(c->res.products) : NULL;
        if (pr)
            json_array_append_new(parts, json_pack("{s:{s:o}}", "data",
                                                   A2A_KEY_PRODUCT_RESULTS, pr));
        if (c->res.checkout && (c->res.order_placed || !checkout_finished(c->res.checkout)))
            json_array_append_new(parts, json_pack("{s:{s:O}}", "data", A2A_KEY_CHECKOUT,
                                                   c->res.checkout));
    } else {
        json_array_append_new(parts, json_pack("{s:s}", "text", c->res.message ? c->res.message
                                                                               : "failed"));
        json_array_append_new(parts, json_pack("{s:{s:{s:s,s:i}}}", "data", "error", "code",
                                               c->res.code ? c->res.code : "internal_error",
                                               "httpStatus", c->res.http_status));
    }
    char mid[48];
    id_new("msg_", mid, sizeof mid);
    json_t *m = json_pack("{s:s,s:s,s:O,s:s,s:s}", "messageId", mid, "role", "agent", "parts",
                          parts, "contextId", c->context_id, "taskId", tid);
    if (m)
        json_array_append(json_object_get(cur, "history"), m);
    if (!canceled) {
        const char *next;
        if (c->res.status == 0) {
            /* completed when this turn placed the order: the session's
             * checkout still shows an earlier task's order */
            next = c->res.order_placed ? "completed" : "input-required";
            json_array_append_new(json_object_get(cur, "artifacts"),
                                  json_pack("{s:s,s:s,s:O}", "artifactId",
                                            c->res.turn_id ? c->res.turn_id : mid, "name",
                                            "answer", "parts", parts));
        } else if (!c->res.turn_id && c->prior_state) {
            next = c->prior_state; /* the turn never ran (busy, budget): as before */
        } else {
            next = "failed";
        }
        json_object_set_new(cur, "state", json_string(next));
        json_object_set(cur, "message", m);
    }
    json_decref(m);
    json_decref(parts);
    const char *named = json_string_value(json_object_get(cur, "turnId"));
    if (!c->res.turn_id && c->prior_state && c->prior_turn && named &&
        strcmp(named, c->turn) == 0) {
        /* it never ran: the task names its previous turn again (which may
         * still be running, for streams and SubscribeToTask) */
        static const char *const keys[] = { "turnId", "turnDone", "since" };
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            json_t *v = json_object_get(c->prior_turn, keys[i]);
            if (v)
                json_object_set(cur, keys[i], v);
            else
                json_object_del(cur, keys[i]);
        }
    } else {
        if (c->res.turn_id)
            json_object_set_new(cur, "turnId", json_string(c->res.turn_id));
        json_object_set_new(cur, "turnDone", json_true());
    }
    a2a_task_stamp(cur);
    return 0;
}

static int op_send_finish(struct store *st, void *arg)
{
    struct call *c = arg;
    if (!c->res.turn_id) {
        /* it never ran (busy, budget): the same messageId may be sent again */
        char key[sizeof MSG_IDEM_PREFIX + 256];
        snprintf(key, sizeof key, MSG_IDEM_PREFIX "%s", c->message_id);
        store_idem_drop(st, c->owner, key);
    }
    json_t *cur = NULL;
    int rc = a2a_task_mutate(st, json_string_value(json_object_get(c->task, "id")), c->owner,
                         fn_outcome, c, &cur);
    if (rc == 0) {
        json_decref(c->task);
        c->task = cur;
        if (F.ev)
            events_publish(F.ev, c->context_id); /* streams wait for this to end */
    } else {
        json_decref(cur); /* gone with its session: the answer stands alone */
    }
    return 0;
}

static void send_finished(int status, void *arg)
{
    (void)status;
    struct call *c = arg;
    if (c->r && c->res.status != 0 && !c->res.turn_id) {
        /* refused before it ran (busy, budget, rate): a JSON-RPC error */
        json_t *data = json_pack("{s:s,s:i}", "code", c->res.code ? c->res.code : "internal_error",
                                 "httpStatus", c->res.http_status);
        if (c->res.retry_after_s > 0)
            json_object_set_new(data, "retryAfter", json_integer(c->res.retry_after_s));
        json_object_set(data, "taskId", json_object_get(c->task, "id"));
        reply_error(c, c->res.http_status == 400 || c->res.http_status == 422
                           ? A2A_INVALID_PARAMS
                           : A2A_INTERNAL_ERROR,
                    c->res.message ? c->res.message : "the turn failed", data);
    } else if (c->r) {
        reply_result(c, a2a_encode_send_result(c->task, c->ver, c->hist));
    }
    call_free(c);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* The turn's result, copied once (on the worker in send_finishing, or on
 * the loop in turn_done). */
static void res_copy(struct call *c, const struct turn_result *res)
{
    if (c->res_copied)
        return;
    c->res_copied = 1;
    c->res.status = res->status;
    c->res.http_status = res->http_status;
    c->res.retry_after_s = res->retry_after_s;
    c->res.order_placed = res->order_placed;
    c->res.code = dup_or_null(res->code);
    c->res.message = dup_or_null(res->message);
    c->res.turn_id = dup_or_null(res->turn_id);
    c->res.checkout = res->checkout ? json_deep_copy(res->checkout) : NULL;
    c->res.products = res->products ? json_deep_copy(res->products) : NULL;
}

/* Inside the turn's last store job (worker): the task's outcome, to commit
 * with the turn's end in one transaction. Anything amiss (the task gone,
 * no memory) leaves *tw empty and turn_done writes it the usual way. */
static void send_finishing(struct store *st, const struct turn_result *res, void *ud,
                           struct store_task_write *tw)
{
    (void)st;
    struct call *c = ud;
    res_copy(c, res);
    /* the task as accepted, not read again: if anything changed it since
     * (a cancel, the next message), the compare fails and turn_done writes
     * the outcome onto what is there */
    if (!c->fin_task || !c->acc_doc)
        return;
    fn_outcome(c->fin_task, c);
    if (!(c->fin_doc = a2a_task_doc(c->fin_task)))
        return;
    *tw = (struct store_task_write){
        .id = json_string_value(json_object_get(c->fin_task, "id")),
        .state = json_string_value(json_object_get(c->fin_task, "state")),
        .artifacts = c->fin_doc,
        .old_state = "working",
        .old_artifacts = c->acc_doc,
    };
}

static void send_not_run(struct call *c);

static void turn_done(const struct turn_result *res, void *ud)
{
    struct call *c = ud;
    if (res->refused) {
        send_not_run(c);
        return;
    }
    if (c->r) {
        if (res->turn_id)
            http_req_note(c->r, "turn_id", res->turn_id);
        if (res->outcome)
            http_req_note(c->r, "outcome", res->outcome);
    }
    res_copy(c, res);
    if (res->task_written) {
        /* the outcome is in (and published with the turn's end) */
        json_decref(c->task);
        c->task = c->fin_task;
        c->fin_task = NULL;
        send_finished(0, c);
        return;
    }
    if (store_async(F.st, c->loop, op_send_finish, c, send_finished) != 0) {
        if (c->r)
            reply_error(c, A2A_INTERNAL_ERROR, "the task could not be saved", NULL);
        call_free(c);
    }
}

/* The turn holds its session (the task named it at the accept, so nothing
 * is written here); a returnImmediately call answers now, a stream opens
 * from the turn's first event. */
static void turn_started(const char *session_id, const char *turn_id, int64_t seq, void *ud)
{
    struct call *c = ud;
    if (c->r)
        http_req_note(c->r, "session_id", session_id);
    json_object_set_new(c->task, "turnId", json_string(turn_id));
    if (c->r && c->stream) {
        struct http_req *r = c->r;
        c->r = NULL;
        if (c->ext_header)
            http_set_header(r, c->ext_header, A2A_UCP_EXTENSION_URI);
        a2a_stream_open(r, c->ver, c->id, c->task, turn_id, seq > 0 ? seq - 1 : 0, 0);
    } else if (c->r && c->immediate) {
        reply_result(c, a2a_encode_send_result(c->task, c->ver, c->hist));
    }
}

/* A message the accept did not let run: refused (an error), or a retry
 * of one already accepted (its first copy's task as it is now). */
static void send_not_run(struct call *c)
{
    if (c->err) {
        reply_error(c, c->err, c->why, c->err_data);
        c->err_data = NULL;
    } else if (c->dup) {
        /* a retried message: the first one's task as it is now; nothing runs */
        http_req_note(c->r, "replayed", "1");
        if (c->stream) {
            struct http_req *r = c->r;
            c->r = NULL;
            const char *st = json_string_value(json_object_get(c->task, "state"));
            int running = st && strcmp(st, "working") == 0;
            a2a_stream_open(r, c->ver, c->id, c->task,
                            running ? json_string_value(json_object_get(c->task, "turnId")) : NULL,
                            json_integer_value(json_object_get(c->task, "since")), 0);
        } else {
            reply_result(c, a2a_encode_send_result(c->task, c->ver, c->hist));
        }
    }
    call_free(c);
}

/* The runner's accepting hook (a worker, in the turn's first store job,
 * so the accept costs no store job of its own): the turn runs on the
 * task's context unless the message was refused or is a retry. */
static int send_accepting(struct store *st, void *ud, const char **session_id, int *session_new)
{
    struct call *c = ud;
    op_send_prepare(st, c);
    if (c->err || c->dup)
        return 1;
    *session_id = c->context_id;
    *session_new = c->new_context && c->named_context;
    return 0;
}

/* Validates params.message and configuration; 0 or an error answered. */
static int send_parse(struct call *c)
{
    json_t *p = c->body ? json_object_get(c->body, "params") : NULL;
    json_t *msg = json_object_get(p, "message");
    json_t *cfg = json_object_get(p, "configuration");
    char *why = c->why;
    size_t wl = sizeof c->why;
    int code = A2A_INVALID_PARAMS;
    const char *mid = json_string_value(json_object_get(msg, "messageId"));
    const json_t *ctx = json_object_get(msg, "contextId");
    const json_t *tid = json_object_get(msg, "taskId");
    const char *role = json_string_value(json_object_get(msg, "role"));
    json_t *parts = NULL;
    why[0] = 0;
    if (!json_is_object(msg))
        snprintf(why, wl, "params.message must be an object");
    else if (!mid || !*mid || strlen(mid) > 200)
        snprintf(why, wl, "params.message.messageId must be a string of 1..200 characters");
    else if (ctx && !json_is_null(ctx) &&
             (!json_is_string(ctx) || json_string_length(ctx) == 0 ||
              json_string_length(ctx) > ID_MAX))
        snprintf(why, wl, "params.message.contextId must be a string of 1..64 characters");
    else if (tid && !json_is_null(tid) &&
             (!json_is_string(tid) || json_string_length(tid) == 0 ||
              json_string_length(tid) > ID_MAX))
        snprintf(why, wl, "params.message.taskId must be a string of 1..64 characters");
    else if (json_object_get(msg, "role") &&
             (!role || (strcmp(role, "user") != 0 && strcmp(role, "ROLE_USER") != 0)))
        snprintf(why, wl, "params.message.role must be the user's");
    else if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
        snprintf(why, wl, "params.configuration must be an object");
    else if ((code = a2a_parts_decode(json_object_get(msg, "parts"), &parts, why, wl)) == 0)
        code = A2A_INVALID_PARAMS;
    if (why[0]) {
        reply_error(c, code, why, NULL);
        return -1;
    }
    c->text = a2a_parts_text(parts);
    c->data = a2a_parts_data(parts);
    c->message_id = strdup(mid);
    c->context_id = json_is_string(ctx) ? strdup(json_string_value(ctx)) : NULL;
    c->task_id = json_is_string(tid) ? strdup(json_string_value(tid)) : NULL;
    /* the history keeps the message without its data parts: payment data
     * must not be stored or echoed back */
    json_t *kept = json_array();
    size_t i;
    json_t *pt;
    json_array_foreach(parts, i, pt) {
        if (json_object_get(pt, "text"))
            json_array_append(kept, pt);
    }
    c->msg = json_pack("{s:s,s:s,s:o}", "messageId", mid, "role", "user", "parts", kept);
    char awhy[200] = "";
    int act = a2a_ucp_action(parts, &c->action_tool, &c->action_args, awhy, sizeof awhy);
    char *canon = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
    if (canon)
        store_idem_fingerprint("A2A", "message", canon, strlen(canon), c->fingerprint);
    free(canon);
    json_decref(parts);
    if (act < 0) {
        reply_error(c, A2A_INVALID_PARAMS, awhy[0] ? awhy : "invalid UI action", NULL);
        return -1;
    }
    if (act == 0) {
        c->action_tool = NULL;
        c->action_args = NULL;
    }
    if (!c->text || !c->msg || !c->message_id || !c->fingerprint[0]) {
        reply_error(c, A2A_INTERNAL_ERROR, "out of memory", NULL);
        return -1;
    }
    if (strlen(c->text) > TEXT_MAX) {
        reply_error(c, A2A_INVALID_PARAMS, "params.message: text parts over 16384 bytes", NULL);
        return -1;
    }
    if (!c->text[0] && !act && !c->data) {
        reply_error(c, A2A_INVALID_PARAMS, "params.message.parts carry no text or data", NULL);
        return -1;
    }
    if (!c->text[0]) { /* a data-only message (payment data, an action) */
        free(c->text);
        c->text = strdup(act ? "(UI action)" : "(data)");
    }
    const json_t *bl = json_object_get(cfg, "blocking");
    const json_t *ri = json_object_get(cfg, "returnImmediately");
    c->immediate = (json_is_boolean(bl) && !json_is_true(bl)) || json_is_true(ri);
    const json_t *hl = json_object_get(cfg, "historyLength");
    c->hist = json_is_integer(hl) && json_integer_value(hl) >= 0 ? (int)json_integer_value(hl)
                                                                  : -1;
    return c->text ? 0 : -1;
}

static void m_send(struct call *c)
{
    if (send_parse(c) != 0) {
        call_free(c);
        return;
    }
    id_new("turn_", c->turn, sizeof c->turn);
    struct turn_start ts = {
        .owner = c->owner,
        .text = c->text,
        .data = c->data,
        .busy_policy = -1,
        .request_id = c->r->request_id,
        .stream = c->stream,
        .action_tool = c->action_tool,
        .action_args = c->action_args,
        .started = turn_started,
        .turn_id = c->turn,
        .accepting = send_accepting,
        .finishing = send_finishing,
    };
    if (agent_turn_start(F.ag, c->r->loop, &ts, turn_done, c) != 0) {
        /* nothing was accepted */
        reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry",
                    json_pack("{s:s}", "code", "busy"));
        call_free(c);
    }
}

/* ---- GetTask / CancelTask / SubscribeToTask ---- */

static int fn_cancel(json_t *task, void *arg)
{
    struct call *c = arg;
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
    struct call *c = arg;
    int rc = c->m == A2A_M_CANCEL ? a2a_task_mutate(st, c->task_id, c->owner, fn_cancel, c, &c->task)
                                  : a2a_task_load(st, c->task_id, c->owner, &c->task);
    if (rc == AGENTD_ENOTFOUND) {
        c->err = A2A_TASK_NOT_FOUND;
        snprintf(c->why, sizeof c->why, "no task %.64s", c->task_id);
        return 0;
    }
    if (rc == A2A_TASK_ENDED) {
        c->err = A2A_TASK_NOT_CANCELABLE;
        snprintf(c->why, sizeof c->why, "task %.64s is %s and cannot be canceled", c->task_id,
                 json_string_value(json_object_get(c->task, "state")));
        return 0;
    }
    if (rc)
        return store_fail(c, rc), 0;
    /* a running turn stops at its next step boundary */
    if (c->m == A2A_M_CANCEL && c->cancel_running)
        store_turn_interrupt(st, json_string_value(json_object_get(c->task, "contextId")));
    return 0;
}

static void task_got(int status, void *arg)
{
    (void)status;
    struct call *c = arg;
    if (c->err) {
        reply_error(c, c->err, c->why, c->err_data);
        c->err_data = NULL;
    } else if (c->m == A2A_M_SUBSCRIBE) {
        const char *st = json_string_value(json_object_get(c->task, "state"));
        if (a2a_state_terminal(st)) {
            snprintf(c->why, sizeof c->why, "task %.64s is %s: nothing to subscribe to",
                     c->task_id, st);
            reply_error(c, A2A_UNSUPPORTED_OPERATION, c->why, NULL);
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
        reply_result(c, a2a_encode_task(c->task, c->ver, c->hist, 1));
    }
    call_free(c);
}

static void m_task(struct call *c)
{
    json_t *p = json_object_get(c->body, "params");
    const char *id = json_string_value(json_object_get(p, "id"));
    const json_t *hl = json_object_get(p, "historyLength");
    c->hist = -1;
    if (!id || !*id || strlen(id) > ID_MAX) {
        reply_error(c, A2A_INVALID_PARAMS, "params.id must be a task id", NULL);
        call_free(c);
        return;
    }
    if (hl && !json_is_null(hl)) {
        if (!json_is_integer(hl) || json_integer_value(hl) < 0) {
            reply_error(c, A2A_INVALID_PARAMS, "params.historyLength must be an integer >= 0",
                        NULL);
            call_free(c);
            return;
        }
        c->hist = (int)json_integer_value(hl);
    }
    c->task_id = strdup(id);
    if (!c->task_id || store_async(F.st, c->r->loop, op_task_get, c, task_got) != 0) {
        reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry", NULL);
        call_free(c);
    }
}

/* ---- ListTasks ---- */

static int op_task_list(struct store *st, void *arg)
{
    struct call *c = arg;
    struct store_task *v = NULL;
    size_t n = 0;
    int want = c->q.limit;
    c->q.limit = want + 1; /* one more tells whether a next page exists */
    int rc = store_task_list_owner(st, &c->q, &v, &n);
    if (rc)
        return store_fail(c, rc), 0;
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
    struct call *c = arg;
    if (c->err) {
        reply_error(c, c->err, c->why, c->err_data);
        c->err_data = NULL;
    } else {
        reply_result(c, json_pack("{s:O,s:s,s:i}", "tasks", c->list, "nextPageToken",
                                  c->next_token ? c->next_token : "", "pageSize", c->q.limit - 1));
    }
    call_free(c);
}

static void m_list(struct call *c)
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
        if (!t || at < 0 || *end != '.' || !end[1] || strlen(end + 1) > ID_MAX)
            why = "params.pageToken is not a token from an earlier ListTasks";
        else {
            c->q.before_updated = at;
            c->q_before = strdup(end + 1);
            c->q.before_id = c->q_before;
        }
    }
    if (why) {
        reply_error(c, A2A_INVALID_PARAMS, why, NULL);
        call_free(c);
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
    if (store_async(F.st, c->r->loop, op_task_list, c, list_done) != 0) {
        reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry", NULL);
        call_free(c);
    }
}

/* ---- the caller's UCP profile (UCP-Agent), as UCP REST takes it ---- */

static void m_send_go(struct call *c)
{
    c->r->on_abort = NULL;
    c->r->abort_ud = NULL;
    m_send(c);
}

static void profile_done(const struct profiles_result *res, void *ud)
{
    struct call *c = ud;
    if (!(res->neg.caps & UCP_CAP_CHECKOUT)) {
        c->r->on_abort = NULL;
        reply_error(c, A2A_INVALID_PARAMS,
                    "UCP-Agent: the platform profile shares no capability with this business: "
                    "it must list " UCP_CAP_CHECKOUT_NAME,
                    json_pack("{s:s}", "code", "capabilities_incompatible"));
        call_free(c);
        return;
    }
    m_send_go(c);
}

static void profile_abort(struct http_req *r, void *ud)
{
    (void)r;
    call_free(ud); /* shutdown while the profile was fetched */
}

/* A UCP-Agent header is parsed and its profile resolved (cache, or a fetch
 * through the SSRF guard) before the message runs; none is fine (A2A
 * clients need not be UCP platforms). The checkout a turn returns still
 * carries every capability agentd has: the runner does not negotiate. */
static void send_with_profile(struct call *c)
{
    const char *hdr = http_req_header(c->r, "UCP-Agent");
    if (!hdr) {
        m_send(c);
        return;
    }
    struct ucp_agent agent;
    struct agentd_error why = { 0 };
    unsigned flags = F.production ? 0 : UCP_AGENT_ALLOW_HTTP;
    int bad = ucp_agent_parse(hdr, flags, &agent, &why) != 0;
    if (bad && !flags && ucp_agent_parse(hdr, UCP_AGENT_ALLOW_HTTP, &agent, NULL) == 0 &&
        profiles_allowlisted(profiles_default(), agent.profile))
        bad = 0;
    if (bad) {
        snprintf(c->why, sizeof c->why, "invalid UCP-Agent header: %.200s", why.msg);
        reply_error(c, A2A_INVALID_PARAMS, c->why, json_pack("{s:s}", "code", "invalid"));
        call_free(c);
        return;
    }
    struct profiles_result res;
    int rc = profiles_resolve(profiles_default(), c->r->loop, agent.profile, &res, &c->wait,
                              profile_done, c);
    if (rc == PROFILES_PENDING) {
        c->r->on_abort = profile_abort;
        c->r->abort_ud = c;
        return;
    }
    profile_done(&res, c);
}

/* ---- dispatch ---- */

/* The header that activated the UCP extension (A2A-Extensions in 1.0,
 * X-A2A-Extensions in 0.3; either is accepted), or NULL. */
static const char *ucp_activated(struct http_req *r)
{
    static const char *names[] = { "A2A-Extensions", "X-A2A-Extensions" };
    for (size_t i = 0; i < 2; i++) {
        const char *v = http_req_header(r, names[i]);
        if (v && strstr(v, A2A_UCP_EXTENSION_URI))
            return names[i];
    }
    return NULL;
}

static void h_rpc(struct http_req *r)
{
    struct call *c = calloc(1, sizeof *c);
    if (!c) {
        http_reply_err(r, AGENTD_ENOMEM, NULL);
        return;
    }
    c->r = r;
    c->loop = r->loop;
    snprintf(c->owner, sizeof c->owner, "%s", r->principal);
    c->ext_header = ucp_activated(r);
    json_error_t je;
    const char *ct = http_req_header(r, "Content-Type");
    c->body = r->body_len ? json_loadb(r->body, r->body_len, 0, &je) : NULL;
    struct a2a_rpc rpc = { 0 };
    if (ct && !strcasestr(ct, "json")) {
        reply_error(c, A2A_CONTENT_TYPE_NOT_SUPPORTED,
                    "the request must be JSON (Content-Type: application/json)", NULL);
        call_free(c);
        return;
    }
    if (!c->body) {
        if (!r->body_len)
            snprintf(c->why, sizeof c->why, "a JSON-RPC request body is required");
        else
            snprintf(c->why, sizeof c->why, "invalid JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
        reply_error(c, A2A_PARSE_ERROR, c->why, NULL);
        call_free(c);
        return;
    }
    int code = a2a_envelope_check(c->body, &rpc, c->why, sizeof c->why);
    c->id = rpc.id ? json_incref((json_t *)rpc.id) : NULL;
    if (code) {
        reply_error(c, code, c->why, NULL);
        call_free(c);
        return;
    }
    const char *vh = http_req_header(r, "A2A-Version");
    c->ver = a2a_version_parse(vh);
    if (c->ver < 0) {
        c->ver = A2A_V03;
        reply_error(c, A2A_VERSION_NOT_SUPPORTED,
                    "A2A-Version must be 1.0 (or absent for 0.3)",
                    json_pack("{s:[s,s]}", "supportedVersions", "1.0", "0.3"));
        call_free(c);
        return;
    }
    c->m = a2a_method_lookup(rpc.method, c->ver);
    http_req_note(r, "rpc_method", rpc.method);
    switch (c->m) {
    case A2A_M_UNKNOWN:
        snprintf(c->why, sizeof c->why, "method %.80s does not exist in A2A %s", rpc.method,
                 c->ver == A2A_V10 ? "1.0" : "0.3 (send A2A-Version: 1.0 for 1.0 names)");
        reply_error(c, A2A_METHOD_NOT_FOUND, c->why, NULL);
        break;
    case A2A_M_PUSH:
        reply_error(c, A2A_PUSH_NOT_SUPPORTED, "push notifications are not supported", NULL);
        break;
    case A2A_M_CARD: {
        json_t *card = json_loads(a2a_card_text(), 0, &je);
        reply_result(c, card);
        break;
    }
    case A2A_M_SEND:
    case A2A_M_STREAM:
        if (!c->ext_header) {
            reply_error(c, A2A_EXTENSION_REQUIRED,
                        "this agent requires the UCP extension: send the header "
                        "X-A2A-Extensions: " A2A_UCP_EXTENSION_URI,
                        json_pack("{s:[s]}", "requiredExtensions", A2A_UCP_EXTENSION_URI));
            break;
        }
        c->stream = c->m == A2A_M_STREAM;
        send_with_profile(c);
        return;
    case A2A_M_GET:
    case A2A_M_CANCEL:
    case A2A_M_SUBSCRIBE:
        m_task(c);
        return;
    case A2A_M_LIST:
        m_list(c);
        return;
    }
    call_free(c);
}

int a2a_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev,
               const char *public_url, int production)
{
    F.production = production;
    F.ag = ag;
    F.st = st;
    F.ev = ev;
    F.public_url = public_url;
    a2a_stream_init(st, ev);
    int rc = a2a_card_routes(rt, public_url);
    rc |= router_add(rt, HTTP_POST, "/", h_rpc, NULL);
    return rc;
}
