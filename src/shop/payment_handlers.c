/* Merchant-declared payment handlers (payment_handlers.json): checked at
 * import, kept in the catalog JSON, read back at load for discovery. */
#define _GNU_SOURCE
#include "shop/payment_handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/payment.h"
#include "commerce/ucp.h"
#include "shop/catalog_load.h"

static int id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return 0;
    return 1;
}

static int text_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int url_ok(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && strncmp(s, "https://", 8) == 0 && text_ok(s, 512) && !strchr(s, ' ');
}

static int bad(struct agentd_error *e, const char *label, size_t i, const char *what)
{
    return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "%s: handler %zu: %s", label, i, what);
}

/* One handler object into its normalised copy (*out); 0 or an error. */
static int check_one(const json_t *h, size_t i, const char *label, json_t **out,
                     struct agentd_error *e)
{
    *out = NULL;
    if (!json_is_object(h))
        return bad(e, label, i, "must be an object");
    const char *id = json_string_value(json_object_get(h, "id"));
    const char *name = json_string_value(json_object_get(h, "name"));
    const char *version = json_string_value(json_object_get(h, "version"));
    const json_t *spec = json_object_get(h, "spec");
    const json_t *cs = json_object_get(h, "config_schema");
    const json_t *is = json_object_get(h, "instrument_schemas");
    const json_t *config = json_object_get(h, "config");
    if (!id_ok(id))
        return bad(e, label, i, "id must be 1-64 of A-Z a-z 0-9 _ . : -");
    if (!strcmp(id, PAYMENT_MOCK_HANDLER_ID) || !strcmp(id, PAYMENT_EXAMPLE_HANDLER_ID))
        return bad(e, label, i, "id is one of agentd's built-in handlers");
    if (!text_ok(name, 128))
        return bad(e, label, i, "name must be 1-128 printable characters");
    if (!ucp_version_valid(version))
        return bad(e, label, i, "version must be a date, YYYY-MM-DD");
    /* "" is how a normalised copy writes an absent one (as discovery does) */
    if (spec && json_is_string(spec) && !json_string_value(spec)[0])
        spec = NULL;
    if (cs && json_is_string(cs) && !json_string_value(cs)[0])
        cs = NULL;
    if ((spec && !url_ok(spec)) || (cs && !url_ok(cs)))
        return bad(e, label, i, "spec and config_schema must be https URLs");
    if (is && !json_is_array(is))
        return bad(e, label, i, "instrument_schemas must be an array of https URLs");
    size_t k;
    json_t *v;
    json_array_foreach(is, k, v)
    {
        if (!url_ok(v) || k >= 8)
            return bad(e, label, i, "instrument_schemas must be at most 8 https URLs");
    }
    if (config && !json_is_object(config))
        return bad(e, label, i, "config must be an object");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "name", name,
                          "version", version, "spec", spec ? json_string_value(spec) : "",
                          "config_schema", cs ? json_string_value(cs) : "", "instrument_schemas",
                          is ? json_deep_copy(is) : json_array(), "config",
                          config ? json_deep_copy(config) : json_object());
    if (!o)
        return AGENTD_ENOMEM;
    *out = o;
    return 0;
}

int payment_handlers_check(const json_t *arr, const char *label, json_t **out,
                           struct agentd_error *e)
{
    *out = NULL;
    if (!json_is_array(arr) || json_array_size(arr) > PAYMENT_HANDLERS_MAX)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                           "%s: must be a JSON array of at most %d handler objects", label,
                           PAYMENT_HANDLERS_MAX);
    char path[128];
    if (payment_find_pan(arr, path, sizeof path) != 0) /* config is published as is */
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL,
                           "%s: %s looks like a card number", label, path);
    json_t *res = json_array();
    if (!res)
        return AGENTD_ENOMEM;
    size_t i;
    json_t *h;
    json_array_foreach(arr, i, h)
    {
        json_t *one = NULL;
        int rc = check_one(h, i, label, &one, e);
        const char *id = json_string_value(json_object_get(one, "id"));
        for (size_t k = 0; !rc && k < json_array_size(res); k++)
            if (!strcmp(id, json_string_value(json_object_get(json_array_get(res, k), "id"))))
                rc = bad(e, label, i, "duplicate id");
        if (rc || json_array_append_new(res, one)) {
            if (rc)
                json_decref(one);
            json_decref(res);
            return rc ? rc : AGENTD_ENOMEM;
        }
    }
    *out = res;
    return 0;
}

int payment_handlers_import(const char *dir, char **catalog_json, struct agentd_error *e)
{
    char *path = NULL, *text = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/%s", dir, PAYMENT_HANDLERS_FILE) < 0)
        return AGENTD_ENOMEM;
    struct agentd_error fe = {0};
    int rc = catalog_file_read(path, PAYMENT_HANDLERS_FILE_MAX, &text, &len, &fe);
    free(path);
    if (rc == AGENTD_ENOTFOUND)
        return 0; /* none declared */
    if (rc)
        return agentd_fail(e, rc, NULL, NULL, "%s: %s", PAYMENT_HANDLERS_FILE, fe.msg);
    json_error_t je;
    json_t *arr = json_loadb(text, len, 0, &je), *checked = NULL;
    free(text);
    if (!arr)
        return agentd_fail(e, AGENTD_EINVAL, "invalid", NULL, "%s:%d: invalid JSON: %s",
                           PAYMENT_HANDLERS_FILE, je.line, je.text);
    rc = payment_handlers_check(arr, PAYMENT_HANDLERS_FILE, &checked, e);
    json_decref(arr);
    if (rc)
        return rc;
    json_t *cat = json_loads(*catalog_json, 0, NULL);
    char *out = NULL;
    if (cat && json_object_set_new(cat, "payment_handlers", checked) == 0)
        out = json_dumps(cat, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    else if (!cat)
        json_decref(checked);
    json_decref(cat);
    if (!out)
        return AGENTD_ENOMEM;
    free(*catalog_json);
    *catalog_json = out;
    return 0;
}

int payment_handlers_from_catalog(const char *text, size_t len, json_t **out,
                                  struct agentd_error *e)
{
    *out = NULL;
    json_t *cat = text ? json_loadb(text, len, 0, NULL) : NULL;
    const json_t *arr = json_object_get(cat, "payment_handlers");
    int rc = arr ? payment_handlers_check(arr, "catalog payment_handlers", out, e) : 0;
    json_decref(cat);
    return rc;
}
