/* Retail tools over the shop. One table holds each tool's name, description,
 * JSON schema and function, so what the model is told and what runs cannot
 * drift apart. Results are JSON the model (or the built-in planner) reads:
 * search -> {"products":[{id,title,price,currency,in_stock,category,description,
 * image?,brand?,url?}],"total"};
 * checkout tools -> the UCP checkout object; errors -> {"error":{code,message}}. */
#include "agent/tools.h"
#include "agent/budget.h"
#include "agent/tool_products.h"
#include "commerce/catalog.h"
#include "commerce/checkout.h"
#include "commerce/fields.h"
#include "commerce/ucp.h"
#include "core/err.h"
#include "shop/merchant.h"
#include "shop/shop.h"

#include "core/buf.h"
#include "core/jsondump.h"

#include <ctype.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYMENT_DATA_KEY "a2a.ucp.checkout.payment_data"

typedef json_t *(*tool_fn)(struct tools_ctx *ctx, const json_t *args);

struct tool {
    const char *name;
    const char *description;
    const char *schema;  /* JSON text: the parameters' JSON schema */
    const char *example; /* JSON text: valid arguments (NULL: the tool takes none) */
    tool_fn fn;
    int mutates_checkout; /* 1: it changes the checkout (the turn's outcome notes its failure) */
};

/* ---- results ---- */

static json_t *error_result(const char *code, const char *message)
{
    return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
}

static json_t *checkout_result(int rc, struct checkout *co, const struct agentd_error *e)
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

/* The search's texts, made with its result (tool_products.c) and taken by
 * tools_run_texts in the same call: NULL when not made. */
static _Thread_local struct {
    char *content, *escaped;
} tl_texts;

