/* `agentd keys create|list|revoke` (docs/security.md): the command line's
 * side of API keys, run against the store serve uses. */
#ifndef AGENTD_AUTH_KEYS_CLI_H
#define AGENTD_AUTH_KEYS_CLI_H

struct store;

/* argv[0] is the subcommand. 2 = usage (message on stderr) before anything is
 * opened, so main can call it first; else 0. */
int auth_keys_usage_check(int argc, char **argv);
/* Runs the subcommand; the exit status: 0 done, 1 failed, 2 usage. */
int auth_keys_command(struct store *st, int argc, char **argv);

#endif
