/* The offline model: reads the last user message and the tool results after
 * it, and answers like a tool-using model would. Rules, not learning. */
#define _GNU_SOURCE
#include "agent/offline_model.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/offline_details.h"
#include "agent/offline_intent.h"
#include "core/buf.h"
#include "core/err.h"
#include "llm/stream.h"

#define MAX_STEPS 16          /* tool calls after one user message before we stop and answer */
#define MAX_LISTED 8          /* products listed in a search answer */


/* One tool call after the last user message, with its result. */
struct step {
    const char *name;
    json_t *args;             /* parsed arguments (owned) */
    json_t *result;           /* parsed tool content (owned), NULL if not JSON */
};

struct convo {
    char *user;               /* last user text (owned) */
    struct step steps[MAX_STEPS];
    int nsteps;
    int total_calls;          /* tool calls in the whole conversation: ids go on from there */
    json_t *last_checkout;    /* most recent checkout-shaped tool result anywhere (owned ref) */
    size_t chars;             /* conversation size, for the usage estimate */
};

/* Money in minor units from an integer, a decimal number or a "4.99" string. */
static int money_minor(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    double d;
    if (json_is_real(v))
        d = json_real_value(v);
    else if (json_is_string(v)) {
        char *end;
        d = strtod(json_string_value(v), &end);
        if (end == json_string_value(v))
            return AGENTD_EINVAL;
    } else
        return AGENTD_EINVAL;
    *out = llround(d * 100);
    return 0;
}

static void put_money(struct buf *b, long long minor, const char *currency)
{
    const char *sign = minor < 0 ? "-" : "";
    long long a = llabs(minor);
    if (!currency || !strcmp(currency, "USD"))
        buf_printf(b, "%s$%lld.%02lld", sign, a / 100, a % 100);
    else
        buf_printf(b, "%s%lld.%02lld %s", sign, a / 100, a % 100, currency);
}

/* ---- reading the conversation ---- */

static const char *text_of(json_t *content, char **owned)
{
    *owned = NULL;
    if (json_is_string(content))
        return json_string_value(content);
    if (json_is_array(content)) { /* [{"type":"text","text":...}] parts */
        struct buf b = { 0 };
        size_t i;
        json_t *part;
        json_array_foreach(content, i, part) {
            const char *t = json_string_value(json_object_get(part, "text"));
            if (t) {
                if (b.len)
                    buf_puts(&b, "\n");
                buf_puts(&b, t);
            }
        }
        *owned = b.data;
        return b.data ? b.data : "";
    }
    return "";
}

static int looks_like_checkout(json_t *o)
{
    return json_is_object(o) && (json_object_get(o, "line_items") || json_object_get(o, "fulfillment") ||
                                 json_object_get(o, "order"));
}

/* Tools may wrap the checkout: {"checkout": {...}}. */
static json_t *unwrap(json_t *o)
{
    json_t *in = json_object_get(o, "checkout");
    return json_is_object(in) ? in : o;
}

static void convo_free(struct convo *c)
{
    free(c->user);
    for (int i = 0; i < c->nsteps; i++) {
        json_decref(c->steps[i].args);
        json_decref(c->steps[i].result);
    }
    json_decref(c->last_checkout);
}

static json_t *parse_json_text(const char *s)
{
    return s && *s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
}

