/* Crash recovery: turns whose process died are found, adopted by
 * compare-and-swap (so of several replicas exactly one takes each) and
 * resumed from their checkpoints — or failed with a reason when
 * AGENTD_TURN_RECOVERY=fail. Never silently dropped.
 *
 * Which running turns are orphans: the turn row names the process that
 * runs it ("host@pidns/pid/nonce"). On this host and in this pid
 * namespace, a pid that no longer exists (or is a zombie, or is our own pid
 * with another nonce) is dead at once — a restarted process on the same
 * machine resumes its turns at start. A restarted container has a new pid
 * namespace: like another replica, it waits for the lease. Elsewhere, a turn whose heartbeat is older than its
 * lease (turn timeout + grace) is dead: live turns heartbeat at every step
 * and never outlive their deadline.
 *
 * Resuming a turn: its checkpoints are its steps — user_message, then
 * llm_reply and tool_result steps. The session's messages hold the same
 * steps (written in the same transactions), so the model sees the
 * conversation exactly as it was. After the last llm_reply: missing tool
 * results are run (under their original operation keys: an effect applied
 * just before the crash is not applied again), then the model is asked for
 * the next step; a last llm_reply without tool calls is the answer. */
#define _GNU_SOURCE
#include "agent/budget.h"
#include "agent/events.h"
#include "agent/recover.h"
#include "agent/runner.h"
#include "agent/turn.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/pool.h"
#include "core/seal.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_PAGE 500 /* running turns read at a time */

static int orphaned(const struct agent *ag, const struct store_turn *u, int64_t now)
{
    return instance_orphaned(ag->instance, u->instance, now - u->updated_at,
                               ag->turn_timeout_ms + TURN_LEASE_GRACE_MS,
                               instance_probe, ag->lock_dir,
                               instance_pid_dead);
}

/* The turn-failed event of a turn that cannot go on (worker). */
static void fail_orphan(struct agent *ag, struct store *st, const struct store_turn *u,
                        const char *code, const char *why)
{
    json_t *d = json_pack("{s:s,s:s,s:i,s:b,s:s,s:{s:I,s:I,s:f}}", "code", code, "message", why,
                          "http_status", 503, "resumed", 0, "outcome", code, "usage", "prompt_tokens",
                          (json_int_t)u->prompt_tokens, "completion_tokens",
                          (json_int_t)u->completion_tokens, "cost_usd",
                          budget_usd_round(u->cost_usd));
    char *text = d ? json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION)) : NULL;
    json_decref(d);
    struct store_event e = { .session_id = u->session_id, .turn_id = u->id,
                             .type = "turn-failed", .data = text };
    int rc = store_turn_finish_events(st, u->id, "failed", &e, text ? 1 : 0);
    if (rc == 0 && text && ag->events)
        events_publish(ag->events, u->session_id);
    free(text);
    if (rc != 0)
        return;
    instance_recovered("turn_failed");
    log_msg(LOG_WARN, NULL, "turn %s of session %s was interrupted by a crash: failed (%s)", u->id,
            u->session_id, why);
}

/* The tool results the turn saved before the crash count for its outcome
 * as they did live (turn_note_tool), each named by its call in the reply
 * before it. */
static void note_tool_results(struct turn *t, const struct store_checkpoint *cp, size_t n)
{
    json_error_t je;
    json_t *reply = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cp[i].kind, "llm_reply") == 0) {
            json_decref(reply);
            reply = json_loads(cp[i].payload, 0, &je);
            continue;
        }
        if (strcmp(cp[i].kind, "tool_result") != 0)
            continue;
        json_t *msg = json_loads(cp[i].payload, 0, &je);
        const char *id = json_string_value(json_object_get(msg, "tool_call_id"));
        const char *content = json_string_value(json_object_get(msg, "content"));
        const char *name = NULL;
        size_t k;
        json_t *call;
        json_array_foreach(json_object_get(reply, "tool_calls"), k, call) {
            const char *cid = json_string_value(json_object_get(call, "id"));
            if (id && cid && strcmp(id, cid) == 0) {
                name = json_string_value(
                    json_object_get(json_object_get(call, "function"), "name"));
                break;
            }
        }
        json_t *result = content ? json_loads(content, 0, &je) : NULL;
        if (name && result)
            turn_note_tool(t, name, result);
        json_decref(result);
        json_decref(msg);
    }
    json_decref(reply);
}

/* Fills t from the store: input, session, history, where it stopped; and
 * runs the tool calls the crash left without results (worker). A turn that
 * cannot be resumed gets t->code set (it is then finished as failed). */
