/* The address book's I/O: a customer's saved addresses from the catalog and
 * the store; new ones sealed (core/seal.c) into the store. Never logged. */
#include "shop/addresses.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/catalog.h"
#include "commerce/checkout.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/jsonparse.h"
#include "core/reqid.h"
#include "core/seal.h"
#include "shop/sealed_doc.h"
#include "store/store.h"

/* The customer key: the email, ASCII-lowercased (emails match ignoring case). */
static int customer_key(const char *email, char *out, size_t len)
{
    size_t n = email ? strlen(email) : 0;
    if (n == 0 || n >= len)
        return AGENTD_EINVAL;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)(email[i] >= 'A' && email[i] <= 'Z' ? email[i] + 32 : email[i]);
    return 0;
}

static int set(char **dst, const char *s)
{
    if (!s || !*s)
        return 0;
    return (*dst = strdup(s)) ? 0 : AGENTD_ENOMEM;
}

static int from_catalog(const struct saved_address *s, struct postal_address *a)
{
    return set(&a->id, s->id) || set(&a->street_address, s->street_address) ||
           set(&a->address_locality, s->city) || set(&a->address_region, s->state) ||
           set(&a->postal_code, s->postal_code) || set(&a->address_country, s->country);
}

/* A plaintext address (our own writing, below) with its row id into a;
 * 0 when it parsed. */
static int from_plain(const char *plain, size_t n, const char *id, struct postal_address *a)
{
    /* the one-pass reader's subset, unless a field holds non-ASCII text,
     * which jansson reads */
    json_t *j = jsonparse_loadb(plain, n);
    if (!j)
        j = json_loadb(plain, n, 0, NULL);
    int rc = j ? checkout_address_from_json(j, a, NULL) : AGENTD_ECORRUPT;
    json_decref(j);
    if (rc == 0 && set(&a->id, id))
        rc = AGENTD_ENOMEM;
    if (rc)
        checkout_address_clear(a);
    return rc;
}

/* A stored row into a; 0 when it opened and parsed. */
static int from_store(const struct seal_keyring *kr, const struct store_address *row,
                      struct postal_address *a)
{
    char *plain = NULL;
    size_t n = 0;
    if (!kr || seal_open(kr, row->id, row->body, &plain, &n, NULL) != 0)
        return AGENTD_ECORRUPT;
    int rc = from_plain(plain, n, row->id, a);
    OPENSSL_cleanse(plain, n);
    free(plain);
    return rc;
}

/* ---- the memo of opened rows ---- */

/* A checkout's create saves its address and the completion's refresh
 * reads it back: opening and parsing it again was most of that read. A row
 * is kept by its id, its exact sealed text and the ring that opened it, so
 * a hit is what opening would give: a row re-sealed or written by another
 * process has another text, a row deleted is not listed, and a ring not
 * holding its key is another ring (shop_set_keyring also clears). */
#define MEMO_SLOTS 64

struct memo_entry {
    const struct seal_keyring *kr;
    char *id;
    char *body;
    struct postal_address a;
};

struct shop_address_memo {
    pthread_mutex_t mu;
    uint64_t gen; /* bumped by a clear: a put opened before it is dropped */
    size_t hits;
    struct memo_entry e[MEMO_SLOTS];
};

struct shop_address_memo *shop_addresses_memo_new(void)
{
    struct shop_address_memo *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->mu, NULL);
    return m;
}

static void memo_entry_clear(struct memo_entry *e)
{
    free(e->id);
    free(e->body);
    checkout_address_clear(&e->a);
    memset(e, 0, sizeof *e);
}

void shop_addresses_memo_clear(struct shop_address_memo *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->gen++;
    for (size_t i = 0; i < MEMO_SLOTS; i++)
        memo_entry_clear(&m->e[i]);
    pthread_mutex_unlock(&m->mu);
}

