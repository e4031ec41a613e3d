/* quant_x86.c - AVX2 and AVX-512 VNNI dot kernels for the ggml block formats.
 *
 * Each function carries its own __attribute__((target)) so the file builds with generic
 * flags; quant.c calls quant_simd_detect() once and only then hands these out. Per
 * block the integer sums equal the plain kernels' exactly (int8 products summed in
 * int16/int32 without saturation for the value ranges of these formats); only the float
 * accumulation order differs. The K-quant kernels reduce each super-block to one integer
 * sum, so they give bit-identical results to the plain C ones.
 */
#include "quant_simd.h"

#include "gguf.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

int quant_simd_detect(void)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return 0;
    if (__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        return 2;
    return 1;
}

/* ---- helpers ------------------------------------------------------------------------ */

TGT_AVX2 void quant_simd_fp16_row(const float *x, uint16_t *y, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        y[i] = quant_fp32_to_fp16(x[i]);
}

TGT_AVX2 static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TGT_AVX2 static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

TGT_AVX2 static inline float h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

/* Signed int8 x int8 over 32 lanes -> 8 int32 partial sums. */
TGT_AVX2 static inline __m256i dot_i8_avx2(__m256i x, __m256i y)
{
    __m256i ax = _mm256_sign_epi8(x, x);
    __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

TGT_VNNI static inline __m256i dot_i8_vnni(__m256i x, __m256i y)
{
    __m256i ax = _mm256_sign_epi8(x, x);
    __m256i sy = _mm256_sign_epi8(y, x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
}

/* 16 packed Q4_0 bytes -> 32 signed values q-8 in block order. */
TGT_AVX2 static inline __m256i unpack_q4_0(const uint8_t *qs)
{
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i q = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    q = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

#define LOAD256(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

/* ---- F32, F16 ----------------------------------------------------------------------- */

TGT_AVX2 static float dot_f32_avx2(int64_t n, const void *w, const void *a)
{
    const float *x = w;
    const float *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k),
                                     acc[k]);
    float sum =
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

TGT_AVX2 static float dot_f16_avx2(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w;
    const uint16_t *y = a;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; k++) {
            __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * k)));
            __m256 yv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i + 8 * k)));
            acc[k] = _mm256_fmadd_ps(xv, yv, acc[k]);
        }
    }
    float sum =
        hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; i++)
        sum += h2f(x[i]) * h2f(y[i]);
    return sum;
}

/* ---- Q8_0, Q4_0 x Q8_0 -------------------------------------------------------------- */

/* Two blocks per iteration into two accumulators, so the integer and float pipelines
 * of consecutive blocks overlap. */
#define DEF_DOT_Q8(NAME, TGT, DOTI8, WTYPE, LOADW)                                                 \
    TGT static float NAME(int64_t n, const void *w, const void *a)                                 \
    {                                                                                              \
        const WTYPE *x = w;                                                                        \
        const struct quant_q8_0 *y = a;                                                            \
        int64_t nb = n / 32;                                                                       \
        __m256 acc0 = _mm256_setzero_ps();                                                         \
        __m256 acc1 = _mm256_setzero_ps();                                                         \
        int64_t b = 0;                                                                             \
        for (; b + 2 <= nb; b += 2) {                                                              \
            __m256i s0 = DOTI8(LOADW(x + b), LOAD256(y[b].qs));                                    \
            __m256i s1 = DOTI8(LOADW(x + b + 1), LOAD256(y[b + 1].qs));                            \
            __m256 d0 = _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d));                                 \
            __m256 d1 = _mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d));                         \
            acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(s0), acc0);                              \
            acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(s1), acc1);                              \
        }                                                                                          \
        for (; b < nb; b++) {                                                                      \
            __m256i s0 = DOTI8(LOADW(x + b), LOAD256(y[b].qs));                                    \
            __m256 d0 = _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d));                                 \
            acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(s0), acc0);                              \
        }                                                                                          \
        return hsum_ps(_mm256_add_ps(acc0, acc1));                                                 \
    }

#define LOAD_Q8_0(p) LOAD256((p)->qs)
#define LOAD_Q4_0(p) unpack_q4_0((p)->qs)

DEF_DOT_Q8(dot_q8_0_avx2, TGT_AVX2, dot_i8_avx2, struct quant_q8_0, LOAD_Q8_0)
DEF_DOT_Q8(dot_q8_0_vnni, TGT_VNNI, dot_i8_vnni, struct quant_q8_0, LOAD_Q8_0)
DEF_DOT_Q8(dot_q4_0_avx2, TGT_AVX2, dot_i8_avx2, struct quant_q4_0, LOAD_Q4_0)
DEF_DOT_Q8(dot_q4_0_vnni, TGT_VNNI, dot_i8_vnni, struct quant_q4_0, LOAD_Q4_0)