static void texts_clear(void)
{
    free(tl_texts.content);
    free(tl_texts.escaped);
    tl_texts.content = tl_texts.escaped = NULL;
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
        texts_clear();
        out = tool_products_search(cat, hits, &tl_texts.content, &tl_texts.escaped);
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
    json_t *out = p ? tool_product_json(p, catalog_currency(cat), p->stock)
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
    struct agentd_error e = { 0 };
    int rc = AGENTD_ENOTFOUND;
    if (ctx->checkout_id) {
        rc = shop_checkout_add_item(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, pid,
                                    qty, &co, NULL, &e);
        /* a finished checkout (paid or canceled) starts a new shopping goal */
        if (rc == AGENTD_ECONFLICT && strcmp(e.code, "not_modifiable") == 0)
            rc = AGENTD_ENOTFOUND;
    }
    if (rc == AGENTD_ENOTFOUND) {
        memset(&e, 0, sizeof e);
        json_t *req = json_pack("{s:[{s:{s:s},s:I}]}", "line_items", "item", "id", pid, "quantity", qty);
        rc = shop_checkout_create(ctx->shop, ctx->owner, req, ctx->op_key, &co, NULL, &e);
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

static int edit_qty(struct checkout *c, const struct shop_rules *r, void *arg, struct agentd_error *e)
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
    struct agentd_error e = { 0 };
    int rc = shop_checkout_edit(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, fn, arg,
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
    struct agentd_error e = { 0 };
    int rc = shop_checkout_get(ctx->shop, ctx->owner, ctx->checkout_id, &co, &e);
    return checkout_result(rc, co, &e);
}

/* A JSON null is no value (the validator treats it so too). */
static const json_t *given(const json_t *args, const char *key)
{
    const json_t *v = json_object_get(args, key);
    return json_is_null(v) ? NULL : v;
}

static int edit_customer(struct checkout *c, const struct shop_rules *r, void *arg,
                         struct agentd_error *e)
{
    const json_t *args = arg;
    const json_t *buyer = given(args, "buyer");
    const json_t *address = given(args, "address");
    int rc = 0;
    if (buyer) {
        struct checkout_buyer b = { 0 };
        rc = checkout_buyer_from_json(buyer, &b, e);
        if (rc == 0) {
            /* A model sends what this message told it: the email given two
             * messages ago must survive a call that adds the phone number.
             * The name is one unit (first/last or full), replaced whole.
             * Borrowed pointers: checkout_buyer_set copies them. */
            struct checkout_buyer m = b;
            if (c->has_buyer) {
                if (!b.first_name && !b.last_name && !b.full_name) {
                    m.first_name = c->buyer.first_name;
                    m.last_name = c->buyer.last_name;
                    m.full_name = c->buyer.full_name;
                }
                if (!b.email)
                    m.email = c->buyer.email;
                if (!b.phone_number)
                    m.phone_number = c->buyer.phone_number;
            }
            rc = checkout_buyer_set(c, r, &m, e);
        }
        checkout_buyer_clear(&b);
    }
    if (rc == 0 && address) {
        struct postal_address a = { 0 };
        rc = checkout_address_from_json(address, &a, e);
        if (rc == 0)
            rc = checkout_destination_set(c, r, &a, e);
        checkout_address_clear(&a);
        /* As UCP's sample merchant does, an address with no option chosen
         * gets one — the cheapest (the first of equals) — so a buyer whose
         * client has no shipping picker can pay; select_shipping changes it. */
        const struct fulfillment_group *g =
            rc == 0 && c->n_methods && c->methods[0].n_groups
                ? &c->methods[0].groups[0] : NULL;
        if (g && !g->selected_option_id && g->n_options) {
            size_t best = 0;
            for (size_t i = 1; i < g->n_options; i++)
                if (g->options[i].amount < g->options[best].amount)
                    best = i;
            rc = checkout_shipping_select(c, r, g->options[best].id, e);
        }
    }
    return rc;
}

static json_t *t_customer(struct tools_ctx *ctx, const json_t *args)
{
    return edit_result(ctx, edit_customer, (void *)args);
}

static int edit_shipping(struct checkout *c, const struct shop_rules *r, void *arg,
                         struct agentd_error *e)
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
    struct agentd_error e = { 0 };
    int rc = shop_checkout_complete(ctx->shop, ctx->owner, ctx->checkout_id, ctx->op_key, pd,
                                    &co, &o, &declined, NULL, &e);
    order_free(o);
    return checkout_result(rc, co, &e);
}

/* ---- the table ---- */

/* The schemas use only keywords the validator below enforces (a unit test
 * walks them), and none that OpenAI-compatible providers reject. Patterns
 * are in the common subset of ECMA-262 (what providers use) and POSIX ERE
 * (what check() uses): no backslash classes. Descriptions quote with ''
 * so the C text stays readable. */
#define ID_PATTERN "^[A-Za-z0-9._-]{1,63}$"
#define STR(len, desc) \
    "{\"type\":\"string\",\"minLength\":1,\"maxLength\":" #len ",\"description\":\"" desc "\"}"
#define PRODUCT_ID(desc)                                                                  \
    "\"product_id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":63,\"pattern\":\"" ID_PATTERN \
    "\",\"description\":\"" desc "\"}"
#define QUANTITY(min, desc)                                                                  \
    "\"quantity\":{\"type\":\"integer\",\"minimum\":" #min ",\"maximum\":9999,\"description\":\"" \
    desc "\"}"
#define NO_ARGS "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}"

static const struct tool tools[] = {
    { "search_shopping_catalog",
      "Search the shop's product catalog by keywords. Returns {products:[{id,title,price,currency,"
      "in_stock,category,description}],total}; price is in minor units (cents). Use a product's id "
      "with get_product or add_to_checkout; never invent ids.",
      "{\"type\":\"object\",\"properties\":{"
      "\"query\":" STR(200, "Keywords, e.g. chocolate cookies.") ","
      "\"category\":{\"type\":\"string\",\"maxLength\":100,\"description\":\"Only products of this "
      "category (exact name, case-insensitive, as seen in earlier results). Omit for any.\"},"
      "\"max_price\":{\"type\":\"integer\",\"minimum\":0,\"description\":\"Only products costing at "
      "most this, in minor units of the shop's currency (500 = 5.00). 0 or omitted: no limit.\"},"
      "\"in_stock_only\":{\"type\":\"boolean\",\"description\":\"true: only products in stock.\"},"
      "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"description\":\"How many "
      "products to return, 1-50 (default 10).\"}},"
      "\"required\":[\"query\"],\"additionalProperties\":false}",
      "{\"query\":\"chocolate cookies\",\"in_stock_only\":true,\"limit\":5}", t_search, 0 },
    { "get_product", "Get one product by its id: title, price (minor units), stock, description.",
      "{\"type\":\"object\",\"properties\":{"
      PRODUCT_ID("The product's id from search_shopping_catalog results.") "},"
      "\"required\":[\"product_id\"],\"additionalProperties\":false}",
      "{\"product_id\":\"BISC-001\"}", t_get_product, 0 },
    { "add_to_checkout",
      "Add a quantity of a product (by id) to the buyer's checkout; creates the checkout if there "
      "is none. Returns the checkout (UCP): line items, totals in minor units, status, messages.",
      "{\"type\":\"object\",\"properties\":{"
      PRODUCT_ID("The product's id from search_shopping_catalog results.") ","
      QUANTITY(1, "How many to add, 1-9999.") "},"
      "\"required\":[\"product_id\",\"quantity\"],\"additionalProperties\":false}",
      "{\"product_id\":\"BISC-001\",\"quantity\":2}", t_add, 1 },
    { "remove_from_checkout", "Remove a product (every unit of it) from the checkout.",
      "{\"type\":\"object\",\"properties\":{"
      PRODUCT_ID("The id of a product in the checkout's line_items (item.id).") "},"
      "\"required\":[\"product_id\"],\"additionalProperties\":false}",
      "{\"product_id\":\"BISC-001\"}", t_remove, 1 },
    { "update_checkout", "Set the quantity of a product already in the checkout (0 removes it).",
      "{\"type\":\"object\",\"properties\":{"
      PRODUCT_ID("The id of a product in the checkout's line_items (item.id).") ","
      QUANTITY(0, "The new quantity, 0-9999; 0 removes the product.") "},"
      "\"required\":[\"product_id\",\"quantity\"],\"additionalProperties\":false}",
      "{\"product_id\":\"BISC-001\",\"quantity\":3}", t_update, 1 },
    { "get_checkout",
      "Show the current checkout: items, totals (minor units), status, shipping options and "
      "messages saying what is still missing.",
      NO_ARGS, NULL, t_get, 0 },
    { "update_customer_details",
      "Set the buyer's contact details and/or the shipping address, each as separate fields "
      "(never one text). Buyer fields you leave out keep their earlier values; an address "
      "replaces the earlier one. Returns the checkout with its shipping options; with an address "
      "and no option chosen yet, the cheapest is selected (select_shipping changes it).",
      "{\"type\":\"object\",\"properties\":{"
      "\"buyer\":{\"type\":\"object\",\"description\":\"Who is buying; at least one field.\","
      "\"properties\":{"
      "\"first_name\":" STR(200, "Given name, e.g. Jane.") ","
      "\"last_name\":" STR(200, "Family name, e.g. Doe.") ","
      "\"full_name\":" STR(200, "The whole name, only if it cannot be split into first_name and "
                                "last_name.") ","
      "\"email\":{\"type\":\"string\",\"maxLength\":254,\"pattern\":\"^[^@ ]+@[^@ ]+[.][^@ ]+$\","
      "\"description\":\"Email address for the order; the checkout needs one, e.g. "
      "jane@example.com.\"},"
      "\"phone_number\":" STR(40, "Phone number, international format, e.g. +1 217 555 0100.") "},"
      "\"minProperties\":1,\"additionalProperties\":false},"
      "\"address\":{\"type\":\"object\",\"description\":\"The shipping address, as separate "
      "fields.\",\"properties\":{"
      "\"street_address\":" STR(200, "Street and house number, e.g. 1 Main St.") ","
      "\"extended_address\":" STR(200, "Apartment, suite or floor, if any.") ","
      "\"address_locality\":" STR(200, "City or town, e.g. Springfield.") ","
      "\"address_region\":" STR(100, "State, province or region code, e.g. IL (taxes depend on "
                                     "it); omit where the country has none.") ","
      "\"postal_code\":" STR(20, "Postal or ZIP code, e.g. 62701.") ","
      "\"address_country\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z]{2}$\",\"description\":"
      "\"Two-letter ISO 3166-1 alpha-2 country code, e.g. US, DE, FR (not the country's "
      "name).\"},"
      "\"first_name\":" STR(200, "Recipient's given name, if not the buyer.") ","
      "\"last_name\":" STR(200, "Recipient's family name, if not the buyer.") ","
      "\"full_name\":" STR(200, "Recipient's whole name, if not the buyer and not split.") ","
      "\"phone_number\":" STR(40, "Recipient's phone number, for the carrier.") "},"
      "\"required\":[\"street_address\",\"address_locality\",\"postal_code\",\"address_country\"],"
      "\"additionalProperties\":false}},"
      "\"minProperties\":1,\"additionalProperties\":false}",
      "{\"buyer\":{\"first_name\":\"Jane\",\"last_name\":\"Doe\",\"email\":\"jane@example.com\"},"
      "\"address\":{\"street_address\":\"1 Main St\",\"address_locality\":\"Springfield\","
      "\"address_region\":\"IL\",\"postal_code\":\"62701\",\"address_country\":\"US\"}}",
      t_customer, 1 },
    { "select_shipping",
      "Choose a shipping option by its id. The options depend on the address: set it first, "
      "then pick one of the checkout's fulfillment.methods[0].groups[0].options.",
      "{\"type\":\"object\",\"properties\":{"
      "\"option_id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":63,\"pattern\":\"" ID_PATTERN "\",\"description\":\"The id "
      "of an option in the latest checkout: fulfillment.methods[0].groups[0].options[].id.\"}},"
      "\"required\":[\"option_id\"],\"additionalProperties\":false}",
      "{\"option_id\":\"std-ship\"}", t_shipping, 1 },
    { "start_payment",
      "Check that the checkout is ready to pay (status ready_for_complete) and list the accepted "
      "payment handlers. Payment credentials never pass through you: the buyer's client sends "
      "them with a message.",
      NO_ARGS, NULL, t_start_payment, 0 },
    { "complete_checkout",
      "Pay and place the order, with the payment data the buyer's client sent with the current "
      "message. Call it when the buyer asks to pay and the checkout is ready_for_complete.",
      NO_ARGS, NULL, t_complete, 1 },
};
#define NTOOLS (sizeof tools / sizeof tools[0])

static const struct tool *find(const char *name)
{
    for (size_t i = 0; name && i < NTOOLS; i++)
        if (strcmp(tools[i].name, name) == 0)
            return &tools[i];
    return NULL;
}

int tools_mutates_checkout(const char *name)
{
    const struct tool *t = find(name);
    return t && t->mutates_checkout;
}

int tools_store_free(const char *name)
{
    const struct tool *t = find(name);
    return t && (t->fn == t_search || t->fn == t_get_product); /* the catalog is in memory */
}

/* ---- the schemas, parsed once ---- */

#define PATTERNS_MAX 16

/* Built once (pthread_once) and read-only afterwards: tools run on worker
 * threads, and nothing here is written after init. Lives for the process. */
static struct {
    int ok;
    json_t *params[NTOOLS];   /* the parameters schema */
    json_t *shape[NTOOLS];    /* the same without descriptions: an error's "expected" */
    json_t *example[NTOOLS];  /* valid arguments, or NULL */
    char *description[NTOOLS]; /* the description, with the example */
    struct {
        const char *src;      /* points into params */
        regex_t re;
    } re[PATTERNS_MAX];
    size_t nre;
} S;
static pthread_once_t S_once = PTHREAD_ONCE_INIT;

/* Removes what only steers the model (descriptions), following the schema's
 * structure so that a property named "description" would survive. */
static void strip_descriptions(json_t *schema)
{
    if (!json_is_object(schema))
        return;
    json_object_del(schema, "description");
    const char *k;
    json_t *sub;
    json_object_foreach(json_object_get(schema, "properties"), k, sub)
        strip_descriptions(sub);
    strip_descriptions(json_object_get(schema, "items"));
}

static int compile_patterns(const json_t *schema)
{
    if (!json_is_object(schema))
        return 0;
    const char *p = json_string_value(json_object_get(schema, "pattern"));
    if (p) {
        size_t i = 0;
        while (i < S.nre && strcmp(S.re[i].src, p) != 0)
            i++;
        if (i == S.nre) {
            if (S.nre == PATTERNS_MAX || regcomp(&S.re[i].re, p, REG_EXTENDED | REG_NOSUB) != 0)
                return AGENTD_EINVAL;
            S.re[i].src = p;
            S.nre++;
        }
    }
    const char *k;
    json_t *sub;
    json_object_foreach(json_object_get(schema, "properties"), k, sub)
        if (compile_patterns(sub) != 0)
            return AGENTD_EINVAL;
    return compile_patterns(json_object_get(schema, "items"));
}

static void schemas_init(void)
{
    for (size_t i = 0; i < NTOOLS; i++) {
        json_error_t je;
        S.params[i] = json_loads(tools[i].schema, 0, &je);
        S.shape[i] = json_deep_copy(S.params[i]);
        strip_descriptions(S.shape[i]);
        if (!S.params[i] || !S.shape[i] || compile_patterns(S.params[i]) != 0)
            return;
        struct buf b = { 0 };
        buf_puts(&b, tools[i].description);
        if (tools[i].example) {
            if (!(S.example[i] = json_loads(tools[i].example, 0, &je)))
                return;
            buf_printf(&b, " Example arguments: %s", tools[i].example);
        }
        if (!b.data)
            return;
        S.description[i] = b.data;
    }
    S.ok = 1;
}

static int schemas(void)
{
    pthread_once(&S_once, schemas_init);
    return S.ok;
}

/* 1 if s (len bytes) matches the pattern: precompiled for the tools'
 * schemas, compiled here for any other (tools_check). */
static int matches(const char *pat, const char *s, size_t len)
{
    if (strlen(s) != len) /* a NUL inside would hide the rest from regexec */
        return 0;
    for (size_t i = 0; i < S.nre; i++)
        if (strcmp(S.re[i].src, pat) == 0)
            return regexec(&S.re[i].re, s, 0, NULL, 0) == 0;
    regex_t re;
    if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    int ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

json_t *tools_definitions(void)
{
    if (!schemas())
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < NTOOLS; i++) {
        json_t *d = json_pack("{s:s,s:{s:s,s:s,s:o}}", "type", "function", "function", "name",
                              tools[i].name, "description", S.description[i], "parameters",
                              json_deep_copy(S.params[i]));
        if (!d || json_array_append_new(arr, d) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* ---- the validator ---- */

/* A JSON-schema subset, what the tools use: type (object, string, integer,
 * number, boolean, array), properties, required, additionalProperties
 * (false), minProperties, enum, pattern, minLength, maxLength (characters),
 * minimum, maximum, items. Every problem is collected, each naming its path,
 * so that a model fixes them all in one go instead of one per step. */

#define PROBLEMS_MAX 24

/* Appends one problem. Its text is made of JSON-decoded (valid UTF-8) input
 * cut at character boundaries; should a cut still split a character, the
 * non-ASCII bytes become '?' rather than the problem being lost. */
static void problem(json_t *list, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t *list, const char *fmt, ...)
{
    if (json_array_size(list) >= PROBLEMS_MAX)
        return;
    char text[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *s = json_string(text);
    if (!s) {
        for (char *p = text; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(text);
    }
    json_array_append_new(list, s);
}

/* A prefix of s of at most max bytes, ending on a character boundary, with
 * "..." when cut. */
static void clip(const char *s, size_t max, char *out, size_t len)
{
    size_t n = strlen(s);
    int cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    snprintf(out, len, "%.*s%s", (int)n, s, cut ? "..." : "");
}

static size_t utf8_chars(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int type_ok(const char *type, const json_t *v)
{
    return (strcmp(type, "object") == 0 && json_is_object(v)) ||
           (strcmp(type, "string") == 0 && json_is_string(v)) ||
           (strcmp(type, "integer") == 0 && json_is_integer(v)) ||
           (strcmp(type, "number") == 0 && json_is_number(v)) ||
           (strcmp(type, "boolean") == 0 && json_is_boolean(v)) ||
           (strcmp(type, "array") == 0 && json_is_array(v));
}

/* "a, b, c" of an object's property names (or of a required list). */
static void names(const json_t *schema, const char *which, char *out, size_t len)
{
    struct buf b = { 0 };
    const json_t *set = json_object_get(schema, which);
    if (json_is_object(set)) {
        const char *k;
        json_t *sub;
        json_object_foreach((json_t *)set, k, sub)
            buf_printf(&b, "%s%s", b.len ? ", " : "", k);
    } else {
        size_t i;
        json_t *n;
        json_array_foreach(set, i, n)
            buf_printf(&b, "%s%s", b.len ? ", " : "", json_string_value(n));
    }
    snprintf(out, len, "%s", b.data ? b.data : "");
    buf_free(&b);
}

/* Names models use for UCP's fields: what a real model sent us, and the
 * usual variants. `say` overrides "did you mean <target>?". */
static const struct {
    const char *alias, *target, *say;
} aliases[] = {
    { "zip", "postal_code", NULL },          { "zipcode", "postal_code", NULL },
    { "postcode", "postal_code", NULL },     { "postal", "postal_code", NULL },
    { "state", "address_region", NULL },     { "province", "address_region", NULL },
    { "region", "address_region", NULL },    { "county", "address_region", NULL },
    { "city", "address_locality", NULL },    { "town", "address_locality", NULL },
    { "locality", "address_locality", NULL }, { "country", "address_country", NULL },
    { "countrycode", "address_country", NULL }, { "street", "street_address", NULL },
    { "address", "street_address", NULL },   { "address1", "street_address", NULL },
    { "addressline1", "street_address", NULL }, { "line1", "street_address", NULL },
    { "street1", "street_address", NULL },   { "address2", "extended_address", NULL },
    { "addressline2", "extended_address", NULL }, { "line2", "extended_address", NULL },
    { "apartment", "extended_address", NULL }, { "suite", "extended_address", NULL },
    { "name", "first_name", "use first_name and last_name (or full_name if it cannot be split)" },
    { "givenname", "first_name", NULL },     { "firstname", "first_name", NULL },
    { "surname", "last_name", NULL },        { "familyname", "last_name", NULL },
    { "phone", "phone_number", NULL },       { "telephone", "phone_number", NULL },
    { "mobile", "phone_number", NULL },      { "tel", "phone_number", NULL },
    { "emailaddress", "email", NULL },       { "mail", "email", NULL },
    { "id", "product_id", NULL },            { "product", "product_id", NULL },
    { "sku", "product_id", NULL },           { "item", "product_id", NULL },
    { "itemid", "product_id", NULL },        { "qty", "quantity", NULL },
    { "count", "quantity", NULL },           { "amount", "quantity", NULL },
    { "id", "option_id", NULL },             { "option", "option_id", NULL },
    { "shippingoption", "option_id", NULL }, { "shippingoptionid", "option_id", NULL },
    { "q", "query", NULL },                  { "keywords", "query", NULL },
    { "search", "query", NULL },             { "text", "query", NULL },
};

/* lower case without '_', '-', ' ': postalCode, Postal-Code -> postalcode */
static void fold(const char *s, char *out, size_t len)
{
    size_t n = 0;
    for (; *s && n + 1 < len; s++)
        if (*s != '_' && *s != '-' && *s != ' ')
            out[n++] = (char)tolower((unsigned char)*s);
    out[n] = '\0';
}

/* The property of schema that key most likely meant, as advice in say
 * ("did you mean X?"); 0 if none. */
static int hint_in(const json_t *schema, const char *key, char *say, size_t len)
{
    const json_t *props = json_object_get(schema, "properties");
    char fk[64], fp[64];
    fold(key, fk, sizeof fk);
    const char *p;
    json_t *sub;
    json_object_foreach((json_t *)props, p, sub) {
        fold(p, fp, sizeof fp);
        if (strcmp(fk, fp) == 0) {
            snprintf(say, len, "did you mean %s?", p);
            return 1;
        }
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(fk, aliases[i].alias) != 0 || !json_object_get(props, aliases[i].target))
            continue;
        if (aliases[i].say)
            snprintf(say, len, "%s", aliases[i].say);
        else
            snprintf(say, len, "did you mean %s?", aliases[i].target);
        return 1;
    }
    return 0;
}

/* Why key is unknown in schema, and what to use: a field of this object, a
 * field of one of its object properties ("it belongs in address: did you
 * mean postal_code?"), or the list of allowed fields. */
static void unknown_field(const json_t *schema, const char *key, const char *path, json_t *list)
{
    char say[256], k[80];
    clip(key, 64, k, sizeof k);
    if (hint_in(schema, key, say, sizeof say)) {
        problem(list, "%s.%s: unknown field; %s", path, k, say);
        return;
    }
    const char *p;
    json_t *sub;
    json_object_foreach(json_object_get(schema, "properties"), p, sub) {
        const json_t *inner = json_object_get(sub, "properties");
        if (!inner)
            continue;
        if (json_object_get(inner, key)) {
            problem(list, "%s.%s: unknown field; it belongs in %s: {\"%s\":{\"%s\":...}}", path, k, p,
                    p, k);
            return;
        }
        if (hint_in(sub, key, say, sizeof say)) {
            problem(list, "%s.%s: unknown field; it belongs in %s: %s", path, k, p, say);
            return;
        }
    }
    char allowed[512];
    names(schema, "properties", allowed, sizeof allowed);
    if (*allowed)
        problem(list, "%s.%s: unknown field; allowed fields: %s", path, k, allowed);
    else
        problem(list, "%s.%s: unknown field; this tool takes no arguments", path, k);
}

static void check(const json_t *schema, const json_t *v, const char *path, json_t *list);

static void check_object(const json_t *schema, const json_t *v, const char *path, json_t *list)
{
    const json_t *props = json_object_get(schema, "properties");
    const json_t *minp = json_object_get(schema, "minProperties");
    if (minp) {
        size_t given = 0;
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)v, k, val)
            given += !json_is_null(val) && json_object_get(props, k);
        if (given < (size_t)json_integer_value(minp)) {
            char all[512];
            names(schema, "properties", all, sizeof all);
            problem(list, "%s must have at least %lld of: %s", path,
                    (long long)json_integer_value(minp), all);
        }
    }
    /* unknown fields first: their hints explain the missing ones */
    if (json_is_false(json_object_get(schema, "additionalProperties"))) {
        const char *k;
        json_t *val;
        json_object_foreach((json_t *)v, k, val)
            if (!json_object_get(props, k))
                unknown_field(schema, k, path, list);
    }
    size_t i;
    const json_t *req;
    json_array_foreach(json_object_get(schema, "required"), i, req) {
        const json_t *got = json_object_get(v, json_string_value(req));
        /* a null is no value: it would reach the shop as 0/NULL */
        if (!got || json_is_null(got)) {
            const char *d = json_string_value(
                json_object_get(json_object_get(props, json_string_value(req)), "description"));
            problem(list, "%s.%s is required%s%s", path, json_string_value(req), d ? ": " : "",
                    d ? d : "");
        }
    }
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)props, k, sub) {
        const json_t *val = json_object_get(v, k);
        if (!val || json_is_null(val))
            continue; /* the path is only made for a value that is there */
        char p[256], kk[80];
        clip(k, 64, kk, sizeof kk);
        snprintf(p, sizeof p, "%s.%s", path, kk);
        check(sub, val, p, list);
    }
}

static void check_enum(const json_t *schema, const json_t *v, const char *path, json_t *list)
{
    const json_t *en = json_object_get(schema, "enum");
    if (!en)
        return;
    size_t i;
    json_t *x;
    json_array_foreach(en, i, x)
        if (json_equal(x, (json_t *)v))
            return;
    char *all = json_dumps(en, JSON_COMPACT | JSON_ENCODE_ANY);
    char shown[600];
    clip(all ? all : "", 500, shown, sizeof shown);
    problem(list, "%s must be one of %s", path, shown);
    free(all);
}

static void check_string(const json_t *schema, const json_t *v, const char *path, json_t *list)
{
    const char *s = json_string_value(v);
    size_t chars = utf8_chars(s, json_string_length(v));
    const json_t *mn = json_object_get(schema, "minLength"), *mx = json_object_get(schema, "maxLength");
    int bad = 0;
    if (mn && chars < (size_t)json_integer_value(mn)) {
        bad = 1;
        if (json_integer_value(mn) == 1)
            problem(list, "%s must not be empty", path);
        else
            problem(list, "%s must be at least %lld characters", path,
                    (long long)json_integer_value(mn));
    }
    if (mx && chars > (size_t)json_integer_value(mx)) {
        bad = 1;
        problem(list, "%s is too long: at most %lld characters", path,
                (long long)json_integer_value(mx));
    }
    const char *pat = json_string_value(json_object_get(schema, "pattern"));
    if (pat && !bad && !matches(pat, s, json_string_length(v))) {
        char shown[80];
        const char *d = json_string_value(json_object_get(schema, "description"));
        clip(s, 40, shown, sizeof shown);
        problem(list, "%s: '%s' does not match %s%s%s", path, shown, pat, d ? ": " : "", d ? d : "");
    }
    check_enum(schema, v, path, list);
}

static void check(const json_t *schema, const json_t *v, const char *path, json_t *list)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type && !type_ok(type, v)) {
        const json_t *props = json_object_get(schema, "properties");
        if (strcmp(type, "object") == 0 && json_object_size(props) > 0) {
            /* the mistake a model makes most: an address as one string */
            char all[512], req[256];
            names(schema, "properties", all, sizeof all);
            names(schema, "required", req, sizeof req);
            problem(list, "%s must be of type object, not %s: give the parts as separate fields "
                    "(%s)%s%s", path, fields_json_type_name(v), all, *req ? "; required: " : "", req);
        } else {
            problem(list, "%s must be of type %s, not %s", path, type, fields_json_type_name(v));
        }
        return;
    }
    if (json_is_object(v)) {
        check_object(schema, v, path, list);
    } else if (json_is_string(v)) {
        check_string(schema, v, path, list);
    } else if (json_is_number(v)) {
        const json_t *mn = json_object_get(schema, "minimum"), *mx = json_object_get(schema, "maximum");
        double x = json_number_value(v);
        int low = mn && (json_is_integer(v) && json_is_integer(mn)
                             ? json_integer_value(v) < json_integer_value(mn)
                             : x < json_number_value(mn));
        int high = mx && (json_is_integer(v) && json_is_integer(mx)
                              ? json_integer_value(v) > json_integer_value(mx)
                              : x > json_number_value(mx));
        if (low || high) {
            if (mn && mx)
                problem(list, "%s is out of range: %g to %g", path, json_number_value(mn),
                        json_number_value(mx));
            else if (mn)
                problem(list, "%s is out of range: at least %g", path, json_number_value(mn));
            else
                problem(list, "%s is out of range: at most %g", path, json_number_value(mx));
        }
        check_enum(schema, v, path, list);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *item;
        const json_t *items = json_object_get(schema, "items");
        json_array_foreach((json_t *)v, i, item) {
            char p[256];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            if (items)
                check(items, item, p, list);
        }
    } else {
        check_enum(schema, v, path, list);
    }
}