static void convo_read(struct convo *c, const json_t *messages)
{
    memset(c, 0, sizeof *c);
    size_t n = json_array_size(messages), last_user = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        char *owned;
        const char *t = text_of(json_object_get(m, "content"), &owned);
        c->chars += strlen(t);
        free(owned);
        if (role && !strcmp(role, "user"))
            last_user = i;
        c->total_calls += (int)json_array_size(json_object_get(m, "tool_calls"));
        if (role && !strcmp(role, "tool")) {
            json_t *r = parse_json_text(text_of(json_object_get(m, "content"), &owned));
            free(owned);
            if (looks_like_checkout(unwrap(r))) {
                json_decref(c->last_checkout);
                c->last_checkout = json_incref(unwrap(r));
            }
            json_decref(r);
        }
    }
    if (last_user == (size_t)-1)
        return;
    char *owned;
    const char *t = text_of(json_object_get(json_array_get(messages, last_user), "content"), &owned);
    c->user = strdup(t);
    free(owned);
    /* the tool calls after it, matched with their results by id */
    for (size_t i = last_user + 1; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        json_t *calls = json_object_get(m, "tool_calls");
        size_t k;
        json_t *tc;
        json_array_foreach(calls, k, tc) {
            if (c->nsteps == MAX_STEPS)
                break;
            struct step *s = &c->steps[c->nsteps++];
            json_t *fn = json_object_get(tc, "function");
            s->name = json_string_value(json_object_get(fn, "name"));
            s->args = parse_json_text(json_string_value(json_object_get(fn, "arguments")));
            const char *id = json_string_value(json_object_get(tc, "id"));
            for (size_t j = i + 1; id && j < n; j++) {
                json_t *r = json_array_get(messages, j);
                const char *rid = json_string_value(json_object_get(r, "tool_call_id"));
                if (rid && !strcmp(rid, id)) {
                    s->result = parse_json_text(text_of(json_object_get(r, "content"), &owned));
                    if (!s->result) /* plain-text results still count as done */
                        s->result = json_string(owned ? owned
                                                      : json_string_value(json_object_get(r, "content"))
                                                            ? json_string_value(json_object_get(r, "content"))
                                                            : "");
                    free(owned);
                    break;
                }
            }
        }
    }
}

static struct step *find_step(struct convo *c, const char *name)
{
    for (int i = c->nsteps - 1; i >= 0; i--)
        if (c->steps[i].name && !strcmp(c->steps[i].name, name))
            return &c->steps[i];
    return NULL;
}

static const char *error_message(json_t *result)
{
    json_t *e = json_object_get(result, "error");
    if (!e)
        return NULL;
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!m)
        m = json_string_value(e);
    return m ? m : "the shop reported an error";
}

/* ---- wording answers from tool results ---- */

static long long total_of(json_t *totals, const char *type)
{
    size_t i;
    json_t *t;
    json_array_foreach(totals, i, t) {
        const char *ty = json_string_value(json_object_get(t, "type"));
        long long v;
        if (ty && !strcmp(ty, type) && money_minor(json_object_get(t, "amount"), &v) == 0)
            return v;
    }
    return -1;
}

static void word_cart(struct buf *b, json_t *co)
{
    co = unwrap(co);
    const char *cur = json_string_value(json_object_get(co, "currency"));
    json_t *lines = json_object_get(co, "line_items");
    if (!json_array_size(lines)) {
        buf_puts(b, "Your cart is empty.");
        return;
    }
    buf_puts(b, "Your cart:");
    size_t i;
    json_t *li;
    json_array_foreach(lines, i, li) {
        json_t *item = json_object_get(li, "item");
        const char *title = json_string_value(json_object_get(item, "title"));
        const char *id = json_string_value(json_object_get(item, "id"));
        long long qty = json_integer_value(json_object_get(li, "quantity"));
        long long price = 0, line;
        money_minor(json_object_get(item, "price"), &price);
        line = total_of(json_object_get(li, "totals"), "subtotal");
        if (line < 0)
            line = price * qty;
        buf_printf(b, "\n- %lld x %s (%s): ", qty, title ? title : (id ? id : "item"), id ? id : "?");
        put_money(b, line, cur);
    }
    long long total = total_of(json_object_get(co, "totals"), "total");
    if (total < 0)
        total = total_of(json_object_get(co, "totals"), "subtotal");
    if (total >= 0) {
        buf_puts(b, "\nTotal: ");
        put_money(b, total, cur);
    }
}

