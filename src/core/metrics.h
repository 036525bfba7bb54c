/* Prometheus metrics: a process-wide registry of families (counter, gauge,
 * histogram), each with fixed label names and children per label-value set.
 * Updates are lock-free atomics and safe from any thread; only creating a
 * new child takes the family's mutex. Rendered in text format 0.0.4.
 *
 * Keep label values bounded: route templates, never ids. A family holds at
 * most METRICS_MAX_CHILDREN children; past that, lookups return the family's
 * overflow child (label values "other"), so a bug costs accuracy, not memory. */
#ifndef AGENTD_CORE_METRICS_H
#define AGENTD_CORE_METRICS_H

#include <stdint.h>

#include "core/buf.h"

#define METRICS_MAX_LABELS 4
#define METRICS_MAX_CHILDREN 1024

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric;        /* a family */
struct metric_child;  /* one label-value set */

/* Register a family. labels: NULL-terminated names (NULL or {NULL} = none).
 * buckets: histogram upper bounds, ascending, terminated by a value <= the
 * previous one (pass METRICS_BUCKETS_LATENCY). Registering a name twice
 * returns the existing family. Families live until metrics_reset(). */
struct metric *metric_register(const char *name, const char *help, enum metric_type type,
                               const char *const *labels, const double *buckets);

/* A gauge computed at scrape time (queue depths, uptime...). */
typedef double (*metric_value_fn)(void *ud);
void metric_register_fn(const char *name, const char *help, enum metric_type type,
                        metric_value_fn fn, void *ud);

/* Child for the given label values (as many as the family has labels). */
struct metric_child *metric_child(struct metric *m, const char *const *values);
/* The unlabeled child of a family without labels. */
struct metric_child *metric_only(struct metric *m);

void metric_inc(struct metric_child *c);
void metric_add(struct metric_child *c, double v);     /* counter/gauge */
void metric_set(struct metric_child *c, double v);     /* gauge */
void metric_observe(struct metric_child *c, double v); /* histogram */

/* Current value of a counter/gauge child, or a histogram's count. */
double metric_value(const struct metric_child *c);

/* Append the whole registry to out in Prometheus text format 0.0.4. */
void metrics_render(struct buf *out);

/* Frees every family. Tests only: no update may run concurrently. */
void metrics_reset(void);

/* Seconds: 0.5 ms .. 60 s. */
extern const double METRICS_BUCKETS_LATENCY[];

#endif
