/* The offline model's reading of the user's last message: which intent it
 * expresses (search, add, pay...) and its arguments, from keywords. Pure. */
#define _GNU_SOURCE
#include "agent/offline_intent.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent/offline_details.h"

/* ---- text helpers ---- */

char *offline_lower_dup(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static int is_word_char(char c) { return isalnum((unsigned char)c) || c == '\''; }

/* `w` as a whole word (or phrase) in lower-case text; returns its position. */
static const char *find_word(const char *text, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = text; (p = strstr(p, w)); p++) {
        int left = p == text || !is_word_char(p[-1]);
        int right = !is_word_char(p[n]);
        if (left && right)
            return p;
    }
    return NULL;
}

static int has_any(const char *text, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (find_word(text, words[i]))
            return 1;
    return 0;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '.' || s[n - 1] == '?' ||
                 s[n - 1] == '!'))
        n--;
    return strndup(s, n);
}

/* A catalog id such as BISC-001 or SW-CHIPS-001: letters/digits with a dash
 * and a digit. Returns it upper-cased, or NULL. */
static char *find_product_id(const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p && !(isalnum((unsigned char)*p)))
            p++;
        const char *s = p;
        int dash = 0, digit = 0;
        while (*p && (isalnum((unsigned char)*p) || *p == '-')) {
            dash |= *p == '-';
            digit |= isdigit((unsigned char)*p) != 0;
            p++;
        }
        size_t n = (size_t)(p - s);
        if (n >= 5 && dash && digit && s[0] != '-' && s[n - 1] != '-') {
            char *id = strndup(s, n);
            for (char *q = id; q && *q; q++)
                *q = (char)toupper((unsigned char)*q);
            return id;
        }
    }
    return NULL;
}

static int word_number(const char *w, size_t n)
{
    static const char *const nums[] = { "zero", "one", "two", "three", "four", "five",
                                        "six", "seven", "eight", "nine", "ten", NULL };
    for (int i = 0; nums[i]; i++)
        if (strlen(nums[i]) == n && strncmp(w, nums[i], n) == 0)
            return i;
    if ((n == 1 && *w == 'a') || (n == 2 && strncmp(w, "an", 2) == 0))
        return 1;
    return -1;
}

/* ---- understanding the user ---- */


void offline_ask_free(struct ask *a)
{
    free(a->product_id);
    free(a->query);
    free(a->level);
}

/* Strips leading filler words so "show me some cookies" searches "cookies". */
static const char *skip_prefixes(const char *s, const char *const *prefixes)
{
    for (int again = 1; again;) {
        again = 0;
        while (isspace((unsigned char)*s) || *s == ',' || *s == ':')
            s++;
        for (int i = 0; prefixes[i]; i++) {
            size_t n = strlen(prefixes[i]);
            if (!strncmp(s, prefixes[i], n) && !is_word_char(s[n])) {
                s += n;
                again = 1;
                break;
            }
        }
    }
    return s;
}

/* Cuts trailing "to my cart", "please" etc. in place. */
static void cut_suffixes(char *s)
{
    static const char *const tails[] = { " to my cart", " to the cart", " to cart", " to my basket",
                                         " to the basket", " to my checkout", " from my cart",
                                         " from the cart", " from cart", " please", " for me", NULL };
    for (int again = 1; again;) {
        again = 0;
        size_t n = strlen(s);
        while (n && (isspace((unsigned char)s[n - 1]) || strchr(".?!,", s[n - 1])))
            s[--n] = 0;
        for (int i = 0; tails[i]; i++) {
            size_t t = strlen(tails[i]);
            if (n >= t && !strcmp(s + n - t, tails[i])) {
                s[n - t] = 0;
                again = 1;
                break;
            }
        }
    }
}

/* "add 2 chocochip cookies" -> quantity 2, rest "chocochip cookies". */
static const char *read_quantity(const char *s, int *qty)
{
    while (isspace((unsigned char)*s))
        s++;
    /* "-1" is a count below one (0), said: refused later, never read as "1" */
    if (isdigit((unsigned char)*s) || (*s == '-' && isdigit((unsigned char)s[1]))) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!is_word_char(*end) || *end == 'x') {
            /* out-of-range counts go to the tool, whose schema refuses them
             * with a clear message, instead of silently becoming 1 */
            *qty = v < 0 ? 0 : v > 1000000 ? 1000000 : (int)v;
            s = end + (*end == 'x');
        }
    } else {
        const char *e = s;
        while (is_word_char(*e))
            e++;
        int v = word_number(s, (size_t)(e - s));
        if (v > 0) {
            *qty = v;
            s = e;
        }
    }
    while (isspace((unsigned char)*s))
        s++;
    if (!strncmp(s, "of ", 3))
        s += 3;
    if (!strncmp(s, "x ", 2))
        s += 2;
    return s;
}

/* "under $5", "below 5.50", "less than 10" -> minor units. */
static long long read_max_price(char *lower)
{
    static const char *const cues[] = { "under", "below", "less than", "cheaper than", "max", NULL };
    for (int i = 0; cues[i]; i++) {
        char *p = (char *)find_word(lower, cues[i]);
        if (!p)
            continue;
        char *q = p + strlen(cues[i]);
        while (*q == ' ' || *q == '$')
            q++;
        if (!isdigit((unsigned char)*q))
            continue;
        char *end;
        double v = strtod(q, &end);
        *p = 0; /* the price words are not part of the query */
        return llround(v * 100);
    }
    return -1;
}

/* A UI action's JSON as an A2A client's button sends it as text, e.g.
 * {"action":"add_to_checkout","product_id":"BISC-001","quantity":1}: 1 when
 * the text is one (a->intent set; I_NONE for an action we do not know). */
