/* Full fine-tuning: every entry of every tensor moves (the base rule dense). */
#include "train/method.h"

const mofo_method_def MOFO_METHOD_DEF_ADAMW = {
    .name = "adamw",
    .help = "full fine-tuning, every entry dense",
};
