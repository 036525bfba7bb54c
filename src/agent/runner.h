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

#include "core/guard.h"

struct llm;
struct shop;
struct merchant;
struct store;
struct store_task_write;
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
/* "enqueue" | "reject" | "interrupt" -> enum value, else AGENTD_EINVAL. */
int agent_busy_policy_parse(const char *s);
const char *agent_busy_policy_name(int policy);

struct events;

/* What a resumed turn (recovered after its process died) tells the front
 * that started it: the front's client is gone, but an Idempotency-Key it
 * held can still be answered with the outcome. Runs on a loop. */
struct turn_result;
typedef void (*agent_resumed_fn)(const struct turn_result *res, const char *owner,
                                 const char *idem_key, void *ud);

struct agent {
    struct llm *llm;
    struct shop *shop;
    struct merchant *merchant;
    struct store *st;
    json_t *tools;            /* OpenAI tools array */
    const char *system_prompt;
    int max_steps;            /* AGENTD_MAX_STEPS */
    int64_t history_max_bytes; /* AGENTD_HISTORY_MAX_BYTES; 0 = only HISTORY_MAX bounds it */
    int64_t turn_timeout_ms;  /* AGENTD_TURN_TIMEOUT */
    int busy_policy;          /* AGENTD_BUSY_POLICY (enum agent_busy_policy) */
    int recovery;             /* AGENTD_TURN_RECOVERY: 0 resume, 1 fail */
    int64_t turn_token_budget;       /* AGENTD_TURN_TOKEN_BUDGET; 0 = unlimited */
    int64_t daily_token_budget;      /* AGENTD_DAILY_TOKEN_BUDGET; 0 = unlimited */
    int64_t daily_cost_budget_micro; /* AGENTD_DAILY_COST_BUDGET in micro-USD; 0 = unlimited */
    struct events *events;    /* live fan-out of turn events; may be NULL */
    agent_resumed_fn resumed_done; /* may be NULL */
    /* seals the client's data (payment credentials) in a running turn's
     * stored input (core/seal.h); NULL = kept plain (tests) */
    const struct seal_keyring *keyring;
    void *resumed_ud;
    /* the input guard (agent/screen.c): built-in rules always, an external
     * guard when .check is set */
    int guard_flag_only;      /* AGENTD_GUARD_MODE=flag: a refusal is recorded, the turn runs */
    int guard_fail_open;      /* AGENTD_GUARD_FAIL=open: an unreachable guard lets a message by */
    struct guard_external guard;
    /* runtime state (agent_init) */
    pthread_mutex_t mu;
    struct turn *live;        /* running turns, for shutdown */
    int stopping;
    char instance[160];       /* this process: "host@pidns/pid/nonce", kept on its turns */
    char *system_msg_json;    /* the system message as JSON text, made once (agent_init) */
    char *lock_dir;           /* instance lock files (agent_instance_lock); NULL = none */
    int lock_fd;              /* our lock file, held while we run; -1 = none */
    int recovering;           /* a recovery sweep is running (atomic) */
};

void agent_init(struct agent *ag);
/* Holds an exclusive flock on DIR/<instance>.lock while this process runs
 * (DIR is created). The kernel drops the lock when the process dies, however
 * it dies, so recovery on any process sharing DIR (the same data directory:
 * a restarted container on the same volume, another replica on this host)
 * knows at once that a turn's process is gone. 0, or what instance_lock_take
 * returned (its failure), or AGENTD_ENOMEM with errno ENOMEM; then recovery
 * falls back to pids and leases. */
int agent_instance_lock(struct agent *ag, const char *dir);
/* Shutdown, after the loop threads stopped and before the worker pool and
 * the LLM client are freed: turns waiting on the model are cancelled and
 * answered 503; turns in a store job finish as soon as it completes. */
void agent_stop(struct agent *ag);
void agent_destroy(struct agent *ag);

