/* The device tables of the CUDA step and the per-entry helpers its kernels share.
 *
 * Selection. A filtered block's threshold is found by radix select over 32-bit values in levels:
 *   levels 0, 1, 2: the key (float bits of |score|), digits of 12, 10 and 10 bits from the top;
 *   levels 3, 4, 5: (MOFO_TIES_EXACT_K only) ~position-in-block of the entries whose key equals the
 *                   threshold, same digits: the lowest positions win among ties.
 * After each level a block's sel_state holds the digits fixed so far (prefixes) and the rank still
 * to find among the entries matching them (k_rem). classify() then says of any entry whether it
 * moves, stays, or is still pending. Levels are counted over the data (read only, before pass 2)
 * or, once few enough entries are pending, over the stash: pass 2 writes the pending entries there
 * (key, position, update) and the remaining levels run over the stash alone. */
#ifndef MOFO_CUDA_LAYOUT_H
#define MOFO_CUDA_LAYOUT_H

#include <cuda_bf16.h>
#include <stdint.h>

#include "../internal.h"
#include "../kernels.h"

/* kernel<<<grid, block, 0, stream>>>, written so that the CPU simulation of the kernels
 * (tests/cudasim) can compile them as C++ with its own launch */
#ifndef KERNEL_LAUNCH_ON
#define KERNEL_LAUNCH_ON(grid, block, stream, kernel) kernel<<<grid, block, 0, stream>>>
#endif

#define BLOCK 256          /* threads per block of every kernel */
#define HIST_BINS 4096     /* bins of the widest digit (level 0: 12 bits) */
#define STASH_TILE 4096    /* stash entries per thread block */
#define LAST_LEVEL_KEEP 2  /* MOFO_TIES_KEEP: the key levels only */
#define LAST_LEVEL_EXACT 5 /* MOFO_TIES_EXACT_K: then the position levels */

typedef struct dev_param {
    void *data;                   /* (numel) fp32, or bf16 bits when bf16 */
    const void *grad;             /* (numel) fp32, or bf16 bits when bf16 */
    float *master;                /* (numel) fp32 master weights of a bf16 parameter */
    float *m, *v;                 /* (numel) moments; v NULL unless AdamW */
    unsigned long long *touched;  /* (ceil(numel/64)) coverage bits, or NULL */
    int64_t numel;
    int bf16, pad;
} dev_param;

typedef struct dev_consts { /* per parameter, per step; uploaded before the step's launches */
    rule_consts k;
    uint64_t rbase;   /* the random filter's stream */
    uint64_t sr_base; /* stochastic rounding's stream */
} dev_consts;

typedef struct dev_chunk { /* the CPU plan's chunk: one thread block's work */
    int64_t offset, len;   /* entries offset.. of the parameter; len <= MOFO_CHUNK */
    int param, block;      /* block: the filtered block, or -1 for a dense parameter */
    uint32_t block_pos;    /* position of the chunk's first entry within its block */
    int pad;
} dev_chunk;

typedef struct dev_block { /* a filtered block */
    int64_t k;             /* max(1, floor(alpha*numel)) */
    int64_t stash_off, stash_cap; /* its stash region; cap 0 for a one-chunk block */
    int hist_slot;         /* its histogram in the global array, or -1 for a one-chunk block */
    int pad;
} dev_block;

typedef struct sel_state {
    long long k_rem;     /* the rank still to find among the pending entries */
    uint32_t key_prefix; /* the key bits fixed by levels 0..min(last, 2) */
    uint32_t pos_prefix; /* the ~position bits fixed by levels 3..last */
    int last;            /* last level fixed; -1 before level 0 */
    int done;            /* every entry's fate follows from the prefixes */
    int stash;           /* the pending entries go to the stash in pass 2 */
    int pad;
} sel_state;

typedef struct stash_entry {
    uint32_t key, pos; /* the key and the position in the block */
    float delta;       /* the update it gets if it moves (the weight is already decayed) */
    uint32_t chunk;
} stash_entry;

typedef struct stash_tile { /* STASH_TILE entries of one block's stash region */
    int block;
    uint32_t start;
} stash_tile;

typedef struct step_report {  /* the head of the buffer read back after every step */
    unsigned int nonfinite;   /* a gradient entry is NaN or infinite: nothing was written */
    unsigned int pad;
    unsigned long long first_bad; /* the lowest (chunk << 20 | entry in chunk) that is */
} step_report;

