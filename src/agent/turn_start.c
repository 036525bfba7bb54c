/* A turn's start: agent_turn_start (from the fronts), then on a store worker
 * its session (loaded or made), claim, user message and history in one batch,
 * and the wait while another turn holds the session. Steps: runner.c. */
#include "agent/runner.h"
#include "agent/turn.h"
#include "agent/turn_metrics.h"
#include "commerce/payment.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/jsondump.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/reqid.h"
#include "core/seal.h"
#include "store/async.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#define fail turn_fail
#define HISTORY_MAX 200 /* messages of a session sent to the model */
/* A turn waiting for its session polls the claim with this backoff. */
#define WAIT_FIRST_MS 50
#define WAIT_MAX_MS 100

/* ---- the start: session, turn row, user message, history (worker) ---- */

/* Time-ordered (core/reqid.h): a turn's rows then append to their indexes. */
static char *new_id(const char *prefix)
{
    char id[48];
    id_new_ordered(prefix, id, sizeof id);
    return strdup(id);
}

/* The session: loaded (its owner checked, its context kept) or created. */
static int begin_session(struct store *st, struct turn *t)
{
    int rc;
    if (t->session_id && t->session_empty) {
        /* the front just created it, empty: nothing to read back */
        t->ctx = json_object();
        rc = t->ctx ? 0 : AGENTD_ENOMEM;
    } else if (t->session_id) {
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
        t->session_id = new_id("ses_");
        t->ctx = t->req_policy >= 0
                     ? json_pack("{s:s}", "busy_policy", agent_busy_policy_name(t->req_policy))
                     : json_object();
        char *text = t->ctx ? jsondump(t->ctx, JSON_COMPACT, NULL) : NULL;
        struct store_session s = { .id = t->session_id, .owner = t->owner, .context = text };
        rc = t->session_id && text ? store_session_create(st, &s) : AGENTD_ENOMEM;
        free(text);
        t->session_empty = 1; /* its id is known to nobody else yet */
    }
    if (rc == 0) {
        int p = agent_busy_policy_parse(
            json_string_value(json_object_get(t->ctx, "busy_policy")));
        t->policy = t->req_policy >= 0 ? t->req_policy : p >= 0 ? p : t->ag->busy_policy;
        t->session_ready = 1;
    }
    return rc;
}

int turn_load_history(struct store *st, struct turn *t, size_t keep)
{
    struct store_message *v = NULL;
    size_t n = 0;
    int rc = store_message_tail(st, t->session_id, HISTORY_MAX + (int)keep, &v, &n);
    size_t from = n > keep ? n - keep : 0, bytes = 0, kept = 0;
    for (size_t i = from; i < n; i++)
        kept += strlen(v[i].parts) + 1;
    /* earlier messages, newest first, while they fit both windows */
    int64_t max = t->ag->history_max_bytes;
    while (from > 0 && n - from < HISTORY_MAX + keep) {
        size_t len = strlen(v[from - 1].parts) + 1;
        if (max > 0 && bytes + len > (size_t)max)
            break;
        bytes += len;
        from--;
    }
    /* never start the window on a tool result: its call would be missing */
    while (from + keep < n && strcmp(v[from].role, "tool") == 0)
        from++;
    if (t->conv_text) /* the window, and an eighth more for this turn's steps */
        buf_reserve(&t->conv, (bytes + kept) + (t->conv.len + bytes + kept) / 8);
    for (size_t i = from; rc == 0 && i < n; i++)
        rc = turn_conv_add(t, v[i].parts, NULL);
    store_message_list_free(v, n);
    return rc;
}

/* The client's data, sealed under the turn id when the agent has a keyring:
 * it may carry a payment credential (a2a.ucp.checkout.payment_data). Data
 * holding a card number (a test card for the mock handler) is not kept at
 * all: a card number lives in memory only, so a turn resumed after a crash
 * asks for it again, as it does when the data is gone. */
static int input_data(const struct turn *t, json_t *in)
{
    char where[128];
    if (payment_find_pan(t->data, where, sizeof where) != 0)
        return 0;
    if (!t->ag->keyring)
        return json_object_set(in, "data", t->data) ? AGENTD_ENOMEM : 0;
    char *text = jsondump(t->data, JSON_COMPACT, NULL), *sealed = NULL;
    int rc = text ? seal_seal(t->ag->keyring, t->turn_id, text, strlen(text), &sealed)
                  : AGENTD_ENOMEM;
    if (text)
        explicit_bzero(text, strlen(text));
    free(text);
    if (rc == 0 && json_object_set_new(in, "data_sealed", json_string(sealed)))
        rc = AGENTD_ENOMEM;
    free(sealed);
    return rc;
}

