/* Store batches (store_batch_begin/end): several write calls of one job
 * in one commit, each still all-or-nothing on its own. On SQLite, or on
 * PostgreSQL with AGENTD_TEST_STORE=postgres (pg_fixture.h). */
#define _GNU_SOURCE
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/err.h"
#include "core/metrics.h"
#include "store/store.h"

#include "pg_fixture.h"

#define assert_ok(x) assert_int_equal((x), 0)

struct ctx {
    char dir[64];
    char url[256]; /* the same database across reopens */
    struct store *s;
};

static int open_in(struct ctx *c, int readers)
{
    struct store_options o = { .url = c->url, .sync = STORE_SYNC_NORMAL, .readers = readers };
    struct agentd_error err = { 0 };
    int rc = store_open(&o, &c->s, &err);
    if (rc)
        fprintf(stderr, "open: %s\n", err.msg);
    return rc;
}

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-batch-XXXXXX");
    char path[128];
    if (!mkdtemp(c->dir))
        return -1;
    snprintf(path, sizeof path, "%s/agentd.db", c->dir);
    if (test_store_fresh_url("batch", path, c->url, sizeof c->url) != 0 || open_in(c, 2) != 0)
        return -1;
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

static int teardown(void **state)
{
    struct ctx *c = *state;
    store_close(c->s);
    nftw(c->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

static int has_session(struct store *s, const char *id)
{
    struct store_session *got = NULL;
    int rc = store_session_get(s, id, &got);
    store_session_free(got);
    assert_true(rc == 0 || rc == AGENTD_ENOTFOUND);
    return rc == 0;
}

static void make_session(struct store *s, const char *id)
{
    struct store_session v = { .id = (char *)id, .owner = "alice", .context = "{}" };
    assert_ok(store_session_create(s, &v));
}

static void test_writes_commit_together_at_the_end(void **state)
{
    struct ctx *c = *state;
    assert_false(store_batch_open(c->s));
    assert_int_equal(store_batch_begin(c->s), 1);
    assert_true(store_batch_open(c->s));
    assert_int_equal(store_batch_begin(c->s), 0); /* one at a time */
    make_session(c->s, "s1");
    make_session(c->s, "s2");
    /* reads see what was committed: nothing of the batch yet */
    assert_false(has_session(c->s, "s1"));
    assert_false(has_session(c->s, "s2"));
    assert_ok(store_batch_end(c->s));
    assert_false(store_batch_open(c->s));
    assert_true(has_session(c->s, "s1"));
    assert_true(has_session(c->s, "s2"));
    /* after the batch, a write commits on its own again */
    make_session(c->s, "s3");
    assert_true(has_session(c->s, "s3"));
}

static void test_a_failed_write_leaves_nothing_of_itself(void **state)
{
    struct ctx *c = *state;
    struct store_task t = { .id = "task1", .context_id = "nope", .owner = "alice",
                            .state = "working", .artifacts = "{}" };
    struct store_task_accept a = { .principal = "alice", .key = "m1", .fingerprint = "fp1",
                                   .expires_at = 4102444800000LL, .task = &t };
    struct store_idem *ex = NULL;
    assert_int_equal(store_batch_begin(c->s), 1);
    make_session(c->s, "s1");
    /* the claim is written, then the task's context is not there: the
     * accept as a whole is undone, the session before it is not */
    assert_int_equal(store_task_accept(c->s, &a, &ex), AGENTD_ENOTFOUND);
    assert_null(ex);
    make_session(c->s, "s2");
    struct store_session dup = { .id = "s2", .owner = "bob", .context = "{}" };
    assert_int_equal(store_session_create(c->s, &dup), AGENTD_EEXIST);
    assert_ok(store_batch_end(c->s));
    assert_true(has_session(c->s, "s1"));
    assert_true(has_session(c->s, "s2"));
    struct store_session *got = NULL;
    assert_ok(store_session_get(c->s, "s2", &got));
    assert_string_equal(got->owner, "alice");
    store_session_free(got);
    /* no claim was kept: the messageId is free */
    assert_ok(store_idem_begin(c->s, "alice", "m1", "fp1", 4102444800000LL, &ex));
    assert_null(ex);
}

/* The batch's first write runs with no savepoint of its own: its failure
 * undoes the (so far empty) transaction, and the batch goes on. */
static void test_a_failed_first_write_leaves_nothing_either(void **state)
{
    struct ctx *c = *state;
    struct store_task t = { .id = "task1", .context_id = "nope", .owner = "alice",
                            .state = "working", .artifacts = "{}" };
    struct store_task_accept a = { .principal = "alice", .key = "m1", .fingerprint = "fp1",
                                   .expires_at = 4102444800000LL, .task = &t };
    struct store_idem *ex = NULL;
    assert_int_equal(store_batch_begin(c->s), 1);
    assert_int_equal(store_task_accept(c->s, &a, &ex), AGENTD_ENOTFOUND);
    make_session(c->s, "s1");
    struct store_session dup = { .id = "s1", .owner = "bob", .context = "{}" };
    assert_int_equal(store_session_create(c->s, &dup), AGENTD_EEXIST);
    make_session(c->s, "s2");
    assert_ok(store_batch_end(c->s));
    assert_true(has_session(c->s, "s1") && has_session(c->s, "s2"));
    assert_ok(store_idem_begin(c->s, "alice", "m1", "fp1", 4102444800000LL, &ex));
    assert_null(ex);
}

static void *write_other(void *arg)
{
    make_session(arg, "other");
    return NULL;
}

/* Nothing pending after a failed first write: the writer is free for
 * other threads while the batch's thread waits (a claim held elsewhere). */
static void test_a_failed_first_write_lets_the_writer_go(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    assert_int_equal(store_batch_begin(c->s), 1);
    struct store_session dup = { .id = "s1", .owner = "bob", .context = "{}" };
    assert_int_equal(store_session_create(c->s, &dup), AGENTD_EEXIST);
    pthread_t th;
    assert_ok(pthread_create(&th, NULL, write_other, c->s));
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    int joined = pthread_timedjoin_np(th, NULL, &until);
    if (joined != 0) { /* it waits for the writer: end the batch so it can finish */
        store_batch_end(c->s);
        pthread_join(th, NULL);
        fail_msg("a batch with nothing pending kept the writer");
    }
    assert_true(has_session(c->s, "other"));
    make_session(c->s, "s2");
    assert_ok(store_batch_end(c->s));
    assert_true(has_session(c->s, "s2"));
}

static void test_a_batch_with_no_write_commits_nothing(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(store_batch_begin(c->s), 1);
    assert_false(has_session(c->s, "s1"));
    assert_ok(store_batch_end(c->s));
    make_session(c->s, "s1"); /* the writer was never held */
    assert_true(has_session(c->s, "s1"));
}

static void test_without_readers_each_write_commits_alone(void **state)
{
    struct ctx *c = *state;
    store_close(c->s);
    c->s = NULL;
    assert_ok(open_in(c, -1)); /* reads go through the writer: no batches */
    assert_int_equal(store_batch_begin(c->s), 0);
    assert_false(store_batch_open(c->s));
    make_session(c->s, "s1");
    assert_true(has_session(c->s, "s1"));
}

#define THREADS 4
#define ROUNDS 100

struct racer {
    struct store *s;
    int id;
    int failed;
};

/* Batches of several threads at once: each holds the writer in turn. */
static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < ROUNDS && !r->failed; i++) {
        if (store_batch_begin(r->s) != 1) {
            r->failed = 1;
            break;
        }
        for (int k = 0; k < 2; k++) {
            char id[64];
            snprintf(id, sizeof id, "r%d-%d-%d", r->id, i, k);
            struct store_session v = { .id = id, .owner = "alice", .context = "{}" };
            if (store_session_create(r->s, &v) != 0)
                r->failed = 1;
        }
        if (store_batch_end(r->s) != 0)
            r->failed = 1;
    }
    return NULL;
}

