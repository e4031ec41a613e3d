// dequant.glsl - the device weight layouts of vkb_shared.h: words per 32-value
// sub-block (SBW) and dq_group(wb, g), the four weights 4g..4g+3 of the sub-block at
// word wb as floats. The includer declares the weight buffer as `uint w[]`.
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
#define SBW VKB_SB_WORDS_F32
vec4 dq_group(uint wb, uint g)
{
    uint o = wb + 4u * g;
    return uintBitsToFloat(uvec4(w[o], w[o + 1u], w[o + 2u], w[o + 3u]));
}
#elif defined(T_F16)
#define SBW VKB_SB_WORDS_F16
vec4 dq_group(uint wb, uint g)
{
    uint o = wb + 2u * g;
    return vec4(unpackHalf2x16(w[o]), unpackHalf2x16(w[o + 1u]));
}
#elif defined(T_Q8_0)
#define SBW VKB_SB_WORDS_Q8_0
vec4 dq_group(uint wb, uint g)
{
    return uintBitsToFloat(w[wb]) * i8x4(w[wb + 1u + g]);
}
#elif defined(T_Q4_0)
#define SBW VKB_SB_WORDS_Q4_0
vec4 dq_group(uint wb, uint g)
{
    return (u4x4(w[wb + 1u + (g & 3u)], g < 4u ? 0u : 4u) - 8.0) * uintBitsToFloat(w[wb]);
}
#elif defined(T_Q4_K)
#define SBW VKB_SB_WORDS_Q4_K
vec4 dq_group(uint wb, uint g)
{
    return uintBitsToFloat(w[wb]) * u4x4(w[wb + 2u + (g & 3u)], g < 4u ? 0u : 4u) -
           uintBitsToFloat(w[wb + 1u]);
}
#elif defined(T_Q6_K)
#define SBW VKB_SB_WORDS_Q6_K
vec4 dq_group(uint wb, uint g)
{
    return uintBitsToFloat(w[wb + (g < 4u ? 0u : 1u)]) * i8x4(w[wb + 2u + g]);
}
#else
#error "no weight type defined"
#endif
