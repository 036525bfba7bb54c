/* Payment handlers and instruments: the test handlers (mock_payment_handler,
 * example_payment_provider), instrument sanitising, PAN refusal and log redaction. Pure; no I/O, no globals. */
#include "commerce/payment.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/fields.h"
#include "core/err.h"

#define PAN_MIN_DIGITS 13
#define PAN_MAX_DIGITS 19
#define INSTRUMENT_STR_MAX 256
/* JSON nesting we walk before giving up: payment data is shallow, and a
 * bound keeps a hostile document from exhausting the stack. */
#define WALK_DEPTH_MAX 32

/* Why a credential is refused or declined, for the caller to show (an
 * empty message: nothing to add). */
static void set_err(struct agentd_error *e, const char *msg)
{
    agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "%s", msg);
}

/* ---- the mock handler ---- */

/* The mock's authorization reference is a function of the idempotency key
 * (FNV-1a, 64 bits): one key, one authorization, as a provider would. */
static uint64_t fnv64(const char *s)
{
    uint64_t x = 14695981039346656037ULL;
    for (; *s; s++)
        x = (x ^ (unsigned char)*s) * 1099511628211ULL;
    return x;
}

/* What every test handler checks first: a token, a sane amount. 0, or AGENTD_EINVAL
 * with e set (the caller answers PAYMENT_INVALID). */
static int instrument_usable(const struct payment_instrument *pi, int64_t amount, char *ref,
                             size_t reflen, struct agentd_error *e)
{
    if (ref && reflen)
        ref[0] = 0;
    if (!pi || !pi->token || !*pi->token) {
        set_err(e, "the payment credential has no token");
        return AGENTD_EINVAL;
    }
    if (amount < 0) {
        set_err(e, "negative amount");
        return AGENTD_EINVAL;
    }
    return 0;
}

/* Both test handlers: the failing token is declined; the mock approves only
 * its success token, the example provider any other token. The reference
 * names the handler. */
static enum payment_result test_authorize(const struct payment_handler *h,
                                          const struct payment_instrument *pi, int64_t amount,
                                          const char *currency, const char *idempotency_key,
                                          char *ref, size_t reflen, struct agentd_error *e)
{
    (void)currency;
    int mock = strcmp(h->id, PAYMENT_MOCK_HANDLER_ID) == 0;
    if (instrument_usable(pi, amount, ref, reflen, e) != 0)
        return PAYMENT_INVALID;
    /* a test card: the outcome its number decided (payment_card_take) */
    int card = mock && pi->credential_type && strcmp(pi->credential_type, "card") == 0;
    if (strcmp(pi->token, PAYMENT_MOCK_TOKEN_FAIL) == 0 ||
        (card && strcmp(pi->token, PAYMENT_CARD_TOKEN_DECLINE) == 0)) {
        set_err(e, "the payment was declined");
        return PAYMENT_DECLINED;
    }
    if (mock && strcmp(pi->token, PAYMENT_MOCK_TOKEN_SUCCESS) != 0 &&
        !(card && strcmp(pi->token, PAYMENT_CARD_TOKEN_APPROVE) == 0)) {
        set_err(e, "the payment token is not valid for mock_payment_handler");
        return PAYMENT_INVALID;
    }
    if (ref && reflen)
        snprintf(ref, reflen, "%s_auth_%016llx", mock ? "mock" : "example",
                 (unsigned long long)fnv64(idempotency_key ? idempotency_key : ""));
    set_err(e, "");
    return PAYMENT_APPROVED;
}

static const char *const mock_instrument_schemas[] = {
    "https://ucp.dev/schemas/shopping/types/card_payment_instrument.json",
};

static const struct payment_handler mock_handler = {
    .id = PAYMENT_MOCK_HANDLER_ID,
    .name = "dev.ucp.mock_payment_handler",
    .version = "2026-01-11",
    .spec = "https://ucp.dev/specification/payment-handler-guide",
    .config_schema = "https://ucp.dev/schemas/shopping/types/payment_handler.json",
    .instrument_schemas = mock_instrument_schemas,
    .n_instrument_schemas = 1,
    .config_json = "{\"environment\":\"TEST\"}",
    .test_mode = 1,
    .authorize = test_authorize,
    .ud = NULL,
};

