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
#include <stdint.h>
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

void cpu_rope_table_ext(float *cs, int n_rot, int pos, const struct mdl_rope *r,
                        const float *factors)
{
    float theta_scale = powf(r->freq_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        float ff = factors ? factors[i] : 1.0f;
        float a = r->freq_scale * (theta / ff);
        cs[2 * i] = cosf(a) * r->attn_factor;
        cs[2 * i + 1] = sinf(a) * r->attn_factor;
        theta *= theta_scale;
    }
}

void cpu_rope_table(float *cs, int n_rot, int pos, float freq_base)
{
    struct mdl_rope r = {freq_base, 1.0f, 1.0f};
    cpu_rope_table_ext(cs, n_rot, pos, &r, NULL);
}

float cpu_gelu(float x)
{
    if (x <= -10.0f)
        return 0.0f;
    if (x >= 10.0f)
        return x;
    float h = quant_fp16_to_fp32(quant_fp32_to_fp16(x));
    float g = 0.5f * h * (1.0f + tanhf(0.79788456080286535587989211986876f * h *
                                      (1.0f + 0.044715f * h * h)));
    return quant_fp16_to_fp32(quant_fp32_to_fp16(g));
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

/* s = c * tanh(s / c) over n scores (c 0: unchanged), as the reference caps them: the
 * division is a multiplication by 1/c. */
static void softcap_scores(float *s, int n, float c)
{
    if (c <= 0.0f)
        return;
    float inv = 1.0f / c;
    for (int i = 0; i < n; i++)
        s[i] = tanhf(s[i] * inv) * c;
}

/* What a tile needs besides its queries: each query's first visible position (relative
 * to the K/V rows it is given) and the score soft-cap. */
struct attn_extra {
    const int *first;
    float softcap;
};

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))

/* expf for x <= 0 (arguments past -88.4 give 0): Cody-Waite reduction by ln 2 and the
 * Cephes polynomial, within 2 ulp of the libm result. */
static inline AVX512 __m512 exp_le0(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

static inline AVX512 __mmask16 tail_mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* cpu_softmax's steps (max subtracted, sum in double) on 16 lanes, then the F16
 * rounding of each probability that the P.V product uses. */
static AVX512 void softmax_f16_avx512(float *x, int n)
{
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16)
        mv = _mm512_max_ps(mv, _mm512_mask_loadu_ps(mv, tail_mask(n - i), x + i));
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp_le0(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx)));
        _mm512_mask_storeu_ps(x + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / (_mm512_reduce_add_pd(s0) + _mm512_reduce_add_pd(s1))));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
        p = _mm512_cvtph_ps(_mm512_cvtps_ph(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        _mm512_mask_storeu_ps(x + i, m, p);
    }
}

/* One F16 row of NV * 16 values widened to F32 vectors. */
static inline __attribute__((always_inline)) AVX512 void widen_row(const uint16_t *row,
                                                                   __m512 *out, const int NV)
{
#pragma GCC unroll 16
    for (int j = 0; j < NV; j++)
        out[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 16 * j)));
}

/* The 16 dot products of rows ks[r] (NV vectors each) with q, as one vector (lane r):
 * each row's FMA chain, then a transposing add tree instead of 16 horizontal sums. */
