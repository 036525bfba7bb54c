/* The retail agent's tools: their JSON-schema definitions (what the model
 * sees) and their execution against the shop. Each tool call validates its
 * arguments against its schema first; an invalid call yields an error
 * result that goes back to the model, never a failed turn. Blocking (the
 * shop reads the store): run on the worker pool. */
#ifndef AGENTD_AGENT_TOOLS_H
#define AGENTD_AGENT_TOOLS_H

#include <jansson.h>

struct shop;
struct merchant;

struct tools_ctx {
    struct shop *shop;
    struct merchant *merchant;
    const char *owner;          /* the principal: owns the checkout */
    char *checkout_id;          /* the session's checkout (malloc'd; tools may set it) */
    const json_t *client_data;  /* the user message's data (payment credentials) */
    const char *op_key;         /* the call's operation key: a side effect already
                                   applied under it is not applied again (replay) */
};

/* The OpenAI "tools" array (new reference). */
json_t *tools_definitions(void);

/* Runs one call. Always returns a JSON result (new reference): the tool's
 * answer, or {"error":{"code","message"}}. NULL only on out of memory. */
json_t *tools_run(struct tools_ctx *ctx, const char *name, const char *arguments);

/* Validates args against the named tool's schema; 0 or -1 with why. */
int tools_validate(const char *name, const json_t *args, char *why, size_t len);

#endif
