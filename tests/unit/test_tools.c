/* agent tools: the definitions the model sees (complete schemas a real
 * model follows), the schema validator (every problem, with hints), and
 * tools_run's rejection paths (which must never reach the shop); against a
 * real shop, update_customer_details keeps every field it is given. */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "agent/tools.h"
#include "core/err.h"
#include "shop/merchant.h"
#include "shop/shop.h"
#include "store/store.h"

static const char *const tool_names[] = {
    "search_shopping_catalog", "get_product",     "add_to_checkout",
    "remove_from_checkout",    "update_checkout", "get_checkout",
    "update_customer_details", "select_shipping", "start_payment",
    "complete_checkout",
};
#define NNAMES (sizeof tool_names / sizeof tool_names[0])

/* ---- helpers ---- */

static json_t *load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("test JSON does not parse: %s (%s)", text, je.text);
    return j;
}

static void expect_valid_at(const char *tool, const char *args_text, int line)
{
    json_t *args = load(args_text);
    struct agentd_error why = { 0 };
    int rc = tools_validate(tool, args, &why);
    json_decref(args);
    if (rc != 0)
        fail_msg("line %d: %s %s should be valid, got rc=%d why=\"%s\"", line, tool, args_text, rc,
                 why.msg);
}

/* args must be rejected, and why must contain every non-NULL needle */
static void expect_invalid_at(const char *tool, const char *args_text, const char *needle1,
                              const char *needle2, int line)
{
    json_t *args = load(args_text);
    struct agentd_error why = { 0 };
    int rc = tools_validate(tool, args, &why);
    json_decref(args);
    if (rc != AGENTD_EINVAL)
        fail_msg("line %d: %s %s should be invalid, got rc=%d", line, tool, args_text, rc);
    if (needle1 && !strstr(why.msg, needle1))
        fail_msg("line %d: %s %s: why \"%s\" lacks \"%s\"", line, tool, args_text, why.msg, needle1);
    if (needle2 && !strstr(why.msg, needle2))
        fail_msg("line %d: %s %s: why \"%s\" lacks \"%s\"", line, tool, args_text, why.msg, needle2);
}

#define expect_valid(tool, args) expect_valid_at(tool, args, __LINE__)
#define expect_invalid(tool, args, n1, n2) expect_invalid_at(tool, args, n1, n2, __LINE__)

/* result must be exactly {"error":{"code":code,"message":...}} with message
 * containing needle (if non-NULL); an invalid_arguments error also carries
 * "problems" (non-empty strings), "expected" (the schema) and maybe "example" */
static void expect_error_result_at(json_t *res, const char *code, const char *needle, int line)
{
    if (!res)
        fail_msg("line %d: tools_run returned NULL", line);
    if (!json_is_object(res) || json_object_size(res) != 1)
        fail_msg("line %d: result is not a one-key object", line);
    json_t *err = json_object_get(res, "error");
    const char *c = json_string_value(json_object_get(err, "code"));
    const char *m = json_string_value(json_object_get(err, "message"));
    if (!c || !m)
        fail_msg("line %d: result.error.code/message are not strings", line);
    if (strcmp(c, "invalid_arguments") == 0) {
        json_t *probs = json_object_get(err, "problems");
        size_t keys = 4 + (json_object_get(err, "example") != NULL);
        if (json_object_size(err) != keys || !json_is_array(probs) || json_array_size(probs) == 0 ||
            !json_is_object(json_object_get(err, "expected")))
            fail_msg("line %d: result.error is not {code,message,problems,expected,example?}", line);
        size_t i;
        json_t *p;
        json_array_foreach(probs, i, p)
            if (!json_is_string(p) || !strstr(m, json_string_value(p)))
                fail_msg("line %d: problem %zu is not a string named in the message", line, i);
    } else if (!json_is_object(err) || json_object_size(err) != 2) {
        fail_msg("line %d: result.error is not a {code,message} object", line);
    }
    if (strcmp(c, code) != 0)
        fail_msg("line %d: error code \"%s\", expected \"%s\" (message \"%s\")", line, c, code, m);
    if (m[0] == 0)
        fail_msg("line %d: empty error message", line);
    if (needle && !strstr(m, needle))
        fail_msg("line %d: error message \"%s\" lacks \"%s\"", line, m, needle);
}

#define expect_error_result(res, code, needle) expect_error_result_at(res, code, needle, __LINE__)

/* a context with no shop and no merchant: any tool body that ran would crash
 * or at least change checkout_id; the rejection paths must do neither */
static struct tools_ctx null_ctx(void)
{
    struct tools_ctx c = { 0 };
    c.owner = "test-owner";
    return c;
}

static void run_expect_error_at(const char *tool, const char *arguments, const char *code,
                                const char *needle, int line)
{
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, tool, arguments);
    expect_error_result_at(res, code, needle, line);
    json_decref(res);
    if (ctx.checkout_id != NULL)
        fail_msg("line %d: a rejected call set checkout_id", line);
    if (ctx.shop != NULL || ctx.merchant != NULL)
        fail_msg("line %d: ctx was modified", line);
}

#define run_expect_error(tool, args, code, needle) \
    run_expect_error_at(tool, args, code, needle, __LINE__)

/* ---- definitions ---- */

static void test_definitions_shape(void **state)
{
    (void)state;
    json_t *defs = tools_definitions();
    assert_non_null(defs);
    assert_true(json_is_array(defs));
    assert_int_equal(json_array_size(defs), NNAMES);

    int seen[NNAMES] = { 0 };
    size_t i;
    json_t *d;
    json_array_foreach(defs, i, d) {
        assert_true(json_is_object(d));
        assert_int_equal(json_object_size(d), 2);
        assert_string_equal(json_string_value(json_object_get(d, "type")), "function");
        json_t *fn = json_object_get(d, "function");
        assert_true(json_is_object(fn));
        assert_int_equal(json_object_size(fn), 3);

        const char *name = json_string_value(json_object_get(fn, "name"));
        assert_non_null(name);
        size_t k;
        for (k = 0; k < NNAMES; k++)
            if (strcmp(name, tool_names[k]) == 0)
                break;
        if (k == NNAMES)
            fail_msg("unexpected tool name %s", name);
        assert_int_equal(seen[k], 0); /* no duplicates */
        seen[k] = 1;

        const char *desc = json_string_value(json_object_get(fn, "description"));
        assert_non_null(desc);
        assert_true(strlen(desc) > 10);

        json_t *params = json_object_get(fn, "parameters");
        assert_true(json_is_object(params));
        assert_string_equal(json_string_value(json_object_get(params, "type")), "object");
        json_t *props = json_object_get(params, "properties");
        assert_true(json_is_object(props));
        /* every required property is declared, and as a string name */
        size_t r;
        json_t *req;
        json_array_foreach(json_object_get(params, "required"), r, req) {
            assert_true(json_is_string(req));
            assert_non_null(json_object_get(props, json_string_value(req)));
        }
        /* every property has a type the validator understands */
        const char *key;
        json_t *sub;
        json_object_foreach(props, key, sub) {
            const char *ty = json_string_value(json_object_get(sub, "type"));
            assert_non_null(ty);
            assert_true(strcmp(ty, "object") == 0 || strcmp(ty, "string") == 0 ||
                        strcmp(ty, "integer") == 0 || strcmp(ty, "boolean") == 0);
        }
    }
    for (size_t k = 0; k < NNAMES; k++)
        if (!seen[k])
            fail_msg("tool %s missing from definitions", tool_names[k]);
    json_decref(defs);
}

