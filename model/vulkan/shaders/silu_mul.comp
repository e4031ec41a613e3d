// silu_mul.comp - out[t][i] = silu(g[t][i]) * u[t][i], silu(x) = x / (1 + e^-x).
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer G { float g[]; };
layout(binding = 1) readonly buffer U { float u[]; };
layout(binding = 2) writeonly buffer O { float o[]; };

layout(push_constant) uniform Push {
    uint n;
    uint m;
    uint g_off;
    uint g_stride;
    uint u_off;
    uint u_stride;
    uint o_off;
    uint o_stride;
} p;

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.n || t >= p.m)
        return;
    const float a = g[p.g_off + t * p.g_stride + i];
    o[p.o_off + t * p.o_stride + i] = a / (1.0 + exp(-a)) * u[p.u_off + t * p.u_stride + i];
}
