/* agentd serve: the server process. struct app owns everything serve builds;
 * init, start, wait (signals and timers on the main thread) and free are each one function. */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef AGENTD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "serve.h"
#include "api/follow.h"
#include "api/idempotency.h"
#include "api/a2a.h"
#include "api/a2a_card.h"
#include "api/chat.h"
#include "api/openapi.h"
#include "api/ops.h"
#include "api/outbox.h"
#include "core/trace.h"
#include "http/otlp.h"
#include "api/profiles.h"
#include "api/testing.h"
#include "api/ucp.h"
#include "agent/events.h"
#include "agent/offline_model.h"
#include "agent/heartbeat.h"
#include "core/instance.h"
#include "core/relay.h"
#include "agent/recover.h"
#include "agent/runner.h"
#include "agent/tools.h"
#include "auth/gate.h"
#include "auth/input_guard.h"
#include "auth/jwks.h"
#include "auth/limit.h"
#include "auth/throttle.h"
#include "kv/pubsub.h"
#include "kv/ratelimit_redis.h"
#include "kv/redis.h"
#include "auth/sign.h"
#include "llm/llm.h"
#include "llm/llm_config.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/failpoint.h"
#include "core/health.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/seal.h"
#include "core/watchdog.h"
#include "http/router.h"
#include "http/server.h"
#include "shop/merchant.h"
#include "shop/shop.h"
#include "store/store.h"
#include "version.h"

#define PURGE_EVERY_S 60
/* Turns whose process died are resumed (or failed) by a sweep at start and
 * then every RECOVER_EVERY_S: a replica that died leaves its turns to the
 * others once their leases run out. */
#define RECOVER_EVERY_S 10

struct app;

/* The main thread's work while serving: signals (drain, reload), the purge
 * timer, the drain timer and the recovery sweep. (Not agent/runner.c: turns.) */
struct server_timers {
    struct app *app;
    struct event_base *base;
    struct event *drain;
    struct event *purge;
    struct event *recover;
    struct event *watchdog;  /* NULL unless systemd asked for WATCHDOG=1 pings */
    struct event *beat;       /* the instance heartbeat (agent/heartbeat.h) */
    struct event *sigs[3];
    struct watchdog wd;
    int64_t wd_every_us;
    int wd_stalled;          /* logged once per stall */
    int aborted_turns;
    atomic_int purging;
    atomic_int beating;
    int64_t drain_deadline_ms;
    int64_t flush_deadline_ms; /* 0 until the drain asked for the last traces */
    int signals;
};

/* How long the end of a drain waits for the traces still queued to go out */
#define SERVE_TRACE_FLUSH_MS 2000

/* AGENTD_LLM_STARTUP_CHECK: runs on the first loop; its verdict gates /readyz. */
struct startup_check {
    struct llm *llm;
    struct loop *loop;
    struct ops_state *ops;
};

/* Everything `agentd serve` builds; app_free() frees what was made, in the
 * order the loops and the pool need. */
struct app {
    struct config cfg;
    struct llm_config lc;
    struct ops_state ops;
    struct pool *pool;
    struct router *rt;
    struct http_server *srv;
    struct auth_gate *auth;
    struct jwks *jwks;              /* JWT bearer tokens; NULL without AGENTD_OIDC_ISSUER */
    struct input_guard *guard;      /* the external input guard; NULL without AGENTD_GUARD_URL */
    struct auth_limit *limit;  /* NULL: rate limits off */
    struct redis *redis;       /* NULL without AGENTD_REDIS_URL */
    struct pubsub *pubsub;     /* session-event signals between replicas; NULL without Redis */
    struct store *store;
    struct merchant *merchant;
    struct shop *shop;
    struct seal_keyring *keyring; /* seals payment credentials at rest */
    struct llm *llm;
    struct profiles *profiles;
    struct sign_key *signing_key; /* signs order webhooks; published in /.well-known/ucp */
    struct outbox *outbox;        /* delivers them */
    struct otlp_exporter *otlp;   /* exports spans; NULL without AGENTD_OTLP_ENDPOINT */
    char *prompt;
    struct agent agent;
    int agent_ready;
    struct heartbeat heartbeat;   /* our row in the instances table */
    struct events *events;
    struct startup_check sc;
    struct server_timers timers;
};

extern char **environ; /* the process environment, for unknown-variable checks */

