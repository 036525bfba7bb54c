/* What a turn and a tool call came to, as bounded label values for
 * agentd_turns_total{outcome} and agentd_tool_calls_total{tool,outcome}.
 * Pure: no I/O, no state.
 *
 * A turn that answered is "completed" unless the last call of a
 * checkout-changing tool failed and nothing fixed it afterwards: then it is
 * "payment_declined", "out_of_stock" or "tool_error" (any other failure of
 * such a call). A search that found nothing, a look-up of an unknown
 * product, or a completion that still needs the buyer's payment data
 * (payment_required) leave a turn completed: the conversation goes on as
 * intended. A turn that did not answer is counted by its error code. */
#ifndef AGENTD_AGENT_OUTCOME_H
#define AGENTD_AGENT_OUTCOME_H

#include <stddef.h>

/* The turn outcomes besides error codes (for docs and pre-registration). */
#define OUTCOME_COMPLETED "completed"
#define OUTCOME_PAYMENT_DECLINED "payment_declined"
#define OUTCOME_OUT_OF_STOCK "out_of_stock"
#define OUTCOME_TOOL_ERROR "tool_error"

/* NULL-terminated: every turn outcome a running server can count at start
 * (the answered ones and the error codes a turn ends with). */
extern const char *const OUTCOME_TURN_KNOWN[];
/* NULL-terminated: every tool-call outcome. */
extern const char *const OUTCOME_TOOL_KNOWN[];

/* The tool-call outcome for a result's error code (NULL or "" = success):
 * ok | invalid_arguments | not_found | declined | out_of_stock |
 * payment_required | conflict | unknown_tool | error. */
const char *outcome_tool(const char *error_code);

/* Keeps `last` (len bytes) as the standing failure of the turn's
 * checkout-changing calls after one more such call: cleared by a success,
 * unchanged by payment_required (the agent asks the buyer for it), else
 * the call's error code. */
void outcome_note_checkout(char *last, size_t len, const char *error_code);

/* The turn's outcome: its error code when it failed (code), else from the
 * standing checkout failure (`last`, "" = none). */
const char *outcome_turn(int failed, const char *code, const char *last);

#endif
