/* The parsed-checkout cache: an operation loads a checkout the previous one
 * saved, and parsing its document (JSON, the sealed payment) was the larger
 * part of a load. Keyed by the document's exact text, so a hit is what a
 * parse would give — any other writer (another process) changes the text. */
#include "shop/checkout_cache.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct entry {
    char *id;
    char *text;
    size_t text_len;
    struct checkout *c;
    char *plain;  /* the private payment as sealed: holds tokens, wiped when dropped */
    size_t plain_len;
    char *sealed; /* plain sealed under the checkout's id */
    uint64_t used; /* the set's clock at the last put or hit (LRU) */
};

struct set {
    pthread_mutex_t mu;
    uint64_t clock;
    struct entry e[WAYS];
};

struct checkout_cache {
    size_t n;
    struct set *sets;
};

struct checkout_cache *checkout_cache_new(size_t sets)
{
    struct checkout_cache *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    if (sets && !(cc->sets = calloc(sets, sizeof *cc->sets))) {
        free(cc);
        return NULL;
    }
    cc->n = sets;
    for (size_t i = 0; i < sets; i++)
        pthread_mutex_init(&cc->sets[i].mu, NULL);
    return cc;
}

static void entry_clear(struct entry *e)
{
    free(e->id);
    free(e->text);
    checkout_free(e->c);
    if (e->plain)
        OPENSSL_cleanse(e->plain, e->plain_len);
    free(e->plain);
    free(e->sealed);
    memset(e, 0, sizeof *e);
}

void checkout_cache_clear(struct checkout_cache *cc)
{
    for (size_t i = 0; cc && i < cc->n; i++) {
        pthread_mutex_lock(&cc->sets[i].mu);
        for (size_t k = 0; k < WAYS; k++)
            entry_clear(&cc->sets[i].e[k]);
        pthread_mutex_unlock(&cc->sets[i].mu);
    }
}

void checkout_cache_free(struct checkout_cache *cc)
{
    if (!cc)
        return;
    checkout_cache_clear(cc);
    for (size_t i = 0; i < cc->n; i++)
        pthread_mutex_destroy(&cc->sets[i].mu);
    free(cc->sets);
    free(cc);
}

static struct set *set_of(struct checkout_cache *cc, const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return &cc->sets[h % cc->n];
}

void checkout_cache_put(struct checkout_cache *cc, const struct checkout *c, const char *text)
{
    checkout_cache_put_sealed(cc, c, text, NULL, 0, NULL);
}

void checkout_cache_put_sealed(struct checkout_cache *cc, const struct checkout *c,
                               const char *text, const char *plain, size_t plain_len,
                               const char *sealed)
{
    if (!cc || !cc->n || !c || !c->id || !text)
        return;
    struct entry in = { .id = strdup(c->id), .text = strdup(text), .c = checkout_clone(c) };
    if (plain && sealed && (in.plain = malloc(plain_len ? plain_len : 1))) {
        memcpy(in.plain, plain, plain_len);
        in.plain_len = plain_len;
        in.sealed = strdup(sealed);
    }
    if (!in.id || !in.text || !in.c || (in.plain && !in.sealed)) {
        entry_clear(&in);
        return;
    }
    in.text_len = strlen(text);
    struct set *s = set_of(cc, c->id);
    pthread_mutex_lock(&s->mu);
    struct entry *slot = &s->e[0];
    for (size_t k = 0; k < WAYS; k++) {
        struct entry *e = &s->e[k];
        if (e->id && strcmp(e->id, c->id) == 0) {
            slot = e;
            break;
        }
        if (!e->id ? slot->id != NULL : slot->id && e->used < slot->used)
            slot = e; /* an empty way, else the least recently used */
    }
    struct entry old = *slot;
    in.used = ++s->clock;
    *slot = in;
    pthread_mutex_unlock(&s->mu);
    entry_clear(&old);
}

struct checkout *checkout_cache_get(struct checkout_cache *cc, const char *id, const char *text)
{
    if (!cc || !cc->n || !id || !text)
        return NULL;
    struct set *s = set_of(cc, id);
    struct checkout *c = NULL;
    size_t len = strlen(text);
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < WAYS; k++) {
        struct entry *e = &s->e[k];
        if (e->id && strcmp(e->id, id) == 0) {
            if (len == e->text_len && memcmp(e->text, text, e->text_len) == 0) {
                c = checkout_clone(e->c);
                e->used = ++s->clock;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return c;
}

char *checkout_cache_sealed(struct checkout_cache *cc, const char *id, const char *plain,
                            size_t len)
{
    if (!cc || !cc->n || !id || !plain)
        return NULL;
    struct set *s = set_of(cc, id);
    char *out = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < WAYS; k++) {
        struct entry *e = &s->e[k];
        if (e->id && strcmp(e->id, id) == 0) {
            if (e->sealed && e->plain_len == len && memcmp(e->plain, plain, len) == 0)
                out = strdup(e->sealed);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}
