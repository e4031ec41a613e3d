/* quant.c - plain C reference for the ggml block formats and the run-time choice of
 * SIMD kernels (the kernels themselves are in quant_x86.c).
 *
 * The plain kernels are written for clarity: integer sums per block, one float
 * multiply-add per block. The activation quantisers round exactly as ggml's x86 build
 * does (Q8_0: id = 127/amax, round half to even; Q8_K: iscale = -127/max of largest
 * magnitude, round half to even), since that is what the golden logits were made with.
 */
#include "quant.h"

#include "gguf.h"
#include "quant_simd.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- fp16 <-> fp32 ---------------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float quant_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        float v = ldexpf((float)mant, -24); /* zero or subnormal */
        return sign ? -v : v;
    }
    if (exp == 31)
        return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round to nearest even. Scaling by 2^112 then 2^-110 lets the float adder do the
 * rounding of the mantissa at the right bit for normal and subnormal results alike. */
uint16_t quant_fp32_to_fp16(float f)
{
    uint32_t w = f32_bits(f);
    uint32_t shl1 = w + w;
    uint32_t sign = w & 0x80000000u;
    if (shl1 > 0xff000000u)
        return (uint16_t)((sign >> 16) | 0x7e00); /* NaN */
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    uint32_t bias = shl1 & 0xff000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = f32_bits(base);
    uint32_t exp_bits = (bits >> 13) & 0x7c00;
    uint32_t mant_bits = bits & 0x0fff;
    return (uint16_t)((sign >> 16) | (exp_bits + mant_bits));
}

/* ---- type table --------------------------------------------------------------------- */

bool quant_is_supported(uint32_t t)
{
    return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_Q8_0 || t == GGML_TYPE_Q4_0 ||
           t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K;
}

uint32_t quant_block_elems(uint32_t t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
        return 1;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        return 32;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
    case GGML_TYPE_Q8_K:
        return QUANT_QK_K;
    case QUANT_TYPE_Q4_0X4:
    case QUANT_TYPE_Q8_0X4A:
    case QUANT_TYPE_Q8_0X4:
    case QUANT_TYPE_Q8_0X4B:
        return 128;
    default:
        return 0;
    }
}

uint32_t quant_block_bytes(uint32_t t)
{
    switch (t) {
    case GGML_TYPE_F32:
        return 4;
    case GGML_TYPE_F16:
        return 2;
    case GGML_TYPE_Q8_0:
        return sizeof(struct quant_q8_0);
    case GGML_TYPE_Q4_0:
        return sizeof(struct quant_q4_0);
    case GGML_TYPE_Q4_K:
        return sizeof(struct quant_q4_k);
    case GGML_TYPE_Q6_K:
        return sizeof(struct quant_q6_k);
    case GGML_TYPE_Q8_K:
        return sizeof(struct quant_q8_k);
    case QUANT_TYPE_Q4_0X4:
        return sizeof(struct quant_q4_0x4);
    case QUANT_TYPE_Q8_0X4A:
        return sizeof(struct quant_q8_0x4a);
    case QUANT_TYPE_Q8_0X4:
        return sizeof(struct quant_q8_0x4);
    case QUANT_TYPE_Q8_0X4B:
        return sizeof(struct quant_q8_0x4b);
    default:
        return 0;
    }
}

size_t quant_row_bytes(uint32_t t, int64_t n)
{
    uint32_t be = quant_block_elems(t);
    if (be == 0 || n < 0 || n % be != 0)
        return 0;
    return (size_t)(n / be) * quant_block_bytes(t);
}

uint32_t quant_act_type(uint32_t wt)
{
    switch (wt) {
    case GGML_TYPE_F16:
        return GGML_TYPE_F16;
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q4_0:
        return GGML_TYPE_Q8_0;
    case GGML_TYPE_Q4_K:
    case GGML_TYPE_Q6_K:
        return GGML_TYPE_Q8_K;
    case QUANT_TYPE_Q4_0X4:
        return QUANT_TYPE_Q8_0X4A;
    case QUANT_TYPE_Q8_0X4:
        return QUANT_TYPE_Q8_0X4B;
    default:
        return GGML_TYPE_F32;
    }
}

