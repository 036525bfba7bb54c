/* ucp: UCP-Agent dictionary parsing (valid and hostile), versions,
 * capability negotiation, checkout JSON shape and store round trip, order. */
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
#include "commerce/payment.h"
#include "commerce/order.h"
#include "commerce/ucp.h"
#include "core/clock.h"
#include "core/err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- UCP-Agent ---- */

static void test_agent_valid(void **state)
{
    (void)state;
    static const struct {
        const char *h;
        unsigned flags;
        const char *profile, *version;
    } t[] = {
        {"profile=\"https://agent.example/profiles/shopping-agent.json\"", 0,
         "https://agent.example/profiles/shopping-agent.json", ""},
        {"profile=\"https://a.example/p\", version=\"2026-01-11\"", 0, "https://a.example/p",
         "2026-01-11"},
        {"version=\"2025-12-01\",profile=\"https://a.example/p\"", 0, "https://a.example/p",
         "2025-12-01"},
        {"  profile=\"https://a.example/p\"\t ,\t other=?1  ", 0, "https://a.example/p", ""},
        {"profile=\"https://a.example/p\", n=42, d=4.5, t=tok/en:x, b=:aGVsbG8=:, flag", 0,
         "https://a.example/p", ""},
        {"note=\"a \\\"q\\\" \\\\ b\", profile=\"https://a.example/p?x=1#f\"", 0,
         "https://a.example/p?x=1#f", ""},
        {"profile=\"https://[::1]:8443/p\"", 0, "https://[::1]:8443/p", ""},
        {"profile=\"http://localhost:8285/profiles/shopping-agent.json\"", UCP_AGENT_ALLOW_HTTP,
         "http://localhost:8285/profiles/shopping-agent.json", ""},
        /* the form platforms send: parameters on the profile member */
        {"profile=\"https://a.example/p\"; version=\"2026-01-11\"", 0, "https://a.example/p",
         "2026-01-11"},
        {"profile=\"https://a.example/p\";version=\"2025-12-01\";x=1;flag", 0,
         "https://a.example/p", "2025-12-01"},
        /* unknown parameters are ignored, on any member */
        {"profile=\"https://a.example/p\";q=1, other=2;a=\"b\"", 0, "https://a.example/p", ""},
        /* a separate version member wins over a parameter */
        {"profile=\"https://a.example/p\";version=\"2025-01-01\", version=\"2026-01-11\"", 0,
         "https://a.example/p", "2026-01-11"},
    };
    for (size_t i = 0; i < N(t); i++) {
        struct ucp_agent a;
        struct agentd_error err = { 0 };
        int rc = ucp_agent_parse(t[i].h, t[i].flags, &a, &err);
        if (rc)
            print_message("%s -> %s\n", t[i].h, err.msg);
        assert_int_equal(rc, 0);
        assert_string_equal(a.profile, t[i].profile);
        assert_string_equal(a.version, t[i].version);
    }
}

