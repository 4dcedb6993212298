/* The parameter sets of the optimizer benchmarks: the tensor shapes of GPT-2 and TinyLlama-1.1B. */
#ifndef MOFO_BENCH_OPTIM_SHAPES_H
#define MOFO_BENCH_OPTIM_SHAPES_H

#include <stdint.h>

typedef struct shape {
    char name[64];
    int ndim;
    int64_t dims[2];
} shape;

/* GPT-2 of width C, vocabulary V, P positions and `layers` layers (small: 768, 50257, 1024, 12;
 * XL, "1.5B": 1600, 50257, 1024, 48). Returns the tensor count (*out malloc'd) or -1. */
int bench_gpt2_shapes(int64_t C, int64_t V, int64_t P, int layers, shape **out, int64_t *total);
/* TinyLlama-1.1B: 22 layers of width 2048, 32 query and 4 key/value heads of 64, MLP 5632,
 * vocabulary 32000, untied lm_head. */
int bench_tinyllama_shapes(shape **out, int64_t *total);
/* "124M", "1.1B" or "1.5B": the model of that name; returns -1 for another name. */
int bench_named_shapes(const char *name, shape **out, int64_t *total);

#endif