/* ---- quantisers --------------------------------------------------------------------- */

void quant_row_q8_0(const float *x, struct quant_q8_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = quant_fp32_to_fp16(d);
        for (int j = 0; j < 32; j++)
            y[b].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

void quant_row_q4_0(const float *x, struct quant_q4_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        float max = 0.0f;
        for (int j = 0; j < 32; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = quant_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int lo = (int8_t)(x[j] * id + 8.5f);
            int hi = (int8_t)(x[j + 16] * id + 8.5f);
            lo = lo > 15 ? 15 : lo;
            hi = hi > 15 ? 15 : hi;
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void quant_act_q8_0(const float *x, struct quant_q8_0 *y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        y[b].d = quant_fp32_to_fp16(amax / 127.0f);
        float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; j++)
            y[b].qs[j] = (int8_t)lrintf(x[j] * id);
    }
}

void quant_act_q8_k(const float *x, struct quant_q8_k *y, int64_t n)
{
    for (int64_t b = 0; b < n / QUANT_QK_K; b++, x += QUANT_QK_K) {
        float amax = 0.0f;
        float max = 0.0f;
        for (int j = 0; j < QUANT_QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[b], 0, sizeof(y[b]));
            continue;
        }
        float iscale = -127.0f / max;
        for (int j = 0; j < QUANT_QK_K; j++) {
            long v = lrintf(iscale * x[j]);
            y[b].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < QUANT_QK_K / 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++)
                s += y[b].qs[j * 16 + i];
            y[b].bsums[j] = (int16_t)s;
        }
        y[b].d = 1.0f / iscale;
    }
}

void quant_act_row(uint32_t act_type, const float *x, void *dst, int64_t n)
{
    switch (act_type) {
    case QUANT_TYPE_Q8_0X4B:
    case QUANT_TYPE_Q8_0X4A:
        quant_simd_act_x4(act_type, x, dst, n);
        break;
    case GGML_TYPE_F16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++)
            h[i] = quant_fp32_to_fp16(x[i]);
        break;
    }
    case GGML_TYPE_Q8_0:
        quant_act_q8_0(x, dst, n);
        break;
    case GGML_TYPE_Q8_K:
        quant_act_q8_k(x, dst, n);
        break;
    default:
        memcpy(dst, x, (size_t)n * sizeof(float));
        break;
    }
}

/* ---- dequantisers ------------------------------------------------------------------- */

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K super-block. */
static void q4k_scale_min(int j, const uint8_t *s, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void dequant_q4_k(const struct quant_q4_k *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++) {
        float d = quant_fp16_to_fp32(x[b].d);
        float dmin = quant_fp16_to_fp32(x[b].dmin);
        const uint8_t *q = x[b].qs;
        for (int j = 0; j < 8; j += 2, q += 32) {
            int sc0, m0, sc1, m1;
            q4k_scale_min(j, x[b].scales, &sc0, &m0);
            q4k_scale_min(j + 1, x[b].scales, &sc1, &m1);
            for (int l = 0; l < 32; l++)
                *y++ = d * (float)sc0 * (float)(q[l] & 0x0f) - dmin * (float)m0;
            for (int l = 0; l < 32; l++)
                *y++ = d * (float)sc1 * (float)(q[l] >> 4) - dmin * (float)m1;
        }
    }
}

/* Q6_K quant i (0..255) of a super-block, as a signed value in [-32, 31]. Each half of
 * 128 quants uses 64 ql bytes and 32 qh bytes; quant 32*k+l of a half takes the low or
 * high nibble of ql[l + 32*(k&1)] and bits 2k..2k+1 of qh[l]. */
