/* Field tables: a struct described once, field by field (owned strings,
 * arrays, JSON, sub-structs), so that freeing, deep-copying and the string
 * members' JSON both ways are one walk each instead of a hand loop per struct. */
#ifndef AGENTD_COMMERCE_FIELDS_H
#define AGENTD_COMMERCE_FIELDS_H

#include <stddef.h>

#include <jansson.h>

enum field_kind {
    FIELD_STR,  /* char *, heap copy, NULL = absent */
    FIELD_ARR,  /* T *items at off, size_t count at n_off; T described by elem */
    FIELD_OBJ,  /* T *, one optional heap element described by elem */
    FIELD_SUB,  /* T embedded at off, described by elem */
    FIELD_JSON, /* json_t *, owned reference */
    FIELD_JSON_SHARED, /* json_t *, a reference to a value nobody changes: copies share it */
};

struct shape;

struct field {
    enum field_kind kind;
    size_t off;
    size_t n_off;              /* FIELD_ARR: offset of the count */
    const struct shape *elem;  /* FIELD_ARR, FIELD_OBJ, FIELD_SUB */
    const char *json;          /* FIELD_STR: JSON member name; NULL = not a JSON member */
};

/* A struct: its size and owned fields (plain values are copied with the
 * bytes). A type owned elsewhere gives its own clear/copy hooks instead. */
struct shape {
    size_t size;
    const struct field *fields;
    size_t n_fields;
    void (*clear)(void *obj);
    int (*copy)(void *dst, const void *src); /* leaves dst clear on failure */
};

#define FIELDS_N(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD_S(type, member, name) {FIELD_STR, offsetof(type, member), 0, NULL, name}
#define FIELD_A(type, member, count, shp)                                                      \
    {FIELD_ARR, offsetof(type, member), offsetof(type, count), &(shp), NULL}
#define FIELD_O(type, member, shp) {FIELD_OBJ, offsetof(type, member), 0, &(shp), NULL}
#define FIELD_U(type, member, shp) {FIELD_SUB, offsetof(type, member), 0, &(shp), NULL}
#define FIELD_J(type, member) {FIELD_JSON, offsetof(type, member), 0, NULL, NULL}
#define FIELD_JS(type, member) {FIELD_JSON_SHARED, offsetof(type, member), 0, NULL, NULL}

/* Element shapes shared by every table: a char * and an int64_t. */
extern const struct shape fields_str_shape;
extern const struct shape fields_i64_shape;

/* Frees everything obj owns and zeroes it (obj itself is not freed). */
void fields_clear(const struct shape *s, void *obj);
/* Frees an array of n elements of shape s (clearing each). */
void fields_arr_free(const struct shape *s, void *items, size_t n);
/* Frees an array field and leaves it empty: FIELDS_ARR_RESET(&shape, c->lines, c->n_lines). */
#define FIELDS_ARR_RESET(shp, items, n)                                                        \
    do {                                                                                       \
        fields_arr_free((shp), (items), (n));                                                  \
        (items) = NULL;                                                                        \
        (n) = 0;                                                                               \
    } while (0)
/* Deep copy of src into dst (dst's old content is not freed). 0 or
 * AGENTD_ENOMEM, dst then clear. */
int fields_copy(const struct shape *s, void *dst, const void *src);
/* A heap array copy of n elements; 0 (*out NULL when n is 0) or AGENTD_ENOMEM. */
int fields_arr_copy(const struct shape *s, const void *items, size_t n, void **out);

/* Sets each non-NULL FIELD_STR with a JSON name as a member of o.
 * 0 or AGENTD_ENOMEM. */
int fields_strs_to_json(const struct shape *s, const void *obj, json_t *o);
/* 1 if ok() holds for every non-NULL FIELD_STR of obj, else 0. */
int fields_strs_all(const struct shape *s, const void *obj, int (*ok)(const char *v));
/* Reads each FIELD_STR with a JSON name from j through get (which leaves
 * *out NULL for an absent member); stops at get's first error and returns
 * it (the caller clears obj). */
typedef int (*fields_get_fn)(const json_t *j, const char *key, char **out, void *ctx);
int fields_strs_from_json(const struct shape *s, void *obj, const json_t *j, fields_get_fn get,
                          void *ctx);

/* Parses element j of a JSON array into the zeroed slot i of items (the
 * earlier slots are there to compare with). On failure the slot may be
 * half filled: it is cleared with its shape. */
typedef int (*fields_parse_fn)(const json_t *j, void *items, size_t i, void *ctx);
/* A JSON array (anything else counts as empty) into a fresh array of shape
 * s, each element through parse; on success it replaces the array field
 * whose items pointer is at *field (a T **, passed as &obj->items) and whose
 * count is *n, the old array freed. AGENTD_ETOOLARGE when arr has more than
 * max elements (nothing parsed), AGENTD_ENOMEM, or parse's first error; on
 * failure the field is unchanged. */
int fields_arr_parse(const struct shape *s, const json_t *arr, size_t max, fields_parse_fn parse,
                     void *ctx, void *field, size_t *n);

/* What a JSON value is, for messages: "an object", "a string", "null"... */
const char *fields_json_type_name(const json_t *v);

#endif
