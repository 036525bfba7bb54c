/* LLM providers behind one interface: an OpenAI Chat Completions client on
 * libcurl multi driven by the calling loop (no thread ever waits on a
 * model), with retries, per-call timeouts, a circuit breaker per provider
 * and a fallback chain; or a local model the caller passes in (the agent's
 * offline model), which answers through the same interface. docs/llm.md
 * describes the rules.
 *
 * Messages, tools and tool calls are OpenAI-shaped JSON (jansson):
 *   messages:   [{"role":"system"|"user"|"assistant"|"tool", "content":..., "tool_calls"?:[...], "tool_call_id"?:...}]
 *   tools:      [{"type":"function","function":{"name","description","parameters":{JSON schema}}}]
 *   tool_calls: [{"id","type":"function","function":{"name","arguments":"<JSON text>"}}] */
#ifndef AGENTD_LLM_LLM_H
#define AGENTD_LLM_LLM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct agentd_error;
struct loop;
struct llm;
struct llm_call;
struct llm_config;

struct llm_request {
    const json_t *messages;    /* serialized by llm_call (nothing of it is kept): the caller
                                * may change or drop it on return */
    const char *messages_json; /* or: the messages array as JSON text (messages_json_len
                                * bytes), sent as it is — no parse, no re-serialisation.
                                * Over 16 KB it is not copied but read while the call
                                * runs: keep it unchanged until done() is called.
                                * Providers only: the local model reads `messages`
                                * (llm_is_builtin) */
    size_t messages_json_len;
    const json_t *tools;       /* may be NULL (an empty array is not sent). Its text is cached
                                * per loop, keyed by this pointer (a reference is held until
                                * another array is passed or llm_free): pass the same array
                                * each time and never modify it after its first call */
    const char *tool_choice;   /* NULL = "auto"; "none" | "required" | a tool's name */
    int max_tokens;            /* 0 = provider default */
    int stream;                /* 1: ask for SSE chunks; deltas reach on_delta */
    int64_t deadline_ms;       /* monotonic (clock_mono_ms); bounds retries and fallbacks too; 0 = none */
    const char *request_id;    /* for logs, and sent as X-Request-Id (when it is a valid
                                * request id, core/reqid.h); may be NULL */
};

struct llm_usage {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    double cost_usd;           /* from the provider's configured prices */
};

/* The assistant's reply. Owned by the caller after done(): llm_reply_free(). */
struct llm_reply {
    char *content;             /* NULL when the reply is only tool calls */
    json_t *tool_calls;        /* array or NULL */
    char *finish_reason;       /* "stop", "tool_calls", "length", ... */
    struct llm_usage usage;
    char *provider;            /* which provider answered (after fallbacks) */
    char *model;
    int attempts;              /* HTTP attempts made, all providers */
};
/* Frees the reply and its fields (NULL is fine). To keep a field, take it
 * and set it to NULL first. */
void llm_reply_free(struct llm_reply *r);

/* status: 0 with reply, or AGENTD_ETIMEOUT (deadline), AGENTD_EUNAVAILABLE
 * (every provider failed or is open-circuited, at least one for a reason a
 * retry may cure; retry_after_s says when to come back, 0 = unknown),
 * AGENTD_EMODELREFUSED (every provider refused its configuration: key,
 * access or model — see llm_provider_state; error names each provider and
 * the variable to check), AGENTD_EINVAL (the provider refused the request:
 * another 4xx other than 408/429), AGENTD_ENOMEM. error is a human
 * sentence (never contains a key), NULL on success. reply is NULL unless
 * status is 0, and then belongs to the callee (llm_reply_free). Runs on
 * the loop given to llm_call, never inside llm_call itself. */
typedef void (*llm_done_fn)(int status, struct llm_reply *reply, const char *error,
                            int retry_after_s, void *ud);
