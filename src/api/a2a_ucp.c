/* UCP over A2A: UI actions and the DataParts agentd answers with.
 * (First cut: the contract; the mapping lands with the A2A front.) */
#include "api/a2a_ucp.h"

#include <stdio.h>

int a2a_ucp_action(const json_t *parts, const char **tool, json_t **args, char *why, size_t len)
{
    (void)parts;
    (void)why;
    (void)len;
    *tool = NULL;
    *args = NULL;
    return 0;
}

json_t *a2a_ucp_product_results(const json_t *products)
{
    (void)products;
    return NULL;
}
