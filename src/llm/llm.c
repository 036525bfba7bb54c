/* The LLM client: one call = a small state machine over attempts (provider,
 * retry) driven by the caller's loop; curl transfers, backoff timers and the
 * local model's answers are all events on that loop, so nothing blocks. */
#define _GNU_SOURCE
#include "llm/llm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/reqid.h"
#include "http/client.h"
#include "llm/llm_config.h"
#include "llm/retry.h"
#include "llm/stream.h"

#define LLM_MAX_LOOPS 1024
#define MAX_RESPONSE (16u << 20)   /* a reply body past this is refused */
#define CONNECT_TIMEOUT_MS 10000
/* curl's receive buffer, one per transfer (libcurl 7.88 allocates it per
 * easy handle and keeps it for the whole transfer, including the wait for
 * the model; the default is 16 KiB, the minimum 1 KiB). It bounds only how
 * much one read hands to on_body: SSE events and replies of a few KiB cost
 * a few more reads, and each call in flight is 15 KiB smaller. */
#define RECV_BUFFER 1024
/* A body up to this size goes to libcurl as POSTFIELDS, which copies it
 * into its request buffer (libcurl 7.88 sends headers and a body under 64 KB
 * in one go). A larger one (a long conversation) is read from ours through
 * a read callback into a 16 KB upload buffer (libcurl's minimum): one copy
 * of the conversation per waiting call, not two. */
#define BODY_INLINE_MAX (16 * 1024)

enum outcome { OUT_OK, OUT_RETRY, OUT_ERROR, OUT_TIMEOUT, OUT_BREAKER_OPEN, OUT_REFUSED, OUT_COUNT };
static const char *const outcome_names[OUT_COUNT] = { "ok", "retry", "error", "timeout",
                                                      "breaker_open", "refused" };

/* What the provider's latest answer said about its configured entry (for
 * /health); the breaker says the rest (open, half-open). */
enum pstate { PS_UNKNOWN, PS_OK, PS_UNAUTHORIZED, PS_MODEL };

struct provider {
    const struct llm_provider_config *cfg;
    char *endpoint;                /* base URL + /chat/completions */
    char *auth;                    /* "Authorization: Bearer ..." or NULL; never logged */
    char *body_head;               /* the body's first bytes: {"model":"<model>" */
    size_t body_head_len;
    struct curl_slist *hdrs[2];    /* request headers, [stream]; built once */
    struct llm_breaker breaker;
    atomic_int state;              /* enum pstate: set by any loop thread, read by /health */
    atomic_int state_status;       /* the HTTP status behind a refused state */
    struct metric_child *m_outcome[OUT_COUNT];
    struct metric_child *m_duration, *m_prompt, *m_completion, *m_cost, *m_state;
};

/* Per loop thread, created lazily by the first call made on that loop and
 * touched only from it (llm_free runs after the thread stopped). */
struct llm_loop {
    struct loop *loop;
    struct http_client *cl;          /* NULL for the built-in model */
    struct llm_call *calls;        /* live calls, so llm_free can drop them */
    /* The tools array serialized once: every call of a process passes the
     * same array, so its text is kept, keyed by the pointer (a reference is
     * held so the address cannot be reused by another array). */
    json_t *tools_key;
    char *tools_text;
    size_t tools_len;
    struct llm_probe *probe;       /* the start-up check running on this loop, if any */
};

struct llm {
    struct llm_config cfg;
    int nprov;
    struct provider prov[LLM_MAX_PROVIDERS];
    struct llm_local_model local;  /* answers when nprov == 0 */
    struct metric_child *m_builtin_ok;
    struct llm_loop *loops[LLM_MAX_LOOPS];
};

struct llm_call {
    struct llm *llm;
    struct llm_loop *ll;
    struct llm_call *prev, *next;
    llm_delta_fn on_delta;
    llm_done_fn done;
    void *ud;
    json_t *builtin_msgs;          /* the built-in model's own copy of the messages */
    char *body;                    /* the request serialized for provider body_prov */
    size_t body_len;
    size_t body_rest;              /* where what follows the model starts in body */
    size_t body_off;               /* read so far by libcurl (large bodies) */
    /* A large conversation is borrowed, not copied into body: what is sent
     * is body[0, body_rest + msgs_at) + msgs + the rest of body. The caller
     * keeps msgs unchanged until done() (llm.h). */
    const char *msgs;
    size_t msgs_len, msgs_at;
    int body_prov;
    int stream;
    int64_t deadline_ms;           /* 0 = none */
    char request_id[REQID_MAX + 1];
    /* "X-Request-Id: <id>" in front of the provider's shared header list,
     * so the provider's logs can be matched with ours (no allocation) */
    char rid_line[REQID_MAX + 16];
    struct curl_slist rid_hdr;
    int prov, retry, attempts;
    int probe;                     /* this attempt is its breaker's half-open probe */
    int capped;                    /* this attempt's timeout is what was left of the deadline */
    CURL *easy;
    int local_errno;               /* socket() failed for this attempt: errno */
    int sock_opened;               /* this attempt opened a socket */
    int64_t sent_ns;               /* it had a connection and was about to send (0 = not yet) */
    int64_t timeout_ms;            /* this attempt's timeout */
    struct buf in;                 /* a whole-JSON reply or an error body */
    struct llm_stream *sp;
    int sse;                       /* -1 unknown, 1 the reply is SSE, 0 it is plain JSON */
    int streamed;                  /* text was delivered in this attempt */
    int write_failed;              /* the write callback aborted: parse error or too large */
    char *write_err;               /* why (heap, only then) */
    int64_t retry_after_ms;        /* this attempt's Retry-After, -1 = none */
    int64_t started_ns;
    struct event *timer;           /* backoff wait, built-in answer, deferred finish */
    int in_callback;               /* inside on_delta: cancel must only mark */
    int cancelled;
    /* a finish decided inside llm_call waits for the loop */
    int starting;
    int pending_status, pending_hint;
    char *pending_err;             /* heap; NULL = none */
    int64_t hint_ms;               /* longest Retry-After or breaker wait seen */
    char *last_err;                /* the latest attempt's failure, for the final error (heap) */
    /* Providers left behind: refused their configuration (key, access,
     * model) or failed in a way a retry may cure. Only a chain that was
     * all refusals is a configuration error (model_refused); any transient
     * failure makes it "unavailable, retry". */
    int refused, transient;
    char *refused_msg;             /* each refusal's sentence, "; "-joined (heap) */
};

