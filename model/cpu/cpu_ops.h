/* cpu_ops.h - the operations of the CPU forward pass, exposed for unit tests.
 *
 * Each op reproduces where ggml's CPU backend rounds (see MODEL-NOTES.md): RMSNorm sums
 * squares in double, RoPE angles are built by repeated float multiplication, softmax
 * sums exponentials in double, attention rounds q and the probabilities to F16 and
 * reads an F16 KV cache. Called from the engine thread or from pool workers; every
 * function only touches the memory it is given.
 */
#ifndef CHATD_CPU_OPS_H
#define CHATD_CPU_OPS_H

#include "backend.h"
#include "cpu_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* out = x / sqrt(mean(x^2) + eps) * w; out may alias x. */
void cpu_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* cs[2i], cs[2i+1] = cos, sin of the angle of pair i < n_rot/2 at position pos: as the
 * reference builds it, theta = pos * base^(-2i/n_rot) by repeated multiplication, then
 * freq_scale * (theta / factors[i]), and cos and sin times attn_factor (struct mdl_rope).
 * factors may be NULL (all 1). cpu_rope_table: base only. */
void cpu_rope_table_ext(float *cs, int n_rot, int pos, const struct mdl_rope *r,
                        const float *factors);
void cpu_rope_table(float *cs, int n_rot, int pos, float freq_base);
/* Rotates the first n_rot dims of each of n_heads heads of x in place: adjacent pairs
 * (llama) or split halves (neox / qwen2). */
void cpu_rope(float *x, int n_heads, int head_dim, int n_rot, const float *cs, bool neox);

/* In-place softmax of n values (max-subtracted, sum in double). */
void cpu_softmax(float *x, int n);

/* GELU, tanh approximation, as the reference's CPU backend evaluates it from its table:
 * the input rounded to F16 and the result an F16 value (0 at or below -10, x at or above
 * 10). */
float cpu_gelu(float x);

/* One query head over n_pos cached positions: out[head_dim] = softmax(q.K^T*scale).V,
 * with K and V rows `kv_stride` elements apart. scores: n_pos floats, q16: head_dim
 * scratch. */
void cpu_attention(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                   size_t kv_stride, int n_pos, int head_dim, float scale, float *scores,
                   uint16_t *q16);

/* nq query heads (at most CPU_ATTN_MAX_Q) that share one KV head and sequence, query i
 * over positions [first[i], n_pos[i]) (first NULL: from 0; a sliding window), in one pass
 * over K and V; each query's result is bitwise what it gets alone. Scores are
 * dot * scale, then, with softcap c > 0, c * tanh(score / c) (the architectures that cap
 * use scale 1, so this is the reference's order). scores: nq rows scores_stride floats
 * apart (at least the largest n_pos), q16: nq * head_dim scratch. */
#define CPU_ATTN_MAX_Q 8
void cpu_attention_multi(int nq, float *const *out, const float *const *q, const int *first,
                         const int *n_pos, const uint16_t *k, const uint16_t *v, size_t kv_stride,
                         int head_dim, float scale, float softcap, float *scores,
                         size_t scores_stride, uint16_t *q16);

/* One weight x activation product of a mat-mul stage: out[t*out_stride + r] =
 * w_row(r) . act_row(t) (+ bias[r]) for all rows r and tokens t. The activation rows
 * are already in quant_act_type(w->type) format, act_stride bytes apart. */
struct cpu_mm {
    const struct mdl_tensor *w;
    const void *act;
    size_t act_stride;
    const float *bias; /* [rows] or NULL */
    float *out;
    size_t out_stride; /* floats */
    int n_tok;         /* tokens of this job; 0: cpu_matmul's n_tok */
};

/* Runs n_jobs products over n_tok tokens on the pool, each thread taking a slice of
 * every job's rows. Every (row, token) result is one call of the same dot kernel, so it
 * does not depend on n_tok or on the thread count. */
void cpu_matmul(struct cpu_pool *pool, const struct cpu_mm *jobs, int n_jobs, int n_tok);

#endif
