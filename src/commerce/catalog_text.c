/* Search text normalisation: a product's fields and a shopper's query cut
 * into the same lowercase, plural-folded tokens, so they compare. Pure. */
#include "commerce/catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* Text normalisation for search: lowercase ASCII, split on anything that
 * is not a letter or digit (bytes >= 0x80 count as letters so UTF-8 words
 * survive; apostrophes join, so "annie's" is one word), fold plurals. */

static int is_tok_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch >= 0x80;
}

static int ends(const char *t, size_t n, const char *suf)
{
    size_t k = strlen(suf);
    return n >= k && memcmp(t + n - k, suf, k) == 0;
}

/* A deliberately small English plural folder, applied to both the index
 * and the query, so it only has to map singular and plural to the same
 * key (cookie/cookies -> "cooky", berry/berries -> "berry",
 * peach/peaches, tomato/tomatoes, chip/chips), not produce real words. */
static size_t stem(char *t, size_t n)
{
    if (n > 4 && ends(t, n, "ies")) {
        t[n - 3] = 'y';
        n -= 2;
    } else if (n > 3 && ends(t, n, "ie")) {
        t[n - 2] = 'y';
        n -= 1;
    } else if (n > 4 && (ends(t, n, "sses") || ends(t, n, "shes") || ends(t, n, "ches") ||
                         ends(t, n, "xes") || ends(t, n, "oes"))) {
        n -= 2;
    } else if (n > 3 && t[n - 1] == 's' && t[n - 2] != 's' && t[n - 2] != 'u' &&
               t[n - 2] != 'i') {
        n -= 1;
    }
    t[n] = 0;
    return n;
}

/* Next token from *sp into tok (lowercased, stemmed); 0 at the end. */
size_t catalog_tok_next(const char **sp, const char *end, char *tok)
{
    const char *s = *sp;
    while (s < end && !is_tok_byte((unsigned char)*s))
        s++;
    size_t n = 0;
    while (s < end && (is_tok_byte((unsigned char)*s) || (*s == '\'' && n > 0))) {
        if (*s != '\'' && n + 1 < TOKEN_MAX)
            tok[n++] = (char)lower((unsigned char)*s);
        s++;
    }
    *sp = s;
    tok[n] = 0;
    return n ? stem(tok, n) : 0;
}

/* Words that carry no product meaning in shopper requests. */
int catalog_is_stopword(const char *t)
{
    static const char *const words[] = { "a",    "an",     "and",  "any",   "are",  "at",
                                         "buy",  "do",     "find", "for",   "get",  "have",
                                         "i",    "in",     "is",   "like",  "me",   "my",
                                         "need", "of",     "on",   "or",    "please",
                                         "show", "search", "some", "the",   "to",   "want",
                                         "with", "you",    "add",  "list",  "what", "your" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(t, words[i]) == 0)
            return 1;
    return 0;
}

int catalog_is_number(const char *t)
{
    for (; *t; t++)
        if (*t < '0' || *t > '9')
            return 0;
    return 1;
}

/* Appends the tokens of s to b as " tok tok" (keys=1: only meaningful
 * words, for exact-name comparison). */
void catalog_norm_append(struct buf *b, const char *s, int keys)
{
    if (!s)
        return;
    const char *end = s + strlen(s);
    char tok[TOKEN_MAX];
    while (catalog_tok_next(&s, end, tok)) {
        if (keys && (catalog_is_stopword(tok) || catalog_is_number(tok)))
            continue;
        buf_append(b, " ", 1);
        buf_puts(b, tok);
    }
}
