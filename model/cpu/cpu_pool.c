/* cpu_pool.c - persistent worker threads with a spin-then-sleep handshake.
 *
 * A run is published by bumping `gen` under the mutex and broadcasting; a worker
 * that sees a new generation runs its share and decrements `pending`. The caller
 * runs share 0 itself and spins until `pending` is zero. Workers spin on `gen` for a
 * while before sleeping because the wake-up latency of a condition variable (tens of
 * microseconds) would dominate a decode step, which is ~100 short parallel runs.
 */
#include "cpu_pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* A waiting thread pauses for PAUSE_SPINS rounds, then yields the CPU between checks
 * (on a machine with more runnable threads than cores the thread it waits for may be
 * the one that needs the CPU), and a worker sleeps after SPIN_LIMIT rounds. */
#define PAUSE_SPINS 2048
#define SPIN_LIMIT (1 << 14)

static void relax(int spins)
{
    if (spins < PAUSE_SPINS)
        CPU_RELAX();
    else
        sched_yield();
}

struct cpu_worker {
    struct cpu_pool *pool;
    int ith;
    pthread_t tid;
};

struct cpu_pool {
    int n;
    struct cpu_worker *workers; /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;
    atomic_int pending;
    atomic_bool stop;
    cpu_task_fn fn;
    void *ctx;
};

static void *worker_main(void *arg)
{
    struct cpu_worker *wk = arg;
    struct cpu_pool *p = wk->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int spins = 0; g == seen && spins < SPIN_LIMIT; spins++) {
            relax(spins);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen)
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load(&p->stop))
            break;
        p->fn(p->ctx, wk->ith, p->n);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
    return NULL;
}

int cpu_pool_new(struct cpu_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (int)nc : 1;
    }
    if (n_threads > 256)
        n_threads = 256;
    struct cpu_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
        if (!p->workers)
            goto fail_alloc;
    }
    for (int i = 1; i < n_threads; i++) {
        struct cpu_worker *wk = &p->workers[i - 1];
        wk->pool = p;
        wk->ith = i;
        if (pthread_create(&wk->tid, NULL, worker_main, wk) != 0) {
            p->n = i; /* join only those started */
            cpu_pool_free(p);
            return -EAGAIN;
        }
    }
    *out = p;
    return 0;

fail_alloc:
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return -ENOMEM;
}

void cpu_pool_free(struct cpu_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->workers[i - 1].tid, NULL);
    free(p->workers);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int cpu_pool_size(const struct cpu_pool *p)
{
    return p->n;
}

void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *ctx)
{
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++)
        relax(spins);
}
