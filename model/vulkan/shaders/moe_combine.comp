// moe_combine.comp - adds a mixture-of-experts FFN's output into the residual:
// x[t][i] += sum over j < k, in rank order, of w[t*k + j] * eo[t*k + j][i], plus, with
// VKB_COMBINE_SHARED, sigmoid(sg[t]) * sh[t][i] (qwen2moe's shared expert).
#version 450
#include "common.glsl"

layout(binding = 0) buffer X { float x[]; };
layout(binding = 1) readonly buffer EO { float eo[]; };
layout(binding = 2) readonly buffer W { float w[]; };
layout(binding = 3) readonly buffer SH { float sh[]; };
layout(binding = 4) readonly buffer SG { float sg[]; };

layout(push_constant) uniform Push {
    uint n;
    uint m;
    uint k;
    uint flags;
} p;

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.n || t >= p.m)
        return;
    float s = 0.0;
    for (uint j = 0u; j < p.k; j++) {
        const uint pr = t * p.k + j;
        const float v = eo[pr * p.n + i] * w[pr];
        s = j == 0u ? v : s + v;
    }
    if ((p.flags & VKB_COMBINE_SHARED) != 0u)
        s += sh[t * p.n + i] * (1.0 / (1.0 + exp(-sg[t])));
    x[t * p.n + i] += s;
}