static void test_agent_hostile(void **state)
{
    (void)state;
    static const struct {
        const char *h;
        const char *reason;
    } t[] = {
        {"", "empty"},
        {"   ", "empty"},
        {"profile=\"https://a.example/p", "unterminated"},
        {"profile=\"https://a.example/\\p\"", "bad escape"},
        {"profile=\"https://a.example/p\\", "unterminated"},
        {"profile=\"https://a.example/p\", profile=\"https://b.example/p\"", "duplicate"},
        {"profile=\"https://a.example/p\";", "parameter key"},
        {"profile=\"https://a.example/p\";Q=1", "parameter key"},
        {"profile=\"https://a.example/p\"; version=2026", "quoted string"},
        {"profile=\"https://a.example/p\"; version=\"2026-13-01\"", "YYYY-MM-DD"},
        {"profile=\"https://a.example/p\";q=\"x", "unterminated"},
        {"profile=(\"https://a.example/p\")", "inner lists"},
        {"profile=https://a.example/p", "quoted string"},  /* a token, not a string */
        {"profile=\"ftp://a.example/p\"", "https"},
        {"profile=\"http://a.example/p\"", "https"},       /* http refused without the flag */
        {"profile=\"https://\"", "https"},
        {"profile=\"https://user@evil.example/p\"", "https"},
        {"profile=\"https://a example/p\"", "https"},
        {"profile=\"https://a.example/p?x=\\\"q\\\"\"", "https"},
        {"Profile=\"https://a.example/p\"", "lowercase key"},
        {"profile=\"https://a.example/p\",", "trailing comma"},
        {"profile=\"https://a.example/p\" x=1", "expected ','"},
        {"profile=\"https://a.example/\xc3\xa9\"", "non-ASCII"},
        {"profile=\"https://a.example/p\"\r\nX-Evil: 1", "control"},
        {"profile=\"https://a.example/p\x01\"", "control"},
        {"version=\"2026-01-11\"", "required"},
        {"profile=\"https://a.example/p\", version=\"2026-13-01\"", "YYYY-MM-DD"},
        {"profile=\"https://a.example/p\", version=2026", "quoted string"},
        {"profile=\"https://a.example/p\", n=1234567890123456", "bad number"},
        {"profile=\"https://a.example/p\", b=:abc", "byte sequence"},
        {"profile=\"https://a.example/p\", q=?2", "boolean"},
        {"profile=\"https://a.example/p\", =1", "lowercase key"},
        {"profile=\"https://a.example/p\", k=@", "invalid value"},
        {"profile", "quoted string"},
        {",profile=\"https://a.example/p\"", "lowercase key"},
        /* not a dictionary; and the same as a second field line, which
         * the fronts join to the first with ", " (RFC 9110 5.3) */
        {"not a header", "expected ','"},
        {"profile=\"https://a.example/p\", not a header", "expected ','"},
    };
    for (size_t i = 0; i < N(t); i++) {
        struct ucp_agent a;
        struct agentd_error err = { 0 };
        int rc = ucp_agent_parse(t[i].h, 0, &a, &err);
        if (rc != AGENTD_EINVAL || !strstr(err.msg, t[i].reason))
            print_message("case %zu [%s] -> rc %d, '%s'\n", i, t[i].h, rc, err.msg);
        assert_int_equal(rc, AGENTD_EINVAL);
        assert_non_null(strstr(err.msg, t[i].reason));
        assert_string_equal(a.profile, ""); /* nothing half-parsed escapes */
    }
    /* NULL and huge inputs. */
    struct ucp_agent a;
    struct agentd_error err = { 0 };
    assert_int_equal(ucp_agent_parse(NULL, 0, &a, &err), AGENTD_EINVAL);
    size_t big = 1 << 20;
    char *h = malloc(big + 1);
    memset(h, 'a', big);
    h[big] = 0;
    memcpy(h, "profile=\"https://a.example/", 27);
    assert_int_equal(ucp_agent_parse(h, 0, &a, &err), AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "longer"));
    /* A long URL inside the header limit but over the profile limit. */
    memset(h, 'a', 2000);
    memcpy(h, "profile=\"https://a.example/", 27);
    h[1999] = '"';
    h[2000] = 0;
    assert_int_equal(ucp_agent_parse(h, 0, &a, &err), AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "too long"));
    /* Many members. */
    char many[UCP_AGENT_HEADER_MAX];
    size_t n = (size_t)snprintf(many, sizeof many, "profile=\"https://a.example/p\"");
    for (int i = 0; i < 40 && n + 8 < sizeof many; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, ",k%d=1", i);
    assert_int_equal(ucp_agent_parse(many, 0, &a, &err), AGENTD_EINVAL);
    assert_non_null(strstr(err.msg, "too many"));
    free(h);
}

/* ---- versions ---- */

static void test_versions(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        int want;
    } t[] = {
        {"2026-01-11", "2026-01-11", 0},  {"2026-01-10", "2026-01-11", -1},
        {"2026-01-12", "2026-01-11", 1},  {"2025-12-31", "2026-01-01", -1},
        {"2027-01-01", "2026-12-31", 1},  {"2026-1-11", "2026-01-11", AGENTD_EINVAL},
        {"2026-02-30", "2026-01-11", AGENTD_EINVAL}, {"2024-02-29", "2024-02-28", 1},
        {"2025-02-29", "2025-02-28", AGENTD_EINVAL}, {"abcd-ef-gh", "2026-01-11", AGENTD_EINVAL},
        {"2026-01-11 ", "2026-01-11", AGENTD_EINVAL}, {NULL, "2026-01-11", AGENTD_EINVAL},
    };
    for (size_t i = 0; i < N(t); i++)
        assert_int_equal(ucp_version_compare(t[i].a, t[i].b), t[i].want);
    struct agentd_error e;
    assert_int_equal(ucp_version_check("2026-01-11", &e), 0);
    assert_int_equal(ucp_version_check("2025-06-01", &e), 0);
    assert_int_equal(ucp_version_check("", &e), 0);
    assert_int_equal(ucp_version_check("2026-01-12", &e), AGENTD_EUNPROCESSABLE);
    assert_string_equal(e.code, "version_unsupported");
    assert_non_null(strstr(e.msg, "2026-01-12"));
    assert_int_equal(ucp_version_check("v1", &e), AGENTD_EINVAL);
}

