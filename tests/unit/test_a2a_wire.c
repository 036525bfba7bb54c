/* A2A wire formats: both encoders from one task model against golden files
 * (tests/unit/golden/a2a_*.json), envelope validation, version negotiation,
 * method names, part decoding and states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/a2a_wire.h"

/* The one model both encoders read: a task with a user message, an agent
 * answer (text + a checkout DataPart) as status message and artifact. */
static json_t *model(void)
{
    json_error_t je;
    json_t *m = json_loads(
        "{\"id\":\"task_1\",\"contextId\":\"ses_1\",\"state\":\"input-required\","
        "\"timestamp\":\"2026-01-02T03:04:05.006Z\","
        "\"message\":{\"messageId\":\"msg_2\",\"role\":\"agent\",\"contextId\":\"ses_1\","
        "\"taskId\":\"task_1\",\"parts\":[{\"text\":\"Added.\"},"
        "{\"data\":{\"a2a.ucp.checkout\":{\"id\":\"chk_1\",\"status\":\"incomplete\"}}}]},"
        "\"artifacts\":[{\"artifactId\":\"turn_1\",\"name\":\"answer\",\"parts\":[{\"text\":"
        "\"Added.\"}]}],"
        "\"history\":[{\"messageId\":\"m1\",\"role\":\"user\",\"contextId\":\"ses_1\","
        "\"taskId\":\"task_1\",\"parts\":[{\"text\":\"add 2 BISC-001\"}]},"
        "{\"messageId\":\"msg_2\",\"role\":\"agent\",\"contextId\":\"ses_1\",\"taskId\":\"task_1\","
        "\"parts\":[{\"text\":\"Added.\"}]}],\"turnId\":\"turn_1\"}",
        0, &je);
    assert_non_null(m);
    return m;
}

static void golden_path(const char *name, char path[1024])
{
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    snprintf(path, 1024, "%.*sgolden/%s", slash ? (int)(slash - src + 1) : 0, src, name);
}

static json_t *golden(const char *name)
{
    char path[1024];
    golden_path(name, path);
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g)
        fail_msg("golden file %s: %s", path, je.text);
    return g;
}

/* A2A_GOLDEN_UPDATE=1 rewrites the golden files from the encoders (then
 * review the diff: the files are the contract). */
static void check(json_t *got, const char *name)
{
    if (getenv("A2A_GOLDEN_UPDATE")) {
        char path[1024];
        golden_path(name, path);
        json_dump_file(got, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    }
    json_t *want = golden(name);
    if (!json_equal(got, want)) {
        char *s = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS);
        fail_msg("%s differs; got:\n%s", name, s);
    }
    json_decref(want);
    json_decref(got);
}

static void test_task_encoders(void **state)
{
    (void)state;
    json_t *m = model();
    check(a2a_encode_send_result(m, A2A_V10, -1), "a2a_send_v10.json");
    check(a2a_encode_send_result(m, A2A_V03, -1), "a2a_send_v03.json");
    /* historyLength keeps the newest messages; ListTasks drops artifacts */
    json_t *t = a2a_encode_task(m, A2A_V10, 1, 0);
    assert_int_equal(json_array_size(json_object_get(t, "history")), 1);
    assert_null(json_object_get(t, "artifacts"));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(t, "history"), 0), "role")),
                        "ROLE_AGENT");
    json_decref(t);
    t = a2a_encode_task(m, A2A_V03, 0, 1);
    assert_int_equal(json_array_size(json_object_get(t, "history")), 0);
    json_decref(t);
    json_decref(m);
}

/* buf_json_str against jansson's own dump of the same string: every byte
 * below 0x20, quotes, backslash, slash, DEL, multi-byte UTF-8, embedded NUL. */