static void test_batches_of_several_threads_take_turns(void **state)
{
    struct ctx *c = *state;
    pthread_t th[THREADS];
    struct racer r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct racer){ .s = c->s, .id = i };
        assert_ok(pthread_create(&th[i], NULL, race, &r[i]));
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_false(r[i].failed);
    }
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < 2; k++) {
            char id[64];
            snprintf(id, sizeof id, "r%d-%d-%d", i, ROUNDS - 1, k);
            assert_true(has_session(c->s, id));
        }
}

/* SQLite's temporary files (the statement journal among them) open as
 * /<tmp>/etilqs_*, unlinked at once: seen only among the open fds. */
static int open_temp_files(void)
{
    char link[64], target[512];
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strstr(target, "etilqs_") != NULL;
    }
    return n;
}

/* A batch's later writes each run in a savepoint, which copies every page
 * an earlier write of the batch dirtied into the statement journal before
 * changing it. That journal must stay in memory: once it passed SQLite's
 * default 64 KiB it went to a temporary file (an open, a pwrite per page,
 * never truncated until the commit), most of the extra writes of a busy
 * group commit. */
static void test_the_statement_journal_stays_in_memory(void **state)
{
    struct ctx *c = *state;
    size_t big = 256 * 1024;
    char *ctx1 = malloc(big + 16), *ctx2 = malloc(big + 16);
    assert_non_null(ctx1);
    assert_non_null(ctx2);
    snprintf(ctx1, 16, "{\"a\":\"");
    memset(ctx1 + 6, 'x', big);
    strcpy(ctx1 + 6 + big, "\"}");
    strcpy(ctx2, ctx1);
    memset(ctx2 + 6, 'y', big);
    assert_int_equal(store_batch_begin(c->s), 1);
    struct store_session v = { .id = "big", .owner = "alice", .context = ctx1 };
    assert_ok(store_session_create(c->s, &v)); /* opens the transaction */
    make_session(c->s, "s1");                  /* a savepoint: the batch is under way */
    /* rewrites the ~64 overflow pages the first write dirtied */
    assert_ok(store_session_update(c->s, "big", ctx2));
    assert_ok(store_session_update(c->s, "big", ctx1));
    int temp_files = open_temp_files();
    assert_ok(store_batch_end(c->s));
    assert_int_equal(temp_files, 0);
    struct store_session *got = NULL;
    assert_ok(store_session_get(c->s, "big", &got));
    assert_string_equal(got->context, ctx1);
    store_session_free(got);
    free(ctx1);
    free(ctx2);
}

