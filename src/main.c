/* agentd command line: serve | check-config | version | --help.
 * `serve` wires config, logs, worker pool, routes and the HTTP server, then
 * waits for signals on the main thread: SIGTERM/SIGINT drain, a second one
 * exits at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef AGENTD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "api/ops.h"
#include "api/testing.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "http/router.h"
#include "http/server.h"
#include "version.h"

static const char usage[] =
    "usage: agentd <command>\n"
    "\n"
    "commands:\n"
    "  serve          run the server (configured from AGENTD_* environment variables)\n"
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
    struct config_problems pr = { 0 };
    int n = config_load(&cfg, NULL, NULL, &pr);
    for (int i = 0; i < pr.n; i++)
        printf("problem: %s\n", pr.items[i]);
    config_dump(&cfg, stdout);
    printf("%s\n", n ? "config: INVALID" : "config: ok");
    config_problems_free(&pr);
    config_free(&cfg);
    return n ? 2 : 0;
}

/* ---- serve ---- */

struct runner {
    struct event_base *base;
    struct http_server *srv;
    const struct config *cfg;
    struct event *tick;
    int64_t drain_deadline_ms;
    int signals;
};

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct runner *rn = arg;
    /* done when every reply is finished and its last byte left the socket buffer */
    int64_t left = http_server_inflight(rn->srv) + http_server_unflushed(rn->srv);
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
        log_msg(LOG_INFO, NULL, "SIGHUP: nothing to reload yet");
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
    if (load_config(&cfg) != 0) {
        config_free(&cfg);
        return 2;
    }
    log_set_level((enum log_level)cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (loop_global_init() != 0) {
        fprintf(stderr, "agentd: cannot initialise threading in libevent\n");
        config_free(&cfg);
        return 1;
    }

    struct ops_state ops = { .start_wall_ms = clock_wall_ms(), .start_mono_ms = clock_mono_ms() };
    struct pool *pool = pool_new(cfg.workers, 100000);
    struct router *rt = router_new();
    struct http_server *srv = NULL;
    struct runner rn = { .cfg = &cfg };
    int rc = 1;
    if (!pool || !rt || ops_routes(rt, &ops) != 0 || testing_routes(rt, &cfg) != 0) {
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
    atomic_store(&ops.warm, 1);
    notify("READY=1");

    rn.base = event_base_new();
    rn.srv = srv;
    struct event *sigs[3] = { 0 };
    const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    if (rn.base) {
        rn.tick = evtimer_new(rn.base, drain_tick, &rn);
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
    if (rn.base)
        event_base_free(rn.base);
    rc = 0;
out:
    http_server_free(srv);
    pool_set_default(NULL);
    pool_free(pool);
    router_free(rt);
    metrics_reset();
    config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
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
