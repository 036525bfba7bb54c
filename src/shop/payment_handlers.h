/* Merchant-declared payment handlers: payment_handlers.json in a catalog
 * directory, carried in the catalog JSON and advertised beside our own. */
#ifndef AGENTD_SHOP_PAYMENT_HANDLERS_H
#define AGENTD_SHOP_PAYMENT_HANDLERS_H

#include <stddef.h>

#include <jansson.h>

#include "core/err.h"

#define PAYMENT_HANDLERS_FILE "payment_handlers.json"
#define PAYMENT_HANDLERS_MAX 16
#define PAYMENT_HANDLERS_FILE_MAX (64 * 1024)

/* Checks a JSON array of handler objects shaped like discovery's
 * payment.handlers entries: id (1-64 of [A-Za-z0-9_.:-], unique, not one
 * of our built-in ids), name (1-128 printable), version (YYYY-MM-DD),
 * spec / config_schema (https URLs, optional), instrument_schemas (array
 * of https URLs, optional), config (object, optional); no card number
 * anywhere. *out: a normalised copy (only those members; an absent
 * optional one as discovery writes it). 0, AGENTD_EINVAL (the problem,
 * prefixed by label, in e->msg) or AGENTD_ENOMEM. */
int payment_handlers_check(const json_t *arr, const char *label, json_t **out,
                           struct agentd_error *e);

/* `agentd catalog import DIR`: DIR/payment_handlers.json, when present,
 * checked and set as the "payment_handlers" member of *catalog_json (the
 * import's JSON text, replaced by a new malloc'd text). Absent: 0 and
 * nothing changes. 0, AGENTD_EINVAL, AGENTD_EIO or AGENTD_ENOMEM. */
int payment_handlers_import(const char *dir, char **catalog_json, struct agentd_error *e);

/* The "payment_handlers" member of a catalog JSON text, checked: *out a
 * new reference, NULL when there is none. 0, AGENTD_EINVAL, AGENTD_ENOMEM
 * (text that is not JSON is the catalog loader's to report: 0, NULL). */
int payment_handlers_from_catalog(const char *text, size_t len, json_t **out,
                                  struct agentd_error *e);

#endif