/* The fulfillment options of a checkout, in order. */
static void each_option(json_t *co, void (*fn)(json_t *opt, void *ud), void *ud)
{
    json_t *methods = json_object_get(json_object_get(unwrap(co), "fulfillment"), "methods");
    size_t i, j, k;
    json_t *m, *g, *o;
    json_array_foreach(methods, i, m) {
        json_array_foreach(json_object_get(m, "groups"), j, g) {
            json_array_foreach(json_object_get(g, "options"), k, o) fn(o, ud);
        }
    }
}

struct opt_list {
    struct buf *b;
    const char *cur;
    int n;
};

static void list_option(json_t *o, void *ud)
{
    struct opt_list *ol = ud;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *title = json_string_value(json_object_get(o, "title"));
    long long amount = total_of(json_object_get(o, "totals"), "total");
    buf_printf(ol->b, "\n- %s (%s)", title ? title : (id ? id : "option"), id ? id : "?");
    if (amount >= 0) {
        buf_puts(ol->b, ": ");
        put_money(ol->b, amount, ol->cur);
    }
    ol->n++;
}

struct opt_find {
    const char *level;
    char *id;
};

static void match_option(json_t *o, void *ud)
{
    struct opt_find *f = ud;
    if (f->id)
        return;
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *title = json_string_value(json_object_get(o, "title"));
    char *lt = title ? offline_lower_dup(title) : NULL, *li = id ? offline_lower_dup(id) : NULL;
    if (id && ((lt && strstr(lt, f->level)) || (li && strstr(li, f->level) ) ||
               (li && !strcmp(f->level, "express") && strstr(li, "exp"))))
        f->id = strdup(id);
    free(lt);
    free(li);
}

static void word_search(struct buf *b, json_t *res, const char *query)
{
    json_t *products = json_object_get(res, "products");
    if (!json_is_array(products))
        products = json_is_array(res) ? res : NULL;
    size_t n = json_array_size(products);
    if (!n) {
        buf_printf(b, "I couldn't find anything matching \"%s\". Try another word, like cookies, "
                      "chips or fruit.", query ? query : "that");
        return;
    }
    buf_printf(b, "Here is what I found for \"%s\":", query ? query : "your search");
    size_t i;
    json_t *p;
    json_array_foreach(products, i, p) {
        if (i == MAX_LISTED)
            break;
        const char *id = json_string_value(json_object_get(p, "id"));
        const char *title = json_string_value(json_object_get(p, "title"));
        if (!title)
            title = json_string_value(json_object_get(p, "name"));
        const char *cur = json_string_value(json_object_get(p, "currency"));
        long long price;
        buf_printf(b, "\n- %s (%s)", title ? title : "product", id ? id : "?");
        if (money_minor(json_object_get(p, "price"), &price) == 0) {
            buf_puts(b, ": ");
            put_money(b, price, cur);
        }
        if (json_is_false(json_object_get(p, "in_stock")))
            buf_puts(b, " (out of stock)");
    }
    json_int_t total = json_integer_value(json_object_get(res, "total"));
    if ((size_t)total > n && n <= MAX_LISTED)
        buf_printf(b, "\n...and %lld more.", (long long)total - (long long)n);
    else if (n > MAX_LISTED)
        buf_printf(b, "\n...and %zu more.", n - MAX_LISTED);
    buf_puts(b, "\nTell me what to add, e.g. \"add 2 ");
    const char *first = json_string_value(json_object_get(json_array_get(products, 0), "id"));
    buf_printf(b, "%s\".", first ? first : "<product id>");
}

/* ---- the plan ---- */

struct out {
    struct convo *cv;
    char *text;              /* final answer */
    const char *tool;        /* or a tool call */
    json_t *args;
};

static void say(struct out *o, struct buf *b)
{
    o->text = b->data ? b->data : strdup("");
    memset(b, 0, sizeof *b);
}

static void say_str(struct out *o, const char *s) { o->text = strdup(s); }

static void call(struct out *o, const char *tool, json_t *args)
{
    o->tool = tool;
    o->args = args ? args : json_object();
}

