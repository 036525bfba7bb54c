/* UCP 2026-01-11 mapping: the UCP-Agent header, versions and capability
 * negotiation (ucp_negotiate.c), checkout JSON (ucp_checkout.c), RFC 3339
 * times (ucp_time.c); the order is in order.h.
 *
 * Pure: JSON in, JSON out; no I/O. Every json_t* returned is a new
 * reference the caller json_decref()s; structs returned through out
 * pointers are freed with their *_free function. */
#ifndef AGENTD_COMMERCE_UCP_H
#define AGENTD_COMMERCE_UCP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "commerce/checkout.h"

#define UCP_VERSION "2026-01-11"
#define UCP_AGENT_HEADER_MAX 2048  /* longer UCP-Agent headers are refused */
#define UCP_PROFILE_URL_MAX 1024

#define UCP_CAP_CHECKOUT_NAME "dev.ucp.shopping.checkout"
#define UCP_CAP_FULFILLMENT_NAME "dev.ucp.shopping.fulfillment"
#define UCP_CAP_DISCOUNT_NAME "dev.ucp.shopping.discount"
#define UCP_CAP_ORDER_NAME "dev.ucp.shopping.order"
#define UCP_CAP_BUYER_CONSENT_NAME "dev.ucp.shopping.buyer_consent"

/* Bit set of our capabilities. */
enum ucp_cap {
    UCP_CAP_CHECKOUT = 1u << 0,
    UCP_CAP_FULFILLMENT = 1u << 1, /* extends checkout */
    UCP_CAP_DISCOUNT = 1u << 2,    /* extends checkout */
    UCP_CAP_ORDER = 1u << 3,
    UCP_CAP_BUYER_CONSENT = 1u << 4, /* extends checkout */
};
#define UCP_CAP_ALL                                                                            \
    (UCP_CAP_CHECKOUT | UCP_CAP_FULFILLMENT | UCP_CAP_DISCOUNT | UCP_CAP_ORDER |               \
     UCP_CAP_BUYER_CONSENT)

struct ucp_negotiated {
    char version[11];  /* the version we process with: always UCP_VERSION */
    unsigned caps;     /* UCP_CAP_* active for this exchange */
    /* the platform profile's order capability config.webhook_url: where
     * this exchange's order events go ("" = none) */
    char webhook_url[UCP_PROFILE_URL_MAX + 1];
};

/* ---- UCP-Agent header ---- */

#define UCP_AGENT_ALLOW_HTTP 0x1u  /* accept http:// profiles (tests, allow-listed hosts) */

struct ucp_agent {
    char profile[UCP_PROFILE_URL_MAX + 1];
    char version[11];  /* "" when the header has no version */
};

/* Parses a UCP-Agent header as an RFC 8941 dictionary:
 * profile="https://..." (sf-string, required), version="YYYY-MM-DD"
 * (optional) either as its own member or as a parameter of the profile
 * member (profile="..."; version="..." — the form platforms send; the
 * member wins when both are given). Other keys and parameters are allowed
 * if well-formed and ignored.
 * Refused (AGENTD_EINVAL, reason in e->msg): empty or > UCP_AGENT_HEADER_MAX,
 * non-ASCII or control bytes, bad keys or parameter keys, duplicate keys,
 * unterminated strings, bad escapes, inner lists, non-string profile or
 * version, profile not an absolute https URL, malformed version. */
int ucp_agent_parse(const char *header, unsigned flags, struct ucp_agent *out, struct agentd_error *e);

/* ---- versions ---- */

/* 1 if s is a valid YYYY-MM-DD date (month 1-12, day valid for the month). */
int ucp_version_valid(const char *s);
/* Compares two valid versions: <0, 0, >0. Invalid input compares as
 * AGENTD_EINVAL (negative, distinct from -1) — check validity first. */
int ucp_version_compare(const char *a, const char *b);
/* The client's version against ours: 0 if client <= UCP_VERSION (or
 * empty); AGENTD_EUNPROCESSABLE with code "version_unsupported" if newer;
 * AGENTD_EINVAL if malformed. */
int ucp_version_check(const char *client_version, struct agentd_error *e);

/* ---- capability negotiation ---- */

/* Intersects the platform's capabilities (a JSON array of {name, ...}, or
 * the keyed form {"<name>": [...]}, from its profile's ucp.capabilities;
 * NULL = the platform lists none) with ours by name. Every exchange is a
 * call to one of our checkout or order endpoints, which implies the
 * checkout capability: it is always in the result. A profile listing
 * neither checkout nor any of its extensions (e.g. only
 * dev.ucp.shopping.order) gets checkout with all our extensions, as with
 * no profile; otherwise the extensions are the intersection. Then
 * extensions whose parent is not in the result are pruned until nothing
 * changes. Entries that are not objects with a string name are skipped. */
int ucp_negotiate(const json_t *platform_caps, struct ucp_negotiated *out, struct agentd_error *e);
/* Negotiated set with everything we support (no profile to intersect with). */
void ucp_negotiated_all(struct ucp_negotiated *out);
/* ucp {version, capabilities[{name, version}]} for a response. */
json_t *ucp_response_meta_json(const struct ucp_negotiated *neg);
/* The same member as compact JSON text (len bytes), dumped once per
 * capability set and kept for the process's life; NULL when neg's version
 * is not ours (dump ucp_response_meta_json then) or out of memory. */
const char *ucp_response_meta_text(const struct ucp_negotiated *neg, size_t *len);
/* Our capabilities for the /.well-known/ucp profile (name, version, spec,
 * schema, extends). */
json_t *ucp_profile_capabilities_json(void);

/* ---- errors ---- */

/* {"status":"requires_escalation","detail":content,"messages":[{"type":
 * "error","code","content","severity","path"?}]} — UCP's error body plus
 * the sample merchants' top-level detail. severity NULL = "recoverable". */
json_t *ucp_error_json(const char *code, const char *content, const char *severity,
                       const char *path);
/* The buyer object; its consent only with_consent (buyer_consent
 * negotiated). */
json_t *ucp_buyer_json(const struct checkout_buyer *b, int with_consent);
/* One message object {type, code, content, severity?, path?}. */
json_t *ucp_message_json(const struct checkout_message *m);

/* ---- checkout ---- */

/* The UCP checkout response object. neg NULL = all capabilities.
 * Extensions' fields (fulfillment, discounts) appear only if negotiated. */
json_t *checkout_to_json(const struct checkout *c, const struct ucp_negotiated *neg);
/* The store document: the full response plus an "_agentd" object with
 * what the wire form omits (version, timestamps, id sequence, escalation,
 * instrument tokens). */
json_t *checkout_to_doc_json(const struct checkout *c);
/* Parses a store document (or a response object) back into a checkout.
 * Returns 0, AGENTD_ECORRUPT (not a checkout document; reason in e) or
 * AGENTD_ENOMEM. */
int checkout_from_json(const json_t *doc, struct checkout **out, struct agentd_error *e);

/* RFC 3339 UTC ("2026-01-11T10:00:00Z") from unix seconds, and back
 * (accepts Z or +hh:mm offsets, optional fraction). */
int ucp_time_format(int64_t t, char *buf, size_t len);
int ucp_time_parse(const char *s, int64_t *out);
/* Days in month m (1-12) of year y, leap years counted. */
int ucp_days_in_month(int y, int m);

#endif
