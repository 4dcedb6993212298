/* MoFO (the paper's method): every tensor trains; in each tensor with 2+ dims only the fraction
 * alpha of entries with the largest |m| move, 1-dim tensors dense (libmofo's default policy). */
#include "train/method.h"

const mofo_method_def MOFO_METHOD_DEF_MOFO = {
    .name = "mofo",
    .help = "momentum-filtered: per tensor only the fraction alpha with the largest |m| moves (default)",
    .filtered = true,
};
