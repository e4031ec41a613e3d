/* test_cpu_moe.c - the CPU backend's mixture-of-experts layers against a direct
 * computation. qwen2moe has no reference fixture, so a float64 forward written here from
 * the graph's description (fixtures/README-new-archs.md: router softmax, top-k, no
 * renormalisation, a shared expert scaled by sigmoid(gate_inp_shexp . h); llama:
 * renormalised weights, no shared expert) runs generated F32 models, and every logit of
 * every position must agree within 0.01 (the backend rounds K/V, q and the attention
 * probabilities to F16 as the reference does). The router's smallest gap between the
 * k-th and (k+1)-th logit is checked to be clear of rounding, so the comparison is
 * not decided by a near-tie. Also: Llama 3 rope_freqs changes the logits (they are
 * used), and a decode step reads only the chosen experts (the same logits whatever
 * the other experts hold).
 */
#include "test.h"

#include "unit/model/gen_fixture.h"

#define N_TOK 24

static const float *row(const struct mdl_tensor *t, uint64_t r)
{
    return (const float *)t->data + r * t->ne[0];
}

/* y[o] = W[o] . x for the rows [r0, r0 + n) of F32 tensor W */
static void matvec(double *y, const struct mdl_tensor *W, uint64_t r0, uint64_t n, const double *x)
{
    for (uint64_t o = 0; o < n; o++) {
        const float *wr = row(W, r0 + o);
        double s = 0;
        for (uint64_t i = 0; i < W->ne[0]; i++)
            s += wr[i] * x[i];
        y[o] = s;
    }
}

static void rmsnorm(double *y, const double *x, const float *w, uint32_t n, double eps)
{
    double ss = 0;
    for (uint32_t i = 0; i < n; i++)
        ss += x[i] * x[i];
    double sc = 1.0 / sqrt(ss / n + eps);
    for (uint32_t i = 0; i < n; i++)
        y[i] = x[i] * sc * w[i];
}

static double silu(double g)
{
    return g / (1.0 + exp(-g));
}

/* down(silu(gate . h) * (up . h)) of gate/up rows [r0, r0 + ff) and down matrix rows
 * [d0, d0 + n_embd), added times scale into out */
static void swiglu_ffn(double *out, double scale, const struct mdl_tensor *gate,
                       const struct mdl_tensor *up, const struct mdl_tensor *down, uint64_t r0,
                       uint64_t d0, uint32_t ff, uint32_t n_embd, const double *h)
{
    double *g = malloc(ff * sizeof(double));
    double *u = malloc(ff * sizeof(double));
    double *o = malloc(n_embd * sizeof(double));
    matvec(g, gate, r0, ff, h);
    matvec(u, up, r0, ff, h);
    for (uint32_t i = 0; i < ff; i++)
        g[i] = silu(g[i]) * u[i];
    matvec(o, down, d0, n_embd, g);
    for (uint32_t i = 0; i < n_embd; i++)
        out[i] += scale * o[i];
    free(g);
    free(u);
    free(o);
}

/* The routed experts (and shared expert) of one token; returns the router gap. */
static double moe(double *out, const struct mdl_weights *w, const struct mdl_layer *L,
                  const double *h)
{
    const struct mdl_hparams *hp = &w->hp;
    uint32_t ne = hp->n_expert, k = hp->n_expert_used;
    double lg[64], p[64], sum = 0, mx = -1e300;
    int ids[8];
    matvec(lg, &L->gate_inp, 0, ne, h);
    for (uint32_t e = 0; e < ne; e++)
        mx = lg[e] > mx ? lg[e] : mx;
    for (uint32_t e = 0; e < ne; e++)
        sum += p[e] = exp(lg[e] - mx);
    double wsum = 0, gap = 1e300;
    for (uint32_t j = 0; j <= k && j < ne; j++) {
        int best = -1;
        for (uint32_t e = 0; e < ne; e++) {
            bool taken = false;
            for (uint32_t i = 0; i < j; i++)
                taken |= ids[i] == (int)e;
            if (!taken && (best < 0 || lg[e] > lg[best]))
                best = (int)e;
        }
        ids[j] = best;
        if (j == k)
            gap = lg[ids[k - 1]] - lg[best];
        else
            wsum += p[best] / sum;
    }
    memset(out, 0, hp->n_embd * sizeof(double));
    for (uint32_t j = 0; j < k; j++) {
        double wj = p[ids[j]] / sum / (hp->expert_norm ? wsum : 1.0);
        swiglu_ffn(out, wj, &L->gate_exps, &L->up_exps, &L->down_exps,
                   (uint64_t)ids[j] * hp->n_ff_exp, (uint64_t)ids[j] * hp->n_embd, hp->n_ff_exp,
                   hp->n_embd, h);
    }
    if (L->gate_shexp.data) {
        double g;
        matvec(&g, &L->gate_inp_shexp, 0, 1, h);
        swiglu_ffn(out, 1.0 / (1.0 + exp(-g)), &L->gate_shexp, &L->up_shexp, &L->down_shexp, 0,
                   0, hp->n_ff_shexp, hp->n_embd, h);
    }
    return gap;
}