/* The problems of args against the named tool's schema (a new array, empty
 * when valid), or NULL when there is no such tool or no memory. */
static json_t *problems_of(const struct tool *t, const json_t *args)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    size_t i = (size_t)(t - tools);
    if (!args || !json_is_object(args))
        problem(list, "arguments must be of type object");
    else
        check(S.params[i], args, "arguments", list);
    return list;
}

json_t *tools_check(const json_t *schema, const json_t *args)
{
    json_t *list = json_array();
    if (list && schemas())
        check(schema, args, "arguments", list);
    return list;
}

/* "p1; p2; ..." into e->msg (truncated to its size). */
static int join(const json_t *list, struct agentd_error *e)
{
    struct buf b = { 0 };
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
        buf_printf(&b, "%s%s", i ? "; " : "", json_string_value(p));
    int rc = agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s", b.data ? b.data : "invalid arguments");
    buf_free(&b);
    return rc;
}

int tools_validate(const char *name, const json_t *args, struct agentd_error *e)
{
    const struct tool *t = find(name);
    if (!t)
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "unknown tool %s", name ? name : "(none)");
    if (!schemas())
        return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "the tool schemas did not load");
    json_t *list = problems_of(t, args);
    int rc = list && json_array_size(list) == 0 ? 0 : join(list, e);
    json_decref(list);
    return rc;
}

