/* A fast JSON reader for small request bodies (an A2A JSON-RPC call): one
 * pass, no per-byte stream calls, anything unusual left to jansson. */
#include "core/jsonparse.h"
#include "core/hex.h"

#include <stdint.h>
#include <string.h>

/* jansson's lexer reads through a stream one byte per call and builds each
 * token in a growing buffer: ~160 instructions a byte on a SendMessage
 * body. Here a token is read in place; a string without escapes is copied
 * once. Whatever this does not read returns NULL and jansson decides (the
 * error text of an invalid body stays jansson's). */

struct jp {
    const char *p, *end;
    int depth;
    char tmp[256]; /* an escaped string's text, when short */
};

static void jp_ws(struct jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* A string at j->p (its opening quote) -> its bytes in *out (j->tmp or in
 * place) and length; 0, or -1 when not read here. */
static int jp_str(struct jp *j, const char **out, size_t *len)
{
    const char *s = ++j->p, *q = s;
    while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20 &&
           (unsigned char)*q < 0x80)
        q++;
    if (q < j->end && *q == '"') {
        *out = s;
        *len = (size_t)(q - s);
        j->p = q + 1;
        return 0;
    }
    size_t n = 0;
    for (q = s; q < j->end; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '"') {
            *out = j->tmp;
            *len = n;
            j->p = q + 1;
            return 0;
        }
        if (c < 0x20 || c >= 0x80 || n + 3 > sizeof j->tmp)
            return -1; /* a control byte (invalid), UTF-8 or a long escaped string: jansson */
        if (c != '\\') {
            j->tmp[n++] = (char)c;
            continue;
        }
        if (++q >= j->end)
            return -1;
        switch (*q) {
        case '"': j->tmp[n++] = '"'; break;
        case '\\': j->tmp[n++] = '\\'; break;
        case '/': j->tmp[n++] = '/'; break;
        case 'b': j->tmp[n++] = '\b'; break;
        case 'f': j->tmp[n++] = '\f'; break;
        case 'n': j->tmp[n++] = '\n'; break;
        case 'r': j->tmp[n++] = '\r'; break;
        case 't': j->tmp[n++] = '\t'; break;
        case 'u': {
            if (j->end - q < 5)
                return -1;
            int v = 0;
            for (int i = 1; i <= 4; i++) {
                int h = hex_value((unsigned char)q[i]);
                if (h < 0)
                    return -1;
                v = v * 16 + h;
            }
            if (v == 0 || (v >= 0xD800 && v <= 0xDFFF))
                return -1; /* NUL and surrogate pairs: jansson's rules */
            if (v < 0x80) {
                j->tmp[n++] = (char)v;
            } else if (v < 0x800) {
                j->tmp[n++] = (char)(0xC0 | (v >> 6));
                j->tmp[n++] = (char)(0x80 | (v & 0x3F));
            } else {
                j->tmp[n++] = (char)(0xE0 | (v >> 12));
                j->tmp[n++] = (char)(0x80 | ((v >> 6) & 0x3F));
                j->tmp[n++] = (char)(0x80 | (v & 0x3F));
            }
            q += 4;
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

/* An integer of at most 18 digits (no overflow); a real, a leading zero
 * or anything longer is jansson's. */
static json_t *jp_int(struct jp *j)
{
    const char *q = j->p;
    int neg = 0;
    if (*q == '-') {
        neg = 1;
        q++;
    }
    const char *d = q;
    long long v = 0;
    while (q < j->end && *q >= '0' && *q <= '9' && q - d < 18) /* 18 digits: no overflow */
        v = v * 10 + (*q++ - '0');
    size_t nd = (size_t)(q - d);
    if (nd == 0 || (nd > 1 && *d == '0'))
        return NULL;
    if (q < j->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E'))
        return NULL;
    j->p = q;
    return json_integer(neg ? -v : v);
}

static json_t *jp_value(struct jp *j);

static json_t *jp_object(struct jp *j)
{
    json_t *o = json_object();
    j->p++;
    jp_ws(j);
    if (o && j->p < j->end && *j->p == '}') {
        j->p++;
        return o;
    }
    while (o) {
        const char *k;
        size_t kl;
        if (j->p >= j->end || *j->p != '"' || jp_str(j, &k, &kl) != 0)
            break;
        if (memchr(k, '\0', kl))
            break;
        char key[256];
        if (kl >= sizeof key)
            break; /* a long key: jansson */
        memcpy(key, k, kl); /* k may be j->tmp, which the value reuses */
        jp_ws(j);
        if (j->p >= j->end || *j->p != ':')
            break;
        j->p++;
        jp_ws(j);
        json_t *v = jp_value(j);
        if (!v || json_object_setn_new_nocheck(o, key, kl, v) != 0)
            break;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            jp_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *jp_array(struct jp *j)
{
    json_t *a = json_array();
    j->p++;
    jp_ws(j);
    if (a && j->p < j->end && *j->p == ']') {
        j->p++;
        return a;
    }
    while (a) {
        json_t *v = jp_value(j);
        if (!v || json_array_append_new(a, v) != 0)
            break;
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            jp_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static int jp_word(struct jp *j, const char *w, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static json_t *jp_value(struct jp *j)
{
    if (j->p >= j->end)
        return NULL;
    switch (*j->p) {
    case '{':
    case '[': {
        if (++j->depth > JSONPARSE_MAX_DEPTH)
            return NULL;
        json_t *v = *j->p == '{' ? jp_object(j) : jp_array(j);
        j->depth--;
        return v;
    }
    case '"': {
        const char *s;
        size_t n;
        if (jp_str(j, &s, &n) != 0 || memchr(s, '\0', n))
            return NULL;
        return json_stringn_nocheck(s, n); /* ASCII only, checked above */
    }
    case 't': return jp_word(j, "true", 4) ? json_true() : NULL;
    case 'f': return jp_word(j, "false", 5) ? json_false() : NULL;
    case 'n': return jp_word(j, "null", 4) ? json_null() : NULL;
    default:
        return (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) ? jp_int(j) : NULL;
    }
}

json_t *jsonparse_loadb(const char *s, size_t n)
{
    struct jp j = { .p = s, .end = s + n, .depth = 0 };
    if (!s)
        return NULL;
    jp_ws(&j);
    /* json_loadb without JSON_DECODE_ANY takes an object or an array only */
    if (j.p >= j.end || (*j.p != '{' && *j.p != '['))
        return NULL;
    json_t *v = jp_value(&j);
    jp_ws(&j);
    if (v && j.p != j.end) {
        json_decref(v);
        return NULL; /* trailing bytes: jansson's error */
    }
    return v;
}
