// variants: get_rows_f32=-DT_F32 get_rows_f16=-DT_F16 get_rows_q8_0=-DT_Q8_0 get_rows_q4_0=-DT_Q4_0 get_rows_q4_k=-DT_Q4_K get_rows_q6_k=-DT_Q6_K
// get_rows.comp - embedding lookup: out[j] = dequantized row tokens[j] of W.
// One invocation per 32-value sub-block (x) of token j (y).
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer Wt { uint w[]; };
layout(binding = 1) readonly buffer Info { int info[]; };
layout(binding = 2) writeonly buffer Out { float o[]; };

layout(push_constant) uniform Push {
    uint k;          // row length
    uint m;          // tokens
    uint tok_off;    // token ids at info[tok_off + j]
    uint out_off;
    uint out_stride;
} p;

#include "dequant.glsl"

void main()
{
    uint sb = gl_GlobalInvocationID.x;
    uint j = gl_GlobalInvocationID.y;
    uint nsb = p.k / 32u;
    if (sb >= nsb || j >= p.m)
        return;
    uint row = uint(info[p.tok_off + j]);
    uint wb = (row * nsb + sb) * SBW;
    uint ob = p.out_off + j * p.out_stride + sb * 32u;
    for (uint g = 0u; g < 8u; g++) {
        vec4 v = dq_group(wb, g);
        o[ob + 4u * g] = v.x;
        o[ob + 4u * g + 1u] = v.y;
        o[ob + 4u * g + 2u] = v.z;
        o[ob + 4u * g + 3u] = v.w;
    }
}
