/* The store's outbox: add, claim under a lease, finish, release, and the
 * order calls that write an event in their own transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/outbox.h"
#include "core/err.h"
#include "store/store.h"
#include "pg_fixture.h"

struct fx {
    struct store *s;
    char dir[64];
    int64_t now;
};

static int64_t fake_now(void *ud) { return ((struct fx *)ud)->now; }

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/test_outbox_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char url[256];
    if (test_pg_fresh_url("outbox", url, sizeof url) != 0)
        snprintf(url, sizeof url, "%s/db.sqlite", f->dir);
    f->now = 1000000;
    struct store_options o = { .url = url, .now = fake_now, .now_ud = f };
    assert_int_equal(store_open(&o, &f->s, NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static struct store_outbox event(const char *id)
{
    return (struct store_outbox){ .id = (char *)id, .kind = "webhook",
                                  .target = "http://127.0.0.1:1/hook", .body = "{\"a\":1}" };
}

static void test_claim_lease_finish(void **state)
{
    struct fx *f = *state;
    struct store_outbox a = event("evt_a"), b = event("evt_b");
    b.next_attempt_at = f->now + 5000; /* not due yet */
    assert_int_equal(store_outbox_add(f->s, &a), 0);
    assert_int_equal(store_outbox_add(f->s, &b), 0);
    assert_int_equal(store_outbox_add(f->s, &a), AGENTD_EEXIST);
    int64_t depth = 0;
    assert_int_equal(store_outbox_depth(f->s, "webhook", &depth), 0);
    assert_int_equal(depth, 2);

    struct store_outbox *v = NULL;
    size_t n = 0;
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst1", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "evt_a");
    assert_string_equal(v[0].claimed_by, "inst1");
    assert_string_equal(v[0].body, "{\"a\":1}");
    assert_string_equal(v[0].headers, "{}");
    store_outbox_list_free(v, n);

    /* inst1 holds a live claim */
    char **ids = NULL;
    size_t nids = 0;
    assert_int_equal(store_outbox_holders(f->s, &ids, &nids), 0);
    assert_int_equal(nids, 1);
    assert_string_equal(ids[0], "inst1");
    store_strings_free(ids, nids);

    /* held by inst1: another instance gets nothing until the lease ends */
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst2", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    f->now += 30000;
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst2", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 2); /* a's lease ended; b is due now */
    store_outbox_list_free(v, n);
    assert_int_equal(store_outbox_holders(f->s, &ids, &nids), 0);
    assert_int_equal(nids, 1);
    assert_string_equal(ids[0], "inst2"); /* inst1's ended lease holds nothing */
    store_strings_free(ids, nids);

    /* inst1 lost its claim: its finish is refused */
    assert_int_equal(store_outbox_finish(f->s, "evt_a", "inst1", STORE_OUTBOX_DELIVERED, 0, NULL),
                     AGENTD_ECONFLICT);
    assert_int_equal(store_outbox_finish(f->s, "nope", "inst1", STORE_OUTBOX_DELIVERED, 0, NULL),
                     AGENTD_ENOTFOUND);
    assert_int_equal(store_outbox_finish(f->s, "evt_a", "inst2", STORE_OUTBOX_DELIVERED, 0, NULL),
                     0);
    assert_int_equal(store_outbox_finish(f->s, "evt_b", "inst2", STORE_OUTBOX_PENDING,
                                         f->now + 2000, "HTTP 503"),
                     0);
    struct store_outbox *got = NULL;
    assert_int_equal(store_outbox_get(f->s, "evt_b", &got), 0);
    assert_int_equal(got->attempts, 1);
    assert_string_equal(got->last_error, "HTTP 503");
    assert_null(got->claimed_by);
    store_outbox_free(got);
    assert_int_equal(store_outbox_depth(f->s, NULL, &depth), 0);
    assert_int_equal(depth, 1);

    /* a retry is due only at its next_attempt_at */
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst2", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    f->now += 2000;
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst3", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    store_outbox_list_free(v, n);
    /* a released claim (its instance is gone) is due at once elsewhere */
    int released = 0;
    assert_int_equal(store_outbox_release(f->s, "inst3", &released), 0);
    assert_int_equal(released, 1);
    assert_int_equal(store_outbox_claim(f->s, "webhook", "inst4", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    store_outbox_list_free(v, n);
    assert_int_equal(store_outbox_finish(f->s, "evt_b", "inst4", STORE_OUTBOX_DEAD, 0, "gave up"),
                     0);
    assert_int_equal(store_outbox_depth(f->s, "webhook", &depth), 0);
    assert_int_equal(depth, 0);
    /* a finished row cannot be finished again */
    assert_int_equal(store_outbox_finish(f->s, "evt_b", "inst4", STORE_OUTBOX_DELIVERED, 0, NULL),
                     AGENTD_ECONFLICT);

    /* finished rows are purged after STORE_OUTBOX_KEEP_MS; pending ones stay */
    struct store_outbox c = event("evt_c");
    assert_int_equal(store_outbox_add(f->s, &c), 0);
    int n_del = -1;
    assert_int_equal(store_purge_expired(f->s, 100, &n_del), 0);
    assert_int_equal(n_del, 0);
    f->now += STORE_OUTBOX_KEEP_MS + 1;
    assert_int_equal(store_purge_expired(f->s, 100, &n_del), 0);
    assert_int_equal(n_del, 2);
    struct store_outbox *left = NULL;
    assert_int_equal(store_outbox_get(f->s, "evt_a", &left), AGENTD_ENOTFOUND);
    assert_int_equal(store_outbox_get(f->s, "evt_c", &left), 0);
    store_outbox_free(left);
}

static void test_order_event_same_transaction(void **state)
{
    struct fx *f = *state;
    struct store_checkout c = { .id = "chk1", .owner = "o", .status = "ready_for_complete",
                                .document = "{}" };
    assert_int_equal(store_checkout_create(f->s, &c), 0);
    struct store_outbox ev = event("evt_placed");
    struct store_order o = { .id = "ord1", .checkout_id = "chk1", .owner = "o",
                             .document = "{}", .event = &ev };
    /* the order fails (stale version): its event is not written either */
    assert_int_equal(store_order_create(f->s, &o, 7, "completed", "{}", NULL, 0),
                     AGENTD_ECONFLICT);
    struct store_outbox *got = NULL;
    assert_int_equal(store_outbox_get(f->s, "evt_placed", &got), AGENTD_ENOTFOUND);
    assert_int_equal(store_order_create(f->s, &o, 1, "completed", "{}", NULL, 0), 0);
    assert_int_equal(store_outbox_get(f->s, "evt_placed", &got), 0);
    assert_string_equal(got->state, STORE_OUTBOX_PENDING);
    store_outbox_free(got);

    struct store_outbox up = event("evt_shipped");
    assert_int_equal(store_order_update(f->s, "nope", 1, "{}", &up), AGENTD_ENOTFOUND);
    assert_int_equal(store_outbox_get(f->s, "evt_shipped", &got), AGENTD_ENOTFOUND);
    assert_int_equal(store_order_update(f->s, "ord1", 1, "{\"s\":1}", &up), 0);
    assert_int_equal(store_outbox_get(f->s, "evt_shipped", &got), 0);
    store_outbox_free(got);
    /* an event id taken: the update is not applied */
    assert_int_equal(store_order_update(f->s, "ord1", 2, "{\"s\":2}", &up), AGENTD_EEXIST);
    struct store_order *row = NULL;
    assert_int_equal(store_order_get(f->s, "ord1", &row), 0);
    assert_string_equal(row->document, "{\"s\":1}");
    store_order_free(row);
}

/* Events of one sequence (an order's webhooks) are claimed one at a time in
 * seq order, whatever their ids and due times: a later one waits while an
 * earlier one is pending (in flight, or failed and waiting for its retry),
 * and goes once that one is delivered or dead. Other sequences and events
 * without one are not held up. */
static void test_sequence_claimed_in_order(void **state)
{
    struct fx *f = *state;
    struct store_outbox e1 = event("evt_z1"), e2 = event("evt_a2"), e3 = event("evt_m3");
    struct store_outbox other = event("evt_o1"), free_ev = event("evt_f");
    e1.seq_key = e2.seq_key = e3.seq_key = "ord_1";
    e1.seq = 1, e2.seq = 2, e3.seq = 3;
    other.seq_key = "ord_2", other.seq = 1;
    e3.next_attempt_at = e2.next_attempt_at = f->now; /* all due together */
    assert_int_equal(store_outbox_add(f->s, &e3), 0); /* added out of order */
    assert_int_equal(store_outbox_add(f->s, &e2), 0);
    assert_int_equal(store_outbox_add(f->s, &e1), 0);
    assert_int_equal(store_outbox_add(f->s, &other), 0);
    assert_int_equal(store_outbox_add(f->s, &free_ev), 0);
    struct store_outbox *v = NULL;
    size_t n = 0;
    assert_int_equal(store_outbox_claim(f->s, "webhook", "i", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 3); /* ord_1's first, ord_2's first, the free one */
    int saw_z1 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(v[i].id, "evt_a2");
        assert_string_not_equal(v[i].id, "evt_m3");
        saw_z1 |= strcmp(v[i].id, "evt_z1") == 0;
    }
    assert_true(saw_z1);
    store_outbox_list_free(v, n);
    /* z1 fails: it waits for its retry, and a2 still waits behind it */
    assert_int_equal(store_outbox_finish(f->s, "evt_z1", "i", "pending", f->now + 1000, "503"), 0);
    assert_int_equal(store_outbox_claim(f->s, "webhook", "i", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 0);
    f->now += 1000;
    assert_int_equal(store_outbox_claim(f->s, "webhook", "i", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "evt_z1");
    store_outbox_list_free(v, n);
    assert_int_equal(store_outbox_finish(f->s, "evt_z1", "i", "delivered", 0, NULL), 0);
    assert_int_equal(store_outbox_claim(f->s, "webhook", "i", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "evt_a2");
    store_outbox_list_free(v, n);
    /* a dead event lets the next one go */
    assert_int_equal(store_outbox_finish(f->s, "evt_a2", "i", "dead", 0, "gone"), 0);
    assert_int_equal(store_outbox_claim(f->s, "webhook", "i", 30000, 10, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, "evt_m3");
    store_outbox_list_free(v, n);
}

static void test_backoff(void **state)
{
    (void)state;
    struct outbox_options o;
    outbox_options_default(&o);
    /* no jitter taken (r = 0): 1 s, 2 s, 4 s ... capped at 10 min */
    assert_int_equal(outbox_backoff_ms(&o, 1, 0.0), 1000);
    assert_int_equal(outbox_backoff_ms(&o, 2, 0.0), 2000);
    assert_int_equal(outbox_backoff_ms(&o, 4, 0.0), 8000);
    assert_int_equal(outbox_backoff_ms(&o, 10, 0.0), 512000);
    assert_int_equal(outbox_backoff_ms(&o, 11, 0.0), 600000);
    assert_int_equal(outbox_backoff_ms(&o, 60, 0.0), 600000);
    /* jitter takes at most half off: never below half, never above the delay */
    for (int n = 1; n < 20; n++) {
        int64_t full = outbox_backoff_ms(&o, n, 0.0);
        int64_t most = outbox_backoff_ms(&o, n, 0.999999);
        assert_true(most >= full / 2 && most < full);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_lease_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_event_same_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_claimed_in_order, setup, teardown),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
