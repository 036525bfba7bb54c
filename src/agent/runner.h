/* The turn runner: one user message = one turn, a state machine driven on
 * the request's loop. load session + history (worker) -> LLM step (loop,
 * non-blocking) -> checkpoint the reply and run its tool calls (worker),
 * each result checkpointed before the next step -> ... -> final answer
 * persisted. Store and tool work runs on the worker pool; the loop never
 * waits. */
#ifndef AGENTD_AGENT_RUNNER_H
#define AGENTD_AGENT_RUNNER_H

#include <pthread.h>
#include <stdint.h>

#include <jansson.h>

struct llm;
struct shop;
struct merchant;
struct store;
struct loop;

/* What a message does when its session already has a turn running (one
 * turn per session at a time, claimed in the store so it holds across
 * replicas). Values are the AGENTD_BUSY_POLICY choices, in order. */
enum agent_busy_policy {
    AGENT_BUSY_ENQUEUE,   /* wait (polling the claim) until the session is free,
                             within this turn's own deadline; 504 if never */
    AGENT_BUSY_REJECT,    /* 409 turn_in_progress at once */
    AGENT_BUSY_INTERRUPT, /* ask the running turn to stop at its next step
                             boundary (it answers 409 turn_interrupted), then run */
};
/* "enqueue" | "reject" | "interrupt" -> enum value, else -1. */
int agent_busy_policy_parse(const char *s);
const char *agent_busy_policy_name(int policy);

struct agent {
    struct llm *llm;
    struct shop *shop;
    struct merchant *merchant;
    struct store *st;
    json_t *tools;            /* OpenAI tools array */
    const char *system_prompt;
    int max_steps;            /* AGENTD_MAX_STEPS */
    int64_t turn_timeout_ms;  /* AGENTD_TURN_TIMEOUT */
    int busy_policy;          /* AGENTD_BUSY_POLICY (enum agent_busy_policy) */
    /* runtime state (agent_init) */
    pthread_mutex_t mu;
    struct turn *live;        /* running turns, for shutdown */
    int stopping;
};

void agent_init(struct agent *ag);
/* Shutdown, after the loop threads stopped and before the worker pool and
 * the LLM client are freed: turns waiting on the model are cancelled and
 * answered 503; turns in a store job finish as soon as it completes. */
void agent_stop(struct agent *ag);
void agent_destroy(struct agent *ag);

/* The outcome handed to the front that started the turn. */
struct turn_result {
    int status;               /* 0, or AGENTD_E* */
    int http_status;          /* for errors: 404, 409, 503, 504 ... */
    const char *code;         /* error code */
    const char *message;      /* answer text (status 0) or error message */
    const char *session_id;
    json_t *checkout;         /* UCP checkout or NULL (borrowed) */
    int retry_after_s;        /* for 503: when to come back (0 = unknown) */
};

typedef void (*turn_done_fn)(const struct turn_result *res, void *ud);

/* Starts a turn on `loop` (the caller's loop thread). session_id NULL = a
 * new session. data: the message's client data (payment), may be NULL.
 * busy_policy: enum agent_busy_policy, or -1 = the session's (set when it
 * was created), else ag->busy_policy; a new session keeps a given policy in
 * its context. done() runs exactly once on the loop. Returns 0 or AGENTD_E*
 * (then done is not called). */
int agent_turn_start(struct agent *ag, struct loop *loop, const char *owner, const char *session_id,
                     const char *text, const json_t *data, int busy_policy,
                     const char *request_id, turn_done_fn done, void *ud);

/* During a drain that ran out of time, on each loop thread: turns of this
 * loop waiting on the model are cancelled and answered 503 shutting_down
 * while the loop can still send the answer. */
void agent_abort_waiting_here(struct agent *ag);

/* At start: turns left running by a crash are marked failed ("interrupted"),
 * never silently dropped. Blocking. Returns how many. */
int agent_fail_unfinished(struct store *st);

/* Registers the turn metrics; call once at start. */
void agent_metrics_init(void);

/* The built-in retail system prompt. */
extern const char AGENT_DEFAULT_PROMPT[];

#endif
