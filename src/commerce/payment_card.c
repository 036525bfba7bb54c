/* Test card credentials (UCP card_credential, card_number_type "fpan") for
 * the mock handler, as a PSP's test mode takes them: Luhn, brand, outcome.
 * Pure. The number and CVC are read in place and never copied out: what an
 * instrument keeps is the brand, the last 4 digits, the expiry and a
 * derived outcome token (PAYMENT_CARD_TOKEN_*), so a PAN is never stored,
 * logged or echoed. */
#include "commerce/payment.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cards a PSP's test mode declines (Stripe's generic decline and
 * insufficient funds); every other Luhn-valid number approves. */
static const char *const declined_cards[] = {"4000000000000002", "4000000000009995"};

int payment_card_luhn_ok(const char *digits)
{
    size_t n = digits ? strlen(digits) : 0;
    if (n < PAYMENT_CARD_MIN_DIGITS || n > PAYMENT_CARD_MAX_DIGITS)
        return 0;
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        char c = digits[n - 1 - i];
        if (c < '0' || c > '9')
            return 0;
        int d = c - '0';
        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

/* The first k digits of s as a number (s has at least k digits). */
static int prefix(const char *s, int k)
{
    int v = 0;
    for (int i = 0; i < k; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

const char *payment_card_brand(const char *digits)
{
    size_t n = digits ? strlen(digits) : 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)digits[i]))
            return "unknown";
    if (n < 6)
        return "unknown";
    int p2 = prefix(digits, 2), p3 = prefix(digits, 3), p4 = prefix(digits, 4);
    if (digits[0] == '4')
        return "visa";
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return "mastercard";
    if (p2 == 34 || p2 == 37)
        return "amex";
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649))
        return "discover";
    if (p4 >= 3528 && p4 <= 3589)
        return "jcb";
    if (p2 == 36 || p2 == 38 || p2 == 39 || (p3 >= 300 && p3 <= 305))
        return "diners";
    if (p2 == 62)
        return "unionpay";
    return "unknown";
}

int payment_card_credential(const json_t *instrument)
{
    const json_t *cred = json_object_get(instrument, "credential");
    const char *h = json_string_value(json_object_get(instrument, "handler_id"));
    const char *t = json_string_value(json_object_get(cred, "type"));
    const char *nt = json_string_value(json_object_get(cred, "card_number_type"));
    return h && t && nt && strcmp(h, PAYMENT_MOCK_HANDLER_ID) == 0 && strcmp(t, "card") == 0 &&
           strcmp(nt, "fpan") == 0;
}

int payment_find_pan_outside_card(const json_t *instrument, char *path, size_t pathlen)
{
    if (!payment_card_credential(instrument))
        return payment_find_pan(instrument, path, pathlen);
    /* everything but credential.number: a shallow copy of both levels
     * (references, not copies of the strings) */
    json_t *top = json_copy((json_t *)instrument);
    json_t *cred = top ? json_copy(json_object_get(top, "credential")) : NULL;
    int rc = AGENTD_ENOMEM;
    if (cred && json_object_del(cred, "number") == 0 &&
        json_object_set_new(top, "credential", cred) == 0) {
        cred = NULL;
        rc = payment_find_pan(top, path, pathlen);
    }
    json_decref(cred);
    json_decref(top);
    return rc;
}

static int card_fail(struct agentd_error *e, const char *msg)
{
    return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "%s", msg);
}

int payment_card_take(const json_t *cred, struct payment_instrument *out, struct agentd_error *e)
{
    const char *num = json_string_value(json_object_get(cred, "number"));
    size_t n = num ? strlen(num) : 0;
    if (!num)
        return card_fail(e, "a card credential needs its number");
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)num[i]))
            return card_fail(e, "the card number must be digits only");
    if (n < PAYMENT_CARD_MIN_DIGITS || n > PAYMENT_CARD_MAX_DIGITS)
        return card_fail(e, "the card number must have 12 to 19 digits"); /* PAYMENT_CARD_*_DIGITS */
    if (!payment_card_luhn_ok(num))
        return card_fail(e, "the card number is not valid (Luhn check failed)");
    const json_t *cvc = json_object_get(cred, "cvc");
    if (cvc) {
        const char *c = json_string_value(cvc);
        size_t cn = c ? strlen(c) : 0;
        int ok = cn == 3 || cn == 4;
        for (size_t i = 0; ok && i < cn; i++)
            ok = isdigit((unsigned char)c[i]);
        if (!ok)
            return card_fail(e, "the card cvc must be 3 or 4 digits");
    }
    static const char *const ints[] = {"expiry_month", "expiry_year"};
    int val[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(cred, ints[k]);
        if (!v)
            continue;
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (k == 0 ? (x < 1 || x > 12) : (x < 2000 || x > 9999))
            return card_fail(e, k == 0 ? "the card expiry_month must be 1 to 12"
                                       : "the card expiry_year must be a four-digit year");
        val[k] = (int)x;
    }
    int declined = 0;
    for (size_t k = 0; k < sizeof declined_cards / sizeof declined_cards[0]; k++)
        declined |= strcmp(num, declined_cards[k]) == 0;
    char last[5];
    memcpy(last, num + n - 4, 5);
    const char *brand = payment_card_brand(num);
    char *b = strdup(brand), *l = strdup(last), *t = strdup("card"),
         *tok = strdup(declined ? PAYMENT_CARD_TOKEN_DECLINE : PAYMENT_CARD_TOKEN_APPROVE);
    if (!b || !l || !t || !tok) {
        free(b), free(l), free(t), free(tok);
        return AGENTD_ENOMEM;
    }
    free(out->brand), free(out->last_digits), free(out->credential_type), free(out->token);
    out->brand = b;        /* what the number says, not what the client claimed */
    out->last_digits = l;
    out->credential_type = t;
    out->token = tok;
    if (val[0])
        out->expiry_month = val[0];
    if (val[1])
        out->expiry_year = val[1];
    return 0;
}
