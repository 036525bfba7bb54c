/* The OTLP/HTTP JSON trace exporter: a timer on one loop drains the finished
 * spans of core/trace.c and POSTs them in batches to {endpoint}/v1/traces
 * over the non-blocking client, one export in flight at a time. A dead or
 * slow collector costs a counter (agentd_trace_exports_total{outcome}) and
 * the spans of that batch (agentd_trace_spans_dropped_total), never a request. */
#ifndef AGENTD_HTTP_OTLP_H
#define AGENTD_HTTP_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct loop;
struct trace_span;
struct otlp_exporter;

#define OTLP_BATCH_MAX 512

struct otlp_options {
    const char *endpoint;     /* base URL: AGENTD_OTLP_ENDPOINT */
    const char *headers;      /* "name=value,name=value" or NULL: AGENTD_OTLP_HEADERS */
    const char *service_name; /* resource service.name */
    const char *instance;     /* resource service.instance.id, or NULL */
    int64_t interval_ms;      /* how often the queue is drained: 1000 */
    int64_t timeout_ms;       /* one export: 5000 */
};

/* ExportTraceServiceRequest as OTLP JSON (ids in hex, times as decimal
 * strings, enums as numbers): one resource, one scope. malloc'd text, or
 * NULL when out of memory. Pure: for the unit test. */
char *otlp_encode(const struct trace_span *spans, size_t n, const char *service_name,
                  const char *instance);

/* agentd_trace_exports_total{outcome} and agentd_trace_spans_dropped_total:
 * every server has the series (at 0 when tracing is off). */
void otlp_metrics_register(void);

/* Copies what it needs of o. NULL with the reason in *e. */
struct otlp_exporter *otlp_new(const struct otlp_options *o, struct agentd_error *e);
/* Starts the timer on loop (posted to its thread). 0 or AGENTD_ENOMEM. */
int otlp_start(struct otlp_exporter *x, struct loop *loop);
/* From any thread, once the drain has answered its last request: exports
 * what is queued, batch after batch, on the exporter's loop (posted there).
 * otlp_flushed() turns true when the queue is empty and no export is in
 * flight, or at once when tracing never started. 0 or AGENTD_ENOMEM. */
int otlp_flush(struct otlp_exporter *x);
int otlp_flushed(const struct otlp_exporter *x);
/* After the loops stopped, before their bases are freed: ends an export in
 * flight (its spans are dropped). */
void otlp_stop(struct otlp_exporter *x);
void otlp_free(struct otlp_exporter *x);

#endif
