/* For unit suites that go through store.h: with AGENTD_TEST_PG_URL set (a
 * throw-away cluster, tests/pg/with-cluster.sh) they run on PostgreSQL too. */
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

#endif
