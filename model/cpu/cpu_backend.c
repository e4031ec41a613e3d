/* cpu_backend.c - the CPU reference backend (bk_cpu_ops): the forward pass of every
 * supported architecture over an F16 KV cache with n_slots sequence slots.
 *
 * A forward runs the batch in chunks of at most b->chunk tokens; inside a chunk the
 * embeddings (times gemma's scale) go through every layer:
 *   RMSNorm -> Q/K/V mat-muls (+ biases) -> per-head q/k norms -> RoPE (the layer's
 *   table) -> q scale -> K/V stored as F16 at (slot, layer, pos) -> attention of each
 *   (token, head) over its own slot's positions (a window on sliding-window layers,
 *   soft-capped scores) -> output projection (-> post-attention norm) -> residual;
 *   RMSNorm -> gate/up -> SiLU or GELU gate -> down, or the experts (cpu_moe.c)
 *   (-> post-FFN norm) -> residual,
 * then the output norm, the output matrix and gemma2's final soft-cap. Tokens are
 * independent except through the KV cache, and each (row, token) of a mat-mul is one
 * call of the same kernel, so results do not depend on batch composition. Only the
 * engine thread calls in; the pool's workers run the mat-mul, attention and
 * element-wise stages.
 */
#include "cpu_int.h"
#include "gguf.h"
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- helpers ------------------------------------------------------------------------ */

int cpu_act_index(uint32_t act_type)
{
    switch (act_type) {
    case GGML_TYPE_F16:
        return ACT_F16;
    case GGML_TYPE_Q8_0:
        return ACT_Q8_0;
    case GGML_TYPE_Q8_K:
        return ACT_Q8_K;
    case QUANT_TYPE_Q8_0X4A:
        return ACT_Q8_0X4A;
    case QUANT_TYPE_Q8_0X4B:
        return ACT_Q8_0X4B;
    default:
        return -1;
    }
}

/* Touches every page of a fresh zeroed allocation so that the memory is committed now:
 * the KV cache is written position by position while sequences decode, and a page fault
 * in the middle of a step (tens of microseconds on a virtual machine) costs every
 * sequence of the batch. */
static void prefault(void *p, size_t bytes)
{
    volatile uint8_t *c = p;
    for (size_t i = 0; i < bytes; i += 4096)
        c[i] = 0;
}

static void *xcalloc(size_t n, size_t size, int *fail)
{
    if (size != 0 && n > SIZE_MAX / size) {
        *fail = 1;
        return NULL;
    }
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        *fail = 1;
    return p;
}

/* The stages between mat-muls run per token, each thread a contiguous range of tokens,
 * and end by quantising their output for the next mat-mul, so a step has no serial
 * stretch between parallel ones. One token runs on the calling thread alone. */
void cpu_run_tokens(struct bk_backend *b, cpu_task_fn fn, struct tok_task *t)
{
    if (t->n_tok == 1)
        fn(t, 0, 1);
    else
        cpu_pool_run(b->pool, fn, t);
}

static void quant_out(const struct tok_task *t, const float *row, int64_t n_cols, int tok)
{
    int ai = cpu_act_index(t->act_type);
    if (ai >= 0)
        quant_act_row(t->act_type, row, (uint8_t *)t->b->act[ai] +
                                             (size_t)tok * quant_row_bytes(t->act_type, n_cols),
                      n_cols);
}

static void quant_worker(void *ctx, int ith, int nth)
{
    const struct tok_task *t = ctx;
    for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++)
        quant_out(t, t->src + (size_t)i * t->n_cols, t->n_cols, i);
}

/* The activation rows for weight `w` from float rows x[n_tok][n_cols]; quantises into
 * the matching buffer unless `have` says it was done for this input already. */
static const void *prepare_act(struct bk_backend *b, const float *x, int n_tok, int64_t n_cols,
                               uint32_t wtype, bool have[ACT_N], size_t *stride)
{
    uint32_t at = quant_act_type(wtype);
    int ai = cpu_act_index(at);
    if (ai < 0) {
        *stride = (size_t)n_cols * sizeof(float);
        return x;
    }
    *stride = quant_row_bytes(at, n_cols);
    if (!have[ai]) {
        struct tok_task t = {.b = b, .n_tok = n_tok, .act_type = at, .src = (float *)x,
                             .n_cols = n_cols};
        cpu_run_tokens(b, quant_worker, &t);
        have[ai] = true;
    }
    return b->act[ai];
}

