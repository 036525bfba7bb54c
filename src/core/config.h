/* Configuration from the environment only (12-factor). Parsed once at start
 * into an immutable struct; every problem is collected, not just the first.
 * Any variable may be given as NAME_FILE (a path to a file holding the value),
 * which is how secrets should be passed. */
#ifndef AGENTD_CORE_CONFIG_H
#define AGENTD_CORE_CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include "core/err.h"

enum config_env { CONFIG_ENV_DEVELOPMENT, CONFIG_ENV_PRODUCTION };
enum config_db_sync { CONFIG_DB_SYNC_NORMAL, CONFIG_DB_SYNC_FULL };
enum config_turn_recovery { CONFIG_TURN_RESUME, CONFIG_TURN_FAIL };
/* what the input guard does with a message it refuses, and with a guard it cannot ask */
enum config_guard_mode { CONFIG_GUARD_REJECT, CONFIG_GUARD_FLAG };
enum config_guard_fail { CONFIG_GUARD_FAIL_CLOSED, CONFIG_GUARD_FAIL_OPEN };
enum config_redis_down { CONFIG_REDIS_DOWN_OPEN, CONFIG_REDIS_DOWN_CLOSED };

struct config {
    /* serving */
    char *host;                 /* AGENTD_HOST */
    int port;                   /* AGENTD_PORT */
    int threads;                /* AGENTD_THREADS: loop threads */
    int workers;                /* AGENTD_WORKERS: worker pool threads */
    enum config_env env;        /* AGENTD_ENV */
    int log_level;              /* AGENTD_LOG_LEVEL (enum log_level) */
    int access_log;             /* AGENTD_ACCESS_LOG: 1 = one line per request */
    int64_t max_body_bytes;     /* AGENTD_MAX_BODY_BYTES */
    int64_t max_header_bytes;   /* AGENTD_MAX_HEADER_BYTES */
    int64_t read_timeout_ms;    /* AGENTD_READ_TIMEOUT: a whole request must arrive in this */
    int64_t idle_timeout_ms;    /* AGENTD_IDLE_TIMEOUT: idle keep-alive connections close */
    int64_t drain_timeout_ms;   /* AGENTD_DRAIN_TIMEOUT */
    int max_connections;        /* AGENTD_MAX_CONNECTIONS */
    int max_connections_auto;   /* 1 = not set: derived from the open-file limit */
    char *cors_origins;         /* AGENTD_CORS_ORIGINS: comma-separated origins browsers may call
                                   from; NULL = CORS off */
    /* storage */
    char *data_dir;             /* AGENTD_DATA_DIR */
    char *db;                   /* AGENTD_DB: sqlite path or postgres URL; default under data_dir */
    enum config_db_sync db_sync;/* AGENTD_DB_SYNC */
    int db_pool;                /* AGENTD_DB_POOL: reader connections; 0 = the store's default */
    int64_t session_ttl_ms;     /* AGENTD_SESSION_TTL: 0 = keep forever */
    int64_t audit_retention_ms; /* AGENTD_AUDIT_RETENTION: 0 = keep forever */
    /* commerce */
    char *catalog;              /* AGENTD_CATALOG: catalog JSON file; NULL = imported or built-in */
    char *public_url;           /* AGENTD_PUBLIC_URL: base URL clients use; default http://host:port */
    char *profile_allowlist;    /* AGENTD_PROFILE_ALLOWLIST: host[:port],... exempt from the SSRF guard */
    char *privacy_url;          /* AGENTD_PRIVACY_URL: the checkout's privacy_policy link; NULL = none */
    char *terms_url;            /* AGENTD_TERMS_URL: the checkout's terms_of_service link; NULL = none */
    int allow_test_payments;    /* AGENTD_ALLOW_TEST_PAYMENTS: production accepts test payment
                                   handlers (mock_payment_handler, example_payment_provider);
                                   /health flags it */
    char *payment_business_id;  /* AGENTD_PAYMENT_BUSINESS_ID: example_payment_provider's
                                   config.business_id */
    /* agent */
    int64_t turn_timeout_ms;    /* AGENTD_TURN_TIMEOUT: bounds a whole turn, retries included */
    int busy_policy;            /* AGENTD_BUSY_POLICY: enqueue|reject|interrupt when a session
                                   already has a turn running (enum agent_busy_policy) */
    int max_steps;              /* AGENTD_MAX_STEPS: model steps per turn */
    int64_t history_max_bytes;  /* AGENTD_HISTORY_MAX_BYTES: earlier messages a turn sends
                                   to the model, newest first */
    char *agent_prompt_file;    /* AGENTD_AGENT_PROMPT_FILE: system prompt; NULL = built-in */
    int turn_recovery;          /* AGENTD_TURN_RECOVERY: enum config_turn_recovery */
    int64_t turn_token_budget;  /* AGENTD_TURN_TOKEN_BUDGET: tokens per turn; 0 = unlimited */
    int64_t daily_token_budget; /* AGENTD_DAILY_TOKEN_BUDGET: tokens per principal per UTC day;
                                   0 = unlimited */
    int64_t daily_cost_budget_micro; /* AGENTD_DAILY_COST_BUDGET (USD): per principal per UTC
                                        day, in micro-dollars; 0 = unlimited */
    /* testing hooks */
    char *simulation_secret;    /* AGENTD_SIMULATION_SECRET (secret) */
    char *signing_key;          /* AGENTD_SIGNING_KEY (secret): EC P-256 JWK or PEM; NULL = ephemeral */
    int64_t webhook_timeout_ms; /* AGENTD_WEBHOOK_TIMEOUT: one webhook attempt */
    int webhook_max_attempts;   /* AGENTD_WEBHOOK_MAX_ATTEMPTS: then the event is dead */
    char *failpoint;            /* AGENTD_FAILPOINT: test-only crash point (core/failpoint.h) */
    /* authentication (auth/auth.h, docs/security.md) */
    int auth;                   /* AGENTD_AUTH: 0 off (all requests "anonymous"), 1 on */
    char *metrics_token;        /* AGENTD_METRICS_TOKEN (secret): Bearer token /metrics asks
                                   for; NULL = /metrics open */
    /* payment data at rest (core/seal.h, docs/security.md) */
    char *encryption_key;       /* AGENTD_ENCRYPTION_KEY (secret): base64 of 32 bytes; NULL =
                                   an ephemeral key (development only) */
    char *encryption_keys_old;  /* AGENTD_ENCRYPTION_KEYS_OLD (secret): comma-separated keys
                                   that only open records sealed before a rotation */
    /* JWT bearer tokens (auth/jwt.h, auth/jwks.h); verification is on when an issuer is set */
    char *oidc_issuer;          /* AGENTD_OIDC_ISSUER: the `iss` every token must carry */
    char *oidc_audience;        /* AGENTD_OIDC_AUDIENCE: what `aud` must contain */
    char *oidc_jwks_url;        /* AGENTD_OIDC_JWKS_URL; NULL = the issuer's discovery document */
    int64_t oidc_jwks_refresh_ms; /* AGENTD_OIDC_JWKS_REFRESH: least time between two JWKS
                                     fetches an unknown kid may cause */
    char *jwt_hs256_secret;     /* AGENTD_JWT_HS256_SECRET (secret): HS256 tokens' key */
    /* rate limits and quotas (core/ratelimit.h, auth/limit.h, docs/security.md) */
    char *rate_limit;           /* AGENTD_RATE_LIMIT: per principal (per IP when anonymous),
                                   "RATE/UNIT[,BURST]" or off; derived default by AGENTD_ENV */
    char *rate_limit_turns;     /* AGENTD_RATE_LIMIT_TURNS: model-consuming calls, same syntax */
    char *auth_fail_limit;      /* AGENTD_AUTH_FAIL_LIMIT: refused credentials per client address */
    char *redis_url;            /* AGENTD_REDIS_URL (password secret): shared rate limits
                                   (kv/redis.h); NULL = in-process limits */
    int rate_limit_on_redis_down; /* AGENTD_RATE_LIMIT_ON_REDIS_DOWN: enum config_redis_down */
    int64_t events_poll_ms;     /* AGENTD_EVENTS_POLL: a stream's store poll for other replicas'
                                 * events (stretched while Redis signals them) */
    int64_t instance_dead_after_ms; /* AGENTD_INSTANCE_DEAD_AFTER: a heartbeat older is dead */
    char *instance_host;        /* AGENTD_INSTANCE_HOST: the host part of the instance id */
    int quota_sessions;         /* AGENTD_QUOTA_SESSIONS: live /chat sessions per principal;
                                   0 = unlimited */
    int quota_idempotency_keys; /* AGENTD_QUOTA_IDEMPOTENCY_KEYS: live Idempotency-Key records
                                   per principal; 0 = unlimited */
    /* the input guard (core/guard.h, auth/input_guard.h, docs/security.md) */
    int guard_mode;             /* AGENTD_GUARD_MODE: enum config_guard_mode */
    char *guard_url;            /* AGENTD_GUARD_URL: external guard endpoint; NULL = rules only */
    int64_t guard_timeout_ms;   /* AGENTD_GUARD_TIMEOUT: one external guard call */
    int guard_fail;             /* AGENTD_GUARD_FAIL: enum config_guard_fail */
    /* TLS (core/tls.h, docs/security.md) */
    char *tls_cert_file;        /* AGENTD_TLS_CERT_FILE: PEM chain; with the key, native HTTPS */
    char *tls_key_file;         /* AGENTD_TLS_KEY_FILE: PEM private key */
    int behind_proxy;           /* AGENTD_BEHIND_PROXY: a proxy in front terminates TLS */
    /* traces (core/trace.h, http/otlp.h, docs/operations.md "Traces") */
    char *otlp_endpoint;        /* AGENTD_OTLP_ENDPOINT: collector base URL; NULL = tracing off */
    char *otlp_headers;         /* AGENTD_OTLP_HEADERS (secret): name=value,... sent with exports */
    char *trace_sample;         /* AGENTD_TRACE_SAMPLE: head-sampling ratio of new traces, as text */
    double trace_sample_ratio;  /* ...parsed by config_load (default 1.0) */
    char *service_name;         /* AGENTD_SERVICE_NAME: the resource's service.name */
};

