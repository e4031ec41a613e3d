/* test_vkb_ops.c - every Vulkan op against a naive CPU loop, on random inputs.
 *
 * Runs on whatever Vulkan device is best (lavapipe in CI). The weight tests build
 * random ggml blocks (the file layout, not the device one), dequantise them here
 * with a plain loop written from the block definitions, and compare the device's
 * mat-vec, mat-mat and row gather with sums in double. Sizes are odd on purpose:
 * rows not a multiple of the workgroup, token counts not a multiple of the tile,
 * attention at the last position of the context.
 *
 * Tolerances: dequantised rows must match exactly (the device multiplies the same
 * float scales); dot products within 2e-6 * sum|w*x| + 1e-6 (float accumulation of
 * up to 512 terms); rope, norms and attention within 1e-5 relative; expert mat-vecs
 * bitwise equal to the plain mat-vec; GELU within 2e-3 (one F16 step of its output).
 */
#include "test.h"

#include "gguf.h"
#include "vulkan/vkb.h"

#include <stdint.h>

static struct vkb_ctx *ctx;
static char err[512];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd_u32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static float rnd_f(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rnd_u32() & 0xffffff) / (float)0x1000000;
}

/* ---- f16 helpers (round to nearest even; normal range only) ---- */

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t e = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (e <= 0)
        return (uint16_t)sign; /* flush tiny values: never produced by these tests */
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)h;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t x;
    if (e == 0 && man == 0)
        x = sign;
    else if (e == 0)
        return (h & 0x8000 ? -1.0f : 1.0f) * (float)man * 5.9604644775390625e-8f;
    else
        x = sign | ((e - 15 + 127) << 23) | (man << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static float round_f16(float f)
{
    return f16_to_f32(f32_to_f16(f));
}

/* ---- random ggml blocks and their reference dequantisation ---- */

struct wtype {
    uint32_t type;
    const char *name;
    uint32_t block_elems;
    uint32_t block_bytes;
};

static const struct wtype wtypes[] = {
    {GGML_TYPE_F32, "F32", 1, 4},       {GGML_TYPE_F16, "F16", 1, 2},
    {GGML_TYPE_Q8_0, "Q8_0", 32, 34},   {GGML_TYPE_Q4_0, "Q4_0", 32, 18},
    {GGML_TYPE_Q4_K, "Q4_K", 256, 144}, {GGML_TYPE_Q6_K, "Q6_K", 256, 210},
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void random_block(uint32_t type, uint8_t *b)
{
    switch (type) {
    case GGML_TYPE_F32: {
        float f = rnd_f(-1, 1);
        memcpy(b, &f, 4);
        break;
    }
    case GGML_TYPE_F16:
        put16(b, f32_to_f16(rnd_f(-1, 1)));
        break;
    case GGML_TYPE_Q8_0:
        put16(b, f32_to_f16(rnd_f(0.001f, 0.01f)));
        for (int i = 0; i < 32; i++)
            b[2 + i] = (uint8_t)(rnd_u32() % 255 + 129); /* int8 -127..127 */
        break;
    case GGML_TYPE_Q4_0:
        put16(b, f32_to_f16(rnd_f(-0.1f, 0.1f)));
        for (int i = 0; i < 16; i++)
            b[2 + i] = (uint8_t)rnd_u32();
        break;
    case GGML_TYPE_Q4_K:
        put16(b, f32_to_f16(rnd_f(0.0005f, 0.002f)));
        put16(b + 2, f32_to_f16(rnd_f(0.0005f, 0.002f)));
        for (int i = 4; i < 144; i++)
            b[i] = (uint8_t)rnd_u32();
        break;
    case GGML_TYPE_Q6_K:
        for (int i = 0; i < 192; i++)
            b[i] = (uint8_t)rnd_u32();
        for (int i = 0; i < 16; i++)
            b[192 + i] = (uint8_t)(int8_t)(rnd_u32() % 128 - 64);
        put16(b + 208, f32_to_f16(rnd_f(0.0005f, 0.002f)));
        break;
    }
}

/* Reference dequantisation of one ggml block into y (block_elems values). */
static void dequant_block(uint32_t type, const uint8_t *b, float *y)
{
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(y, b, 4);
        break;
    case GGML_TYPE_F16:
        y[0] = f16_to_f32(get16(b));
        break;
    case GGML_TYPE_Q8_0: {
        float d = f16_to_f32(get16(b));
        for (int i = 0; i < 32; i++)
            y[i] = d * (float)(int8_t)b[2 + i];
        break;
    }
    case GGML_TYPE_Q4_0: {
        float d = f16_to_f32(get16(b));
        for (int i = 0; i < 16; i++) {
            y[i] = (float)((b[2 + i] & 0xF) - 8) * d;
            y[i + 16] = (float)((b[2 + i] >> 4) - 8) * d;
        }
        break;
    }
    case GGML_TYPE_Q4_K: {
        float d = f16_to_f32(get16(b));
        float dmin = f16_to_f32(get16(b + 2));
        const uint8_t *sc = b + 4;
        const uint8_t *q = b + 16;
        for (int j = 0; j < 8; j++) {
            int s;
            int m;
            if (j < 4) {
                s = sc[j] & 63;
                m = sc[j + 4] & 63;
            } else {
                s = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
                m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
            }
            float d1 = d * (float)s;
            float m1 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                int v = (j & 1) ? q[32 * (j / 2) + l] >> 4 : q[32 * (j / 2) + l] & 0xF;
                y[32 * j + l] = d1 * (float)v - m1;
            }
        }
        break;
    }
    case GGML_TYPE_Q6_K: {
        float d = f16_to_f32(get16(b + 208));
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int i = 0; i < 256; i++) {
            int half = i / 128;
            int r = i % 128;
            int quarter = r / 32;
            int l = r % 32;
            const uint8_t *ql = b + 64 * half;
            const uint8_t *qh = b + 128 + 32 * half;
            int lo = (quarter & 1) ? ql[l + 32] : ql[l];
            lo = quarter >= 2 ? lo >> 4 : lo & 0xF;
            int hi = (qh[l] >> (2 * quarter)) & 3;
            int q = (lo | (hi << 4)) - 32;
            y[i] = d * (float)sc[8 * half + 2 * quarter + l / 16] * (float)q;
        }
        break;
    }
    }
}