static void try_providers(struct llm_call *c);
struct llm_probe;
static void probe_free(struct llm_probe *pr);

/* ---- small helpers ---- */

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

/* Replaces a heap message (the rarely used texts of a call are allocated
 * only when there is something to say: a call in flight stays small). */
static void set_msg(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(char **dst, const char *fmt, ...)
{
    char *m = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    va_end(ap);
    free(*dst);
    *dst = m;
}

void llm_reply_free(struct llm_reply *r)
{
    if (!r)
        return;
    llm_reply_clear(r);
    free(r);
}

static void set_gauge(struct provider *p)
{
    metric_set(p->m_state, (double)llm_breaker_state(&p->breaker, clock_mono_ms()));
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

/* ---- call lifetime ---- */

static void call_unlink(struct llm_call *c)
{
    if (!c->ll)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (c->ll->calls == c)
        c->ll->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->ll = NULL;
}

/* Ends the current attempt's transfer and parser (not the call). */
static void attempt_clear(struct llm_call *c)
{
    if (c->easy) {
        if (c->ll && c->ll->cl)
            http_client_remove(c->ll->cl, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    llm_stream_free(c->sp);
    c->sp = NULL;
    buf_free(&c->in);
    memset(&c->in, 0, sizeof c->in);
}

static void call_free(struct llm_call *c)
{
    if (c->probe) /* a probe that ends without a verdict lets the next one go */
        llm_breaker_release(&c->llm->prov[c->prov].breaker);
    c->probe = 0;
    attempt_clear(c);
    call_unlink(c);
    if (c->timer)
        event_free(c->timer);
    json_decref(c->builtin_msgs);
    free(c->body);
    free(c->write_err);
    free(c->pending_err);
    free(c->last_err);
    free(c->refused_msg);
    free(c);
}

static void on_deferred_finish(evutil_socket_t fd, short what, void *arg);

/* The one exit: exactly one done() per call, never inside llm_call. */
static void finish(struct llm_call *c, int status, struct llm_reply *reply, const char *err,
                   int hint_s)
{
    if (c->starting) {
        c->pending_status = status;
        c->pending_hint = hint_s;
        set_msg(&c->pending_err, "%s", err ? err : "");
        struct timeval zero = { 0, 0 };
        event_del(c->timer);
        event_assign(c->timer, event_get_base(c->timer), -1, 0, on_deferred_finish, c);
        evtimer_add(c->timer, &zero);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s", err ? err : "");
    llm_done_fn done = c->done;
    void *ud = c->ud;
    call_free(c);
    done(status, reply, status == 0 ? NULL : msg, hint_s, ud);
}

static void on_deferred_finish(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct llm_call *c = arg;
    finish(c, c->pending_status, NULL, c->pending_err ? c->pending_err : "out of memory",
           c->pending_hint);
}

static int hint_seconds(int64_t ms) { return ms <= 0 ? 0 : (int)((ms + 999) / 1000); }

/* ---- one HTTP attempt ---- */

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
            char why[200] = "";
            int rc = llm_stream_feed(c->sp, ptr, n, why, sizeof why);
            c->in_callback = 0;
            if (c->cancelled)
                return 0; /* cancelled from on_delta: abort, on_done frees */
            if (rc != 0) {
                c->write_failed = 1;
                set_msg(&c->write_err, "%s", why);
                return 0;
            }
            return n;
        }
    }
    if (c->in.len + n > MAX_RESPONSE) {
        c->write_failed = 1;
        set_msg(&c->write_err, "the reply is larger than %u bytes", MAX_RESPONSE);
        return 0;
    }
    buf_append(&c->in, ptr, n);
    if (c->in.oom) {
        c->write_failed = 1;
        set_msg(&c->write_err, "out of memory");
        return 0;
    }
    return n;
}

static void on_transfer_done(CURL *easy, CURLcode res, void *ud);

/* The body for the current provider: that provider's {"model":... head,
 * then what follows it (the same for every provider), built once by
 * llm_call. Only a fallback to another provider rebuilds it. */
static int ensure_body(struct llm_call *c)
{
    if (c->body && c->body_prov == c->prov)
        return 0;
    const struct provider *p = &c->llm->prov[c->prov];
    size_t rest = c->body_len - c->body_rest;
    char *b = malloc(p->body_head_len + rest + 1);
    if (!b)
        return -1;
    memcpy(b, p->body_head, p->body_head_len);
    memcpy(b + p->body_head_len, c->body + c->body_rest, rest);
    b[p->body_head_len + rest] = 0;
    free(c->body);
    c->body = b;
    c->body_len = p->body_head_len + rest;
    c->body_rest = p->body_head_len;
    c->body_prov = c->prov;
    return 0;
}

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


/* A large body, handed to libcurl a piece at a time (BODY_INLINE_MAX). */
static size_t read_body(char *dst, size_t size, size_t n, void *ud)
{
    struct llm_call *c = ud;
    if (c->msgs_len && !c->msgs)
        return CURL_READFUNC_ABORT; /* cancelled: the conversation is the caller's again */
    size_t want = size * n, done = 0;
    size_t split = c->body_rest + c->msgs_at, total = c->body_len + c->msgs_len;
    while (done < want && c->body_off < total) {
        size_t off = c->body_off, len;
        const char *src;
        if (off < split) { /* the head and ,"messages": */
            src = c->body + off;
            len = split - off;
        } else if (off < split + c->msgs_len) { /* the borrowed conversation */
            src = c->msgs + (off - split);
            len = split + c->msgs_len - off;
        } else { /* tools and the rest */
            src = c->body + (off - c->msgs_len);
            len = total - off;
        }
        if (len > want - done)
            len = want - done;
        memcpy(dst + done, src, len);
        done += len;
        c->body_off += len;
    }
    return done;
}

/* libcurl rewinds to resend the body (a reused connection found dead). */
static int seek_body(void *ud, curl_off_t off, int origin)
{
    struct llm_call *c = ud;
    if (origin != SEEK_SET || off < 0 || (size_t)off > c->body_len + c->msgs_len)
        return CURL_SEEKFUNC_CANTSEEK;
    c->body_off = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static void start_attempt(struct llm_call *c)
{
    struct provider *p = &c->llm->prov[c->prov];
    int64_t now = clock_mono_ms();
    if (c->deadline_ms && now >= c->deadline_ms) {
        count(p, OUT_TIMEOUT);
        finish(c, AGENTD_ETIMEOUT, NULL, "the model did not answer before the deadline", 0);
        return;
    }
    int64_t timeout = p->cfg->timeout_ms;
    c->capped = 0;
    if (c->deadline_ms && c->deadline_ms - now <= timeout) {
        timeout = c->deadline_ms - now;
        c->capped = 1;
    }
    attempt_clear(c);
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
    if (ensure_body(c) != 0)
        goto oom;
    if (c->stream && !(c->sp = llm_stream_new(on_stream_delta, c)))
        goto oom;
    if (!(c->easy = curl_easy_init()))
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
        curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(e, CURLOPT_READDATA, c);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_body);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    }
    struct curl_slist *hdrs = p->hdrs[c->stream ? 1 : 0];
    if (reqid_valid(c->request_id)) { /* never a byte that could end the header line */
        snprintf(c->rid_line, sizeof c->rid_line, "X-Request-Id: %s", c->request_id);
        c->rid_hdr = (struct curl_slist){ .data = c->rid_line, .next = hdrs };
        hdrs = &c->rid_hdr;
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
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    c->started_ns = clock_mono_ns();
    c->attempts++;
    if (http_client_add(c->ll->cl, e, on_transfer_done, c) != 0)
        goto oom;
    return;
oom:
    attempt_clear(c);
    finish(c, AGENTD_ENOMEM, NULL, "out of memory starting an LLM request", 0);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    try_providers(arg);
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
    set_gauge(p);
    set_msg(&c->last_err, "%s: %s", p->cfg->name, what);
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
            call_free(c);
            return;
        }
    }
    if (c->deadline_ms && ((timed_out && c->capped) || now >= c->deadline_ms)) {
        count(p, OUT_TIMEOUT);
        finish(c, AGENTD_ETIMEOUT, NULL, "the model did not answer before the deadline", 0);
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
    attempt_clear(c);
    if (again) {
        c->retry++;
        struct timeval tv = { (time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000) };
        event_del(c->timer);
        event_assign(c->timer, event_get_base(c->timer), -1, 0, on_retry_timer, c);
        evtimer_add(c->timer, &tv);
        return;
    }
    c->transient++;
    c->prov++;
    c->retry = 0;
    try_providers(c);
}

static void provider_set_state(struct provider *p, enum pstate st, long status)
{
    atomic_store(&p->state_status, (int)status);
    atomic_store(&p->state, (int)st);
}

static void attempt_succeeded(struct llm_call *c, struct llm_reply *r)
{
    struct provider *p = &c->llm->prov[c->prov];
    c->probe = 0;
    llm_breaker_success(&p->breaker);
    provider_set_state(p, PS_OK, 200);
    set_gauge(p);
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
    attempt_clear(c);
    if (!r->provider || !r->model) {
        llm_reply_free(r);
        finish(c, AGENTD_ENOMEM, NULL, "out of memory", 0);
        return;
    }
    finish(c, 0, r, NULL, 0);
}

/* The provider refused this request itself: another provider would too. */
static void attempt_refused(struct llm_call *c, long status)
{
    struct provider *p = &c->llm->prov[c->prov];
    c->probe = 0;
    llm_breaker_success(&p->breaker); /* it answered: it is up */
    provider_set_state(p, PS_OK, status); /* and its key and model are fine */
    set_gauge(p);
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
    attempt_clear(c);
    finish(c, AGENTD_EINVAL, NULL, msg, 0);
}

/* The sentence for a refused configuration: names the provider and the
 * variable to fix. Never the provider's own message: a 401's often echoes
 * part of the key. */
static void refusal_text(const struct provider *p, long status, enum llm_refusal rf, char *out,
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
    set_gauge(p);
    count(p, OUT_REFUSED);
    char what[300];
    refusal_text(p, status, rf, what, sizeof what);
    note_refusal(p, c->request_id, status, rf, what);
    log_attempt(c, p, status, what);
    set_msg(&c->last_err, "%s", what);
    if (c->refused_msg)
        set_msg(&c->refused_msg, "%s; %s", c->refused_msg, what);
    else
        set_msg(&c->refused_msg, "%s", what);
    c->refused++;
    attempt_clear(c);
    c->prov++;
    c->retry = 0;
    try_providers(c);
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

static void on_transfer_done(CURL *easy, CURLcode res, void *ud)
{
    struct llm_call *c = ud;
    struct provider *p = &c->llm->prov[c->prov];
    metric_observe(p->m_duration, (double)(clock_mono_ns() - c->started_ns) / 1e9);
    if (c->cancelled) {
        call_free(c);
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
        char err[200] = "";
        int rc = -1;
        if (r && c->stream && c->sse == 1)
            rc = llm_stream_finish(c->sp, r, err, sizeof err);
        else if (r) {
            rc = llm_reply_parse(c->in.data ? c->in.data : "", c->in.len, r, err, sizeof err);
            /* a plain JSON answer to a streaming request still streams its text once */
            if (rc == 0 && c->stream && r->content && *r->content && c->on_delta) {
                on_stream_delta(r->content, strlen(r->content), c);
                if (c->cancelled) {
                    llm_reply_free(r);
                    call_free(c);
                    return;
                }
            }
        } else
            snprintf(err, sizeof err, "out of memory");
        if (rc == 0) {
            attempt_succeeded(c, r);
            return;
        }
        free(r);
        snprintf(what, sizeof what, "malformed reply: %s", err);
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
static void try_providers(struct llm_call *c)
{
    int64_t now = clock_mono_ms();
    for (; c->prov < c->llm->nprov; c->prov++, c->retry = 0) {
        struct provider *p = &c->llm->prov[c->prov];
        int a = llm_breaker_allow(&p->breaker, now);
        set_gauge(p);
        if (a == 0) {
            count(p, OUT_BREAKER_OPEN);
            int64_t w = llm_breaker_wait_ms(&p->breaker, now);
            if (w > c->hint_ms)
                c->hint_ms = w;
            if (!c->last_err)
                set_msg(&c->last_err, "%s: circuit open", p->cfg->name);
            c->transient++;
            continue;
        }
        c->probe = a == 2;
        start_attempt(c);
        return;
    }
    if (c->refused && !c->transient) {
        /* a configuration error: retrying the turn cannot help */
        finish(c, AGENTD_EMODELREFUSED, NULL, c->refused_msg ? c->refused_msg : "out of memory", 0);
        return;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "no LLM provider could answer (last: %s)",
             c->last_err ? c->last_err : "none");
    finish(c, AGENTD_EUNAVAILABLE, NULL, msg, hint_seconds(c->hint_ms));
}

/* ---- the built-in model ---- */

static void on_builtin(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct llm_call *c = arg;
    struct llm_reply *r = calloc(1, sizeof *r);
    const struct llm_local_model *m = &c->llm->local;
    if (!r || m->plan(c->builtin_msgs, r, m->ud) != 0) {
        free(r);
        finish(c, AGENTD_ENOMEM, NULL, "out of memory in the built-in model", 0);
        return;
    }
    r->provider = strdup("builtin");
    r->model = strdup(m->name);
    r->attempts = 1;
    if (c->stream && c->on_delta && r->content && *r->content) {
        c->in_callback = 1;
        c->on_delta(r->content, strlen(r->content), c->ud);
        c->in_callback = 0;
        if (c->cancelled) {
            llm_reply_free(r);
            call_free(c);
            return;
        }
    }
    metric_inc(c->llm->m_builtin_ok);
    if (!r->provider || !r->model) {
        llm_reply_free(r);
        finish(c, AGENTD_ENOMEM, NULL, "out of memory", 0);
        return;
    }
    finish(c, 0, r, NULL, 0);
}

/* ---- public API ---- */

static struct llm_loop *loop_state(struct llm *l, struct loop *loop)
{
    int id = loop_id(loop);
    if (id < 0 || id >= LLM_MAX_LOOPS)
        return NULL;
    struct llm_loop *ll = l->loops[id];
    if (ll)
        return ll->loop == loop ? ll : NULL;
    ll = calloc(1, sizeof *ll);
    if (!ll)
        return NULL;
    ll->loop = loop;
    if (l->nprov && !(ll->cl = http_client_new(loop))) {
        free(ll);
        return NULL;
    }
    if (ll->cl && l->cfg.max_connections > 0)
        http_client_set_max_connections(ll->cl, l->cfg.max_connections);
    l->loops[id] = ll;
    return ll;
}

static int dump_to_buf(const char *s, size_t n, void *ud)
{
    struct buf *b = ud;
    buf_append(b, s, n);
    return b->oom ? -1 : 0;
}

/* The tools array as JSON text, serialized once per loop (see llm_loop). */
static const char *tools_text(struct llm_loop *ll, const json_t *tools, size_t *len)
{
    if (ll->tools_key != tools) {
        struct buf b = { 0 };
        if (json_dump_callback(tools, dump_to_buf, &b, JSON_COMPACT) != 0 || b.oom || !b.data) {
            buf_free(&b);
            return NULL;
        }
        json_decref(ll->tools_key);
        free(ll->tools_text);
        ll->tools_key = json_incref((json_t *)tools);
        ll->tools_text = b.data;
        ll->tools_len = b.len;
    }
    *len = ll->tools_len;
    return ll->tools_text;
}

/* The request body, serialized once, straight from the caller's messages
 * (no copy of them is kept): the first provider's {"model":... head, then
 * "messages", "tools" (the cached text), "tool_choice", "max_tokens",
 * "stream". A fallback swaps the head (ensure_body). */
static int build_body(struct llm_call *c, struct llm_loop *ll, const struct llm_request *req)
{
    const struct provider *p = &c->llm->prov[0];
    struct buf b = { 0 };
    /* a long conversation is borrowed (read_body), a short one copied */
    int borrow = req->messages_json && req->messages_json_len > BODY_INLINE_MAX;
    buf_reserve(&b, p->body_head_len + ll->tools_len + 256 +
                        (req->messages_json && !borrow ? req->messages_json_len : 0));
    buf_append(&b, p->body_head, p->body_head_len);
    size_t rest = b.len;
    buf_puts(&b, ",\"messages\":");
    if (borrow) {
        c->msgs = req->messages_json;
        c->msgs_len = req->messages_json_len;
        c->msgs_at = b.len - rest;
    } else if (req->messages_json)
        buf_append(&b, req->messages_json, req->messages_json_len);
    else if (!req->messages)
        buf_puts(&b, "[]");
    else if (json_dump_callback(req->messages, dump_to_buf, &b, JSON_COMPACT) != 0)
        b.oom = 1;
    if (req->tools && json_is_array(req->tools) && json_array_size(req->tools)) {
        size_t tl = 0;
        const char *tt = tools_text(ll, req->tools, &tl);
        if (!tt)
            b.oom = 1;
        buf_puts(&b, ",\"tools\":");
        buf_append(&b, tt, tl);
        const char *tc = req->tool_choice ? req->tool_choice : "auto";
        if (!strcmp(tc, "auto") || !strcmp(tc, "none") || !strcmp(tc, "required"))
            buf_printf(&b, ",\"tool_choice\":\"%s\"", tc);
        else { /* a tool's name: force that one */
            json_t *name = json_string(tc);
            buf_puts(&b, ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":");
            if (!name || json_dump_callback(name, dump_to_buf, &b, JSON_ENCODE_ANY) != 0)
                b.oom = 1;
            json_decref(name);
            buf_puts(&b, "}}");
        }
    }
    if (req->max_tokens > 0)
        buf_printf(&b, ",\"max_tokens\":%d", req->max_tokens);
    if (req->stream) /* usage arrives in a last chunk only when asked for */
        buf_puts(&b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    buf_puts(&b, "}");
    if (b.oom || !b.data) {
        buf_free(&b);
        return -1;
    }
    char *fit = realloc(b.data, b.len + 1); /* tools text met for the first time */
    c->body = fit ? fit : b.data;
    c->body_len = b.len;
    c->body_rest = rest;
    c->body_prov = 0;
    return 0;
}

int llm_call(struct llm *l, struct loop *loop, const struct llm_request *req, llm_delta_fn on_delta,
             llm_done_fn done, void *ud, struct llm_call **handle)
{
    if (handle)
        *handle = NULL;
    if (!l || !loop || !req || !done || (req->messages && !json_is_array(req->messages)))
        return AGENTD_EINVAL;
    struct llm_loop *ll = loop_state(l, loop);
    if (!ll)
        return AGENTD_ENOMEM;
    struct llm_call *c = calloc(1, sizeof *c);
    if (!c)
        return AGENTD_ENOMEM;
    c->llm = l;
    c->on_delta = on_delta;
    c->done = done;
    c->ud = ud;
    c->stream = req->stream;
    c->deadline_ms = req->deadline_ms;
    c->body_prov = -1;
    if (req->request_id)
        snprintf(c->request_id, sizeof c->request_id, "%s", req->request_id);
    int built;
    if (l->nprov)
        built = build_body(c, ll, req) == 0;
    else /* the built-in model reads them later, on the loop */
        built = (c->builtin_msgs = req->messages ? json_deep_copy(req->messages) : json_array()) != NULL;
    c->timer = evtimer_new(loop_base(loop), on_retry_timer, c);
    if (!built || !c->timer) {
        call_free(c);
        return AGENTD_ENOMEM;
    }
    c->ll = ll;
    c->next = ll->calls;
    if (ll->calls)
        ll->calls->prev = c;
    ll->calls = c;
    if (handle)
        *handle = c;
    if (!l->nprov) {
        struct timeval zero = { 0, 0 };
        event_assign(c->timer, loop_base(loop), -1, 0, on_builtin, c);
        evtimer_add(c->timer, &zero);
        return 0;
    }
    c->starting = 1;
    try_providers(c);
    c->starting = 0;
    return 0;
}

void llm_call_cancel(struct llm_call *c)
{
    if (!c)
        return;
    if (c->in_callback) {
        /* inside curl's write callback or our delta: the transfer aborts and
         * the completion frees the call. The caller may free the borrowed
         * conversation as soon as we return: never read it again. */
        c->cancelled = 1;
        c->msgs = NULL;
        return;
    }
    call_free(c);
}

static char *join(const char *a, const char *b)
{
    char *s = NULL;
    return asprintf(&s, "%s%s", a, b) < 0 ? NULL : s;
}

/* What every request to this provider starts with: the body's model head
 * and the header lists (curl does not copy a list: these live until
 * llm_free). */
static int provider_request_init(struct provider *p)
{
    json_t *m = json_string(p->cfg->model);
    char *model = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    p->body_head = model ? join("{\"model\":", model) : NULL;
    free(model);
    if (!p->body_head)
        return -1;
    p->body_head_len = strlen(p->body_head);
    static const char *const accept[2] = { "Accept: application/json", "Accept: text/event-stream" };
    for (int k = 0; k < 2; k++) {
        const char *lines[] = { "Content-Type: application/json", accept[k],
                                "Expect:", /* no 100-continue round trip for large conversations */
                                p->auth };
        for (size_t i = 0; i < sizeof lines / sizeof *lines && lines[i]; i++) {
            struct curl_slist *t = curl_slist_append(p->hdrs[k], lines[i]);
            if (!t)
                return -1;
            p->hdrs[k] = t;
        }
    }
    return 0;
}

struct llm *llm_new(const struct llm_config *cfg, const struct llm_local_model *local,
                    struct agentd_error *e)
{
    if (cfg->builtin && (!local || !local->plan || !local->name)) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "AGENTD_LLM=builtin needs a local model");
        return NULL;
    }
    struct llm *l = calloc(1, sizeof *l);
    if (!l || llm_config_copy(&l->cfg, cfg) != 0) {
        free(l);
        agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        return NULL;
    }
    static const char *const outcome_labels[] = { "provider", "model", "outcome", NULL };
    static const char *const pm_labels[] = { "provider", "model", NULL };
    static const char *const tok_labels[] = { "provider", "model", "kind", NULL };
    static const char *const p_labels[] = { "provider", NULL };
    struct metric *m_req = metric_register("agentd_llm_requests_total",
                                           "LLM attempts by provider, model and outcome",
                                           METRIC_COUNTER, outcome_labels, NULL);
    struct metric *m_dur = metric_register("agentd_llm_request_duration_seconds",
                                           "LLM HTTP attempt duration by provider",
                                           METRIC_HISTOGRAM, p_labels, METRICS_BUCKETS_LATENCY);
    struct metric *m_tok = metric_register("agentd_llm_tokens_total",
                                           "LLM tokens by provider, model and kind (prompt|completion)",
                                           METRIC_COUNTER, tok_labels, NULL);
    struct metric *m_cost = metric_register("agentd_llm_cost_usd_total",
                                            "LLM cost in USD from the configured prices",
                                            METRIC_COUNTER, pm_labels, NULL);
    struct metric *m_state = metric_register("agentd_llm_breaker_state",
                                             "LLM circuit breaker: 0 closed, 1 half-open, 2 open",
                                             METRIC_GAUGE, p_labels, NULL);
    if (l->cfg.builtin) {
        l->local = *local;
        const char *v[] = { "builtin", local->name, "ok" };
        l->m_builtin_ok = m_req ? metric_child(m_req, v) : NULL;
        return l;
    }
    l->nprov = l->cfg.n_providers;
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        p->cfg = &l->cfg.providers[i];
        llm_breaker_init(&p->breaker, l->cfg.breaker_failures, l->cfg.breaker_cooldown_ms);
        p->endpoint = join(p->cfg->url, "/chat/completions");
        p->auth = p->cfg->api_key ? join("Authorization: Bearer ", p->cfg->api_key) : NULL;
        if (!p->endpoint || (p->cfg->api_key && !p->auth) || provider_request_init(p) != 0) {
            llm_free(l);
            agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
            return NULL;
        }
        for (int o = 0; o < OUT_COUNT; o++) {
            const char *v[] = { p->cfg->name, p->cfg->model, outcome_names[o] };
            p->m_outcome[o] = metric_child(m_req, v);
        }
        const char *pv[] = { p->cfg->name };
        const char *pmv[] = { p->cfg->name, p->cfg->model };
        const char *tp[] = { p->cfg->name, p->cfg->model, "prompt" };
        const char *tc[] = { p->cfg->name, p->cfg->model, "completion" };
        p->m_duration = metric_child(m_dur, pv);
        p->m_prompt = metric_child(m_tok, tp);
        p->m_completion = metric_child(m_tok, tc);
        p->m_cost = metric_child(m_cost, pmv);
        p->m_state = metric_child(m_state, pv);
        set_gauge(p);
    }
    return l;
}

void llm_free(struct llm *l)
{
    if (!l)
        return;
    for (int i = 0; i < LLM_MAX_LOOPS; i++) {
        struct llm_loop *ll = l->loops[i];
        if (!ll)
            continue;
        while (ll->calls)
            call_free(ll->calls);
        probe_free(ll->probe);
        http_client_free(ll->cl);
        json_decref(ll->tools_key);
        free(ll->tools_text);
        free(ll);
    }
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        llm_breaker_destroy(&p->breaker);
        free(p->endpoint);
        free(p->body_head);
        for (int k = 0; k < 2; k++) {
            for (struct curl_slist *h = p->hdrs[k]; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data)); /* one holds the key */
            curl_slist_free_all(p->hdrs[k]);
        }
        if (p->auth) {
            explicit_bzero(p->auth, strlen(p->auth));
            free(p->auth);
        }
    }
    llm_config_free(&l->cfg);
    free(l);
}

