/* payment: the mock handler's fixed contract, instrument sanitising, PAN
 * refusal in any field, and log redaction that never shows a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "commerce/payment.h"
#include "core/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The instrument UCP's conformance client sends on complete. */
static json_t *conformance_instrument(const char *token)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}}",
                     "id", "instr_1", "handler_id", "mock_payment_handler", "handler_name",
                     "mock_payment_handler", "type", "card", "brand", "Visa", "last_digits",
                     "1234", "credential", "type", "token", "token", token, "billing_address",
                     "street_address", "123 Main St", "address_locality", "Anytown",
                     "address_region", "CA", "address_country", "US", "postal_code", "12345");
}

static void test_mock_tokens(void **state)
{
    (void)state;
    const struct payment_handler *hs[] = {payment_handler_mock()};
    static const struct {
        const char *token;
        enum payment_result want;
    } t[] = {
        {"success_token", PAYMENT_APPROVED},
        {"fail_token", PAYMENT_DECLINED},
        {"SUCCESS_TOKEN", PAYMENT_INVALID},
        {"", PAYMENT_INVALID},
        {"success_token ", PAYMENT_INVALID},
        {"tok_visa_123", PAYMENT_INVALID},
    };
    for (size_t i = 0; i < N(t); i++) {
        json_t *j = conformance_instrument(t[i].token);
        struct payment_instrument pi;
        struct agentd_error err = { 0 };
        char ref[64];
        assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
        enum payment_result res;
        assert_int_equal(payment_authorize(hs, 1, &pi, 1234, "USD", "key-1", &res, ref, sizeof ref,
                                           &err),
                         0);
        assert_int_equal(res, t[i].want);
        if (res == PAYMENT_APPROVED)
            assert_true(ref[0] != 0);
        else
            assert_true(err.msg[0] != 0);
        payment_instrument_clear(&pi);
        json_decref(j);
    }
    /* No token at all. */
    struct payment_instrument pi = {0};
    struct agentd_error err = { 0 };
    json_t *j = json_pack("{s:s, s:s}", "handler_id", "mock_payment_handler", "type", "card");
    assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
    enum payment_result res;
    assert_int_equal(payment_authorize(hs, 1, &pi, 1, "USD", "k", &res, NULL, 0, &err),
                     0);
    assert_int_equal(res, PAYMENT_INVALID);
    payment_instrument_clear(&pi);
    json_decref(j);
    /* Unknown handler id. */
    j = json_pack("{s:s, s:{s:s}}", "handler_id", "google_pay", "credential", "token",
                  "success_token");
    assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
    assert_int_equal(payment_authorize(hs, 1, &pi, 1, "USD", "k", &res, NULL, 0, &err),
                     AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "google_pay"));
    payment_instrument_clear(&pi);
    json_decref(j);
}

/* One idempotency key, one authorization: the same key gives the same
 * reference (a resumed completion is not a second charge); a key is
 * required. */
static void test_authorize_idempotency_key(void **state)
{
    (void)state;
    const struct payment_handler *hs[] = { payment_handler_mock() };
    json_t *j = conformance_instrument("success_token");
    struct payment_instrument pi;
    struct agentd_error err = { 0 };
    char a[64], b[64], c[64];
    enum payment_result res;
    assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "turn_1/3/0/call_9", &res, a,
                                       sizeof a, &err), 0);
    assert_int_equal(res, PAYMENT_APPROVED);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "turn_1/3/0/call_9", &res, b,
                                       sizeof b, &err), 0);
    assert_string_equal(a, b);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "chk_x/v4", &res, c, sizeof c, &err), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", NULL, &res, c, sizeof c, &err), AGENTD_EINVAL);
    assert_int_equal(res, PAYMENT_INVALID);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "", &res, c, sizeof c, &err), AGENTD_EINVAL);
    payment_instrument_clear(&pi);
    json_decref(j);
}

