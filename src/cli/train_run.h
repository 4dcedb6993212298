/* The command line's training loop (train_run.c), shared by mofo finetune and mofo pretrain. */
#ifndef MOFO_CLI_TRAIN_RUN_H
#define MOFO_CLI_TRAIN_RUN_H

#include <stdint.h>

#include "args.h"
#include "train/train.h"

typedef struct cli_train_flags {
    const char *cmd;        /* "finetune", "pretrain": names the command in messages */
    const char *out_dir;    /* the final model, checkpoint-STEP/, metrics.jsonl */
    const char *resume_dir; /* NULL: a fresh run */
    int64_t eval_every, save_every;
    int quiet;
} cli_train_flags;

/* The flags mofo finetune and mofo pretrain share. A command sets the defaults, then
 * cli_train_specs gives the table rows bound to these fields (their help names the defaults). */
typedef struct cli_train_args {
    const char *sched, *resume_dir, *device, *precision;
    double lr, warmup, clip, weight_decay, beta1, beta2, eps, val_split;
    int64_t epochs, steps, batch, grad_accum, seq_len, seed, eval_every, save_every, threads;
    int no_shuffle, pack, quiet;
    const char *seed_help, *sched_default;
    char help[4][96]; /* the rows whose help text carries a default */
} cli_train_args;

#define CLI_TRAIN_N_SPECS 24

/* Writes the CLI_TRAIN_N_SPECS shared rows into specs. */
void cli_train_specs(cli_train_args *a, arg_spec *specs);
/* Checks the shared values and copies them into o and f (schedule parsed into o->sched when given);
 * prints "mofo CMD: ..." and returns 2 on a bad one, else 0. */
int cli_train_apply(const char *cmd, const cli_train_args *a, mofo_train_opts *o, cli_train_flags *f);

/* Creates the trainer from o, trains, writes OUT; prints progress and the summary. Returns the exit
 * status: 0, 1 (failure), 2 (bad options), 130 (interrupted, checkpoint written). */
int cli_train_run(const mofo_train_opts *o, const cli_train_flags *f);

#endif
