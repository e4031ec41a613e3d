// rmsnorm.comp - out[j] = in[r] / sqrt(mean(in[r]^2) + eps) * weight, r = j, or
// r = info[idx_off + j] with VKB_NORM_GATHER (the final norm of only the rows whose
// logits are wanted). One workgroup (one subgroup) per row.
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer In { float xi[]; };
layout(binding = 1) readonly buffer Wt { float wt[]; };
layout(binding = 2) writeonly buffer Out { float xo[]; };
layout(binding = 3) readonly buffer Info { int info[]; };

layout(push_constant) uniform Push {
    uint n;
    uint m;
    uint in_off;
    uint in_stride;
    uint out_off;
    uint out_stride;
    uint flags;
    uint idx_off;
    float eps;
} p;

void main()
{
    const uint j = gl_WorkGroupID.x;
    if (j >= p.m)
        return;
    const uint r = (p.flags & VKB_NORM_GATHER) != 0u ? uint(info[p.idx_off + j]) : j;
    const uint ib = p.in_off + r * p.in_stride;
    const uint ob = p.out_off + j * p.out_stride;
    const uint lane = gl_LocalInvocationID.x;
    const uint nl = gl_WorkGroupSize.x;
    float s = 0.0;
    for (uint i = lane; i < p.n; i += nl)
        s += xi[ib + i] * xi[ib + i];
    s = subgroupAdd(s);
    const float scale = 1.0 / sqrt(s / float(p.n) + p.eps);
    for (uint i = lane; i < p.n; i += nl)
        xo[ob + i] = (xi[ib + i] * scale) * wt[i];
}
