/* LoRA: adapters B A on the targeted linear layers (train/lora.h) attached to the frozen base
 * (x W0^T + s (x A^T) B^T; no weight gradient); only A and B are given to the optimizer, and the
 * adapter is what is saved (with --merge also the merged model). lora-mofo adds MoFO's filter on
 * the adapter matrices, alpha per matrix. */
#include "train/method.h"

const mofo_method_def MOFO_METHOD_DEF_LORA = {
    .name = "lora",
    .help = "LoRA adapters on the frozen base, dense updates",
    .adapters = true,
};

const mofo_method_def MOFO_METHOD_DEF_LORA_MOFO = {
    .name = "lora-mofo",
    .help = "LoRA with MoFO's filter on the adapter matrices",
    .adapters = true,
    .filtered = true,
};
