/* A2A SendMessage / SendStreamingMessage: the caller's UCP profile, the
 * messageId claim, the context and task found or made, the turn run, its outcome written to the task. */
#define _GNU_SOURCE
#include "api/a2a.h"
#include "agent/events.h"
#include "agent/runner.h"
#include "api/a2a_call.h"
#include "api/a2a_task_model.h"
#include "api/a2a_ucp.h"
#include "api/a2a_wire.h"
#include "api/profiles.h"
#include "commerce/ucp.h"
#include "core/reqid.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/failpoint.h"
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

/* Members set one by one: json_pack reads its format string and checks
 * every key on each call, a few thousand instructions per tree on every
 * turn. Keys are literals (no UTF-8 check); a NULL value (no memory) makes
 * the set fail, which the callers' checks of the result catch. */
static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new_nocheck(o, k, v ? json_string(v) : NULL);
}

/* A value agentd made itself (an id, a state, a stamp): ASCII, so not
 * checked again for UTF-8. */
static json_t *own_str(const char *v)
{
    return v ? json_stringn_nocheck(v, strlen(v)) : NULL;
}

/* {"text": s} */
static json_t *text_part(const char *s)
{
    json_t *p = json_object();
    set_str(p, "text", s);
    return p;
}

/* ---- SendMessage: find the context and the task, then accept ---- */

/* A messageId already held (ex, consumed): a different message under it is
 * refused, a finished one answers with its task (c->dup). Returns
 * AGENTD_EBUSY while it is still being claimed (wait, then look again),
 * else AGENTD_EEXIST with c->err or c->dup set. */