/* ---- Q4_K, Q6_K x Q8_K -------------------------------------------------------------- */

static void q4k_scales(const uint8_t *s, int *sc, int *m)
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

TGT_AVX2 static float dot_q4_k_avx2(int64_t n, const void *w, const void *a)
{
    const struct quant_q4_k *x = w;
    const struct quant_q8_k *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QUANT_QK_K; b++) {
        int sc[8];
        int m[8];
        q4k_scales(x[b].scales, sc, m);
        int summ = 0;
        for (int j = 0; j < 8; j++)
            summ += m[j] * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i q = LOAD256(x[b].qs + 32 * j);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, LOAD256(y[b].qs + 64 * j));
            __m256i p1 = _mm256_maddubs_epi16(hi, LOAD256(y[b].qs + 64 * j + 32));
            p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16((short)sc[2 * j]));
            p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16((short)sc[2 * j + 1]));
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(p0, p1));
        }
        int sumi = hsum_epi32(isum);
        float d = y[b].d * h2f(x[b].d);
        float dmin = y[b].d * h2f(x[b].dmin);
        sum += d * (float)sumi - dmin * (float)summ;
    }
    return sum;
}

TGT_AVX2 static float dot_q6_k_avx2(int64_t n, const void *w, const void *a)
{
    const struct quant_q6_k *x = w;
    const struct quant_q8_k *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i m30 = _mm256_set1_epi8(0x30);
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QUANT_QK_K; b++) {
        const int8_t *sc = x[b].scales;
        int corr = 0;
        for (int j = 0; j < 16; j++)
            corr += sc[j] * y[b].bsums[j];
        __m256i isum = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i l0 = LOAD256(x[b].ql + 64 * h);
            __m256i l1 = LOAD256(x[b].ql + 64 * h + 32);
            __m256i qh = LOAD256(x[b].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
            for (int k = 0; k < 4; k++) {
                int s0 = 8 * h + 2 * k;
                __m256i p = _mm256_maddubs_epi16(q[k], LOAD256(y[b].qs + 128 * h + 32 * k));
                __m256i sv = _mm256_set_m128i(_mm_set1_epi16(sc[s0 + 1]), _mm_set1_epi16(sc[s0]));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sv));
            }
        }
        int sumi = hsum_epi32(isum) - 32 * corr;
        sum += h2f(x[b].d) * y[b].d * (float)sumi;
    }
    return sum;
}

/* ---- tiled kernels (VNNI level) ----------------------------------------------------- */

/* Up to 4 weight rows x 4 activation rows per tile, one accumulator per output, 32
 * registers (AVX-512 VL). Weights are made unsigned (Q8_0: w ^ 0x80 = w + 128; Q4_0: the
 * raw nibble) for vpdpbusd, and the offset is removed exactly by starting each block's
 * integer sum at -offset * sum(a), computed once per activation block. The per-output
 * operation sequence is the same for every tile shape. */
#define TGT_Z __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")))

TGT_Z static inline float hsum_zmm(__m512 v)
{
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    return hsum_ps(_mm256_add_ps(_mm512_castps512_ps256(v), hi));
}

/* Software prefetch distance in weight rows. The rows of one tile are short separate
 * streams (a few hundred bytes each) that the hardware prefetchers do not pick up in
 * time, so each tile touches the same spot 12 rows further on; at 1024 columns that is
 * 7-13 KiB ahead, a few hundred nanoseconds of decode. */
#define PF_ROWS 12
#ifndef PF_ROWS_F16
#define PF_ROWS_F16 4
#endif
#define TILE_INLINE TGT_VNNI static inline __attribute__((always_inline))

