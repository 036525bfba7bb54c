/* What only the PostgreSQL backend has to prove beyond the conformance
 * suite: replicas (several stores on one database) and reconnecting. Runs
 * when AGENTD_TEST_PG_URL names a cluster (tests/pg/with-cluster.sh). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "core/err.h"
#include "store/store.h"

#define assert_ok(x) assert_int_equal((x), 0)

static PGconn *admin(void)
{
    PGconn *db = PQconnectdb(getenv("AGENTD_TEST_PG_URL"));
    assert_int_equal(PQstatus(db), CONNECTION_OK);
    return db;
}

static void admin_exec(const char *sql)
{
    PGconn *db = admin();
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(db);
}

/* A fresh database and its URL. */
static void fresh_db(const char *name, char *url, size_t len)
{
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    admin_exec(sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    admin_exec(sql);
    const char *base = getenv("AGENTD_TEST_PG_URL");
    const char *slash = strrchr(base, '/');
    snprintf(url, len, "%.*s/%s", (int)(slash - base), base, name);
}

static struct store *open_url(const char *url)
{
    struct store_options o = { .url = url, .readers = 2 };
    struct store *s = NULL;
    struct agentd_error err = { 0 };
    if (store_open(&o, &s, &err))
        fail_msg("open: %s", err.msg);
    return s;
}

/* ---- replicas starting together migrate once ---- */

struct opener {
    const char *url;
    struct store *s;
    int rc;
    char msg[256];
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    struct store_options opt = { .url = o->url, .readers = 1 };
    struct agentd_error err = { 0 };
    o->rc = store_open(&opt, &o->s, &err);
    snprintf(o->msg, sizeof o->msg, "%.200s", err.msg);
    return NULL;
}

static void test_replicas_starting_together_migrate_once(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_together", url, sizeof url);
    struct opener o[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct opener){ .url = url };
        assert_ok(pthread_create(&th[i], NULL, open_thread, &o[i]));
    }
    for (int i = 0; i < 4; i++)
        assert_ok(pthread_join(th[i], NULL));
    for (int i = 0; i < 4; i++) {
        if (o[i].rc)
            fail_msg("replica %d: %s", i, o[i].msg);
        int v = 0;
        assert_ok(store_schema_version(o[i].s, &v));
        assert_true(v >= 12);
        store_close(o[i].s);
    }
}

/* ---- claims hold across replicas ---- */

static void test_outbox_claims_never_overlap_across_replicas(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_outbox", url, sizeof url);
    struct store *a = open_url(url), *b = open_url(url);
    for (int i = 0; i < 20; i++) {
        char id[16];
        snprintf(id, sizeof id, "ev%02d", i);
        struct store_outbox ev = { .id = id, .kind = "webhook", .target = "http://127.0.0.1/",
                                   .body = "{}" };
        assert_ok(store_outbox_add(a, &ev));
    }
    struct store_outbox *va = NULL, *vb = NULL;
    size_t na = 0, nb = 0;
    assert_ok(store_outbox_claim(a, "webhook", "A", 60000, 12, &va, &na));
    assert_ok(store_outbox_claim(b, "webhook", "B", 60000, 12, &vb, &nb));
    assert_int_equal(na, 12);
    assert_int_equal(nb, 8); /* only what A did not hold */
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++)
            assert_string_not_equal(va[i].id, vb[j].id);
    store_outbox_list_free(va, na);
    store_outbox_list_free(vb, nb);
    store_close(a);
    store_close(b);
}

static void test_checkout_cas_across_replicas(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_cas", url, sizeof url);
    struct store *a = open_url(url), *b = open_url(url);
    struct store_checkout co = { .id = "co1", .owner = "alice", .status = "incomplete",
                                 .document = "{}" };
    assert_ok(store_checkout_create(a, &co));
    assert_ok(store_checkout_update(a, "co1", 1, "incomplete", "{\"by\":\"a\"}"));
    /* b read version 1 too: its write is refused, nothing lost */
    assert_int_equal(store_checkout_update(b, "co1", 1, "incomplete", "{\"by\":\"b\"}"),
                     AGENTD_ECONFLICT);
    struct store_session s = { .id = "s1", .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(a, &s));
    struct store_turn t1 = { .id = "t1", .session_id = "s1", .instance = "A" };
    struct store_turn t2 = { .id = "t2", .session_id = "s1", .instance = "B" };
    assert_ok(store_turn_begin(a, &t1, 60000));
    assert_int_equal(store_turn_begin(b, &t2, 60000), AGENTD_ECONFLICT); /* one running turn */
    store_close(a);
    store_close(b);
}

/* ---- a dead idle connection never breaks a call ---- */

