/* test_cpu_ops.c - the CPU backend's operations against naive double-precision loops:
 * RMSNorm, RoPE in both modes (and with Llama 3 frequency divisors, linear scaling and
 * an attention factor), softmax, GELU, attention with GQA over an F16 cache (also over a
 * sliding window with soft-capped scores), and the threaded mat-mul for every weight type
 * (plus its batch invariance). */
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

/* The frequency divisors of Llama 3 RoPE scaling, computed as the reference's converter
 * does (factor 8, low 1, high 4, original context 8192; fixtures/README-new-archs.md). */
static void llama3_factors(float *ff, int n_rot, float base)
{
    for (int i = 0; i < n_rot / 2; i++) {
        float wavelen = 2.0f * (float)M_PI * powf(base, 2.0f * i / (float)n_rot);
        if (wavelen < 8192.0f / 4.0f) {
            ff[i] = 1.0f;
        } else if (wavelen > 8192.0f) {
            ff[i] = 8.0f;
        } else {
            float smooth = (8192.0f / wavelen - 1.0f) / (4.0f - 1.0f);
            ff[i] = 1.0f / ((1.0f - smooth) / 8.0f + smooth);
        }
    }
}

/* Llama 3 scaling (tiny-llama3rope's shape: head 128, base 500000) and linear scaling
 * with an attention factor: the rotation of each pair against the angle computed
 * directly, p * base^(-2i/n_rot) / factor * scale; dividing by the factor, not
 * multiplying, is what the reference does. */
static void test_rope_scaled(void)
{
    enum { HD = 128, POS = 300 };
    float ff[HD / 2], cs[HD], x[HD], y[HD];
    llama3_factors(ff, HD, 500000.0f);
    ASSERT_NEAR(ff[0], 1.0, 0);
    ASSERT_NEAR(ff[29], 1.2075, 1e-4);
    ASSERT_NEAR(ff[34], 5.2573, 1e-4);
    ASSERT_NEAR(ff[63], 8.0, 0);
    const struct mdl_rope cases[2] = {{500000.0f, 1.0f, 1.0f}, {500000.0f, 0.125f, 1.19f}};
    for (int c = 0; c < 2; c++) {
        for (int i = 0; i < HD; i++)
            x[i] = y[i] = test_nrand();
        cpu_rope_table_ext(cs, HD, POS, &cases[c], ff);
        cpu_rope(y, 1, HD, HD, cs, false);
        for (int i = 0; i < HD / 2; i++) {
            double a = POS * pow(500000.0, -2.0 * i / HD) / ff[i] * cases[c].freq_scale;
            double m = cases[c].attn_factor;
            double x0 = x[2 * i], x1 = x[2 * i + 1];
            ASSERT_NEAR(y[2 * i], m * (x0 * cos(a) - x1 * sin(a)), 2e-4);
            ASSERT_NEAR(y[2 * i + 1], m * (x0 * sin(a) + x1 * cos(a)), 2e-4);
        }
    }
}

/* GELU as the reference's F16 table gives it: the tanh approximation of the input
 * rounded to F16, itself an F16 value; 0 and x past +-10. */
static void test_gelu(void)
{
    ASSERT_NEAR(cpu_gelu(-10.0f), 0.0, 0);
    ASSERT_NEAR(cpu_gelu(-12.5f), 0.0, 0);
    ASSERT_NEAR(cpu_gelu(10.0f), 10.0, 0);
    ASSERT_NEAR(cpu_gelu(17.25f), 17.25, 0);
    for (int k = 0; k < 2000; k++) {
        float x = (float)(k - 1000) / 100.0f + 0.00123f;
        float g = cpu_gelu(x);
        ASSERT_TRUE(quant_fp16_to_fp32(quant_fp32_to_fp16(g)) == g); /* an F16 value */
        double h = quant_fp16_to_fp32(quant_fp32_to_fp16(x));
        double want = 0.5 * h * (1.0 + tanh(sqrt(2.0 / M_PI) * h * (1.0 + 0.044715 * h * h)));
        ASSERT_NEAR(g, want, 1e-3 * (1.0 + fabs(want)));
    }
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
        cpu_attention_multi(NQ, outs, qs, NULL, n_pos, &k[0][0], &v[0][0], MAXHD, hd, scale, 0.0f,
                            scores, NPOS, q16);
        for (int i = 0; i < NQ; i++) {
            cpu_attention(one, q[i], &k[0][0], &v[0][0], MAXHD, n_pos[i], hd, scale, scores, q16);
            ASSERT_TRUE(memcmp(one, out[i], (size_t)hd * sizeof(float)) == 0);
        }
    }
}

/* A sliding window and soft-capped scores (gemma2): each query sees positions
 * [first, n_pos); the scores are c * tanh(s / c). Against double loops, and the queries
 * together in one call give bitwise what each gives alone (batch invariance). */
static void test_attention_window_softcap(void)
{
    enum { HD = 32, NPOS = 90, NQ = 6 };
    static uint16_t k[NPOS][HD], v[NPOS][HD], q16[NQ * HD];
    static float q[NQ][HD], out[NQ][HD], one[HD], scores[NQ * NPOS];
    for (int t = 0; t < NPOS; t++)
        for (int i = 0; i < HD; i++) {
            k[t][i] = quant_fp32_to_fp16(test_nrand());
            v[t][i] = quant_fp32_to_fp16(test_nrand());
        }
    static const int n_pos[NQ] = {90, 89, 17, 40, 5, 64};
    static const int first[NQ] = {74, 73, 1, 24, 0, 32}; /* windows of 16, 16, 16, 16, all, 32 */
    float *outs[NQ];
    const float *qs[NQ];
    for (int i = 0; i < NQ; i++) {
        for (int d = 0; d < HD; d++)
            q[i][d] = test_nrand() * 2;
        outs[i] = out[i];
        qs[i] = q[i];
    }
    const float cap = 4.0f;
    cpu_attention_multi(NQ, outs, qs, first, n_pos, &k[0][0], &v[0][0], HD, HD, 1.0f, cap, scores,
                        NPOS, q16);
    for (int i = 0; i < NQ; i++) {
        double s[NPOS], mx = -1e30, sum = 0;
        for (int t = first[i]; t < n_pos[i]; t++) {
            s[t] = 0;
            for (int d = 0; d < HD; d++)
                s[t] += (double)q[i][d] * quant_fp16_to_fp32(k[t][d]);
            s[t] = cap * tanh(s[t] / cap);
            mx = s[t] > mx ? s[t] : mx;
        }
        for (int t = first[i]; t < n_pos[i]; t++)
            sum += s[t] = exp(s[t] - mx);
        for (int d = 0; d < HD; d++) {
            double o = 0;
            for (int t = first[i]; t < n_pos[i]; t++)
                o += s[t] / sum * quant_fp16_to_fp32(v[t][d]);
            ASSERT_NEAR(out[i][d], o, 3e-3);
        }
        cpu_attention_multi(1, (float *const[]){one}, &qs[i], &first[i], &n_pos[i], &k[0][0],
                            &v[0][0], HD, HD, 1.0f, cap, scores, NPOS, q16);
        ASSERT_TRUE(memcmp(one, out[i], sizeof(one)) == 0);
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
    RUN(test_rope_scaled);
    RUN(test_gelu);
    RUN(test_attention_gqa);
    RUN(test_attention_multi_matches_single);
    RUN(test_attention_window_softcap);
    RUN(test_matmul_types);
    return TEST_DONE();
}
