/* agent tools: the definitions the model sees, the schema validator, and
 * tools_run's rejection paths (which must never reach the shop). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <jansson.h>

#include "agent/tools.h"

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
    char why[256] = "";
    int rc = tools_validate(tool, args, why, sizeof why);
    json_decref(args);
    if (rc != 0)
        fail_msg("line %d: %s %s should be valid, got rc=%d why=\"%s\"", line, tool, args_text, rc,
                 why);
}

/* args must be rejected, and why must contain every non-NULL needle */
static void expect_invalid_at(const char *tool, const char *args_text, const char *needle1,
                              const char *needle2, int line)
{
    json_t *args = load(args_text);
    char why[256] = "";
    int rc = tools_validate(tool, args, why, sizeof why);
    json_decref(args);
    if (rc != -1)
        fail_msg("line %d: %s %s should be invalid, got rc=%d", line, tool, args_text, rc);
    if (needle1 && !strstr(why, needle1))
        fail_msg("line %d: %s %s: why \"%s\" lacks \"%s\"", line, tool, args_text, why, needle1);
    if (needle2 && !strstr(why, needle2))
        fail_msg("line %d: %s %s: why \"%s\" lacks \"%s\"", line, tool, args_text, why, needle2);
}

#define expect_valid(tool, args) expect_valid_at(tool, args, __LINE__)
#define expect_invalid(tool, args, n1, n2) expect_invalid_at(tool, args, n1, n2, __LINE__)

/* result must be exactly {"error":{"code":code,"message":...}} with message
 * containing needle (if non-NULL) */
static void expect_error_result_at(json_t *res, const char *code, const char *needle, int line)
{
    if (!res)
        fail_msg("line %d: tools_run returned NULL", line);
    if (!json_is_object(res) || json_object_size(res) != 1)
        fail_msg("line %d: result is not a one-key object", line);
    json_t *err = json_object_get(res, "error");
    if (!json_is_object(err) || json_object_size(err) != 2)
        fail_msg("line %d: result.error is not a {code,message} object", line);
    const char *c = json_string_value(json_object_get(err, "code"));
    const char *m = json_string_value(json_object_get(err, "message"));
    if (!c || !m)
        fail_msg("line %d: result.error.code/message are not strings", line);
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

/* the required list of each definition is exactly what tools_validate enforces */
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
        json_t *required = json_object_get(json_object_get(fn, "parameters"), "required");
        char why[256] = "";
        json_t *empty = json_object();
        int rc = tools_validate(name, empty, why, sizeof why);
        json_decref(empty);
        if (json_array_size(required) == 0) {
            if (rc != 0)
                fail_msg("%s: {} rejected although nothing is required: %s", name, why);
        } else {
            required_seen++;
            if (rc != -1)
                fail_msg("%s: {} accepted although %s is required", name,
                         json_string_value(json_array_get(required, 0)));
            /* the first required property is the one reported */
            char expect[128];
            snprintf(expect, sizeof expect, "arguments.%s is required",
                     json_string_value(json_array_get(required, 0)));
            assert_string_equal(why, expect);
        }
    }
    assert_int_equal(required_seen, 6);
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
    expect_valid("update_customer_details", "{}");
    expect_valid("update_customer_details",
                 "{\"buyer\":{\"first_name\":\"Ada\",\"email\":\"ada@example.com\"},"
                 "\"address\":{\"street_address\":\"1 Main St\",\"address_country\":\"US\"}}");
    expect_valid("update_customer_details", "{\"buyer\":{}}");
    expect_valid("update_customer_details", "{\"address\":{}}");
    expect_valid("select_shipping", "{\"option_id\":\"standard\"}");
    expect_valid("start_payment", "{}");
    expect_valid("complete_checkout", "{}");
}

/* the validator supports no additionalProperties: extra keys are ignored,
 * and optional properties given as null count as absent */
static void test_validate_extra_and_null_optional(void **state)
{
    (void)state;
    expect_valid("get_checkout", "{\"verbose\":true,\"x\":[1,2]}");
    expect_valid("get_product", "{\"product_id\":\"p-1\",\"extra\":123}");
    expect_valid("search_shopping_catalog",
                 "{\"query\":\"q\",\"category\":null,\"max_price\":null,\"limit\":null}");
    expect_valid("update_customer_details", "{\"buyer\":null,\"address\":null}");
    /* unknown keys are not type-checked, whatever their value */
    expect_valid("add_to_checkout", "{\"product_id\":\"p\",\"quantity\":2,\"note\":-5}");
}

/* ---- tools_validate: failures ---- */