static void test_string_escaping(void **state)
{
    (void)state;
    char all[0x80];
    for (int i = 0; i < 0x80; i++)
        all[i] = (char)i;
    const struct {
        const char *s;
        size_t n;
    } ok[] = {
        { all, sizeof all },
        { "plain", 5 },
        { "", 0 },
        { "q\"b\\s/e\x7f", 8 },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x92 \xef\xbf\xbf", 18 },
        { "a\0b", 3 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        json_t *js = json_stringn(ok[i].s, ok[i].n);
        assert_non_null(js);
        char *want = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT);
        struct buf b = { 0 };
        assert_int_equal(buf_json_str(&b, ok[i].s, ok[i].n), 0);
        assert_string_equal(b.data, want);
        free(want);
        buf_free(&b);
        json_decref(js);
    }
    /* invalid UTF-8: jansson refuses the string; so does the writer, and
     * appends nothing (not even what it escaped before the bad byte) */
    const char *bad[] = { "\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                          "\xe2\x82", "\x80", "a\"\n\xc3\xa9-\xff", "ok \xe2\x82\xac\xc3" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(json_string(bad[i]));
        struct buf b = { 0 };
        buf_append(&b, "x", 1);
        assert_int_equal(buf_json_str(&b, bad[i], strlen(bad[i])), AGENTD_EINVAL);
        assert_int_equal(b.len, 1);
        assert_string_equal(b.data, "x");
        buf_free(&b);
    }
}

/* The direct SendMessage reply is byte for byte the tree encoder's dump,
 * for both versions, every history length, odd ids and awkward strings. */
static void check_direct(const json_t *id, const json_t *m)
{
    for (int ver = A2A_V03; ver <= A2A_V10; ver++) {
        for (int hl = -1; hl <= 3; hl++) {
            json_t *tree = a2a_rpc_result(id, a2a_encode_send_result(m, ver, hl));
            char *want = json_dumps(tree, JSON_COMPACT | JSON_REAL_PRECISION(10));
            struct buf b = { 0 };
            assert_int_equal(a2a_write_send_reply(&b, id, m, ver, hl), 0);
            assert_non_null(want);
            assert_string_equal(b.data, want);
            free(want);
            buf_free(&b);
            json_decref(tree);
        }
    }
}

static void test_direct_reply(void **state)
{
    (void)state;
    assert_true(A2A_V03 < A2A_V10);
    json_t *m = model();
    json_t *sid = json_string("r\"1\n"), *iid = json_integer(-7);
    check_direct(sid, m);
    check_direct(iid, m);
    check_direct(NULL, m);
    /* awkward content: control characters, UTF-8, reals, nested data, a
     * part that already names its kind and media type, no timestamp */
    json_t *h0 = json_array_get(json_object_get(m, "history"), 0);
    json_object_set_new(h0, "parts", json_pack("[{s:s},{s:{s:f,s:[i,b,n]},s:s},{s:s,s:s}]",
                                               "text", "tab\there \x01 \xc3\xa9 \"q\" \\ /",
                                               "data", "price", 12.5, "list", 1, 1,
                                               "mediaType", "text/x-special",
                                               "kind", "text", "text", "k"));
    json_object_del(m, "timestamp");
    json_object_set_new(m, "state", json_string("no-such-state"));
    check_direct(sid, m);
    /* a history entry that is not a message: the writer declines (the
     * caller then answers from the tree) */
    json_array_append_new(json_object_get(m, "history"), json_string("odd"));
    struct buf b = { 0 };
    assert_int_not_equal(a2a_write_send_reply(&b, sid, m, A2A_V10, -1), 0);
    buf_free(&b);
    json_decref(sid);
    json_decref(iid);
    json_decref(m);
}

static void test_stream_frames(void **state)
{
    (void)state;
    json_t *m = model();
    const json_t *art = json_array_get(json_object_get(m, "artifacts"), 0);
    json_t *frames = json_pack("[o,o,o,o]", a2a_encode_status_update(m, 1, A2A_V10),
                               a2a_encode_artifact_update(m, art, 1, 0, A2A_V10),
                               a2a_encode_status_update(m, 1, A2A_V03),
                               a2a_encode_artifact_update(m, art, 1, 0, A2A_V03));
    check(frames, "a2a_frames.json");
    json_decref(m);
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(a2a_version_parse(NULL), A2A_V03);
    assert_int_equal(a2a_version_parse(""), A2A_V03);
    assert_int_equal(a2a_version_parse("0.3"), A2A_V03);
    assert_int_equal(a2a_version_parse("1.0"), A2A_V10);
    assert_int_equal(a2a_version_parse("2.0"), AGENTD_EINVAL);
    assert_int_equal(a2a_version_parse("1.0 "), AGENTD_EINVAL);
    assert_int_equal(a2a_method_lookup("SendMessage", A2A_V10), A2A_M_SEND);
    assert_int_equal(a2a_method_lookup("SendMessage", A2A_V03), A2A_M_UNKNOWN);
    assert_int_equal(a2a_method_lookup("message/send", A2A_V03), A2A_M_SEND);
    assert_int_equal(a2a_method_lookup("tasks/resubscribe", A2A_V03), A2A_M_SUBSCRIBE);
    assert_int_equal(a2a_method_lookup("SubscribeToTask", A2A_V10), A2A_M_SUBSCRIBE);
    assert_int_equal(a2a_method_lookup("tasks/pushNotificationConfig/get", A2A_V03), A2A_M_PUSH);
    assert_int_equal(a2a_method_lookup(NULL, A2A_V10), A2A_M_UNKNOWN);
}

