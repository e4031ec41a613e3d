// variants: quant_q8_0= quant_q8_k=-DQ8K
// quant_q8.comp - quantizes activation rows to int8 blocks of 32 for the mat-muls with
// quantized weights, as the reference does. Q8_0 (for Q8_0/Q4_0 weights): per 32
// values d = max|x| / 127, q = round(x / d) (halfway away from zero), d stored rounded
// to F16. Q8_K (for K-quant weights): per 256 values, with v the value of largest
// magnitude, s = -127 / v, q = min(127, roundEven(s * x)), d = 1 / s in F32, repeated
// for the 8 sub-blocks so that the mat-mul reads both alike. The mat-mul then reads 8 words
// and one scale per 32 activations instead of 32 floats; on lavapipe, where every
// storage-buffer word costs a trip through a per-lane loop, that is most of its loads.
// One invocation per (32-value block x, token y) for Q8_0, per (256-value block x,
// token y) for Q8_K. Output: token t's quants at words t*k/4.., its scales at t*k/32..
#version 450
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(binding = 0) readonly buffer X { vec4 x4[]; };
layout(binding = 1) writeonly buffer XQ { uvec4 xq[]; };
layout(binding = 2) writeonly buffer XS { float xs[]; };

layout(push_constant) uniform Push {
    uint k;          // row length (multiple of 32)
    uint m;          // tokens
    uint x_off;      // multiples of 4
    uint x_stride;
} p;

float round_away(float v)
{
    return sign(v) * floor(abs(v) + 0.5);
}

uint pack4(vec4 v, float id)
{
    ivec4 q = ivec4(round_away(v.x * id), round_away(v.y * id), round_away(v.z * id),
                    round_away(v.w * id));
    uvec4 b = uvec4(q) & 255u;
    return b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
}

#ifndef Q8K
void main()
{
    const uint sb = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    const uint nsb = p.k / 32u;
    if (sb >= nsb || t >= p.m)
        return;
    const uint xo = (p.x_off + t * p.x_stride) / 4u + sb * 8u;
    vec4 v[8];
    vec4 amax = vec4(0.0);
    [[unroll]] for (uint g = 0u; g < 8u; g++) {
        v[g] = x4[xo + g];
        amax = max(amax, abs(v[g]));
    }
    const float d = max(max(amax.x, amax.y), max(amax.z, amax.w)) / 127.0;
    const float id = d != 0.0 ? 1.0 / d : 0.0;
    uvec4 a;
    uvec4 b;
    a.x = pack4(v[0], id);
    a.y = pack4(v[1], id);
    a.z = pack4(v[2], id);
    a.w = pack4(v[3], id);
    b.x = pack4(v[4], id);
    b.y = pack4(v[5], id);
    b.z = pack4(v[6], id);
    b.w = pack4(v[7], id);
    const uint bi = t * nsb + sb;
    xq[2u * bi] = a;
    xq[2u * bi + 1u] = b;
    xs[bi] = unpackHalf2x16(packHalf2x16(vec2(d, 0.0))).x;
}
#else
uint pack4k(vec4 v, float s)
{
    ivec4 q = min(ivec4(roundEven(v * s)), ivec4(127));
    uvec4 b = uvec4(q) & 255u;
    return b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
}

void main()
{
    const uint kb = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    const uint nsb = p.k / 32u;
    if (kb >= p.k / 256u || t >= p.m)
        return;
    const uint xo = (p.x_off + t * p.x_stride) / 4u + kb * 64u;
    float amax = 0.0;
    float vmax = 0.0;
    for (uint g = 0u; g < 64u; g++) {
        const vec4 v = x4[xo + g];
        [[unroll]] for (uint c = 0u; c < 4u; c++) {
            if (abs(v[c]) > amax) {
                amax = abs(v[c]);
                vmax = v[c];
            }
        }
    }
    const float s = amax != 0.0 ? -127.0 / vmax : 0.0;
    const float d = amax != 0.0 ? 1.0 / s : 0.0;
    for (uint j = 0u; j < 8u; j++) {
        const uint o = xo + 8u * j;
        const uint bi = t * nsb + kb * 8u + j;
        xq[2u * bi] = uvec4(pack4k(x4[o], s), pack4k(x4[o + 1u], s), pack4k(x4[o + 2u], s),
                            pack4k(x4[o + 3u], s));
        xq[2u * bi + 1u] = uvec4(pack4k(x4[o + 4u], s), pack4k(x4[o + 5u], s),
                                 pack4k(x4[o + 6u], s), pack4k(x4[o + 7u], s));
        xs[bi] = d;
    }
}
#endif