/* ---- negotiation ---- */

static void test_negotiation(void **state)
{
    (void)state;
    static const struct {
        const char *platform;
        unsigned want;
    } t[] = {
        {"[{\"name\":\"dev.ucp.shopping.checkout\",\"version\":\"2026-01-11\"}]", UCP_CAP_CHECKOUT},
        {"[{\"name\":\"dev.ucp.shopping.checkout\"},{\"name\":\"dev.ucp.shopping.fulfillment\","
         "\"extends\":\"dev.ucp.shopping.checkout\"},{\"name\":\"dev.ucp.shopping.order\"}]",
         UCP_CAP_CHECKOUT | UCP_CAP_FULFILLMENT | UCP_CAP_ORDER},
        /* calling a checkout endpoint implies checkout: a profile naming only
         * extensions and the order capability keeps them */
        {"[{\"name\":\"dev.ucp.shopping.fulfillment\"},{\"name\":\"dev.ucp.shopping.discount\"},"
         "{\"name\":\"dev.ucp.shopping.order\"}]",
         UCP_CAP_CHECKOUT | UCP_CAP_FULFILLMENT | UCP_CAP_DISCOUNT | UCP_CAP_ORDER},
        /* nothing about checkout: checkout as we offer it, extensions included */
        {"[{\"name\":\"dev.ucp.shopping.order\"}]", UCP_CAP_ALL},
        {"[{\"name\":\"dev.ucp.shopping.buyer_consent\"}]",
         UCP_CAP_CHECKOUT | UCP_CAP_BUYER_CONSENT},
        /* unknown and malformed entries are ignored */
        {"[{\"name\":\"com.example.loyalty\"},{\"name\":5},\"x\",{},{\"name\":"
         "\"dev.ucp.shopping.checkout\"},{\"name\":\"dev.ucp.shopping.discount\"}]",
         UCP_CAP_CHECKOUT | UCP_CAP_DISCOUNT},
        {"[]", UCP_CAP_ALL & ~UCP_CAP_ORDER},
        {"{\"name\":\"dev.ucp.shopping.checkout\"}", UCP_CAP_ALL & ~UCP_CAP_ORDER},
    };
    for (size_t i = 0; i < N(t); i++) {
        json_t *p = json_loads(t[i].platform, 0, NULL);
        assert_non_null(p);
        struct ucp_negotiated neg;
        struct agentd_error e;
        assert_int_equal(ucp_negotiate(p, &neg, &e), 0);
        assert_int_equal(neg.caps, t[i].want);
        assert_string_equal(neg.version, UCP_VERSION);
        json_decref(p);
    }
    struct ucp_negotiated neg = {.version = UCP_VERSION,
                                 .caps = UCP_CAP_CHECKOUT | UCP_CAP_DISCOUNT};
    json_t *m = ucp_response_meta_json(&neg);
    char *s = json_dumps(m, JSON_COMPACT);
    assert_string_equal(s, "{\"version\":\"2026-01-11\",\"capabilities\":[{\"name\":"
                           "\"dev.ucp.shopping.checkout\",\"version\":\"2026-01-11\"},{\"name\":"
                           "\"dev.ucp.shopping.discount\",\"version\":\"2026-01-11\"}]}");
    free(s);
    json_decref(m);
    json_t *prof = ucp_profile_capabilities_json();
    assert_int_equal(json_array_size(prof), 5);
    json_t *consent = json_array_get(prof, 4);
    assert_string_equal(json_string_value(json_object_get(consent, "name")),
                        UCP_CAP_BUYER_CONSENT_NAME);
    assert_string_equal(json_string_value(json_object_get(consent, "extends")),
                        UCP_CAP_CHECKOUT_NAME);
    json_t *ful = json_array_get(prof, 1);
    assert_string_equal(json_string_value(json_object_get(ful, "extends")),
                        "dev.ucp.shopping.checkout");
    assert_non_null(json_object_get(ful, "spec"));
    assert_non_null(json_object_get(ful, "schema"));
    json_decref(prof);
}

