/* Store conformance suite: written against store.h only, so every backend
 * runs it unchanged. The backend is a fixture (AGENTD_TEST_STORE, default sqlite);
 * the few backend-specific helpers (an old-schema database, raw row counts)
 * live in the fixture and a test without them skips. */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "store/async.h"
#include "store/migrations.h"
#include "store/migrations.h"
#include "store/store.h"

/* ---- fixture: which backend, a fresh database per test, a fake clock ---- */

struct backend_fixture {
    const char *name;
    /* A URL for a brand-new, empty database that lives under dir. */
    void (*make_url)(const char *dir, const char *name, char *url, size_t len);
    int file_based; /* the database is a file we can damage and copy */
    /* A database at schema version 3 (before turn events and usage) at url,
     * holding session "old" (owner alice) with message 1, running turn
     * "t-old" and its checkpoint step 1 (llm_reply). 0 or -1. */
    int (*make_v3)(const char *url);
    /* Rows physically in a table, expired or not; -1 on error. */
    long (*count_rows)(const char *url, const char *table);
};

static void sqlite_url(const char *dir, const char *name, char *url, size_t len)
{
    /* Nested, so every open also proves the store creates missing dirs. */
    snprintf(url, len, "%s/data/%s.db", dir, name);
}

static int sqlite_make_v3(const char *url)
{
    sqlite3 *db = NULL;
    struct agentd_error err = { 0 };
    int v = 0;
    int rc = sqlite3_open_v2(url, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = migrations_apply_upto(db, 3, &v, &err) == 0 && v == 3 ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
            "INSERT INTO sessions(id, owner, context, created_at, updated_at) "
            "  VALUES('old', 'alice', '{}', 1, 1);"
            "INSERT INTO messages(session_id, seq, role, parts, created_at) "
            "  VALUES('old', 1, 'user', '[\"hi\"]', 1);"
            "INSERT INTO turns(id, session_id, state, created_at, updated_at) "
            "  VALUES('t-old', 'old', 'running', 2, 3);"
            "INSERT INTO checkpoints(turn_id, step, kind, payload, created_at) "
            "  VALUES('t-old', 1, 'llm_reply', '{\"r\":1}', 3);",
            NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "make_v3: %s %s\n", err.msg, db ? sqlite3_errmsg(db) : "");
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static long sqlite_count_rows(const char *url, const char *table)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[128];
    long n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    if (sqlite3_open_v2(url, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* PostgreSQL (AGENTD_TEST_STORE=postgres): AGENTD_TEST_PG_URL names a
 * throw-away cluster (tests/pg/cluster.sh); each URL is a database of its
 * own, created here, named after the test's temp dir and the name. */
static PGconn *pg_admin(void)
{
    const char *base = getenv("AGENTD_TEST_PG_URL");
    PGconn *db = base ? PQconnectdb(base) : NULL;
    if (!db || PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "AGENTD_TEST_PG_URL: cannot connect (%s)\n",
                db ? PQerrorMessage(db) : "unset");
        PQfinish(db);
        return NULL;
    }
    return db;
}

static void pg_url(const char *dir, const char *name, char *url, size_t len)
{
    const char *base = getenv("AGENTD_TEST_PG_URL");
    static atomic_int serial;
    char db[128];
    (void)dir;
    snprintf(db, sizeof db, "t_%d_%d_%s", (int)getpid(), atomic_fetch_add(&serial, 1), name);
    for (char *p = db; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            *p = '_';
    const char *slash = base ? strrchr(base, '/') : NULL;
    snprintf(url, len, "%.*s/%s", slash ? (int)(slash - base) : 0, base ? base : "", db);
    PGconn *admin = pg_admin();
    if (!admin)
        return;
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", db);
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "create database %s: %s\n", db, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(admin);
}

static long pg_count_rows(const char *url, const char *table)
{
    char sql[128];
    long n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    PGconn *db = PQconnectdb(url);
    PGresult *r = PQstatus(db) == CONNECTION_OK ? PQexec(db, sql) : NULL;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(db);
    return n;
}

static const struct backend_fixture backends[] = {
    { "sqlite", sqlite_url, 1, sqlite_make_v3, sqlite_count_rows },
    { "postgres", pg_url, 0, NULL, pg_count_rows },
};

static const struct backend_fixture *backend;

static _Atomic int64_t fake_now = 1700000000000;

static int64_t clock_fake(void *ud)
{
    (void)ud;
    return atomic_load(&fake_now);
}

static void advance(int64_t ms) { atomic_fetch_add(&fake_now, ms); }

struct ctx {
    char dir[256];
    char url[512];
    struct store *s;
};

static int open_with(struct ctx *c, const char *url, int64_t ttl_ms, int readers,
                     struct store **out, struct agentd_error *err)
{
    struct store_options o = {
        .url = url,
        .sync = STORE_SYNC_NORMAL,
        .session_ttl_ms = ttl_ms,
        .readers = readers,
        .now = clock_fake,
    };
    (void)c;
    return store_open(&o, out, err);
}

static void reopen(struct ctx *c, int64_t ttl_ms, int readers)
{
    struct agentd_error err = { 0 };
    store_close(c->s);
    c->s = NULL;
    int rc = open_with(c, c->url, ttl_ms, readers, &c->s, &err);
    if (rc)
        fail_msg("reopen: %s", err.msg);
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-store-XXXXXX");
    if (!mkdtemp(c->dir)) {
        free(c);
        return -1;
    }
    backend->make_url(c->dir, "agentd", c->url, sizeof c->url);
    struct agentd_error err = { 0 };
    if (open_with(c, c->url, 0, 0, &c->s, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = c;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int teardown(void **state)
{
    struct ctx *c = *state;
    store_close(c->s);
    rm_tree(c->dir);
    free(c);
    return 0;
}

#define assert_ok(x) assert_int_equal((x), 0)

/* ---- lifecycle ---- */

static void test_open_creates_dirs_and_migrates(void **state)
{
    struct ctx *c = *state;
    int v = -1;
    assert_ok(store_schema_version(c->s, &v));
    assert_true(v >= 1);
    assert_ok(store_ping(c->s));
    assert_int_equal(store_healthy(c->s), 1);
    if (backend->file_based) {
        struct stat st;
        assert_ok(stat(c->url, &st));
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void test_open_refuses_bad_urls(void **state)
{
    struct ctx *c = *state;
    struct store *s = NULL;
    struct agentd_error err = { 0 };
    assert_int_equal(open_with(c, "", 0, 0, &s, &err), AGENTD_EINVAL);
    /* a PostgreSQL URL whose server does not answer: said so, and the
     * password (a secret) is not in the message */
    assert_int_equal(open_with(c, "postgres://u:s3cretpw@127.0.0.1:1/agentd", 0, 0, &s, &err),
                     AGENTD_EIO);
    assert_non_null(strstr(err.msg, "PostgreSQL"));
    assert_null(strstr(err.msg, "s3cretpw"));
    assert_null(s);
    assert_int_equal(open_with(c, "postgresql://u@127.0.0.1/agentd?bogus_option=1", 0, 0, &s,
                               &err),
                     AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "PostgreSQL"));
    assert_null(s);
}

static void test_migrate_is_idempotent(void **state)
{
    struct ctx *c = *state;
    int v1, v2;
    assert_ok(store_schema_version(c->s, &v1));
    assert_ok(store_meta_set(c->s, "k", "kept"));
    reopen(c, 0, 0); /* each open migrates */
    reopen(c, 0, 0);
    assert_ok(store_schema_version(c->s, &v2));
    assert_int_equal(v1, v2);
    char *val = NULL;
    assert_ok(store_meta_get(c->s, "k", &val));
    assert_string_equal(val, "kept");
    free(val);
}

static void test_newer_schema_is_refused(void **state)
{
    struct ctx *c = *state;
    int v;
    assert_ok(store_schema_version(c->s, &v));
    char newer[16];
    snprintf(newer, sizeof newer, "%d", v + 1);
    assert_ok(store_meta_set(c->s, "schema_version", newer));
    store_close(c->s);
    c->s = NULL;
    struct agentd_error err = { 0 };
    char want[128];
    assert_int_equal(open_with(c, c->url, 0, 0, &c->s, &err), AGENTD_EINVAL);
    assert_null(c->s);
    snprintf(want, sizeof want,
             "database schema version %d is newer than this agentd (max %d); upgrade agentd",
             v + 1, v);
    assert_string_equal(err.msg, want);
}

static void test_corrupt_file_is_refused(void **state)
{
    struct ctx *c = *state;
    if (!backend->file_based)
        skip();
    char url[600];
    backend->make_url(c->dir, "garbage", url, sizeof url);
    FILE *f = fopen(url, "w");
    assert_non_null(f);
    for (int i = 0; i < 512; i++)
        fputs("this is not a database ", f);
    fclose(f);
    struct store *s = NULL;
    struct agentd_error err = { 0 };
    assert_int_equal(open_with(c, url, 0, 0, &s, &err), AGENTD_ECORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "corrupt"));
    assert_non_null(strstr(err.msg, url));
}

static void test_meta(void **state)
{
    struct ctx *c = *state;
    char *v = NULL;
    assert_int_equal(store_meta_get(c->s, "nope", &v), AGENTD_ENOTFOUND);
    assert_ok(store_meta_set(c->s, "a", "1"));
    assert_ok(store_meta_set(c->s, "a", "2"));
    assert_ok(store_meta_get(c->s, "a", &v));
    assert_string_equal(v, "2");
    free(v);
    assert_int_equal(store_meta_set(c->s, "", "x"), AGENTD_EINVAL);
}

/* ---- principals and keys ---- */

static void test_principals_and_apikeys(void **state)
{
    struct ctx *c = *state;
    char hash[65], hash2[65];
    store_apikey_hash("abc", hash);
    assert_string_equal(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    store_apikey_hash("second secret", hash2);

    struct store_apikey k = { .id = "key1", .principal_id = "alice", .hash = hash };
    assert_int_equal(store_apikey_create(c->s, &k), AGENTD_ENOTFOUND);

    struct store_principal p = { .id = "alice", .name = "Alice" };
    assert_ok(store_principal_create(c->s, &p));
    assert_int_equal(p.created_at, atomic_load(&fake_now));
    assert_int_equal(store_principal_create(c->s, &p), AGENTD_EEXIST);
    struct store_principal *got = NULL;
    assert_ok(store_principal_get(c->s, "alice", &got));
    assert_string_equal(got->name, "Alice");
    store_principal_free(got);
    assert_int_equal(store_principal_get(c->s, "bob", &got), AGENTD_ENOTFOUND);

    assert_ok(store_apikey_create(c->s, &k));
    assert_int_equal(store_apikey_create(c->s, &k), AGENTD_EEXIST);
    struct store_apikey k2 = { .id = "key2", .principal_id = "alice", .hash = hash2 };
    advance(1);
    assert_ok(store_apikey_create(c->s, &k2));

    struct store_apikey *found = NULL;
    assert_ok(store_apikey_get_by_hash(c->s, hash, &found));
    assert_string_equal(found->id, "key1");
    assert_string_equal(found->principal_id, "alice");
    assert_int_equal(found->revoked_at, 0);
    store_apikey_free(found);

    assert_ok(store_apikey_revoke(c->s, "key1"));
    assert_int_equal(store_apikey_revoke(c->s, "key1"), AGENTD_ENOTFOUND);
    assert_int_equal(store_apikey_get_by_hash(c->s, hash, &found), AGENTD_ENOTFOUND);

    struct store_apikey *list = NULL;
    size_t n = 0;
    assert_ok(store_apikey_list(c->s, "alice", &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "key1");
    assert_true(list[0].revoked_at > 0);
    assert_string_equal(list[1].id, "key2");
    assert_int_equal(list[1].revoked_at, 0);
    store_apikey_list_free(list, n);

    struct store_apikey bad = { .id = "key3", .principal_id = "alice", .hash = "short" };
    assert_int_equal(store_apikey_create(c->s, &bad), AGENTD_EINVAL);
}

/* By id (the auth gate's lookup: a revoked key is found, with revoked_at, so
 * the refusal can say why), scopes kept, and a listing of every principal. */
static void test_apikey_by_id_scopes_and_list_all(void **state)
{
    struct ctx *c = *state;
    char h1[65], h2[65];
    store_apikey_hash("one", h1);
    store_apikey_hash("two", h2);
    struct store_principal a = { .id = "alice", .name = "alice" }, b = { .id = "bob", .name = "bob" };
    assert_ok(store_principal_create(c->s, &a));
    assert_ok(store_principal_create(c->s, &b));
    struct store_apikey k1 = { .id = "ka", .principal_id = "alice", .hash = h1, .scopes = "chat,ucp" };
    struct store_apikey k2 = { .id = "kb", .principal_id = "bob", .hash = h2 };
    assert_ok(store_apikey_create(c->s, &k1));
    advance(1);
    assert_ok(store_apikey_create(c->s, &k2));

    struct store_apikey *got = NULL;
    assert_ok(store_apikey_get(c->s, "ka", &got));
    assert_string_equal(got->principal_id, "alice");
    assert_string_equal(got->hash, h1);
    assert_string_equal(got->scopes, "chat,ucp");
    assert_int_equal(got->revoked_at, 0);
    store_apikey_free(got);
    assert_ok(store_apikey_get(c->s, "kb", &got));
    assert_string_equal(got->scopes, ""); /* none given: the default set */
    store_apikey_free(got);
    assert_int_equal(store_apikey_get(c->s, "nope", &got), AGENTD_ENOTFOUND);

    advance(1);
    assert_ok(store_apikey_revoke(c->s, "ka"));
    assert_ok(store_apikey_get(c->s, "ka", &got));
    assert_true(got->revoked_at > 0);
    store_apikey_free(got);

    struct store_apikey *list = NULL;
    size_t n = 0;
    assert_ok(store_apikey_list(c->s, NULL, &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "ka");
    assert_string_equal(list[1].id, "kb");
    store_apikey_list_free(list, n);
}

/* ---- sessions and messages ---- */

static void make_session(struct store *s, const char *id)
{
    struct store_session v = { .id = (char *)id, .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(s, &v));
}

static void test_sessions_and_messages(void **state)
{
    struct ctx *c = *state;
    struct store_session v = { .id = "s1", .owner = "alice", .context = "{\"a\":1}" };
    assert_ok(store_session_create(c->s, &v));
    assert_int_equal(v.expires_at, 0); /* no TTL configured */
    assert_int_equal(store_session_create(c->s, &v), AGENTD_EEXIST);

    struct store_session *got = NULL;
    assert_ok(store_session_get(c->s, "s1", &got));
    assert_string_equal(got->owner, "alice");
    assert_string_equal(got->context, "{\"a\":1}");
    store_session_free(got);

    advance(5);
    assert_ok(store_session_update(c->s, "s1", "{\"a\":2}"));
    assert_ok(store_session_get(c->s, "s1", &got));
    assert_string_equal(got->context, "{\"a\":2}");
    assert_int_equal(got->updated_at, got->created_at + 5);
    store_session_free(got);
    assert_int_equal(store_session_update(c->s, "nope", "{}"), AGENTD_ENOTFOUND);

    const char *roles[] = { "user", "agent", "tool" };
    for (int i = 0; i < 3; i++) {
        char parts[64];
        snprintf(parts, sizeof parts, "[{\"text\":\"m%d\"}]", i + 1);
        struct store_message m = { .session_id = "s1", .role = (char *)roles[i], .parts = parts };
        assert_ok(store_message_append(c->s, &m));
        assert_int_equal(m.seq, i + 1);
    }
    struct store_message m = { .session_id = "nope", .role = "user", .parts = "[]" };
    assert_int_equal(store_message_append(c->s, &m), AGENTD_ENOTFOUND);

    struct store_message *list = NULL;
    size_t n = 0;
    assert_ok(store_message_list(c->s, "s1", 0, 0, &list, &n));
    assert_int_equal(n, 3);
    assert_string_equal(list[0].role, "user");
    assert_string_equal(list[2].parts, "[{\"text\":\"m3\"}]");
    store_message_list_free(list, n);
    assert_ok(store_message_list(c->s, "s1", 1, 1, &list, &n));
    assert_int_equal(n, 1);
    assert_int_equal(list[0].seq, 2);
    store_message_list_free(list, n);
    assert_int_equal(store_message_list(c->s, "nope", 0, 0, &list, &n), AGENTD_ENOTFOUND);
    /* the tail: the last ones, in order; more asked than there are: all */
    assert_ok(store_message_tail(c->s, "s1", 2, &list, &n));
    assert_int_equal(n, 2);
    assert_int_equal(list[0].seq, 2);
    assert_int_equal(list[1].seq, 3);
    assert_string_equal(list[1].role, "tool");
    store_message_list_free(list, n);
    assert_ok(store_message_tail(c->s, "s1", 200, &list, &n));
    assert_int_equal(n, 3);
    assert_int_equal(list[0].seq, 1);
    store_message_list_free(list, n);
    assert_int_equal(store_message_tail(c->s, "s1", 0, &list, &n), AGENTD_EINVAL);
    assert_int_equal(store_message_tail(c->s, "nope", 2, &list, &n), AGENTD_ENOTFOUND);

    assert_ok(store_session_delete_idle(c->s, "s1", "alice"));
    assert_int_equal(store_session_delete_idle(c->s, "s1", "alice"), AGENTD_ENOTFOUND);
    assert_int_equal(store_message_list(c->s, "s1", 0, 0, &list, &n), AGENTD_ENOTFOUND);
    /* Its messages went with it: a new session of that id starts empty. */
    make_session(c->s, "s1");
    assert_ok(store_message_list(c->s, "s1", 0, 0, &list, &n));
    assert_int_equal(n, 0);
    store_message_list_free(list, n);
}

/* ---- tasks ---- */

static void test_tasks(void **state)
{
    struct ctx *c = *state;
    struct store_task t = { .id = "t1", .context_id = "s1", .owner = "alice",
                            .state = "submitted", .artifacts = "[]" };
    assert_int_equal(store_task_create(c->s, &t), AGENTD_ENOTFOUND);
    make_session(c->s, "s1");
    assert_ok(store_task_create(c->s, &t));
    assert_int_equal(store_task_create(c->s, &t), AGENTD_EEXIST);
    advance(1);
    struct store_task t2 = { .id = "t2", .context_id = "s1", .owner = "alice",
                             .state = "working", .artifacts = "[]" };
    assert_ok(store_task_create(c->s, &t2));

    assert_ok(store_task_update_if(c->s, "t1", "completed", "[{\"name\":\"order\"}]",
                                   "submitted", "[]"));
    assert_int_equal(store_task_update_if(c->s, "nope", "completed", "[]", "submitted", "[]"),
                     AGENTD_ENOTFOUND);
    struct store_task *got = NULL;
    assert_ok(store_task_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    assert_string_equal(got->artifacts, "[{\"name\":\"order\"}]");
    assert_string_equal(got->context_id, "s1");
    store_task_free(got);
    assert_int_equal(store_task_get(c->s, "nope", &got), AGENTD_ENOTFOUND);

    struct store_task *list = NULL;
    size_t n = 0;
    assert_ok(store_task_list(c->s, "s1", &list, &n));
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, "t1");
    assert_string_equal(list[1].id, "t2");
    store_task_list_free(list, n);
}

/* store_task_accept: the claim, the new context and the task commit
 * together, or nothing does. */
static void test_task_accept_is_one_transaction(void **state)
{
    struct ctx *c = *state;
    int64_t exp = atomic_load(&fake_now) + 60000;
    struct store_idem *ex = (struct store_idem *)1;
    struct store_session ses = { .id = "ctx1", .owner = "alice", .context = "{}" };
    struct store_task t = { .id = "task1", .context_id = "ctx1", .owner = "alice",
                            .state = "working", .artifacts = "{\"n\":1}" };
    struct store_task_accept a = { .principal = "alice", .key = "m1", .fingerprint = "fp1",
                                   .expires_at = exp, .session = &ses, .task = &t };
    assert_ok(store_task_accept(c->s, &a, &ex));
    assert_null(ex);
    assert_true(ses.created_at > 0 && t.created_at == ses.created_at);
    struct store_task *got = NULL;
    assert_ok(store_task_get(c->s, "task1", &got));
    assert_string_equal(got->state, "working");
    assert_string_equal(got->artifacts, "{\"n\":1}");
    store_task_free(got);
    /* the record is done at once, with the task id as its body */
    assert_int_equal(store_idem_begin(c->s, "alice", "m1", "fp1", exp, &ex), AGENTD_EEXIST);
    assert_string_equal(ex->state, STORE_IDEM_DONE);
    assert_int_equal(ex->status, 200);
    assert_string_equal(ex->body, "task1");
    assert_int_equal(ex->body_len, 5);
    store_idem_free(ex);

    /* the key taken: the record comes back and nothing else is written */
    struct store_session ses2 = { .id = "ctx2", .owner = "alice", .context = "{}" };
    struct store_task t2 = { .id = "task2", .context_id = "ctx2", .owner = "alice",
                             .state = "working", .artifacts = "{}" };
    struct store_task_accept a2 = { .principal = "alice", .key = "m1", .fingerprint = "fp2",
                                    .expires_at = exp, .session = &ses2, .task = &t2 };
    assert_int_equal(store_task_accept(c->s, &a2, &ex), AGENTD_EEXIST);
    assert_non_null(ex);
    assert_string_equal(ex->fingerprint, "fp1");
    store_idem_free(ex);
    struct store_session *sg = NULL;
    assert_int_equal(store_session_get(c->s, "ctx2", &sg), AGENTD_ENOTFOUND);
    assert_int_equal(store_task_get(c->s, "task2", &got), AGENTD_ENOTFOUND);

    /* a task id that is taken rolls the claim and the session back */
    a2.key = "m2";
    t2.id = "task1";
    assert_int_equal(store_task_accept(c->s, &a2, &ex), AGENTD_EEXIST);
    assert_null(ex);
    assert_int_equal(store_session_get(c->s, "ctx2", &sg), AGENTD_ENOTFOUND);
    assert_ok(store_idem_begin(c->s, "alice", "m2", "fp2", exp, &ex)); /* m2 is free */
    assert_null(ex);

    /* an update is a compare-and-swap on what the caller read */
    struct store_task up = { .id = "task1", .context_id = "ctx1", .owner = "alice",
                             .state = "input-required", .artifacts = "{\"n\":2}" };
    struct store_task_accept a3 = { .principal = "alice", .key = "m3", .fingerprint = "fp3",
                                    .expires_at = exp, .task = &up, .old_state = "submitted",
                                    .old_artifacts = "{\"n\":1}" };
    assert_int_equal(store_task_accept(c->s, &a3, &ex), AGENTD_ECONFLICT);
    assert_null(ex);
    assert_ok(store_idem_begin(c->s, "alice", "m3", "fp3", exp, &ex)); /* rolled back */
    assert_ok(store_idem_abandon(c->s, "alice", "m3"));
    a3.old_state = "working";
    assert_ok(store_task_accept(c->s, &a3, &ex));
    assert_ok(store_task_get(c->s, "task1", &got));
    assert_string_equal(got->state, "input-required");
    assert_string_equal(got->artifacts, "{\"n\":2}");
    store_task_free(got);

    /* a new task needs a live context */
    struct store_task t4 = { .id = "task4", .context_id = "nope", .owner = "alice",
                             .state = "working", .artifacts = "{}" };
    struct store_task_accept a4 = { .principal = "alice", .key = "m4", .fingerprint = "fp4",
                                    .expires_at = exp, .task = &t4 };
    assert_int_equal(store_task_accept(c->s, &a4, &ex), AGENTD_ENOTFOUND);
    /* and bad arguments are refused */
    a4.old_state = "working";
    assert_int_equal(store_task_accept(c->s, &a4, &ex), AGENTD_EINVAL);

    /* store_idem_drop frees a done record for a new claim */
    assert_ok(store_idem_drop(c->s, "alice", "m3"));
    assert_int_equal(store_idem_drop(c->s, "alice", "m3"), AGENTD_ENOTFOUND);
    assert_ok(store_idem_begin(c->s, "alice", "m3", "fp3", exp, &ex));
    assert_null(ex);

    /* an expired record, and an expired context of the same id, are
     * replaced by a new accept */
    reopen(c, 1000, 0);
    struct store_session s6 = { .id = "ctx6", .owner = "alice", .context = "{}" };
    struct store_task t6 = { .id = "task6", .context_id = "ctx6", .owner = "alice",
                             .state = "working", .artifacts = "{}" };
    struct store_task_accept a6 = { .principal = "alice", .key = "m6", .fingerprint = "fp6",
                                    .expires_at = atomic_load(&fake_now) + 500, .session = &s6,
                                    .task = &t6 };
    assert_ok(store_task_accept(c->s, &a6, &ex));
    advance(2000);
    assert_int_equal(store_task_get(c->s, "task6", &got), AGENTD_ENOTFOUND);
    t6.id = "task7";
    a6.fingerprint = "fp7";
    a6.expires_at = atomic_load(&fake_now) + 500;
    assert_ok(store_task_accept(c->s, &a6, &ex));
    assert_null(ex);
    assert_ok(store_task_get(c->s, "task7", &got));
    assert_string_equal(got->context_id, "ctx6");
    store_task_free(got);
    assert_int_equal(store_idem_begin(c->s, "alice", "m6", "fp7", exp, &ex), AGENTD_EEXIST);
    assert_string_equal(ex->body, "task7");
    store_idem_free(ex);
}

/* One owner's tasks, newest update first, filtered and paged by key. */
static void test_task_list_owner(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    const char *ids[] = { "a", "b", "c", "d" };
    const char *ctxs[] = { "s1", "s1", "s2", "s1" };
    const char *owners[] = { "alice", "alice", "alice", "bob" };
    for (int i = 0; i < 4; i++) {
        advance(1);
        struct store_task t = { .id = (char *)ids[i], .context_id = (char *)ctxs[i],
                                .owner = (char *)owners[i], .state = "input-required",
                                .artifacts = "{}" };
        assert_ok(store_task_create(c->s, &t));
    }
    advance(1);
    assert_ok(store_task_update_if(c->s, "a", "completed", "{}", "input-required", "{}")); /* now the newest */
    struct store_task *v = NULL;
    size_t n = 0;
    struct store_task_query q = { .owner = "alice", .limit = 10 };
    assert_ok(store_task_list_owner(c->s, &q, &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, "a");
    assert_string_equal(v[1].id, "c");
    assert_string_equal(v[2].id, "b");
    /* the next page starts after the last one seen */
    q.limit = 1;
    q.before_updated = v[1].updated_at;
    q.before_id = "c";
    store_task_list_free(v, n);
    assert_ok(store_task_list_owner(c->s, &q, &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "b");
    store_task_list_free(v, n);
    struct store_task_query f = { .owner = "alice", .context_id = "s1",
                                  .state = "input-required", .limit = 10 };
    assert_ok(store_task_list_owner(c->s, &f, &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "b");
    store_task_list_free(v, n);
    struct store_task_query none = { .owner = "carol", .limit = 10 };
    assert_ok(store_task_list_owner(c->s, &none, &v, &n));
    assert_int_equal(n, 0);
    store_task_list_free(v, n);
    /* compare-and-swap on what was read */
    assert_ok(store_task_update_if(c->s, "b", "working", "{\"x\":1}", "input-required", "{}"));
    assert_int_equal(store_task_update_if(c->s, "b", "failed", "{}", "input-required", "{}"),
                     AGENTD_ECONFLICT);
    assert_int_equal(store_task_update_if(c->s, "b", "failed", "{}", "working", "{}"),
                     AGENTD_ECONFLICT);
    assert_int_equal(store_task_update_if(c->s, "nope", "failed", "{}", "working", "{}"),
                     AGENTD_ENOTFOUND);
    struct store_task *b = NULL;
    assert_ok(store_task_get(c->s, "b", &b));
    assert_string_equal(b->state, "working");
    assert_string_equal(b->artifacts, "{\"x\":1}");
    store_task_free(b);
    struct store_task_query bad = { .owner = "alice", .limit = 0 };
    assert_int_equal(store_task_list_owner(c->s, &bad, &v, &n), AGENTD_EINVAL);
    /* a deleted session takes its tasks out of the list */
    assert_ok(store_session_delete_idle(c->s, "s2", "alice"));
    q.limit = 10;
    q.before_id = NULL;
    assert_ok(store_task_list_owner(c->s, &q, &v, &n));
    assert_int_equal(n, 2);
    store_task_list_free(v, n);
}

/* ---- turns and checkpoints ---- */

/* A model call's usage as the runner records it: store_turn_step (the
 * usage, then the heartbeat; a turn no longer running keeps the usage and
 * answers AGENTD_ECONFLICT). */
static int usage_add(struct store *s, const char *turn, const char *principal, const char *model,
                     const struct store_usage *u)
{
    return store_turn_step(s, turn, principal, model, u, NULL);
}

/* A turn's heartbeat alone: a step that cost nothing. */
static int turn_touch(struct store *s, const char *turn, int *interrupt)
{
    static const struct store_usage none = { 0 };
    return store_turn_step(s, turn, "heartbeat", "", &none, interrupt);
}

static void put_checkpoint(struct store *s, const char *turn, int64_t step, const char *kind,
                           int want)
{
    struct store_checkpoint cp = { .turn_id = (char *)turn, .step = step, .kind = (char *)kind,
                                   .payload = "{\"x\":1}" };
    assert_int_equal(store_turn_record(s, &cp, NULL, NULL, 0), want);
}

/* GET /chat/sessions: newest first by keyset, owner's only; DELETE takes
 * the session with its children unless a turn runs in it. */
static void test_session_list_and_delete_idle(void **state)
{
    struct ctx *c = *state;
    const char *ids[] = { "sa", "sc", "sb", "sd" };
    for (int i = 0; i < 4; i++) {
        struct store_session v = { .id = (char *)ids[i], .owner = "alice", .context = "{}" };
        assert_ok(store_session_create(c->s, &v));
        if (i != 1)
            advance(1); /* sc and sb share a created_at: id breaks the tie */
    }
    struct store_session other = { .id = "sz", .owner = "bob", .context = "{}" };
    assert_ok(store_session_create(c->s, &other));

    struct store_session *v = NULL;
    size_t n = 0;
    assert_ok(store_session_list(c->s, "alice", 0, NULL, 3, &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, "sd");
    assert_string_equal(v[1].id, "sc");
    assert_string_equal(v[2].id, "sb");
    int64_t created = v[2].created_at;
    store_session_list_free(v, n);
    assert_ok(store_session_list(c->s, "alice", created, "sb", 3, &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "sa");
    store_session_list_free(v, n);
    assert_ok(store_session_list(c->s, "carol", 0, NULL, 3, &v, &n));
    assert_int_equal(n, 0);
    store_session_list_free(v, n);

    /* a running turn blocks the delete; nothing of the session goes */
    struct store_turn t = { .id = "turn-sd", .session_id = "sd" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_message m = { .session_id = "sd", .role = "user", .parts = "[]" };
    assert_ok(store_message_append(c->s, &m));
    assert_int_equal(store_session_delete_idle(c->s, "sd", "alice"), AGENTD_ECONFLICT);
    struct store_session *got = NULL;
    assert_ok(store_session_get(c->s, "sd", &got));
    store_session_free(got);
    /* another principal's session does not exist for you */
    assert_int_equal(store_session_delete_idle(c->s, "sz", "alice"), AGENTD_ENOTFOUND);
    assert_int_equal(store_session_delete_idle(c->s, "nope", "alice"), AGENTD_ENOTFOUND);

    assert_ok(store_turn_finish_events(c->s, "turn-sd", "completed", NULL, 0));
    assert_ok(store_session_delete_idle(c->s, "sd", "alice"));
    assert_int_equal(store_session_get(c->s, "sd", &got), AGENTD_ENOTFOUND);
    struct store_message *msgs = NULL;
    assert_int_equal(store_message_list(c->s, "sd", 0, 10, &msgs, &n), AGENTD_ENOTFOUND);
    store_message_list_free(msgs, n);
    struct store_turn *tg = NULL;
    assert_int_equal(store_turn_get(c->s, "turn-sd", &tg), AGENTD_ENOTFOUND);
    assert_int_equal(store_session_delete_idle(c->s, "sd", "alice"), AGENTD_ENOTFOUND);
    assert_ok(store_session_get(c->s, "sz", &got));
    store_session_free(got);
}

static void test_turns_and_checkpoints(void **state)
{
    struct ctx *c = *state;
    struct store_turn t = { .id = "turn1", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &t, 0), AGENTD_ENOTFOUND);
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    assert_ok(store_turn_begin(c->s, &t, 0));
    assert_int_equal(store_turn_begin(c->s, &t, 0), AGENTD_EEXIST);
    advance(1);
    struct store_turn t2 = { .id = "turn2", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &t2, 0));

    put_checkpoint(c->s, "turn1", 2, "tool_result", 0);
    put_checkpoint(c->s, "turn1", 1, "llm_reply", 0);
    put_checkpoint(c->s, "turn1", 1, "llm_reply", AGENTD_EEXIST); /* a replayed step */
    put_checkpoint(c->s, "turn1", 3, "thought", AGENTD_EINVAL);
    put_checkpoint(c->s, "turn2", 0, "user_message", 0);
    put_checkpoint(c->s, "nope", 1, "llm_reply", AGENTD_ENOTFOUND);

    struct store_checkpoint *cps = NULL;
    size_t n = 0;
    assert_ok(store_checkpoint_list(c->s, "turn1", &cps, &n));
    assert_int_equal(n, 2);
    assert_int_equal(cps[0].step, 1);
    assert_string_equal(cps[0].kind, "llm_reply");
    assert_int_equal(cps[1].step, 2);
    assert_string_equal(cps[1].kind, "tool_result");
    assert_string_equal(cps[1].payload, "{\"x\":1}");
    store_checkpoint_list_free(cps, n);
    assert_int_equal(store_checkpoint_list(c->s, "nope", &cps, &n), AGENTD_ENOTFOUND);

    struct store_turn *turns = NULL;
    assert_ok(store_turn_list_unfinished(c->s, NULL, &turns, &n));
    assert_int_equal(n, 2);
    assert_string_equal(turns[0].id, "turn1");
    assert_string_equal(turns[0].state, STORE_TURN_RUNNING);
    store_turn_list_free(turns, n);

    assert_ok(store_turn_finish_events(c->s, "turn1", "completed", NULL, 0));
    assert_int_equal(store_turn_finish_events(c->s, "turn1", "failed", NULL, 0), AGENTD_ECONFLICT);
    assert_int_equal(store_turn_finish_events(c->s, "nope", "failed", NULL, 0), AGENTD_ENOTFOUND);
    assert_int_equal(store_turn_finish_events(c->s, "turn2", STORE_TURN_RUNNING, NULL, 0), AGENTD_EINVAL);
    assert_ok(store_turn_list_unfinished(c->s, &(struct store_turn_scan){ .limit = 10 }, &turns,
                                         &n));
    assert_int_equal(n, 1);
    assert_string_equal(turns[0].id, "turn2");
    assert_string_equal(turns[0].session_id, "s2");
    store_turn_list_free(turns, n);
}

/* Recovery pages through running turns (oldest first) and skips its own. */
static void test_turn_scan_pages_and_skips_an_instance(void **state)
{
    struct ctx *c = *state;
    const char *inst[] = { "host/1/a", NULL, "host/2/b", "host/1/a", "host/2/b" };
    char id[16], sid[16];
    for (int i = 0; i < 5; i++) {
        snprintf(sid, sizeof sid, "s%d", i);
        snprintf(id, sizeof id, "turn%d", i);
        make_session(c->s, sid);
        struct store_turn t = { .id = id, .session_id = sid, .instance = (char *)inst[i] };
        assert_ok(store_turn_begin(c->s, &t, 0));
        if (i != 2)
            advance(1); /* turn2 and turn3 share a created_at: the id orders them */
    }
    /* pages of 2, every turn once, in order */
    struct store_turn_scan sc = { .limit = 2 };
    char last[16] = "", seen[64] = "";
    for (int page = 0; page < 4; page++) {
        struct store_turn *v = NULL;
        size_t n = 0;
        assert_ok(store_turn_list_unfinished(c->s, &sc, &v, &n));
        for (size_t i = 0; i < n; i++)
            strcat(seen, v[i].id + 4);
        if (n) {
            snprintf(last, sizeof last, "%s", v[n - 1].id);
            sc.after_id = last;
            sc.after_created = v[n - 1].created_at;
        }
        store_turn_list_free(v, n);
        if (n < 2)
            break;
    }
    assert_string_equal(seen, "01234");
    /* not ours: a NULL instance (an old row) is listed */
    struct store_turn *v = NULL;
    size_t n = 0;
    assert_ok(store_turn_list_unfinished(c->s, &(struct store_turn_scan){ .skip_instance = "host/1/a" },
                                         &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].id, "turn1");
    assert_null(v[0].instance);
    assert_string_equal(v[1].id, "turn2");
    assert_string_equal(v[2].id, "turn4");
    store_turn_list_free(v, n);
}

static const char *turn_state(struct store *s, const char *session_id, const char *id)
{
    static char state[32];
    struct store_turn *v = NULL;
    size_t n = 0;
    state[0] = 0;
    assert_ok(store_turn_list_unfinished(s, NULL, &v, &n));
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, id) == 0 && strcmp(v[i].session_id, session_id) == 0)
            snprintf(state, sizeof state, "%s", v[i].state);
    store_turn_list_free(v, n);
    return state[0] ? state : "not running";
}

/* One running turn per session: the claim. */
static void test_one_running_turn_per_session(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    struct store_turn a = { .id = "a", .session_id = "s1" };
    struct store_turn b = { .id = "b", .session_id = "s1" };
    struct store_turn other = { .id = "other", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &a, 1000));
    assert_int_equal(store_turn_begin(c->s, &b, 1000), AGENTD_ECONFLICT);
    /* different sessions do not block each other */
    assert_ok(store_turn_begin(c->s, &other, 1000));
    /* after finish: free */
    assert_ok(store_turn_finish_events(c->s, "a", "completed", NULL, 0));
    assert_ok(store_turn_begin(c->s, &b, 1000));
    assert_string_equal(turn_state(c->s, "s1", "b"), STORE_TURN_RUNNING);

    /* a touched turn keeps its lease; interrupt marks are seen by touch */
    int intr = -1;
    advance(900);
    assert_ok(turn_touch(c->s, "b", &intr));
    assert_int_equal(intr, 0);
    advance(900); /* 1800 since begin, 900 since the touch */
    struct store_turn d = { .id = "d", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &d, 1000), AGENTD_ECONFLICT);
    assert_ok(store_turn_interrupt(c->s, "s1"));
    assert_ok(turn_touch(c->s, "b", &intr));
    assert_int_equal(intr, 1);
    assert_int_equal(store_turn_interrupt(c->s, "nope"), AGENTD_ENOTFOUND);
    assert_int_equal(turn_touch(c->s, "nope", &intr), AGENTD_ENOTFOUND);

    /* lease expiry (the holder died): the claim fails the stale turn */
    advance(1001);
    assert_ok(store_turn_begin(c->s, &d, 1000));
    assert_string_equal(turn_state(c->s, "s1", "b"), "not running");
    assert_string_equal(turn_state(c->s, "s1", "d"), STORE_TURN_RUNNING);
    assert_int_equal(store_turn_finish_events(c->s, "b", "completed", NULL, 0), AGENTD_ECONFLICT);
    assert_int_equal(turn_touch(c->s, "b", NULL), AGENTD_ECONFLICT);
    /* a fresh turn has no interrupt mark */
    assert_ok(turn_touch(c->s, "d", &intr));
    assert_int_equal(intr, 0);
    /* lease 0: never expires */
    advance(1000000);
    struct store_turn e = { .id = "e", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &e, 0), AGENTD_ECONFLICT);
    assert_int_equal(store_turn_interrupt(c->s, "s2"), 0);
    assert_int_equal(store_turn_finish_events(c->s, "d", "interrupted", NULL, 0), 0);
    assert_int_equal(store_turn_interrupt(c->s, "s1"), AGENTD_ENOTFOUND);
}

#define CLAIM_THREADS 8

struct claim_arg {
    struct store *s;
    pthread_barrier_t *go;
    int id;
    int rc;
};

static void *claim_worker(void *p)
{
    struct claim_arg *a = p;
    char id[16];
    snprintf(id, sizeof id, "race%d", a->id);
    struct store_turn t = { .id = id, .session_id = "s1" };
    pthread_barrier_wait(a->go);
    a->rc = store_turn_begin(a->s, &t, 60000);
    return NULL;
}

static void test_racing_claims_one_wins(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    pthread_t th[CLAIM_THREADS];
    struct claim_arg args[CLAIM_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, CLAIM_THREADS);
    for (int i = 0; i < CLAIM_THREADS; i++) {
        args[i] = (struct claim_arg){ .s = c->s, .go = &go, .id = i };
        assert_ok(pthread_create(&th[i], NULL, claim_worker, &args[i]));
    }
    int won = 0, lost = 0;
    for (int i = 0; i < CLAIM_THREADS; i++) {
        pthread_join(th[i], NULL);
        won += args[i].rc == 0;
        lost += args[i].rc == AGENTD_ECONFLICT;
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(won, 1);
    assert_int_equal(lost, CLAIM_THREADS - 1);
    struct store_turn *v = NULL;
    size_t n = 0;
    assert_ok(store_turn_list_unfinished(c->s, NULL, &v, &n));
    assert_int_equal(n, 1);
    store_turn_list_free(v, n);
}

/* ---- turns: instance, input, adopt, get ---- */

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_turn_begin_stores_instance_and_input(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    int64_t t0 = atomic_load(&fake_now);
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "inst-a",
                            .input = "{\"text\":\"hi\"}", .prompt_tokens = 99, .cost_usd = 9 };
    assert_ok(store_turn_begin(c->s, &t, 0));
    assert_int_equal(t.created_at, t0);
    assert_int_equal(t.prompt_tokens, 0);
    assert_true(t.cost_usd == 0);
    assert_null(t.owner); /* read-only: begin never hands out memory */

    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->id, "t1");
    assert_string_equal(got->session_id, "s1");
    assert_string_equal(got->state, STORE_TURN_RUNNING);
    assert_string_equal(got->owner, "alice");
    assert_string_equal(got->instance, "inst-a");
    assert_string_equal(got->input, "{\"text\":\"hi\"}");
    assert_int_equal(got->prompt_tokens, 0);
    assert_int_equal(got->completion_tokens, 0);
    assert_true(got->cost_usd == 0);
    assert_int_equal(got->created_at, t0);
    assert_int_equal(got->updated_at, t0);
    store_turn_free(got);

    /* instance and input may be NULL */
    struct store_turn t2 = { .id = "t2", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &t2, 0));
    assert_ok(store_turn_get(c->s, "t2", &got));
    assert_null(got->instance);
    assert_null(got->input);
    assert_string_equal(got->owner, "alice");
    store_turn_free(got);

    /* the resume list carries the same fields */
    struct store_turn *v = NULL;
    size_t n = 0;
    assert_ok(store_turn_list_unfinished(c->s, NULL, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "t1");
    assert_string_equal(v[0].owner, "alice");
    assert_string_equal(v[0].instance, "inst-a");
    assert_string_equal(v[0].input, "{\"text\":\"hi\"}");
    assert_string_equal(v[1].id, "t2");
    assert_null(v[1].instance);
    assert_null(v[1].input);
    store_turn_list_free(v, n);

    /* finish drops the input (it may hold payment data), keeps the rest */
    advance(5);
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", NULL, 0));
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    assert_null(got->input);
    assert_string_equal(got->instance, "inst-a");
    assert_int_equal(got->updated_at, t0 + 5);
    store_turn_free(got);

    assert_int_equal(store_turn_get(c->s, "nope", &got), AGENTD_ENOTFOUND);
    assert_int_equal(store_turn_get(c->s, NULL, &got), AGENTD_EINVAL);
    assert_int_equal(store_turn_get(c->s, "t1", NULL), AGENTD_EINVAL);
    store_turn_free(NULL);
    /* a turn goes with its session (deleted once idle) */
    assert_ok(store_turn_finish_events(c->s, "t2", "failed", NULL, 0));
    assert_ok(store_session_delete_idle(c->s, "s2", "alice"));
    assert_int_equal(store_turn_get(c->s, "t2", &got), AGENTD_ENOTFOUND);
}

static const char *turn_instance(struct store *s, const char *id)
{
    static char inst[32];
    struct store_turn *t = NULL;
    assert_ok(store_turn_get(s, id, &t));
    snprintf(inst, sizeof inst, "%s", t->instance ? t->instance : "(null)");
    store_turn_free(t);
    return inst;
}

static void test_turn_adopt_is_a_compare_and_swap(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    int64_t t0 = atomic_load(&fake_now);
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "dead" };
    assert_ok(store_turn_begin(c->s, &t, 1000));
    advance(10);
    assert_int_equal(store_turn_adopt(c->s, "t1", "other", "me"), AGENTD_ECONFLICT);
    assert_int_equal(store_turn_adopt(c->s, "t1", NULL, "me"), AGENTD_ECONFLICT);
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->instance, "dead");
    assert_int_equal(got->updated_at, t0); /* a lost CAS writes nothing */
    store_turn_free(got);

    assert_ok(store_turn_adopt(c->s, "t1", "dead", "me"));
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->instance, "me");
    assert_int_equal(got->updated_at, t0 + 10);
    assert_string_equal(got->state, STORE_TURN_RUNNING);
    store_turn_free(got);
    /* a second adopter that still saw the dead instance loses */
    assert_int_equal(store_turn_adopt(c->s, "t1", "dead", "me2"), AGENTD_ECONFLICT);
    assert_string_equal(turn_instance(c->s, "t1"), "me");
    assert_int_equal(store_turn_adopt(c->s, "nope", "dead", "me"), AGENTD_ENOTFOUND);

    /* adopting renews the lease: 1005 ms after begin, 995 after the adopt */
    advance(995);
    struct store_turn other = { .id = "t-other", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &other, 1000), AGENTD_ECONFLICT);

    /* NULL matches a NULL instance only */
    struct store_turn u = { .id = "t2", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &u, 0));
    assert_int_equal(store_turn_adopt(c->s, "t2", "x", "me"), AGENTD_ECONFLICT);
    assert_ok(store_turn_adopt(c->s, "t2", NULL, "me"));
    assert_string_equal(turn_instance(c->s, "t2"), "me");
    assert_int_equal(store_turn_adopt(c->s, "t2", NULL, "again"), AGENTD_ECONFLICT);

    /* a finished turn is not adopted */
    assert_ok(store_turn_finish_events(c->s, "t2", "failed", NULL, 0));
    assert_int_equal(store_turn_adopt(c->s, "t2", "me", "again"), AGENTD_ECONFLICT);
    assert_int_equal(store_turn_adopt(c->s, NULL, "me", "again"), AGENTD_EINVAL);
}

#define ADOPT_THREADS 8

struct adopt_arg {
    struct store *s;
    pthread_barrier_t *go;
    char name[16];
    int rc;
};

static void *adopt_worker(void *p)
{
    struct adopt_arg *a = p;
    pthread_barrier_wait(a->go);
    a->rc = store_turn_adopt(a->s, "orphan", "dead", a->name);
    return NULL;
}

static void test_racing_adopts_one_wins(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_turn t = { .id = "orphan", .session_id = "s1", .instance = "dead" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    pthread_t th[ADOPT_THREADS];
    struct adopt_arg args[ADOPT_THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, ADOPT_THREADS);
    for (int i = 0; i < ADOPT_THREADS; i++) {
        args[i] = (struct adopt_arg){ .s = c->s, .go = &go, .rc = -1 };
        snprintf(args[i].name, sizeof args[i].name, "replica%d", i);
        assert_ok(pthread_create(&th[i], NULL, adopt_worker, &args[i]));
    }
    int won = -1, lost = 0;
    for (int i = 0; i < ADOPT_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (args[i].rc == 0) {
            assert_int_equal(won, -1);
            won = i;
        }
        lost += args[i].rc == AGENTD_ECONFLICT;
    }
    pthread_barrier_destroy(&go);
    assert_true(won >= 0);
    assert_int_equal(lost, ADOPT_THREADS - 1);
    assert_string_equal(turn_instance(c->s, "orphan"), args[won].name);
}

/* ---- turn steps and events ---- */

static size_t count_messages(struct store *s, const char *session_id)
{
    struct store_message *v = NULL;
    size_t n = 0;
    assert_ok(store_message_list(s, session_id, 0, 0, &v, &n));
    store_message_list_free(v, n);
    return n;
}

static size_t count_events(struct store *s, const char *session_id)
{
    struct store_event *v = NULL;
    size_t n = 0;
    assert_ok(store_event_list(s, session_id, 0, 0, &v, &n));
    store_event_list_free(v, n);
    return n;
}

static size_t count_checkpoints(struct store *s, const char *turn_id)
{
    struct store_checkpoint *v = NULL;
    size_t n = 0;
    assert_ok(store_checkpoint_list(s, turn_id, &v, &n));
    store_checkpoint_list_free(v, n);
    return n;
}

static struct store_event event(const char *session, const char *turn, const char *type,
                                const char *data)
{
    return (struct store_event){ .session_id = (char *)session, .turn_id = (char *)turn,
                                 .type = (char *)type, .data = (char *)data, .seq = -7 };
}

static void test_turn_record_is_one_transaction(void **state)
{
    struct ctx *c = *state;
    reopen(c, 100000, 0); /* a TTL, to see the step push the session's expiry */
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    struct store_message pre = { .session_id = "s1", .role = "user", .parts = "[]" };
    assert_ok(store_message_append(c->s, &pre));
    struct store_turn t = { .id = "t1", .session_id = "s1" };
    assert_ok(store_turn_begin(c->s, &t, 1000));
    advance(900);
    int64_t now = atomic_load(&fake_now);

    struct store_checkpoint cp = { .turn_id = "t1", .step = 0, .kind = "user_message",
                                   .payload = "{\"text\":\"hi\"}" };
    struct store_message m = { .session_id = "s1", .role = "user",
                               .parts = "[{\"text\":\"hi\"}]", .seq = -7 };
    struct store_event ev[2] = { event("s1", "t1", "turn-started", "{}"),
                                 event("s1", "t1", "text-delta", "{\"t\":\"a\"}") };
    assert_ok(store_turn_record(c->s, &cp, &m, ev, 2));
    assert_int_equal(cp.created_at, now);
    assert_int_equal(m.seq, 2); /* numbered with store_message_append's */
    assert_int_equal(m.created_at, now);
    assert_int_equal(ev[0].seq, 1);
    assert_int_equal(ev[1].seq, 2);
    assert_int_equal(ev[0].created_at, now);
    assert_int_equal(ev[1].created_at, now);

    /* the heartbeat and the session's expiry moved */
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_int_equal(got->updated_at, now);
    store_turn_free(got);
    struct store_session *sess = NULL;
    assert_ok(store_session_get(c->s, "s1", &sess));
    assert_int_equal(sess->expires_at, now + 100000);
    store_session_free(sess);
    advance(900); /* 1800 ms after begin, 900 after the step: the lease holds */
    struct store_turn rival = { .id = "rival", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &rival, 1000), AGENTD_ECONFLICT);

    struct store_checkpoint *cps = NULL;
    size_t n = 0;
    assert_ok(store_checkpoint_list(c->s, "t1", &cps, &n));
    assert_int_equal(n, 1);
    assert_int_equal(cps[0].step, 0);
    assert_string_equal(cps[0].kind, "user_message");
    assert_string_equal(cps[0].payload, "{\"text\":\"hi\"}");
    store_checkpoint_list_free(cps, n);
    struct store_message *msgs = NULL;
    assert_ok(store_message_list(c->s, "s1", 1, 0, &msgs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(msgs[0].parts, "[{\"text\":\"hi\"}]");
    store_message_list_free(msgs, n);
    assert_int_equal(count_events(c->s, "s1"), 2);

    /* a replay writes nothing and fills nothing */
    struct store_message m2 = { .session_id = "s1", .role = "user", .parts = "[]", .seq = -7 };
    struct store_event ev2[1] = { event("s1", "t1", "turn-started", "{}") };
    assert_int_equal(store_turn_record(c->s, &cp, &m2, ev2, 1), AGENTD_EEXIST);
    assert_int_equal(m2.seq, -7);
    assert_int_equal(ev2[0].seq, -7);
    assert_int_equal(count_messages(c->s, "s1"), 2);
    assert_int_equal(count_events(c->s, "s1"), 2);
    assert_int_equal(count_checkpoints(c->s, "t1"), 1);

    /* a step may carry no message and no events */
    struct store_checkpoint cp1 = { .turn_id = "t1", .step = 1, .kind = "llm_reply",
                                    .payload = "{}" };
    assert_ok(store_turn_record(c->s, &cp1, NULL, NULL, 0));
    assert_int_equal(count_checkpoints(c->s, "t1"), 2);

    /* a step never writes into another session: rejected whole */
    struct store_checkpoint cp2 = { .turn_id = "t1", .step = 2, .kind = "tool_result",
                                    .payload = "{}" };
    struct store_message elsewhere = { .session_id = "s2", .role = "tool", .parts = "[]" };
    assert_int_equal(store_turn_record(c->s, &cp2, &elsewhere, NULL, 0), AGENTD_EINVAL);
    struct store_event ev_else[2] = { event("s1", "t1", "tool-result", "{}"),
                                      event("s2", "t1", "tool-result", "{}") };
    assert_int_equal(store_turn_record(c->s, &cp2, NULL, ev_else, 2), AGENTD_EINVAL);
    assert_int_equal(count_checkpoints(c->s, "t1"), 2);
    assert_int_equal(count_messages(c->s, "s2"), 0);
    assert_int_equal(count_events(c->s, "s1"), 2);
    assert_int_equal(count_events(c->s, "s2"), 0);

    /* bad arguments */
    struct store_checkpoint thought = { .turn_id = "t1", .step = 2, .kind = "thought",
                                        .payload = "{}" };
    assert_int_equal(store_turn_record(c->s, &thought, NULL, NULL, 0), AGENTD_EINVAL);
    assert_int_equal(store_turn_record(c->s, &cp2, NULL, NULL, 1), AGENTD_EINVAL);
    struct store_event untyped = event("s1", "t1", NULL, "{}");
    assert_int_equal(store_turn_record(c->s, &cp2, NULL, &untyped, 1), AGENTD_EINVAL);
    struct store_message roleless = { .session_id = "s1", .role = "", .parts = "[]" };
    assert_int_equal(store_turn_record(c->s, &cp2, &roleless, NULL, 0), AGENTD_EINVAL);
    assert_int_equal(store_turn_record(c->s, NULL, NULL, NULL, 0), AGENTD_EINVAL);
    struct store_checkpoint ghost = { .turn_id = "nope", .step = 0, .kind = "llm_reply",
                                      .payload = "{}" };
    assert_int_equal(store_turn_record(c->s, &ghost, NULL, NULL, 0), AGENTD_ENOTFOUND);

    /* a finished turn takes no more steps; nothing of the step is written */
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", NULL, 0));
    struct store_message m3 = { .session_id = "s1", .role = "agent", .parts = "[]", .seq = -7 };
    struct store_event ev3[1] = { event("s1", "t1", "text-delta", "{}") };
    assert_int_equal(store_turn_record(c->s, &cp2, &m3, ev3, 1), AGENTD_ECONFLICT);
    assert_int_equal(m3.seq, -7);
    assert_int_equal(ev3[0].seq, -7);
    assert_int_equal(count_checkpoints(c->s, "t1"), 2);
    assert_int_equal(count_messages(c->s, "s1"), 2);
    assert_int_equal(count_events(c->s, "s1"), 2);
    /* ...but a replay of a step it did take still reads as a replay */
    assert_int_equal(store_turn_record(c->s, &cp, NULL, NULL, 0), AGENTD_EEXIST);
}

static void test_event_seq_and_paging(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    int64_t now = atomic_load(&fake_now);
    struct store_event a[3] = { event("s1", "t1", "turn-started", "{}"),
                                event("s1", "t1", "text-delta", "{\"t\":\"a\"}"),
                                event("s1", "t1", "text-delta", "{\"t\":\"b\"}") };
    assert_ok(store_event_append(c->s, a, 3));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(a[i].seq, i + 1);
        assert_int_equal(a[i].created_at, now);
    }
    /* per session: another session counts from 1 */
    struct store_event b[2] = { event("s2", "t2", "turn-started", "{}"),
                                event("s2", "t2", "turn-completed", "{}") };
    assert_ok(store_event_append(c->s, b, 2));
    assert_int_equal(b[0].seq, 1);
    assert_int_equal(b[1].seq, 2);
    advance(1);
    struct store_event d = event("s1", NULL, "checkout-updated", "{\"id\":\"co1\"}");
    assert_ok(store_event_append(c->s, &d, 1));
    assert_int_equal(d.seq, 4);

    assert_ok(store_event_append(c->s, NULL, 0));
    /* a batch is whole: one unknown session and nothing is appended */
    struct store_event mixed[2] = { event("s1", "t1", "text-delta", "{}"),
                                    event("nope", "t1", "text-delta", "{}") };
    assert_int_equal(store_event_append(c->s, mixed, 2), AGENTD_ENOTFOUND);
    assert_int_equal(mixed[0].seq, -7);
    assert_int_equal(count_events(c->s, "s1"), 4);
    struct store_event bad = event(NULL, "t1", "x", "{}");
    assert_int_equal(store_event_append(c->s, &bad, 1), AGENTD_EINVAL);
    bad = event("s1", "t1", NULL, "{}");
    assert_int_equal(store_event_append(c->s, &bad, 1), AGENTD_EINVAL);
    bad = event("s1", "t1", "", "{}");
    assert_int_equal(store_event_append(c->s, &bad, 1), AGENTD_EINVAL);
    bad = event("s1", "t1", "x", NULL);
    assert_int_equal(store_event_append(c->s, &bad, 1), AGENTD_EINVAL);
    assert_int_equal(store_event_append(c->s, NULL, 1), AGENTD_EINVAL);

    struct store_event *v = NULL;
    size_t n = 0;
    assert_ok(store_event_list(c->s, "s1", 0, 0, &v, &n));
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i].seq, (int64_t)i + 1);
    assert_string_equal(v[0].session_id, "s1");
    assert_string_equal(v[0].turn_id, "t1");
    assert_string_equal(v[0].type, "turn-started");
    assert_string_equal(v[1].data, "{\"t\":\"a\"}");
    assert_int_equal(v[0].created_at, now);
    assert_null(v[3].turn_id);
    assert_string_equal(v[3].type, "checkout-updated");
    assert_int_equal(v[3].created_at, now + 1);
    store_event_list_free(v, n);

    assert_ok(store_event_list(c->s, "s1", 2, 0, &v, &n));
    assert_int_equal(n, 2);
    assert_int_equal(v[0].seq, 3);
    assert_int_equal(v[1].seq, 4);
    store_event_list_free(v, n);
    assert_ok(store_event_list(c->s, "s1", 1, 2, &v, &n));
    assert_int_equal(n, 2);
    assert_int_equal(v[0].seq, 2);
    assert_int_equal(v[1].seq, 3);
    store_event_list_free(v, n);
    assert_ok(store_event_list(c->s, "s1", 4, 0, &v, &n)); /* caught up: empty, not an error */
    assert_int_equal(n, 0);
    store_event_list_free(v, n);
    assert_ok(store_event_list(c->s, "s1", 0, -1, &v, &n));
    assert_int_equal(n, 4);
    store_event_list_free(v, n);
    assert_int_equal(count_events(c->s, "s2"), 2);
    assert_int_equal(store_event_list(c->s, "nope", 0, 0, &v, &n), AGENTD_ENOTFOUND);
    assert_int_equal(store_event_list(c->s, NULL, 0, 0, &v, &n), AGENTD_EINVAL);
    store_event_list_free(NULL, 0);
}

static long raw_rows(struct ctx *c, const char *table)
{
    return backend->count_rows ? backend->count_rows(c->url, table) : -1;
}

static void test_events_go_with_their_session(void **state)
{
    struct ctx *c = *state;
    reopen(c, 1000, 0);
    int64_t t0 = atomic_load(&fake_now);
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    struct store_event a[2] = { event("s1", "t", "text-delta", "{}"),
                                event("s1", "t", "text-delta", "{}") };
    assert_ok(store_event_append(c->s, a, 2));
    struct store_event b = event("s2", "t", "text-delta", "{}");
    assert_ok(store_event_append(c->s, &b, 1));

    /* an event is a write to its session: it slides the expiry (of each
     * session in a batch) */
    advance(600);
    struct store_event both[2] = { event("s1", "t", "turn-completed", "{}"),
                                   event("s2", "t", "turn-completed", "{}") };
    assert_ok(store_event_append(c->s, both, 2));
    assert_int_equal(both[0].seq, 3);
    assert_int_equal(both[1].seq, 2);
    struct store_session *sess = NULL;
    assert_ok(store_session_get(c->s, "s1", &sess));
    assert_int_equal(sess->expires_at, t0 + 1600);
    store_session_free(sess);
    assert_ok(store_session_get(c->s, "s2", &sess));
    assert_int_equal(sess->expires_at, t0 + 1600);
    store_session_free(sess);
    struct store_event a3 = event("s1", "t", "turn-completed", "{}");

    /* deleted with the session */
    assert_ok(store_session_delete_idle(c->s, "s2", "alice"));
    struct store_event *v = NULL;
    size_t n = 0;
    assert_int_equal(store_event_list(c->s, "s2", 0, 0, &v, &n), AGENTD_ENOTFOUND);
    if (backend->count_rows)
        assert_int_equal(raw_rows(c, "events"), 3);
    make_session(c->s, "s2"); /* expires at t0 + 1600 too */
    assert_int_equal(count_events(c->s, "s2"), 0);
    assert_ok(store_event_append(c->s, &b, 1));
    assert_int_equal(b.seq, 1);

    /* expired: invisible at once, then purged with the session */
    advance(1000);
    assert_int_equal(store_event_list(c->s, "s1", 0, 0, &v, &n), AGENTD_ENOTFOUND);
    assert_int_equal(store_event_append(c->s, &a3, 1), AGENTD_ENOTFOUND);
    if (backend->count_rows)
        assert_int_equal(raw_rows(c, "events"), 4);
    int purged = 0;
    assert_ok(store_purge_expired(c->s, 100, &purged));
    assert_int_equal(purged, 2); /* the two sessions; their events went with them */
    if (backend->count_rows)
        assert_int_equal(raw_rows(c, "events"), 0);
    make_session(c->s, "s1");
    assert_int_equal(count_events(c->s, "s1"), 0);
}

/* ---- usage ---- */

static void assert_usage(const struct store_usage *u, int64_t prompt, int64_t completion,
                         double cost, int64_t calls)
{
    assert_int_equal(u->prompt_tokens, prompt);
    assert_int_equal(u->completion_tokens, completion);
    if (!near(u->cost_usd, cost))
        fail_msg("cost %.12f, want %.12f", u->cost_usd, cost);
    assert_int_equal(u->calls, calls);
}

static int64_t today(void) { return atomic_load(&fake_now) / 86400000; }

static void test_usage_sums_per_turn_session_and_day(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    make_session(c->s, "s3");
    struct store_turn t1 = { .id = "t1", .session_id = "s1" };
    struct store_turn t2 = { .id = "t2", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &t1, 0));
    assert_ok(store_turn_begin(c->s, &t2, 0));
    /* to the last millisecond of a UTC day */
    advance(86400000 - atomic_load(&fake_now) % 86400000 - 1);
    int64_t d0 = today();

    struct store_usage a = { 10, 5, 0.01, 1 }, b = { 1, 2, 0.5, 1 }, z = { 100, 0, 0, 1 };
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));
    assert_ok(usage_add(c->s, "t1", "alice", "claude", &b));
    assert_ok(usage_add(c->s, "t2", "alice", NULL, &z)); /* model "" */

    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_int_equal(got->prompt_tokens, 21);
    assert_int_equal(got->completion_tokens, 12);
    assert_true(near(got->cost_usd, 0.52));
    store_turn_free(got);

    struct store_usage u;
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 21, 12, 0.52, 3);
    assert_ok(store_usage_session(c->s, "s2", &u));
    assert_usage(&u, 100, 0, 0, 1);
    assert_ok(store_usage_session(c->s, "s3", &u)); /* no turns: zeros */
    assert_usage(&u, 0, 0, 0, 0);
    assert_int_equal(store_usage_session(c->s, "nope", &u), AGENTD_ENOTFOUND);

    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 121, 12, 0.52, 4);
    assert_ok(store_usage_day(c->s, "bob", d0, &u));
    assert_usage(&u, 0, 0, 0, 0);
    assert_ok(store_usage_day(c->s, "alice", d0 - 1, &u));
    assert_usage(&u, 0, 0, 0, 0);

    /* no such turn: nothing is added anywhere */
    assert_int_equal(usage_add(c->s, "nope", "alice", "gpt", &a), AGENTD_ENOTFOUND);
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 121, 12, 0.52, 4);

    /* bad arguments */
    struct store_usage neg = { -1, 0, 0, 1 }, nan_cost = { 1, 1, NAN, 1 },
                       neg_cost = { 1, 1, -0.5, 1 };
    assert_int_equal(usage_add(c->s, "t1", NULL, "gpt", &a), AGENTD_EINVAL);
    assert_int_equal(usage_add(c->s, NULL, "alice", "gpt", &a), AGENTD_EINVAL);
    assert_int_equal(usage_add(c->s, "t1", "alice", "gpt", NULL), AGENTD_EINVAL);
    assert_int_equal(usage_add(c->s, "t1", "alice", "gpt", &neg), AGENTD_EINVAL);
    assert_int_equal(usage_add(c->s, "t1", "alice", "gpt", &nan_cost), AGENTD_EINVAL);
    assert_int_equal(usage_add(c->s, "t1", "alice", "gpt", &neg_cost), AGENTD_EINVAL);
    assert_int_equal(store_usage_day(c->s, NULL, d0, &u), AGENTD_EINVAL);
    assert_int_equal(store_usage_session(c->s, "s1", NULL), AGENTD_EINVAL);

    /* a call that ends after its turn finished still counts (the turn no
     * longer runs: the step answers so, and keeps the usage) */
    assert_ok(store_turn_finish_events(c->s, "t2", "completed", NULL, 0));
    assert_int_equal(usage_add(c->s, "t2", "bob", "gpt", &a), AGENTD_ECONFLICT);
    assert_ok(store_usage_session(c->s, "s2", &u));
    assert_usage(&u, 110, 5, 0.01, 2);
    assert_ok(store_usage_day(c->s, "bob", d0, &u));
    assert_usage(&u, 10, 5, 0.01, 1);

    /* the next millisecond is the next UTC day: a fresh total */
    advance(1);
    assert_int_equal(today(), d0 + 1);
    assert_ok(store_usage_day(c->s, "alice", d0 + 1, &u));
    assert_usage(&u, 0, 0, 0, 0);
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));
    assert_ok(store_usage_day(c->s, "alice", d0 + 1, &u));
    assert_usage(&u, 10, 5, 0.01, 1);
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 121, 12, 0.52, 4);
    assert_ok(store_usage_session(c->s, "s1", &u)); /* a session's total spans days */
    assert_usage(&u, 31, 17, 0.53, 4);
}

