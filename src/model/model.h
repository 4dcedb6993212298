/* One decoder-only transformer described by data: GPT-2, Llama, Mistral and Qwen2 are the same
 * code with different choices (norm, activation, positions, biases, head counts, tying).
 *
 * Parameters live in one fp32 buffer (gradients in a second one of the same layout), described by a
 * table of named tensors that carries each tensor's checkpoint name, its file dtype and layout, so
 * that a loaded model saves back under the same names, dtypes and layouts. Matrices are kept as
 * (OC, C) row-major inside (GPT-2's Conv1D [in, out] weights are transposed at load and save).
 * Llama's q/k/v projections lie next to each other in the buffer, so they form one (QKV, C) matrix
 * for the matrix product while staying three tensors for the optimizer and the checkpoint; the
 * same holds for gate/up.
 *
 * The arrays (params, grads, activations) are the backend's (backend/backend.h), which runs every
 * operation on them; loading and saving read and write them on the host, which the CPU backend's
 * memory is.
 *
 * Naming: B batch, T time, C channels, V vocabulary, NH query heads, NKV key/value heads, HD head
 * size, FF MLP width, L layers. The public part (load, save, forward, backward, the training
 * step) is declared in include/mofo/engine.h. */
#ifndef MOFO_MODEL_H
#define MOFO_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "mofo/engine.h"
#include "mofo/error.h"

typedef enum { MOFO_NORM_LAYERNORM, MOFO_NORM_RMSNORM } mofo_norm_kind;
typedef enum { MOFO_ACT_GELU_TANH, MOFO_ACT_SWIGLU } mofo_act_kind;
typedef enum { MOFO_POS_LEARNED, MOFO_POS_ROPE } mofo_pos_kind;
typedef enum { MOFO_NAMES_GPT2, MOFO_NAMES_LLAMA } mofo_names_kind;
/* RoPE's rope_type: default; linear (inv_freq / factor); llama3 (Llama 3.1's smooth interpolation) */
typedef enum { MOFO_ROPE_DEFAULT, MOFO_ROPE_LINEAR, MOFO_ROPE_LLAMA3 } mofo_rope_kind;
/* The rounding of RoPE's inverse frequencies; NONE (0) in a zeroed config. */
typedef enum { MOFO_ROPE_ROUND_NONE, MOFO_ROPE_ROUND_BF16, MOFO_ROPE_ROUND_F16 } mofo_rope_round;

/* The most layers a config may have (a check on untrusted files, far above any published model). */
#define MOFO_MAX_LAYERS 1024

typedef struct mofo_model_config {
    char model_type[32];   /* "gpt2", "llama", "mistral", "qwen2" */
    mofo_names_kind names; /* tensor naming and GPT-2's fused Conv1D layout */
    int V, C, L, NH, NKV, HD, FF;
    int max_T;             /* learned positions: the table's length; RoPE: max_position_embeddings */
    mofo_norm_kind norm;
    double norm_eps;
    mofo_act_kind act;
    mofo_pos_kind pos;
    double rope_theta;
    mofo_rope_kind rope_scaling;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_T;
    mofo_rope_round rope_round; /* config.json's dtype is half precision: transformers, which loads
                              such a model in that dtype, rounds RoPE's inverse frequencies to it */
    int sliding_window;    /* 0: none; else key j is visible from query i when i - j < window */
    int qkv_bias, o_bias, mlp_bias;
    int tied;              /* lm_head shares the token embedding */
} mofo_model_config;

/* Reads a config.json text (label names it in messages). Unknown model_type, unsupported RoPE
 * scaling or activation, and inconsistent sizes fail with a message naming label and the field. */
int mofo_config_parse(mofo_model_config *cfg, const char *text, size_t len, const char *label, mofo_err *err);
/* Checks sizes (positive, NH divisible by NKV, even HD for RoPE, ...). */
int mofo_config_check(const mofo_model_config *cfg, const char *label, mofo_err *err);
/* A config.json text that transformers reads as this config (for models made from scratch). */
char *mofo_config_to_json(const mofo_model_config *cfg);
/* Preset shapes for benchmarks: arch "gpt2" / "llama", size "124M" / "1.1B" / "tiny". */
int mofo_config_preset(mofo_model_config *cfg, const char *arch, const char *size, mofo_err *err);

/* What a tensor is in the transformer, whatever its family calls it (family.c maps the names).
 * QKV_W is GPT-2's fused q/k/v matrix (c_attn), FC_W its MLP input (c_fc); DOWN_W the MLP output
 * (down_proj, GPT-2's mlp.c_proj). */