/* The reply's ucp member as text, kept per capability set: what dumping
 * the shared tree gives, the same pointer every time; none for another
 * version (the caller renders). */
static void test_meta_text(void **state)
{
    (void)state;
    for (unsigned set = 0; set <= UCP_CAP_ALL; set++) {
        struct ucp_negotiated neg = {.version = UCP_VERSION, .caps = set};
        json_t *m = ucp_response_meta_json(&neg);
        char *want = json_dumps(m, JSON_COMPACT);
        size_t len = 0, len2 = 0;
        const char *t = ucp_response_meta_text(&neg, &len);
        assert_non_null(t);
        assert_string_equal(t, want);
        assert_int_equal(len, strlen(want));
        neg.version[0] = 0; /* "": ours */
        assert_ptr_equal(ucp_response_meta_text(&neg, &len2), t);
        assert_int_equal(len2, len);
        free(want);
        json_decref(m);
    }
    struct ucp_negotiated old = {.version = "2025-10-01", .caps = UCP_CAP_ALL};
    size_t len = 7;
    assert_null(ucp_response_meta_text(&old, &len));
}

static void test_error_json(void **state)
{
    (void)state;
    json_t *j = ucp_error_json("out_of_stock", "BISC-001 is out of stock", NULL, "$.line_items[0]");
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"status\":\"requires_escalation\","
                           "\"detail\":\"BISC-001 is out of stock\",\"messages\":[{\"type\":\"error\","
                           "\"code\":\"out_of_stock\",\"content\":\"BISC-001 is out of stock\","
                           "\"severity\":\"recoverable\",\"path\":\"$.line_items[0]\"}]}");
    free(s);
    json_decref(j);
    j = ucp_error_json("version_unsupported", "no", "requires_buyer_input", NULL);
    assert_null(json_object_get(json_array_get(json_object_get(j, "messages"), 0), "path"));
    json_decref(j);
}

static void test_time(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(ucp_time_format(1768125600, buf, sizeof buf), 0);
    assert_string_equal(buf, "2026-01-11T10:00:00Z");
    assert_int_equal(ucp_time_format(0, buf, sizeof buf), 0);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    int64_t t;
    assert_int_equal(ucp_time_parse("2026-01-11T10:00:00Z", &t), 0);
    assert_int_equal(t, 1768125600);
    assert_int_equal(ucp_time_parse("2026-01-11T12:00:00.123+02:00", &t), 0);
    assert_int_equal(t, 1768125600);
    assert_int_equal(ucp_time_parse("2024-02-29T00:00:00Z", &t), 0);
    assert_int_equal(ucp_time_parse("2026-01-11 10:00:00", &t), AGENTD_EINVAL);
    assert_int_equal(ucp_time_parse("2026-02-30T00:00:00Z", &t), AGENTD_EINVAL);
    assert_int_equal(ucp_time_parse("2026-01-11T10:00:00Zjunk", &t), AGENTD_EINVAL);
}

/* The old snprintf formatting, as the oracle of the digit writer. */
static int time_oracle(int64_t t, char *buf, size_t len)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    clock_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999)
        return AGENTD_EINVAL;
    int n = snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    return n > 0 && (size_t)n < len ? 0 : AGENTD_EINVAL;
}

/* Every second of a day's edges, across years 0000 to 9999 and past them,
 * and buffers too short: the same text and verdict as snprintf gave. */
static void test_time_format_digits(void **state)
{
    (void)state;
    const int64_t lo = -62167219200 - 86400 * 2, hi = 253402300799 + 86400 * 2;
    size_t checked = 0;
    for (int64_t t = lo; t <= hi; t += 86400 * 3 + 3607) {
        for (int64_t dt = -1; dt <= 1; dt++) {
            char a[32], b[32];
            int ra = ucp_time_format(t + dt, a, sizeof a), rb = time_oracle(t + dt, b, sizeof b);
            assert_int_equal(ra, rb);
            if (ra == 0) {
                assert_string_equal(a, b);
                checked++;
            }
        }
    }
    assert_true(checked > 1000000);
    for (size_t len = 0; len <= 22; len++) {
        char a[32];
        assert_int_equal(ucp_time_format(1768125600, a, len), len >= 21 ? 0 : AGENTD_EINVAL);
        if (len >= 21)
            assert_string_equal(a, "2026-01-11T10:00:00Z");
    }
    char a[32];
    assert_int_equal(ucp_time_format(-62167219200, a, sizeof a), 0);
    assert_string_equal(a, "0000-01-01T00:00:00Z");
    assert_int_equal(ucp_time_format(253402300799, a, sizeof a), 0);
    assert_string_equal(a, "9999-12-31T23:59:59Z");
    assert_int_equal(ucp_time_format(253402300800, a, sizeof a), AGENTD_EINVAL);
    assert_int_equal(ucp_time_format(-62167219201, a, sizeof a), AGENTD_EINVAL);
}

