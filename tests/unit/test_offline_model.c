/* agent offline_model: the offline model walks the demo conversation step by step
 * (synthetic tool results in the shapes docs/llm.md documents), plus the
 * other intents, error results and the polite fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/offline_model.h"
#include "agent/offline_details.h"
#include "llm/stream.h"

static void add_user(json_t *msgs, const char *text)
{
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user", "content", text));
}

/* Plans once; on a tool call appends the assistant message and the tool
 * result `result_json`, and returns the call's name + args in *args. */
static const char *plan_call(json_t *msgs, json_t **args, char *id, size_t idlen)
{
    static char name[64];
    struct llm_reply r;
    assert_int_equal(offline_model_plan(msgs, &r), 0);
    if (!r.tool_calls) {
        fprintf(stderr, "expected a tool call, got text: %s\n", r.content);
        fail();
    }
    assert_string_equal(r.finish_reason, "tool_calls");
    assert_null(r.content);
    assert_int_equal(json_array_size(r.tool_calls), 1);
    json_t *tc = json_array_get(r.tool_calls, 0);
    json_t *fn = json_object_get(tc, "function");
    snprintf(name, sizeof name, "%s", json_string_value(json_object_get(fn, "name")));
    snprintf(id, idlen, "%s", json_string_value(json_object_get(tc, "id")));
    *args = json_loads(json_string_value(json_object_get(fn, "arguments")), 0, NULL);
    assert_non_null(*args);
    json_array_append_new(msgs, json_pack("{s:s, s:n, s:O}", "role", "assistant", "content",
                                          "tool_calls", r.tool_calls));
    llm_reply_clear(&r);
    return name;
}

static void add_result(json_t *msgs, const char *id, const char *result)
{
    json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "role", "tool", "tool_call_id", id,
                                          "content", result));
}

/* Plans once expecting a text answer; returns it (caller frees). */
static char *plan_text(json_t *msgs)
{
    struct llm_reply r;
    assert_int_equal(offline_model_plan(msgs, &r), 0);
    if (!r.content) {
        char *d = json_dumps(r.tool_calls, 0);
        fprintf(stderr, "expected text, got tool calls: %s\n", d);
        free(d);
        fail();
    }
    assert_null(r.tool_calls);
    assert_string_equal(r.finish_reason, "stop");
    assert_true(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
    char *t = r.content;
    r.content = NULL;
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "assistant", "content", t));
    llm_reply_clear(&r);
    return t;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        fprintf(stderr, "\"%s\" not found in:\n%s\n", needle, hay);
        fail();
    }
}

static const char SEARCH_COOKIES[] =
    "{\"products\":[{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499,\"currency\":\"USD\",\"in_stock\":true},"
    "{\"id\":\"O-COOKIES-001\",\"title\":\"Classic Oat Cookies\",\"price\":599,\"currency\":\"USD\",\"in_stock\":false}],\"total\":2}";
static const char CART_2[] =
    "{\"id\":\"chk_1\",\"currency\":\"USD\",\"line_items\":[{\"id\":\"li_1\",\"item\":{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499},"
    "\"quantity\":2,\"totals\":[{\"type\":\"subtotal\",\"amount\":998}]}],\"totals\":[{\"type\":\"subtotal\",\"amount\":998},{\"type\":\"total\",\"amount\":998}]}";
static const char CART_4[] =
    "{\"id\":\"chk_1\",\"currency\":\"USD\",\"line_items\":[{\"id\":\"li_1\",\"item\":{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499},"
    "\"quantity\":4}],\"totals\":[{\"type\":\"total\",\"amount\":1996}]}";
