/* LoRA adapters as PEFT stores them, trained at LoRA's cost.
 *
 * For a targeted weight W0 (OC, C) (in memory; GPT-2's Conv1D weights are (OC, C) here too), the
 * adapter holds A (r, C) and B (OC, r) and the layer computes PEFT's x W0^T + s (x A^T) B^T with
 * s = alpha / r (alpha / sqrt(r) with rsLoRA). Training attaches the adapters to the model's block
 * (mofo_lora_attach; model/block.h has the products): the frozen base gets no weight gradient and
 * no gradient buffer, the adapters get dB = s dY^T (x A^T) and dA = s (dY B)^T x. The base weights
 * never change; the merged model W0 + s B A is made only to be saved or measured.
 *
 * Files: adapter_model.safetensors with "base_model.model.MODULE.lora_A.weight" [r, C] and
 * ".lora_B.weight" [OC, r], and adapter_config.json (peft_type LORA, r, lora_alpha, target_modules,
 * fan_in_fan_out for GPT-2's Conv1D, ...), which PEFT loads. */
#ifndef MOFO_TRAIN_LORA_H
#define MOFO_TRAIN_LORA_H

#include <stdint.h>

#include "model/model.h"
#include "mofo/error.h"
#include "mofo/optim.h"

struct mofo_adapter;
struct mofo_diff;

typedef struct mofo_lora_target {
    int param;            /* index into the model's parameters */
    int64_t OC, C;
    char a_name[160], b_name[160]; /* PEFT's names in adapter_model.safetensors */
    float *A, *B;         /* (r, C), (OC, r) */
    float *gA, *gB;       /* gradients, same shapes */
} mofo_lora_target;

typedef struct mofo_lora {
    const struct mofo_backend *be; /* the model's: where A, B, their gradients and the scratch live */
    int r;
    double alpha, scale;
    int rslora;
    mofo_lora_target *t;
    int n;
    char **modules;       /* target_modules as written to adapter_config.json */
    int n_modules;
    struct mofo_adapter *ad; /* (n) the targets as the model's block sees them (mofo_lora_attach) */
    float *scratch;       /* one target's merged weight, for mofo_lora_diff */
} mofo_lora;

/* Adapters on every 2-dim weight whose module (its name without ".weight") is one of targets
 * (comma-separated) or ends with "." + one of them. Short names map to each family's modules:
 * q, k, v -> q_proj, k_proj, v_proj (GPT-2: c_attn, the fused q/k/v); o -> o_proj (attn.c_proj);
 * gate, up -> gate_proj, up_proj (c_fc); down -> down_proj (mlp.c_proj). A is drawn as PEFT does
 * (kaiming-uniform: U(-1/sqrt(C), 1/sqrt(C))) from seed, B is zero, so the adapter starts as a no-op. */
int mofo_lora_create(mofo_lora **out, const mofo_model *m, const char *targets, int r, double alpha, uint64_t seed,
                     mofo_err *err);
/* Reads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) for model m. */
int mofo_lora_load(mofo_lora **out, const mofo_model *m, const char *dir, mofo_err *err);
/* Replaces A and B by those of an adapter directory written for the same targets. */
int mofo_lora_load_weights(mofo_lora *l, const char *dir, mofo_err *err);
int mofo_lora_save(const mofo_lora *l, const mofo_model *m, const char *dir, const char *base_name, mofo_err *err);
void mofo_lora_free(mofo_lora *l);

/* Attaches the adapters to m (mofo_model_set_adapters, the model frozen): its forward computes
 * x W0^T + s (x A^T) B^T on every target and its backward accumulates gA and gB without any
 * weight gradient; m->params stay the base weights. */
int mofo_lora_attach(mofo_lora *l, mofo_model *m, mofo_err *err);
/* Registers every A and B (PEFT's names, MOFO_GROUP_AUTO) with their gradients gA, gB in opt; with
 * owner (n), only the targets whose owner is rank (a process's share under ZeRO stage 1). */
int mofo_lora_register(const mofo_lora *l, mofo_optim *opt, const int *owner, int rank, mofo_err *err);
/* gA = gB = 0 on every target. */
void mofo_lora_zero_grads(mofo_lora *l);
/* out = base + s B A on every target (out and base: the model's layout, n_floats; out may be base;
 * the other tensors of out untouched). */
void mofo_lora_merge(const mofo_lora *l, const mofo_model *m, const float *base, float *out);
/* The merged model's difference from m->params (the base) into d, target by target through a
 * scratch of one target's size (no full-size copy). */
void mofo_lora_diff(const mofo_lora *l, const mofo_model *m, struct mofo_diff *d);

#endif
