/* test_quant.c - block formats and dot kernels against naive double-precision loops,
 * SIMD against plain C, and the tiled kernels' batch invariance (the AVX-512 VNNI
 * layouts are in test_quant_vnni.c). */
#include "quant_test.h"


static void test_fp16(void)
{
    /* every finite half survives a round trip */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        uint16_t back = quant_fp32_to_fp16(quant_fp16_to_fp32((uint16_t)h));
        if (back != h)
            ASSERT_INT_EQ(back, h);
    }
    ASSERT_INT_EQ(quant_fp32_to_fp16(1.0f), 0x3c00);
    ASSERT_INT_EQ(quant_fp32_to_fp16(1.0f + 0x1.0p-11f), 0x3c00);     /* tie -> even */
    ASSERT_INT_EQ(quant_fp32_to_fp16(1.0f + 3 * 0x1.0p-11f), 0x3c02); /* tie -> even */
    ASSERT_INT_EQ(quant_fp32_to_fp16(0x1.0p-24f), 0x0001);            /* smallest subnormal */
    ASSERT_INT_EQ(quant_fp32_to_fp16(-2.0f), 0xc000);
    ASSERT_INT_EQ(quant_fp32_to_fp16(65520.0f), 0x7c00); /* rounds to inf */
    ASSERT_NEAR(quant_fp16_to_fp32(0x3555), 0.33325195, 1e-8);
}

/* The row conversion (F16C where present) equals the scalar one bit for bit, over
 * normal, subnormal, tie, overflowing and zero values. */
static void test_fp16_row(void)
{
    enum { NR = 4099 };
    static float x[NR];
    static uint16_t y[NR];
    for (int i = 0; i < NR; i++) {
        float scale = i % 4 == 0 ? 1e-6f : i % 4 == 1 ? 1.0f : i % 4 == 2 ? 3e4f : 1e5f;
        x[i] = test_nrand() * scale;
    }
    x[0] = 0.0f;
    x[1] = -0.0f;
    x[2] = 1.0f + 0x1.0p-11f;
    x[3] = 0x1.0p-25f;
    quant_fp32_to_fp16_row(x, y, NR);
    for (int i = 0; i < NR; i++)
        if (y[i] != quant_fp32_to_fp16(x[i]))
            ASSERT_INT_EQ(y[i], quant_fp32_to_fp16(x[i]));
}

static void test_act_rounding(void)
{
    float x[256];
    struct quant_q8_0 q[1];
    for (int i = 0; i < 32; i++)
        x[i] = 0.0f;
    x[0] = 127.0f; /* amax 127: scale 1, values round half to even */
    x[1] = 0.5f;
    x[2] = 1.5f;
    x[3] = 2.5f;
    x[4] = -2.5f;
    quant_act_q8_0(x, q, 32);
    ASSERT_INT_EQ(q[0].qs[0], 127);
    ASSERT_INT_EQ(q[0].qs[1], 0);
    ASSERT_INT_EQ(q[0].qs[2], 2);
    ASSERT_INT_EQ(q[0].qs[3], 2);
    ASSERT_INT_EQ(q[0].qs[4], -2);
    ASSERT_INT_EQ(q[0].d, quant_fp32_to_fp16(1.0f));

    struct quant_q8_k k[1];
    for (int i = 0; i < 256; i++)
        x[i] = 0.01f * (float)(i % 7);
    x[10] = -2.0f; /* largest magnitude, negative: iscale = -127 / -2 */
    quant_act_q8_k(x, k, 256);
    ASSERT_INT_EQ(k[0].qs[10], -127);
    ASSERT_NEAR(k[0].d, 2.0 / 127.0, 1e-9);
    int s = 0;
    for (int i = 0; i < 16; i++)
        s += k[0].qs[i];
    ASSERT_INT_EQ(k[0].bsums[0], s);
}

static void test_quantizers(void)
{
    float x[32];
    struct quant_q4_0 q4;
    struct quant_q8_0 q8;
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i % 16) - 8.0f; /* max |x| = 8 at -8: d = 1 */
    quant_row_q4_0(x, &q4, 32);
    ASSERT_NEAR(quant_fp16_to_fp32(q4.d), 1.0, 0);
    float y[32];
    ASSERT_INT_EQ(quant_dequant_row(GGML_TYPE_Q4_0, &q4, y, 32), 0);
    for (int i = 0; i < 32; i++)
        ASSERT_NEAR(y[i], x[i], 0);
    for (int i = 0; i < 32; i++)
        x[i] = test_nrand();
    quant_row_q8_0(x, &q8, 32);
    ASSERT_INT_EQ(quant_dequant_row(GGML_TYPE_Q8_0, &q8, y, 32), 0);
    float d = quant_fp16_to_fp32(q8.d);
    for (int i = 0; i < 32; i++)
        ASSERT_NEAR(y[i], x[i], d * 0.5001 + 1e-3);
    ASSERT_INT_EQ(quant_dequant_row(GGML_TYPE_Q5_0, &q8, y, 32), -1);
    ASSERT_INT_EQ(quant_row_bytes(GGML_TYPE_Q4_K, 512), 288);
    ASSERT_INT_EQ(quant_row_bytes(GGML_TYPE_Q4_K, 500), 0);
}

