/* The offline model's reading of buyer details in free text: an email
 * anywhere, a name, and a postal address in the common orders and
 * punctuations, into update_customer_details' UCP fields. Pure. */
#define _GNU_SOURCE
#include "agent/offline_details.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEGS_MAX 16
#define TOKS_MAX 48

struct seg {
    char *s;     /* owned, trimmed */
    int used;    /* consumed by a field */
};

static int has_digit(const char *s)
{
    for (; *s; s++)
        if (isdigit((unsigned char)*s))
            return 1;
    return 0;
}

static int all_alpha(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalpha((unsigned char)*s) && *s != '.' && *s != '-' && *s != '\'' && *s != ' ')
            return 0;
    return 1;
}

/* ---- countries and US states ---- */

static const struct {
    const char *name, *code;
} countries[] = {
    { "united states of america", "US" }, { "united states", "US" }, { "usa", "US" },
    { "u.s.a.", "US" }, { "u.s.", "US" }, { "america", "US" }, { "canada", "CA" },
    { "united kingdom", "GB" }, { "great britain", "GB" }, { "england", "GB" }, { "uk", "GB" },
    { "germany", "DE" }, { "deutschland", "DE" }, { "france", "FR" }, { "spain", "ES" },
    { "italy", "IT" }, { "netherlands", "NL" }, { "the netherlands", "NL" }, { "ireland", "IE" },
    { "australia", "AU" }, { "mexico", "MX" }, { "japan", "JP" }, { "austria", "AT" },
    { "switzerland", "CH" }, { "belgium", "BE" }, { "sweden", "SE" }, { "denmark", "DK" },
    { "norway", "NO" }, { "poland", "PL" }, { "portugal", "PT" }, { "new zealand", "NZ" },
};

static const struct {
    const char *name, *code;
} states[] = {
    { "alabama", "AL" }, { "alaska", "AK" }, { "arizona", "AZ" }, { "arkansas", "AR" },
    { "california", "CA" }, { "colorado", "CO" }, { "connecticut", "CT" }, { "delaware", "DE" },
    { "district of columbia", "DC" }, { "florida", "FL" }, { "georgia", "GA" },
    { "hawaii", "HI" }, { "idaho", "ID" }, { "illinois", "IL" }, { "indiana", "IN" },
    { "iowa", "IA" }, { "kansas", "KS" }, { "kentucky", "KY" }, { "louisiana", "LA" },
    { "maine", "ME" }, { "maryland", "MD" }, { "massachusetts", "MA" }, { "michigan", "MI" },
    { "minnesota", "MN" }, { "mississippi", "MS" }, { "missouri", "MO" }, { "montana", "MT" },
    { "nebraska", "NE" }, { "nevada", "NV" }, { "new hampshire", "NH" }, { "new jersey", "NJ" },
    { "new mexico", "NM" }, { "new york", "NY" }, { "north carolina", "NC" },
    { "north dakota", "ND" }, { "ohio", "OH" }, { "oklahoma", "OK" }, { "oregon", "OR" },
    { "pennsylvania", "PA" }, { "rhode island", "RI" }, { "south carolina", "SC" },
    { "south dakota", "SD" }, { "tennessee", "TN" }, { "texas", "TX" }, { "utah", "UT" },
    { "vermont", "VT" }, { "virginia", "VA" }, { "washington", "WA" },
    { "west virginia", "WV" }, { "wisconsin", "WI" }, { "wyoming", "WY" },
};

/* The ISO code of a country name or code ("US", "usa", "Germany"), or NULL. */
static const char *country_code(const char *s, char code[3])
{
    for (size_t i = 0; i < sizeof countries / sizeof countries[0]; i++)
        if (strcasecmp(s, countries[i].name) == 0)
            return countries[i].code;
    if (strlen(s) == 2 && isalpha((unsigned char)s[0]) && isalpha((unsigned char)s[1])) {
        code[0] = (char)toupper((unsigned char)s[0]);
        code[1] = (char)toupper((unsigned char)s[1]);
        code[2] = 0;
        return code;
    }
    return NULL;
}

static const char *state_code(const char *s)
{
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcasecmp(s, states[i].name) == 0)
            return states[i].code;
    return NULL;
}

/* ---- the email ---- */

static int email_char(char c)
{
    return isalnum((unsigned char)c) || strchr("._%+-@", c) != NULL;
}

