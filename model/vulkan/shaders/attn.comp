// attn.comp - causal attention of one query head of one token over its slot's F16
// KV cache, fused with an online softmax (no score buffer).
//
// One workgroup = one subgroup per (head, token). Lane l takes positions l, l+L, ...
// up to the token's position, keeping its own running max, sum and weighted V sum;
// the lanes are then merged with subgroupMax/subgroupAdd. GQA: query head h reads KV
// head h / (n_head / n_head_kv). The same kernel serves decode (one token) and
// prefill (many tokens, each seeing positions <= its own). A score is
// post_scale * cap(scale * q.k) with cap(s) = softcap * tanh(s / softcap) when softcap
// > 0; with a window (n_swa > 0) a token at pos sees positions pos - n_swa < j <= pos.
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer Q { float q[]; };
layout(binding = 1) readonly buffer Kc { uint kc[]; };
layout(binding = 2) readonly buffer Vc { uint vc[]; };
layout(binding = 3) readonly buffer Info { int info[]; };
layout(binding = 4) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint n_head;
    uint n_head_kv;
    uint head_dim;
    uint n_ctx;
    uint q_off;
    uint q_stride;
    uint o_off;
    uint o_stride;
    uint pos_off;
    uint slot_off;
    float scale;
    float softcap;
    float post_scale;
    uint n_swa;
} p;

#define HD2 (VKB_HEAD_DIM_MAX / 2)

void main()
{
    const uint h = gl_WorkGroupID.x;
    const uint t = gl_WorkGroupID.y;
    const uint lane = gl_LocalInvocationID.x;
    const uint nl = gl_WorkGroupSize.x;
    const uint hd2 = p.head_dim / 2u;
    const uint pos = uint(info[p.pos_off + t]);
    const uint slot = uint(info[p.slot_off + t]);
    const uint kvh = h / (p.n_head / p.n_head_kv);
    const uint row_words = p.n_head_kv * hd2;

    vec2 qv[HD2];
    vec2 acc[HD2];
    const uint qb = p.q_off + t * p.q_stride + h * p.head_dim;
    for (uint i = 0u; i < hd2; i++) {
        qv[i] = vec2(q[qb + 2u * i], q[qb + 2u * i + 1u]);
        acc[i] = vec2(0.0);
    }
    float mx = -3.0e38;
    float sum = 0.0;
    const uint kb0 = slot * p.n_ctx * row_words + kvh * hd2;
    const uint first = p.n_swa > 0u && pos + 1u > p.n_swa ? pos + 1u - p.n_swa : 0u;
    const float inv_cap = p.softcap > 0.0 ? 1.0 / p.softcap : 0.0;
    for (uint ps = first + lane; ps <= pos; ps += nl) {
        const uint kb = kb0 + ps * row_words;
        float sc = 0.0;
        for (uint i = 0u; i < hd2; i++)
            sc += dot(qv[i], unpackHalf2x16(kc[kb + i]));
        sc *= p.scale;
        if (p.softcap > 0.0)
            sc = tanh(sc * inv_cap) * p.softcap;
        sc *= p.post_scale;
        const float mnew = max(mx, sc);
        const float c = exp(mx - mnew);
        const float e = exp(sc - mnew);
        sum = sum * c + e;
        for (uint i = 0u; i < hd2; i++)
            acc[i] = acc[i] * c + e * unpackHalf2x16(vc[kb + i]);
        mx = mnew;
    }
    const float gmax = subgroupMax(mx);
    const float c = exp(mx - gmax);
    const float gsum = subgroupAdd(sum * c);
    const float inv = 1.0 / gsum;
    const uint ob = p.o_off + t * p.o_stride + h * p.head_dim;
    for (uint i = 0u; i < hd2; i++) {
        const vec2 v = subgroupAdd(acc[i] * c);
        if (i % nl == lane) {
            o[ob + 2u * i] = v.x * inv;
            o[ob + 2u * i + 1u] = v.y * inv;
        }
    }
}
