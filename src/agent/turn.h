/* Private to src/agent: one turn's state, shared by the runner (runner.c)
 * and crash recovery (recover.c). */
#ifndef AGENTD_AGENT_TURN_H
#define AGENTD_AGENT_TURN_H

#include "agent/tools.h"
#include "core/buf.h"
#include "core/reqid.h"
#include "core/trace.h"

#include <stdint.h>

#include <jansson.h>

struct agent;
struct loop;
struct event;
struct llm_call;
struct llm_reply;
struct guard_call;
struct store;
struct turn_result;
struct store_task_write;

/* A running turn heartbeats at every step; one whose heartbeat is older
 * than its deadline plus this is taken to be dead (recover.c). */
#define TURN_LEASE_GRACE_MS 30000

struct turn {
    struct agent *ag;
    struct loop *loop;
    char *owner;
    char *session_id;
    char *turn_id;
    char *text;
    json_t *data;            /* the message's client data (payment) */
    char *idem_key;          /* the front's Idempotency-Key, if any */
    char request_id[REQID_MAX + 1];
    struct trace_span *span; /* the turn's span (core/trace.h); NULL when tracing is off */
    void (*done)(const struct turn_result *res, void *ud); /* NULL for a resumed turn:
                                                             ag->resumed_done */
    void *ud;
    void (*started)(const char *session_id, const char *turn_id, int64_t seq, void *ud);
    void (*finishing)(struct store *st, const struct turn_result *res, void *ud,
                      struct store_task_write *task);
    int task_written;
    int (*accepting)(struct store *st, void *ud, const char **session_id, int *session_new);
    int refused;             /* the accepting hook said no */
    int batched;             /* op_begin's writes commit together: events published after */
    int publish_due;
    int ended;               /* the last step's job also wrote the turn's end */
    int64_t started_seq;     /* the turn-started event */
    int req_policy;          /* from the request, -1 = none */
    int policy;              /* resolved in op_begin */
    json_t *ctx;             /* the session's context */
    int session_ready;       /* session loaded or created */
    int session_empty;       /* and it has no message yet: no history to read */
    int claimed;             /* the store's turn row is ours (running) */
    int busy;                /* op_begin found the session busy: wait and retry */
    int interrupted;         /* a newer message asked this turn to stop */
    int resumed;             /* recovered after its process died */
    int said;                /* a model step of this run stored its text */
    struct event *wait_ev;   /* the poll timer while waiting for the session */
    int wait_pending;
    int64_t wait_ms;

    /* The conversation for the model (system + history + this turn), in
     * one of two forms: JSON text for a provider — "[" and the stored
     * messages' own texts, appended as steps are recorded, no parse and no
     * re-serialisation per call — or jansson for the built-in model, which
     * reads it. */
    int conv_text;           /* 1: conv, else messages */
    struct buf conv;         /* "[" + messages; a model call borrows it (llm.h), so it
                                stays as it was — closed with "]" — until the call ends */
    int conv_closed;         /* conv ends with the "]" of the last model call */
    json_t *messages;
    struct tools_ctx tctx;   /* checkout id lives here */
    int64_t cp_step;         /* the next checkpoint's step number */
    int step;                /* model steps done */
    int64_t started_ns;
    int64_t deadline_ms;
    struct llm_call *call;
    struct guard_call *guard_call; /* the external input guard's call in progress */
    char flag_source[16];    /* the input guard flagged this message: "rules" or "external" */
    char flag_reason[64];
    /* the guard's verdict for the audit log: "guard.flag" (written with the
     * turn's start) or "guard.reject" (with its end); NULL = none. The
     * outcome is the source and a reason from a fixed vocabulary, never
     * an external guard's free text (it may quote the message). */
    const char *guard_action;
    char guard_outcome[96];
    struct llm_reply *reply; /* the step's reply, between loop and worker */
    /* streaming (a live front asked for it): the model's text deltas are
     * stored as text-delta events while the step runs, one flush at a time */
    int stream;
    char *delta;             /* text not yet flushed (loop-owned) */
    size_t delta_len;
    char *flush_text;        /* the text a flush job is storing (job-owned) */
    int flush_reset;         /* that flush starts the step's text over (a retry) */
    int delta_reset;
    int streamed;            /* this step's text went out as deltas */
    int flushing;            /* a flush job is in the pool */
    int step_waiting;        /* the reply arrived during a flush: op_step after it */
    int finish_waiting;      /* the turn ended during a flush: finish after it */
    struct event *flush_ev;  /* batches deltas: a flush FLUSH_MS after the first */
    int flush_armed;
    void (*flushed)(struct turn *t); /* a flush ended while step_waiting/finish_waiting */
    int64_t prompt_tokens, completion_tokens; /* this turn's usage so far */
    double cost_usd;
    char tool_fail[48];      /* the standing failure of this turn's checkout-changing
                                tool calls ("" = none): its outcome (outcome.h) */
    /* a UI action turn (turn_start.action_tool): its one tool call, no model */
    char *action_tool;       /* NULL: an ordinary turn */
    json_t *action_args;     /* an object, set with action_tool */
    json_t *action_result;   /* the call's result once it ran (or was read back) */
    json_t *products;        /* the last search_shopping_catalog result's products */
    int order_placed;        /* a complete_checkout call of this turn placed an order */
    json_t *checkout;        /* for the final result */
    char *answer;
    int status;
    int http_status;
    int retry_after_s;
    char code[48];
    char message[512];
    struct turn *prev, *next; /* the agent's live turns */
};