void shop_addresses_memo_free(struct shop_address_memo *m)
{
    if (!m)
        return;
    shop_addresses_memo_clear(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

size_t shop_addresses_memo_hits(struct shop_address_memo *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->hits;
    pthread_mutex_unlock(&m->mu);
    return n;
}

static size_t memo_slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % MEMO_SLOTS;
}

static uint64_t memo_gen(struct shop_address_memo *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t g = m->gen;
    pthread_mutex_unlock(&m->mu);
    return g;
}

/* 0 and a copy of the row's address in a when the memo holds it. */
static int memo_get(struct shop_address_memo *m, const struct seal_keyring *kr, const char *id,
                    const char *body, struct postal_address *a)
{
    struct memo_entry *e = &m->e[memo_slot(id)];
    int rc = AGENTD_ENOTFOUND;
    pthread_mutex_lock(&m->mu);
    if (e->id && e->kr == kr && strcmp(e->id, id) == 0 && strcmp(e->body, body) == 0) {
        rc = checkout_address_copy(a, &e->a) ? AGENTD_ENOMEM : 0;
        m->hits += rc == 0;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc)
        checkout_address_clear(a);
    return rc;
}

/* Keeps a copy of a as row id with this sealed text, opened under kr while
 * the memo was at generation gen (best effort). */
static void memo_put(struct shop_address_memo *m, uint64_t gen, const struct seal_keyring *kr,
                     const char *id, const char *body, const struct postal_address *a)
{
    struct memo_entry n = { .kr = kr, .id = strdup(id), .body = strdup(body) };
    if (!n.id || !n.body || checkout_address_copy(&n.a, a)) {
        memo_entry_clear(&n);
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (m->gen == gen) {
        struct memo_entry *e = &m->e[memo_slot(id)];
        memo_entry_clear(e);
        *e = n;
        n = (struct memo_entry){ 0 };
    }
    pthread_mutex_unlock(&m->mu);
    memo_entry_clear(&n);
}

/* A stored row into a, from the memo or opened (and then kept). */
static int from_row(const struct seal_keyring *kr, struct shop_address_memo *memo,
                    const struct store_address *row, struct postal_address *a)
{
    if (!memo)
        return from_store(kr, row, a);
    if (kr && memo_get(memo, kr, row->id, row->body, a) == 0)
        return 0;
    uint64_t gen = memo_gen(memo);
    int rc = from_store(kr, row, a);
    if (rc == 0)
        memo_put(memo, gen, kr, row->id, row->body, a);
    return rc;
}

size_t shop_addresses_lookup(struct store *st, const struct seal_keyring *kr,
                             struct shop_address_memo *memo, const struct catalog *cat, const char *email,
                             struct postal_address *out, size_t max)
{
    char key[320];
    if (customer_key(email, key, sizeof key))
        return 0;
    size_t n = 0;
    const struct customer *cu = cat ? catalog_customer_by_email(cat, email) : NULL;
    if (cu) {
        const struct saved_address *sa[64];
        size_t k = catalog_customer_addresses(cat, cu->id, sa, 64);
        for (size_t i = 0; i < k && i < 64 && n < max; i++) {
            if (from_catalog(sa[i], &out[n])) {
                checkout_address_clear(&out[n]);
                return n;
            }
            n++;
        }
    }
    struct store_address *rows = NULL;
    size_t nrows = 0;
    if (n < max && st && store_address_list(st, key, (int)max, &rows, &nrows) == 0) {
        for (size_t i = 0; i < nrows && n < max; i++)
            if (from_row(kr, memo, &rows[i], &out[n]) == 0)
                n++;
        store_address_list_free(rows, nrows);
    }
    return n;
}

int shop_addresses_remember(struct store *st, const struct seal_keyring *kr,
                            struct shop_address_memo *memo, const char *email,
                            const struct postal_address *a, char *id, size_t len)
{
    char key[320];
    if (!st || !kr || !a || len < 40 || customer_key(email, key, sizeof key))
        return AGENTD_EINVAL;
    const struct {
        const char *k, *v;
    } f[] = {
        {"street_address", a->street_address}, {"extended_address", a->extended_address},
        {"address_locality", a->address_locality}, {"address_region", a->address_region},
        {"postal_code", a->postal_code}, {"address_country", a->address_country},
    };
    /* json_dumps(JSON_COMPACT)'s bytes for the object of the fields given,
     * written in place; room for every escape reserved up front, so no
     * realloc leaves an unwiped copy of the address behind */
    size_t room = 3;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v)
            room += strlen(f[i].k) + 6 * strlen(f[i].v) + 6;
    struct buf b = { 0 };
    buf_reserve(&b, room);
    buf_append(&b, "{", 1);
    int rc = b.oom ? AGENTD_ENOMEM : 0;
    for (size_t i = 0, first = 1; rc == 0 && i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].v)
            continue;
        if (!first)
            buf_append(&b, ",", 1);
        first = 0;
        rc = buf_json_str(&b, f[i].k, strlen(f[i].k));
        buf_append(&b, ":", 1);
        if (rc == 0)
            rc = buf_json_str(&b, f[i].v, strlen(f[i].v));
    }
    buf_append(&b, "}", 1);
    if (rc == 0 && b.oom)
        rc = AGENTD_ENOMEM;
    if (rc) {
        if (b.data)
            OPENSSL_cleanse(b.data, b.cap);
        buf_free(&b);
        return rc;
    }
    const char *plain = b.data;
    id_new("addr_", id, len);
    char *sealed = NULL;
    uint64_t gen = memo ? memo_gen(memo) : 0;
    rc = seal_seal(kr, id, plain, b.len, &sealed);
    /* what a lookup opening this row would give, for the memo: parsed
     * from the very text sealed */
    struct postal_address opened = { 0 };
    int kept = memo && rc == 0 && from_plain(plain, b.len, id, &opened) == 0;
    OPENSSL_cleanse(b.data, b.cap);
    buf_free(&b);
    if (rc == 0)
        rc = store_address_save(st, id, key, sealed);
    if (rc == 0 && kept)
        memo_put(memo, gen, kr, id, sealed, &opened);
    checkout_address_clear(&opened);
    free(sealed);
    return rc;
}

