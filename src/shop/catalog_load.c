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

int catalog_file_read(const char *path, size_t max, char **text, size_t *len,
                      struct agentd_error *e)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int en = errno;
        return agentd_fail(e, en == ENOENT ? AGENTD_ENOTFOUND : AGENTD_EIO, NULL, path, "%s",
                           strerror(en));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        fclose(f);
        return agentd_fail(e, AGENTD_EIO, NULL, path, "not a regular file of at most %zu bytes",
                           max);
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return agentd_fail(e, AGENTD_ENOMEM, NULL, path, "out of memory");
    }
    size_t got = fread(buf, 1, size, f);
    int bad = ferror(f) || got != size;
    fclose(f);
    if (bad) {
        free(buf);
        return agentd_fail(e, AGENTD_EIO, NULL, path, "read failed");
    }
    buf[size] = 0;
    *text = buf;
    *len = size;
    return 0;
}

int catalog_load_file(const char *path, struct catalog **out, struct agentd_error *e)
{
    if (e)
        *e = (struct agentd_error){ 0 };
    if (out)
        *out = NULL;
    if (!path || !out)
        return AGENTD_EINVAL;
    char *text = NULL;
    size_t size = 0;
    struct agentd_error fe = { 0 };
    int rc = catalog_file_read(path, CATALOG_FILE_MAX, &text, &size, &fe);
    if (rc)
        return agentd_fail(e, rc, NULL, NULL, "%s: %s", path, fe.msg);
    rc = catalog_load_json(text, size, path, out, e);
    free(text);
    return rc;
}
