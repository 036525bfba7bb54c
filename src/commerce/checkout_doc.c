/* The checkout's internal part: operation keys (exactly-once tool calls),
 * the completion claim, and their place in the store document (doc._agentd). */
#include "commerce/checkout.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "commerce/checkout_internal.h"
#include "commerce/fields.h"
#include "core/err.h"

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): what jansson accepts as a JSON string. */
static int utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t len;
        uint32_t cp;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            len = 2;
            cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3;
            cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

int checkout_op_key_check(const char *key, struct agentd_error *e)
{
    if (!key || !key[0])
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "the operation key is empty");
    size_t n = strlen(key);
    if (n > CHECKOUT_OP_KEY_MAX)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "the operation key is %zu bytes; at most %d", n, CHECKOUT_OP_KEY_MAX);
    if (!str_ok(key, CHECKOUT_OP_KEY_MAX) || !utf8_ok((const unsigned char *)key, n))
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                             "the operation key must be printable UTF-8 text");
    return 0;
}

int checkout_op_key_has(const struct checkout *c, const char *key)
{
    for (size_t i = 0; c && key && i < c->n_op_keys; i++)
        if (strcmp(c->op_keys[i], key) == 0)
            return 1;
    return 0;
}

int checkout_op_key_add(struct checkout *c, const char *key, struct agentd_error *e)
{
    int rc = checkout_op_key_check(key, e);
    if (rc)
        return rc;
    if (checkout_op_key_has(c, key))
        return 0;
    char *k = strdup(key);
    if (!k)
        return oom(e);
    if (c->n_op_keys >= CHECKOUT_OP_KEYS_MAX) {
        /* Full: drop the oldest, keep the array (no allocation to fail). */
        size_t drop = c->n_op_keys - CHECKOUT_OP_KEYS_MAX + 1;
        for (size_t i = 0; i < drop; i++)
            free(c->op_keys[i]);
        memmove(c->op_keys, c->op_keys + drop, (c->n_op_keys - drop) * sizeof *c->op_keys);
        c->n_op_keys -= drop;
    } else {
        char **n = realloc(c->op_keys, (c->n_op_keys + 1) * sizeof *n);
        if (!n) {
            free(k);
            return oom(e);
        }
        c->op_keys = n;
    }
    c->op_keys[c->n_op_keys++] = k;
    return 0;
}

int checkout_claim_set(struct checkout *c, const char *key, const char *by, int64_t at,
                       struct agentd_error *e)
{
    int rc = checkout_op_key_check(key, e);
    size_t bl = by ? strlen(by) : 0;
    for (size_t i = 0; rc == 0 && by && i < bl; i++)
        if ((unsigned char)by[i] < 0x20 || (unsigned char)by[i] == 0x7f)
            bl = 0;
    if (rc == 0 && by && (bl == 0 || bl > CHECKOUT_CLAIM_BY_MAX))
        rc = agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "bad instance id");
    if (rc)
        return rc;
    struct checkout_claim k = { .at = at };
    if (sdup(key, &k.key) || sdup(by, &k.by)) {
        fields_clear(&checkout_claim_shape, &k);
        return oom(e);
    }
    fields_clear(&checkout_claim_shape, &c->completing);
    c->completing = k;
    return 0;
}

/* doc._agentd, created when missing (NULL out of memory). */
static json_t *internal_obj(json_t *doc)
{
    json_t *in = json_object_get(doc, "_agentd");
    if (json_is_object(in))
        return in;
    if (!(in = json_object()) || json_object_set_new(doc, "_agentd", in))
        return NULL;
    return in;
}