void cpu_set_mm(struct cpu_mm *m, struct bk_backend *b, const struct mdl_tensor *w,
                const float *x, int n_tok, bool have[ACT_N], const struct mdl_tensor *bias,
                float *out, size_t out_stride)
{
    m->w = w;
    m->act = prepare_act(b, x, n_tok, (int64_t)w->ne[0], w->type, have, &m->act_stride);
    m->bias = bias && bias->data ? bias->data : NULL;
    m->out = out;
    m->out_stride = out_stride;
    m->n_tok = 0;
}

void cpu_fresh_input(bool have[ACT_N], uint32_t act_type)
{
    memset(have, 0, ACT_N * sizeof(bool));
    if (cpu_act_index(act_type) >= 0)
        have[cpu_act_index(act_type)] = true;
}

/* ---- attention stage ---------------------------------------------------------------- */

/* Work items: a run of consecutive tokens of one sequence (at most CPU_ATTN_MAX_Q query
 * heads in all) with one KV head; its query heads share every K and V row read. */
struct attn_task {
    struct bk_backend *b;
    uint32_t layer;
    int n_tok;
    const int32_t *pos;
    const int32_t *slot;
    int n_runs;
    const int *run_start; /* [n_runs + 1] */
};

static void attn_worker(void *ctx, int ith, int nth)
{
    const struct attn_task *at = ctx;
    struct bk_backend *b = at->b;
    const struct mdl_hparams *hp = &b->w->hp;
    uint32_t hd = hp->head_dim;
    uint32_t group = hp->n_head / hp->n_head_kv;
    uint32_t window = b->w->layers[at->layer].swa ? hp->n_swa : 0;
    int64_t total = (int64_t)at->n_runs * hp->n_head_kv;
    int64_t i0 = total * ith / nth;
    int64_t i1 = total * (ith + 1) / nth;
    float *scores = b->scores + (size_t)ith * CPU_ATTN_MAX_Q * b->p.n_ctx;
    uint16_t *q16 = b->q16 + (size_t)ith * CPU_ATTN_MAX_Q * hd;
    for (int64_t i = i0; i < i1; i++) {
        int run = (int)(i / hp->n_head_kv);
        uint32_t kvh = (uint32_t)(i % hp->n_head_kv);
        int t0 = at->run_start[run], t1 = at->run_start[run + 1];
        float *out[CPU_ATTN_MAX_Q];
        const float *q[CPU_ATTN_MAX_Q];
        int first[CPU_ATTN_MAX_Q], n_pos[CPU_ATTN_MAX_Q], nq = 0;
        for (int t = t0; t < t1; t++)
            for (uint32_t h = kvh * group; h < (kvh + 1) * group; h++, nq++) {
                out[nq] = b->xb + ((size_t)t * hp->n_head + h) * hd;
                q[nq] = b->q + (size_t)t * hp->n_head * hd + (size_t)h * hd;
                n_pos[nq] = at->pos[t] + 1;
                /* the window: keys j with pos - j < window */
                first[nq] = window && n_pos[nq] > (int)window ? n_pos[nq] - (int)window : 0;
            }
        size_t base = ((size_t)at->slot[t0] * hp->n_layer + at->layer) * b->p.n_ctx * b->kv_dim +
                      (size_t)kvh * hd;
        for (int k = 0; k < nq; k += CPU_ATTN_MAX_Q) {
            int m = nq - k < CPU_ATTN_MAX_Q ? nq - k : CPU_ATTN_MAX_Q;
            cpu_attention_multi(m, out + k, q + k, first + k, n_pos + k, b->k_cache + base,
                                b->v_cache + base, b->kv_dim, (int)hd, hp->kq_scale,
                                hp->attn_softcap, scores, b->p.n_ctx, q16);
        }
    }
}