/* ---- folded writes: a model call's bookkeeping, a turn's last events ---- */

/* A model step and its reply in one transaction: written when the turn
 * runs; when it is asked to stop, or no longer runs, or the record fails,
 * nothing of the reply is written but the usage always is. */
static void test_turn_step_record(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_turn t = { .id = "t1", .session_id = "s1" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_usage a = { 10, 5, 0.25, 1 };
    struct store_checkpoint cp = { .turn_id = "t1", .step = 1, .kind = "llm_reply",
                                   .payload = "{\"role\":\"assistant\",\"content\":\"hi\"}" };
    struct store_message m = { .session_id = "s1", .role = "assistant", .parts = cp.payload };
    struct store_event ev = { .session_id = "s1", .turn_id = "t1", .type = "text-delta",
                              .data = "{\"text\":\"hi\"}" };
    int intr = -1;
    assert_ok(store_turn_step_record(c->s, "t1", "alice", "gpt", &a, &intr, &cp, &m, &ev, 1));
    assert_int_equal(intr, 0);
    assert_int_equal(m.seq, 1);
    assert_true(ev.seq >= 1);
    struct store_message *msgs = NULL;
    size_t n = 0;
    assert_ok(store_message_list(c->s, "s1", 0, 0, &msgs, &n));
    assert_int_equal(n, 1);
    store_message_list_free(msgs, n);
    struct store_usage u;
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 10, 5, 0.25, 1);

    /* the same step again: the record fails (EEXIST), the usage stays */
    assert_int_equal(store_turn_step_record(c->s, "t1", "alice", "gpt", &a, &intr, &cp, &m, &ev, 1),
                     AGENTD_EEXIST);
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 20, 10, 0.5, 2);
    assert_ok(store_message_list(c->s, "s1", 0, 0, &msgs, &n));
    assert_int_equal(n, 1);
    store_message_list_free(msgs, n);

    /* asked to stop: 0 with the mark, nothing recorded, usage kept */
    assert_ok(store_turn_interrupt(c->s, "s1"));
    cp.step = 2;
    intr = 0;
    assert_ok(store_turn_step_record(c->s, "t1", "alice", "gpt", &a, &intr, &cp, &m, &ev, 1));
    assert_int_equal(intr, 1);
    assert_ok(store_message_list(c->s, "s1", 0, 0, &msgs, &n));
    assert_int_equal(n, 1);
    store_message_list_free(msgs, n);
    struct store_checkpoint *cps = NULL;
    assert_ok(store_checkpoint_list(c->s, "t1", &cps, &n));
    assert_int_equal(n, 1);
    store_checkpoint_list_free(cps, n);

    /* no longer running: AGENTD_ECONFLICT, usage kept, nothing recorded */
    assert_ok(store_turn_finish_events(c->s, "t1", "failed", NULL, 0));
    cp.step = 3;
    assert_int_equal(store_turn_step_record(c->s, "t1", "alice", "gpt", &a, &intr, &cp, &m, &ev, 1),
                     AGENTD_ECONFLICT);
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 40, 20, 1.0, 4);
    assert_ok(store_checkpoint_list(c->s, "t1", &cps, &n));
    assert_int_equal(n, 1);
    store_checkpoint_list_free(cps, n);

    /* a checkpoint of another turn is refused before anything */
    cp.turn_id = "other";
    assert_int_equal(store_turn_step_record(c->s, "t1", "alice", "gpt", &a, &intr, &cp, &m, &ev, 1),
                     AGENTD_EINVAL);
}