static int understand_action(const char *text, struct ask *a)
{
    while (isspace((unsigned char)*text))
        text++;
    if (*text != '{')
        return 0;
    json_t *j = json_loads(text, 0, NULL);
    const char *act = json_string_value(json_object_get(j, "action"));
    if (!act) {
        json_decref(j);
        return 0;
    }
    const char *pid = json_string_value(json_object_get(j, "product_id"));
    json_t *q = json_object_get(j, "quantity");
    if (pid)
        a->product_id = strdup(pid);
    if (json_is_integer(q))
        a->quantity = (int)(json_integer_value(q) > 9999 ? 9999 : json_integer_value(q) < 0 ? 0
                                                                   : json_integer_value(q));
    static const struct {
        const char *action;
        enum intent intent;
    } map[] = { { "add_to_checkout", I_ADD },     { "remove_from_checkout", I_REMOVE },
                { "update_checkout", I_UPDATE },  { "get_checkout", I_GET },
                { "start_payment", I_START_PAY }, { "complete_checkout", I_PAY } };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(act, map[i].action) == 0)
            a->intent = map[i].intent;
    if ((a->intent == I_ADD || a->intent == I_REMOVE || a->intent == I_UPDATE) && !a->product_id)
        a->intent = I_NONE;
    json_decref(j);
    return 1;
}

void offline_understand(const char *text, struct ask *a)
{
    memset(a, 0, sizeof *a);
    a->quantity = -1;
    a->max_price = -1;
    if (understand_action(text, a))
        return;
    char *l = offline_lower_dup(text);
    if (!l)
        return;
    a->product_id = find_product_id(text);

    static const char *const ship_to[] = { "ship to", "deliver to", "send to", "shipping address",
                                           "my address is", NULL };
    static const char *const levels[] = { "express", "standard", "overnight", NULL };
    static const char *const pay[] = { "pay", "check out", "checkout now", "place the order",
                                       "place my order", "place order", "complete", "purchase",
                                       "buy it", "buy now", "confirm", NULL };
    static const char *const removes[] = { "remove", "delete", "take out", "drop", NULL };
    static const char *const adds[] = { "add", "put", "buy", "get me", NULL };
    static const char *const updates[] = { "change", "set", "update", "make it", NULL };
    static const char *const status[] = { "cart", "basket", "checkout", "status", "my order",
                                          "total", NULL };
    static const char *const searches[] = { "show me", "show", "search for", "search", "find me",
                                            "find", "look for", "looking for", "do you have",
                                            "do you sell", "i want", "i need", "i'd like",
                                            "list", "browse", NULL };
    static const char *const hello[] = { "hi", "hello", "hey", "help", "good morning", NULL };
    static const char *const thanks[] = { "thanks", "thank you", "bye", "goodbye", NULL };

    if (has_any(l, ship_to) || offline_has_email(text)) {
        a->intent = I_DETAILS;
    } else if (has_any(l, levels) && (find_word(l, "shipping") || find_word(l, "delivery") ||
                                      strlen(l) < 24)) {
        a->intent = I_SHIPPING;
        for (int i = 0; levels[i]; i++)
            if (find_word(l, levels[i]))
                a->level = strdup(levels[i]);
    } else if (has_any(l, removes)) {
        a->intent = I_REMOVE;
        const char *rest = skip_prefixes(l, removes);
        rest = skip_prefixes(rest, (const char *const[]){ "the", "my", "all", NULL });
        a->query = trim_dup(rest, strlen(rest));
        if (a->query)
            cut_suffixes(a->query);
    } else if (has_any(l, pay) && !has_any(l, adds)) {
        a->intent = I_PAY;
    } else if (has_any(l, adds) && (a->product_id || strlen(skip_prefixes(l, adds)) > 0) &&
               !find_word(l, "address")) {
        a->intent = I_ADD;
        const char *rest = read_quantity(skip_prefixes(l, adds), &a->quantity);
        rest = skip_prefixes(rest, (const char *const[]){ "some", "the", "more", NULL });
        a->query = trim_dup(rest, strlen(rest));
        if (a->query)
            cut_suffixes(a->query);
    } else if (has_any(l, updates) && a->product_id) {
        a->intent = I_UPDATE;
        const char *to = find_word(l, "to");
        const char *num = to ? to + 2 : l;
        while (*num && !isdigit((unsigned char)*num))
            num++;
        /* "to -1" is no count: asked again, not read as 1 */
        a->quantity = *num && !(num > l && num[-1] == '-') ? atoi(num) : -1;
    } else if (has_any(l, status)) {
        a->intent = I_GET;
    } else if (a->product_id) {
        a->intent = I_PRODUCT;
    } else if (has_any(l, thanks)) {
        a->intent = I_THANKS;
    } else if (has_any(l, hello) && strlen(l) < 40) {
        a->intent = I_HELLO;
    } else {
        const char *rest = skip_prefixes(l, searches);
        rest = skip_prefixes(rest, (const char *const[]){ "some", "any", "a", "an", "the", "me", NULL });
        size_t words = 0;
        for (const char *p = rest; *p; p++)
            words += !isspace((unsigned char)*p) && (p == rest || isspace((unsigned char)p[-1]));
        /* a short phrase is a product search; a long sentence we don't get */
        if (*rest && (rest != l || words <= 4)) {
            a->intent = I_SEARCH;
            char *q = strdup(rest);
            if (q) {
                a->max_price = read_max_price(q);
                cut_suffixes(q);
                a->query = trim_dup(q, strlen(q));
                free(q);
            }
            if (a->query && !*a->query) {
                free(a->query);
                a->query = NULL;
                a->intent = I_NONE;
            }
        }
    }
    free(l);
}
