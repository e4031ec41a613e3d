/* quant_test.h - what the quant tests share: a seeded normal generator, a random row
 * of any weight type (values quantised from N(0, 1) with some zero and huge blocks), and
 * the sizes the kernels are checked at. Header-only, static. */
#ifndef CHATD_QUANT_TEST_H
#define CHATD_QUANT_TEST_H

#include "test.h"

#include "gguf.h"
#include "quant.h"

#include <stdint.h>

static uint64_t rng_state = 12345;

static double urand(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * 0x1.0p-53;
}

static float nrand(void)
{
    double u1 = urand() + 1e-12;
    double u2 = urand();
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void random_row(uint32_t type, float *tmp, uint8_t *buf, int n)
{
    for (int i = 0; i < n; i++)
        tmp[i] = nrand() * 0.1f;
    switch (type) {
    case GGML_TYPE_F32:
        memcpy(buf, tmp, (size_t)n * 4);
        break;
    case GGML_TYPE_F16:
        for (int i = 0; i < n; i++)
            ((uint16_t *)buf)[i] = quant_fp32_to_fp16(tmp[i]);
        break;
    case GGML_TYPE_Q8_0:
        quant_row_q8_0(tmp, (struct quant_q8_0 *)buf, n);
        break;
    case GGML_TYPE_Q4_0:
        quant_row_q4_0(tmp, (struct quant_q4_0 *)buf, n);
        break;
    default: { /* K-quants: random bits with sane super-scales */
        size_t bytes = quant_row_bytes(type, n);
        for (size_t i = 0; i < bytes; i++)
            buf[i] = (uint8_t)(urand() * 256);
        for (int b = 0; b < n / 256; b++) {
            if (type == GGML_TYPE_Q4_K) {
                struct quant_q4_k *k = (struct quant_q4_k *)buf + b;
                k->d = quant_fp32_to_fp16(0.002f + 0.001f * (float)urand());
                k->dmin = quant_fp32_to_fp16(0.001f * (float)urand());
            } else {
                struct quant_q6_k *k = (struct quant_q6_k *)buf + b;
                k->d = quant_fp32_to_fp16(0.0005f + 0.0005f * (float)urand());
            }
        }
        break;
    }
    }
}

#define N 512
#define ROWS 7
#define TOKS 5

#endif