static int q6k_quant(const struct quant_q6_k *x, int i)
{
    int half = i / 128;
    int r = i % 128;
    int k = r / 32;
    int l = r % 32;
    const uint8_t *ql = x->ql + 64 * half;
    const uint8_t *qh = x->qh + 32 * half;
    int lo = ql[l + 32 * (k & 1)];
    lo = (k < 2) ? (lo & 0x0f) : (lo >> 4);
    int hi = (qh[l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32;
}

static void dequant_q6_k(const struct quant_q6_k *x, float *y, int64_t nb)
{
    for (int64_t b = 0; b < nb; b++) {
        float d = quant_fp16_to_fp32(x[b].d);
        for (int i = 0; i < QUANT_QK_K; i++)
            *y++ = d * (float)x[b].scales[i / 16] * (float)q6k_quant(&x[b], i);
    }
}

int quant_dequant_row(uint32_t t, const void *src, float *dst, int64_t n)
{
    uint32_t be = quant_block_elems(t);
    if (be == 0 || n % be != 0)
        return -1;
    int64_t nb = n / be;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    case GGML_TYPE_F16: {
        const uint16_t *h = src;
        for (int64_t i = 0; i < n; i++)
            dst[i] = quant_fp16_to_fp32(h[i]);
        return 0;
    }
    case GGML_TYPE_Q8_0: {
        const struct quant_q8_0 *x = src;
        for (int64_t b = 0; b < nb; b++) {
            float d = quant_fp16_to_fp32(x[b].d);
            for (int j = 0; j < 32; j++)
                *dst++ = d * (float)x[b].qs[j];
        }
        return 0;
    }
    case GGML_TYPE_Q4_0: {
        const struct quant_q4_0 *x = src;
        for (int64_t b = 0; b < nb; b++) {
            float d = quant_fp16_to_fp32(x[b].d);
            for (int j = 0; j < 16; j++) {
                dst[j] = d * (float)((x[b].qs[j] & 0x0f) - 8);
                dst[j + 16] = d * (float)((x[b].qs[j] >> 4) - 8);
            }
            dst += 32;
        }
        return 0;
    }
    case GGML_TYPE_Q4_K:
        dequant_q4_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q6_K:
        dequant_q6_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q8_K: {
        const struct quant_q8_k *x = src;
        for (int64_t b = 0; b < nb; b++)
            for (int j = 0; j < QUANT_QK_K; j++)
                *dst++ = x[b].d * (float)x[b].qs[j];
        return 0;
    }
    default:
        return -1;
    }
}

/* ---- plain dot kernels -------------------------------------------------------------- */

static float dot_f32_plain(int64_t n, const void *w, const void *a)
{
    const float *x = w;
    const float *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += x[i] * y[i];
    return sum;
}

static float dot_f16_plain(int64_t n, const void *w, const void *a)
{
    const uint16_t *x = w;
    const uint16_t *y = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += quant_fp16_to_fp32(x[i]) * quant_fp16_to_fp32(y[i]);
    return sum;
}

static float dot_q8_0_plain(int64_t n, const void *w, const void *a)
{
    const struct quant_q8_0 *x = w;
    const struct quant_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int s = 0;
        for (int j = 0; j < 32; j++)
            s += x[b].qs[j] * y[b].qs[j];
        sum += (float)s * (quant_fp16_to_fp32(x[b].d) * quant_fp16_to_fp32(y[b].d));
    }
    return sum;
}

static float dot_q4_0_plain(int64_t n, const void *w, const void *a)
{
    const struct quant_q4_0 *x = w;
    const struct quant_q8_0 *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / 32; b++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += ((x[b].qs[j] & 0x0f) - 8) * y[b].qs[j];
            s += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
        }
        sum += (float)s * (quant_fp16_to_fp32(x[b].d) * quant_fp16_to_fp32(y[b].d));
    }
    return sum;
}

static float dot_q4_k_plain(int64_t n, const void *w, const void *a)
{
    const struct quant_q4_k *x = w;
    const struct quant_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QUANT_QK_K; b++) {
        const uint8_t *q = x[b].qs;
        const int8_t *p = y[b].qs;
        int sumi = 0;
        int summ = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            q4k_scale_min(j, x[b].scales, &sc, &m);
            const uint8_t *qq = q + 32 * (j / 2);
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int v = (j & 1) ? (qq[l] >> 4) : (qq[l] & 0x0f);
                s += v * p[32 * j + l];
            }
            sumi += sc * s;
            summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
        }
        float d = y[b].d * quant_fp16_to_fp32(x[b].d);
        float dmin = y[b].d * quant_fp16_to_fp32(x[b].dmin);
        sum += d * (float)sumi - dmin * (float)summ;
    }
    return sum;
}

