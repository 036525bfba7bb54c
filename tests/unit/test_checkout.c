/* checkout: create-request parsing (UCP conformance shapes), status and
 * messages, every lifecycle transition, PUT semantics, agent tools, stock,
 * atomicity of failed operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/checkout.h"
#include "commerce/fields.h"
#include "commerce/payment.h"
#include "commerce/ucp.h"
#include "core/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- fake shop ---- */

struct fake {
    struct product products[4];
    int64_t stock[4];
    struct shipping_rate rates[3];
    const struct shipping_rate *ptrs[3];
    struct discount discounts[2];
    struct tax_rate taxes[1];
    json_t *handlers;
};

static const struct product *f_product(void *ud, const char *id)
{
    struct fake *f = ud;
    for (size_t i = 0; i < N(f->products); i++)
        if (strcmp(f->products[i].id, id) == 0)
            return &f->products[i];
    return NULL;
}

static int64_t f_stock(void *ud, const char *id)
{
    struct fake *f = ud;
    for (size_t i = 0; i < N(f->products); i++)
        if (strcmp(f->products[i].id, id) == 0)
            return f->stock[i];
    return -1;
}

static const struct shipping_rate *const *f_rates(void *ud, const char *country, size_t *n)
{
    struct fake *f = ud;
    *n = 0;
    for (size_t i = 0; i < N(f->rates); i++)
        if (strcmp(f->rates[i].country, "*") == 0 || strcasecmp(f->rates[i].country, country) == 0)
            f->ptrs[(*n)++] = &f->rates[i];
    return f->ptrs;
}

static const struct shipping_rate *f_rate(void *ud, const char *id)
{
    struct fake *f = ud;
    for (size_t i = 0; i < N(f->rates); i++)
        if (strcmp(f->rates[i].id, id) == 0)
            return &f->rates[i];
    return NULL;
}

static const struct discount *f_discount(void *ud, const char *code)
{
    struct fake *f = ud;
    for (size_t i = 0; i < N(f->discounts); i++)
        if (strcasecmp(f->discounts[i].code, code) == 0)
            return &f->discounts[i];
    return NULL;
}

static const struct tax_rate *f_tax(void *ud, const char *country, const char *region)
{
    struct fake *f = ud;
    (void)region;
    return strcasecmp(country, f->taxes[0].country) == 0 ? &f->taxes[0] : NULL;
}

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof *f);
    f->products[0] = (struct product){.id = "BISC-001", .name = "Chocochip Cookies", .price = 399,
                                      .image_url = "https://shop.example/bisc.png", .available = 1};
    f->products[1] = (struct product){.id = "STRAW-001", .name = "Strawberries", .price = 250,
                                      .available = 1};
    f->products[2] = (struct product){.id = "CHIPS-001", .name = "Chips", .price = 199,
                                      .available = 0};
    f->products[3] = (struct product){.id = "NUTRIBAR-001", .name = "Nutri Bar", .price = 100,
                                      .available = 1};
    f->stock[0] = 100;
    f->stock[1] = 3;
    f->stock[2] = 0;
    f->stock[3] = -1; /* not tracked */
    f->rates[0] = (struct shipping_rate){.id = "std-ship", .country = "*",
                                         .service_level = "standard", .title = "Standard Shipping",
                                         .price = 500};
    f->rates[1] = (struct shipping_rate){.id = "exp-ship", .country = "*",
                                         .service_level = "express", .title = "Express Shipping",
                                         .price = 1500};
    f->rates[2] = (struct shipping_rate){.id = "ca-ship", .country = "CA",
                                         .service_level = "standard", .title = "Canada Post",
                                         .price = 800};
    f->discounts[0] = (struct discount){.code = "10OFF", .type = DISCOUNT_PERCENTAGE, .value = 10,
                                        .description = "10% off"};
    f->discounts[1] = (struct discount){.code = "5DOLLARS", .type = DISCOUNT_FIXED_AMOUNT,
                                        .value = 500, .description = "$5 off"};
    f->taxes[0] = (struct tax_rate){.country = "US", .region = "*", .rate_bp = 800};
    const struct payment_handler *h = payment_handler_mock();
    f->handlers = payment_handlers_json(&h, 1);
    return f;
}

static void fake_free(struct fake *f)
{
    json_decref(f->handlers);
    free(f);
}

static struct shop_rules rules_of(struct fake *f)
{
    static const struct checkout_link links[] = {
        {.type = "terms_of_service", .url = "https://shop.example/terms"},
        {.type = "privacy_policy", .url = "https://shop.example/privacy", .title = "Privacy"},
    };
    return (struct shop_rules){.ud = f, .product = f_product, .stock = f_stock,
                               .shipping_rates = f_rates, .shipping_rate = f_rate,
                               .discount = f_discount, .tax_rate = f_tax, .currency = "USD",
                               .now = 1768125600, .continue_url_base =
                                                      "https://shop.example/checkout-sessions",
                               .payment_handlers = f->handlers, .links = links, .n_links = 2};
}

/* The create body UCP's conformance suite sends (integration_test_utils.py). */
static const char *conformance_create =
    "{\"id\": \"6f1c2c1e-client-chosen\", \"currency\": \"USD\","
    " \"line_items\": [{\"item\": {\"id\": \"BISC-001\", \"title\": \"Cookies\"}, \"quantity\": 2}],"
    " \"payment\": {\"instruments\": [], \"selected_instrument_id\": \"instr_1\","
    "   \"handlers\": [{\"id\": \"google_pay\", \"name\": \"google.pay\", \"version\": \"2026-01-11\","
    "     \"spec\": \"https://example.com/spec\", \"config_schema\": \"https://example.com/schema\","
    "     \"instrument_schemas\": [\"https://example.com/instrument_schema\"], \"config\": {}}]},"
    " \"buyer\": {\"full_name\": \"Jane Doe\", \"email\": \"jane@example.com\"},"
    " \"fulfillment\": {\"methods\": [{\"type\": \"shipping\","
    "   \"destinations\": [{\"id\": \"dest_1\", \"address_country\": \"US\"}],"
    "   \"selected_destination_id\": \"dest_1\","
    "   \"groups\": [{\"selected_option_id\": \"std-ship\"}]}]}}";

static struct checkout *create_from(const struct shop_rules *r, const char *json, int want_rc,
                                    struct agentd_error *e)
{
    json_error_t je;
    json_t *req = json_loads(json, 0, &je);
    if (!req)
        print_message("bad test json: %s\n", je.text);
    assert_non_null(req);
    struct checkout *c = NULL;
    int rc = checkout_create(req, r, "chk_1", &c, e);
    if (rc != want_rc)
        print_message("create: rc %d (%s: %s)\n", rc, e->code, e->msg);
    assert_int_equal(rc, want_rc);
    json_decref(req);
    return c;
}

static int has_message(const struct checkout *c, const char *code, const char *path)
{
    for (size_t i = 0; i < c->n_messages; i++)
        if (strcmp(c->messages[i].code, code) == 0 &&
            (!path || (c->messages[i].path && strcmp(c->messages[i].path, path) == 0)))
            return 1;
    return 0;
}