int llm_provider_count(const struct llm *l) { return l->nprov ? l->nprov : 1; }

const char *llm_provider_name(const struct llm *l, int i)
{
    if (!l->nprov)
        return i == 0 ? "builtin" : NULL;
    return i >= 0 && i < l->nprov ? l->prov[i].cfg->name : NULL;
}

const char *llm_provider_model(const struct llm *l, int i)
{
    if (!l->nprov)
        return i == 0 ? l->local.name : NULL;
    return i >= 0 && i < l->nprov ? l->prov[i].cfg->model : NULL;
}

const char *llm_provider_breaker(const struct llm *l, int i)
{
    if (!l->nprov || i < 0 || i >= l->nprov)
        return "closed";
    /* the breaker's mutex is not const, the state read is */
    struct llm_breaker *b = (struct llm_breaker *)&l->prov[i].breaker;
    switch (llm_breaker_state(b, clock_mono_ms())) {
    case LLM_BREAKER_OPEN: return "open";
    case LLM_BREAKER_HALF_OPEN: return "half_open";
    default: return "closed";
    }
}

int llm_is_builtin(const struct llm *l) { return l->nprov == 0; }

const char *llm_provider_state(const struct llm *l, int i, int *http_status)
{
    if (http_status)
        *http_status = 0;
    if (!l->nprov)
        return i == 0 ? "ok" : NULL; /* the built-in model has nothing to refuse */
    if (i < 0 || i >= l->nprov)
        return NULL;
    const struct provider *p = &l->prov[i];
    int st = atomic_load(&p->state);
    if (st == PS_UNAUTHORIZED || st == PS_MODEL) {
        if (http_status)
            *http_status = atomic_load(&p->state_status);
        return st == PS_UNAUTHORIZED ? "unauthorized" : "model_not_found";
    }
    const char *b = llm_provider_breaker(l, i);
    if (strcmp(b, "closed") != 0)
        return b; /* "open" | "half_open" */
    return st == PS_OK ? "ok" : "unknown";
}