static void test_server_side_disconnect_is_survived(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_reconnect", url, sizeof url);
    struct store *s = open_url(url);
    struct store_session v = { .id = "s1", .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(s, &v));
    /* what a server restart does to idle connections: all of them end */
    admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = 't_reconnect' AND pid <> pg_backend_pid()");
    usleep(100000);
    struct store_session *got = NULL;
    assert_ok(store_session_get(s, "s1", &got)); /* a read on a fresh connection */
    store_session_free(got);
    struct store_session w = { .id = "s2", .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(s, &w)); /* and a write */
    assert_ok(store_ping(s));
    assert_int_equal(store_healthy(s), 1);
    store_close(s);
}

/* While the database refuses connections the store says so (readyz), and
 * it recovers by itself once it is back. */
static void test_unreachable_database_is_unhealthy_then_recovers(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_down", url, sizeof url);
    struct store *s = open_url(url);
    admin_exec("ALTER DATABASE t_down ALLOW_CONNECTIONS false");
    admin_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = 't_down' AND pid <> pg_backend_pid()");
    usleep(100000);
    struct store_session v = { .id = "s1", .owner = "alice", .context = "{}" };
    assert_int_equal(store_session_create(s, &v), AGENTD_EIO);
    assert_int_equal(store_healthy(s), 0);
    assert_int_not_equal(store_ping(s), 0);
    admin_exec("ALTER DATABASE t_down ALLOW_CONNECTIONS true");
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) { /* the backoff is at most 5 s */
        usleep(100000);
        rc = store_ping(s);
    }
    assert_ok(rc);
    assert_int_equal(store_healthy(s), 1);
    assert_ok(store_session_create(s, &v));
    store_close(s);
}

/* ---- one principal's writes through two replicas ---- */

/* Every session, turn and model call of one principal updates the same
 * counter rows (quota_usage by trigger, usage_daily): through two replicas
 * they must wait for each other, never fail as "busy" (issue 15: 22 % of
 * the turns were 503 busy under SERIALIZABLE), and the session quota must
 * stay exact. */
#define HOT_THREADS 4
#define HOT_ROUNDS 150
#define HOT_QUOTA 400

struct hot {
    struct store *s;
    int id;
    int ok, quota, other;
    int last_rc;
};

static void *hot_thread(void *arg)
{
    struct hot *h = arg;
    for (int i = 0; i < HOT_ROUNDS; i++) {
        char sid[32], tid[32];
        snprintf(sid, sizeof sid, "s%d-%d", h->id, i);
        snprintf(tid, sizeof tid, "t%d-%d", h->id, i);
        /* a turn's two commits, as the runner makes them: the start (the
         * session, the claim, the user message, the audit row) and the end
         * (usage, the turn's end and its events) */
        int own = store_batch_begin(h->s) == 1;
        struct store_session v = { .id = sid, .owner = "alice", .context = "{}" };
        int rc = store_session_create(h->s, &v);
        struct store_turn t = { .id = tid, .session_id = sid, .instance = "X" };
        if (rc == 0)
            rc = store_turn_begin(h->s, &t, 60000);
        struct store_message m = { .session_id = sid, .role = "user", .parts = "[]" };
        if (rc == 0)
            rc = store_message_append(h->s, &m);
        struct store_audit a = { .principal = "alice", .action = "turn.start", .target = tid,
                                 .request_id = "r", .outcome = "ok" };
        if (rc == 0)
            rc = store_audit_append(h->s, &a);
        if (own) {
            int crc = store_batch_end(h->s);
            rc = rc ? rc : crc;
        }
        if (rc == AGENTD_EQUOTA) {
            h->quota++;
            continue;
        }
        own = rc == 0 && store_batch_begin(h->s) == 1;
        struct store_usage u = { .prompt_tokens = 3, .completion_tokens = 2, .calls = 1 };
        if (rc == 0)
            rc = store_turn_step(h->s, tid, "alice", "m", &u, NULL);
        struct store_event ev = { .session_id = sid, .turn_id = tid, .type = "turn-completed",
                                  .data = "{}" };
        if (rc == 0)
            rc = store_turn_finish_events(h->s, tid, "completed", &ev, 1);
        if (own) {
            int crc = store_batch_end(h->s);
            rc = rc ? rc : crc;
        }
        if (rc == 0)
            h->ok++;
        else {
            h->other++;
            h->last_rc = rc;
        }
    }
    return NULL;
}