static void test_turn_step_adds_usage_and_heartbeats(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    struct store_turn t = { .id = "t1", .session_id = "s1" };
    assert_ok(store_turn_begin(c->s, &t, 1000));
    int64_t d0 = today();

    /* the usage to the turn and the day, and the heartbeat */
    advance(700);
    int64_t now = atomic_load(&fake_now);
    struct store_usage a = { 10, 5, 0.01, 1 }, b = { 1, 2, 0.5, 1 };
    int intr = -1;
    assert_ok(store_turn_step(c->s, "t1", "alice", "gpt", &a, &intr));
    assert_int_equal(intr, 0);
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_int_equal(got->prompt_tokens, 10);
    assert_int_equal(got->completion_tokens, 5);
    assert_true(near(got->cost_usd, 0.01));
    assert_int_equal(got->updated_at, now);
    assert_string_equal(got->state, STORE_TURN_RUNNING);
    store_turn_free(got);
    /* the lease moved: 1400 ms after begin, 700 after the step */
    advance(700);
    struct store_turn rival = { .id = "rival", .session_id = "s1" };
    assert_int_equal(store_turn_begin(c->s, &rival, 1000), AGENTD_ECONFLICT);

    now = atomic_load(&fake_now);
    assert_ok(store_turn_step(c->s, "t1", "alice", NULL, &b, NULL)); /* model "", no flag */
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_int_equal(got->updated_at, now);
    store_turn_free(got);
    struct store_usage u;
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 11, 7, 0.51, 2);
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 11, 7, 0.51, 2);

    /* the interrupt mark comes back */
    assert_ok(store_turn_interrupt(c->s, "s1"));
    intr = 0;
    assert_ok(store_turn_step(c->s, "t1", "alice", "gpt", &a, &intr));
    assert_int_equal(intr, 1);

    /* unknown turn: nothing written */
    intr = -1;
    assert_int_equal(store_turn_step(c->s, "nope", "alice", "gpt", &a, &intr),
                     AGENTD_ENOTFOUND);
    assert_int_equal(intr, -1);
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 21, 12, 0.52, 3);

    /* bad arguments: nothing written */
    struct store_usage neg = { -1, 0, 0, 1 }, nan_cost = { 1, 1, NAN, 1 },
                       neg_cost = { 1, 1, -0.5, 1 }, neg_calls = { 1, 1, 0, -1 };
    assert_int_equal(store_turn_step(c->s, "t1", NULL, "gpt", &a, &intr), AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, NULL, "alice", "gpt", &a, &intr), AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, "t1", "alice", "gpt", NULL, &intr), AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, "t1", "alice", "gpt", &neg, &intr), AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, "t1", "alice", "gpt", &nan_cost, &intr),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, "t1", "alice", "gpt", &neg_cost, &intr),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_step(c->s, "t1", "alice", "gpt", &neg_calls, &intr),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_step(NULL, "t1", "alice", "gpt", &a, &intr), AGENTD_EINVAL);
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 21, 12, 0.52, 3);

    /* a finished turn: the late call's usage is kept, the answer is a conflict,
     * and the finished turn's updated_at stays */
    advance(5);
    int64_t finished_at = atomic_load(&fake_now);
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", NULL, 0));
    advance(5);
    intr = -1;
    assert_int_equal(store_turn_step(c->s, "t1", "bob", "gpt", &a, &intr), AGENTD_ECONFLICT);
    assert_int_equal(intr, -1);
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    assert_int_equal(got->prompt_tokens, 31);
    assert_int_equal(got->updated_at, finished_at);
    store_turn_free(got);
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 31, 17, 0.53, 4);
    assert_ok(store_usage_day(c->s, "bob", d0, &u));
    assert_usage(&u, 10, 5, 0.01, 1);
    assert_ok(store_usage_session(c->s, "s2", &u)); /* other sessions untouched */
    assert_usage(&u, 0, 0, 0, 0);
}