static void notify(const char *state)
{
#ifdef AGENTD_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

int serve_config_load(struct config *cfg)
{
    struct config_problems pr = { 0 };
    int n = config_load(cfg, NULL, NULL, &pr);
    for (int i = 0; i < pr.n; i++)
        fprintf(stderr, "config: %s\n", pr.items[i]);
    if (n)
        fprintf(stderr, "config: %d problem%s; not starting\n", n, n == 1 ? "" : "s");
    config_problems_free(&pr);
    return n;
}

int serve_store_open(const struct config *cfg, struct store **out)
{
    struct store_options opt = {
        .url = cfg->db,
        .sync = cfg->db_sync == CONFIG_DB_SYNC_FULL ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
        .session_ttl_ms = cfg->session_ttl_ms,
        .readers = cfg->db_pool,
        .audit_retention_ms = cfg->audit_retention_ms,
        .quota_sessions = cfg->quota_sessions,
        .quota_idempotency_keys = cfg->quota_idempotency_keys,
    };
    struct agentd_error err = { 0 };
    int rc = store_open(&opt, out, &err);
    if (rc != 0) {
        log_msg(LOG_ERROR, NULL, "cannot open the database: %s", err.msg);
        fprintf(stderr, "agentd: cannot open the database: %s\n", err.msg);
    }
    return rc;
}

/* ---- health checks and start-up logs ---- */

static int store_check(void *ud, char *detail, size_t len)
{
    int rc = store_ping(ud);
    if (rc != 0)
        snprintf(detail, len, "%s", agentd_err_msg(rc));
    return rc;
}

/* The model providers: degraded (not critical: the server still answers,
 * with 503 or 502 for turns) when every provider is open-circuited, or when
 * any refused its configuration (key, access, model): a fallback may hide
 * that from buyers, not from operators. */
static int llm_check(void *ud, char *detail, size_t len)
{
    const struct llm *l = ud;
    size_t off = 0;
    int usable = 0, refused = 0, n = llm_provider_count(l);
    for (int i = 0; i < n; i++) {
        int status = 0;
        const char *st = llm_provider_state(l, i, &status);
        if (!status) /* the breaker's word, as before; a refusal says more */
            st = llm_provider_breaker(l, i);
        usable += strcmp(st, "open") != 0;
        refused += status != 0;
        int w = status ? snprintf(detail + off, off < len ? len - off : 0, "%s%s=%s(HTTP %d)",
                                  i ? " " : "", llm_provider_name(l, i), st, status)
                       : snprintf(detail + off, off < len ? len - off : 0, "%s%s=%s", i ? " " : "",
                                  llm_provider_name(l, i), st);
        if (w > 0)
            off += (size_t)w;
    }
    return usable && !refused ? 0 : AGENTD_EUNAVAILABLE;
}

/* One line per model provider at start: what is used, where (never the
 * key, never a URL's user:password). */
static void log_llm_providers(const struct llm_config *lc)
{
    struct logline l;
    if (lc->builtin) {
        if (log_begin(&l, LOG_INFO, "llm provider")) {
            log_str(&l, "provider", "builtin");
            log_str(&l, "model", OFFLINE_MODEL_NAME);
            log_str(&l, "note", lc->builtin_forced ? "the built-in offline model (AGENTD_LLM=builtin)"
                                                   : "the built-in offline model (no LLM provider configured)");
            log_end(&l);
        }
        return;
    }
    for (int i = 0; i < lc->n_providers; i++) {
        const struct llm_provider_config *p = &lc->providers[i];
        char host[128];
        if (!log_begin(&l, LOG_INFO, "llm provider"))
            return;
        log_str(&l, "provider", p->name);
        log_str(&l, "model", p->model);
        log_str(&l, "host", llm_url_host(p->url, host, sizeof host));
        log_int(&l, "timeout_ms", p->timeout_ms);
        log_int(&l, "fallback_order", i + 1);
        log_str(&l, "auth", p->api_key ? "bearer" : "none");
        log_end(&l);
    }
}

static void log_listening(const struct app *a)
{
    struct logline l;
    if (log_begin(&l, LOG_INFO, "listening")) {
        log_str(&l, "host", a->cfg.host);
        log_int(&l, "port", http_server_port(a->srv));
        log_int(&l, "threads", a->cfg.threads);
        log_int(&l, "workers", a->cfg.workers);
        log_str(&l, "env", a->cfg.env == CONFIG_ENV_PRODUCTION ? "production" : "development");
        log_str(&l, "version", AGENTD_VERSION);
        log_str(&l, "commit", AGENTD_GIT_COMMIT);
        log_end(&l);
    }
}

static void startup_check_done(int refused, const char *report, void *ud)
{
    struct startup_check *sc = ud;
    if (refused) {
        snprintf(sc->ops->llm_gate_reason, sizeof sc->ops->llm_gate_reason, "%s", report);
        log_msg(LOG_ERROR, NULL, "llm start-up check: %d provider%s refused; not ready "
                "(fix the key and restart): %s", refused, refused == 1 ? "" : "s", report);
        atomic_store(&sc->ops->llm_gate, OPS_LLM_GATE_REFUSED);
        return;
    }
    log_msg(*report ? LOG_WARN : LOG_INFO, NULL, "llm start-up check passed%s%s",
            *report ? " with warnings: " : "", report);
    atomic_store(&sc->ops->llm_gate, OPS_LLM_GATE_PASSED);
}

static void startup_check_start(void *arg)
{
    struct startup_check *sc = arg;
    int rc = llm_probe(sc->llm, sc->loop, startup_check_done, sc);
    if (rc != 0) {
        log_msg(LOG_WARN, NULL, "llm start-up check could not run: %s", agentd_err_msg(rc));
        atomic_store(&sc->ops->llm_gate, OPS_LLM_GATE_PASSED);
    }
}

/* ---- init: each part of the process, in the order the next one needs ---- */

/* Config and model config; their problems printed, an unknown AGENTD_*
 * variable among them (a misspelling would otherwise be silently ignored).
 * 0 or AGENTD_EINVAL. */
static int app_config_load(struct app *a)
{
    struct config_seen seen = { 0 };
    struct config_problems pr = { 0 };
    int n = config_load(&a->cfg, config_getenv_seen, &seen, &pr);
    n += llm_config_load(&a->lc, a->cfg.env, config_getenv_seen, &seen, &pr);
    n += config_check_unknown(environ, &seen, &pr);
    config_seen_free(&seen);
    for (int i = 0; i < pr.n; i++)
        fprintf(stderr, "config: %s\n", pr.items[i]);
    config_problems_free(&pr);
    if (n) {
        fprintf(stderr, "config: %d problem%s; not starting\n", n, n == 1 ? "" : "s");
        llm_config_free(&a->lc);
        config_free(&a->cfg);
        return AGENTD_EINVAL;
    }
    return 0;
}

/* Every in-flight turn holds a client socket and a model socket: take the
 * whole hard limit, and say so when the connection cap cannot fit in it. */
static void raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)cfg->max_connections * 2 + 64 > rl.rlim_cur)
        log_msg(LOG_WARN, NULL,
                "open-file limit %llu is below 2 x AGENTD_MAX_CONNECTIONS (%d) + 64: under full "
                "load accepts will fail; lower AGENTD_MAX_CONNECTIONS or raise the limit",
                (unsigned long long)rl.rlim_cur, cfg->max_connections);
}