/* ---- checkout JSON ---- */

static struct product products[] = {
    {.id = "BISC-001", .name = "Chocochip Cookies", .price = 399,
     .image_url = "https://shop.example/b.png", .available = 1},
    {.id = "STRAW-001", .name = "Strawberries", .price = 250, .available = 1},
};
static struct shipping_rate rate = {.id = "std-ship", .country = "*", .service_level = "standard",
                                    .title = "Standard Shipping", .price = 500};
static struct discount disc = {.code = "10OFF", .type = DISCOUNT_PERCENTAGE, .value = 10,
                               .description = "10% off"};
static struct tax_rate tax = {.country = "US", .region = "IL", .rate_bp = 825,
                              .shipping_taxable = 1};

static const struct product *f_product(void *ud, const char *id)
{
    (void)ud;
    for (size_t i = 0; i < N(products); i++)
        if (strcmp(products[i].id, id) == 0)
            return &products[i];
    return NULL;
}

static const struct shipping_rate *const *f_rates(void *ud, const char *country, size_t *n)
{
    static const struct shipping_rate *const one[] = {&rate};
    (void)ud;
    (void)country;
    *n = 1;
    return one;
}

static const struct shipping_rate *f_rate(void *ud, const char *id)
{
    (void)ud;
    return strcmp(id, rate.id) == 0 ? &rate : NULL;
}

static const struct discount *f_discount(void *ud, const char *code)
{
    (void)ud;
    return strcasecmp(code, disc.code) == 0 ? &disc : NULL;
}

static const struct tax_rate *f_tax(void *ud, const char *country, const char *region)
{
    (void)ud;
    return strcmp(country, "US") == 0 && strcmp(region, "IL") == 0 ? &tax : NULL;
}

static const char *full_create =
    "{\"line_items\":[{\"item\":{\"id\":\"BISC-001\"},\"quantity\":2},{\"item\":{\"id\":"
    "\"STRAW-001\"},\"quantity\":1}],"
    "\"buyer\":{\"first_name\":\"Jane\",\"last_name\":\"Doe\",\"email\":\"jane@example.com\","
    "\"phone_number\":\"+12175550100\"},"
    "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\",\"destinations\":[{\"id\":\"dest_1\","
    "\"street_address\":\"1 Main St\",\"address_locality\":\"Springfield\",\"address_region\":"
    "\"IL\",\"postal_code\":\"62701\",\"address_country\":\"US\",\"full_name\":\"Jane Doe\"}],"
    "\"selected_destination_id\":\"dest_1\",\"groups\":[{\"selected_option_id\":\"std-ship\"}]}]},"
    "\"discounts\":{\"codes\":[\"10off\",\"BOGUS\"]},"
    "\"payment\":{\"selected_instrument_id\":\"instr_1\",\"instruments\":[{\"id\":\"instr_1\","
    "\"handler_id\":\"mock_payment_handler\",\"type\":\"card\",\"brand\":\"visa\","
    "\"last_digits\":\"4242\",\"credential\":{\"type\":\"token\",\"token\":\"success_token\"}}]}}";

struct env {
    json_t *handlers;
    struct shop_rules r;
    struct checkout_link link;
};

static void env_init(struct env *v)
{
    const struct payment_handler *h = payment_handler_mock();
    v->handlers = payment_handlers_json(&h, 1);
    v->link = (struct checkout_link){.type = "terms_of_service", .url = "https://shop.example/t"};
    v->r = (struct shop_rules){.product = f_product, .shipping_rates = f_rates,
                               .shipping_rate = f_rate, .discount = f_discount, .tax_rate = f_tax,
                               .currency = "USD", .now = 1768125600,
                               .continue_url_base = "https://shop.example/checkout-sessions",
                               .payment_handlers = v->handlers, .links = &v->link, .n_links = 1};
}

