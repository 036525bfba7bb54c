/* Payment handlers and instruments: the handler interface, the built-in
 * test handlers "mock_payment_handler" and "example_payment_provider", instrument sanitising and PAN refusal.
 *
 * Nothing here moves money or does I/O: authorize() of the mock handler is
 * a pure function of the token. Real handlers live in src/shop/ and plug
 * into the same struct.
 *
 * Ownership: struct payment_instrument owns its strings
 * (payment_instrument_clear frees them). Handlers are caller-owned values;
 * payment_handler_mock() returns a pointer to a static const one. */
#ifndef AGENTD_COMMERCE_PAYMENT_H
#define AGENTD_COMMERCE_PAYMENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

/* Fixed contract: the test handler's id and its tokens (UCP conformance). */
#define PAYMENT_MOCK_HANDLER_ID "mock_payment_handler"
#define PAYMENT_MOCK_TOKEN_SUCCESS "success_token"
#define PAYMENT_MOCK_TOKEN_FAIL "fail_token"
/* The merchant handler UCP's sample business agent declares (its
 * data/ucp.json) and the sample chat client pays with; config business_id. */
#define PAYMENT_EXAMPLE_HANDLER_ID "example_payment_provider"
#define PAYMENT_EXAMPLE_BUSINESS_ID "1234567890" /* the sample's */

enum payment_result {
    PAYMENT_APPROVED = 0,
    PAYMENT_DECLINED,   /* the REST layer answers 402; the checkout stays completable */
    PAYMENT_INVALID,    /* credential not usable by this handler: 400-class */
};

/* An instrument after sanitising: only what we may keep. The token is the
 * opaque credential; it never appears in responses or logs. */
struct payment_instrument {
    char *id;
    char *handler_id;
    char *type;            /* "card" */
    char *brand;
    char *last_digits;     /* at most 4 digits */
    int expiry_month;      /* 0 = absent */
    int expiry_year;       /* 0 = absent */
    char *credential_type; /* e.g. "token" */
    char *token;
};

struct payment_handler {
    const char *id;             /* instance id, referenced by instruments' handler_id */
    const char *name;           /* reverse-DNS spec name */
    const char *version;        /* YYYY-MM-DD */
    const char *spec;           /* URL */
    const char *config_schema;  /* URL */
    const char *const *instrument_schemas;
    size_t n_instrument_schemas;
    const char *config_json;    /* JSON object text; NULL = {} */
    int test_mode;              /* places orders without a charge: refused in production
                                   unless AGENTD_ALLOW_TEST_PAYMENTS=1 */
    /* Decides on a sanitised instrument for an amount. Writes a reference
     * for the order into ref (may be empty) and a reason into e->msg.
     * idempotency_key (never NULL): the same key is the same authorization —
     * a handler backed by a payment provider passes it on as the provider's
     * idempotency key, so a completion resumed after a crash never charges
     * twice. */
    enum payment_result (*authorize)(const struct payment_handler *h,
                                     const struct payment_instrument *pi, int64_t amount,
                                     const char *currency, const char *idempotency_key,
                                     char *ref, size_t reflen, struct agentd_error *e);
    void *ud;
};

/* The built-in test handler (static, immutable). success_token approves,
 * fail_token declines, anything else is invalid. */
const struct payment_handler *payment_handler_mock(void);

/* The merchant-configured handler example_payment_provider in test mode,
 * as the sample's mock processor: any token approves except fail_token,
 * which declines; no token is invalid. Fills *out (config_json
 * {"business_id":...} is malloc'd and owned by *out: free it with
 * payment_handler_example_clear). 0 or AGENTD_ENOMEM / AGENTD_EINVAL
 * (business_id not 1-64 printable ASCII characters). */
int payment_handler_example(struct payment_handler *out, const char *business_id);
void payment_handler_example_clear(struct payment_handler *h);

