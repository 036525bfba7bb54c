/* For unit suites that go through store.h: with AGENTD_TEST_PG_URL set (a
 * throw-away cluster, tests/pg/with-cluster.sh) they run on PostgreSQL too.
 * Include it after <cmocka.h>. */
#ifndef AGENTD_TEST_PG_FIXTURE_H
#define AGENTD_TEST_PG_FIXTURE_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

/* 0 with url = a fresh database's URL when AGENTD_TEST_PG_URL is set, else
 * -1 (use SQLite) */
static inline int test_pg_fresh_url(const char *tag, char *url, size_t len)
{
    const char *base = getenv("AGENTD_TEST_PG_URL");
    if (!base)
        return -1;
    static atomic_int serial;
    char db[96];
    snprintf(db, sizeof db, "u_%s_%d_%d", tag, (int)getpid(), atomic_fetch_add(&serial, 1));
    PGconn *admin = PQconnectdb(base);
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    PGresult *r = PQstatus(admin) == CONNECTION_OK ? PQexec(admin, sql) : NULL;
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "create database %s: %s\n", db, PQerrorMessage(admin));
    PQclear(r);
    PQfinish(admin);
    const char *slash = strrchr(base, '/');
    snprintf(url, len, "%.*s/%s", slash ? (int)(slash - base) : 0, base, db);
    return ok ? 0 : -1;
}

/* The backend a store suite runs on, as test_store.c picks it:
 * AGENTD_TEST_STORE=postgres (with AGENTD_TEST_PG_URL, tests/pg/with-cluster.sh)
 * or SQLite (unset or "sqlite"). */
static inline int test_store_is_pg(void)
{
    const char *want = getenv("AGENTD_TEST_STORE");
    return want && strcmp(want, "postgres") == 0;
}

/* A fresh store URL for one test: on PostgreSQL a new database (tag names
 * it), else sqlite_path (a file under the test's temp dir). 0 or -1: asked
 * for PostgreSQL and none could be made is a failure, never a silent SQLite. */
static inline int test_store_fresh_url(const char *tag, const char *sqlite_path, char *url,
                                       size_t len)
{
    if (!test_store_is_pg()) {
        snprintf(url, len, "%s", sqlite_path);
        return 0;
    }
    if (test_pg_fresh_url(tag, url, len) != 0) {
        fprintf(stderr, "AGENTD_TEST_STORE=postgres: no database (AGENTD_TEST_PG_URL %s)\n",
                getenv("AGENTD_TEST_PG_URL") ? "refused" : "unset");
        return -1;
    }
    return 0;
}

/* Runs the group, leaving out (and printing) the tests a backend does not
 * do by nature: on PostgreSQL those named in pg_skips (NULL-terminated). */
static inline int test_store_run_group(const char *group, const struct CMUnitTest *tests,
                                       size_t n, const char *const *pg_skips)
{
    struct CMUnitTest *run = calloc(n ? n : 1, sizeof *run);
    size_t nrun = 0;
    if (!run)
        return 1;
    fprintf(stderr, "store backend: %s\n", test_store_is_pg() ? "postgres" : "sqlite");
    for (size_t i = 0; i < n; i++) {
        int skip_it = 0;
        for (size_t k = 0; test_store_is_pg() && pg_skips && pg_skips[k]; k++)
            skip_it |= strcmp(tests[i].name, pg_skips[k]) == 0;
        if (skip_it)
            fprintf(stderr, "skipped on postgres: %s\n", tests[i].name);
        else
            run[nrun++] = tests[i];
    }
    int failed = _cmocka_run_group_tests(group, run, nrun, NULL, NULL);
    free(run);
    return failed;
}

#endif