static void test_sanitise(void **state)
{
    (void)state;
    json_t *j = conformance_instrument("success_token");
    json_object_set_new(j, "expiry_month", json_integer(12));
    json_object_set_new(j, "expiry_year", json_integer(2030));
    json_object_set_new(j, "cvc", json_string("123"));
    struct payment_instrument pi;
    struct agentd_error err = { 0 };
    assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
    assert_string_equal(pi.handler_id, "mock_payment_handler");
    assert_string_equal(pi.brand, "Visa");
    assert_string_equal(pi.last_digits, "1234");
    assert_int_equal(pi.expiry_month, 12);
    assert_int_equal(pi.expiry_year, 2030);
    assert_string_equal(pi.token, "success_token");
    json_t *out = payment_instrument_to_json(&pi, 0);
    char *s = json_dumps(out, 0);
    assert_null(strstr(s, "success_token"));
    assert_null(strstr(s, "cvc"));
    assert_null(strstr(s, "billing_address")); /* dropped: not needed to charge a token */
    assert_non_null(strstr(s, "\"last_digits\": \"1234\""));
    free(s);
    json_decref(out);
    out = payment_instrument_to_json(&pi, 1);
    s = json_dumps(out, 0);
    assert_non_null(strstr(s, "success_token"));
    free(s);
    json_decref(out);
    struct payment_instrument copy;
    assert_int_equal(payment_instrument_copy(&copy, &pi), 0);
    assert_string_equal(copy.token, "success_token");
    payment_instrument_clear(&copy);
    payment_instrument_clear(&pi);
    json_decref(j);

    /* Shape errors. */
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"handler_id\": 5}",
        "{\"handler_id\": \"\"}",
        "{\"handler_id\": \"h\", \"last_digits\": \"12345\"}",
        "{\"handler_id\": \"h\", \"last_digits\": \"12ab\"}",
        "{\"handler_id\": \"h\", \"expiry_month\": 13}",
        "{\"handler_id\": \"h\", \"credential\": \"tok\"}",
        "{\"handler_id\": \"h\", \"brand\": \"a\\u0001b\"}",
    };
    for (size_t i = 0; i < N(bad); i++) {
        json_t *b = json_loads(bad[i], 0, NULL);
        assert_non_null(b);
        assert_int_equal(payment_instrument_parse(b, &pi, &err), AGENTD_EINVAL);
        assert_true(err.msg[0] != 0);
        json_decref(b);
    }
}