static void test_one_principal_through_two_replicas(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_hot", url, sizeof url);
    struct store_options o = { .url = url, .readers = 2, .quota_sessions = HOT_QUOTA };
    struct store *st[2] = { NULL, NULL };
    for (int i = 0; i < 2; i++) {
        struct agentd_error err = { 0 };
        if (store_open(&o, &st[i], &err))
            fail_msg("open: %s", err.msg);
    }
    struct hot h[HOT_THREADS];
    pthread_t th[HOT_THREADS];
    for (int i = 0; i < HOT_THREADS; i++) {
        h[i] = (struct hot){ .s = st[i % 2], .id = i };
        assert_ok(pthread_create(&th[i], NULL, hot_thread, &h[i]));
    }
    int ok = 0, quota = 0;
    for (int i = 0; i < HOT_THREADS; i++) {
        assert_ok(pthread_join(th[i], NULL));
        if (h[i].other)
            fail_msg("thread %d: %d calls failed, the last with %d", i, h[i].other,
                     h[i].last_rc);
        ok += h[i].ok;
        quota += h[i].quota;
    }
    assert_int_equal(ok, HOT_QUOTA); /* exact across replicas */
    assert_int_equal(quota, HOT_THREADS * HOT_ROUNDS - HOT_QUOTA);
    struct store_usage day = { 0 };
    int64_t today = 0;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        today = ((int64_t)ts.tv_sec * 1000) / 86400000;
    }
    assert_ok(store_usage_day(st[0], "alice", today, &day));
    assert_int_equal(day.calls, HOT_QUOTA);
    assert_int_equal(day.prompt_tokens, 3 * HOT_QUOTA);
    store_close(st[0]);
    store_close(st[1]);
}

/* Two replicas numbering one session's messages and events at once: both
 * read the same max(seq), one insert loses on the key and runs again;
 * nothing fails, no number is taken twice or skipped. Two replicas
 * claiming one session's turn at once: one runs it, the other is told the
 * session is busy (409), never 503. */
#define SEQ_THREADS 4
#define SEQ_ROUNDS 80

struct seq_writer {
    struct store *s;
    pthread_barrier_t *go;
    int id, failed, last_rc, won, lost;
};

static void *seq_thread(void *arg)
{
    struct seq_writer *w = arg;
    pthread_barrier_wait(w->go);
    for (int i = 0; i < SEQ_ROUNDS; i++) {
        struct store_message m = { .session_id = "s1", .role = "user", .parts = "[]" };
        int rc = store_message_append(w->s, &m);
        struct store_event ev = { .session_id = "s1", .type = "text-delta", .data = "{}" };
        if (rc == 0)
            rc = store_event_append(w->s, &ev, 1);
        if (rc) {
            w->failed++;
            w->last_rc = rc;
        }
    }
    return NULL;
}

static void *claim_thread(void *arg)
{
    struct seq_writer *w = arg;
    for (int i = 0; i < SEQ_ROUNDS; i++) {
        char sid[16], tid[16];
        snprintf(sid, sizeof sid, "c%d", i);
        snprintf(tid, sizeof tid, "t%d-%d", w->id, i);
        struct store_turn t = { .id = tid, .session_id = sid, .instance = "X" };
        pthread_barrier_wait(w->go);
        int rc = store_turn_begin(w->s, &t, 60000);
        if (rc == 0)
            w->won++;
        else if (rc == AGENTD_ECONFLICT)
            w->lost++;
        else {
            w->failed++;
            w->last_rc = rc;
        }
    }
    return NULL;
}

static void test_session_numbers_and_claims_across_replicas(void **state)
{
    (void)state;
    char url[512];
    fresh_db("t_seq", url, sizeof url);
    struct store *st[2] = { open_url(url), open_url(url) };
    struct store_session v = { .id = "s1", .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(st[0], &v));
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, SEQ_THREADS);
    struct seq_writer w[SEQ_THREADS];
    pthread_t th[SEQ_THREADS];
    for (int i = 0; i < SEQ_THREADS; i++) {
        w[i] = (struct seq_writer){ .s = st[i % 2], .go = &go, .id = i };
        assert_ok(pthread_create(&th[i], NULL, seq_thread, &w[i]));
    }
    for (int i = 0; i < SEQ_THREADS; i++) {
        assert_ok(pthread_join(th[i], NULL));
        if (w[i].failed)
            fail_msg("writer %d: %d appends failed, the last with %d", i, w[i].failed,
                     w[i].last_rc);
    }
    pthread_barrier_destroy(&go);
    struct store_message *ms = NULL;
    size_t n = 0;
    assert_ok(store_message_list(st[1], "s1", 0, 0, &ms, &n));
    assert_int_equal(n, SEQ_THREADS * SEQ_ROUNDS);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ms[i].seq, (int64_t)i + 1);
    store_message_list_free(ms, n);

    for (int i = 0; i < SEQ_ROUNDS; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "c%d", i);
        struct store_session c = { .id = sid, .owner = "alice", .context = "{}" };
        assert_ok(store_session_create(st[0], &c));
    }
    pthread_barrier_init(&go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        w[i] = (struct seq_writer){ .s = st[i], .go = &go, .id = i };
        assert_ok(pthread_create(&th[i], NULL, claim_thread, &w[i]));
    }
    for (int i = 0; i < 2; i++) {
        assert_ok(pthread_join(th[i], NULL));
        if (w[i].failed)
            fail_msg("claimer %d: %d claims failed, the last with %d", i, w[i].failed,
                     w[i].last_rc);
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(w[0].won + w[1].won, SEQ_ROUNDS); /* one turn per session */
    assert_int_equal(w[0].lost + w[1].lost, SEQ_ROUNDS);
    store_close(st[0]);
    store_close(st[1]);
}

