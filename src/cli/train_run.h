/* The command line's training loop (train_run.c), shared by mofo finetune and mofo pretrain. */
#ifndef MOFO_CLI_TRAIN_RUN_H
#define MOFO_CLI_TRAIN_RUN_H

#include <stdint.h>

#include "train/train.h"

typedef struct cli_train_flags {
    const char *cmd;        /* "finetune", "pretrain": names the command in messages */
    const char *out_dir;    /* the final model, checkpoint-STEP/, metrics.jsonl */
    const char *resume_dir; /* NULL: a fresh run */
    int64_t eval_every, save_every;
    int quiet;
} cli_train_flags;

/* Creates the trainer from o, trains, writes OUT; prints progress and the summary. Returns the exit
 * status: 0, 1 (failure), 2 (bad options), 130 (interrupted, checkpoint written). */
int cli_train_run(const mofo_train_opts *o, const cli_train_flags *f);

#endif