static void load(struct store *st, struct turn *t, const struct store_turn *u)
{
    json_error_t je;
    json_t *in = u->input ? json_loads(u->input, 0, &je) : NULL;
    json_t *data = json_object_get(in, "data");
    if (json_is_object(data))
        t->data = json_incref(data);
    const char *sealed = json_string_value(json_object_get(in, "data_sealed"));
    char *text = NULL;
    struct agentd_error se = { 0 };
    if (sealed && t->ag->keyring &&
        seal_open(t->ag->keyring, u->id, sealed, &text, NULL, &se) == 0) {
        t->data = json_loads(text, 0, &je);
        explicit_bzero(text, strlen(text));
        free(text);
    } else if (sealed) { /* resumes without it: a payment is asked for again */
        log_msg(LOG_WARN, NULL, "turn %s: its client data does not open (%s)", u->id, se.msg);
    }
    const char *key = json_string_value(json_object_get(in, "idem_key"));
    if (key)
        t->idem_key = strdup(key);
    const json_t *action = json_object_get(in, "action"); /* an action turn: no model */
    const char *atool = json_string_value(json_object_get(action, "tool"));
    const json_t *aargs = json_object_get(action, "args");
    if (atool && json_is_object(aargs)) {
        t->action_tool = strdup(atool);
        t->action_args = json_deep_copy(aargs);
        if (!t->action_tool || !t->action_args)
            turn_fail(t, AGENTD_ENOMEM, 503, "busy", "out of memory resuming the turn");
    }
    const char *rid = json_string_value(json_object_get(in, "request_id"));
    snprintf(t->request_id, sizeof t->request_id, "%s", rid ? rid : "");
    json_decref(in);
    t->tctx.client_data = t->data;
    t->prompt_tokens = u->prompt_tokens;
    t->completion_tokens = u->completion_tokens;
    t->cost_usd = u->cost_usd;

    struct store_session *s = NULL;
    int rc = store_session_get(st, t->session_id, &s);
    if (rc == 0) {
        t->ctx = json_loads(s->context, 0, &je);
        const char *co = json_string_value(json_object_get(t->ctx, "checkout_id"));
        if (co)
            t->tctx.checkout_id = strdup(co);
    }
    store_session_free(s);
    struct store_checkpoint *cp = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = store_checkpoint_list(st, t->turn_id, &cp, &n);
    if (rc == 0 && (n == 0 || strcmp(cp[0].kind, "user_message") != 0))
        rc = AGENTD_EINVAL; /* started before checkpoints were complete */
    if (rc == 0) /* its own steps are its last n messages (one per checkpoint) */
        rc = turn_load_history(st, t, n);
    if (rc != 0) {
        store_checkpoint_list_free(cp, n);
        turn_fail(t, rc, 503, "turn_not_resumable",
                  "the turn was interrupted by a crash and cannot be resumed: %s",
                  rc == AGENTD_EINVAL ? "it has no complete checkpoints" : agentd_err_msg(rc));
        return;
    }
    t->cp_step = cp[n - 1].step + 1;
    size_t last = 0; /* index of the last llm_reply, 0 = none */
    for (size_t i = 0; i < n; i++)
        if (strcmp(cp[i].kind, "llm_reply") == 0) {
            t->step++;
            last = i;
        }
    note_tool_results(t, cp, n);
    json_t *reply = last ? json_loads(cp[last].payload, 0, &je) : NULL;
    const json_t *calls = json_object_get(reply, "tool_calls");
    if (last && json_array_size(calls) == 0) {
        /* the answer was saved; only the end was not */
        const char *a = json_string_value(json_object_get(reply, "content"));
        t->answer = strdup(a ? a : "");
    } else if (last) {
        size_t done = n - 1 - last; /* tool results after it */
        rc = turn_run_tools(st, t, calls, cp[last].step, done);
        if (rc != 0 && !t->code[0])
            turn_fail(t, rc, agentd_err_http(rc), agentd_err_code(rc),
                      "the resumed turn could not be saved: %s", agentd_err_msg(rc));
    }
    json_decref(reply);
    store_checkpoint_list_free(cp, n);
}

struct sweep {
    struct agent *ag;
    struct loop **loops;
    int nloops;
};

/* Adopts u if its process died, then resumes or fails it. 0 when it was
 * settled (not an orphan, or adopted), -1 when it stays an orphan (lost
 * to another replica, an error, out of memory): its lock file may still
 * be needed. */
