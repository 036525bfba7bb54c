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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
