/* The Idempotency-Key layer (api/idempotency.c) without sockets: claims,
 * recorded replies, replays and refusals against a temp-file store (or a
 * PostgreSQL database: AGENTD_TEST_STORE=postgres, pg_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/idempotency.h"
#include "core/err.h"
#include "core/instance.h"
#include "core/metrics.h"
#include "store/store.h"

#include "pg_fixture.h"

struct ctx {
    char dir[64];
    char path[128];
    char url[256];
    struct store *st;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-idem-XXXXXX");
    if (!mkdtemp(c->dir)) {
        free(c);
        return -1;
    }
    snprintf(c->path, sizeof c->path, "%s/agentd.db", c->dir);
    if (test_store_fresh_url("idem", c->path, c->url, sizeof c->url) != 0)
        return -1;
    struct store_options o = { .url = c->url, .sync = STORE_SYNC_NORMAL };
    struct agentd_error err = { 0 };
    if (store_open(&o, &c->st, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    store_close(c->st);
    char p[160];
    static const char *const files[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", c->path, files[i]);
        unlink(p);
    }
    rmdir(c->dir);
    free(c);
    metrics_reset();
    return 0;
}

static const struct idem_request post_a = {
    .principal = "alice", .key = "k-1", .method = "POST", .uri = "/checkout-sessions",
    .body = "{\"a\":1}", .body_len = 7,
};

/* Claims q and decides; the record the store returned stays in *ex. */
static enum idem_verdict claim(struct ctx *c, const struct idem_request *q,
                               struct idem_decision *d, struct store_idem **ex)
{
    char fp[65];
    *ex = NULL;
    int rc = idem_claim(c->st, q, fp, ex);
    idem_decide(rc, *ex, fp, d);
    return d->verdict;
}

static void test_first_runs_then_replays(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    assert_null(ex);
    const char *headers = "{\"ETag\":\"\\\"v1\\\"\",\"Content-Type\":\"application/json\"}";
    assert_int_equal(idem_record(c->st, "alice", "k-1", 0, 201, headers, "{\"id\":\"x\"}", 10), 0);

    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_REPLAY);
    assert_non_null(ex);
    assert_int_equal(ex->status, 201);
    assert_int_equal(ex->body_len, 10);
    assert_memory_equal(ex->body, "{\"id\":\"x\"}", 10);
    assert_string_equal(ex->headers, headers);
    assert_string_equal(ex->state, STORE_IDEM_DONE);
    store_idem_free(ex);
}

static void test_other_request_same_key_is_409(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    assert_int_equal(idem_record(c->st, "alice", "k-1", 0, 200, "{}", "{}", 2), 0);

    struct idem_request other = post_a;
    other.body = "{\"a\":2}";
    assert_int_equal(claim(c, &other, &d, &ex), IDEM_REFUSE);
    assert_int_equal(d.status, 409);
    assert_string_equal(d.code, "idempotency_key_reused");
    assert_string_equal(d.message, "this Idempotency-Key was already used with a different request");
    assert_false(d.retry_after);
    store_idem_free(ex);

    other = post_a; /* the path is part of the request too */
    other.uri = "/checkout-sessions/x";
    assert_int_equal(claim(c, &other, &d, &ex), IDEM_REFUSE);
    assert_string_equal(d.code, "idempotency_key_reused");
    store_idem_free(ex);
}

static void test_in_progress_is_409(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_REFUSE);
    assert_int_equal(d.status, 409);
    assert_string_equal(d.code, "idempotency_in_progress");
    assert_string_equal(d.message,
                        "a request with this Idempotency-Key is still being processed; retry later");
    assert_true(d.retry_after); /* a client is told when to ask again */
    store_idem_free(ex);
}

/* A claim names its process; a dead process's claim is taken over at once
 * (IDEM_TAKEOVER), a live one's and one that names none are not. */