/* The outcome handed to the front that started the turn. */
struct turn_result {
    int status;               /* 0, or AGENTD_E* */
    int http_status;          /* for errors: 404, 409, 422, 429, 503, 504 ... */
    const char *code;         /* error code */
    const char *message;      /* answer text (status 0) or error message */
    const char *session_id;
    const char *turn_id;      /* NULL if the turn never got one */
    json_t *checkout;         /* UCP checkout or NULL (borrowed) */
    int retry_after_s;        /* for 503/429: when to come back (0 = unknown) */
    int64_t prompt_tokens, completion_tokens; /* this turn's model usage */
    double cost_usd;
    int resumed;              /* recovered after a restart */
    json_t *products;         /* the products of this turn's last catalog search
                                 (search_shopping_catalog's "products"), or NULL (borrowed) */
    int order_placed;         /* this turn placed an order (its complete_checkout succeeded);
                                 the checkout alone cannot say: it keeps an earlier turn's order */
    const char *outcome;      /* agentd_turns_total's label: "completed", "payment_declined",
                                 "out_of_stock", "tool_error", or the error code */
    int task_written;         /* the finishing hook's task write was committed with the
                                 turn's end (turn_start.finishing) */
    int refused;              /* the accepting hook said no: nothing ran, nothing was
                                 written or counted by the runner */
};

typedef void (*turn_done_fn)(const struct turn_result *res, void *ud);

struct turn_start {
    const char *owner;        /* the principal */
    const char *session_id;   /* NULL = a new session */
    const char *text;         /* the user's message */
    const json_t *data;       /* the message's client data (payment); may be NULL */
    int busy_policy;          /* enum agent_busy_policy, or -1 = the session's (set when it
                                 was created), else ag->busy_policy; a new session keeps a
                                 given policy in its context */
    const char *request_id;   /* may be NULL */
    const char *idem_key;     /* the front's Idempotency-Key (kept for a resumed turn) */
    int stream;               /* ask the model to stream: text-delta events as it writes */
    /* A UI action (A2A clients' buttons): when set, the turn runs this tool
     * call (a name of agent/tools.c; args borrowed for the call) as its one
     * step, with no model round trip, and answers deterministically from its
     * result. NULL = an ordinary turn. */
    const char *action_tool;
    const json_t *action_args;
    /* Optional: the turn's id, chosen by the front so it can write it with
     * its own records before the turn runs (A2A: the task); NULL = the
     * runner makes one. turn_result.turn_id stays NULL unless it ran. */
    const char *turn_id;
    /* Optional: runs once on a worker thread at the start of the turn's
     * first store job, before anything of the turn is read or written (A2A:
     * the message's accept, so it costs no store job of its own). 0: the
     * turn runs on *session_id (the hook's string, copied; *session_new as
     * below); nonzero: nothing runs and done() gets res->refused = 1.
     * session_id / session_new of this struct are then unused. */
    int (*accepting)(struct store *st, void *ud, const char **session_id, int *session_new);
    /* Set when the front has just created session_id for this turn, empty
     * (context {}, no message) and under an id nobody else knows yet (A2A:
     * a context the server named at the accept): the runner then reads
     * neither the session nor its history. 0 = the runner reads them. */
    int session_new;
    /* Optional: runs once on the loop when the turn holds its session and
     * its turn-started event is stored (seq = that event's seq), before the
     * first model call. */
    void (*started)(const char *session_id, const char *turn_id, int64_t seq, void *ud);
    /* Optional: runs once on a worker thread inside the turn's last store
     * job, before its end is written, with the result done() will get
     * (task_written still 0). It may fill *task (strings it owns until
     * done()); the runner then commits that task write in the same
     * transaction as the turn's end and its events (store_turn_finish_task)
     * and sets res->task_written for done(). Not called for a turn that
     * never held its session. */
    void (*finishing)(struct store *st, const struct turn_result *res, void *ud,
                      struct store_task_write *task);
};

/* Starts a turn on `loop` (the caller's loop thread). done() runs exactly
 * once on the loop. Returns 0 or AGENTD_E* (then neither callback runs). */
int agent_turn_start(struct agent *ag, struct loop *loop, const struct turn_start *ts,
                     turn_done_fn done, void *ud);

/* During a drain that ran out of time, on each loop thread: turns of this
 * loop waiting on the model are cancelled and answered 503 shutting_down
 * while the loop can still send the answer (the turn is marked failed:
 * resuming is for crashes, where no answer could be sent). */
void agent_abort_waiting_here(struct agent *ag);

/* Registers the agent's metrics; once, before any loop runs. */
void agent_metrics_init(void);

/* The built-in system prompt (AGENTD_AGENT_PROMPT_FILE replaces it). */
extern const char AGENT_DEFAULT_PROMPT[];

#endif