/* ---- read-then-write paths raced across replicas ----
 * Each round, two replicas (two stores on one database) run one call at
 * the same moment (a barrier per round); the test then asserts what must
 * hold whatever the interleaving. Rounds are bounded; no timing asserted. */
#define RACE_ROUNDS 60

struct racer;
typedef int (*race_fn)(struct racer *r, int round);
struct racer {
    struct store *s;
    pthread_barrier_t *go;
    race_fn fn;
    int id, rounds;
    int rc[RACE_ROUNDS * 4];
    char got[RACE_ROUNDS * 4][32]; /* what a call read back, when it reads */
};

static void *race_thread(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(r->go);
        r->rc[i] = r->fn(r, i);
    }
    return NULL;
}

/* Runs fn on both stores, rounds times, both at once each round. */
static void race_pair(struct store *st[2], race_fn fn, int rounds, struct racer r[2])
{
    pthread_barrier_t go;
    pthread_t th[2];
    assert_true(rounds <= RACE_ROUNDS * 4);
    pthread_barrier_init(&go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].s = st[i], r[i].go = &go, r[i].fn = fn, r[i].id = i, r[i].rounds = rounds;
        assert_ok(pthread_create(&th[i], NULL, race_thread, &r[i]));
    }
    for (int i = 0; i < 2; i++)
        assert_ok(pthread_join(th[i], NULL));
    pthread_barrier_destroy(&go);
}

/* Each round: one racer got 0, the other `loser`. */
static void assert_one_wins(const struct racer r[2], int rounds, int loser, const char *what)
{
    for (int i = 0; i < rounds; i++) {
        int a = r[0].rc[i], b = r[1].rc[i];
        if (!((a == 0 && b == loser) || (a == loser && b == 0)))
            fail_msg("%s, round %d: replicas answered %d and %d (want 0 and %d)", what, i, a, b,
                     loser);
    }
}

static void open_pair(const char *name, struct store_options *o, struct store *st[2])
{
    char url[512];
    fresh_db(name, url, sizeof url);
    o->url = url;
    o->readers = 2;
    for (int i = 0; i < 2; i++) {
        struct agentd_error err = { 0 };
        if (store_open(o, &st[i], &err))
            fail_msg("open: %s", err.msg);
    }
}

#define FAR_FUTURE 4102444800000LL /* 2100 */

static int idem_claim_round(struct racer *r, int i)
{
    char key[16], owner[16];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(owner, sizeof owner, "r%d", r->id);
    struct store_idem *ex = NULL;
    int rc = store_idem_claim(r->s, "alice", key, "fp", owner, FAR_FUTURE, &ex);
    if (rc == AGENTD_EEXIST && (!ex || !ex->owner))
        rc = AGENTD_ECORRUPT; /* a taken key answers with the live record */
    else if (ex)
        snprintf(r->got[i], sizeof r->got[i], "%s", ex->owner);
    store_idem_free(ex);
    return rc;
}

static int idem_takeover_round(struct racer *r, int i)
{
    char key[16], owner[16];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(owner, sizeof owner, "new%d", r->id);
    return store_idem_takeover(r->s, "alice", key, "dead", owner);
}

static int idem_finish_round(struct racer *r, int i)
{
    char key[16], body[8];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(body, sizeof body, "r%d", r->id);
    return store_idem_finish(r->s, "alice", key, 201, "{}", body, strlen(body));
}

/* An Idempotency-Key claimed through two replicas at once: one runs, the
 * other is shown the winner's claim (never a duplicate, never a 503); a
 * dead process's claim is taken over once; a claim finishes once. */