/* A snapshot of everything, to prove failed operations change nothing. */
static char *snapshot(const struct checkout *c)
{
    json_t *j = checkout_to_doc_json(c);
    char *s = json_dumps(j, JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

/* ---- create ---- */

static void test_create_conformance_shape(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    assert_string_equal(c->id, "chk_1"); /* the client's id is not used */
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_int_equal(c->n_messages, 0);
    assert_int_equal(c->n_lines, 1);
    assert_string_equal(c->lines[0].item_id, "BISC-001");
    assert_string_equal(c->lines[0].title, "Chocochip Cookies"); /* catalog wins */
    assert_int_equal(c->lines[0].price, 399);
    assert_int_equal(c->n_methods, 1);
    assert_string_equal(c->methods[0].selected_destination_id, "dest_1");
    assert_int_equal(c->methods[0].n_groups, 1);
    assert_string_equal(c->methods[0].groups[0].selected_option_id, "std-ship");
    assert_int_equal(c->methods[0].groups[0].n_options, 2); /* std + exp for US */
    assert_int_equal(c->totals.subtotal, 798);
    assert_int_equal(c->totals.fulfillment, 500);
    assert_int_equal(c->totals.tax, 64); /* US 8% of 798 = 63.84 -> 64 */
    assert_int_equal(c->totals.total, 798 + 500 + 64);
    /* the shop's handlers, not the client's google_pay */
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(c->payment.handlers, 0), "id")),
        "mock_payment_handler");
    assert_string_equal(c->payment.selected_instrument_id, "instr_1");
    assert_string_equal(c->continue_url, "https://shop.example/checkout-sessions/chk_1");
    assert_int_equal(c->expires_at, 1768125600 + CHECKOUT_DEFAULT_TTL);
    assert_int_equal(c->n_links, 2);
    checkout_free(c);
    fake_free(f);
}

struct status_case {
    const char *name;
    const char *json;
    enum checkout_status want;
    const char *msg_code, *msg_path;
};

static const struct status_case status_cases[] = {
    /* the buyer is optional: what is missing next is the shipping */
    {"no buyer", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}]}",
     CHECKOUT_INCOMPLETE, "missing", "$.fulfillment.methods"},
    {"buyer without email",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"first_name\":"
     "\"J\"}}",
     CHECKOUT_INCOMPLETE, "missing", "$.fulfillment.methods"},
    {"bad email",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"nope\"}}",
     CHECKOUT_INCOMPLETE, "invalid", "$.buyer.email"},
    {"no fulfillment",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a@b.co\"}}",
     CHECKOUT_INCOMPLETE, "missing", "$.fulfillment.methods"},
    {"no destination selected",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a@b.co\"},\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{\"id\":"
     "\"a\",\"address_country\":\"US\"},{\"id\":\"b\",\"address_country\":\"CA\"}]}]}}",
     CHECKOUT_INCOMPLETE, "missing", "$.fulfillment.methods[0].selected_destination_id"},
    {"no option selected (single destination auto-selected)",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a@b.co\"},\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{"
     "\"street_address\":\"1 Main St\",\"address_country\":\"us\"}]}]}}",
     CHECKOUT_INCOMPLETE, "missing", "$.fulfillment.methods[0].groups[0].selected_option_id"},
    {"no items", "{\"line_items\":[],\"buyer\":{\"email\":\"a@b.co\"}}", CHECKOUT_INCOMPLETE,
     "missing", "$.line_items"},
    {"unknown code is a warning only",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a@b.co\"},\"discounts\":{\"codes\":[\"NOPE\"]},\"fulfillment\":{\"methods\":[{"
     "\"destinations\":[{\"id\":\"d\",\"address_country\":\"US\"}],\"groups\":[{"
     "\"selected_option_id\":\"std-ship\"}]}]}}",
     CHECKOUT_READY_FOR_COMPLETE, "discount_code_invalid", "$.discounts.codes[0]"},
    {"ready",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a@b.co\"},\"fulfillment\":{\"methods\":[{\"destinations\":[{\"id\":\"d\","
     "\"address_country\":\"US\"}],\"selected_destination_id\":\"d\",\"groups\":[{"
     "\"selected_option_id\":\"exp-ship\"}]}]}}",
     CHECKOUT_READY_FOR_COMPLETE, NULL, NULL},
};

static void test_status_and_messages(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    for (size_t i = 0; i < N(status_cases); i++) {
        struct agentd_error e;
        print_message("case: %s\n", status_cases[i].name);
        struct checkout *c = create_from(&r, status_cases[i].json, 0, &e);
        assert_int_equal(c->status, status_cases[i].want);
        if (status_cases[i].msg_code)
            assert_true(has_message(c, status_cases[i].msg_code, status_cases[i].msg_path));
        else
            assert_int_equal(c->n_messages, 0);
        for (size_t k = 0; k < c->n_messages; k++)
            if (c->messages[k].type == CHECKOUT_MSG_ERROR)
                assert_int_equal(c->messages[k].severity, CHECKOUT_SEV_RECOVERABLE);
        checkout_free(c);
    }
    /* Shop flags relax what ready needs. */
    r.flags = SHOP_FULFILLMENT_OPTIONAL;
    struct agentd_error e;
    struct checkout *c = create_from(&r, status_cases[0].json, 0, &e);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(c);
    /* No payment handler advertised. */
    r.payment_handlers = NULL;
    c = create_from(&r, status_cases[0].json, 0, &e);
    assert_int_equal(c->status, CHECKOUT_INCOMPLETE);
    assert_true(has_message(c, "missing", "$.payment.handlers"));
    checkout_free(c);
    fake_free(f);
}

struct bad_case {
    const char *name, *json;
    int rc;
    const char *code, *in_msg;
};

