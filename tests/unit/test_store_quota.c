/* Per-principal storage quotas in the store (SQLite, or PostgreSQL with
 * AGENTD_TEST_STORE=postgres): a session or an
 * idempotency record over the cap is AGENTD_EQUOTA and stores nothing;
 * other principals, replays of a held key and freed rows are unaffected. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "store/store.h"

#include "pg_fixture.h"

static int64_t fake_now = 1700000000000;
static int64_t clock_fake(void *ud)
{
    (void)ud;
    return fake_now;
}

struct ctx {
    char dir[128];
    char path[256];
    char url[256];
    struct store *s;
};

static int setup(void **state)
{
    struct ctx *c = calloc(1, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-quota-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    snprintf(c->path, sizeof c->path, "%s/agentd.db", c->dir);
    if (test_store_fresh_url("quota", c->path, c->url, sizeof c->url) != 0)
        return -1;
    struct store_options o = { .url = c->url, .quota_sessions = 2, .quota_idempotency_keys = 3,
                               .session_ttl_ms = 60000, .now = clock_fake };
    struct agentd_error err = { 0 };
    if (store_open(&o, &c->s, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = c;
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int t, struct FTW *f)
{
    (void)st, (void)t, (void)f;
    return remove(p);
}

static int teardown(void **state)
{
    struct ctx *c = *state;
    store_close(c->s);
    nftw(c->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

static int session(struct store *s, const char *id, const char *owner)
{
    struct store_session v = { .id = (char *)id, .owner = (char *)owner, .context = "{}" };
    return store_session_create(s, &v);
}

static void test_sessions_per_owner(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(session(c->s, "s1", "anonymous"), 0);
    assert_int_equal(session(c->s, "s2", "anonymous"), 0);
    assert_int_equal(session(c->s, "s3", "anonymous"), AGENTD_EQUOTA);
    struct store_session *got = NULL;
    assert_int_equal(store_session_get(c->s, "s3", &got), AGENTD_ENOTFOUND); /* nothing stored */
    assert_int_equal(session(c->s, "s4", "bob"), 0); /* another owner */
    /* a deleted session frees its place */
    assert_int_equal(store_session_delete_idle(c->s, "s1", "anonymous"), 0);
    assert_int_equal(session(c->s, "s3", "anonymous"), 0);
}

static void test_idempotency_per_principal(void **state)
{
    struct ctx *c = *state;
    struct store_idem *ex = NULL;
    int64_t exp = 4102444800000; /* 2100 */
    char key[16];
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(store_idem_begin(c->s, "anonymous", key, "fp", exp, &ex), 0);
    }
    assert_int_equal(store_idem_begin(c->s, "anonymous", "k3", "fp", exp, &ex), AGENTD_EQUOTA);
    assert_null(ex);
    /* a key already held still answers (replay), not the quota */
    assert_int_equal(store_idem_begin(c->s, "anonymous", "k0", "fp", exp, &ex), AGENTD_EEXIST);
    assert_non_null(ex);
    store_idem_free(ex);
    ex = NULL;
    assert_int_equal(store_idem_begin(c->s, "alice", "k3", "fp", exp, &ex), 0);
    /* the refused key was not stored: freeing one place lets it in */
    assert_int_equal(store_idem_drop(c->s, "anonymous", "k1"), 0);
    assert_int_equal(store_idem_begin(c->s, "anonymous", "k3", "fp", exp, &ex), 0);
}

/* the count follows every delete, the purge's too */
static void test_purge_frees_places(void **state)
{
    struct ctx *c = *state;
    assert_int_equal(session(c->s, "p1", "carol"), 0);
    assert_int_equal(session(c->s, "p2", "carol"), 0);
    fake_now += 120000; /* both expired, not yet purged: they still count */
    assert_int_equal(session(c->s, "p3", "carol"), AGENTD_EQUOTA);
    int n = 0;
    assert_int_equal(store_purge_expired(c->s, 100, &n), 0);
    assert_true(n >= 2);
    assert_int_equal(session(c->s, "p3", "carol"), 0);
    assert_int_equal(session(c->s, "p4", "carol"), 0);
    assert_int_equal(session(c->s, "p5", "carol"), AGENTD_EQUOTA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_per_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_per_principal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_frees_places, setup, teardown),
    };
    return test_store_run_group("store_quota", tests, sizeof tests / sizeof tests[0], NULL);
}
