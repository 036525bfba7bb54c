/* Fuzz target: a platform's UCP profile as fetched from the URL its UCP-Agent
 * header names (api/profiles.c): the body's validation and capability
 * negotiation, and the Cache-Control lifetime. Input: the Cache-Control
 * value, a newline, then the body. */
#include "fuzz.h"
#include "api/profiles.h"
#include "commerce/ucp.h"
#include "core/err.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - (const char *)data) : size;
    char *cc = malloc(hlen + 1);
    if (!cc)
        return 0;
    memcpy(cc, data, hlen);
    cc[hlen] = 0;
    struct profiles_options o;
    profiles_options_default(&o);
    int64_t ttl = profiles_ttl_ms(cc, &o);
    FUZZ_CHECK(ttl >= 0 && ttl <= o.ttl_max_ms);
    FUZZ_CHECK(profiles_ttl_ms(NULL, &o) == o.ttl_default_ms);
    free(cc);

    const char *body = nl ? nl + 1 : "";
    size_t blen = nl ? size - hlen - 1 : 0;
    struct ucp_negotiated neg;
    struct agentd_error e = { 0 };
    int rc = profiles_parse(body, blen, &neg, &e);
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && e.msg[0]);
        return 0;
    }
    FUZZ_CHECK(strcmp(neg.version, UCP_VERSION) == 0);
    FUZZ_CHECK((neg.caps & ~(unsigned)UCP_CAP_ALL) == 0);
    /* an extension is never active without the checkout it extends */
    if (neg.caps & (UCP_CAP_FULFILLMENT | UCP_CAP_DISCOUNT))
        FUZZ_CHECK(neg.caps & UCP_CAP_CHECKOUT);
    json_t *meta = ucp_response_meta_json(&neg);
    FUZZ_CHECK(meta != NULL);
    json_decref(meta);
    return 0;
}
