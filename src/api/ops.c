/* Ops endpoints. /healthz never touches a dependency (liveness must not fail
 * because the database is slow); /readyz and /health run the registered
 * health checks on the worker pool and answer when they finish. */
#include "api/ops.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/health.h"
#include "core/metrics.h"
#include "core/procstat.h"
#include "http/server.h"
#include "llm/llm.h"
#include "version.h"

#include <stdio.h>
#include <string.h>

static void healthz(struct http_req *r)
{
    static const char body[] = "{\"status\":\"alive\"}";
    http_reply_raw(r, 200, "application/json", body, sizeof body - 1);
}

static void readyz_done(const struct health_report *rep, void *arg)
{
    struct http_req *r = arg;
    struct ops_state *st = r->ud;
    json_t *reasons = json_array();
    if (http_server_draining(st->srv))
        json_array_append_new(reasons, json_string("draining: the server is shutting down"));
    int gate = atomic_load(&st->llm_gate);
    if (gate == OPS_LLM_GATE_RUNNING)
        json_array_append_new(reasons, json_string("llm: the start-up check of the model providers "
                                                   "(AGENTD_LLM_STARTUP_CHECK) is running"));
    else if (gate == OPS_LLM_GATE_REFUSED) {
        char line[600];
        snprintf(line, sizeof line, "llm: %s", st->llm_gate_reason);
        json_array_append_new(reasons, json_string(line));
    }
    for (int i = 0; i < rep->n; i++)
        if (!rep->r[i].ok && rep->r[i].critical) {
            char line[256];
            snprintf(line, sizeof line, "%s: %s", rep->r[i].name,
                     rep->r[i].detail[0] ? rep->r[i].detail : "failing");
            json_array_append_new(reasons, json_string(line));
        }
    if (json_array_size(reasons) == 0) {
        json_decref(reasons);
        http_reply_json(r, 200, json_pack("{s:s}", "status", "ready"));
        return;
    }
    http_set_header(r, "Retry-After", "1");
    http_reply_json(r, 503, json_pack("{s:s,s:o}", "status", "not_ready", "reasons", reasons));
}

static void readyz(struct http_req *r)
{
    struct ops_state *st = r->ud;
    if (!atomic_load(&st->warm) || http_server_draining(st->srv)) {
        const char *why = http_server_draining(st->srv) ? "draining: the server is shutting down"
                                                        : "warming up: start-up work is not finished";
        http_set_header(r, "Retry-After", "1");
        http_reply_json(r, 503, json_pack("{s:s,s:[s]}", "status", "not_ready", "reasons", why));
        return;
    }
    if (health_run(r->loop, readyz_done, r) != 0)
        http_reply_json(r, 503, json_pack("{s:s,s:[s]}", "status", "not_ready", "reasons",
                                          "health checks could not be scheduled (worker pool full)"));
}

/* Each provider as configured and as last seen; never its key. */
static json_t *llm_providers_json(const struct llm *l)
{
    json_t *a = json_array();
    for (int i = 0; l && i < llm_provider_count(l); i++) {
        char host[128];
        int status = 0;
        const char *state = llm_provider_state(l, i, &status);
        json_t *p = json_pack("{s:s,s:s,s:s}", "name", llm_provider_name(l, i), "model",
                              llm_provider_model(l, i), "state", state ? state : "unknown");
        llm_provider_host(l, i, host, sizeof host);
        if (p && host[0])
            json_object_set_new(p, "host", json_string(host));
        if (p && status)
            json_object_set_new(p, "http_status", json_integer(status));
        json_array_append_new(a, p);
    }
    return a;
}

static void health_done(const struct health_report *rep, void *arg)
{
    struct http_req *r = arg;
    struct ops_state *st = r->ud;
    json_t *deps = json_array();
    int all_ok = 1;
    for (int i = 0; i < rep->n; i++) {
        json_t *d = json_pack("{s:s,s:s,s:f}", "name", rep->r[i].name, "status",
                              rep->r[i].ok ? "ok" : "failing", "latency_ms",
                              (double)(int64_t)(rep->r[i].latency_ms * 1000) / 1000.0);
        if (rep->r[i].detail[0]) /* a failure's reason, or a state (the llm breakers) */
            json_object_set_new(d, "detail", json_string(rep->r[i].detail));
        json_array_append_new(deps, d);
        all_ok &= rep->r[i].ok;
    }
    uint64_t reqs = 0;
    double rate = http_server_error_rate_1m(st->srv, &reqs);
    int draining = http_server_draining(st->srv);
    json_t *warnings = json_array();
    if (st->test_payments_warn)
        json_array_append_new(warnings, json_string(
            "test payments are accepted in production (AGENTD_ALLOW_TEST_PAYMENTS=1): orders "
            "can be placed without a charge"));
    const char *status = draining ? "draining" : !atomic_load(&st->warm) ? "starting"
                         : rep->ready && all_ok && json_array_size(warnings) == 0 ? "ok"
                                                                                  : "degraded";
    json_t *body = json_pack("{s:s,s:s,s:s,s:I,s:o,s:I,s:f,s:I,s:b}", "status", status, "version",
                             AGENTD_VERSION, "commit", AGENTD_GIT_COMMIT, "uptime_seconds",
                             (json_int_t)((clock_mono_ms() - st->start_mono_ms) / 1000),
                             "dependencies", deps, "in_flight",
                             (json_int_t)http_server_inflight(st->srv) - 1, /* not this request */
                             "error_rate_1m", rate, "requests_1m", (json_int_t)reqs, "draining",
                             draining);
    json_object_set_new(body, "llm_providers", llm_providers_json(st->llm));
    json_object_set_new(body, "test_payments", json_boolean(st->test_payments));
    json_object_set_new(body, "warnings", warnings);
    http_reply_json(r, 200, body);
}

static void health(struct http_req *r)
{
    if (health_run(r->loop, health_done, r) != 0)
        http_reply_error(r, 503, "busy", "health checks could not be scheduled (worker pool full)");
}

static void metrics(struct http_req *r)
{
    struct buf out = { 0 };
    metrics_render(&out);
    if (out.oom) {
        buf_free(&out);
        http_reply_error(r, 503, "out_of_memory", "cannot render metrics");
        return;
    }
    http_reply_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    buf_free(&out);
}

/* ---- process metrics ---- */

static double start_time(void *ud)
{
    const struct ops_state *st = ud;
    return (double)st->start_wall_ms / 1000.0;
}

int ops_routes(struct router *rt, struct ops_state *st)
{
    static const char *const build_labels[] = { "version", "commit", NULL };
    struct metric *build = metric_register("agentd_build_info", "Build version and commit (value is always 1)",
                                           METRIC_GAUGE, build_labels, NULL);
    const char *bv[] = { AGENTD_VERSION, AGENTD_GIT_COMMIT };
    metric_set(metric_child(build, bv), 1);
    metric_register_fn("process_start_time_seconds", "Start time of the process since the Unix epoch in seconds",
                       METRIC_GAUGE, start_time, st);
    procstat_metrics_register();
    static const struct router_route routes[] = {
        { HTTP_GET, "/healthz", healthz },
        { HTTP_GET, "/readyz", readyz },
        { HTTP_GET, "/health", health },
        { HTTP_GET, "/metrics", metrics },
    };
    return router_add_table(rt, routes, sizeof routes / sizeof routes[0], st);
}
