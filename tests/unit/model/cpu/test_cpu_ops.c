/* test_cpu_ops.c - the CPU backend's operations against naive double-precision loops:
 * RMSNorm, RoPE in both modes, softmax, attention with GQA over an F16 cache, and the
 * threaded mat-mul for every weight type (plus its batch invariance). */
#include "test.h"

#include "cpu/cpu_ops.h"
#include "cpu/cpu_pool.h"
#include "gguf.h"
#include "quant.h"

static void test_rmsnorm(void)
{
    float x[100], w[100], y[100];
    for (int i = 0; i < 100; i++) {
        x[i] = test_nrand() * 3;
        w[i] = 1 + 0.1f * test_nrand();
    }
    cpu_rmsnorm(y, x, w, 100, 1e-5f);
    double ss = 0;
    for (int i = 0; i < 100; i++)
        ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / 100 + 1e-5);
    for (int i = 0; i < 100; i++)
        ASSERT_NEAR(y[i], x[i] * scale * w[i], 1e-5);
}

static void rope_case(bool neox)
{
    enum { HD = 16, NH = 3, POS = 37 };
    float x[NH * HD], y[NH * HD], cs[HD];
    for (int i = 0; i < NH * HD; i++)
        x[i] = y[i] = test_nrand();
    cpu_rope_table(cs, HD, POS, 10000.0f);
    cpu_rope(y, NH, HD, HD, cs, neox);
    for (int h = 0; h < NH; h++) {
        for (int i = 0; i < HD / 2; i++) {
            double theta = POS * pow(10000.0, -2.0 * i / HD);
            int i0 = neox ? i : 2 * i;
            int i1 = neox ? i + HD / 2 : 2 * i + 1;
            double a = x[h * HD + i0], b = x[h * HD + i1];
            ASSERT_NEAR(y[h * HD + i0], a * cos(theta) - b * sin(theta), 1e-4);
            ASSERT_NEAR(y[h * HD + i1], a * sin(theta) + b * cos(theta), 1e-4);
        }
    }
}

static void test_rope_normal(void)
{
    rope_case(false);
}

static void test_rope_neox(void)
{
    rope_case(true);
}

static void test_rope_modes_differ(void)
{
    float a[16], b[16], cs[16];
    for (int i = 0; i < 16; i++)
        a[i] = b[i] = (float)i;
    cpu_rope_table(cs, 16, 5, 10000.0f);
    cpu_rope(a, 1, 16, 16, cs, false);
    cpu_rope(b, 1, 16, 16, cs, true);
    ASSERT_TRUE(fabsf(a[1] - b[1]) > 1e-3);
}

static void test_softmax(void)
{
    float x[50];
    double e[50], sum = 0;
    for (int i = 0; i < 50; i++) {
        x[i] = test_nrand() * 5;
        sum += e[i] = exp(x[i]);
    }
    cpu_softmax(x, 50);
    for (int i = 0; i < 50; i++)
        ASSERT_NEAR(x[i], e[i] / sum, 1e-6);
}

/* Attention for every query head of a GQA layout (8 query heads, 2 KV heads). */
static void test_attention_gqa(void)
{
    enum { HD = 32, NH = 8, NKV = 2, NPOS = 13 };
    static uint16_t k[NPOS][NKV * HD], v[NPOS][NKV * HD];
    float q[NH * HD], out[HD], scores[NPOS];
    uint16_t q16[HD];
    for (int t = 0; t < NPOS; t++)
        for (int i = 0; i < NKV * HD; i++) {
            k[t][i] = quant_fp32_to_fp16(test_nrand());
            v[t][i] = quant_fp32_to_fp16(test_nrand());
        }
    for (int i = 0; i < NH * HD; i++)
        q[i] = test_nrand();
    float scale = 1.0f / sqrtf(HD);
    for (int h = 0; h < NH; h++) {
        int kvh = h / (NH / NKV);
        cpu_attention(out, q + h * HD, &k[0][kvh * HD], &v[0][kvh * HD], NKV * HD, NPOS, HD, scale,
                      scores, q16);
        double s[NPOS], mx = -1e30, sum = 0;
        for (int t = 0; t < NPOS; t++) {
            s[t] = 0;
            for (int d = 0; d < HD; d++)
                s[t] += (double)q[h * HD + d] * quant_fp16_to_fp32(k[t][kvh * HD + d]);
            s[t] *= scale;
            mx = s[t] > mx ? s[t] : mx;
        }
        for (int t = 0; t < NPOS; t++)
            sum += s[t] = exp(s[t] - mx);
        for (int d = 0; d < HD; d++) {
            double o = 0;
            for (int t = 0; t < NPOS; t++)
                o += s[t] / sum * quant_fp16_to_fp32(v[t][kvh * HD + d]);
            ASSERT_NEAR(out[d], o, 2e-3); /* q and p are rounded to F16 as ggml does */
        }
    }
}

/* Several query heads in one pass (cpu_attention_multi, as the backend groups a GQA head's
 * queries and a sequence's tokens) give bitwise what each gives alone, for head sizes
 * with and without a dedicated kernel and for queries over different position counts. */
