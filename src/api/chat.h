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

struct router;
struct agent;
struct store;
struct events;

#define CHAT_MESSAGE_MAX 16384

/* Also sets ag->resumed_done. ev may be NULL (streams then poll). */
int chat_routes(struct router *rt, struct agent *ag, struct store *st, struct events *ev);

#endif