static struct checkout *make_full(const struct env *v)
{
    json_t *req = json_loads(full_create, 0, NULL);
    assert_non_null(req);
    struct checkout *c = NULL;
    struct agentd_error e;
    int rc = checkout_create(req, &v->r, "chk_rt", &c, &e);
    if (rc)
        print_message("create: %s %s\n", e.code, e.msg);
    assert_int_equal(rc, 0);
    json_decref(req);
    return c;
}

static void test_checkout_json_shape(void **state)
{
    (void)state;
    struct env v;
    env_init(&v);
    struct checkout *c = make_full(&v);
    assert_int_equal(c->status, CHECKOUT_READY_FOR_COMPLETE);
    json_t *j = checkout_to_json(c, NULL);
    static const char *const required[] = {"ucp", "id", "line_items", "status", "currency",
                                           "totals", "links", "payment"};
    for (size_t i = 0; i < N(required); i++)
        assert_non_null(json_object_get(j, required[i]));
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ready_for_complete");
    assert_string_equal(json_string_value(json_object_get(j, "expires_at")),
                        "2026-01-11T16:00:00Z");
    assert_string_equal(json_string_value(json_object_get(j, "continue_url")),
                        "https://shop.example/checkout-sessions/chk_rt");
    json_t *li = json_array_get(json_object_get(j, "line_items"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(li, "item"), "title")),
                        "Chocochip Cookies");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(li, "item"), "price")), 399);
    json_t *ful = json_object_get(j, "fulfillment");
    json_t *m0 = json_array_get(json_object_get(ful, "methods"), 0);
    assert_string_equal(json_string_value(json_object_get(m0, "type")), "shipping");
    assert_int_equal(json_array_size(json_object_get(m0, "line_item_ids")), 2);
    json_t *g0 = json_array_get(json_object_get(m0, "groups"), 0);
    assert_string_equal(json_string_value(json_object_get(g0, "selected_option_id")), "std-ship");
    assert_int_equal(json_array_size(json_object_get(g0, "options")), 1);
    json_t *d = json_object_get(j, "discounts");
    assert_int_equal(json_array_size(json_object_get(d, "codes")), 2);
    json_t *a0 = json_array_get(json_object_get(d, "applied"), 0);
    assert_string_equal(json_string_value(json_object_get(a0, "code")), "10off");
    assert_int_equal(json_array_size(json_object_get(a0, "allocations")), 2);
    /* warning for the bogus code, per the discount extension */
    json_t *msg = json_array_get(json_object_get(j, "messages"), 0);
    assert_string_equal(json_string_value(json_object_get(msg, "type")), "warning");
    assert_string_equal(json_string_value(json_object_get(msg, "code")), "discount_code_invalid");
    assert_string_equal(json_string_value(json_object_get(msg, "path")), "$.discounts.codes[1]");
    /* payment: handlers advertised, instrument without its token */
    json_t *p = json_object_get(j, "payment");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(p, "handlers"), 0), "id")),
        "mock_payment_handler");
    char *s = json_dumps(j, 0);
    assert_null(strstr(s, "success_token"));
    free(s);
    /* totals: subtotal 1048, discount 104, fulfillment 500, tax, total */
    json_t *tot = json_object_get(j, "totals");
    int64_t sum = 0, total = -1;
    size_t i;
    json_t *t;
    json_array_foreach(tot, i, t)
    {
        const char *type = json_string_value(json_object_get(t, "type"));
        int64_t amt = json_integer_value(json_object_get(t, "amount"));
        if (strcmp(type, "total") == 0)
            total = amt;
        else if (strcmp(type, "items_discount") == 0 || strcmp(type, "discount") == 0)
            sum -= amt;
        else
            sum += amt;
    }
    assert_int_equal(total, sum);
    assert_int_equal(total, c->totals.total);
    json_decref(j);
    /* Without the extensions negotiated, their fields are absent. */
    struct ucp_negotiated neg = {.version = UCP_VERSION, .caps = UCP_CAP_CHECKOUT};
    j = checkout_to_json(c, &neg);
    assert_null(json_object_get(j, "fulfillment"));
    assert_null(json_object_get(j, "discounts"));
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "ucp"), "capabilities")), 1);
    json_decref(j);
    checkout_free(c);
    json_decref(v.handlers);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct env v;
    env_init(&v);
    struct checkout *c = make_full(&v);
    struct agentd_error e;
    assert_int_equal(checkout_escalate(c, &v.r, "high_value_order", "Review",
                                       CHECKOUT_SEV_REQUIRES_BUYER_REVIEW, &e),
                     0);
    c->version = 7;
    json_t *d1 = checkout_to_doc_json(c);
    struct checkout *back = NULL;
    assert_int_equal(checkout_from_json(d1, &back, &e), 0);
    json_t *d2 = checkout_to_doc_json(back);
    char *s1 = json_dumps(d1, JSON_SORT_KEYS | JSON_INDENT(1)),
         *s2 = json_dumps(d2, JSON_SORT_KEYS | JSON_INDENT(1));
    assert_string_equal(s1, s2);
    assert_non_null(strstr(s1, "success_token")); /* the doc keeps the token ... */
    assert_int_equal(back->version, 7);
    assert_int_equal(back->status, CHECKOUT_REQUIRES_ESCALATION);
    assert_string_equal(back->payment.instruments[0].token, "success_token");
    /* ... a refresh of the loaded copy changes nothing */
    assert_int_equal(checkout_refresh(back, &v.r, &e), 0);
    json_t *d3 = checkout_to_doc_json(back);
    char *s3 = json_dumps(d3, JSON_SORT_KEYS | JSON_INDENT(1));
    assert_string_equal(s1, s3);
    free(s1);
    free(s2);
    free(s3);
    json_decref(d1);
    json_decref(d2);
    json_decref(d3);
    /* A wire response (no _agentd) also loads. */
    json_t *w = checkout_to_json(c, NULL);
    struct checkout *fw = NULL;
    assert_int_equal(checkout_from_json(w, &fw, &e), 0);
    assert_int_equal(fw->totals.total, c->totals.total);
    assert_int_equal(fw->lines[1].totals.discount, c->lines[1].totals.discount);
    assert_null(fw->payment.instruments[0].token);
    checkout_free(fw);
    json_decref(w);
    /* Corrupt documents. */
    static const char *const bad[] = {
        "[]",
        "{}",
        "{\"id\":\"x\",\"status\":\"weird\",\"currency\":\"USD\",\"line_items\":[]}",
        "{\"id\":\"x\",\"status\":\"incomplete\",\"currency\":\"US\",\"line_items\":[]}",
        "{\"id\":\"x\",\"status\":\"incomplete\",\"currency\":\"USD\"}",
        "{\"id\":\"x\",\"status\":\"incomplete\",\"currency\":\"USD\",\"line_items\":[{}]}",
        "{\"id\":\"x\",\"status\":\"incomplete\",\"currency\":\"USD\",\"line_items\":[],"
        "\"expires_at\":\"tomorrow\"}",
        "{\"id\":\"x\",\"status\":\"incomplete\",\"currency\":\"USD\",\"line_items\":[],"
        "\"fulfillment\":{\"methods\":[{\"type\":\"shipping\"}]}}",
    };
    for (size_t i = 0; i < N(bad); i++) {
        json_t *b = json_loads(bad[i], 0, NULL);
        struct checkout *x = NULL;
        assert_int_equal(checkout_from_json(b, &x, &e), AGENTD_ECORRUPT);
        assert_null(x);
        json_decref(b);
    }
    checkout_free(back);
    checkout_free(c);
    json_decref(v.handlers);
}

