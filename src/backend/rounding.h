/* The rounding of a matrix product's inputs (mofo_precision, mofo/engine.h), one definition for the
 * CPU backend, nvcc's kernels and the simulator: to nearest, ties to even, keeping `stored` mantissa
 * bits of fp32's 23 (bf16 7, tf32 10). A NaN stays a quiet NaN; a value past the largest finite one
 * of the format becomes infinity (both formats have fp32's exponent range, so nothing underflows). */
#ifndef MOFO_BACKEND_ROUNDING_H
#define MOFO_BACKEND_ROUNDING_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define ROUNDING_FN static __host__ __device__ __forceinline__
#else
#define ROUNDING_FN static inline
#endif

enum { MOFO_BF16_STORED = 7, MOFO_TF32_STORED = 10 };

ROUNDING_FN uint32_t mofo_round_bits(uint32_t x, int stored) {
    int drop = 23 - stored;
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return x | 0x00400000u; /* NaN: quiet, payload kept */
    x += ((1u << (drop - 1)) - 1) + ((x >> drop) & 1u);
    return x & ~((1u << drop) - 1);
}

ROUNDING_FN float mofo_round_mantissa(float f, int stored) {
    uint32_t x;
    memcpy(&x, &f, 4);
    x = mofo_round_bits(x, stored);
    memcpy(&f, &x, 4);
    return f;
}

#endif
