/* Order updates: a PUT's fulfillment events and adjustments validated
 * against the UCP order schema and merged as append-only logs, and the
 * shipping simulation's "shipped" event. Pure. */
#include "commerce/order.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"

#define LOG_MAX 256 /* entries per log: far beyond any real order */

static int bad(struct agentd_error *e, const char *path, const char *msg)
{
    return agentd_fail(e, AGENTD_EUNPROCESSABLE, "invalid", path, "%s", msg);
}

static const struct order_line *line_of(const struct order *o, const char *id)
{
    for (size_t i = 0; id && i < o->n_lines; i++)
        if (strcmp(o->lines[i].line.id, id) == 0)
            return &o->lines[i];
    return NULL;
}

static int nonempty_str(const json_t *v) { return json_is_string(v) && json_string_length(v) > 0; }

/* The members every log entry shares: id, occurred_at, type, line_items. */
static int entry_check(const struct order *o, const json_t *x, const char *log, size_t i,
                       int need_lines, struct agentd_error *e)
{
    char path[96];
    if (!json_is_object(x)) {
        snprintf(path, sizeof path, "$.%s[%zu]", log, i);
        return bad(e, path, "each entry must be an object");
    }
    int64_t t;
    static const char *const strs[] = { "id", "type", "occurred_at" };
    for (size_t k = 0; k < 3; k++)
        if (!nonempty_str(json_object_get(x, strs[k]))) {
            snprintf(path, sizeof path, "$.%s[%zu].%s", log, i, strs[k]);
            return bad(e, path, "a non-empty string is required");
        }
    if (ucp_time_parse(json_string_value(json_object_get(x, "occurred_at")), &t)) {
        snprintf(path, sizeof path, "$.%s[%zu].occurred_at", log, i);
        return bad(e, path, "occurred_at must be an RFC 3339 date-time");
    }
    static const char *const opt[] = { "description", "carrier", "tracking_number",
                                       "tracking_url" };
    for (size_t k = 0; k < 4; k++) {
        const json_t *v = json_object_get(x, opt[k]);
        if (v && !json_is_string(v)) {
            snprintf(path, sizeof path, "$.%s[%zu].%s", log, i, opt[k]);
            return bad(e, path, "must be a string");
        }
    }
    const json_t *li = json_object_get(x, "line_items");
    snprintf(path, sizeof path, "$.%s[%zu].line_items", log, i);
    if (!li ? need_lines : !json_is_array(li))
        return bad(e, path, "line_items must be an array of {id, quantity}");
    size_t k;
    const json_t *l;
    json_array_foreach(li, k, l)
    {
        const json_t *q = json_object_get(l, "quantity");
        const struct order_line *ol = line_of(o, json_string_value(json_object_get(l, "id")));
        if (!ol)
            return bad(e, path, "a line item id is not one of this order's");
        if (!json_is_integer(q) || json_integer_value(q) < 1 ||
            json_integer_value(q) > ol->line.quantity)
            return bad(e, path, "a quantity must be an integer from 1 to the quantity ordered");
    }
    return 0;
}

static const json_t *by_id(const json_t *arr, const char *id)
{
    size_t i;
    const json_t *x;
    json_array_foreach(arr, i, x)
    {
        const char *xid = json_string_value(json_object_get(x, "id"));
        if (xid && id && strcmp(xid, id) == 0)
            return x;
    }
    return NULL;
}

/* The new log keeps every old entry (by id); same_but_status lets an
 * adjustment's status move on, every other member stays. */
static int append_only(const json_t *old, const json_t *neu, const char *log, int same_but_status,
                       struct agentd_error *e)
{
    size_t i;
    const json_t *x;
    char path[64];
    snprintf(path, sizeof path, "$.%s", log);
    json_array_foreach(old, i, x)
    {
        const json_t *n = by_id(neu, json_string_value(json_object_get(x, "id")));
        if (!n)
            return bad(e, path, "the log is append-only: an existing entry is missing");
        json_t *a = json_deep_copy(x), *b = json_deep_copy(n);
        if (same_but_status) {
            json_object_del(a, "status");
            json_object_del(b, "status");
        }
        int same = a && b && json_equal(a, b);
        json_decref(a);
        json_decref(b);
        if (!same)
            return bad(e, path, "the log is append-only: an existing entry changed");
    }
    for (size_t k = 0; k < json_array_size(neu); k++)
        for (size_t m = k + 1; m < json_array_size(neu); m++)
            if (json_equal(json_object_get(json_array_get(neu, k), "id"),
                           json_object_get(json_array_get(neu, m), "id")))
                return bad(e, path, "two entries share an id");
    return 0;
}