static const char CART_DETAILS[] =
    "{\"checkout\":{\"id\":\"chk_1\",\"currency\":\"USD\",\"line_items\":[{\"item\":{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499},\"quantity\":4}],"
    "\"totals\":[{\"type\":\"total\",\"amount\":1996}],\"fulfillment\":{\"methods\":[{\"id\":\"m1\",\"type\":\"shipping\",\"groups\":[{\"id\":\"g1\",\"options\":["
    "{\"id\":\"std-ship\",\"title\":\"Standard Shipping (5-7 business days)\",\"totals\":[{\"type\":\"total\",\"amount\":500}]},"
    "{\"id\":\"exp-ship-42\",\"title\":\"Express Shipping (1-2 business days)\",\"totals\":[{\"type\":\"total\",\"amount\":1500}]}]}]}]}}}";
static const char CART_SHIPPED[] =
    "{\"id\":\"chk_1\",\"currency\":\"USD\",\"line_items\":[{\"item\":{\"id\":\"BISC-001\",\"title\":\"Chocolate Chip Cookies\",\"price\":499},\"quantity\":4}],"
    "\"totals\":[{\"type\":\"subtotal\",\"amount\":1996},{\"type\":\"fulfillment\",\"amount\":1500},{\"type\":\"total\",\"amount\":3496}]}";
static const char CART_ORDERED[] =
    "{\"id\":\"chk_1\",\"status\":\"completed\",\"currency\":\"USD\",\"line_items\":[],\"totals\":[{\"type\":\"total\",\"amount\":3496}],"
    "\"order\":{\"id\":\"ORD-777\",\"permalink_url\":\"http://shop/orders/ORD-777\"}}";

/* "add -1 BISC-001" or "add 0 ..." is refused in words, never turned into
 * adding one. */
static void test_add_below_one_refused(void **state)
{
    (void)state;
    static const char *const asks[] = { "add -1 BISC-001", "add 0 BISC-001", "add -3 cookies",
                                        "buy -1 x BISC-001" };
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++) {
        json_t *msgs = json_array();
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", "shop"));
        add_user(msgs, asks[i]);
        char *t = plan_text(msgs);
        if (!t)
            fail_msg("a tool call for \"%s\"", asks[i]);
        assert_contains(t, "at least 1");
        free(t);
        json_decref(msgs);
    }
}