/* Cuts the first address-like token out of text (blanked in place) into a
 * new string; NULL if none. */
static char *take_email(char *text)
{
    for (char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
        char *b = at, *e = at + 1;
        while (b > text && email_char(b[-1]))
            b--;
        while (*e && email_char(*e))
            e++;
        while (e > at && strchr(".-", e[-1])) /* a sentence's full stop */
            e--;
        char *dot = memchr(at, '.', (size_t)(e - at));
        if (b == at || !dot || dot == at + 1 || dot + 1 >= e || memchr(at + 1, '@', (size_t)(e - at - 1)))
            continue;
        char *email = strndup(b, (size_t)(e - b));
        memset(b, ' ', (size_t)(e - b));
        return email;
    }
    return NULL;
}

/* ---- segments ---- */

static int word_at(const char *s, const char *w)
{
    size_t n = strlen(w);
    return strncasecmp(s, w, n) == 0 && !isalnum((unsigned char)s[n]);
}

/* Leading filler: cue phrases and the words around an email that was cut. */
static const char *const fillers[] = {
    "and", "also", "my", "our", "the", "email address is", "email address", "email is", "e-mail",
    "email", "mail", "is", "ship it to", "ship them to", "ship to", "ship", "deliver it to",
    "deliver to", "send it to", "send to", "shipping address is", "shipping address",
    "address is", "address", "it's", "it is", "to", "name is", "name", "i am", "i'm", "this is",
    "please", "thanks", "thank you", "at", "for", NULL
};

static char *clean(const char *s, size_t n)
{
    for (int again = 1; again;) {
        again = 0;
        while (n && (isspace((unsigned char)*s) || strchr(":-", *s))) {
            s++;
            n--;
        }
        for (int i = 0; fillers[i]; i++) {
            size_t k = strlen(fillers[i]);
            if (k <= n && word_at(s, fillers[i])) {
                s += k;
                n -= k;
                again = 1;
                break;
            }
        }
    }
    while (n && (isspace((unsigned char)s[n - 1]) || strchr(".!?:", s[n - 1])))
        n--;
    /* trailing filler ("..., US please") */
    for (int again = 1; again;) {
        again = 0;
        static const char *const tails[] = { " please", " thanks", " thank you", " and", NULL };
        for (int i = 0; tails[i]; i++) {
            size_t k = strlen(tails[i]);
            if (n > k && strncasecmp(s + n - k, tails[i], k) == 0) {
                n -= k;
                while (n && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '.'))
                    n--;
                again = 1;
            }
        }
    }
    return strndup(s, n);
}

/* A word that joins two fields: "and", or "at" before a house number
 * ("Ann Lee at 5 Oak Ave"). Its length, or 0. */
static size_t joiner(const char *e)
{
    if (word_at(e, "and"))
        return 3;
    if (word_at(e, "at") && e[2] == ' ' && isdigit((unsigned char)e[3]))
        return 2;
    return 0;
}

/* Splits on , ; newlines and joining words. */
static int split(const char *text, struct seg *segs)
{
    int n = 0;
    const char *p = text;
    while (*p && n < SEGS_MAX) {
        const char *e = p;
        while (*e && !strchr(",;\n", *e) && !(e > p && isspace((unsigned char)e[-1]) && joiner(e)))
            e++;
        char *s = clean(p, (size_t)(e - p));
        if (s && *s)
            segs[n++].s = s;
        else
            free(s);
        p = !*e ? e : strchr(",;\n", *e) ? e + 1 : e + joiner(e);
    }
    return n;
}

/* ---- the address ---- */

