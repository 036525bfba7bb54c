/* LLM provider configuration from the fixed AGENTD_LLM* environment contract
 * (design §8): one provider or a named fallback chain, retry and breaker knobs. */
#ifndef AGENTD_LLM_LLM_CONFIG_H
#define AGENTD_LLM_LLM_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "core/config.h"

#define LLM_MAX_PROVIDERS 8

/* How a provider's connections speak HTTP (_HTTP2). */
enum llm_http2 {
    LLM_HTTP2_AUTO,            /* https: HTTP/2 when the server offers it by ALPN, else 1.1;
                                * http: HTTP/1.1 */
    LLM_HTTP2_PRIOR,           /* http:// only: HTTP/2 without upgrade (h2c prior knowledge) */
    LLM_HTTP2_OFF,             /* HTTP/1.1 always */
};

struct llm_provider_config {
    char *name;                /* "default" (single form) or the lower-cased chain name */
    char *url;                 /* base URL without trailing slash; "/chat/completions" is appended */
    char *model;
    char *api_key;             /* secret; NULL = no Authorization header (local servers) */
    int64_t timeout_ms;        /* per attempt (_TIMEOUT), default 30 s */
    double price_in;           /* USD per million prompt tokens (_PRICE_IN), default 0 */
    double price_out;          /* USD per million completion tokens (_PRICE_OUT), default 0 */
    int http2;                 /* enum llm_http2 (_HTTP2), default auto */
    char *ca_bundle;           /* _CA_BUNDLE: PEM file of CAs trusted for this provider
                                * instead of the system's (a private CA); NULL = system */
};

struct llm_config {
    int builtin;               /* 1: the built-in offline model answers (no providers) */
    int builtin_forced;        /* 1: because AGENTD_LLM=builtin (0: no provider in development) */
    int n_providers;
    struct llm_provider_config providers[LLM_MAX_PROVIDERS];
    int max_retries;           /* AGENTD_LLM_MAX_RETRIES: retries per provider, default 2 */
    int breaker_failures;      /* AGENTD_LLM_BREAKER_FAILURES: consecutive failures that open, default 5 */
    int64_t breaker_cooldown_ms; /* AGENTD_LLM_BREAKER_COOLDOWN: open -> half-open, default 30 s */
    int max_connections;       /* AGENTD_LLM_MAX_CONNECTIONS: model connections per loop thread
                                * (all providers); a call past it waits for one. 0 = no cap */
    int startup_check;         /* AGENTD_LLM_STARTUP_CHECK: 1 = probe each provider's /models at
                                * start; a refused key keeps /readyz at 503 */
};

/* Parses AGENTD_LLM* into *out, adding one line per problem (a secret's value
 * never appears). env decides what "no provider" means: development falls
 * back to the built-in model, production reports a problem. getenv_fn NULL
 * = the process environment. Returns the number of problems added. *out
 * must be released with llm_config_free() either way. */
int llm_config_load(struct llm_config *out, enum config_env env, config_getenv_fn getenv_fn,
                    void *ud, struct config_problems *problems);

/* NAME=value lines for the effective LLM settings; API keys show as ***set***
 * or (unset), URLs lose any user:password. */
void llm_config_dump(const struct llm_config *cfg, FILE *out);

/* Deep copy (llm_new keeps its own). Returns 0 or AGENTD_ENOMEM (*dst freed). */
int llm_config_copy(struct llm_config *dst, const struct llm_config *src);

void llm_config_free(struct llm_config *cfg);

/* The host[:port] of a provider URL, without scheme, user:password or
 * path: what logs and /health may show. Returns out. */
const char *llm_url_host(const char *url, char *out, size_t len);
/* The prefix of a provider's variables: "AGENTD_LLM" for the single form
 * ("default"), else "AGENTD_LLM_<NAME>". Returns out. */
const char *llm_provider_var_prefix(const char *name, char *out, size_t len);

#endif