static inline __attribute__((always_inline)) AVX512 __m512 dot16(const float *ks, const __m512 *q,
                                                                 const int NV)
{
    __m512 l2[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512 l1[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m512 v[2];
#pragma GCC unroll 2
            for (int e = 0; e < 2; e++) {
                const float *row = ks + (size_t)((g * 4 + h * 2 + e) * NV) * 16;
                __m512 a = _mm512_mul_ps(_mm512_load_ps(row), q[0]);
#pragma GCC unroll 16
                for (int j = 1; j < NV; j++)
                    a = _mm512_fmadd_ps(_mm512_load_ps(row + 16 * j), q[j], a);
                v[e] = a;
            }
            /* per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] */
            l1[h] = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
        }
        /* per 128-bit block: the partial sums of rows 4g..4g+3 */
        l2[g] = _mm512_add_ps(_mm512_shuffle_ps(l1[0], l1[1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(l1[0], l1[1], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    __m512 u01 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[0], l2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(l2[0], l2[1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 u23 = _mm512_add_ps(_mm512_shuffle_f32x4(l2[2], l2[3], _MM_SHUFFLE(2, 0, 2, 0)),
                               _mm512_shuffle_f32x4(l2[2], l2[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(u01, u23, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* GCC cannot see that attn_any's runtime NV bounds every read of the register arrays */
#if !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

/* NQ queries sharing one KV head over its positions, every K and V row loaded and widened
 * once for all of them. head_dim = 16 * NV. Each query's arithmetic is the same whatever
 * NQ is (positions in order, the same FMA chains), so batch invariance holds. */
static inline __attribute__((always_inline)) AVX512 void attn_tile(
    const int NQ, const int NV, float *const *out, const uint16_t *q16, const int *n_pos,
    const uint16_t *k, const uint16_t *v, size_t kv_stride, float scale, float *scores,
    size_t sstride, const struct attn_extra *ex)
{
    __m512 qv[CPU_ATTN_MAX_Q][16], acc[CPU_ATTN_MAX_Q][16];
    int lo = n_pos[0], hi = n_pos[0];
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++) {
        lo = n_pos[i] < lo ? n_pos[i] : lo;
        hi = n_pos[i] > hi ? n_pos[i] : hi;
        widen_row(q16 + (size_t)i * NV * 16, qv[i], NV);
    }
    /* Scores of whole blocks of 16 positions: each query's own blocks (so what a query
     * gets never depends on the others in the tile), the block's K rows widened once
     * into ks for all queries. */
    int n16[CPU_ATTN_MAX_Q], lo16 = hi, hi16 = 0;
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++) {
        n16[i] = n_pos[i] / 16 * 16;
        lo16 = n16[i] < lo16 ? n16[i] : lo16;
        hi16 = n16[i] > hi16 ? n16[i] : hi16;
    }
    float ks[16 * 16 * 16] __attribute__((aligned(64)));
    for (int t0 = 0; t0 < hi16; t0 += 16) {
        for (int r = 0; r < 16; r++) {
            __m512 row[16];
            widen_row(k + (size_t)(t0 + r) * kv_stride, row, NV);
#pragma GCC unroll 16
            for (int j = 0; j < NV; j++)
                _mm512_store_ps(ks + (r * NV + j) * 16, row[j]);
        }
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++)
            if (t0 < n16[i])
                _mm512_storeu_ps(scores + (size_t)i * sstride + t0,
                                 _mm512_mul_ps(dot16(ks, qv[i], NV), _mm512_set1_ps(scale)));
    }
    /* the rest one position at a time */
    for (int t = lo16; t < hi; t++) {
        __m512 kv[16];
        widen_row(k + (size_t)t * kv_stride, kv, NV);
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            if (t < n16[i] || t >= n_pos[i])
                continue;
            __m512 sv = _mm512_setzero_ps();
#pragma GCC unroll 16
            for (int j = 0; j < NV; j++)
                sv = _mm512_fmadd_ps(kv[j], qv[i][j], sv);
            scores[(size_t)i * sstride + t] = _mm512_reduce_add_ps(sv) * scale;
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++) {
        float *si = scores + (size_t)i * sstride + ex->first[i];
        softcap_scores(si, n_pos[i] - ex->first[i], ex->softcap);
        softmax_f16_avx512(si, n_pos[i] - ex->first[i]);
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            acc[i][j] = _mm512_setzero_ps();
    }
    for (int t = 0; t < hi; t++) {
        __m512 vv[16];
        widen_row(v + (size_t)t * kv_stride, vv, NV);
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            if ((t >= lo && t >= n_pos[i]) || t < ex->first[i])
                continue;
            __m512 p = _mm512_set1_ps(scores[(size_t)i * sstride + t]);
#pragma GCC unroll 16
            for (int j = 0; j < NV; j++)
                acc[i][j] = _mm512_fmadd_ps(vv[j], p, acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 16
        for (int j = 0; j < NV; j++)
            _mm512_storeu_ps(out[i] + 16 * j, acc[i][j]);
}

#define ATTN_ARGS out, q16, n_pos, k, v, kv_stride, scale, scores, sstride, ex
#define ATTN_FN(nv, nq)                                                                    \
    static AVX512 void attn_##nv##_##nq(float *const *out, const uint16_t *q16,            \
                                        const int *n_pos, const uint16_t *k,               \
                                        const uint16_t *v, size_t kv_stride, float scale,  \
                                        float *scores, size_t sstride,                     \
                                        const struct attn_extra *ex)                       \
    {                                                                                      \
        attn_tile(nq, nv, ATTN_ARGS);                                                      \
    }
ATTN_FN(4, 1)
ATTN_FN(4, 2)
ATTN_FN(4, 3)
ATTN_FN(4, 4)
ATTN_FN(8, 1)
ATTN_FN(8, 2)

/* One query, any head_dim that is a multiple of 16 up to 256. */
static AVX512 void attn_one(int nv, float *const *out, const uint16_t *q16, const int *n_pos,
                            const uint16_t *k, const uint16_t *v, size_t kv_stride, float scale,
                            float *scores, size_t sstride, const struct attn_extra *ex)
{
    attn_tile(1, nv, out, q16, n_pos, k, v, kv_stride, scale, scores, sstride, ex);
}

#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif

typedef void (*attn_fn)(float *const *out, const uint16_t *q16, const int *n_pos,
                        const uint16_t *k, const uint16_t *v, size_t kv_stride, float scale,
                        float *scores, size_t sstride, const struct attn_extra *ex);

static bool attention_avx512(int nq, float *const *out, const uint16_t *q16, const int *n_pos,
                             const uint16_t *k, const uint16_t *v, size_t kv_stride, int head_dim,
                             float scale, float *scores, size_t sstride,
                             const struct attn_extra *ex)
{
    if (strcmp(quant_simd_name(), "avx512vnni") != 0 || head_dim % 16 || head_dim > 256)
        return false;
    /* the tiles with a kernel of their own, by queries per tile (head_dim 64 and 128) */
    static const attn_fn hd64[] = {attn_4_1, attn_4_2, attn_4_3, attn_4_4};
    static const attn_fn hd128[] = {attn_8_1, attn_8_2};
    int nv = head_dim / 16;
    int tile = nv == 4 ? 4 : nv == 8 ? 2 : 1;
    for (int i = 0; i < nq; i += tile) {
        int n = nq - i < tile ? nq - i : tile;
        float *const *o = out + i;
        const uint16_t *qi = q16 + (size_t)i * head_dim;
        float *si = scores + (size_t)i * sstride;
        struct attn_extra exi = {ex->first + i, ex->softcap};
        if (nv == 4)
            hd64[n - 1](o, qi, n_pos + i, k, v, kv_stride, scale, si, sstride, &exi);
        else if (nv == 8)
            hd128[n - 1](o, qi, n_pos + i, k, v, kv_stride, scale, si, sstride, &exi);
        else
            attn_one(nv, o, qi, n_pos + i, k, v, kv_stride, scale, si, sstride, &exi);
    }
    return true;
}
#endif

/* One query with the plain C kernels (the reference for the SIMD one), over positions
 * [first, n_pos). */
static void attention_plain(float *out, const uint16_t *q16, const uint16_t *k, const uint16_t *v,
                            size_t kv_stride, int first, int n_pos, int head_dim, float scale,
                            float softcap, float *scores)
{
    quant_dot_fn dot = quant_dot(GGML_TYPE_F16);
    quant_axpy_fn axpy = quant_axpy_f16();
    for (int t = first; t < n_pos; t++)
        scores[t] = dot(head_dim, k + (size_t)t * kv_stride, q16) * scale;
    softcap_scores(scores + first, n_pos - first, softcap);
    cpu_softmax(scores + first, n_pos - first);
    for (int d = 0; d < head_dim; d++)
        out[d] = 0.0f;
    for (int t = first; t < n_pos; t++) {
        float p = quant_fp16_to_fp32(quant_fp32_to_fp16(scores[t]));
        axpy(head_dim, p, v + (size_t)t * kv_stride, out);
    }
}

void cpu_attention_multi(int nq, float *const *out, const float *const *q, const int *first,
                         const int *n_pos, const uint16_t *k, const uint16_t *v, size_t kv_stride,
                         int head_dim, float scale, float softcap, float *scores,
                         size_t scores_stride, uint16_t *q16)
{
    /* Skip the positions no query sees, in whole blocks of 16 so that every position
     * keeps the kernel path (block or tail) it has when its query runs alone. */
    int lo = INT32_MAX;
    int rel_first[CPU_ATTN_MAX_Q];
    int rel_pos[CPU_ATTN_MAX_Q];
    for (int i = 0; i < nq; i++) {
        int f = first ? first[i] : 0;
        lo = f / 16 * 16 < lo ? f / 16 * 16 : lo;
    }
    for (int i = 0; i < nq; i++) {
        rel_first[i] = (first ? first[i] : 0) - lo;
        rel_pos[i] = n_pos[i] - lo;
        quant_fp32_to_fp16_row(q[i], q16 + (size_t)i * head_dim, head_dim);
    }
    k += (size_t)lo * kv_stride;
    v += (size_t)lo * kv_stride;
#if defined(__x86_64__)
    struct attn_extra ex = {rel_first, softcap};
    if (attention_avx512(nq, out, q16, rel_pos, k, v, kv_stride, head_dim, scale, scores,
                         scores_stride, &ex))
        return;
#endif
    for (int i = 0; i < nq; i++)
        attention_plain(out[i], q16 + (size_t)i * head_dim, k, v, kv_stride, rel_first[i],
                        rel_pos[i], head_dim, scale, softcap, scores + (size_t)i * scores_stride);
}

void cpu_attention(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                   size_t kv_stride, int n_pos, int head_dim, float scale, float *scores,
                   uint16_t *q16)
{
    cpu_attention_multi(1, &out, &q, NULL, &n_pos, k, v, kv_stride, head_dim, scale, 0.0f, scores,
                        (size_t)n_pos, q16);
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
            mm_job_rows(j, r0, r1, j->n_tok ? j->n_tok : tk->n_tok);
    }
}

void cpu_matmul(struct cpu_pool *pool, const struct cpu_mm *jobs, int n_jobs, int n_tok)
{
    struct mm_task tk = {jobs, n_jobs, n_tok};
    cpu_pool_run(pool, mm_worker, &tk);
}