static int street_like(const char *s)
{
    static const char *const words[] = { "st", "st.", "street", "ave", "ave.", "avenue", "rd",
                                         "road", "blvd", "boulevard", "ln", "lane", "dr", "drive",
                                         "way", "ct", "court", "pl", "place", "hwy", "highway",
                                         "rue", NULL };
    static const char *const suffixes[] = { "strasse", "stra\xc3\x9f" "e", "weg", "gasse",
                                            "platz", "laan", "straat", "gade", "vej", NULL };
    /* "5 Oak Ave", "221B Baker Street": a house number (up to 4 digits, a
     * postal code has more) and then words */
    size_t d = 0;
    while (isdigit((unsigned char)s[d]))
        d++;
    const char *sp = strchr(s, ' ');
    if (d >= 1 && d <= 4 && sp && (size_t)(sp - s) <= d + 1 && all_alpha(sp + 1))
        return 1;
    /* "Main Street 12", "Hauptstraße 5" */
    char *dup = strdup(s), *save = NULL;
    int hit = 0;
    for (char *w = dup ? strtok_r(dup, " ", &save) : NULL; w && !hit; w = strtok_r(NULL, " ", &save)) {
        for (int i = 0; words[i] && !hit; i++)
            hit = strcasecmp(w, words[i]) == 0;
        size_t wl = strlen(w);
        for (int i = 0; suffixes[i] && !hit; i++) {
            size_t sl = strlen(suffixes[i]);
            hit = wl > sl && strcasecmp(w + wl - sl, suffixes[i]) == 0;
        }
    }
    free(dup);
    return hit && has_digit(s);
}

static int extended_like(const char *s)
{
    return word_at(s, "apt") || word_at(s, "apt.") || word_at(s, "apartment") ||
           word_at(s, "suite") || word_at(s, "unit") || word_at(s, "floor") || s[0] == '#';
}

struct addr {
    char *street, *extended, *city, *region, *postal, *country;
};

/* Postal code, region and country out of the tokens of the segments after
 * the street; the city is what is left of the first of them. */
static void read_place(struct seg *segs, int from, int n, struct addr *a, char *ccbuf)
{
    char *tok[TOKS_MAX];
    int tseg[TOKS_MAX], used[TOKS_MAX] = { 0 }, nt = 0;
    char *copies[SEGS_MAX] = { 0 };
    for (int i = from; i < n && nt < TOKS_MAX; i++) {
        if (segs[i].used)
            continue;
        copies[i] = strdup(segs[i].s);
        char *save = NULL;
        for (char *w = copies[i] ? strtok_r(copies[i], " ", &save) : NULL; w && nt < TOKS_MAX;
             w = strtok_r(NULL, " ", &save)) {
            tok[nt] = w;
            tseg[nt++] = i;
        }
    }
    int pz = -1; /* the postal code's (last) token */
    for (int k = nt - 1; k >= 0 && pz < 0; k--)
        if (has_digit(tok[k]))
            pz = k;
    int pstart = pz;
    if (pz > 0 && tseg[pz - 1] == tseg[pz] && has_digit(tok[pz - 1]) && strlen(tok[pz]) <= 4)
        pstart = pz - 1; /* "SW1A 1AA", "K1A 0B1" */
    if (pz >= 0) {
        size_t len = 0;
        for (int k = pstart; k <= pz; k++)
            len += strlen(tok[k]) + 1;
        a->postal = calloc(1, len);
        for (int k = pstart; a->postal && k <= pz; k++) {
            if (k > pstart)
                strcat(a->postal, " ");
            strcat(a->postal, tok[k]);
            used[k] = 1;
        }
        /* a country right after it: "IL 62701 US" */
        if (pz + 1 < nt && tseg[pz + 1] == tseg[pz] && !a->country) {
            char rest[128] = "";
            for (int k = pz + 1; k < nt && tseg[k] == tseg[pz]; k++) {
                if (strlen(rest) + strlen(tok[k]) + 2 >= sizeof rest)
                    break;
                if (*rest)
                    strcat(rest, " ");
                strcat(rest, tok[k]);
            }
            const char *cc = country_code(rest, ccbuf);
            if (cc) {
                a->country = strdup(cc);
                for (int k = pz + 1; k < nt && tseg[k] == tseg[pz]; k++)
                    used[k] = 1;
            }
        }
        /* the region just before it: "TX 78701", "New York 10001" */
        if (pstart > 0 && tseg[pstart - 1] == tseg[pstart]) {
            int k = pstart - 1;
            char two[96] = "";
            if (k > 0 && tseg[k - 1] == tseg[k] && strlen(tok[k - 1]) + strlen(tok[k]) < 90) {
                strcpy(two, tok[k - 1]);
                strcat(two, " ");
                strcat(two, tok[k]);
            }
            if (*two && state_code(two)) {
                a->region = strdup(state_code(two));
                used[k - 1] = used[k] = 1;
            } else if (all_alpha(tok[k]) && (strlen(tok[k]) <= 3 || state_code(tok[k]))) {
                a->region = strdup(state_code(tok[k]) ? state_code(tok[k]) : tok[k]);
                used[k] = 1;
            }
        }
    }
    /* the city: the first segment's words left; a later short segment
     * without digits is the region ("Austin, Texas, 78701") */
    for (int i = from; i < n; i++) {
        if (segs[i].used)
            continue;
        char words[256] = "";
        int any = 0;
        for (int k = 0; k < nt; k++) {
            if (tseg[k] != i || used[k] || has_digit(tok[k]))
                continue;
            if (strlen(words) + strlen(tok[k]) + 2 >= sizeof words)
                break;
            if (*words)
                strcat(words, " ");
            strcat(words, tok[k]);
            used[k] = 1;
            any = 1;
        }
        if (!any)
            continue;
        if (!a->city) {
            a->city = strdup(words);
        } else if (!a->region) {
            a->region = strdup(state_code(words) ? state_code(words) : words);
        }
    }
    for (int i = 0; i < SEGS_MAX; i++)
        free(copies[i]);
}

