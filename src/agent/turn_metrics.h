/* A turn's metrics (agentd_turns_total, agentd_turn_duration_seconds,
 * agentd_turns_in_flight, agentd_tool_calls_total, agentd_tool_duration_seconds)
 * and its trace spans (the turn's, each tool call's: core/trace.h). */
#ifndef AGENTD_AGENT_TURN_METRICS_H
#define AGENTD_AGENT_TURN_METRICS_H

#include <stdint.h>

struct agent;
struct turn;
struct trace_span;

/* One tool call of ag's turn: name (labelled "unknown" when not in ag's
 * tool table, so the label set stays bounded), its outcome, its duration. */
void turn_metrics_tool(const struct agent *ag, const char *name, const char *outcome,
                       int64_t ns);
/* A turn ended with outcome after ns; it no longer runs. */
void turn_metrics_end(const char *outcome, int64_t ns);
/* A turn starts (+1) or ends unrun (-1). */
void turn_metrics_inflight(int delta);
/* One store job (a worker-pool round trip) of a turn. */
void turn_metrics_store_job(void);

/* The turn's span (t->span, NULL when tracing is off): a child of the
 * current context (the request that started it), or a root for a turn
 * recovery resumes. */
void turn_trace_begin(struct turn *t);
/* Ends it with the turn's ids, outcome and token usage. */
void turn_trace_end(struct turn *t, const char *outcome);
/* Ends a tool call's span (started by the runner around the call): its
 * name, call id and error code (NULL: it succeeded). */
void turn_trace_tool(struct trace_span *sp, const char *name, const char *call_id,
                     const char *error_code);

#endif