static int log_check(const struct order *o, const json_t *arr, const char *log, int adjustments,
                     struct agentd_error *e)
{
    char path[64];
    snprintf(path, sizeof path, "$.%s", log);
    if (!json_is_array(arr) || json_array_size(arr) > LOG_MAX)
        return bad(e, path, "must be an array (at most 256 entries)");
    size_t i;
    const json_t *x;
    json_array_foreach(arr, i, x)
    {
        int rc = entry_check(o, x, log, i, !adjustments, e);
        if (rc)
            return rc;
        if (adjustments) {
            const char *st = json_string_value(json_object_get(x, "status"));
            const json_t *amount = json_object_get(x, "amount");
            snprintf(path, sizeof path, "$.%s[%zu].status", log, i);
            if (!st || (strcmp(st, "pending") && strcmp(st, "completed") && strcmp(st, "failed")))
                return bad(e, path, "status must be pending, completed or failed");
            snprintf(path, sizeof path, "$.%s[%zu].amount", log, i);
            if (amount && (!json_is_integer(amount) || json_integer_value(amount) < 0 ||
                           json_integer_value(amount) > o->totals.total))
                return bad(e, path, "amount must be an integer in minor units, at most the "
                                    "order's total");
        }
    }
    return 0;
}

/* Quantity of line `id` in the "shipped" events. */
static int64_t shipped_sum(const json_t *events, const char *id)
{
    int64_t sum = 0;
    size_t i, k;
    const json_t *x, *li;
    json_array_foreach(events, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "type")), "shipped") != 0)
            continue;
        json_array_foreach(json_object_get(x, "line_items"), k, li)
            if (strcmp(json_string_value(json_object_get(li, "id")), id) == 0)
                sum += json_integer_value(json_object_get(li, "quantity"));
    }
    return sum;
}

/* More shipped than ordered is refused; else each line's fulfilled is what
 * the events say (never below what it was: orders shipped before events). */
static int fulfilled_recount(struct order *o, const json_t *events, struct agentd_error *e)
{
    for (size_t l = 0; l < o->n_lines; l++)
        if (shipped_sum(events, o->lines[l].line.id) > o->lines[l].line.quantity)
            return bad(e, "$.fulfillment.events",
                       "shipped quantities exceed a line item's quantity ordered");
    for (size_t l = 0; l < o->n_lines; l++) {
        int64_t sum = shipped_sum(events, o->lines[l].line.id);
        if (sum > o->lines[l].fulfilled)
            o->lines[l].fulfilled = sum;
    }
    return 0;
}

/* A new entry (not in old) whose member `key` is `value`. */
static int added_with(const json_t *old, const json_t *neu, const char *key, const char *value)
{
    size_t i;
    const json_t *x;
    json_array_foreach(neu, i, x)
    {
        const char *v = json_string_value(json_object_get(x, key));
        if (v && strcmp(v, value) == 0 && !by_id(old, json_string_value(json_object_get(x, "id"))))
            return 1;
    }
    return 0;
}

/* Members the merchant owns: a value sent must be ours. */
static int immutable_check(const struct order *o, const json_t *req, struct agentd_error *e)
{
    const json_t *v;
    if ((v = json_object_get(req, "id")) && !(json_is_string(v) && !strcmp(json_string_value(v), o->id)))
        return bad(e, "$.id", "id must be this order's id");
    if ((v = json_object_get(req, "checkout_id")) &&
        !(json_is_string(v) && !strcmp(json_string_value(v), o->checkout_id)))
        return bad(e, "$.checkout_id", "checkout_id cannot change");
    if ((v = json_object_get(req, "line_items"))) {
        size_t i;
        const json_t *l;
        if (!json_is_array(v) || json_array_size(v) != o->n_lines)
            return bad(e, "$.line_items", "line items are immutable");
        json_array_foreach(v, i, l)
        {
            const struct order_line *ol = line_of(o, json_string_value(json_object_get(l, "id")));
            const json_t *q = json_object_get(json_object_get(l, "quantity"), "total");
            if (!ol || (q && (!json_is_integer(q) || json_integer_value(q) != ol->line.quantity)))
                return bad(e, "$.line_items", "line items are immutable");
        }
    }
    const json_t *f = json_object_get(req, "fulfillment");
    if (f && !json_is_object(f))
        return bad(e, "$.fulfillment", "fulfillment must be an object");
    return 0;
}