static void test_definitions_fresh_each_call(void **state)
{
    (void)state;
    json_t *a = tools_definitions();
    json_t *b = tools_definitions();
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_true(json_equal(a, b));
    /* mutating one copy must not affect the next */
    json_array_clear(a);
    json_decref(a);
    json_t *c = tools_definitions();
    assert_int_equal(json_array_size(c), NNAMES);
    assert_true(json_equal(b, c));
    json_decref(b);
    json_decref(c);
}

/* the required list of each definition is exactly what tools_validate
 * enforces: {} names every required property (and minProperties) */
static void test_definitions_agree_with_validator(void **state)
{
    (void)state;
    json_t *defs = tools_definitions();
    size_t i;
    json_t *d;
    int required_seen = 0;
    json_array_foreach(defs, i, d) {
        json_t *fn = json_object_get(d, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *params = json_object_get(fn, "parameters");
        json_t *required = json_object_get(params, "required");
        struct agentd_error why = { 0 };
        json_t *empty = json_object();
        int rc = tools_validate(name, empty, &why);
        json_decref(empty);
        if (json_array_size(required) == 0 && !json_object_get(params, "minProperties")) {
            if (rc != 0)
                fail_msg("%s: {} rejected although nothing is required: %s", name, why.msg);
            continue;
        }
        required_seen++;
        if (rc != AGENTD_EINVAL)
            fail_msg("%s: {} accepted although arguments are required", name);
        size_t r;
        json_t *req;
        json_array_foreach(required, r, req) {
            char expect[128];
            snprintf(expect, sizeof expect, "arguments.%s is required", json_string_value(req));
            if (!strstr(why.msg, expect))
                fail_msg("%s: \"%s\" lacks \"%s\"", name, why.msg, expect);
        }
        if (json_object_get(params, "minProperties") && !strstr(why.msg, "arguments must have at least"))
            fail_msg("%s: \"%s\" does not say what is needed", name, why.msg);
    }
    assert_int_equal(required_seen, 7);
    json_decref(defs);
}

/* ---- tools_validate: valid arguments ---- */

static void test_validate_valid_per_tool(void **state)
{
    (void)state;
    expect_valid("search_shopping_catalog", "{\"query\":\"shoes\"}");
    expect_valid("search_shopping_catalog",
                 "{\"query\":\"red shoes\",\"category\":\"footwear\",\"max_price\":0,"
                 "\"in_stock_only\":true,\"limit\":50}");
    expect_valid("search_shopping_catalog",
                 "{\"query\":\"x\",\"category\":\"\",\"in_stock_only\":false,\"limit\":1}");
    expect_valid("get_product", "{\"product_id\":\"p-1\"}");
    expect_valid("add_to_checkout", "{\"product_id\":\"p-1\",\"quantity\":1}");
    expect_valid("add_to_checkout", "{\"product_id\":\"p-1\",\"quantity\":9999}");
    expect_valid("remove_from_checkout", "{\"product_id\":\"p-1\"}");
    expect_valid("update_checkout", "{\"product_id\":\"p-1\",\"quantity\":0}");
    expect_valid("update_checkout", "{\"product_id\":\"p-1\",\"quantity\":9999}");
    expect_valid("get_checkout", "{}");
    expect_valid("update_customer_details", "{\"buyer\":{\"email\":\"ada@example.com\"}}");
    expect_valid("update_customer_details",
                 "{\"buyer\":{\"first_name\":\"Ada\",\"last_name\":\"Lovelace\","
                 "\"email\":\"ada@example.com\",\"phone_number\":\"+44 20 7946 0000\"},"
                 "\"address\":{\"street_address\":\"1 Main St\",\"extended_address\":\"Flat 2\","
                 "\"address_locality\":\"London\",\"postal_code\":\"SW1A 1AA\","
                 "\"address_country\":\"gb\",\"full_name\":\"Charles Babbage\"}}");
    expect_valid("update_customer_details", "{\"buyer\":{\"full_name\":\"Ada Lovelace\"}}");
    expect_valid("update_customer_details",
                 "{\"address\":{\"street_address\":\"1 Main St\",\"address_locality\":\"Springfield\","
                 "\"address_region\":\"IL\",\"postal_code\":\"62701\",\"address_country\":\"US\"}}");
    expect_valid("select_shipping", "{\"option_id\":\"standard\"}");
    expect_valid("start_payment", "{}");
    expect_valid("complete_checkout", "{}");
}

/* additionalProperties:false: an unknown key is refused (the shop would
 * drop it silently), optional properties given as null count as absent */
static void test_validate_unknown_fields_and_null_optional(void **state)
{
    (void)state;
    expect_invalid("get_checkout", "{\"verbose\":true,\"x\":[1,2]}",
                   "arguments.verbose: unknown field; this tool takes no arguments",
                   "arguments.x: unknown field");
    expect_invalid("get_product", "{\"product_id\":\"p-1\",\"extra\":123}",
                   "arguments.extra: unknown field; allowed fields: product_id", NULL);
    expect_valid("search_shopping_catalog",
                 "{\"query\":\"q\",\"category\":null,\"max_price\":null,\"limit\":null}");
    expect_valid("update_customer_details",
                 "{\"buyer\":{\"email\":\"a@b.co\",\"phone_number\":null},\"address\":null}");
    /* unknown keys are refused whatever their value */
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":2,\"note\":-5}",
                   "arguments.note: unknown field", NULL);
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":2,\"note\":null}",
                   "arguments.note: unknown field", NULL);
}

/* ---- tools_validate: failures ---- */

static void test_validate_missing_required(void **state)
{
    (void)state;
    expect_invalid("search_shopping_catalog", "{}", "arguments.query is required", NULL);
    expect_invalid("search_shopping_catalog", "{\"category\":\"shoes\"}",
                   "arguments.query is required", NULL);
    expect_invalid("get_product", "{\"id\":\"p-1\"}", "arguments.product_id is required",
                   "arguments.id: unknown field; did you mean product_id?");
    expect_invalid("add_to_checkout", "{\"product_id\":\"p-1\"}", "arguments.quantity is required",
                   NULL);
    expect_invalid("add_to_checkout", "{\"quantity\":1}", "arguments.product_id is required",
                   NULL);
    expect_invalid("remove_from_checkout", "{}", "arguments.product_id is required", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"p-1\"}", "arguments.quantity is required",
                   NULL);
    expect_invalid("select_shipping", "{\"option\":\"standard\"}",
                   "arguments.option_id is required", "did you mean option_id?");
    /* names are case-sensitive */
    expect_invalid("get_product", "{\"Product_Id\":\"p-1\"}", "arguments.product_id is required",
                   "arguments.Product_Id: unknown field; did you mean product_id?");
    /* a null is no value (it would reach the shop as a NULL id or quantity 0) */
    expect_invalid("add_to_checkout", "{\"product_id\":null,\"quantity\":1}",
                   "arguments.product_id is required", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"p-1\",\"quantity\":null}",
                   "arguments.quantity is required", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":null}", "arguments.query is required",
                   NULL);
    expect_invalid("select_shipping", "{\"option_id\":null}", "arguments.option_id is required",
                   NULL);
}

