/* The simple chat front: POST /chat {"message", "session_id"?, "data"?} ->
 * {"answer", "session_id", "checkout"}. One turn of the agent per call; an
 * Idempotency-Key makes a retried message safe (no second turn). */
#ifndef AGENTD_API_CHAT_H
#define AGENTD_API_CHAT_H

struct router;
struct agent;
struct store;

#define CHAT_MESSAGE_MAX 16384

int chat_routes(struct router *rt, struct agent *ag, struct store *st);

#endif