static void test_dead_owner_claim_taken_over(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    char ours[160], host[160];
    instance_id(ours, sizeof ours);
    /* a process of this host and pid namespace whose pid cannot exist */
    snprintf(host, sizeof host, "%.*s/999999999/dead00", (int)(strchr(ours, '/') - ours), ours);
    struct idem_request dead = post_a, live = post_a, me = post_a;
    dead.owner = host;
    me.owner = ours;
    me.takeover = 1;
    assert_int_equal(claim(c, &dead, &d, &ex), IDEM_RUN);
    assert_null(ex);
    /* without takeover: in progress, with Retry-After */
    live.owner = ours;
    assert_int_equal(claim(c, &live, &d, &ex), IDEM_REFUSE);
    assert_string_equal(d.code, "idempotency_in_progress");
    assert_true(d.retry_after);
    assert_non_null(ex);
    assert_string_equal(ex->owner, host);
    store_idem_free(ex);
    /* with takeover: ours now, and it runs */
    assert_int_equal(claim(c, &me, &d, &ex), IDEM_RUN);
    assert_null(ex);
    /* our own live claim is not taken over again */
    assert_int_equal(claim(c, &me, &d, &ex), IDEM_REFUSE);
    assert_string_equal(ex->owner, ours);
    store_idem_free(ex);
    /* a different request under the key is still refused as reused */
    assert_int_equal(idem_record(c->st, "alice", "k-1", 0, 201, "{}", "{}", 2), 0);
    struct idem_request other = me;
    other.key = "k-2";
    other.owner = NULL; /* a claim naming no process: left to the lease */
    assert_int_equal(claim(c, &other, &d, &ex), IDEM_RUN);
    struct idem_request other_me = other;
    other_me.owner = ours;
    assert_int_equal(claim(c, &other_me, &d, &ex), IDEM_REFUSE);
    assert_string_equal(d.code, "idempotency_in_progress");
    store_idem_free(ex);
}

static void test_5xx_dropped_unless_kept(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    assert_int_equal(idem_record(c->st, "alice", "k-1", 0, 503, "{}", "{}", 2), 0);
    /* the claim was dropped: a retry runs again */
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    assert_int_equal(idem_record(c->st, "alice", "k-1", IDEM_KEEP_5XX, 500, "{}", "{\"e\":1}", 7),
                     0);
    /* kept: a retry replays the failure, never runs again */
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_REPLAY);
    assert_int_equal(ex->status, 500);
    assert_memory_equal(ex->body, "{\"e\":1}", 7);
    store_idem_free(ex);
}

static void test_keys_are_per_principal(void **state)
{
    struct ctx *c = *state;
    struct idem_decision d;
    struct store_idem *ex = NULL;
    assert_int_equal(claim(c, &post_a, &d, &ex), IDEM_RUN);
    struct idem_request bob = post_a;
    bob.principal = "bob";
    assert_int_equal(claim(c, &bob, &d, &ex), IDEM_RUN);
    /* no principal is "anonymous" */
    struct idem_request anon = post_a;
    anon.principal = NULL;
    assert_int_equal(claim(c, &anon, &d, &ex), IDEM_RUN);
    anon.principal = "anonymous";
    assert_int_equal(claim(c, &anon, &d, &ex), IDEM_REFUSE);
    assert_string_equal(d.code, "idempotency_in_progress");
    store_idem_free(ex);
}

static void test_store_failure_refuses(void **state)
{
    (void)state;
    struct idem_decision d;
    idem_decide(AGENTD_EBUSY, NULL, "", &d);
    assert_int_equal(d.verdict, IDEM_REFUSE);
    assert_int_equal(d.status, 503);
    assert_string_equal(d.code, "busy");
    assert_true(d.retry_after);
    idem_decide(AGENTD_EIO, NULL, "", &d);
    assert_int_equal(d.status, 503);
    assert_string_equal(d.code, "io_error");
    assert_true(d.retry_after);
    idem_decide(AGENTD_EINTERNAL, NULL, "", &d);
    assert_int_equal(d.status, 500);
    assert_false(d.retry_after);
    /* EEXIST without a record (cannot happen) is an error, not a replay */
    idem_decide(AGENTD_EEXIST, NULL, "", &d);
    assert_int_equal(d.verdict, IDEM_REFUSE);
    assert_int_equal(d.status, 409);
    assert_string_equal(d.code, "exists");
}

static void test_key_syntax(void **state)
{
    (void)state;
    char key[300];
    memset(key, 'a', sizeof key);
    key[255] = 0;
    assert_true(idem_key_valid(key));
    key[255] = 'a';
    key[256] = 0;
    assert_false(idem_key_valid(key));
    assert_false(idem_key_valid(""));
    assert_false(idem_key_valid("a b"));
    assert_false(idem_key_valid("caf\xc3\xa9"));
    assert_true(idem_key_valid("~!9-_.:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_runs_then_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_request_same_key_is_409, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_progress_is_409, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_owner_claim_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_5xx_dropped_unless_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_per_principal, setup, teardown),
        cmocka_unit_test(test_store_failure_refuses),
        cmocka_unit_test(test_key_syntax),
    };
    return test_store_run_group("idempotency", tests, sizeof tests / sizeof tests[0], NULL);
}
