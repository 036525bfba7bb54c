/* UCP over A2A: the UI actions a client's buttons send, mapped to the retail
 * tools, and the DataParts agentd answers with (schema.org product results). */
#include "api/a2a_ucp.h"

#include "agent/tools.h"
#include "commerce/money.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

/* A part's content whatever its generation: 0.3 "kind", the sample client's
 * "type", or 1.0's field presence (Part.text / Part.data). */
static const char *part_text(const json_t *part)
{
    const char *kind = json_string_value(json_object_get(part, "kind"));
    if (!kind)
        kind = json_string_value(json_object_get(part, "type"));
    if (kind && strcmp(kind, "text") != 0)
        return NULL;
    return json_string_value(json_object_get(part, "text"));
}

static const json_t *part_data(const json_t *part)
{
    const char *kind = json_string_value(json_object_get(part, "kind"));
    if (!kind)
        kind = json_string_value(json_object_get(part, "type"));
    if (kind && strcmp(kind, "data") != 0)
        return NULL;
    const json_t *d = json_object_get(part, "data");
    return json_is_object(d) ? d : NULL;
}

/* The action object a part carries, or NULL. A text part counts only when
 * its whole text (trimmed) is a JSON object with "action": anything else is
 * something the buyer typed. *own holds a parsed text's object. */
static const json_t *part_action(const json_t *part, json_t **own)
{
    *own = NULL;
    const char *text = part_text(part);
    if (text) {
        while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
            text++;
        if (*text != '{')
            return NULL;
        json_error_t je;
        *own = json_loads(text, 0, &je);
        if (json_is_object(*own) && json_object_get(*own, "action"))
            return *own;
        json_decref(*own);
        *own = NULL;
        return NULL;
    }
    const json_t *d = part_data(part);
    return d && json_object_get(d, "action") ? d : NULL;
}

/* The actions a client can send and the tool each runs: the sample
 * client's three buttons, and the sample agent's other checkout tools. */
enum fields { F_NONE = 0, F_ID = 1, F_QTY = 2, F_QTY0 = 4 };
static const struct {
    const char *action, *tool;
    int fields;
} actions[] = {
    { "add_to_checkout", "add_to_checkout", F_ID | F_QTY },
    { "remove_from_checkout", "remove_from_checkout", F_ID },
    { "update_checkout", "update_checkout", F_ID | F_QTY0 },
    { "get_checkout", "get_checkout", F_NONE },
    { "start_payment", "start_payment", F_NONE },
    { "complete_checkout", "complete_checkout", F_NONE },
};
#define NACTIONS (sizeof actions / sizeof actions[0])

/* Fills args from the action's fields; 0, or AGENTD_EINVAL with *e. */
static int action_args(const json_t *a, int fields, json_t *args, struct agentd_error *e)
{
    const char *name = json_string_value(json_object_get(a, "action"));
    if (fields & F_ID) {
        const json_t *id = json_object_get(a, "product_id");
        if (!json_is_string(id) || !json_string_length(id)) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, "product_id",
                               "action %s needs product_id, a product id string", name);
        }
        json_object_set(args, "product_id", (json_t *)id);
    }
    if (fields & (F_QTY | F_QTY0)) {
        const json_t *q = json_object_get(a, "quantity");
        json_int_t min = (fields & F_QTY) ? 1 : 0;
        if (!q && (fields & F_QTY)) {
            json_object_set_new(args, "quantity", json_integer(1)); /* one click, one unit */
        } else if (!json_is_integer(q) || json_integer_value(q) < min ||
                   json_integer_value(q) > 9999) {
            return agentd_fail(e, AGENTD_EINVAL, NULL, "quantity",
                               "action %s needs quantity, an integer from %lld to 9999", name,
                               (long long)min);
        } else {
            json_object_set(args, "quantity", (json_t *)q);
        }
    }
    return 0;
}

