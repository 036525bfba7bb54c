/* agentd command line: serve | migrate | backup | vacuum | catalog import |
 * probe | check-config | version.
 * `serve` wires config, logs, worker pool, routes and the HTTP server, then
 * waits for signals on the main thread: SIGTERM/SIGINT drain, a second one
 * exits at once. */
#include <signal.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef AGENTD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "api/openapi.h"
#include "api/ops.h"
#include "api/profiles.h"
#include "api/testing.h"
#include "api/ucp.h"
#include "api/a2a.h"
#include "api/chat.h"
#include "agent/events.h"
#include "agent/offline_model.h"
#include "agent/recover.h"
#include "agent/runner.h"
#include "agent/tools.h"
#include "llm/llm.h"
#include "llm/llm_config.h"
#include "core/clock.h"
#include "core/health.h"
#include "core/config.h"
#include "core/failpoint.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "http/probe.h"
#include "http/router.h"
#include "http/server.h"
#include "shop/merchant.h"
#include "shop/shop.h"
#include "store/store.h"
#include "version.h"

static const char usage[] =
    "usage: agentd <command>\n"
    "\n"
    "commands:\n"
    "  serve          run the server (configured from AGENTD_* environment variables)\n"
    "  migrate        apply database migrations and print the schema version\n"
    "  backup PATH    write a consistent copy of the database to PATH (safe while serving)\n"
    "  catalog import DIR\n"
    "                 import UCP sample-merchant CSV files (products, inventory, shipping_rates,\n"
    "                 discounts) as the catalog serve sells from; replaces stock\n"
    "  check-config   validate the environment, list every problem, print the redacted config\n"
    "  version        print the version and git commit\n"
    "  --help         this text\n"
    "\n"
    "Configuration is read from the environment only; see README.md.\n";