static void test_order(void **state)
{
    (void)state;
    struct env v;
    env_init(&v);
    struct checkout *c = make_full(&v);
    struct agentd_error e;
    struct order *o = NULL;
    assert_int_equal(order_from_checkout(c, &o, &e), AGENTD_ECONFLICT);
    assert_int_equal(checkout_begin_complete(c, &v.r, -1, &e), 0);
    assert_int_equal(checkout_mark_completed(c, &v.r, "ord_1", "https://shop.example/orders/ord_1",
                                             &e),
                     0);
    json_t *cj = checkout_to_json(c, NULL);
    assert_null(json_object_get(cj, "continue_url")); /* terminal */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(cj, "order"), "id")), "ord_1");
    json_decref(cj);
    assert_int_equal(order_from_checkout(c, &o, &e), 0);
    json_t *j = order_to_json(o, NULL);
    static const char *const required[] = {"ucp", "id", "checkout_id", "permalink_url",
                                           "line_items", "fulfillment", "totals"};
    for (size_t i = 0; i < N(required); i++)
        assert_non_null(json_object_get(j, required[i]));
    json_t *l0 = json_array_get(json_object_get(j, "line_items"), 0);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(l0, "quantity"), "total")),
                     2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(l0, "quantity"), "fulfilled")), 0);
    assert_string_equal(json_string_value(json_object_get(l0, "status")), "processing");
    json_t *x0 = json_array_get(json_object_get(json_object_get(j, "fulfillment"), "expectations"), 0);
    assert_string_equal(json_string_value(json_object_get(x0, "method_type")), "shipping");
    assert_string_equal(json_string_value(json_object_get(x0, "description")), "Standard Shipping");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(x0, "destination"), "postal_code")),
        "62701");
    assert_int_equal(json_array_size(json_object_get(x0, "line_items")), 2);
    /* round trip */
    struct order *o2 = NULL;
    assert_int_equal(order_from_json(j, &o2, &e), 0);
    o2->lines[0].fulfilled = 1;
    json_t *j2 = order_to_json(o2, NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j2, "line_items"), 0),
                                          "status")),
        "partial");
    o2->lines[0].fulfilled = 0;
    json_decref(j2);
    j2 = order_to_json(o2, NULL);
    char *s1 = json_dumps(j, JSON_SORT_KEYS), *s2 = json_dumps(j2, JSON_SORT_KEYS);
    assert_string_equal(s1, s2);
    free(s1);
    free(s2);
    json_decref(j2);
    json_decref(j);
    json_t *bad = json_loads("{\"id\":\"o\"}", 0, NULL);
    struct order *o3 = NULL;
    assert_int_equal(order_from_json(bad, &o3, &e), AGENTD_ECORRUPT);
    json_decref(bad);
    order_free(o2);
    order_free(o);
    checkout_free(c);
    json_decref(v.handlers);
}

