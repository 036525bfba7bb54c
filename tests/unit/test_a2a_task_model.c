/* The A2A task as stored: a compact document (no per-message context and
 * task ids, the status message and the answer artifact's parts not stored
 * twice) that reads back to the same model, and older full documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/a2a_task_model.h"
#include "store/store.h"

/* The model after a turn, as the front builds it: the agent's parts are
 * one array shared by its message, the status message and the artifact. */
static json_t *model(void)
{
    json_error_t je;
    json_t *parts = json_loads("[{\"text\":\"Added.\"},{\"data\":{\"a2a.ucp.checkout\":"
                               "{\"id\":\"chk_1\",\"status\":\"incomplete\"}}}]", 0, &je);
    json_t *agent = json_pack("{s:s,s:s,s:O,s:s,s:s}", "messageId", "msg_2", "role", "agent",
                              "parts", parts, "contextId", "ses_1", "taskId", "task_1");
    json_t *m = json_pack(
        "{s:s,s:s,s:s,s:[{s:s,s:s,s:O}],s:[{s:s,s:s,s:[{s:s}],s:s,s:s},O],s:s,s:i,s:s,s:O,s:b}",
        "id", "task_1", "contextId", "ses_1", "state", "input-required", "artifacts",
        "artifactId", "turn_1", "name", "answer", "parts", parts, "history", "messageId", "m1",
        "role", "user", "parts", "text", "add 2 BISC-001", "contextId", "ses_1", "taskId",
        "task_1", agent, "turnId", "turn_1", "since", 7, "timestamp", "2026-01-02T03:04:05.006Z",
        "message", agent, "turnDone", 1);
    json_decref(agent);
    json_decref(parts);
    assert_non_null(m);
    return m;
}

static json_t *load(const char *doc)
{
    struct store_task t = { .id = "task_1", .context_id = "ses_1", .owner = "alice",
                            .state = "input-required", .artifacts = (char *)doc };
    return a2a_task_model(&t);
}

static void test_compact_doc_reads_back_the_same_model(void **state)
{
    (void)state;
    json_t *m = model();
    char *doc = a2a_task_doc(m);
    char *full = json_dumps(m, JSON_COMPACT);
    assert_non_null(doc);
    /* stored once: the agent's parts, no ids the row's columns hold */
    assert_null(strstr(doc, "ses_1"));
    assert_null(strstr(doc, "task_1"));
    assert_non_null(strstr(doc, "chk_1"));
    assert_null(strstr(strstr(doc, "chk_1") + 1, "chk_1"));
    assert_true(strlen(doc) * 2 < strlen(full));
    json_t *back = load(doc);
    assert_true(json_equal(back, m));
    /* and again from what was read: the same text (compare-and-swap) */
    char *again = a2a_task_doc(back);
    assert_string_equal(again, doc);
    free(again);
    json_decref(back);
    free(full);
    free(doc);
    json_decref(m);
}

static void test_a_deep_copy_compacts_the_same(void **state)
{
    (void)state;
    json_t *m = model();
    json_t *copy = json_deep_copy(m); /* shares nothing: parts compared by value */
    char *a = a2a_task_doc(m), *b = a2a_task_doc(copy);
    assert_string_equal(a, b);
    free(a);
    free(b);
    json_decref(copy);
    json_decref(m);
}

/* ---- the oracle: a2a_task_doc as it was (a compact tree, then dumped),
 * before the document was written straight into a buffer ---- */
/* The history entry that is v (or whose `key` is), else the first one from
 * `from` on equal to it (the last one with from < 0); -1 if none. Pointers
 * first: the front shares them; a copied model compares by value. */
static json_int_t oracle_hist_find(const json_t *hist, long from, const json_t *v, const char *key)
{
    size_t n = json_array_size(hist);
    for (size_t i = 0; i < n; i++) {
        const json_t *h = json_array_get(hist, i);
        if ((key ? json_object_get(h, key) : h) == v)
            return (json_int_t)i;
    }
    for (size_t j = 0; j < n; j++) {
        size_t i = from < 0 ? n - 1 - j : (size_t)from + j;
        const json_t *h = json_array_get(hist, i);
        const json_t *x = key ? json_object_get(h, key) : h;
        if (x && json_equal((json_t *)x, (json_t *)v))
            return (json_int_t)i;
    }
    return -1;
}

/* A message less the ids the task's row holds (shallow: values shared). */
static json_t *oracle_msg_compact(json_t *msg, const json_t *id, const json_t *context_id)
{
    if (!json_is_object(msg))
        return json_incref(msg);
    json_t *c = json_copy(msg);
    if (c && json_equal(json_object_get(c, "contextId"), (json_t *)context_id))
        json_object_del(c, "contextId");
    if (c && json_equal(json_object_get(c, "taskId"), (json_t *)id))
        json_object_del(c, "taskId");
    return c;
}

/* The document kept in the artifacts column: the model less its columns
 * (id, contextId, state), compact (task_expand reads it back). Built from
 * shallow copies: the model is only read. */
