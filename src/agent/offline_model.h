/* The offline model: a deterministic rule-based planner for the retail
 * agent's tools (AGENTD_LLM=builtin). Pure: reads the conversation, returns the next step. */
#ifndef AGENTD_AGENT_OFFLINE_MODEL_H
#define AGENTD_AGENT_OFFLINE_MODEL_H

#include <jansson.h>

#include "llm/llm.h"

#define OFFLINE_MODEL_NAME "agentd-builtin-1"

/* Decides the assistant's next message from an OpenAI-shaped conversation:
 * tool calls (ids call_N, N counting every tool call in the conversation)
 * or a final text answer worded from the tool results after the last user
 * message. Fills content / tool_calls / finish_reason / usage (estimated)
 * of *out. Returns 0, or AGENTD_ENOMEM (*out then empty). docs/llm.md
 * lists the rules and the tool-result shapes it reads. */
int offline_model_plan(const json_t *messages, struct llm_reply *out);

/* The offline model as the LLM client's local model (llm_new), named
 * OFFLINE_MODEL_NAME. Static: never freed. */
const struct llm_local_model *offline_model(void);

#endif
