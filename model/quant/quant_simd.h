/* quant_simd.h - private to quant.c / quant_x86.c: the SIMD dot kernels. */
#ifndef CHATD_QUANT_SIMD_H
#define CHATD_QUANT_SIMD_H

#include "quant.h"

/* 0 = none, 1 = AVX2 + FMA + F16C, 2 = additionally AVX-512 VL/BW + VNNI. */
int quant_simd_detect(void);
/* The kernel for a weight type at a SIMD level (1 or 2), or NULL. */
quant_dot_fn quant_simd_dot(uint32_t weight_type, int level);

/* F32 -> F16 row with F16C (level >= 1 only). */
void quant_simd_fp16_row(const float *x, uint16_t *y, int64_t n);
/* The SIMD axpy for F16 x (level >= 1 only). */
quant_axpy_fn quant_simd_axpy_f16(void);
/* Tiled kernels (AVX-512 VL + VNNI level only), or NULL. */
quant_gemm_fn quant_simd_gemm(uint32_t weight_type);
/* Activations for the X4 kernels (QUANT_TYPE_Q8_0X4A or _Q8_0X4B, n a multiple of 128),
 * each block quantised exactly as quant_act_q8_0 does (VNNI level only). */
void quant_simd_act_x4(uint32_t act_type, const float *x, void *dst, int64_t n);

#endif