static void test_pan_refused(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int refused;
    } t[] = {
        {"{\"handler_id\":\"h\",\"credential\":{\"token\":\"4111111111111111\"}}", 1},
        {"{\"handler_id\":\"h\",\"number\":\"4111 1111 1111 1111\"}", 1},
        {"{\"handler_id\":\"h\",\"number\":\"4111-1111-1111-1111\"}", 1},
        {"{\"handler_id\":\"h\",\"number\":4111111111111111}", 1},
        {"{\"handler_id\":\"h\",\"number\":\"4111111111111112\"}", 1}, /* Luhn-invalid */
        {"{\"handler_id\":\"h\",\"amex\":\"378282246310005\"}", 1},   /* 15 digits */
        {"{\"handler_id\":\"h\",\"x\":\"6011000990139424123\"}", 1},  /* 19 digits */
        {"{\"handler_id\":\"h\",\"x\":\"4222222222222\"}", 1},        /* 13 digits */
        {"{\"handler_id\":\"h\",\"billing_address\":{\"street_address\":\"card 5555555555554444\"}}",
         1},
        {"{\"handler_id\":\"h\",\"list\":[\"a\",[\"5105105105105100\"]]}", 1},
        {"{\"handler_id\":\"h\",\"4111111111111111\":\"key\"}", 1},
        {"{\"handler_id\":\"4111111111111111\"}", 1},
        {"{\"handler_id\":\"h\",\"phone\":\"+1 217 555 0100\"}", 0},  /* 11 digits */
        {"{\"handler_id\":\"h\",\"x\":\"411111111111\"}", 0},         /* 12 digits */
        {"{\"handler_id\":\"h\",\"merchant\":\"01234567890123456789\"}", 0}, /* 20: an id */
        {"{\"handler_id\":\"h\",\"credential\":{\"token\":\"success_token\"}}", 0},
        {"{\"handler_id\":\"h\",\"x\":\"4111 11 1111\"}", 0},
        {"{\"handler_id\":\"h\",\"x\":\"2026-01-11 10:00\"}", 0},
        /* opaque tokens are not cards: the sample client's mock_token_<uuid>,
         * whose digits and dashes once looked like a 13+ digit run */
        {"{\"handler_id\":\"h\",\"credential\":{\"token\":\"mock_token_12345678-1234-5678-9abc-def012345678\"}}", 0},
        {"{\"handler_id\":\"h\",\"credential\":{\"token\":\"mock_token_12345678-1234-5678-a123-456789012345\"}}", 0},
        {"{\"handler_id\":\"h\",\"t\":\"ab4111111111111111\"}", 0},
        {"{\"handler_id\":\"h\",\"t\":\"tok_4111111111111111\"}", 1},
        {"{\"handler_id\":\"h\",\"x\":\"4111-1111-1111-1111-123\"}", 1},
        {"{\"handler_id\":\"h\",\"x\":\"3782 822463 10005\"}", 1},
        {"{\"handler_id\":\"h\",\"x\":\"(4111111111111111)\"}", 1},
    };
    for (size_t i = 0; i < N(t); i++) {
        json_t *j = json_loads(t[i].json, 0, NULL);
        assert_non_null(j);
        char path[64];
        struct agentd_error err = { 0 };
        int rc = payment_find_pan(j, path, sizeof path);
        assert_int_equal(rc, t[i].refused ? AGENTD_EINVAL : 0);
        struct payment_instrument pi;
        rc = payment_instrument_parse(j, &pi, &err);
        if (t[i].refused) {
            assert_int_equal(rc, AGENTD_EINVAL);
            assert_non_null(strstr(err.msg, "card number"));
            assert_null(strstr(err.msg, "4111111111111111")); /* never echo it */
        } else {
            assert_int_equal(rc, 0);
            payment_instrument_clear(&pi);
        }
        json_decref(j);
    }
    json_t *j = json_loads("{\"a\":{\"b\":[0,\"4111111111111111\"]}}", 0, NULL);
    char path[64];
    assert_int_equal(payment_find_pan(j, path, sizeof path), AGENTD_EINVAL);
    assert_string_equal(path, "$.a.b[1]");
    json_decref(j);
}

/* The path to what looks like a card: keys, array indexes past 9, a key
 * that is itself card-like (redacted), integers of every sign and size, and
 * a path buffer too small (cut as snprintf cuts). */
static void test_pan_paths(void **state)
{
    (void)state;
    const struct {
        const char *json;
        size_t pathlen;
        int refused;
        const char *path;
    } t[] = {
        {"{\"a\":{\"bb\":[0,1,2,3,4,5,6,7,8,9,10,\"4111111111111111\"]}}", 64, 1, "$.a.bb[11]"},
        {"{\"x\":{\"4111111111111111\":1}}", 64, 1, "$.x.[redacted]"},
        {"{\"abcdefghij\":{\"k\":\"4111111111111111\"}}", 8, 1, "$.abcde"},
        {"{\"a\":[[\"4111111111111111\"]]}", 5, 1, "$.a["},
        {"{\"n\":4111111111111111}", 64, 1, "$.n"},
        {"{\"n\":-4111111111111111}", 64, 1, "$.n"},
        {"{\"m\":[411111111111,-411111111111,-1,0,7]}", 64, 0, "$"},
        {"{\"m\":[1,9223372036854775807]}", 64, 1, "$.m[1]"},
        {"{\"m\":[-9223372036854775808]}", 64, 1, "$.m[0]"},
        {"{\"m\":[1,2],\"n\":{\"o\":-4222222222222}}", 64, 1, "$.n.o"},
        {"{\"f\":4111111111111111.0}", 64, 1, "$.f"},
    };
    for (size_t i = 0; i < N(t); i++) {
        json_t *j = json_loads(t[i].json, 0, NULL);
        assert_non_null(j);
        char path[64];
        memset(path, 'Z', sizeof path);
        int rc = payment_find_pan(j, path, t[i].pathlen);
        if (rc != (t[i].refused ? AGENTD_EINVAL : 0) || strcmp(path, t[i].path) != 0)
            fail_msg("case %zu: rc %d path %s", i, rc, path);
        assert_string_equal(path, t[i].path);
        json_decref(j);
    }
}