/* Splits the chunk's tokens into attention runs (see struct attn_task). */
static int attn_runs(const struct bk_backend *b, int n, const int32_t *slot, int *run_start)
{
    uint32_t group = b->w->hp.n_head / b->w->hp.n_head_kv;
    int per_run = group >= CPU_ATTN_MAX_Q ? 1 : (int)(CPU_ATTN_MAX_Q / group);
    int runs = 0;
    for (int t = 0; t < n;) {
        run_start[runs++] = t;
        int e = t + 1;
        while (e < n && e - t < per_run && slot[e] == slot[t])
            e++;
        t = e;
    }
    run_start[runs] = n;
    return runs;
}

/* ---- element-wise stages ------------------------------------------------------------ */

/* x += add; xb = RMSNorm(x) * norm; xb quantised */
static void norm_worker(void *ctx, int ith, int nth)
{
    const struct tok_task *t = ctx;
    struct bk_backend *b = t->b;
    const struct mdl_hparams *hp = &b->w->hp;
    for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++) {
        float *x = b->x + (size_t)i * hp->n_embd;
        float *xb = b->xb + (size_t)i * hp->n_embd;
        if (t->add)
            for (uint32_t j = 0; j < hp->n_embd; j++)
                x[j] += t->add[(size_t)i * hp->n_embd + j];
        cpu_rmsnorm(xb, x, t->norm, hp->n_embd, hp->rms_eps);
        quant_out(t, xb, hp->n_embd, i);
    }
}

/* The input of the mat-muls with weight wt: the norm stage. */
static void norm_stage(struct bk_backend *b, int n, const float *add, const float *norm,
                       uint32_t wt, bool have[ACT_N])
{
    struct tok_task t = {.b = b, .n_tok = n, .add = add, .norm = norm,
                         .act_type = quant_act_type(wt)};
    cpu_run_tokens(b, norm_worker, &t);
    cpu_fresh_input(have, t.act_type);
}

/* src = RMSNorm(src) * norm, in place (gemma's post-attention and post-FFN norms) */
static void post_norm_worker(void *ctx, int ith, int nth)
{
    const struct tok_task *t = ctx;
    const struct mdl_hparams *hp = &t->b->w->hp;
    for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++) {
        float *x = t->src + (size_t)i * hp->n_embd;
        cpu_rmsnorm(x, x, t->norm, hp->n_embd, hp->rms_eps);
    }
}

static void post_norm(struct bk_backend *b, int n, float *x, const struct mdl_tensor *norm)
{
    if (!norm->data)
        return;
    struct tok_task t = {.b = b, .n_tok = n, .src = x, .norm = norm->data};
    cpu_run_tokens(b, post_norm_worker, &t);
}

/* Per-head q/k norms, RoPE on q and k, the q scale; then k and v stored in the cache */
static void rope_worker(void *ctx, int ith, int nth)
{
    const struct tok_task *t = ctx;
    struct bk_backend *b = t->b;
    const struct mdl_hparams *hp = &b->w->hp;
    const struct mdl_layer *L = &b->w->layers[t->layer];
    uint32_t qdim = hp->n_head * hp->head_dim;
    const float *tab = L->swa && b->rope_swa_own ? b->rope_swa : b->rope;
    for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++) {
        const float *cs = tab + (size_t)i * hp->n_rot;
        float *q = b->q + (size_t)i * qdim;
        float *k = b->k + (size_t)i * b->kv_dim;
        if (L->q_norm.data) {
            for (uint32_t h = 0; h < hp->n_head; h++)
                cpu_rmsnorm(q + h * hp->head_dim, q + h * hp->head_dim, L->q_norm.data,
                            hp->head_dim, hp->rms_eps);
            for (uint32_t h = 0; h < hp->n_head_kv; h++)
                cpu_rmsnorm(k + h * hp->head_dim, k + h * hp->head_dim, L->k_norm.data,
                            hp->head_dim, hp->rms_eps);
        }
        cpu_rope(q, (int)hp->n_head, (int)hp->head_dim, (int)hp->n_rot, cs, hp->rope_neox);
        cpu_rope(k, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, cs, hp->rope_neox);
        if (hp->q_scale != 1.0f)
            for (uint32_t j = 0; j < qdim; j++)
                q[j] *= hp->q_scale;
        size_t off = (((size_t)t->slot[i] * hp->n_layer + t->layer) * b->p.n_ctx +
                      (size_t)t->pos[i]) * b->kv_dim;
        quant_fp32_to_fp16_row(k, b->k_cache + off, b->kv_dim);
        quant_fp32_to_fp16_row(b->v + (size_t)i * b->kv_dim, b->v_cache + off, b->kv_dim);
    }
}

