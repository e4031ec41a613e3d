// variants: matvec_f32=-DT_F32,-DMATVEC matvec_f16=-DT_F16,-DMATVEC matvec_q8_0=-DT_Q8_0,-DMATVEC matvec_q4_0=-DT_Q4_0,-DMATVEC matvec_q4_k=-DT_Q4_K,-DMATVEC matvec_q6_k=-DT_Q6_K,-DMATVEC matmul_f32=-DT_F32 matmul_f16=-DT_F16 matmul_q8_0=-DT_Q8_0 matmul_q4_0=-DT_Q4_0 matmul_q4_k=-DT_Q4_K matmul_q6_k=-DT_Q6_K matvec_id_f32=-DT_F32,-DMATVEC,-DMOE_ID matvec_id_f16=-DT_F16,-DMATVEC,-DMOE_ID matvec_id_q8_0=-DT_Q8_0,-DMATVEC,-DMOE_ID matvec_id_q4_0=-DT_Q4_0,-DMATVEC,-DMOE_ID matvec_id_q4_k=-DT_Q4_K,-DMATVEC,-DMOE_ID matvec_id_q6_k=-DT_Q6_K,-DMATVEC,-DMOE_ID
// matmul.comp - y[t][row] (+)= W[row] . x[t] (+ bias[row]), dequantizing W on the fly.
//
// One workgroup is one subgroup and owns NR rows and TN tokens (mat-vec variants:
// NR = VKB_MV_NR, TN = 1, used for decode; mat-mat: VKB_MM_NR x VKB_MM_TN, used for
// prefill). The lanes split the row: lane l takes 32-value sub-blocks l, l+L, ...,
// loads the activations of that sub-block for its TN tokens once, then unpacks each
// of its NR rows' sub-block once and dots it with all TN tokens; the lanes' partial
// sums are combined with subgroupAdd. No shared memory and no barriers, which is what
// a CPU device such as lavapipe runs fastest (neighbouring lanes read neighbouring
// sub-blocks); on GPUs it is the classic "one subgroup per row" mat-vec.
// Batch invariance: a (row, token) sum is formed in the same order in every variant
// (the same lane partition and per-lane order, then one subgroupAdd), so a token's
// result does not depend on the batch it is computed in.
// MOE_ID (mat-vec only): the weights hold n_mat matrices of n rows each (stacked
// experts); "token" y is a routed pair, which multiplies matrix ids[ids_off + y] by
// activation row y / x_div (x_div = experts per token when the pairs share their
// token's input) and writes output row y.
#version 450
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) readonly buffer Wq { uvec4 wq[]; };
layout(binding = 0) readonly buffer Ws { float ws[]; };
layout(binding = 1) readonly buffer X { vec4 x4[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };
layout(binding = 4) readonly buffer XQ { uvec4 xq[]; };   // int8 activations (quant_q8)
layout(binding = 5) readonly buffer XS { float xs[]; };

// Float weights take float activations; quantized weights take the int8 blocks of
// quant_q8.comp, and their products are exact integers in float (|sum| < 2^24).
#if defined(T_F32) || defined(T_F16)
#define XFLOAT 1
#endif

layout(push_constant) uniform Push {
    uint k;          // row length (multiple of 32)
    uint n;          // rows
    uint m;          // tokens
    uint x_off;      // x[t][i] at x_off + t*x_stride + i (both multiples of 4)
    uint x_stride;
    uint y_off;      // y[t][row] at y_off + t*y_stride + row
    uint y_stride;
    uint flags;      // VKB_MM_BIAS | VKB_MM_ACCUMULATE
#ifdef MOE_ID
    uint ids_off;    // expert of pair y at ids[ids_off + y]
    uint x_div;      // activation row of pair y: y / x_div
    uint n_mat;      // matrices in the weight buffer
#endif
} p;

#ifdef MOE_ID
layout(binding = 6) readonly buffer Ids { int ids[]; };
#define XROW(i) ((i) / p.x_div)
#else
#define XROW(i) (i)
#endif

#include "dequant.glsl"

#ifdef MATVEC
#define TN 1
#define NR VKB_MV_NR
#else
#define TN VKB_MM_TN
#define NR VKB_MM_NR
#endif

float dot16(mat4 a, mat4 b)
{
    return dot(a[0], b[0]) + dot(a[1], b[1]) + dot(a[2], b[2]) + dot(a[3], b[3]);
}

// One sub-block's contribution to a (row, token) sum, per weight type.
float sb_dot(mat4 qa, mat4 qb, float s0, float s1, float mn, mat4 xa, mat4 xb)
{
    const float p0 = dot16(qa, xa);
    const float p1 = dot16(qb, xb);
#if defined(T_Q6_K)
    return s0 * p0 + s1 * p1;
#elif defined(T_Q4_K)
    const vec4 sx = xa[0] + xa[1] + xa[2] + xa[3] + xb[0] + xb[1] + xb[2] + xb[3];
    return s0 * (p0 + p1) - mn * (sx.x + sx.y + sx.z + sx.w);
#elif defined(T_F32) || defined(T_F16)
    return p0 + p1;
#else
    return s0 * (p0 + p1);
#endif
}

void main()
{
    const uint lane = gl_LocalInvocationID.x;
    const uint nl = gl_WorkGroupSize.x;
    const uint r0 = gl_WorkGroupID.x * NR;
    const uint t0 = gl_WorkGroupID.y * TN;
    const uint nsb = p.k >> 5;
#ifdef MOE_ID
    const uint n_blk = p.n * p.n_mat * nsb;
    const uint rbase = uint(ids[p.ids_off + gl_WorkGroupID.y]) * p.n;
#else
    const uint n_blk = p.n * nsb;
    const uint rbase = 0u;
#endif
    uint xb[TN];
    uint xt[TN];
    uint brow[NR];
    float acc[NR][TN];
    [[unroll]] for (uint t = 0u; t < TN; t++) {
        const uint xr = XROW(min(t0 + t, p.m - 1u));
        xt[t] = xr * nsb;
        xb[t] = (p.x_off + xr * p.x_stride) >> 2;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        brow[r] = (rbase + min(r0 + r, p.n - 1u)) * nsb;
        [[unroll]] for (uint t = 0u; t < TN; t++)
            acc[r][t] = 0.0;
    }
    for (uint sb = lane; sb < nsb; sb += nl) {
        mat4 xa[TN];
        mat4 xc[TN];
        float xsc[TN];
        [[unroll]] for (uint t = 0u; t < TN; t++) {
#ifdef XFLOAT
            const uint o = xb[t] + sb * 8u;
            xa[t] = mat4(x4[o], x4[o + 1u], x4[o + 2u], x4[o + 3u]);
            xc[t] = mat4(x4[o + 4u], x4[o + 5u], x4[o + 6u], x4[o + 7u]);
            xsc[t] = 1.0;
#else
            const uint bi = xt[t] + sb;
            xa[t] = i8x16m(xq[2u * bi]);
            xc[t] = i8x16m(xq[2u * bi + 1u]);
            xsc[t] = xs[bi];
#endif
        }
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            mat4 qa;
            mat4 qb;
            float s0;
            float s1;
            float mn;
            sb_load(brow[r] + sb, n_blk, qa, qb, s0, s1, mn);
            [[unroll]] for (uint t = 0u; t < TN; t++)
#ifdef XFLOAT
                acc[r][t] += sb_dot(qa, qb, s0, s1, mn, xa[t], xc[t]);
#else
                acc[r][t] += xsc[t] * sb_dot(qa, qb, s0, s1, mn, xa[t], xc[t]);
#endif
        }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        [[unroll]] for (uint t = 0u; t < TN; t++) {
            const float v = subgroupAdd(acc[r][t]);
            const uint row = r0 + r;
            if (lane == 0u && row < p.n && t0 + t < p.m) {
                const uint yi = p.y_off + (t0 + t) * p.y_stride + row;
                float o = v;
                if ((p.flags & VKB_MM_BIAS) != 0u)
                    o += bias[row];
                if ((p.flags & VKB_MM_ACCUMULATE) != 0u)
                    o += y[yi];
                y[yi] = o;
            }
        }
    }
}
