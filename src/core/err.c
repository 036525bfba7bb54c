/* agentd status codes: lookups into the one table in err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

struct err_row { int err; const char *code; int http; const char *msg; };

static const struct err_row rows[] = {
#define X(name, code, http, msg) { AGENTD_##name, code, http, msg },
    AGENTD_ERR_MAP(X)
#undef X
};

static const struct err_row *find(int err)
{
    for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].err == err)
            return &rows[i];
    return &rows[0] + (AGENTD_EINTERNAL - AGENTD_ERR_FIRST_ - 1);
}

const char *agentd_err_code(int err) { return err == 0 ? "ok" : find(err)->code; }
int agentd_err_http(int err) { return err == 0 ? 200 : find(err)->http; }
const char *agentd_err_msg(int err) { return err == 0 ? "ok" : find(err)->msg; }

int agentd_fail(struct agentd_error *e, int status, const char *code, const char *path,
                const char *fmt, ...)
{
    if (!e)
        return status;
    snprintf(e->code, sizeof e->code, "%s", code ? code : "");
    snprintf(e->path, sizeof e->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return status;
}