static int sweep_one(struct sweep *sw, const struct store_turn *u, int64_t now)
{
    static atomic_uint rr;
    struct agent *ag = sw->ag;
    struct store *st = ag->st;
    if (!orphaned(ag, u, now))
        return 0;
    int rc = store_turn_adopt(st, u->id, u->instance, ag->instance);
    if (rc != 0)
        return rc; /* finished meanwhile, another replica took it, or an error */
    if (ag->recovery != 0 || !u->owner) {
        fail_orphan(ag, st, u, "turn_interrupted_by_crash",
                    u->owner ? "AGENTD_TURN_RECOVERY=fail" : "its session is gone");
        return 0;
    }
    struct loop *loop = sw->loops[atomic_fetch_add(&rr, 1) % (unsigned)sw->nloops];
    struct turn *t = turn_alloc(ag, loop);
    if (t) {
        t->owner = strdup(u->owner);
        t->session_id = strdup(u->session_id);
        t->turn_id = strdup(u->id);
    }
    if (!t || !t->owner || !t->session_id || !t->turn_id) {
        turn_free(t);
        /* hand it back, so it is an orphan again for the next sweep */
        store_turn_adopt(st, u->id, ag->instance, u->instance);
        log_msg(LOG_ERROR, NULL, "out of memory resuming turn %s: the next sweep retries", u->id);
        return AGENTD_ENOMEM;
    }
    t->resumed = 1;
    t->claimed = 1;
    t->session_ready = 1;
    t->tctx = (struct tools_ctx){ .shop = ag->shop, .merchant = ag->merchant, .owner = t->owner };
    instance_recovered("turn_resumed");
    log_msg(LOG_WARN, NULL, "resuming turn %s of session %s, interrupted by a crash (was %s)", u->id,
            u->session_id, u->instance ? u->instance : "unknown");
    turn_link(t);
    load(st, t, u);
    /* its first start was audited with its user message; this says who
     * carried it on (ids and outcome only) */
    struct store_audit a = { .principal = t->owner, .action = "turn.start", .target = t->turn_id,
                             .request_id = t->request_id, .outcome = "resumed" };
    if ((rc = store_audit_append(st, &a)) != 0)
        log_msg(LOG_WARN, t->request_id, "audit row turn.start of resumed turn %s not written: %s",
                t->turn_id, agentd_err_msg(rc));
    if (loop_post(loop, turn_resume_go, t) != 0) {
        /* never: the inbox only fails out of memory. The turn stays
         * running under our instance; its lease frees it later. */
        log_msg(LOG_ERROR, NULL, "cannot hand resumed turn %s to a loop", u->id);
    }
    return 0;
}

/* Every running turn but our own, a page at a time. */
static void sweep_job(void *arg)
{
    struct sweep *sw = arg;
    struct agent *ag = sw->ag;
    struct store_turn_scan scan = { .skip_instance = ag->instance, .limit = SWEEP_PAGE };
    char last[128] = "";
    /* every orphan was settled: no turn needs a dead one's lock file */
    int settled = 1, done = 0;
    while (!done && !ag->stopping) {
        struct store_turn *v = NULL;
        size_t n = 0;
        if (store_turn_list_unfinished(ag->st, &scan, &v, &n) != 0) {
            settled = 0;
            break;
        }
        int64_t now = clock_wall_ms();
        for (size_t i = 0; i < n && !ag->stopping; i++)
            if (sweep_one(sw, &v[i], now) != 0)
                settled = 0;
        done = n < SWEEP_PAGE || strlen(v[n - 1].id) >= sizeof last;
        if (n) {
            snprintf(last, sizeof last, "%s", v[n - 1].id);
            scan.after_id = last;
            scan.after_created = v[n - 1].created_at;
        }
        store_turn_list_free(v, n);
    }
    if (done && settled && !ag->stopping && ag->lock_dir)
        instance_lock_reap(ag->lock_dir);
    __atomic_store_n(&ag->recovering, 0, __ATOMIC_RELEASE);
    free(sw->loops);
    free(sw);
}

void agent_recover(struct agent *ag, struct loop *const *loops, int nloops)
{
    if (nloops <= 0 || __atomic_exchange_n(&ag->recovering, 1, __ATOMIC_ACQ_REL))
        return;
    struct sweep *sw = calloc(1, sizeof *sw);
    struct loop **copy = calloc((size_t)nloops, sizeof *copy);
    if (!sw || !copy) {
        free(sw);
        free(copy);
        __atomic_store_n(&ag->recovering, 0, __ATOMIC_RELEASE);
        return;
    }
    memcpy(copy, loops, (size_t)nloops * sizeof *copy);
    *sw = (struct sweep){ ag, copy, nloops };
    if (pool_submit(pool_default(), NULL, sweep_job, NULL, sw) != 0) {
        free(copy);
        free(sw);
        __atomic_store_n(&ag->recovering, 0, __ATOMIC_RELEASE);
    }
}
