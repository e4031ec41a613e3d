// variants: silu_mul=-DACT_SILU gelu_mul=-DACT_GELU
// glu.comp - the gated FFN activation: out[t][i] = act(g[t][i]) * u[t][i], with act
// SiLU, x / (1 + e^-x) (SwiGLU), or GELU, tanh approximation (GeGLU) as the reference's
// CPU backend evaluates it: input rounded to F16, result rounded to F16, 0 at or below
// -10 and x at or above 10.
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

float f16_round(float x)
{
    return unpackHalf2x16(packHalf2x16(vec2(x, 0.0))).x;
}

float act(float x)
{
#ifdef ACT_GELU
    if (x <= -10.0)
        return 0.0;
    if (x >= 10.0)
        return x;
    const float h = f16_round(x);
    return f16_round(0.5 * h * (1.0 + tanh(0.7978845608028654 * h * (1.0 + 0.044715 * h * h))));
#else
    return x / (1.0 + exp(-x));
#endif
}

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.n || t >= p.m)
        return;
    o[p.o_off + t * p.o_stride + i] = act(g[p.g_off + t * p.g_stride + i]) *
                                      u[p.u_off + t * p.u_stride + i];
}