/* A random n x k matrix of type wt: its file bytes and dequantised floats. */
struct rmat {
    uint8_t *bytes;
    size_t nbytes;
    float *deq;
};

static void rmat_make(struct rmat *m, const struct wtype *wt, uint32_t k, uint32_t n)
{
    size_t blocks = (size_t)n * k / wt->block_elems;
    m->nbytes = blocks * wt->block_bytes;
    m->bytes = malloc(m->nbytes);
    m->deq = malloc((size_t)n * k * sizeof(float));
    for (size_t i = 0; i < blocks; i++) {
        random_block(wt->type, m->bytes + i * wt->block_bytes);
        dequant_block(wt->type, m->bytes + i * wt->block_bytes, m->deq + i * wt->block_elems);
    }
}

static void rmat_free(struct rmat *m)
{
    free(m->bytes);
    free(m->deq);
}

/* ---- device helpers ---- */

static int buf_from(struct vkb_buf *b, const void *data, size_t bytes, enum vkb_mem kind)
{
    if (vkb_buf_new(ctx, b, bytes, kind, err, sizeof(err)) < 0)
        return -1;
    return data ? vkb_buf_upload(ctx, b, 0, data, bytes, err, sizeof(err))
                : vkb_buf_zero(ctx, b, err, sizeof(err));
}

static struct vkb_view vw(struct vkb_buf *b, uint32_t off, uint32_t stride)
{
    return (struct vkb_view){.buf = b, .off = off, .stride = stride};
}

static float *rnd_vec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = rnd_f(lo, hi);
    return v;
}

/* ---- tests ---- */

/* The reference's Q8_K activation quantization of 256 values at v, in place. */
static float quantize_q8k_ref(float *v)
{
    float amax = 0;
    float vmax = 0;
    for (int i = 0; i < 256; i++) {
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            vmax = v[i];
        }
    }
    float s = amax != 0 ? -127.0f / vmax : 0.0f;
    float d = amax != 0 ? 1.0f / s : 0.0f;
    for (int i = 0; i < 256; i++) {
        float q = nearbyintf(s * v[i]);
        v[i] = d * (q > 127 ? 127 : q);
    }
    return fabsf(d);
}

/* The reference's activation quantization (Q8_0 blocks, scale rounded to F16; Q8_K
 * for K-quant weights): x replaced by its dequantized value in place, for rows of k
 * at stride xs from offset 4. */
static void quantize_ref(float *x, uint32_t k, uint32_t xs, uint32_t m, bool kq, float *dmax)
{
    *dmax = 0;
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t b = 0; kq && b < k; b += 256) {
            float d = quantize_q8k_ref(x + 4 + (size_t)t * xs + b);
            *dmax = d > *dmax ? d : *dmax;
        }
        for (uint32_t b = 0; !kq && b < k; b += 32) {
            float *v = x + 4 + (size_t)t * xs + b;
            float amax = 0;
            for (int i = 0; i < 32; i++)
                amax = fabsf(v[i]) > amax ? fabsf(v[i]) : amax;
            float d = amax / 127.0f;
            float id = d != 0 ? 1.0f / d : 0.0f;
            float d16 = round_f16(d);
            *dmax = d16 > *dmax ? d16 : *dmax;
            for (int i = 0; i < 32; i++)
                v[i] = d16 * roundf(v[i] * id);
        }
    }
}

/* y = W x for m tokens on the device, through mat-vec (m < 4) or tiled mat-mat;
 * quantized weight types first quantize x on the device (vkb_op_quant_q8). */
static int run_matmul(const struct vkb_weight *w, struct vkb_buf *xb, uint32_t m, float *y,
                      struct vkb_buf *bias, uint32_t flags, const float *y0)
{
    struct vkb_buf yb;
    struct vkb_buf qb;
    struct vkb_buf sb;
    struct vkb_xq xq = {&qb, &sb};
    size_t yn = (size_t)m * (w->n + 3);
    if (buf_from(&yb, y0, yn * sizeof(float), VKB_MEM_DEVICE) < 0 ||
        buf_from(&qb, NULL, (size_t)m * w->k, VKB_MEM_DEVICE) < 0 ||
        buf_from(&sb, NULL, (size_t)m * w->k / 32 * sizeof(float), VKB_MEM_DEVICE) < 0)
        return -1;
    int rc = vkb_rec_begin(ctx, err, sizeof(err));
    if (rc == 0 && vkb_type_is_quant(w->type)) {
        rc = vkb_op_quant_q8(ctx, vw(xb, 4, w->k + 8), w->k, m, vkb_type_is_kquant(w->type), &xq,
                             err, sizeof(err));
        vkb_rec_barrier(ctx);
    }
    if (rc == 0)
        rc = vkb_op_matmul(ctx, w, vw(xb, 4, w->k + 8), &xq, vw(&yb, 1, w->n + 3), m, bias, flags,
                           err, sizeof(err));
    if (rc == 0)
        rc = vkb_rec_submit(ctx, err, sizeof(err));
    if (rc == 0)
        rc = vkb_buf_read(ctx, &yb, 0, y, yn * sizeof(float), err, sizeof(err));
    vkb_buf_free(ctx, &yb);
    vkb_buf_free(ctx, &qb);
    vkb_buf_free(ctx, &sb);
    return rc;
}