static char *oracle_task_doc(const json_t *task)
{
    const json_t *id = json_object_get(task, "id"), *ctx = json_object_get(task, "contextId");
    const json_t *hist = json_object_get(task, "history");
    json_t *d = json_object();
    const char *k;
    json_t *v;
    int ok = d != NULL;
    json_object_foreach((json_t *)task, k, v) {
        json_t *x = NULL;
        if (!strcmp(k, "id") || !strcmp(k, "contextId") || !strcmp(k, "state")) {
            continue;
        } else if (!strcmp(k, "history") && json_is_array(v)) {
            x = json_array();
            size_t i;
            json_t *h;
            json_array_foreach(v, i, h)
                ok = ok && x && json_array_append_new(x, oracle_msg_compact(h, id, ctx)) == 0;
        } else if (!strcmp(k, "message") && json_is_object(v)) {
            json_int_t at = oracle_hist_find(hist, -1, v, NULL);
            x = at >= 0 ? json_integer(at) : oracle_msg_compact(v, id, ctx);
        } else if (!strcmp(k, "artifacts") && json_is_array(v)) {
            x = json_array();
            size_t i;
            long from = 0;
            json_t *a;
            json_array_foreach(v, i, a) {
                json_t *parts = json_object_get(a, "parts");
                json_int_t at = json_is_array(parts) ? oracle_hist_find(hist, from, parts, "parts") : -1;
                json_t *c = at >= 0 ? json_copy(a) : json_incref(a);
                if (at >= 0 && c) {
                    json_object_set_new(c, "parts", json_integer(at));
                    from = (long)at + 1; /* answers follow the history's order */
                }
                ok = ok && x && json_array_append_new(x, c) == 0;
            }
        } else {
            x = json_incref(v);
        }
        ok = ok && x && json_object_set_new(d, k, x) == 0;
    }
    char *s = ok ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    return s;
}


/* The written document is byte for byte the tree's: every model here. */
static void test_the_written_doc_is_the_trees(void **state)
{
    (void)state;
    json_t *models[7];
    models[0] = model();
    models[1] = json_deep_copy(models[0]); /* compared by value, not pointer */
    models[2] = model();
    json_object_set_new(models[2], "message", json_pack("{s:s,s:s,s:s,s:[{s:s}]}", "messageId",
                                                        "msg_9", "role", "agent", "contextId",
                                                        "other", "parts", "text", "a\x01\"\\\xc3\xa9"));
    json_array_append_new(json_object_get(models[2], "artifacts"), json_string("odd"));
    json_array_append_new(json_object_get(models[2], "history"), json_integer(3));
    json_object_set_new(models[2], "price", json_real(0.1));
    models[3] = json_pack("{s:s,s:s,s:s,s:[],s:[]}", "id", "t", "contextId", "c", "state",
                          "submitted", "artifacts", "history");
    models[4] = json_pack("{s:s,s:s,s:i}", "history", "not an array", "artifacts", "x",
                          "message", 2);
    models[5] = json_object();
    /* a long task: history indexes of two digits (the message, an answer's parts) */
    models[6] = model();
    json_t *hist = json_object_get(models[6], "history");
    for (int i = 0; i < 11; i++) {
        json_t *msg = json_pack("{s:s,s:s,s:[{s:i}]}", "messageId", "m", "role",
                                i % 2 ? "agent" : "user", "parts", "text", i);
        json_array_append_new(hist, msg);
    }
    json_t *last = json_array_get(hist, 12);
    json_object_set(models[6], "message", last);
    json_array_append_new(json_object_get(models[6], "artifacts"),
                          json_pack("{s:s,s:O}", "artifactId", "turn_12", "parts",
                                    json_object_get(last, "parts")));
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        char *want = oracle_task_doc(models[i]), *got = a2a_task_doc(models[i]);
        assert_non_null(want);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(want);
        free(got);
        json_decref(models[i]);
    }
}

static void test_a_full_document_still_reads(void **state)
{
    (void)state;
    json_t *m = model();
    json_t *d = json_deep_copy(m);
    json_object_del(d, "id");
    json_object_del(d, "contextId");
    json_object_del(d, "state");
    char *old = json_dumps(d, JSON_COMPACT); /* as stored before the compact form */
    json_t *back = load(old);
    assert_true(json_equal(back, m));
    json_decref(back);
    free(old);
    json_decref(d);
    json_decref(m);
}

static void test_a_status_message_of_its_own_is_kept(void **state)
{
    (void)state;
    json_t *m = model();
    json_object_set_new(m, "message", json_pack("{s:s,s:s,s:[{s:s}]}", "messageId", "msg_9",
                                                "role", "agent", "parts", "text", "Canceled."));
    json_object_set_new(json_array_get(json_object_get(m, "artifacts"), 0), "parts",
                        json_pack("[{s:s}]", "text", "other"));
    char *doc = a2a_task_doc(m);
    assert_non_null(strstr(doc, "Canceled."));
    assert_non_null(strstr(doc, "other"));
    json_t *back = load(doc);
    assert_true(json_equal(back, m));
    json_decref(back);
    free(doc);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_doc_reads_back_the_same_model),
        cmocka_unit_test(test_a_deep_copy_compacts_the_same),
        cmocka_unit_test(test_a_full_document_still_reads),
        cmocka_unit_test(test_a_status_message_of_its_own_is_kept),
        cmocka_unit_test(test_the_written_doc_is_the_trees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