int order_apply_update(struct order *o, const json_t *req, unsigned *changes,
                       struct agentd_error *e)
{
    *changes = 0;
    int rc = immutable_check(o, req, e);
    if (rc)
        return rc;
    const json_t *ev = json_object_get(json_object_get(req, "fulfillment"), "events");
    const json_t *adj = json_object_get(req, "adjustments");
    if (ev && ((rc = log_check(o, ev, "fulfillment.events", 0, e)) ||
               (rc = append_only(o->events, ev, "fulfillment.events", 0, e))))
        return rc;
    if (adj && ((rc = log_check(o, adj, "adjustments", 1, e)) ||
                (rc = append_only(o->adjustments, adj, "adjustments", 1, e))))
        return rc;
    if (ev && (rc = fulfilled_recount(o, ev, e)))
        return rc;
    unsigned ch = 0;
    if (ev && !json_equal(ev, o->events)) {
        ch |= ORDER_CHANGE_UPDATED;
        if (added_with(o->events, ev, "type", "shipped"))
            ch |= ORDER_CHANGE_SHIPPED;
        if (added_with(o->events, ev, "type", "canceled"))
            ch |= ORDER_CHANGE_CANCELED;
    }
    if (adj && !json_equal(adj, o->adjustments)) {
        ch |= ORDER_CHANGE_UPDATED;
        if (added_with(o->adjustments, adj, "type", "cancellation"))
            ch |= ORDER_CHANGE_CANCELED;
    }
    json_t *nev = ev ? json_deep_copy(ev) : NULL, *nadj = adj ? json_deep_copy(adj) : NULL;
    if ((ev && !nev) || (adj && !nadj)) {
        json_decref(nev);
        json_decref(nadj);
        return AGENTD_ENOMEM;
    }
    if (nev) {
        json_decref(o->events);
        o->events = nev;
    }
    if (nadj) {
        json_decref(o->adjustments);
        o->adjustments = nadj;
    }
    *changes = ch;
    return 0;
}

int order_append_shipped(struct order *o, const char *event_id, int64_t now_s,
                         const char *carrier, const char *tracking_number,
                         const char *tracking_url, struct agentd_error *e)
{
    char when[32];
    if (ucp_time_format(now_s, when, sizeof when))
        return AGENTD_EINVAL;
    json_t *li = json_array();
    for (size_t i = 0; li && i < o->n_lines; i++) {
        int64_t left = o->lines[i].line.quantity - o->lines[i].fulfilled;
        if (left > 0 && json_array_append_new(li, json_pack("{s:s, s:I}", "id",
                                                            o->lines[i].line.id, "quantity",
                                                            (json_int_t)left))) {
            json_decref(li);
            li = NULL;
        }
    }
    if (!li)
        return AGENTD_ENOMEM;
    if (json_array_size(li) == 0) {
        json_decref(li);
        return agentd_fail(e, AGENTD_ECONFLICT, "invalid_state", NULL,
                           "every line item of this order has shipped");
    }
    json_t *ev = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s}", "id", event_id, "occurred_at",
                           when, "type", "shipped", "line_items", li, "carrier", carrier,
                           "tracking_number", tracking_number, "tracking_url", tracking_url);
    if (!o->events && !(o->events = json_array())) {
        json_decref(ev);
        return AGENTD_ENOMEM;
    }
    if (!ev || json_array_append_new(o->events, ev))
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < o->n_lines; i++)
        o->lines[i].fulfilled = o->lines[i].line.quantity;
    return 0;
}