static void test_validate_wrong_type(void **state)
{
    (void)state;
    /* string where integer */
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":\"2\"}",
                   "arguments.quantity must be of type integer", NULL);
    /* a real number is not an integer, even a whole one */
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":1.5}",
                   "arguments.quantity", "integer");
    expect_invalid("update_checkout", "{\"product_id\":\"p\",\"quantity\":2.0}",
                   "arguments.quantity", "integer");
    /* boolean where integer, and integer where boolean */
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"limit\":true}",
                   "arguments.limit must be of type integer", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"in_stock_only\":1}",
                   "arguments.in_stock_only must be of type boolean", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"in_stock_only\":\"true\"}",
                   "arguments.in_stock_only must be of type boolean", NULL);
    /* integer / array / object where string */
    expect_invalid("get_product", "{\"product_id\":42}", "arguments.product_id must be of type string",
                   NULL);
    expect_invalid("select_shipping", "{\"option_id\":[\"standard\"]}",
                   "arguments.option_id must be of type string", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":{\"text\":\"q\"}}",
                   "arguments.query must be of type string", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"category\":7}",
                   "arguments.category must be of type string", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"max_price\":\"100\"}",
                   "arguments.max_price must be of type integer", NULL);
}

static void test_validate_range(void **state)
{
    (void)state;
    /* below minimum */
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":0}",
                   "arguments.quantity is out of range", NULL);
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":-3}",
                   "arguments.quantity is out of range", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"p\",\"quantity\":-1}",
                   "arguments.quantity is out of range", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"max_price\":-1}",
                   "arguments.max_price is out of range", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"limit\":0}",
                   "arguments.limit is out of range", NULL);
    /* above maximum */
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":10000}",
                   "arguments.quantity is out of range", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"p\",\"quantity\":10000}",
                   "arguments.quantity is out of range", NULL);
    expect_invalid("search_shopping_catalog", "{\"query\":\"q\",\"limit\":51}",
                   "arguments.limit is out of range", NULL);
    expect_invalid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":9223372036854775807}",
                   "arguments.quantity is out of range", NULL);
    /* max_price has a minimum but no maximum */
    expect_valid("search_shopping_catalog", "{\"query\":\"q\",\"max_price\":9223372036854775807}");
}

static void test_validate_min_length(void **state)
{
    (void)state;
    expect_invalid("search_shopping_catalog", "{\"query\":\"\"}", "arguments.query must not be empty",
                   NULL);
    expect_invalid("get_product", "{\"product_id\":\"\"}", "arguments.product_id must not be empty",
                   NULL);
    expect_invalid("add_to_checkout", "{\"product_id\":\"\",\"quantity\":1}",
                   "arguments.product_id must not be empty", NULL);
    expect_invalid("remove_from_checkout", "{\"product_id\":\"\"}",
                   "arguments.product_id must not be empty", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"\",\"quantity\":1}",
                   "arguments.product_id must not be empty", NULL);
    expect_invalid("select_shipping", "{\"option_id\":\"\"}", "arguments.option_id must not be empty",
                   NULL);
    /* category has no minLength */
    expect_valid("search_shopping_catalog", "{\"query\":\"q\",\"category\":\"\"}");
    /* one character is enough */
    expect_valid("select_shipping", "{\"option_id\":\"s\"}");
}

static void test_validate_nested_objects(void **state)
{
    (void)state;
    expect_invalid("update_customer_details", "{\"buyer\":\"Ada Lovelace\"}",
                   "arguments.buyer must be of type object", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":[\"Ada\"]}",
                   "arguments.buyer must be of type object", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{},\"address\":\"1 Main St\"}",
                   "arguments.address must be of type object", NULL);
    expect_invalid("update_customer_details", "{\"address\":42}",
                   "arguments.address must be of type object", NULL);
    expect_invalid("update_customer_details", "{\"address\":true}",
                   "arguments.address must be of type object", NULL);
}

static void test_validate_unknown_tool(void **state)
{
    (void)state;
    json_t *args = json_object();
    struct agentd_error why = { 0 };
    assert_int_equal(tools_validate("delete_everything", args, &why), AGENTD_EINVAL);
    assert_non_null(strstr(why.msg, "unknown tool"));
    assert_non_null(strstr(why.msg, "delete_everything"));

    why.msg[0] = 0;
    assert_int_equal(tools_validate("Get_Product", args, &why), AGENTD_EINVAL);
    assert_non_null(strstr(why.msg, "Get_Product"));

    why.msg[0] = 0;
    assert_int_equal(tools_validate("", args, &why), AGENTD_EINVAL);
    assert_non_null(strstr(why.msg, "unknown tool"));

    why.msg[0] = 0;
    assert_int_equal(tools_validate(NULL, args, &why), AGENTD_EINVAL);
    assert_string_equal(why.msg, "unknown tool (none)");
    json_decref(args);
}

static void test_validate_non_object_args(void **state)
{
    (void)state;
    const char *tools_with_none_required[] = { "get_checkout", "start_payment",
                                               "complete_checkout", "update_customer_details" };
    const char *non_objects[] = { "[]", "[{}]", "\"{}\"", "42", "true", "null" };
    for (size_t t = 0; t < sizeof tools_with_none_required / sizeof *tools_with_none_required; t++)
        for (size_t n = 0; n < sizeof non_objects / sizeof *non_objects; n++)
            expect_invalid(tools_with_none_required[t], non_objects[n],
                           "arguments must be of type object", NULL);
    expect_invalid("get_product", "[\"p-1\"]", "arguments must be of type object", NULL);

    /* NULL args */
    struct agentd_error why = { 0 };
    assert_int_equal(tools_validate("get_checkout", NULL, &why), AGENTD_EINVAL);
    assert_string_equal(why.msg, "arguments must be of type object");
}

/* every problem is reported, not just the first: a model fixes them all in
 * one step */
static void test_validate_reports_every_problem(void **state)
{
    (void)state;
    expect_invalid("add_to_checkout", "{\"product_id\":\"\"}", "arguments.quantity is required",
                   "arguments.product_id must not be empty");
    struct agentd_error why = { 0 };
    json_t *args = load("{\"product_id\":\"\",\"quantity\":0}");
    assert_int_equal(tools_validate("add_to_checkout", args, &why), AGENTD_EINVAL);
    assert_string_equal(why.msg, "arguments.product_id must not be empty; "
                             "arguments.quantity is out of range: 1 to 9999");
    json_decref(args);
}