/* Looks a variable up; the default reads the process environment. */
typedef const char *(*config_getenv_fn)(const char *name, void *ud);

/* A growable list of problem strings, owned by the list. */
struct config_problems {
    char **items;
    int n, cap;
};
void config_problems_add(struct config_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void config_problems_free(struct config_problems *p);

/* Parse every known variable into *cfg, adding one line per problem to
 * *problems. Returns the number of problems (0 = valid). *cfg is filled with
 * defaults where a value was bad, and must be released with config_free()
 * either way. getenv_fn NULL = the process environment. */
int config_load(struct config *cfg, config_getenv_fn getenv_fn, void *ud,
                struct config_problems *problems);

/* The names the loaders asked for. A loader given config_getenv_seen (with a
 * struct config_seen as ud) looks each name up through seen->get and records
 * it, found or not, so the set of known names is derived from the config
 * tables themselves (and the per-provider families the LLM loader reads). */
struct config_seen {
    config_getenv_fn get; /* NULL = the process environment */
    void *ud;
    char **names;
    int n, cap;
};
const char *config_getenv_seen(const char *name, void *ud);
void config_seen_free(struct config_seen *s);

/* Each AGENTD_* entry of envp ("NAME=value") that no loader asked for is a
 * problem: "NAME: unknown variable (did you mean KNOWN?)". Returns how many. */
int config_check_unknown(char *const *envp, const struct config_seen *seen,
                         struct config_problems *problems);

/* Production safety: adds a problem for each unsafe setting when
 * cfg->env is production. Later modules add rows to its table. */
int config_check_production(const struct config *cfg, struct config_problems *problems);
/* 1 for 127.x.x.x, localhost and ::1 (bracketed or not). */
int config_host_is_loopback(const char *host);

/* The default AGENTD_MAX_CONNECTIONS for an open-file limit: each
 * connection may hold two descriptors (client + model) and 64 are kept for
 * the store, logs and listeners; at most 10000, at least 1. */
int config_max_connections_for_fds(uint64_t fd_limit);

/* Print NAME=value lines for every variable; secrets show as ***set*** or
 * (unset). Never prints a secret. */
void config_dump(const struct config *cfg, FILE *out);

void config_free(struct config *cfg);

/* "postgres://u:pw@h/db" -> "postgres://u:***@h/db"; anything else as is.
 * Returns a malloc'd string (NULL on out of memory). */
char *config_redact_url(const char *url);

/* The process environment, as a config_getenv_fn. */
const char *config_getenv_default(const char *name, void *ud);
/* Reads a whole file of at most 64 KiB (a secret, a prompt), stripping
 * trailing newlines. malloc'd, or NULL with the reason in *e. */
char *config_read_small_file(const char *path, struct agentd_error *e);

/* Parse a duration: "250ms", "10s", "5m", "24h", "2d", or a bare number of
 * seconds. Returns 0 and *ms, or AGENTD_EINVAL. */
int config_parse_duration(const char *s, int64_t *ms);
/* Parse a size: "1048576", "512k", "1m", "1MiB", "2g". Returns 0 or AGENTD_EINVAL. */
int config_parse_size(const char *s, int64_t *bytes);

#endif
