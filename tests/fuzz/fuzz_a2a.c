/* Fuzz target: the A2A JSON-RPC front's pure decoding (api/a2a_wire.c,
 * api/a2a_ucp.c): the envelope, version and method names, then
 * params.message.parts as SendMessage decodes them (text, data, UI action). */
#include "fuzz.h"
#include "api/a2a_ucp.h"
#include "api/a2a_wire.h"
#include "core/err.h"

#include <string.h>

static void parts(const json_t *msg)
{
    json_t *p = NULL;
    struct agentd_error e = { 0 };
    int rc = a2a_parts_decode(json_object_get(msg, "parts"), &p, &e);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && p == NULL && e.msg[0]);
        FUZZ_CHECK(a2a_rpc_code(rc) < 0);
        return;
    }
    FUZZ_CHECK(json_is_array(p));
    char *text = a2a_parts_text(p);
    FUZZ_CHECK(text != NULL);
    json_t *d = a2a_parts_data(p);
    FUZZ_CHECK(d == NULL || json_is_object(d));
    const char *tool = NULL;
    json_t *args = NULL;
    struct agentd_error ae;
    int act = a2a_ucp_action(p, &tool, &args, &ae);
    FUZZ_CHECK(act == 0 || act == 1 || act < 0);
    if (act == 1)
        FUZZ_CHECK(tool && tool[0] && args);
    else
        FUZZ_CHECK(act == 0 || ae.msg[0]);
    json_decref(args);
    json_decref(d);
    free(text);
    json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, 0, &je);
    if (!body)
        return 0;
    struct a2a_rpc rpc = { 0 };
    struct agentd_error e = { 0 };
    int rc = a2a_envelope_check(body, &rpc, &e);
    json_t *answer;
    if (rc == 0) {
        FUZZ_CHECK(rpc.method != NULL);
        a2a_method_lookup(rpc.method, A2A_V03);
        a2a_method_lookup(rpc.method, A2A_V10);
        int v = a2a_version_parse(rpc.method);
        FUZZ_CHECK(v == A2A_V03 || v == A2A_V10 || v < 0);
        a2a_state_parse(rpc.method);
        answer = a2a_rpc_result(rpc.id, json_object());
    } else {
        FUZZ_CHECK(rc < 0 && e.msg[0]);
        answer = a2a_rpc_error(rpc.id, A2A_INVALID_REQUEST, e.msg, NULL);
    }
    /* the answer always serialises (an id of any accepted shape echoed) */
    char *s = answer ? json_dumps(answer, JSON_COMPACT) : NULL;
    FUZZ_CHECK(s != NULL);
    free(s);
    json_decref(answer);
    parts(json_object_get(json_object_get(body, "params"), "message"));
    json_decref(body);
    return 0;
}