static void test_validate_why_truncation(void **state)
{
    (void)state;
    /* many problems: the list stops at tools.c's PROBLEMS_MAX (what the
     * model is told counts them), and a short list fits whole */
    json_t *many = json_object();
    for (int i = 0; i < 400; i++) {
        char key[32];
        snprintf(key, sizeof key, "no_such_argument_%03d", i);
        json_object_set_new(many, key, json_true());
    }
    char *text = json_dumps(many, JSON_COMPACT);
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, "search_shopping_catalog", text);
    const char *m = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
    assert_non_null(m);
    assert_non_null(strstr(m, "24 problems with its arguments")); /* tools.c's PROBLEMS_MAX */
    json_decref(res);
    free(text);
    json_decref(many);
    struct {
        struct agentd_error e;
        char after[16];
    } why;
    many = json_object();
    for (int i = 0; i < 12; i++) {
        char key[32];
        snprintf(key, sizeof key, "no_such_argument_%03d", i);
        json_object_set_new(many, key, json_true());
    }
    memset(&why, 'X', sizeof why);
    assert_int_equal(tools_validate("search_shopping_catalog", many, &why.e), AGENTD_EINVAL);
    assert_true(strlen(why.e.msg) < sizeof why.e.msg - 1);
    assert_memory_equal(why.e.msg, "arguments", 9);
    int problems = 0;
    for (const char *p = why.e.msg; (p = strstr(p, ": unknown field")); p++)
        problems++;
    assert_int_equal(problems, 12);
    for (size_t i = 0; i < sizeof why.after; i++)
        assert_int_equal(why.after[i], 'X');
    json_decref(many);

    /* the longest list (each problem naming a clipped long key) is longer
     * than the message: it ends cut, still a C string, nothing written
     * past the struct */
    many = json_object();
    for (int i = 0; i < 400; i++) {
        char key[160];
        snprintf(key, sizeof key, "no_such_argument_%03d_%0120d", i, 0);
        json_object_set_new(many, key, json_true());
    }
    memset(&why, 'X', sizeof why);
    assert_int_equal(tools_validate("search_shopping_catalog", many, &why.e), AGENTD_EINVAL);
    assert_int_equal(strlen(why.e.msg), sizeof why.e.msg - 1);
    assert_memory_equal(why.e.msg, "arguments", 9);
    for (size_t i = 0; i < sizeof why.after; i++)
        assert_int_equal(why.after[i], 'X');
    json_decref(many);

    /* no struct: nothing is written, the result still says invalid */
    json_t *args = json_object();
    assert_int_equal(tools_validate("no_such_tool", args, NULL), AGENTD_EINVAL);
    assert_int_equal(tools_validate("search_shopping_catalog", args, NULL), AGENTD_EINVAL);

    /* and valid arguments leave it alone */
    json_t *ok = load("{\"query\":\"q\"}");
    memset(&why, 'X', sizeof why);
    assert_int_equal(tools_validate("search_shopping_catalog", ok, &why.e), 0);
    assert_int_equal(why.e.msg[0], 'X');
    json_decref(ok);
    json_decref(args);
}

/* ---- tools_run rejection paths: never reach the shop ---- */

static void test_run_not_json(void **state)
{
    (void)state;
    run_expect_error("get_product", "not json", "invalid_arguments",
                     "arguments are not valid JSON");
    run_expect_error("get_product", "{\"product_id\":\"p-1\"", "invalid_arguments",
                     "arguments are not valid JSON");
    run_expect_error("add_to_checkout", "{product_id: 'p-1', quantity: 1}", "invalid_arguments",
                     "not valid JSON");
    /* a bare scalar is not a JSON text jansson accepts by default */
    run_expect_error("get_checkout", "42", "invalid_arguments", "not valid JSON");
    run_expect_error("get_checkout", "null", "invalid_arguments", "not valid JSON");
    /* trailing garbage */
    run_expect_error("get_checkout", "{} {}", "invalid_arguments", "not valid JSON");
    /* an integer too big for the parser */
    run_expect_error("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":99999999999999999999}",
                     "invalid_arguments", "not valid JSON");
    /* the parser's reason is included */
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, "get_product", "{\"product_id\":");
    expect_error_result(res, "invalid_arguments", "not valid JSON: ");
    const char *m = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
    assert_true(strlen(m) > strlen("arguments are not valid JSON: "));
    json_decref(res);
}

static void test_run_invalid_arguments(void **state)
{
    (void)state;
    run_expect_error("add_to_checkout", "{\"product_id\":\"p-1\"}", "invalid_arguments",
                     "arguments.quantity is required");
    run_expect_error("add_to_checkout", "{\"product_id\":\"p-1\",\"quantity\":0}",
                     "invalid_arguments", "arguments.quantity is out of range");
    run_expect_error("add_to_checkout", "{\"product_id\":\"p-1\",\"quantity\":\"1\"}",
                     "invalid_arguments", "arguments.quantity must be of type integer");
    run_expect_error("update_checkout", "{\"product_id\":\"p-1\",\"quantity\":10000}",
                     "invalid_arguments", "arguments.quantity is out of range");
    run_expect_error("remove_from_checkout", "{\"product_id\":\"\"}", "invalid_arguments",
                     "arguments.product_id must not be empty");
    run_expect_error("search_shopping_catalog", "{\"query\":\"q\",\"in_stock_only\":1}",
                     "invalid_arguments", "arguments.in_stock_only must be of type boolean");
    run_expect_error("get_product", "{}", "invalid_arguments", "arguments.product_id is required");
    run_expect_error("select_shipping", "{\"option_id\":7}", "invalid_arguments",
                     "arguments.option_id must be of type string");
    run_expect_error("update_customer_details", "{\"buyer\":\"Ada\"}", "invalid_arguments",
                     "arguments.buyer must be of type object");
    /* an array parses but is not an object */
    run_expect_error("get_checkout", "[]", "invalid_arguments", "arguments must be of type object");
    run_expect_error("complete_checkout", "[{}]", "invalid_arguments",
                     "arguments must be of type object");
}

/* NULL and "" arguments mean {}: still validated, so a tool with required
 * properties is rejected before running */
static void test_run_empty_arguments_mean_empty_object(void **state)
{
    (void)state;
    run_expect_error("add_to_checkout", NULL, "invalid_arguments", "arguments.product_id is required");
    run_expect_error("add_to_checkout", "", "invalid_arguments", "arguments.product_id is required");
    run_expect_error("search_shopping_catalog", "", "invalid_arguments",
                     "arguments.query is required");
    run_expect_error("select_shipping", NULL, "invalid_arguments", "arguments.option_id is required");
}

static void test_run_unknown_tool(void **state)
{
    (void)state;
    run_expect_error("delete_everything", "{}", "unknown_tool", "there is no tool named delete_everything");
    /* unknown name wins over bad arguments */
    run_expect_error("nope", "not json", "unknown_tool", "nope");
    run_expect_error("Get_Checkout", "{}", "unknown_tool", "Get_Checkout");
    run_expect_error("", "{}", "unknown_tool", "there is no tool named");
    run_expect_error(NULL, "{}", "unknown_tool", "there is no tool named (none)");

    /* a long name is cut to 64 characters in the message */
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, longname, "{}");
    expect_error_result(res, "unknown_tool", "there is no tool named ");
    const char *m = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
    assert_int_equal(strlen(m), strlen("there is no tool named ") + 64);
    json_decref(res);
    assert_null(ctx.checkout_id);
}

