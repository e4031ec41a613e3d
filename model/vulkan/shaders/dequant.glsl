// dequant.glsl - reads the device weight layout of vkb_shared.h. A matrix of n rows of
// nsb sub-blocks (32 values each) is a quant region of n*nsb*QW4 uvec4 followed by a
// scale region of n*nsb*NS floats. sb_load(blk, n_blk, ...) returns sub-block blk
// (= row*nsb + sb) of a matrix of n_blk sub-blocks as raw values in two mat4 (columns
// = groups of 4 values: qa holds values 0-15, qb 16-31) and its scales: the weights
// are s0*qa - mn and s1*qb - mn. Loads are 16-byte vectors: on lavapipe every
// storage-buffer load costs a loop over the lanes, so fewer, wider loads win.
// The includer declares `uvec4 wq[]` and `float ws[]` (both binding 0).
// Exactly one of T_F32, T_F16, T_Q8_0, T_Q4_0, T_Q4_K, T_Q6_K is defined.

// int8 bytes of v as four floats (byte 0 first)
vec4 i8x4(uint v)
{
    return vec4(ivec4(uvec4(v) << uvec4(24u, 16u, 8u, 0u)) >> 24);
}

// nibbles of v at shift sh (0: low nibbles, 4: high nibbles) of the four bytes
vec4 u4x4(uint v, uint sh)
{
    return vec4((uvec4(v) >> (uvec4(0u, 8u, 16u, 24u) + sh)) & 15u);
}

#if defined(T_F32)
#define QW4 8u
#define NS 0u
#elif defined(T_F16)
#define QW4 4u
#define NS 0u
#elif defined(T_Q8_0)
#define QW4 2u
#define NS 1u
#elif defined(T_Q4_0)
#define QW4 1u
#define NS 1u
#elif defined(T_Q4_K)
#define QW4 1u
#define NS 2u
#elif defined(T_Q6_K)
#define QW4 2u
#define NS 2u
#else
#error "no weight type defined"
#endif

mat4 f32x16(uvec4 a, uvec4 b, uvec4 c, uvec4 d)
{
    return mat4(uintBitsToFloat(a), uintBitsToFloat(b), uintBitsToFloat(c), uintBitsToFloat(d));
}

mat4 f16x16(uvec4 a, uvec4 b)
{
    return mat4(vec4(unpackHalf2x16(a.x), unpackHalf2x16(a.y)),
                vec4(unpackHalf2x16(a.z), unpackHalf2x16(a.w)),
                vec4(unpackHalf2x16(b.x), unpackHalf2x16(b.y)),
                vec4(unpackHalf2x16(b.z), unpackHalf2x16(b.w)));
}

mat4 i8x16m(uvec4 a)
{
    return mat4(i8x4(a.x), i8x4(a.y), i8x4(a.z), i8x4(a.w));
}

void sb_load(uint blk, uint n_blk, out mat4 qa, out mat4 qb, out float s0, out float s1,
             out float mn)
{
    const uint qo = blk * QW4;
    const uint so = n_blk * QW4 * 4u + blk * NS;
    mn = 0.0;
    s0 = 1.0;
    s1 = 1.0;
#if defined(T_F32)
    qa = f32x16(wq[qo], wq[qo + 1u], wq[qo + 2u], wq[qo + 3u]);
    qb = f32x16(wq[qo + 4u], wq[qo + 5u], wq[qo + 6u], wq[qo + 7u]);
#elif defined(T_F16)
    qa = f16x16(wq[qo], wq[qo + 1u]);
    qb = f16x16(wq[qo + 2u], wq[qo + 3u]);
#elif defined(T_Q8_0)
    qa = i8x16m(wq[qo]);
    qb = i8x16m(wq[qo + 1u]);
    s0 = ws[so];
    s1 = s0;
#elif defined(T_Q4_0)
    const uvec4 v = wq[qo];
    qa = mat4(u4x4(v.x, 0u) - 8.0, u4x4(v.y, 0u) - 8.0, u4x4(v.z, 0u) - 8.0, u4x4(v.w, 0u) - 8.0);
    qb = mat4(u4x4(v.x, 4u) - 8.0, u4x4(v.y, 4u) - 8.0, u4x4(v.z, 4u) - 8.0, u4x4(v.w, 4u) - 8.0);
    s0 = ws[so];
    s1 = s0;
#elif defined(T_Q4_K)
    const uvec4 v = wq[qo];
    qa = mat4(u4x4(v.x, 0u), u4x4(v.y, 0u), u4x4(v.z, 0u), u4x4(v.w, 0u));
    qb = mat4(u4x4(v.x, 4u), u4x4(v.y, 4u), u4x4(v.z, 4u), u4x4(v.w, 4u));
    s0 = ws[so];
    s1 = s0;
    mn = ws[so + 1u];
#elif defined(T_Q6_K)
    qa = i8x16m(wq[qo]);
    qb = i8x16m(wq[qo + 1u]);
    s0 = ws[so];
    s1 = ws[so + 1u];
#endif
}
