/* Retail tools over the shop. One table holds each tool's name, description,
 * JSON schema and function, so what the model is told and what runs cannot
 * drift apart. Results are JSON the model (or the built-in planner) reads:
 * search -> {"products":[{id,title,price,currency,in_stock}],"total"};
 * checkout tools -> the UCP checkout object; errors -> {"error":{code,message}}. */
#include "agent/tools.h"
#include "commerce/catalog.h"
#include "commerce/checkout.h"
#include "commerce/ucp.h"
#include "core/err.h"
#include "shop/merchant.h"
#include "shop/shop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYMENT_DATA_KEY "a2a.ucp.checkout.payment_data"

typedef json_t *(*tool_fn)(struct tools_ctx *ctx, const json_t *args);

struct tool {
    const char *name;
    const char *description;
    const char *schema; /* JSON text */
    tool_fn fn;
};

/* ---- results ---- */

static json_t *error_result(const char *code, const char *message)
{
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

static json_t *checkout_result(int rc, struct checkout *co, const struct checkout_err *e)
{
    if (rc != 0)
        return error_result(e->code[0] ? e->code : agentd_err_code(rc),
                            e->msg[0] ? e->msg : agentd_err_msg(rc));
    struct ucp_negotiated all;
    ucp_negotiated_all(&all);
    json_t *j = checkout_to_json(co, &all);
    checkout_free(co);
    return j;
}

static json_t *no_checkout(void)
{
    return error_result("no_checkout", "the cart is empty: add a product first");
}

/* ---- catalog tools ---- */

static json_t *product_json(const struct product *p, const char *currency, int64_t stock)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:b,s:s,s:s}", "id", p->id, "title", p->name, "price",
                     (json_int_t)p->price, "currency", currency, "in_stock",
                     p->available && stock > 0, "category", p->category ? p->category : "",
                     "description", p->description ? p->description : "");
}

static json_t *t_search(struct tools_ctx *ctx, const json_t *args)
{
    struct catalog *cat = merchant_catalog(ctx->merchant);
    if (!cat)
        return error_result("unavailable", "the catalog is not loaded");
    struct catalog_query q = {
        .text = json_string_value(json_object_get(args, "query")),
        .category = json_string_value(json_object_get(args, "category")),
        .max_price = json_integer_value(json_object_get(args, "max_price")),
        .in_stock_only = json_is_true(json_object_get(args, "in_stock_only")),
        .limit = (size_t)json_integer_value(json_object_get(args, "limit")),
    };
    struct catalog_hits *hits = calloc(1, sizeof *hits);
    json_t *out = NULL;
    if (hits && catalog_search(cat, &q, hits) == 0) {
        json_t *list = json_array();
        for (size_t i = 0; i < hits->n; i++)
            json_array_append_new(list, product_json(hits->hits[i].product, catalog_currency(cat),
                                                     hits->hits[i].product->stock));
        out = json_pack("{s:o,s:I}", "products", list, "total", (json_int_t)hits->total);
    } else {
        out = error_result("search_failed", "the search could not run");
    }
    free(hits);
    catalog_unref(cat);
    return out;
}

static json_t *t_get_product(struct tools_ctx *ctx, const json_t *args)
{
    const char *id = json_string_value(json_object_get(args, "product_id"));
    struct catalog *cat = merchant_catalog(ctx->merchant);
    if (!cat)
        return error_result("unavailable", "the catalog is not loaded");
    const struct product *p = catalog_product(cat, id);
    json_t *out = p ? product_json(p, catalog_currency(cat), p->stock)
                    : error_result("not_found", "no product with this id; search the catalog first");
    catalog_unref(cat);
    return out;
}

/* ---- checkout tools ---- */