/* a rejected call leaves an existing session checkout id as it was */
static void test_run_rejection_keeps_checkout_id(void **state)
{
    (void)state;
    struct tools_ctx ctx = null_ctx();
    char id[] = "co-123";
    ctx.checkout_id = id; /* not freed by any rejection path */
    json_t *res = tools_run(&ctx, "add_to_checkout", "{\"product_id\":\"p\",\"quantity\":0}");
    expect_error_result(res, "invalid_arguments", "quantity");
    json_decref(res);
    assert_ptr_equal(ctx.checkout_id, id);
    assert_string_equal(ctx.checkout_id, "co-123");
    res = tools_run(&ctx, "unknown", "{}");
    expect_error_result(res, "unknown_tool", NULL);
    json_decref(res);
    res = tools_run(&ctx, "get_checkout", "{");
    expect_error_result(res, "invalid_arguments", NULL);
    json_decref(res);
    assert_ptr_equal(ctx.checkout_id, id);
}

/* ---- complete schemas a real model follows ---- */

static const char *const keywords[] = { "type", "description", "properties", "required",
                                        "additionalProperties", "minProperties", "enum",
                                        "pattern", "minLength", "maxLength", "minimum",
                                        "maximum", "items", NULL };

/* every object closed (additionalProperties:false), every property typed
 * and described, no keyword the validator would not enforce, every pattern
 * a valid ERE, every required name declared */
static void walk_schema(const char *tool, const char *path, json_t *schema, int is_property)
{
    if (!json_is_object(schema))
        fail_msg("%s %s: schema is not an object", tool, path);
    const char *k;
    json_t *v;
    json_object_foreach(schema, k, v) {
        size_t i = 0;
        while (keywords[i] && strcmp(keywords[i], k) != 0)
            i++;
        if (!keywords[i])
            fail_msg("%s %s: keyword %s is not enforced by the validator", tool, path, k);
    }
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (!type)
        fail_msg("%s %s: no type", tool, path);
    const char *desc = json_string_value(json_object_get(schema, "description"));
    if (is_property && (!desc || strlen(desc) < 8))
        fail_msg("%s %s: no description", tool, path);
    const char *pat = json_string_value(json_object_get(schema, "pattern"));
    if (pat) {
        regex_t re;
        if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) != 0)
            fail_msg("%s %s: pattern %s does not compile", tool, path, pat);
        regfree(&re);
        if (strchr(pat, '\\'))
            fail_msg("%s %s: pattern %s uses a backslash (ERE and ECMA differ)", tool, path, pat);
    }
    if (strcmp(type, "object") == 0) {
        if (!json_is_false(json_object_get(schema, "additionalProperties")))
            fail_msg("%s %s: object without additionalProperties:false", tool, path);
        json_t *props = json_object_get(schema, "properties");
        if (!json_is_object(props))
            fail_msg("%s %s: object without properties", tool, path);
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(schema, "required"), i, r)
            if (!json_object_get(props, json_string_value(r)))
                fail_msg("%s %s: required %s is not a property", tool, path,
                         json_string_value(r));
        json_object_foreach(props, k, v) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.%s", path, k);
            walk_schema(tool, sub, v, 1);
        }
    }
    if (strcmp(type, "array") == 0)
        walk_schema(tool, path, json_object_get(schema, "items"), 0);
}

static void test_definitions_complete_schemas(void **state)
{
    (void)state;
    json_t *defs = tools_definitions();
    size_t i;
    json_t *d;
    int examples = 0;
    json_array_foreach(defs, i, d) {
        json_t *fn = json_object_get(d, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *params = json_object_get(fn, "parameters");
        walk_schema(name, "arguments", params, 0);
        /* a tool with arguments shows a valid call in its description */
        const char *desc = json_string_value(json_object_get(fn, "description"));
        const char *ex = strstr(desc, "Example arguments: ");
        if (json_object_size(json_object_get(params, "properties")) == 0) {
            assert_null(ex);
            continue;
        }
        if (!ex)
            fail_msg("%s: no example in the description", name);
        json_error_t je;
        json_t *args = json_loads(ex + strlen("Example arguments: "), 0, &je);
        if (!args)
            fail_msg("%s: the example is not JSON: %s", name, je.text);
        struct agentd_error why = { 0 };
        if (tools_validate(name, args, &why) != 0)
            fail_msg("%s: its own example is invalid: %s", name, why.msg);
        json_decref(args);
        examples++;
    }
    assert_int_equal(examples, 7);
    /* the fields a UCP buyer and postal address have, by their UCP names */
    json_t *ucd = NULL;
    json_array_foreach(defs, i, d)
        if (strcmp(json_string_value(json_object_get(json_object_get(d, "function"), "name")),
                   "update_customer_details") == 0)
            ucd = json_object_get(json_object_get(d, "function"), "parameters");
    json_t *props = json_object_get(ucd, "properties");
    const char *buyer[] = { "first_name", "last_name", "full_name", "email", "phone_number" };
    for (size_t k = 0; k < 5; k++)
        assert_non_null(json_object_get(json_object_get(json_object_get(props, "buyer"),
                                                        "properties"), buyer[k]));
    const char *addr[] = { "street_address", "extended_address", "address_locality",
                           "address_region", "postal_code", "address_country" };
    for (size_t k = 0; k < 6; k++)
        assert_non_null(json_object_get(json_object_get(json_object_get(props, "address"),
                                                        "properties"), addr[k]));
    json_decref(defs);
}

/* the mistakes real models make with update_customer_details, each named
 * with what to use instead */
static void test_validate_real_model_mistakes(void **state)
{
    (void)state;
    /* (a) the address as one string */
    expect_invalid("update_customer_details",
                   "{\"buyer\":{\"email\":\"jane@example.com\"},"
                   "\"address\":\"1 Main St, Springfield, IL 62701, US\"}",
                   "arguments.address must be of type object, not a string: give the parts as "
                   "separate fields (street_address, extended_address, address_locality, "
                   "address_region, postal_code, address_country",
                   "required: street_address, address_locality, postal_code, address_country");
    /* (b) common key names, the name in one field: every one named */
    const char *b = "{\"buyer\":{\"name\":\"Jane Doe\",\"email\":\"jane@example.com\"},"
                    "\"address\":{\"street\":\"1 Main St\",\"city\":\"Springfield\",\"state\":\"IL\","
                    "\"zip\":\"62701\",\"country\":\"US\"}}";
    const char *want[] = {
        "arguments.buyer.name: unknown field; use first_name and last_name",
        "arguments.address.street: unknown field; did you mean street_address?",
        "arguments.address.city: unknown field; did you mean address_locality?",
        "arguments.address.state: unknown field; did you mean address_region?",
        "arguments.address.zip: unknown field; did you mean postal_code?",
        "arguments.address.country: unknown field; did you mean address_country?",
        "arguments.address.street_address is required",
        "arguments.address.address_locality is required",
        "arguments.address.postal_code is required",
        "arguments.address.address_country is required",
    };
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, "update_customer_details", b);
    expect_error_result(res, "invalid_arguments", NULL);
    json_t *probs = json_object_get(json_object_get(res, "error"), "problems");
    assert_int_equal(json_array_size(probs), sizeof want / sizeof want[0]);
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        size_t i;
        json_t *p;
        int found = 0;
        json_array_foreach(probs, i, p)
            found |= strncmp(json_string_value(p), want[k], strlen(want[k])) == 0;
        if (!found)
            fail_msg("no problem starts with \"%s\"", want[k]);
    }
    json_decref(res);
    /* other spellings */
    expect_invalid("update_customer_details",
                   "{\"buyer\":{\"firstName\":\"Jane\",\"phone\":\"1\",\"email_address\":\"j@x.io\"}}",
                   "arguments.buyer.firstName: unknown field; did you mean first_name?",
                   "arguments.buyer.phone: unknown field; did you mean phone_number?");
    expect_invalid("update_customer_details",
                   "{\"address\":{\"postalCode\":\"1\",\"street_address\":\"x\",\"Address-Locality\":\"y\","
                   "\"address_country\":\"US\"}}",
                   "arguments.address.postalCode: unknown field; did you mean postal_code?",
                   "arguments.address.Address-Locality: unknown field; did you mean address_locality?");
    /* a field given at the wrong level */
    expect_invalid("update_customer_details", "{\"email\":\"jane@example.com\",\"zip\":\"62701\"}",
                   "arguments.email: unknown field; it belongs in buyer",
                   "arguments.zip: unknown field; it belongs in address: did you mean postal_code?");
    expect_invalid("update_customer_details", "{\"name\":\"Jane Doe\"}",
                   "arguments.name: unknown field; it belongs in buyer: use first_name and last_name",
                   "arguments must have at least 1 of: buyer, address");
    /* no hint: the allowed fields */
    expect_invalid("update_customer_details", "{\"buyer\":{\"email\":\"a@b.co\",\"age\":42}}",
                   "arguments.buyer.age: unknown field; allowed fields: first_name, last_name, "
                   "full_name, email, phone_number", NULL);
}