static void test_attention_multi_matches_single(void)
{
    enum { NPOS = 70, NQ = 7, MAXHD = 128 };
    static const int hds[] = {32, 64, 128};
    static uint16_t k[NPOS][MAXHD], v[NPOS][MAXHD], q16[NQ * MAXHD];
    static float q[NQ][MAXHD], out[NQ][MAXHD], one[MAXHD], scores[NQ * NPOS];
    for (size_t h = 0; h < sizeof(hds) / sizeof(hds[0]); h++) {
        int hd = hds[h];
        for (int t = 0; t < NPOS; t++)
            for (int i = 0; i < hd; i++) {
                k[t][i] = quant_fp32_to_fp16(test_nrand());
                v[t][i] = quant_fp32_to_fp16(test_nrand());
            }
        float *outs[NQ];
        const float *qs[NQ];
        int n_pos[NQ];
        for (int i = 0; i < NQ; i++) {
            for (int d = 0; d < hd; d++)
                q[i][d] = test_nrand() * 2;
            outs[i] = out[i];
            qs[i] = q[i];
            n_pos[i] = NPOS - 3 * (i / 2); /* tokens at consecutive positions, two heads each */
        }
        float scale = 1.0f / sqrtf((float)hd);
        cpu_attention_multi(NQ, outs, qs, NULL, n_pos, &k[0][0], &v[0][0], MAXHD, hd, scale, 0.0f, scores,
                            NPOS, q16);
        for (int i = 0; i < NQ; i++) {
            cpu_attention(one, q[i], &k[0][0], &v[0][0], MAXHD, n_pos[i], hd, scale, scores, q16);
            ASSERT_TRUE(memcmp(one, out[i], (size_t)hd * sizeof(float)) == 0);
        }
    }
}

/* cpu_matmul on 2 threads for each weight type against double loops over the
 * dequantised weights and activations; then the same tokens one at a time must give
 * bitwise the same rows. */
static void test_matmul_types(void)
{
    static const uint32_t types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_Q8_0,
                                     GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    enum { N = 256, ROWS = 37, TOK = 6 };
    struct cpu_pool *pool;
    ASSERT_INT_EQ(cpu_pool_new(&pool, 2), 0);
    static float wf[ROWS][N], x[TOK][N], wd[N], ad[N], out[TOK][ROWS], one[ROWS];
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        uint32_t t = types[ti];
        uint32_t at = quant_act_type(t);
        size_t ws = quant_row_bytes(t, N);
        size_t as = quant_row_bytes(at, N);
        uint8_t *w = malloc(ws * ROWS);
        uint8_t *a = malloc(as * TOK);
        for (int r = 0; r < ROWS; r++) {
            for (int i = 0; i < N; i++)
                wf[r][i] = test_nrand() * 0.1f;
            if (t == GGML_TYPE_Q4_K || t == GGML_TYPE_Q6_K) {
                for (size_t i = 0; i < ws; i++)
                    w[r * ws + i] = (uint8_t)(test_urand() * 256);
                uint16_t d = quant_fp32_to_fp16(0.001f);
                memcpy(w + r * ws + (t == GGML_TYPE_Q4_K ? 0 : 208), &d, 2);
            } else if (t == GGML_TYPE_F32) {
                memcpy(w + r * ws, wf[r], ws);
            } else if (t == GGML_TYPE_F16) {
                quant_act_row(GGML_TYPE_F16, wf[r], w + r * ws, N);
            } else if (t == GGML_TYPE_Q8_0) {
                quant_row_q8_0(wf[r], (struct quant_q8_0 *)(w + r * ws), N);
            } else {
                quant_row_q4_0(wf[r], (struct quant_q4_0 *)(w + r * ws), N);
            }
        }
        for (int c = 0; c < TOK; c++) {
            for (int i = 0; i < N; i++)
                x[c][i] = test_nrand();
            quant_act_row(at, x[c], a + c * as, N);
        }
        struct mdl_tensor wt = {t, {N, ROWS}, w, ws * ROWS};
        struct cpu_mm mm = {&wt, a, as, NULL, &out[0][0], ROWS, 0};
        cpu_matmul(pool, &mm, 1, TOK);
        for (int c = 0; c < TOK; c++) {
            quant_dequant_row(at, a + c * as, ad, N);
            for (int r = 0; r < ROWS; r++) {
                quant_dequant_row(t, w + r * ws, wd, N);
                double ref = 0, mag = 0;
                for (int i = 0; i < N; i++) {
                    ref += (double)wd[i] * ad[i];
                    mag += fabs((double)wd[i] * ad[i]);
                }
                if (fabs(out[c][r] - ref) > 1e-5 * mag + 1e-6)
                    TEST_FAIL_("type %s row %d tok %d: %.7g vs %.7g", gguf_type_name(t), r, c,
                               out[c][r], ref);
            }
            struct cpu_mm m1 = {&wt, a + c * as, as, NULL, one, ROWS, 0};
            cpu_matmul(pool, &m1, 1, 1);
            if (memcmp(one, out[c], sizeof(one)) != 0)
                TEST_FAIL_("type %s: token %d alone differs from the batch", gguf_type_name(t), c);
        }
        free(w);
        free(a);
    }
    cpu_pool_free(pool);
}

int main(void)
{
    test_rng_seed(777);
    RUN(test_rmsnorm);
    RUN(test_rope_normal);
    RUN(test_rope_neox);
    RUN(test_rope_modes_differ);
    RUN(test_softmax);
    RUN(test_attention_gqa);
    RUN(test_attention_multi_matches_single);
    RUN(test_matmul_types);
    return TEST_DONE();
}
