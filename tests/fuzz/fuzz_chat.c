/* Fuzz target: the POST /chat body check (api/chat.c chat_request_parse),
 * including the UI action it hands to api/a2a_ucp.c. */
#include "fuzz.h"
#include "api/chat.h"
#include "core/err.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chat_request q;
    struct agentd_error e = { 0 };
    int rc = chat_request_parse((const char *)data, size, &q, &e);
    if (rc != 0) {
        FUZZ_CHECK(rc == AGENTD_EINVAL || rc == AGENTD_ENOMEM);
        FUZZ_CHECK(q.body == NULL && q.action_args == NULL && q.action_text == NULL);
        FUZZ_CHECK(rc != AGENTD_EINVAL || e.msg[0]);
        return 0;
    }
    FUZZ_CHECK(json_is_object(q.body));
    if (q.action_tool) {
        FUZZ_CHECK(q.action_text != NULL);
    } else {
        FUZZ_CHECK(json_is_string(q.message) && json_string_length(q.message) > 0);
    }
    FUZZ_CHECK(!q.message || !json_is_string(q.message) ||
               json_string_length(q.message) <= CHAT_MESSAGE_MAX);
    FUZZ_CHECK(!q.data || json_is_object(q.data));
    FUZZ_CHECK(q.busy_policy >= -1);
    if (q.session_id && json_is_string(q.session_id))
        FUZZ_CHECK(json_string_length(q.session_id) >= 1 && json_string_length(q.session_id) <= 64);
    chat_request_clear(&q);
    FUZZ_CHECK(q.body == NULL);
    return 0;
}
