/* What the studies of `mofo demo` share (cmd_demo.c: the methods and the alpha sweep;
 * demo_continual.c: tasks in sequence): the methods with their learning-rate grids, the demo's
 * state, and one fine-tuning run through the trainer. */
#ifndef MOFO_CLI_DEMO_CLI_H
#define MOFO_CLI_DEMO_CLI_H

#include "demo/demo.h"
#include "demo/world.h"
#include "train/train.h"

#define DEMO_GRID 3
#define DEMO_QUICK_LR 2
#define DEMO_CONTINUAL_LR 1

typedef struct demo_method {
    const char *name;
    mofo_method method;
    double alpha, reg; /* NaN when the method has none */
    double lrs[DEMO_GRID]; /* the grid, ascending; --quick takes lrs[DEMO_QUICK_LR], --continual lrs[DEMO_CONTINUAL_LR] */
    int seeds;             /* seeds in the default demo (--seeds sets those with more than one; --full all) */
} demo_method;

#define DEMO_N_METHODS 6
extern const demo_method DEMO_METHODS[DEMO_N_METHODS];

typedef struct demo {
    char out[2048], world[2100], base_dir[2048];
    int steps, batch, seq_len, threads, quick;
    int jobs;           /* runs trained at once (--jobs); each on one thread when > 1 */
    double lr_scale;    /* every grid's rates times this (--lr-scale) */
    mofo_world_opts wo;
    mofo_world w;       /* the world of OUT/world, built from the base's world.json */
    mofo_model *base;   /* the base model, for distances */
    mofo_tokenizer *tok;
    double t0;          /* cli_now() at the start */
    int run_no, n_runs_total; /* progress: runs started, runs in all */
} demo;

/* mkdir that accepts an existing folder; 0 or -1 (errno set) */
int demo_make_dir(const char *dir);
/* "mofo demo: WHAT: MESSAGE" on stderr; returns 1 */
int demo_fail(const char *what, const mofo_err *err);
/* Builds d->w from the base's world.json and writes it into d->world. */
int demo_make_world(demo *d, mofo_err *err);
/* The finetune options of a run of method m at lr with data order (and LoRA initialisation) seed,
 * from model_dir on data_path into out_dir. */
void demo_run_opts(const demo *d, const demo_method *m, double lr, uint64_t seed, const char *model_dir,
                   const char *data_path, const char *out_dir, mofo_train_opts *o);
/* The mofo finetune command line with the same options. */
void demo_finetune_command(const mofo_train_opts *o, char *out, size_t cap);
/* Trains t to its last step, showing the step on a terminal when d runs one job at a time; loss[s] = step s's loss (t->total_steps
 * floats), *ms_per_step the mean wall time of a step, *coverage (may be NULL) the last step's
 * fraction of trainable entries ever updated. */
int demo_train(const demo *d, mofo_trainer *t, float *loss, double *ms_per_step, double *coverage, mofo_err *err);

/* Runs fn(ctx, i, err) for i in [0, n), up to jobs at once (OpenMP threads; the libraries' own
 * parallel regions inside run on one thread then). After a failure no further i starts; returns the
 * failure of the lowest i, its message in err. fn must touch only what belongs to its i. */
typedef int (*demo_job)(void *ctx, int i, mofo_err *err);
int demo_parallel(int n, int jobs, demo_job fn, void *ctx, mofo_err *err);
/* The next run's number for the progress lines (safe from several jobs). */
int demo_next_run(demo *d);

/* The continual study (demo_continual.c): use[i] selects DEMO_METHODS[i]. */
int demo_continual(demo *d, const int *use, const mofo_demo_scores *base, int json, mofo_err *err);

#endif