const struct payment_handler *payment_handler_mock(void)
{
    return &mock_handler;
}

/* ---- example_payment_provider (the sample merchant's handler, test mode) ---- */

static const struct payment_handler example_handler = {
    .id = PAYMENT_EXAMPLE_HANDLER_ID,
    .name = "example.payment.provider",
    .version = "2026-01-11",
    .spec = "https://pay.provider.example/specs/handlers/payments",
    .config_schema = "https://pay.provider.example/specs/handlers/config.json",
    .instrument_schemas = mock_instrument_schemas,
    .n_instrument_schemas = 1,
    .test_mode = 1,
    .authorize = test_authorize,
};

int payment_handler_example(struct payment_handler *out, const char *business_id)
{
    size_t n = business_id ? strlen(business_id) : 0;
    if (n < 1 || n > 64)
        return AGENTD_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (business_id[i] < 0x20 || business_id[i] > 0x7e)
            return AGENTD_EINVAL;
    json_t *cfg = json_pack("{s:s}", "business_id", business_id);
    char *text = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
    json_decref(cfg);
    if (!text)
        return AGENTD_ENOMEM;
    *out = example_handler;
    out->config_json = text;
    return 0;
}

void payment_handler_example_clear(struct payment_handler *h)
{
    if (!h)
        return;
    free((char *)h->config_json);
    h->config_json = NULL;
}

json_t *payment_handler_to_json(const struct payment_handler *h)
{
    if (!h || !h->id)
        return NULL;
    json_t *config = h->config_json ? json_loads(h->config_json, 0, NULL) : json_object();
    if (!config || !json_is_object(config)) {
        json_decref(config);
        return NULL;
    }
    json_t *schemas = json_array();
    for (size_t i = 0; schemas && i < h->n_instrument_schemas; i++)
        json_array_append_new(schemas, json_string(h->instrument_schemas[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", h->id, "name",
                          h->name ? h->name : h->id, "version", h->version ? h->version : "",
                          "spec", h->spec ? h->spec : "", "config_schema",
                          h->config_schema ? h->config_schema : "", "instrument_schemas",
                          schemas ? schemas : json_array(), "config", config);
    return o;
}

json_t *payment_handlers_json(const struct payment_handler *const *hs, size_t n)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *h = payment_handler_to_json(hs[i]);
        if (!h || json_array_append_new(a, h) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- PAN detection ---- */

/* Card-shaped digit groups: one group, or groups of 4 ending in 1-4
 * ("4111 1111 1111 1111", "6011 0009 9013 9424 123"), or Amex/Diners'
 * 4-6-5 / 4-6-4. A UUID's 8-4-4-4-12 or a timestamp is not card-shaped. */
static int card_grouping(const size_t *g, size_t n)
{
    if (n == 1)
        return 1;
    if (n == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4))
        return 1;
    for (size_t i = 0; i + 1 < n; i++)
        if (g[i] != 4)
            return 0;
    return g[n - 1] >= 1 && g[n - 1] <= 4;
}

/* A run of 13..19 digits (single spaces or dashes may separate digit
 * groups), card-grouped and standing alone: not glued to letters or digits
 * on either side, so an opaque token such as "mock_token_<uuid>" (hex with
 * dashes) is not taken for a card. A longer run is not card-shaped
 * (merchant ids, hashes): refusing it would reject valid handler configs.
 * Luhn is deliberately not required: a mistyped card number is still a
 * card number we must not accept. */
static int looks_like_pan(const char *s)
{
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *start = p;
        size_t groups[PAN_MAX_DIGITS + 2], ng = 0, total = 0;
        for (;;) {
            size_t g = 0;
            while (isdigit((unsigned char)*p)) {
                p++;
                g++;
            }
            if (ng < sizeof groups / sizeof groups[0])
                groups[ng++] = g;
            total += g;
            if ((*p == ' ' || *p == '-') && isdigit((unsigned char)p[1]))
                p++;
            else
                break;
        }
        int alone = (start == s || !isalnum((unsigned char)start[-1])) &&
                    !isalnum((unsigned char)*p);
        if (alone && total >= PAN_MIN_DIGITS && total <= PAN_MAX_DIGITS &&
            ng < sizeof groups / sizeof groups[0] && card_grouping(groups, ng))
            return 1;
    }
    return 0;
}

/* snprintf(path + used, pathlen - used, "%s%s", a, b) without snprintf
 * (it ran for every key and index of every instrument): the same bytes
 * kept, the same cut, and the full length returned. used < pathlen. */
static size_t path_add(char *path, size_t pathlen, size_t used, const char *a, size_t na,
                       const char *b, size_t nb)
{
    size_t room = pathlen - used - 1, k = na < room ? na : room;
    memcpy(path + used, a, k);
    size_t m = nb < room - k ? nb : room - k;
    memcpy(path + used + k, b, m);
    path[used + k + m] = 0;
    return na + nb;
}

/* v's decimal digits, sign first, into out (NUL-terminated). */
static void int_text(long long v, char out[24])
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    out[o] = 0;
}