/* What a resumed turn needs besides its checkpoints: the client's data and
 * the front's idempotency key. Dropped from the store when the turn ends. */
static char *turn_input(const struct turn *t)
{
    json_t *in = json_object();
    if (in && t->data && input_data(t, in)) {
        json_decref(in);
        return NULL;
    }
    if (t->idem_key)
        json_object_set_new(in, "idem_key", json_string(t->idem_key));
    if (t->action_tool) /* a resumed action turn answers without the model too */
        json_object_set_new(in, "action", json_pack("{s:s,s:O}", "tool", t->action_tool, "args",
                                                    t->action_args));
    if (t->request_id[0])
        json_object_set_new(in, "request_id", json_string(t->request_id));
    char *text = in ? jsondump(in, JSON_COMPACT, NULL) : NULL;
    json_decref(in);
    return text;
}

static int begin_tx(struct store *st, struct turn *t)
{
    int rc = 0;
    t->busy = 0;
    if (t->accepting) { /* once: the front's accept, in this job */
        int (*accepting)(struct store *, void *, const char **, int *) = t->accepting;
        const char *sid = NULL;
        int fresh = 0;
        t->accepting = NULL;
        if (accepting(st, t->ud, &sid, &fresh) != 0) {
            t->refused = 1;
            return 0;
        }
        t->session_id = sid ? strdup(sid) : NULL;
        t->session_empty = fresh && t->session_id;
        if (!t->session_id)
            rc = AGENTD_ENOMEM;
    }
    if (rc == 0 && !t->session_ready)
        rc = turn_check_daily(st, t); /* before a new session is made for nothing */
    if (rc == 0 && !t->session_ready)
        rc = begin_session(st, t);
    if (rc == 0 && !t->turn_id) {
        t->turn_id = new_id("turn_");
        if (!t->turn_id)
            rc = AGENTD_ENOMEM;
    }
    if (rc == 0) {
        char *input = turn_input(t);
        struct store_turn tr = { .id = t->turn_id, .session_id = t->session_id,
                                 .instance = t->ag->instance, .input = input };
        /* lease 0: a running turn always blocks its session here, however
         * stale; only the recovery sweep takes over a dead one (resumed or
         * failed with its events), never a new message silently */
        rc = !input ? AGENTD_ENOMEM : store_turn_begin(st, &tr, 0);
        free(input);
        if (rc == AGENTD_ECONFLICT) { /* another turn runs on this session */
            if (t->policy == AGENT_BUSY_REJECT) {
                fail(t, rc, 409, "turn_in_progress",
                     "another turn is running on this session; retry when it has answered");
                return rc;
            }
            if (t->policy == AGENT_BUSY_INTERRUPT)
                store_turn_interrupt(st, t->session_id); /* may have just finished */
            t->busy = 1;
            t->session_empty = 0; /* the other turn writes messages */
            return 0;
        }
        t->claimed = rc == 0;
    }
    if (rc == 0 && !t->session_empty) /* a new session has no history: no read */
        rc = turn_load_history(st, t, 0);
    if (rc == 0) {
        json_t *user = json_pack("{s:s,s:s}", "role", "user", "content", t->text);
        struct evs e = { 0 };
        json_t *started = json_pack("{s:s,s:s,s:b}", "turn_id", t->turn_id, "message", t->text,
                                    "resumed", 0);
        if (started && t->flag_source[0]) /* the input guard let it by, flagged */
            json_object_set_new(started, "input_flagged",
                                json_pack("{s:s,s:s}", "source", t->flag_source, "reason",
                                          t->flag_reason));
        turn_evs_add(&e, t, "turn-started", started);
        /* outside a front's batch, one of our own: the audit row commits
         * with the user's message, not on its own */
        int own = !t->batched && store_batch_begin(st) == 1;
        t->batched |= own;
        rc = user ? turn_record_msg(st, t, "user_message", user, &e) : AGENTD_ENOMEM;
        if (rc == 0) {
            turn_audit(st, t, "turn.start", "ok");
            turn_guard_audit(st, t); /* a flag: the same commit */
        }
        if (own)
            rc = turn_own_batch_end(st, t, rc);
        if (rc == 0 && e.n)
            t->started_seq = e.v[0].seq;
        turn_evs_clear(&e);
        json_decref(user);
    }
    if (rc != 0 && !t->code[0])
        fail(t, rc, agentd_err_http(rc), agentd_err_code(rc), "%s", agentd_err_msg(rc));
    return rc;
}