/* Streaming text as it arrives (stream = 1). Tool-call deltas are assembled
 * internally and only delivered whole in the reply. text == NULL (len 0)
 * means "discard what was streamed so far": an attempt failed mid-stream and
 * the next attempt (retry or fallback) starts the text over. */
typedef void (*llm_delta_fn)(const char *text, size_t len, void *ud);

/* A model that answers in-process, with no provider (AGENTD_LLM=builtin, or
 * no provider in development): the client calls plan on the call's loop
 * with its own copy of the conversation. plan fills the reply's content /
 * tool_calls / finish_reason / usage and returns 0, or a negative AGENTD_E*
 * (*out then empty). The client knows nothing of what the model plans. */
struct llm_local_model {
    const char *name;          /* its model name: metrics, /health, replies */
    int (*plan)(const json_t *messages, struct llm_reply *out, void *ud);
    void *ud;
};

/* Builds the provider chain from a loaded llm_config (llm_config.h), which
 * it copies. cfg->builtin selects the local model, which must then be given
 * (it is copied; its name and ud must outlive the client). Returns NULL and
 * fills *e (may be NULL) on failure. */
struct llm *llm_new(const struct llm_config *cfg, const struct llm_local_model *local,
                    struct agentd_error *e);
/* Call after every loop that ran calls has stopped (its thread joined) and
 * before those loops are freed: it releases each loop's curl multi handle
 * and events. Calls still running are dropped without done() (their
 * handles become invalid). */
void llm_free(struct llm *l);

/* Starts a call on `loop`, from that loop's thread. done() runs exactly
 * once on that loop, unless the call is cancelled first. Returns 0 or a
 * negative AGENTD_E* (then done is not called). *handle may be NULL. */
int llm_call(struct llm *l, struct loop *loop, const struct llm_request *req, llm_delta_fn on_delta,
             llm_done_fn done, void *ud, struct llm_call **handle);
/* Cancels a running call (done is not called): removes its transfer or
 * timer and frees everything. Safe until done() ran, on the call's loop. */
void llm_call_cancel(struct llm_call *c);

/* For /health and metrics: provider i's name, model and breaker state
 * ("closed" | "open" | "half_open"). Returns the number of providers
 * (1 for the local model: provider "builtin", model its name). */
int llm_provider_count(const struct llm *l);
const char *llm_provider_name(const struct llm *l, int i);
const char *llm_provider_model(const struct llm *l, int i);
const char *llm_provider_breaker(const struct llm *l, int i);
int llm_is_builtin(const struct llm *l);

/* Provider i as /health shows it: "unauthorized" (its key or access was
 * refused: 401/403) or "model_not_found" (404, or a 400 saying the model
 * does not exist), until a later call or check succeeds; else the breaker's
 * "open" | "half_open"; else "ok" once it answered, "unknown" before.
 * *http_status (may be NULL) gets the refusal's status, else 0. The
 * local model is always "ok". */
const char *llm_provider_state(const struct llm *l, int i, int *http_status);
/* Provider i's URL host[:port] (never user:password); "" for the local model. */
const char *llm_provider_host(const struct llm *l, int i, char *out, size_t len);

/* The start-up check (AGENTD_LLM_STARTUP_CHECK): GETs every provider's
 * {url}/models with its key, on `loop`, from that loop's thread. done runs
 * once on that loop (never inside this call) when every probe ended:
 * refused = providers that refused their key or access (401/403, which also
 * sets their state); report = one sentence per provider that refused or
 * could not be checked ("; "-joined; "" when all passed), valid during the
 * call. A network failure, a 404 (no /models route) or any other answer is
 * a warning in the report, not a refusal. Returns 0, AGENTD_EINVAL (the
 * local model), AGENTD_EBUSY (one already running on this loop) or
 * AGENTD_ENOMEM. llm_free drops a running check without done. */
typedef void (*llm_probe_done_fn)(int refused, const char *report, void *ud);
int llm_probe(struct llm *l, struct loop *loop, llm_probe_done_fn done, void *ud);

#endif