static int find_pan(const json_t *j, char *path, size_t pathlen, size_t used, int depth)
{
    if (depth > WALK_DEPTH_MAX)
        return AGENTD_EINVAL; /* refuse what we cannot inspect */
    if (json_is_string(j))
        return looks_like_pan(json_string_value(j)) ? AGENTD_EINVAL : 0;
    if (json_is_integer(j)) {
        char buf[24];
        int_text((long long)json_integer_value(j), buf);
        return looks_like_pan(buf) ? AGENTD_EINVAL : 0;
    }
    if (json_is_real(j)) {
        /* 4111111111111111 sent as a float still carries the digits. */
        char buf[64];
        snprintf(buf, sizeof buf, "%.0f", json_real_value(j));
        return looks_like_pan(buf) ? AGENTD_EINVAL : 0;
    }
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            size_t n = used;
            int pan_key = looks_like_pan(k);
            if (path && used < pathlen) {
                const char *shown = pan_key ? "[redacted]" : k;
                n += path_add(path, pathlen, used, ".", 1, shown, strlen(shown));
            }
            if (pan_key || find_pan(v, path, pathlen, n < pathlen ? n : pathlen - 1,
                                    depth + 1) != 0)
                return AGENTD_EINVAL;
            if (path && used < pathlen)
                path[used] = 0;
        }
        return 0;
    }
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            size_t n = used;
            if (path && used < pathlen) {
                char idx[24];
                int_text((long long)i, idx);
                size_t ni = strlen(idx);
                idx[ni] = ']';
                n += path_add(path, pathlen, used, "[", 1, idx, ni + 1);
            }
            if (find_pan(v, path, pathlen, n < pathlen ? n : pathlen - 1, depth + 1) != 0)
                return AGENTD_EINVAL;
            if (path && used < pathlen)
                path[used] = 0;
        }
    }
    return 0;
}

int payment_find_pan(const json_t *j, char *path, size_t pathlen)
{
    if (path && pathlen) {
        snprintf(path, pathlen, "$");
        return find_pan(j, path, pathlen, strlen(path), 0);
    }
    return find_pan(j, NULL, 0, 0, 0);
}

/* ---- instruments ---- */

/* The instrument's plain strings (see commerce/fields.h); the token is not
 * among them: it is wiped before it is freed. */
#define T struct payment_instrument
static const struct field instrument_fields[] = {
    FIELD_S(T, id, NULL),    FIELD_S(T, handler_id, NULL),  FIELD_S(T, type, NULL),
    FIELD_S(T, brand, NULL), FIELD_S(T, last_digits, NULL), FIELD_S(T, credential_type, NULL),
};
#undef T
static const struct shape instrument_plain = {sizeof(struct payment_instrument), instrument_fields,
                                              FIELDS_N(instrument_fields), NULL, NULL};

