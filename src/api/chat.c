/* POST /chat: validates the body, claims the Idempotency-Key, starts a turn
 * and answers when the turn ends. The turn belongs to the server: if the
 * client leaves, it still runs to its end and is persisted. */
#include "api/chat.h"
#include "agent/runner.h"
#include "api/idempotency.h"
#include "core/err.h"
#include "http/server.h"

#include <stdio.h>
#include <string.h>

static struct {
    struct agent *ag;
    struct store *st;
} F;

static void turn_done(const struct turn_result *res, void *ud)
{
    struct http_req *r = ud;
    if (res->status != 0) {
        if (res->http_status == 503) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", res->retry_after_s > 0 ? res->retry_after_s : 5);
            http_set_header(r, "Retry-After", ra);
        }
        json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", res->code, "message",
                                 res->message, "request_id", r->request_id);
        /* the one error shape has "error" alone at the top (design §5); the
         * session a failed turn belongs to rides inside it, so a client can
         * continue that session */
        if (res->session_id)
            json_object_set_new(json_object_get(body, "error"), "session_id",
                                json_string(res->session_id));
        http_reply_json(r, res->http_status ? res->http_status : 500, body);
        return;
    }
    json_t *body = json_pack("{s:s,s:s,s:O}", "answer", res->message, "session_id", res->session_id,
                             "checkout", res->checkout ? res->checkout : json_null());
    http_reply_json(r, 200, body);
}

static void chat_inner(struct http_req *r)
{
    json_error_t je;
    json_t *body = r->body_len ? json_loadb(r->body, r->body_len, 0, &je) : NULL;
    const char *problem = NULL;
    json_t *msg = json_object_get(body, "message");
    json_t *sid = json_object_get(body, "session_id");
    json_t *data = json_object_get(body, "data");
    json_t *busy = json_object_get(body, "busy_policy");
    int policy = -1;
    if (!json_is_object(body))
        problem = r->body_len ? "the body must be a JSON object" : "a JSON body is required";
    else if (!json_is_string(msg) || json_string_length(msg) == 0)
        problem = "\"message\" must be a non-empty string";
    else if (json_string_length(msg) > CHAT_MESSAGE_MAX)
        problem = "\"message\" is longer than 16384 bytes";
    else if (sid && !json_is_null(sid) && (!json_is_string(sid) || json_string_length(sid) == 0 ||
                                           json_string_length(sid) > 64))
        problem = "\"session_id\" must be a session id returned by an earlier answer";
    else if (data && !json_is_null(data) && !json_is_object(data))
        problem = "\"data\" must be an object";
    else if (busy && !json_is_null(busy) &&
             (policy = agent_busy_policy_parse(json_string_value(busy))) < 0)
        problem = "\"busy_policy\" must be \"enqueue\", \"reject\" or \"interrupt\"";
    if (problem) {
        json_decref(body);
        http_reply_error(r, 400, "invalid_request", problem);
        return;
    }
    int rc = agent_turn_start(F.ag, r->loop, r->principal, json_string_value(sid),
                              json_string_value(msg), json_is_object(data) ? data : NULL,
                              policy, r->request_id, turn_done, r);
    json_decref(body);
    if (rc != 0)
        http_reply_err(r, rc, NULL);
}

static void h_chat(struct http_req *r)
{
    idem_handle(r, F.st, r->principal, chat_inner, NULL, IDEM_KEEP_5XX);
}

int chat_routes(struct router *rt, struct agent *ag, struct store *st)
{
    F.ag = ag;
    F.st = st;
    return router_add(rt, HTTP_POST, "/chat", h_chat, NULL);
}
