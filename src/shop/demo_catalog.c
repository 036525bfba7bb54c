/* The demo catalog (data/catalog.json) compiled into the binary, so
 * `agentd serve` sells from it with no file to find, whatever the cwd. */
#include "shop/merchant.h"

#ifndef AGENTD_DEMO_CATALOG
#error "AGENTD_DEMO_CATALOG must name data/catalog.json (set by CMake)"
#endif

__asm__(".section .rodata\n"
        ".balign 16\n"
        "agentd_demo_catalog_start:\n"
        ".incbin \"" AGENTD_DEMO_CATALOG "\"\n"
        "agentd_demo_catalog_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char agentd_demo_catalog_start[] __asm__("agentd_demo_catalog_start");
extern const char agentd_demo_catalog_end[] __asm__("agentd_demo_catalog_end");

const char *merchant_demo_catalog(size_t *len)
{
    *len = (size_t)(agentd_demo_catalog_end - agentd_demo_catalog_start);
    return agentd_demo_catalog_start;
}