/* A tool result that is an error ends the turn with its message. */
static int said_error(struct out *o, struct step *s)
{
    const char *m = s && s->result ? error_message(s->result) : NULL;
    if (!m)
        return 0;
    struct buf b = { 0 };
    buf_printf(&b, "Sorry, that didn't work: %s", m);
    say(o, &b);
    return 1;
}

/* "Here is your checkout; provide your email and shipping address to
 * continue." — what the buyer still has to give, one line. */
static void word_missing(struct buf *b, json_t *co)
{
    json_t *method = json_array_get(json_object_get(json_object_get(co, "fulfillment"), "methods"), 0);
    int email = !json_string_value(json_object_get(json_object_get(co, "buyer"), "email"));
    int address = json_array_size(json_object_get(method, "destinations")) == 0;
    const char *m = json_string_value(json_object_get(json_array_get(json_object_get(co, "messages"), 0),
                                                      "content"));
    if (email || address)
        buf_printf(b, "Here is your checkout; provide your %s%s%s to continue.\n",
                   email ? "email" : "", email && address ? " and " : "",
                   address ? "shipping address" : "");
    else
        buf_printf(b, "Here is your checkout; %s\n", m ? m : "choose a shipping option to continue.");
}

/* The selected shipping option of a checkout, or NULL. */
static const char *chosen_option(json_t *co)
{
    json_t *m = json_array_get(json_object_get(json_object_get(unwrap(co), "fulfillment"), "methods"), 0);
    return json_string_value(json_object_get(json_array_get(json_object_get(m, "groups"), 0),
                                             "selected_option_id"));
}

/* The first line after update_customer_details: what was set. 1 when the
 * answer is complete (something is still missing), 0 when the shipping
 * options follow. */
static int word_details(struct buf *b, struct step *d)
{
    json_t *buyer = json_object_get(d->args, "buyer"), *addr = json_object_get(d->args, "address");
    const char *name = json_string_value(json_object_get(buyer, "full_name"));
    const char *email = json_string_value(json_object_get(buyer, "email"));
    json_t *co = unwrap(d->result);
    if (addr)
        buf_printf(b, "Got it: shipping to %s%s%s, %s.", name ? name : "", name ? ", " : "",
                   json_string_value(json_object_get(addr, "street_address")),
                   json_string_value(json_object_get(addr, "address_locality")));
    else
        buf_printf(b, "Got it: %s%s%s.", name ? name : "", name && email ? ", " : "",
                   email ? email : "");
    json_t *method = json_array_get(json_object_get(json_object_get(co, "fulfillment"), "methods"), 0);
    int no_email = !json_string_value(json_object_get(json_object_get(co, "buyer"), "email"));
    int no_address = json_array_size(json_object_get(method, "destinations")) == 0 && !addr;
    if (no_address) {
        buf_printf(b, "\nNow I need the shipping address%s, e.g. \"ship to Jane Doe, 1 Main St, "
                      "Springfield, IL 62701, US\".", no_email ? " and your email" : "");
        return 1;
    }
    if (no_email)
        buf_puts(b, "\nI also need your email address for the order.");
    return 0;
}

static void answer_cart(struct out *o, const char *lead, json_t *co)
{
    struct buf b = { 0 };
    if (lead)
        buf_printf(&b, "%s\n", lead);
    word_cart(&b, co);
    say(o, &b);
}

/* The best search hit to add: the first one in stock. */
static const char *top_hit(json_t *res)
{
    json_t *products = json_object_get(res, "products");
    size_t i;
    json_t *p;
    json_array_foreach(products, i, p)
        if (!json_is_false(json_object_get(p, "in_stock")))
            return json_string_value(json_object_get(p, "id"));
    return json_string_value(json_object_get(json_array_get(products, 0), "id"));
}