/* store_turn_finish_task: the task's outcome commits with the turn's end;
 * a task that moved on is not written and fails nothing. */
static void test_turn_finish_task(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_task tk = { .id = "k1", .context_id = "s1", .owner = "alice",
                             .state = "working", .artifacts = "{\"a\":1}" };
    assert_ok(store_task_create(c->s, &tk));
    struct store_turn t = { .id = "t1", .session_id = "s1", .input = "{}" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_task_write w = { .id = "k1", .state = "input-required", .artifacts = "{\"a\":2}",
                                  .old_state = "working", .old_artifacts = "{\"a\":1}" };
    int written = -1;
    struct store_event ev = event("s1", "t1", "turn-completed", "{}");
    /* bad arguments and a finished turn write nothing, the task included */
    assert_int_equal(store_turn_finish_task(c->s, "t1", "completed", &ev, 1, NULL, &written),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_task(c->s, "t1", "completed", &ev, 1, &w, NULL),
                     AGENTD_EINVAL);
    assert_ok(store_turn_finish_task(c->s, "t1", "completed", &ev, 1, &w, &written));
    assert_int_equal(written, 1);
    assert_true(ev.seq > 0);
    assert_string_equal(turn_state(c->s, "s1", "t1"), "not running");
    struct store_task *got = NULL;
    assert_ok(store_task_get(c->s, "k1", &got));
    assert_string_equal(got->state, "input-required");
    assert_string_equal(got->artifacts, "{\"a\":2}");
    store_task_free(got);
    written = -1;
    w.artifacts = "{\"a\":3}";
    assert_int_equal(store_turn_finish_task(c->s, "t1", "completed", NULL, 0, &w, &written),
                     AGENTD_ECONFLICT);
    assert_int_equal(written, -1);

    /* the task moved on (a cancel): the turn still ends, the task stays */
    struct store_turn t2 = { .id = "t2", .session_id = "s1", .input = "{}" };
    assert_ok(store_turn_begin(c->s, &t2, 0));
    struct store_event ev2 = event("s1", "t2", "turn-completed", "{}");
    assert_ok(store_turn_finish_task(c->s, "t2", "completed", &ev2, 1, &w, &written));
    assert_int_equal(written, 0);
    assert_string_equal(turn_state(c->s, "s1", "t2"), "not running");
    assert_true(ev2.seq > ev.seq);
    assert_ok(store_task_get(c->s, "k1", &got));
    assert_string_equal(got->artifacts, "{\"a\":2}");
    store_task_free(got);

    /* a task of another live context than the turn's is written all the
     * same (SQLite names the events' context first, then tries the rest) */
    make_session(c->s, "s2");
    struct store_task tk2 = { .id = "k2", .context_id = "s2", .owner = "alice",
                              .state = "working", .artifacts = "{\"b\":1}" };
    assert_ok(store_task_create(c->s, &tk2));
    struct store_turn t3 = { .id = "t3", .session_id = "s1", .input = "{}" };
    assert_ok(store_turn_begin(c->s, &t3, 0));
    struct store_event ev3 = event("s1", "t3", "turn-completed", "{}");
    struct store_task_write w2 = { .id = "k2", .state = "completed", .artifacts = "{\"b\":2}",
                                   .old_state = "working", .old_artifacts = "{\"b\":1}" };
    written = -1;
    assert_ok(store_turn_finish_task(c->s, "t3", "completed", &ev3, 1, &w2, &written));
    assert_int_equal(written, 1);
    assert_ok(store_task_get(c->s, "k2", &got));
    assert_string_equal(got->state, "completed");
    assert_string_equal(got->artifacts, "{\"b\":2}");
    store_task_free(got);
}

static void test_turn_finish_events_is_one_transaction(void **state)
{
    struct ctx *c = *state;
    reopen(c, 100000, 0); /* a TTL, to see the events push the session's expiry */
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    struct store_turn t = { .id = "t1", .session_id = "s1", .input = "{\"card\":\"4242\"}" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_event pre = event("s1", "t1", "turn-started", "{}");
    assert_ok(store_event_append(c->s, &pre, 1));
    advance(10);
    int64_t now = atomic_load(&fake_now);

    /* a wrong-session event: rejected whole, the turn still runs */
    struct store_event wrong[2] = { event("s1", "t1", "text-delta", "{}"),
                                    event("s2", "t1", "turn-completed", "{}") };
    assert_int_equal(store_turn_finish_events(c->s, "t1", "completed", wrong, 2),
                     AGENTD_EINVAL);
    assert_int_equal(wrong[0].seq, -7);
    assert_int_equal(wrong[1].seq, -7);
    assert_string_equal(turn_state(c->s, "s1", "t1"), STORE_TURN_RUNNING);
    assert_int_equal(count_events(c->s, "s1"), 1);
    assert_int_equal(count_events(c->s, "s2"), 0);

    /* bad arguments: nothing written */
    struct store_event untyped = event("s1", "t1", NULL, "{}");
    assert_int_equal(store_turn_finish_events(c->s, "t1", "completed", &untyped, 1),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_events(c->s, "t1", "completed", NULL, 1), AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_events(c->s, "t1", STORE_TURN_RUNNING, NULL, 0),
                     AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_events(c->s, "t1", "", NULL, 0), AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_events(c->s, "t1", NULL, NULL, 0), AGENTD_EINVAL);
    assert_int_equal(store_turn_finish_events(c->s, NULL, "completed", NULL, 0), AGENTD_EINVAL);
    assert_string_equal(turn_state(c->s, "s1", "t1"), STORE_TURN_RUNNING);

    /* the finish and its events together, seqs after the session's last */
    struct store_event ev[2] = { event("s1", "t1", "text-delta", "{\"t\":\"bye\"}"),
                                 event("s1", "t1", "turn-completed", "{}") };
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", ev, 2));
    assert_int_equal(ev[0].seq, 2);
    assert_int_equal(ev[1].seq, 3);
    assert_int_equal(ev[0].created_at, now);
    assert_int_equal(ev[1].created_at, now);
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    assert_null(got->input); /* dropped, as by store_turn_finish */
    assert_int_equal(got->updated_at, now);
    store_turn_free(got);
    struct store_event *v = NULL;
    size_t n = 0;
    assert_ok(store_event_list(c->s, "s1", 1, 0, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].type, "text-delta");
    assert_string_equal(v[0].data, "{\"t\":\"bye\"}");
    assert_string_equal(v[1].type, "turn-completed");
    assert_int_equal(v[1].seq, 3);
    store_event_list_free(v, n);
    struct store_session *sess = NULL;
    assert_ok(store_session_get(c->s, "s1", &sess));
    assert_int_equal(sess->expires_at, now + 100000);
    store_session_free(sess);

    /* a second finish: a conflict, and no events appended */
    struct store_event again = event("s1", "t1", "turn-failed", "{}");
    assert_int_equal(store_turn_finish_events(c->s, "t1", "failed", &again, 1),
                     AGENTD_ECONFLICT);
    assert_int_equal(again.seq, -7);
    assert_int_equal(count_events(c->s, "s1"), 3);
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    store_turn_free(got);
    /* ...even when its events name another session */
    struct store_event other = event("s2", "t1", "turn-failed", "{}");
    assert_int_equal(store_turn_finish_events(c->s, "t1", "failed", &other, 1),
                     AGENTD_ECONFLICT);
    assert_int_equal(count_events(c->s, "s2"), 0);

    /* unknown turn: nothing written */
    struct store_event ghost = event("s1", "nope", "turn-failed", "{}");
    assert_int_equal(store_turn_finish_events(c->s, "nope", "failed", &ghost, 1),
                     AGENTD_ENOTFOUND);
    assert_int_equal(count_events(c->s, "s1"), 3);

    /* nev = 0: just the finish */
    struct store_turn t2 = { .id = "t2", .session_id = "s2" };
    assert_ok(store_turn_begin(c->s, &t2, 0));
    assert_ok(store_turn_finish_events(c->s, "t2", "failed", NULL, 0));
    assert_ok(store_turn_get(c->s, "t2", &got));
    assert_string_equal(got->state, "failed");
    store_turn_free(got);
    assert_int_equal(count_events(c->s, "s2"), 0);
    assert_int_equal(store_turn_finish_events(c->s, "t2", "failed", NULL, 0), AGENTD_ECONFLICT);
}

static void test_usage_days_are_purged_after_400(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_turn t = { .id = "t1", .session_id = "s1" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_usage a = { 1, 1, 0.25, 1 }, u;
    int64_t d0 = today();
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));
    advance(400LL * 86400000);
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));
    int n = -1;
    assert_ok(store_purge_expired(c->s, 100, &n));
    assert_int_equal(n, 0); /* 400 days old: kept */
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 1, 1, 0.25, 1);

    advance(86400000);
    assert_ok(store_purge_expired(c->s, 100, &n));
    assert_int_equal(n, 1);
    assert_ok(store_usage_day(c->s, "alice", d0, &u));
    assert_usage(&u, 0, 0, 0, 0);
    assert_ok(store_usage_day(c->s, "alice", d0 + 400, &u));
    assert_usage(&u, 1, 1, 0.25, 1);
    if (backend->count_rows)
        assert_int_equal(raw_rows(c, "usage_daily"), 1);
    /* the turn's own totals are not the daily table's */
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 2, 2, 0.5, 2);
}