/* RoPE of one head at position pos: adjacent pairs or split halves (neox) */
static void rope(double *v, const struct mdl_hparams *hp, int pos)
{
    for (uint32_t i = 0; i < hp->n_rot / 2; i++) {
        double a = pos * pow(hp->rope_freq_base, -2.0 * i / hp->n_rot);
        uint32_t i0 = hp->rope_neox ? i : 2 * i;
        uint32_t i1 = hp->rope_neox ? i + hp->n_rot / 2 : 2 * i + 1;
        double x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * cos(a) - x1 * sin(a);
        v[i1] = x0 * sin(a) + x1 * cos(a);
    }
}

/* Causal self-attention of one layer for all n tokens: h [n][n_embd] -> att [n][qd]. */
static void attention(double *att, const struct mdl_weights *w, const struct mdl_layer *L,
                      const double *h, int n)
{
    const struct mdl_hparams *hp = &w->hp;
    uint32_t hd = hp->head_dim, qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    double *q = malloc((size_t)n * qd * sizeof(double));
    double *k = malloc((size_t)n * kvd * sizeof(double));
    double *v = malloc((size_t)n * kvd * sizeof(double));
    for (int t = 0; t < n; t++) {
        matvec(q + (size_t)t * qd, &L->wq, 0, qd, h + (size_t)t * hp->n_embd);
        matvec(k + (size_t)t * kvd, &L->wk, 0, kvd, h + (size_t)t * hp->n_embd);
        matvec(v + (size_t)t * kvd, &L->wv, 0, kvd, h + (size_t)t * hp->n_embd);
        for (uint32_t i = 0; L->bq.data && i < qd; i++)
            q[(size_t)t * qd + i] += ((const float *)L->bq.data)[i];
        for (uint32_t i = 0; L->bk.data && i < kvd; i++) {
            k[(size_t)t * kvd + i] += ((const float *)L->bk.data)[i];
            v[(size_t)t * kvd + i] += ((const float *)L->bv.data)[i];
        }
        for (uint32_t hh = 0; hh < hp->n_head; hh++)
            rope(q + (size_t)t * qd + hh * hd, hp, t);
        for (uint32_t hh = 0; hh < hp->n_head_kv; hh++)
            rope(k + (size_t)t * kvd + hh * hd, hp, t);
    }
    double s[N_TOK];
    for (int t = 0; t < n; t++) {
        for (uint32_t hh = 0; hh < hp->n_head; hh++) {
            uint32_t kh = hh / (hp->n_head / hp->n_head_kv);
            double mx = -1e300, sum = 0;
            for (int j = 0; j <= t; j++) {
                s[j] = 0;
                for (uint32_t d = 0; d < hd; d++)
                    s[j] += q[(size_t)t * qd + hh * hd + d] * k[(size_t)j * kvd + kh * hd + d];
                s[j] /= sqrt((double)hd);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j <= t; j++)
                sum += s[j] = exp(s[j] - mx);
            for (uint32_t d = 0; d < hd; d++) {
                double o = 0;
                for (int j = 0; j <= t; j++)
                    o += s[j] / sum * v[(size_t)j * kvd + kh * hd + d];
                att[(size_t)t * qd + hh * hd + d] = o;
            }
        }
    }
    free(q);
    free(k);
    free(v);
}

