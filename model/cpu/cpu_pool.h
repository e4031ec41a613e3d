/* cpu_pool.h - a persistent pool of worker threads for the CPU backend.
 *
 * cpu_pool_run() runs fn(ctx, ith, nth) once on each of the nth threads (the calling
 * thread is ith 0) and returns when all have finished. Workers spin briefly between
 * runs (a decode step issues ~100 runs) and then sleep on a condition variable.
 * Only one thread may call cpu_pool_run at a time.
 */
#ifndef CHATD_CPU_POOL_H
#define CHATD_CPU_POOL_H

typedef void (*cpu_task_fn)(void *ctx, int ith, int nth);

struct cpu_pool;

/* n_threads >= 1 (0 = number of online CPUs). Returns 0 or a negative code. */
int cpu_pool_new(struct cpu_pool **out, int n_threads);
void cpu_pool_free(struct cpu_pool *p); /* accepts NULL */
int cpu_pool_size(const struct cpu_pool *p);
void cpu_pool_run(struct cpu_pool *p, cpu_task_fn fn, void *ctx);

#endif
