/* The results of `mofo demo` as files: results.json, results.md, and the data and gnuplot scripts of
 * its plots. Every table is computed from the numbers results.json holds, so a reader (or a test)
 * can recompute it from the JSON alone:
 *   general = knowledge_acc, drop = base.knowledge_acc - knowledge_acc (in points);
 *   the matched table reads each (method, seed) curve at one task accuracy (matched.h) and gives
 *   the mean and sample standard deviation over the seeds. */
#ifndef MOFO_DEMO_REPORT_H
#define MOFO_DEMO_REPORT_H

#include "demo/demo.h"
#include "io/strbuf.h"

#define MOFO_DEMO_MAX_SEEDS 8

typedef struct mofo_demo_run {
    char name[32];      /* the curve's name: "adamw", "mofo", ..., "mofo a=0.05" */
    char method[16];    /* mofo_method_name */
    double lr, alpha, reg; /* alpha: mofo only, reg: l1/l2 only (else NaN) */
    int seed, steps;    /* seed: data order (and LoRA's initialisation) */
    double val_loss;    /* loss on the 5% of math_train held out */
    double val_acc;     /* math_val exact match: the run of each method with the best one is chosen */
    double ms_per_step;
    double coverage;    /* trainable entries moved at least once / trainable entries (libmofo's) */
    float *loss;        /* (steps) training loss of each step */
    mofo_demo_scores s; /* on the test files */
    char command[1536]; /* the mofo finetune command line that repeats the run */
    char eval_command[3072]; /* chosen runs (their models are saved): the mofo eval lines; else "" */
    int chosen;
} mofo_demo_run;

#define MOFO_DEMO_N_LEVELS 9 /* the curves read at 10%, 20%, ..., 90% task accuracy too */

typedef struct mofo_demo_matched {
    char name[32];
    int n_seeds;
    double knowledge, sd; /* mean and sample standard deviation over the seeds (NaN for one seed) */
    double per_seed[MOFO_DEMO_MAX_SEEDS];
    double at[MOFO_DEMO_N_LEVELS], at_sd[MOFO_DEMO_N_LEVELS]; /* at 10k% task accuracy; NaN: not reached */
} mofo_demo_matched;

typedef struct mofo_demo_report {
    mofo_demo_scores base;
    mofo_demo_run *runs; /* every run, each curve's runs together */
    int n_runs;
    const char *kind;        /* "methods" or "alpha": the key of results.json the chosen runs go under */
    const char *plot_suffix; /* "" or "_alpha": loss<suffix>.png, tradeoff<suffix>.png (NULL: "") */
    char settings[2560];     /* a JSON object's members (no braces): the run's options */
    double seconds;          /* wall time of the whole demo */
    /* mofo_demo_match: */
    double level;            /* the task accuracy every curve reaches (NaN: none) */
    mofo_demo_matched *matched; /* one per name, in the order of the runs */
    int n_matched;
} mofo_demo_report;

/* Groups the runs by name and seed and reads every curve at the level they all reach (matched.h),
 * rounded down to 5 points; fills level and matched (freed by mofo_demo_report_free). */
int mofo_demo_match(mofo_demo_report *r, mofo_err *err);
void mofo_demo_report_free(mofo_demo_report *r);

/* The tables as markdown: matched knowledge, then the chosen run of each method, then what moved. */
void mofo_demo_table(const mofo_demo_report *r, mofo_strbuf *sb);
/* results.json: {"seconds", "n_knowledge_items", "base", "<kind>": {NAME: chosen run}, "curves": {NAME:
 * [every run]}, "matched": {"task_acc", "methods": {NAME: {"knowledge_acc", "knowledge_acc_sd", ...}}},
 * "settings"}. */
void mofo_demo_json(const mofo_demo_report *r, mofo_strbuf *sb);
/* results.md: what was run, the tables, every run of every curve, and how to read them. */
void mofo_demo_markdown(const mofo_demo_report *r, mofo_strbuf *sb);
/* The plots' data and gnuplot scripts into dir: loss.dat + loss.gp (training loss per step of each
 * chosen run) and tradeoff.dat + tradeoff.gp (each method's curve of task accuracy against knowledge
 * kept, its runs as points, the matched level as a line), each name with r->plot_suffix before the
 * dot. Each script writes the PNG of its name when run by gnuplot in dir. */
int mofo_demo_plot_files(const mofo_demo_report *r, const char *dir, mofo_err *err);

#endif