/* Maps one action object to its tool; see a2a_ucp.h. */
static int map_action(const json_t *a, const char **tool, json_t **args, struct agentd_error *e)
{
    const char *name = json_string_value(json_object_get(a, "action"));
    if (!name) {
        return agentd_fail(e, AGENTD_EINVAL, NULL, "action",
                           "\"action\" must be a string naming the action");
    }
    for (size_t i = 0; i < NACTIONS; i++) {
        if (strcmp(actions[i].action, name) != 0)
            continue;
        json_t *out = json_object();
        if (!out)
            return agentd_fail(e, AGENTD_ENOMEM, NULL, NULL, "out of memory");
        int rc = action_args(a, actions[i].fields, out, e);
        struct agentd_error problems;
        if (rc == 0 && tools_validate(actions[i].tool, out, &problems) != 0)
            rc = agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "action %s: %.511s", name,
                             problems.msg);
        if (rc != 0) {
            json_decref(out);
            return rc;
        }
        *tool = actions[i].tool;
        *args = out;
        return 1;
    }
    char known[256] = "";
    size_t k = 0;
    for (size_t i = 0; i < NACTIONS && k < sizeof known; i++) {
        int n = snprintf(known + k, sizeof known - k, "%s%s", i ? ", " : "", actions[i].action);
        k += n > 0 ? (size_t)n : 0;
    }
    return agentd_fail(e, AGENTD_EINVAL, NULL, "action", "unknown action \"%.64s\" (known: %s)",
                       name, known);
}

int a2a_ucp_action(const json_t *parts, const char **tool, json_t **args, struct agentd_error *e)
{
    *tool = NULL;
    *args = NULL;
    if (e)
        *e = (struct agentd_error){ 0 };
    const json_t *found = NULL;
    json_t *found_own = NULL;
    size_t i;
    const json_t *part;
    json_array_foreach(parts, i, part) {
        json_t *own = NULL;
        const json_t *a = part_action(part, &own);
        if (!a)
            continue;
        if (found) {
            json_decref(own);
            json_decref(found_own);
            return agentd_fail(e, AGENTD_EINVAL, NULL, NULL, "a message carries at most one action");
        }
        found = a;
        found_own = own;
    }
    if (!found)
        return 0;
    int rc = map_action(found, tool, args, e);
    json_decref(found_own);
    return rc;
}

/* "4.99" from 499 minor units, as the sample's products.json writes prices. */
static json_t *major_price(json_int_t minor, const char *currency)
{
    char buf[MONEY_FORMAT_MAX];
    int exp = money_currency_exponent(currency ? currency : "USD");
    if (money_format(minor, exp, buf, sizeof buf) < 0)
        return NULL;
    return json_string(buf);
}

static json_t *product_result(const json_t *p)
{
    const char *id = json_string_value(json_object_get(p, "id"));
    if (!id)
        return NULL;
    const char *title = json_string_value(json_object_get(p, "title"));
    const char *currency = json_string_value(json_object_get(p, "currency"));
    const char *image = json_string_value(json_object_get(p, "image"));
    const char *brand = json_string_value(json_object_get(p, "brand"));
    const char *url = json_string_value(json_object_get(p, "url"));
    const char *desc = json_string_value(json_object_get(p, "description"));
    const char *category = json_string_value(json_object_get(p, "category"));
    json_t *price = major_price(json_integer_value(json_object_get(p, "price")), currency);
    /* the sample client reads image[0] and brand.name unguarded: both always there */
    json_t *images = json_array();
    if (image && *image)
        json_array_append_new(images, json_string(image));
    return json_pack("{s:s,s:s,s:s,s:o,s:{s:s,s:s},s:{s:s,s:o,s:s,s:s},s:s*,s:s,s:s*}", "@type",
                     "Product", "productID", id, "name", title ? title : id, "image", images,
                     "brand", "@type", "Brand", "name", brand ? brand : "", "offers", "@type",
                     "Offer", "price", price ? price : json_string("0"), "priceCurrency",
                     currency ? currency : "USD", "availability",
                     json_is_true(json_object_get(p, "in_stock")) ? "https://schema.org/InStock"
                                                                 : "https://schema.org/OutOfStock",
                     "url", url, "description", desc ? desc : "", "category",
                     category && *category ? category : NULL);
}

json_t *a2a_ucp_product_results(const json_t *products)
{
    if (!json_is_array(products))
        return NULL;
    json_t *results = json_array();
    if (!results)
        return NULL;
    size_t i;
    const json_t *p;
    json_array_foreach(products, i, p) {
        json_t *r = product_result(p);
        if (r)
            json_array_append_new(results, r);
    }
    return json_pack("{s:o}", "results", results);
}
