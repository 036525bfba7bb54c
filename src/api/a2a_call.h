/* One A2A JSON-RPC call, as the front's files share it: a2a.c parses and
 * dispatches, a2a_send.c runs SendMessage, a2a_task_methods.c the task methods. */
#ifndef AGENTD_API_A2A_CALL_H
#define AGENTD_API_A2A_CALL_H

#include <jansson.h>

#include "api/a2a_wire.h"
#include "api/profiles.h"
#include "store/store.h"

#define A2A_ID_MAX 64 /* longest task or message id taken */

/* What a2a_routes() was given, for every method. */
struct a2a_front {
    struct agent *ag;
    struct store *st;
    struct events *ev;
    const char *public_url;
    int production;
};
extern struct a2a_front a2a_front;

/* One JSON-RPC call. Outlives its request when the turn runs on after a
 * returnImmediately answer (r is then NULL). */
struct a2a_call {
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
    struct agentd_error e;  /* the pending error's message (with err) */
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

void a2a_call_free(struct a2a_call *c);

/* Answer the call's request (nothing when it was answered already: r NULL). */
void a2a_reply_result(struct a2a_call *c, json_t *result);
/* SendMessage's result for c->task, written without a tree (a2a_wire). */
void a2a_reply_send_result(struct a2a_call *c);
void a2a_reply_error(struct a2a_call *c, int code, const char *message, json_t *data);
/* A store failure as the call's pending error (c->err/e/err_data); returns rc. */
int a2a_store_fail(struct a2a_call *c, int rc);

/* SendMessage / SendStreamingMessage (a2a_send.c): the UCP-Agent profile,
 * then the message accepted and run as a turn. Owns c. */
void a2a_send_message(struct a2a_call *c);
/* GetTask, CancelTask, SubscribeToTask (a2a_task_methods.c). Owns c. */
void a2a_task_method(struct a2a_call *c);
/* ListTasks (a2a_task_methods.c). Owns c. */
void a2a_list_tasks(struct a2a_call *c);

#endif