static void test_validate_nothing_to_set(void **state)
{
    (void)state;
    expect_invalid("update_customer_details", "{}", "arguments must have at least 1 of: buyer, address",
                   NULL);
    expect_invalid("update_customer_details", "{\"buyer\":null,\"address\":null}",
                   "arguments must have at least 1 of: buyer, address", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{}}",
                   "arguments.buyer must have at least 1 of: first_name, last_name", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{\"email\":null}}",
                   "arguments.buyer must have at least 1 of", NULL);
    /* an address without its country (or any required part) is refused,
     * not stored half */
    expect_invalid("update_customer_details",
                   "{\"address\":{\"street_address\":\"1 Main St\",\"address_locality\":\"Springfield\","
                   "\"postal_code\":\"62701\"}}",
                   "arguments.address.address_country is required: Two-letter ISO 3166-1", NULL);
    expect_invalid("update_customer_details",
                   "{\"address\":{\"street_address\":\"\",\"address_locality\":\"Springfield\","
                   "\"postal_code\":\"62701\",\"address_country\":\"US\"}}",
                   "arguments.address.street_address must not be empty", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{\"first_name\":\"\",\"email\":\"a@b.co\"}}",
                   "arguments.buyer.first_name must not be empty", NULL);
}

static void test_validate_patterns(void **state)
{
    (void)state;
    const char *addr = "{\"address\":{\"street_address\":\"1 Main St\",\"address_locality\":\"X\","
                       "\"postal_code\":\"1\",\"address_country\":\"%s\"}}";
    char args[512];
    snprintf(args, sizeof args, addr, "USA");
    expect_invalid("update_customer_details", args,
                   "arguments.address.address_country: 'USA' does not match ^[A-Za-z]{2}$: "
                   "Two-letter ISO 3166-1 alpha-2 country code", NULL);
    snprintf(args, sizeof args, addr, "United States");
    expect_invalid("update_customer_details", args, "'United States' does not match", NULL);
    snprintf(args, sizeof args, addr, "us");
    expect_valid("update_customer_details", args);
    expect_invalid("update_customer_details", "{\"buyer\":{\"email\":\"jane\"}}",
                   "arguments.buyer.email: 'jane' does not match", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{\"email\":\"jane@example\"}}",
                   "arguments.buyer.email: 'jane@example' does not match", NULL);
    expect_invalid("update_customer_details", "{\"buyer\":{\"email\":\"jane doe@example.com\"}}",
                   "arguments.buyer.email", "does not match");
    expect_valid("update_customer_details", "{\"buyer\":{\"email\":\"jane.doe+x@mail.example.com\"}}");
    /* a product's title is not its id */
    expect_invalid("add_to_checkout", "{\"product_id\":\"Chocolate Chip Cookies\",\"quantity\":1}",
                   "arguments.product_id: 'Chocolate Chip Cookies' does not match", "search_shopping_catalog");
    expect_invalid("select_shipping", "{\"option_id\":\"express shipping\"}",
                   "arguments.option_id: 'express shipping' does not match", "options[].id");
    /* a NUL inside a string does not hide what follows it */
    json_t *nul = json_pack("{s:s%}", "product_id", "ok\0 no", (size_t)6);
    struct agentd_error why = { 0 };
    assert_int_equal(tools_validate("get_product", nul, &why), AGENTD_EINVAL);
    assert_non_null(strstr(why.msg, "does not match"));
    json_decref(nul);
    /* a long value is clipped in the message */
    expect_invalid("get_product",
                   "{\"product_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                   "arguments.product_id is too long: at most 63 characters", NULL);
}

/* lengths count characters (JSON Schema), not bytes */
static void test_validate_lengths_in_characters(void **state)
{
    (void)state;
    char name[1024] = "{\"buyer\":{\"first_name\":\"";
    for (int i = 0; i < 200; i++)
        strcat(name, "\xc3\xa9"); /* é: 2 bytes, 1 character */
    strcat(name, "\"}}");
    expect_valid("update_customer_details", name);
    char longer[1024];
    snprintf(longer, sizeof longer, "%.*s\xc3\xa9\"}}", (int)(strlen(name) - 3), name);
    expect_invalid("update_customer_details", longer,
                   "arguments.buyer.first_name is too long: at most 200 characters", NULL);
}

/* the validator on any schema: enum, arrays, numbers, a pattern not
 * precompiled */
static void test_check_generic_schema(void **state)
{
    (void)state;
    json_t *schema = load(
        "{\"type\":\"object\",\"properties\":{"
        "\"level\":{\"type\":\"string\",\"enum\":[\"standard\",\"express\"]},"
        "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1}},"
        "\"ratio\":{\"type\":\"number\",\"minimum\":0,\"maximum\":1},"
        "\"n\":{\"type\":\"integer\",\"enum\":[1,2]},"
        "\"code\":{\"type\":\"string\",\"pattern\":\"^[0-9]{3}$\"},"
        "\"inner\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},"
        "\"required\":[\"a\"],\"additionalProperties\":false}},"
        "\"required\":[\"level\"],\"additionalProperties\":false}");
    json_t *bad = load("{\"level\":\"fast\",\"tags\":[\"a\",\"\",3],\"ratio\":1.5,\"n\":3,"
                       "\"code\":\"12a\",\"inner\":{\"b\":1}}");
    json_t *probs = tools_check(schema, bad);
    const char *want[] = {
        "arguments.level must be one of [\"standard\",\"express\"]",
        "arguments.tags[1] must not be empty",
        "arguments.tags[2] must be of type string, not an integer",
        "arguments.ratio is out of range: 0 to 1",
        "arguments.n must be one of [1,2]",
        "arguments.code: '12a' does not match ^[0-9]{3}$",
        "arguments.inner.b: unknown field; allowed fields: a",
        "arguments.inner.a is required",
    };
    size_t n = sizeof want / sizeof want[0];
    if (json_array_size(probs) != n) {
        char *t = json_dumps(probs, 0);
        fail_msg("%zu problems, expected %zu: %s", json_array_size(probs), n, t);
    }
    for (size_t k = 0; k < n; k++)
        assert_string_equal(json_string_value(json_array_get(probs, k)), want[k]);
    json_decref(probs);
    json_t *good = load("{\"level\":\"express\",\"tags\":[\"x\"],\"ratio\":0.5,\"n\":2,\"code\":\"123\","
                        "\"inner\":{\"a\":false}}");
    probs = tools_check(schema, good);
    assert_int_equal(json_array_size(probs), 0);
    json_decref(probs);
    json_decref(good);
    json_decref(bad);
    json_decref(schema);
}

/* a flood of unknown keys is capped; keys and values that are cut stay
 * valid UTF-8 (the result is JSON) */
static void test_problems_capped_and_utf8_safe(void **state)
{
    (void)state;
    char args[4096] = "{\"product_id\":\"p\"";
    for (int i = 0; i < 40; i++)
        snprintf(args + strlen(args), sizeof args - strlen(args), ",\"k%d\":1", i);
    strcat(args, "}");
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, "get_product", args);
    expect_error_result(res, "invalid_arguments", "arguments.k0: unknown field");
    json_t *probs = json_object_get(json_object_get(res, "error"), "problems");
    assert_true(json_array_size(probs) >= 10 && json_array_size(probs) < 40);
    json_decref(res);

    char key[512] = "{\"";
    for (int i = 0; i < 50; i++)
        strcat(key, "\xc3\xa9");
    strcat(key, "\":1,\"product_id\":\"");
    for (int i = 0; i < 50; i++)
        strcat(key, "\xe2\x82\xac"); /* €: 3 bytes */
    strcat(key, "\"}");
    res = tools_run(&ctx, "get_product", key);
    expect_error_result(res, "invalid_arguments", "unknown field");
    const char *m = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
    assert_non_null(strstr(m, "\xc3\xa9..."));
    char *text = json_dumps(res, 0);
    assert_non_null(text);
    json_error_t je;
    json_t *back = json_loads(text, 0, &je); /* valid UTF-8 throughout */
    assert_non_null(back);
    json_decref(back);
    free(text);
    json_decref(res);
}

/* no "description" anywhere: what `expected` carries */
static int has_description(const json_t *schema)
{
    if (json_object_get(schema, "description"))
        return 1;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(schema, "properties"), k, v)
        if (has_description(v))
            return 1;
    return 0;
}

static void test_run_invalid_arguments_carries_the_shape(void **state)
{
    (void)state;
    struct tools_ctx ctx = null_ctx();
    json_t *res = tools_run(&ctx, "update_customer_details", "{\"address\":\"1 Main St\"}");
    expect_error_result(res, "invalid_arguments",
                        "update_customer_details did not run: 1 problem with its arguments: "
                        "arguments.address must be of type object");
    json_t *err = json_object_get(res, "error");
    json_t *expected = json_object_get(err, "expected");
    assert_false(has_description(expected));
    json_t *addr = json_object_get(json_object_get(expected, "properties"), "address");
    assert_true(json_is_false(json_object_get(addr, "additionalProperties")));
    assert_int_equal(json_array_size(json_object_get(addr, "required")), 4);
    json_t *ex = json_object_get(err, "example");
    struct agentd_error why = { 0 };
    assert_int_equal(tools_validate("update_customer_details", ex, &why), 0);
    json_decref(res);
    /* not JSON: the same shape */
    res = tools_run(&ctx, "add_to_checkout", "{\"product_id\":");
    expect_error_result(res, "invalid_arguments", "arguments are not valid JSON");
    assert_non_null(json_object_get(json_object_get(res, "error"), "example"));
    json_decref(res);
    /* a tool without arguments has no example */
    res = tools_run(&ctx, "get_checkout", "{\"id\":\"x\"}");
    expect_error_result(res, "invalid_arguments", "arguments.id: unknown field");
    assert_null(json_object_get(json_object_get(res, "error"), "example"));
    json_decref(res);
}

/* ---- against a real shop: nothing given is dropped ---- */

struct shopctx {
    char dir[256];
    struct store *st;
    struct merchant *m;
    struct shop *sh;
    struct tools_ctx t;
    int calls;
    char key[64];
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int shop_setup(void **state)
{
    struct shopctx *c = calloc(1, sizeof *c);
    if (!c)
        return -1;
    snprintf(c->dir, sizeof c->dir, "/tmp/agentd-test-tools-XXXXXX");
    if (!mkdtemp(c->dir))
        return -1;
    char url[512];
    snprintf(url, sizeof url, "%s/agentd.db", c->dir);
    struct store_options o = { .url = url, .sync = STORE_SYNC_NORMAL };
    if (store_open(&o, &c->st, NULL) != 0)
        return -1;
    c->m = merchant_new(c->st, NULL); /* the built-in catalog */
    if (!c->m || merchant_load(c->m, NULL) != 0)
        return -1;
    if (!(c->sh = shop_new(c->st, c->m, "http://127.0.0.1:8080")))
        return -1;
    c->t.shop = c->sh;
    c->t.merchant = c->m;
    c->t.owner = "tester";
    *state = c;
    return 0;
}

static int shop_teardown(void **state)
{
    struct shopctx *c = *state;
    free(c->t.checkout_id);
    shop_free(c->sh);
    merchant_free(c->m);
    store_close(c->st);
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

static json_t *run(struct shopctx *c, const char *tool, const char *args)
{
    snprintf(c->key, sizeof c->key, "turn/1/%d/call", c->calls++);
    c->t.op_key = c->key;
    json_t *res = tools_run(&c->t, tool, args);
    c->t.op_key = NULL;
    assert_non_null(res);
    return res;
}

static const char *str_at(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_shop_customer_details_keep_every_field(void **state)
{
    struct shopctx *c = *state;
    json_decref(run(c, "add_to_checkout", "{\"product_id\":\"BISC-001\",\"quantity\":2}"));
    assert_non_null(c->t.checkout_id);
    json_t *co = run(c, "update_customer_details",
                     "{\"buyer\":{\"first_name\":\"Jane\",\"last_name\":\"Doe\","
                     "\"email\":\"jane@example.com\",\"phone_number\":\"+1 217 555 0100\"},"
                     "\"address\":{\"street_address\":\"1 Main St\",\"extended_address\":\"Apt 4\","
                     "\"address_locality\":\"Springfield\",\"address_region\":\"IL\","
                     "\"postal_code\":\"62701\",\"address_country\":\"us\",\"first_name\":\"John\","
                     "\"last_name\":\"Roe\",\"phone_number\":\"+1 217 555 0199\"}}");
    if (json_object_get(co, "error"))
        fail_msg("update_customer_details failed: %s", json_dumps(co, 0));
    json_t *b = json_object_get(co, "buyer");
    assert_string_equal(str_at(b, "first_name"), "Jane");
    assert_string_equal(str_at(b, "last_name"), "Doe");
    assert_string_equal(str_at(b, "email"), "jane@example.com");
    assert_string_equal(str_at(b, "phone_number"), "+1 217 555 0100");
    json_t *d = json_array_get(
        json_object_get(json_array_get(json_object_get(json_object_get(co, "fulfillment"), "methods"),
                                       0), "destinations"), 0);
    assert_string_equal(str_at(d, "street_address"), "1 Main St");
    assert_string_equal(str_at(d, "extended_address"), "Apt 4");
    assert_string_equal(str_at(d, "address_locality"), "Springfield");
    assert_string_equal(str_at(d, "address_region"), "IL");
    assert_string_equal(str_at(d, "postal_code"), "62701");
    assert_string_equal(str_at(d, "address_country"), "US");
    assert_string_equal(str_at(d, "first_name"), "John");
    assert_string_equal(str_at(d, "last_name"), "Roe");
    assert_string_equal(str_at(d, "phone_number"), "+1 217 555 0199");
    /* no option chosen yet: the cheapest is, as UCP's sample merchant does */
    json_t *g = json_array_get(json_object_get(json_array_get(json_object_get(
        json_object_get(co, "fulfillment"), "methods"), 0), "groups"), 0);
    assert_string_equal(str_at(g, "selected_option_id"), "std-ship");
    json_decref(co);
    json_decref(run(c, "select_shipping", "{\"option_id\":\"exp-ship\"}"));
    /* a new address keeps a chosen option where it still applies */
    co = run(c, "update_customer_details",
             "{\"address\":{\"street_address\":\"2 Main St\",\"address_locality\":\"Springfield\","
             "\"address_region\":\"IL\",\"postal_code\":\"62701\",\"address_country\":\"US\"}}");
    g = json_array_get(json_object_get(json_array_get(json_object_get(
        json_object_get(co, "fulfillment"), "methods"), 0), "groups"), 0);
    assert_string_equal(str_at(g, "selected_option_id"), "exp-ship");
    json_decref(co);

    /* a later call with one buyer field keeps the others */
    co = run(c, "update_customer_details", "{\"buyer\":{\"phone_number\":\"+1 217 555 0111\"}}");
    b = json_object_get(co, "buyer");
    assert_string_equal(str_at(b, "first_name"), "Jane");
    assert_string_equal(str_at(b, "email"), "jane@example.com");
    assert_string_equal(str_at(b, "phone_number"), "+1 217 555 0111");
    json_decref(co);
    /* a name replaces the earlier name whole */
    co = run(c, "update_customer_details", "{\"buyer\":{\"full_name\":\"Jane Q. Doe\"}}");
    b = json_object_get(co, "buyer");
    assert_string_equal(str_at(b, "full_name"), "Jane Q. Doe");
    assert_null(json_object_get(b, "first_name"));
    assert_null(json_object_get(b, "last_name"));
    assert_string_equal(str_at(b, "email"), "jane@example.com");
    json_decref(co);

    /* a refused call changes nothing */
    co = run(c, "update_customer_details",
             "{\"buyer\":{\"name\":\"X\",\"email\":\"x@example.com\"}}");
    assert_string_equal(str_at(json_object_get(co, "error"), "code"), "invalid_arguments");
    json_decref(co);
    co = run(c, "get_checkout", "{}");
    assert_string_equal(str_at(json_object_get(co, "buyer"), "email"), "jane@example.com");
    json_decref(co);
}

/* the six UCP sample products carry what an A2A product card shows */
static void test_shop_search_product_fields(void **state)
{
    struct shopctx *c = *state;
    static const char *const ids[] = { "BISC-001",      "STRAW-001",    "CHIPS-001",
                                       "SW-CHIPS-001", "O-COOKIES-001", "NUTRIBAR-001" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char args[128];
        snprintf(args, sizeof args, "{\"product_id\":\"%s\"}", ids[i]);
        json_t *p = run(c, "get_product", args);
        assert_string_equal(str_at(p, "id"), ids[i]);
        assert_true(strncmp(str_at(p, "image") ?: "", "https://", 8) == 0);
        assert_true(strncmp(str_at(p, "url") ?: "", "https://", 8) == 0);
        assert_true(strlen(str_at(p, "brand") ?: "") > 0);
        assert_true(strlen(str_at(p, "description") ?: "") > 0);
        json_decref(p);
    }
    json_t *r = run(c, "search_shopping_catalog", "{\"query\":\"cookies\"}");
    json_t *first = json_array_get(json_object_get(r, "products"), 0);
    assert_non_null(first);
    assert_non_null(str_at(first, "image"));
    assert_non_null(str_at(first, "brand"));
    json_decref(r);
}

/* The tool table says which tools change the checkout (the runner reads it). */
static void test_mutates_checkout_flag(void **state)
{
    (void)state;
    const char *mut[] = { "add_to_checkout", "remove_from_checkout", "update_checkout",
                          "update_customer_details", "select_shipping", "complete_checkout" };
    const char *ro[] = { "search_shopping_catalog", "get_product", "get_checkout", "start_payment",
                         "no_such_tool" };
    for (size_t i = 0; i < sizeof mut / sizeof mut[0]; i++)
        assert_int_equal(tools_mutates_checkout(mut[i]), 1);
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++)
        assert_int_equal(tools_mutates_checkout(ro[i]), 0);
    assert_int_equal(tools_mutates_checkout(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions_shape),
        cmocka_unit_test(test_mutates_checkout_flag),
        cmocka_unit_test(test_definitions_fresh_each_call),
        cmocka_unit_test(test_definitions_agree_with_validator),
        cmocka_unit_test(test_validate_valid_per_tool),
        cmocka_unit_test(test_validate_unknown_fields_and_null_optional),
        cmocka_unit_test(test_validate_missing_required),
        cmocka_unit_test(test_validate_wrong_type),
        cmocka_unit_test(test_validate_range),
        cmocka_unit_test(test_validate_min_length),
        cmocka_unit_test(test_validate_nested_objects),
        cmocka_unit_test(test_validate_unknown_tool),
        cmocka_unit_test(test_validate_non_object_args),
        cmocka_unit_test(test_validate_reports_every_problem),
        cmocka_unit_test(test_validate_why_truncation),
        cmocka_unit_test(test_run_not_json),
        cmocka_unit_test(test_run_invalid_arguments),
        cmocka_unit_test(test_run_empty_arguments_mean_empty_object),
        cmocka_unit_test(test_run_unknown_tool),
        cmocka_unit_test(test_run_rejection_keeps_checkout_id),
        cmocka_unit_test(test_definitions_complete_schemas),
        cmocka_unit_test(test_validate_real_model_mistakes),
        cmocka_unit_test(test_validate_nothing_to_set),
        cmocka_unit_test(test_validate_patterns),
        cmocka_unit_test(test_validate_lengths_in_characters),
        cmocka_unit_test(test_check_generic_schema),
        cmocka_unit_test(test_problems_capped_and_utf8_safe),
        cmocka_unit_test(test_run_invalid_arguments_carries_the_shape),
        cmocka_unit_test_setup_teardown(test_shop_customer_details_keep_every_field, shop_setup,
                                        shop_teardown),
        cmocka_unit_test_setup_teardown(test_shop_search_product_fields, shop_setup,
                                        shop_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
