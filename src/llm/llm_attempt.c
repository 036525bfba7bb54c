/* One HTTP attempt of an LLM call and what its end means: the transfer on
 * the loop's http_client, retries with backoff, the breaker, fallbacks. */
#define _GNU_SOURCE
#include "llm/llm_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/client.h"
#include "llm/stream.h"

static uint64_t rnd64(void)
{
    static _Thread_local uint64_t s;
    if (!s)
        s = (uint64_t)clock_mono_ns() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9e3779b97f4a7c15ull;
    /* xorshift64*: jitter needs spread, not secrecy */
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
}

static void count(struct provider *p, enum outcome o) { metric_inc(p->m_outcome[o]); }

static void log_attempt(struct llm_call *c, struct provider *p, long status, const char *what)
{
    struct logline l;
    if (!log_begin(&l, LOG_WARN, "llm attempt failed"))
        return;
    if (c->request_id[0])
        log_str(&l, "request_id", c->request_id);
    log_str(&l, "provider", p->cfg->name);
    log_str(&l, "model", p->cfg->model);
    log_int(&l, "attempt", c->attempts);
    if (status)
        log_int(&l, "http_status", status);
    log_str(&l, "error", what);
    log_end(&l);
}

/* An easy handle for an attempt on ll: a spare one, or a new one. */
static CURL *easy_take(struct llm_loop *ll)
{
    if (ll && ll->nspare > 0)
        return ll->spare[--ll->nspare];
    return curl_easy_init();
}

/* Ends the current attempt's transfer and parser (not the call). Its easy
 * handle, out of the multi handle, is reset and kept for the loop's next
 * attempt (up to LLM_SPARE_EASY). */
void llm_attempt_clear(struct llm_call *c)
{
    if (c->easy) {
        struct llm_loop *ll = c->ll;
        if (ll && ll->cl)
            http_client_remove(ll->cl, c->easy);
        if (ll && ll->cl && ll->nspare < LLM_SPARE_EASY) {
            curl_easy_reset(c->easy);
            ll->spare[ll->nspare++] = c->easy;
        } else {
            curl_easy_cleanup(c->easy);
        }
        c->easy = NULL;
    }
    llm_stream_free(c->sp);
    c->sp = NULL;
    buf_free(&c->in);
    memset(&c->in, 0, sizeof c->in);
}

static int hint_seconds(int64_t ms) { return ms <= 0 ? 0 : (int)((ms + 999) / 1000); }

static void on_stream_delta(const char *text, size_t len, void *ud)
{
    struct llm_call *c = ud;
    c->streamed = 1;
    if (c->on_delta && !c->cancelled) {
        c->in_callback = 1;
        c->on_delta(text, len, c->ud);
        c->in_callback = 0;
    }
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct llm_call *c = ud;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
        c->retry_after_ms = -1; /* a new response (after 100 Continue) */
    else if (n > 12 && strncasecmp(ptr, "retry-after:", 12) == 0) {
        char v[64];
        size_t vl = n - 12;
        if (vl >= sizeof v)
            vl = sizeof v - 1;
        memcpy(v, ptr + 12, vl);
        v[vl] = 0;
        char *e = v + strlen(v);
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            *--e = 0;
        c->retry_after_ms = llm_retry_after_ms(v, clock_wall_ms(), LLM_RETRY_AFTER_CAP_MS);
    }
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct llm_call *c = ud;
    size_t n = size * nmemb;
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->stream && status >= 200 && status < 300) {
        if (c->sse < 0) {
            /* a server that ignores stream:true answers with one JSON body */
            char *ct = NULL;
            curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
            c->sse = !(ct && strncasecmp(ct, "application/json", 16) == 0);
        }
        if (c->sse) {
            c->in_callback = 1;
            struct agentd_error why = { 0 };
            int rc = llm_stream_feed(c->sp, ptr, n, &why);
            c->in_callback = 0;
            if (c->cancelled)
                return 0; /* cancelled from on_delta: abort, on_done frees */
            if (rc != 0) {
                c->write_failed = 1;
                llm_set_msg(&c->write_err, "%.199s", why.msg); /* as long as it always was */
                return 0;
            }
            return n;
        }
    }
    if (c->in.len + n > MAX_RESPONSE) {
        c->write_failed = 1;
        llm_set_msg(&c->write_err, "the reply is larger than %u bytes", MAX_RESPONSE);
        return 0;
    }
    buf_append(&c->in, ptr, n);
    if (c->in.oom) {
        c->write_failed = 1;
        llm_set_msg(&c->write_err, "out of memory");
        return 0;
    }
    return n;
}

