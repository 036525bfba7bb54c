/* Field tables walked: clear, deep copy and the JSON string members of any
 * struct described by a struct shape (see fields.h). Pure. */
#include "commerce/fields.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

const struct shape fields_str_shape = {
    .size = sizeof(char *),
    .fields = (const struct field[]){{FIELD_STR, 0, 0, NULL, NULL}},
    .n_fields = 1,
};
const struct shape fields_i64_shape = {.size = sizeof(int64_t)};

/* Pointer slots are read and written with memcpy: the table knows offsets,
 * not types. */
static void *ptr_get(const void *obj, size_t off)
{
    void *p;
    memcpy(&p, (const char *)obj + off, sizeof p);
    return p;
}

static void ptr_set(void *obj, size_t off, const void *p)
{
    memcpy((char *)obj + off, &p, sizeof p);
}

static size_t count_get(const void *obj, size_t off)
{
    size_t n;
    memcpy(&n, (const char *)obj + off, sizeof n);
    return n;
}

static void count_set(void *obj, size_t off, size_t n)
{
    memcpy((char *)obj + off, &n, sizeof n);
}

static void clear_owned(const struct shape *s, void *obj)
{
    if (s->clear) {
        s->clear(obj);
        return;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        switch (f->kind) {
        case FIELD_STR: free(ptr_get(obj, f->off)); break;
        case FIELD_JSON:
        case FIELD_JSON_SHARED: json_decref(ptr_get(obj, f->off)); break;
        case FIELD_ARR: fields_arr_free(f->elem, ptr_get(obj, f->off), count_get(obj, f->n_off)); break;
        case FIELD_OBJ: {
            void *p = ptr_get(obj, f->off);
            if (p)
                clear_owned(f->elem, p);
            free(p);
            break;
        }
        case FIELD_SUB: clear_owned(f->elem, (char *)obj + f->off); break;
        }
    }
}

void fields_clear(const struct shape *s, void *obj)
{
    clear_owned(s, obj);
    memset(obj, 0, s->size);
}

void fields_arr_free(const struct shape *s, void *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        clear_owned(s, (char *)items + i * s->size);
    free(items);
}

/* Forgets (without freeing) every owned pointer of a byte copy, so a
 * failure half-way leaves only what was copied for fields_clear. */
static void detach(const struct shape *s, void *obj)
{
    if (s->copy) {
        memset(obj, 0, s->size);
        return;
    }
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        if (f->kind == FIELD_SUB)
            detach(f->elem, (char *)obj + f->off);
        else
            ptr_set(obj, f->off, NULL);
        if (f->kind == FIELD_ARR)
            count_set(obj, f->n_off, 0);
    }
}

/* dst is a detached byte copy of src: fills its owned fields. */
static int copy_owned(const struct shape *s, void *dst, const void *src)
{
    if (s->copy)
        return s->copy(dst, src);
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        const void *from = ptr_get(src, f->off);
        switch (f->kind) {
        case FIELD_STR:
        case FIELD_JSON: {
            void *p = !from                  ? NULL
                      : f->kind == FIELD_STR ? (void *)strdup(from)
                                             : (void *)json_deep_copy(from);
            if (from && !p)
                return AGENTD_ENOMEM;
            ptr_set(dst, f->off, p);
            break;
        }
        case FIELD_JSON_SHARED: /* never changed in place: the copy shares it */
            ptr_set(dst, f->off, json_incref((json_t *)from));
            break;
        case FIELD_ARR: {
            void *p = NULL;
            size_t n = count_get(src, f->n_off);
            if (fields_arr_copy(f->elem, from, n, &p))
                return AGENTD_ENOMEM;
            ptr_set(dst, f->off, p);
            count_set(dst, f->n_off, n);
            break;
        }
        case FIELD_OBJ: {
            if (!from)
                break;
            void *p = malloc(f->elem->size);
            if (!p || fields_copy(f->elem, p, from)) {
                free(p);
                return AGENTD_ENOMEM;
            }
            ptr_set(dst, f->off, p);
            break;
        }
        case FIELD_SUB: {
            int rc = copy_owned(f->elem, (char *)dst + f->off, (const char *)src + f->off);
            if (rc)
                return rc;
            break;
        }
        }
    }
    return 0;
}

int fields_copy(const struct shape *s, void *dst, const void *src)
{
    memcpy(dst, src, s->size);
    detach(s, dst);
    if (copy_owned(s, dst, src)) {
        fields_clear(s, dst);
        return AGENTD_ENOMEM;
    }
    return 0;
}

int fields_arr_copy(const struct shape *s, const void *items, size_t n, void **out)
{
    *out = NULL;
    if (!n)
        return 0;
    char *d = calloc(n, s->size);
    if (!d)
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (fields_copy(s, d + i * s->size, (const char *)items + i * s->size)) {
            fields_arr_free(s, d, i);
            return AGENTD_ENOMEM;
        }
    }
    *out = d;
    return 0;
}

int fields_strs_to_json(const struct shape *s, const void *obj, json_t *o)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        const char *v = f->kind == FIELD_STR && f->json ? ptr_get(obj, f->off) : NULL;
        if (v && json_object_set_new(o, f->json, json_string(v)))
            return AGENTD_ENOMEM;
    }
    return 0;
}

int fields_strs_all(const struct shape *s, const void *obj, int (*ok)(const char *v))
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        const char *v = f->kind == FIELD_STR ? ptr_get(obj, f->off) : NULL;
        if (v && !ok(v))
            return 0;
    }
    return 1;
}

int fields_strs_from_json(const struct shape *s, void *obj, const json_t *j, fields_get_fn get,
                          void *ctx)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct field *f = &s->fields[i];
        if (f->kind != FIELD_STR || !f->json)
            continue;
        char *v = NULL;
        int rc = get(j, f->json, &v, ctx);
        if (rc)
            return rc;
        ptr_set(obj, f->off, v);
    }
    return 0;
}

int fields_arr_parse(const struct shape *s, const json_t *arr, size_t max, fields_parse_fn parse,
                     void *ctx, void *field, size_t *n)
{
    size_t len = json_array_size(arr);
    if (len > max)
        return AGENTD_ETOOLARGE;
    char *items = len ? calloc(len, s->size) : NULL;
    if (len && !items)
        return AGENTD_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        int rc = parse(json_array_get(arr, i), items, i, ctx);
        if (rc) {
            fields_arr_free(s, items, i + 1);
            return rc;
        }
    }
    fields_arr_free(s, ptr_get(field, 0), *n);
    ptr_set(field, 0, items);
    *n = len;
    return 0;
}

const char *fields_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}
