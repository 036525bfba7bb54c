/* A turn's telemetry: metrics (turns by outcome, their duration and how many
 * run, tool calls by tool and outcome; every series an alert may watch exists
 * at 0 from the start, agent_metrics_init) and its trace spans. */
#include "agent/turn_metrics.h"
#include "agent/outcome.h"
#include "agent/runner.h"
#include "agent/tools.h"
#include "agent/turn.h"
#include "core/instance.h"
#include "core/metrics.h"
#include "core/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static struct metric *m_turns, *m_tool_calls, *m_tool_duration;
static struct metric_child *m_duration, *m_inflight, *m_store_jobs;

void agent_metrics_init(void)
{
    static const char *const outcome[] = { "outcome", NULL };
    static const char *const tool_outcome[] = { "tool", "outcome", NULL };
    static const char *const tool[] = { "tool", NULL };
    m_turns = metric_register("agentd_turns_total", "Agent turns by outcome", METRIC_COUNTER,
                              outcome, NULL);
    m_duration = metric_only(metric_register("agentd_turn_duration_seconds", "Agent turn duration",
                                             METRIC_HISTOGRAM, NULL, METRICS_BUCKETS_LATENCY));
    m_inflight = metric_only(metric_register("agentd_turns_in_flight", "Agent turns running",
                                             METRIC_GAUGE, NULL, NULL));
    /* worker-pool round trips a turn makes (docs/performance.md): a direct
     * turn should make two, so a change that adds one shows here */
    m_store_jobs = metric_only(metric_register("agentd_turn_store_jobs_total",
                                               "Store jobs (worker-pool round trips) agent turns made",
                                               METRIC_COUNTER, NULL, NULL));
    m_tool_calls = metric_register("agentd_tool_calls_total",
                                   "Agent tool calls by tool and outcome", METRIC_COUNTER,
                                   tool_outcome, NULL);
    m_tool_duration = metric_register("agentd_tool_duration_seconds",
                                      "Agent tool call duration by tool", METRIC_HISTOGRAM, tool,
                                      METRICS_BUCKETS_LATENCY);
    /* every series an alert may watch exists at 0 from the start */
    for (int i = 0; OUTCOME_TURN_KNOWN[i]; i++) {
        const char *v[] = { OUTCOME_TURN_KNOWN[i] };
        metric_child(m_turns, v);
    }
    json_t *defs = tools_definitions();
    size_t i;
    json_t *d;
    json_array_foreach(defs, i, d) {
        const char *name = json_string_value(json_object_get(json_object_get(d, "function"), "name"));
        if (!name)
            continue;
        const char *v[] = { name, "ok" };
        metric_child(m_tool_calls, v);
        metric_child(m_tool_duration, v);
    }
    json_decref(defs);
    instance_metrics_init();
    turn_screen_metrics_init();
}

/* The tool label: a name from our tool table, else "unknown" (a model may
 * call anything; the label set must stay bounded). */
static const char *tool_label(const struct agent *ag, const char *name)
{
    size_t i;
    const json_t *d;
    json_array_foreach(ag->tools, i, d) {
        const char *n = json_string_value(json_object_get(json_object_get(d, "function"), "name"));
        if (n && name && strcmp(n, name) == 0)
            return n;
    }
    return "unknown";
}

void turn_metrics_tool(const struct agent *ag, const char *name, const char *outcome,
                       int64_t ns)
{
    const char *tool = tool_label(ag, name);
    const char *lv[] = { tool, outcome }, *dv[] = { tool };
    metric_inc(metric_child(m_tool_calls, lv));
    metric_observe(metric_child(m_tool_duration, dv), (double)ns / 1e9);
}

void turn_metrics_end(const char *outcome, int64_t ns)
{
    const char *labels[] = { outcome };
    metric_inc(metric_child(m_turns, labels));
    metric_observe(m_duration, (double)ns / 1e9);
    metric_add(m_inflight, -1);
}

void turn_metrics_inflight(int delta) { metric_add(m_inflight, delta); }

void turn_trace_begin(struct turn *t)
{
    if (trace_enabled() && (t->span = malloc(sizeof *t->span)) != NULL)
        trace_span_start(t->span, "agent.turn", TRACE_INTERNAL, trace_current());
}

void turn_trace_end(struct turn *t, const char *outcome)
{
    if (!t->span)
        return;
    trace_attr_str(t->span, "agentd.session_id", t->session_id);
    trace_attr_str(t->span, "agentd.turn_id", t->turn_id);
    trace_attr_str(t->span, "agentd.outcome", outcome);
    trace_attr_int(t->span, "gen_ai.usage.input_tokens", t->prompt_tokens);
    trace_attr_int(t->span, "gen_ai.usage.output_tokens", t->completion_tokens);
    trace_attr_bool(t->span, "agentd.resumed", t->resumed);
    if (t->status)
        trace_span_set_status(t->span, TRACE_STATUS_ERROR);
    trace_span_end(t->span);
}

void turn_trace_tool(struct trace_span *sp, const char *name, const char *call_id,
                     const char *error_code)
{
    if (!sp->recording)
        return;
    snprintf(sp->name, sizeof sp->name, "execute_tool %s", name ? name : "?");
    trace_attr_str(sp, "gen_ai.operation.name", "execute_tool");
    trace_attr_str(sp, "gen_ai.tool.name", name);
    trace_attr_str(sp, "gen_ai.tool.call.id", call_id);
    trace_attr_str(sp, "agentd.outcome", outcome_tool(error_code));
    if (error_code)
        trace_span_set_status(sp, TRACE_STATUS_ERROR);
    trace_span_end(sp);
}

void turn_metrics_store_job(void) { metric_inc(m_store_jobs); }
