/* vkb_shared.h - constants shared by the Vulkan backend's C code and its GLSL shaders.
 *
 * Included from C (model/vulkan/ sources) and from GLSL (shaders/ through
 * GL_GOOGLE_include_directive), so it holds only #defines: no types, no C syntax.
 *
 * Weight layout on the device ("repacked" at upload, see vkb_forward.c): every type
 * is a sequence of 32-value sub-blocks, each a whole number of 32-bit words, so the
 * shaders read nothing but aligned uint words on every device (no 8/16-bit storage
 * extensions needed):
 *   F32   32 words of float bits
 *   F16   16 words, two halves each (element 2i in the low half)
 *   Q8_0  word 0 scale (f32), 8 words of int8 (element 4w+b in byte b of word w)
 *   Q4_0  word 0 scale (f32), 4 words of nibbles: byte b holds element b in its
 *         low nibble and element b+16 in its high nibble; value = q - 8
 *   Q4_K  word 0 scale d*sc (f32), word 1 min dmin*m (f32), 4 nibble words as Q4_0;
 *         value = scale*q - min
 *   Q6_K  word 0 scale of elements 0-15, word 1 scale of 16-31 (f32, d*sc),
 *         8 words of int8 (q - 32)
 */
#ifndef VKB_SHARED_H
#define VKB_SHARED_H

/* Words per 32-value sub-block for each weight type. */
#define VKB_SB_WORDS_F32 32
#define VKB_SB_WORDS_F16 16
#define VKB_SB_WORDS_Q8_0 9
#define VKB_SB_WORDS_Q4_0 5
#define VKB_SB_WORDS_Q4_K 6
#define VKB_SB_WORDS_Q6_K 10

/* Mat-mul: one invocation computes one output row for VKB_MM_TN tokens (mat-mat
 * variants) or one token (mat-vec variants); VKB_MM_ROWS rows per workgroup. */
#define VKB_MM_TN 8
#define VKB_MM_ROWS 32

/* Largest head dimension the attention kernel holds in registers. */
#define VKB_HEAD_DIM_MAX 256

/* Elementwise kernels: invocations per workgroup. */
#define VKB_EW_LOCAL 64

/* mat-mul flags (push constant `flags`) */
#define VKB_MM_BIAS 1u       /* add bias[row] */
#define VKB_MM_ACCUMULATE 2u /* y += W x instead of y = W x */

/* rmsnorm flags */
#define VKB_NORM_GATHER 1u   /* input row j is row idx[j] of the input buffer */

#endif
