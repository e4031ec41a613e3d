// rope.comp - rotary position embedding, in place, on n_heads heads of each row
// (the q heads and then the k heads of the fused qkv rows). Pair i of a head is
// (2i, 2i+1) in normal mode (llama) or (i, i + n_rot/2) in NeoX mode (qwen2); the
// angle's cos and sin come from a host-computed table [n_ctx][n_rot/2].
#version 450
#include "common.glsl"

layout(binding = 0) buffer D { float d[]; };
layout(binding = 1) readonly buffer Tab { vec2 tab[]; };
layout(binding = 2) readonly buffer Info { int info[]; };

layout(push_constant) uniform Push {
    uint n_heads;
    uint head_dim;
    uint n_rot;
    uint neox;
    uint off;
    uint stride;
    uint pos_off;
    uint m;
    uint pad;
} p;

void main()
{
    const uint half_rot = p.n_rot / 2u;
    const uint idx = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (idx >= p.n_heads * half_rot || t >= p.m)
        return;
    const uint h = idx / half_rot;
    const uint i = idx % half_rot;
    const uint pos = uint(info[p.pos_off + t]);
    const vec2 cs = tab[pos * half_rot + i];
    const uint base = p.off + t * p.stride + h * p.head_dim;
    const uint i0 = p.neox != 0u ? base + i : base + 2u * i;
    const uint i1 = p.neox != 0u ? base + i + half_rot : base + 2u * i + 1u;
    const float a = d[i0];
    const float b = d[i1];
    d[i0] = a * cs.x - b * cs.y;
    d[i1] = a * cs.y + b * cs.x;
}