/* A random weight row of n values of `type` into buf (n a multiple of 256). */

static const uint32_t weight_types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_Q8_0,
                                        GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};


/* Plain and SIMD dot products against a double loop over the dequantised operands. */
static void test_dot_vs_double(void)
{
    static uint8_t w[ROWS][N * 4];
    static uint8_t a[TOKS][N * 4];
    static float tmp[N];
    static float wd[N];
    static float ad[N];
    for (size_t ti = 0; ti < sizeof(weight_types) / sizeof(weight_types[0]); ti++) {
        uint32_t t = weight_types[ti];
        uint32_t at = quant_act_type(t);
        random_row(t, tmp, w[0], N);
        for (int i = 0; i < N; i++)
            tmp[i] = test_nrand();
        quant_act_row(at, tmp, a[0], N);
        ASSERT_INT_EQ(quant_dequant_row(t, w[0], wd, N), 0);
        ASSERT_INT_EQ(quant_dequant_row(at, a[0], ad, N), 0);
        double ref = 0.0;
        double mag = 0.0;
        for (int i = 0; i < N; i++) {
            ref += (double)wd[i] * ad[i];
            mag += fabs((double)wd[i] * ad[i]);
        }
        float plain = quant_dot_plain(t)(N, w[0], a[0]);
        float simd = quant_dot(t)(N, w[0], a[0]);
        if (fabs(plain - ref) > 1e-5 * mag + 1e-6)
            TEST_FAIL_("type %s: plain %.7g vs double %.7g", gguf_type_name(t), plain, ref);
        if (fabs(simd - ref) > 1e-5 * mag + 1e-6)
            TEST_FAIL_("type %s: %s %.7g vs double %.7g", gguf_type_name(t), quant_simd_name(),
                       simd, ref);
    }
}

/* The tiled kernels: every output equals the plain dot (up to float order) and is
 * bitwise the same whether computed alone or inside a 7 x 5 block. */
static void test_gemm_invariance(void)
{
    static uint8_t w[ROWS][N * 4];
    static uint8_t a[TOKS][N * 4];
    static float tmp[N];
    for (size_t ti = 0; ti < sizeof(weight_types) / sizeof(weight_types[0]); ti++) {
        uint32_t t = weight_types[ti];
        quant_gemm_fn gemm = quant_gemm(t);
        if (!gemm)
            continue;
        uint32_t at = quant_act_type(t);
        size_t ws = quant_row_bytes(t, N);
        size_t as = quant_row_bytes(at, N);
        uint8_t *wb = malloc(ws * ROWS);
        uint8_t *ab = malloc(as * TOKS);
        for (int r = 0; r < ROWS; r++) {
            random_row(t, tmp, w[r], N);
            memcpy(wb + r * ws, w[r], ws);
        }
        for (int c = 0; c < TOKS; c++) {
            for (int i = 0; i < N; i++)
                tmp[i] = test_nrand();
            quant_act_row(at, tmp, a[c], N);
            memcpy(ab + c * as, a[c], as);
        }
        float big[TOKS][ROWS];
        gemm(N, wb, ws, ROWS, ab, as, TOKS, &big[0][0], ROWS);
        int bad = 0;
        for (int r = 0; r < ROWS && !bad; r++) {
            for (int c = 0; c < TOKS && !bad; c++) {
                float one;
                gemm(N, wb + r * ws, ws, 1, ab + c * as, as, 1, &one, 1);
                float plain = quant_dot_plain(t)(N, wb + r * ws, ab + c * as);
                if (memcmp(&one, &big[c][r], sizeof(float)) != 0)
                    bad = 1;
                if (fabs(plain - one) > 1e-4 * (fabs(plain) + 1))
                    bad = 2;
            }
        }
        free(wb);
        free(ab);
        if (bad)
            TEST_FAIL_("type %s: gemm %s", gguf_type_name(t),
                       bad == 1 ? "depends on the block shape" : "differs from the plain dot");
    }
}

static void test_axpy(void)
{
    uint16_t x[37];
    float y1[37];
    float y2[37];
    for (int i = 0; i < 37; i++) {
        x[i] = quant_fp32_to_fp16(test_nrand());
        y1[i] = y2[i] = test_nrand();
    }
    quant_axpy_f16()(37, 0.75f, x, y1);
    quant_axpy_f16_plain(37, 0.75f, x, y2);
    for (int i = 0; i < 37; i++)
        ASSERT_NEAR(y1[i], y2[i], 1e-6);
}

int main(void)
{
    printf("simd: %s\n", quant_simd_name());
    RUN(test_fp16);
    RUN(test_fp16_row);
    RUN(test_act_rounding);
    RUN(test_quantizers);
    RUN(test_dot_vs_double);
    RUN(test_gemm_invariance);
    RUN(test_axpy);
    /* the same checks with the plain kernels forced */
    quant_force_plain(true);
    RUN(test_dot_vs_double);
    return TEST_DONE();
}