/* Process-wide settings: log level, failpoint, SIGPIPE, fd limit, threads. */
static int app_process_setup(struct app *a)
{
    log_set_level((enum log_level)a->cfg.log_level);
    failpoint_set(a->cfg.failpoint);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&a->cfg);
    if (loop_global_init() != 0) {
        fprintf(stderr, "agentd: cannot initialise threading in libevent\n");
        config_free(&a->cfg);
        return AGENTD_EINTERNAL;
    }
    return 0;
}

/* The database and the catalog the shop sells from. */
static int app_init_store(struct app *a)
{
    int rc = serve_store_open(&a->cfg, &a->store);
    if (rc != 0)
        return rc;
    health_register("store", store_check, a->store, 1);
    a->merchant = merchant_new(a->store, a->cfg.catalog);
    struct agentd_error cerr = { 0 };
    if (!a->merchant || merchant_load(a->merchant, &cerr) != 0) {
        const char *why = a->merchant ? cerr.msg : "out of memory";
        log_msg(LOG_ERROR, NULL, "cannot load the catalog: %s", why);
        fprintf(stderr, "agentd: cannot load the catalog:\n%s\n", why);
        return AGENTD_EINVAL;
    }
    return 0;
}

/* The system prompt: AGENTD_AGENT_PROMPT_FILE or the built-in one. */
static char *load_prompt(const struct config *cfg, struct agentd_error *e)
{
    if (!cfg->agent_prompt_file)
        return strdup(AGENT_DEFAULT_PROMPT);
    char *text = config_read_small_file(cfg->agent_prompt_file, e);
    if (text && !*text) {
        agentd_fail(e, AGENTD_EINVAL, NULL, "AGENTD_AGENT_PROMPT_FILE", "%s is empty",
                    cfg->agent_prompt_file);
        free(text);
        return NULL;
    }
    return text;
}

/* The model client and the system prompt. */
static int app_init_model(struct app *a)
{
    struct agentd_error lerr = { 0 };
    a->llm = llm_new(&a->lc, offline_model(), &lerr);
    struct agentd_error pe = { 0 };
    a->prompt = load_prompt(&a->cfg, &pe);
    if (!a->llm || !a->prompt) {
        fprintf(stderr, "agentd: %s%s\n", !a->llm ? lerr.msg : "AGENTD_AGENT_PROMPT_FILE: ",
                !a->llm ? "" : pe.msg);
        return AGENTD_EINVAL;
    }
    health_register("llm", llm_check, a->llm, 0);
    log_llm_providers(&a->lc);
    a->ops.llm = a->llm;
    return 0;
}