/* Statements the writer ran so far (agentd_store_statements_total). */
static double statements(void)
{
    return metric_value(metric_only(metric_register("agentd_store_statements_total", "",
                                                    METRIC_COUNTER, NULL, NULL)));
}

/* A running turn t1 in session s1, and a step's message and two events. */
static void turn_fixture(struct store *s, struct store_message *m, struct store_event ev[2])
{
    make_session(s, "s1");
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "i1" };
    assert_ok(store_turn_begin(s, &t, 0));
    *m = (struct store_message){ .session_id = "s1", .role = "agent", .parts = "[]" };
    for (int i = 0; i < 2; i++)
        ev[i] = (struct store_event){ .session_id = "s1", .turn_id = "t1", .type = "text-delta",
                                      .data = "{}" };
}

static void assert_step_written(struct store *s, const struct store_message *m,
                                const struct store_event ev[2], int64_t step)
{
    assert_true(m->seq > 0);
    assert_int_equal(ev[1].seq, ev[0].seq + 1);
    struct store_checkpoint *cps = NULL;
    size_t n = 0;
    assert_ok(store_checkpoint_list(s, "t1", &cps, &n));
    assert_int_equal(n, (size_t)step + 1);
    assert_int_equal(cps[step].step, step);
    store_checkpoint_list_free(cps, n);
}

/* A step's record checks the turn and touches its session once: the
 * statements a turn runs are most of a /chat turn's CPU (issue 14). */
static void test_a_record_runs_each_check_once(void **state)
{
    struct ctx *c = *state;
    struct store_message m;
    struct store_event ev[2];
    turn_fixture(c->s, &m, ev);
    struct store_checkpoint cp = { .turn_id = "t1", .step = 0, .kind = "user_message",
                                   .payload = "{}" };
    double n0 = statements();
    assert_ok(store_turn_record(c->s, &cp, &m, ev, 2));
    double used = statements() - n0;
    /* BEGIN, live, checkpoint, the stop flag, heartbeat, in-session, touch,
     * message seq, message, event seq, 2 events, COMMIT (SQLite: reads and
     * plain writes, no RETURNING — test_store_wal.c) */
    assert_true(used <= 13);
    assert_step_written(c->s, &m, ev, 0);
}