static const struct bad_case bad_cases[] = {
    {"unknown product", "{\"line_items\":[{\"item\":{\"id\":\"NOPE-9\"},\"quantity\":1}]}",
     AGENTD_EINVAL, "not_found", "NOPE-9"},
    {"quantity zero", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":0}]}",
     AGENTD_EUNPROCESSABLE, "invalid_quantity", "BISC-001"},
    {"quantity negative", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":-3}]}",
     AGENTD_EUNPROCESSABLE, "invalid_quantity", NULL},
    /* over the line limit and the stock: what is short is the stock */
    {"quantity huge", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":10000}]}",
     AGENTD_EINVAL, "out_of_stock", "Insufficient stock for item BISC-001"},
    {"quantity over the parse limit",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":2147483648}]}",
     AGENTD_EUNPROCESSABLE, "invalid_quantity", NULL},
    {"unknown item text", "{\"line_items\":[{\"item\":{\"id\":\"NOPE-7\"},\"quantity\":1}]}",
     AGENTD_EINVAL, "not_found", "Product NOPE-7 not found"},
    {"quantity missing", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"}}]}", AGENTD_EINVAL,
     "invalid", NULL},
    {"quantity string", "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":\"2\"}]}",
     AGENTD_EINVAL, "invalid", NULL},
    {"no line_items", "{}", AGENTD_EINVAL, "missing", NULL},
    {"not an object", "[]", AGENTD_EMALFORMED, "invalid", NULL},
    {"out of stock (total over lines)",
     "{\"line_items\":[{\"item\":{\"id\":\"STRAW-001\"},\"quantity\":2},{\"item\":{\"id\":"
     "\"STRAW-001\"},\"quantity\":2}]}",
     AGENTD_EINVAL, "out_of_stock", "STRAW-001"},
    {"unavailable product", "{\"line_items\":[{\"item\":{\"id\":\"CHIPS-001\"},\"quantity\":1}]}",
     AGENTD_EINVAL, "out_of_stock", "CHIPS-001"},
    {"unknown shipping option",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"fulfillment\":{"
     "\"methods\":[{\"destinations\":[{\"id\":\"d\",\"address_country\":\"US\"}],\"groups\":[{"
     "\"selected_option_id\":\"warp-speed\"}]}]}}",
     AGENTD_EUNPROCESSABLE, "invalid_option", "warp-speed"},
    {"option not for this country",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"fulfillment\":{"
     "\"methods\":[{\"destinations\":[{\"id\":\"d\",\"address_country\":\"US\"}],\"groups\":[{"
     "\"selected_option_id\":\"ca-ship\"}]}]}}",
     AGENTD_EUNPROCESSABLE, "invalid_option", "ca-ship"},
    {"pickup unsupported",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"fulfillment\":{"
     "\"methods\":[{\"type\":\"pickup\"}]}}",
     AGENTD_EUNPROCESSABLE, "unsupported", NULL},
    {"unknown selected destination",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"fulfillment\":{"
     "\"methods\":[{\"destinations\":[{\"id\":\"d\"}],\"selected_destination_id\":\"x\"}]}}",
     AGENTD_EUNPROCESSABLE, "invalid", NULL},
    {"wrong currency",
     "{\"currency\":\"EUR\",\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}]}",
     AGENTD_EUNPROCESSABLE, "unsupported_currency", NULL},
    {"PAN in instruments",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"payment\":{"
     "\"instruments\":[{\"id\":\"i\",\"handler_id\":\"mock_payment_handler\",\"type\":\"card\","
     "\"number\":\"4242424242424242\"}]}}",
     AGENTD_EINVAL, "invalid_payment", "card number"},
    {"control char in buyer",
     "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{\"email\":"
     "\"a\\u0007@b.co\"}}",
     AGENTD_EINVAL, "invalid", NULL},
    {"too many codes",
     "{\"line_items\":[],\"discounts\":{\"codes\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\","
     "\"i\",\"j\",\"k\"]}}",
     AGENTD_EUNPROCESSABLE, "invalid", NULL},
};

static void test_create_errors(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    for (size_t i = 0; i < N(bad_cases); i++) {
        struct agentd_error e;
        print_message("case: %s\n", bad_cases[i].name);
        struct checkout *c = create_from(&r, bad_cases[i].json, bad_cases[i].rc, &e);
        assert_null(c);
        assert_string_equal(e.code, bad_cases[i].code);
        if (bad_cases[i].in_msg)
            assert_non_null(strstr(e.msg, bad_cases[i].in_msg));
    }
    fake_free(f);
}

/* ---- lifecycle table ---- */

enum op {
    OP_UPDATE, OP_ADD, OP_REMOVE, OP_SET_QTY, OP_BUYER, OP_DEST, OP_SHIP, OP_CODES, OP_CANCEL,
    OP_BEGIN, OP_ABORT, OP_MARK, OP_ESCALATE, OP_UNESCALATE, OP__N
};
static const char *const op_names[] = {"update", "add", "remove", "set_qty", "buyer", "dest",
                                       "ship", "codes", "cancel", "begin", "abort", "mark",
                                       "escalate", "unescalate"};

static struct checkout *in_status(const struct shop_rules *r, enum checkout_status s)
{
    struct agentd_error e;
    struct checkout *c = create_from(r, conformance_create, 0, &e);
    switch (s) {
    case CHECKOUT_INCOMPLETE: {
        struct checkout_buyer b = {.first_name = "Jane", .email = "not-an-address"};
        assert_int_equal(checkout_buyer_set(c, r, &b, &e), 0);
        break;
    }
    case CHECKOUT_REQUIRES_ESCALATION:
        assert_int_equal(checkout_escalate(c, r, "high_value_order", "Review needed",
                                           CHECKOUT_SEV_REQUIRES_BUYER_REVIEW, &e),
                         0);
        break;
    case CHECKOUT_READY_FOR_COMPLETE: break;
    case CHECKOUT_COMPLETE_IN_PROGRESS:
        assert_int_equal(checkout_begin_complete(c, r, -1, &e), 0);
        break;
    case CHECKOUT_COMPLETED:
        assert_int_equal(checkout_begin_complete(c, r, -1, &e), 0);
        assert_int_equal(checkout_mark_completed(c, r, "ord_1", "https://shop.example/o/1", &e), 0);
        break;
    case CHECKOUT_CANCELED: assert_int_equal(checkout_cancel(c, r, &e), 0); break;
    }
    assert_int_equal(c->status, s);
    return c;
}

static int run_op(struct checkout *c, const struct shop_rules *r, enum op op,
                  struct agentd_error *e)
{
    switch (op) {
    case OP_UPDATE: {
        json_t *req = json_loads(conformance_create, 0, NULL);
        json_object_del(req, "id");
        int rc = checkout_update(c, r, req, e);
        json_decref(req);
        return rc;
    }
    case OP_ADD: return checkout_item_add(c, r, "STRAW-001", 1, e);
    case OP_REMOVE: return checkout_item_remove(c, r, "BISC-001", e);
    case OP_SET_QTY: return checkout_item_set_quantity(c, r, "BISC-001", 3, e);
    case OP_BUYER: {
        struct checkout_buyer b = {.email = "j@example.com"};
        return checkout_buyer_set(c, r, &b, e);
    }
    case OP_DEST: {
        struct postal_address a = {.address_country = "US", .postal_code = "62701"};
        return checkout_destination_set(c, r, &a, e);
    }
    case OP_SHIP: return checkout_shipping_select(c, r, "exp-ship", e);
    case OP_CODES: {
        const char *codes[] = {"10OFF"};
        return checkout_discounts_apply(c, r, codes, 1, e);
    }
    case OP_CANCEL: return checkout_cancel(c, r, e);
    case OP_BEGIN: return checkout_begin_complete(c, r, -1, e);
    case OP_ABORT: return checkout_abort_complete(c, r, e);
    case OP_MARK: return checkout_mark_completed(c, r, "ord_9", "https://shop.example/o/9", e);
    case OP_ESCALATE:
        return checkout_escalate(c, r, "schedule", "Pick a window",
                                 CHECKOUT_SEV_REQUIRES_BUYER_INPUT, e);
    case OP_UNESCALATE: return checkout_escalation_clear(c, r, e);
    default: return -1;
    }
}

#define I CHECKOUT_INCOMPLETE
#define X CHECKOUT_REQUIRES_ESCALATION
#define R CHECKOUT_READY_FOR_COMPLETE
#define P CHECKOUT_COMPLETE_IN_PROGRESS
#define D CHECKOUT_COMPLETED
#define C CHECKOUT_CANCELED
#define OK 0
#define CF AGENTD_ECONFLICT
#define UP AGENTD_EUNPROCESSABLE