static void check_matmul_type(const struct wtype *wt, uint32_t k, uint32_t n)
{
    struct rmat rm;
    rmat_make(&rm, wt, k, n);
    struct mdl_tensor t = {.type = wt->type, .ne = {k, n}, .data = rm.bytes, .nbytes = rm.nbytes};
    struct vkb_weight w;
    ASSERT_INT_EQ(vkb_weight_upload(ctx, &w, &t, err, sizeof(err)), 0);
    const uint32_t M = 13;
    const uint32_t xs = k + 8; /* x rows with a stride and offset 4 */
    float *x = rnd_vec((size_t)M * xs + 4, -1, 1);
    float *bias = rnd_vec(n, -1, 1);
    struct vkb_buf xb;
    struct vkb_buf bb;
    ASSERT_INT_EQ(buf_from(&xb, x, ((size_t)M * xs + 4) * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&bb, bias, n * sizeof(float), VKB_MEM_DEVICE), 0);
    size_t yn = (size_t)M * (n + 3);
    float *y0 = rnd_vec(yn, -1, 1);
    float *y1 = malloc(yn * sizeof(float));
    float *y3 = malloc(yn * sizeof(float));
    float *ym = malloc(yn * sizeof(float));
    /* quantized weights meet quantized activations: compare with the same rounding;
     * allow a rare one-step difference of a rounded activation (division ulps) */
    float dmax = 0;
    float wmax = 0;
    if (vkb_type_is_quant(wt->type))
        quantize_ref(x, k, xs, M, vkb_type_is_kquant(wt->type), &dmax);
    for (size_t i = 0; i < (size_t)n * k; i++)
        wmax = fabsf(rm.deq[i]) > wmax ? fabsf(rm.deq[i]) : wmax;
    ASSERT_INT_EQ(run_matmul(&w, &xb, 1, y1, NULL, 0, NULL), 0);
    ASSERT_INT_EQ(run_matmul(&w, &xb, 3, y3, &bb, VKB_MM_BIAS, NULL), 0);
    ASSERT_INT_EQ(run_matmul(&w, &xb, M, ym, &bb, VKB_MM_BIAS | VKB_MM_ACCUMULATE, y0), 0);
    double worst = 0;
    for (uint32_t tk = 0; tk < M; tk++) {
        for (uint32_t r = 0; r < n; r++) {
            double s = 0;
            double sa = 0;
            for (uint32_t i = 0; i < k; i++) {
                double p = (double)rm.deq[(size_t)r * k + i] * x[4 + (size_t)tk * xs + i];
                s += p;
                sa += fabs(p);
            }
            double tol = 2e-6 * sa + 1e-6 + 2.0 * dmax * wmax;
            size_t yi = 1 + (size_t)tk * (n + 3) + r;
            double want = s + bias[r] + y0[yi];
            double d = fabs(ym[yi] - want) / tol;
            worst = d > worst ? d : worst;
            if (!(fabs(ym[yi] - want) <= tol))
                TEST_FAIL_("%s matmul k=%u row %u token %u: %.8g vs %.8g", wt->name, k, r, tk,
                           ym[yi], want);
            if (tk < 3) {
                float b3 = y3[yi] - bias[r];
                ASSERT_NEAR(b3, s, tol);
            }
            if (tk == 0) {
                ASSERT_NEAR(y1[yi], s, tol);
                /* batch invariance: mat-vec and mat-mat give the same bits */
                float mm = ym[yi] - bias[r] - y0[yi];
                ASSERT_NEAR(y1[yi], mm, tol);
            }
        }
    }
    /* the mat-vec result for token 0 equals the mat-mat one before bias/accumulate */
    float *yz = malloc(yn * sizeof(float));
    ASSERT_INT_EQ(run_matmul(&w, &xb, 5, yz, NULL, 0, NULL), 0);
    for (uint32_t r = 0; r < n; r++)
        if (memcmp(&yz[1 + r], &y1[1 + r], sizeof(float)) != 0)
            TEST_FAIL_("%s row %u: mat-vec %.9g != mat-mat %.9g", wt->name, r, y1[1 + r],
                       yz[1 + r]);
    free(yz);
    vkb_buf_free(ctx, &xb);
    vkb_buf_free(ctx, &bb);
    vkb_weight_free(ctx, &w);
    free(x);
    free(bias);
    free(y0);
    free(y1);
    free(y3);
    free(ym);
    rmat_free(&rm);
}

static void test_matmul_all_types(void)
{
    for (size_t i = 0; i < sizeof(wtypes) / sizeof(wtypes[0]); i++) {
        uint32_t k = wtypes[i].block_elems == 256 ? 512 : 96;
        check_matmul_type(&wtypes[i], k, 37); /* 37 rows: not a multiple of 32 */
        if (test_cur_failed)
            return;
        check_matmul_type(&wtypes[i], 256, 70);
        if (test_cur_failed)
            return;
    }
}

static void test_get_rows_all_types(void)
{
    for (size_t ti = 0; ti < sizeof(wtypes) / sizeof(wtypes[0]); ti++) {
        const struct wtype *wt = &wtypes[ti];
        const uint32_t k = 256;
        const uint32_t n = 11;
        struct rmat rm;
        rmat_make(&rm, wt, k, n);
        struct mdl_tensor t = {
            .type = wt->type, .ne = {k, n}, .data = rm.bytes, .nbytes = rm.nbytes};
        struct vkb_weight w;
        ASSERT_INT_EQ(vkb_weight_upload(ctx, &w, &t, err, sizeof(err)), 0);
        int32_t info[5] = {7, 0, 10, 3, 7};
        struct vkb_buf ib;
        struct vkb_buf ob;
        ASSERT_INT_EQ(buf_from(&ib, info, sizeof(info), VKB_MEM_HOST), 0);
        const uint32_t os = k + 4; /* output rows at offset 4, stride k + 4 */
        ASSERT_INT_EQ(buf_from(&ob, NULL, 5 * os * sizeof(float), VKB_MEM_DEVICE), 0);
        ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
        ASSERT_INT_EQ(vkb_op_get_rows(ctx, &w, &ib, 0, vw(&ob, 4, os), 5, err, sizeof(err)), 0);
        ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
        float *o = malloc(5 * os * sizeof(float));
        ASSERT_INT_EQ(vkb_buf_read(ctx, &ob, 0, o, 5 * os * sizeof(float), err, sizeof(err)), 0);
        for (int j = 0; j < 5; j++)
            for (uint32_t i = 0; i < k; i++)
                if (o[4 + j * os + i] != rm.deq[(size_t)info[j] * k + i])
                    TEST_FAIL_("%s get_rows token %d elem %u: %.9g vs %.9g", wt->name, j, i,
                               o[4 + j * os + i], rm.deq[(size_t)info[j] * k + i]);
        free(o);
        vkb_buf_free(ctx, &ib);
        vkb_buf_free(ctx, &ob);
        vkb_weight_free(ctx, &w);
        rmat_free(&rm);
    }
}