static void test_a_step_record_checks_nothing_twice(void **state)
{
    struct ctx *c = *state;
    struct store_message m;
    struct store_event ev[2];
    turn_fixture(c->s, &m, ev);
    struct store_checkpoint cp = { .turn_id = "t1", .step = 0, .kind = "llm_reply",
                                   .payload = "{}" };
    struct store_usage u = { .prompt_tokens = 3, .completion_tokens = 2, .calls = 1 };
    int interrupt = -1;
    double n0 = statements();
    assert_ok(store_turn_step_record(c->s, "t1", "alice", "m", &u, &interrupt, &cp, &m, ev, 2));
    double used = statements() - n0;
    /* BEGIN, usage, usage_daily, the stop flag, heartbeat, SAVEPOINT,
     * checkpoint, in-session, touch, message seq, message, event seq,
     * 2 events, RELEASE, COMMIT: no second live check or heartbeat */
    assert_true(used <= 16);
    assert_int_equal(interrupt, 0);
    assert_step_written(c->s, &m, ev, 0);
    /* a message into another session is still refused, and leaves nothing */
    struct store_message other = { .session_id = "s2", .role = "agent", .parts = "[]" };
    make_session(c->s, "s2");
    cp.step = 1;
    assert_int_equal(store_turn_record(c->s, &cp, &other, ev, 2), AGENTD_EINVAL);
    struct store_event bad[2] = { ev[0], ev[1] };
    bad[1].session_id = "s2";
    assert_int_equal(store_turn_record(c->s, &cp, &m, bad, 2), AGENTD_EINVAL);
}

/* In a batch, a record right after its turn's claim (or its last step)
 * runs no check of the turn again: the batch holds the writer, nobody
 * else can end or expire the turn in between (issue 14). */
static void test_a_record_after_its_claim_in_a_batch_checks_nothing_again(void **state)
{
    struct ctx *c = *state;
    struct store_message m;
    struct store_event ev[2];
    make_session(c->s, "s1");
    assert_int_equal(store_batch_begin(c->s), 1);
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "i1" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    m = (struct store_message){ .session_id = "s1", .role = "user", .parts = "[]" };
    for (int i = 0; i < 2; i++)
        ev[i] = (struct store_event){ .session_id = "s1", .turn_id = "t1", .type = "text-delta",
                                      .data = "{}" };
    struct store_checkpoint cp = { .turn_id = "t1", .step = 0, .kind = "user_message",
                                   .payload = "{}" };
    double n0 = statements();
    assert_ok(store_turn_record(c->s, &cp, &m, ev, 2));
    double used = statements() - n0;
    /* SAVEPOINT, checkpoint, touch, message seq, message, event seq,
     * 2 events, RELEASE: no live check, stop flag, heartbeat, in-session */
    if (!test_store_is_pg())
        assert_true(used <= 9);
    /* and the record after that one (a tool result after its step): nor
     * the session's touch, which the record before did in this commit */
    struct store_checkpoint cp1 = { .turn_id = "t1", .step = 1, .kind = "tool_result",
                                    .payload = "{}" };
    n0 = statements();
    assert_ok(store_turn_record(c->s, &cp1, &m, ev, 2));
    used = statements() - n0;
    if (!test_store_is_pg())
        assert_true(used <= 8);
    int64_t last_seq = ev[1].seq;
    /* the finish right after: SAVEPOINT, the finish, event seq, event,
     * RELEASE; no in-session check or touch */
    struct store_event end = { .session_id = "s1", .turn_id = "t1", .type = "turn-completed",
                               .data = "{}" };
    n0 = statements();
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", &end, 1));
    used = statements() - n0;
    if (!test_store_is_pg())
        assert_true(used <= 5);
    assert_int_equal(end.seq, last_seq + 1);
    assert_ok(store_batch_end(c->s));
    assert_step_written(c->s, &m, ev, 1);
    struct store_turn *got = NULL;
    assert_ok(store_turn_get(c->s, "t1", &got));
    assert_string_equal(got->state, "completed");
    store_turn_free(got);
    /* a message into another session is still refused */
    make_session(c->s, "s2");
    assert_int_equal(store_batch_begin(c->s), 1);
    struct store_turn t3 = { .id = "t3", .session_id = "s2", .instance = "i1" };
    assert_ok(store_turn_begin(c->s, &t3, 0));
    struct store_checkpoint cp3 = { .turn_id = "t3", .step = 0, .kind = "user_message",
                                    .payload = "{}" };
    assert_int_equal(store_turn_record(c->s, &cp3, &m, NULL, 0), AGENTD_EINVAL);
    assert_ok(store_batch_end(c->s));
}