typedef enum {
    MOFO_ROLE_EMBED, MOFO_ROLE_POS_EMBED,
    MOFO_ROLE_NORM1_W, MOFO_ROLE_NORM1_B,
    MOFO_ROLE_Q_W, MOFO_ROLE_K_W, MOFO_ROLE_V_W, MOFO_ROLE_QKV_W,
    MOFO_ROLE_Q_B, MOFO_ROLE_K_B, MOFO_ROLE_V_B, MOFO_ROLE_QKV_B,
    MOFO_ROLE_O_W, MOFO_ROLE_O_B,
    MOFO_ROLE_NORM2_W, MOFO_ROLE_NORM2_B,
    MOFO_ROLE_GATE_W, MOFO_ROLE_UP_W, MOFO_ROLE_FC_W,
    MOFO_ROLE_GATE_B, MOFO_ROLE_UP_B, MOFO_ROLE_FC_B,
    MOFO_ROLE_DOWN_W, MOFO_ROLE_DOWN_B,
    MOFO_ROLE_NORMF_W, MOFO_ROLE_NORMF_B,
    MOFO_ROLE_LM_HEAD
} mofo_role;

/* One named parameter tensor. */
typedef struct mofo_param {
    char name[96];     /* the checkpoint's name */
    mofo_role role;
    int layer;         /* -1 outside the layers */
    int ndim;          /* 1 or 2 */
    int64_t shape[2];  /* in memory: (OC, C) for matrices */
    int transposed;    /* stored [C, OC] in the file (GPT-2 Conv1D) */
    mofo_dtype dtype;  /* dtype in the file; F32 for a new model */
    size_t offset;     /* into params / grads, in floats */
    int64_t numel;
} mofo_param;

/* PEFT's target_modules name of the layer matrix with this role in the config's family ("q_proj",
 * GPT-2's "c_attn", ...), or NULL. */
const char *mofo_family_module(const mofo_model_config *cfg, mofo_role role);

/* The parameter table a model with this config has (the one mofo_model_create and mofo_model_load
 * build: checkpoint names, shapes, offsets, F32 dtype) without allocating the parameters, so that a
 * 7B config can be checked on any machine. *out (free() it) gets *n tensors; *n_floats (may be NULL)
 * their total. */
int mofo_model_param_table(const mofo_model_config *cfg, mofo_param **out, int *n, size_t *n_floats,
                           mofo_err *err);

/* Pointers to one layer's tensors (NULL where the architecture has none). */
typedef struct mofo_layer_w {
    float *ln1_w, *ln1_b;   /* (C) */
    float *qkv_w, *qkv_b;   /* (QKV, C), (QKV); QKV = (NH + 2 NKV) HD: q rows, then k, then v */
    float *o_w, *o_b;       /* (C, NH HD), (C) */
    float *ln2_w, *ln2_b;   /* (C) */
    float *fc_w, *fc_b;     /* (FC, C), (FC); FC = FF (GELU) or 2 FF (SwiGLU: gate rows, then up) */
    float *proj_w, *proj_b; /* (C, FF), (C) */
} mofo_layer_w;

typedef struct mofo_weights {
    float *wte;             /* (V, C) */
    float *wpe;             /* (max_T, C), learned positions only */
    float *lnf_w, *lnf_b;   /* (C) */
    float *lm_head;         /* (V, C); equals wte when tied */
    mofo_layer_w *layer;    /* L of them */
} mofo_weights;

/* Saved activations of one forward pass, sized for B x T. */
typedef struct mofo_acts {
    int B, T;
    int kept;       /* layers whose activations the buffers hold: L (training) or 1 (evaluation) */
    int ready;      /* the last forward pass succeeded with targets: backward may run */
    int logits_ok;  /* logits holds the last forward's logits (not yet their gradient) */
    float *resid;   /* (L+1, B, T, C): input of each layer, then the last layer's output */
    float *ln1, *ln1_mean, *ln1_rstd;   /* (B, T, C): one layer's, recomputed by the backward; (L, B, T) x 2 */
    float *qkv;     /* (L, B, T, QKV) after bias and RoPE */
    float *lse;     /* (L, B, NH, T) log-sum-exp of each attention row (probabilities are recomputed) */
    float *atty;    /* (L, B, T, NH HD) */
    float *resid2;  /* (L, B, T, C) after the attention block */
    float *ln2, *ln2_mean, *ln2_rstd;   /* as ln1 */
    float *fc;      /* (L, B, T, FC) before the activation */
    float *fch;     /* (L, B, T, FF) after it */
    float *lnf, *lnf_mean, *lnf_rstd;   /* (B, T, C), (B, T), (B, T) */
    float *logits;  /* (B, T, V); after backward it holds dlogits */
    float *losses;  /* (B, T) per-position loss, 0 where ignored */
    /* backward scratch */
    float *dres, *dres2, *dln, *dqkv, *datty, *dfc, *dfch;
    float *attn_scratch; /* (2, T, T): one head's probabilities and their gradient */
    float *rope_cos, *rope_sin; /* (T, HD/2) */
    size_t n_floats;
} mofo_acts;

struct mofo_adapter; /* model/block.h */