static void test_demo_conversation(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    json_t *args;
    char id[32], *t;
    json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system", "content", "You are a shop assistant."));

    /* 1. show me cookies -> search -> a list with names, ids, prices */
    add_user(msgs, "show me cookies");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "search_shopping_catalog");
    assert_string_equal(id, "call_1");
    assert_string_equal(json_string_value(json_object_get(args, "query")), "cookies");
    json_decref(args);
    add_result(msgs, id, SEARCH_COOKIES);
    t = plan_text(msgs);
    assert_contains(t, "Chocolate Chip Cookies (BISC-001): $4.99");
    assert_contains(t, "Classic Oat Cookies (O-COOKIES-001): $5.99 (out of stock)");
    free(t);

    /* 2. add 2 BISC-001 -> add_to_checkout directly */
    add_user(msgs, "add 2 BISC-001");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "add_to_checkout");
    assert_string_equal(id, "call_2");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "BISC-001");
    assert_int_equal(json_integer_value(json_object_get(args, "quantity")), 2);
    json_decref(args);
    add_result(msgs, id, CART_2);
    t = plan_text(msgs);
    assert_contains(t, "Added 2 x BISC-001");
    assert_contains(t, "2 x Chocolate Chip Cookies (BISC-001): $9.98");
    assert_contains(t, "Total: $9.98");
    free(t);

    /* 3. add 2 chocochip cookies -> search, then add the top hit */
    add_user(msgs, "add 2 chocochip cookies");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "search_shopping_catalog");
    assert_string_equal(id, "call_3");
    assert_string_equal(json_string_value(json_object_get(args, "query")), "chocochip cookies");
    json_decref(args);
    add_result(msgs, id, SEARCH_COOKIES);
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "add_to_checkout");
    assert_string_equal(id, "call_4");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "BISC-001");
    assert_int_equal(json_integer_value(json_object_get(args, "quantity")), 2);
    json_decref(args);
    add_result(msgs, id, CART_4);
    t = plan_text(msgs);
    assert_contains(t, "Total: $19.96");
    free(t);

    /* 4. the address line -> update_customer_details with every field */
    add_user(msgs, "ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "update_customer_details");
    json_t *buyer = json_object_get(args, "buyer"), *addr = json_object_get(args, "address");
    assert_string_equal(json_string_value(json_object_get(buyer, "full_name")), "Jane Doe");
    assert_string_equal(json_string_value(json_object_get(buyer, "email")), "jane@example.com");
    assert_string_equal(json_string_value(json_object_get(addr, "street_address")), "1 Main St");
    assert_string_equal(json_string_value(json_object_get(addr, "address_locality")), "Springfield");
    assert_string_equal(json_string_value(json_object_get(addr, "address_region")), "IL");
    assert_string_equal(json_string_value(json_object_get(addr, "postal_code")), "62701");
    assert_string_equal(json_string_value(json_object_get(addr, "address_country")), "US");
    json_decref(args);
    add_result(msgs, id, CART_DETAILS);
    t = plan_text(msgs);
    assert_contains(t, "shipping to Jane Doe, 1 Main St, Springfield");
    assert_contains(t, "Express Shipping (1-2 business days) (exp-ship-42): $15.00");
    free(t);

    /* 5. express shipping -> the express option id from the last checkout */
    add_user(msgs, "express shipping");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "select_shipping");
    assert_string_equal(json_string_value(json_object_get(args, "option_id")), "exp-ship-42");
    json_decref(args);
    add_result(msgs, id, CART_SHIPPED);
    t = plan_text(msgs);
    assert_contains(t, "Express shipping selected.");
    assert_contains(t, "Total: $34.96");
    free(t);

    /* 6. pay -> complete_checkout (the token is client data) -> the order id */
    add_user(msgs, "pay");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "complete_checkout");
    assert_int_equal(json_object_size(args), 0);
    json_decref(args);
    add_result(msgs, id, CART_ORDERED);
    t = plan_text(msgs);
    assert_contains(t, "Your order ORD-777 is placed");
    assert_contains(t, "$34.96");
    /* order.permalink_url needs a UCP-Agent to open: never printed to a buyer */
    assert_null(strstr(t, "http"));
    assert_null(strstr(t, "/orders/"));
    free(t);
    json_decref(msgs);
}

static void test_cart_remove_update(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    json_t *args;
    char id[32], *t;
    add_user(msgs, "what's in my cart?");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "get_checkout");
    json_decref(args);
    add_result(msgs, id, CART_2);
    t = plan_text(msgs);
    assert_contains(t, "Your cart:");
    free(t);

    add_user(msgs, "remove BISC-001");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "remove_from_checkout");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "BISC-001");
    json_decref(args);
    add_result(msgs, id, "{\"id\":\"chk_1\",\"line_items\":[],\"totals\":[]}");
    t = plan_text(msgs);
    assert_contains(t, "Removed BISC-001");
    assert_contains(t, "Your cart is empty.");
    free(t);

    /* by name: look at the cart first, then remove the matching line */
    add_user(msgs, "remove the chocolate chip cookies");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "get_checkout");
    json_decref(args);
    add_result(msgs, id, CART_2);
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "remove_from_checkout");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "BISC-001");
    json_decref(args);
    add_result(msgs, id, "{\"line_items\":[]}");
    free(plan_text(msgs));

    add_user(msgs, "remove bananas");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "get_checkout");
    json_decref(args);
    add_result(msgs, id, CART_2);
    t = plan_text(msgs);
    assert_contains(t, "I don't see \"bananas\" in your cart");
    free(t);

    add_user(msgs, "change BISC-001 to 5");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "update_checkout");
    assert_int_equal(json_integer_value(json_object_get(args, "quantity")), 5);
    json_decref(args);
    add_result(msgs, id, CART_2);
    free(plan_text(msgs));
    json_decref(msgs);
}

