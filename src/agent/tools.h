/* The retail agent's tools: their JSON-schema definitions (what the model
 * sees) and their execution against the shop. Each tool call validates its
 * arguments against its schema first; an invalid call yields an error
 * result that goes back to the model, never a failed turn. Blocking (the
 * shop reads the store): run on the worker pool. */
#ifndef AGENTD_AGENT_TOOLS_H
#define AGENTD_AGENT_TOOLS_H

#include <jansson.h>

struct agentd_error;

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
 * answer, or {"error":{"code","message"}}; arguments that do not fit the
 * schema give {"error":{"code":"invalid_arguments","message","problems":
 * ["<path>: <what is wrong and what to use>", ...],"expected":<the schema
 * without descriptions>,"example":<valid arguments>?}} and nothing runs.
 * NULL only on out of memory. */
json_t *tools_run(struct tools_ctx *ctx, const char *name, const char *arguments);

/* tools_run, with the result's texts for the tool step: *content as
 * jsondump(result, JSON_COMPACT) writes it (NULL: no memory, or no result)
 * and *message as tools_result_message(id, *content) (NULL: no memory),
 * both malloc'd. The search writes them from its products' texts
 * (tool_products.c) instead of dumping and escaping its result. */
json_t *tools_run_texts(struct tools_ctx *ctx, const char *name, const char *arguments,
                        const char *id, char **content, char **message);

/* 1 if the named tool changes the checkout (add, remove, update, customer
 * details, shipping, complete), 0 otherwise or for an unknown name. */
int tools_mutates_checkout(const char *name);

/* Validates args against the named tool's schema; 0 (e untouched), or
 * AGENTD_EINVAL with every problem in e->msg ("; "-separated, truncated to
 * its size; A2A shows up to 511 bytes of it). */
int tools_validate(const char *name, const json_t *args, struct agentd_error *e);

/* The problems of args against any schema of the subset the tools use, as
 * a new array of strings (empty: valid), each naming its path from
 * "arguments". For tests and tools that build schemas. NULL: no memory. */
json_t *tools_check(const json_t *schema, const json_t *args);

/* 1 if the named tool never reads or writes the store (the catalog tools),
 * 0 otherwise or for an unknown name. */
int tools_store_free(const char *name);

/* The texts of one tool call's result, as json_pack + jsondump wrote them
 * (malloc'd; NULL on out of memory or a string that is not UTF-8), built
 * around content (jsondump(result, JSON_COMPACT), or NULL when that failed)
 * instead of dumping result again:
 * the tool-result event {"tool_call_id","name"(null if NULL),"result"}
 * (reals at the events' 15 digits: a result holding one is dumped whole),
 * and the tool message {"role":"tool","tool_call_id","content":content}. */
char *tools_result_event(const char *id, const char *name, const json_t *result,
                         const char *content);
char *tools_result_message(const char *id, const char *content);

#endif
