// scale.comp - in place over m rows of n values: y = y * s, or with VKB_SCALE_CAP
// y = tanh(y * s) * c (soft-capping with s = 1/c, as the reference computes it).
// Gemma's embedding scale and gemma2's final logit soft-cap.
#version 450
#include "common.glsl"

layout(binding = 0) buffer Y { float y[]; };

layout(push_constant) uniform Push {
    uint n;
    uint m;
    uint off;
    uint stride;
    uint flags;
    float s;
    float c;
} p;

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.n || t >= p.m)
        return;
    const uint at = p.off + t * p.stride + i;
    y[at] = (p.flags & VKB_SCALE_CAP) != 0u ? tanh(y[at] * p.s) * p.c : y[at] * p.s;
}