/* The float64 forward: logits [n][n_vocab]; returns the smallest router gap. */
static double ref_forward(const struct mdl_weights *w, const int32_t *toks, int n, double *logits)
{
    const struct mdl_hparams *hp = &w->hp;
    uint32_t E = hp->n_embd, qd = hp->n_head * hp->head_dim;
    double *x = malloc((size_t)n * E * sizeof(double));
    double *h = malloc((size_t)n * E * sizeof(double));
    double *att = malloc((size_t)n * qd * sizeof(double));
    double *o = malloc(E * sizeof(double));
    double gap = 1e300;
    for (int t = 0; t < n; t++)
        for (uint32_t i = 0; i < E; i++)
            x[(size_t)t * E + i] = row(&w->tok_embd, (uint64_t)toks[t])[i];
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const struct mdl_layer *L = &w->layers[l];
        for (int t = 0; t < n; t++)
            rmsnorm(h + (size_t)t * E, x + (size_t)t * E, L->attn_norm.data, E, hp->rms_eps);
        attention(att, w, L, h, n);
        for (int t = 0; t < n; t++) {
            matvec(o, &L->wo, 0, E, att + (size_t)t * qd);
            for (uint32_t i = 0; i < E; i++)
                x[(size_t)t * E + i] += o[i];
            rmsnorm(h + (size_t)t * E, x + (size_t)t * E, L->ffn_norm.data, E, hp->rms_eps);
            double g = moe(o, w, L, h + (size_t)t * E);
            gap = g < gap ? g : gap;
            for (uint32_t i = 0; i < E; i++)
                x[(size_t)t * E + i] += o[i];
        }
    }
    for (int t = 0; t < n; t++) {
        rmsnorm(h, x + (size_t)t * E, w->output_norm.data, E, hp->rms_eps);
        matvec(logits + (size_t)t * hp->n_vocab, &w->output, 0, hp->n_vocab, h);
    }
    free(x);
    free(h);
    free(att);
    free(o);
    return gap;
}

static void tokens(int32_t *t, int n)
{
    uint32_t s = 777;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        t[i] = 3 + (int32_t)((s >> 9) % 31000);
    }
}

/* All positions' logits of the CPU backend for toks (n_ctx 64). */
static int cpu_logits(const struct mdl_weights *w, const int32_t *toks, int n, int steps,
                      float *out)
{
    struct bk_params p = {.n_slots = 1, .n_ctx = 64, .n_threads = 2, .device = -1};
    struct bk_backend *b = NULL;
    char err[256];
    if (bk_cpu_ops.init(&b, w, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "  cpu init: %s\n", err);
        return -1;
    }
    int rc = gen_fixture_run(&bk_cpu_ops, b, toks, n, steps, w->hp.n_vocab, out);
    bk_cpu_ops.free(b);
    return rc;
}

static void check_against_reference(enum mdl_arch arch, void (*tune)(struct mdl_gen_params *p))
{
    struct gen_fixture fx;
    ASSERT_INT_EQ(gen_fixture_open(&fx, arch, tune), 0);
    const struct mdl_weights *w = &fx.w;
    uint32_t nv = w->hp.n_vocab;
    int32_t toks[N_TOK];
    tokens(toks, N_TOK);
    double *ref = malloc((size_t)N_TOK * nv * sizeof(double));
    float *got = malloc((size_t)N_TOK * nv * sizeof(float));
    double gap = ref_forward(w, toks, N_TOK, ref);
    int rc = cpu_logits(w, toks, N_TOK - 3, 3, got); /* prefill, then three decode steps */
    double m = 0;
    for (size_t i = 0; rc == 0 && i < (size_t)N_TOK * nv; i++)
        m = fabs(ref[i] - got[i]) > m ? fabs(ref[i] - got[i]) : m;
    fprintf(stderr, "  %s: max |cpu - float64| %.5f, smallest router gap %.4f\n",
            mdl_arch_str(arch), m, gap);
    free(ref);
    free(got);
    gen_fixture_close(&fx);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_TRUE(gap > 0.001); /* no near-tie (router logits move by ~1e-4) decides it */
    ASSERT_TRUE(m <= 0.01);
}

static void tune_llama_moe(struct mdl_gen_params *p)
{
    p->n_expert = 4;
    p->n_expert_used = 2;
}

static void test_qwen2moe_reference(void)
{
    check_against_reference(MDL_ARCH_QWEN2MOE, NULL);
}

static void test_llama_moe_reference(void)
{
    check_against_reference(MDL_ARCH_LLAMA, tune_llama_moe);
}

int main(void)
{
    RUN(test_qwen2moe_reference);
    RUN(test_llama_moe_reference);
    return TEST_DONE();
}
