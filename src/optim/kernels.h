/* The element-wise kernels of the step: the update rules (AdamW, Lion, SGD-momentum) and the filter
 * keys, as inline functions of one entry. The passes of step.c fuse them into one loop per tile,
 * specialised for each (rule, filter) by always_inline with constant arguments. Every path (dense,
 * filtered pass 1, pass 2) evaluates the same expressions, so they round alike: a filter with
 * alpha = 1 gives the dense rule's bits.
 *
 * The CUDA kernels (cuda/) include this file too, so both devices evaluate the same expressions; with
 * nvcc's --fmad=false and IEEE sqrtf and division (no --use_fast_math) they give the same bits. */
#ifndef MOFO_OPTIM_KERNELS_H
#define MOFO_OPTIM_KERNELS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mofo/optim.h"

#define TILE 512 /* entries per inner loop: the tile buffers stay in L1 */
#ifdef __CUDACC__
#define ALWAYS_INLINE static __host__ __device__ __forceinline__
#else
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

/* Per-parameter constants of a step, cast to float as PyTorch casts its Python scalars. */
typedef struct rule_consts {
    float b1, b2, c1, c2; /* c1 = 1-b1, c2 = 1-b2 */
    float eps, bc2s;      /* bc2s = sqrt(1 - b2^t) */
    float neg_step;       /* -lr/(1 - b1^t) for AdamW; -lr otherwise */
    float decay;          /* 1 - lr*wd */
} rule_consts;

/* What a rule gives for one entry: the momentum the step uses and the update. */
typedef struct rule_out {
    float mom, delta;
} rule_out;

/* One entry of a rule: updates the state *m (and *v) from g, and returns the momentum the step
 * uses and the update (computed only when want_delta: pass 1 needs it for the update filter alone,
 * since it costs a sqrt and a division). Pass 1 passes copies of the state, so that nothing is
 * written before every gradient is known to be finite; pass 2 and the dense pass pass the arrays. */
ALWAYS_INLINE rule_out rule_entry(mofo_rule rule, int want_delta, const rule_consts *k, float g, float *m, float *v) {
    rule_out r = {0, 0};
    switch (rule) {
    case MOFO_RULE_ADAMW:
        *m = *m + k->c1 * (g - *m); /* torch: exp_avg.lerp_(grad, 1-beta1) */
        *v = *v * k->b2;            /* exp_avg_sq.mul_(beta2) */
        *v = *v + k->c2 * g * g;    /*   .addcmul_(grad, grad, value=1-beta2) */
        r.mom = *m;
        if (want_delta) {
            float h = sqrtf(*v) / k->bc2s + k->eps; /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
            r.delta = k->neg_step * *m / h;         /* param.addcdiv_(exp_avg, denom, value=-step_size) */
        }
        break;
    case MOFO_RULE_LION: {
        float c = k->b1 * *m + k->c1 * g; /* the interpolation reads the old m */
        r.mom = c;
        r.delta = k->neg_step * (float)((c > 0) - (c < 0));
        *m = k->b2 * *m + k->c2 * g;
        break;
    }
    case MOFO_RULE_SGDM:
        *m = *m * k->b1 + g;
        r.mom = *m;
        r.delta = k->neg_step * *m;
        break;
    }
    return r;
}

/* ---- filter keys: the float bits of |score|, whose unsigned order is the float order ---- */

ALWAYS_INLINE uint32_t abs_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x7FFFFFFFu;
}

ALWAYS_INLINE uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The random filter's stream for (seed, step, parameter): counter-based, so a resumed run draws the
 * same masks and threads share nothing. */
ALWAYS_INLINE uint64_t random_base(uint64_t seed, int64_t step, int param) {
    return mix64(seed ^ mix64(((uint64_t)step << 20) ^ (uint64_t)param));
}

/* The key of one entry; index is its position in the parameter (for the random filter). */
ALWAYS_INLINE uint32_t key_entry(mofo_filter f, float g, float mom, float delta, uint64_t rbase, int64_t index) {
    switch (f) {
    case MOFO_FILTER_GRADIENT: return abs_bits(g);
    case MOFO_FILTER_UPDATE: return abs_bits(delta);
    case MOFO_FILTER_RANDOM: return (uint32_t)(mix64(rbase + (uint64_t)index) >> 32);
    case MOFO_FILTER_MOMENTUM:
    case MOFO_FILTER_NONE: break;
    }
    return abs_bits(mom);
}

/* Calls FN(rule, filter, args...) with rule and filter as constants, so that FN's loop is
 * specialised for each pair. */
#define DISPATCH_FILTER(FN, RULE, filter, ...)                                               \
    do {                                                                                     \
        switch (filter) {                                                                    \
        case MOFO_FILTER_GRADIENT: FN(RULE, MOFO_FILTER_GRADIENT, __VA_ARGS__); break;       \
        case MOFO_FILTER_UPDATE: FN(RULE, MOFO_FILTER_UPDATE, __VA_ARGS__); break;           \
        case MOFO_FILTER_RANDOM: FN(RULE, MOFO_FILTER_RANDOM, __VA_ARGS__); break;           \
        default: FN(RULE, MOFO_FILTER_MOMENTUM, __VA_ARGS__); break;                         \
        }                                                                                    \
    } while (0)
#define DISPATCH(FN, rule, filter, ...)                                                       \
    do {                                                                                      \
        switch (rule) {                                                                       \
        case MOFO_RULE_ADAMW: DISPATCH_FILTER(FN, MOFO_RULE_ADAMW, filter, __VA_ARGS__); break; \
        case MOFO_RULE_LION: DISPATCH_FILTER(FN, MOFO_RULE_LION, filter, __VA_ARGS__); break;   \
        case MOFO_RULE_SGDM: DISPATCH_FILTER(FN, MOFO_RULE_SGDM, filter, __VA_ARGS__); break;   \
        }                                                                                     \
    } while (0)

#endif
