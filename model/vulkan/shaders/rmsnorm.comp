// rmsnorm.comp - out[j] = in[r] / sqrt(mean(in[r]^2) + eps) * weight, r = j, or
// r = info[idx_off + j] with VKB_NORM_GATHER (the final norm of only the rows whose
// logits are wanted); out[j] += ... with VKB_NORM_ACCUMULATE (gemma's post-norms into
// the residual). With per_row > 1, row j is piece j % per_row (n values each) of
// buffer row j / per_row: the per-head q/k norms, in place. One workgroup (one
// subgroup) per row.
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer In { float xi[]; };
layout(binding = 1) readonly buffer Wt { float wt[]; };
layout(binding = 2) buffer Out { float xo[]; };
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
    uint per_row;
} p;

void main()
{
    const uint j = gl_WorkGroupID.x;
    if (j >= p.m)
        return;
    const uint r = (p.flags & VKB_NORM_GATHER) != 0u ? uint(info[p.idx_off + j]) : j;
    const uint piece = (r % p.per_row) * p.n;
    const uint ib = p.in_off + (r / p.per_row) * p.in_stride + piece;
    const uint ob = p.out_off + (j / p.per_row) * p.out_stride + (j % p.per_row) * p.n;
    const uint lane = gl_LocalInvocationID.x;
    const uint nl = gl_WorkGroupSize.x;
    float s = 0.0;
    for (uint i = lane; i < p.n; i += nl)
        s += xi[ib + i] * xi[ib + i];
    s = subgroupAdd(s);
    const float scale = 1.0 / sqrt(s / float(p.n) + p.eps);
    if ((p.flags & VKB_NORM_ACCUMULATE) != 0u) {
        for (uint i = lane; i < p.n; i += nl)
            xo[ob + i] += (xi[ib + i] * scale) * wt[i];
    } else {
        for (uint i = lane; i < p.n; i += nl)
            xo[ob + i] = (xi[ib + i] * scale) * wt[i];
    }
}