static void test_idempotency_claims_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_idem", &o, st);
    race_pair(st, idem_claim_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_EEXIST, "claim");
    for (int i = 0; i < RACE_ROUNDS; i++) { /* the loser saw the winner's claim */
        int loser = r[0].rc[i] == 0;
        assert_string_equal(r[loser].got[i], loser ? "r0" : "r1");
    }
    /* every claim now "dead"'s: two replicas take each over at once */
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_ok(store_idem_takeover(st[0], "alice", key, r[0].rc[i] == 0 ? "r0" : "r1",
                                      "dead"));
    }
    race_pair(st, idem_takeover_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ENOTFOUND, "takeover");
    race_pair(st, idem_finish_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ENOTFOUND, "finish");
    for (int i = 0; i < RACE_ROUNDS; i++) { /* the stored reply is the one that won */
        char key[16];
        struct store_idem *ex = NULL;
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(store_idem_begin(st[1], "alice", key, "fp", FAR_FUTURE, &ex),
                         AGENTD_EEXIST);
        assert_string_equal(ex->state, STORE_IDEM_DONE);
        assert_string_equal(ex->body, r[0].rc[i] == 0 ? "r0" : "r1");
        store_idem_free(ex);
    }
    store_close(st[0]);
    store_close(st[1]);
}

/* Both replicas claim one key and let it go (a 5xx drops the claim) over
 * and over: a claim that collides with a claim being dropped meanwhile is
 * a clean answer (run, or in progress), never an error. */
static int idem_claim_drop_round(struct racer *r, int i)
{
    (void)i;
    struct store_idem *ex = NULL;
    int rc = store_idem_begin(r->s, "alice", "hot", "fp", FAR_FUTURE, &ex);
    store_idem_free(ex);
    if (rc == 0)
        rc = store_idem_abandon(r->s, "alice", "hot");
    return rc == AGENTD_EEXIST ? 0 : rc;
}

static void test_idempotency_claim_while_dropped_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_idem_drop", &o, st);
    race_pair(st, idem_claim_drop_round, RACE_ROUNDS * 4, r);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < RACE_ROUNDS * 4; i++)
            if (r[k].rc[i])
                fail_msg("replica %d, round %d: %d", k, i, r[k].rc[i]);
    store_close(st[0]);
    store_close(st[1]);
}

/* Quotas hold exactly across replicas: sessions and idempotency records
 * (claims and A2A accepts alike) of one principal never pass the cap. */
#define QUOTA_CAP 25

static int quota_round(struct racer *r, int i)
{
    char id[32];
    snprintf(id, sizeof id, "q%d-%d", r->id, i);
    if (i % 3 == 0) {
        struct store_session v = { .id = id, .owner = "alice", .context = "{}" };
        return store_session_create(r->s, &v);
    }
    struct store_idem *ex = NULL;
    int rc;
    if (i % 3 == 1) {
        rc = store_idem_begin(r->s, "alice", id, "fp", FAR_FUTURE, &ex);
    } else {
        char ctx[40];
        snprintf(ctx, sizeof ctx, "ctx-%s", id);
        struct store_session ses = { .id = ctx, .owner = ctx, .context = "{}" }; /* its own cap */
        struct store_task t = { .id = id, .context_id = ctx, .owner = "alice",
                                .state = "working", .artifacts = "[]" };
        struct store_task_accept a = { .principal = "alice", .key = id, .fingerprint = "fp",
                                       .expires_at = FAR_FUTURE, .session = &ses, .task = &t };
        rc = store_task_accept(r->s, &a, &ex);
    }
    store_idem_free(ex);
    return rc;
}

static void test_quotas_exact_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { .quota_sessions = QUOTA_CAP, .quota_idempotency_keys = QUOTA_CAP };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_quota", &o, st);
    race_pair(st, quota_round, RACE_ROUNDS, r);
    int ok[2] = { 0, 0 }; /* sessions, idempotency records */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < RACE_ROUNDS; i++) {
            if (r[k].rc[i] == 0)
                ok[i % 3 != 0]++;
            else if (r[k].rc[i] != AGENTD_EQUOTA)
                fail_msg("replica %d, round %d: %d", k, i, r[k].rc[i]);
        }
    /* 40 session tries and 80 record tries against caps of 25 */
    assert_int_equal(ok[0], QUOTA_CAP);
    assert_int_equal(ok[1], QUOTA_CAP);
    store_close(st[0]);
    store_close(st[1]);
}

/* One A2A messageId accepted through two replicas at once: one task (and
 * its new context), the other replica shown the winner's task. */
