/* Fuzz target: core/jsonparse.c, the fast reader of request bodies, against
 * jansson's json_loadb: whatever it reads, jansson reads to the same tree
 * (equal, and the same bytes dumped: member order too); what it leaves to
 * jansson is left whole (no partial tree). */
#include "fuzz.h"
#include "core/jsonparse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *fast = jsonparse_loadb((const char *)data, size);
    if (!fast)
        return 0;
    json_error_t je;
    json_t *ref = json_loadb((const char *)data, size, 0, &je);
    FUZZ_CHECK(ref != NULL);
    FUZZ_CHECK(json_equal(fast, ref));
    char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(ref, JSON_COMPACT | JSON_ENCODE_ANY);
    FUZZ_CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
    json_decref(ref);
    json_decref(fast);
    return 0;
}
