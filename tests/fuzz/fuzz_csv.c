/* Fuzz target: the CSV catalog importer (shop/catalog_csv.c) from memory.
 * Input: products.csv, inventory.csv, shipping_rates.csv, discounts.csv
 * separated by form feeds (\f); an empty part is an absent file. */
#include "fuzz.h"
#include "commerce/catalog.h"
#include "core/err.h"
#include "shop/catalog_load.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text[CATALOG_CSV_FILES] = { 0 };
    size_t len[CATALOG_CSV_FILES] = { 0 };
    const char *p = (const char *)data, *end = p + size;
    for (int k = 0; k < CATALOG_CSV_FILES && p <= end; k++) {
        const char *ff = memchr(p, '\f', (size_t)(end - p));
        const char *stop = ff ? ff : end;
        if (stop > p) {
            text[k] = p;
            len[k] = (size_t)(stop - p);
        }
        if (!ff)
            break;
        p = ff + 1;
    }
    struct agentd_error err;
    char *json = (char *)1;
    int rc = catalog_import_csv_mem("fuzz", text, len, &json, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && json == NULL && err.msg[0]);
        FUZZ_CHECK(memchr(err.msg, 0, sizeof err.msg) != NULL);
        return 0;
    }
    /* what import writes loads */
    FUZZ_CHECK(json != NULL);
    struct catalog *c = NULL;
    FUZZ_CHECK(catalog_load_json(json, strlen(json), "fuzz", &c, NULL) == 0);
    catalog_unref(c);
    free(json);
    return 0;
}