static void test_events_and_usage_survive_reopen(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "i1", .input = "{}" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    struct store_event ev[2] = { event("s1", "t1", "turn-started", "{}"),
                                 event("s1", "t1", "text-delta", "{\"t\":\"x\"}") };
    assert_ok(store_event_append(c->s, ev, 2));
    struct store_usage a = { 3, 4, 0.25, 1 }, u;
    assert_ok(usage_add(c->s, "t1", "alice", "gpt", &a));

    reopen(c, 0, 0);
    struct store_event *v = NULL;
    size_t n = 0;
    assert_ok(store_event_list(c->s, "s1", 0, 0, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[1].data, "{\"t\":\"x\"}");
    store_event_list_free(v, n);
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->instance, "i1");
    assert_string_equal(got->input, "{}");
    assert_int_equal(got->prompt_tokens, 3);
    assert_int_equal(got->completion_tokens, 4);
    assert_true(near(got->cost_usd, 0.25));
    store_turn_free(got);
    assert_ok(store_usage_day(c->s, "alice", today(), &u));
    assert_usage(&u, 3, 4, 0.25, 1);
    assert_ok(store_usage_session(c->s, "s1", &u));
    assert_usage(&u, 3, 4, 0.25, 1);
    struct store_event more = event("s1", "t1", "turn-completed", "{}");
    assert_ok(store_event_append(c->s, &more, 1));
    assert_int_equal(more.seq, 3);
}