static float dot_q6_k_plain(int64_t n, const void *w, const void *a)
{
    const struct quant_q6_k *x = w;
    const struct quant_q8_k *y = a;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QUANT_QK_K; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++)
                s += q6k_quant(&x[b], 16 * j + l) * y[b].qs[16 * j + l];
            sumi += x[b].scales[j] * s;
        }
        sum += quant_fp16_to_fp32(x[b].d) * y[b].d * (float)sumi;
    }
    return sum;
}

quant_dot_fn quant_dot_plain(uint32_t t)
{
    switch (t) {
    case GGML_TYPE_F32:
        return dot_f32_plain;
    case GGML_TYPE_F16:
        return dot_f16_plain;
    case GGML_TYPE_Q8_0:
        return dot_q8_0_plain;
    case GGML_TYPE_Q4_0:
        return dot_q4_0_plain;
    case GGML_TYPE_Q4_K:
        return dot_q4_k_plain;
    case GGML_TYPE_Q6_K:
        return dot_q6_k_plain;
    default:
        return NULL;
    }
}

void quant_axpy_f16_plain(int64_t n, float a, const uint16_t *x, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * quant_fp16_to_fp32(x[i]);
}

/* ---- run-time dispatch -------------------------------------------------------------- */

static pthread_once_t dispatch_once = PTHREAD_ONCE_INIT;
static int simd_level; /* 0 plain, 1 avx2, 2 avx512 vnni */
static bool force_plain;

static void dispatch_init(void)
{
    simd_level = quant_simd_detect();
}

void quant_force_plain(bool on)
{
    force_plain = on;
}

const char *quant_simd_name(void)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (force_plain || simd_level == 0)
        return "plain";
    return simd_level >= 2 ? "avx512vnni" : "avx2";
}

quant_dot_fn quant_dot(uint32_t t)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (!force_plain && simd_level > 0) {
        quant_dot_fn f = quant_simd_dot(t, simd_level);
        if (f)
            return f;
    }
    return quant_dot_plain(t);
}

void quant_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (!force_plain && simd_level > 0) {
        quant_simd_fp16_row(x, y, n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        y[i] = quant_fp32_to_fp16(x[i]);
}

quant_axpy_fn quant_axpy_f16(void)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (!force_plain && simd_level > 0)
        return quant_simd_axpy_f16();
    return quant_axpy_f16_plain;
}

uint32_t quant_repacked_type(uint32_t t, int64_t n)
{
    uint32_t rp = t == GGML_TYPE_Q4_0   ? QUANT_TYPE_Q4_0X4
                  : t == GGML_TYPE_Q8_0 ? QUANT_TYPE_Q8_0X4
                                        : 0;
    if (!rp || n % 128 != 0 || !quant_gemm(rp))
        return 0;
    return rp;
}

void quant_repack_row(uint32_t t, const void *src, void *dst, int64_t n)
{
    if (t == GGML_TYPE_Q8_0) {
        const struct quant_q8_0 *x = src;
        struct quant_q8_0x4 *y = dst;
        for (int64_t g = 0; g < n / 128; g++) {
            for (int j = 0; j < 4; j++) {
                y[g].d[j] = x[4 * g + j].d;
                memcpy(y[g].qs + 32 * j, x[4 * g + j].qs, 32);
            }
        }
        return;
    }
    const struct quant_q4_0 *x = src;
    struct quant_q4_0x4 *y = dst;
    for (int64_t g = 0; g < n / 128; g++) {
        for (int j = 0; j < 4; j++) {
            y[g].d[j] = x[4 * g + j].d;
            memcpy(y[g].qs + 16 * j, x[4 * g + j].qs, 16);
        }
    }
}

quant_gemm_fn quant_gemm(uint32_t t)
{
    pthread_once(&dispatch_once, dispatch_init);
    if (force_plain || simd_level < 2)
        return NULL;
    return quant_simd_gemm(t);
}