/* src = act(src) * src2, quantised; act is SiLU or GELU */
static void ffn_act_worker(void *ctx, int ith, int nth)
{
    const struct tok_task *t = ctx;
    int64_t nc = t->n_cols;
    bool gelu = t->b->w->hp.ffn_act == MDL_ACT_GELU;
    for (int i = t->n_tok * ith / nth; i < t->n_tok * (ith + 1) / nth; i++) {
        float *h = t->src + (size_t)i * nc;
        const float *h2 = t->src2 + (size_t)i * nc;
        if (gelu)
            for (int64_t j = 0; j < nc; j++)
                h[j] = cpu_gelu(h[j]) * h2[j];
        else
            for (int64_t j = 0; j < nc; j++)
                h[j] = h[j] / (1.0f + expf(-h[j])) * h2[j];
        quant_out(t, h, nc, i);
    }
}

void cpu_ffn_act(struct bk_backend *b, float *src, const float *src2, int n_tok, int64_t n_cols,
                 uint32_t act_type)
{
    struct tok_task t = {.b = b, .n_tok = n_tok, .act_type = act_type, .src = src, .src2 = src2,
                         .n_cols = n_cols};
    cpu_run_tokens(b, ffn_act_worker, &t);
}

/* ---- forward ------------------------------------------------------------------------ */

/* The dense FFN of one layer: xb (normed, quantised per `have`) -> xb2. */
static void dense_ffn(struct bk_backend *b, const struct mdl_layer *L, int n, bool have[ACT_N])
{
    const struct mdl_hparams *hp = &b->w->hp;
    struct cpu_mm mm[2];
    cpu_set_mm(&mm[0], b, &L->w_gate, b->xb, n, have, NULL, b->hb, hp->n_ff);
    cpu_set_mm(&mm[1], b, &L->w_up, b->xb, n, have, NULL, b->hb2, hp->n_ff);
    cpu_matmul(b->pool, mm, 2, n);
    uint32_t at = quant_act_type(L->w_down.type);
    cpu_ffn_act(b, b->hb, b->hb2, n, hp->n_ff, at);
    cpu_fresh_input(have, at);
    cpu_set_mm(&mm[0], b, &L->w_down, b->hb, n, have, NULL, b->xb2, hp->n_embd);
    cpu_matmul(b->pool, mm, 1, n);
}

/* One layer over the chunk's n tokens. The residual of the previous layer's FFN (in
 * xb2) is added into x by this layer's first norm stage (`pending`); this layer's is
 * left in xb2 the same way. */
static void layer_forward(struct bk_backend *b, uint32_t l, int n, const int32_t *pos,
                          const int32_t *slot, bool pending)
{
    const struct mdl_hparams *hp = &b->w->hp;
    const struct mdl_layer *L = &b->w->layers[l];
    uint32_t qdim = hp->n_head * hp->head_dim;
    struct cpu_mm mm[3];
    bool have[ACT_N];

    /* attention block */
    norm_stage(b, n, pending ? b->xb2 : NULL, L->attn_norm.data, L->wq.type, have);
    cpu_set_mm(&mm[0], b, &L->wq, b->xb, n, have, &L->bq, b->q, qdim);
    cpu_set_mm(&mm[1], b, &L->wk, b->xb, n, have, &L->bk, b->k, b->kv_dim);
    cpu_set_mm(&mm[2], b, &L->wv, b->xb, n, have, &L->bv, b->v, b->kv_dim);
    cpu_matmul(b->pool, mm, 3, n);
    struct tok_task rt = {.b = b, .n_tok = n, .pos = pos, .slot = slot, .layer = l};
    cpu_run_tokens(b, rope_worker, &rt);
    int run_start[CPU_CHUNK + 1];
    int n_runs = attn_runs(b, n, slot, run_start);
    struct attn_task at = {b, l, n, pos, slot, n_runs, run_start};
    if (n_runs * hp->n_head_kv == 1)
        attn_worker(&at, 0, 1);
    else
        cpu_pool_run(b->pool, attn_worker, &at);
    memset(have, 0, sizeof(have));
    cpu_set_mm(&mm[0], b, &L->wo, b->xb, n, have, NULL, b->xb2, hp->n_embd);
    cpu_matmul(b->pool, mm, 1, n);
    post_norm(b, n, b->xb2, &L->post_attn_norm);

    /* feed-forward block */
    const struct mdl_tensor *first_w = hp->n_expert ? &L->gate_inp : &L->w_gate;
    norm_stage(b, n, b->xb2, L->ffn_norm.data, first_w->type, have);
    if (hp->n_expert)
        cpu_moe_ffn(b, L, n, have);
    else
        dense_ffn(b, L, n, have);
    post_norm(b, n, b->xb2, &L->post_ffn_norm);
}