static void on_transfer_done(CURL *easy, CURLcode res, void *ud);

/* curl's socket(), so that a failure for lack of descriptors or memory is
 * known to be ours (curl 7.88 reports it as a connect error without the
 * errno). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)purpose;
    struct llm_call *c = ud;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD)
        c->local_errno = errno ? errno : EMFILE;
    else
        c->sock_opened = 1;
    return s;
}

/* Connected or reused, about to send: past any wait for a free connection. */
static int on_prereq(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    (void)ip; (void)local_ip; (void)port; (void)local_port;
    struct llm_call *c = ud;
    c->sent_ns = clock_mono_ns();
    return CURL_PREREQFUNC_OK;
}

/* The provider's _CA_BUNDLE and _HTTP2 choice. With HTTP/2 a call waits for a connection
 * being set up rather than open its own (PIPEWAIT), so thousands of calls
 * share a few connections, each carrying as many streams as the server
 * allows (http/client.c); HTTP/1.1 stays one call per connection.
 * alpn_h1: an `auto` provider already answered HTTP/1.1 by ALPN. Returns 1
 * when the transfer belongs on the client's HTTP/2 handle. */
int llm_easy_transport(CURL *e, const struct llm_provider_config *cfg, int alpn_h1)
{
    if (cfg->ca_bundle)
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_bundle);
    int tls = strncmp(cfg->url, "https://", 8) == 0;
    switch (cfg->http2) {
    case LLM_HTTP2_PRIOR:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        return 1;
    case LLM_HTTP2_OFF:
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        return 0;
    default: /* auto: ALPN over TLS offers h2 and http/1.1, the server picks */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, tls && !alpn_h1 ? 1L : 0L);
        return tls && !alpn_h1;
    }
}

/* An `auto` provider answered HTTP/1.1 by ALPN: from now on its calls go
 * on the HTTP/1.1 handle (a connection each, no per-host cap), and this
 * loop's calls still waiting on the HTTP/2 handle for a connection move
 * there too, from the start of their request (nothing was sent). */
static void alpn_fell_back(struct llm_call *done)
{
    struct provider *p = &done->llm->prov[done->prov];
    struct logline l;
    if (!atomic_exchange(&p->alpn_h1, 1) &&
        log_begin(&l, LOG_WARN, "llm provider answered HTTP/1.1 by ALPN: one connection per call")) {
        log_str(&l, "provider", p->cfg->name);
        log_end(&l);
    }
    for (struct llm_call *c = done->ll->calls; c; c = c->next) {
        if (c == done || c->prov != done->prov || !c->easy || !c->mux || c->sent_ns)
            continue;
        http_client_remove(c->ll->cl, c->easy);
        llm_easy_transport(c->easy, p->cfg, 1);
        c->mux = 0;
        c->body_off = 0;
        if (http_client_add(c->ll->cl, c->easy, on_transfer_done, c) != 0) {
            llm_attempt_clear(c);
            llm_call_finish(c, AGENTD_ENOMEM, NULL, "out of memory starting an LLM request", 0);
            return; /* the list may have changed under us */
        }
    }
}