/* Expected {rc, status after} for each from-status x operation. A failed
 * operation must leave the status (and everything else) unchanged. */
static const struct {
    int rc;
    enum checkout_status to;
} life[6][OP__N] = {
    /* from incomplete (buyer has no email) */
    [I] = {{OK, R}, {OK, I}, {OK, I}, {OK, I}, {OK, R}, {OK, I}, {OK, I}, {OK, I}, {OK, C},
           {UP, I}, {CF, I}, {CF, I}, {OK, X}, {OK, I}},
    /* from requires_escalation (a review error): edits keep it escalated */
    [X] = {{OK, X}, {OK, X}, {OK, X}, {OK, X}, {OK, X}, {OK, X}, {OK, X}, {OK, X}, {OK, C},
           {UP, X}, {CF, X}, {CF, X}, {OK, X}, {OK, R}},
    /* from ready: every edit recomputes (removing the only item -> incomplete,
     * a new address -> option must be chosen again... here std-ship still applies) */
    [R] = {{OK, R}, {OK, R}, {OK, I}, {OK, R}, {OK, R}, {OK, R}, {OK, R}, {OK, R}, {OK, C},
           {OK, P}, {CF, R}, {CF, R}, {OK, X}, {OK, R}},
    /* from complete_in_progress: only abort, mark and cancel */
    [P] = {{CF, P}, {CF, P}, {CF, P}, {CF, P}, {CF, P}, {CF, P}, {CF, P}, {CF, P}, {OK, C},
           {CF, P}, {OK, R}, {OK, D}, {CF, P}, {CF, P}},
    /* terminal: immutable */
    [D] = {{CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D},
           {CF, D}, {CF, D}, {CF, D}, {CF, D}, {CF, D}},
    [C] = {{CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C},
           {CF, C}, {CF, C}, {CF, C}, {CF, C}, {CF, C}},
};

static void test_lifecycle_table(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    for (int s = 0; s < 6; s++) {
        for (int op = 0; op < OP__N; op++) {
            struct checkout *c = in_status(&r, (enum checkout_status)s);
            char *before = snapshot(c);
            struct agentd_error e;
            memset(&e, 0, sizeof e);
            int rc = run_op(c, &r, (enum op)op, &e);
            if (rc != life[s][op].rc || c->status != life[s][op].to)
                print_message("%s x %s: rc %d (%s %s) status %s\n",
                              checkout_status_name((enum checkout_status)s), op_names[op], rc,
                              e.code, e.msg, checkout_status_name(c->status));
            assert_int_equal(rc, life[s][op].rc);
            assert_int_equal(c->status, life[s][op].to);
            if (rc != 0) {
                char *after = snapshot(c);
                assert_string_equal(before, after);
                free(after);
            }
            if (s == D || s == C)
                assert_string_equal(e.code, "not_modifiable");
            free(before);
            checkout_free(c);
        }
    }
    fake_free(f);
}

#undef I
#undef X
#undef R
#undef P
#undef D
#undef C

/* ---- specific behaviours ---- */

static void test_ready_edit_returns_to_incomplete(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    /* A new address in Canada: std-ship is still offered ("*"), ca-ship too. */
    struct postal_address ca = {.id = "home_ca", .address_country = "ca"};
    assert_int_equal(checkout_destination_set(c, &r, &ca, &e), 0);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_int_equal(c->methods[0].groups[0].n_options, 3);
    assert_int_equal(c->totals.tax, 0); /* no CA tax row */
    /* The agent picks ca-ship, then moves back to the US: ca-ship is dropped
     * with a warning and the checkout asks for an option again. */
    assert_int_equal(checkout_shipping_select(c, &r, "ca-ship", &e), 0);
    assert_int_equal(c->totals.fulfillment, 800);
    struct postal_address us = {.id = "dest_1", .address_country = "US"};
    assert_int_equal(checkout_destination_set(c, &r, &us, &e), 0);
    assert_int_equal(c->status, CHECKOUT_INCOMPLETE);
    assert_true(has_message(c, "fulfillment_changed", NULL));
    assert_true(has_message(c, "missing", "$.fulfillment.methods[0].groups[0].selected_option_id"));
    assert_int_equal(c->totals.fulfillment, 0);
    /* Explicitly choosing an option that is not offered is an error. */
    assert_int_equal(checkout_shipping_select(c, &r, "ca-ship", &e), AGENTD_EUNPROCESSABLE);
    assert_non_null(strstr(e.msg, "ca-ship"));
    assert_int_equal(checkout_shipping_select(c, &r, "std-ship", &e), 0);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    checkout_free(c);
    fake_free(f);
}

static void test_put_semantics(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    char *line_id = strdup(c->lines[0].id);
    /* The conformance client's update: id, currency, line_items with ids,
     * payment; buyer and fulfillment omitted -> kept. */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"id\":\"chk_1\",\"currency\":\"USD\",\"line_items\":[{\"id\":\"%s\",\"item\":{"
             "\"id\":\"BISC-001\",\"title\":\"x\"},\"quantity\":3}],\"payment\":{"
             "\"selected_instrument_id\":\"instr_1\",\"instruments\":[]},\"discounts\":{\"codes\":"
             "[\"10off\"]}}",
             line_id);
    json_t *req = json_loads(body, 0, NULL);
    assert_int_equal(checkout_update(c, &r, req, &e), 0);
    json_decref(req);
    assert_string_equal(c->lines[0].id, line_id);
    assert_int_equal(c->lines[0].quantity, 3);
    assert_true(c->has_buyer);
    assert_int_equal(c->n_methods, 1);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_int_equal(c->n_applied, 1);
    assert_int_equal(c->totals.discount, 119); /* 10% of 1197 = 119.7, truncated */
    /* The conformance client's fulfillment step 1: a method without groups
     * and a new address -> the group and its selection are kept. */
    req = json_loads("{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],"
                     "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{"
                     "\"id\":\"dest_default\",\"street_address\":\"123 Default St\","
                     "\"address_locality\":\"City\",\"address_region\":\"State\",\"postal_code\":"
                     "\"12345\",\"address_country\":\"US\"}],\"selected_destination_id\":"
                     "\"dest_default\"}]}}",
                     0, NULL);
    assert_int_equal(checkout_update(c, &r, req, &e), 0);
    json_decref(req);
    assert_string_equal(c->methods[0].selected_destination_id, "dest_default");
    assert_string_equal(c->methods[0].groups[0].selected_option_id, "std-ship");
    assert_int_equal(c->n_codes, 1); /* discounts omitted: kept */
    /* Explicit null clears; empty codes array clears. */
    req = json_loads("{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],"
                     "\"buyer\":null,\"discounts\":{\"codes\":[]}}",
                     0, NULL);
    assert_int_equal(checkout_update(c, &r, req, &e), 0);
    json_decref(req);
    assert_false(c->has_buyer);
    assert_int_equal(c->n_codes, 0);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE); /* the buyer is optional */
    /* Selecting a group option by the server's group id. */
    snprintf(body, sizeof body,
             "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":1}],\"buyer\":{"
             "\"email\":\"a@b.co\"},\"fulfillment\":{\"methods\":[{\"id\":\"%s\",\"groups\":[{"
             "\"id\":\"%s\",\"selected_option_id\":\"exp-ship\"}]}]}}",
             c->methods[0].id, c->methods[0].groups[0].id);
    req = json_loads(body, 0, NULL);
    assert_int_equal(checkout_update(c, &r, req, &e), 0);
    json_decref(req);
    assert_string_equal(c->methods[0].groups[0].selected_option_id, "exp-ship");
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    /* Mismatched id in the body. */
    req = json_loads("{\"id\":\"other\",\"line_items\":[]}", 0, NULL);
    assert_int_equal(checkout_update(c, &r, req, &e), AGENTD_EINVAL);
    json_decref(req);
    free(line_id);
    checkout_free(c);
    fake_free(f);
}