static void test_errors_and_fallbacks(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    json_t *args;
    char id[32], *t;
    /* a tool error is reported, not retried */
    add_user(msgs, "add 3 STRAW-001");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "add_to_checkout");
    json_decref(args);
    add_result(msgs, id, "{\"error\":{\"code\":\"out_of_stock\",\"message\":\"only 1 left\"}}");
    t = plan_text(msgs);
    assert_contains(t, "Sorry, that didn't work: only 1 left");
    free(t);

    /* no prior checkout: express falls back to the demo rate id */
    json_t *m2 = json_array();
    add_user(m2, "express shipping please");
    assert_string_equal(plan_call(m2, &args, id, sizeof id), "select_shipping");
    assert_string_equal(json_string_value(json_object_get(args, "option_id")), "exp-ship");
    json_decref(args);
    json_decref(m2);

    /* an empty search */
    add_user(msgs, "find unicorn steaks");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "search_shopping_catalog");
    assert_string_equal(json_string_value(json_object_get(args, "query")), "unicorn steaks");
    json_decref(args);
    add_result(msgs, id, "{\"products\":[],\"total\":0}");
    t = plan_text(msgs);
    assert_contains(t, "couldn't find anything matching \"unicorn steaks\"");
    free(t);

    /* price cap in minor units, content given as parts */
    json_array_append_new(msgs, json_pack("{s:s, s:[{s:s, s:s}]}", "role", "user", "content", "type", "text",
                                          "text", "show me chips under $3.50"));
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "search_shopping_catalog");
    assert_string_equal(json_string_value(json_object_get(args, "query")), "chips");
    assert_int_equal(json_integer_value(json_object_get(args, "max_price")), 350);
    json_decref(args);
    add_result(msgs, id, "not json at all");
    free(plan_text(msgs));

    /* an incomplete address asks for the rest */
    add_user(msgs, "ship to Jane");
    t = plan_text(msgs);
    assert_contains(t, "I need a name, street, city");
    free(t);

    add_user(msgs, "hello");
    t = plan_text(msgs);
    assert_contains(t, "I can search the catalog");
    free(t);

    add_user(msgs, "could you tell me what the weather will be like in Paris next week");
    t = plan_text(msgs);
    assert_contains(t, "Sorry, I didn't catch that");
    free(t);

    /* no user message at all */
    json_t *empty = json_array();
    t = plan_text(empty);
    assert_contains(t, "Sorry");
    free(t);
    json_decref(empty);
    json_decref(msgs);
}

static void test_product_and_pay_not_ready(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    json_t *args;
    char id[32], *t;
    add_user(msgs, "tell me about nutribar-001");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "get_product");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "NUTRIBAR-001");
    json_decref(args);
    add_result(msgs, id, "{\"id\":\"NUTRIBAR-001\",\"title\":\"Nutri-Bar\",\"price\":\"2.49\",\"currency\":\"USD\",\"description\":\"Oats.\"}");
    t = plan_text(msgs);
    assert_contains(t, "Nutri-Bar (NUTRIBAR-001): $2.49. Oats.");
    free(t);

    add_user(msgs, "pay now");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "complete_checkout");
    json_decref(args);
    add_result(msgs, id, "{\"status\":\"incomplete\",\"line_items\":[],\"messages\":[{\"type\":\"error\",\"content\":\"a shipping address is required\"}]}");
    t = plan_text(msgs);
    assert_contains(t, "not placed yet: a shipping address is required");
    free(t);
    json_decref(msgs);
}

/* free-text buyer details: want is the exact update_customer_details args */
static void expect_details_at(const char *text, const char *want_text, int line)
{
    json_t *got = offline_parse_details(text);
    json_t *want = want_text ? json_loads(want_text, 0, NULL) : NULL;
    if (want_text && !want)
        fail_msg("line %d: bad want JSON", line);
    if ((got || want) && !json_equal(got, want)) {
        char *g = got ? json_dumps(got, JSON_SORT_KEYS) : strdup("NULL");
        fail_msg("line %d: \"%s\"\n got %s\nwant %s", line, text, g, want_text ? want_text : "NULL");
    }
    json_decref(got);
    json_decref(want);
}
#define expect_details(t, w) expect_details_at(t, w, __LINE__)

