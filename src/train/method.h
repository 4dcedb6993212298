/* A fine-tuning method as one description the trainer reads: which tensors train, whether MoFO's
 * filter applies, the gradient hook (the L1/L2 pull), and whether adapters (what is then saved)
 * train instead of the model's weights. One file per method in train/method/; the registry
 * (method.c) lists them in the order of mofo_method, and the CLI's method list and help come
 * from it. Adding a method: its file, an enumerator in mofo/engine.h, a line in the registry. */
#ifndef MOFO_TRAIN_METHOD_H
#define MOFO_TRAIN_METHOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/model.h"

typedef struct mofo_method_def {
    const char *name;  /* the --method value, the metrics' and checkpoints' "method" */
    const char *help;  /* one line */
    bool adapters;     /* LoRA adapters train on the frozen base (train/lora.h) and are what is saved */
    bool filtered;     /* MoFO's momentum filter (alpha) on what trains; else every entry moves */
    bool needs_reg;    /* reg > 0 required */
    /* whether the model's tensor p trains (not for adapter methods); NULL: every tensor */
    bool (*trains)(const mofo_param *p);
    /* adds the method's term to the gradient g (n) of a trainable tensor theta (theta0: its
     * pre-trained values) and returns the term's value, added to the loss; NULL: none */
    double (*grad_hook)(const mofo_backend *be, double reg, const float *theta, const float *theta0, float *g,
                        int64_t n);
} mofo_method_def;

/* The method's description (m < MOFO_N_METHODS). */
const mofo_method_def *mofo_method_def_of(mofo_method m);
/* The method names joined by sep ("mofo | adamw | ..."), for help and messages. */
const char *mofo_method_names(const char *sep);

extern const mofo_method_def MOFO_METHOD_DEF_MOFO, MOFO_METHOD_DEF_ADAMW, MOFO_METHOD_DEF_L1, MOFO_METHOD_DEF_L2,
    MOFO_METHOD_DEF_HFT, MOFO_METHOD_DEF_LORA, MOFO_METHOD_DEF_LORA_MOFO;

#endif