static void test_agent_tools_and_stock(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    assert_int_equal(checkout_item_add(c, &r, "STRAW-001", 2, &e), 0);
    assert_int_equal(c->n_lines, 2);
    assert_int_equal(checkout_item_add(c, &r, "STRAW-001", 1, &e), 0);
    assert_int_equal(c->n_lines, 2);
    assert_int_equal(c->lines[1].quantity, 3);
    /* Stock is 3: one more is refused and nothing changes. */
    char *before = snapshot(c);
    assert_int_equal(checkout_item_add(c, &r, "STRAW-001", 1, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "out_of_stock");
    assert_non_null(strstr(e.msg, "STRAW-001"));
    assert_int_equal(checkout_item_set_quantity(c, &r, "STRAW-001", 4, &e), AGENTD_EINVAL);
    assert_int_equal(checkout_item_add(c, &r, "NOPE", 1, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "not_found");
    assert_int_equal(checkout_item_add(c, &r, "BISC-001", 0, &e), AGENTD_EUNPROCESSABLE);
    assert_int_equal(checkout_item_set_quantity(c, &r, "BISC-001", 10000, &e),
                     AGENTD_EUNPROCESSABLE);
    assert_int_equal(checkout_item_remove(c, &r, "li_404", &e), AGENTD_ENOTFOUND);
    char *after = snapshot(c);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* Untracked stock is unlimited. */
    assert_int_equal(checkout_item_add(c, &r, "NUTRIBAR-001", 9999, &e), 0);
    /* set quantity by line id, 0 removes */
    assert_int_equal(checkout_item_set_quantity(c, &r, c->lines[2].id, 0, &e), 0);
    assert_int_equal(c->n_lines, 2);
    assert_int_equal(checkout_item_remove(c, &r, "STRAW-001", &e), 0);
    assert_int_equal(c->n_lines, 1);
    /* Stock that drops after the cart was built stops completion. */
    f->stock[0] = 1;
    assert_int_equal(checkout_begin_complete(c, &r, -1, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "out_of_stock");
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    /* Discount codes: unknown is a warning, not an error. */
    const char *codes[] = {"nope", "5dollars"};
    assert_int_equal(checkout_discounts_apply(c, &r, codes, 2, &e), 0);
    assert_true(has_message(c, "discount_code_invalid", "$.discounts.codes[0]"));
    assert_int_equal(c->totals.discount, 500);
    checkout_free(c);
    fake_free(f);
}

static void test_complete_flow(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    int64_t seen = c->totals.total;
    /* The price changes in the catalog: completion reports a conflict and
     * the checkout carries the new total. */
    f->products[0].price = 499;
    assert_int_equal(checkout_begin_complete(c, &r, seen, &e), AGENTD_ECONFLICT);
    assert_string_equal(e.code, "total_changed");
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_true(c->totals.total > seen);
    /* The client saw the new total: completion proceeds. */
    assert_int_equal(checkout_begin_complete(c, &r, c->totals.total, &e), 0);
    assert_int_equal(c->status, CHECKOUT_COMPLETE_IN_PROGRESS);
    /* Declined payment: back to ready, nothing else changed. */
    assert_int_equal(checkout_abort_complete(c, &r, &e), 0);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_int_equal(checkout_begin_complete(c, &r, -1, &e), 0);
    assert_int_equal(checkout_mark_completed(c, &r, "", "https://x", &e), AGENTD_EINVAL);
    assert_int_equal(checkout_mark_completed(c, &r, "ord_42", "https://shop.example/orders/ord_42",
                                             &e),
                     0);
    assert_int_equal(c->status, CHECKOUT_COMPLETED);
    assert_string_equal(c->order_id, "ord_42");
    /* Not ready: the first missing thing is reported; no shipping selected
     * is a bad request in the sample merchants' words. */
    struct checkout *d = create_from(&r, status_cases[0].json, 0, &e);
    assert_int_equal(checkout_begin_complete(d, &r, -1, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "missing");
    assert_string_equal(e.path, "$.fulfillment.methods");
    assert_string_equal(e.msg, "Fulfillment address and option must be selected before completion.");
    checkout_free(d);
    /* Another missing thing stays 422 with its own words. */
    d = create_from(&r, status_cases[2].json, 0, &e);
    assert_int_equal(checkout_begin_complete(d, &r, -1, &e), AGENTD_EUNPROCESSABLE);
    assert_string_equal(e.path, "$.buyer.email");
    checkout_free(d);
    checkout_free(c);
    fake_free(f);
}

static void test_clone_and_names(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    const char *codes[] = {"10OFF"};
    assert_int_equal(checkout_discounts_apply(c, &r, codes, 1, &e), 0);
    assert_int_equal(checkout_escalate(c, &r, "x", "y", CHECKOUT_SEV_REQUIRES_BUYER_INPUT, &e), 0);
    struct checkout *k = checkout_clone(c);
    char *a = snapshot(c), *b = snapshot(k);
    assert_string_equal(a, b);
    free(a);
    free(b);
    checkout_free(k);
    checkout_free(c);
    for (int s = 0; s < 6; s++) {
        enum checkout_status back;
        assert_int_equal(checkout_status_parse(checkout_status_name((enum checkout_status)s), &back),
                         0);
        assert_int_equal(back, s);
    }
    enum checkout_status x;
    assert_int_equal(checkout_status_parse("done", &x), AGENTD_EINVAL);
    assert_true(checkout_status_terminal(CHECKOUT_CANCELED));
    assert_false(checkout_status_terminal(CHECKOUT_COMPLETE_IN_PROGRESS));
    /* Bad rules / ids */
    struct checkout *n = NULL;
    json_t *req = json_loads(conformance_create, 0, NULL);
    assert_int_equal(checkout_create(req, &r, "", &n, &e), AGENTD_EINVAL);
    struct shop_rules bad = r;
    bad.currency = "usd";
    assert_int_equal(checkout_create(req, &bad, "chk", &n, &e), AGENTD_EINVAL);
    json_decref(req);
    fake_free(f);
}

/* ---- operation keys (exactly-once tool calls) ---- */

/* The store document as shop.c writes it: doc JSON plus the keys. */
static json_t *doc_with_keys(const struct checkout *c)
{
    json_t *doc = checkout_to_doc_json(c);
    assert_non_null(doc);
    assert_int_equal(checkout_internal_to_doc(c, doc), 0);
    return doc;
}

static struct checkout *load_doc(const json_t *doc)
{
    struct checkout *c = NULL;
    struct agentd_error e = {0};
    assert_int_equal(checkout_from_json(doc, &c, &e), 0);
    assert_int_equal(checkout_internal_from_doc(c, doc, &e), 0);
    return c;
}

static void test_op_keys_doc_round_trip(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    assert_int_equal(c->n_op_keys, 0);
    assert_int_equal(checkout_op_key_add(c, "turn_1/call_a", &e), 0);
    assert_int_equal(checkout_op_key_add(c, "turn_1/call_b", &e), 0);
    assert_int_equal(checkout_op_key_add(c, "turn_1/call_a", &e), 0); /* no duplicate */
    assert_int_equal(c->n_op_keys, 2);
    assert_true(checkout_op_key_has(c, "turn_1/call_a"));
    assert_false(checkout_op_key_has(c, "turn_1/call_c"));
    assert_false(checkout_op_key_has(c, NULL));

    /* in the store document, in order */
    json_t *doc = doc_with_keys(c);
    json_t *keys = json_object_get(json_object_get(doc, "_agentd"), "op_keys");
    assert_true(json_is_array(keys));
    assert_int_equal(json_array_size(keys), 2);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), "turn_1/call_a");
    assert_string_equal(json_string_value(json_array_get(keys, 1)), "turn_1/call_b");
    struct checkout *back = load_doc(doc);
    assert_int_equal(back->n_op_keys, 2);
    assert_string_equal(back->op_keys[0], "turn_1/call_a");
    assert_string_equal(back->op_keys[1], "turn_1/call_b");
    json_t *doc2 = doc_with_keys(back);
    assert_true(json_equal(doc, doc2));
    json_decref(doc2);

    /* never in the UCP JSON */
    json_t *wire = checkout_to_json(c, NULL);
    char *text = json_dumps(wire, 0);
    assert_null(strstr(text, "op_keys"));
    assert_null(strstr(text, "call_a"));
    assert_null(json_object_get(wire, "_agentd"));
    free(text);
    json_decref(wire);

    /* clone keeps them; operations (copy-and-swap) keep them */
    struct checkout *k = checkout_clone(c);
    assert_int_equal(k->n_op_keys, 2);
    assert_string_equal(k->op_keys[1], "turn_1/call_b");
    assert_int_equal(checkout_item_add(k, &r, "BISC-001", 1, &e), 0);
    assert_int_equal(k->n_op_keys, 2);
    assert_true(checkout_op_key_has(k, "turn_1/call_b"));
    checkout_free(k);

    /* a document written before keys existed loads with none */
    json_t *old = checkout_to_doc_json(c);
    assert_null(json_object_get(json_object_get(old, "_agentd"), "op_keys"));
    struct checkout *o = load_doc(old);
    assert_int_equal(o->n_op_keys, 0);
    assert_null(o->op_keys);
    /* and one without keys writes none */
    json_t *od = doc_with_keys(o);
    assert_null(json_object_get(json_object_get(od, "_agentd"), "op_keys"));
    json_decref(od);
    checkout_free(o);
    json_decref(old);

    /* damaged keys are corruption, not silently dropped */
    json_t *bad = json_deep_copy(doc);
    json_object_set_new(json_object_get(bad, "_agentd"), "op_keys", json_string("x"));
    struct checkout *x = checkout_new("chk_x");
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), AGENTD_ECORRUPT);
    json_object_set_new(json_object_get(bad, "_agentd"), "op_keys", json_pack("[s,i]", "a", 1));
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), AGENTD_ECORRUPT);
    assert_int_equal(x->n_op_keys, 0);
    checkout_free(x);
    json_decref(bad);

    json_decref(doc);
    checkout_free(back);
    checkout_free(c);
    fake_free(f);
}

