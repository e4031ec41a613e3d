/* cpu_moe.c - the mixture-of-experts FFN of the CPU backend (Mixtral-style llama and
 * qwen2moe), for a chunk of tokens whose normed input is in b->xb.
 *
 *   router logits = gate_inp . h (F32) -> softmax over all experts -> the k experts of
 *   highest probability (ties to the lower id, as the reference's argsort) -> their
 *   probabilities as weights, renormalised to sum 1 for llama -> the (token, rank) pairs
 *   grouped by expert -> for each expert that has pairs: gate and up mat-muls with its
 *   slab of the stacked tensors over its pairs' rows, SiLU gate, down -> each token's
 *   sum of weight * output in rank order -> xb2.
 *   qwen2moe adds its shared expert: a dense SwiGLU FFN scaled by
 *   sigmoid(gate_inp_shexp . h).
 *
 * Only the chosen experts' rows are read, so a decode step streams k of n_expert slabs.
 * Each (row, pair) product is one call of the mat-mul kernel, so the grouping does not
 * change any number (batch invariance holds as for the dense layers).
 */
#include "cpu_int.h"
#include "gguf.h"
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* softmax, top-k and weights of one token's router logits (in place in p) */
static void route_token(float *p, uint32_t n_expert, uint32_t k, bool norm, int32_t *ids,
                        float *ws)
{
    cpu_softmax(p, (int)n_expert);
    for (uint32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (uint32_t e = 0; e < n_expert; e++) {
            bool taken = false;
            for (uint32_t i = 0; i < j && !taken; i++)
                taken = ids[i] == (int32_t)e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = (int32_t)e;
        }
        ids[j] = best;
        ws[j] = p[best];
    }
    if (norm) {
        double sum = 0.0;
        for (uint32_t j = 0; j < k; j++)
            sum += (double)ws[j];
        float s = (float)sum;
        for (uint32_t j = 0; j < k; j++)
            ws[j] = ws[j] / s;
    }
}

/* Routes the n tokens (router logits already in b->router) and groups the pairs. */
static void route(struct bk_backend *b, int n)
{
    const struct mdl_hparams *hp = &b->w->hp;
    uint32_t k = hp->n_expert_used;
    memset(b->exp_start, 0, (hp->n_expert + 1) * sizeof(uint32_t));
    for (int t = 0; t < n; t++) {
        int32_t *ids = b->exp_id + (size_t)t * k;
        route_token(b->router + (size_t)t * hp->n_expert, hp->n_expert, k, hp->expert_norm, ids,
                    b->exp_w + (size_t)t * k);
        for (uint32_t j = 0; j < k; j++)
            b->exp_start[ids[j] + 1]++;
    }
    for (uint32_t e = 0; e < hp->n_expert; e++)
        b->exp_start[e + 1] += b->exp_start[e];
    uint32_t *fill = b->exp_fill;
    memcpy(fill, b->exp_start, hp->n_expert * sizeof(uint32_t));
    for (int t = 0; t < n; t++) {
        for (uint32_t j = 0; j < k; j++) {
            uint32_t p = fill[b->exp_id[(size_t)t * k + j]]++;
            b->pair_tok[p] = t;
            b->pair_at[(size_t)t * k + j] = (int32_t)p;
        }
    }
}

/* Rows of float x[n_rows][n_cols] in the activation format of weight type wt: the
 * quantised copy (made here unless `have` says it exists) or x itself. */
static const uint8_t *act_rows(struct bk_backend *b, float *x, int n_rows, int64_t n_cols,
                               uint32_t wt, bool have[ACT_N], size_t *stride)
{
    struct cpu_mm m;
    struct mdl_tensor shape = {.type = wt, .ne = {(uint64_t)n_cols, 1}};
    cpu_set_mm(&m, b, &shape, x, n_rows, have, NULL, NULL, 0);
    *stride = m.act_stride;
    return m.act;
}

/* One mat-mul job per expert with pairs: the expert's slab of `t` (rows_per rows) times
 * rows exp_start[e].. of act, into out at the same rows. Returns the number of jobs. */
static int expert_jobs(struct bk_backend *b, const struct mdl_tensor *t, uint64_t rows_per,
                       const uint8_t *act, size_t act_stride, float *out, size_t out_stride,
                       struct cpu_mm *jobs, struct mdl_tensor *slabs)
{
    const struct mdl_hparams *hp = &b->w->hp;
    int n = 0;
    for (uint32_t e = 0; e < hp->n_expert; e++) {
        uint32_t p0 = b->exp_start[e];
        uint32_t cnt = b->exp_start[e + 1] - p0;
        if (cnt == 0)
            continue;
        slabs[n] = bk_slab(t, rows_per, e);
        jobs[n] = (struct cpu_mm){.w = &slabs[n], .act = act + (size_t)p0 * act_stride,
                                  .act_stride = act_stride, .out = out + (size_t)p0 * out_stride,
                                  .out_stride = out_stride, .n_tok = (int)cnt};
        n++;
    }
    return n;
}

