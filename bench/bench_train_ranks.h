#ifndef MOFO_BENCH_TRAIN_RANKS_H
#define MOFO_BENCH_TRAIN_RANKS_H
#include "model/model.h"
/* mofo bench train --ranks N (bench_train_ranks.c). */
int bench_train_ranks(const mofo_model_config *cfg, const char *method, int B, int T, int steps, int ranks, int json);
#endif