typedef struct mofo_model {
    mofo_model_config cfg;
    const struct mofo_backend *be; /* where the parameters, gradients and activations live and run */
    char *config_json;      /* the checkpoint's config.json text, written back unchanged on save */
    size_t config_len;
    mofo_param *p;
    int n_p;
    float *params, *grads;  /* n_floats each; grads allocated by mofo_model_alloc_grads */
    size_t n_floats;
    mofo_weights w, g;      /* pointers into params and grads */
    mofo_acts a;
    int n_valid;            /* positions that counted in the last loss */
    /* LoRA (mofo_model_set_adapters): adapters the forward adds, sorted by layer; the caller's */
    const struct mofo_adapter *adapters;
    int n_adapters;
    int frozen;             /* the model's own weights get no gradient and no gradient buffer */
    mofo_precision precision; /* of the matrix products (mofo_model_set_precision); FP32 at creation */
    float *lora_scratch;    /* 2 N r_max floats */
    size_t lora_scratch_floats;
} mofo_model;

/* A model with this config and weights drawn from N(0, std) (norm gains from 1 + N(0, std)). */
int mofo_model_create(mofo_model **out, const mofo_model_config *cfg, uint64_t seed, float std, mofo_err *err);
/* A model to pre-train, initialised as transformers' _init_weights does with initializer_range std:
 * every matrix (embeddings, projections, lm_head) N(0, std); norm gains 1 and biases 0 exactly.
 * The draws are mofo_model_create's: the same (seed, std) gives the same matrices on any thread count. */
int mofo_model_create_hf_init(mofo_model **out, const mofo_model_config *cfg, uint64_t seed, float std,
                              mofo_err *err);

/* Copies the last forward's per-position cross-entropy, (B, T) floats (0 where the target is
 * ignored), into out: the host's copy of m->a.losses. */
int mofo_model_token_losses(const mofo_model *m, float *out, mofo_err *err);

/* What a parameter is for, read from its role. */
typedef enum {
    MOFO_KIND_EMBED, /* token (and learned position) embeddings */
    MOFO_KIND_ATTN,  /* q/k/v and output projections, their biases */
    MOFO_KIND_MLP,   /* the MLP's projections, their biases */
    MOFO_KIND_NORM,  /* norm gains and biases */
    MOFO_KIND_HEAD,  /* an untied lm_head */
    MOFO_N_KINDS
} mofo_param_kind;
mofo_param_kind mofo_model_param_kind(const mofo_model *m, int i);
mofo_param_kind mofo_role_kind(mofo_role r);
const char *mofo_param_kind_name(mofo_param_kind k); /* "embeddings", "attention", "mlp", "norms", "lm_head" */

/* The parameter named name, or NULL. */
const mofo_param *mofo_model_param(const mofo_model *m, const char *name);
/* Copies parameter i in the file's layout (transposed back for Conv1D) into out (numel floats). */
void mofo_model_param_file_layout(const mofo_model *m, int i, const float *src, float *out);

/* Attaches n LoRA adapters (block.h; sorted by layer; n = 0 detaches): the forward and the KV
 * cache add them, the backward accumulates their gA and gB. frozen: the model's own weights get no
 * gradient, so the backward skips every weight-gradient product and no gradient buffer is
 * allocated (any held is freed). The adapters stay the caller's and must outlive their use. */
int mofo_model_set_adapters(mofo_model *m, const struct mofo_adapter *a, int n, int frozen, mofo_err *err);

/* mofo_model_backward with the loss a mean over n_total counted positions (>= the last forward's),
 * as when the batch's other rows are on other processes: the gradients summed over the processes
 * are the whole batch's. */
int mofo_model_backward_over(mofo_model *m, const int *inputs, const int *targets, int64_t n_total, mofo_err *err);

/* Allocates (zeroed) gradients; called by backward when needed (never for a frozen model). */
int mofo_model_alloc_grads(mofo_model *m, mofo_err *err);

/* RoPE's inverse frequencies (HD/2 of them) for this config, as transformers computes them. */
void mofo_rope_inv_freq(const mofo_model_config *cfg, float *inv_freq);
/* RoPE's tables cos, sin (T, HD/2) for positions 0..T-1 (Hugging Face's rotate_half convention),
 * computed on the host and uploaded into the backend arrays cos_t, sin_t. */
int mofo_rope_upload(const struct mofo_backend *be, const mofo_model_config *c, float *cos_t, float *sin_t, int T,
                     mofo_err *err);

/* Floats of activations (and backward scratch) for B x T: the README's formula. */
size_t mofo_model_act_floats(const mofo_model_config *c, int B, int T);
/* Entries of the rounded copies a tf32 or bf16 product makes of its two inputs, for B x T rows: over
 * the linear layers (OC, C) and their three products (out = inp W^T, dinp = dout W, dW = dout^T inp
 * with inp (N, C), dout (N, OC), W (OC, C)), the largest first input plus the largest second one. */
size_t mofo_model_rounded_floats(const mofo_model_config *c, int B, int T);

#endif
