/* jansson's allocator: small blocks freed by a thread are kept on that
 * thread's free lists (by 16-byte size class) and handed out again; what one
 * thread frees beyond its cap goes, a batch at a time, to threads that miss. */
#include "core/jsonalloc.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <jansson.h>

/* Why: a checkout flow builds and drops ~2 000 jansson nodes (parsed
 * bodies, stored documents, replies); glibc's own per-thread cache holds 7
 * blocks per size, so most of them went through the arena (and its
 * consolidation), ~30 % of a flow's instructions. Blocks are whole malloc
 * blocks, so any of them may still be released with free() — jansson hands
 * out json_dumps text its callers free() — and one freed on another thread
 * (a tree built on a worker, dropped on the loop) joins that thread's cache.
 * A tree built on a worker and dropped on the loop (an A2A task, the call's
 * trees) fills the loop's cache and leaves the worker's empty: both then
 * fall through to malloc/free. The depot moves whole batches from a thread
 * whose class is full to one whose class is empty: one lock per BATCH
 * blocks, and the blocks keep flowing back to the threads that build. */

#define CLASS_BYTES 16
#define N_CLASSES 16   /* up to 256 bytes: jansson's nodes, pairs, small tables */
#define CLASS_CAP 128  /* blocks kept per class and thread: <= ~300 KB a thread */
#define BATCH 64       /* blocks moved to or from the depot at once */
#define DEPOT_CAP 16   /* batches the depot keeps per class: <= ~2.2 MB in all */

struct cache {
    void *head[N_CLASSES];
    unsigned n[N_CLASSES];
    int registered;
};

static _Thread_local struct cache tc;

/* Batches of one class: a batch is BATCH blocks chained by their first word;
 * its head block's second word chains the batches (every block has >= 16
 * usable bytes). Never released: bounded by DEPOT_CAP. */
static struct {
    pthread_mutex_t mu;
    void *head[N_CLASSES];
    unsigned n[N_CLASSES];
} depot = { .mu = PTHREAD_MUTEX_INITIALIZER };
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* At a thread's exit its cached blocks go back to malloc. */
static void cache_flush(void *arg)
{
    struct cache *c = arg;
    for (int k = 0; k < N_CLASSES; k++) {
        while (c->head[k]) {
            void *p = c->head[k];
            c->head[k] = *(void **)p;
            free(p);
        }
        c->n[k] = 0;
    }
    /* a later destructor dropping a tree caches again: it sets the hook
     * again, and the thread's exit runs this once more */
    c->registered = 0;
}

static void exit_key_make(void) { (void)pthread_key_create(&exit_key, cache_flush); }

/* The thread's exit hook, set before its cache first holds a block. */
static int cache_register(void)
{
    if (!tc.registered) {
        (void)pthread_once(&exit_once, exit_key_make);
        tc.registered = pthread_setspecific(exit_key, &tc) == 0 ? 1 : -1;
    }
    return tc.registered > 0;
}

/* class k is empty on this thread: a batch from the depot, if it has one.
 * Out of line, as depot_give: the hit paths stay as short as before. The
 * count is peeked without the lock (a stale 0 only means a malloc), so a
 * thread whose trees never cross (a /chat turn's) takes no lock per miss. */
__attribute__((noinline)) static void *depot_take(size_t k)
{
    if (!__atomic_load_n(&depot.n[k], __ATOMIC_RELAXED) || !cache_register())
        return NULL;
    pthread_mutex_lock(&depot.mu);
    void *b = depot.head[k];
    if (b) {
        depot.head[k] = ((void **)b)[1];
        __atomic_store_n(&depot.n[k], depot.n[k] - 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&depot.mu);
    if (!b)
        return NULL;
    tc.head[k] = *(void **)b;
    tc.n[k] = BATCH - 1;
    return b;
}

/* class k is full on this thread: its first BATCH blocks to the depot,
 * unless the depot has enough of them already (peeked first: a thread that
 * keeps freeing a class nobody takes walks no chain and takes no lock) */
__attribute__((noinline)) static void depot_give(size_t k)
{
    if (__atomic_load_n(&depot.n[k], __ATOMIC_RELAXED) >= DEPOT_CAP)
        return;
    void *b = tc.head[k], *last = b;
    for (int i = 1; i < BATCH; i++)
        last = *(void **)last;
    pthread_mutex_lock(&depot.mu);
    int room = depot.n[k] < DEPOT_CAP;
    if (room) {
        tc.head[k] = *(void **)last;
        *(void **)last = NULL;
        ((void **)b)[1] = depot.head[k];
        depot.head[k] = b;
        __atomic_store_n(&depot.n[k], depot.n[k] + 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&depot.mu);
    if (room)
        tc.n[k] -= BATCH;
}

void *jsonalloc_malloc(size_t size)
{
    size_t k = size ? (size - 1) / CLASS_BYTES : 0;
    if (k >= N_CLASSES)
        return malloc(size);
    void *p = tc.head[k];
    if (p) {
        tc.head[k] = *(void **)p;
        tc.n[k]--;
        return p;
    }
    if ((p = depot_take(k)))
        return p;
    return malloc((k + 1) * CLASS_BYTES);
}

void jsonalloc_free(void *p)
{
    if (!p)
        return;
    /* the largest class the block can serve (its usable size may be more
     * than was asked: it came from malloc, here or elsewhere) */
    size_t usable = malloc_usable_size(p);
    if (usable < CLASS_BYTES || usable >= (N_CLASSES + 1) * CLASS_BYTES) {
        free(p);
        return;
    }
    size_t k = usable / CLASS_BYTES - 1;
    if (tc.n[k] >= CLASS_CAP)
        depot_give(k);
    if (tc.n[k] >= CLASS_CAP || !cache_register()) { /* no exit hook: keep nothing */
        free(p);
        return;
    }
    *(void **)p = tc.head[k];
    tc.head[k] = p;
    tc.n[k]++;
}

size_t jsonalloc_cached(void)
{
    size_t n = 0;
    for (int k = 0; k < N_CLASSES; k++)
        n += tc.n[k];
    return n;
}

size_t jsonalloc_depot(void)
{
    size_t n = 0;
    pthread_mutex_lock(&depot.mu);
    for (int k = 0; k < N_CLASSES; k++)
        n += depot.n[k] * (size_t)BATCH;
    pthread_mutex_unlock(&depot.mu);
    return n;
}

#if defined(__SANITIZE_ADDRESS__)
#define JSONALLOC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JSONALLOC_ASAN 1
#endif
#endif

void jsonalloc_install(void)
{
#ifndef JSONALLOC_ASAN
    json_set_alloc_funcs(jsonalloc_malloc, jsonalloc_free);
#endif
}
