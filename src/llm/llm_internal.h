/* The LLM client's private state, shared by its files (llm.c, llm_call.c,
 * llm_request.c, llm_attempt.c, llm_probe.c); nothing outside src/llm/ includes it. */
#ifndef AGENTD_LLM_LLM_INTERNAL_H
#define AGENTD_LLM_LLM_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/buf.h"
#include "core/reqid.h"
#include "core/trace.h"
#include "llm/llm.h"
#include "llm/llm_config.h"
#include "llm/retry.h"

#define LLM_MAX_LOOPS 1024
#define LLM_SPARE_EASY 16 /* easy handles kept per loop for reuse */
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
    atomic_int alpn_h1;            /* `auto` over TLS and the server chose HTTP/1.1 */
    struct metric_child *m_outcome[OUT_COUNT];
    struct metric_child *m_duration, *m_prompt, *m_completion, *m_cost, *m_state;
};

/* Per loop thread, created lazily by the first call made on that loop and
 * touched only from it (llm_free runs after the thread stopped). */
struct llm_loop {
    struct loop *loop;
    struct http_client *cl;        /* NULL for the local model */
    struct llm_call *calls;        /* live calls, so llm_free can drop them */
    /* The tools array serialized once: every call of a process passes the
     * same array, so its text is kept, keyed by the pointer (a reference is
     * held so the address cannot be reused by another array). */
    json_t *tools_key;
    char *tools_text;
    size_t tools_len;
    struct llm_probe *probe;       /* the start-up check running on this loop, if any */
    /* Easy handles of ended attempts, reset (curl_easy_reset: every option
     * back to its default), for this loop's next attempts: a fresh handle
     * and its cleanup were ~12 K instructions a model call. */
    CURL *spare[LLM_SPARE_EASY];
    int nspare;
};

struct llm {
    struct llm_config cfg;
    int nprov;
    struct provider prov[LLM_MAX_PROVIDERS];
    struct llm_local_model local;  /* answers when nprov == 0 */
    struct metric_child *m_local_ok;
    struct llm_loop *loops[LLM_MAX_LOOPS];
};

struct llm_call {
    struct llm *llm;
    struct llm_loop *ll;
    struct llm_call *prev, *next;
    llm_delta_fn on_delta;
    llm_done_fn done;
    void *ud;
    json_t *local_msgs;            /* the local model's own copy of the messages */
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
    /* the call's client span (NULL when tracing is off) and its parent's
     * context (current again while done() runs); "traceparent: ..." sent
     * to the provider, in front of the list like the request id */
    struct trace_span *span;
    struct trace_ctx parent;
    char tp_line[TRACEPARENT_LEN + 16];
    struct curl_slist tp_hdr;
    char *ts_line;                 /* "tracestate: ..." when the trace has one */
    struct curl_slist ts_hdr;
    int prov, retry, attempts;
    int probe;                     /* this attempt is its breaker's half-open probe */
    int capped;                    /* this attempt's timeout is what was left of the deadline */
    CURL *easy;
    int local_errno;               /* socket() failed for this attempt: errno */
    int sock_opened;               /* this attempt opened a socket */
    int64_t sent_ns;               /* it had a connection and was about to send (0 = not yet) */
    int mux;                       /* on the client's HTTP/2 handle (http_client_add_h2) */
    int64_t timeout_ms;            /* this attempt's timeout */
    struct buf in;                 /* a whole-JSON reply or an error body */
    struct llm_stream *sp;
    int sse;                       /* -1 unknown, 1 the reply is SSE, 0 it is plain JSON */
    int streamed;                  /* text was delivered in this attempt */
    int write_failed;              /* the write callback aborted: parse error or too large */
    char *write_err;               /* why (heap, only then) */
    int64_t retry_after_ms;        /* this attempt's Retry-After, -1 = none */
    int64_t started_ns;
    struct event *timer;           /* backoff wait, local model's answer, deferred finish */
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

struct llm_probe;

/* llm_attempt.c */
/* Ends the current attempt's transfer and parser (not the call). */
void llm_attempt_clear(struct llm_call *c);
/* A provider's transport on an easy handle: _CA_BUNDLE, and _HTTP2 (HTTP version,
 * PIPEWAIT so HTTP/2 calls share connections). Calls and the probe. */
int llm_easy_transport(CURL *e, const struct llm_provider_config *cfg, int alpn_h1);
/* The call's timer callback while it waits between attempts (backoff). */
void llm_on_retry_timer(evutil_socket_t fd, short what, void *arg);
/* The provider's /health state after an answer (or a probe's). */
void llm_provider_set_state(struct provider *p, enum pstate st, long status);
/* The sentence naming a provider's refused configuration and its variable. */
void llm_refusal_text(const struct provider *p, long status, enum llm_refusal rf, char *out,
                      size_t len);
/* Runs the next attempt: this provider again, the next one in the chain,
 * or the call's end when none is left. */
void llm_try_providers(struct llm_call *c);
/* Publishes the provider's breaker state to its gauge. */
void llm_provider_gauge(struct provider *p);

/* llm_request.c */
/* Serializes the request once (for provider 0); 0 or AGENTD_ENOMEM. */
int llm_request_build(struct llm_call *c, struct llm_loop *ll, const struct llm_request *req);
/* Swaps the body's head for the current provider; 0 or AGENTD_ENOMEM. */
int llm_request_for_provider(struct llm_call *c);
/* libcurl's read and seek callbacks over a borrowed (large) body. */
size_t llm_request_read(char *dst, size_t size, size_t n, void *ud);
int llm_request_seek(void *ud, curl_off_t off, int origin);
/* The provider's body head and header lists; 0 or AGENTD_ENOMEM. */
int llm_provider_request_init(struct provider *p);

/* llm_call.c */
/* Replaces a heap message (texts allocated only when there is one). */
void llm_set_msg(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees a call without done() (cancel, llm_free). */
void llm_call_free(struct llm_call *c);
/* The one exit: done() exactly once, deferred to the loop inside llm_call. */
void llm_call_finish(struct llm_call *c, int status, struct llm_reply *reply, const char *err,
                     int hint_s);

/* llm.c */
/* The client's state for this loop, created on first use; NULL: no memory. */
struct llm_loop *llm_loop_state(struct llm *l, struct loop *loop);
/* a + b, malloc'd; NULL: no memory. */
char *llm_join(const char *a, const char *b);

/* llm_probe.c */
/* Drops a running start-up check without its done (llm_free). */
void llm_probe_free(struct llm_probe *pr);

#endif