static void addr_free(struct addr *a)
{
    free(a->street);
    free(a->extended);
    free(a->city);
    free(a->region);
    free(a->postal);
    free(a->country);
}

json_t *offline_parse_details(const char *text)
{
    char *work = strdup(text ? text : "");
    if (!work)
        return NULL;
    char *email = take_email(work);
    struct seg segs[SEGS_MAX] = { 0 };
    int n = split(work, segs);
    free(work);

    struct addr a = { 0 };
    char ccbuf[3];
    /* the country: the last segment, when it names one */
    if (n > 1) {
        const char *cc = country_code(segs[n - 1].s, ccbuf);
        if (cc && (strlen(segs[n - 1].s) > 2 || isupper((unsigned char)segs[n - 1].s[0]))) {
            a.country = strdup(cc);
            segs[n - 1].used = 1;
        }
    }
    int street = -1;
    for (int i = 0; i < n && street < 0; i++)
        if (!segs[i].used && street_like(segs[i].s))
            street = i;
    char *name = NULL;
    for (int i = 0; i < (street < 0 ? n : street) && !name; i++) {
        size_t words = 1;
        for (const char *p = segs[i].s; *p; p++)
            words += *p == ' ';
        if (!segs[i].used && all_alpha(segs[i].s) && words <= 5 && !country_code(segs[i].s, ccbuf))
            name = strdup(segs[i].s);
    }
    if (street >= 0) {
        a.street = strdup(segs[street].s);
        segs[street].used = 1;
        if (street + 1 < n && extended_like(segs[street + 1].s)) {
            a.extended = strdup(segs[street + 1].s);
            segs[street + 1].used = 1;
        }
        read_place(segs, street + 1, n, &a, ccbuf);
    }
    json_t *out = json_object();
    json_t *buyer = json_object();
    if (name)
        json_object_set_new(buyer, "full_name", json_string(name));
    if (email)
        json_object_set_new(buyer, "email", json_string(email));
    if (a.street && a.city && a.postal) {
        json_t *addr = json_pack("{s:s,s:s,s:s,s:s}", "street_address", a.street,
                                 "address_locality", a.city, "postal_code", a.postal,
                                 "address_country", a.country ? a.country : "US");
        if (addr && a.region)
            json_object_set_new(addr, "address_region", json_string(a.region));
        if (addr && a.extended)
            json_object_set_new(addr, "extended_address", json_string(a.extended));
        if (addr)
            json_object_set_new(out, "address", addr);
    }
    /* a name alone is not enough to do anything with */
    if (email || json_object_get(out, "address"))
        json_object_set_new(out, "buyer", buyer);
    else
        json_decref(buyer);
    if (json_object_size(out) == 0 || !json_object_get(out, "buyer") ||
        json_object_size(json_object_get(out, "buyer")) == 0)
        json_object_del(out, "buyer");
    if (json_object_size(out) == 0) {
        json_decref(out);
        out = NULL;
    }
    for (int i = 0; i < n; i++)
        free(segs[i].s);
    addr_free(&a);
    free(name);
    free(email);
    return out;
}

int offline_has_email(const char *text)
{
    char *work = strdup(text ? text : "");
    char *email = work ? take_email(work) : NULL;
    int has = email != NULL;
    free(email);
    free(work);
    return has;
}