TILE_INLINE void tile_q8(const int R, const int C, const int q4, int64_t nb, const uint8_t *w,
                         size_t ws, const uint8_t *a, size_t as, float *out, size_t os)
{
    __m256 acc[4][4];
    const __m256i off = _mm256_set1_epi8(q4 ? 8 : (char)0x80);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wu[4];
        __m256 dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            _mm_prefetch((const char *)(w + (r + PF_ROWS) * ws) + b * (q4 ? 18 : 34), _MM_HINT_T0);
            if (q4) {
                const struct quant_q4_0 *x = (const struct quant_q4_0 *)(w + r * ws) + b;
                __m128i t = _mm_loadu_si128((const __m128i *)x->qs);
                wu[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), m4);
                dw[r] = _mm256_set1_ps(h2f(x->d));
            } else {
                const struct quant_q8_0 *x = (const struct quant_q8_0 *)(w + r * ws) + b;
                wu[r] = _mm256_xor_si256(LOAD256(x->qs), off);
                dw[r] = _mm256_set1_ps(h2f(x->d));
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const struct quant_q8_0 *y = (const struct quant_q8_0 *)(a + c * as) + b;
            __m256i av = LOAD256(y->qs);
            __m256i corr = _mm256_sub_epi32(_mm256_setzero_si256(),
                                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, av));
            __m256 da = _mm256_set1_ps(h2f(y->d));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256i s = _mm256_dpbusd_epi32(corr, wu[r], av);
                acc[r][c] =
                    _mm256_fmadd_ps(_mm256_mul_ps(dw[r], da), _mm256_cvtepi32_ps(s), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            out[c * os + r] = hsum_ps(acc[r][c]);
}

TILE_INLINE void tile_f16(const int R, const int C, const int dummy, int64_t n, const uint8_t *w,
                          size_t ws, const uint8_t *a, size_t as, float *out, size_t os)
{
    (void)dummy;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if ((k & 31) == 0)
                _mm_prefetch((const char *)(w + (r + PF_ROWS_F16) * ws) + 2 * k, _MM_HINT_T0);
            wv[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + r * ws) + k / 16));
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            __m512 av = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(a + c * as) + k / 16));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][c] = _mm512_fmadd_ps(wv[r], av, acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            float s = hsum_zmm(acc[r][c]);
            const uint16_t *wr = (const uint16_t *)(w + r * ws);
            const uint16_t *ar = (const uint16_t *)(a + c * as);
            for (int64_t i = k; i < n; i++)
                s += h2f(wr[i]) * h2f(ar[i]);
            out[c * os + r] = s;
        }
    }
}

/* A gemm over nr x nc from tiles of at most 4 x 4: activation tiles outer (they stay in
 * L1 while the weight rows stream past), weight tiles inner. */