static void test_op_keys_bound_and_limits(void **state)
{
    (void)state;
    struct agentd_error e;
    struct checkout *c = checkout_new("chk_1");
    char key[CHECKOUT_OP_KEY_MAX + 2];
    for (int i = 0; i < CHECKOUT_OP_KEYS_MAX + 8; i++) {
        snprintf(key, sizeof key, "turn/%d", i);
        assert_int_equal(checkout_op_key_add(c, key, &e), 0);
        assert_true(c->n_op_keys <= CHECKOUT_OP_KEYS_MAX);
    }
    /* the last 32 are kept, oldest first */
    assert_int_equal(c->n_op_keys, CHECKOUT_OP_KEYS_MAX);
    assert_false(checkout_op_key_has(c, "turn/0"));
    assert_false(checkout_op_key_has(c, "turn/7"));
    assert_true(checkout_op_key_has(c, "turn/8"));
    assert_string_equal(c->op_keys[0], "turn/8");
    snprintf(key, sizeof key, "turn/%d", CHECKOUT_OP_KEYS_MAX + 7);
    assert_string_equal(c->op_keys[CHECKOUT_OP_KEYS_MAX - 1], key);

    /* 128 bytes is fine, 129 is refused and changes nothing */
    memset(key, 'k', CHECKOUT_OP_KEY_MAX);
    key[CHECKOUT_OP_KEY_MAX] = 0;
    assert_int_equal(checkout_op_key_add(c, key, &e), 0);
    assert_true(checkout_op_key_has(c, key));
    assert_false(checkout_op_key_has(c, "turn/8"));
    key[CHECKOUT_OP_KEY_MAX] = 'k';
    key[CHECKOUT_OP_KEY_MAX + 1] = 0;
    assert_int_equal(checkout_op_key_add(c, key, &e), AGENTD_EINVAL);
    assert_string_equal(e.code, "invalid");
    assert_int_equal(checkout_op_key_add(c, "", &e), AGENTD_EINVAL);
    assert_int_equal(checkout_op_key_add(c, NULL, &e), AGENTD_EINVAL);
    assert_int_equal(checkout_op_key_add(c, "a\nb", &e), AGENTD_EINVAL);
    assert_int_equal(checkout_op_key_add(c, "bad\xff utf8", &e), AGENTD_EINVAL);
    assert_int_equal(checkout_op_key_add(c, "caf\xc3\xa9/\xe2\x82\xac", &e), 0); /* UTF-8 is fine */
    assert_int_equal(c->n_op_keys, CHECKOUT_OP_KEYS_MAX);

    /* a document holding more than the bound keeps the newest */
    json_t *doc = json_pack("{s:{s:[]}}", "_agentd", "op_keys");
    json_t *arr = json_object_get(json_object_get(doc, "_agentd"), "op_keys");
    for (int i = 0; i < CHECKOUT_OP_KEYS_MAX + 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        json_array_append_new(arr, json_string(key));
    }
    assert_int_equal(checkout_internal_from_doc(c, doc, &e), 0);
    assert_int_equal(c->n_op_keys, CHECKOUT_OP_KEYS_MAX);
    assert_string_equal(c->op_keys[0], "k3");
    /* an over-long key in a document is corruption */
    json_array_append_new(arr, json_string(
        "0123456789012345678901234567890123456789012345678901234567890123456789"
        "0123456789012345678901234567890123456789012345678901234567890123456789"));
    assert_int_equal(checkout_internal_from_doc(c, doc, &e), AGENTD_ECORRUPT);
    assert_string_equal(c->op_keys[0], "k3"); /* unchanged */
    json_decref(doc);
    checkout_free(c);
}