static void test_rmsnorm(void)
{
    const uint32_t n = 100;
    const uint32_t m = 3;
    float *x = rnd_vec(m * n, -2, 2);
    float *wt = rnd_vec(n, 0.5f, 1.5f);
    int32_t info[4] = {0, 0, 2, 1}; /* gather: rows 2 then 1 at info[2..3] */
    struct vkb_buf xb;
    struct vkb_buf wb;
    struct vkb_buf ob;
    struct vkb_buf ib;
    ASSERT_INT_EQ(buf_from(&xb, x, m * n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&wb, wt, n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ob, NULL, 2 * m * n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ib, info, sizeof(info), VKB_MEM_HOST), 0);
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_rmsnorm(ctx, vw(&xb, 0, n), &wb, vw(&ob, 0, n), n, m, 1e-5f, NULL, -1, err,
                                 sizeof(err)),
                  0);
    ASSERT_INT_EQ(vkb_op_rmsnorm(ctx, vw(&xb, 0, n), &wb, vw(&ob, m * n, n), n, 2, 1e-5f, &ib, 2,
                                 err, sizeof(err)),
                  0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float o[600];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &ob, 0, o, sizeof(o), err, sizeof(err)), 0);
    for (uint32_t t = 0; t < m; t++) {
        double ss = 0;
        for (uint32_t i = 0; i < n; i++)
            ss += (double)x[t * n + i] * x[t * n + i];
        double sc = 1.0 / sqrt(ss / n + 1e-5);
        for (uint32_t i = 0; i < n; i++) {
            double want = x[t * n + i] * sc * wt[i];
            ASSERT_NEAR(o[t * n + i], want, 1e-5 * (1 + fabs(want)));
            if (t >= 1) { /* gathered copy: out row 0 = row 2, out row 1 = row 1 */
                uint32_t j = t == 2 ? 0 : 1;
                ASSERT_NEAR(o[m * n + j * n + i], want, 1e-5 * (1 + fabs(want)));
            }
        }
    }
    vkb_buf_free(ctx, &xb);
    vkb_buf_free(ctx, &wb);
    vkb_buf_free(ctx, &ob);
    vkb_buf_free(ctx, &ib);
    free(x);
    free(wt);
}

/* scaled: frequency divisors (Llama 3 style), linear scaling and an attention factor */
static void check_rope(bool neox, bool scaled)
{
    const uint32_t hd = 16;
    const uint32_t nh = 3;
    const uint32_t m = 4;
    const uint32_t n_ctx = 300;
    const uint32_t stride = nh * hd + 5;
    const float base = 10000.0f;
    float *x = rnd_vec(m * stride, -1, 1);
    int32_t pos[4] = {0, 1, 77, 299};
    float ff[8] = {1.0f, 1.0f, 1.25f, 2.0f, 3.5f, 8.0f, 8.0f, 8.0f};
    struct mdl_rope r = {base, scaled ? 0.125f : 1.0f, scaled ? 1.2f : 1.0f};
    float *tab = vkb_rope_table(n_ctx, hd, &r, scaled ? ff : NULL);
    struct vkb_buf xb;
    struct vkb_buf tb;
    struct vkb_buf ib;
    ASSERT_INT_EQ(buf_from(&xb, x, m * stride * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&tb, tab, (size_t)n_ctx * hd * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ib, pos, sizeof(pos), VKB_MEM_HOST), 0);
    struct vkb_rope_args a = {
        .n_heads = nh, .head_dim = hd, .n_rot = hd, .neox = neox, .pos_off = 0};
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_rope(ctx, vw(&xb, 0, stride), &tb, &ib, &a, m, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float *o = malloc(m * stride * sizeof(float));
    ASSERT_INT_EQ(vkb_buf_read(ctx, &xb, 0, o, m * stride * sizeof(float), err, sizeof(err)), 0);
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t h = 0; h < nh; h++) {
            for (uint32_t i = 0; i < hd / 2; i++) {
                double ang = pos[t] * pow(base, -2.0 * i / hd);
                double mag = 1.0;
                if (scaled) {
                    ang = ang / ff[i] * 0.125;
                    mag = 1.2;
                }
                uint32_t i0 = t * stride + h * hd + (neox ? i : 2 * i);
                uint32_t i1 = t * stride + h * hd + (neox ? i + hd / 2 : 2 * i + 1);
                double a0 = mag * (x[i0] * cos(ang) - x[i1] * sin(ang));
                double a1 = mag * (x[i0] * sin(ang) + x[i1] * cos(ang));
                ASSERT_NEAR(o[i0], a0, 1e-5);
                ASSERT_NEAR(o[i1], a1, 1e-5);
            }
        }
        for (uint32_t i = nh * hd; i < stride; i++) /* untouched tail */
            ASSERT_TRUE(o[t * stride + i] == x[t * stride + i]);
    }
    free(o);
    free(x);
    free(tab);
    vkb_buf_free(ctx, &xb);
    vkb_buf_free(ctx, &tb);
    vkb_buf_free(ctx, &ib);
}