static void start_attempt(struct llm_call *c)
{
    struct provider *p = &c->llm->prov[c->prov];
    int64_t now = clock_mono_ms();
    if (c->deadline_ms && now >= c->deadline_ms) {
        count(p, OUT_TIMEOUT);
        llm_call_finish(c, AGENTD_ETIMEOUT, NULL, "the model did not answer before the deadline", 0);
        return;
    }
    int64_t timeout = p->cfg->timeout_ms;
    c->capped = 0;
    if (c->deadline_ms && c->deadline_ms - now <= timeout) {
        timeout = c->deadline_ms - now;
        c->capped = 1;
    }
    llm_attempt_clear(c);
    c->sse = -1;
    c->streamed = 0;
    c->write_failed = 0;
    free(c->write_err);
    c->write_err = NULL;
    c->retry_after_ms = -1;
    c->local_errno = 0;
    c->sock_opened = 0;
    c->sent_ns = 0;
    c->timeout_ms = timeout > 0 ? timeout : 1;
    if (llm_request_for_provider(c) != 0)
        goto oom;
    if (c->stream && !(c->sp = llm_stream_new(on_stream_delta, c)))
        goto oom;
    if (!(c->easy = easy_take(c->ll)))
        goto oom;
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, p->endpoint);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    /* the body lives as long as the attempt */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(c->body_len + c->msgs_len));
    if (!c->msgs_len && c->body_len <= BODY_INLINE_MAX) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    } else {
        c->body_off = 0;
        curl_easy_setopt(e, CURLOPT_READFUNCTION, llm_request_read);
        curl_easy_setopt(e, CURLOPT_READDATA, c);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, llm_request_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    }
    struct curl_slist *hdrs = p->hdrs[c->stream ? 1 : 0];
    if (reqid_valid(c->request_id)) { /* never a byte that could end the header line */
        snprintf(c->rid_line, sizeof c->rid_line, "X-Request-Id: %s", c->request_id);
        c->rid_hdr = (struct curl_slist){ .data = c->rid_line, .next = hdrs };
        hdrs = &c->rid_hdr;
    }
    if (c->span && c->span->ctx.valid) { /* W3C trace context: the provider's spans join ours */
        char tp[TRACEPARENT_LEN + 1];
        trace_format_traceparent(&c->span->ctx, tp);
        snprintf(c->tp_line, sizeof c->tp_line, "traceparent: %s", tp);
        c->tp_hdr = (struct curl_slist){ .data = c->tp_line, .next = hdrs };
        hdrs = &c->tp_hdr;
        if (c->ts_line) {
            c->ts_hdr = (struct curl_slist){ .data = c->ts_line, .next = hdrs };
            hdrs = &c->ts_hdr;
        }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout > 0 ? timeout : 1));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout < CONNECT_TIMEOUT_MS ? (timeout > 0 ? timeout : 1) : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "agentd");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    c->mux = llm_easy_transport(e, p->cfg, atomic_load(&p->alpn_h1));
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    c->started_ns = clock_mono_ns();
    c->attempts++;
    if ((c->mux ? http_client_add_h2 : http_client_add)(c->ll->cl, e, on_transfer_done, c) != 0)
        goto oom;
    return;
oom:
    llm_attempt_clear(c);
    llm_call_finish(c, AGENTD_ENOMEM, NULL, "out of memory starting an LLM request", 0);
}

void llm_on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    llm_try_providers(arg);
}

/* An attempt failed. retryable: the same provider may be tried again.
 * local: it failed for lack of OUR resources (descriptors, memory, ports),
 * which says nothing about the provider: the breaker does not count it (a
 * half-open probe is handed back instead), the retry rules are the same. */
static void attempt_failed(struct llm_call *c, int retryable, int timed_out, int64_t retry_after_ms,
                           long status, const char *what, int local)
{
    struct provider *p = &c->llm->prov[c->prov];
    int64_t now = clock_mono_ms();
    if (local) {
        if (c->probe)
            llm_breaker_release(&p->breaker);
    } else
        llm_breaker_failure(&p->breaker, now);
    c->probe = 0; /* settled above */
    llm_provider_gauge(p);
    llm_set_msg(&c->last_err, "%s: %s", p->cfg->name, what);
    log_attempt(c, p, status, what);
    if (retry_after_ms > c->hint_ms)
        c->hint_ms = retry_after_ms;
    if (c->streamed && c->on_delta) {
        /* the text streamed so far will be sent again by the next attempt */
        c->in_callback = 1;
        c->on_delta(NULL, 0, c->ud);
        c->in_callback = 0;
        c->streamed = 0;
        if (c->cancelled) {
            llm_call_free(c);
            return;
        }
    }
    if (c->deadline_ms && ((timed_out && c->capped) || now >= c->deadline_ms)) {
        count(p, OUT_TIMEOUT);
        llm_call_finish(c, AGENTD_ETIMEOUT, NULL, "the model did not answer before the deadline", 0);
        return;
    }
    int again = retryable && c->retry < c->llm->cfg.max_retries &&
                llm_breaker_state(&p->breaker, now) != LLM_BREAKER_OPEN;
    int64_t delay = 0;
    if (again) {
        delay = retry_after_ms >= 0
                    ? retry_after_ms
                    : llm_backoff_ms(c->retry, LLM_BACKOFF_BASE_MS, LLM_BACKOFF_CAP_MS, rnd64());
        if (c->deadline_ms && now + delay >= c->deadline_ms)
            again = 0; /* waiting would pass the deadline: hand over instead */
    }
    count(p, timed_out ? OUT_TIMEOUT : again ? OUT_RETRY : OUT_ERROR);
    llm_attempt_clear(c);
    if (again) {
        c->retry++;
        struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000) };
        event_del(c->timer);
        event_assign(c->timer, event_get_base(c->timer), -1, 0, llm_on_retry_timer, c);
        evtimer_add(c->timer, &tv);
        return;
    }
    c->transient++;
    c->prov++;
    c->retry = 0;
    llm_try_providers(c);
}

