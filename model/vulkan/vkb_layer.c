/* vkb_layer.c - the dispatches of one transformer layer on the Vulkan device, for every
 * supported architecture (barriers only between dependent steps):
 *
 *   h = rmsnorm(x) * attn_norm
 *   qkv = [h Wq + bq | h Wk + bk | h Wv + bv]        three mat-muls, no barrier between
 *   per-head rmsnorm of the q and k heads (qwen3, gemma3)
 *   rope(q heads, k heads) in place, with the layer's table; k, v -> F16 cache
 *   att = attention(q, cache): scale, soft-cap, window per the layer
 *   x += att Wo, or x += rmsnorm(att Wo) * post_attn_norm (gemma)
 *   h = rmsnorm(x) * ffn_norm
 *   dense: ff = [h Wgate | h Wup]; ff_gate = act(gate) * up; x += ff_gate Wdown
 *          (or its post_ffn_norm, gemma)
 *   experts: router logits -> top-k per token -> for each (token, rank) pair the
 *          expert's gate/up/down mat-vecs (only the chosen experts' rows are read)
 *          -> x += sum of weight * output (+ qwen2moe's gated shared expert)
 * Every mat-mul input that meets quantized weights is first quantized to int8 blocks
 * (vkb_op_quant_q8), as the reference does.
 */
#include "vkb.h"

#include <string.h>

static struct vkb_view view(struct vkb_buf *buf, uint32_t off, uint32_t stride)
{
    return (struct vkb_view){.buf = buf, .off = off, .stride = stride};
}

/* Quantizes the mat-mul input x (m rows of k) when one of its n_w consumers has
 * quantized weights (as Q8_K when all of those are K-quants), then adds a barrier. */
static int quantize_for(struct bk_backend *b, struct vkb_view x, uint32_t k, uint32_t m,
                        const struct vkb_weight *const *ws, int n_w)
{
    bool need = false;
    bool all_k = k % 256 == 0;
    for (int i = 0; i < n_w; i++) {
        if (vkb_type_is_quant(ws[i]->type)) {
            need = true;
            all_k &= vkb_type_is_kquant(ws[i]->type);
        }
    }
    if (!need)
        return 0;
    if (vkb_op_quant_q8(b->c, x, k, m, all_k, &b->xq, b->err, sizeof(b->err)) < 0)
        return -1;
    vkb_rec_barrier(b->c);
    return 0;
}