/* A database from before turn events and usage (schema 3) is migrated at
 * open, keeping its rows. */
static void test_migrate_from_version_3(void **state)
{
    struct ctx *c = *state;
    if (!backend->make_v3)
        skip();
    char url[600];
    backend->make_url(c->dir, "v3", url, sizeof url);
    assert_ok(backend->make_v3(url));
    struct store *s = NULL;
    struct agentd_error err = { 0 };
    if (open_with(c, url, 0, 0, &s, &err))
        fail_msg("open v3: %s", err.msg);
    int v = 0;
    assert_ok(store_schema_version(s, &v));
    assert_int_equal(v, migrations_latest());

    struct store_turn *got = NULL;
    assert_ok(store_turn_get(s, "t-old", &got));
    assert_string_equal(got->state, STORE_TURN_RUNNING);
    assert_string_equal(got->owner, "alice");
    assert_null(got->instance);
    assert_null(got->input);
    assert_int_equal(got->prompt_tokens, 0);
    assert_int_equal(got->completion_tokens, 0);
    assert_true(got->cost_usd == 0);
    assert_int_equal(got->created_at, 2);
    assert_int_equal(got->updated_at, 3);
    store_turn_free(got);
    struct store_checkpoint *cps = NULL;
    size_t n = 0;
    assert_ok(store_checkpoint_list(s, "t-old", &cps, &n));
    assert_int_equal(n, 1);
    assert_int_equal(cps[0].step, 1);
    assert_string_equal(cps[0].kind, "llm_reply");
    assert_string_equal(cps[0].payload, "{\"r\":1}");
    assert_int_equal(cps[0].created_at, 3);
    store_checkpoint_list_free(cps, n);
    assert_int_equal(store_turn_record(s,
                                       &(struct store_checkpoint){ .turn_id = "t-old", .step = 1,
                                                                   .kind = "llm_reply",
                                                                   .payload = "{}" },
                                       NULL, NULL, 0),
                     AGENTD_EEXIST); /* the rebuilt table kept its key */

    /* the new kind, columns and tables work on the migrated file */
    put_checkpoint(s, "t-old", 0, "user_message", 0);
    assert_ok(store_turn_adopt(s, "t-old", NULL, "me"));
    struct store_checkpoint cp = { .turn_id = "t-old", .step = 2, .kind = "tool_result",
                                   .payload = "{}" };
    struct store_message m = { .session_id = "old", .role = "tool", .parts = "[]" };
    struct store_event ev = event("old", "t-old", "tool-result", "{}");
    assert_ok(store_turn_record(s, &cp, &m, &ev, 1));
    assert_int_equal(m.seq, 2);
    assert_int_equal(ev.seq, 1);
    struct store_usage a = { 5, 6, 0.5, 1 }, u;
    assert_ok(usage_add(s, "t-old", "alice", "gpt", &a));
    store_close(s);

    s = NULL;
    if (open_with(c, url, 0, 0, &s, &err))
        fail_msg("reopen: %s", err.msg);
    assert_ok(store_schema_version(s, &v));
    assert_int_equal(v, migrations_latest());
    assert_ok(store_checkpoint_list(s, "t-old", &cps, &n));
    assert_int_equal(n, 3);
    assert_string_equal(cps[0].kind, "user_message");
    store_checkpoint_list_free(cps, n);
    assert_int_equal(count_events(s, "old"), 1);
    assert_int_equal(count_messages(s, "old"), 2);
    assert_ok(store_usage_session(s, "old", &u));
    assert_usage(&u, 5, 6, 0.5, 1);
    struct store_turn *run = NULL;
    assert_ok(store_turn_list_unfinished(s, NULL, &run, &n));
    assert_int_equal(n, 1);
    assert_string_equal(run[0].instance, "me");
    store_turn_list_free(run, n);
    /* the one-running-turn rule from migration 3 still holds */
    struct store_turn second = { .id = "t-new", .session_id = "old" };
    assert_int_equal(store_turn_begin(s, &second, 0), AGENTD_ECONFLICT);
    store_close(s);
}

/* ---- checkouts and orders ---- */

static void make_checkout(struct store *s, const char *id, int64_t expires_at)
{
    struct store_checkout co = { .id = (char *)id, .owner = "alice", .status = "incomplete",
                                 .document = "{\"n\":0}", .expires_at = expires_at };
    assert_ok(store_checkout_create(s, &co));
    assert_int_equal(co.version, 1);
}

static void test_checkout_cas(void **state)
{
    struct ctx *c = *state;
    make_checkout(c->s, "co1", 0);
    struct store_checkout dup = { .id = "co1", .owner = "bob", .status = "incomplete",
                                  .document = "{}" };
    assert_int_equal(store_checkout_create(c->s, &dup), AGENTD_EEXIST);

    assert_ok(store_checkout_update(c->s, "co1", 1, "ready_for_complete", "{\"n\":1}"));
    assert_int_equal(store_checkout_update(c->s, "co1", 1, "incomplete", "{\"n\":9}"),
                     AGENTD_ECONFLICT);
    assert_int_equal(store_checkout_update(c->s, "nope", 1, "incomplete", "{}"),
                     AGENTD_ENOTFOUND);

    struct store_checkout *got = NULL;
    assert_ok(store_checkout_get(c->s, "co1", &got));
    assert_int_equal(got->version, 2);
    assert_string_equal(got->status, "ready_for_complete");
    assert_string_equal(got->document, "{\"n\":1}");
    assert_string_equal(got->owner, "alice");
    assert_int_equal(got->expires_at, 0);
    store_checkout_free(got);
}

static void test_orders(void **state)
{
    struct ctx *c = *state;
    make_checkout(c->s, "co1", 0);
    struct store_order o = { .id = "ord1", .checkout_id = "co1", .owner = "alice",
                             .document = "{\"total\":500}" };
    assert_int_equal(store_order_create(c->s, &o, 7, "completed", "{}", NULL, 0), AGENTD_ECONFLICT);
    struct store_order *got = NULL;
    assert_int_equal(store_order_get(c->s, "ord1", &got), AGENTD_ENOTFOUND);

    assert_ok(store_order_create(c->s, &o, 1, "completed", "{\"order\":\"ord1\"}", NULL, 0));
    assert_ok(store_order_get(c->s, "ord1", &got));
    assert_string_equal(got->checkout_id, "co1");
    assert_string_equal(got->document, "{\"total\":500}");
    assert_int_equal(got->version, 1);
    assert_null(got->access_hash);
    store_order_free(got);
    assert_ok(store_order_update(c->s, "ord1", 1, "{\"shipped\":true}", NULL));
    /* a writer holding the old version loses: nothing is overwritten */
    assert_int_equal(store_order_update(c->s, "ord1", 1, "{\"lost\":true}", NULL), AGENTD_ECONFLICT);
    assert_ok(store_order_get(c->s, "ord1", &got));
    assert_string_equal(got->document, "{\"shipped\":true}");
    assert_int_equal(got->version, 2);
    store_order_free(got);
    assert_int_equal(store_order_update(c->s, "nope", 1, "{}", NULL), AGENTD_ENOTFOUND);

    /* A second order for the checkout fails whole: the checkout stays put. */
    struct store_order o2 = { .id = "ord2", .checkout_id = "co1", .owner = "alice",
                              .document = "{}" };
    assert_int_equal(store_order_create(c->s, &o2, 2, "completed", "{\"again\":1}", NULL, 0),
                     AGENTD_EEXIST);
    struct store_checkout *co = NULL;
    assert_ok(store_checkout_get(c->s, "co1", &co));
    assert_int_equal(co->version, 2);
    assert_string_equal(co->status, "completed");
    assert_string_equal(co->document, "{\"order\":\"ord1\"}");
    store_checkout_free(co);
}

static void test_stock(void **state)
{
    struct ctx *c = *state;
    struct store_stock_line seed[] = { { "BISC-001", 5 }, { "CHIPS-001", 1 } };
    assert_ok(store_stock_seed(c->s, seed, 2, 0));
    int64_t q = 0;
    assert_ok(store_stock_get(c->s, "BISC-001", &q));
    assert_int_equal(q, 5);
    assert_int_equal(store_stock_get(c->s, "NOPE", &q), AGENTD_ENOTFOUND);
    /* seeding again never undoes sales: existing rows keep their value */
    struct store_stock_line again[] = { { "BISC-001", 99 }, { "STRAW-001", 3 } };
    assert_ok(store_stock_seed(c->s, again, 2, 0));
    assert_ok(store_stock_get(c->s, "BISC-001", &q));
    assert_int_equal(q, 5);
    assert_ok(store_stock_get(c->s, "STRAW-001", &q));
    assert_int_equal(q, 3);

    /* an order takes stock in the same transaction; short stock fails whole */
    make_checkout(c->s, "co1", 0);
    struct store_order o = { .id = "ord1", .checkout_id = "co1", .owner = "alice", .document = "{}" };
    struct store_stock_line too_many[] = { { "BISC-001", 2 }, { "CHIPS-001", 2 } };
    assert_int_equal(store_order_create(c->s, &o, 1, "completed", "{}", too_many, 2), AGENTD_ESTOCK);
    assert_ok(store_stock_get(c->s, "BISC-001", &q));
    assert_int_equal(q, 5); /* the first line's take was rolled back */
    struct store_checkout *co = NULL;
    assert_ok(store_checkout_get(c->s, "co1", &co));
    assert_int_equal(co->version, 1);
    store_checkout_free(co);
    struct store_stock_line ok[] = { { "BISC-001", 2 }, { "CHIPS-001", 1 } };
    assert_ok(store_order_create(c->s, &o, 1, "completed", "{}", ok, 2));
    assert_ok(store_stock_get(c->s, "BISC-001", &q));
    assert_int_equal(q, 3);
    assert_ok(store_stock_get(c->s, "CHIPS-001", &q));
    assert_int_equal(q, 0);
    /* a product without a stock row cannot be sold */
    make_checkout(c->s, "co2", 0);
    struct store_order o2 = { .id = "ord2", .checkout_id = "co2", .owner = "alice", .document = "{}" };
    struct store_stock_line unknown[] = { { "GHOST", 1 } };
    assert_int_equal(store_order_create(c->s, &o2, 1, "completed", "{}", unknown, 1), AGENTD_ESTOCK);

    /* replace: the table becomes exactly the import */
    struct store_stock_line import[] = { { "NEW-1", 7 } };
    assert_ok(store_stock_seed(c->s, import, 1, 1));
    assert_int_equal(store_stock_get(c->s, "BISC-001", &q), AGENTD_ENOTFOUND);
    assert_ok(store_stock_get(c->s, "NEW-1", &q));
    assert_int_equal(q, 7);
    struct store_stock_line neg[] = { { "X", -1 } };
    assert_int_equal(store_stock_seed(c->s, neg, 1, 0), AGENTD_EINVAL);
}

struct race {
    struct store *s;
    const char *checkout;
    const char *order;
    int rc;
};

static void *race_last_unit(void *arg)
{
    struct race *r = arg;
    struct store_order o = { .id = (char *)r->order, .checkout_id = (char *)r->checkout,
                             .owner = "alice", .document = "{}" };
    struct store_stock_line take[] = { { "LAST-1", 1 } };
    r->rc = store_order_create(r->s, &o, 1, "completed", "{}", take, 1);
    return NULL;
}