/* The completion claim: kept in the store document's internal part (never
 * on the wire), copied by clone, cleared when the checkout leaves
 * complete_in_progress either way. */
static void test_completion_claim(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = in_status(&r, CHECKOUT_COMPLETE_IN_PROGRESS);
    assert_null(c->completing.key);
    assert_int_equal(checkout_claim_set(c, "idem:k1", "host@ns/7/abc", 1700000000, &e), 0);
    /* bad keys and ids are refused and change nothing */
    assert_int_equal(checkout_claim_set(c, "", "host", 1, &e), AGENTD_EINVAL);
    assert_int_equal(checkout_claim_set(c, "k", "a\nb", 1, &e), AGENTD_EINVAL);
    char longby[CHECKOUT_CLAIM_BY_MAX + 2];
    memset(longby, 'h', sizeof longby - 1);
    longby[sizeof longby - 1] = '\0';
    assert_int_equal(checkout_claim_set(c, "k", longby, 1, &e), AGENTD_EINVAL);
    longby[CHECKOUT_CLAIM_BY_MAX] = '\0'; /* a long host name's instance id is fine */
    assert_int_equal(checkout_claim_set(c, "k", longby, 1, &e), 0);
    assert_int_equal(checkout_claim_set(c, "idem:k1", "host@ns/7/abc", 1700000000, &e), 0);
    assert_string_equal(c->completing.key, "idem:k1");
    assert_string_equal(c->completing.by, "host@ns/7/abc");
    assert_int_equal(c->completing.at, 1700000000);

    json_t *doc = doc_with_keys(c);
    json_t *k = json_object_get(json_object_get(doc, "_agentd"), "completing");
    assert_string_equal(json_string_value(json_object_get(k, "key")), "idem:k1");
    assert_string_equal(json_string_value(json_object_get(k, "by")), "host@ns/7/abc");
    assert_int_equal(json_integer_value(json_object_get(k, "at")), 1700000000);
    struct checkout *back = load_doc(doc);
    assert_string_equal(back->completing.key, "idem:k1");
    assert_string_equal(back->completing.by, "host@ns/7/abc");
    assert_int_equal(back->completing.at, 1700000000);
    json_t *wire = checkout_to_json(c, NULL);
    char *text = json_dumps(wire, 0);
    assert_null(strstr(text, "idem:k1"));
    free(text);
    json_decref(wire);

    struct checkout *k2 = checkout_clone(c);
    assert_string_equal(k2->completing.key, "idem:k1");
    assert_int_equal(k2->completing.at, 1700000000);
    /* abort: back to ready, no claim, none in the document */
    assert_int_equal(checkout_abort_complete(k2, &r, &e), 0);
    assert_int_equal(k2->status, CHECKOUT_READY_FOR_COMPLETE);
    assert_null(k2->completing.key);
    assert_null(k2->completing.by);
    json_t *d2 = doc_with_keys(k2);
    assert_null(json_object_get(json_object_get(d2, "_agentd"), "completing"));
    json_decref(d2);
    checkout_free(k2);
    /* completed: no claim either */
    assert_int_equal(checkout_mark_completed(c, &r, "ord_1", "https://shop.example/o/1", &e), 0);
    assert_null(c->completing.key);

    /* a claim without "by" (its process unknown) is fine; a damaged one is
     * corruption */
    json_t *bad = json_deep_copy(doc);
    json_t *in = json_object_get(bad, "_agentd");
    json_object_set_new(in, "completing", json_pack("{s:s,s:i}", "key", "k", "at", 5));
    struct checkout *x = checkout_new("chk_x");
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), 0);
    assert_string_equal(x->completing.key, "k");
    assert_null(x->completing.by);
    json_object_set_new(in, "completing", json_pack("{s:i,s:i}", "key", 1, "at", 5));
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), AGENTD_ECORRUPT);
    json_object_set_new(in, "completing", json_pack("{s:s,s:s}", "key", "k", "at", "x"));
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), AGENTD_ECORRUPT);
    json_object_set_new(in, "completing", json_string("k"));
    assert_int_equal(checkout_internal_from_doc(x, bad, &e), AGENTD_ECORRUPT);
    checkout_free(x);
    json_decref(bad);

    json_decref(doc);
    checkout_free(back);
    checkout_free(c);
    fake_free(f);
}

/* ---- fields_arr_parse: the one "JSON array -> typed array" walk ---- */

static int parse_str_elem(const json_t *j, void *items, size_t i, void *ctx)
{
    (void)ctx;
    const char *s = json_string_value(j);
    if (!s || strcmp(s, "bad") == 0)
        return AGENTD_EINVAL;
    char **slot = (char **)items + i;
    for (size_t k = 0; k < i; k++)
        if (strcmp(((char **)items)[k], s) == 0)
            return AGENTD_EEXIST; /* earlier slots are there to compare with */
    return (*slot = strdup(s)) ? 0 : AGENTD_ENOMEM;
}

