/* agentd serve: the server process — one struct app owns config, store,
 * catalog, model client, shop, agent, routes, HTTP server and main-thread timers. */
#ifndef AGENTD_SERVE_H
#define AGENTD_SERVE_H

#include "core/config.h"

struct store;

/* Expired rows are deleted in batches of this many, each its own short
 * transaction (serve's purge timer and `agentd vacuum`). */
#define SERVE_PURGE_BATCH 500

/* Loads the config and prints every problem to stderr; the problem count. */
int serve_config_load(struct config *cfg);
/* Opens the database the config names, logging and printing why it cannot. */
int serve_store_open(const struct config *cfg, struct store **out);
/* `agentd serve`: init, start, wait for a drain or a second signal, free.
 * The exit code: 0 after a drain, 1 when start-up failed, 2 for bad config. */
int serve_run(void);

#endif
