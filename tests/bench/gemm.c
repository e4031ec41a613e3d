/* gemm.c - the CPU backend's mat-mul alone: one weight shape, repacked as the backend
 * repacks it, run through cpu_matmul on the backend's thread pool for 1 to 16 tokens,
 * with the weights in cache (one matrix, used again and again) and streamed from memory
 * (copies of it filling --mb MiB, more than the caches hold, used in turn). Shows where
 * the mat-muls of a decode step go from bound by memory (1 token) to bound by the
 * kernel's arithmetic (8 tokens and more).
 *
 *   bench_gemm [--type q4_0|q8_0] [--rows 2816] [--cols 1024] [--threads 2] [--mb 160]
 */
#include "cpu_ops.h"
#include "cpu_pool.h"
#include "gguf.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* Best of 5 rounds, each over every matrix in mats[0..n): microseconds per matrix. */
static double time_matmul(struct cpu_pool *pool, struct cpu_mm *mm, const struct mdl_tensor *mats,
                          int n, int n_tok)
{
    double best = 1e30;
    int reps = n == 1 ? 50 : 1;
    for (int round = 0; round < 6; round++) {
        double t0 = now_us();
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < n; i++) {
                mm->w = &mats[i];
                cpu_matmul(pool, mm, 1, n_tok);
            }
        double us = (now_us() - t0) / (reps * n);
        if (round > 0 && us < best) /* round 0 warms up */
            best = us;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *type = "q4_0";
    long rows = 2816, cols = 1024, threads = 2, mb = 160;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--type") == 0)
            type = argv[i + 1];
        else if (strcmp(argv[i], "--rows") == 0)
            rows = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--cols") == 0)
            cols = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--mb") == 0)
            mb = atol(argv[i + 1]);
        else {
            fprintf(stderr, "bench_gemm: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    uint32_t t = strcmp(type, "q8_0") == 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_Q4_0;
    size_t rb = quant_row_bytes(t, cols);
    if (rows <= 0 || rb == 0 || threads <= 0 || mb <= 0) {
        fprintf(stderr, "bench_gemm: --cols must be a multiple of 32, the rest positive\n");
        return 2;
    }
    /* one matrix of random weights, repacked row by row as the backend repacks it */
    size_t bytes = rb * (size_t)rows;
    uint8_t *row = malloc(rb), *one = malloc(bytes);
    float *x = malloc(sizeof(float) * (size_t)cols * 16);
    uint32_t rp = quant_repacked_type(t, cols);
    srand(1);
    for (long r = 0; r < rows; r++) {
        for (long c = 0; c < cols; c++)
            x[c] = (float)(rand() % 2001 - 1000) / 1000.0f;
        if (t == GGML_TYPE_Q8_0)
            quant_row_q8_0(x, (struct quant_q8_0 *)(void *)row, cols);
        else
            quant_row_q4_0(x, (struct quant_q4_0 *)(void *)row, cols);
        if (rp)
            quant_repack_row(t, row, one + rb * (size_t)r, cols);
        else
            memcpy(one + rb * (size_t)r, row, rb);
    }
    free(row);
    uint32_t wt = rp ? rp : t;
    /* copies filling --mb MiB in huge-page backed memory, as the backend holds weights */
    int n = (int)(((size_t)mb << 20) / bytes) + 1;
    size_t stride = (bytes + 4095) & ~(size_t)4095;
    uint8_t *blob = NULL;
    if (posix_memalign((void **)&blob, (size_t)2 << 20, stride * (size_t)n) != 0)
        return 1;
    madvise(blob, stride * (size_t)n, MADV_HUGEPAGE);
    struct mdl_tensor *mats = calloc((size_t)n, sizeof(*mats));
    for (int i = 0; i < n; i++) {
        memcpy(blob + stride * (size_t)i, one, bytes);
        mats[i] = (struct mdl_tensor){wt, {(uint64_t)cols, (uint64_t)rows}, blob + stride * (size_t)i,
                                      bytes};
    }
    /* 16 rows of activations in the kernel's format */
    uint32_t at = quant_act_type(wt);
    size_t as = at == GGML_TYPE_F32 ? sizeof(float) * (size_t)cols : quant_row_bytes(at, cols);
    uint8_t *act = malloc(as * 16);
    for (int k = 0; k < 16; k++) {
        for (long c = 0; c < cols; c++)
            x[c] = (float)(rand() % 2001 - 1000) / 500.0f;
        quant_act_row(at, x, act + as * (size_t)k, cols);
    }
    float *out = malloc(sizeof(float) * (size_t)rows * 16);
    struct cpu_pool *pool;
    if (cpu_pool_new(&pool, (int)threads) != 0)
        return 1;
    struct cpu_mm mm = {NULL, act, as, NULL, out, (size_t)rows, 0};
    printf("%s %ld x %ld (%.2f MiB, kernels %s), %ld threads; streamed: %d copies\n", type, rows,
           cols, (double)bytes / (1 << 20), quant_simd_name(), threads, n);
    printf("%6s %14s %12s %14s %12s\n", "tokens", "cached us", "GMAC/s", "streamed us", "GMAC/s");
    static const int toks[] = {1, 2, 4, 8, 16};
    for (int k = 0; k < 5; k++) {
        double macs = (double)rows * (double)cols * toks[k];
        double c = time_matmul(pool, &mm, mats, 1, toks[k]);
        double s = time_matmul(pool, &mm, mats, n, toks[k]);
        printf("%6d %14.1f %12.1f %14.1f %12.1f\n", toks[k], c, macs / c / 1e3, s, macs / s / 1e3);
    }
    cpu_pool_free(pool);
    free(out);
    free(act);
    free(mats);
    free(blob);
    free(x);
    free(one);
    return 0;
}