static int accept_round(struct racer *r, int i)
{
    char key[16], ctx[24], task[24];
    snprintf(key, sizeof key, "m%d", i);
    snprintf(ctx, sizeof ctx, "ctx%d-%d", i, r->id);
    snprintf(task, sizeof task, "task%d-%d", i, r->id);
    struct store_session ses = { .id = ctx, .owner = "alice", .context = "{}" };
    struct store_task t = { .id = task, .context_id = ctx, .owner = "alice", .state = "working",
                            .artifacts = "[]" };
    struct store_task_accept a = { .principal = "alice", .key = key, .fingerprint = "fp",
                                   .expires_at = FAR_FUTURE, .session = &ses, .task = &t };
    struct store_idem *ex = NULL;
    int rc = store_task_accept(r->s, &a, &ex);
    if (rc == AGENTD_EEXIST && !ex)
        rc = AGENTD_ECORRUPT; /* the key's record is due, not "an id is taken" */
    else if (ex)
        snprintf(r->got[i], sizeof r->got[i], "%s", ex->body);
    store_idem_free(ex);
    return rc;
}

static void test_task_accept_once_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_accept", &o, st);
    race_pair(st, accept_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_EEXIST, "accept");
    for (int i = 0; i < RACE_ROUNDS; i++) {
        int winner = r[0].rc[i] == 0 ? 0 : 1;
        char task[24], ctx[24];
        snprintf(task, sizeof task, "task%d-%d", i, winner);
        assert_string_equal(r[!winner].got[i], task);
        struct store_task *t = NULL;
        snprintf(task, sizeof task, "task%d-%d", i, !winner);
        assert_int_equal(store_task_get(st[0], task, &t), AGENTD_ENOTFOUND);
        struct store_session *ses = NULL; /* the loser's context was not kept either */
        snprintf(ctx, sizeof ctx, "ctx%d-%d", i, !winner);
        assert_int_equal(store_session_get(st[0], ctx, &ses), AGENTD_ENOTFOUND);
    }
    store_close(st[0]);
    store_close(st[1]);
}

/* A dead process's running turn adopted by two replicas at once: one
 * adopts it, the other is told it moved on (409). */
static int adopt_round(struct racer *r, int i)
{
    char tid[16], me[8];
    snprintf(tid, sizeof tid, "at%d", i);
    snprintf(me, sizeof me, "r%d", r->id);
    return store_turn_adopt(r->s, tid, "dead", me);
}

static void test_turn_adopt_once_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_adopt", &o, st);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char sid[16], tid[16];
        snprintf(sid, sizeof sid, "as%d", i);
        snprintf(tid, sizeof tid, "at%d", i);
        struct store_session v = { .id = sid, .owner = "alice", .context = "{}" };
        assert_ok(store_session_create(st[0], &v));
        struct store_turn t = { .id = tid, .session_id = sid, .instance = "dead" };
        assert_ok(store_turn_begin(st[0], &t, 60000));
    }
    race_pair(st, adopt_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ECONFLICT, "adopt");
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char tid[16];
        snprintf(tid, sizeof tid, "at%d", i);
        struct store_turn *t = NULL;
        assert_ok(store_turn_get(st[1], tid, &t));
        assert_string_equal(t->instance, r[0].rc[i] == 0 ? "r0" : "r1");
        store_turn_free(t);
    }
    store_close(st[0]);
    store_close(st[1]);
}

/* Orders through two replicas: the last unit of a product sold once, and
 * one checkout completed once. */
static int last_unit_round(struct racer *r, int i)
{
    char co[24], ord[24], product[16];
    snprintf(co, sizeof co, "co%d-%d", i, r->id);
    snprintf(ord, sizeof ord, "ord%d-%d", i, r->id);
    snprintf(product, sizeof product, "P%d", i);
    struct store_order o = { .id = ord, .checkout_id = co, .owner = "alice", .document = "{}" };
    struct store_stock_line take[] = { { product, 1 }, { "PLENTY", 1 } };
    return store_order_create(r->s, &o, 1, "completed", "{}", take, 2);
}

static int same_checkout_round(struct racer *r, int i)
{
    char co[24], ord[24];
    snprintf(co, sizeof co, "same%d", i);
    snprintf(ord, sizeof ord, "sord%d-%d", i, r->id);
    struct store_order o = { .id = ord, .checkout_id = co, .owner = "alice", .document = "{}" };
    struct store_stock_line take[] = { { "PLENTY", 1 } };
    return store_order_create(r->s, &o, 1, "completed", "{}", take, 1);
}