static void test_redaction(void **state)
{
    (void)state;
    json_t *j = conformance_instrument("success_token");
    json_object_set_new(j, "cvc", json_string("999"));
    json_object_set_new(j, "note", json_string("pan 4111111111111111"));
    json_t *r = payment_data_redacted_json(j);
    char *s = json_dumps(r, JSON_SORT_KEYS);
    assert_null(strstr(s, "success_token"));
    assert_null(strstr(s, "999"));
    assert_null(strstr(s, "4111111111111111"));
    assert_non_null(strstr(s, "\"handler_id\": \"mock_payment_handler\""));
    assert_non_null(strstr(s, "\"credential\": {\"type\": \"token\"}"));
    assert_non_null(strstr(s, "\"last_digits\": \"1234\""));
    free(s);
    json_decref(r);
    /* Tokens anywhere, even outside credential. */
    json_t *k = json_pack("{s:{s:s}, s:[{s:s}]}", "payment_data", "token", "fail_token", "more",
                          "token", "success_token");
    r = payment_data_redacted_json(k);
    s = json_dumps(r, 0);
    assert_null(strstr(s, "fail_token"));
    assert_null(strstr(s, "success_token"));
    free(s);
    json_decref(r);
    json_decref(k);
    json_decref(j);
    r = payment_data_redacted_json(NULL);
    assert_true(json_is_null(r));
    json_decref(r);
}

static void test_advertisement(void **state)
{
    (void)state;
    const struct payment_handler *h = payment_handler_mock();
    assert_string_equal(h->id, "mock_payment_handler");
    json_t *j = payment_handler_to_json(h);
    assert_non_null(j);
    static const char *const required[] = {"id", "name", "version", "spec", "config_schema",
                                           "instrument_schemas", "config"};
    for (size_t i = 0; i < N(required); i++)
        assert_non_null(json_object_get(j, required[i]));
    assert_string_equal(json_string_value(json_object_get(j, "id")), "mock_payment_handler");
    assert_string_equal(json_string_value(json_object_get(j, "version")), "2026-01-11");
    assert_true(json_is_object(json_object_get(j, "config")));
    assert_true(json_array_size(json_object_get(j, "instrument_schemas")) >= 1);
    json_decref(j);
    const struct payment_handler *hs[] = {h, h};
    j = payment_handlers_json(hs, 2);
    assert_int_equal(json_array_size(j), 2);
    json_decref(j);
    struct payment_handler badcfg = *h;
    badcfg.config_json = "[1,2]";
    assert_null(payment_handler_to_json(&badcfg));
}

/* The sample client's tokens are mock_token_<random UUID>: none may be
 * taken for a card number (2 % of them once were). */
static void test_uuid_tokens_are_not_cards(void **state)
{
    (void)state;
    srand(12345);
    for (int i = 0; i < 50000; i++) {
        char tok[64] = "mock_token_";
        char *p = tok + strlen(tok);
        for (int k = 0; k < 36; k++)
            *p++ = (k == 8 || k == 13 || k == 18 || k == 23) ? '-' : "0123456789abcdef"[rand() % 16];
        *p = 0;
        json_t *j = json_pack("{s:s,s:{s:s,s:s}}", "handler_id", "example_payment_provider",
                              "credential", "type", "token", "token", tok);
        char path[64];
        if (payment_find_pan(j, path, sizeof path) != 0)
            fail_msg("%s taken for a card number", tok);
        json_decref(j);
    }
}

/* example_payment_provider: the sample merchant's handler in test mode —
 * any token approves but fail_token; the advertisement the client reads. */