/* x += y W, or with a post-norm x += rmsnorm(y W) * post (through h). */
static int project_residual(struct bk_backend *b, const struct vkb_weight *w, struct vkb_view y,
                            uint32_t m, struct vkb_buf *post)
{
    struct vkb_ctx *c = b->c;
    const uint32_t E = b->hp.n_embd;
    const size_t el = sizeof(b->err);
    if (!post)
        return vkb_op_matmul(c, w, y, &b->xq, view(&b->x, 0, E), m, NULL, VKB_MM_ACCUMULATE,
                             b->err, el);
    if (vkb_op_matmul(c, w, y, &b->xq, view(&b->h, 0, E), m, NULL, 0, b->err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    return vkb_op_rmsnorm_rows(c, view(&b->h, 0, E), post, view(&b->x, 0, E), E, m, 1,
                               b->hp.rms_eps, VKB_NORM_ACCUMULATE, b->err, el);
}

static int attention(struct bk_backend *b, struct vkb_layer *l, uint32_t m)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    char *err = b->err;
    const size_t el = sizeof(b->err);
    const uint32_t E = hp->n_embd;
    struct vkb_view x = view(&b->x, 0, E);
    struct vkb_view h = view(&b->h, 0, E);
    struct vkb_view qkv = view(&b->qkv, 0, b->qkv_dim);
    uint32_t bias = l->has_bias ? VKB_MM_BIAS : 0u;
    const struct vkb_weight *qkv_w[3] = {&l->wq, &l->wk, &l->wv};
    const struct vkb_weight *wo_w[1] = {&l->wo};

    if (vkb_op_rmsnorm(c, x, &l->attn_norm, h, E, m, hp->rms_eps, NULL, -1, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, h, E, m, qkv_w, 3) < 0 ||
        vkb_op_matmul(c, &l->wq, h, &b->xq, qkv, m, l->has_bias ? &l->bq : NULL, bias, err, el) <
            0 ||
        vkb_op_matmul(c, &l->wk, h, &b->xq, view(&b->qkv, b->q_dim, b->qkv_dim), m,
                      l->has_bias ? &l->bk : NULL, bias, err, el) < 0 ||
        vkb_op_matmul(c, &l->wv, h, &b->xq, view(&b->qkv, b->q_dim + b->kv_dim, b->qkv_dim), m,
                      l->has_bias ? &l->bv : NULL, bias, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (l->has_qk_norm) {
        struct vkb_view k = view(&b->qkv, b->q_dim, b->qkv_dim);
        if (vkb_op_rmsnorm_rows(c, qkv, &l->q_norm, qkv, hp->head_dim, m, hp->n_head,
                                hp->rms_eps, 0, err, el) < 0 ||
            vkb_op_rmsnorm_rows(c, k, &l->k_norm, k, hp->head_dim, m, hp->n_head_kv, hp->rms_eps,
                                0, err, el) < 0)
            return -1;
        vkb_rec_barrier(c);
    }
    struct vkb_rope_args ra = {.n_heads = hp->n_head + hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .n_rot = hp->n_rot,
                               .neox = hp->rope_neox,
                               .pos_off = VKB_INFO_POS};
    struct vkb_buf *tab = l->swa && b->rope_swa_own ? &b->rope_swa : &b->rope_tab;
    if (vkb_op_rope(c, qkv, tab, &b->info, &ra, m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_kv_args ka = {.kv_dim = b->kv_dim,
                             .n_ctx = b->n_ctx,
                             .k_off = b->q_dim,
                             .v_off = b->q_dim + b->kv_dim,
                             .pos_off = VKB_INFO_POS,
                             .slot_off = VKB_INFO_SLOT};
    if (vkb_op_kv_write(c, qkv, &l->kc, &l->vc, &b->info, &ka, m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_attn_args aa = {.n_head = hp->n_head,
                               .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .n_ctx = b->n_ctx,
                               .pos_off = VKB_INFO_POS,
                               .slot_off = VKB_INFO_SLOT,
                               .scale = hp->q_scale,
                               .softcap = hp->attn_softcap,
                               .post_scale = hp->kq_scale,
                               .n_swa = l->swa ? hp->n_swa : 0};
    if (vkb_op_attn(c, qkv, &l->kc, &l->vc, &b->info, &aa, view(&b->att, 0, b->q_dim), m, err,
                    el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, view(&b->att, 0, b->q_dim), b->q_dim, m, wo_w, 1) < 0 ||
        project_residual(b, &l->wo, view(&b->att, 0, b->q_dim), m,
                         l->has_post_norms ? &l->post_attn_norm : NULL) < 0)
        return -1;
    vkb_rec_barrier(c);
    return 0;
}

/* gate/up (m rows of h, already quantized for them) -> act -> down, added to the
 * residual (through the post-norm, when there is one) or, with `to`, written there. */
static int dense_ffn(struct bk_backend *b, const struct vkb_weight *gate,
                     const struct vkb_weight *up, const struct vkb_weight *down, uint32_t F,
                     uint32_t m, enum mdl_ffn_act act, struct vkb_buf *post,
                     const struct vkb_view *to)
{
    struct vkb_ctx *c = b->c;
    char *err = b->err;
    const size_t el = sizeof(b->err);
    struct vkb_view h = view(&b->h, 0, b->hp.n_embd);
    struct vkb_view g = view(&b->ff, 0, 2 * F);
    struct vkb_view u = view(&b->ff, F, 2 * F);
    const struct vkb_weight *down_w[1] = {down};
    if (vkb_op_matmul(c, gate, h, &b->xq, g, m, NULL, 0, err, el) < 0 ||
        vkb_op_matmul(c, up, h, &b->xq, u, m, NULL, 0, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_op_glu(c, act, g, u, g, F, m, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (quantize_for(b, g, F, m, down_w, 1) < 0)
        return -1;
    if (to)
        return vkb_op_matmul(c, down, g, &b->xq, *to, m, NULL, 0, err, el);
    return project_residual(b, down, g, m, post);
}

/* qwen2moe's shared expert into sh_out and its gate logit into sh_gate. */
static int shared_expert(struct bk_backend *b, struct vkb_layer *l, uint32_t m)
{
    const uint32_t E = b->hp.n_embd;
    struct vkb_view h = view(&b->h, 0, E);
    struct vkb_view out = view(&b->sh_out, 0, E);
    const struct vkb_weight *in_w[3] = {&l->gate_shexp, &l->up_shexp, &l->gate_inp_shexp};
    if (quantize_for(b, h, E, m, in_w, 3) < 0 ||
        vkb_op_matmul(b->c, &l->gate_inp_shexp, h, &b->xq, view(&b->sh_gate, 0, 1), m, NULL, 0,
                      b->err, sizeof(b->err)) < 0 ||
        dense_ffn(b, &l->gate_shexp, &l->up_shexp, &l->down_shexp, b->hp.n_ff_shexp, m,
                  MDL_ACT_SILU, NULL, &out) < 0)
        return -1;
    vkb_rec_barrier(b->c);
    return 0;
}

/* The routed experts for the m tokens of h (see the file comment). */
static int experts(struct bk_backend *b, struct vkb_layer *l, uint32_t m)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    char *err = b->err;
    const size_t el = sizeof(b->err);
    const uint32_t E = hp->n_embd;
    const uint32_t k = hp->n_expert_used;
    const uint32_t X = hp->n_ff_exp;
    const uint32_t pairs = m * k;
    struct vkb_view h = view(&b->h, 0, E);
    struct vkb_view g = view(&b->ff, 0, 2 * X);
    struct vkb_view u = view(&b->ff, X, 2 * X);
    const struct vkb_weight *router_w[1] = {&l->gate_inp};
    const struct vkb_weight *in_w[2] = {&l->gate_exps, &l->up_exps};
    const struct vkb_weight *down_w[1] = {&l->down_exps};
    if (quantize_for(b, h, E, m, router_w, 1) < 0 ||
        vkb_op_matmul(c, &l->gate_inp, h, &b->xq, view(&b->router, 0, hp->n_expert), m, NULL, 0,
                      err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_op_moe_route(c, &b->router, &b->moe_ids, &b->moe_w, hp->n_expert, k, m,
                         hp->expert_norm, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_moe_mm in = {X, hp->n_expert, &b->moe_ids, 0, k};
    if (quantize_for(b, h, E, m, in_w, 2) < 0 ||
        vkb_op_matmul_id(c, &l->gate_exps, &in, h, &b->xq, g, pairs, err, el) < 0 ||
        vkb_op_matmul_id(c, &l->up_exps, &in, h, &b->xq, u, pairs, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (vkb_op_glu(c, MDL_ACT_SILU, g, u, g, X, pairs, err, el) < 0)
        return -1;
    vkb_rec_barrier(c);
    struct vkb_moe_mm dn = {E, hp->n_expert, &b->moe_ids, 0, 1};
    if (quantize_for(b, g, X, pairs, down_w, 1) < 0 ||
        vkb_op_matmul_id(c, &l->down_exps, &dn, g, &b->xq, view(&b->moe_out, 0, E), pairs, err,
                         el) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (l->has_shexp && shared_expert(b, l, m) < 0)
        return -1;
    return vkb_op_moe_combine(c, &b->x, &b->moe_out, &b->moe_w, l->has_shexp ? &b->sh_out : NULL,
                              l->has_shexp ? &b->sh_gate : NULL, E, m, k, err, el);
}

int vkb_record_layer(struct bk_backend *b, struct vkb_layer *l, uint32_t m)
{
    struct vkb_ctx *c = b->c;
    const struct mdl_hparams *hp = &b->hp;
    const uint32_t E = hp->n_embd;
    if (attention(b, l, m) < 0)
        return -1;
    if (vkb_op_rmsnorm(c, view(&b->x, 0, E), &l->ffn_norm, view(&b->h, 0, E), E, m, hp->rms_eps,
                       NULL, -1, b->err, sizeof(b->err)) < 0)
        return -1;
    vkb_rec_barrier(c);
    if (hp->n_expert) {
        if (experts(b, l, m) < 0)
            return -1;
    } else {
        const struct vkb_weight *ffn_w[2] = {&l->gate, &l->up};
        if (quantize_for(b, view(&b->h, 0, E), E, m, ffn_w, 2) < 0 ||
            dense_ffn(b, &l->gate, &l->up, &l->down, hp->n_ff, m, hp->ffn_act,
                      l->has_post_norms ? &l->post_ffn_norm : NULL, NULL) < 0)
            return -1;
    }
    vkb_rec_barrier(c);
    return 0;
}