static json_t *t_add(struct tools_ctx *ctx, const json_t *args)
{
    const char *pid = json_string_value(json_object_get(args, "product_id"));
    json_int_t qty = json_integer_value(json_object_get(args, "quantity"));
    struct checkout *co = NULL;
    struct checkout_err e = { 0 };
    int rc = AGENTD_ENOTFOUND;
    if (ctx->checkout_id) {
        rc = shop_checkout_add_item_key(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, pid,
                                        qty, &co, NULL, &e);
        /* a finished checkout (paid or canceled) starts a new shopping goal */
        if (rc == AGENTD_ECONFLICT && strcmp(e.code, "not_modifiable") == 0)
            rc = AGENTD_ENOTFOUND;
    }
    if (rc == AGENTD_ENOTFOUND) {
        memset(&e, 0, sizeof e);
        json_t *req = json_pack("{s:[{s:{s:s},s:I}]}", "line_items", "item", "id", pid, "quantity", qty);
        rc = shop_checkout_create_key(ctx->shop, ctx->owner, req, ctx->op_key, &co, NULL, &e);
        json_decref(req);
        if (rc == 0) {
            free(ctx->checkout_id);
            ctx->checkout_id = strdup(co->id);
        }
    }
    return checkout_result(rc, co, &e);
}

struct qty_arg {
    const char *product;
    int64_t quantity; /* -1 = remove */
};

static int edit_qty(struct checkout *c, const struct shop_rules *r, void *arg, struct checkout_err *e)
{
    struct qty_arg *a = arg;
    if (a->quantity < 0)
        return checkout_item_remove(c, r, a->product, e);
    return checkout_item_set_quantity(c, r, a->product, a->quantity, e);
}

static json_t *edit_result(struct tools_ctx *ctx, shop_edit_fn fn, void *arg)
{
    if (!ctx->checkout_id)
        return no_checkout();
    struct checkout *co = NULL;
    struct checkout_err e = { 0 };
    int rc = shop_checkout_edit_key(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, fn, arg,
                                    &co, NULL, &e);
    return checkout_result(rc, co, &e);
}

static json_t *t_remove(struct tools_ctx *ctx, const json_t *args)
{
    struct qty_arg a = { json_string_value(json_object_get(args, "product_id")), -1 };
    return edit_result(ctx, edit_qty, &a);
}

static json_t *t_update(struct tools_ctx *ctx, const json_t *args)
{
    struct qty_arg a = { json_string_value(json_object_get(args, "product_id")),
                         json_integer_value(json_object_get(args, "quantity")) };
    return edit_result(ctx, edit_qty, &a);
}

static json_t *t_get(struct tools_ctx *ctx, const json_t *args)
{
    (void)args;
    if (!ctx->checkout_id)
        return no_checkout();
    struct checkout *co = NULL;
    struct checkout_err e = { 0 };
    int rc = shop_checkout_get(ctx->shop, ctx->owner, ctx->checkout_id, &co, &e);
    return checkout_result(rc, co, &e);
}

static int edit_customer(struct checkout *c, const struct shop_rules *r, void *arg,
                         struct checkout_err *e)
{
    const json_t *args = arg;
    const json_t *buyer = json_object_get(args, "buyer");
    const json_t *address = json_object_get(args, "address");
    int rc = 0;
    if (buyer) {
        struct checkout_buyer b = { 0 };
        rc = checkout_buyer_from_json(buyer, &b, e);
        if (rc == 0)
            rc = checkout_buyer_set(c, r, &b, e);
        checkout_buyer_clear(&b);
    }
    if (rc == 0 && address) {
        struct postal_address a = { 0 };
        rc = checkout_address_from_json(address, &a, e);
        if (rc == 0)
            rc = checkout_destination_set(c, r, &a, e);
        checkout_address_clear(&a);
    }
    return rc;
}

static json_t *t_customer(struct tools_ctx *ctx, const json_t *args)
{
    return edit_result(ctx, edit_customer, (void *)args);
}

static int edit_shipping(struct checkout *c, const struct shop_rules *r, void *arg,
                         struct checkout_err *e)
{
    return checkout_shipping_select(c, r, arg, e);
}

