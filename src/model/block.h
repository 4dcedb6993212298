/* The transformer block, written once: the training forward, its backward and KV-cache inference
 * all run these functions (mofo_model_forward/eval/backward in model.c, mofo_infer_feed in
 * infer.c).
 *
 *   r2 = x + o(attn(rope(qkv(norm1(x)))))      y = r2 + proj(act(fc(norm2(r2))))
 *
 * Rows: N = B T, sequence b's row t at position pos0 + t. Keys and values come from one of two
 * places: with cache NULL, each sequence attends over its own T rows (pos0 = 0: training and
 * evaluation); with a cache (T_max, 2 NKV HD) of this layer (each row the NKV key heads, then the
 * NKV value heads), B = 1, the block writes its rows' keys and values at pos0..pos0+T-1 and attends
 * over 0..pos0+T-1 (generation). For pos0 = 0 both do the same arithmetic in the same order, so
 * the cache's logits equal the training forward's bit for bit.
 *
 * Naming as model.h: C channels, NH/NKV heads, HD head size, QKV = (NH + 2 NKV) HD, A = NH HD,
 * FF MLP width, FC = FF (GELU) or 2 FF (SwiGLU). */
#ifndef MOFO_MODEL_BLOCK_H
#define MOFO_MODEL_BLOCK_H

#include "backend/backend.h"
#include "model/model.h"

/* What one layer's forward writes for N rows (and its backward reads). ln1 and ln2 may be buffers
 * shared by all the layers (the model keeps them so): the backward recomputes them from x and r2
 * first, with the same operation on the same inputs, so bit for bit. (act(fc) is kept: recomputing
 * tanh-GELU costs ~4% of a CPU step, the norms ~0.2%.) */
typedef struct mofo_block_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* (N, C), (N), (N); mean unused for RMSNorm */
    float *qkv;                       /* (N, QKV) after bias and RoPE */
    float *lse;                       /* (B, NH, T) log-sum-exp of each attention row */
    float *atty;                      /* (N, A) */
    float *r2;                        /* (N, C) the residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* (N, C), (N), (N) */
    float *fc;                        /* (N, FC) before the activation */
    float *fch;                       /* (N, FF) after it */
} mofo_block_acts;

/* The backward's scratch for N rows. */
typedef struct mofo_block_scratch {
    float *dres2, *dln;  /* (N, C) each */
    float *dqkv;         /* (N, QKV) */
    float *datty;        /* (N, A) */
    float *dfc;          /* (N, FC) */
    float *dfch;         /* (N, FF) */
} mofo_block_scratch;

/* The block's matrices, in the order the forward multiplies them. */
typedef enum { MOFO_SITE_QKV, MOFO_SITE_O, MOFO_SITE_FC, MOFO_SITE_PROJ, MOFO_N_SITES } mofo_site;

/* A low-rank adapter (LoRA) on rows [row0, row0 + OC) of one site's output, whose input x has C
 * columns (PEFT's x W0^T + s (x A^T) B^T):
 *   forward   out[:, row0 + j] += s (x A^T B^T)[:, j]
 *   backward  gB += s dY^T (x A^T),  gA += s (dY B)^T x,  dx += s (dY B) A
 * with dY the site's output gradient on those rows. x A^T is recomputed in the backward. */
typedef struct mofo_adapter {
    int layer;
    mofo_site site;
    int row0, OC, C, r;
    float scale;
    const float *A, *B; /* (r, C), (OC, r) */
    float *gA, *gB;     /* (r, C), (OC, r), accumulated */
} mofo_adapter;

/* One layer's adapters and their scratch (2 N r floats for N rows); n = 0: none. */
typedef struct mofo_block_lora {
    const mofo_adapter *a;
    int n;
    float *scratch;
} mofo_block_lora;

/* Layer l's view of the model's adapters (mofo_model_set_adapters) with scratch (2 N r floats,
 * r = mofo_model_lora_max_rank, for N rows). */
mofo_block_lora mofo_model_layer_lora(const mofo_model *m, int l, float *scratch);
int mofo_model_lora_max_rank(const mofo_model *m);

/* Where parameter i lies in a block: its layer, the site whose matrix holds it and its first row
 * there (q, k, v share QKV; gate and up share FC). Returns 0, or -1 for a tensor outside the block
 * matrices (embeddings, norms, biases, lm_head). */
int mofo_model_param_site(const mofo_model *m, int i, int *layer, mofo_site *site, int *row0);

size_t mofo_fc_width(const mofo_model_config *c);

/* The config's norm (LayerNorm or RMSNorm) over N rows of C: inp -> out, mean and rstd per row. */
void mofo_norm_forward(const mofo_backend *be, const mofo_model_config *c, float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N);
/* dinp (N, C) +=, dw, db (C) += */
void mofo_norm_backward(const mofo_backend *be, const mofo_model_config *c, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean, const float *rstd, int N);

/* x (N, C) -> y (N, C) (y may not alias x), the activations into a. rope_cos/rope_sin (T, HD/2):
 * the table's rows for positions pos0..pos0+T-1 (RoPE only). attn_scratch: T (pos0 + T) floats.
 * lora: this layer's adapters, or NULL. prec: the matrix products' (adapters' included). */
void mofo_block_forward(const mofo_backend *be, const mofo_model_config *c, mofo_precision prec, const mofo_layer_w *w, const mofo_block_lora *lora, float *y,
                        const float *x, const mofo_block_acts *a, int B, int T, int pos0, const float *rope_cos,
                        const float *rope_sin, float *cache, float *attn_scratch);

/* The backward of mofo_block_forward without a cache: dres (N, C) holds dL/dy on entry and dL/dx on
 * return; the parameter gradients accumulate into g (a NULL pointer there: a frozen tensor, no
 * gradient computed) and the adapters' into their gA, gB. attn_scratch: 2 T T floats. */
void mofo_block_backward(const mofo_backend *be, const mofo_model_config *c, mofo_precision prec, const mofo_layer_w *w,
                         mofo_layer_w *g,
                         const mofo_block_lora *lora, float *dres,
                         const float *x, const mofo_block_acts *a, const mofo_block_scratch *s, int B, int T,
                         const float *rope_cos, const float *rope_sin, float *attn_scratch);

#endif
