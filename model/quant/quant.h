/* quant.h - ggml block formats: conversion, (de)quantisation and dot products.
 *
 * Weights stay in their file format; a mat-mul quantises the activation row once into
 * the format that pairs with the weight type (quant_act_type) and then takes integer
 * dot products row by row, reproducing where ggml's CPU backend rounds:
 *   F32  weights x F32 activations
 *   F16  weights x F16 activations
 *   Q8_0, Q4_0 weights x Q8_0 activations (scale amax/127 as F16, round half to even)
 *   Q4_K, Q6_K weights x Q8_K activations (scale max/-127 as F32, round half to even)
 * Every kernel exists as plain C (quant_dot_plain) and, where the CPU supports it, as an
 * AVX2 / AVX-512 VNNI version chosen once at run time (quant_dot). Both compute the
 * same integer sums per block; they may differ only in float summation order.
 * All functions are thread-safe (quant_init only fills read-only tables, once).
 */
#ifndef CHATD_QUANT_H
#define CHATD_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QUANT_QK8_0 32
#define QUANT_QK4_0 32
#define QUANT_QK_K 256

struct quant_q8_0 {
    uint16_t d;             /* F16 scale */
    int8_t qs[QUANT_QK8_0]; /* w = d * q */
};

struct quant_q4_0 {
    uint16_t d;                  /* F16 scale */
    uint8_t qs[QUANT_QK4_0 / 2]; /* low nibbles: weights 0..15, high: 16..31; w = d*(q-8) */
};

struct quant_q4_k {
    uint16_t d;                 /* F16 super-scale of the sub-block scales */
    uint16_t dmin;              /* F16 super-scale of the sub-block mins */
    uint8_t scales[12];         /* 8 x (6-bit scale, 6-bit min), packed */
    uint8_t qs[QUANT_QK_K / 2]; /* 4-bit quants, 64 weights per 32 bytes */
};

struct quant_q6_k {
    uint8_t ql[QUANT_QK_K / 2];     /* low 4 bits */
    uint8_t qh[QUANT_QK_K / 4];     /* high 2 bits */
    int8_t scales[QUANT_QK_K / 16]; /* 16 sub-blocks of 16 */
    uint16_t d;                     /* F16 super-scale */
};

struct quant_q8_k {
    float d;
    int8_t qs[QUANT_QK_K];
    int16_t bsums[QUANT_QK_K / 16]; /* sums of 16 quants */
};