static json_t *t_shipping(struct tools_ctx *ctx, const json_t *args)
{
    return edit_result(ctx, edit_shipping,
                       (void *)json_string_value(json_object_get(args, "option_id")));
}

static json_t *t_start_payment(struct tools_ctx *ctx, const json_t *args)
{
    json_t *co = t_get(ctx, args);
    if (json_object_get(co, "error"))
        return co;
    const char *status = json_string_value(json_object_get(co, "status"));
    json_t *out = json_pack("{s:O,s:b,s:s,s:O}", "checkout", co, "ready",
                            status && strcmp(status, "ready_for_complete") == 0, "payment_data_key",
                            PAYMENT_DATA_KEY, "payment_handlers",
                            shop_payment_handlers(ctx->shop));
    json_decref(co);
    return out;
}

static json_t *t_complete(struct tools_ctx *ctx, const json_t *args)
{
    (void)args;
    if (!ctx->checkout_id)
        return no_checkout();
    /* the credential comes from the client's message data, never from model text */
    const json_t *pd = json_object_get(ctx->client_data, PAYMENT_DATA_KEY);
    if (!pd)
        return error_result("payment_required",
                            "payment is needed: send the message again with payment data under "
                            "data[\"" PAYMENT_DATA_KEY "\"]");
    struct checkout *co = NULL;
    struct order *o = NULL;
    int declined = 0;
    struct checkout_err e = { 0 };
    int rc = shop_checkout_complete_key(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, pd,
                                        &co, &o, &declined, NULL, &e);
    order_free(o);
    return checkout_result(rc, co, &e);
}

/* ---- the table ---- */

static const struct tool tools[] = {
    { "search_shopping_catalog", "Search the shop's product catalog by keywords; returns products with id, title, price (minor units) and stock.",
      "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"minLength\":1},"
      "\"category\":{\"type\":\"string\"},\"max_price\":{\"type\":\"integer\",\"minimum\":0},"
      "\"in_stock_only\":{\"type\":\"boolean\"},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50}},"
      "\"required\":[\"query\"]}", t_search },
    { "get_product", "Get one product by its id.",
      "{\"type\":\"object\",\"properties\":{\"product_id\":{\"type\":\"string\",\"minLength\":1}},"
      "\"required\":[\"product_id\"]}", t_get_product },
    { "add_to_checkout", "Add a quantity of a product (by id) to the buyer's checkout; creates the checkout if needed.",
      "{\"type\":\"object\",\"properties\":{\"product_id\":{\"type\":\"string\",\"minLength\":1},"
      "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9999}},"
      "\"required\":[\"product_id\",\"quantity\"]}", t_add },
    { "remove_from_checkout", "Remove a product from the checkout.",
      "{\"type\":\"object\",\"properties\":{\"product_id\":{\"type\":\"string\",\"minLength\":1}},"
      "\"required\":[\"product_id\"]}", t_remove },
    { "update_checkout", "Set the quantity of a product in the checkout (0 removes it).",
      "{\"type\":\"object\",\"properties\":{\"product_id\":{\"type\":\"string\",\"minLength\":1},"
      "\"quantity\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9999}},"
      "\"required\":[\"product_id\",\"quantity\"]}", t_update },
    { "get_checkout", "Show the current checkout: items, totals, status and what is missing.",
      "{\"type\":\"object\",\"properties\":{}}", t_get },
    { "update_customer_details", "Set the buyer (name, email) and the delivery address.",
      "{\"type\":\"object\",\"properties\":{\"buyer\":{\"type\":\"object\"},\"address\":{\"type\":\"object\"}}}",
      t_customer },
    { "select_shipping", "Choose a shipping option by its id (from the checkout's fulfillment options).",
      "{\"type\":\"object\",\"properties\":{\"option_id\":{\"type\":\"string\",\"minLength\":1}},"
      "\"required\":[\"option_id\"]}", t_shipping },
    { "start_payment", "Check the checkout is ready to pay and list the accepted payment handlers.",
      "{\"type\":\"object\",\"properties\":{}}", t_start_payment },
    { "complete_checkout", "Pay and place the order with the payment data the buyer's client sent.",
      "{\"type\":\"object\",\"properties\":{}}", t_complete },
};
#define NTOOLS (sizeof tools / sizeof tools[0])