static int claim_seen(struct store *st, struct a2a_call *c, struct store_idem *ex)
{
    int rc = AGENTD_EEXIST;
    if (strcmp(ex->fingerprint, c->fingerprint) != 0) {
        c->err = A2A_INVALID_PARAMS;
        agentd_fail(&c->e, AGENTD_ECONFLICT, NULL, NULL, "message.messageId %s was already used "
                    "for a different message", c->message_id);
    } else if (strcmp(ex->state, STORE_IDEM_DONE) == 0) {
        json_decref(c->task);
        c->task = NULL;
        int lr = a2a_task_load(st, ex->body, c->owner, &c->task);
        if (lr == AGENTD_ENOTFOUND) {
            c->err = A2A_TASK_NOT_FOUND;
            agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "the task of message %s has expired",
                        c->message_id);
        } else if (lr) {
            a2a_store_fail(c, lr);
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
static int claim_wait(struct a2a_call *c, int *waits)
{
    if (++*waits > 100) {
        c->err = A2A_INTERNAL_ERROR;
        agentd_fail(&c->e, AGENTD_EBUSY, NULL, NULL, "message %s is still being accepted; retry",
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
static void refuse_unless_seen(struct store *st, struct a2a_call *c)
{
    char key[sizeof MSG_IDEM_PREFIX + 256];
    snprintf(key, sizeof key, MSG_IDEM_PREFIX "%s", c->message_id);
    int err = c->err, waits = 0;
    struct agentd_error why = c->e;
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
            a2a_store_fail(c, rc);
        else if (claim_seen(st, c, ex) == AGENTD_EBUSY && claim_wait(c, &waits) == 0)
            continue;
        break;
    }
    if (c->err || c->dup) {
        json_decref(data);
        return;
    }
    c->err = err;
    c->e = why;
    c->err_data = data;
}

/* The context: the caller's (c->new_context = 0), or one to create with
 * the task (a new or client-chosen id: c->new_context = 1). */
static int find_context(struct store *st, struct a2a_call *c)
{
    c->new_context = 0;
    if (!c->context_id) {
        char id[48];
        id_new_ordered("ses_", id, sizeof id);
        c->context_id = strdup(id);
        c->new_context = c->named_context = 1;
        return c->context_id ? 0 : a2a_store_fail(c, AGENTD_ENOMEM);
    }
    struct store_session *s = NULL;
    int rc = store_session_get(st, c->context_id, &s);
    int mine = rc == 0 && strcmp(s->owner, c->owner) == 0;
    store_session_free(s);
    if (rc == 0 && mine)
        return 0;
    if (rc != 0 && rc != AGENTD_ENOTFOUND)
        return a2a_store_fail(c, rc);
    if (rc == 0) {
        c->err = A2A_INVALID_PARAMS;
        agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "message.contextId names no context of "
                    "yours");
        return AGENTD_ENOTFOUND;
    }
    c->new_context = 1; /* a client-chosen (or expired) contextId starts that context */
    return 0;
}

/* A task row read to continue: its model, and its columns as read (what
 * the accept's compare-and-swap expects). */
static int take_row(struct a2a_call *c, const struct store_task *t)
{
    c->task = a2a_task_model(t);
    c->prior_state = strdup(t->state);
    c->prior_doc = strdup(t->artifacts);
    return c->task && c->prior_state && c->prior_doc ? 0 : a2a_store_fail(c, AGENTD_ENOMEM);
}

/* The task with its id (checked), else the context's open task, else a
 * new one; c->since := a seq before any event of the turn to come. */
static int find_task(struct store *st, struct a2a_call *c)
{
    if (c->task_id) {
        struct store_task *t = NULL;
        int rc = store_task_get(st, c->task_id, &t);
        if (rc == 0 && strcmp(t->owner, c->owner) != 0)
            rc = AGENTD_ENOTFOUND;
        if (rc == AGENTD_ENOTFOUND) {
            c->err = A2A_TASK_NOT_FOUND;
            agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "message.taskId: no task %.64s",
                        c->task_id);
        } else if (rc) {
            a2a_store_fail(c, rc);
        } else if (c->context_id && strcmp(t->context_id, c->context_id) != 0) {
            c->err = A2A_INVALID_PARAMS;
            agentd_fail(&c->e, AGENTD_EINVAL, NULL, NULL, "message.contextId does not match the "
                        "task's context %.64s", t->context_id);
            rc = AGENTD_EINVAL;
        } else if (a2a_state_terminal(t->state)) {
            c->err = A2A_UNSUPPORTED_OPERATION;
            agentd_fail(&c->e, AGENTD_ECONFLICT, NULL, NULL, "task %.64s is %s: a terminal task "
                        "takes no more messages (send without taskId to start a new one)",
                        c->task_id, t->state);
            rc = AGENTD_ECONFLICT;
        } else {
            free(c->context_id);
            c->context_id = strdup(t->context_id);
            rc = c->context_id ? take_row(c, t) : a2a_store_fail(c, AGENTD_ENOMEM);
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
            return a2a_store_fail(c, rc);
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
    id_new_ordered("task_", id, sizeof id);
    json_t *t = json_object();
    json_object_set_new_nocheck(t, "id", own_str(id));
    set_str(t, "contextId", c->context_id);
    json_object_set_new_nocheck(t, "state", own_str("submitted"));
    json_object_set_new_nocheck(t, "artifacts", json_array());
    json_object_set_new_nocheck(t, "history", json_array());
    if (json_object_size(t) != 5) {
        json_decref(t);
        return a2a_store_fail(c, AGENTD_ENOMEM);
    }
    c->task = t;
    return 0;
}

/* The user's message joins the task, which works on it; the task names the
 * turn to come (chosen here, so streams and SubscribeToTask find it with no
 * write when it starts). A continued task's previous turn is kept in
 * c->prior_turn for a turn that never runs. */
static void task_accept_message(json_t *task, struct a2a_call *c)
{
    /* c->msg itself (made for this by send_parse, nothing else reads it):
     * the ids go on it, set again in place by a retried accept; nothing
     * changes it after the accept (see task_fork) */
    json_t *m = c->msg;
    json_object_set_new_nocheck(m, "contextId", json_string(c->context_id));
    json_object_set_nocheck(m, "taskId", json_object_get(task, "id"));
    json_array_append(json_object_get(task, "history"), m);
    json_object_set_new_nocheck(task, "state", own_str("working"));
    json_decref(c->prior_turn);
    /* only a continued task has a previous turn to name again */
    c->prior_turn = c->prior_state ? json_object() : NULL;
    static const char *const keys[] = { "turnId", "turnDone", "since" };
    for (size_t i = 0; c->prior_turn && i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(task, keys[i]);
        if (v && c->prior_turn)
            json_object_set(c->prior_turn, keys[i], v);
    }
    json_object_set_new_nocheck(task, "turnId", own_str(c->turn));
    json_object_set_new_nocheck(task, "since", json_integer(c->since));
    json_object_del(task, "turnDone");
    a2a_task_stamp(task);
}

/* The worker's own copy of the accepted task for its outcome: its own top
 * level and history/artifacts arrays (fn_outcome adds to those), the
 * messages and parts shared with c->task — nobody changes them after the
 * accept, and jansson's reference counts are atomic. A deep copy cost a
 * malloc per value of the whole history on every turn. */
static json_t *task_fork(const json_t *task)
{
    json_t *f = json_copy((json_t *)task);
    static const char *const arrays[] = { "history", "artifacts" };
    for (size_t i = 0; f && i < sizeof arrays / sizeof *arrays; i++) {
        json_t *a = json_object_get(f, arrays[i]);
        json_t *own = json_is_array(a) ? json_copy(a) : NULL;
        if (a && (!own || json_object_set_new(f, arrays[i], own) != 0)) {
            json_decref(f); /* never share an array the outcome appends to */
            f = NULL;
        }
    }
    return f;
}

/* Forgets what one attempt read, before reading again. */
static void prepare_reset(struct a2a_call *c)
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
    struct a2a_call *c = arg;
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
        if (!doc || (c->prior_state && !c->prior_turn)) {
            free(doc);
            a2a_store_fail(c, AGENTD_ENOMEM);
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
            c->fin_task = task_fork(c->task); /* the worker's own copy */
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
            agentd_fail(&c->e, AGENTD_ENOTFOUND, NULL, NULL, "message.contextId names no context "
                        "of yours");
            return 0;
        }
        a2a_store_fail(c, rc);
        return 0;
    }
    a2a_store_fail(c, AGENTD_EBUSY);
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
    struct a2a_call *c = arg;
    const char *tid = json_string_value(json_object_get(cur, "id"));
    const char *state = json_string_value(json_object_get(cur, "state"));
    int canceled = state && strcmp(state, "canceled") == 0;
    json_t *parts = json_array();
    if (c->res.status == 0) {
        json_array_append_new(parts, text_part(c->res.message ? c->res.message : ""));
        json_t *pr = c->res.products ? a2a_ucp_product_results(c->res.products) : NULL;
        if (pr)
            json_array_append_new(parts, json_pack("{s:{s:o}}", "data",
                                                   A2A_KEY_PRODUCT_RESULTS, pr));
        if (c->res.checkout && (c->res.order_placed || !checkout_finished(c->res.checkout)))
            json_array_append_new(parts, json_pack("{s:{s:O}}", "data", A2A_KEY_CHECKOUT,
                                                   c->res.checkout));
    } else {
        json_array_append_new(parts, text_part(c->res.message ? c->res.message : "failed"));
        json_array_append_new(parts, json_pack("{s:{s:{s:s,s:i}}}", "data", "error", "code",
                                               c->res.code ? c->res.code : "internal_error",
                                               "httpStatus", c->res.http_status));
    }
    char mid[48];
    id_new("msg_", mid, sizeof mid);
    json_t *m = json_object();
    json_object_set_new_nocheck(m, "messageId", own_str(mid));
    json_object_set_new_nocheck(m, "role", own_str("agent"));
    json_object_set_nocheck(m, "parts", parts);
    set_str(m, "contextId", c->context_id);
    set_str(m, "taskId", tid);
    if (json_object_size(m) != 5 || !parts) { /* as json_pack: all of it or nothing */
        json_decref(m);
        m = NULL;
    }
    if (m)
        json_array_append(json_object_get(cur, "history"), m);
    if (!canceled) {
        const char *next;
        if (c->res.status == 0) {
            /* completed when this turn placed the order: the session's
             * checkout still shows an earlier task's order */
            next = c->res.order_placed ? "completed" : "input-required";
            json_t *a = json_object();
            set_str(a, "artifactId", c->res.turn_id ? c->res.turn_id : mid);
            json_object_set_new_nocheck(a, "name", own_str("answer"));
            json_object_set_nocheck(a, "parts", parts);
            if (json_object_size(a) == 3)
                json_array_append_new(json_object_get(cur, "artifacts"), a);
            else
                json_decref(a);
        } else if (!c->res.turn_id && c->prior_state) {
            next = c->prior_state; /* the turn never ran (busy, budget): as before */
        } else {
            next = "failed";
        }
        json_object_set_new_nocheck(cur, "state", json_string(next));
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
            json_object_set_new_nocheck(cur, "turnId", json_string(c->res.turn_id));
        json_object_set_new_nocheck(cur, "turnDone", json_true());
    }
    a2a_task_stamp(cur);
    return 0;
}

static int op_send_finish(struct store *st, void *arg)
{
    struct a2a_call *c = arg;
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
        if (a2a_front.ev)
            events_publish(a2a_front.ev, c->context_id); /* streams wait for this to end */
    } else {
        json_decref(cur); /* gone with its session: the answer stands alone */
    }
    return 0;
}

static void send_finished(int status, void *arg)
{
    (void)status;
    struct a2a_call *c = arg;
    if (c->r && c->res.status != 0 && !c->res.turn_id) {
        /* refused before it ran (busy, budget, rate): a JSON-RPC error */
        json_t *data = json_pack("{s:s,s:i}", "code", c->res.code ? c->res.code : "internal_error",
                                 "httpStatus", c->res.http_status);
        if (c->res.retry_after_s > 0)
            json_object_set_new(data, "retryAfter", json_integer(c->res.retry_after_s));
        json_object_set(data, "taskId", json_object_get(c->task, "id"));
        a2a_reply_error(c, c->res.http_status == 400 || c->res.http_status == 422
                           ? A2A_INVALID_PARAMS
                           : A2A_INTERNAL_ERROR,
                    c->res.message ? c->res.message : "the turn failed", data);
    } else if (c->r) {
        a2a_reply_send_result(c);
    }
    a2a_call_free(c);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* The turn's result, copied once (on the worker in send_finishing, or on
 * the loop in turn_done). */
static void res_copy(struct a2a_call *c, const struct turn_result *res)
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
    struct a2a_call *c = ud;
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

static void send_not_run(struct a2a_call *c);

static void turn_done(const struct turn_result *res, void *ud)
{
    struct a2a_call *c = ud;
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
    if (store_async(a2a_front.st, c->loop, op_send_finish, c, send_finished) != 0) {
        if (c->r)
            a2a_reply_error(c, A2A_INTERNAL_ERROR, "the task could not be saved", NULL);
        a2a_call_free(c);
    }
}

/* The turn holds its session (the task named it at the accept, so nothing
 * is written here); a returnImmediately call answers now, a stream opens
 * from the turn's first event. */
static void turn_started(const char *session_id, const char *turn_id, int64_t seq, void *ud)
{
    struct a2a_call *c = ud;
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
        a2a_reply_send_result(c);
    }
}

