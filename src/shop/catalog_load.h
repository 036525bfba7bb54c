/* The catalog from disk, the I/O side of commerce/catalog.h: a catalog JSON
 * file, or a directory of UCP sample-merchant CSV files turned into that JSON. */
#ifndef AGENTD_SHOP_CATALOG_LOAD_H
#define AGENTD_SHOP_CATALOG_LOAD_H

#include <stddef.h>

#include "commerce/catalog.h"
#include "core/err.h"

/* Reads and validates a catalog file. On success *out holds one reference
 * and 0 is returned. On failure *out is NULL, e->msg holds every problem found
 * (up to CATALOG_ERRORS_MAX, one per line, each "path:LINE: field: what"),
 * and the status is AGENTD_ENOTFOUND (no such file), AGENTD_EIO (unreadable),
 * AGENTD_EMALFORMED (not JSON), AGENTD_EINVAL (invalid content) or
 * AGENTD_ENOMEM. */
int catalog_load_file(const char *path, struct catalog **out, struct agentd_error *e);

/* Reads UCP's sample-merchant CSV files from dir (products.csv,
 * inventory.csv, shipping_rates.csv, discounts.csv, promotions.csv,
 * customers.csv, addresses.csv; a missing file means
 * "none") and returns catalog JSON in the data/catalog.json format in
 * *json_out (caller frees with free()). The result is checked by loading
 * it. On failure returns AGENTD_EINVAL (problems listed in e->msg, each
 * "file.csv:LINE: column: what"), AGENTD_ENOTFOUND (no directory or no CSV
 * file in it), AGENTD_EIO or AGENTD_ENOMEM, and *json_out is NULL. */
int catalog_import_csv_dir(const char *dir, char **json_out, struct agentd_error *e);

/* The same import from memory: text[k] (len[k] bytes, NULL = the file is
 * absent) for products.csv, inventory.csv, shipping_rates.csv,
 * discounts.csv, promotions.csv, customers.csv, addresses.csv in that order; label stands for the directory in problems.
 * Results and statuses as catalog_import_csv_dir (no AGENTD_EIO). */
#define CATALOG_CSV_FILES 7
int catalog_import_csv_mem(const char *label, const char *const text[CATALOG_CSV_FILES],
                           const size_t len[CATALOG_CSV_FILES], char **json_out,
                           struct agentd_error *e);

/* The whole of a regular file of at most max bytes, NUL-terminated, in
 * *text (free()) and *len. 0, AGENTD_ENOTFOUND (no such file), AGENTD_EIO
 * or AGENTD_ENOMEM, with the reason (no path) in e->msg. */
int catalog_file_read(const char *path, size_t max, char **text, size_t *len,
                      struct agentd_error *e);

#endif
