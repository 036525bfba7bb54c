/* Fuzz target: the RFC 8941 UCP-Agent header parser (commerce/ucp_negotiate.c),
 * with and without http:// profiles allowed. */
#include "fuzz.h"
#include "commerce/ucp.h"
#include "core/err.h"

#include <string.h>

static void check(const char *header, unsigned flags)
{
    struct ucp_agent a;
    struct agentd_error e = { 0 };
    int rc = ucp_agent_parse(header, flags, &a, &e);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(e.msg[0]);
        return;
    }
    FUZZ_CHECK(strlen(a.profile) <= UCP_PROFILE_URL_MAX);
    FUZZ_CHECK(strncmp(a.profile, "https://", 8) == 0 ||
               ((flags & UCP_AGENT_ALLOW_HTTP) && strncmp(a.profile, "http://", 7) == 0));
    FUZZ_CHECK(a.version[0] == 0 || ucp_version_valid(a.version));
    for (const char *p = a.profile; *p; p++) /* it goes into logs and an outbound request */
        FUZZ_CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    check(s, 0);
    check(s, UCP_AGENT_ALLOW_HTTP);
    free(s);
    return 0;
}