/* What the batch knows of a turn holds for its next write only: a write
 * in between (the turn's finish) and the checks run again. */
static void test_a_record_after_another_write_in_a_batch_checks_again(void **state)
{
    struct ctx *c = *state;
    make_session(c->s, "s1");
    assert_int_equal(store_batch_begin(c->s), 1);
    struct store_turn t = { .id = "t1", .session_id = "s1", .instance = "i1" };
    assert_ok(store_turn_begin(c->s, &t, 0));
    assert_ok(store_turn_finish_events(c->s, "t1", "completed", NULL, 0));
    struct store_message m = { .session_id = "s1", .role = "user", .parts = "[]" };
    struct store_checkpoint cp = { .turn_id = "t1", .step = 0, .kind = "user_message",
                                   .payload = "{}" };
    assert_int_equal(store_turn_record(c->s, &cp, &m, NULL, 0), AGENTD_ECONFLICT);
    /* another turn than the one just claimed is checked, and is not there */
    struct store_turn t2 = { .id = "t2", .session_id = "s1", .instance = "i1" };
    assert_ok(store_turn_begin(c->s, &t2, 0));
    cp.turn_id = "t9";
    assert_int_equal(store_turn_record(c->s, &cp, &m, NULL, 0), AGENTD_ENOTFOUND);
    assert_ok(store_batch_end(c->s));
}

/* In a batch's open transaction an audit row (one INSERT) runs no
 * SAVEPOINT and RELEASE of its own; it still commits with the batch. */
static void test_an_audit_row_in_a_batch_is_one_statement(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(store_batch_begin(c->s), 1);
    make_session(c->s, "s1");
    struct store_audit a = { .principal = "alice", .action = "turn.start", .target = "t1",
                             .request_id = "r1", .outcome = "ok" };
    double n0 = statements();
    assert_ok(store_audit_append(c->s, &a));
    double used = statements() - n0;
    if (!test_store_is_pg())
        assert_true(used <= 1);
    a.action = "turn.end";
    assert_ok(store_audit_append(c->s, &a));
    assert_ok(store_batch_end(c->s));
    struct store_audit *rows = NULL;
    size_t n = 0;
    assert_ok(store_audit_list(c->s, &(struct store_audit_query){ .principal = "alice" }, &rows,
                               &n));
    assert_int_equal(n, 2);
    store_audit_list_free(rows, n);
    assert_true(has_session(c->s, "s1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_commit_together_at_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_statement_journal_stays_in_memory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_write_leaves_nothing_of_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_first_write_leaves_nothing_either, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_first_write_lets_the_writer_go, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_with_no_write_commits_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_without_readers_each_write_commits_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batches_of_several_threads_take_turns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_record_runs_each_check_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_step_record_checks_nothing_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_record_after_its_claim_in_a_batch_checks_nothing_again, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_record_after_another_write_in_a_batch_checks_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_audit_row_in_a_batch_is_one_statement, setup,
                                        teardown),
    };
    /* SQLite's own: its temporary files, its writer's statement counts */
    static const char *const sqlite_only[] = { "test_the_statement_journal_stays_in_memory",
                                               "test_a_record_runs_each_check_once",
                                               "test_a_step_record_checks_nothing_twice", NULL };
    return test_store_run_group("store_batch", tests, sizeof tests / sizeof tests[0],
                                sqlite_only);
}