/* Embedding rows (times the model's scale) and RoPE tables of a chunk's tokens. */
static void chunk_inputs(struct bk_backend *b, int n, const int32_t *tokens, const int32_t *pos)
{
    const struct mdl_weights *w = b->w;
    const struct mdl_hparams *hp = &w->hp;
    size_t erow = quant_row_bytes(w->tok_embd.type, hp->n_embd);
    for (int t = 0; t < n; t++) {
        float *x = b->x + (size_t)t * hp->n_embd;
        quant_dequant_row(w->tok_embd.type,
                          (const uint8_t *)w->tok_embd.data + (size_t)tokens[t] * erow, x,
                          hp->n_embd);
        if (hp->embd_scale != 1.0f)
            for (uint32_t j = 0; j < hp->n_embd; j++)
                x[j] *= hp->embd_scale;
        cpu_rope_table_ext(b->rope + (size_t)t * hp->n_rot, (int)hp->n_rot, pos[t], &hp->rope,
                           b->rope_factors);
        if (b->rope_swa_own)
            cpu_rope_table_ext(b->rope_swa + (size_t)t * hp->n_rot, (int)hp->n_rot, pos[t],
                               &hp->rope_swa, b->rope_factors);
    }
}

/* Runs tokens [0, n) of a chunk (n <= b->chunk); writes logits rows for the tokens
 * with want set, in order, and returns how many rows it wrote. */
static uint32_t chunk_forward(struct bk_backend *b, int n, const int32_t *tokens,
                              const int32_t *pos, const int32_t *slot, const bool *want,
                              float *logits)
{
    const struct mdl_weights *w = b->w;
    const struct mdl_hparams *hp = &w->hp;
    chunk_inputs(b, n, tokens, pos);
    for (uint32_t l = 0; l < hp->n_layer; l++)
        layer_forward(b, l, n, pos, slot, l > 0);
    for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
        b->x[i] += b->xb2[i];

    /* output: only the rows that want logits, gathered to the front of xb */
    uint32_t m = 0;
    for (int t = 0; t < n; t++) {
        if (!want || want[t]) {
            cpu_rmsnorm(b->xb + (size_t)m * hp->n_embd, b->x + (size_t)t * hp->n_embd,
                        w->output_norm.data, hp->n_embd, hp->rms_eps);
            m++;
        }
    }
    if (m > 0 && logits) {
        bool have[ACT_N] = {false};
        struct cpu_mm mm;
        cpu_set_mm(&mm, b, &w->output, b->xb, (int)m, have, NULL, logits, hp->n_vocab);
        cpu_matmul(b->pool, &mm, 1, (int)m);
        if (hp->final_softcap > 0.0f) { /* as the reference: scale by 1/c, tanh, scale by c */
            float c = hp->final_softcap;
            float inv = 1.0f / c;
            for (size_t i = 0; i < (size_t)m * hp->n_vocab; i++)
                logits[i] = tanhf(logits[i] * inv) * c;
        }
    }
    return m;
}

