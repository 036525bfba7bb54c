/* This process's heartbeat row in the store, and the verdict on the other
 * instances sharing the database: whose heartbeat stopped (they are dead). */
#ifndef AGENTD_AGENT_HEARTBEAT_H
#define AGENTD_AGENT_HEARTBEAT_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct heartbeat {
    struct store *st;
    char id[192];
    char host[128];
    int64_t started_at;
    int64_t dead_after_ms;
    char **dead; /* the last verdict, to tell who died since */
    size_t ndead;
};

/* The beat every this many ms for a given dead-after bound: several beats
 * fit in the bound, so one slow write does not make a live process dead. */
int64_t heartbeat_every_ms(int64_t dead_after_ms);

/* st borrowed; instance is this process's id ("host.../pid/nonce"). */
void heartbeat_init(struct heartbeat *hb, struct store *st, const char *instance,
                    int64_t dead_after_ms);
/* One beat (worker pool, one at a time): writes our row, reads every row,
 * publishes the instances whose heartbeat is older than dead_after_ms as
 * dead (instance_dead_set), and removes rows dead for over an hour (their
 * work was adopted long ago; a claim of theirs left over falls back to its
 * lease). Returns how many instances are dead now that were not at the
 * previous beat (>= 0: a caller then sweeps for their work), or a negative
 * AGENTD_E* when the store failed (the verdict stays). */
int heartbeat_beat(struct heartbeat *hb, int64_t now_ms);
/* A clean stop: our row goes (nobody will wait for it). */
void heartbeat_stop(struct heartbeat *hb);
void heartbeat_free(struct heartbeat *hb);

/* agentd_instances_live and agentd_instances_dead: the rows as of the last beat. */
void heartbeat_metrics_register(void);

#endif
