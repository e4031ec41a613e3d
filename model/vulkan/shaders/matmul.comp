// variants: matvec_f32=-DT_F32,-DMATVEC matvec_f16=-DT_F16,-DMATVEC matvec_q8_0=-DT_Q8_0,-DMATVEC matvec_q4_0=-DT_Q4_0,-DMATVEC matvec_q4_k=-DT_Q4_K,-DMATVEC matvec_q6_k=-DT_Q6_K,-DMATVEC matmul_f32=-DT_F32 matmul_f16=-DT_F16 matmul_q8_0=-DT_Q8_0 matmul_q4_0=-DT_Q4_0 matmul_q4_k=-DT_Q4_K matmul_q6_k=-DT_Q6_K
// matmul.comp - y[t][row] (+)= W[row] . x[t] (+ bias[row]), dequantizing W on the fly.
//
// One invocation owns one output row and TN tokens (TN = 1 for the mat-vec variants
// used in decode, VKB_MM_TN for prefill): it walks its row sub-block by sub-block,
// unpacks 4 weights at a time and dots them with the same 4 activations of each of
// its tokens. The activations of a workgroup's tokens are the same for every lane,
// so they are uniform loads (one load per SIMD vector on CPU devices such as
// lavapipe, a broadcast from cache on GPUs), and each weight word is read once per
// TN tokens. No shared memory and no barriers: lavapipe runs a workgroup as plain
// SIMD loops. Every token's sum is formed in the same order in both variants, so a
// row's result does not depend on the batch it is computed in.
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer Wt { uint w[]; };
layout(binding = 1) readonly buffer X { vec4 x4[]; };
layout(binding = 2) buffer Y { float y[]; };
layout(binding = 3) readonly buffer Bias { float bias[]; };

layout(push_constant) uniform Push {
    uint k;          // row length (multiple of 32)
    uint n;          // rows
    uint m;          // tokens
    uint x_off;      // x[t][i] at x_off + t*x_stride + i (both multiples of 4)
    uint x_stride;
    uint y_off;      // y[t][row] at y_off + t*y_stride + row
    uint y_stride;
    uint flags;      // VKB_MM_BIAS | VKB_MM_ACCUMULATE
} p;

#include "dequant.glsl"

#ifdef MATVEC
#define TN 1
#else
#define TN VKB_MM_TN
#endif

void main()
{
    const uint row = gl_GlobalInvocationID.x;
    if (row >= p.n)
        return;
    const uint t0 = gl_WorkGroupID.y * TN;
    uint xb[TN];
    float acc[TN];
    for (uint t = 0u; t < TN; t++) {
        xb[t] = (p.x_off + min(t0 + t, p.m - 1u) * p.x_stride) >> 2;
        acc[t] = 0.0;
    }
    const uint nsb = p.k >> 5;
    uint wb = row * nsb * SBW;
    for (uint sb = 0u; sb < nsb; sb++, wb += SBW) {
        const uint xo = sb * 8u;
#if defined(T_F32) || defined(T_F16)
        float part[TN];
        for (uint t = 0u; t < TN; t++)
            part[t] = 0.0;
        for (uint g = 0u; g < 8u; g++) {
            vec4 wv = dq_group(wb, g);
            for (uint t = 0u; t < TN; t++)
                part[t] += dot(wv, x4[xb[t] + xo + g]);
        }
        for (uint t = 0u; t < TN; t++)
            acc[t] += part[t];
#elif defined(T_Q8_0)
        float part[TN];
        for (uint t = 0u; t < TN; t++)
            part[t] = 0.0;
        for (uint g = 0u; g < 8u; g++) {
            vec4 wv = i8x4(w[wb + 1u + g]);
            for (uint t = 0u; t < TN; t++)
                part[t] += dot(wv, x4[xb[t] + xo + g]);
        }
        const float d = uintBitsToFloat(w[wb]);
        for (uint t = 0u; t < TN; t++)
            acc[t] += d * part[t];
#elif defined(T_Q4_0)
        float part[TN];
        for (uint t = 0u; t < TN; t++)
            part[t] = 0.0;
        for (uint j = 0u; j < 4u; j++) {
            const uint q = w[wb + 1u + j];
            vec4 lo = u4x4(q, 0u) - 8.0;
            vec4 hi = u4x4(q, 4u) - 8.0;
            for (uint t = 0u; t < TN; t++)
                part[t] += dot(lo, x4[xb[t] + xo + j]) + dot(hi, x4[xb[t] + xo + 4u + j]);
        }
        const float d = uintBitsToFloat(w[wb]);
        for (uint t = 0u; t < TN; t++)
            acc[t] += d * part[t];
#elif defined(T_Q4_K)
        float part[TN];
        float sx[TN];
        for (uint t = 0u; t < TN; t++) {
            part[t] = 0.0;
            sx[t] = 0.0;
        }
        for (uint j = 0u; j < 4u; j++) {
            const uint q = w[wb + 2u + j];
            vec4 lo = u4x4(q, 0u);
            vec4 hi = u4x4(q, 4u);
            for (uint t = 0u; t < TN; t++) {
                vec4 a = x4[xb[t] + xo + j];
                vec4 b = x4[xb[t] + xo + 4u + j];
                part[t] += dot(lo, a) + dot(hi, b);
                sx[t] += dot(a + b, vec4(1.0));
            }
        }
        const float d = uintBitsToFloat(w[wb]);
        const float mn = uintBitsToFloat(w[wb + 1u]);
        for (uint t = 0u; t < TN; t++)
            acc[t] += d * part[t] - mn * sx[t];
#elif defined(T_Q6_K)
        float p0[TN];
        float p1[TN];
        for (uint t = 0u; t < TN; t++) {
            p0[t] = 0.0;
            p1[t] = 0.0;
        }
        for (uint g = 0u; g < 4u; g++) {
            vec4 wa = i8x4(w[wb + 2u + g]);
            vec4 wc = i8x4(w[wb + 6u + g]);
            for (uint t = 0u; t < TN; t++) {
                p0[t] += dot(wa, x4[xb[t] + xo + g]);
                p1[t] += dot(wc, x4[xb[t] + xo + 4u + g]);
            }
        }
        const float s0 = uintBitsToFloat(w[wb]);
        const float s1 = uintBitsToFloat(w[wb + 1u]);
        for (uint t = 0u; t < TN; t++)
            acc[t] += s0 * p0[t] + s1 * p1[t];
#endif
    }
    for (uint t = 0u; t < TN; t++) {
        if (t0 + t >= p.m)
            break;
        const uint yi = p.y_off + (t0 + t) * p.y_stride + row;
        float v = acc[t];
        if ((p.flags & VKB_MM_BIAS) != 0u)
            v += bias[row];
        if ((p.flags & VKB_MM_ACCUMULATE) != 0u)
            v += y[yi];
        y[yi] = v;
    }
}