const char *llm_provider_host(const struct llm *l, int i, char *out, size_t len)
{
    if (len)
        out[0] = 0;
    if (l->nprov && i >= 0 && i < l->nprov)
        llm_url_host(l->prov[i].cfg->url, out, len);
    return out;
}

/* ---- the start-up check: GET {url}/models per provider ---- */

struct probe_one {
    struct llm_probe *pr;
    int i;
    CURL *easy;
    char *url;
    struct buf body;
};

struct llm_probe {
    struct llm *llm;
    struct llm_loop *ll;
    llm_probe_done_fn done;
    void *ud;
    int left, refused;
    struct buf report;
    struct event *ev;              /* finishes a probe that had nothing to wait for */
    struct probe_one one[LLM_MAX_PROVIDERS];
};

static void probe_free(struct llm_probe *pr)
{
    if (!pr)
        return;
    for (int i = 0; i < LLM_MAX_PROVIDERS; i++) {
        struct probe_one *o = &pr->one[i];
        if (o->easy) {
            http_client_remove(pr->ll->cl, o->easy);
            curl_easy_cleanup(o->easy);
        }
        free(o->url);
        buf_free(&o->body);
    }
    if (pr->ev)
        event_free(pr->ev);
    buf_free(&pr->report);
    if (pr->ll && pr->ll->probe == pr)
        pr->ll->probe = NULL;
    free(pr);
}