/* A front's accept, the new session, the turn's claim and the user's
 * message commit together (one store batch): one commit per turn start. */
static int op_begin(struct store *st, void *arg)
{
    struct turn *t = arg;
    if (store_batch_begin(st) != 1)
        return begin_tx(st, t);
    t->batched = 1;
    int rc = begin_tx(st, t);
    t->batched = 0;
    int crc = store_batch_end(st);
    if (crc != 0) { /* nothing of it was kept: not accepted, not claimed */
        t->claimed = 0;
        t->publish_due = 0;
        if (!t->refused && rc == 0) {
            fail(t, crc, agentd_err_http(crc), agentd_err_code(crc), "%s", agentd_err_msg(crc));
            rc = crc;
        }
    }
    if (t->publish_due) {
        t->publish_due = 0;
        turn_publish(t);
    }
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
        turn_finish(t);
        return;
    }
    if (turn_store_async(t, op_begin, begin_done) != 0) {
        fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        turn_finish(t);
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
        turn_finish(t);
        return;
    }
    if (!t->wait_ev)
        t->wait_ev = evtimer_new(loop_base(t->loop), on_wait, t);
    if (!t->wait_ev) {
        fail(t, AGENTD_ENOMEM, 503, "busy", "the server is busy");
        turn_finish(t);
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
    if (t->refused) { /* not a turn: not counted, nothing to end */
        turn_metrics_inflight(-1);
        struct turn_result res;
        turn_result_of(t, NULL, &res);
        t->done(&res, t->ud);
        turn_free(t);
        return;
    }
    if (status != 0) {
        turn_finish(t);
        return;
    }
    if (t->busy) {
        wait_for_session(t);
        return;
    }
    if (t->started)
        t->started(t->session_id, t->turn_id, t->started_seq, t->ud);
    if (t->action_tool)
        turn_action_go(t);
    else
        turn_llm_step(t);
}

int agent_turn_start(struct agent *ag, struct loop *loop, const struct turn_start *ts,
                     turn_done_fn done, void *ud)
{
    struct turn *t = turn_alloc(ag, loop);
    if (!t)
        return AGENTD_ENOMEM;
    t->done = done;
    t->ud = ud;
    t->started = ts->started;
    t->finishing = ts->finishing;
    t->accepting = ts->accepting;
    t->stream = ts->stream;
    t->req_policy = ts->busy_policy >= 0 && ts->busy_policy <= AGENT_BUSY_INTERRUPT
                        ? ts->busy_policy : -1;
    t->owner = strdup(ts->owner);
    const char *sid = ts->accepting ? NULL : ts->session_id;
    t->session_id = sid ? strdup(sid) : NULL;
    t->text = strdup(ts->text);
    t->data = ts->data ? json_deep_copy(ts->data) : NULL;
    t->idem_key = ts->idem_key ? strdup(ts->idem_key) : NULL;
    t->turn_id = ts->turn_id ? strdup(ts->turn_id) : NULL;
    t->session_empty = ts->session_new && sid;
    if (ts->action_tool) {
        t->action_tool = strdup(ts->action_tool);
        t->action_args = json_is_object(ts->action_args) ? json_deep_copy(ts->action_args)
                                                         : json_object();
    }
    snprintf(t->request_id, sizeof t->request_id, "%s", ts->request_id ? ts->request_id : "");
    t->tctx = (struct tools_ctx){ .shop = ag->shop, .merchant = ag->merchant, .owner = t->owner,
                                  .client_data = t->data };
    if (!t->owner || !t->text || (sid && !t->session_id) || (ts->data && !t->data) ||
        (ts->idem_key && !t->idem_key) || (ts->turn_id && !t->turn_id) ||
        (ts->action_tool && (!t->action_tool || !t->action_args))) {
        turn_free(t);
        return AGENTD_ENOMEM;
    }
    turn_link(t);
    if (!t->action_tool && turn_screen(t)) /* a UI action carries no free text */
        return 0;
    int rc = turn_store_async(t, op_begin, begin_done);
    if (rc != 0) {
        turn_metrics_inflight(-1);
        turn_free(t);
    }
    return rc;
}

void turn_begin(struct turn *t)
{
    if (turn_store_async(t, op_begin, begin_done) != 0) {
        fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        turn_finish(t);
    }
}