static void test_orders_and_stock_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_orders", &o, st);
    struct store_stock_line plenty[] = { { "PLENTY", 1000 } };
    assert_ok(store_stock_seed(st[0], plenty, 1, 0));
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char id[24];
        snprintf(id, sizeof id, "P%d", i);
        struct store_stock_line one[] = { { id, 1 } };
        assert_ok(store_stock_seed(st[0], one, 1, 0));
        for (int k = 0; k < 3; k++) {
            if (k < 2)
                snprintf(id, sizeof id, "co%d-%d", i, k);
            else
                snprintf(id, sizeof id, "same%d", i);
            struct store_checkout co = { .id = id, .owner = "alice", .status = "incomplete",
                                         .document = "{}" };
            assert_ok(store_checkout_create(st[0], &co));
        }
    }
    race_pair(st, last_unit_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ESTOCK, "last unit");
    race_pair(st, same_checkout_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ECONFLICT, "same checkout");
    int64_t left = -1;
    assert_ok(store_stock_get(st[1], "PLENTY", &left));
    assert_int_equal(left, 1000 - 2 * RACE_ROUNDS); /* one unit per order placed */
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char id[24];
        snprintf(id, sizeof id, "P%d", i);
        assert_ok(store_stock_get(st[1], id, &left));
        assert_int_equal(left, 0);
        struct store_order *ord = NULL;
        snprintf(id, sizeof id, "sord%d-%d", i, r[0].rc[i] == 0 ? 1 : 0);
        assert_int_equal(store_order_get(st[1], id, &ord), AGENTD_ENOTFOUND);
    }
    store_close(st[0]);
    store_close(st[1]);
}

/* An address saved through two replicas at once: saved once, the first
 * body kept, neither call failing. An audit burst bumped through two
 * replicas at once: one row, every event counted. */
static int address_round(struct racer *r, int i)
{
    char id[16], body[16];
    snprintf(id, sizeof id, "addr%d", i);
    snprintf(body, sizeof body, "sealed-%d", r->id);
    return store_address_save(r->s, id, "john@example.com", body);
}

static int audit_round(struct racer *r, int i)
{
    char target[16];
    snprintf(target, sizeof target, "10.0.0.%d", i);
    struct store_audit a = { .principal = "anonymous", .action = "auth.fail", .target = target,
                             .request_id = "r", .outcome = "denied", .count = 1 + r->id };
    return store_audit_bump(r->s, &a, 0);
}

static void test_address_and_audit_bursts_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { 0 };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_rows", &o, st);
    race_pair(st, address_round, RACE_ROUNDS, r);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < RACE_ROUNDS; i++)
            assert_int_equal(r[k].rc[i], 0);
    struct store_address *addr = NULL;
    size_t n = 0;
    assert_ok(store_address_list(st[1], "john@example.com", 1000, &addr, &n));
    assert_int_equal(n, RACE_ROUNDS);
    store_address_list_free(addr, n);

    race_pair(st, audit_round, RACE_ROUNDS, r);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < RACE_ROUNDS; i++)
            assert_int_equal(r[k].rc[i], 0);
    struct store_audit *rows = NULL;
    struct store_audit_query q = { .principal = "anonymous" };
    assert_ok(store_audit_list(st[1], &q, &rows, &n));
    int dup = 0;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += rows[i].count;
        for (size_t j = 0; j < i; j++)
            dup += strcmp(rows[i].target, rows[j].target) == 0;
    }
    store_audit_list_free(rows, n);
    assert_int_equal(total, 3 * RACE_ROUNDS); /* 1 + 2 per burst: nothing lost */
    if (dup)
        fail_msg("%d bursts were split into two rows", dup);
    assert_int_equal(n, RACE_ROUNDS);
    store_close(st[0]);
    store_close(st[1]);
}

/* An outbox row whose claim's lease ran out: its old holder finishing it
 * and another replica claiming it, at once. Exactly one of them has it:
 * never delivered and handed out again, never both refused. */
static _Atomic int64_t race_now = 1700000000000;
static int64_t race_clock(void *ud)
{
    (void)ud;
    return atomic_load(&race_now);
}

static int outbox_round(struct racer *r, int i)
{
    char id[16], kind[16];
    snprintf(id, sizeof id, "ob%d", i);
    snprintf(kind, sizeof kind, "k%d", i);
    if (r->id == 0)
        return store_outbox_finish(r->s, id, "A", "delivered", 0, NULL);
    struct store_outbox *v = NULL;
    size_t n = 0;
    int rc = store_outbox_claim(r->s, kind, "B", 60000, 10, &v, &n);
    snprintf(r->got[i], sizeof r->got[i], "%zu", n);
    store_outbox_list_free(v, n);
    return rc;
}