static void probe_finish(struct llm_probe *pr)
{
    llm_probe_done_fn done = pr->done;
    void *ud = pr->ud;
    int refused = pr->refused;
    char report[1024];
    snprintf(report, sizeof report, "%s", pr->report.data ? pr->report.data : "");
    probe_free(pr);
    done(refused, report, ud);
}

static void probe_finish_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    probe_finish(arg);
}

static void probe_note(struct llm_probe *pr, enum log_level lvl, const struct provider *p,
                       long status, const char *what)
{
    if (lvl > LOG_INFO)
        buf_printf(&pr->report, "%s%s", pr->report.len ? "; " : "", what);
    struct logline l;
    if (!log_begin(&l, lvl, "llm start-up check"))
        return;
    char host[128];
    log_str(&l, "provider", p->cfg->name);
    log_str(&l, "model", p->cfg->model);
    log_str(&l, "host", llm_url_host(p->cfg->url, host, sizeof host));
    if (status)
        log_int(&l, "http_status", status);
    log_str(&l, lvl > LOG_INFO ? "error" : "result", what);
    log_end(&l);
}

/* Does GET /models list the model? (-1: the answer is not such a list) */
static int lists_model(const struct buf *b, const char *model)
{
    json_t *o = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    json_t *data = json_object_get(o, "data");
    int found = json_is_array(data) ? 0 : -1;
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m) {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id && strcmp(id, model) == 0)
            found = 1;
    }
    json_decref(o);
    return found;
}