/* A turn with nothing but its agent and loop set; not yet linked. */
struct turn *turn_alloc(struct agent *ag, struct loop *loop);
/* Frees a turn and takes it off the agent's live list if it is on it
 * (NULL is fine). The in-flight gauge is the caller's. */
void turn_free(struct turn *t);
/* Into the agent's live list (for shutdown) and the in-flight gauge. */
void turn_link(struct turn *t);
/* Ends the turn: its outcome persisted (worker), then the front answered. */
void turn_finish(struct turn *t);
/* store_async on the turn's loop, counted (agentd_turn_store_jobs_total). */
int turn_store_async(struct turn *t, int (*op)(struct store *, void *),
                     void (*done)(int status, void *));
void turn_fail(struct turn *t, int status, int http, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Runs tool calls [from, n) of `calls` — the reply checkpointed at
 * reply_step — checkpointing each result (worker). */
int turn_run_tools(struct store *st, struct turn *t, const json_t *calls, int64_t reply_step,
                   size_t from);
/* Notes a tool call's result for the turn's outcome (outcome.h): only
 * calls of checkout-changing tools count; keeps a search's products and an
 * action turn's result. */
void turn_note_tool(struct turn *t, const char *name, const json_t *result);
/* Records an assistant message as an llm_reply step with its events
 * (text-delta for its content, tool-call for each call) (worker). */
int turn_record_assistant(struct store *st, struct turn *t, const json_t *msg);
/* Action turns (action.c): runs the action's step and answers (from the
 * loop; then the turn finishes), and the answer worded from a tool result
 * (malloc'd; NULL out of memory). */
void turn_action_go(struct turn *t);
/* The input guard (screen.c), before the turn's first store job: 0 = go on
 * now (allowed or flagged); 1 = the guard took the turn over: it was
 * refused and is finishing, or an external guard is asked and turn_begin
 * follows its answer. */
int turn_screen(struct turn *t);
/* Starts the turn's first store job (load, claim, the user's message);
 * on failure the turn ends 503. */
void turn_begin(struct turn *t);
void turn_screen_metrics_init(void);
char *action_answer(const char *tool, const json_t *args, const json_t *result);
/* Loads the session's messages into the conversation (after the system
 * prompt), windowed (worker): the last `keep` (a resumed turn's own steps)
 * always, and before them the newest earlier ones within HISTORY_MAX
 * messages and AGENTD_HISTORY_MAX_BYTES; never starting on a tool result. */
int turn_load_history(struct store *st, struct turn *t, size_t keep);
/* Streamed text (textstream.c): the llm delta callback (ud = the turn),
 * and the stop of the batching timer when the reply or the turn ends. */
void turn_text_delta(const char *text, size_t len, void *ud);
void turn_text_stop(struct turn *t);

/* On t->loop after a resume was loaded: carry on (model step or finish). */
void turn_resume_go(void *arg);

/* ---- shared by runner.c (steps, finish) and turn_start.c (the start) ---- */

struct store;
struct store_event;
struct turn_result;

/* A step's events, stored in the step's own transaction. */
struct evs {
    struct store_event *v;
    size_t n, cap;
};
/* Adds an event of `type` with data (taken; dumped); nothing when NULL. */
void turn_evs_add(struct evs *e, const struct turn *t, const char *type, json_t *data);
void turn_evs_clear(struct evs *e);
/* Tells the session's listeners new events are stored. */
void turn_publish(struct turn *t);
/* Appends a message to the conversation: its text (copied), or json. */
int turn_conv_add(struct turn *t, const char *text, const json_t *json);
/* Checkpoints msg as step `kind` with its session message and events (worker). */
int turn_record_msg(struct store *st, struct turn *t, const char *kind, const json_t *msg,
                    struct evs *ev);
/* The turn's audit row; the guard's verdict row when it flagged the input. */
void turn_audit(struct store *st, struct turn *t, const char *action, const char *outcome);
void turn_guard_audit(struct store *st, struct turn *t);
/* Closes a store batch the turn's start or finish opened for itself: what
 * waited for its commit is published. rc, or the commit's failure. */
int turn_own_batch_end(struct store *st, struct turn *t, int rc);
/* The principal's daily budget (worker): 0, or the turn failed 429. */
int turn_check_daily(struct store *st, struct turn *t);
void turn_result_of(const struct turn *t, const char *outcome, struct turn_result *res);
/* The next model call (loop). */
void turn_llm_step(struct turn *t);

#endif