/* The shop: payments, business id, legal links. */
static int app_init_shop(struct app *a)
{
    const struct config *cfg = &a->cfg;
    a->shop = shop_new(a->store, a->merchant, cfg->public_url ? cfg->public_url : "http://127.0.0.1");
    /* test payments: development always; production only when told */
    a->ops.test_payments = cfg->env != CONFIG_ENV_PRODUCTION || cfg->allow_test_payments;
    a->ops.test_payments_warn = cfg->env == CONFIG_ENV_PRODUCTION && cfg->allow_test_payments;
    if (a->shop && shop_set_payment_business_id(a->shop, cfg->payment_business_id) == AGENTD_EINVAL) {
        fprintf(stderr, "agentd: AGENTD_PAYMENT_BUSINESS_ID must be 1-64 printable ASCII "
                        "characters\n");
        return AGENTD_EINVAL;
    }
    if (!a->shop || shop_set_test_payments(a->shop, a->ops.test_payments) != 0 ||
        shop_set_legal_links(a->shop, cfg->privacy_url, cfg->terms_url) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    if (a->ops.test_payments_warn)
        log_msg(LOG_WARN, NULL, "production accepts test payments (AGENTD_ALLOW_TEST_PAYMENTS=1): "
                "mock_payment_handler places orders without a charge");
    /* config_load checked the keys and production refuses none */
    struct agentd_error ke = { 0 };
    int krc = seal_keyring_new(cfg->encryption_key, cfg->encryption_keys_old, &a->keyring, &ke);
    if (krc) {
        fprintf(stderr, "agentd: %s\n", ke.msg);
        return krc;
    }
    shop_set_keyring(a->shop, a->keyring);
    if (seal_keyring_ephemeral(a->keyring))
        log_msg(LOG_WARN, NULL, "AGENTD_ENCRYPTION_KEY is not set: payment credentials are sealed "
                "with a key of this process only; after a restart a checkout's stored instrument "
                "must be sent again (docs/security.md)");
    else
        log_msg(LOG_INFO, NULL, "payment data at rest: sealed under key %s",
                seal_keyring_kid(a->keyring));
    return 0;
}

/* Platform profiles (the UCP front negotiates through them) and the agent,
 * with its instance lock for crash recovery. */
/* Order webhooks: the signing key and the outbox deliverer (started with
 * the loops). An ephemeral key is allowed, with a warning: a platform's
 * verification then breaks at our next restart (docs/ucp.md "Webhooks"). */
static int app_init_webhooks(struct app *a, const char *lock_dir)
{
    const struct config *cfg = &a->cfg;
    struct agentd_error e = { 0 };
    if (sign_key_load(cfg->signing_key, &a->signing_key, &e) != 0) {
        fprintf(stderr, "agentd: %s\n", e.msg);
        return AGENTD_EINVAL;
    }
    if (sign_key_ephemeral(a->signing_key))
        log_msg(cfg->env == CONFIG_ENV_PRODUCTION ? LOG_WARN : LOG_INFO, NULL,
                "AGENTD_SIGNING_KEY is not set: webhooks are signed with a key of this process "
                "only (kid %s); platforms cannot verify them after a restart",
                sign_key_kid(a->signing_key));
    else
        log_msg(LOG_INFO, NULL, "webhooks signed with key %s", sign_key_kid(a->signing_key));
    ucp_set_signing_key(a->signing_key);
    struct outbox_options o;
    outbox_options_default(&o);
    o.timeout_ms = cfg->webhook_timeout_ms;
    o.max_attempts = cfg->webhook_max_attempts;
    const char *public_url = cfg->public_url ? cfg->public_url : "http://127.0.0.1";
    a->outbox = outbox_new(a->store, a->signing_key, a->agent.instance, lock_dir,
                           cfg->profile_allowlist, public_url, &o, &e);
    if (!a->outbox) {
        fprintf(stderr, "agentd: %s\n", e.msg);
        return AGENTD_ENOMEM;
    }
    return 0;
}

static int app_init_agent(struct app *a)
{
    const struct config *cfg = &a->cfg;
    agent_metrics_init();
    struct agentd_error pe = { 0 };
    a->profiles = profiles_new(cfg->profile_allowlist, NULL, &pe);
    if (!a->profiles) {
        fprintf(stderr, "agentd: %s\n", pe.msg);
        return AGENTD_EINVAL;
    }
    profiles_set_default(a->profiles);
    a->agent = (struct agent){ .llm = a->llm, .shop = a->shop, .merchant = a->merchant,
                               .keyring = a->keyring,
                               .st = a->store, .tools = tools_definitions(),
                               .system_prompt = a->prompt, .max_steps = cfg->max_steps,
                               .turn_timeout_ms = cfg->turn_timeout_ms,
                               .history_max_bytes = cfg->history_max_bytes,
                               .busy_policy = cfg->busy_policy, .recovery = cfg->turn_recovery,
                               .turn_token_budget = cfg->turn_token_budget,
                               .daily_token_budget = cfg->daily_token_budget,
                               .daily_cost_budget_micro = cfg->daily_cost_budget_micro,
                               .events = a->events,
                               .guard_flag_only = cfg->guard_mode == CONFIG_GUARD_FLAG,
                               .guard_fail_open = cfg->guard_fail == CONFIG_GUARD_FAIL_OPEN };
    if (cfg->guard_url) {
        if (!(a->guard = input_guard_new(cfg->guard_url, cfg->guard_timeout_ms))) {
            fprintf(stderr, "agentd: out of memory at start\n");
            return AGENTD_ENOMEM;
        }
        a->agent.guard = input_guard_external(a->guard);
    }
    instance_set_host(cfg->instance_host); /* before agent_init makes our id */
    agent_init(&a->agent);
    heartbeat_init(&a->heartbeat, a->store, a->agent.instance, cfg->instance_dead_after_ms);
    heartbeat_metrics_register();
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/instances", cfg->data_dir);
    int lrc = agent_instance_lock(&a->agent, dir);
    int why = errno; /* what the lock's system call (or allocation) met */
    if (lrc != 0)
        log_msg(LOG_WARN, NULL, "no instance lock in %s (%s): crash recovery falls back to "
                "pids and leases", dir, strerror(why));
    /* completions a crash left mid-way are known by the same means */
    idem_set_instance(a->agent.instance, lrc == 0 ? dir : NULL);
    if (shop_set_instance(a->shop, a->agent.instance, lrc == 0 ? dir : NULL) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    a->agent_ready = 1;
    return app_init_webhooks(a, lrc == 0 ? dir : NULL);
}

static int redis_check(void *ud, char *detail, size_t len)
{
    return redis_probe(ud, detail, len);
}

/* AGENTD_REDIS_URL: the client (a connection per loop, 200 ms per command:
 * a hung Redis must not hold requests), its /health entry (not critical:
 * limits degrade, data is safe) and the shared rate-limit backend. */
static int app_init_redis(struct app *a, struct ratelimit_backend **rb)
{
    struct redis_url u;
    struct agentd_error e;
    if (redis_url_parse(a->cfg.redis_url, &u, &e) != 0) /* config_load checked it */
        return AGENTD_EINVAL;
    a->redis = redis_new(&u, 200);
    explicit_bzero(u.password, sizeof u.password);
    struct ratelimit_backend *mem = a->redis ? ratelimit_mem_new(100000) : NULL;
    *rb = mem ? ratelimit_redis_new(a->redis, a->cfg.rate_limit_on_redis_down ==
                                                  CONFIG_REDIS_DOWN_CLOSED, mem) : NULL;
    if (!*rb) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    health_register("redis", redis_check, a->redis, 0);
    return 0;
}

/* AGENTD_AUTH_FAIL_LIMIT: refused credentials charged per client address,
 * to Redis when configured (every replica sees the same failures; open when
 * Redis is down: the key lookup still decides), else in this process. */
static int app_init_throttle(struct app *a)
{
    struct ratelimit_rule rule;
    struct agentd_error e;
    if (!a->cfg.auth || ratelimit_rule_parse(a->cfg.auth_fail_limit, &rule, &e) != 0 ||
        !rule.interval_ns) /* config_load checked it */
        return 0;
    struct ratelimit_backend *b = ratelimit_mem_new(100000);
    if (b && a->redis)
        b = ratelimit_redis_new(a->redis, 0, b);
    struct auth_throttle *t = NULL;
    int rc = b ? auth_throttle_new(&rule, b, &t) : AGENTD_ENOMEM;
    if (rc == 0)
        auth_gate_set_throttle(a->auth, t);
    return rc;
}

/* Every front's routes, the default worker pool and the HTTP server. */
static int app_init_http(struct app *a)
{
    const struct config *cfg = &a->cfg;
    const char *public_url = cfg->public_url ? cfg->public_url : "http://127.0.0.1";
    if (!a->pool || !a->rt || ops_routes(a->rt, &a->ops) != 0 || testing_routes(a->rt, cfg) != 0 ||
        ucp_routes(a->rt, a->shop, a->store, cfg, public_url) != 0 ||
        chat_routes(a->rt, &a->agent, a->store, a->events) != 0 ||
        a2a_routes(a->rt, &a->agent, a->store, a->events, public_url,
                   cfg->env == CONFIG_ENV_PRODUCTION) != 0 || openapi_routes(a->rt) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    if (cfg->auth && (a2a_card_require_auth() != 0 || openapi_require_auth(!!cfg->metrics_token))) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    pool_set_default(a->pool);
    a->srv = http_server_new(cfg, a->rt);
    a->auth = auth_gate_new(cfg, a->store);
    int jwks_oom = 0;
    a->jwks = jwks_new(cfg, &jwks_oom);
    if (!a->srv || !a->auth || jwks_oom) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    if (a->jwks)
        auth_gate_set_verifier(a->auth, jwks_verify, a->jwks);
    struct ratelimit_backend *rb = NULL;
    if (cfg->redis_url && app_init_redis(a, &rb) != 0)
        return AGENTD_ENOMEM;
    redis_metrics_register(a->redis); /* the series exist on every server */
    pubsub_metrics_register();
    if (a->redis) {
        if (!(a->pubsub = pubsub_new(a->redis, a->agent.instance))) {
            fprintf(stderr, "agentd: out of memory at start\n");
            return AGENTD_ENOMEM;
        }
        struct relay relay;
        pubsub_relay(a->pubsub, &relay);
        events_set_relay(a->events, &relay);
    }
    ratelimit_redis_metrics_register();
    if (auth_limit_new(cfg, rb, &a->limit) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    if (app_init_throttle(a) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        return AGENTD_ENOMEM;
    }
    auth_gate_install(a->auth, a->srv);
    auth_limit_install(a->limit, a->srv); /* after: the budget is the principal's */
    if (!cfg->auth)
        log_msg(LOG_INFO, NULL, "AGENTD_AUTH=off: every request is the anonymous principal "
                "(development only)");
    a->ops.srv = a->srv;
    return 0;
}

/* Traces (docs/operations.md "Traces"): on only with a collector; the
 * exporter runs on loop 0 once the server starts. */
static int app_init_traces(struct app *a)
{
    const struct config *cfg = &a->cfg;
    otlp_metrics_register();
    if (!cfg->otlp_endpoint)
        return 0;
    struct otlp_options o = { .endpoint = cfg->otlp_endpoint, .headers = cfg->otlp_headers,
                              .service_name = cfg->service_name, .instance = a->agent.instance,
                              .interval_ms = 1000, .timeout_ms = 5000 };
    struct agentd_error e = { 0 };
    a->otlp = otlp_new(&o, &e);
    if (!a->otlp) {
        fprintf(stderr, "agentd: traces: %s\n", e.msg);
        return AGENTD_ENOMEM;
    }
    trace_setup(cfg->trace_sample_ratio);
    log_msg(LOG_INFO, NULL, "traces: exporting to the OTLP collector, sampling %g of new traces",
            cfg->trace_sample_ratio);
    return 0;
}

/* Builds everything up to a server ready to start. 0 or a negative AGENTD_E*
 * (already reported); app_free() undoes any prefix of it. */
static int app_init(struct app *a)
{
    a->ops.start_wall_ms = clock_wall_ms();
    a->ops.start_mono_ms = clock_mono_ms();
    a->pool = pool_new(a->cfg.workers, 100000);
    a->rt = router_new();
    a->events = events_new();
    follow_set_poll_ms(a->cfg.events_poll_ms);
    a->timers.app = a;
    int rc = app_init_store(a);
    if (rc == 0)
        rc = app_init_model(a);
    if (rc == 0)
        rc = app_init_shop(a);
    if (rc == 0)
        rc = app_init_agent(a);
    if (rc == 0)
        rc = app_init_http(a);
    if (rc == 0)
        rc = app_init_traces(a);
    return rc;
}

/* ---- start: listen, then tell systemd and /readyz ---- */

static int app_start(struct app *a)
{
    a->sc = (struct startup_check){ .llm = a->llm, .ops = &a->ops };
    if (a->lc.startup_check && !llm_is_builtin(a->llm))
        atomic_store(&a->ops.llm_gate, OPS_LLM_GATE_RUNNING); /* not ready until it answers */
    else if (a->lc.startup_check)
        log_msg(LOG_INFO, NULL, "llm start-up check: the built-in model needs none");
    struct agentd_error e = { 0 };
    int rc = http_server_start(a->srv, &e);
    if (rc != 0) {
        log_msg(LOG_ERROR, NULL, "%s", e.msg);
        fprintf(stderr, "agentd: %s\n", e.msg);
        return rc;
    }
    log_listening(a);
    a->sc.loop = http_server_loop(a->srv, 0);
    if (atomic_load(&a->ops.llm_gate) == OPS_LLM_GATE_RUNNING &&
        loop_post(a->sc.loop, startup_check_start, &a->sc) != 0) {
        log_msg(LOG_WARN, NULL, "llm start-up check could not be scheduled");
        atomic_store(&a->ops.llm_gate, OPS_LLM_GATE_PASSED);
    }
    pubsub_set_home(a->pubsub, http_server_loop(a->srv, 0)); /* workers' publishes */
    if (outbox_start(a->outbox, http_server_loop(a->srv, 0)) != 0)
        log_msg(LOG_ERROR, NULL, "outbox: out of memory: webhooks are not delivered by this "
                "process");
    if (a->otlp && otlp_start(a->otlp, http_server_loop(a->srv, 0)) != 0)
        log_msg(LOG_ERROR, NULL, "otlp: out of memory: traces are not exported by this process");
    atomic_store(&a->ops.warm, 1);
    notify("READY=1");
    return 0;
}

/* ---- wait: the main thread's timers and signals until the drain ends ---- */

/* Expired rows go in small batches, each its own short transaction, so a
 * purge never holds the write lock for long. Runs on a worker. */
static void purge_job(void *arg)
{
    struct server_timers *t = arg;
    int total = 0, n = 0;
    do {
        if (store_purge_expired(t->app->store, SERVE_PURGE_BATCH, &n) != 0)
            break;
        total += n;
    } while (n == SERVE_PURGE_BATCH && !http_server_draining(t->app->srv));
    if (total)
        log_msg(LOG_INFO, NULL, "purged %d expired rows", total);
    atomic_store(&t->purging, 0);
}

static void purge_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct server_timers *t = arg;
    if (!atomic_exchange(&t->purging, 1) &&
        pool_submit(pool_default(), NULL, purge_job, NULL, t) != 0)
        atomic_store(&t->purging, 0);
    struct timeval tv = { PURGE_EVERY_S, 0 };
    evtimer_add(t->purge, &tv);
}

/* The server's loop threads into loops[256]; returns how many. */
static int server_loops(struct http_server *srv, struct loop *loops[256])
{
    int n = http_server_loop_count(srv);
    if (n > 256)
        n = 256;
    for (int i = 0; i < n; i++)
        loops[i] = http_server_loop(srv, i);
    return n;
}

/* A recovery sweep now, from any thread (a no-op while one runs). */
static void recover_now(struct app *a)
{
    struct http_server *srv = a->srv;
    if (http_server_draining(srv))
        return;
    struct loop *loops[256];
    int n = server_loops(srv, loops);
    agent_recover(&a->agent, loops, n);
}

static void recover_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct server_timers *t = arg;
    recover_now(t->app);
    struct timeval tv = { RECOVER_EVERY_S, 0 };
    evtimer_add(t->recover, &tv);
}

/* One heartbeat on a worker. An instance newly found dead has its turns
 * swept and its outbox claims released now, not at the next round; its
 * completion claims are taken over by the next call that meets them. */
static void beat_job(void *arg)
{
    struct server_timers *t = arg;
    struct app *a = t->app;
    int rc = heartbeat_beat(&a->heartbeat, clock_wall_ms());
    if (rc > 0) {
        recover_now(a);
        outbox_adopt_soon(a->outbox);
    } else if (rc < 0) {
        log_msg(LOG_WARN, NULL, "instance heartbeat not written: %s", agentd_err_msg(rc));
    }
    atomic_store(&t->beating, 0);
}

static void beat_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct server_timers *t = arg;
    if (!atomic_exchange(&t->beating, 1) &&
        pool_submit(pool_default(), NULL, beat_job, NULL, t) != 0)
        atomic_store(&t->beating, 0);
    int64_t every = heartbeat_every_ms(t->app->cfg.instance_dead_after_ms);
    struct timeval tv = { every / 1000, (every % 1000) * 1000 };
    evtimer_add(t->beat, &tv);
}

static void abort_turns_here(void *arg) { agent_abort_waiting_here(arg); }

/* The last requests' spans are still queued (exports run once a second):
 * one flush, bounded, so that they are not lost at exit. 1 while waiting. */
static int drain_traces_pending(struct server_timers *t)
{
    struct otlp_exporter *x = t->app->otlp;
    if (!x)
        return 0;
    if (!t->flush_deadline_ms) {
        t->flush_deadline_ms = clock_mono_ms() + SERVE_TRACE_FLUSH_MS;
        if (otlp_flush(x) != 0)
            return 0;
    }
    if (otlp_flushed(x))
        return 0;
    if (clock_mono_ms() < t->flush_deadline_ms)
        return 1;
    log_msg(LOG_WARN, NULL, "drain: traces still queued after %d ms are dropped", SERVE_TRACE_FLUSH_MS);
    return 0;
}

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct server_timers *t = arg;
    struct http_server *srv = t->app->srv;
    /* done when every reply is finished and its last byte left the socket buffer */
    int64_t left = http_server_inflight(srv) + http_server_unflushed(srv);
    if (left && t->app->agent_ready && !t->aborted_turns &&
        clock_mono_ms() >= t->drain_deadline_ms) {
        /* Out of time: turns still waiting on the model are answered 503
         * by their own loops, which still run; one more second to send. */
        t->aborted_turns = 1;
        for (int i = 0; i < http_server_loop_count(srv); i++)
            loop_post(http_server_loop(srv, i), abort_turns_here, &t->app->agent);
        t->drain_deadline_ms = clock_mono_ms() + 1000;
    }
    if (left == 0 || clock_mono_ms() >= t->drain_deadline_ms) {
        if (left && !t->flush_deadline_ms) /* once: the trace flush below may take ticks */
            log_msg(LOG_WARN, NULL, "drain timeout: %lld requests or replies still in flight are cut off",
                    (long long)left);
        if (!drain_traces_pending(t)) {
            event_base_loopbreak(t->base);
            return;
        }
    }
    struct timeval tv = { 0, 20000 };
    evtimer_add(t->drain, &tv);
}