static size_t probe_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct probe_one *o = ud;
    size_t n = size * nmemb;
    if (o->body.len + n > (4u << 20))
        return 0; /* a models list past 4 MB is not one */
    buf_append(&o->body, ptr, n);
    return o->body.oom ? 0 : n;
}

static void probe_done_one(CURL *easy, CURLcode res, void *ud)
{
    struct probe_one *o = ud;
    struct llm_probe *pr = o->pr;
    struct provider *p = &pr->llm->prov[o->i];
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    char what[400];
    enum llm_refusal rf = res == CURLE_OK ? llm_http_refusal(status, o->body.data, o->body.len)
                                          : LLM_REFUSAL_NONE;
    if (res != CURLE_OK) {
        /* a flaky network must not keep a replica from starting: say so */
        snprintf(what, sizeof what, "provider '%s' did not answer the start-up check: %s",
                 p->cfg->name, curl_easy_strerror(res));
        probe_note(pr, LOG_WARN, p, 0, what);
    } else if (status >= 200 && status < 300) {
        provider_set_state(p, PS_OK, status);
        if (lists_model(&o->body, p->cfg->model) == 0) {
            snprintf(what, sizeof what, "provider '%s' does not list model '%s' (GET /models): "
                     "calls may fail; check its model name", p->cfg->name, p->cfg->model);
            probe_note(pr, LOG_WARN, p, status, what);
        } else
            probe_note(pr, LOG_INFO, p, status, "ok");
    } else if (rf == LLM_REFUSAL_KEY || rf == LLM_REFUSAL_ACCESS) {
        refusal_text(p, status, rf, what, sizeof what);
        provider_set_state(p, PS_UNAUTHORIZED, status); /* probe_note logs it */
        probe_note(pr, LOG_ERROR, p, status, what);
        pr->refused++;
    } else {
        /* 404: many OpenAI-compatible servers have no /models: not a verdict */
        snprintf(what, sizeof what, "provider '%s' answered the start-up check (GET /models) with "
                 "HTTP %ld: not checked", p->cfg->name, status);
        probe_note(pr, LOG_WARN, p, status, what);
    }
    curl_easy_cleanup(easy);
    o->easy = NULL;
    if (--pr->left == 0)
        probe_finish(pr);
}