static int cpu_forward(struct bk_backend *b, const struct bk_batch *batch, float *logits)
{
    const struct mdl_hparams *hp = &b->w->hp;
    memcpy(b->slot_next, b->slot_len, b->p.n_slots * sizeof(uint32_t));
    for (uint32_t i = 0; i < batch->n_tokens; i++) {
        int32_t tok = batch->tokens[i];
        int32_t s = batch->slot[i];
        if (tok < 0 || (uint32_t)tok >= hp->n_vocab || s < 0 || (uint32_t)s >= b->p.n_slots)
            return -EINVAL;
        if (batch->pos[i] < 0 || (uint32_t)batch->pos[i] != b->slot_next[s] ||
            (uint32_t)batch->pos[i] >= b->p.n_ctx)
            return -EINVAL;
        b->slot_next[s]++;
    }
    float *out = logits;
    for (uint32_t i0 = 0; i0 < batch->n_tokens; i0 += b->chunk) {
        uint32_t n = batch->n_tokens - i0 < b->chunk ? batch->n_tokens - i0 : b->chunk;
        uint32_t m = chunk_forward(b, (int)n, batch->tokens + i0, batch->pos + i0, batch->slot + i0,
                                   batch->want_logits ? batch->want_logits + i0 : NULL, out);
        if (out)
            out += (size_t)m * hp->n_vocab;
    }
    memcpy(b->slot_len, b->slot_next, b->p.n_slots * sizeof(uint32_t));
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* The tensors of w as an array of pointers (the copy below walks them twice). */
static size_t weight_tensors(struct mdl_weights *w, struct mdl_tensor **out, size_t cap)
{
    size_t n = 0;
#define ADD(t)                                                                                     \
    do {                                                                                           \
        if ((t)->data && n < cap)                                                                  \
            out[n++] = (t);                                                                        \
    } while (0)
    ADD(&w->tok_embd);
    ADD(&w->output_norm);
    if (w->output.data != w->tok_embd.data)
        ADD(&w->output);
    for (uint32_t l = 0; l < w->hp.n_layer; l++) {
        struct mdl_layer *L = &w->layers[l];
#define ADD_LAYER_(f) ADD(&L->f);
        MDL_LAYER_TENSORS(ADD_LAYER_)
#undef ADD_LAYER_
    }
#undef ADD
    return n;
}

#define LAYER_TENSOR_COUNT_(f) +1
enum { N_LAYER_TENSORS = 0 MDL_LAYER_TENSORS(LAYER_TENSOR_COUNT_) };
#undef LAYER_TENSOR_COUNT_

/* Copies the weights out of the file mapping into one anonymous block backed by
 * transparent huge pages: decode streams every weight once per token, and with 4 KiB
 * file pages the TLB misses cost about half the memory bandwidth. Falls back to the
 * mapping (returns without copying) when memory is short. */
static void copy_weights(struct bk_backend *b, const struct mdl_weights *src)
{
    size_t cap = 3 + N_LAYER_TENSORS * (size_t)src->hp.n_layer;
    struct mdl_tensor **ts = calloc(cap, sizeof(*ts));
    struct mdl_layer *layers = calloc(src->hp.n_layer, sizeof(*layers));
    if (!ts || !layers)
        goto fail;
    b->wc = *src;
    memcpy(layers, src->layers, src->hp.n_layer * sizeof(*layers));
    b->wc.layers = layers;
    size_t n = weight_tensors(&b->wc, ts, cap);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (ts[i]->nbytes + 63) & ~(size_t)63;
    size_t huge = (size_t)2 << 20;
    total = (total + huge - 1) & ~(huge - 1);
    void *blob = NULL;
    if (posix_memalign(&blob, huge, total) != 0)
        goto fail;
    madvise(blob, total, MADV_HUGEPAGE);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        struct mdl_tensor *t = ts[i];
        uint8_t *dst = (uint8_t *)blob + off;
        /* mat-mul weights (not the embedding: its rows are looked up) may be regrouped
         * for the wide kernels; the row size stays the same */
        uint32_t rp = t == &b->wc.tok_embd ? 0 : quant_repacked_type(t->type, (int64_t)t->ne[0]);
        if (rp && t->ne[1] > 1 &&
            quant_row_bytes(rp, (int64_t)t->ne[0]) == quant_row_bytes(t->type, (int64_t)t->ne[0])) {
            size_t rb = quant_row_bytes(t->type, (int64_t)t->ne[0]);
            for (uint64_t r = 0; r < t->ne[1]; r++)
                quant_repack_row(t->type, (const uint8_t *)t->data + r * rb, dst + r * rb,
                                 (int64_t)t->ne[0]);
            t->type = rp;
        } else {
            memcpy(dst, t->data, t->nbytes);
        }
        t->data = dst;
        off += (t->nbytes + 63) & ~(size_t)63;
    }
    if (src->output.data == src->tok_embd.data)
        b->wc.output = b->wc.tok_embd;
    b->blob = blob;
    b->blob_bytes = total;
    b->w = &b->wc;
    free(ts);
    return;
fail:
    free(ts);
    free(layers);
    memset(&b->wc, 0, sizeof(b->wc));
}

