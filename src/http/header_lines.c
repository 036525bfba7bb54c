/* Reply header lines joined into one evhttp output-header entry (issue 14:
 * evhttp prints each entry, ~1.6 K instructions, and copies it twice). */
#include "http/header_lines.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <event2/util.h>

int http_header_lines_add(struct evkeyvalq *h, const char *key, const char *value, size_t vlen)
{
    size_t kl = strlen(key);
    struct evkeyval *kv = malloc(sizeof *kv);
    char *k = malloc(kl + 1), *v = malloc(vlen + 1);
    if (!kv || !k || !v) {
        free(kv);
        free(k);
        free(v);
        return AGENTD_ENOMEM;
    }
    memcpy(k, key, kl + 1);
    memcpy(v, value, vlen);
    v[vlen] = '\0';
    kv->key = k;
    kv->value = v;
    TAILQ_INSERT_TAIL(h, kv, next);
    return 0;
}

int http_header_text_safe(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
            return 0;
    return 1;
}

/* evhttp formats a Date for every reply that has none (gmtime_r + snprintf,
 * ~3.5 K instructions of a /healthz); this is once a second per thread. */
const char *http_date_now(void)
{
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[64];
    time_t now = time(NULL);
    if (now != cached_sec) {
        if (evutil_date_rfc1123(cached, sizeof cached, NULL) <= 0 ||
            !http_header_text_safe(cached, strlen(cached)))
            return NULL; /* never: it joins other lines */
        cached_sec = now;
    }
    return cached;
}
