/* The one function of the checkout's types: filling its error. */
#include "commerce/checkout_types.h"

#include <stdarg.h>
#include <stdio.h>

int checkout_fail(struct checkout_err *e, int status, const char *code, const char *path,
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