void llm_provider_set_state(struct provider *p, enum pstate st, long status)
{
    atomic_store(&p->state_status, (int)status);
    atomic_store(&p->state, (int)st);
}

static void attempt_succeeded(struct llm_call *c, struct llm_reply *r)
{
    struct provider *p = &c->llm->prov[c->prov];
    c->probe = 0;
    llm_breaker_success(&p->breaker);
    llm_provider_set_state(p, PS_OK, 200);
    llm_provider_gauge(p);
    count(p, OUT_OK);
    r->usage.cost_usd = ((double)r->usage.prompt_tokens * p->cfg->price_in +
                         (double)r->usage.completion_tokens * p->cfg->price_out) / 1e6;
    metric_add(p->m_prompt, (double)r->usage.prompt_tokens);
    metric_add(p->m_completion, (double)r->usage.completion_tokens);
    metric_add(p->m_cost, r->usage.cost_usd);
    free(r->provider);
    r->provider = strdup(p->cfg->name);
    if (!r->model)
        r->model = strdup(p->cfg->model);
    r->attempts = c->attempts;
    llm_attempt_clear(c);
    if (!r->provider || !r->model) {
        llm_reply_free(r);
        llm_call_finish(c, AGENTD_ENOMEM, NULL, "out of memory", 0);
        return;
    }
    llm_call_finish(c, 0, r, NULL, 0);
}