static int envelope(const char *text)
{
    json_error_t je;
    json_t *b = json_loads(text, JSON_DECODE_ANY, &je);
    assert_non_null(b);
    struct a2a_rpc rpc;
    struct agentd_error e;
    int rc = a2a_envelope_check(b, &rpc, &e);
    json_decref(b);
    return rc;
}

static void test_envelope(void **state)
{
    (void)state;
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}"), 0);
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}"),
                     0);
    assert_int_equal(envelope("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}]"),
                     AGENTD_EINVAL);
    assert_int_equal(envelope("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}"),
                     AGENTD_EINVAL);
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"method\":\"x\"}"), AGENTD_EINVAL);
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}"),
                     AGENTD_EINVAL);
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":3}"), AGENTD_EINVAL);
    assert_int_equal(envelope("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[]}"),
                     AGENTD_EINVAL);
    assert_int_equal(envelope("7"), AGENTD_EINVAL);
    json_t *e = a2a_rpc_error(NULL, -32001, "gone", json_pack("{s:s}", "code", "x"));
    assert_true(json_is_null(json_object_get(e, "id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "error"), "code")),
                     -32001);
    json_decref(e);
}

static int decode(const char *parts, json_t **out)
{
    json_error_t je;
    json_t *p = json_loads(parts, JSON_DECODE_ANY, &je);
    struct agentd_error e;
    *out = NULL;
    int rc = a2a_parts_decode(p, out, &e);
    json_decref(p);
    return rc ? a2a_rpc_code(rc) : 0; /* the code the answer carries */
}

static void test_parts(void **state)
{
    (void)state;
    json_t *out;
    /* 0.3 kind, the sample client's type, 1.0's bare fields: one shape */
    assert_int_equal(decode("[{\"kind\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"},"
                            "{\"text\":\"c\"},{\"type\":\"data\",\"data\":{\"k\":1}},"
                            "{\"data\":{\"j\":2},\"mediaType\":\"application/json\"}]",
                            &out),
                     0);
    json_t *want = json_loads("[{\"text\":\"a\"},{\"text\":\"b\"},{\"text\":\"c\"},"
                              "{\"data\":{\"k\":1}},{\"data\":{\"j\":2}}]", 0, NULL);
    assert_true(json_equal(out, want));
    char *text = a2a_parts_text(out);
    assert_string_equal(text, "a\nb\nc");
    free(text);
    json_t *data = a2a_parts_data(out);
    assert_int_equal(json_integer_value(json_object_get(data, "k")), 1);
    assert_int_equal(json_integer_value(json_object_get(data, "j")), 2);
    json_decref(data);
    json_decref(want);
    json_decref(out);
    assert_int_equal(decode("[{\"kind\":\"file\",\"file\":{}}]", &out),
                     A2A_CONTENT_TYPE_NOT_SUPPORTED);
    assert_int_equal(decode("[{\"url\":\"http://x\"}]", &out), A2A_CONTENT_TYPE_NOT_SUPPORTED);
    assert_int_equal(decode("[]", &out), A2A_INVALID_PARAMS);
    assert_int_equal(decode("[{\"kind\":\"text\"}]", &out), A2A_INVALID_PARAMS);
    assert_int_equal(decode("[{\"kind\":\"video\"}]", &out), A2A_INVALID_PARAMS);
    assert_int_equal(decode("[3]", &out), A2A_INVALID_PARAMS);
    assert_null(out);
    json_t *none = json_array();
    assert_null(a2a_parts_data(none));
    json_decref(none);
}

