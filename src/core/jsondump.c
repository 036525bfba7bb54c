/* A compact JSON writer for jansson trees, byte for byte json_dumps'
 * JSON_COMPACT output: jansson's dumper snprintf's and hashes every
 * container's address to detect cycles, which was most of its cost here.
 * Our trees have no cycles; a depth bound stands in for the check. */
#include "core/jsondump.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define DEPTH_MAX 2048

/* Anything but JSON_COMPACT, a real precision, JSON_ENCODE_ANY and
 * JSON_SORT_KEYS: jansson does it. */
#define FLAGS_OURS (JSON_COMPACT | JSON_REAL_PRECISION(31) | JSON_ENCODE_ANY | JSON_SORT_KEYS)
#define SORT_STACK 16 /* keys sorted without a malloc */

/* One punctuation byte: in place when there is room (most of a document's
 * bytes outside its strings), else through buf_append. */
static inline void put_ch(struct buf *b, char c)
{
    if (b->len + 2 <= b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = 0;
    } else {
        buf_append(b, &c, 1);
    }
}

static void put_int(struct buf *b, json_int_t v)
{
    char tmp[24], *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* A real as jansson writes it (its precision and its ".0" rule). */
static int put_real(struct buf *b, const json_t *j, size_t flags)
{
    char *s = json_dumps(j, flags | JSON_ENCODE_ANY);
    if (!s)
        return AGENTD_ENOMEM;
    buf_puts(b, s);
    free(s);
    return 0;
}

static int put(struct buf *b, const json_t *j, size_t flags, int depth);

struct key {
    const char *s;
    size_t len;
    json_t *v;
};

/* jansson's JSON_SORT_KEYS order: the keys' bytes, a prefix first */
static int key_cmp(const void *pa, const void *pb)
{
    const struct key *a = pa, *b = pb;
    int r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return r ? r : (a->len > b->len) - (a->len < b->len);
}

/* An object's members in key order (an A2A message's fingerprint). */
static int put_sorted(struct buf *b, const json_t *j, size_t flags, int depth)
{
    size_t n = json_object_size(j), i = 0;
    struct key stack[SORT_STACK], *k = n <= SORT_STACK ? stack : malloc(n * sizeof *k);
    if (!k)
        return AGENTD_ENOMEM;
    for (void *it = json_object_iter((json_t *)j); it && i < n;
         it = json_object_iter_next((json_t *)j, it), i++)
        k[i] = (struct key){ json_object_iter_key(it), json_object_iter_key_len(it),
                             json_object_iter_value(it) };
    qsort(k, i, sizeof *k, key_cmp);
    int rc = 0;
    buf_append(b, "{", 1);
    for (size_t m = 0; m < i && rc == 0; m++) {
        if (m)
            buf_append(b, ",", 1);
        rc = buf_json_str(b, k[m].s, k[m].len);
        buf_append(b, ":", 1);
        if (rc == 0)
            rc = put(b, k[m].v, flags, depth + 1);
    }
    buf_append(b, "}", 1);
    if (k != stack)
        free(k);
    return rc;
}

static int put(struct buf *b, const json_t *j, size_t flags, int depth)
{
    if (depth > DEPTH_MAX)
        return AGENTD_EINVAL;
    int rc = 0;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        if (flags & JSON_SORT_KEYS) {
            rc = put_sorted(b, j, flags, depth);
            break;
        }
        put_ch(b, '{');
        int first = 1;
        for (void *it = json_object_iter((json_t *)j); it && rc == 0;
             it = json_object_iter_next((json_t *)j, it)) {
            if (!first)
                put_ch(b, ',');
            first = 0;
            rc = buf_json_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
            put_ch(b, ':');
            if (rc == 0)
                rc = put(b, json_object_iter_value(it), flags, depth + 1);
        }
        put_ch(b, '}');
        break;
    }
    case JSON_ARRAY: {
        put_ch(b, '[');
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (i)
                put_ch(b, ',');
            rc = put(b, json_array_get(j, i), flags, depth + 1);
        }
        put_ch(b, ']');
        break;
    }
    case JSON_STRING:
        rc = buf_json_str(b, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER: put_int(b, json_integer_value(j)); break;
    case JSON_REAL: rc = put_real(b, j, flags); break;
    case JSON_TRUE: buf_append(b, "true", 4); break;
    case JSON_FALSE: buf_append(b, "false", 5); break;
    case JSON_NULL: buf_append(b, "null", 4); break;
    }
    return rc ? rc : b->oom ? AGENTD_ENOMEM : 0;
}

int jsondump_buf(struct buf *b, const json_t *j, size_t flags)
{
    if (!j)
        return AGENTD_EINVAL;
    /* a top-level scalar only with JSON_ENCODE_ANY (json_dumps refuses it
     * without: so does the fallback) */
    if ((flags & ~(size_t)FLAGS_OURS) || !(flags & JSON_COMPACT) ||
        (!(flags & JSON_ENCODE_ANY) && !(json_is_object(j) || json_is_array(j)))) {
        char *s = json_dumps(j, flags);
        if (!s)
            return AGENTD_EINVAL;
        buf_puts(b, s);
        free(s);
        return b->oom ? AGENTD_ENOMEM : 0;
    }
    return put(b, j, flags, 0);
}

char *jsondump(const json_t *j, size_t flags, size_t *len)
{
    struct buf b = { 0 };
    buf_reserve(&b, 1024); /* a checkout document is a few KiB: fewer reallocs */
    if (jsondump_buf(&b, j, flags) != 0 || !b.data) {
        buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.data;
}

int jsondump_has_real(const json_t *j)
{
    if (json_is_real(j))
        return 1;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if (jsondump_has_real(json_array_get(j, i)))
                return 1;
    } else if (json_is_object(j)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
            if (jsondump_has_real(v))
                return 1;
    }
    return 0;
}