/* The response's ucp block is built once per capability set and shared
 * (immutable, referenced): a reply holds a reference, not a copy. */
static void test_response_meta_shared(void **state)
{
    (void)state;
    struct ucp_negotiated a = {.version = UCP_VERSION, .caps = UCP_CAP_CHECKOUT | UCP_CAP_ORDER};
    struct ucp_negotiated b = {.version = "", .caps = UCP_CAP_CHECKOUT | UCP_CAP_ORDER};
    struct ucp_negotiated c = {.version = UCP_VERSION, .caps = UCP_CAP_CHECKOUT};
    json_t *ma = ucp_response_meta_json(&a), *mb = ucp_response_meta_json(&b);
    json_t *mc = ucp_response_meta_json(&c);
    assert_non_null(ma);
    assert_ptr_equal(ma, mb); /* "" means the version we process with */
    assert_ptr_not_equal(ma, mc);
    char *s = json_dumps(mb, JSON_COMPACT);
    assert_string_equal(s, "{\"version\":\"2026-01-11\",\"capabilities\":[{\"name\":"
                           "\"dev.ucp.shopping.checkout\",\"version\":\"2026-01-11\"},{\"name\":"
                           "\"dev.ucp.shopping.order\",\"version\":\"2026-01-11\"}]}");
    free(s);
    json_decref(ma);
    json_decref(mb);
    json_decref(mc);
    json_t *again = ucp_response_meta_json(&a); /* still whole after its users let go */
    assert_int_equal(json_array_size(json_object_get(again, "capabilities")), 2);
    json_decref(again);
    json_t *body = json_object(); /* a reply takes it as any member */
    json_object_set_new(body, "ucp", ucp_response_meta_json(&c));
    s = json_dumps(body, JSON_COMPACT);
    assert_string_equal(s, "{\"ucp\":{\"version\":\"2026-01-11\",\"capabilities\":[{\"name\":"
                           "\"dev.ucp.shopping.checkout\",\"version\":\"2026-01-11\"}]}}");
    free(s);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_valid),  cmocka_unit_test(test_agent_hostile),
        cmocka_unit_test(test_versions),     cmocka_unit_test(test_negotiation),
        cmocka_unit_test(test_error_json),   cmocka_unit_test(test_time), cmocka_unit_test(test_meta_text), cmocka_unit_test(test_time_format_digits),
        cmocka_unit_test(test_checkout_json_shape), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_order), cmocka_unit_test(test_response_meta_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