static void test_rope_normal(void)
{
    check_rope(false, false);
}

static void test_rope_neox(void)
{
    check_rope(true, false);
}

/* Llama 3 frequency divisors, linear scaling and LongRoPE's attention factor in the
 * table, against the rotation computed directly. */
static void test_rope_scaled(void)
{
    check_rope(false, true);
    check_rope(true, true);
}

/* Fills two slots' caches with kv_write, then attends from chosen positions
 * (including the last position of the context) and compares with a CPU loop over
 * the F16-rounded keys and values. */
static void check_attention_ex(uint32_t hd, uint32_t n_head, uint32_t n_head_kv, float softcap,
                               uint32_t n_swa)
{
    const uint32_t n_ctx = 37;
    const uint32_t n_slots = 2;
    const uint32_t kvd = n_head_kv * hd;
    const uint32_t qd = n_head * hd;
    const uint32_t qkvd = qd + 2 * kvd;
    const uint32_t m = n_ctx * n_slots; /* one token per (slot, pos) */
    float *qkv = rnd_vec((size_t)m * qkvd, -2, 2);
    int32_t *info = malloc(2 * m * sizeof(int32_t)); /* pos[m], slot[m] */
    for (uint32_t j = 0; j < m; j++) {
        info[j] = (int32_t)(j % n_ctx);
        info[m + j] = (int32_t)(j / n_ctx);
    }
    struct vkb_buf qb;
    struct vkb_buf kc;
    struct vkb_buf vc;
    struct vkb_buf ib;
    struct vkb_buf ob;
    ASSERT_INT_EQ(buf_from(&qb, qkv, (size_t)m * qkvd * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&kc, NULL, (size_t)n_slots * n_ctx * kvd * 2, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&vc, NULL, (size_t)n_slots * n_ctx * kvd * 2, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ib, info, 2 * m * sizeof(int32_t), VKB_MEM_HOST), 0);
    ASSERT_INT_EQ(buf_from(&ob, NULL, (size_t)m * qd * sizeof(float), VKB_MEM_DEVICE), 0);
    struct vkb_kv_args ka = {
        .kv_dim = kvd, .n_ctx = n_ctx, .k_off = qd, .v_off = qd + kvd, .pos_off = 0, .slot_off = m};
    struct vkb_attn_args aa = {.n_head = n_head,
                               .n_head_kv = n_head_kv,
                               .head_dim = hd,
                               .n_ctx = n_ctx,
                               .pos_off = 0,
                               .slot_off = m,
                               .scale = 1.0f / sqrtf((float)hd),
                               .softcap = softcap,
                               .post_scale = 1.0f,
                               .n_swa = n_swa};
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_kv_write(ctx, vw(&qb, 0, qkvd), &kc, &vc, &ib, &ka, m, err, sizeof(err)),
                  0);
    vkb_rec_barrier(ctx);
    ASSERT_INT_EQ(
        vkb_op_attn(ctx, vw(&qb, 0, qkvd), &kc, &vc, &ib, &aa, vw(&ob, 0, qd), m, err, sizeof(err)),
        0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float *o = malloc((size_t)m * qd * sizeof(float));
    ASSERT_INT_EQ(vkb_buf_read(ctx, &ob, 0, o, (size_t)m * qd * sizeof(float), err, sizeof(err)),
                  0);
    double *sc = malloc(n_ctx * sizeof(double));
    for (uint32_t j = 0; j < m; j++) {
        uint32_t pos = (uint32_t)info[j];
        uint32_t slot = (uint32_t)info[m + j];
        for (uint32_t h = 0; h < n_head; h++) {
            uint32_t kvh = h / (n_head / n_head_kv);
            double mx = -1e300;
            uint32_t first = n_swa && pos + 1 > n_swa ? pos + 1 - n_swa : 0;
            for (uint32_t p = first; p <= pos; p++) {
                const float *kr = qkv + (size_t)(slot * n_ctx + p) * qkvd + qd + kvh * hd;
                double s = 0;
                for (uint32_t i = 0; i < hd; i++)
                    s += (double)qkv[(size_t)j * qkvd + h * hd + i] * round_f16(kr[i]);
                sc[p] = s / sqrt((double)hd);
                if (softcap > 0)
                    sc[p] = softcap * tanh(sc[p] / softcap);
                mx = sc[p] > mx ? sc[p] : mx;
            }
            double sum = 0;
            for (uint32_t p = first; p <= pos; p++) {
                sc[p] = exp(sc[p] - mx);
                sum += sc[p];
            }
            for (uint32_t i = 0; i < hd; i++) {
                double v = 0;
                for (uint32_t p = first; p <= pos; p++)
                    v +=
                        sc[p] *
                        round_f16(qkv[(size_t)(slot * n_ctx + p) * qkvd + qd + kvd + kvh * hd + i]);
                v /= sum;
                float got = o[(size_t)j * qd + h * hd + i];
                if (!(fabs(got - v) <= 1e-5 * (1 + fabs(v))))
                    TEST_FAIL_("attn hd %u slot %u pos %u head %u dim %u: %.8g vs %.8g", hd, slot,
                               pos, h, i, got, v);
            }
        }
    }
    free(sc);
    free(o);
    free(qkv);
    free(info);
    vkb_buf_free(ctx, &qb);
    vkb_buf_free(ctx, &kc);
    vkb_buf_free(ctx, &vc);
    vkb_buf_free(ctx, &ib);
    vkb_buf_free(ctx, &ob);
}

static void check_attention(uint32_t hd, uint32_t n_head, uint32_t n_head_kv)
{
    check_attention_ex(hd, n_head, n_head_kv, 0.0f, 0);
}

/* gemma2's soft-capped scores and a sliding window of 5 positions (of 37) */
static void test_attention_softcap_window(void)
{
    check_attention_ex(32, 4, 2, 4.0f, 0);
    check_attention_ex(32, 4, 2, 0.0f, 5);
    check_attention_ex(16, 2, 1, 1.5f, 7);
}