static void test_outbox_finish_or_reclaim_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { .now = race_clock };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_outbox", &o, st);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char id[16], kind[16];
        snprintf(id, sizeof id, "ob%d", i);
        snprintf(kind, sizeof kind, "k%d", i); /* a kind per round: one row each */
        struct store_outbox ev = { .id = id, .kind = kind, .target = "http://127.0.0.1/",
                                   .body = "{}" };
        assert_ok(store_outbox_add(st[0], &ev));
        struct store_outbox *v = NULL;
        size_t n = 0;
        assert_ok(store_outbox_claim(st[0], kind, "A", 1000, 10, &v, &n));
        assert_int_equal(n, 1);
        store_outbox_list_free(v, n);
    }
    atomic_fetch_add(&race_now, 2000); /* every lease of A's has ended */
    race_pair(st, outbox_round, RACE_ROUNDS, r);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        int finished = r[0].rc[i] == 0, claimed = strcmp(r[1].got[i], "1") == 0;
        assert_ok(r[1].rc[i]);
        if (!finished)
            assert_int_equal(r[0].rc[i], AGENTD_ECONFLICT);
        if (finished == claimed)
            fail_msg("round %d: finished %d, claimed again %d", i, finished, claimed);
        char id[16];
        snprintf(id, sizeof id, "ob%d", i);
        struct store_outbox *ev = NULL;
        assert_ok(store_outbox_get(st[1], id, &ev));
        assert_string_equal(ev->state, finished ? "delivered" : "pending");
        assert_int_equal(ev->attempts, finished ? 1 : 0);
        if (claimed)
            assert_string_equal(ev->claimed_by, "B");
        store_outbox_free(ev);
    }
    store_close(st[0]);
    store_close(st[1]);
}

/* A session whose running turn's process stopped beating (lease over):
 * two replicas start a turn there at once. The stale turn is failed, one
 * new turn runs, the other replica is told the session is busy (409). */
static int stale_claim_round(struct racer *r, int i)
{
    char sid[16], tid[16], me[8];
    snprintf(sid, sizeof sid, "ss%d", i);
    snprintf(tid, sizeof tid, "new%d-%d", i, r->id);
    snprintf(me, sizeof me, "r%d", r->id);
    struct store_turn t = { .id = tid, .session_id = sid, .instance = me };
    return store_turn_begin(r->s, &t, 1000);
}

static void test_stale_turn_claimed_once_across_replicas(void **state)
{
    (void)state;
    struct store_options o = { .now = race_clock };
    struct store *st[2];
    struct racer r[2];
    open_pair("t_race_stale", &o, st);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char sid[16], tid[16];
        snprintf(sid, sizeof sid, "ss%d", i);
        snprintf(tid, sizeof tid, "old%d", i);
        struct store_session v = { .id = sid, .owner = "alice", .context = "{}" };
        assert_ok(store_session_create(st[0], &v));
        struct store_turn t = { .id = tid, .session_id = sid, .instance = "dead" };
        assert_ok(store_turn_begin(st[0], &t, 1000));
    }
    atomic_fetch_add(&race_now, 5000); /* every old turn's lease is over */
    race_pair(st, stale_claim_round, RACE_ROUNDS, r);
    assert_one_wins(r, RACE_ROUNDS, AGENTD_ECONFLICT, "stale claim");
    for (int i = 0; i < RACE_ROUNDS; i++) {
        char tid[16];
        snprintf(tid, sizeof tid, "old%d", i);
        struct store_turn *t = NULL;
        assert_ok(store_turn_get(st[1], tid, &t));
        assert_string_equal(t->state, "failed");
        store_turn_free(t);
    }
    store_close(st[0]);
    store_close(st[1]);
}

int main(void)
{
    if (!getenv("AGENTD_TEST_PG_URL")) {
        fprintf(stderr, "AGENTD_TEST_PG_URL unset: skipped (test_store_pg_cluster runs it)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replicas_starting_together_migrate_once),
        cmocka_unit_test(test_outbox_claims_never_overlap_across_replicas),
        cmocka_unit_test(test_checkout_cas_across_replicas),
        cmocka_unit_test(test_one_principal_through_two_replicas),
        cmocka_unit_test(test_session_numbers_and_claims_across_replicas),
        cmocka_unit_test(test_idempotency_claims_across_replicas),
        cmocka_unit_test(test_idempotency_claim_while_dropped_across_replicas),
        cmocka_unit_test(test_quotas_exact_across_replicas),
        cmocka_unit_test(test_task_accept_once_across_replicas),
        cmocka_unit_test(test_turn_adopt_once_across_replicas),
        cmocka_unit_test(test_orders_and_stock_across_replicas),
        cmocka_unit_test(test_address_and_audit_bursts_across_replicas),
        cmocka_unit_test(test_outbox_finish_or_reclaim_across_replicas),
        cmocka_unit_test(test_stale_turn_claimed_once_across_replicas),
        cmocka_unit_test(test_server_side_disconnect_is_survived),
        cmocka_unit_test(test_unreachable_database_is_unhealthy_then_recovers),
    };
    return cmocka_run_group_tests_name("store_pg", tests, NULL, NULL);
}