/* Finds a cart line whose title or id mentions the words. */
static const char *line_matching(json_t *co, const char *words)
{
    json_t *lines = json_object_get(unwrap(co), "line_items");
    size_t i;
    json_t *li;
    const char *found = NULL;
    json_array_foreach(lines, i, li) {
        json_t *item = json_object_get(li, "item");
        const char *id = json_string_value(json_object_get(item, "id"));
        const char *title = json_string_value(json_object_get(item, "title"));
        char *lt = title ? offline_lower_dup(title) : NULL;
        int hit = 0;
        /* every word of the request of 3+ letters appears in the title */
        char *w = strdup(words), *save = NULL;
        int any = 0;
        hit = lt != NULL;
        for (char *t = w ? strtok_r(w, " ", &save) : NULL; t; t = strtok_r(NULL, " ", &save)) {
            size_t tl = strlen(t);
            if (tl >= 3 && t[tl - 1] == 's')
                t[tl - 1] = 0; /* cookies ~ cookie */
            if (strlen(t) < 3)
                continue;
            any = 1;
            if (!lt || !strstr(lt, t))
                hit = 0;
        }
        free(w);
        free(lt);
        if (hit && any && id) {
            found = id;
            break;
        }
    }
    return found;
}

/* A search: call search_shopping_catalog, then list the hits. */
static void plan_search(struct convo *cv, const struct ask *a, struct out *o)
{
    struct step *s = find_step(cv, "search_shopping_catalog");
    if (!s) {
        json_t *args = json_pack("{s:s}", "query", a->query);
        if (args && a->max_price >= 0)
            json_object_set_new(args, "max_price", json_integer(a->max_price));
        call(o, "search_shopping_catalog", args);
    } else if (!said_error(o, s)) {
        struct buf b = { 0 };
        word_search(&b, s->result, a->query);
        say(o, &b);
    }
}

/* One product by id: get_product, then describe it. */
static void plan_product(struct convo *cv, const struct ask *a, struct out *o)
{
    struct step *s = find_step(cv, "get_product");
    if (!s)
        call(o, "get_product", json_pack("{s:s}", "product_id", a->product_id));
    else if (!said_error(o, s)) {
        json_t *p = json_object_get(s->result, "product");
        if (!json_is_object(p))
            p = s->result;
        struct buf b = { 0 };
        const char *title = json_string_value(json_object_get(p, "title"));
        const char *desc = json_string_value(json_object_get(p, "description"));
        long long price;
        buf_printf(&b, "%s (%s)", title ? title : a->product_id, a->product_id);
        if (money_minor(json_object_get(p, "price"), &price) == 0) {
            buf_puts(&b, ": ");
            put_money(&b, price, json_string_value(json_object_get(p, "currency")));
        }
        if (desc)
            buf_printf(&b, ". %s", desc);
        if (json_is_false(json_object_get(p, "in_stock")))
            buf_puts(&b, " It is out of stock right now.");
        say(o, &b);
    }
}

/* Add to the cart: by id, or by name through a search for the top hit. */
static void plan_add(struct convo *cv, const struct ask *a, struct out *o)
{
    if (a->quantity == 0) { /* "add 0 ..." / "add -1 ...": nothing to add, and not one */
        say_str(o, "A quantity to add must be at least 1. To take something out, say "
                   "\"remove BISC-001\", or \"change BISC-001 to 2\" to set a new quantity.");
        return;
    }
    int qty = a->quantity > 0 ? a->quantity : 1;
    struct step *added = find_step(cv, "add_to_checkout");
    if (added) {
        if (!said_error(o, added)) {
            const char *pid = json_string_value(json_object_get(added->args, "product_id"));
            char lead[160];
            snprintf(lead, sizeof lead, "Added %d x %s to your cart.", qty, pid ? pid : "it");
            answer_cart(o, lead, added->result);
        }
        return;
    }
    if (a->product_id) {
        call(o, "add_to_checkout", json_pack("{s:s, s:i}", "product_id", a->product_id,
                                             "quantity", qty));
        return;
    }
    if (!a->query || !*a->query) {
        say_str(o, "What would you like to add? Give me a product name or id, e.g. \"add 2 BISC-001\".");
        return;
    }
    struct step *s = find_step(cv, "search_shopping_catalog");
    if (!s) {
        call(o, "search_shopping_catalog", json_pack("{s:s}", "query", a->query));
    } else if (!said_error(o, s)) {
        const char *id = top_hit(s->result);
        if (!id) {
            struct buf b = { 0 };
            buf_printf(&b, "I couldn't find \"%s\" in the catalog.", a->query);
            say(o, &b);
        } else
            call(o, "add_to_checkout", json_pack("{s:s, s:i}", "product_id", id, "quantity", qty));
    }
}

