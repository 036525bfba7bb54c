/* Retry policy and the per-provider circuit breaker: pure functions over
 * times the caller passes in, so tests drive them with a fake clock. */
#ifndef AGENTD_LLM_RETRY_H
#define AGENTD_LLM_RETRY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define LLM_BACKOFF_BASE_MS 250
#define LLM_BACKOFF_CAP_MS 8000
#define LLM_RETRY_AFTER_CAP_MS 30000

/* Exponential backoff with full jitter: uniform in [0, min(cap, base·2^retry)],
 * retry = 0 for the first retry. rnd is any uniformly random 64-bit value. */
int64_t llm_backoff_ms(int retry, int64_t base_ms, int64_t cap_ms, uint64_t rnd);

/* A Retry-After header value: delta-seconds or an HTTP-date (IMF-fixdate,
 * RFC 850 or asctime). Returns the wait in ms (0 for a past date), capped at
 * cap_ms, or -1 when it cannot be parsed. now_wall_ms is the Unix epoch now. */
int64_t llm_retry_after_ms(const char *value, int64_t now_wall_ms, int64_t cap_ms);

/* 1 when an HTTP status is worth retrying on the same provider. */
int llm_http_retryable(long status);

/* What a provider's error answer says about its configured entry. A
 * refusal is not transient (never retried, not a breaker failure) and not
 * about this request either: another provider of a fallback chain, with
 * its own key and model, may well answer. */
enum llm_refusal {
    LLM_REFUSAL_NONE = 0, /* not a configuration error */
    LLM_REFUSAL_KEY,      /* 401: the API key is wrong, revoked or missing */
    LLM_REFUSAL_ACCESS,   /* 403: the key may not use this model or endpoint */
    LLM_REFUSAL_MODEL,    /* 404, or a 400/422 saying the model does not exist: model or URL */
};
/* status and the error body (may be NULL; read as OpenAI's {"error":{...}}). */
enum llm_refusal llm_http_refusal(long status, const char *body, size_t len);

enum llm_breaker_state { LLM_BREAKER_CLOSED = 0, LLM_BREAKER_HALF_OPEN = 1, LLM_BREAKER_OPEN = 2 };

/* Shared by every loop thread: a mutex guards a handful of fields, taken
 * once per attempt, which costs nothing next to an HTTP exchange. */
struct llm_breaker {
    pthread_mutex_t mu;
    enum llm_breaker_state state;
    int failures;              /* consecutive */
    int threshold;
    int probe_out;             /* half-open: the single probe is in flight */
    int64_t opened_at_ms;
    int64_t cooldown_ms;
};

void llm_breaker_init(struct llm_breaker *b, int threshold, int64_t cooldown_ms);
void llm_breaker_destroy(struct llm_breaker *b);
/* May an attempt go? Returns 0 (refused: open, or half-open with the probe
 * out), 1 (go), or 2 (go, as the half-open probe: report its outcome, or
 * llm_breaker_release() if it is abandoned). */
int llm_breaker_allow(struct llm_breaker *b, int64_t now_ms);
void llm_breaker_success(struct llm_breaker *b);
void llm_breaker_failure(struct llm_breaker *b, int64_t now_ms);
/* A probe that ended with no verdict (cancelled): let another one go. */
void llm_breaker_release(struct llm_breaker *b);
/* State as seen now: an open breaker past its cooldown reads half-open. */
enum llm_breaker_state llm_breaker_state(struct llm_breaker *b, int64_t now_ms);
/* ms until an open breaker lets a probe through (0 if not open). */
int64_t llm_breaker_wait_ms(struct llm_breaker *b, int64_t now_ms);

#endif