static void test_example_handler(void **state)
{
    (void)state;
    struct payment_handler ex;
    assert_int_equal(payment_handler_example(&ex, "1234567890"), 0);
    assert_true(ex.test_mode);
    assert_true(payment_handler_mock()->test_mode);
    const struct payment_handler *hs[] = { payment_handler_mock(), &ex };
    static const struct {
        const char *token;
        enum payment_result want;
    } t[] = {
        { "mock_token_6f1e9a52-2b1c-4c43-9f7a-3f0a1d2e4b5c", PAYMENT_APPROVED },
        { "success_token", PAYMENT_APPROVED },
        { "fail_token", PAYMENT_DECLINED },
        { "", PAYMENT_INVALID },
    };
    for (size_t i = 0; i < N(t); i++) {
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:{s:s,s:s}}", "id", "instr_1",
                              "type", "card", "brand", "amex", "last_digits", "1111",
                              "handler_id", "example_payment_provider", "expiry_month", 12,
                              "expiry_year", 2026, "handler_name", "example.payment.provider",
                              "credential", "type", "token", "token", t[i].token);
        struct payment_instrument pi;
        struct agentd_error err = { 0 };
        char ref[64];
        assert_int_equal(payment_instrument_parse(j, &pi, &err), 0);
        enum payment_result res;
        assert_int_equal(payment_authorize(hs, 2, &pi, 1234, "USD", "key-1", &res, ref,
                                           sizeof ref, &err),
                         0);
        assert_int_equal(res, t[i].want);
        if (res == PAYMENT_APPROVED)
            assert_non_null(strstr(ref, "example_auth_"));
        payment_instrument_clear(&pi);
        json_decref(j);
    }
    json_t *adv = payment_handler_to_json(&ex);
    json_error_t je;
    json_t *want = json_loads(
        "{\"id\":\"example_payment_provider\",\"name\":\"example.payment.provider\","
        "\"version\":\"2026-01-11\",\"spec\":\"https://pay.provider.example/specs/handlers/"
        "payments\",\"config_schema\":\"https://pay.provider.example/specs/handlers/config.json\","
        "\"instrument_schemas\":[\"https://ucp.dev/schemas/shopping/types/"
        "card_payment_instrument.json\"],\"config\":{\"business_id\":\"1234567890\"}}",
        0, &je);
    assert_true(json_equal(adv, want));
    json_decref(adv);
    json_decref(want);
    payment_handler_example_clear(&ex);
    assert_null(ex.config_json);
    assert_int_equal(payment_handler_example(&ex, ""), AGENTD_EINVAL);
    assert_int_equal(payment_handler_example(&ex, NULL), AGENTD_EINVAL);
    assert_int_equal(payment_handler_example(&ex, "a\x01b"), AGENTD_EINVAL);
}


/* ---- test cards ---- */