/* Remove from the cart: by id, or by name matched against the cart's lines. */
static void plan_remove(struct convo *cv, const struct ask *a, struct out *o)
{
    struct step *r = find_step(cv, "remove_from_checkout");
    if (r) {
        if (!said_error(o, r)) {
            const char *pid = json_string_value(json_object_get(r->args, "product_id"));
            char lead[160];
            snprintf(lead, sizeof lead, "Removed %s from your cart.", pid ? pid : "it");
            answer_cart(o, lead, r->result);
        }
        return;
    }
    if (a->product_id) {
        call(o, "remove_from_checkout", json_pack("{s:s}", "product_id", a->product_id));
        return;
    }
    struct step *g = find_step(cv, "get_checkout");
    if (!g) {
        call(o, "get_checkout", NULL);
    } else if (!said_error(o, g)) {
        const char *id = a->query ? line_matching(g->result, a->query) : NULL;
        if (id)
            call(o, "remove_from_checkout", json_pack("{s:s}", "product_id", id));
        else {
            struct buf b = { 0 };
            buf_printf(&b, "I don't see \"%s\" in your cart.\n", a->query ? a->query : "that");
            word_cart(&b, g->result);
            say(o, &b);
        }
    }
}

/* Change a quantity (0 removes). */
static void plan_update(struct convo *cv, const struct ask *a, struct out *o)
{
    struct step *u = find_step(cv, "update_checkout");
    if (!u && a->quantity == 0) /* "to 0" removes: that step finishes it too */
        u = find_step(cv, "remove_from_checkout");
    if (u) {
        if (!said_error(o, u))
            answer_cart(o, "Updated.", u->result);
    } else if (a->quantity < 0) {
        say_str(o, "How many would you like? e.g. \"change BISC-001 to 3\".");
    } else if (a->quantity == 0) {
        call(o, "remove_from_checkout", json_pack("{s:s}", "product_id", a->product_id));
    } else {
        call(o, "update_checkout", json_pack("{s:s, s:i}", "product_id", a->product_id,
                                             "quantity", a->quantity));
    }
}

/* Show the cart (or the order once placed). */
static void plan_get(struct convo *cv, const struct ask *a, struct out *o)
{
    (void)a;
    struct step *g = find_step(cv, "get_checkout");
    if (!g)
        call(o, "get_checkout", NULL);
    else if (!said_error(o, g)) {
        json_t *order = json_object_get(unwrap(g->result), "order");
        const char *oid = json_string_value(json_object_get(order, "id"));
        if (oid) {
            struct buf b = { 0 };
            buf_printf(&b, "Your order %s is placed.\n", oid);
            word_cart(&b, g->result);
            say(o, &b);
        } else
            answer_cart(o, NULL, g->result);
    }
}

/* Buyer details from free text: update_customer_details, then the shipping options. */
static void plan_details(struct convo *cv, const struct ask *a, struct out *o)
{
    (void)a;
    struct step *d = find_step(cv, "update_customer_details");
    if (d) {
        if (said_error(o, d))
            return;
        struct buf b = { 0 };
        if (word_details(&b, d)) {
            say(o, &b);
            return;
        }
        struct opt_list ol = { &b, json_string_value(json_object_get(unwrap(d->result), "currency")), 0 };
        buf_puts(&b, "\nShipping options:");
        size_t mark = b.len;
        each_option(d->result, list_option, &ol);
        if (!ol.n) {
            b.len = mark - strlen("\nShipping options:");
            if (b.data)
                b.data[b.len] = 0;
        }
        buf_puts(&b, !ol.n ? "\nSay \"pay\" when you are ready."
                     : chosen_option(d->result)
                         ? "\nSay \"pay\" when you are ready, or choose another shipping "
                           "option (e.g. \"express shipping\")."
                         : "\nWhich shipping would you like (e.g. \"express shipping\")?");
        say(o, &b);
        return;
    }
    json_t *args = offline_parse_details(cv->user);
    if (args)
        call(o, "update_customer_details", args);
    else
        say_str(o, "To ship your order I need a name, street, city, region, postal code, country "
                   "and email, e.g. \"ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, "
                   "jane@example.com\".");
}