typedef struct step_args { /* every kernel's argument: the device tables */
    const dev_param *params;    /* (n_params) */
    const dev_consts *consts;   /* (n_params) */
    const dev_chunk *chunks;    /* (n_chunks) */
    const dev_block *blocks;    /* (n_blocks) */
    sel_state *sel;             /* (n_blocks) */
    uint32_t *hist;             /* (n_multi, HIST_BINS) the blocks of several chunks */
    stash_entry *stash;         /* (sum of stash_cap) */
    unsigned long long *stash_count; /* (n_blocks) */
    step_report *report;
    long long *chunk_updated;   /* (n_chunks) entries moved */
    long long *chunk_newly;     /* (n_chunks) entries moved for the first time */
    double *chunk_sq;           /* (n_chunks) sum of squared updates */
    int n_blocks;
    int ties_keep;              /* MOFO_TIES_KEEP */
    int stochastic;             /* stochastic rounding of bf16 weights */
    int pad;
    cudaStream_t stream;        /* host side: the stream every launch of the step goes on */
} step_args;

/* ---- levels ---- */

__device__ __forceinline__ int level_shift(int level) { return level % 3 == 0 ? 20 : level % 3 == 1 ? 10 : 0; }
__device__ __forceinline__ int level_bins(int level) { return level % 3 == 0 ? 4096 : 1024; }
__device__ __forceinline__ uint32_t level_digit(int level, uint32_t key, uint32_t npos) {
    return ((level < 3 ? key : npos) >> level_shift(level)) & (uint32_t)(level_bins(level) - 1);
}

enum { SEL_SKIP, SEL_MOVE, SEL_PENDING };

/* The fate of an entry with key and npos (~position in block) under a block's selection so far. */
__device__ __forceinline__ int classify(const sel_state &s, uint32_t key, uint32_t npos) {
    if (s.last < 0) return SEL_PENDING;
    int cut = level_shift(s.last < 2 ? s.last : 2);
    uint32_t a = key >> cut, b = s.key_prefix >> cut;
    if (a != b) return a > b ? SEL_MOVE : SEL_SKIP;
    if (s.last <= 2) return s.done ? SEL_MOVE : SEL_PENDING;
    cut = level_shift(s.last);
    a = npos >> cut, b = s.pos_prefix >> cut;
    if (a != b) return a > b ? SEL_MOVE : SEL_SKIP;
    return s.done ? SEL_MOVE : SEL_PENDING;
}

/* ---- entries ---- */

__device__ __forceinline__ float load_grad(const dev_param &p, int64_t i) {
    return p.bf16 ? __bfloat162float(((const __nv_bfloat16 *)p.grad)[i]) : ((const float *)p.grad)[i];
}

__device__ __forceinline__ float load_weight(const dev_param &p, int64_t i) {
    return p.bf16 ? p.master[i] : ((const float *)p.data)[i];
}

/* Stores weight w of entry i: fp32, or the master weight and its bf16 rounding (to nearest even, or
 * stochastically: 16 random bits added below the kept ones, then truncated). */
__device__ __forceinline__ void store_weight(const dev_param &p, const dev_consts &c, int64_t i, float w, int stochastic) {
    if (!p.bf16) {
        ((float *)p.data)[i] = w;
        return;
    }
    p.master[i] = w;
    uint16_t bits;
    if (stochastic) {
        uint32_t u = __float_as_uint(w) + (uint32_t)(mix64(c.sr_base + (uint64_t)i) >> 48);
        bits = (uint16_t)(u >> 16);
    } else {
        bits = __bfloat16_as_ushort(__float2bfloat16_rn(w));
    }
    ((uint16_t *)p.data)[i] = bits;
}

/* The filter key of entry i given its gradient g, reading only the state the filter needs. */
template <mofo_rule R, mofo_filter F>
__device__ __forceinline__ uint32_t entry_key(const dev_param &p, const dev_consts &c, int64_t i, float g) {
    float m = F == MOFO_FILTER_GRADIENT || F == MOFO_FILTER_RANDOM ? 0.0f : p.m[i];
    float v = R == MOFO_RULE_ADAMW && F == MOFO_FILTER_UPDATE ? p.v[i] : 0.0f;
    rule_out r = rule_entry(R, F == MOFO_FILTER_UPDATE, &c.k, g, &m, &v);
    return key_entry(F, g, r.mom, r.delta, c.rbase, i);
}

/* *p while other threads may set bits in it with atomicOr: a relaxed atomic load (a plain load
 * would race with them in CUDA's memory model) */
__device__ __forceinline__ unsigned long long load_relaxed(const unsigned long long *p) {
#ifdef __CUDA_ARCH__
    unsigned long long v;
    asm volatile("ld.relaxed.gpu.u64 %0, [%1];" : "=l"(v) : "l"(p));
    return v;
#else
    return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}

__device__ __forceinline__ int is_nonfinite(float g) { return (abs_bits(g) & 0x7F800000u) == 0x7F800000u; }

#endif