/* WatchdogSec= in the unit: the service manager passes WATCHDOG_USEC and
 * wants WATCHDOG=1 more often than that; we ping at half of it. 0 = off. */
static int64_t watchdog_every_us(void)
{
#ifdef AGENTD_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2)
        return (int64_t)(usec / 2);
#endif
    return 0;
}

/* Pings only while every loop thread runs what is posted to it: a wedged
 * loop stops the pings and systemd restarts the process. Keeps pinging
 * through a drain (the loops still answer). */
static void watchdog_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct server_timers *t = arg;
    struct loop *loops[256];
    int n = server_loops(t->app->srv, loops);
    int64_t now = clock_mono_ms();
    if (watchdog_tick(&t->wd, loops, n, now)) {
        if (t->wd_stalled)
            log_msg(LOG_INFO, NULL, "watchdog: every loop thread answers again; pinging");
        t->wd_stalled = 0;
        notify("WATCHDOG=1");
    } else if (!t->wd_stalled) {
        t->wd_stalled = 1;
        log_msg(LOG_WARN, NULL, "watchdog: a loop thread has not answered for %lld ms: "
                "not pinging systemd", (long long)(now - t->wd.probe_ms));
    }
    struct timeval tv = { t->wd_every_us / 1000000, t->wd_every_us % 1000000 };
    evtimer_add(t->watchdog, &tv);
}