static void notify(const char *state)
{
#ifdef AGENTD_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

static int load_config(struct config *cfg)
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

static int cmd_check_config(void)
{
    struct config cfg;
    struct llm_config lc;
    struct config_problems pr = { 0 };
    int n = config_load(&cfg, NULL, NULL, &pr);
    n += llm_config_load(&lc, cfg.env, NULL, NULL, &pr);
    for (int i = 0; i < pr.n; i++)
        printf("problem: %s\n", pr.items[i]);
    config_dump(&cfg, stdout);
    llm_config_dump(&lc, stdout);
    printf("%s\n", n ? "config: INVALID" : "config: ok");
    config_problems_free(&pr);
    llm_config_free(&lc);
    config_free(&cfg);
    return n ? 2 : 0;
}

/* The system prompt: AGENTD_AGENT_PROMPT_FILE or the built-in one. */
static char *load_prompt(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->agent_prompt_file)
        return strdup(AGENT_DEFAULT_PROMPT);
    char *text = config_read_small_file(cfg->agent_prompt_file, err, errlen);
    if (text && !*text) {
        snprintf(err, errlen, "%s is empty", cfg->agent_prompt_file);
        free(text);
        return NULL;
    }
    return text;
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

/* ---- store ---- */

/* Expired rows are deleted in batches of this many, each its own short
 * transaction (serve's purge timer and `agentd vacuum`). */
#define PURGE_BATCH 500

static int open_store(const struct config *cfg, struct store **out)
{
    struct store_options opt = {
        .url = cfg->db,
        .sync = cfg->db_sync == CONFIG_DB_SYNC_FULL ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
        .session_ttl_ms = cfg->session_ttl_ms,
    };
    struct agentd_error err = { 0 };
    int rc = store_open(&opt, out, &err);
    if (rc != 0) {
        log_msg(LOG_ERROR, NULL, "cannot open the database: %s", err.msg);
        fprintf(stderr, "agentd: cannot open the database: %s\n", err.msg);
    }
    return rc;
}

static int cmd_migrate(void)
{
    struct config cfg;
    struct store *st = NULL;
    int rc = 2;
    if (load_config(&cfg) == 0) {
        rc = 1;
        if (open_store(&cfg, &st) == 0) {
            int version = 0;
            if (store_schema_version(st, &version) == 0) {
                printf("schema version %d\n", version);
                rc = 0;
            }
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

static int cmd_backup(const char *path)
{
    struct config cfg;
    struct store *st = NULL;
    int rc = 2;
    if (load_config(&cfg) == 0) {
        rc = 1;
        if (open_store(&cfg, &st) == 0) {
            int err = store_backup(st, path);
            if (err == 0) {
                printf("backup written to %s\n", path);
                rc = 0;
            } else {
                fprintf(stderr, "agentd: backup to %s failed: %s\n", path, agentd_err_msg(err));
            }
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

static int cmd_catalog_import(const char *dir)
{
    struct config cfg;
    struct store *st = NULL;
    int rc = 2;
    if (load_config(&cfg) == 0) {
        rc = 1;
        if (open_store(&cfg, &st) == 0) {
            char err[1024] = "";
            size_t n = 0;
            if (merchant_import(st, cfg.catalog, dir, &n, err, sizeof err) == 0) {
                printf("imported %zu products from %s into %s\n", n, dir,
                       cfg.catalog ? cfg.catalog : "the store");
                rc = 0;
            } else {
                fprintf(stderr, "agentd: catalog import failed:\n%s\n", err);
            }
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

/* Expired rows first (the TTL purge serve runs each minute), then VACUUM:
 * the file shrinks by what both freed. */
static int cmd_vacuum(void)
{
    struct config cfg;
    struct store *st = NULL;
    int rc = 2;
    if (load_config(&cfg) == 0) {
        rc = 1;
        if (open_store(&cfg, &st) == 0) {
            int total = 0, n = 0, err = 0;
            do {
                err = store_purge_expired(st, PURGE_BATCH, &n);
                total += err == 0 ? n : 0;
            } while (err == 0 && n == PURGE_BATCH);
            int64_t before = 0, after = 0;
            if (err == 0)
                err = store_vacuum(st, &before, &after);
            if (err == 0) {
                printf("purged %d expired rows; %s: %lld bytes before, %lld after (%lld freed)\n",
                       total, cfg.db, (long long)before, (long long)after,
                       (long long)(before - after));
                rc = 0;
            } else {
                fprintf(stderr, "agentd: vacuum of %s failed: %s%s\n", cfg.db, agentd_err_msg(err),
                        err == AGENTD_EBUSY ? " (the server held the write lock; try again)" : "");
            }
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

/* ---- probe ---- */

/* Exit 1 for every failure, never 2: Docker's HEALTHCHECK reserves 2. */
static int cmd_probe(int argc, char **argv)
{
    const char *target = NULL;
    int64_t timeout_ms = 2000;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 == argc || config_parse_duration(argv[i + 1], &timeout_ms) != 0 ||
                timeout_ms <= 0 || timeout_ms > 60000) {
                fprintf(stderr, "agentd probe: --timeout needs a duration from 1ms to 60s "
                                "(e.g. 500ms, 2s)\n");
                return 2;
            }
            i++;
        } else if (!target && (argv[i][0] == '/' || strncmp(argv[i], "http://", 7) == 0)) {
            target = argv[i];
        } else {
            fprintf(stderr, "agentd probe: unexpected argument '%s' (usage: agentd probe "
                            "[PATH|URL] [--timeout DURATION])\n", argv[i]);
            return 2;
        }
    }
    struct http_probe_target t;
    char err[512] = "";
    if (target && target[0] != '/') {
        if (http_probe_parse_url(target, &t, err, sizeof err) != 0) {
            fprintf(stderr, "agentd probe: %s\n", err);
            return 2;
        }
    } else {
        struct config cfg;
        struct config_problems pr = { 0 };
        int bad = config_load(&cfg, NULL, NULL, &pr);
        for (int i = 0; i < pr.n; i++)
            fprintf(stderr, "agentd probe: config: %s\n", pr.items[i]);
        config_problems_free(&pr);
        memset(&t, 0, sizeof t);
        snprintf(t.host, sizeof t.host, "%s", http_probe_local_host(cfg.host));
        t.port = cfg.port;
        config_free(&cfg);
        if (bad)
            return 1;
        if (t.port == 0) {
            fputs("agentd probe: AGENTD_PORT=0 (any free port): give the URL to probe\n", stderr);
            return 1;
        }
        if (strlen(target ? target : "/readyz") >= sizeof t.path ||
            strpbrk(target ? target : "", " \r\n\t")) {
            fputs("agentd probe: the path is too long or has a space or control character\n",
                  stderr);
            return 2;
        }
        snprintf(t.path, sizeof t.path, "%s", target ? target : "/readyz");
    }
    int ipv6 = strchr(t.host, ':') != NULL;
    char url[1400];
    snprintf(url, sizeof url, "http://%s%s%s:%d%s", ipv6 ? "[" : "", t.host, ipv6 ? "]" : "",
             t.port, t.path);
    int status = 0;
    char body[512] = "";
    if (http_probe_get(&t, timeout_ms, &status, body, sizeof body, err, sizeof err) != 0) {
        fprintf(stderr, "agentd probe: %s: %s\n", url, err);
        return 1;
    }
    size_t n = strlen(body);
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        body[--n] = 0;
    int ok = status >= 200 && status < 300;
    fprintf(ok ? stdout : stderr, "%s%s: %d %s\n", ok ? "" : "agentd probe: ", url, status, body);
    return ok ? 0 : 1;
}

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

/* AGENTD_LLM_STARTUP_CHECK: runs on the first loop; its verdict gates /readyz. */
struct startup_check {
    struct llm *llm;
    struct loop *loop;
    struct ops_state *ops;
};

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

/* ---- serve ---- */

struct runner {
    struct event_base *base;
    struct http_server *srv;
    const struct config *cfg;
    struct event *tick;
    struct event *purge;
    struct event *recover;
    struct store *store;
    struct merchant *merchant;
    struct agent *agent;     /* NULL until the agent is set up */
    int aborted_turns;
    atomic_int purging;
    int64_t drain_deadline_ms;
    int signals;
};

#define PURGE_EVERY_S 60

/* Expired rows go in small batches, each its own short transaction, so a
 * purge never holds the write lock for long. Runs on a worker. */
static void purge_job(void *arg)
{
    struct runner *rn = arg;
    int total = 0, n = 0;
    do {
        if (store_purge_expired(rn->store, PURGE_BATCH, &n) != 0)
            break;
        total += n;
    } while (n == PURGE_BATCH && !http_server_draining(rn->srv));
    if (total)
        log_msg(LOG_INFO, NULL, "purged %d expired rows", total);
    atomic_store(&rn->purging, 0);
}

static void purge_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct runner *rn = arg;
    if (!atomic_exchange(&rn->purging, 1) &&
        pool_submit(pool_default(), NULL, purge_job, NULL, rn) != 0)
        atomic_store(&rn->purging, 0);
    struct timeval tv = { PURGE_EVERY_S, 0 };
    evtimer_add(rn->purge, &tv);
}

/* Turns whose process died are resumed (or failed) by a sweep at start and
 * then every RECOVER_EVERY_S: a replica that died leaves its turns to the
 * others once their leases run out. */
#define RECOVER_EVERY_S 10

static void recover_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct runner *rn = arg;
    if (!http_server_draining(rn->srv)) {
        struct loop *loops[256];
        int n = http_server_loop_count(rn->srv);
        if (n > 256)
            n = 256;
        for (int i = 0; i < n; i++)
            loops[i] = http_server_loop(rn->srv, i);
        agent_recover(rn->agent, loops, n);
    }
    struct timeval tv = { RECOVER_EVERY_S, 0 };
    evtimer_add(rn->recover, &tv);
}

static void abort_turns_here(void *arg) { agent_abort_waiting_here(arg); }

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct runner *rn = arg;
    /* done when every reply is finished and its last byte left the socket buffer */
    int64_t left = http_server_inflight(rn->srv) + http_server_unflushed(rn->srv);
    if (left && rn->agent && !rn->aborted_turns && clock_mono_ms() >= rn->drain_deadline_ms) {
        /* Out of time: turns still waiting on the model are answered 503
         * by their own loops, which still run; one more second to send. */
        rn->aborted_turns = 1;
        for (int i = 0; i < http_server_loop_count(rn->srv); i++)
            loop_post(http_server_loop(rn->srv, i), abort_turns_here, rn->agent);
        rn->drain_deadline_ms = clock_mono_ms() + 1000;
    }
    if (left == 0 || clock_mono_ms() >= rn->drain_deadline_ms) {
        if (left)
            log_msg(LOG_WARN, NULL, "drain timeout: %lld requests or replies still in flight are cut off",
                    (long long)left);
        event_base_loopbreak(rn->base);
        return;
    }
    struct timeval tv = { 0, 20000 };
    evtimer_add(rn->tick, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct runner *rn = arg;
    if (sig == SIGHUP) {
        char err[1024] = "";
        if (merchant_load(rn->merchant, err, sizeof err) == 0)
            log_msg(LOG_INFO, NULL, "SIGHUP: catalog reloaded (%s)", merchant_source(rn->merchant));
        else
            log_msg(LOG_ERROR, NULL, "SIGHUP: catalog not reloaded, keeping the old one: %s", err);
        return;
    }
    if (++rn->signals > 1) {
        log_msg(LOG_WARN, NULL, "second signal: exiting now");
        _exit(1);
    }
    log_msg(LOG_INFO, NULL, "%s: draining (up to %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            (long long)rn->cfg->drain_timeout_ms);
    notify("STOPPING=1");
    http_server_begin_drain(rn->srv);
    rn->drain_deadline_ms = clock_mono_ms() + rn->cfg->drain_timeout_ms;
    drain_tick(-1, 0, rn);
}

static int cmd_serve(void)
{
    struct config cfg;
    struct llm_config lc = { 0 };
    int bad = load_config(&cfg);
    struct config_problems pr = { 0 };
    int lbad = llm_config_load(&lc, cfg.env, NULL, NULL, &pr);
    for (int i = 0; i < pr.n; i++)
        fprintf(stderr, "config: %s\n", pr.items[i]);
    config_problems_free(&pr);
    if (bad || lbad) {
        if (lbad && !bad)
            fprintf(stderr, "config: %d problem%s; not starting\n", lbad, lbad == 1 ? "" : "s");
        llm_config_free(&lc);
        config_free(&cfg);
        return 2;
    }
    log_set_level((enum log_level)cfg.log_level);
    failpoint_set(cfg.failpoint);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(&cfg);
    if (loop_global_init() != 0) {
        fprintf(stderr, "agentd: cannot initialise threading in libevent\n");
        config_free(&cfg);
        return 1;
    }

    struct ops_state ops = { .start_wall_ms = clock_wall_ms(), .start_mono_ms = clock_mono_ms() };
    struct pool *pool = pool_new(cfg.workers, 100000);
    struct router *rt = router_new();
    struct http_server *srv = NULL;
    struct store *store = NULL;
    struct merchant *merchant = NULL;
    struct shop *shop = NULL;
    struct llm *llm = NULL;
    struct profiles *profiles = NULL;
    char *prompt = NULL;
    struct agent agent = { 0 };
    int agent_ready = 0;
    struct events *events = events_new();
    struct runner rn = { .cfg = &cfg };
    int rc = 1;
    if (open_store(&cfg, &store) != 0)
        goto out;
    health_register("store", store_check, store, 1);
    rn.store = store;
    merchant = merchant_new(store, cfg.catalog);
    char cerr[1024] = "";
    if (!merchant || merchant_load(merchant, cerr, sizeof cerr) != 0) {
        log_msg(LOG_ERROR, NULL, "cannot load the catalog: %s", merchant ? cerr : "out of memory");
        fprintf(stderr, "agentd: cannot load the catalog:\n%s\n", merchant ? cerr : "out of memory");
        goto out;
    }
    rn.merchant = merchant;
    struct agentd_error lerr = { 0 };
    llm = llm_new(&lc, offline_model(), &lerr);
    char perr[512] = "";
    prompt = load_prompt(&cfg, perr, sizeof perr);
    if (!llm || !prompt) {
        fprintf(stderr, "agentd: %s%s\n", !llm ? lerr.msg : "AGENTD_AGENT_PROMPT_FILE: ", !llm ? "" : perr);
        goto out;
    }
    health_register("llm", llm_check, llm, 0);
    log_llm_providers(&lc);
    ops.llm = llm;
    shop = shop_new(store, merchant, cfg.public_url ? cfg.public_url : "http://127.0.0.1");
    /* test payments: development always; production only when told */
    ops.test_payments = cfg.env != CONFIG_ENV_PRODUCTION || cfg.allow_test_payments;
    ops.test_payments_warn = cfg.env == CONFIG_ENV_PRODUCTION && cfg.allow_test_payments;
    if (shop && shop_set_payment_business_id(shop, cfg.payment_business_id) == AGENTD_EINVAL) {
        fprintf(stderr, "agentd: AGENTD_PAYMENT_BUSINESS_ID must be 1-64 printable ASCII "
                        "characters\n");
        goto out;
    }
    if (!shop || shop_set_test_payments(shop, ops.test_payments) != 0 ||
        shop_set_legal_links(shop, cfg.privacy_url, cfg.terms_url) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        goto out;
    }
    if (ops.test_payments_warn)
        log_msg(LOG_WARN, NULL, "production accepts test payments (AGENTD_ALLOW_TEST_PAYMENTS=1): "
                "mock_payment_handler places orders without a charge");
    agent_metrics_init();
    char pferr[256] = "";
    profiles = profiles_new(cfg.profile_allowlist, NULL, pferr, sizeof pferr);
    if (!profiles) {
        fprintf(stderr, "agentd: %s\n", pferr);
        goto out;
    }
    profiles_set_default(profiles); /* the UCP front negotiates through it */
    agent = (struct agent){ .llm = llm, .shop = shop, .merchant = merchant, .st = store,
                            .tools = tools_definitions(), .system_prompt = prompt,
                            .max_steps = cfg.max_steps, .turn_timeout_ms = cfg.turn_timeout_ms,
                            .history_max_bytes = cfg.history_max_bytes,
                            .busy_policy = cfg.busy_policy, .recovery = cfg.turn_recovery,
                            .turn_token_budget = cfg.turn_token_budget,
                            .daily_token_budget = cfg.daily_token_budget,
                            .daily_cost_budget_micro = cfg.daily_cost_budget_micro,
                            .events = events };
    agent_init(&agent);
    {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/instances", cfg.data_dir);
        int lrc = agent_instance_lock(&agent, dir);
        if (lrc != 0)
            log_msg(LOG_WARN, NULL, "no instance lock in %s (%s): crash recovery falls back to "
                    "pids and leases", dir, strerror(-lrc));
        /* completions a crash left mid-way are known by the same means */
        if (shop_set_instance(shop, agent.instance, lrc == 0 ? dir : NULL) != 0) {
            fprintf(stderr, "agentd: out of memory at start\n");
            goto out;
        }
    }
    agent_ready = 1;
    rn.agent = &agent;
    if (!pool || !rt || ops_routes(rt, &ops) != 0 || testing_routes(rt, &cfg) != 0 ||
        ucp_routes(rt, shop, store, &cfg, cfg.public_url ? cfg.public_url : "http://127.0.0.1") != 0 ||
        chat_routes(rt, &agent, store, events) != 0 ||
        a2a_routes(rt, &agent, store, events,
                   cfg.public_url ? cfg.public_url : "http://127.0.0.1",
                   cfg.env == CONFIG_ENV_PRODUCTION) != 0 || openapi_routes(rt) != 0) {
        fprintf(stderr, "agentd: out of memory at start\n");
        goto out;
    }
    pool_set_default(pool);
    srv = http_server_new(&cfg, rt);
    if (!srv) {
        fprintf(stderr, "agentd: out of memory at start\n");
        goto out;
    }
    ops.srv = srv;
    struct startup_check sc = { .llm = llm, .ops = &ops };
    if (lc.startup_check && !llm_is_builtin(llm))
        atomic_store(&ops.llm_gate, OPS_LLM_GATE_RUNNING); /* not ready until it answers */
    else if (lc.startup_check)
        log_msg(LOG_INFO, NULL, "llm start-up check: the built-in model needs none");
    char err[256];
    if (http_server_start(srv, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, NULL, "%s", err);
        fprintf(stderr, "agentd: %s\n", err);
        goto out;
    }
    struct logline l;
    if (log_begin(&l, LOG_INFO, "listening")) {
        log_str(&l, "host", cfg.host);
        log_int(&l, "port", http_server_port(srv));
        log_int(&l, "threads", cfg.threads);
        log_int(&l, "workers", cfg.workers);
        log_str(&l, "env", cfg.env == CONFIG_ENV_PRODUCTION ? "production" : "development");
        log_str(&l, "version", AGENTD_VERSION);
        log_str(&l, "commit", AGENTD_GIT_COMMIT);
        log_end(&l);
    }
    sc.loop = http_server_loop(srv, 0);
    if (atomic_load(&ops.llm_gate) == OPS_LLM_GATE_RUNNING &&
        loop_post(sc.loop, startup_check_start, &sc) != 0) {
        log_msg(LOG_WARN, NULL, "llm start-up check could not be scheduled");
        atomic_store(&ops.llm_gate, OPS_LLM_GATE_PASSED);
    }
    atomic_store(&ops.warm, 1);
    notify("READY=1");

    rn.base = event_base_new();
    rn.srv = srv;
    struct event *sigs[3] = { 0 };
    const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    if (rn.base) {
        rn.tick = evtimer_new(rn.base, drain_tick, &rn);
        rn.purge = evtimer_new(rn.base, purge_tick, &rn);
        if (rn.purge)
            purge_tick(-1, 0, &rn);
        rn.recover = evtimer_new(rn.base, recover_tick, &rn);
        if (rn.recover)
            recover_tick(-1, 0, &rn);
        for (int i = 0; i < 3; i++) {
            sigs[i] = evsignal_new(rn.base, signums[i], on_signal, &rn);
            if (sigs[i])
                evsignal_add(sigs[i], NULL);
        }
        event_base_loop(rn.base, EVLOOP_NO_EXIT_ON_EMPTY);
    }
    log_msg(LOG_INFO, NULL, "stopped");
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (rn.tick)
        event_free(rn.tick);
    if (rn.purge)
        event_free(rn.purge);
    if (rn.recover)
        event_free(rn.recover);
    if (rn.base)
        event_base_free(rn.base);
    rc = 0;
out:
    if (srv)
        http_server_stop(srv);
    if (agent_ready)
        agent_stop(&agent); /* cancels model calls while the LLM client still exists */
    pool_set_default(NULL);
    pool_free(pool); /* finishes queued jobs; their completions wait in the loops' inboxes */
    llm_free(llm);          /* before the loops' event bases go */
    profiles_set_default(NULL);
    profiles_free(profiles); /* the same: its fetches live on the loops */
    http_server_free(srv);  /* runs late completions, then frees the loops */
    events_free(events);    /* after the loops: wake-ups may sit in their inboxes */
    if (agent_ready)
        agent_destroy(&agent);
    json_decref(agent.tools);
    free(prompt);
    llm_config_free(&lc);
    shop_free(shop);
    merchant_free(merchant);
    store_close(store);
    health_reset();
    router_free(rt);
    metrics_reset();
    config_free(&cfg);
    return rc;
}

/* A command given without its argument: name what is missing. */
static int missing_argument(const char *cmd, const char *what, const char *usage_line)
{
    fprintf(stderr, "agentd %s: missing %s (usage: %s)\n", cmd, what, usage_line);
    return 2;
}

static int unexpected_argument(const char *cmd, const char *arg)
{
    fprintf(stderr, "agentd %s: unexpected argument '%s'\n\n", cmd, arg);
    fputs(usage, stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "backup") == 0) {
        if (argc < 3)
            return missing_argument(cmd, "PATH", "agentd backup PATH");
        return argc > 3 ? unexpected_argument(cmd, argv[3]) : cmd_backup(argv[2]);
    }
    if (strcmp(cmd, "catalog") == 0) {
        if (argc < 3)
            return missing_argument(cmd, "import DIR", "agentd catalog import DIR");
        if (strcmp(argv[2], "import") != 0) {
            fprintf(stderr, "agentd catalog: unknown subcommand '%s' (usage: agentd catalog "
                            "import DIR)\n", argv[2]);
            return 2;
        }
        if (argc < 4)
            return missing_argument("catalog import", "DIR", "agentd catalog import DIR");
        return argc > 4 ? unexpected_argument("catalog import", argv[4])
                        : cmd_catalog_import(argv[3]);
    }
    if (strcmp(cmd, "probe") == 0)
        return cmd_probe(argc - 2, argv + 2);
    if (argc > 2)
        return unexpected_argument(cmd, argv[2]);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate();
    if (strcmp(cmd, "vacuum") == 0)
        return cmd_vacuum();
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve();
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config();
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("agentd %s (%s)\n", AGENTD_VERSION, AGENTD_GIT_COMMIT);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "agentd: unknown command '%s'\n\n", cmd);
    fputs(usage, stderr);
    return 2;
}
