// kv_write.comp - stores the k and v parts of each qkv row, rounded to F16, into the
// caches at [slot][pos] (rows of kv_dim halves, two per word).
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer Src { float s[]; };
layout(binding = 1) writeonly buffer Kc { uint kc[]; };
layout(binding = 2) writeonly buffer Vc { uint vc[]; };
layout(binding = 3) readonly buffer Info { int info[]; };

layout(push_constant) uniform Push {
    uint kv_dim;
    uint n_ctx;
    uint k_off;      // column of k within a row
    uint v_off;
    uint off;        // row t at off + t*stride
    uint stride;
    uint pos_off;
    uint slot_off;
    uint m;
} p;

void main()
{
    const uint i = gl_GlobalInvocationID.x;
    const uint t = gl_GlobalInvocationID.y;
    if (i >= p.kv_dim / 2u || t >= p.m)
        return;
    const uint pos = uint(info[p.pos_off + t]);
    const uint slot = uint(info[p.slot_off + t]);
    const uint sb = p.off + t * p.stride;
    const uint dst = (slot * p.n_ctx + pos) * (p.kv_dim / 2u) + i;
    kc[dst] = packHalf2x16(vec2(s[sb + p.k_off + 2u * i], s[sb + p.k_off + 2u * i + 1u]));
    vc[dst] = packHalf2x16(vec2(s[sb + p.v_off + 2u * i], s[sb + p.v_off + 2u * i + 1u]));
}