static void test_attention_gqa(void)
{
    check_attention(16, 4, 2);
}

static void test_attention_mha_hd64(void)
{
    check_attention(64, 3, 3);
}

static void test_attention_mqa_hd128(void)
{
    check_attention(128, 2, 1);
}

static void test_silu_mul_add(void)
{
    const uint32_t n = 75;
    const uint32_t m = 3;
    float *g = rnd_vec(m * 2 * n, -6, 6);
    float *y = rnd_vec(m * n, -1, 1);
    struct vkb_buf gb;
    struct vkb_buf yb;
    ASSERT_INT_EQ(buf_from(&gb, g, m * 2 * n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&yb, y, m * n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_silu_mul(ctx, vw(&gb, 0, 2 * n), vw(&gb, n, 2 * n), vw(&gb, 0, 2 * n), n,
                                  m, err, sizeof(err)),
                  0);
    vkb_rec_barrier(ctx);
    ASSERT_INT_EQ(vkb_op_add(ctx, vw(&gb, 0, 2 * n), vw(&yb, 0, n), n, m, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float o[225];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &yb, 0, o, sizeof(o), err, sizeof(err)), 0);
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t i = 0; i < n; i++) {
            double a = g[t * 2 * n + i];
            double want = a / (1 + exp(-a)) * g[t * 2 * n + n + i] + y[t * n + i];
            ASSERT_NEAR(o[t * n + i], want, 1e-5 * (1 + fabs(want)));
        }
    }
    vkb_buf_free(ctx, &gb);
    vkb_buf_free(ctx, &yb);
    free(g);
    free(y);
}

static void test_repack_rejects_bad_sizes(void)
{
    ASSERT_INT_EQ(vkb_weight_bytes(GGML_TYPE_Q4_K, 96, 4), 0); /* not a multiple of 256 */
    ASSERT_INT_EQ(vkb_weight_bytes(GGML_TYPE_Q8_0, 40, 4), 0); /* not a multiple of 32 */
    ASSERT_INT_EQ(vkb_weight_bytes(GGML_TYPE_Q5_0, 64, 4), 0); /* unsupported type */
    ASSERT_INT_EQ(vkb_weight_bytes(GGML_TYPE_Q8_0, 64, 3), 3 * 2 * 9 * 4);
    uint8_t src[34];
    uint32_t dst[18];
    ASSERT_TRUE(vkb_weight_repack(GGML_TYPE_Q8_0, 64, 1, src, sizeof(src), dst) < 0); /* short */
}

/* Listing, the --backend auto policy and device-index errors. */
static void test_devices_and_auto_policy(void)
{
    struct vkb_device_info d[16];
    uint32_t n = 0;
    ASSERT_INT_EQ(vkb_list_devices(d, 16, &n, err, sizeof(err)), 0);
    ASSERT_TRUE(n >= 1);
    bool gpu = false;
    for (uint32_t i = 0; i < n && i < 16; i++) {
        ASSERT_TRUE(d[i].name[0] != 0);
        ASSERT_TRUE(d[i].subgroup_size >= 1);
        ASSERT_TRUE(d[i].memory_bytes > 0);
        gpu |= strcmp(d[i].type, "discrete") == 0 || strcmp(d[i].type, "integrated") == 0;
    }
    char why[512];
    ASSERT_INT_EQ(vkb_pick_auto(why, sizeof(why)), gpu ? 1 : 0);
    ASSERT_STR_CONTAINS(why, gpu ? "GPU found" : "using the CPU backend");
    struct vkb_ctx *c2 = NULL;
    ASSERT_TRUE(vkb_ctx_open(&c2, (int)n, err, sizeof(err)) < 0); /* one past the last */
    ASSERT_TRUE(c2 == NULL);
    ASSERT_STR_CONTAINS(err, "only");
    ASSERT_INT_EQ(vkb_ctx_open(&c2, 0, err, sizeof(err)), 0);
    vkb_ctx_close(c2);
}

/* Expert mat-vecs (MoE): pair p multiplies matrix ids[p] of a stacked weight by
 * activation row p / 2; bitwise what the plain mat-vec of that matrix alone gives. */
static void check_matmul_id(const struct wtype *wt)
{
    const uint32_t k = 256, rows = 13, n_mat = 3, M = 3, pairs = 2 * M;
    struct rmat rm;
    rmat_make(&rm, wt, k, rows * n_mat);
    struct mdl_tensor t = {.type = wt->type, .ne = {k, rows * n_mat}, .data = rm.bytes,
                           .nbytes = rm.nbytes};
    struct vkb_weight w;
    ASSERT_INT_EQ(vkb_weight_upload(ctx, &w, &t, err, sizeof(err)), 0);
    float *x = rnd_vec((size_t)M * (k + 8) + 4, -1, 1);
    const int32_t ids[6] = {2, 0, 1, 2, 0, 1};
    struct vkb_buf xb, yb, ib, qb, sb;
    struct vkb_xq xq = {&qb, &sb};
    ASSERT_INT_EQ(buf_from(&xb, x, ((size_t)M * (k + 8) + 4) * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&yb, NULL, (size_t)pairs * rows * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ib, ids, sizeof(ids), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&qb, NULL, (size_t)M * k, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&sb, NULL, (size_t)M * k / 32 * sizeof(float), VKB_MEM_DEVICE), 0);
    struct vkb_moe_mm e = {.rows_per = rows, .n_mat = n_mat, .ids = &ib, .ids_off = 0, .x_div = 2};
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    if (vkb_type_is_quant(wt->type)) {
        ASSERT_INT_EQ(vkb_op_quant_q8(ctx, vw(&xb, 4, k + 8), k, M, vkb_type_is_kquant(wt->type),
                                      &xq, err, sizeof(err)),
                      0);
        vkb_rec_barrier(ctx);
    }
    ASSERT_INT_EQ(vkb_op_matmul_id(ctx, &w, &e, vw(&xb, 4, k + 8), &xq, vw(&yb, 0, rows), pairs,
                                   err, sizeof(err)),
                  0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float yid[6 * 13];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &yb, 0, yid, sizeof(yid), err, sizeof(err)), 0);
    for (uint32_t m = 0; m < n_mat; m++) {
        struct mdl_tensor slab = t;
        slab.ne[1] = rows;
        slab.nbytes = rm.nbytes / n_mat;
        slab.data = rm.bytes + m * slab.nbytes;
        struct vkb_weight ws;
        ASSERT_INT_EQ(vkb_weight_upload(ctx, &ws, &slab, err, sizeof(err)), 0);
        float y[3 * 16];
        ASSERT_INT_EQ(run_matmul(&ws, &xb, M, y, NULL, 0, NULL), 0);
        for (uint32_t p = 0; p < pairs; p++)
            for (uint32_t r = 0; ids[p] == (int32_t)m && r < rows; r++)
                if (memcmp(&yid[p * rows + r], &y[1 + (p / 2) * (rows + 3) + r], 4) != 0)
                    TEST_FAIL_("%s pair %u row %u: %.9g vs %.9g", wt->name, p, r,
                               yid[p * rows + r], y[1 + (p / 2) * (rows + 3) + r]);
        vkb_weight_free(ctx, &ws);
    }
    vkb_weight_free(ctx, &w);
    struct vkb_buf *bs[5] = {&xb, &yb, &ib, &qb, &sb};
    for (int i = 0; i < 5; i++)
        vkb_buf_free(ctx, bs[i]);
    free(x);
    rmat_free(&rm);
}

