/* UI action turns (an A2A client's buttons): the action's tool call is the
 * turn's one step, recorded as a model's would be, and the answer is worded
 * here from its result — no model round trip, live or resumed. */
#include "agent/runner.h"
#include "agent/turn.h"
#include "commerce/money.h"
#include "core/buf.h"
#include "core/err.h"
#include "store/async.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The call id every action turn uses: one call per turn, so the operation
 * key (turn/step/0/call_action) is the same however often it is replayed. */
#define ACTION_CALL_ID "call_action"

/* ---- wording ---- */

static const json_t *checkout_of(const json_t *result)
{
    const json_t *in = json_object_get(result, "checkout"); /* start_payment wraps it */
    return json_is_object(in) ? in : result;
}

static void put_money(struct buf *b, json_int_t minor, const char *currency)
{
    char num[MONEY_FORMAT_MAX];
    const char *cur = currency ? currency : "USD";
    if (money_format(minor, money_currency_exponent(cur), num, sizeof num) < 0)
        return;
    if (strcmp(cur, "USD") == 0)
        buf_printf(b, "$%s", num);
    else
        buf_printf(b, "%s %s", num, cur);
}

static json_int_t total_of(const json_t *co, const char *type)
{
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(co, "totals"), i, t) {
        const char *ty = json_string_value(json_object_get(t, "type"));
        if (ty && strcmp(ty, type) == 0 && json_is_integer(json_object_get(t, "amount")))
            return json_integer_value(json_object_get(t, "amount"));
    }
    return -1;
}

/* The title of the checkout's line for product_id, else the id. */
static const char *title_of(const json_t *co, const char *product_id)
{
    size_t i;
    const json_t *li;
    json_array_foreach(json_object_get(co, "line_items"), i, li) {
        const json_t *item = json_object_get(li, "item");
        const char *id = json_string_value(json_object_get(item, "id"));
        const char *title = json_string_value(json_object_get(item, "title"));
        if (id && product_id && strcmp(id, product_id) == 0 && title)
            return title;
    }
    return product_id ? product_id : "the item";
}

/* What the buyer still has to give before paying, as one request. */
static void say_missing(struct buf *b, const json_t *co)
{
    const json_t *method = json_array_get(
        json_object_get(json_object_get(co, "fulfillment"), "methods"), 0);
    int email = !json_string_value(json_object_get(json_object_get(co, "buyer"), "email"));
    int address = json_array_size(json_object_get(method, "destinations")) == 0;
    if (email || address) {
        buf_printf(b, "provide your %s%s%s to continue.", email ? "email" : "",
                   email && address ? " and " : "", address ? "shipping address" : "");
        return;
    }
    const char *m = json_string_value(
        json_object_get(json_array_get(json_object_get(co, "messages"), 0), "content"));
    if (m)
        buf_printf(b, "%s", m);
    else
        buf_puts(b, "choose a shipping option to continue.");
}