/* Is the checkout ready to pay: start_payment. */
static void plan_start_pay(struct convo *cv, const struct ask *a, struct out *o)
{
    (void)a;
    struct step *s = find_step(cv, "start_payment");
    if (!s) {
        call(o, "start_payment", NULL);
    } else if (!said_error(o, s)) {
        json_t *co = unwrap(s->result);
        const char *st = json_string_value(json_object_get(co, "status"));
        struct buf b = { 0 };
        if (st && !strcmp(st, "ready_for_complete"))
            buf_puts(&b, "Your checkout is ready: choose a payment method to complete the "
                         "purchase.\n");
        else
            word_missing(&b, co);
        word_cart(&b, co);
        say(o, &b);
    }
}

/* Pick a shipping level: the matching option of the latest checkout. */
static void plan_shipping(struct convo *cv, const struct ask *a, struct out *o)
{
    struct step *s = find_step(cv, "select_shipping");
    if (s) {
        if (!said_error(o, s)) {
            const char *lv = a->level ? a->level : "express";
            char lead[160];
            snprintf(lead, sizeof lead, "%c%s shipping selected.", toupper((unsigned char)lv[0]), lv + 1);
            struct buf b = { 0 };
            buf_printf(&b, "%s\n", lead);
            word_cart(&b, s->result);
            buf_puts(&b, "\nSay \"pay\" to place the order.");
            say(o, &b);
        }
        return;
    }
    struct opt_find f = { a->level ? a->level : "express", NULL };
    if (cv->last_checkout)
        each_option(cv->last_checkout, match_option, &f);
    if (!f.id) /* the demo catalog's rate ids */
        f.id = strdup(!strcmp(f.level, "standard") ? "std-ship"
                      : !strcmp(f.level, "overnight") ? "us-overnight" : "exp-ship");
    call(o, "select_shipping", json_pack("{s:s}", "option_id", f.id));
    free(f.id);
}

/* Pay: complete_checkout, then the order placed or what it still needs. */
static void plan_pay(struct convo *cv, const struct ask *a, struct out *o)
{
    (void)a;
    /* the payment token travels as client data, never through the model */
    struct step *s = find_step(cv, "complete_checkout");
    if (!s) {
        call(o, "complete_checkout", NULL);
    } else if (!said_error(o, s)) {
        json_t *co = unwrap(s->result);
        /* order.permalink_url opens for the buyer (the order-status page,
         * api/order_page.c) when it carries the page's token; an older
         * order's link is the JSON path, which a person cannot open */
        const json_t *order = json_object_get(co, "order");
        const char *oid = json_string_value(json_object_get(order, "id"));
        const char *link = json_string_value(json_object_get(order, "permalink_url"));
        struct buf b = { 0 };
        if (oid) {
            buf_printf(&b, "Your order %s is placed. Thank you!", oid);
            long long total = total_of(json_object_get(co, "totals"), "total");
            if (total >= 0) {
                buf_puts(&b, " Total charged: ");
                put_money(&b, total, json_string_value(json_object_get(co, "currency")));
                buf_puts(&b, ".");
            }
            if (link && strstr(link, "/status?t="))
                buf_printf(&b, " Follow your order at %s", link);
        } else {
            /* not placed: say what the checkout still needs */
            json_t *msgs = json_object_get(co, "messages");
            const char *m = json_string_value(json_object_get(json_array_get(msgs, 0), "content"));
            buf_printf(&b, "The order is not placed yet%s%s", m ? ": " : ".", m ? m : "");
        }
        say(o, &b);
    }
}

