/* pool.c: see pool.h. Workers sleep on a condition variable between runs; a run
 * publishes (fn, arg, n) under the mutex with a new generation number, and every
 * thread, the caller included, takes items from an atomic counter. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct worker { kvb_pool *pool; int index; pthread_t tid; } worker;

struct kvb_pool {
    int             threads;
    worker         *workers;          /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t  wake, done;
    unsigned long   generation;       /* bumped by each run; workers wait for a change */
    int             busy;             /* workers still inside the current run */
    int             quit;
    int             started;          /* workers past their start function */
    kvb_pool_start_fn start;
    void           *start_arg;
    kvb_pool_fn     fn;
    void           *arg;
    int             n;
    atomic_int      next;             /* the next item to take */
};

static void take_items(kvb_pool *p, int thread)
{
    for (int i; (i = atomic_fetch_add(&p->next, 1)) < p->n;) p->fn(p->arg, i, thread);
}

static void *worker_main(void *a)
{
    worker *w = a;
    kvb_pool *p = w->pool;
    unsigned long seen = 0;
    if (p->start) p->start(p->start_arg, w->index);
    pthread_mutex_lock(&p->mu);
    p->started++;
    pthread_cond_broadcast(&p->done);
    for (;;) {
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        take_items(p, w->index);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

kvb_status kvb_pool_create(kvb_pool **out, int threads, kvb_pool_start_fn start, void *start_arg)
{
    *out = NULL;
    if (threads < 1 || threads > 1024) return KVB_STATUS_INVALID_ARG;
    kvb_pool *p = calloc(1, sizeof *p);
    if (!p) return KVB_STATUS_NO_MEMORY;
    p->threads = 1;
    p->start = start;
    p->start_arg = start_arg;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (threads > 1) {
        p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
        if (!p->workers) { kvb_pool_destroy(p); return KVB_STATUS_NO_MEMORY; }
        for (int i = 0; i < threads - 1; i++) {
            p->workers[i] = (worker){p, i + 1, 0};
            if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
                kvb_pool_destroy(p);                  /* joins the ones started */
                return KVB_STATUS_NO_MEMORY;
            }
            p->threads++;
        }
        pthread_mutex_lock(&p->mu);
        while (p->started < p->threads - 1) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    *out = p;
    return KVB_STATUS_OK;
}

void kvb_pool_destroy(kvb_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->threads - 1; i++) pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int kvb_pool_threads(const kvb_pool *p) { return p ? p->threads : 1; }

void kvb_pool_run(kvb_pool *p, int n, kvb_pool_fn fn, void *arg)
{
    if (n <= 0) return;
    if (!p || p->threads == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    atomic_store(&p->next, 0);
    p->busy = p->threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    take_items(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
