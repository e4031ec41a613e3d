/* test_quant_vnni.c - the repacked weight layouts and X4 activation layouts of the
 * AVX-512 VNNI kernels against the plain dot of the original types. On a CPU without
 * AVX-512 VNNI these layouts are never used: the program reports SKIPPED (exit 77). */
#include "quant_test.h"

/* A repacked layout and its kernel against the plain dot of the original type. */
static void repacked_case(uint32_t type)
{
    uint32_t rp = quant_repacked_type(type, N);
    ASSERT_TRUE(rp != 0);
    ASSERT_INT_EQ(quant_repacked_type(type, 96), 0);
    ASSERT_INT_EQ(quant_repacked_type(GGML_TYPE_F16, N), 0);
    uint32_t rat = quant_act_type(rp);
    size_t ws = quant_row_bytes(type, N);
    size_t as8 = quant_row_bytes(GGML_TYPE_Q8_0, N);
    size_t asx = quant_row_bytes(rat, N);
    ASSERT_INT_EQ(quant_row_bytes(rp, N), ws);
    uint8_t *w = malloc(ws * ROWS), *wx = malloc(ws * ROWS);
    uint8_t *a8 = malloc(as8 * TOKS), *ax = malloc(asx * TOKS);
    static float tmp[N];
    for (int r = 0; r < ROWS; r++) {
        random_row(type, tmp, w + r * ws, N);
        quant_repack_row(type, w + r * ws, wx + r * ws, N);
    }
    for (int c = 0; c < TOKS; c++) {
        for (int i = 0; i < N; i++)
            tmp[i] = test_nrand();
        quant_act_row(GGML_TYPE_Q8_0, tmp, a8 + c * as8, N);
        quant_act_row(rat, tmp, ax + c * asx, N);
    }
    float big[TOKS][ROWS];
    quant_gemm_fn gemm = quant_gemm(rp);
    gemm(N, wx, ws, ROWS, ax, asx, TOKS, &big[0][0], ROWS);
    int bad = 0;
    for (int r = 0; r < ROWS; r++) {
        for (int c = 0; c < TOKS; c++) {
            float one;
            gemm(N, wx + r * ws, ws, 1, ax + c * asx, asx, 1, &one, 1);
            float ref = quant_dot_plain(type)(N, w + r * ws, a8 + c * as8);
            if (memcmp(&one, &big[c][r], sizeof(one)) != 0)
                bad |= 1;
            if (fabs(ref - one) > 1e-4 * (fabs(ref) + 1))
                bad |= 2;
        }
    }
    free(w);
    free(wx);
    free(a8);
    free(ax);
    ASSERT_INT_EQ(bad, 0);
}

static void test_q4_0x4(void)
{
    repacked_case(GGML_TYPE_Q4_0);
}

static void test_q8_0x4(void)
{
    repacked_case(GGML_TYPE_Q8_0);
}

/* The X4 activation layouts hold, per block, the bytes, scale and quant sums that
 * quant_act_q8_0 gives (ties and an all-zero block included). */
static void test_act_x4_layout(void)
{
    enum { NV = 256 };
    static float x[NV];
    for (int i = 0; i < NV; i++)
        x[i] = i < 32 ? fminf(fmaxf(test_nrand() * 30.0f, -120.0f), 120.0f) : test_nrand();
    x[0] = 127.0f; /* block 0: scale 1, so these products are exact halves */
    x[1] = 2.5f;
    x[2] = -3.5f;
    x[3] = 0.5f;
    for (int i = 64; i < 96; i++)
        x[i] = 0.0f;
    struct quant_q8_0 ref[NV / 32];
    quant_act_q8_0(x, ref, NV);
    ASSERT_INT_EQ(ref[0].qs[1], 2);
    ASSERT_INT_EQ(ref[0].qs[2], -4);
    static struct quant_q8_0x4a a[NV / 128];
    static struct quant_q8_0x4b b[NV / 128];
    quant_act_row(QUANT_TYPE_Q8_0X4A, x, a, NV);
    quant_act_row(QUANT_TYPE_Q8_0X4B, x, b, NV);
    for (int blk = 0; blk < NV / 32; blk++) {
        int g = blk / 4, j = blk % 4;
        const int8_t *q = ref[blk].qs;
        float d = quant_fp16_to_fp32(ref[blk].d);
        ASSERT_INT_EQ(memcmp(a[g].lo + 16 * j, q, 16), 0);
        ASSERT_INT_EQ(memcmp(a[g].hi + 16 * j, q + 16, 16), 0);
        ASSERT_INT_EQ(memcmp(b[g].qs + 32 * j, q, 32), 0);
        for (int k = 0; k < 4; k++) {
            int s = 0;
            for (int i = 4 * k; i < 4 * k + 4; i++)
                s += q[i] + q[16 + i];
            ASSERT_INT_EQ(a[g].corr[4 * j + k], -8 * s);
            ASSERT_TRUE(a[g].d[4 * j + k] == d);
        }
        for (int k = 0; k < 8; k++) {
            int s = q[4 * k] + q[4 * k + 1] + q[4 * k + 2] + q[4 * k + 3];
            ASSERT_INT_EQ(b[g].corr[8 * j + k], -128 * s);
            ASSERT_TRUE(b[g].d[8 * j + k] == d);
        }
    }
}

int main(void)
{
    if (!quant_repacked_type(GGML_TYPE_Q4_0, 256)) {
        printf("SKIPPED: no AVX-512 VNNI on this CPU (simd: %s)\n", quant_simd_name());
        return 77;
    }
    RUN(test_q4_0x4);
    RUN(test_q8_0x4);
    RUN(test_act_x4_layout);
    return TEST_DONE();
}
