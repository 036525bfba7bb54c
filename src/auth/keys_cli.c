/* `agentd keys create|list|revoke`: API keys in the store serve uses. The
 * key is printed once, alone on the first stdout line; only its hash is kept. */
#include "auth/keys_cli.h"
#include "auth/auth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "store/store.h"

static const char usage_line[] =
    "agentd keys create --principal NAME [--scopes chat,a2a,ucp,admin] | "
    "keys list [--principal NAME] | keys revoke ID | keys rotate-encryption";

/* The audit row of a key operation: the key's id and its principal, never
 * the key. A CLI run has no request id. A failed write is said, not fatal:
 * the key change itself already holds. */
static void audit(struct store *st, const char *action, const char *principal, const char *id)
{
    struct store_audit a = { .principal = (char *)principal, .action = (char *)action,
                             .target = (char *)id, .request_id = "", .outcome = "ok" };
    int rc = store_audit_append(st, &a);
    if (rc != 0)
        fprintf(stderr, "agentd keys: the audit row was not written: %s\n", agentd_err_msg(rc));
}

static int usage(const char *why)
{
    fprintf(stderr, "agentd keys: %s (usage: %s)\n", why, usage_line);
    return 2;
}

static void iso_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* --name VALUE options; returns 0, or 2 after a usage message. */
static int options(int argc, char **argv, const char **principal, const char **scopes)
{
    for (int i = 0; i < argc; i++) {
        const char **slot = strcmp(argv[i], "--principal") == 0            ? principal
                            : scopes && strcmp(argv[i], "--scopes") == 0 ? scopes
                                                                           : NULL;
        if (!slot) {
            char msg[160];
            snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[i]);
            return usage(msg);
        }
        if (i + 1 == argc)
            return usage("an option needs a value");
        *slot = argv[++i];
    }
    return 0;
}

static int create(struct store *st, int argc, char **argv)
{
    const char *principal = NULL, *scopes = NULL;
    int rc = options(argc, argv, &principal, &scopes);
    if (rc)
        return rc;
    if (!principal)
        return usage("--principal NAME is required");
    if (!auth_principal_valid(principal))
        return usage("a principal is 1..100 of A-Z a-z 0-9 . _ @ : - and not 'anonymous'");
    unsigned mask;
    struct agentd_error e = { 0 };
    if (auth_scopes_parse(scopes, &mask, &e) != 0)
        return usage(e.msg);
    char scope_list[64];
    auth_scopes_format(mask, scope_list, sizeof scope_list);

    struct store_principal p = { .id = (char *)principal, .name = (char *)principal };
    rc = store_principal_create(st, &p);
    if (rc != 0 && rc != AGENTD_EEXIST) {
        fprintf(stderr, "agentd keys create: %s\n", agentd_err_msg(rc));
        return 1;
    }
    char key[AUTH_KEY_LEN + 1], id[AUTH_KEY_ID_LEN + 1], hash[65];
    for (int attempt = 0; attempt < 3; attempt++) { /* an id collision: draw again */
        if ((rc = auth_key_generate(key, id)) != 0)
            break;
        store_apikey_hash(key, hash);
        struct store_apikey k = { .id = id, .principal_id = (char *)principal, .hash = hash,
                                  .scopes = scopes ? scope_list : "" };
        if ((rc = store_apikey_create(st, &k)) != AGENTD_EEXIST)
            break;
    }
    if (rc != 0) {
        OPENSSL_cleanse(key, sizeof key);
        fprintf(stderr, "agentd keys create: %s\n", agentd_err_msg(rc));
        return 1;
    }
    printf("%s\n", key);
    printf("id: %s\nprincipal: %s\nscopes: %s\n", id, principal, scope_list);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof key);
    audit(st, "apikey.create", principal, id);
    fputs("agentd keys create: the key is shown only now (only its hash is stored); send it as "
          "Authorization: Bearer <key> or X-API-Key: <key>\n", stderr);
    return 0;
}

static int list(struct store *st, int argc, char **argv)
{
    const char *principal = NULL;
    int rc = options(argc, argv, &principal, NULL);
    if (rc)
        return rc;
    struct store_apikey *v = NULL;
    size_t n = 0;
    if ((rc = store_apikey_list(st, principal, &v, &n)) != 0) {
        fprintf(stderr, "agentd keys list: %s\n", agentd_err_msg(rc));
        return 1;
    }
    printf("ID\tPRINCIPAL\tSCOPES\tCREATED\tREVOKED\n");
    for (size_t i = 0; i < n; i++) {
        char created[32], revoked[32] = "-", scopes[64];
        unsigned mask;
        struct agentd_error e;
        iso_time(v[i].created_at, created, sizeof created);
        if (v[i].revoked_at)
            iso_time(v[i].revoked_at, revoked, sizeof revoked);
        if (auth_scopes_parse(v[i].scopes, &mask, &e) == 0)
            auth_scopes_format(mask, scopes, sizeof scopes);
        else
            snprintf(scopes, sizeof scopes, "invalid");
        printf("%s\t%s\t%s\t%s\t%s\n", v[i].id, v[i].principal_id, scopes, created, revoked);
    }
    store_apikey_list_free(v, n);
    return 0;
}

static int revoke(struct store *st, int argc, char **argv)
{
    if (argc != 1)
        return usage(argc ? "revoke takes one key id" : "missing the key ID");
    struct store_apikey *row = NULL; /* its principal, for the audit row */
    int rc = store_apikey_get(st, argv[0], &row);
    if (rc == 0)
        rc = store_apikey_revoke(st, argv[0]);
    if (rc != 0) {
        store_apikey_free(row);
        if (rc == AGENTD_ENOTFOUND)
            fprintf(stderr, "agentd keys revoke: no active key with id '%.64s'\n", argv[0]);
        else
            fprintf(stderr, "agentd keys revoke: %s\n", agentd_err_msg(rc));
        return 1;
    }
    printf("revoked %s\n", argv[0]);
    audit(st, "apikey.revoke", row->principal_id, row->id);
    store_apikey_free(row);
    return 0;
}

int auth_keys_usage_check(int argc, char **argv)
{
    if (argc < 1)
        return usage("missing a subcommand");
    if (strcmp(argv[0], "create") && strcmp(argv[0], "list") && strcmp(argv[0], "revoke")) {
        char msg[128];
        snprintf(msg, sizeof msg, "unknown subcommand '%.64s'", argv[0]);
        return usage(msg);
    }
    return 0;
}

int auth_keys_command(struct store *st, int argc, char **argv)
{
    int rc = auth_keys_usage_check(argc, argv);
    if (rc)
        return rc;
    if (strcmp(argv[0], "create") == 0)
        return create(st, argc - 1, argv + 1);
    if (strcmp(argv[0], "list") == 0)
        return list(st, argc - 1, argv + 1);
    return revoke(st, argc - 1, argv + 1);
}