int llm_probe(struct llm *l, struct loop *loop, llm_probe_done_fn done, void *ud)
{
    if (!l || !loop || !done || !l->nprov)
        return AGENTD_EINVAL;
    struct llm_loop *ll = loop_state(l, loop);
    if (!ll)
        return AGENTD_ENOMEM;
    if (ll->probe)
        return AGENTD_EBUSY;
    struct llm_probe *pr = calloc(1, sizeof *pr);
    if (!pr || !(pr->ev = evtimer_new(loop_base(loop), probe_finish_ev, pr))) {
        free(pr);
        return AGENTD_ENOMEM;
    }
    pr->llm = l;
    pr->ll = ll;
    pr->done = done;
    pr->ud = ud;
    ll->probe = pr;
    for (int i = 0; i < l->nprov; i++) {
        struct provider *p = &l->prov[i];
        struct probe_one *o = &pr->one[i];
        o->pr = pr;
        o->i = i;
        CURL *e = (o->url = join(p->cfg->url, "/models")) ? curl_easy_init() : NULL;
        if (!e) {
            probe_note(pr, LOG_WARN, p, 0, "out of memory starting the start-up check");
            continue;
        }
        int64_t t = p->cfg->timeout_ms;
        curl_easy_setopt(e, CURLOPT_URL, o->url);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs[0]); /* the key, as calls send it */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t < CONNECT_TIMEOUT_MS ? t : CONNECT_TIMEOUT_MS));
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "agentd");
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        o->easy = e;
        pr->left++;
        if (http_client_add(ll->cl, e, probe_done_one, o) != 0) {
            curl_easy_cleanup(e);
            o->easy = NULL;
            pr->left--;
            probe_note(pr, LOG_WARN, p, 0, "could not start the start-up check");
        }
    }
    if (pr->left == 0) { /* nothing started: answer from the loop, never inside this call */
        struct timeval zero = { 0, 0 };
        evtimer_add(pr->ev, &zero);
    }
    return 0;
}