static void cpu_free(struct bk_backend *b)
{
    if (!b)
        return;
    cpu_pool_free(b->pool);
    free(b->blob);
    if (b->w == &b->wc)
        free(b->wc.layers);
    void *bufs[] = {b->k_cache, b->v_cache, b->slot_len, b->slot_next, b->x, b->xb, b->xb2, b->q,
                    b->k, b->v, b->hb, b->hb2, b->rope, b->rope_swa, b->scores, b->q16,
                    b->router, b->exp_id, b->exp_w, b->pair_tok, b->pair_at, b->exp_start,
                    b->exp_fill, b->moe_act, b->moe_jobs, b->moe_slabs, b->moe_out,
                    b->shexp_out, b->shexp_gate};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        free(bufs[i]);
    for (int i = 0; i < ACT_N; i++)
        free(b->act[i]);
    free(b);
}

static uint32_t max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

/* Sizes that follow from the model: chunk length, row widths, RoPE tables. */
static void plan_sizes(struct bk_backend *b, const struct mdl_weights *w)
{
    const struct mdl_hparams *hp = &w->hp;
    uint32_t k = hp->n_expert ? hp->n_expert_used : 1;
    /* with experts a chunk's routed pairs (chunk * k) stay within CPU_CHUNK rows */
    b->chunk = max_u32(CPU_CHUNK / k, 16);
    b->kv_dim = hp->n_head_kv * hp->head_dim;
    b->ff_cols = max_u32(hp->n_ff, max_u32(k * hp->n_ff_exp, hp->n_ff_shexp));
    b->max_cols = max_u32(max_u32(hp->n_embd, hp->n_head * hp->head_dim), b->ff_cols);
    b->rope_factors = bk_rope_factors(w, b->p.n_ctx);
    b->rope_swa_own = memcmp(&hp->rope, &hp->rope_swa, sizeof(hp->rope)) != 0;
}

/* The per-chunk scratch buffers (sets *fail when one cannot be allocated). */
static void alloc_scratch(struct bk_backend *b, int nth, int *fail)
{
    const struct mdl_hparams *hp = &b->w->hp;
    size_t c = b->chunk;
    size_t k = hp->n_expert ? hp->n_expert_used : 0;
    b->x = xcalloc(c * hp->n_embd, sizeof(float), fail);
    b->xb = xcalloc(c * b->max_cols, sizeof(float), fail);
    b->xb2 = xcalloc(c * hp->n_embd, sizeof(float), fail);
    b->q = xcalloc(c * hp->n_head * hp->head_dim, sizeof(float), fail);
    b->k = xcalloc(c * b->kv_dim, sizeof(float), fail);
    b->v = xcalloc(c * b->kv_dim, sizeof(float), fail);
    b->hb = xcalloc(c * b->ff_cols, sizeof(float), fail);
    b->hb2 = xcalloc(c * b->ff_cols, sizeof(float), fail);
    b->rope = xcalloc(c * (hp->n_rot + 1), sizeof(float), fail);
    if (b->rope_swa_own)
        b->rope_swa = xcalloc(c * (hp->n_rot + 1), sizeof(float), fail);
    b->act_bytes = c * b->max_cols * 3; /* Q8_0X4B, the widest, is 3 bytes/value */
    for (int i = 0; i < ACT_N; i++)
        b->act[i] = xcalloc(b->act_bytes, 1, fail);
    b->scores = xcalloc((size_t)nth * CPU_ATTN_MAX_Q * b->p.n_ctx, sizeof(float), fail);
    b->q16 = xcalloc((size_t)nth * CPU_ATTN_MAX_Q * hp->head_dim, sizeof(uint16_t), fail);
    if (k == 0)
        return;
    b->router = xcalloc(c * hp->n_expert, sizeof(float), fail);
    b->exp_id = xcalloc(c * k, sizeof(int32_t), fail);
    b->exp_w = xcalloc(c * k, sizeof(float), fail);
    b->pair_tok = xcalloc(c * k, sizeof(int32_t), fail);
    b->pair_at = xcalloc(c * k, sizeof(int32_t), fail);
    b->exp_start = xcalloc(hp->n_expert + 1, sizeof(uint32_t), fail);
    b->exp_fill = xcalloc(hp->n_expert, sizeof(uint32_t), fail);
    b->moe_jobs = xcalloc(2 * (size_t)hp->n_expert, sizeof(*b->moe_jobs), fail);
    b->moe_slabs = xcalloc(2 * (size_t)hp->n_expert, sizeof(*b->moe_slabs), fail);
    b->moe_act = xcalloc(c * k * hp->n_embd, 3, fail);
    b->moe_out = xcalloc(c * k * hp->n_embd, sizeof(float), fail);
    if (hp->n_ff_shexp) {
        b->shexp_out = xcalloc(c * hp->n_embd, sizeof(float), fail);
        b->shexp_gate = xcalloc(c, sizeof(float), fail);
    }
}

