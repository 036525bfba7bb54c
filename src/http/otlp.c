/* OTLP/HTTP JSON export of finished spans: the encoder (pure) and the
 * exporter (a timer on one loop, one POST in flight, counted outcomes). */
#define _GNU_SOURCE
#include "http/otlp.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/trace.h"
#include "http/client.h"
#include "version.h"

struct otlp_exporter {
    char *url;
    char *service_name;
    char *instance;
    struct curl_slist *hdrs;
    int64_t interval_ms, timeout_ms;
    struct loop *loop;
    struct http_client *cl;
    struct event *timer;
    CURL *easy;          /* the export in flight, or NULL */
    char *body;          /* its request body */
    size_t batch_n;      /* its spans (dropped if it fails) */
    struct trace_span *scratch;
    int stopped;
    int flushing;        /* the drain asked for everything queued: loop only */
    atomic_int flushed;  /* ... and it is out (or failed): read by the main thread */
    struct metric_child *m_ok, *m_failed, *m_rejected;
};

/* ---- encoding ---- */

static json_t *any_value(const struct trace_attr *a)
{
    char num[32];
    switch (a->type) {
    case 'i': /* int64 is a decimal string in the protobuf JSON mapping */
        snprintf(num, sizeof num, "%" PRId64, a->v.i);
        return json_pack("{s:s}", "intValue", num);
    case 'b':
        return json_pack("{s:b}", "boolValue", (int)a->v.i);
    case 'd':
        return json_pack("{s:f}", "doubleValue", a->v.d);
    default:
        return json_pack("{s:s}", "stringValue", a->v.s);
    }
}

static json_t *kv(const char *key, json_t *value)
{
    return value ? json_pack("{s:s,s:o}", "key", key, "value", value) : NULL;
}

static json_t *span_json(const struct trace_span *s)
{
    char tid[33], sid[17], pid[17], start[24], end[24];
    trace_hex(s->ctx.trace_id, 16, tid);
    trace_hex(s->ctx.span_id, 8, sid);
    snprintf(start, sizeof start, "%" PRId64, s->start_unix_ns);
    snprintf(end, sizeof end, "%" PRId64, s->end_unix_ns);
    json_t *attrs = json_array();
    for (int i = 0; attrs && i < s->nattrs; i++)
        json_array_append_new(attrs, kv(s->attrs[i].key, any_value(&s->attrs[i])));
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:{s:i}}", "traceId", tid, "spanId", sid,
                          "name", s->name, "kind", (int)s->kind, "startTimeUnixNano", start,
                          "endTimeUnixNano", end, "attributes", attrs ? attrs : json_array(),
                          "status", "code", (int)s->status);
    if (j && s->has_parent) {
        trace_hex(s->parent_span_id, 8, pid);
        json_object_set_new(j, "parentSpanId", json_string(pid));
    }
    return j;
}

