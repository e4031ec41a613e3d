/* cpu_ops.c - normalisation, RoPE, softmax, attention and the threaded mat-mul of the
 * CPU backend (see cpu_ops.h for where each op rounds and why).
 *
 * The mat-mul walks a block of weight rows and, for that block, every token of the
 * batch, so each weight row is read from memory once per forward (decode is memory
 * bound) and stays in cache while the batch reuses it (prefill).
 */
#include "cpu_ops.h"

#include "gguf.h"
#include "quant.h"

#include <math.h>
#include <string.h>

#define MM_ROW_BLOCK 16

void cpu_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)(x[i] * x[i]);
    float mean = (float)(sum / (double)n);
    float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++)
        out[i] = (x[i] * scale) * w[i];
}

void cpu_rope_table(float *cs, int n_rot, int pos, float freq_base)
{
    float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, bool neox)
{
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < n_rot / 2; i++) {
            float c = cs[2 * i];
            float s = cs[2 * i + 1];
            int i0 = neox ? i : 2 * i;
            int i1 = neox ? i + n_rot / 2 : 2 * i + 1;
            float a = v[i0];
            float b = v[i1];
            v[i0] = a * c - b * s;
            v[i1] = a * s + b * c;
        }
    }
}

void cpu_softmax(float *x, int n)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        max = fmaxf(max, x[i]);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float e = expf(x[i] - max);
        x[i] = e;
        sum += (double)e;
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* The same attention for one (token, head) with every position in one pass and the head
 * held in registers: no call per position (which is what made long contexts slow), same
 * roundings (q and the softmax output to F16, F16 K/V widened exactly to F32). head_dim is a
 * multiple of 16, at most 256. Used for every batch alike, so batch invariance holds. */
__attribute__((target("avx512f"))) static void attention_avx512(float *out, const uint16_t *q16,
                                                                const uint16_t *k,
                                                                const uint16_t *v,
                                                                size_t kv_stride, int n_pos,
                                                                int head_dim, float scale,
                                                                float *scores)
{
    int nv = head_dim / 16;
    __m512 qv[16], acc[16];
    for (int j = 0; j < nv; j++)
        qv[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q16 + 16 * j)));
    for (int t = 0; t < n_pos; t++) {
        const uint16_t *kr = k + (size_t)t * kv_stride;
        __m512 s = _mm512_setzero_ps();
        for (int j = 0; j < nv; j++)
            s = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kr + 16 * j))),
                                qv[j], s);
        scores[t] = _mm512_reduce_add_ps(s) * scale;
    }
    cpu_softmax(scores, n_pos);
    for (int j = 0; j < nv; j++)
        acc[j] = _mm512_setzero_ps();
    for (int t = 0; t < n_pos; t++) {
        const uint16_t *vr = v + (size_t)t * kv_stride;
        __m512 p = _mm512_set1_ps(quant_fp16_to_fp32(quant_fp32_to_fp16(scores[t])));
        for (int j = 0; j < nv; j++)
            acc[j] = _mm512_fmadd_ps(
                _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vr + 16 * j))), p, acc[j]);
    }
    for (int j = 0; j < nv; j++)
        _mm512_storeu_ps(out + 16 * j, acc[j]);
}
#endif

void cpu_attention(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                   size_t kv_stride, int n_pos, int head_dim, float scale, float *scores,
                   uint16_t *q16)
{
    quant_dot_fn dot = quant_dot(GGML_TYPE_F16);
    quant_axpy_fn axpy = quant_axpy_f16();
    for (int d = 0; d < head_dim; d++)
        q16[d] = quant_fp32_to_fp16(q[d]);
#if defined(__x86_64__)
    /* the SIMD kernels' switch (quant_force_plain makes tests compare with plain C) */
    bool simd = strcmp(quant_simd_name(), "avx512vnni") == 0;
    if (simd && head_dim % 16 == 0 && head_dim <= 256) {
        attention_avx512(out, q16, k, v, kv_stride, n_pos, head_dim, scale, scores);
        return;
    }
#endif
    for (int t = 0; t < n_pos; t++)
        scores[t] = dot(head_dim, k + (size_t)t * kv_stride, q16) * scale;
    cpu_softmax(scores, n_pos);
    for (int d = 0; d < head_dim; d++)
        out[d] = 0.0f;
    for (int t = 0; t < n_pos; t++) {
        float p = quant_fp16_to_fp32(quant_fp32_to_fp16(scores[t]));
        axpy(head_dim, p, v + (size_t)t * kv_stride, out);
    }
}

/* ---- mat-mul ------------------------------------------------------------------------ */

struct mm_task {
    const struct cpu_mm *jobs;
    int n_jobs;
    int n_tok;
};

static void mm_job_rows(const struct cpu_mm *j, int64_t r0, int64_t r1, int n_tok)
{
    quant_dot_fn dot = quant_dot(j->w->type);
    quant_gemm_fn gemm = quant_gemm(j->w->type);
    int64_t n = (int64_t)j->w->ne[0];
    size_t row_bytes = quant_row_bytes(j->w->type, n);
    const uint8_t *wbase = j->w->data;
    if (gemm) {
        for (int64_t rb = r0; rb < r1; rb += MM_ROW_BLOCK) {
            int nr = (int)(rb + MM_ROW_BLOCK < r1 ? MM_ROW_BLOCK : r1 - rb);
            gemm(n, wbase + (size_t)rb * row_bytes, row_bytes, nr, j->act, j->act_stride, n_tok,
                 j->out + rb, j->out_stride);
            if (j->bias)
                for (int t = 0; t < n_tok; t++)
                    for (int r = 0; r < nr; r++)
                        j->out[(size_t)t * j->out_stride + (size_t)rb + r] += j->bias[rb + r];
        }
        return;
    }
    for (int64_t rb = r0; rb < r1; rb += MM_ROW_BLOCK) {
        int64_t re = rb + MM_ROW_BLOCK < r1 ? rb + MM_ROW_BLOCK : r1;
        for (int t = 0; t < n_tok; t++) {
            const uint8_t *a = (const uint8_t *)j->act + (size_t)t * j->act_stride;
            float *o = j->out + (size_t)t * j->out_stride;
            for (int64_t r = rb; r < re; r++) {
                float s = dot(n, wbase + (size_t)r * row_bytes, a);
                o[r] = j->bias ? s + j->bias[r] : s;
            }
        }
    }
}

static void mm_worker(void *ctx, int ith, int nth)
{
    const struct mm_task *tk = ctx;
    for (int i = 0; i < tk->n_jobs; i++) {
        const struct cpu_mm *j = &tk->jobs[i];
        int64_t rows = (int64_t)j->w->ne[1];
        /* slices aligned to 4 rows keep neighbouring threads off each other's lines */
        int64_t per = ((rows + nth - 1) / nth + 3) & ~(int64_t)3;
        int64_t r0 = per * ith;
        int64_t r1 = r0 + per < rows ? r0 + per : rows;
        if (r0 < r1)
            mm_job_rows(j, r0, r1, tk->n_tok);
    }
}

void cpu_matmul(struct cpu_pool *pool, const struct cpu_mm *jobs, int n_jobs, int n_tok)
{
    struct mm_task tk = {jobs, n_jobs, n_tok};
    cpu_pool_run(pool, mm_worker, &tk);
}
