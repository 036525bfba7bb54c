/* UCP platform profiles: fetches the profile a UCP-Agent header names,
 * negotiates capabilities with it, and remembers the result per URL.
 *
 * A fetch runs on the requesting loop through http_client (never blocking it),
 * behind the SSRF guard (core/netguard.h: loopback, private, link-local,
 * metadata... refused at connect time unless the URL's host[:port] is on
 * AGENTD_PROFILE_ALLOWLIST). Results live in one cache all loops share
 * (mutex): successes for the response's Cache-Control max-age (default
 * 300 s, at most 1 h), failures 30 s, at most 1024 URLs (oldest evicted).
 * Requests on one loop for a URL being fetched wait for that fetch; other
 * loops fetch on their own, so one URL costs at most one fetch per loop.
 *
 * A profile that cannot be used (unreachable, refused, not JSON, too large,
 * no ucp.capabilities array) degrades to our full capability set: the
 * business still serves the request. Every resolution is counted in
 * agentd_ucp_profile_fetch_total{outcome}. */
#ifndef AGENTD_API_PROFILES_H
#define AGENTD_API_PROFILES_H

#include <stddef.h>
#include <stdint.h>

#include "commerce/ucp.h"
#include "core/err.h"

struct loop;
struct profiles;
struct profiles_fetch;

/* The metric's label: ok / refused / error count fetches made for a
 * request; cached counts requests answered without a fetch of their own
 * (a cache hit, a remembered failure included, or joining a fetch already
 * in flight on the same loop). */
enum profiles_outcome { PROFILES_OK, PROFILES_CACHED, PROFILES_REFUSED, PROFILES_ERROR };

struct profiles_result {
    enum profiles_outcome outcome;
    int degraded;               /* 1 = no usable profile: neg is our full set */
    struct ucp_negotiated neg;  /* what this request works with */
};

typedef void (*profiles_done_fn)(const struct profiles_result *res, void *ud);

/* A request waiting for a fetch. The caller owns it (embed it in the
 * request's state): cancel and shutdown only unlink it, so they never free
 * memory the caller still holds. */
struct profiles_wait {
    struct profiles_wait *prev, *next;
    struct profiles_fetch *f;   /* NULL when not waiting */
    profiles_done_fn done;
    void *ud;
};

struct profiles_options {
    int64_t timeout_ms;          /* whole fetch, connect included: 2000 */
    size_t max_body;             /* 256 KiB */
    size_t cache_cap;            /* 1024 URLs */
    int64_t ttl_default_ms;      /* no max-age: 300 s */
    int64_t ttl_max_ms;          /* max-age cap: 1 h */
    int64_t ttl_fail_ms;         /* failures: 30 s */
    int max_fetches_per_loop;    /* more at once degrade without fetching: 64 */
};
void profiles_options_default(struct profiles_options *o);

/* allowlist: AGENTD_PROFILE_ALLOWLIST text (NULL = none); opt NULL =
 * defaults. Returns NULL with the reason in *e (a bad allow-list entry,
 * out of memory). Registers the metric. Free with profiles_free(). */
struct profiles *profiles_new(const char *allowlist, const struct profiles_options *opt,
                              struct agentd_error *e);
/* After every loop stopped and before their event bases are freed.
 * Fetches in flight are dropped; waiting requests are unlinked without a
 * callback (their own abort path frees them). */
void profiles_free(struct profiles *p);

#define PROFILES_PENDING 1

/* On loop's thread. Returns 0 with *res filled when the answer is known now
 * (cache hit, or an error before any I/O), or PROFILES_PENDING: then
 * done(res, ud) runs later on the same loop — never inside this call —
 * unless profiles_cancel(w) runs first. p NULL = no negotiation (full set). */
int profiles_resolve(struct profiles *p, struct loop *loop, const char *url,
                     struct profiles_result *res, struct profiles_wait *w, profiles_done_fn done,
                     void *ud);
/* Stops waiting (the fetch goes on for the others and the cache). Safe on
 * a wait that already finished or was never started. Loop thread only. */
void profiles_cancel(struct profiles_wait *w);

/* 1 when url's host[:port] is on the allow-list (p NULL: 0). */
int profiles_allowlisted(const struct profiles *p, const char *url);

/* The process's instance for the UCP front (set by main before the server
 * starts, cleared after it stopped); NULL = no negotiation. */
void profiles_set_default(struct profiles *p);
struct profiles *profiles_default(void);

/* ---- pieces, public for the unit tests ---- */

/* Cache lifetime of a good profile from its Cache-Control value(s) (NULL =
 * header absent): max-age=N (the smallest if repeated; quoted allowed)
 * capped at o->ttl_max_ms; no-store or no-cache = 0 (not cached); absent
 * or malformed max-age = o->ttl_default_ms. */
int64_t profiles_ttl_ms(const char *cache_control, const struct profiles_options *o);

/* Validates a profile body and negotiates with its ucp.capabilities.
 * Returns 0, or a negative AGENTD_E* with the reason in *e. */
int profiles_parse(const char *body, size_t len, struct ucp_negotiated *neg,
                   struct agentd_error *e);

/* The shared cache (thread-safe). now_ms NULL = the monotonic clock. */
struct profiles_cache;
struct profiles_cache_entry {
    int ok;                     /* 0 = a remembered failure */
    struct ucp_negotiated neg;  /* when ok */
};
typedef int64_t (*profiles_clock_fn)(void *ud);
struct profiles_cache *profiles_cache_new(size_t cap, profiles_clock_fn now_ms, void *ud);
void profiles_cache_free(struct profiles_cache *c);
/* 1 and *out on a live entry; 0 when absent or expired (then dropped). */
int profiles_cache_get(struct profiles_cache *c, const char *url, struct profiles_cache_entry *out);
/* Replaces url's entry; ttl_ms <= 0 only drops it. When full, the oldest
 * entry goes. Returns 0 or AGENTD_ENOMEM (nothing stored). */
int profiles_cache_put(struct profiles_cache *c, const char *url,
                       const struct profiles_cache_entry *e, int64_t ttl_ms);
size_t profiles_cache_size(struct profiles_cache *c);

#endif
