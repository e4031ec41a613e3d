// variants: get_rows_f32=-DT_F32 get_rows_f16=-DT_F16 get_rows_q8_0=-DT_Q8_0 get_rows_q4_0=-DT_Q4_0 get_rows_q4_k=-DT_Q4_K get_rows_q6_k=-DT_Q6_K
// get_rows.comp - embedding lookup: out[j] = dequantized row tokens[j] of W.
// One invocation per 32-value sub-block (x) of token j (y).
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer Wq { uvec4 wq[]; };
layout(binding = 0) readonly buffer Ws { float ws[]; };
layout(binding = 1) readonly buffer Info { int info[]; };
layout(binding = 2) writeonly buffer Out { vec4 o4[]; };

layout(push_constant) uniform Push {
    uint k;          // row length
    uint m;          // tokens
    uint tok_off;    // token ids at info[tok_off + j]
    uint out_off;    // multiple of 4
    uint out_stride; // multiple of 4
    uint n;          // rows of W
} p;

#include "dequant.glsl"

void main()
{
    const uint sb = gl_GlobalInvocationID.x;
    const uint j = gl_GlobalInvocationID.y;
    const uint nsb = p.k / 32u;
    if (sb >= nsb || j >= p.m)
        return;
    const uint row = uint(info[p.tok_off + j]);
    mat4 qa;
    mat4 qb;
    float s0;
    float s1;
    float mn;
    sb_load(row * nsb + sb, p.n * nsb, qa, qb, s0, s1, mn);
    const uint ob = (p.out_off + j * p.out_stride + sb * 32u) >> 2;
    for (uint g = 0u; g < 4u; g++) {
        o4[ob + g] = s0 * qa[g] - mn;
        o4[ob + 4u + g] = s1 * qb[g] - mn;
    }
}
