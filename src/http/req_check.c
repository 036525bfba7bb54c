/* Request checks a handler asks for: a JSON body's media type and nesting
 * depth, and a header's every field line joined into one value. */
#include "http/server.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

const char *http_req_header_joined(struct http_req *r, const char *name, char *buf, size_t cap)
{
    if (!r->ev || cap == 0)
        return NULL;
    const char *first = NULL;
    size_t n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(r->ev), next) {
        if (strcasecmp(kv->key, name) != 0)
            continue;
        if (!first) {
            first = kv->value;
            continue;
        }
        if (n == 0)
            n = (size_t)snprintf(buf, cap, "%s", first);
        if (n < cap - 1)
            n += (size_t)snprintf(buf + n, cap - n, ", %s", kv->value);
        if (n > cap - 1)
            n = cap - 1;
    }
    return n ? buf : first;
}

int http_json_depth(const char *t, size_t len)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int http_req_check_json(struct http_req *r, struct agentd_error *e)
{
    if (!r->body_len)
        return 0;
    const char *ct = http_req_header(r, "Content-Type");
    if (ct) {
        size_t n = strcspn(ct, ";");
        while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
            n--;
        int json = (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
                   (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
        if (!json)
            return agentd_fail(e, AGENTD_EMEDIATYPE, NULL, NULL,
                               "the body must be JSON (Content-Type: application/json)");
    }
    if (http_json_depth(r->body, r->body_len) > HTTP_JSON_MAX_DEPTH)
        return agentd_fail(e, AGENTD_EMALFORMED, NULL, NULL,
                           "the JSON body nests deeper than %d levels", HTTP_JSON_MAX_DEPTH);
    return 0;
}