static void test_fields_arr_parse(void **state)
{
    (void)state;
    char **items = NULL;
    size_t n = 0;
    json_t *a = json_pack("[s, s]", "x", "y");
    assert_int_equal(fields_arr_parse(&fields_str_shape, a, 2, parse_str_elem, NULL, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[1], "y");
    char **before = items;
    /* over the cap, a failing element, a duplicate: the field is untouched */
    json_t *big = json_pack("[s, s, s]", "a", "b", "c");
    assert_int_equal(fields_arr_parse(&fields_str_shape, big, 2, parse_str_elem, NULL, &items, &n),
                     AGENTD_ETOOLARGE);
    json_t *bad = json_pack("[s, s]", "a", "bad");
    assert_int_equal(fields_arr_parse(&fields_str_shape, bad, 2, parse_str_elem, NULL, &items, &n),
                     AGENTD_EINVAL);
    json_t *dup = json_pack("[s, s]", "a", "a");
    assert_int_equal(fields_arr_parse(&fields_str_shape, dup, 2, parse_str_elem, NULL, &items, &n),
                     AGENTD_EEXIST);
    assert_ptr_equal(items, before);
    assert_int_equal(n, 2);
    /* a new array replaces the old one (freed: the sanitizer build checks) */
    json_t *one = json_pack("[s]", "z");
    assert_int_equal(fields_arr_parse(&fields_str_shape, one, 2, parse_str_elem, NULL, &items, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(items[0], "z");
    /* not an array: empty */
    json_t *obj = json_object();
    assert_int_equal(fields_arr_parse(&fields_str_shape, obj, 2, parse_str_elem, NULL, &items, &n), 0);
    assert_int_equal(n, 0);
    assert_null(items);
    json_decref(a);
    json_decref(big);
    json_decref(bad);
    json_decref(dup);
    json_decref(one);
    json_decref(obj);
}

/* buyer.consent (dev.ucp.shopping.buyer_consent): checked, normalised */
static void test_consent(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want, *path;
    } t[] = {
        {"{\"analytics\":true,\"preferences\":false,\"x\":1,\"marketing_channels\":[{"
         "\"channel\":\"sms\",\"opted_in\":true,\"extra\":2}]}",
         "{\"analytics\": true, \"preferences\": false, \"marketing_channels\": [{\"channel\": "
         "\"sms\", \"opted_in\": true}]}", NULL},
        {"{}", "{}", NULL},
        {"{\"sale_of_data\":null}", "{}", NULL},
        {"[]", NULL, "$.buyer.consent"},
        {"{\"marketing\":1}", NULL, "$.buyer.consent.marketing"},
        {"{\"marketing_channels\":[{\"channel\":\"fax\",\"opted_in\":true}]}", NULL,
         "$.buyer.consent.marketing_channels[0]"},
        {"{\"marketing_channels\":[1,2,3,4,5,6,7,8,9]}", NULL,
         "$.buyer.consent.marketing_channels"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        json_t *in = json_loads(t[i].in, 0, NULL);
        assert_non_null(in);
        json_t *out = NULL;
        struct agentd_error e = {0};
        int rc = checkout_consent_from_json(in, &out, &e);
        if (t[i].want) {
            assert_int_equal(rc, 0);
            char *s = json_dumps(out, 0);
            assert_string_equal(s, t[i].want);
            free(s);
        } else {
            assert_int_equal(rc, AGENTD_EINVAL);
            assert_null(out);
            assert_string_equal(e.path, t[i].path);
        }
        json_decref(out);
        json_decref(in);
    }
}

/* The shop's payment handlers are one shared value: a refresh, a clone, the
 * rendered JSON and a reloaded document all hold references to it (a deep
 * copy each was a good part of a checkout flow's jansson time), and the
 * rendering is unchanged. */
static void test_handlers_shared_not_copied(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    assert_ptr_equal(c->payment.handlers, f->handlers);
    struct checkout *k = checkout_clone(c);
    assert_non_null(k);
    assert_ptr_equal(k->payment.handlers, f->handlers);
    assert_int_equal(checkout_refresh(k, &r, &e), 0);
    assert_ptr_equal(k->payment.handlers, f->handlers);
    json_t *j = checkout_to_json(k, NULL);
    assert_ptr_equal(json_object_get(json_object_get(j, "payment"), "handlers"), f->handlers);
    assert_true(json_equal(json_object_get(json_object_get(j, "payment"), "handlers"),
                           f->handlers));
    json_decref(j);
    json_t *doc = checkout_to_doc_json(k);
    struct checkout *back = NULL;
    assert_int_equal(checkout_from_json(doc, &back, &e), 0);
    assert_true(json_equal(back->payment.handlers, f->handlers));
    checkout_free(back);
    json_decref(doc);
    checkout_free(k);
    checkout_free(c);
    assert_int_equal(f->handlers->refcount, 1); /* every reference given back */
    fake_free(f);
}

/* The stored document keeps one copy of the payment handlers (the wire
 * form's payment.handlers; the sealed _agentd.payment holds only the
 * instruments) and no negotiated ucp block, which nothing reads back: a
 * smaller document to write, seal, store and parse. A document written
 * before, handlers inside _agentd.payment and a ucp block, still loads. */
static void test_doc_keeps_handlers_once(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct shop_rules r = rules_of(f);
    struct agentd_error e;
    struct checkout *c = create_from(&r, conformance_create, 0, &e);
    json_t *doc = checkout_to_doc_json(c);
    assert_null(json_object_get(doc, "ucp"));
    json_t *inner = json_object_get(json_object_get(doc, "_agentd"), "payment");
    assert_non_null(inner);
    assert_null(json_object_get(inner, "handlers"));
    assert_non_null(json_object_get(inner, "instruments"));
    assert_true(json_equal(json_object_get(json_object_get(doc, "payment"), "handlers"),
                           f->handlers));
    struct checkout *back = NULL;
    assert_int_equal(checkout_from_json(doc, &back, &e), 0);
    assert_true(json_equal(back->payment.handlers, f->handlers));
    checkout_free(back);
    /* the older form: handlers in both places, the ucp block */
    json_object_set(inner, "handlers", f->handlers);
    json_object_set_new(json_object_get(doc, "payment"), "handlers", json_array());
    json_object_set_new(doc, "ucp", json_pack("{s:s}", "version", "2026-01-11"));
    back = NULL;
    assert_int_equal(checkout_from_json(doc, &back, &e), 0);
    assert_true(json_equal(back->payment.handlers, f->handlers));
    checkout_free(back);
    json_decref(doc);
    checkout_free(c);
    fake_free(f);
}

/* A refused buyer member names its own path (the destination's members
 * name the destination), and a member read fine leaves no path behind. */
static void test_member_error_paths(void **state)
{
    (void)state;
    const struct {
        const char *json, *path;
    } t[] = {
        {"{\"full_name\":5}", "$.buyer.full_name"},
        {"{\"email\":\"a@b.example\",\"phone_number\":[1]}", "$.buyer.phone_number"},
        {"{\"first_name\":\"A\\u0001\"}", "$.buyer.first_name"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        json_t *j = json_loads(t[i].json, 0, NULL);
        struct checkout_buyer b;
        struct agentd_error e = { 0 };
        assert_int_equal(checkout_buyer_from_json(j, &b, &e), AGENTD_EINVAL);
        assert_string_equal(e.path, t[i].path);
        assert_string_equal(e.code, "invalid");
        assert_non_null(strstr(e.msg, "must be a string of at most"));
        json_decref(j);
    }
    json_t *j = json_loads("{\"full_name\":\"Ann\",\"email\":\"a@b.example\"}", 0, NULL);
    struct checkout_buyer b;
    struct agentd_error e = { 0 };
    assert_int_equal(checkout_buyer_from_json(j, &b, &e), 0);
    assert_string_equal(e.path, "");
    assert_string_equal(b.full_name, "Ann");
    checkout_buyer_clear(&b);
    json_decref(j);
    struct postal_address a;
    j = json_loads("{\"street_address\":7}", 0, NULL);
    assert_int_equal(checkout_address_from_json(j, &a, &e), AGENTD_EINVAL);
    assert_string_equal(e.path, "$.fulfillment");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_arr_parse),
        cmocka_unit_test(test_create_conformance_shape),
        cmocka_unit_test(test_handlers_shared_not_copied),
        cmocka_unit_test(test_doc_keeps_handlers_once),
        cmocka_unit_test(test_status_and_messages),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_lifecycle_table),
        cmocka_unit_test(test_ready_edit_returns_to_incomplete),
        cmocka_unit_test(test_put_semantics),
        cmocka_unit_test(test_agent_tools_and_stock),
        cmocka_unit_test(test_consent), cmocka_unit_test(test_complete_flow),
        cmocka_unit_test(test_clone_and_names),
        cmocka_unit_test(test_op_keys_doc_round_trip),
        cmocka_unit_test(test_op_keys_bound_and_limits),
        cmocka_unit_test(test_completion_claim),
        cmocka_unit_test(test_member_error_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