/* The provider refused this request itself: another provider would too. */
static void attempt_refused(struct llm_call *c, long status)
{
    struct provider *p = &c->llm->prov[c->prov];
    c->probe = 0;
    llm_breaker_success(&p->breaker); /* it answered: it is up */
    llm_provider_set_state(p, PS_OK, status); /* and its key and model are fine */
    llm_provider_gauge(p);
    count(p, OUT_ERROR);
    char pm[200] = "";
    json_t *o = c->in.data ? json_loadb(c->in.data, c->in.len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
    if (m)
        snprintf(pm, sizeof pm, ": %.160s", m);
    json_decref(o);
    char msg[256];
    snprintf(msg, sizeof msg, "LLM provider %s refused the request (HTTP %ld)%s", p->cfg->name,
             status, pm);
    log_attempt(c, p, status, msg);
    llm_attempt_clear(c);
    llm_call_finish(c, AGENTD_EINVAL, NULL, msg, 0);
}

/* The sentence for a refused configuration: names the provider and the
 * variable to fix. Never the provider's own message: a 401's often echoes
 * part of the key. */
void llm_refusal_text(const struct provider *p, long status, enum llm_refusal rf, char *out,
                      size_t len)
{
    char pre[64];
    llm_provider_var_prefix(p->cfg->name, pre, sizeof pre);
    if (rf == LLM_REFUSAL_KEY && !p->cfg->api_key)
        snprintf(out, len, "provider '%s' requires an API key (HTTP %ld): set %s_API_KEY",
                 p->cfg->name, status, pre);
    else if (rf == LLM_REFUSAL_KEY)
        snprintf(out, len, "provider '%s' refused the API key (HTTP %ld): check %s_API_KEY",
                 p->cfg->name, status, pre);
    else if (rf == LLM_REFUSAL_ACCESS)
        snprintf(out, len, "provider '%s' refused access (HTTP %ld): check that %s_API_KEY may use "
                 "model '%s'", p->cfg->name, status, pre, p->cfg->model);
    else
        snprintf(out, len, "provider '%s' does not serve model '%s' (HTTP %ld): check %s_MODEL "
                 "and %s_URL", p->cfg->name, p->cfg->model, status, pre, pre);
}

/* Records a refusal in the provider's state; the first one after another
 * state is an error line, repeats are the usual attempt warnings. */
static void note_refusal(struct provider *p, const char *request_id, long status,
                         enum llm_refusal rf, const char *what)
{
    enum pstate st = rf == LLM_REFUSAL_MODEL ? PS_MODEL : PS_UNAUTHORIZED;
    int before = atomic_exchange(&p->state, (int)st);
    atomic_store(&p->state_status, (int)status);
    struct logline l;
    if (before != (int)st && log_begin(&l, LOG_ERROR, "llm provider refused its configuration")) {
        if (request_id && *request_id)
            log_str(&l, "request_id", request_id);
        char host[128];
        log_str(&l, "provider", p->cfg->name);
        log_str(&l, "model", p->cfg->model);
        log_str(&l, "host", llm_url_host(p->cfg->url, host, sizeof host));
        log_int(&l, "http_status", status);
        log_str(&l, "error", what);
        log_end(&l);
    }
}

/* The provider refused its configuration: no retry (the same key fails the
 * same way), no breaker failure (it is up), on to the next provider. */
static void attempt_config_refused(struct llm_call *c, long status, enum llm_refusal rf)
{
    struct provider *p = &c->llm->prov[c->prov];
    if (c->probe)
        llm_breaker_release(&p->breaker);
    c->probe = 0;
    llm_provider_gauge(p);
    count(p, OUT_REFUSED);
    char what[300];
    llm_refusal_text(p, status, rf, what, sizeof what);
    note_refusal(p, c->request_id, status, rf, what);
    log_attempt(c, p, status, what);
    llm_set_msg(&c->last_err, "%s", what);
    if (c->refused_msg)
        llm_set_msg(&c->refused_msg, "%s; %s", c->refused_msg, what);
    else
        llm_set_msg(&c->refused_msg, "%s", what);
    c->refused++;
    llm_attempt_clear(c);
    c->prov++;
    c->retry = 0;
    llm_try_providers(c);
}

static int local_errno(long e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM || e == EADDRNOTAVAIL;
}

/* Out of descriptors right now? (A resolver that could not start its thread
 * or socket pair leaves no errno behind.) */
static int fds_exhausted(void)
{
    int fd = eventfd(0, EFD_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return local_errno(errno);
}

/* Did this transfer fail for lack of our own resources rather than because
 * of the provider or the network? Returns the errno (0 when curl gave only
 * its code), or -1: not local. */
static int local_failure(struct llm_call *c, CURLcode res)
{
    if (c->local_errno) /* socket() failed: exact */
        return c->local_errno;
    if (res == CURLE_OUT_OF_MEMORY || res == CURLE_FAILED_INIT)
        return 0;
    long oe = 0;
    if (c->easy)
        curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &oe);
    if (local_errno(oe))
        return (int)oe; /* connect(), send() or recv() said so */
    if (oe == 0 && (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST) &&
        fds_exhausted())
        return EMFILE;
    return -1;
}

/* A timeout with the connection cap set: libcurl's timeout runs while a
 * transfer waits for one of our connections to free up. When the attempt
 * opened no socket (it waited, then reused a connection, or never got one)
 * and the provider had under 90 % of the timeout to answer, the wait ate the
 * time: local. (A name lookup that hangs for the whole attempt looks the
 * same and is counted as local then.) */
static int waited_for_connection(struct llm_call *c)
{
    if (c->llm->cfg.max_connections <= 0 || c->sock_opened)
        return 0;
    int64_t provider_ms = c->sent_ns ? (clock_mono_ns() - c->sent_ns) / 1000000 : 0;
    return provider_ms < c->timeout_ms * 9 / 10;
}

static void transfer_done(CURL *easy, CURLcode res, struct llm_call *c);

/* A transfer's end runs in the call's trace context: its log lines carry
 * the trace id (the context is a copy: the call may be freed inside). */
static void on_transfer_done(CURL *easy, CURLcode res, void *ud)
{
    struct llm_call *c = ud;
    long version = 0;
    if (c->mux && res == CURLE_OK && curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK &&
        version != 0 && version < CURL_HTTP_VERSION_2_0)
        alpn_fell_back(c);
    struct trace_ctx prev = trace_enter(c->span ? &c->span->ctx : NULL);
    transfer_done(easy, res, c);
    trace_leave(prev);
}

static void transfer_done(CURL *easy, CURLcode res, struct llm_call *c)
{
    struct provider *p = &c->llm->prov[c->prov];
    metric_observe(p->m_duration, (double)(clock_mono_ns() - c->started_ns) / 1e9);
    if (c->cancelled) {
        llm_call_free(c);
        return;
    }
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char what[256];
    if (res != CURLE_OK) {
        if (c->write_failed) {
            snprintf(what, sizeof what, "malformed reply: %s", c->write_err ? c->write_err : "out of memory");
            attempt_failed(c, 1, 0, -1, status, what, 0);
        } else if (res == CURLE_OPERATION_TIMEDOUT) {
            int queued = waited_for_connection(c);
            attempt_failed(c, 1, 1, -1, status,
                           queued ? "timed out waiting for a free connection (AGENTD_LLM_MAX_CONNECTIONS; "
                                    "a local failure: not counted by the circuit breaker)"
                                  : "timed out",
                           queued);
        } else {
            int e = local_failure(c, res);
            if (e < 0)
                snprintf(what, sizeof what, "%s", curl_easy_strerror(res));
            else
                snprintf(what, sizeof what, "%s%s%s (a local failure: not counted by the circuit breaker)",
                         curl_easy_strerror(res), e ? ": " : "", e ? strerror(e) : "");
            attempt_failed(c, 1, 0, -1, status, what, e >= 0);
        }
        return;
    }
    if (status >= 200 && status < 300) {
        struct llm_reply *r = calloc(1, sizeof *r);
        struct agentd_error err = { 0 };
        int rc = AGENTD_ENOMEM;
        if (r && c->stream && c->sse == 1)
            rc = llm_stream_finish(c->sp, r, &err);
        else if (r) {
            rc = llm_reply_parse(c->in.data ? c->in.data : "", c->in.len, r, &err);
            /* a plain JSON answer to a streaming request still streams its text once */
            if (rc == 0 && c->stream && r->content && *r->content && c->on_delta) {
                on_stream_delta(r->content, strlen(r->content), c);
                if (c->cancelled) {
                    llm_reply_free(r);
                    llm_call_free(c);
                    return;
                }
            }
        } else
            agentd_fail(&err, rc, NULL, NULL, "out of memory");
        if (rc == 0) {
            attempt_succeeded(c, r);
            return;
        }
        free(r);
        snprintf(what, sizeof what, "malformed reply: %.199s", err.msg); /* as long as it always was */
        attempt_failed(c, 1, 0, -1, status, what, 0);
        return;
    }
    if (llm_http_retryable(status)) {
        int64_t ra = c->retry_after_ms;
        snprintf(what, sizeof what, "HTTP %ld", status);
        attempt_failed(c, 1, 0, ra, status, what, 0);
        return;
    }
    enum llm_refusal rf = llm_http_refusal(status, c->in.data, c->in.len);
    if (rf != LLM_REFUSAL_NONE) {
        /* this provider's key, permissions, model or URL: the next one may do */
        attempt_config_refused(c, status, rf);
        return;
    }
    if (status >= 400 && status < 500) {
        attempt_refused(c, status);
        return;
    }
    snprintf(what, sizeof what, "unexpected HTTP %ld", status);
    attempt_failed(c, 0, 0, -1, status, what, 0);
}

/* From c->prov on, the first provider whose breaker lets an attempt go. */
void llm_try_providers(struct llm_call *c)
{
    int64_t now = clock_mono_ms();
    for (; c->prov < c->llm->nprov; c->prov++, c->retry = 0) {
        struct provider *p = &c->llm->prov[c->prov];
        int a = llm_breaker_allow(&p->breaker, now);
        llm_provider_gauge(p);
        if (a == 0) {
            count(p, OUT_BREAKER_OPEN);
            int64_t w = llm_breaker_wait_ms(&p->breaker, now);
            if (w > c->hint_ms)
                c->hint_ms = w;
            if (!c->last_err)
                llm_set_msg(&c->last_err, "%s: circuit open", p->cfg->name);
            c->transient++;
            continue;
        }
        c->probe = a == 2;
        start_attempt(c);
        return;
    }
    if (c->refused && !c->transient) {
        /* a configuration error: retrying the turn cannot help */
        llm_call_finish(c, AGENTD_EMODELREFUSED, NULL, c->refused_msg ? c->refused_msg : "out of memory", 0);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "no LLM provider could answer (last: %s)",
             c->last_err ? c->last_err : "none");
    llm_call_finish(c, AGENTD_EUNAVAILABLE, NULL, msg, hint_seconds(c->hint_ms));
}

void llm_provider_gauge(struct provider *p)
{
    metric_set(p->m_state, (double)llm_breaker_state(&p->breaker, clock_mono_ms()));
}