/* The next step for the last user message: its intent's planner, unless the
 * turn already took MAX_STEPS tool calls or a tool's answer is missing. */
static void plan(struct convo *cv, struct out *o)
{
    struct ask a;
    offline_understand(cv->user ? cv->user : "", &a);
    struct step *last = cv->nsteps ? &cv->steps[cv->nsteps - 1] : NULL;
    if (cv->nsteps >= MAX_STEPS)
        say_str(o, "I've done what I can for that request. What would you like next?");
    else if (last && !last->result)
        say_str(o, "I'm still waiting for the shop's answer.");
    else
        switch (a.intent) {
        case I_SEARCH: plan_search(cv, &a, o); break;
        case I_PRODUCT: plan_product(cv, &a, o); break;
        case I_ADD: plan_add(cv, &a, o); break;
        case I_REMOVE: plan_remove(cv, &a, o); break;
        case I_UPDATE: plan_update(cv, &a, o); break;
        case I_GET: plan_get(cv, &a, o); break;
        case I_DETAILS: plan_details(cv, &a, o); break;
        case I_START_PAY: plan_start_pay(cv, &a, o); break;
        case I_SHIPPING: plan_shipping(cv, &a, o); break;
        case I_PAY: plan_pay(cv, &a, o); break;
        case I_HELLO:
            say_str(o, "Hi! I can search the catalog (\"show me cookies\"), add items (\"add 2 BISC-001\"), "
                       "set your shipping address, pick shipping and place the order.");
            break;
        case I_THANKS:
            say_str(o, "You're welcome! Anything else?");
            break;
        case I_NONE:
        default:
            say_str(o, "Sorry, I didn't catch that. I can search products (\"show me cookies\"), add "
                       "them to your cart (\"add 2 BISC-001\"), show your cart, set a shipping address, "
                       "choose shipping and place the order (\"pay\").");
            break;
        }
    offline_ask_free(&a);
}

int offline_model_plan(const json_t *messages, struct llm_reply *out)
{
    memset(out, 0, sizeof *out);
    struct convo cv;
    convo_read(&cv, messages);
    struct out o = { &cv, NULL, NULL, NULL };
    plan(&cv, &o);
    int rc = AGENTD_ENOMEM;
    if (o.tool) {
        char id[32];
        snprintf(id, sizeof id, "call_%d", cv.total_calls + 1);
        char *args = o.args ? json_dumps(o.args, JSON_COMPACT) : NULL;
        out->tool_calls = args ? json_pack("[{s:s, s:s, s:{s:s, s:s}}]", "id", id, "type", "function",
                                           "function", "name", o.tool, "arguments", args)
                               : NULL;
        out->finish_reason = strdup("tool_calls");
        out->usage.completion_tokens = args ? (int64_t)strlen(args) / 4 + 8 : 0;
        free(args);
        rc = out->tool_calls && out->finish_reason ? 0 : AGENTD_ENOMEM;
    } else if (o.text) {
        out->content = o.text;
        o.text = NULL;
        out->finish_reason = strdup("stop");
        out->usage.completion_tokens = (int64_t)strlen(out->content) / 4 + 1;
        rc = out->finish_reason ? 0 : AGENTD_ENOMEM;
    }
    out->usage.prompt_tokens = (int64_t)cv.chars / 4 + 1;
    json_decref(o.args);
    free(o.text);
    convo_free(&cv);
    if (rc != 0)
        llm_reply_clear(out);
    return rc;
}

static int plan_cb(const json_t *messages, struct llm_reply *out, void *ud)
{
    (void)ud;
    return offline_model_plan(messages, out);
}

const struct llm_local_model *offline_model(void)
{
    static const struct llm_local_model m = { OFFLINE_MODEL_NAME, plan_cb, NULL };
    return &m;
}
