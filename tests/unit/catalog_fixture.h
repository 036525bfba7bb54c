/* Test helpers shared by test_catalog.c and test_catalog_load.c: the demo
 * catalog's path and loaders that fail the test on any problem. */
#ifndef AGENTD_TEST_CATALOG_FIXTURE_H
#define AGENTD_TEST_CATALOG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/catalog.h"
#include "shop/catalog_load.h"

/* data/catalog.json, found from AGENTD_SOURCE_DIR or from this file's
 * path (CMake compiles with absolute paths), so ctest works from any dir. */
static inline void demo_path(char *out, size_t n)
{
    const char *src = getenv("AGENTD_SOURCE_DIR");
    if (src && *src) {
        snprintf(out, n, "%s/data/catalog.json", src);
        return;
    }
    snprintf(out, n, "%s", __FILE__);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(out, n, ".");
    size_t len = strlen(out);
    snprintf(out + len, n - len, "/../../data/catalog.json");
}

static inline struct catalog *load_demo(void)
{
    char path[4096];
    struct agentd_error err;
    demo_path(path, sizeof path);
    struct catalog *c = NULL;
    int rc = catalog_load_file(path, &c, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

static inline struct catalog *load_text(const char *json)
{
    struct agentd_error err;
    struct catalog *c = NULL;
    int rc = catalog_load_json(json, strlen(json), "t.json", &c, &err);
    if (rc != 0)
        print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    return c;
}

static inline const char *resolve_id(const struct catalog *c, const char *text, int *rc)
{
    const struct product *p = NULL;
    *rc = catalog_resolve(c, text, &p);
    return p ? p->id : NULL;
}

#endif
