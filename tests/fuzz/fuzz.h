/* Shared by the fuzz targets: the libFuzzer entry point every target defines,
 * and FUZZ_CHECK, an invariant that aborts (so libFuzzer and the replay see it). */
#ifndef AGENTD_FUZZ_H
#define AGENTD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): RelWithDebInfo builds define NDEBUG, and the replay must fail there too. */
#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