static void test_states(void **state)
{
    (void)state;
    assert_string_equal(a2a_state_wire("input-required", A2A_V10), "TASK_STATE_INPUT_REQUIRED");
    assert_string_equal(a2a_state_wire("input-required", A2A_V03), "input-required");
    assert_string_equal(a2a_state_parse("TASK_STATE_CANCELED"), "canceled");
    assert_string_equal(a2a_state_parse("completed"), "completed");
    assert_null(a2a_state_parse("done"));
    assert_true(a2a_state_terminal("failed"));
    assert_false(a2a_state_terminal("input-required"));
    char ts[32];
    a2a_timestamp(1767323045006LL, ts);
    assert_string_equal(ts, "2026-01-02T03:04:05.006Z");
    /* the hand-written date against gmtime_r + strftime, the writer it
     * replaced: epoch, leap days, century rules, year and day ends */
    static const int64_t at[] = { 0LL, 999LL, 951782400123LL /* 2000-02-29 */,
                                  4107542399999LL /* 2100-02-28T23:59:59.999 */,
                                  4107542400000LL, 1709251199500LL, 1709251200000LL,
                                  1735689599999LL, 253402300799999LL /* 9999-12-31 */ };
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        time_t t = (time_t)(at[i] / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char day[24], want[32];
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want, sizeof want, "%.20s.%03dZ", day, (int)(at[i] % 1000));
        a2a_timestamp(at[i], ts);
        assert_string_equal(ts, want);
    }
    for (int64_t ms = 0; ms < 400LL * 366 * 86400 * 1000; ms += 86400LL * 1000 * 7 + 3601234) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char day[24], want[32];
        strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want, sizeof want, "%.20s.%03dZ", day, (int)(ms % 1000));
        a2a_timestamp(ms, ts);
        assert_string_equal(ts, want);
    }
}

/* A retried messageId matches its first copy by this fingerprint, also
 * one stored by an earlier build: its bytes are pinned here (the message
 * in insertion order, keys unsorted, a nested data object, non-ASCII, a
 * real). */
static void test_message_fingerprint_pinned(void **state)
{
    (void)state;
    json_error_t je;
    json_t *m = json_loads("{\"role\":\"ROLE_USER\",\"messageId\":\"m-1\",\"parts\":["
                           "{\"text\":\"caf\\u00e9 \\\"x\\\"\",\"kind\":\"text\"},{\"kind\":\"data\","
                           "\"data\":{\"z\":[{\"y\":1,\"x\":2.5}],\"a\":null}}],"
                           "\"contextId\":\"ctx\"}", 0, &je);
    assert_non_null(m);
    char fp[65];
    assert_int_equal(a2a_message_fingerprint(m, fp), 0);
    /* sha256("A2A\nmessage\n" + the compact sorted-keys dump), as an
     * independent tool (Python's json.dumps(sort_keys=True)) computes it */
    assert_string_equal(fp, "413fa46b36b8792f4c5c9f866845d70cced7a807f0014ab363e27489ede0e049");
    /* one key's order changed: the same fingerprint (keys are sorted) */
    json_t *m2 = json_pack("{s:s,s:O,s:s,s:s}", "contextId", "ctx", "parts",
                           json_object_get(m, "parts"), "messageId", "m-1", "role", "ROLE_USER");
    char fp2[65];
    assert_int_equal(a2a_message_fingerprint(m2, fp2), 0);
    assert_string_equal(fp2, fp);
    json_object_set_new(m2, "role", json_string("user"));
    assert_int_equal(a2a_message_fingerprint(m2, fp2), 0);
    assert_string_not_equal(fp2, fp);
    json_decref(m2);
    json_decref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_encoders), cmocka_unit_test(test_stream_frames),
        cmocka_unit_test(test_string_escaping), cmocka_unit_test(test_direct_reply),
        cmocka_unit_test(test_version),       cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_parts),         cmocka_unit_test(test_states),
        cmocka_unit_test(test_message_fingerprint_pinned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