/* ---- key rotation ---- */

/* One row under the current key: which counter it goes to. */
static size_t *address_rotate(struct store *st, const struct seal_keyring *kr,
                              const struct store_address *row, struct sealed_rotation *out)
{
    if (seal_is_current(kr, row->body))
        return &out->current;
    char *plain = NULL, *sealed = NULL;
    size_t n = 0;
    int rc = seal_open(kr, row->id, row->body, &plain, &n, NULL);
    if (rc == AGENTD_ECORRUPT)
        return &out->unreadable; /* a key not in the ring: left as it is */
    if (rc == 0)
        rc = seal_seal(kr, row->id, plain, n, &sealed);
    if (plain) {
        OPENSSL_cleanse(plain, n);
        free(plain);
    }
    /* a row changed under us was re-sealed by someone else: a conflict is
     * a failure to count, and the next run finds it current */
    if (rc == 0)
        rc = store_address_reseal(st, row->id, row->body, sealed);
    free(sealed);
    return rc == 0 ? &out->resealed : &out->failed;
}

int shop_addresses_rotate(struct store *st, const struct seal_keyring *kr,
                          struct sealed_rotation *out, struct agentd_error *e)
{
    memset(out, 0, sizeof *out);
    char after[128] = "";
    for (;;) {
        struct store_address *v = NULL;
        size_t n = 0;
        int rc = store_address_list_after(st, after, 100, &v, &n);
        if (rc)
            return agentd_fail(e, rc, agentd_err_code(rc), NULL, "listing saved addresses: %s",
                               agentd_err_msg(rc));
        for (size_t i = 0; i < n; i++) {
            (*address_rotate(st, kr, &v[i], out))++;
            out->scanned++;
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", v[n - 1].id);
        store_address_list_free(v, n);
        if (n < 100)
            return 0;
    }
}
