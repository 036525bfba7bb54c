/* Redaction rules. Deliberately over-broad: a false positive costs a
 * "***" in a log, a false negative leaks a credential. */
#define _GNU_SOURCE
#include "core/redact.h"

#include <ctype.h>
#include <string.h>

/* Parts that make a key secret wherever they appear in it, any case
 * ("pan" only as the whole key: "company" must stay readable). */
#define PART(s) { s, sizeof s - 1 }
static const struct {
    const char *s;
    size_t n;
} secret_parts[] = {
    PART("authorization"), PART("cookie"), PART("api-key"), PART("api_key"), PART("apikey"),
    PART("x-api-key"), PART("token"), PART("secret"), PART("password"), PART("passwd"),
    PART("credential"), PART("card_number"), PART("cardnumber"), PART("cvc"), PART("cvv"),
    PART("private_key"), PART("session-secret"), PART("simulation-secret"), PART("signature"),
};
#undef PART

/* Every log field's key comes here (an access line: 5-8 keys), so the key
 * is lowered once and each part compared only where its first letter is,
 * not scanned for with strcasestr 20 times. ASCII case only, as strcasestr
 * in the C locale (agentd never sets another). */
int redact_key_is_secret(const char *key)
{
    if (!key)
        return 0;
    char low[256];
    size_t n = strnlen(key, sizeof low);
    if (n == sizeof low) { /* a key this long: the plain scan */
        for (size_t i = 0; i < sizeof secret_parts / sizeof *secret_parts; i++)
            if (strcasestr(key, secret_parts[i].s))
                return 1;
        return strcasecmp(key, "pan") == 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        low[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    low[n] = '\0';
    if (n == 3 && memcmp(low, "pan", 3) == 0)
        return 1;
    for (size_t at = 0; at < n; at++) {
        char c = low[at];
        if (c != 'a' && c != 'c' && c != 'p' && c != 's' && c != 't' && c != 'x')
            continue; /* no part starts with it (test_redact_keys tries each part) */
        for (size_t i = 0; i < sizeof secret_parts / sizeof *secret_parts; i++)
            if (secret_parts[i].s[0] == low[at] && secret_parts[i].n <= n - at &&
                memcmp(low + at, secret_parts[i].s, secret_parts[i].n) == 0)
                return 1;
    }
    return 0;
}

int redact_value_is_secret(const char *val, size_t len)
{
    if (!val)
        return 0;
    if (len >= 7 && strncasecmp(val, "bearer ", 7) == 0)
        return 1;
    if (len >= 6 && strncasecmp(val, "basic ", 6) == 0)
        return 1;
    /* a JWT: three base64url segments starting with {"  */
    if (len > 20 && strncmp(val, "eyJ", 3) == 0 && memchr(val, '.', len))
        return 1;
    /* 13-19 digits in a row (spaces/dashes allowed) look like a card number */
    int run = 0;
    for (size_t i = 0; i < len; i++) {
        if (isdigit((unsigned char)val[i])) {
            if (++run >= 13)
                return 1;
        } else if (val[i] != ' ' && val[i] != '-') {
            run = 0;
        }
    }
    return 0;
}

/* ---- personal data in free text ---- */

static int word_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

static int email_local(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static int email_domain(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-';
}

/* an email around the '@' at s[at]: [*b, *e) */
static int find_email(const unsigned char *s, size_t len, size_t at, size_t *b, size_t *e)
{
    size_t i = at, j = at + 1;
    while (i > 0 && email_local(s[i - 1]))
        i--;
    int dot = 0;
    while (j < len && email_domain(s[j])) {
        dot |= s[j] == '.' && j + 1 < len && isalnum(s[j + 1]);
        j++;
    }
    while (j > at + 1 && (s[j - 1] == '.' || s[j - 1] == '-'))
        j--; /* a sentence's full stop is not the domain's */
    if (i == at || !dot)
        return 0;
    *b = i;
    *e = j;
    return 1;
}

/* a phone or card-like number starting at s[i] (a digit or '+' or '('):
 * digits with single separators, 8 or more of them, not inside a word or
 * an id ("turn_0123...", "v1.2.3", "10.0.0.12" stay) */
static int find_number(const unsigned char *s, size_t len, size_t i, size_t *e)
{
    if (i > 0 && (word_char(s[i - 1]) || strchr("-./:#", s[i - 1])))
        return 0;
    /* an ISO date is not a phone number */
    if (i + 10 <= len && s[i + 4] == '-' && s[i + 7] == '-' && isdigit(s[i]) && isdigit(s[i + 3]) &&
        isdigit(s[i + 5]) && isdigit(s[i + 6]) && isdigit(s[i + 8]) && isdigit(s[i + 9]))
        return 0;
    size_t j = i, digits = 0, last = i;
    if (s[j] == '+')
        j++;
    while (j < len) {
        if (isdigit(s[j])) {
            digits++;
            last = ++j;
        } else if ((s[j] == ' ' || s[j] == '-' || s[j] == '(' || s[j] == ')') && j + 1 < len &&
                   (isdigit(s[j + 1]) || s[j + 1] == '(' || (s[j] == ')' && s[j + 1] == ' '))) {
            j++;
        } else {
            break;
        }
    }
    if (digits < 8 || (last < len && (word_char(s[last]) || s[last] == '.' || s[last] == '@')))
        return 0;
    *e = last;
    return 1;
}

/* Street-type words: "12 Main St", "221B Baker Street", "1600 Pennsylvania Avenue". */
static const char *const street_words[] = {
    "street", "st", "avenue", "ave", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive",
    "dr", "way", "court", "ct", "place", "pl", "terrace", "square", "sq", "highway", "hwy",
    "parkway", "pkwy", "circle", "cir", "close", "crescent", "alley", NULL,
};

static int is_street_word(const unsigned char *w, size_t n)
{
    for (int k = 0; street_words[k]; k++)
        if (strlen(street_words[k]) == n && strncasecmp((const char *)w, street_words[k], n) == 0)
            return 1;
    return 0;
}

/* a house number (1-5 digits, an optional letter) at s[i], up to four
 * words, then a street word: [i, *e) */
static int find_street(const unsigned char *s, size_t len, size_t i, size_t *e)
{
    if (i > 0 && (word_char(s[i - 1]) || strchr("-./:#", s[i - 1])))
        return 0;
    size_t j = i;
    while (j < len && isdigit(s[j]) && j - i < 6)
        j++;
    if (j - i > 5)
        return 0;
    if (j < len && isalpha(s[j]) && (j + 1 >= len || !word_char(s[j + 1])))
        j++;
    for (int words = 0; words < 5; words++) {
        if (j >= len || s[j] != ' ')
            return 0;
        j++;
        size_t w = j;
        while (j < len && isalpha(s[j]))
            j++;
        if (j == w || (j < len && word_char(s[j])))
            return 0;
        if (words > 0 && is_street_word(s + w, j - w)) {
            if (j < len && s[j] == '.')
                j++;
            *e = j;
            return 1;
        }
    }
    return 0;
}

/* "Hauptstrasse 5", "Lindenstr. 12": a word ending in strasse/straße/str.
 * followed by a number, starting at the word s[i] */
static int find_strasse(const unsigned char *s, size_t len, size_t i, size_t *e)
{
    if (i > 0 && word_char(s[i - 1]))
        return 0;
    size_t j = i;
    while (j < len && (isalpha(s[j]) || s[j] >= 0x80))
        j++;
    size_t n = j - i;
    int hit = (n > 7 && strncasecmp((const char *)s + j - 7, "strasse", 7) == 0) ||
              (n > 7 && strncasecmp((const char *)s + j - 7, "stra\xc3\x9f" "e", 7) == 0) ||
              (n > 3 && j < len && s[j] == '.' && strncasecmp((const char *)s + j - 3, "str", 3) == 0);
    if (!hit)
        return 0;
    if (s[j] == '.')
        j++;
    if (j >= len || s[j] != ' ' || j + 1 >= len || !isdigit(s[j + 1]))
        return 0;
    j++;
    while (j < len && isdigit(s[j]))
        j++;
    *e = j;
    return 1;
}

int redact_pii(const char *in, size_t len, char *out, size_t *out_len)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    int masked = 0;
    while (i < len) {
        size_t b = i, e = 0;
        int hit = 0;
        if (s[i] == '@') {
            /* the local part was already copied: take it back */
            if (find_email(s, len, i, &b, &e) && i - b <= o) {
                o -= i - b;
                hit = 1;
            }
        } else if (isdigit(s[i]) || s[i] == '+' || s[i] == '(') {
            hit = (isdigit(s[i]) && find_street(s, len, i, &e)) || find_number(s, len, i, &e);
        } else if (isalpha(s[i])) {
            hit = find_strasse(s, len, i, &e);
        }
        if (hit) {
            memcpy(out + o, REDACTED, 3);
            o += 3;
            masked++;
            i = e;
            continue;
        }
        /* copy the rest of a word at once: a match starts only at a word's start */
        out[o++] = (char)s[i++];
        while (i < len && word_char(s[i]) && word_char(s[i - 1]) && s[i] != '@')
            out[o++] = (char)s[i++];
    }
    *out_len = o;
    return masked;
}

int redact_key_is_id(const char *key, const char *val, size_t len)
{
    if (!key || !val)
        return 0;
    if (strcmp(key, "request_id") == 0 || strcmp(key, "trace_id") == 0)
        return 1;
    size_t n = strlen(key);
    if (!((n == 2 && strcmp(key, "id") == 0) || (n > 3 && strcmp(key + n - 3, "_id") == 0)))
        return 0;
    size_t i = 0;
    while (i < len && islower((unsigned char)val[i]))
        i++;
    if (i == 0 || i >= len || val[i] != '_')
        return 0;
    size_t hex = 0;
    for (i++; i < len; i++, hex++)
        if (!isdigit((unsigned char)val[i]) && !(val[i] >= 'a' && val[i] <= 'f'))
            return 0;
    return hex >= 16;
}