static void test_matmul_id_all_types(void)
{
    for (size_t i = 0; i < sizeof(wtypes) / sizeof(wtypes[0]); i++)
        check_matmul_id(&wtypes[i]);
}

/* GELU-gated and plain scaling / soft-capping, against double loops. */
static void test_gelu_mul_scale(void)
{
    const uint32_t n = 75, m = 3;
    float *g = rnd_vec(m * 2 * n, -12, 12);
    struct vkb_buf gb;
    ASSERT_INT_EQ(buf_from(&gb, g, m * 2 * n * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_glu(ctx, MDL_ACT_GELU, vw(&gb, 0, 2 * n), vw(&gb, n, 2 * n),
                             vw(&gb, 0, 2 * n), n, m, err, sizeof(err)),
                  0);
    vkb_rec_barrier(ctx);
    ASSERT_INT_EQ(vkb_op_scale(ctx, vw(&gb, n, 2 * n), n, m, 0.5f, 0.0f, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float o[450];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &gb, 0, o, sizeof(o), err, sizeof(err)), 0);
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t i = 0; i < n; i++) {
            double a = g[t * 2 * n + i], u = g[t * 2 * n + n + i];
            double h = round_f16((float)a);
            double ge = a <= -10 ? 0 : a >= 10 ? a
                      : round_f16((float)(0.5 * h * (1 + tanh(sqrt(2 / M_PI) * h * (1 + 0.044715 * h * h)))));
            ASSERT_NEAR(o[t * 2 * n + i], ge * u, 2e-3 * (1 + fabs(ge * u)));
            ASSERT_NEAR(o[t * 2 * n + n + i], 0.5 * u, 1e-7);
        }
    }
    /* soft-cap: c * tanh(y / c) */
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_scale(ctx, vw(&gb, 0, 2 * n), 2 * n, m, 1.0f, 8.0f, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float c[450];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &gb, 0, c, sizeof(c), err, sizeof(err)), 0);
    for (uint32_t i = 0; i < 450; i++)
        ASSERT_NEAR(c[i], 8.0 * tanh(o[i] / 8.0), 1e-5 * (1 + fabs(o[i])));
    vkb_buf_free(ctx, &gb);
    free(g);
}