/* A message the accept did not let run: refused (an error), or a retry
 * of one already accepted (its first copy's task as it is now). */
static void send_not_run(struct a2a_call *c)
{
    if (c->err) {
        a2a_reply_error(c, c->err, c->e.msg, c->err_data);
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
            a2a_reply_send_result(c);
        }
    }
    a2a_call_free(c);
}

/* The runner's accepting hook (a worker, in the turn's first store job,
 * so the accept costs no store job of its own): the turn runs on the
 * task's context unless the message was refused or is a retry. */
static int send_accepting(struct store *st, void *ud, const char **session_id, int *session_new)
{
    struct a2a_call *c = ud;
    op_send_prepare(st, c);
    if (c->err || c->dup)
        return 1;
    failpoint("a2a_accepted"); /* tests: accepted, in the batch not yet committed */
    *session_id = c->context_id;
    /* a context made just now is empty. One the client named is known to
     * it, so only a batch (its turn claimed in the accept's commit) keeps
     * another turn from writing there first */
    *session_new = c->new_context && (c->named_context || store_batch_open(st));
    return 0;
}

/* Validates params.message and configuration; 0, or a negative AGENTD_E*
 * with the error answered. */
static int send_parse(struct a2a_call *c)
{
    json_t *p = c->body ? json_object_get(c->body, "params") : NULL;
    json_t *msg = json_object_get(p, "message");
    json_t *cfg = json_object_get(p, "configuration");
    const char *bad = NULL;
    const char *mid = json_string_value(json_object_get(msg, "messageId"));
    const json_t *ctx = json_object_get(msg, "contextId");
    const json_t *tid = json_object_get(msg, "taskId");
    const char *role = json_string_value(json_object_get(msg, "role"));
    json_t *parts = NULL;
    if (!json_is_object(msg))
        bad = "params.message must be an object";
    else if (!mid || !*mid || strlen(mid) > 200)
        bad = "params.message.messageId must be a string of 1..200 characters";
    else if (ctx && !json_is_null(ctx) &&
             (!json_is_string(ctx) || json_string_length(ctx) == 0 ||
              json_string_length(ctx) > A2A_ID_MAX))
        bad = "params.message.contextId must be a string of 1..64 characters";
    else if (tid && !json_is_null(tid) &&
             (!json_is_string(tid) || json_string_length(tid) == 0 ||
              json_string_length(tid) > A2A_ID_MAX))
        bad = "params.message.taskId must be a string of 1..64 characters";
    else if (json_object_get(msg, "role") &&
             (!role || (strcmp(role, "user") != 0 && strcmp(role, "ROLE_USER") != 0)))
        bad = "params.message.role must be the user's";
    else if (cfg && !json_is_null(cfg) && !json_is_object(cfg))
        bad = "params.configuration must be an object";
    if (bad) {
        a2a_reply_error(c, A2A_INVALID_PARAMS, bad, NULL);
        return AGENTD_EINVAL;
    }
    int rc = a2a_parts_decode(json_object_get(msg, "parts"), &parts, &c->e);
    if (rc != 0) {
        a2a_reply_error(c, a2a_rpc_code(rc), c->e.msg, NULL);
        return rc;
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
    c->msg = json_object();
    set_str(c->msg, "messageId", mid);
    set_str(c->msg, "role", "user");
    json_object_set_new_nocheck(c->msg, "parts", kept);
    if (json_object_size(c->msg) != 3) {
        json_decref(c->msg);
        c->msg = NULL; /* refused below: out of memory */
    }
    struct agentd_error ae;
    int act = a2a_ucp_action(parts, &c->action_tool, &c->action_args, &ae);
    a2a_message_fingerprint(msg, c->fingerprint); /* "" without memory: refused below */
    json_decref(parts);
    if (act < 0) {
        ae.msg[199] = '\0'; /* an A2A answer has always cut it there */
        a2a_reply_error(c, A2A_INVALID_PARAMS, ae.msg[0] ? ae.msg : "invalid UI action", NULL);
        return act;
    }
    if (act == 0) {
        c->action_tool = NULL;
        c->action_args = NULL;
    }
    if (!c->text || !c->msg || !c->message_id || !c->fingerprint[0]) {
        a2a_reply_error(c, A2A_INTERNAL_ERROR, "out of memory", NULL);
        return AGENTD_ENOMEM;
    }
    if (strlen(c->text) > TEXT_MAX) {
        a2a_reply_error(c, A2A_INVALID_PARAMS, "params.message: text parts over 16384 bytes", NULL);
        return AGENTD_ETOOLARGE;
    }
    if (!c->text[0] && !act && !c->data) {
        a2a_reply_error(c, A2A_INVALID_PARAMS, "params.message.parts carry no text or data", NULL);
        return AGENTD_EINVAL;
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
    return c->text ? 0 : AGENTD_ENOMEM;
}

static void m_send(struct a2a_call *c)
{
    if (send_parse(c) != 0) {
        a2a_call_free(c);
        return;
    }
    id_new_ordered("turn_", c->turn, sizeof c->turn);
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
    if (agent_turn_start(a2a_front.ag, c->r->loop, &ts, turn_done, c) != 0) {
        /* nothing was accepted */
        a2a_reply_error(c, A2A_INTERNAL_ERROR, "the server is busy; retry",
                    json_pack("{s:s}", "code", "busy"));
        a2a_call_free(c);
    }
}


/* ---- the caller's UCP profile (UCP-Agent), as UCP REST takes it ---- */

static void m_send_go(struct a2a_call *c)
{
    c->r->on_abort = NULL;
    c->r->abort_ud = NULL;
    m_send(c);
}

static void profile_done(const struct profiles_result *res, void *ud)
{
    struct a2a_call *c = ud;
    if (!(res->neg.caps & UCP_CAP_CHECKOUT)) {
        c->r->on_abort = NULL;
        a2a_reply_error(c, A2A_INVALID_PARAMS,
                    "UCP-Agent: the platform profile shares no capability with this business: "
                    "it must list " UCP_CAP_CHECKOUT_NAME,
                    json_pack("{s:s}", "code", "capabilities_incompatible"));
        a2a_call_free(c);
        return;
    }
    m_send_go(c);
}

static void profile_abort(struct http_req *r, void *ud)
{
    (void)r;
    a2a_call_free(ud); /* shutdown while the profile was fetched */
}

/* A UCP-Agent header is parsed and its profile resolved (cache, or a fetch
 * through the SSRF guard) before the message runs; none is fine (A2A
 * clients need not be UCP platforms). The checkout a turn returns still
 * carries every capability agentd has: the runner does not negotiate. */
void a2a_send_message(struct a2a_call *c)
{
    char joined[UCP_AGENT_HEADER_MAX + 2]; /* a cut join is still too long */
    const char *hdr = http_req_header_joined(c->r, "UCP-Agent", joined, sizeof joined);
    if (!hdr) {
        m_send(c);
        return;
    }
    struct ucp_agent agent;
    struct agentd_error why = { 0 };
    unsigned flags = a2a_front.production ? 0 : UCP_AGENT_ALLOW_HTTP;
    int bad = ucp_agent_parse(hdr, flags, &agent, &why) != 0;
    if (bad && !flags && ucp_agent_parse(hdr, UCP_AGENT_ALLOW_HTTP, &agent, NULL) == 0 &&
        profiles_allowlisted(profiles_default(), agent.profile))
        bad = 0;
    if (bad) {
        agentd_fail(&c->e, AGENTD_EINVAL, NULL, NULL, "invalid UCP-Agent header: %.200s", why.msg);
        a2a_reply_error(c, A2A_INVALID_PARAMS, c->e.msg, json_pack("{s:s}", "code", "invalid"));
        a2a_call_free(c);
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

