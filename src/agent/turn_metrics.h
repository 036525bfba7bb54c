/* A turn's metrics (agentd_turns_total, agentd_turn_duration_seconds,
 * agentd_turns_in_flight, agentd_tool_calls_total, agentd_tool_duration_seconds). */
#ifndef AGENTD_AGENT_TURN_METRICS_H
#define AGENTD_AGENT_TURN_METRICS_H

#include <stdint.h>

struct agent;

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

#endif
