/* The simple chat front: POST /chat {"message", "session_id"?, "data"?,
 * "busy_policy"?, "stream"?} -> {"answer", "session_id", "checkout",
 * "turn_id", "usage"} or the turn's events as SSE; GET /chat/sessions (the
 * principal's, by page), GET and DELETE /chat/sessions/{id}, and
 * /chat/sessions/{id}/events (replay + live). One turn of the agent per
 * message; an Idempotency-Key makes a retried message safe (no second
 * turn) — even across a crash: the resumed turn stores its answer under
 * the key. docs/api.md has the details. */
#ifndef AGENTD_API_CHAT_H
#define AGENTD_API_CHAT_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

struct router;
struct agent;
struct store;
struct events;

#define CHAT_MESSAGE_MAX 16384

/* A POST /chat body, checked. body is owned; message, session_id, data and
 * stream are borrowed from it (NULL when absent); action_tool is static,
 * action_args and action_text (the action as compact JSON) owned. */
struct chat_request {
    json_t *body;
    const json_t *message, *session_id, *data;
    int busy_policy;            /* -1 = the agent's default */
    const char *action_tool;    /* NULL = no UI action */
    json_t *action_args;
    char *action_text;
};

/* Parses and checks a POST /chat body (pure: no I/O, so it is fuzzed).
 * 0, or AGENTD_EINVAL with the client's answer in e->msg (out cleared),
 * AGENTD_ENOMEM. chat_request_clear() frees what a 0 left in *out. */
int chat_request_parse(const char *body, size_t len, struct chat_request *out,
                       struct agentd_error *e);
void chat_request_clear(struct chat_request *q);

/* Also sets ag->resumed_done. ev may be NULL (streams then poll). */
int chat_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev);

#endif
