// moe_route.comp - the router of a mixture-of-experts layer, one invocation per token:
// softmax of the token's n_expert logits (max subtracted), the k experts of highest
// probability (ties to the lower id, as the reference's argsort), and their weights,
// renormalised to sum 1 with VKB_ROUTE_NORM. Writes ids[t*k + j] and w[t*k + j], best
// first.
#version 450
#include "common.glsl"

layout(binding = 0) readonly buffer L { float logits[]; };
layout(binding = 1) writeonly buffer Ids { int ids[]; };
layout(binding = 2) writeonly buffer W { float w[]; };

layout(push_constant) uniform Push {
    uint n_expert;
    uint k;
    uint m;
    uint flags;
} p;

void main()
{
    const uint t = gl_GlobalInvocationID.x;
    if (t >= p.m)
        return;
    const uint lb = t * p.n_expert;
    float mx = logits[lb];
    for (uint e = 1u; e < p.n_expert; e++)
        mx = max(mx, logits[lb + e]);
    float sum = 0.0;
    for (uint e = 0u; e < p.n_expert; e++)
        sum += exp(logits[lb + e] - mx);
    // the k best, one pass each: the largest logit below the previous pick (or equal to
    // it with a higher id)
    float prev = 3.0e38;
    int prev_id = -1;
    float ws[VKB_MOE_MAX_USED];
    float wsum = 0.0;
    for (uint j = 0u; j < p.k; j++) {
        int best = -1;
        float bv = -3.0e38;
        for (uint e = 0u; e < p.n_expert; e++) {
            const float v = logits[lb + e];
            const bool after = v < prev || (v == prev && int(e) > prev_id);
            if (after && (best < 0 || v > bv)) {
                best = int(e);
                bv = v;
            }
        }
        ids[t * p.k + j] = best;
        ws[j] = exp(bv - mx) / sum;
        wsum += ws[j];
        prev = bv;
        prev_id = best;
    }
    for (uint j = 0u; j < p.k; j++)
        w[t * p.k + j] = (p.flags & VKB_ROUTE_NORM) != 0u ? ws[j] / wsum : ws[j];
}