static void test_validate_missing_required(void **state)
{
    (void)state;
    expect_invalid("search_shopping_catalog", "{}", "arguments.query is required", NULL);
    expect_invalid("search_shopping_catalog", "{\"category\":\"shoes\"}",
                   "arguments.query is required", NULL);
    expect_invalid("get_product", "{\"id\":\"p-1\"}", "arguments.product_id is required", NULL);
    expect_invalid("add_to_checkout", "{\"product_id\":\"p-1\"}", "arguments.quantity is required",
                   NULL);
    expect_invalid("add_to_checkout", "{\"quantity\":1}", "arguments.product_id is required",
                   NULL);
    expect_invalid("remove_from_checkout", "{}", "arguments.product_id is required", NULL);
    expect_invalid("update_checkout", "{\"product_id\":\"p-1\"}", "arguments.quantity is required",
                   NULL);
    expect_invalid("select_shipping", "{\"option\":\"standard\"}",
                   "arguments.option_id is required", NULL);
    /* names are case-sensitive */
    expect_invalid("get_product", "{\"Product_Id\":\"p-1\"}", "product_id", "required");
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
    char why[256] = "";
    assert_int_equal(tools_validate("delete_everything", args, why, sizeof why), -1);
    assert_non_null(strstr(why, "unknown tool"));
    assert_non_null(strstr(why, "delete_everything"));

    why[0] = 0;
    assert_int_equal(tools_validate("Get_Product", args, why, sizeof why), -1);
    assert_non_null(strstr(why, "Get_Product"));

    why[0] = 0;
    assert_int_equal(tools_validate("", args, why, sizeof why), -1);
    assert_non_null(strstr(why, "unknown tool"));

    why[0] = 0;
    assert_int_equal(tools_validate(NULL, args, why, sizeof why), -1);
    assert_string_equal(why, "unknown tool (none)");
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
    char why[256] = "";
    assert_int_equal(tools_validate("get_checkout", NULL, why, sizeof why), -1);
    assert_string_equal(why, "arguments must be of type object");
}

/* the first failure is the one reported, in a deterministic order:
 * type, then required, then each property */
static void test_validate_reports_first_failure(void **state)
{
    (void)state;
    /* required is checked before property values */
    expect_invalid("add_to_checkout", "{\"product_id\":\"\"}", "arguments.quantity is required",
                   NULL);
    char why[256] = "";
    json_t *args = load("{\"product_id\":\"\",\"quantity\":0}");
    assert_int_equal(tools_validate("add_to_checkout", args, why, sizeof why), -1);
    /* exactly one complaint, naming one of the two offending properties */
    assert_true(strcmp(why, "arguments.product_id must not be empty") == 0 ||
                strcmp(why, "arguments.quantity is out of range") == 0);
    json_decref(args);
}

static void test_validate_why_truncation(void **state)
{
    (void)state;
    json_t *args = json_object();
    char why[16];
    memset(why, 'X', sizeof why);
    assert_int_equal(tools_validate("search_shopping_catalog", args, why, 8), -1);
    assert_int_equal(strlen(why), 7); /* "argumen" + NUL, nothing past len */
    assert_memory_equal(why, "argumen", 8);
    for (size_t i = 8; i < sizeof why; i++)
        assert_int_equal(why[i], 'X');

    /* len 0: nothing is written, the result still says invalid */
    memset(why, 'X', sizeof why);
    assert_int_equal(tools_validate("no_such_tool", args, why, 0), -1);
    for (size_t i = 0; i < sizeof why; i++)
        assert_int_equal(why[i], 'X');

    /* and valid arguments leave why alone */
    json_t *ok = load("{\"query\":\"q\"}");
    memset(why, 'X', sizeof why);
    assert_int_equal(tools_validate("search_shopping_catalog", ok, why, sizeof why), 0);
    assert_int_equal(why[0], 'X');
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions_shape),
        cmocka_unit_test(test_definitions_fresh_each_call),
        cmocka_unit_test(test_definitions_agree_with_validator),
        cmocka_unit_test(test_validate_valid_per_tool),
        cmocka_unit_test(test_validate_extra_and_null_optional),
        cmocka_unit_test(test_validate_missing_required),
        cmocka_unit_test(test_validate_wrong_type),
        cmocka_unit_test(test_validate_range),
        cmocka_unit_test(test_validate_min_length),
        cmocka_unit_test(test_validate_nested_objects),
        cmocka_unit_test(test_validate_unknown_tool),
        cmocka_unit_test(test_validate_non_object_args),
        cmocka_unit_test(test_validate_reports_first_failure),
        cmocka_unit_test(test_validate_why_truncation),
        cmocka_unit_test(test_run_not_json),
        cmocka_unit_test(test_run_invalid_arguments),
        cmocka_unit_test(test_run_empty_arguments_mean_empty_object),
        cmocka_unit_test(test_run_unknown_tool),
        cmocka_unit_test(test_run_rejection_keeps_checkout_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