char *otlp_encode(const struct trace_span *spans, size_t n, const char *service_name,
                  const char *instance)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        if (json_array_append_new(list, span_json(&spans[i])) != 0) {
            json_decref(list);
            return NULL;
        }
    json_t *res = json_array();
    if (res) {
        json_array_append_new(res, kv("service.name", json_pack("{s:s}", "stringValue",
                                                                 service_name ? service_name : "agentd")));
        json_array_append_new(res, kv("service.version", json_pack("{s:s}", "stringValue",
                                                                    AGENTD_VERSION)));
        if (instance)
            json_array_append_new(res, kv("service.instance.id",
                                          json_pack("{s:s}", "stringValue", instance)));
    }
    json_t *doc = list && res
                      ? json_pack("{s:[{s:{s:o},s:[{s:{s:s,s:s},s:o}]}]}", "resourceSpans", "resource",
                                  "attributes", res, "scopeSpans", "scope", "name", "agentd",
                                  "version", AGENTD_VERSION, "spans", list)
                      : NULL;
    if (!doc) {
        json_decref(list);
        json_decref(res);
        return NULL;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* ---- the exporter ---- */

/* "a=b,c=d" into "a: b" header lines; names and values trimmed. */
static int headers_parse(const char *spec, struct curl_slist **out)
{
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
    for (const char *p = spec; l && p && *p;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (eq && eq > p) {
            char line[1024];
            const char *k = p, *v = eq + 1;
            size_t kl = (size_t)(eq - p), vl = n - kl - 1;
            while (kl && (*k == ' ')) k++, kl--;
            while (kl && k[kl - 1] == ' ') kl--;
            while (vl && *v == ' ') v++, vl--;
            while (vl && v[vl - 1] == ' ') vl--;
            if ((size_t)snprintf(line, sizeof line, "%.*s: %.*s", (int)kl, k, (int)vl, v) >=
                sizeof line) {
                curl_slist_free_all(l);
                return AGENTD_EINVAL;
            }
            struct curl_slist *nl = curl_slist_append(l, line);
            if (!nl) {
                curl_slist_free_all(l);
                return AGENTD_ENOMEM;
            }
            l = nl;
        }
        p += n;
        p += *p == ',';
    }
    *out = l;
    return l ? 0 : AGENTD_ENOMEM;
}

static struct metric *exports_family(void)
{
    return metric_register("agentd_trace_exports_total",
                           "OTLP trace exports by outcome (ok; failed: no answer or a transport "
                           "error; rejected: a non-2xx answer).",
                           METRIC_COUNTER, (const char *const[]){ "outcome", NULL }, NULL);
}

void otlp_metrics_register(void)
{
    struct metric *m = exports_family();
    static const char *const outcomes[] = { "ok", "failed", "rejected" };
    for (int i = 0; i < 3; i++)
        metric_child(m, (const char *const[]){ outcomes[i] });
    trace_metrics_register();
}

struct otlp_exporter *otlp_new(const struct otlp_options *o, struct agentd_error *e)
{
    struct otlp_exporter *x = calloc(1, sizeof *x);
    if (!x) {
        agentd_fail(e, AGENTD_ENOMEM, "internal", NULL, "out of memory");
        return NULL;
    }
    size_t el = strlen(o->endpoint);
    while (el && o->endpoint[el - 1] == '/')
        el--;
    if (asprintf(&x->url, "%.*s/v1/traces", (int)el, o->endpoint) < 0)
        x->url = NULL;
    x->service_name = strdup(o->service_name ? o->service_name : "agentd");
    x->instance = o->instance ? strdup(o->instance) : NULL;
    x->scratch = calloc(OTLP_BATCH_MAX, sizeof *x->scratch);
    x->interval_ms = o->interval_ms > 0 ? o->interval_ms : 1000;
    x->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    int rc = headers_parse(o->headers, &x->hdrs);
    if (!x->url || !x->service_name || !x->scratch || rc) {
        agentd_fail(e, rc ? rc : AGENTD_ENOMEM, "invalid", NULL, "%s",
                    rc == AGENTD_EINVAL ? "AGENTD_OTLP_HEADERS: a header over 1 KiB"
                                        : "out of memory");
        otlp_free(x);
        return NULL;
    }
    struct metric *m = exports_family();
    x->m_ok = metric_child(m, (const char *const[]){ "ok" });
    x->m_failed = metric_child(m, (const char *const[]){ "failed" });
    x->m_rejected = metric_child(m, (const char *const[]){ "rejected" });
    return x;
}

static void arm(struct otlp_exporter *x)
{
    struct timeval tv = { .tv_sec = x->interval_ms / 1000,
                          .tv_usec = (x->interval_ms % 1000) * 1000 };
    evtimer_add(x->timer, &tv);
}

static size_t discard(char *data, size_t size, size_t nmemb, void *ud)
{
    (void)data;
    (void)ud;
    return size * nmemb;
}

static void export_end(struct otlp_exporter *x)
{
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    free(x->body);
    x->body = NULL;
    x->batch_n = 0;
}

static void export_batch(struct otlp_exporter *x);

/* The flush's next batch, or its end: a failed batch is dropped and counted
 * like any other, so a dead collector cannot hold the exit. */
static void flush_next(struct otlp_exporter *x)
{
    if (!x->easy && !x->stopped)
        export_batch(x);
    if (!x->easy)
        atomic_store(&x->flushed, 1);
}

static void on_done(CURL *easy, CURLcode result, void *ud)
{
    struct otlp_exporter *x = ud;
    long code = 0;
    if (result == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    int ok = result == CURLE_OK && code >= 200 && code < 300;
    metric_inc(ok ? x->m_ok : result == CURLE_OK ? x->m_rejected : x->m_failed);
    if (!ok) {
        trace_count_dropped(x->batch_n);
        /* debug only: a dead collector must not flood the log either */
        log_msg(LOG_DEBUG, NULL, "otlp: export of %zu spans failed: %s", x->batch_n,
                result == CURLE_OK ? "non-2xx answer" : curl_easy_strerror(result));
    }
    export_end(x);
    if (x->flushing)
        flush_next(x);
}

static void export_batch(struct otlp_exporter *x)
{
    size_t n = trace_drain(x->scratch, OTLP_BATCH_MAX);
    if (n == 0)
        return;
    x->body = otlp_encode(x->scratch, n, x->service_name, x->instance);
    CURL *c = x->body ? curl_easy_init() : NULL;
    x->easy = c;
    x->batch_n = n;
    int bad = !c;
    if (c) {
        bad |= curl_easy_setopt(c, CURLOPT_URL, x->url) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
        bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
        bad |= curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->body)) !=
               CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK;
        bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK;
    }
    if (bad || http_client_add(x->cl, c, on_done, x) != 0) {
        metric_inc(x->m_failed);
        trace_count_dropped(n);
        export_end(x);
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct otlp_exporter *x = arg;
    if (x->stopped)
        return;
    if (!x->easy) /* one in flight: the queue bounds what waits meanwhile */
        export_batch(x);
    arm(x);
}

static void start_here(void *arg)
{
    struct otlp_exporter *x = arg;
    x->cl = http_client_new(x->loop);
    x->timer = x->cl ? evtimer_new(loop_base(x->loop), tick, x) : NULL;
    if (!x->timer) {
        log_msg(LOG_ERROR, NULL, "otlp: out of memory: traces are not exported by this process");
        return;
    }
    arm(x);
}

static void flush_here(void *arg)
{
    struct otlp_exporter *x = arg;
    x->flushing = 1;
    if (!x->timer) { /* never started here: nothing can go out */
        atomic_store(&x->flushed, 1);
        return;
    }
    flush_next(x); /* an export in flight continues the flush when it ends */
}

int otlp_flush(struct otlp_exporter *x)
{
    if (!x->loop) {
        atomic_store(&x->flushed, 1);
        return 0;
    }
    return loop_post(x->loop, flush_here, x);
}

int otlp_flushed(const struct otlp_exporter *x) { return atomic_load(&x->flushed); }

int otlp_start(struct otlp_exporter *x, struct loop *loop)
{
    x->loop = loop;
    return loop_post(loop, start_here, x);
}

void otlp_stop(struct otlp_exporter *x)
{
    if (!x || x->stopped)
        return;
    x->stopped = 1;
    if (x->easy) {
        http_client_remove(x->cl, x->easy);
        trace_count_dropped(x->batch_n);
        export_end(x);
    }
    if (x->timer)
        event_free(x->timer);
    x->timer = NULL;
    http_client_free(x->cl);
    x->cl = NULL;
}

void otlp_free(struct otlp_exporter *x)
{
    if (!x)
        return;
    otlp_stop(x);
    curl_slist_free_all(x->hdrs);
    free(x->url);
    free(x->service_name);
    free(x->instance);
    free(x->scratch);
    free(x);
}