#define AUSTIN "\"address\":{\"street_address\":\"5 Oak Ave\",\"address_locality\":\"Austin\"," \
               "\"address_region\":\"TX\",\"postal_code\":\"78701\",\"address_country\":\"US\"}"

static void test_free_text_details(void **state)
{
    (void)state;
    /* the sentence */
    expect_details("my email is ann@example.com, ship to Ann Lee, 5 Oak Ave, Austin, TX 78701, US",
                   "{\"buyer\":{\"full_name\":\"Ann Lee\",\"email\":\"ann@example.com\"}," AUSTIN "}");
    /* the demo's, email last */
    expect_details("ship to Jane Doe, 1 Main St, Springfield, IL 62701, US, jane@example.com",
                   "{\"buyer\":{\"full_name\":\"Jane Doe\",\"email\":\"jane@example.com\"},"
                   "\"address\":{\"street_address\":\"1 Main St\",\"address_locality\":\"Springfield\","
                   "\"address_region\":\"IL\",\"postal_code\":\"62701\",\"address_country\":\"US\"}}");
    /* other orders and punctuation */
    expect_details("Ann Lee; 5 Oak Ave; Austin TX 78701; USA. Email: ann@example.com",
                   "{\"buyer\":{\"full_name\":\"Ann Lee\",\"email\":\"ann@example.com\"}," AUSTIN "}");
    expect_details("ship to Ann Lee, 5 Oak Ave, Austin, Texas, 78701, United States and my "
                   "email is ann@example.com.",
                   "{\"buyer\":{\"full_name\":\"Ann Lee\",\"email\":\"ann@example.com\"}," AUSTIN "}");
    expect_details("ann@example.com\nAnn Lee\n5 Oak Ave\nAustin, TX 78701",
                   "{\"buyer\":{\"full_name\":\"Ann Lee\",\"email\":\"ann@example.com\"}," AUSTIN "}");
    expect_details("deliver to 5 Oak Ave, Apt 4, Austin, TX 78701, US please",
                   "{\"address\":{\"street_address\":\"5 Oak Ave\",\"extended_address\":"
                   "\"Apt 4\",\"address_locality\":\"Austin\",\"address_region\":\"TX\","
                   "\"postal_code\":\"78701\",\"address_country\":\"US\"}}");
    expect_details("Ship to John Smith, 350 Fifth Avenue, New York, NY 10118, US, john.smith@mail.example.org",
                   "{\"buyer\":{\"full_name\":\"John Smith\",\"email\":\"john.smith@mail.example.org\"},"
                   "\"address\":{\"street_address\":\"350 Fifth Avenue\",\"address_locality\":\"New York\","
                   "\"address_region\":\"NY\",\"postal_code\":\"10118\",\"address_country\":\"US\"}}");
    expect_details("send to Max Muster, Hauptstraße 5, 10115 Berlin, Germany",
                   "{\"buyer\":{\"full_name\":\"Max Muster\"},\"address\":{\"street_address\":"
                   "\"Hauptstraße 5\",\"address_locality\":\"Berlin\",\"postal_code\":\"10115\","
                   "\"address_country\":\"DE\"}}");
    expect_details("Ship to Sherlock Holmes, 221B Baker Street, London, NW1 6XE, UK",
                   "{\"buyer\":{\"full_name\":\"Sherlock Holmes\"},\"address\":{\"street_address\":"
                   "\"221B Baker Street\",\"address_locality\":\"London\",\"postal_code\":\"NW1 6XE\","
                   "\"address_country\":\"GB\"}}");
    expect_details("ship to Ann Lee at 5 Oak Ave, Austin TX 78701 and my email is ann@example.com",
                   "{\"buyer\":{\"full_name\":\"Ann Lee\",\"email\":\"ann@example.com\"}," AUSTIN "}");
    expect_details("I'm Bob Ray, bob@x.io, 12 Elm Street, Portland, Oregon 97201",
                   "{\"buyer\":{\"full_name\":\"Bob Ray\",\"email\":\"bob@x.io\"},\"address\":"
                   "{\"street_address\":\"12 Elm Street\",\"address_locality\":\"Portland\","
                   "\"address_region\":\"OR\",\"postal_code\":\"97201\",\"address_country\":\"US\"}}");
    /* an email alone, and nothing usable */
    expect_details("my email is ann@example.com", "{\"buyer\":{\"email\":\"ann@example.com\"}}");
    expect_details("email: Ann.Lee+shop@example.co.uk.",
                   "{\"buyer\":{\"email\":\"Ann.Lee+shop@example.co.uk\"}}");
    expect_details("ship to Jane", NULL);
    expect_details("write to me at ann@localhost", NULL);
    assert_true(offline_has_email("mail ann@example.com"));
    assert_false(offline_has_email("cookies @ 5 dollars"));
}

