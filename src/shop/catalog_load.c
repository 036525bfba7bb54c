/* Catalog files: reads a catalog JSON file (bounded, regular files only)
 * and hands its text to the pure loader, commerce/catalog.c. */
#include "shop/catalog_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"

/* A catalog file larger than this is a mistake, not a catalog. */
#define CATALOG_FILE_MAX (64u << 20)

int catalog_load_file(const char *path, struct catalog **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (out)
        *out = NULL;
    if (!path || !out)
        return AGENTD_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int en = errno;
        if (err)
            snprintf(err, errlen, "%s: %s", path, strerror(en));
        return en == ENOENT ? AGENTD_ENOTFOUND : AGENTD_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CATALOG_FILE_MAX) {
        if (err)
            snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
                     CATALOG_FILE_MAX);
        fclose(f);
        return AGENTD_EIO;
    }
    size_t size = (size_t)st.st_size;
    char *text = malloc(size + 1);
    if (!text) {
        fclose(f);
        if (err)
            snprintf(err, errlen, "%s: out of memory", path);
        return AGENTD_ENOMEM;
    }
    size_t got = fread(text, 1, size, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != size) {
        if (err)
            snprintf(err, errlen, "%s: read failed", path);
        free(text);
        return AGENTD_EIO;
    }
    text[size] = 0;
    int rc = catalog_load_json(text, size, path, out, err, errlen);
    free(text);
    return rc;
}