static const struct tool *find(const char *name)
{
    for (size_t i = 0; name && i < NTOOLS; i++)
        if (strcmp(tools[i].name, name) == 0)
            return &tools[i];
    return NULL;
}

json_t *tools_definitions(void)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < NTOOLS; i++) {
        json_error_t je;
        json_t *params = json_loads(tools[i].schema, 0, &je);
        json_array_append_new(arr, json_pack("{s:s,s:{s:s,s:s,s:o}}", "type", "function", "function",
                                             "name", tools[i].name, "description",
                                             tools[i].description, "parameters", params));
    }
    return arr;
}

/* A small JSON-schema subset: type (object, string, integer, boolean),
 * required, properties, minLength, minimum, maximum. What our tools use. */
static int check(const json_t *schema, const json_t *v, const char *path, char *why, size_t len)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type) {
        int ok = (strcmp(type, "object") == 0 && json_is_object(v)) ||
                 (strcmp(type, "string") == 0 && json_is_string(v)) ||
                 (strcmp(type, "integer") == 0 && json_is_integer(v)) ||
                 (strcmp(type, "boolean") == 0 && json_is_boolean(v));
        if (!ok) {
            snprintf(why, len, "%s must be of type %s", path, type);
            return -1;
        }
    }
    const json_t *ml = json_object_get(schema, "minLength");
    if (ml && json_is_string(v) && json_string_length(v) < (size_t)json_integer_value(ml)) {
        snprintf(why, len, "%s must not be empty", path);
        return -1;
    }
    const json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
    if (json_is_integer(v) && ((mn && json_integer_value(v) < json_integer_value(mn)) ||
                               (mx && json_integer_value(v) > json_integer_value(mx)))) {
        snprintf(why, len, "%s is out of range", path);
        return -1;
    }
    size_t i;
    const json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req) {
        const json_t *got = json_object_get(v, json_string_value(req));
        if (!got || json_is_null(got)) { /* a null is no value: it would reach the shop as 0/NULL */
            snprintf(why, len, "%s.%s is required", path, json_string_value(req));
            return -1;
        }
    }
    const char *key;
    json_t *sub;
    json_object_foreach(json_object_get(schema, "properties"), key, sub) {
        const json_t *val = json_object_get(v, key);
        char p[128];
        snprintf(p, sizeof p, "%s.%s", path, key);
        if (val && !json_is_null(val) && check(sub, val, p, why, len) != 0)
            return -1;
    }
    return 0;
}

int tools_validate(const char *name, const json_t *args, char *why, size_t len)
{
    const struct tool *t = find(name);
    if (!t) {
        snprintf(why, len, "unknown tool %s", name ? name : "(none)");
        return -1;
    }
    json_error_t je;
    json_t *schema = json_loads(t->schema, 0, &je);
    int rc = schema ? check(schema, args, "arguments", why, len) : -1;
    json_decref(schema);
    return rc;
}

json_t *tools_run(struct tools_ctx *ctx, const char *name, const char *arguments)
{
    const struct tool *t = find(name);
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "there is no tool named %.64s", name ? name : "(none)");
        return error_result("unknown_tool", msg);
    }
    json_error_t je;
    json_t *args = json_loads(arguments && *arguments ? arguments : "{}", 0, &je);
    if (!args) {
        char msg[256];
        snprintf(msg, sizeof msg, "arguments are not valid JSON: %s", je.text);
        return error_result("invalid_arguments", msg);
    }
    char why[256];
    if (tools_validate(name, args, why, sizeof why) != 0) {
        json_decref(args);
        return error_result("invalid_arguments", why);
    }
    json_t *out = t->fn(ctx, args);
    json_decref(args);
    return out;
}