_Static_assert(sizeof(struct quant_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(struct quant_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(struct quant_q4_k) == 144, "q4_K layout");
_Static_assert(sizeof(struct quant_q6_k) == 210, "q6_K layout");
_Static_assert(sizeof(struct quant_q8_k) == 292, "q8_K layout");

/* CPU-internal layouts (not ggml types; never in files). Q4_0X4 is Q4_0 regrouped per
 * 128 values: the 4 F16 scales first, then the 4 blocks' 16 quant bytes, so one 64-byte
 * load feeds an AVX-512 VNNI dot of 4 blocks. Q8_0X4A is the activation layout paired
 * with it: per 128 values the low 16 and high 16 quants of each block, the per-lane
 * offset correction -8 * sum(a) and the scales, each spread over 16 int32/float lanes. */
#define QUANT_TYPE_Q4_0X4 100
#define QUANT_TYPE_Q8_0X4A 101
#define QUANT_TYPE_Q8_0X4 102  /* Q8_0 regrouped the same way: 4 scales, 4 x 32 quants */
#define QUANT_TYPE_Q8_0X4B 103 /* its activations: quants, -128 * sum(a) per lane, scales */

struct quant_q4_0x4 {
    uint16_t d[4];
    uint8_t qs[64];
};

struct quant_q8_0x4a {
    int8_t lo[64];
    int8_t hi[64];
    int32_t corr[16];
    float d[16];
};

struct quant_q8_0x4 {
    uint16_t d[4];
    int8_t qs[128];
};

struct quant_q8_0x4b {
    int8_t qs[128];
    int32_t corr[32];
    float d[32];
};

_Static_assert(sizeof(struct quant_q8_0x4) == 136, "q8_0x4 layout");
_Static_assert(sizeof(struct quant_q8_0x4b) == 384, "q8_0x4b layout");
_Static_assert(sizeof(struct quant_q4_0x4) == 72, "q4_0x4 layout");
_Static_assert(sizeof(struct quant_q8_0x4a) == 256, "q8_0x4a layout");

/* Converts a row of n values (n a multiple of 128) from `type` to its repacked layout;
 * returns the repacked type (QUANT_TYPE_Q4_0X4, QUANT_TYPE_Q8_0X4) or 0 when there is none for this
 * type, n, or CPU (then dst is untouched). Check with quant_repacked_type first. */
uint32_t quant_repacked_type(uint32_t type, int64_t n);
void quant_repack_row(uint32_t type, const void *src, void *dst, int64_t n);

/* Dot product of one weight row (n values, type of the kernel) with one activation row
 * in the matching activation format. n is a multiple of the block size. */
typedef float (*quant_dot_fn)(int64_t n, const void *w, const void *a);

float quant_fp16_to_fp32(uint16_t h);
uint16_t quant_fp32_to_fp16(float f); /* round to nearest even, like F16C */
/* y[i] = quant_fp32_to_fp16(x[i]) for a row, with F16C where the CPU has it (bitwise the
 * same for every value but NaN payloads). */
void quant_fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);

/* True for F32, F16, Q8_0, Q4_0, Q4_K, Q6_K (the weight types the backends run). */
bool quant_is_supported(uint32_t ggml_type);
/* Values per block (1 for F32/F16) and bytes per block, 0 for unknown types. */
uint32_t quant_block_elems(uint32_t ggml_type);
uint32_t quant_block_bytes(uint32_t ggml_type);
/* Bytes of a row of n values; 0 when n is not a multiple of the block size. */
size_t quant_row_bytes(uint32_t ggml_type, int64_t n);

/* The activation format that pairs with a weight type (F32, F16, Q8_0 or Q8_K). */
uint32_t quant_act_type(uint32_t weight_type);
/* Converts n floats into activation format `act_type` as ggml's CPU backend does. */
void quant_act_row(uint32_t act_type, const float *x, void *dst, int64_t n);

/* Dequantises a row of n values of a supported type (or Q8_K). Returns 0, or -1 for an
 * unsupported type or a bad n. */
int quant_dequant_row(uint32_t ggml_type, const void *src, float *dst, int64_t n);

/* Reference quantisers for writing model files (ggml's reference rounding: roundf for
 * Q8_0, truncation of x/d + 8.5 for Q4_0). n a multiple of 32. */
void quant_row_q8_0(const float *x, struct quant_q8_0 *dst, int64_t n);
void quant_row_q4_0(const float *x, struct quant_q4_0 *dst, int64_t n);
/* Activation quantisers (round half to even), also used by quant_act_row. */
void quant_act_q8_0(const float *x, struct quant_q8_0 *dst, int64_t n);
void quant_act_q8_k(const float *x, struct quant_q8_k *dst, int64_t n);

/* The fastest dot kernel this CPU has for a weight type, or NULL if unsupported. */
quant_dot_fn quant_dot(uint32_t weight_type);
/* The plain C kernel (reference for tests). */
quant_dot_fn quant_dot_plain(uint32_t weight_type);
/* Tiled mat-mul block: out[c*out_stride + r] = w_row(r) . a_row(c) for r < nr, c < nc,
 * weight rows w_stride bytes apart, activation rows a_stride bytes apart (activation
 * format quant_act_type). Each output is accumulated in one fixed order whatever nr and
 * nc are, so a row's result never depends on the batch it is computed in. */
typedef void (*quant_gemm_fn)(int64_t n, const void *w, size_t w_stride, int nr, const void *a,
                              size_t a_stride, int nc, float *out, size_t out_stride);
/* The tiled kernel for a weight type on this CPU, or NULL (then use quant_dot per row). */
quant_gemm_fn quant_gemm(uint32_t weight_type);

/* y[i] += a * x[i] for an F16 vector x (attention: probabilities times V rows). */
typedef void (*quant_axpy_fn)(int64_t n, float a, const uint16_t *x, float *y);
quant_axpy_fn quant_axpy_f16(void);
void quant_axpy_f16_plain(int64_t n, float a, const uint16_t *x, float *y);
/* Which SIMD level quant_dot picked: "avx512vnni", "avx2" or "plain". */
const char *quant_simd_name(void);
/* Forces plain C kernels everywhere (for tests and comparisons); call before use. */
void quant_force_plain(bool on);

#endif
