/* The built-in offline model: a deterministic rule-based planner for the
 * retail agent's tools. Pure: reads the conversation, returns the next step. */
#ifndef AGENTD_LLM_BUILTIN_H
#define AGENTD_LLM_BUILTIN_H

#include <jansson.h>

#include "llm/llm.h"

#define LLM_BUILTIN_MODEL "agentd-builtin-1"

/* Decides the assistant's next message from an OpenAI-shaped conversation:
 * tool calls (ids call_N, N counting every tool call in the conversation)
 * or a final text answer worded from the tool results after the last user
 * message. Fills content / tool_calls / finish_reason / usage (estimated)
 * of *out. Returns 0, or -1 on out of memory (*out then empty). docs/llm.md
 * lists the rules and the tool-result shapes it reads. */
int llm_builtin_plan(const json_t *messages, struct llm_reply *out);

#endif
