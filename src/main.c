/* agentd command line: serve | migrate | backup | vacuum | catalog import |
 * keys | audit | probe | check-config | version. The server itself is serve.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth/keys_cli.h"
#include "auth/sign.h"
#include "commerce/ucp.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/jsonalloc.h"
#include "core/metrics.h"
#include "core/seal.h"
#include "http/probe.h"
#include "llm/llm_config.h"
#include "serve.h"
#include "shop/addresses.h"
#include "shop/merchant.h"
#include "shop/sealed_doc.h"
#include "store/store.h"
#include "version.h"

extern char **environ; /* the process environment, for unknown-variable checks */

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
    "  keys create --principal NAME [--scopes chat,a2a,ucp,admin]\n"
    "                 make an API key; prints the key alone on the first line (shown once)\n"
    "  keys list [--principal NAME]\n"
    "                 list keys (ids, principals, scopes; never secrets)\n"
    "  keys revoke ID revoke a key at once (every replica sharing the store)\n"
    "  keys rotate-encryption\n"
    "                 re-seal stored payment credentials under AGENTD_ENCRYPTION_KEY (older\n"
    "                 keys in AGENTD_ENCRYPTION_KEYS_OLD); safe to repeat and while serving\n"
    "  audit [--since TIME] [--principal NAME] [--limit N]\n"
    "                 print audit rows as JSON lines, oldest first (TIME: RFC 3339 or a\n"
    "                 duration back from now such as 1h; N: the newest N rows)\n"
    "  check-config   validate the environment, list every problem, print the redacted config\n"
    "  version        print the version and git commit\n"
    "  --help         this text\n"
    "\n"
    "Configuration is read from the environment only; see README.md.\n";

