/* vkb_shared.h - constants shared by the Vulkan backend's C code and its GLSL shaders.
 *
 * Included from C (model/vulkan/ sources) and from GLSL (shaders/ through
 * GL_GOOGLE_include_directive), so it holds only #defines: no types, no C syntax.
 *
 * Weight layout on the device ("repacked" at upload by vkb_ops.c): a matrix of n rows
 * is n*k/32 sub-blocks of 32 values. All their quants come first, each sub-block's a
 * whole number of 16-byte vectors, then all their scales as floats (so shaders read
 * only aligned 16-byte and 4-byte words, on every device, with no 8/16-bit storage
 * extension):
 *   type  quant words  scales  value
 *   F32   32 (floats)  0       q
 *   F16   16 (halves)  0       q
 *   Q8_0   8 (int8)    1: d    d*q
 *   Q4_0   4 (nibbles) 1: d    d*(q-8)
 *   Q4_K   4 (nibbles) 2: s,m  s*q - m        (s = d*sc, m = dmin*m of the super-block)
 *   Q6_K   8 (int8)    2: s0,s1 s0*q (values 0-15), s1*q (16-31)   (q already minus 32)
 * Nibble words: byte b of the 16 holds value b in its low and value b+16 in its high
 * nibble (Q4_0's own order). int8 words: value 4w+b in byte b of word w.
 */
#ifndef VKB_SHARED_H
#define VKB_SHARED_H

/* Mat-mul: a workgroup (one subgroup) computes VKB_MM_NR rows for VKB_MM_TN tokens
 * (mat-mat variants) or VKB_MV_NR rows for one token (mat-vec variants). */
#define VKB_MM_TN 8
#define VKB_MM_NR 8
#define VKB_MV_NR 4

/* Largest head dimension the attention kernel holds in registers. */
#define VKB_HEAD_DIM_MAX 256

/* Elementwise kernels: invocations per workgroup. */
#define VKB_EW_LOCAL 64

/* mat-mul flags (push constant `flags`) */
#define VKB_MM_BIAS 1u       /* add bias[row] */
#define VKB_MM_ACCUMULATE 2u /* y += W x instead of y = W x */

/* rmsnorm flags */
#define VKB_NORM_GATHER 1u     /* input row j is row idx[j] of the input buffer */
#define VKB_NORM_ACCUMULATE 2u /* out += norm instead of out = norm */

/* scale flags */
#define VKB_SCALE_CAP 1u /* y = tanh(y * s) * c instead of y * s */

/* mixture of experts: most experts per token, router and combine flags */
#define VKB_MOE_MAX_USED 32
#define VKB_ROUTE_NORM 1u     /* renormalise the chosen experts' weights */
#define VKB_COMBINE_SHARED 1u /* add the gated shared expert */

#endif
