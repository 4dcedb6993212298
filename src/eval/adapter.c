/* LoRA adapters merged for inference: PEFT's files read by the training code's reader (train/lora.c,
 * one implementation of the format), then W = W + scale * B A in place. */
#include "adapter.h"

#include "train/lora.h"

int mofo_adapter_merge(mofo_model *m, const char *dir, int *n_merged, mofo_err *err) {
    mofo_lora *l = NULL;
    int rc = mofo_lora_load(&l, m, dir, err);
    if (rc) return rc;
    mofo_lora_merge(l, m, m->params, m->params);
    if (n_merged) *n_merged = l->n;
    mofo_lora_free(l);
    return 0;
}