void payment_instrument_clear(struct payment_instrument *pi)
{
    if (!pi)
        return;
    if (pi->token) {
        /* Do not leave the credential in freed heap memory. */
        volatile char *p = pi->token;
        while (*p)
            *p++ = 0;
        free(pi->token);
    }
    fields_clear(&instrument_plain, pi);
}

int payment_instrument_copy(struct payment_instrument *dst, const struct payment_instrument *src)
{
    if (fields_copy(&instrument_plain, dst, src)) /* dst cleared on failure */
        return AGENTD_ENOMEM;
    dst->token = src->token ? strdup(src->token) : NULL;
    if (src->token && !dst->token) {
        payment_instrument_clear(dst);
        return AGENTD_ENOMEM;
    }
    return 0;
}

/* Optional string member: absent/null is fine, anything else must be a
 * printable string of sane length. */
static int opt_string(const json_t *o, const char *key, char **out, struct agentd_error *e)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "payment field %s must be a string", key);
        return AGENTD_EINVAL;
    }
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n != json_string_length(v) || n > INSTRUMENT_STR_MAX) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "payment field %s is too long or has NUL bytes", key);
        return AGENTD_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "payment field %s has control characters", key);
            return AGENTD_EINVAL;
        }
    }
    *out = strdup(s);
    return *out ? 0 : AGENTD_ENOMEM;
}

static int opt_int(const json_t *o, const char *key, int lo, int hi, int *out, struct agentd_error *e)
{
    *out = 0;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "payment field %s must be an integer in %d..%d", key, lo, hi);
        return AGENTD_EINVAL;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

int payment_instrument_parse(const json_t *j, struct payment_instrument *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(j)) {
        set_err(e, "payment data must be an object");
        return AGENTD_EINVAL;
    }
    char path[128];
    if (payment_find_pan_outside_card(j, path, sizeof path) != 0) {
        agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "payment data at %s looks like a full card number; send a token from a "
                     "payment handler instead",
                     path);
        return AGENTD_EINVAL;
    }
    int rc;
    if ((rc = opt_string(j, "id", &out->id, e)) ||
        (rc = opt_string(j, "handler_id", &out->handler_id, e)) ||
        (rc = opt_string(j, "type", &out->type, e)) ||
        (rc = opt_string(j, "brand", &out->brand, e)) ||
        (rc = opt_string(j, "last_digits", &out->last_digits, e)) ||
        (rc = opt_int(j, "expiry_month", 1, 12, &out->expiry_month, e)) ||
        (rc = opt_int(j, "expiry_year", 1900, 9999, &out->expiry_year, e)))
        goto fail;
    if (!out->handler_id || !out->handler_id[0]) {
        set_err(e, "payment data needs a handler_id");
        rc = AGENTD_EINVAL;
        goto fail;
    }
    if (out->last_digits) {
        size_t n = strlen(out->last_digits);
        int ok = n >= 1 && n <= 4;
        for (size_t i = 0; ok && i < n; i++)
            ok = isdigit((unsigned char)out->last_digits[i]);
        if (!ok) {
            set_err(e, "last_digits must be 1 to 4 digits");
            rc = AGENTD_EINVAL;
            goto fail;
        }
    }
    json_t *cred = json_object_get(j, "credential");
    if (cred && !json_is_null(cred)) {
        if (!json_is_object(cred)) {
            set_err(e, "payment credential must be an object");
            rc = AGENTD_EINVAL;
            goto fail;
        }
        if (payment_card_credential(j)) {
            if ((rc = payment_card_take(cred, out, e)))
                goto fail;
        } else if ((rc = opt_string(cred, "type", &out->credential_type, e)) ||
                   (rc = opt_string(cred, "token", &out->token, e))) {
            goto fail;
        }
    }
    return 0;
fail:
    payment_instrument_clear(out);
    return rc;
}

