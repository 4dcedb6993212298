/* cudasim: bfloat16 as CUDA's cuda_bf16.h defines the conversions the project uses. */
#ifndef CUDASIM_BF16_H
#define CUDASIM_BF16_H

#include "cuda_runtime.h"

struct __nv_bfloat16 {
    unsigned short x; /* the bits: the top half of a float */
};

static inline float __bfloat162float(__nv_bfloat16 h) { return __uint_as_float((unsigned)h.x << 16); }

static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }

/* To nearest, ties to even; a NaN stays a (quiet) NaN. */
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    unsigned u = __float_as_uint(f);
    __nv_bfloat16 h;
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) h.x = (unsigned short)((u >> 16) | 0x40u);
    else h.x = (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    return h;
}

#endif
