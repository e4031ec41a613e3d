/* quant_test.h - what the quant tests share: a random row of any weight type (values
 * quantised from N(0, 1) with some zero and huge blocks, drawn from test.h's seeded
 * generator), and the sizes the kernels are checked at. Header-only, static. */
#ifndef CHATD_QUANT_TEST_H
#define CHATD_QUANT_TEST_H

#include "test.h"

#include "gguf.h"
#include "quant.h"

#include <stdint.h>

static void random_row(uint32_t type, float *tmp, uint8_t *buf, int n)
{
    for (int i = 0; i < n; i++)
        tmp[i] = test_nrand() * 0.1f;
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
            buf[i] = (uint8_t)(test_urand() * 256);
        for (int b = 0; b < n / 256; b++) {
            if (type == GGML_TYPE_Q4_K) {
                struct quant_q4_k *k = (struct quant_q4_k *)buf + b;
                k->d = quant_fp32_to_fp16(0.002f + 0.001f * (float)test_urand());
                k->dmin = quant_fp32_to_fp16(0.001f * (float)test_urand());
            } else {
                struct quant_q6_k *k = (struct quant_q6_k *)buf + b;
                k->d = quant_fp32_to_fp16(0.0005f + 0.0005f * (float)test_urand());
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