static int cmd_check_config(void)
{
    struct config cfg;
    struct llm_config lc;
    struct config_problems pr = { 0 };
    struct config_seen seen = { 0 };
    int n = config_load(&cfg, config_getenv_seen, &seen, &pr);
    n += llm_config_load(&lc, cfg.env, config_getenv_seen, &seen, &pr);
    n += config_check_unknown(environ, &seen, &pr);
    config_seen_free(&seen);
    struct sign_key *sk = NULL; /* serve refuses a key it cannot sign with */
    struct agentd_error ke = { 0 };
    if (cfg.signing_key && sign_key_load(cfg.signing_key, &sk, &ke) != 0) {
        config_problems_add(&pr, "%s", ke.msg);
        n++;
    }
    sign_key_free(sk);
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

static int cmd_migrate(void)
{
    struct config cfg;
    struct store *st = NULL;
    int rc = 2;
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (serve_store_open(&cfg, &st) == 0) {
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
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (cfg.db && strncmp(cfg.db, "postgres", 8) == 0)
            fprintf(stderr, "agentd: a PostgreSQL database is backed up with its own tools "
                            "(pg_dump, base backups): see docs/deployment.md\n");
        else if (serve_store_open(&cfg, &st) == 0) {
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
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (serve_store_open(&cfg, &st) == 0) {
            struct agentd_error err = { 0 };
            size_t n = 0;
            if (merchant_import(st, cfg.catalog, dir, &n, &err) == 0) {
                printf("imported %zu products from %s into %s\n", n, dir,
                       cfg.catalog ? cfg.catalog : "the store");
                rc = 0;
            } else {
                fprintf(stderr, "agentd: catalog import failed:\n%s\n", err.msg);
            }
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

/* `keys rotate-encryption`: every stored checkout's sealed payment part and
 * every saved address under the current key (docs/security.md, "Payment
 * data at rest"). A running turn's sealed input lives only as long as the
 * turn, so it needs no rotation. Exit 1
 * if any could not be opened (a key missing from AGENTD_ENCRYPTION_KEYS_OLD)
 * or written. */
static int rotate_encryption(const struct config *cfg, struct store *st, int argc)
{
    if (argc != 1) {
        fprintf(stderr, "agentd keys rotate-encryption: takes no arguments\n");
        return 2;
    }
    if (!cfg->encryption_key) {
        fprintf(stderr, "agentd keys rotate-encryption: AGENTD_ENCRYPTION_KEY is not set "
                        "(the key to seal under)\n");
        return 2;
    }
    struct seal_keyring *kr = NULL;
    struct agentd_error e = { 0 };
    struct sealed_rotation r, ra = { 0 };
    int rc = seal_keyring_new(cfg->encryption_key, cfg->encryption_keys_old, &kr, &e);
    if (rc == 0)
        rc = sealed_rotate_all(st, kr, &r, &e);
    if (rc == 0)
        printf("key %s: %zu checkouts: %zu re-sealed, %zu sealed (were plain), %zu already "
               "current, %zu hold none, %zu unreadable (key not configured), %zu failed\n",
               seal_keyring_kid(kr), r.scanned, r.resealed, r.sealed, r.current, r.none,
               r.unreadable, r.failed);
    if (rc == 0)
        rc = shop_addresses_rotate(st, kr, &ra, &e);
    if (rc == 0)
        printf("key %s: %zu saved addresses: %zu re-sealed, %zu already current, %zu unreadable "
               "(key not configured), %zu failed\n", seal_keyring_kid(kr), ra.scanned,
               ra.resealed, ra.current, ra.unreadable, ra.failed);
    if (rc)
        fprintf(stderr, "agentd keys rotate-encryption: %s\n", e.msg);
    seal_keyring_free(kr);
    return rc ? 1 : r.unreadable || r.failed || ra.unreadable || ra.failed ? 1 : 0;
}

static int cmd_keys(int argc, char **argv)
{
    int rotate = argc > 0 && strcmp(argv[0], "rotate-encryption") == 0;
    int rc = rotate ? 0 : auth_keys_usage_check(argc, argv);
    if (rc)
        return rc;
    struct config cfg;
    struct store *st = NULL;
    rc = 2;
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (serve_store_open(&cfg, &st) == 0) {
            rc = rotate ? rotate_encryption(&cfg, st, argc) : auth_keys_command(st, argc, argv);
            store_close(st);
        }
    }
    metrics_reset();
    config_free(&cfg);
    return rc;
}

/* ---- audit ---- */

static const char audit_usage[] =
    "agentd audit [--since RFC3339|DURATION] [--principal NAME] [--limit N]";

static int audit_options(int argc, char **argv, struct store_audit_query *q)
{
    for (int i = 0; i < argc; i += 2) { /* option, value */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t t;
        char *end = NULL;
        long lim = v ? strtol(v, &end, 10) : 0;
        if (!strcmp(argv[i], "--principal") && v)
            q->principal = v;
        else if (!strcmp(argv[i], "--since") && v && ucp_time_parse(v, &t) == 0)
            q->since_ms = t * 1000;
        else if (!strcmp(argv[i], "--since") && v && config_parse_duration(v, &t) == 0)
            q->since_ms = clock_wall_ms() - t;
        else if (!strcmp(argv[i], "--limit") && v && !*end && lim > 0 && lim <= 1000000000)
            q->limit = (int)lim;
        else {
            fprintf(stderr, "agentd audit: %s '%s' (usage: %s)\n",
                    v || argv[i][0] != '-' ? "bad argument" : "missing the value of", argv[i],
                    audit_usage);
            return 2;
        }
    }
    return 0;
}

static int audit_print(const struct store_audit *a)
{
    char ts[40];
    clock_rfc3339_ms(a->ts, ts, sizeof ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "ts", ts, "principal", a->principal,
                          "action", a->action, "target", a->target, "request_id",
                          a->request_id, "outcome", a->outcome, "count", (json_int_t)a->count);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!line)
        return AGENTD_ENOMEM;
    puts(line);
    free(line);
    return 0;
}

/* Reads the store serve writes (AGENTD_DB), so it runs beside a server. */
static int cmd_audit(int argc, char **argv)
{
    struct store_audit_query q = { 0 };
    int rc = audit_options(argc, argv, &q);
    if (rc)
        return rc;
    struct config cfg;
    struct store *st = NULL;
    rc = 2;
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (serve_store_open(&cfg, &st) == 0) {
            struct store_audit *v = NULL;
            size_t n = 0;
            int err = store_audit_list(st, &q, &v, &n);
            for (size_t i = 0; err == 0 && i < n; i++)
                err = audit_print(&v[i]);
            store_audit_list_free(v, n);
            if (err == 0)
                rc = 0;
            else
                fprintf(stderr, "agentd audit: %s\n", agentd_err_msg(err));
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
    if (serve_config_load(&cfg) == 0) {
        rc = 1;
        if (serve_store_open(&cfg, &st) == 0) {
            int total = 0, n = 0, err = 0;
            do {
                err = store_purge_expired(st, SERVE_PURGE_BATCH, &n);
                total += err == 0 ? n : 0;
            } while (err == 0 && n == SERVE_PURGE_BATCH);
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
        } else if (!target && (argv[i][0] == '/' || strncmp(argv[i], "http://", 7) == 0 ||
                               strncmp(argv[i], "https://", 8) == 0)) {
            target = argv[i];
        } else {
            fprintf(stderr, "agentd probe: unexpected argument '%s' (usage: agentd probe "
                            "[PATH|URL] [--timeout DURATION])\n", argv[i]);
            return 2;
        }
    }
    struct http_probe_target t;
    struct agentd_error e = { 0 };
    if (target && target[0] != '/') {
        if (http_probe_parse_url(target, &t, &e) != 0) {
            fprintf(stderr, "agentd probe: %s\n", e.msg);
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
        t.tls = cfg.tls_cert_file != NULL; /* native HTTPS: probe what the listener speaks */
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
    snprintf(url, sizeof url, "%s://%s%s%s:%d%s", t.tls ? "https" : "http", ipv6 ? "[" : "",
             t.host, ipv6 ? "]" : "", t.port, t.path);
    int status = 0;
    char body[512] = "";
    if (http_probe_get(&t, timeout_ms, &status, body, sizeof body, &e) != 0) {
        fprintf(stderr, "agentd probe: %s: %s\n", url, e.msg);
        return 1;
    }
    size_t n = strlen(body);
    while (n && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        body[--n] = 0;
    int ok = status >= 200 && status < 300;
    fprintf(ok ? stdout : stderr, "%s%s: %d %s\n", ok ? "" : "agentd probe: ", url, status, body);
    return ok ? 0 : 1;
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
    jsonalloc_install(); /* before any jansson call */
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
    if (strcmp(cmd, "keys") == 0)
        return cmd_keys(argc - 2, argv + 2);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(argc - 2, argv + 2);
    if (argc > 2)
        return unexpected_argument(cmd, argv[2]);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate();
    if (strcmp(cmd, "vacuum") == 0)
        return cmd_vacuum();
    if (strcmp(cmd, "serve") == 0)
        return serve_run();
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