/* The address book: saved per customer, oldest first, an id saved once. */
static void test_address_book(void **state)
{
    struct ctx *c = *state;
    struct store_address *v = NULL;
    size_t n = 9;
    assert_ok(store_address_list(c->s, "john@example.com", 10, &v, &n));
    assert_int_equal(n, 0);
    assert_ok(store_address_save(c->s, "addr_a", "john@example.com", "sealed-a"));
    assert_ok(store_address_save(c->s, "addr_b", "john@example.com", "sealed-b"));
    assert_ok(store_address_save(c->s, "addr_a", "john@example.com", "other")); /* kept */
    assert_ok(store_address_save(c->s, "addr_c", "jane@example.com", "sealed-c"));
    assert_ok(store_address_list(c->s, "john@example.com", 10, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "addr_a");
    assert_string_equal(v[0].body, "sealed-a");
    assert_string_equal(v[1].id, "addr_b");
    store_address_list_free(v, n);
    assert_ok(store_address_list(c->s, "john@example.com", 1, &v, &n));
    assert_int_equal(n, 1);
    store_address_list_free(v, n);
    assert_int_equal(store_address_save(c->s, "", "x", "y"), AGENTD_EINVAL);
}

/* Key rotation's walk over the whole book, and re-sealing by compare-and-swap. */
static void test_address_rotation_walk(void **state)
{
    struct ctx *c = *state;
    struct store_address *v = NULL;
    size_t n = 9;
    assert_ok(store_address_list_after(c->s, "", 10, &v, &n));
    assert_int_equal(n, 0);
    assert_ok(store_address_save(c->s, "addr_b", "john@example.com", "sealed-b"));
    assert_ok(store_address_save(c->s, "addr_a", "jane@example.com", "sealed-a"));
    assert_ok(store_address_save(c->s, "addr_c", "john@example.com", "sealed-c"));
    assert_ok(store_address_list_after(c->s, "", 2, &v, &n)); /* by id, every customer */
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "addr_a");
    assert_string_equal(v[0].customer, "jane@example.com");
    assert_string_equal(v[1].id, "addr_b");
    store_address_list_free(v, n);
    assert_ok(store_address_list_after(c->s, "addr_b", 2, &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "addr_c");
    store_address_list_free(v, n);
    /* the body is swapped only when it is still the one read */
    assert_ok(store_address_reseal(c->s, "addr_c", "sealed-c", "resealed-c"));
    assert_int_equal(store_address_reseal(c->s, "addr_c", "sealed-c", "again"), AGENTD_ECONFLICT);
    assert_int_equal(store_address_reseal(c->s, "addr_x", "sealed-x", "y"), AGENTD_ECONFLICT);
    assert_ok(store_address_list(c->s, "john@example.com", 10, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].body, "sealed-b");
    assert_string_equal(v[1].body, "resealed-c");
    store_address_list_free(v, n);
    assert_int_equal(store_address_reseal(c->s, "addr_c", "resealed-c", ""), AGENTD_EINVAL);
}

/* Instance heartbeats: a beat creates the row once and moves heartbeat_at
 * on the store's clock; started_at stays; delete removes it. */
static void test_instance_heartbeats(void **state)
{
    struct ctx *c = *state;
    struct store_instance a = { .id = "hostA/10/aa", .host = "hostA", .pid = 10,
                                .started_at = 5 };
    struct store_instance b = { .id = "hostB/20/bb", .host = "hostB", .pid = 20,
                                .started_at = 6 };
    struct store_instance *v = NULL;
    size_t n = 9;
    assert_ok(store_instance_list(c->s, &v, &n));
    assert_int_equal(n, 0);
    int64_t t0 = atomic_load(&fake_now);
    assert_ok(store_instance_beat(c->s, &a));
    assert_ok(store_instance_beat(c->s, &b));
    advance(2000);
    a.started_at = 99; /* a later beat does not move it */
    assert_ok(store_instance_beat(c->s, &a));
    assert_ok(store_instance_list(c->s, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, "hostA/10/aa");
    assert_string_equal(v[0].host, "hostA");
    assert_int_equal(v[0].pid, 10);
    assert_int_equal(v[0].started_at, 5);
    assert_int_equal(v[0].heartbeat_at, t0 + 2000);
    assert_string_equal(v[1].id, "hostB/20/bb");
    assert_int_equal(v[1].heartbeat_at, t0);
    store_instance_list_free(v, n);
    assert_ok(store_instance_delete(c->s, "hostB/20/bb"));
    assert_int_equal(store_instance_delete(c->s, "hostB/20/bb"), AGENTD_ENOTFOUND);
    assert_ok(store_instance_list(c->s, &v, &n));
    assert_int_equal(n, 1);
    store_instance_list_free(v, n);
    assert_int_equal(store_instance_beat(c->s, &(struct store_instance){ .id = "", .host = "h" }),
                     AGENTD_EINVAL);
}

static void test_stock_last_unit_race(void **state)
{
    struct ctx *c = *state;
    struct store_stock_line seed[] = { { "LAST-1", 1 } };
    assert_ok(store_stock_seed(c->s, seed, 1, 0));
    make_checkout(c->s, "coA", 0);
    make_checkout(c->s, "coB", 0);
    struct race a = { c->s, "coA", "ordA", -1 }, b = { c->s, "coB", "ordB", -1 };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race_last_unit, &a);
    pthread_create(&tb, NULL, race_last_unit, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true((a.rc == 0) != (b.rc == 0));
    assert_int_equal(a.rc == 0 ? b.rc : a.rc, AGENTD_ESTOCK);
    int64_t q = -1;
    assert_ok(store_stock_get(c->s, "LAST-1", &q));
    assert_int_equal(q, 0);
}

/* ---- idempotency ---- */

static void test_idempotency_lifecycle(void **state)
{
    struct ctx *c = *state;
    char fp[65], fp2[65], same[65];
    store_idem_fingerprint("POST", "/checkout-sessions", "{\"a\":1}", 7, fp);
    store_apikey_hash("POST\n/checkout-sessions\n{\"a\":1}", same);
    assert_string_equal(fp, same);
    store_idem_fingerprint("POST", "/checkout-sessions", "{\"a\":2}", 7, fp2);
    assert_string_not_equal(fp, fp2);

    int64_t exp = atomic_load(&fake_now) + 60000;
    struct store_idem *r = NULL;
    assert_ok(store_idem_begin(c->s, "alice", "k1", fp, exp, &r));
    assert_null(r);

    /* A retry while the first is running sees it in progress. */
    assert_int_equal(store_idem_begin(c->s, "alice", "k1", fp, exp, &r), AGENTD_EEXIST);
    assert_non_null(r);
    assert_string_equal(r->state, STORE_IDEM_IN_PROGRESS);
    assert_string_equal(r->fingerprint, fp);
    store_idem_free(r);

    /* A different request under the same key gets the original to compare. */
    assert_int_equal(store_idem_begin(c->s, "alice", "k1", fp2, exp, &r), AGENTD_EEXIST);
    assert_string_equal(r->fingerprint, fp);
    store_idem_free(r);

    /* The same key from another principal is another record. */
    assert_ok(store_idem_begin(c->s, "bob", "k1", fp2, exp, &r));
    assert_null(r);

    static const char body[] = "{\"id\":\"co1\"}\0tail";
    assert_ok(store_idem_finish(c->s, "alice", "k1", 201, "{\"Location\":\"/co1\"}", body,
                                sizeof body - 1));
    assert_int_equal(store_idem_finish(c->s, "alice", "k1", 500, "{}", NULL, 0),
                     AGENTD_ENOTFOUND);
    assert_int_equal(store_idem_begin(c->s, "alice", "k1", fp, exp, &r), AGENTD_EEXIST);
    assert_string_equal(r->state, STORE_IDEM_DONE);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->headers, "{\"Location\":\"/co1\"}");
    assert_int_equal(r->body_len, sizeof body - 1);
    assert_memory_equal(r->body, body, sizeof body - 1);
    assert_int_equal(r->expires_at, exp);
    store_idem_free(r);
    assert_int_equal(store_idem_abandon(c->s, "alice", "k1"), AGENTD_ENOTFOUND);

    /* A failed request gives its claim back, and the retry runs afresh. */
    assert_ok(store_idem_abandon(c->s, "bob", "k1"));
    assert_int_equal(store_idem_abandon(c->s, "bob", "k1"), AGENTD_ENOTFOUND);
    assert_ok(store_idem_begin(c->s, "bob", "k1", fp2, exp, &r));
    assert_null(r);
    assert_ok(store_idem_finish(c->s, "bob", "k1", 204, "{}", NULL, 0));
    assert_int_equal(store_idem_begin(c->s, "bob", "k1", fp2, exp, &r), AGENTD_EEXIST);
    assert_int_equal(r->body_len, 0);
    store_idem_free(r);
}

/* A claim whose process died is taken over once its lease ran out; a
 * finished record is not a claim and lives until it expires; each owner's
 * keys are their own throughout. */
static void test_idempotency_lease_and_expiry(void **state)
{
    struct ctx *c = *state;
    char fp[65];
    store_idem_fingerprint("POST", "/checkout-sessions", "{}", 2, fp);
    int64_t t0 = atomic_load(&fake_now);
    int64_t exp = t0 + 3 * STORE_IDEM_LEASE_MS;
    struct store_idem *r = NULL;
    assert_ok(store_idem_begin(c->s, "alice", "k", fp, exp, &r));
    advance(1000);
    assert_ok(store_idem_begin(c->s, "bob", "k", fp, exp, &r)); /* bob's own key */

    /* Still within alice's lease: in progress. */
    advance(STORE_IDEM_LEASE_MS - 1001);
    assert_int_equal(store_idem_begin(c->s, "alice", "k", fp, exp, &r), AGENTD_EEXIST);
    assert_string_equal(r->state, STORE_IDEM_IN_PROGRESS);
    assert_int_equal(r->created_at, t0);
    store_idem_free(r);

    /* The lease ran out: the next request claims afresh; bob's claim,
     * younger, still holds. */
    advance(1);
    assert_ok(store_idem_begin(c->s, "alice", "k", fp, exp, &r));
    assert_null(r);
    assert_int_equal(store_idem_begin(c->s, "bob", "k", fp, exp, &r), AGENTD_EEXIST);
    assert_string_equal(r->principal, "bob");
    assert_string_equal(r->state, STORE_IDEM_IN_PROGRESS);
    store_idem_free(r);
    /* the new claim runs and finishes */
    assert_ok(store_idem_finish(c->s, "alice", "k", 200, "{}", "ok", 2));

    /* Done is no claim: it replays past any lease, until expires_at. */
    advance(STORE_IDEM_LEASE_MS + 1);
    assert_int_equal(store_idem_begin(c->s, "alice", "k", fp, exp, &r), AGENTD_EEXIST);
    assert_string_equal(r->state, STORE_IDEM_DONE);
    assert_int_equal(r->body_len, 2);
    assert_memory_equal(r->body, "ok", 2);
    store_idem_free(r);
    assert_int_equal(store_idem_abandon(c->s, "alice", "k"), AGENTD_ENOTFOUND);

    /* Expired (expires_at <= now): free again, and a late finish of it
     * finds nothing. */
    atomic_store(&fake_now, exp);
    assert_int_equal(store_idem_finish(c->s, "bob", "k", 200, "{}", NULL, 0), AGENTD_ENOTFOUND);
    assert_ok(store_idem_begin(c->s, "alice", "k", fp, exp + 1000, &r));
    assert_null(r);
    assert_ok(store_idem_begin(c->s, "bob", "k", fp, exp + 1000, &r));
    assert_null(r);
}

/* ---- audit ---- */

static void test_audit(void **state)
{
    struct ctx *c = *state;
    for (int i = 0; i < 5; i++) {
        char target[16];
        snprintf(target, sizeof target, "co%d", i);
        struct store_audit e = { .principal = i % 2 ? "bob" : "alice",
                                 .action = "checkout.update", .target = target,
                                 .request_id = "req", .outcome = "ok" };
        advance(1);
        assert_ok(store_audit_append(c->s, &e));
        assert_int_equal(e.ts, atomic_load(&fake_now));
        assert_true(e.id > 0);
    }
    int64_t t3 = atomic_load(&fake_now) - 1; /* co3 and co4 were written at or after it */
    struct store_audit *v = NULL;
    size_t n = 0;
    /* the newest 3, oldest first */
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ .limit = 3 }, &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].target, "co2");
    assert_string_equal(v[2].target, "co4");
    assert_true(v[2].id > v[1].id && v[2].ts > v[1].ts);
    assert_int_equal(v[0].count, 1);
    store_audit_list_free(v, n);
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ .principal = "bob" }, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].target, "co1");
    assert_string_equal(v[1].target, "co3");
    store_audit_list_free(v, n);
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ .since_ms = t3 }, &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0].target, "co3");
    assert_string_equal(v[1].target, "co4");
    store_audit_list_free(v, n);
    assert_ok(store_audit_list(c->s,
                               &(struct store_audit_query){ .principal = "alice", .since_ms = t3 },
                               &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].target, "co4");
    store_audit_list_free(v, n);
}

/* A burst is one row with a count; a new window starts a new row. */
static void test_audit_bump(void **state)
{
    struct ctx *c = *state;
    int64_t w0 = atomic_load(&fake_now);
    for (int i = 0; i < 4; i++) {
        struct store_audit e = { .principal = "", .action = "auth.failure",
                                 .target = "127.0.0.1", .request_id = "r", .outcome = "invalid" };
        advance(1);
        assert_ok(store_audit_bump(c->s, &e, w0));
    }
    struct store_audit other = { .principal = "", .action = "auth.failure", .target = "10.0.0.9", /* data only, never contacted */
                                 .request_id = "r", .outcome = "invalid", .count = 2 };
    assert_ok(store_audit_bump(c->s, &other, w0));
    advance(60000);
    struct store_audit late = { .principal = "", .action = "auth.failure", .target = "127.0.0.1",
                                .request_id = "r2", .outcome = "invalid" };
    assert_ok(store_audit_bump(c->s, &late, atomic_load(&fake_now) - 10));
    struct store_audit *v = NULL;
    size_t n = 0;
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ 0 }, &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[0].target, "127.0.0.1");
    assert_int_equal(v[0].count, 4);
    assert_string_equal(v[0].request_id, "r"); /* the burst's first request */
    assert_string_equal(v[1].target, "10.0.0.9"); /* data only, never contacted */
    assert_int_equal(v[1].count, 2);
    assert_string_equal(v[2].request_id, "r2");
    assert_int_equal(v[2].count, 1);
    store_audit_list_free(v, n);
}

/* Audit rows older than the retention go with the purge; newer ones stay;
 * without a retention none goes. */
static void test_audit_purge(void **state)
{
    struct ctx *c = *state;
    struct store_audit e = { .principal = "p", .action = "apikey.create", .target = "k1",
                             .request_id = "", .outcome = "ok" };
    assert_ok(store_audit_append(c->s, &e));
    advance(5000);
    e.target = "k2";
    assert_ok(store_audit_append(c->s, &e));
    advance(1000);
    int deleted = -1;
    assert_ok(store_purge_expired(c->s, 100, &deleted));
    assert_int_equal(deleted, 0);
    store_close(c->s);
    c->s = NULL;
    struct agentd_error err = { 0 };
    struct store_options o = { .url = c->url, .sync = STORE_SYNC_NORMAL, .now = clock_fake,
                               .audit_retention_ms = 3000 };
    assert_ok(store_open(&o, &c->s, &err));
    assert_ok(store_purge_expired(c->s, 100, &deleted));
    assert_int_equal(deleted, 1);
    struct store_audit *v = NULL;
    size_t n = 0;
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ 0 }, &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0].target, "k2");
    store_audit_list_free(v, n);
}

/* ---- TTL and purge ---- */

static void test_ttl_makes_rows_invisible_at_once(void **state)
{
    struct ctx *c = *state;
    reopen(c, 1000, 0);
    int64_t t0 = atomic_load(&fake_now);
    make_session(c->s, "s1");
    struct store_task t = { .id = "t1", .context_id = "s1", .owner = "alice",
                            .state = "working", .artifacts = "[]" };
    assert_ok(store_task_create(c->s, &t));
    struct store_turn turn = { .id = "turn1", .session_id = "s1" };
    assert_ok(store_turn_begin(c->s, &turn, 0));
    put_checkpoint(c->s, "turn1", 1, "llm_reply", 0);
    make_checkout(c->s, "co1", t0 + 500);
    char fp[65];
    store_idem_fingerprint("POST", "/x", "", 0, fp);
    struct store_idem *r = NULL;
    assert_ok(store_idem_begin(c->s, "alice", "k1", fp, t0 + 2000, &r));

    /* Writing to the session slides its expiry. */
    advance(600);
    struct store_message m = { .session_id = "s1", .role = "user", .parts = "[]" };
    assert_ok(store_message_append(c->s, &m));
    struct store_session *sess = NULL;
    assert_ok(store_session_get(c->s, "s1", &sess));
    assert_int_equal(sess->expires_at, t0 + 1600);
    store_session_free(sess);
    /* The checkout expired at t0+500: gone for reads and writes alike. */
    struct store_checkout *co = NULL;
    assert_int_equal(store_checkout_get(c->s, "co1", &co), AGENTD_ENOTFOUND);
    assert_int_equal(store_checkout_update(c->s, "co1", 1, "x", "{}"), AGENTD_ENOTFOUND);

    advance(1000); /* t0+1600: expires_at <= now is expired */
    assert_int_equal(store_session_get(c->s, "s1", &sess), AGENTD_ENOTFOUND);
    struct store_message *msgs = NULL;
    size_t n = 9;
    assert_int_equal(store_message_list(c->s, "s1", 0, 0, &msgs, &n), AGENTD_ENOTFOUND);
    assert_int_equal(store_message_append(c->s, &m), AGENTD_ENOTFOUND);
    assert_int_equal(store_session_update(c->s, "s1", "{}"), AGENTD_ENOTFOUND);
    struct store_task *task = NULL;
    assert_int_equal(store_task_get(c->s, "t1", &task), AGENTD_ENOTFOUND);
    assert_int_equal(store_task_update_if(c->s, "t1", "completed", "[]", "submitted", "[]"),
                     AGENTD_ENOTFOUND);
    struct store_task *tasks = NULL;
    assert_ok(store_task_list(c->s, "s1", &tasks, &n));
    assert_int_equal(n, 0);
    store_task_list_free(tasks, n);
    struct store_turn *turns = NULL;
    assert_ok(store_turn_list_unfinished(c->s, NULL, &turns, &n));
    assert_int_equal(n, 0);
    store_turn_list_free(turns, n);
    struct store_checkpoint *cps = NULL;
    assert_int_equal(store_checkpoint_list(c->s, "turn1", &cps, &n), AGENTD_ENOTFOUND);
    assert_int_equal(store_turn_finish_events(c->s, "turn1", "failed", NULL, 0), AGENTD_ENOTFOUND);
    struct store_turn *turn_got = NULL;
    assert_int_equal(store_turn_get(c->s, "turn1", &turn_got), AGENTD_ENOTFOUND);
    assert_int_equal(store_turn_adopt(c->s, "turn1", NULL, "me"), AGENTD_ENOTFOUND);
    struct store_checkpoint step = { .turn_id = "turn1", .step = 2, .kind = "llm_reply",
                                     .payload = "{}" };
    assert_int_equal(store_turn_record(c->s, &step, NULL, NULL, 0), AGENTD_ENOTFOUND);
    struct store_event ev = { .session_id = "s1", .turn_id = "turn1", .type = "text-delta",
                              .data = "{}" };
    assert_int_equal(store_event_append(c->s, &ev, 1), AGENTD_ENOTFOUND);
    struct store_event *evs = NULL;
    assert_int_equal(store_event_list(c->s, "s1", 0, 0, &evs, &n), AGENTD_ENOTFOUND);
    struct store_usage use = { 1, 1, 0.1, 1 };
    assert_int_equal(usage_add(c->s, "turn1", "alice", "gpt", &use), AGENTD_ENOTFOUND);
    assert_int_equal(store_usage_session(c->s, "s1", &use), AGENTD_ENOTFOUND);

    /* Expired ids and keys are free again before any purge. */
    make_session(c->s, "s1");
    make_checkout(c->s, "co1", 0);
    advance(400); /* t0+2000 */
    assert_ok(store_idem_begin(c->s, "alice", "k1", fp, t0 + 9000, &r));
    assert_null(r);
}

