#include "core/failpoint.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char armed[64];

void failpoint_set(const char *name)
{
    snprintf(armed, sizeof armed, "%s", name ? name : "");
}

void failpoint(const char *name)
{
    if (!armed[0] || strcmp(armed, name) != 0)
        return;
    log_msg(LOG_WARN, NULL, "failpoint %s: exiting at once (AGENTD_FAILPOINT)", name);
    _exit(FAILPOINT_EXIT);
}