static int cpu_init(struct bk_backend **out, const struct mdl_weights *w, const struct bk_params *p,
                    char *err, size_t err_len)
{
    const struct mdl_hparams *hp = &w->hp;
    *out = NULL;
    if (p->n_slots == 0 || p->n_ctx == 0 || hp->n_head == 0 || hp->n_head_kv == 0 ||
        hp->n_head % hp->n_head_kv != 0) {
        snprintf(err, err_len, "cpu: bad parameters (n_slots %u, n_ctx %u)", p->n_slots, p->n_ctx);
        return -EINVAL;
    }
    struct bk_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(err, err_len, "cpu: out of memory");
        return -ENOMEM;
    }
    b->w = w;
    b->p = *p;
    copy_weights(b, w);
    plan_sizes(b, b->w);
    int rc = cpu_pool_new(&b->pool, (int)p->n_threads);
    if (rc < 0) {
        snprintf(err, err_len, "cpu: cannot start worker threads");
        cpu_free(b);
        return rc;
    }
    int fail = 0;
    uint64_t kv_elems = (uint64_t)p->n_slots * hp->n_layer * p->n_ctx * b->kv_dim;
    if (kv_elems > SIZE_MAX / 2) {
        fail = 1;
    } else {
        b->k_cache = xcalloc((size_t)kv_elems, sizeof(uint16_t), &fail);
        b->v_cache = xcalloc((size_t)kv_elems, sizeof(uint16_t), &fail);
        if (!fail) {
            prefault(b->k_cache, (size_t)kv_elems * sizeof(uint16_t));
            prefault(b->v_cache, (size_t)kv_elems * sizeof(uint16_t));
        }
    }
    int nth = cpu_pool_size(b->pool);
    b->slot_len = xcalloc(p->n_slots, sizeof(uint32_t), &fail);
    b->slot_next = xcalloc(p->n_slots, sizeof(uint32_t), &fail);
    alloc_scratch(b, nth, &fail);
    if (fail) {
        snprintf(err, err_len, "cpu: out of memory for a KV cache of %u slots x %u positions",
                 p->n_slots, p->n_ctx);
        cpu_free(b);
        return -ENOMEM;
    }
    snprintf(b->desc, sizeof(b->desc), "cpu (%d threads, %s)", nth, quant_simd_name());
    *out = b;
    return 0;
}

static void cpu_kv_truncate(struct bk_backend *b, uint32_t slot, uint32_t from_pos)
{
    if (slot < b->p.n_slots && from_pos < b->slot_len[slot])
        b->slot_len[slot] = from_pos;
}

static const char *cpu_describe(struct bk_backend *b)
{
    return b->desc;
}

const struct bk_ops bk_cpu_ops = {
    .name = "cpu",
    .init = cpu_init,
    .free = cpu_free,
    .forward = cpu_forward,
    .kv_truncate = cpu_kv_truncate,
    .describe = cpu_describe,
};