/* The handler's advertisement for payment.handlers (new reference; NULL on
 * OOM or malformed config_json). */
json_t *payment_handler_to_json(const struct payment_handler *h);
/* Array of several handlers' advertisements. */
json_t *payment_handlers_json(const struct payment_handler *const *hs, size_t n);

/* Scans every string, number and key of a JSON value for a card-number-like
 * run of 13..19 digits (single spaces and dashes between digits allowed;
 * Luhn not required; longer runs are ids, not cards). Returns 0 if clean, AGENTD_EINVAL if found, with the JSONPath
 * of the offending value in path. */
int payment_find_pan(const json_t *j, char *path, size_t pathlen);

/* Parses and sanitises one instrument object (UCP payment_data or an entry
 * of payment.instruments). Refuses a PAN anywhere in it (AGENTD_EINVAL),
 * except the number of a test card for the mock handler
 * (payment_card_credential), which is reduced by payment_card_take.
 * Requires handler_id; keeps id, handler_id, type, brand, last_digits,
 * expiry_month/year and credential {type, token}; drops everything else. */
int payment_instrument_parse(const json_t *j, struct payment_instrument *out, struct agentd_error *e);
void payment_instrument_clear(struct payment_instrument *pi);
int payment_instrument_copy(struct payment_instrument *dst, const struct payment_instrument *src);
/* UCP JSON of an instrument. include_token = 0 for every response. */
json_t *payment_instrument_to_json(const struct payment_instrument *pi, int include_token);

/* A copy of raw payment data safe for logs: credential reduced to its type,
 * any token/cvc/number-like field replaced by "[redacted]", card-like
 * digit runs masked. Never contains the token. New reference; NULL on OOM. */
json_t *payment_data_redacted_json(const json_t *payment_data);

/* ---- test cards (payment_card.c) ---- */

#define PAYMENT_CARD_MIN_DIGITS 12
#define PAYMENT_CARD_MAX_DIGITS 19
/* The outcome a test card's number decided, kept as the instrument's token
 * (with credential_type "card") in place of the number. */
#define PAYMENT_CARD_TOKEN_APPROVE "test_card_approve"
#define PAYMENT_CARD_TOKEN_DECLINE "test_card_decline"

/* 1 if digits (12..19 of them, nothing else) pass the Luhn check. */
int payment_card_luhn_ok(const char *digits);
/* "visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay" or
 * "unknown", from the number's leading digits. */
const char *payment_card_brand(const char *digits);
/* 1 if the instrument is a card credential for the mock handler
 * (credential {type: "card", card_number_type: "fpan"}): the one place a
 * card number is taken, as a PSP's test mode does. */
int payment_card_credential(const json_t *instrument);
/* payment_find_pan, except credential.number of such a test card. */
int payment_find_pan_outside_card(const json_t *instrument, char *path, size_t pathlen);
/* Checks a test card credential (number: digits, Luhn; cvc 3-4 digits;
 * expiry_month/year) and sets out's brand (from the number), last_digits,
 * expiry, credential_type "card" and the outcome token: 4000000000000002
 * and 4000000000009995 decline, every other valid number approves. The
 * number and cvc are never copied. 0, AGENTD_EINVAL (reason in e->msg) or
 * AGENTD_ENOMEM. */
int payment_card_take(const json_t *cred, struct payment_instrument *out, struct agentd_error *e);

/* Finds the handler by the instrument's handler_id and calls authorize
 * with idempotency_key (required: AGENTD_EINVAL when NULL or empty).
 * Returns 0 with *res set, AGENTD_EINVAL when no handler has that id
 * (e->msg says which), AGENTD_ENOMEM. */
int payment_authorize(const struct payment_handler *const *hs, size_t n,
                      const struct payment_instrument *pi, int64_t amount, const char *currency,
                      const char *idempotency_key, enum payment_result *res, char *ref,
                      size_t reflen, struct agentd_error *e);

#endif
