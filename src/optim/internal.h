/* libmofo internals shared by optim.c (registry, options), plan.c (blocks and chunks), step.c (the
 * step) and state.c (I/O). */
#ifndef MOFO_OPTIM_INTERNAL_H
#define MOFO_OPTIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/optim.h"

#ifdef __cplusplus
extern "C" { /* the CUDA backend (C++) calls the functions below */
#endif

/* The first radix digit of a 32-bit key: its top 12 bits. For the float bits of |x| that is the
 * exponent and 4 mantissa bits, so one bucket spans 1/16 of an octave. */
#define MOFO_HIST_BITS 12
#define MOFO_HIST_BINS (1 << MOFO_HIST_BITS)
#define MOFO_HIST_SHIFT (32 - MOFO_HIST_BITS)

/* The bracket around last step's threshold starts this wide on each side, in key units (2^23 keys
 * per octave of |score|: 2^18 is 1/32 octave), then follows how far the threshold moves. */
#define MOFO_RADIUS_START (1u << 18)
#define MOFO_RADIUS_MIN (1u << 12)
#define MOFO_RADIUS_MAX (1u << 30)

/* Work is cut into chunks of at most this many entries, each inside one parameter and one block. */
#define MOFO_CHUNK 65536

typedef struct thread_scratch thread_scratch;

typedef struct param_state {
    char *name;
    float *data;       /* (numel) owned by the caller; bf16 parameters: uint16_t bf16 bits */
    const float *grad; /* (numel) owned by the caller; bf16 parameters: uint16_t bf16 bits */
    int bf16;          /* data and grad are bf16 (CUDA only); master holds the fp32 weights */
    float *master;     /* (numel) fp32 master weights of a bf16 parameter, else NULL */
    int ndim;
    int64_t shape[8];
    int64_t numel;
    int64_t full_numel; /* > 0: a slice of a tensor of full_numel entries on several processes */
    int group;         /* index into optim.groups */
    float *m, *v;      /* (numel) optimizer state; v only for AdamW (device memory under CUDA) */
    uint64_t *touched; /* (ceil(numel/64)) bit i set once entry i has moved; NULL without coverage */
} param_state;

/* An entry that pass 2 could not decide: its key lies inside the block's bracket [lo, hi]. */
typedef struct candidate {
    uint32_t key;
    float delta;  /* the update it gets if selected (p is already decayed) */
    uint32_t pos; /* entry within its chunk */
} candidate;

typedef struct chunk {
    int param;
    int block;      /* filtered block index, or -1 for a dense parameter */
    int64_t offset; /* first entry within the parameter */
    int64_t len;
    int64_t block_pos; /* first entry within the block */
    /* filled during a step */
    candidate *cand;
    int64_t n_cand, cap_cand;
    int64_t updated;   /* entries moved, decided in pass 2 (candidates added later) */
    double sq_update;  /* sum of delta^2 over moved entries */
    int64_t newly;     /* entries moved for the first time */
    int64_t n_above, n_inside; /* pass 1: keys above the block's bracket, and inside it */
    uint32_t *inside_keys;     /* (n_inside when !inside_lost) pass 1: the keys inside the bracket */
    int64_t cap_inside;
    int inside_lost;           /* pass 1 could not keep them all (too many, or out of memory) */
    int covered;       /* dense chunk whose coverage bits are all set */
    int bad;           /* pass 1 found a NaN or infinite gradient here */
} chunk;

enum { SETTLED_EXACT = 1, SETTLED_BRACKET, SETTLED_HISTOGRAM };

/* A filtered block. Its threshold, the k-th largest key, is found in a bracket [lo, hi] of keys
 * with `above` keys larger than hi; pass 2 moves those and sets aside the keys inside the bracket
 * as candidates for the exact selection. The bracket comes, in order of preference, from:
 *   - the keys themselves (small blocks: lo = hi = the exact threshold);
 *   - a prediction from the last two thresholds +- radius, checked by two counts in pass 1 (|m|
 *     moves slowly: after the first steps this hits, and the counts cost little in pass 1); pass 1
 *     also keeps the keys inside it (up to a tenth of the block), so the exact threshold is
 *     selected among them before pass 2 (lo = hi = the threshold: pass 2 sets aside only the
 *     entries tied with it);
 *   - otherwise a histogram of the top 12 bits (the bucket holding the k-th largest key), counted
 *     in pass 1 where the bracket missed the step before, else in an extra read-only pass. */
typedef struct block {
    int64_t numel, k;
    int first_chunk, n_chunks; /* chunks of a block are consecutive and in index order */
    uint32_t lo, hi;
    int64_t above;
    int settled;               /* how lo, hi and above were found this step: 0 not yet, or a SETTLED_* */
    int have_last;             /* last_thr is set */
    uint32_t last_thr;         /* last step's threshold */
    uint32_t center, radius;   /* this step's bracket: the predicted threshold and the half-width */
    uint32_t *hist;            /* (MOFO_HIST_BINS) shared histogram of a block of several chunks */
    int64_t updated;           /* entries moved this step */
    uint32_t *sort_keys;       /* (numel) select_by_sort only */
    int hist_in_pass1;         /* pass 1 also counts hist (the bracket missed last step, or is expected
                                  to hold too many keys: the histogram is needed) */
    int too_wide;              /* the bracket is expected to hold more keys than bracket_capacity (from
                                  last step's count and radius): pass 1 does not keep them. Like
                                  hist_in_pass1, a hint for speed only: every path selects exactly */
    int64_t inside;            /* keys inside this step's bracket (pass 1's count) */
    int hist_ready;            /* hist holds this step's keys from pass 1: a miss needs no peek */
    int sharded;               /* a slice: k and the threshold are the whole tensor's (histograms summed) */
    int shard_slot;            /* its place among the sharded blocks in the summed counts */
    uint32_t shard_thr;        /* the threshold being selected across the processes: its digits so far */
    int64_t shard_need;        /* the rank of the k-th largest among the keys that share those digits */
} block;

struct mofo_optim {
    mofo_options opt;
    mofo_group *groups;
    int n_groups;
    param_state *params;
    int n_params;
    int64_t step;   /* steps taken */
    int64_t entries;
    int64_t ever_updated;
    /* the plan, built at the first step */
    int planned;
    chunk *chunks;
    int n_chunks;
    block *blocks;
    int n_blocks;
    mofo_block_stats *block_stats;
    int64_t *param_updated;
    mofo_stats stats;
    int select_by_sort; /* take thresholds by sorting each block (benchmark baseline), not radix select */
    struct thread_scratch *scratch; /* (scratch_threads) per-thread buffers of the step */
    int scratch_threads;
    struct cuda_step *cuda; /* MOFO_DEVICE_CUDA: the device tables of the step (cuda/step.cu) */
    void *cuda_stream;      /* MOFO_DEVICE_CUDA: the cudaStream_t the steps run on (NULL: legacy default) */
    int arrays_moved;       /* set_param since the last step: the device table of pointers is stale */
    mofo_allreduce_fn allreduce; /* sums the sharded blocks' histograms over the processes */
    void *allreduce_ctx;
    int n_sharded;          /* sharded filtered blocks */
    uint64_t *shard_counts; /* (1 + n_sharded MOFO_HIST_BINS) the counts being summed */
};

/* The bracket: radius wide on each side of center. */
static inline void block_bracket(block *b) {
    b->lo = b->center > b->radius ? b->center - b->radius : 0;
    b->hi = b->center < UINT32_MAX - b->radius ? b->center + b->radius : UINT32_MAX;
}

/* Builds blocks and chunks from the registered parameters (plan.c). */
int mofo_optim_plan(mofo_optim *o, mofo_err *err);

/* Makes the optimizer find thresholds by a full sort of each block's keys (O(n log n)): the
 * baseline `mofo bench optim` compares radix selection against. Before the first step only. */
int mofo_optim_select_by_sort(mofo_optim *o, mofo_err *err);

/* Frees the per-thread scratch of the step (step.c). */
void mofo_optim_free_scratch(mofo_optim *o);

/* Group resolution for MOFO_GROUP_AUTO under the options' policy (optim.c). */
void mofo_policy_group(const mofo_options *o, const char *name, int ndim, mofo_group *out);

/* Shared by the CPU step (step.c) and the CUDA step (cuda/step.cu). */
typedef struct rule_consts rule_consts;
/* Per-parameter constants of step t (out has n_params entries). */
void mofo_step_consts(const mofo_optim *o, double lr, int64_t t, rule_consts *out);
/* The statistics of the last step from the chunks' updated, sq_update and newly and the blocks'
 * updated. */
void mofo_gather_stats(mofo_optim *o);
/* The refusal of step o->step + 1: gradient entry `index` of parameter `param` is `value`. */
int mofo_refuse_nonfinite(const mofo_optim *o, int param, int64_t index, float value, mofo_err *err);

#ifdef __cplusplus
}
#endif

#endif
