/* agentd status codes: one X-macro table gives the enum, the wire code, the
 * default HTTP status and a human message. 0 is success; errors are negative. */
#ifndef AGENTD_CORE_ERR_H
#define AGENTD_CORE_ERR_H

/*  X(NAME,            wire code,               http, message) */
#define AGENTD_ERR_MAP(X)                                                               \
    X(EINVAL,          "invalid_request",        400, "the request is invalid")          \
    X(EMALFORMED,      "malformed_request",      400, "the request is malformed")        \
    X(EUNAUTHORIZED,   "unauthorized",           401, "authentication required")         \
    X(EFORBIDDEN,      "forbidden",              403, "not allowed")                     \
    X(ENOTFOUND,       "not_found",              404, "no such resource")                \
    X(EMETHOD,         "method_not_allowed",     405, "method not allowed")              \
    X(ETIMEOUT,        "request_timeout",        408, "the request took too long to arrive") \
    X(ECONFLICT,       "conflict",               409, "conflict with the current state") \
    X(ETOOLARGE,       "payload_too_large",      413, "the request body is too large")   \
    X(EMEDIATYPE,      "unsupported_media_type", 415, "unsupported content type")        \
    X(EUNPROCESSABLE,  "unprocessable",          422, "the values are invalid")          \
    X(ERATELIMIT,      "rate_limited",           429, "too many requests")               \
    X(EQUOTA,          "quota_exceeded",         429, "a per-principal storage quota is reached") \
    X(EHEADERS,        "headers_too_large",      431, "the request headers are too large") \
    X(EINTERNAL,       "internal_error",         500, "internal error")                  \
    X(EUNAVAILABLE,    "unavailable",            503, "temporarily unavailable")         \
    X(EMODELREFUSED,   "model_refused",          502, "the model provider refused its configuration (key, access or model)") \
    X(EBUSY,           "busy",                   503, "busy, retry later")               \
    X(ENOMEM,          "out_of_memory",          503, "out of memory")                   \
    X(EIO,             "io_error",               503, "storage I/O error")               \
    X(ECORRUPT,        "corrupt",                500, "data is corrupt")                 \
    X(EEXIST,          "exists",                 409, "already exists")                  \
    X(ESTOCK,          "out_of_stock",           409, "not enough stock")                \
    X(ESHUTDOWN,       "shutting_down",          503, "the server is shutting down")

enum agentd_err {
    AGENTD_OK = 0,
#define X(name, code, http, msg) AGENTD_##name,
    AGENTD_ERR_FIRST_ = -1000,
    AGENTD_ERR_MAP(X)
#undef X
};

/* The one message side channel beside a status: what went wrong, for the
 * caller to show. `code` is a finer wire code when one applies (a UCP message
 * code such as "missing" or "out_of_stock"; "" = the status's own), `path` a
 * JSONPath, field name or file:line, `msg` a sentence for humans. A function
 * that can explain a failure takes `struct agentd_error *e` (NULL allowed) and
 * returns the negative AGENTD_E* status; it never returns text any other way.
 * msg holds a list such as the catalog loader's problems (CATALOG_ERRORS_MAX
 * lines) and a tool's argument problems
 * (A2A shows 512 bytes); a longer list ends cut. The struct lives in
 * per-request structs (an A2A call for its whole turn), so it stays small:
 * ~2.2 KB, not a page per in-flight request. */
struct agentd_error {
    char code[48];
    char path[128];
    char msg[2048];
};

/* Fills *e (when not NULL; code/path may be NULL) and returns status, so a
 * failure reads `return agentd_fail(e, AGENTD_EINVAL, "invalid", "$.x", "...")`. */
int agentd_fail(struct agentd_error *e, int status, const char *code, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Wire code ("not_found"), default HTTP status and message for a status.
 * Unknown values map to internal_error. Returned strings are static. */
const char *agentd_err_code(int err);
int agentd_err_http(int err);
const char *agentd_err_msg(int err);

#endif
