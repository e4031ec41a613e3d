// add.comp - y[t][i] += x[t][i] (residual connections that are not fused into a
// mat-mul's accumulate flag).
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint n;
    uint m;
    uint x_off;
    uint x_stride;
    uint y_off;
    uint y_stride;
} p;

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.n || t >= p.m)
        return;
    y[p.y_off + t * p.y_stride + i] += x[p.x_off + t * p.x_stride + i];
}
