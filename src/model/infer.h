/* Inference: incremental decoding with a KV cache, greedy and temperature/top-p sampling.
 *
 * The cache holds, per layer, the keys and values of every position fed so far. Feeding n new
 * tokens runs the training forward's block (block.h) on those n rows only (RoPE at their absolute
 * positions, or learned positions from wpe), attending over the cached positions 0..pos+n-1,
 * causally and within the sliding window when the model has one. Fed from position 0, the cache's
 * logits equal mofo_model_forward's bit for bit.
 *
 * No global state: the RNG is a uint64_t the caller owns (splitmix64 + xorshift-style draws). */
#ifndef MOFO_MODEL_INFER_H
#define MOFO_MODEL_INFER_H

#include <stdint.h>

#include "model/block.h"
#include "model/model.h"

/* The cache's arrays are the model's backend's (kv, tables, scratch, logits). */
typedef struct mofo_infer {
    const struct mofo_backend *be;
    int T_max;        /* positions the cache holds */
    int pos;          /* positions fed so far */
    int n_cap;        /* rows the scratch holds (tokens fed per call) */
    float *kv;        /* (L, T_max, 2 NKV HD): each position's NKV key heads, then its NKV value heads */
    float *rope_cos, *rope_sin; /* (T_max, HD/2), RoPE only */
    float *scratch;   /* one allocation for n_cap rows: */
    float *x, *y;     /* (n_cap, C): a layer's input and output */
    mofo_block_acts a;
    float *attn;      /* (n_cap, T_max) attention scores */
    int lora_r;       /* the model's largest adapter rank when the cache was made (0: none) */
    float *lora;      /* (n_cap, 2 lora_r) the adapters' scratch */
    float *logits;    /* (V): the last fed position's logits */
} mofo_infer;

/* A cache of T_max positions for model m (at most the model's positions when they are learned). */
int mofo_infer_init(mofo_infer *s, const mofo_model *m, int T_max, mofo_err *err);
void mofo_infer_free(mofo_infer *s);
/* Forgets the fed positions (keeps the buffers). */
void mofo_infer_reset(mofo_infer *s);
/* Feeds ids[0..n) at positions pos..pos+n-1; the last one's logits (V) end in s->logits. */
int mofo_infer_feed(mofo_infer *s, const mofo_model *m, const int *ids, int n, mofo_err *err);
/* The same, with the logits of all n rows into logits (n, V). */
int mofo_infer_feed_rows(mofo_infer *s, const mofo_model *m, const int *ids, int n, float *logits, mofo_err *err);
/* Forgets the positions from pos on (0 <= pos < s->pos; else nothing): a shared prefix fed once,
 * then several continuations after it, each rewound before the next. */
void mofo_infer_rewind(mofo_infer *s, int pos);

/* Picks the next token from logits (V): temperature <= 0 is greedy (the first largest logit, as
 * torch.argmax); else softmax(logits / temperature), restricted to the smallest set of most
 * probable tokens whose probability reaches top_p (top_p >= 1 or <= 0: no restriction, as
 * transformers' TopPLogitsWarper keeps at least one token), then a draw from *rng. */
int mofo_sample(const float *logits, int V, double temperature, double top_p, uint64_t *rng);

typedef struct mofo_gen_opts {
    int max_new;        /* tokens to generate at most */
    double temperature; /* 0: greedy */
    double top_p;       /* 1: off */
    uint64_t seed;
    int eos;            /* stop after generating this id; -1: never */
    int no_cache;       /* recompute the whole sequence with mofo_model_eval at each step */
    /* called after each new token; a nonzero return stops generation (stop strings) */
    int (*on_token)(void *ctx, int id);
    void *ctx;
} mofo_gen_opts;

/* Generates after prompt[0..n_prompt) (n_prompt >= 1). The new ids go to *out (malloc'ed, caller
 * frees) and their count to *n_out; the EOS id, when generated, is included. The prompt and the
 * new tokens must fit the model's positions when they are learned. */
int mofo_generate(mofo_model *m, const int *prompt, int n_prompt, const mofo_gen_opts *o, int **out, int *n_out,
                  mofo_err *err);

#endif