/* Per-head norms in place (pieces of a row) and a norm added into the residual. */
static void test_rmsnorm_rows(void)
{
    const uint32_t hd = 16, heads = 3, m = 4, stride = heads * hd + 7;
    float *x = rnd_vec(m * stride, -2, 2);
    float *wt = rnd_vec(hd, 0.5f, 1.5f);
    float *r = rnd_vec(m * hd, -1, 1);
    struct vkb_buf xb, wb, rb;
    ASSERT_INT_EQ(buf_from(&xb, x, m * stride * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&wb, wt, hd * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&rb, r, m * hd * sizeof(float), VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_rmsnorm_rows(ctx, vw(&xb, 0, stride), &wb, vw(&xb, 0, stride), hd, m,
                                      heads, 1e-6f, 0, err, sizeof(err)),
                  0);
    /* the first head of each row, normed, added into r */
    ASSERT_INT_EQ(vkb_op_rmsnorm_rows(ctx, vw(&xb, 0, stride), &wb, vw(&rb, 0, hd), hd, m, 1,
                                      1e-6f, VKB_NORM_ACCUMULATE, err, sizeof(err)),
                  0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float *o = malloc(m * stride * sizeof(float));
    float ro[64];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &xb, 0, o, m * stride * sizeof(float), err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_buf_read(ctx, &rb, 0, ro, sizeof(ro), err, sizeof(err)), 0);
    for (uint32_t t = 0; t < m; t++) {
        for (uint32_t h = 0; h < heads; h++) {
            const float *v = x + t * stride + h * hd;
            double ss = 0;
            for (uint32_t i = 0; i < hd; i++)
                ss += (double)v[i] * v[i];
            double sc = 1 / sqrt(ss / hd + 1e-6);
            for (uint32_t i = 0; i < hd; i++) {
                ASSERT_NEAR(o[t * stride + h * hd + i], v[i] * sc * wt[i], 1e-5);
                if (h == 0) { /* normed once more: a normed vector is its own norm / w */
                    double vi = v[i] * sc * wt[i];
                    double s2 = 0;
                    for (uint32_t j = 0; j < hd; j++) {
                        double vj = v[j] * sc * wt[j];
                        s2 += vj * vj;
                    }
                    ASSERT_NEAR(ro[t * hd + i], r[t * hd + i] + vi / sqrt(s2 / hd + 1e-6) * wt[i],
                                1e-4);
                }
            }
        }
        for (uint32_t i = heads * hd; i < stride; i++)
            ASSERT_TRUE(o[t * stride + i] == x[t * stride + i]);
    }
    free(o);
    free(x);
    free(wt);
    free(r);
    vkb_buf_free(ctx, &xb);
    vkb_buf_free(ctx, &wb);
    vkb_buf_free(ctx, &rb);
}

/* Router (softmax, top-k, weights with and without renormalisation) and the weighted
 * sum with a gated shared expert. */
static void test_moe_route_combine(void)
{
    enum { NE = 7, K = 3, M = 5, N = 40 };
    float *lg = rnd_vec(M * NE, -3, 3);
    lg[NE + 2] = lg[NE + 5]; /* a tie: the lower id ranks first */
    struct vkb_buf lb, ib, wb, eb, xb, sb, gb;
    ASSERT_INT_EQ(buf_from(&lb, lg, sizeof(float) * M * NE, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&ib, NULL, sizeof(int32_t) * M * K, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&wb, NULL, sizeof(float) * M * K, VKB_MEM_DEVICE), 0);
    for (int norm = 0; norm < 2; norm++) {
        ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
        ASSERT_INT_EQ(vkb_op_moe_route(ctx, &lb, &ib, &wb, NE, K, M, norm, err, sizeof(err)), 0);
        ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
        int32_t ids[M * K];
        float ws[M * K];
        ASSERT_INT_EQ(vkb_buf_read(ctx, &ib, 0, ids, sizeof(ids), err, sizeof(err)), 0);
        ASSERT_INT_EQ(vkb_buf_read(ctx, &wb, 0, ws, sizeof(ws), err, sizeof(err)), 0);
        for (int t = 0; t < M; t++) {
            const float *l = lg + t * NE;
            double mx = -1e30, sum = 0;
            for (int e = 0; e < NE; e++)
                mx = l[e] > mx ? l[e] : mx;
            for (int e = 0; e < NE; e++)
                sum += exp(l[e] - mx);
            bool used[NE] = {false};
            double chosen[K], csum = 0;
            for (int j = 0; j < K; j++) {
                int best = -1;
                for (int e = 0; e < NE; e++)
                    if (!used[e] && (best < 0 || l[e] > l[best]))
                        best = e;
                used[best] = true;
                ASSERT_INT_EQ(ids[t * K + j], best);
                csum += chosen[j] = exp(l[best] - mx) / sum;
            }
            for (int j = 0; j < K; j++)
                ASSERT_NEAR(ws[t * K + j], norm ? chosen[j] / csum : chosen[j], 1e-6);
        }
    }
    float *eo = rnd_vec(M * K * N, -1, 1);
    float *x = rnd_vec(M * N, -1, 1);
    float *sh = rnd_vec(M * N, -1, 1);
    float *sg = rnd_vec(M, -2, 2);
    float ws[M * K];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &wb, 0, ws, sizeof(ws), err, sizeof(err)), 0);
    ASSERT_INT_EQ(buf_from(&eb, eo, sizeof(float) * M * K * N, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&xb, x, sizeof(float) * M * N, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&sb, sh, sizeof(float) * M * N, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(buf_from(&gb, sg, sizeof(float) * M, VKB_MEM_DEVICE), 0);
    ASSERT_INT_EQ(vkb_rec_begin(ctx, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_op_moe_combine(ctx, &xb, &eb, &wb, &sb, &gb, N, M, K, err, sizeof(err)), 0);
    ASSERT_INT_EQ(vkb_rec_submit(ctx, err, sizeof(err)), 0);
    float o[M * N];
    ASSERT_INT_EQ(vkb_buf_read(ctx, &xb, 0, o, sizeof(o), err, sizeof(err)), 0);
    for (int t = 0; t < M; t++) {
        for (int i = 0; i < N; i++) {
            double want = x[t * N + i] + sh[t * N + i] / (1 + exp(-sg[t]));
            for (int j = 0; j < K; j++)
                want += ws[t * K + j] * eo[(t * K + j) * N + i];
            ASSERT_NEAR(o[t * N + i], want, 1e-5);
        }
    }
    struct vkb_buf *bs[7] = {&lb, &ib, &wb, &eb, &xb, &sb, &gb};
    for (int i = 0; i < 7; i++)
        vkb_buf_free(ctx, bs[i]);
    free(lg);
    free(eo);
    free(x);
    free(sh);
    free(sg);
}

int main(void)
{
    if (vkb_ctx_open(&ctx, -1, err, sizeof(err)) < 0) {
        fprintf(stderr, "cannot open a Vulkan device: %s\n", err);
        return 1;
    }
    fprintf(stderr, "%s\n", ctx->describe);
    RUN(test_devices_and_auto_policy);
    RUN(test_repack_rejects_bad_sizes);
    RUN(test_get_rows_all_types);
    RUN(test_matmul_all_types);
    RUN(test_rmsnorm);
    RUN(test_rope_normal);
    RUN(test_rope_neox);
    RUN(test_rope_scaled);
    RUN(test_attention_softcap_window);
    RUN(test_matmul_id_all_types);
    RUN(test_gelu_mul_scale);
    RUN(test_rmsnorm_rows);
    RUN(test_moe_route_combine);
    RUN(test_attention_gqa);
    RUN(test_attention_mha_hd64);
    RUN(test_attention_mqa_hd128);
    RUN(test_silu_mul_add);
    if (test_n_fail)
        fprintf(stderr, "last error: %s\n", err);
    vkb_ctx_close(ctx);
    return TEST_DONE();
}
