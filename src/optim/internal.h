/* libmofo internals shared by optim.c (registry, options), step.c (the step) and state.c (I/O). */
#ifndef MOFO_OPTIM_INTERNAL_H
#define MOFO_OPTIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/optim.h"

/* The first radix digit of a 32-bit key: its top 12 bits. For the float bits of |x| that is the
 * exponent and 4 mantissa bits, so one bucket spans 1/16 of an octave. */
#define MOFO_HIST_BITS 12
#define MOFO_HIST_BINS (1 << MOFO_HIST_BITS)
#define MOFO_HIST_SHIFT (32 - MOFO_HIST_BITS)

/* Work is cut into chunks of at most this many entries, each inside one parameter and one block. */
#define MOFO_CHUNK 65536

typedef struct thread_scratch thread_scratch;

typedef struct param_state {
    char *name;
    float *data;       /* (numel) owned by the caller */
    const float *grad; /* (numel) owned by the caller */
    int ndim;
    int64_t shape[8];
    int64_t numel;
    int group;         /* index into optim.groups */
    float *m, *v;      /* (numel) optimizer state; v only for AdamW */
    uint64_t *touched; /* (ceil(numel/64)) bit i set once entry i has moved; NULL without coverage */
} param_state;

/* An entry a filtered block could not decide from the first radix digit alone: its key ties the
 * bucket that holds the k-th largest key. */
typedef struct candidate {
    int64_t offset; /* entry within its parameter */
    uint32_t key;
    float delta;    /* the update it gets if selected (already weight-decayed p + delta) */
    int32_t param;
} candidate;

typedef struct chunk {
    int param;
    int block;      /* filtered block index, or -1 for a dense parameter */
    int64_t offset; /* first entry within the parameter */
    int64_t len;
    /* filled during a step */
    candidate *cand;
    int64_t n_cand, cap_cand;
    int64_t updated;   /* entries moved, decided in pass 2 (candidates added later) */
    double sq_update;  /* sum of delta^2 over moved entries */
    int64_t newly;     /* entries moved for the first time */
} chunk;

typedef struct block {
    int64_t numel, k;
    int first_chunk, n_chunks; /* chunks of a block are consecutive and in index order */
    uint32_t *hist;            /* (MOFO_HIST_BINS) counts of the first digit of the keys */
    uint32_t bucket;           /* the first digit of the k-th largest key */
    int64_t above;             /* keys with a larger first digit */
    int64_t updated;
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
    struct thread_scratch *scratch; /* (scratch_threads) per-thread buffers of the step */
    int scratch_threads;
};

/* Builds blocks and chunks from the registered parameters (step.c). */
int mofo_optim_plan(mofo_optim *o, mofo_err *err);

/* Group resolution for MOFO_GROUP_AUTO under the options' policy (optim.c). */
void mofo_policy_group(const mofo_options *o, const char *name, int ndim, mofo_group *out);

#endif