/* SIGHUP reloads the catalog and the TLS certificate; SIGTERM/SIGINT drain; a second one exits now. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct server_timers *t = arg;
    struct app *a = t->app;
    if (sig == SIGHUP) {
        struct agentd_error err;
        if (merchant_load(a->merchant, &err) == 0)
            log_msg(LOG_INFO, NULL, "SIGHUP: catalog reloaded (%s)", merchant_source(a->merchant));
        else
            log_msg(LOG_ERROR, NULL, "SIGHUP: catalog not reloaded, keeping the old one: %s", err.msg);
        if (http_server_tls(a->srv)) {
            if (http_server_tls_reload(a->srv, &err) == 0)
                log_msg(LOG_INFO, NULL, "SIGHUP: TLS certificate reloaded for new connections");
            else
                log_msg(LOG_ERROR, NULL, "SIGHUP: TLS certificate not reloaded, keeping the old "
                                         "one: %s", err.msg);
        }
        return;
    }
    if (++t->signals > 1) {
        log_msg(LOG_WARN, NULL, "second signal: exiting now");
        _exit(1);
    }
    log_msg(LOG_INFO, NULL, "%s: draining (up to %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            (long long)a->cfg.drain_timeout_ms);
    notify("STOPPING=1");
    http_server_begin_drain(a->srv);
    t->drain_deadline_ms = clock_mono_ms() + a->cfg.drain_timeout_ms;
    drain_tick(-1, 0, t);
}

/* The main thread's loop and its signal events, before the server listens:
 * from its first answer on, a SIGTERM drains (a signal that arrives before
 * the loop runs waits in libevent's queue) instead of killing the process
 * by the default action — the window was the first ticks below (a purge, a
 * heartbeat write), and test_drain's 40 quick stops hit it. */