int checkout_internal_to_doc(const struct checkout *c, json_t *doc)
{
    if (!c || !json_is_object(doc))
        return AGENTD_EINVAL;
    json_t *in = json_object_get(doc, "_agentd");
    if (c->webhook_url) {
        if (!(in = internal_obj(doc)) ||
            json_object_set_new(in, "webhook_url", json_string(c->webhook_url)))
            return AGENTD_ENOMEM;
    } else if (json_is_object(in)) {
        json_object_del(in, "webhook_url");
    }
    if (!c->n_op_keys && !c->completing.key) {
        if (json_is_object(in)) {
            json_object_del(in, "op_keys");
            json_object_del(in, "completing");
        }
        return 0;
    }
    if (!(in = internal_obj(doc)))
        return AGENTD_ENOMEM;
    if (!c->n_op_keys) {
        json_object_del(in, "op_keys");
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < c->n_op_keys; i++)
            if (json_array_append_new(arr, json_string(c->op_keys[i]))) {
                json_decref(arr);
                arr = NULL;
            }
        if (!arr || json_object_set_new(in, "op_keys", arr))
            return AGENTD_ENOMEM;
    }
    if (!c->completing.key) {
        json_object_del(in, "completing");
        return 0;
    }
    json_t *k = json_pack("{s:s,s:I}", "key", c->completing.key, "at",
                          (json_int_t)c->completing.at);
    if (k && c->completing.by && json_object_set_new(k, "by", json_string(c->completing.by))) {
        json_decref(k);
        k = NULL;
    }
    if (!k || json_object_set_new(in, "completing", k))
        return AGENTD_ENOMEM;
    return 0;
}

/* doc._agentd.completing into c->completing (absent: none). */
static int claim_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    const json_t *k = json_object_get(json_object_get(doc, "_agentd"), "completing");
    if (!k || json_is_null(k)) {
        fields_clear(&checkout_claim_shape, &c->completing);
        return 0;
    }
    const json_t *key = json_object_get(k, "key"), *by = json_object_get(k, "by");
    const json_t *at = json_object_get(k, "at");
    if (!json_is_object(k) || !json_is_string(key) || (by && !json_is_string(by)) ||
        !json_is_integer(at))
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: bad completion claim");
    struct agentd_error ignored;
    int rc = checkout_claim_set(c, json_string_value(key), json_string_value(by),
                                json_integer_value(at), &ignored);
    if (rc == AGENTD_ENOMEM)
        return oom(e);
    if (rc)
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: bad completion claim");
    return 0;
}

/* doc._agentd.op_keys into c's keys. */
static int op_keys_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    const json_t *arr = json_object_get(json_object_get(doc, "_agentd"), "op_keys");
    if (!arr || json_is_null(arr)) {
        FIELDS_ARR_RESET(&fields_str_shape, c->op_keys, c->n_op_keys);
        return 0;
    }
    if (!json_is_array(arr))
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                             "checkout document: op_keys is not an array");
    size_t n = json_array_size(arr);
    size_t skip = n > CHECKOUT_OP_KEYS_MAX ? n - CHECKOUT_OP_KEYS_MAX : 0;
    char **keys = calloc(n - skip ? n - skip : 1, sizeof *keys);
    if (!keys)
        return oom(e);
    size_t got = 0;
    int rc = 0;
    for (size_t i = skip; i < n; i++) {
        const json_t *v = json_array_get(arr, i);
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || checkout_op_key_check(s, NULL)) {
            rc = agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                               "checkout document: bad operation key");
            break;
        }
        int dup = 0;
        for (size_t k = 0; k < got && !dup; k++)
            dup = strcmp(keys[k], s) == 0;
        if (dup)
            continue; /* harmless; we never write one */
        if (!(keys[got] = strdup(s))) {
            rc = oom(e);
            break;
        }
        got++;
    }
    if (rc) {
        for (size_t i = 0; i < got; i++)
            free(keys[i]);
        free(keys);
        return rc;
    }
    if (!got) {
        free(keys);
        keys = NULL;
    }
    FIELDS_ARR_RESET(&fields_str_shape, c->op_keys, c->n_op_keys);
    c->op_keys = keys;
    c->n_op_keys = got;
    return 0;
}

/* doc._agentd.webhook_url (absent: none). */
static int webhook_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    const json_t *w = json_object_get(json_object_get(doc, "_agentd"), "webhook_url");
    free(c->webhook_url);
    c->webhook_url = NULL;
    if (!w || json_is_null(w))
        return 0;
    if (!json_is_string(w))
        return agentd_fail(e, AGENTD_ECORRUPT, "corrupt", NULL,
                           "checkout document: webhook_url is not a string");
    return (c->webhook_url = strdup(json_string_value(w))) ? 0 : oom(e);
}

int checkout_internal_from_doc(struct checkout *c, const json_t *doc, struct agentd_error *e)
{
    int rc = op_keys_from_doc(c, doc, e);
    if (rc == 0)
        rc = claim_from_doc(c, doc, e);
    return rc ? rc : webhook_from_doc(c, doc, e);
}

/* ---- JSON parsing of request pieces ---- */
