/* Store throughput: checkout reads, checkout compare-and-swap updates and
 * idempotency claims from several threads, plus reads under a steady writer.
 *   bench_store [--sync normal|full] [--readers N] [--threads N] [--seconds S] [--dir DIR] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "store/store.h"

#define NCHECKOUTS 1000

enum job { JOB_READ, JOB_CAS, JOB_IDEM, JOB_MIXED };

struct worker {
    struct store *s;
    enum job job;
    int index;
    atomic_int *stop;
    long ops, errors;
    pthread_t th;
};

/* About the size of a UCP checkout with two line items. */
static char document[1200];

static void *run_worker(void *p)
{
    struct worker *w = p;
    unsigned seed = (unsigned)w->index * 7919u + 1;
    char id[32], key[48], fp[65];
    int64_t version = 1;
    store_idem_fingerprint("POST", "/checkout-sessions", document, strlen(document), fp);
    /* In the mixed job thread 0 writes and the others read. */
    enum job job = w->job == JOB_MIXED ? (w->index == 0 ? JOB_CAS : JOB_READ) : w->job;
    snprintf(id, sizeof id, "own-%d", w->index);
    if (job == JOB_CAS) {
        struct store_checkout *co = NULL;
        if (store_checkout_get(w->s, id, &co) == 0)
            version = co->version;
        store_checkout_free(co);
    }
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        int rc;
        if (job == JOB_READ) {
            struct store_checkout *co = NULL;
            snprintf(id, sizeof id, "co-%u", rand_r(&seed) % NCHECKOUTS);
            rc = store_checkout_get(w->s, id, &co);
            store_checkout_free(co);
        } else if (job == JOB_CAS) {
            rc = store_checkout_update(w->s, id, version, "incomplete", document);
            version++;
        } else {
            struct store_idem *r = NULL;
            snprintf(key, sizeof key, "t%d-%ld", w->index, w->ops);
            rc = store_idem_begin(w->s, "bench", key, fp, clock_wall_ms() + 3600000, &r);
            store_idem_free(r);
        }
        if (rc)
            w->errors++;
        else
            w->ops++;
    }
    return NULL;
}

static const char *job_name(enum job j, int index)
{
    switch (j) {
    case JOB_READ: return "checkout_read";
    case JOB_CAS: return "checkout_cas_update";
    case JOB_IDEM: return "idempotency_insert";
    case JOB_MIXED: return index == 0 ? "  cas (1 writer)" : "  read (beside writer)";
    }
    return "?";
}

static int run_job(struct store *s, enum job job, int threads, double seconds, const char *sync,
                   int readers)
{
    struct worker w[64];
    atomic_int stop = 0;
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){ .s = s, .job = job, .index = i, .stop = &stop };
        if (pthread_create(&w[i].th, NULL, run_worker, &w[i]) != 0)
            return -1;
    }
    int64_t t0 = clock_mono_ns();
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, 1);
    long ops[2] = { 0, 0 }, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].th, NULL);
        ops[job == JOB_MIXED && i > 0] += w[i].ops;
        errors += w[i].errors;
    }
    double secs = (double)(clock_mono_ns() - t0) / 1e9;
    if (job == JOB_MIXED) {
        printf("%-7s %-8d %-24s %-8d %10.0f\n", sync, readers, job_name(job, 0), 1,
               (double)ops[0] / secs);
        printf("%-7s %-8d %-24s %-8d %10.0f\n", sync, readers, job_name(job, 1), threads - 1,
               (double)ops[1] / secs);
    } else {
        printf("%-7s %-8d %-24s %-8d %10.0f\n", sync, readers, job_name(job, 0), threads,
               (double)ops[0] / secs);
    }
    if (errors)
        printf("        (%ld errors)\n", errors);
    return 0;
}

int main(int argc, char **argv)
{
    const char *sync = "normal", *dir = "/tmp";
    int readers = 0, threads = 2;
    double seconds = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sync"))
            sync = argv[i + 1];
        else if (!strcmp(argv[i], "--readers"))
            readers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    }
    if (threads < 2 || threads > 64) {
        fprintf(stderr, "--threads must be 2..64\n");
        return 2;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/bench-store-%d.db", dir, (int)getpid());
    struct store_options o = {
        .url = path,
        .sync = strcmp(sync, "full") == 0 ? STORE_SYNC_FULL : STORE_SYNC_NORMAL,
        .readers = readers,
    };
    struct store *s;
    struct agentd_error err = { 0 };
    if (store_open(&o, &s, &err) != 0) {
        fprintf(stderr, "bench_store: %s\n", err.msg);
        return 1;
    }
    memset(document, 0, sizeof document);
    strcpy(document, "{\"status\":\"incomplete\",\"currency\":\"USD\",\"line_items\":[");
    while (strlen(document) < sizeof document - 120)
        strcat(document, "{\"id\":\"li_1\",\"item\":{\"id\":\"BISC-001\",\"price\":450},"
                         "\"quantity\":2},");
    strcat(document, "{}]}");
    int rc = 0;
    for (int i = 0; i < NCHECKOUTS && rc == 0; i++) {
        struct store_checkout co = { .owner = "bench", .status = "incomplete",
                                     .document = document };
        char id[32];
        snprintf(id, sizeof id, "co-%d", i);
        co.id = id;
        rc = store_checkout_create(s, &co);
    }
    for (int i = 0; i < threads && rc == 0; i++) {
        char id[32];
        snprintf(id, sizeof id, "own-%d", i);
        struct store_checkout co = { .id = id, .owner = "bench", .status = "incomplete",
                                     .document = document };
        rc = store_checkout_create(s, &co);
    }
    if (rc) {
        fprintf(stderr, "bench_store: seeding failed: %s\n", agentd_err_msg(rc));
        store_close(s);
        return 1;
    }
    run_job(s, JOB_READ, threads, seconds, sync, readers);
    run_job(s, JOB_CAS, threads, seconds, sync, readers);
    run_job(s, JOB_IDEM, threads, seconds, sync, readers);
    run_job(s, JOB_MIXED, threads, seconds, sync, readers);
    store_close(s);
    char aux[600];
    unlink(path);
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    return 0;
}