static void test_card_luhn_and_brand(void **state)
{
    (void)state;
    static const struct {
        const char *n;
        int luhn;
        const char *brand;
    } t[] = {
        {"4242424242424242", 1, "visa"},       {"4000000000000002", 1, "visa"},
        {"5555555555554444", 1, "mastercard"}, {"2223003122003222", 1, "mastercard"},
        {"378282246310005", 1, "amex"},        {"6011111111111117", 1, "discover"},
        {"3566002020360505", 1, "jcb"},        {"30569309025904", 1, "diners"},
        {"6200000000000005", 1, "unionpay"},   {"4242424242424241", 0, "visa"},
        {"1234567890123", 0, "unknown"},       {"42424242424", 0, "visa"},
        {"42424242424242424242", 0, "visa"},   {"4242-4242-4242-4242", 0, "unknown"},
        {"", 0, "unknown"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (payment_card_luhn_ok(t[i].n) != t[i].luhn ||
            strcmp(payment_card_brand(t[i].n), t[i].brand) != 0)
            fail_msg("%s: luhn %d brand %s", t[i].n, payment_card_luhn_ok(t[i].n),
                     payment_card_brand(t[i].n));
    }
    assert_int_equal(payment_card_luhn_ok(NULL), 0);
}

static struct payment_instrument card(const char *cred_json, int want_rc, const char *why)
{
    char buf[512];
    snprintf(buf, sizeof buf, "{\"id\":\"i1\",\"handler_id\":\"mock_payment_handler\","
                              "\"type\":\"card\",\"brand\":\"amex\",\"last_digits\":\"0000\","
                              "\"credential\":%s}", cred_json);
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    struct payment_instrument pi;
    struct agentd_error e = {0};
    int rc = payment_instrument_parse(j, &pi, &e);
    if (rc != want_rc || (why && !strstr(e.msg, why)))
        fail_msg("%s -> %d '%s'", cred_json, rc, e.msg);
    assert_null(strstr(e.msg, "4242424242424242"));
    json_decref(j);
    return pi;
}

static void test_card_credentials(void **state)
{
    (void)state;
    struct payment_instrument pi = card(
        "{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242424242424242\","
        "\"expiry_month\":12,\"expiry_year\":2030,\"cvc\":\"123\"}", 0, NULL);
    assert_string_equal(pi.brand, "visa");        /* the number's, not the client's */
    assert_string_equal(pi.last_digits, "4242");
    assert_string_equal(pi.credential_type, "card");
    assert_string_equal(pi.token, PAYMENT_CARD_TOKEN_APPROVE);
    assert_int_equal(pi.expiry_month, 12);
    assert_int_equal(pi.expiry_year, 2030);
    /* nothing kept anywhere holds the number or the cvc */
    json_t *back = payment_instrument_to_json(&pi, 1);
    char *s = json_dumps(back, 0);
    assert_null(strstr(s, "42424242"));
    assert_null(strstr(s, "123"));
    free(s);
    json_decref(back);
    enum payment_result res;
    char ref[64];
    struct agentd_error e;
    const struct payment_handler *hs[] = {payment_handler_mock()};
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "k1", &res, ref, sizeof ref, &e), 0);
    assert_int_equal(res, PAYMENT_APPROVED);
    payment_instrument_clear(&pi);
    pi = card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4000000000000002\"}",
              0, NULL);
    assert_string_equal(pi.token, PAYMENT_CARD_TOKEN_DECLINE);
    assert_int_equal(payment_authorize(hs, 1, &pi, 500, "USD", "k2", &res, ref, sizeof ref, &e), 0);
    assert_int_equal(res, PAYMENT_DECLINED);
    payment_instrument_clear(&pi);
    /* refused: not Luhn, not digits, bad cvc or expiry, no number */
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242424242424241\"}",
         AGENTD_EINVAL, "Luhn");
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242 4242 4242 4242\"}",
         AGENTD_EINVAL, "digits only");
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242424242424242\","
         "\"cvc\":\"12\"}", AGENTD_EINVAL, "cvc");
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242424242424242\","
         "\"expiry_month\":13}", AGENTD_EINVAL, "expiry_month");
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\"}", AGENTD_EINVAL, "number");
    /* a PAN elsewhere in a test card instrument is still refused */
    card("{\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":\"4242424242424242\","
         "\"name\":\"4111111111111111\"}", AGENTD_EINVAL, "card number");
    /* without card_number_type, or for another handler: refused as before */
    card("{\"type\":\"card\",\"number\":\"4242424242424242\"}", AGENTD_EINVAL, "card number");
    json_t *j = json_loads("{\"handler_id\":\"example_payment_provider\",\"credential\":{"
                           "\"type\":\"card\",\"card_number_type\":\"fpan\",\"number\":"
                           "\"4242424242424242\"}}", 0, NULL);
    assert_int_equal(payment_instrument_parse(j, &pi, &e), AGENTD_EINVAL);
    assert_int_equal(payment_card_credential(j), 0);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mock_tokens), cmocka_unit_test(test_sanitise),
        cmocka_unit_test(test_pan_refused), cmocka_unit_test(test_redaction),
        cmocka_unit_test(test_advertisement), cmocka_unit_test(test_authorize_idempotency_key),
        cmocka_unit_test(test_example_handler),
        cmocka_unit_test(test_card_luhn_and_brand), cmocka_unit_test(test_card_credentials),
        cmocka_unit_test(test_uuid_tokens_are_not_cards), cmocka_unit_test(test_pan_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
