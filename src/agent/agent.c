/* The agent as a whole: its default prompt and busy policies, start-up
 * (instance identity and lock) and shutdown (turns failed, lock released). */
#define _GNU_SOURCE
#include "agent/runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "agent/turn.h"
#include "core/err.h"
#include "core/instance.h"
#include "core/loop.h"
#include "llm/llm.h"

static const char *const busy_names[] = { "enqueue", "reject", "interrupt" };

int agent_busy_policy_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, busy_names[i]) == 0)
            return i;
    return AGENTD_EINVAL;
}

const char *agent_busy_policy_name(int policy)
{
    return policy >= 0 && policy < 3 ? busy_names[policy] : "enqueue";
}

const char AGENT_DEFAULT_PROMPT[] =
    "You are the shop's business agent. Help the buyer find products, build a checkout, set "
    "their details and shipping, and pay. Use the tools: search the catalog before adding "
    "products, add by product id, and never invent prices or ids. Payment credentials come from "
    "the buyer's client, never from the conversation: call complete_checkout when the buyer asks "
    "to pay. Name an order by its id; do not give the buyer URLs from tool results (they are "
    "API addresses, not pages a buyer can open). When a tool answers invalid_arguments, fix every "
    "problem it lists, using the field names it names, and call the tool again. Keep answers "
    "short and concrete.";

void agent_init(struct agent *ag)
{
    pthread_mutex_init(&ag->mu, NULL);
    ag->live = NULL;
    ag->stopping = 0;
    ag->recovering = 0;
    ag->lock_fd = -1;
    ag->lock_dir = NULL;
    json_t *sys = json_pack("{s:s,s:s}", "role", "system", "content",
                            ag->system_prompt ? ag->system_prompt : "");
    ag->system_msg_json = sys ? json_dumps(sys, JSON_COMPACT) : NULL; /* NULL: turns fail */
    json_decref(sys);
    instance_id(ag->instance, sizeof ag->instance);
}

int agent_instance_lock(struct agent *ag, const char *dir)
{
    int fd = instance_lock_take(dir, ag->instance);
    if (fd < 0)
        return fd;
    ag->lock_dir = strdup(dir);
    if (!ag->lock_dir) {
        instance_lock_release(dir, ag->instance, fd);
        errno = ENOMEM; /* the caller names the cause from errno, as for the lock */
        return AGENTD_ENOMEM;
    }
    ag->lock_fd = fd;
    return 0;
}

/* Answers 503 shutting_down to every turn waiting on the model or for its
 * session — on every loop (all), else on loop `here`. The lock is not held
 * across turn_finish(): if it completes inline it frees the turn, which
 * takes the lock. */
static void abort_waiting(struct agent *ag, int all, const struct loop *here, const char *msg)
{
    for (;;) {
        struct turn *t;
        pthread_mutex_lock(&ag->mu);
        for (t = ag->live;
             t && !((t->call || t->guard_call || t->wait_pending) && (all || t->loop == here));
             t = t->next)
            ;
        if (t && t->call) {
            llm_call_cancel(t->call);
            t->call = NULL;
        } else if (t && t->guard_call) {
            ag->guard.cancel(t->guard_call);
            t->guard_call = NULL;
        } else if (t) {
            evtimer_del(t->wait_ev);
            t->wait_pending = 0;
        }
        pthread_mutex_unlock(&ag->mu);
        if (!t)
            break;
        turn_fail(t, AGENTD_ESHUTDOWN, 503, "shutting_down", "%s", msg);
        turn_finish(t);
    }
}

void agent_stop(struct agent *ag)
{
    /* The loops have stopped, so only this thread walks the list now. */
    pthread_mutex_lock(&ag->mu);
    ag->stopping = 1;
    pthread_mutex_unlock(&ag->mu);
    abort_waiting(ag, 1, NULL, "the server stopped during the turn; retry");
}

void agent_abort_waiting_here(struct agent *ag)
{
    abort_waiting(ag, 0, loop_current(), "the server is shutting down; retry");
}

void agent_destroy(struct agent *ag)
{
    if (ag->lock_dir)
        instance_lock_release(ag->lock_dir, ag->instance, ag->lock_fd);
    ag->lock_fd = -1;
    free(ag->lock_dir);
    ag->lock_dir = NULL;
    free(ag->system_msg_json);
    ag->system_msg_json = NULL;
    pthread_mutex_destroy(&ag->mu);
}