json_t *payment_instrument_to_json(const struct payment_instrument *pi, int include_token)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (pi->id)
        bad |= json_object_set_new(o, "id", json_string(pi->id));
    if (pi->handler_id)
        bad |= json_object_set_new(o, "handler_id", json_string(pi->handler_id));
    bad |= json_object_set_new(o, "type", json_string(pi->type ? pi->type : "card"));
    if (pi->brand)
        bad |= json_object_set_new(o, "brand", json_string(pi->brand));
    if (pi->last_digits)
        bad |= json_object_set_new(o, "last_digits", json_string(pi->last_digits));
    if (pi->expiry_month)
        bad |= json_object_set_new(o, "expiry_month", json_integer(pi->expiry_month));
    if (pi->expiry_year)
        bad |= json_object_set_new(o, "expiry_year", json_integer(pi->expiry_year));
    if (pi->credential_type || (include_token && pi->token)) {
        json_t *c = json_object();
        if (!c) {
            json_decref(o);
            return NULL;
        }
        if (pi->credential_type)
            bad |= json_object_set_new(c, "type", json_string(pi->credential_type));
        if (include_token && pi->token)
            bad |= json_object_set_new(c, "token", json_string(pi->token));
        bad |= json_object_set_new(o, "credential", c);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- redaction ---- */

static int secret_key(const char *k)
{
    static const char *const keys[] = {"token", "cvc", "cvv", "cvv2", "number", "pan",
                                       "card_number", "secret", "password", "cryptogram",
                                       "signature"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcasecmp(k, keys[i]) == 0)
            return 1;
    return 0;
}

static json_t *redact(const json_t *j, int depth)
{
    if (depth > WALK_DEPTH_MAX)
        return json_string("[redacted]");
    if (json_is_object(j)) {
        json_t *o = json_object();
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            json_t *nv;
            if (strcmp(k, "credential") == 0 && json_is_object(v)) {
                /* Keep the credential's type only: the rest is the secret. */
                json_t *t = json_object_get(v, "type");
                nv = json_is_string(t) ? json_pack("{s:O}", "type", t) : json_object();
            } else if (secret_key(k) || looks_like_pan(k)) {
                nv = json_string("[redacted]");
            } else {
                nv = redact(v, depth + 1);
            }
            if (!o || !nv || json_object_set_new(o, looks_like_pan(k) ? "[redacted]" : k, nv)) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    if (json_is_array(j)) {
        json_t *a = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!a || json_array_append_new(a, redact(v, depth + 1)) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (json_is_string(j) && looks_like_pan(json_string_value(j)))
        return json_string("[redacted]");
    if (json_is_number(j)) {
        char buf[64];
        if (json_is_integer(j))
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(j));
        else
            snprintf(buf, sizeof buf, "%.0f", json_real_value(j));
        if (looks_like_pan(buf))
            return json_string("[redacted]");
    }
    return json_deep_copy(j);
}

json_t *payment_data_redacted_json(const json_t *payment_data)
{
    if (!payment_data)
        return json_null();
    return redact(payment_data, 0);
}

int payment_authorize(const struct payment_handler *const *hs, size_t n,
                      const struct payment_instrument *pi, int64_t amount, const char *currency,
                      const char *idempotency_key, enum payment_result *res, char *ref,
                      size_t reflen, struct agentd_error *e)
{
    *res = PAYMENT_INVALID;
    if (!idempotency_key || !*idempotency_key) {
        set_err(e, "an authorization needs an idempotency key");
        return AGENTD_EINVAL;
    }
    if (!pi || !pi->handler_id) {
        set_err(e, "payment data needs a handler_id");
        return AGENTD_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (hs[i] && hs[i]->id && strcmp(hs[i]->id, pi->handler_id) == 0 && hs[i]->authorize) {
            *res = hs[i]->authorize(hs[i], pi, amount, currency, idempotency_key, ref, reflen,
                                    e);
            return 0;
        }
    }
    agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "unknown payment handler '%.64s'", pi->handler_id);
    return AGENTD_EINVAL;
}