/* {"error":{"code":"invalid_arguments","message","problems","expected",
 * "example"}}: every problem, the shape the arguments must have and a valid
 * call, so the model can correct itself on its next step. Nothing ran. */
static json_t *invalid_arguments(const struct tool *t, json_t *list)
{
    size_t i = (size_t)(t - tools);
    struct buf b = { 0 };
    size_t n = json_array_size(list);
    buf_printf(&b, "%s did not run: %zu problem%s with its arguments: ", t->name, n,
               n == 1 ? "" : "s");
    size_t k;
    json_t *p;
    json_array_foreach(list, k, p)
        buf_printf(&b, "%s%s", k ? "; " : "", json_string_value(p));
    buf_puts(&b, ". Fix every problem and call it again; \"expected\" is the arguments' schema.");
    json_t *out = b.data ? json_pack("{s:{s:s,s:s,s:O,s:o,s:o*}}", "error", "code",
                                     "invalid_arguments", "message", b.data, "problems", list,
                                     "expected", json_deep_copy(S.shape[i]), "example",
                                     S.example[i] ? json_deep_copy(S.example[i]) : NULL)
                         : NULL;
    buf_free(&b);
    return out;
}

static json_t *run_tool(struct tools_ctx *ctx, const char *name, const char *arguments)
{
    const struct tool *t = find(name);
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "there is no tool named %.64s", name ? name : "(none)");
        return error_result("unknown_tool", msg);
    }
    if (!schemas())
        return error_result("unavailable", "the tool schemas did not load");
    json_error_t je;
    json_t *args = json_loads(arguments && *arguments ? arguments : "{}", 0, &je);
    json_t *list = NULL;
    if (!args) {
        if (!(list = json_array()))
            return NULL;
        problem(list, "arguments are not valid JSON: %s", je.text);
    } else if (!(list = problems_of(t, args))) {
        json_decref(args);
        return NULL;
    }
    if (json_array_size(list) > 0) {
        json_t *out = invalid_arguments(t, list);
        json_decref(list);
        json_decref(args);
        return out;
    }
    json_decref(list);
    json_t *out = t->fn(ctx, args);
    json_decref(args);
    return out;
}