static int app_watch_signals(struct app *a)
{
    struct server_timers *t = &a->timers;
    static const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    t->base = event_base_new();
    if (!t->base) {
        log_msg(LOG_ERROR, NULL, "out of memory: the main loop");
        return AGENTD_ENOMEM;
    }
    for (int i = 0; i < 3; i++) {
        t->sigs[i] = evsignal_new(t->base, signums[i], on_signal, t);
        if (!t->sigs[i] || evsignal_add(t->sigs[i], NULL) != 0) {
            log_msg(LOG_ERROR, NULL, "cannot watch signal %d", signums[i]);
            return AGENTD_ENOMEM;
        }
    }
    return 0;
}

static void app_unwatch_signals(struct app *a)
{
    struct server_timers *t = &a->timers;
    for (int i = 0; i < 3; i++) {
        if (t->sigs[i])
            event_free(t->sigs[i]);
        t->sigs[i] = NULL;
    }
    if (t->base)
        event_base_free(t->base);
    t->base = NULL;
}

/* Runs the main thread's event loop until a drain ends. */
static void app_wait(struct app *a)
{
    struct server_timers *t = &a->timers;
    if (t->base) {
        t->drain = evtimer_new(t->base, drain_tick, t);
        t->purge = evtimer_new(t->base, purge_tick, t);
        if (t->purge)
            purge_tick(-1, 0, t);
        t->recover = evtimer_new(t->base, recover_tick, t);
        if (t->recover)
            recover_tick(-1, 0, t);
        t->wd_every_us = watchdog_every_us();
        if (t->wd_every_us > 0 && (t->watchdog = evtimer_new(t->base, watchdog_tick_cb, t))) {
            log_msg(LOG_INFO, NULL, "watchdog: pinging systemd every %lld ms",
                    (long long)(t->wd_every_us / 1000));
            watchdog_tick_cb(-1, 0, t);
        }
        t->beat = evtimer_new(t->base, beat_tick, t);
        if (t->beat)
            beat_tick(-1, 0, t);
        event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
    }
    if (a->srv)
        http_server_stop(a->srv); /* the loops write their last access lines first */
    log_msg(LOG_INFO, NULL, "stopped");
    if (t->drain)
        event_free(t->drain);
    if (t->purge)
        event_free(t->purge);
    if (t->recover)
        event_free(t->recover);
    if (t->watchdog)
        event_free(t->watchdog);
    if (t->beat)
        event_free(t->beat);
    t->drain = t->purge = t->recover = t->watchdog = t->beat = NULL;
    app_unwatch_signals(a);
}

