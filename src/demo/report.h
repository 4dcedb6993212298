/* The results of `mofo demo` as files: results.json, results.md, and the data and gnuplot scripts of
 * its plots. The markdown table is computed from the same numbers results.json holds, so a reader
 * (or a test) can recompute it from the JSON alone:
 *   general = knowledge_acc, drop = base.knowledge_acc - method.knowledge_acc (in points). */
#ifndef MOFO_DEMO_REPORT_H
#define MOFO_DEMO_REPORT_H

#include "demo/demo.h"
#include "io/strbuf.h"

typedef struct mofo_demo_run {
    char name[32];      /* the row's name: "adamw", "mofo", ..., "mofo a=0.05", "after math" */
    char method[16];    /* mofo_method_name */
    double lr, alpha, reg; /* alpha: mofo only, reg: l1/l2 only (else NaN) */
    double val_loss;    /* loss on the 5% of math_train held out: the rate with the lowest is chosen */
    double val_acc;     /* math_val exact match of the chosen rate (reported, not used to choose) */
    double ms_per_step;
    int steps;
    float *loss;        /* (steps) training loss of each step */
    mofo_demo_scores s; /* on the test files */
    char command[1536]; /* the mofo finetune command line of the chosen run */
    char eval_command[3072]; /* the mofo eval command lines that rescore its saved model */
} mofo_demo_run;

typedef struct mofo_demo_report {
    mofo_demo_scores base;
    mofo_demo_run *runs;
    int n_runs;
    const char *kind;       /* "methods" or "alpha": the key of results.json the runs go under */
    const char *plot_suffix; /* "" or "_alpha": loss<suffix>.png, tradeoff<suffix>.png (NULL: "") */
    char settings[2560];    /* a JSON object's members (no braces): the run's options */
    double seconds;         /* wall time of the whole demo */
} mofo_demo_report;

/* The table as markdown: a row for the base, then one per run. */
void mofo_demo_table(const mofo_demo_report *r, mofo_strbuf *sb);
/* results.json: {"base": {...}, "<kind>": {"NAME": {...}, ...}, "settings": {...}, "seconds": S}. */
void mofo_demo_json(const mofo_demo_report *r, mofo_strbuf *sb);
/* results.md: what was run, the table, and how to read it. */
void mofo_demo_markdown(const mofo_demo_report *r, mofo_strbuf *sb);
/* The plots' data and gnuplot scripts into dir: loss.dat + loss.gp (training loss per step, one
 * column per run) and tradeoff.dat + tradeoff.gp (task accuracy against knowledge retained), each
 * name with r->plot_suffix before the dot. Each script writes the PNG of its name (loss.png,
 * tradeoff.png) when run by gnuplot in dir. */
int mofo_demo_plot_files(const mofo_demo_report *r, const char *dir, mofo_err *err);

#endif