/* The routed experts' gate and up products for every pair: hb, hb2 [pairs][n_ff_exp]. */
static void experts_gate_up(struct bk_backend *b, const struct mdl_layer *L, int n,
                            bool have[ACT_N])
{
    const struct mdl_hparams *hp = &b->w->hp;
    uint32_t k = hp->n_expert_used;
    const struct mdl_tensor *ts[2] = {&L->gate_exps, &L->up_exps};
    float *outs[2] = {b->hb, b->hb2};
    int n_jobs = 0;
    for (int g = 0; g < 2; g++) {
        /* gather the pairs' input rows (once when gate and up share an activation format) */
        if (g == 0 || quant_act_type(ts[1]->type) != quant_act_type(ts[0]->type)) {
            if (g == 1) { /* the gate's rows are about to be overwritten */
                cpu_matmul(b->pool, b->moe_jobs, n_jobs, 0);
                n_jobs = 0;
            }
            size_t rs;
            const uint8_t *src = act_rows(b, b->xb, n, hp->n_embd, ts[g]->type, have, &rs);
            for (uint32_t p = 0; p < (uint32_t)n * k; p++)
                memcpy((uint8_t *)b->moe_act + (size_t)p * rs, src + (size_t)b->pair_tok[p] * rs,
                       rs);
            b->moe_act_stride = rs;
        }
        n_jobs += expert_jobs(b, ts[g], hp->n_ff_exp, b->moe_act, b->moe_act_stride, outs[g],
                              hp->n_ff_exp, b->moe_jobs + n_jobs, b->moe_slabs + n_jobs);
    }
    cpu_matmul(b->pool, b->moe_jobs, n_jobs, 0);
}

/* qwen2moe's shared expert, added into xb2 with its sigmoid gate. */
static void shared_expert(struct bk_backend *b, const struct mdl_layer *L, int n,
                          bool have[ACT_N])
{
    const struct mdl_hparams *hp = &b->w->hp;
    struct cpu_mm mm[3];
    cpu_set_mm(&mm[0], b, &L->gate_inp_shexp, b->xb, n, have, NULL, b->shexp_gate, 1);
    cpu_set_mm(&mm[1], b, &L->gate_shexp, b->xb, n, have, NULL, b->hb, hp->n_ff_shexp);
    cpu_set_mm(&mm[2], b, &L->up_shexp, b->xb, n, have, NULL, b->hb2, hp->n_ff_shexp);
    cpu_matmul(b->pool, mm, 3, n);
    uint32_t at = quant_act_type(L->down_shexp.type);
    cpu_ffn_act(b, b->hb, b->hb2, n, hp->n_ff_shexp, at);
    bool fresh[ACT_N];
    cpu_fresh_input(fresh, at);
    cpu_set_mm(&mm[0], b, &L->down_shexp, b->hb, n, fresh, NULL, b->shexp_out, hp->n_embd);
    cpu_matmul(b->pool, mm, 1, n);
    for (int t = 0; t < n; t++) {
        float g = 1.0f / (1.0f + expf(-b->shexp_gate[t]));
        float *y = b->xb2 + (size_t)t * hp->n_embd;
        const float *s = b->shexp_out + (size_t)t * hp->n_embd;
        for (uint32_t i = 0; i < hp->n_embd; i++)
            y[i] += s[i] * g;
    }
}

void cpu_moe_ffn(struct bk_backend *b, const struct mdl_layer *L, int n, bool have[ACT_N])
{
    const struct mdl_hparams *hp = &b->w->hp;
    uint32_t k = hp->n_expert_used;
    uint32_t nfe = hp->n_ff_exp;
    int pairs = n * (int)k;
    struct cpu_mm mm;
    cpu_set_mm(&mm, b, &L->gate_inp, b->xb, n, have, NULL, b->router, hp->n_expert);
    cpu_matmul(b->pool, &mm, 1, n);
    route(b, n);
    experts_gate_up(b, L, n, have);
    uint32_t at = quant_act_type(L->down_exps.type);
    cpu_ffn_act(b, b->hb, b->hb2, pairs, nfe, at);
    bool fresh[ACT_N];
    cpu_fresh_input(fresh, at);
    size_t rs;
    const uint8_t *act = act_rows(b, b->hb, pairs, nfe, L->down_exps.type, fresh, &rs);
    int n_jobs = expert_jobs(b, &L->down_exps, hp->n_embd, act, rs, b->moe_out, hp->n_embd,
                             b->moe_jobs, b->moe_slabs);
    cpu_matmul(b->pool, b->moe_jobs, n_jobs, 0);
    /* weighted sum in rank order, as the reference adds the scaled expert outputs */
    for (int t = 0; t < n; t++) {
        float *y = b->xb2 + (size_t)t * hp->n_embd;
        for (uint32_t j = 0; j < k; j++) {
            float w = b->exp_w[(size_t)t * k + j];
            const float *e = b->moe_out + (size_t)b->pair_at[(size_t)t * k + j] * hp->n_embd;
            for (uint32_t i = 0; i < hp->n_embd; i++)
                y[i] = j == 0 ? e[i] * w : y[i] + e[i] * w;
        }
    }
    if (L->gate_shexp.data) {
        /* the down input's quantised copy may have replaced the one of xb */
        if (cpu_act_index(at) >= 0)
            have[cpu_act_index(at)] = false;
        shared_expert(b, L, n, have);
    }
}