/* the sample client's buttons send JSON texts: the offline model reads them */
static void test_action_texts(void **state)
{
    (void)state;
    json_t *msgs = json_array();
    json_t *args;
    char id[32], *t;
    add_user(msgs, "{\"action\":\"add_to_checkout\",\"product_id\":\"BISC-001\",\"quantity\":1}");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "add_to_checkout");
    assert_string_equal(json_string_value(json_object_get(args, "product_id")), "BISC-001");
    assert_int_equal(json_integer_value(json_object_get(args, "quantity")), 1);
    json_decref(args);
    add_result(msgs, id, CART_2);
    free(plan_text(msgs));

    add_user(msgs, "{\"action\":\"start_payment\"}");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "start_payment");
    json_decref(args);
    add_result(msgs, id, "{\"checkout\":{\"status\":\"incomplete\",\"line_items\":[]},\"ready\":false}");
    t = plan_text(msgs);
    assert_contains(t, "Here is your checkout; provide your email and shipping address to continue.");
    free(t);

    add_user(msgs, "my email is ann@example.com, ship to Ann Lee, 5 Oak Ave, Austin, TX 78701, US");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "update_customer_details");
    json_decref(args);
    add_result(msgs, id, CART_DETAILS);
    t = plan_text(msgs);
    assert_contains(t, "Got it: shipping to Ann Lee, 5 Oak Ave, Austin.");
    free(t);

    add_user(msgs, "{\"action\":\"complete_checkout\"}");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "complete_checkout");
    json_decref(args);
    add_result(msgs, id, CART_ORDERED);
    t = plan_text(msgs);
    assert_contains(t, "Your order ORD-777 is placed");
    free(t);

    /* an action we do not know is not a search for its JSON */
    add_user(msgs, "{\"action\":\"dance\"}");
    t = plan_text(msgs);
    assert_contains(t, "Sorry, I didn't catch that");
    free(t);
    /* an email alone sets the buyer and asks for the address */
    add_user(msgs, "my email is ann@example.com");
    assert_string_equal(plan_call(msgs, &args, id, sizeof id), "update_customer_details");
    json_decref(args);
    add_result(msgs, id, "{\"id\":\"chk_1\",\"buyer\":{\"email\":\"ann@example.com\"},\"line_items\":[]}");
    t = plan_text(msgs);
    assert_contains(t, "Got it: ann@example.com.");
    assert_contains(t, "Now I need the shipping address");
    free(t);
    json_decref(msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_conversation),
        cmocka_unit_test(test_add_below_one_refused),
        cmocka_unit_test(test_cart_remove_update),
        cmocka_unit_test(test_errors_and_fallbacks),
        cmocka_unit_test(test_product_and_pay_not_ready),
        cmocka_unit_test(test_free_text_details),
        cmocka_unit_test(test_action_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