#define DEF_GEMM(NAME, TILE, Q4, LEN)                                                              \
    TGT_VNNI static void NAME(int64_t n, const void *w, size_t ws, int nr, const void *a,          \
                              size_t as, int nc, float *out, size_t os)                            \
    {                                                                                              \
        const uint8_t *wb = w;                                                                     \
        const uint8_t *ab = a;                                                                     \
        for (int c0 = 0; c0 < nc; c0 += 4) {                                                       \
            int C = nc - c0 < 4 ? nc - c0 : 4;                                                     \
            for (int r0 = 0; r0 < nr; r0 += 4) {                                                   \
                int R = nr - r0 < 4 ? nr - r0 : 4;                                                 \
                const uint8_t *wp = wb + (size_t)r0 * ws;                                          \
                const uint8_t *ap = ab + (size_t)c0 * as;                                          \
                float *op = out + (size_t)c0 * os + r0;                                            \
                switch (R * 4 + C) {                                                               \
                case 5:                                                                            \
                    TILE(1, 1, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 6:                                                                            \
                    TILE(1, 2, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 7:                                                                            \
                    TILE(1, 3, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 8:                                                                            \
                    TILE(1, 4, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 9:                                                                            \
                    TILE(2, 1, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 10:                                                                           \
                    TILE(2, 2, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 11:                                                                           \
                    TILE(2, 3, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 12:                                                                           \
                    TILE(2, 4, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 13:                                                                           \
                    TILE(3, 1, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 14:                                                                           \
                    TILE(3, 2, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 15:                                                                           \
                    TILE(3, 3, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 16:                                                                           \
                    TILE(3, 4, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 17:                                                                           \
                    TILE(4, 1, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 18:                                                                           \
                    TILE(4, 2, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                case 19:                                                                           \
                    TILE(4, 3, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                default:                                                                           \
                    TILE(4, 4, Q4, LEN, wp, ws, ap, as, op, os);                                   \
                    break;                                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEF_GEMM(gemm_q8_0_vnni, tile_q8, 0, n / 32)
DEF_GEMM(gemm_q4_0_vnni, tile_q8, 1, n / 32)
DEF_GEMM(gemm_f16_vnni, tile_f16, 0, n)

/* Q4_0X4 x Q8_0X4A with 512-bit vectors: 4 blocks per step. The 128-bit lane j of
 * the 16 int32 sums belongs to block j; the integer sum of each lane starts at the
 * activation's offset correction, so it is exactly sum((q - 8) * a) over its bytes. */
TGT_Z static inline __attribute__((always_inline)) void
tile_q4x4(const int R, const int C, const int dummy, int64_t ng, const uint8_t *w, size_t ws,
          const uint8_t *a, size_t as, float *out, size_t os)
{
    (void)dummy;
    __m512 acc[4][4];
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m512i lo[4], hi[4];
        __m512 dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const struct quant_q4_0x4 *x = (const struct quant_q4_0x4 *)(w + r * ws) + g;
            _mm_prefetch((const char *)(x) + PF_ROWS * ws, _MM_HINT_T0);
            _mm_prefetch((const char *)(x) + PF_ROWS * ws + 64, _MM_HINT_T0);
            __m512i q = _mm512_loadu_si512((const void *)x->qs);
            lo[r] = _mm512_and_si512(q, m4);
            hi[r] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
            __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)x->d));
            dw[r] = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d4));
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const struct quant_q8_0x4a *y = (const struct quant_q8_0x4a *)(a + c * as) + g;
            __m512i alo = _mm512_loadu_si512((const void *)y->lo);
            __m512i ahi = _mm512_loadu_si512((const void *)y->hi);
            __m512i corr = _mm512_loadu_si512((const void *)y->corr);
            __m512 da = _mm512_loadu_ps(y->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i s = _mm512_dpbusd_epi32(corr, lo[r], alo);
                s = _mm512_dpbusd_epi32(s, hi[r], ahi);
                acc[r][c] =
                    _mm512_fmadd_ps(_mm512_mul_ps(dw[r], da), _mm512_cvtepi32_ps(s), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            out[c * os + r] = hsum_zmm(acc[r][c]);
}

DEF_GEMM(gemm_q4_0x4_vnni, tile_q4x4, 0, n / 128)

/* Q8_0X4 x Q8_0X4B: two 512-bit halves of 2 blocks each per group; weights made
 * unsigned by w ^ 0x80 = w + 128, the activation side carrying -128 * sum(a). */
TGT_Z static inline __attribute__((always_inline)) void
tile_q8x4(const int R, const int C, const int dummy, int64_t ng, const uint8_t *w, size_t ws,
          const uint8_t *a, size_t as, float *out, size_t os)
{
    (void)dummy;
    __m512 acc[4][4];
    const __m512i off = _mm512_set1_epi8((char)0x80);
    const __m512i sp0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i sp1 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            acc[r][c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        __m512i w0[4], w1[4];
        __m512 d0[4], d1[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const struct quant_q8_0x4 *x = (const struct quant_q8_0x4 *)(w + r * ws) + g;
            _mm_prefetch((const char *)(x) + PF_ROWS * ws, _MM_HINT_T0);
            _mm_prefetch((const char *)(x) + PF_ROWS * ws + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)(x) + PF_ROWS * ws + 128, _MM_HINT_T0);
            w0[r] = _mm512_xor_si512(_mm512_loadu_si512((const void *)x->qs), off);
            w1[r] = _mm512_xor_si512(_mm512_loadu_si512((const void *)(x->qs + 64)), off);
            __m512 d4 =
                _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)x->d)));
            d0[r] = _mm512_permutexvar_ps(sp0, d4);
            d1[r] = _mm512_permutexvar_ps(sp1, d4);
        }
#pragma GCC unroll 4
        for (int c = 0; c < C; c++) {
            const struct quant_q8_0x4b *y = (const struct quant_q8_0x4b *)(a + c * as) + g;
            __m512i a0 = _mm512_loadu_si512((const void *)y->qs);
            __m512i a1 = _mm512_loadu_si512((const void *)(y->qs + 64));
            __m512i c0 = _mm512_loadu_si512((const void *)y->corr);
            __m512i c1 = _mm512_loadu_si512((const void *)(y->corr + 16));
            __m512 e0 = _mm512_loadu_ps(y->d);
            __m512 e1 = _mm512_loadu_ps(y->d + 16);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i s0 = _mm512_dpbusd_epi32(c0, w0[r], a0);
                __m512i s1 = _mm512_dpbusd_epi32(c1, w1[r], a1);
                acc[r][c] =
                    _mm512_fmadd_ps(_mm512_mul_ps(d0[r], e0), _mm512_cvtepi32_ps(s0), acc[r][c]);
                acc[r][c] =
                    _mm512_fmadd_ps(_mm512_mul_ps(d1[r], e1), _mm512_cvtepi32_ps(s1), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
            out[c * os + r] = hsum_zmm(acc[r][c]);
}

DEF_GEMM(gemm_q8_0x4_vnni, tile_q8x4, 0, n / 128)

/* Q8_0X4A / Q8_0X4B activations (quant.h). Each block is quantised with exactly
 * quant_act_q8_0's arithmetic (max |x|, F16 scale, x * 127 / max rounded half to even);
 * the sums of 4 consecutive quants for the offset corrections come from VNNI dots with
 * ones. */
TGT_Z void quant_simd_act_x4(uint32_t type, const float *x, void *dst, int64_t n)
{
    const __m128i ones = _mm_set1_epi8(1);
    for (int64_t g = 0; g < n / 128; g++) {
        struct quant_q8_0x4a *ya = (struct quant_q8_0x4a *)dst + g;
        struct quant_q8_0x4b *yb = (struct quant_q8_0x4b *)dst + g;
        for (int j = 0; j < 4; j++, x += 32) {
            __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            float d = quant_fp16_to_fp32(quant_fp32_to_fp16(amax / 127.0f));
            __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
            __m128i q0 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)));
            __m128i q1 = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)));
            __m128i s0 = _mm_dpbusd_epi32(_mm_setzero_si128(), ones, q0);
            __m128i s1 = _mm_dpbusd_epi32(_mm_setzero_si128(), ones, q1);
            if (type == QUANT_TYPE_Q8_0X4A) {
                _mm_storeu_si128((__m128i *)(void *)(ya->lo + 16 * j), q0);
                _mm_storeu_si128((__m128i *)(void *)(ya->hi + 16 * j), q1);
                _mm_storeu_si128((__m128i *)(void *)(ya->corr + 4 * j),
                                 _mm_mullo_epi32(_mm_add_epi32(s0, s1), _mm_set1_epi32(-8)));
                _mm_storeu_ps(ya->d + 4 * j, _mm_set1_ps(d));
            } else {
                __m128i m = _mm_set1_epi32(-128);
                _mm_storeu_si128((__m128i *)(void *)(yb->qs + 32 * j), q0);
                _mm_storeu_si128((__m128i *)(void *)(yb->qs + 32 * j + 16), q1);
                _mm_storeu_si128((__m128i *)(void *)(yb->corr + 8 * j), _mm_mullo_epi32(s0, m));
                _mm_storeu_si128((__m128i *)(void *)(yb->corr + 8 * j + 4), _mm_mullo_epi32(s1, m));
                _mm256_storeu_ps(yb->d + 8 * j, _mm256_set1_ps(d));
            }
        }
    }
}

quant_gemm_fn quant_simd_gemm(uint32_t t)
{
    switch (t) {
    case QUANT_TYPE_Q4_0X4:
        return gemm_q4_0x4_vnni;
    case QUANT_TYPE_Q8_0X4:
        return gemm_q8_0x4_vnni;
    case GGML_TYPE_Q8_0:
        return gemm_q8_0_vnni;
    case GGML_TYPE_Q4_0:
        return gemm_q4_0_vnni;
    case GGML_TYPE_F16:
        return gemm_f16_vnni;
    default:
        return NULL;
    }
}

TGT_AVX2 static void axpy_f16_avx2(int64_t n, float a, const uint16_t *x, float *y)
{
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] += a * h2f(x[i]);
}

quant_axpy_fn quant_simd_axpy_f16(void)
{
    return axpy_f16_avx2;
}

quant_dot_fn quant_simd_dot(uint32_t t, int level)
{
    switch (t) {
    case GGML_TYPE_F32:
        return dot_f32_avx2;
    case GGML_TYPE_F16:
        return dot_f16_avx2;
    case GGML_TYPE_Q8_0:
        return level >= 2 ? dot_q8_0_vnni : dot_q8_0_avx2;
    case GGML_TYPE_Q4_0:
        return level >= 2 ? dot_q4_0_vnni : dot_q4_0_avx2;
    case GGML_TYPE_Q4_K:
        return dot_q4_k_avx2;
    case GGML_TYPE_Q6_K:
        return dot_q6_k_avx2;
    default:
        return NULL;
    }
}

#else

int quant_simd_detect(void)
{
    return 0;
}

quant_dot_fn quant_simd_dot(uint32_t t, int level)
{
    (void)t;
    (void)level;
    return NULL;
}

void quant_simd_fp16_row(const float *x, uint16_t *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_fp32_to_fp16(x[i]);
}

quant_axpy_fn quant_simd_axpy_f16(void)
{
    return NULL;
}

quant_gemm_fn quant_simd_gemm(uint32_t t)
{
    (void)t;
    return NULL;
}

void quant_simd_act_x4(uint32_t type, const float *x, void *dst, int64_t n)
{
    (void)type;
    (void)x;
    (void)dst;
    (void)n;
    abort(); /* the X4 layouts are only handed out with quant_simd_gemm */
}

#endif
