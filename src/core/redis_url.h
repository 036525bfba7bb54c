/* AGENTD_REDIS_URL: where Redis is and how to log in. Pure parsing, in core
 * so config validation can use it (the client itself is src/kv/redis.c). */
#ifndef AGENTD_CORE_REDIS_URL_H
#define AGENTD_CORE_REDIS_URL_H

#include "core/err.h"

struct redis_url {
    char host[256];     /* TCP host ("" for a unix socket); brackets of [v6] removed */
    int port;           /* TCP port, default 6379 */
    char path[108];     /* unix socket path ("" for TCP) */
    char user[128];     /* ACL user ("" = the default user) */
    char password[256]; /* secret; "" = no AUTH */
    int db;             /* SELECT index, 0..9999 */
};

/* redis://[[user]:password@]host[:port][/db] or unix:[//][[user]:password@]/path[?db=N].
 * User and password are percent-decoded. 0, or AGENTD_EINVAL with a reason in
 * *e that never contains the password. rediss:// (TLS) is refused: the
 * hiredis of Debian 12 has no TLS. */
int redis_url_parse(const char *url, struct redis_url *out, struct agentd_error *e);

#endif
