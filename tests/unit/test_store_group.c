/* Group commit in the SQLite writer (issue 14): writes that wait for the
 * writer ride the open transaction's commit, each with its own result. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/metrics.h"
#include "store/store.h"

static char dir[] = "/tmp/agentd_group_XXXXXX";
static char path[256];

static double metric_now(const char *name, enum metric_type type)
{
    return metric_value(metric_only(metric_register(name, "", type, NULL, NULL)));
}

static struct store *open_store(void)
{
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/agentd.db", dir);
    struct store_options o = { .url = path };
    struct store *s = NULL;
    struct agentd_error e = { 0 };
    assert_int_equal(store_open(&o, &s, &e), 0);
    return s;
}

static void close_store(struct store *s)
{
    store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    strcpy(dir, "/tmp/agentd_group_XXXXXX");
}

static int session_new(struct store *s, const char *id)
{
    struct store_session v = { .id = (char *)id, .owner = "p", .context = "{}" };
    return store_session_create(s, &v);
}

struct writer {
    struct store *s;
    const char *id;
    int rc;
};

static void *write_session(void *arg)
{
    struct writer *w = arg;
    w->rc = session_new(w->s, w->id);
    return NULL;
}

/* The writer is held (a batch with a write); three writes queue behind it,
 * one of which fails. One commit carries them all; the failure is its own. */
static void test_queued_writes_share_one_commit(void **state)
{
    (void)state;
    struct store *s = open_store();
    assert_int_equal(session_new(s, "ses_dup"), 0);
    assert_int_equal(store_batch_begin(s), 1);
    assert_int_equal(session_new(s, "ses_a"), 0);
    struct writer w[3] = { { s, "ses_b", -1 }, { s, "ses_dup", -1 }, { s, "ses_d", -1 } };
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, write_session, &w[i]), 0);
    for (int i = 0; i < 10000 && metric_now("agentd_store_writer_waiting", METRIC_GAUGE) < 3; i++)
        usleep(1000);
    assert_true(metric_now("agentd_store_writer_waiting", METRIC_GAUGE) >= 3);
    double c0 = metric_now("agentd_store_commits_total", METRIC_COUNTER);
    assert_int_equal(store_batch_end(s), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    double c1 = metric_now("agentd_store_commits_total", METRIC_COUNTER);
    assert_int_equal(w[0].rc, 0);
    assert_int_equal(w[1].rc, AGENTD_EEXIST);
    assert_int_equal(w[2].rc, 0);
    assert_true(c1 - c0 == 1.0);
    const char *ids[] = { "ses_a", "ses_b", "ses_d", "ses_dup" };
    for (int i = 0; i < 4; i++) {
        struct store_session *v = NULL;
        assert_int_equal(store_session_get(s, ids[i], &v), 0);
        store_session_free(v);
    }
    close_store(s);
}

#define THREADS 8
#define PER_THREAD 60

struct appender {
    struct store *s;
    char session[32];
    int failed;
};

static void *append_messages(void *arg)
{
    struct appender *a = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"n\":%d}", i);
        struct store_message m = { .session_id = a->session, .role = "user", .parts = text };
        if (store_message_append(a->s, &m) != 0)
            a->failed++;
    }
    return NULL;
}

/* Many concurrent writers: every write lands once, in order per session,
 * and each was either a commit's own or rode another's. */
static void test_concurrent_writers_all_land(void **state)
{
    (void)state;
    struct store *s = open_store();
    struct appender a[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct appender){ .s = s };
        snprintf(a[i].session, sizeof a[i].session, "ses_%d", i);
        assert_int_equal(session_new(s, a[i].session), 0);
    }
    double c0 = metric_now("agentd_store_commits_total", METRIC_COUNTER);
    double g0 = metric_now("agentd_store_grouped_writes_total", METRIC_COUNTER);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, append_messages, &a[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    double c1 = metric_now("agentd_store_commits_total", METRIC_COUNTER);
    double g1 = metric_now("agentd_store_grouped_writes_total", METRIC_COUNTER);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(a[i].failed, 0);
        struct store_message *v = NULL;
        size_t n = 0;
        assert_int_equal(store_message_list(s, a[i].session, 0, 0, &v, &n), 0);
        assert_int_equal(n, PER_THREAD);
        for (size_t k = 0; k < n; k++) {
            char want[64];
            snprintf(want, sizeof want, "{\"n\":%zu}", k);
            assert_string_equal(v[k].parts, want);
        }
        store_message_list_free(v, n);
    }
    assert_true((c1 - c0) + (g1 - g0) == THREADS * PER_THREAD);
    close_store(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_writes_share_one_commit),
        cmocka_unit_test(test_concurrent_writers_all_land),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