json_t *tools_run(struct tools_ctx *ctx, const char *name, const char *arguments)
{
    json_t *out = run_tool(ctx, name, arguments);
    texts_clear(); /* only tools_run_texts takes them */
    return out;
}

/* ---- a tool result's texts (the tool step's event and message) ---- */

char *tools_result_event(const char *id, const char *name, const json_t *result,
                         const char *content)
{
    if (!result || !content || jsondump_has_real(result)) { /* content's reals have another precision */
        json_t *d = json_pack("{s:s,s:s?,s:O?}", "tool_call_id", id, "name", name, "result",
                              result);
        char *text =
            d ? jsondump(d, JSON_COMPACT | JSON_REAL_PRECISION(BUDGET_JSON_PRECISION), NULL) : NULL;
        json_decref(d);
        return text;
    }
    struct buf b = { 0 };
    size_t clen = strlen(content);
    buf_reserve(&b, clen + strlen(id) + (name ? strlen(name) : 4) + 48);
    buf_puts(&b, "{\"tool_call_id\":");
    int rc = buf_json_str(&b, id, strlen(id));
    buf_puts(&b, ",\"name\":");
    if (rc == 0 && name)
        rc = buf_json_str(&b, name, strlen(name));
    else
        buf_puts(&b, "null");
    buf_puts(&b, ",\"result\":");
    buf_append(&b, content, clen);
    buf_puts(&b, "}");
    if (rc != 0 || b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* The tool message around content, or around escaped (content as a JSON
 * string already) when that is not NULL. */
static char *result_message(const char *id, const char *content, const char *escaped)
{
    if (!content)
        content = "{\"error\":{\"code\":\"out_of_memory\"}}";
    struct buf b = { 0 };
    size_t clen = escaped ? strlen(escaped) : strlen(content);
    /* the content is escaped: room for a few escapes without a regrowth */
    buf_reserve(&b, clen + clen / 8 + strlen(id) + 64);
    buf_puts(&b, "{\"role\":\"tool\",\"tool_call_id\":");
    int rc = buf_json_str(&b, id, strlen(id));
    buf_puts(&b, ",\"content\":");
    if (rc == 0 && escaped)
        buf_append(&b, escaped, clen);
    else if (rc == 0)
        rc = buf_json_str(&b, content, clen);
    buf_puts(&b, "}");
    if (rc != 0 || b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

char *tools_result_message(const char *id, const char *content)
{
    return result_message(id, content, NULL);
}

json_t *tools_run_texts(struct tools_ctx *ctx, const char *name, const char *arguments,
                        const char *id, char **content, char **message)
{
    texts_clear();
    json_t *result = run_tool(ctx, name, arguments);
    *content = NULL;
    if (result && tl_texts.content) { /* the search made them with its result */
        *content = tl_texts.content;
        *message = result_message(id, *content, tl_texts.escaped);
        tl_texts.content = NULL;
    } else if (result) {
        *content = jsondump(result, JSON_COMPACT, NULL);
        *message = tools_result_message(id, *content);
    } else {
        *message = tools_result_message(id, NULL);
    }
    texts_clear();
    return result;
}