char *action_answer(const char *tool, const json_t *args, const json_t *result)
{
    struct buf b = { 0 };
    const json_t *err = json_object_get(result, "error");
    const char *pid = json_string_value(json_object_get(args, "product_id"));
    json_int_t qty = json_integer_value(json_object_get(args, "quantity"));
    const json_t *co = checkout_of(result);
    if (!result) {
        buf_puts(&b, "Sorry, that didn't work: the shop did not answer.");
    } else if (err) {
        const char *m = json_string_value(json_object_get(err, "message"));
        buf_printf(&b, "Sorry, that didn't work: %s", m ? m : "the shop refused it.");
    } else if (strcmp(tool, "add_to_checkout") == 0) {
        buf_printf(&b, "Added %lld \u00d7 %s to your checkout.", (long long)qty, title_of(co, pid));
    } else if (strcmp(tool, "remove_from_checkout") == 0 ||
               (strcmp(tool, "update_checkout") == 0 && qty == 0)) {
        buf_printf(&b, "Removed %s from your checkout.", pid ? pid : "the item");
    } else if (strcmp(tool, "update_checkout") == 0) {
        buf_printf(&b, "Updated %s to %lld in your checkout.", title_of(co, pid), (long long)qty);
    } else if (strcmp(tool, "start_payment") == 0 || strcmp(tool, "get_checkout") == 0) {
        const char *status = json_string_value(json_object_get(co, "status"));
        if (status && strcmp(status, "ready_for_complete") == 0) {
            buf_puts(&b, "Your checkout is ready: choose a payment method to complete the purchase.");
        } else if (status && strcmp(status, "completed") == 0) {
            const char *oid = json_string_value(json_object_get(json_object_get(co, "order"), "id"));
            buf_printf(&b, "Your order %s is placed.", oid ? oid : "");
        } else {
            buf_puts(&b, "Here is your checkout; ");
            say_missing(&b, co);
        }
    } else if (strcmp(tool, "complete_checkout") == 0) {
        const char *oid = json_string_value(json_object_get(json_object_get(co, "order"), "id"));
        if (oid) {
            buf_printf(&b, "Your order %s is placed. Thank you!", oid);
            json_int_t total = total_of(co, "total");
            if (total >= 0) {
                buf_puts(&b, " Total charged: ");
                put_money(&b, total, json_string_value(json_object_get(co, "currency")));
                buf_puts(&b, ".");
            }
        } else {
            buf_puts(&b, "The order is not placed yet; ");
            say_missing(&b, co);
        }
    } else {
        buf_puts(&b, "Done.");
    }
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

/* ---- the step (worker) ---- */

static int op_action(struct store *st, void *arg)
{
    struct turn *t = arg;
    int rc = 0;
    /* step 0: the call is not recorded yet (live, or resumed before it);
     * else recover.c ran whatever the crash left of it */
    if (t->step == 0) {
        char *a = json_dumps(t->action_args, JSON_COMPACT);
        json_t *calls = a ? json_pack("[{s:s,s:s,s:{s:s,s:s}}]", "id", ACTION_CALL_ID, "type",
                                      "function", "function", "name", t->action_tool,
                                      "arguments", a)
                          : NULL;
        free(a);
        json_t *msg = calls ? json_pack("{s:s,s:n,s:O}", "role", "assistant", "content",
                                        "tool_calls", calls)
                            : NULL;
        int64_t reply_step = t->cp_step;
        rc = msg ? turn_record_assistant(st, t, msg) : AGENTD_ENOMEM;
        if (rc == 0) {
            t->step = 1;
            rc = turn_run_tools(st, t, calls, reply_step, 0);
        }
        json_decref(msg);
        json_decref(calls);
        if (rc)
            return rc;
    }
    char *answer = action_answer(t->action_tool, t->action_args, t->action_result);
    json_t *msg = answer ? json_pack("{s:s,s:s}", "role", "assistant", "content", answer) : NULL;
    rc = msg ? turn_record_assistant(st, t, msg) : AGENTD_ENOMEM;
    json_decref(msg);
    if (rc == 0)
        t->answer = answer;
    else
        free(answer);
    return rc;
}

static void action_done(int status, void *arg)
{
    struct turn *t = arg;
    if (!t->code[0] && (status != 0 || !t->answer))
        turn_fail(t, status ? status : AGENTD_ENOMEM, agentd_err_http(status ? status : AGENTD_ENOMEM),
                  agentd_err_code(status ? status : AGENTD_ENOMEM),
                  "the action could not be saved: %s",
                  agentd_err_msg(status ? status : AGENTD_ENOMEM));
    turn_resume_go(t); /* answered or failed: it finishes */
}

void turn_action_go(struct turn *t)
{
    if (turn_store_async(t, op_action, action_done) != 0) {
        turn_fail(t, AGENTD_EBUSY, 503, "busy", "the server is busy");
        turn_resume_go(t);
    }
}