static void test_purge_in_batches(void **state)
{
    struct ctx *c = *state;
    reopen(c, 1000, 0);
    int64_t t0 = atomic_load(&fake_now);
    char fp[65];
    store_idem_fingerprint("POST", "/x", "", 0, fp);
    for (int i = 0; i < 25; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        make_session(c->s, id);
        struct store_message m = { .session_id = id, .role = "user", .parts = "[]" };
        assert_ok(store_message_append(c->s, &m));
        struct store_turn t = { .id = id, .session_id = id };
        assert_ok(store_turn_begin(c->s, &t, 0));
        put_checkpoint(c->s, id, 1, "llm_reply", 0);
    }
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "co%d", i);
        make_checkout(c->s, id, t0 + 100);
    }
    make_checkout(c->s, "live", 0);
    struct store_idem *r = NULL;
    for (int i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_ok(store_idem_begin(c->s, "alice", key, fp, t0 + 100, &r));
    }
    assert_ok(store_idem_begin(c->s, "alice", "live", fp, t0 + 100000, &r));

    int n = -1;
    assert_ok(store_purge_expired(c->s, 10, &n));
    assert_int_equal(n, 0);

    advance(900);
    make_session(c->s, "live"); /* expires at t0 + 1900 */
    advance(100);
    int counts[5];
    for (int i = 0; i < 5; i++)
        assert_ok(store_purge_expired(c->s, 10, &counts[i]));
    assert_int_equal(counts[0], 10);
    assert_int_equal(counts[1], 10);
    assert_int_equal(counts[2], 10); /* 5 sessions + 5 checkouts */
    assert_int_equal(counts[3], 3);
    assert_int_equal(counts[4], 0);

    struct store_session *s = NULL;
    assert_ok(store_session_get(c->s, "live", &s));
    store_session_free(s);
    struct store_checkout *co = NULL;
    assert_ok(store_checkout_get(c->s, "live", &co));
    store_checkout_free(co);
    assert_int_equal(store_idem_begin(c->s, "alice", "live", fp, t0 + 100000, &r),
                     AGENTD_EEXIST);
    store_idem_free(r);
    /* Purged sessions took their turns along. */
    struct store_turn *turns = NULL;
    size_t nt = 0;
    assert_ok(store_turn_list_unfinished(c->s, NULL, &turns, &nt));
    assert_int_equal(nt, 0);
    store_turn_list_free(turns, nt);
    assert_int_equal(store_purge_expired(c->s, 0, &n), AGENTD_EINVAL);
}

/* ---- concurrency ---- */

#define CAS_THREADS 8
#define CAS_INCREMENTS 1000

struct cas_arg {
    struct store *s;
    int conflicts;
    int failures;
};

static void *cas_worker(void *p)
{
    struct cas_arg *a = p;
    for (int done = 0; done < CAS_INCREMENTS;) {
        struct store_checkout *co = NULL;
        if (store_checkout_get(a->s, "counter", &co) != 0) {
            a->failures++;
            return NULL;
        }
        int n = -1;
        sscanf(co->document, "{\"n\":%d}", &n);
        char doc[32];
        snprintf(doc, sizeof doc, "{\"n\":%d}", n + 1);
        int rc = store_checkout_update(a->s, "counter", co->version, "incomplete", doc);
        store_checkout_free(co);
        if (rc == 0)
            done++;
        else if (rc == AGENTD_ECONFLICT)
            a->conflicts++;
        else {
            a->failures++;
            return NULL;
        }
    }
    return NULL;
}

static void run_cas_race(struct ctx *c)
{
    make_checkout(c->s, "counter", 0);
    pthread_t th[CAS_THREADS];
    struct cas_arg args[CAS_THREADS];
    for (int i = 0; i < CAS_THREADS; i++) {
        args[i] = (struct cas_arg){ .s = c->s };
        assert_ok(pthread_create(&th[i], NULL, cas_worker, &args[i]));
    }
    int conflicts = 0;
    for (int i = 0; i < CAS_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
        conflicts += args[i].conflicts;
    }
    struct store_checkout *co = NULL;
    assert_ok(store_checkout_get(c->s, "counter", &co));
    char want[32];
    snprintf(want, sizeof want, "{\"n\":%d}", CAS_THREADS * CAS_INCREMENTS);
    assert_string_equal(co->document, want);
    assert_int_equal(co->version, CAS_THREADS * CAS_INCREMENTS + 1);
    store_checkout_free(co);
    print_message("    %d updates, %d conflicts retried\n", CAS_THREADS * CAS_INCREMENTS,
                  conflicts);
}

static void test_cas_no_lost_update(void **state) { run_cas_race(*state); }

static void test_cas_no_lost_update_single_connection(void **state)
{
    struct ctx *c = *state;
    reopen(c, 0, -1);
    run_cas_race(c);
}

/* ---- health ---- */

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A real write failure without a full disk: cap the file size this process
 * may write (what a full volume looks like to SQLite). */
static void test_disk_full_marks_unhealthy_until_a_write_succeeds(void **state)
{
    struct ctx *c = *state;
    if (!backend->file_based)
        skip();
    make_checkout(c->s, "co1", 0);
    size_t big_len = 4 << 20;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    memset(big, 'x', big_len);
    big[0] = '"';
    big[big_len - 1] = '"';
    big[big_len] = 0;

    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", c->url);
    off_t cap = file_size(c->url) > file_size(wal) ? file_size(c->url) : file_size(wal);
    struct rlimit old, lim;
    assert_ok(getrlimit(RLIMIT_FSIZE, &old));
    lim = old;
    lim.rlim_cur = (rlim_t)cap + (1 << 20);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_ok(setrlimit(RLIMIT_FSIZE, &lim));
    int rc = store_checkout_update(c->s, "co1", 1, "incomplete", big);
    int healthy_after_failure = store_healthy(c->s);
    struct store_checkout *co = NULL;
    int read_rc = store_checkout_get(c->s, "co1", &co);
    int healthy_after_read = store_healthy(c->s);
    assert_ok(setrlimit(RLIMIT_FSIZE, &old));
    signal(SIGXFSZ, prev);
    free(big);

    assert_int_equal(rc, AGENTD_EIO);
    assert_int_equal(healthy_after_failure, 0);
    assert_ok(read_rc); /* reads still work, and the failed write left nothing */
    assert_int_equal(co->version, 1);
    store_checkout_free(co);
    assert_int_equal(healthy_after_read, 0);
    /* The readiness probe notices recovery by itself (it tries a write). */
    assert_ok(store_ping(c->s));
    assert_int_equal(store_healthy(c->s), 1);
    assert_ok(store_checkout_update(c->s, "co1", 1, "incomplete", "{}"));
}

/* ---- backup ---- */

struct writer_arg {
    struct store *s;
    atomic_int stop;
    int written;
};

static void *background_writer(void *p)
{
    struct writer_arg *w = p;
    while (!atomic_load(&w->stop)) {
        struct store_audit e = { .principal = "bg", .action = "tick", .target = "",
                                 .request_id = "", .outcome = "ok" };
        if (store_audit_append(w->s, &e) == 0)
            w->written++;
    }
    return NULL;
}

static void test_backup_while_serving(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    struct store_message m = { .session_id = "s1", .role = "user", .parts = "[\"hi\"]" };
    assert_ok(store_message_append(c->s, &m));
    make_checkout(c->s, "co1", 0);
    assert_ok(store_checkout_update(c->s, "co1", 1, "ready_for_complete", "{\"n\":1}"));

    struct writer_arg w = { .s = c->s };
    pthread_t th;
    assert_ok(pthread_create(&th, NULL, background_writer, &w));
    char path[600];
    backend->make_url(c->dir, "backups/copy", path, sizeof path);
    usleep(20000);
    assert_ok(store_backup(c->s, path));
    /* Taken mid-write, the copy is still a whole database at one instant. */
    struct store *b = NULL;
    struct agentd_error err = { 0 };
    assert_ok(open_with(c, path, 0, 0, &b, &err));
    struct store_checkout *co = NULL;
    assert_ok(store_checkout_get(b, "co1", &co));
    store_checkout_free(co);
    store_close(b);

    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    assert_true(w.written > 0);
    assert_ok(store_backup(c->s, path)); /* replaces the previous copy */
    assert_ok(open_with(c, path, 0, 0, &b, &err));
    assert_ok(store_checkout_get(b, "co1", &co));
    assert_int_equal(co->version, 2);
    assert_string_equal(co->document, "{\"n\":1}");
    store_checkout_free(co);
    struct store_message *msgs = NULL;
    size_t n = 0;
    assert_ok(store_message_list(b, "s1", 0, 0, &msgs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(msgs[0].parts, "[\"hi\"]");
    store_message_list_free(msgs, n);
    struct store_audit *ev = NULL;
    assert_ok(store_audit_list(b, &(struct store_audit_query){ .principal = "bg" }, &ev, &n));
    assert_int_equal(n, (size_t)w.written);
    store_audit_list_free(ev, n);
    int v1, v2;
    assert_ok(store_schema_version(c->s, &v1));
    assert_ok(store_schema_version(b, &v2));
    assert_int_equal(v1, v2);
    store_close(b);
}

/* Deleted rows' pages go back to the filesystem: the database shrinks, and
 * what was kept is still there. */
static void test_vacuum_gives_space_back(void **state)
{
    struct ctx *c = *state;
    char big[8192];
    memset(big, 'x', sizeof big - 3);
    big[0] = '[';
    big[1] = '"';
    snprintf(big + sizeof big - 3, 3, "\"]");
    char id[32];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "s%d", i);
        make_session(c->s, id);
        struct store_message m = { .session_id = id, .role = "user", .parts = big };
        assert_ok(store_message_append(c->s, &m));
    }
    for (int i = 1; i < 200; i++) {
        snprintf(id, sizeof id, "s%d", i);
        assert_ok(store_session_delete_idle(c->s, id, "alice"));
    }
    int64_t before = 0, after = 0;
    assert_ok(store_vacuum(c->s, &before, &after));
    assert_true(before > 200 * 8192);
    /* the 199 deleted 8 KiB messages came back (the empty schema itself is
     * tens of pages, more with every table a migration adds) */
    assert_true(before - after > 199 * 8192);
    struct stat stb;
    if (backend->file_based) { /* the file itself shrank, the WAL was emptied */
        assert_int_equal(stat(c->url, &stb), 0);
        assert_true(stb.st_size <= after);
    }
    struct store_message *msgs = NULL;
    size_t n = 0;
    assert_ok(store_message_list(c->s, "s0", 0, 0, &msgs, &n));
    assert_int_equal(n, 1);
    assert_string_equal(msgs[0].parts, big);
    store_message_list_free(msgs, n);
    /* and the store still takes writes */
    make_session(c->s, "after-vacuum");
    assert_ok(store_vacuum(c->s, NULL, NULL));
}

/* ---- async ---- */

struct async_call {
    struct loop *loop;
    const char *id;
    struct store_checkout *result;
    int status;
    int on_loop;
    int worker_saw_loop;
};

static int op_checkout_get(struct store *s, void *args)
{
    struct async_call *a = args;
    a->worker_saw_loop = loop_current() != NULL;
    return store_checkout_get(s, a->id, &a->result);
}

static void async_done(int status, void *args)
{
    struct async_call *a = args;
    a->status = status;
    a->on_loop = loop_current() == a->loop;
    loop_stop(a->loop);
}

static void test_async_completes_on_loop(void **state)
{
    struct ctx *c = *state;
    make_checkout(c->s, "co1", 0);
    assert_ok(loop_global_init());
    struct loop *l = loop_new(0);
    assert_non_null(l);
    struct pool *p = pool_new(2, 0);
    assert_non_null(p);
    assert_int_equal(store_async(c->s, l, op_checkout_get, NULL, NULL), AGENTD_EINVAL);
    pool_set_default(p);

    struct async_call a = { .loop = l, .id = "co1", .status = -1 };
    assert_ok(store_async(c->s, l, op_checkout_get, &a, async_done));
    assert_ok(loop_run(l));
    assert_ok(a.status);
    assert_true(a.on_loop);
    assert_false(a.worker_saw_loop);
    assert_string_equal(a.result->id, "co1");
    store_checkout_free(a.result);

    struct async_call missing = { .loop = l, .id = "nope", .status = -1 };
    assert_ok(store_async(c->s, l, op_checkout_get, &missing, async_done));
    assert_ok(loop_run(l));
    assert_int_equal(missing.status, AGENTD_ENOTFOUND);
    assert_true(missing.on_loop);

    pool_free(p);
    pool_set_default(NULL);
    loop_free(l);

    struct buf out = { 0 };
    metrics_render(&out);
    assert_non_null(out.data);
    assert_non_null(strstr(out.data, "agentd_store_op_duration_seconds_count{op=\"checkout_get\"}"));
    assert_non_null(strstr(out.data, "agentd_worker_queue_depth 0"));
    buf_free(&out);
}

/* The value of one rendered series, e.g. name{op="x"}; 0 when absent. */
static double sample(const char *series)
{
    struct buf out = { 0 };
    metrics_render(&out);
    double v = 0;
    const char *at = out.data ? strstr(out.data, series) : NULL;
    if (at)
        v = strtod(at + strlen(series), NULL);
    buf_free(&out);
    return v;
}

static void test_errors_are_counted(void **state)
{
    struct ctx *c = *state;
    const char *errs = "agentd_store_errors_total{op=\"checkout_get\"}";
    const char *calls = "agentd_store_op_duration_seconds_count{op=\"checkout_get\"}";
    double e0 = sample(errs), n0 = sample(calls);
    struct store_checkout *co = NULL;
    /* Answers (not found) are not errors; bad arguments are. */
    assert_int_equal(store_checkout_get(c->s, "nope", &co), AGENTD_ENOTFOUND);
    assert_true(sample(errs) == e0);
    assert_int_equal(store_checkout_get(c->s, NULL, &co), AGENTD_EINVAL);
    assert_true(sample(errs) == e0 + 1);
    assert_true(sample(calls) == n0 + 2);
}

int main(void)
{
    const char *want = getenv("AGENTD_TEST_STORE");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (!backend && (!want || strcmp(want, backends[i].name) == 0))
            backend = &backends[i]; /* default: the first (sqlite) */
    if (!backend) {
        fprintf(stderr, "unknown AGENTD_TEST_STORE=%s\n", want);
        return 2;
    }
    fprintf(stderr, "store backend: %s\n", backend->name);
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_creates_dirs_and_migrates),
        T(test_open_refuses_bad_urls),
        T(test_migrate_is_idempotent),
        T(test_newer_schema_is_refused),
        T(test_corrupt_file_is_refused),
        T(test_meta),
        T(test_instance_heartbeats),
        T(test_principals_and_apikeys),
        T(test_apikey_by_id_scopes_and_list_all),
        T(test_sessions_and_messages),
        T(test_session_list_and_delete_idle),
        T(test_tasks),
        T(test_turn_finish_task),
        T(test_task_accept_is_one_transaction),
        T(test_task_list_owner),
        T(test_turns_and_checkpoints),
        T(test_turn_scan_pages_and_skips_an_instance),
        T(test_one_running_turn_per_session),
        T(test_racing_claims_one_wins),
        T(test_turn_begin_stores_instance_and_input),
        T(test_turn_adopt_is_a_compare_and_swap),
        T(test_racing_adopts_one_wins),
        T(test_turn_record_is_one_transaction),
        T(test_event_seq_and_paging),
        T(test_events_go_with_their_session),
        T(test_usage_sums_per_turn_session_and_day),
        T(test_turn_step_adds_usage_and_heartbeats),
        T(test_turn_step_record),
        T(test_turn_finish_events_is_one_transaction),
        T(test_usage_days_are_purged_after_400),
        T(test_events_and_usage_survive_reopen),
        T(test_migrate_from_version_3),
        T(test_checkout_cas),
        T(test_orders),
        T(test_stock),
        T(test_stock_last_unit_race),
        T(test_address_book),
        T(test_address_rotation_walk),
        T(test_idempotency_lifecycle),
        T(test_idempotency_lease_and_expiry),
        T(test_audit),
        T(test_audit_bump),
        T(test_audit_purge),
        T(test_ttl_makes_rows_invisible_at_once),
        T(test_purge_in_batches),
        T(test_cas_no_lost_update),
        T(test_cas_no_lost_update_single_connection),
        T(test_disk_full_marks_unhealthy_until_a_write_succeeds),
        T(test_backup_while_serving),
        T(test_vacuum_gives_space_back),
        T(test_async_completes_on_loop),
        T(test_errors_are_counted),
    };
    /* What a backend does not do by design, skipped by name and printed:
     * PostgreSQL is backed up by its own tools (pg_dump, base backups),
     * and its rows are compressed (TOAST), so freed bytes are no count of
     * the bytes deleted. */
    static const char *const pg_skips[] = { "test_backup_while_serving",
                                            "test_vacuum_gives_space_back" };
    struct CMUnitTest run[sizeof tests / sizeof tests[0]];
    size_t nrun = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int skip_it = 0;
        for (size_t k = 0; strcmp(backend->name, "postgres") == 0 &&
                           k < sizeof pg_skips / sizeof pg_skips[0]; k++)
            skip_it |= strcmp(tests[i].name, pg_skips[k]) == 0;
        if (skip_it)
            fprintf(stderr, "skipped on %s: %s\n", backend->name, tests[i].name);
        else
            run[nrun++] = tests[i];
    }
    int failed = _cmocka_run_group_tests("store", run, nrun, NULL, NULL);
    metrics_reset();
    return failed;
}