/* ---- free: the order the loops, the pool and the model client need ---- */

static void app_free(struct app *a)
{
    if (a->srv)
        http_server_stop(a->srv);
    if (a->agent_ready)
        agent_stop(&a->agent); /* cancels model calls while the LLM client still exists */
    pool_set_default(NULL);
    pool_free(a->pool); /* finishes queued jobs; their completions wait in the loops' inboxes */
    if (a->agent_ready)
        heartbeat_stop(&a->heartbeat); /* no beat runs now; a clean stop leaves no row */
    heartbeat_free(&a->heartbeat);
    llm_free(a->llm);          /* before the loops' event bases go */
    profiles_set_default(NULL);
    profiles_free(a->profiles); /* the same: its fetches live on the loops */
    jwks_free(a->jwks);        /* the same */
    input_guard_free(a->guard); /* the same; agent_stop cancelled its calls */
    redis_close(a->redis);     /* the same: its connections live on the loops */
    pubsub_close(a->pubsub);   /* the same: its subscriber connections */
    outbox_stop(a->outbox);    /* the same; gives its claims back */
    otlp_stop(a->otlp);        /* the same: its export lives on loop 0 */
    http_server_free(a->srv);  /* runs late completions, then frees the loops */
    outbox_free(a->outbox);    /* after them: a claim or finish may complete there */
    otlp_free(a->otlp);
    ucp_set_signing_key(NULL);
    sign_key_free(a->signing_key);
    auth_gate_free(a->auth);   /* after them: a key check may complete there */
    auth_limit_free(a->limit);
    pubsub_free(a->pubsub);    /* after the loops: a publish may wait in an inbox */
    redis_free(a->redis);      /* after the limiter that sends to it */
    events_free(a->events);    /* after the loops: wake-ups may sit in their inboxes */
    if (a->agent_ready)
        agent_destroy(&a->agent);
    json_decref(a->agent.tools);
    free(a->prompt);
    llm_config_free(&a->lc);
    shop_free(a->shop);
    seal_keyring_free(a->keyring);
    merchant_free(a->merchant);
    store_close(a->store);
    health_reset();
    router_free(a->rt);
    metrics_reset();
    config_free(&a->cfg);
}

int serve_run(void)
{
    struct app app = { 0 };
    struct app *a = &app;
    if (app_config_load(a) != 0)
        return 2;
    if (app_process_setup(a) != 0)
        return 1;
    int rc = app_init(a);
    if (rc == 0)
        rc = app_watch_signals(a);
    if (rc == 0)
        rc = app_start(a);
    if (rc == 0)
        app_wait(a);
    app_unwatch_signals(a);
    app_free(a);
    return rc == 0 ? 0 : 1;
}
