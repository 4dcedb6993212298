/* LoRA adapters as PEFT saves them (adapter_config.json + adapter_model.safetensors), merged into a
 * loaded model's weights in memory: W += scale * B A, scale = lora_alpha / r (lora_alpha / sqrt(r)
 * with use_rslora). A is (r, in), B is (out, r); the model's matrices are (out, in) in memory,
 * GPT-2's Conv1D ones included (they are transposed at load), so fan_in_fan_out needs no handling.
 * Tensor names: "base_model.model." + the module's name + ".lora_A.weight" / ".lora_B.weight"; the
 * module's ".weight" is looked up in the model (also without a leading "transformer." for GPT-2
 * checkpoints saved without it). DoRA, per-module rank/alpha patterns, LoRA biases, trainable
 * embeddings and modules_to_save are refused with a message naming them. */
#ifndef MOFO_EVAL_ADAPTER_H
#define MOFO_EVAL_ADAPTER_H

#include "model/model.h"

/* Merges the adapter in dir into m; *n_merged (may be NULL) gets the number of modules changed. On
 * an error m may be partly merged: reload it. */
int mofo_adapter_merge(mofo_model *m, const char *dir, int *n_merged, mofo_err *err);

#endif
