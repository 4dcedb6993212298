/* mofo demo: fine-tunes the shipped base model on the world's arithmetic task with each method at
 * each learning rate of its grid (and several seeds), and compares the knowledge each one kept at a
 * task accuracy they all reach (src/demo/demo.h for the measurements, src/demo/matched.h for the
 * comparison, src/demo/report.h for the files). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "args.h"
#include "demo_cli.h"
#include "commands.h"
#include "demo/report.h"
#include "io/atomic_file.h"
#include "io/strbuf.h"
#include "backend/blas.h"
#include "threads.h"
#include "timing.h"

#ifndef MOFO_DEMO_BASE_DIR
#define MOFO_DEMO_BASE_DIR "models/demo-base"
#endif

#define DEMO_STEPS 130
#define DEMO_MAX_ALPHAS 16
#define DEMO_MAX_CURVES (DEMO_MAX_ALPHAS > DEMO_N_METHODS ? DEMO_MAX_ALPHAS : DEMO_N_METHODS)
#define DEMO_QUICK_STEPS 8

typedef struct demo_args {
    const char *out, *base, *sweep, *methods;
    int64_t steps, threads, seeds, jobs;
    double lr_scale;
    int quick, json, continual, full;
} demo_args;

static demo_args A;
static const arg_spec SPECS[] = {
    {"out", ARG_STR, &A.out, "DIR", "where the world, the models and the results go (default demo-out)"},
    {"quick", ARG_FLAG, &A.quick, NULL, "a smoke run: one learning rate and one seed per method, 8 steps"},
    {"full", ARG_FLAG, &A.full, NULL, "every method at every rate with --seeds seeds, then the alpha study and the continual study"},
    {"json", ARG_FLAG, &A.json, NULL, "print results.json instead of the table"},
    {"base", ARG_STR, &A.base, "DIR", "the base model (default: the shipped " MOFO_DEMO_BASE_DIR ")"},
    {"methods", ARG_STR, &A.methods, "LIST", "comma-separated subset of adamw,mofo,l1,l2,hft,lora (default all)"},
    {"steps", ARG_INT, &A.steps, "N", "fine-tuning steps per run (default 130; --quick 8)"},
    {"lr-scale", ARG_DOUBLE, &A.lr_scale, "X",
     "every learning rate of every grid times X (default 1; the paper's regime: --lr-scale 0.25 --steps 520)"},
    {"seeds", ARG_INT, &A.seeds, "N", "seeds of AdamW and MoFO (of every method with --full; default 3, at most 8; --sweep-alpha: 1)"},
    {"sweep-alpha", ARG_STR, &A.sweep, "LIST", "instead: MoFO at each alpha of LIST (e.g. 0.05,0.15,1), the paper's study"},
    {"continual", ARG_FLAG, &A.continual, NULL,
     "instead: three arithmetic tasks in sequence per method; R, OP and BWT as TRACE defines them"},
    {"jobs", ARG_INT, &A.jobs, "N",
     "runs trained at once, each on one thread (default: one per core, as --threads; 1: one run at a time on --threads)"},
    {"threads", ARG_INT, &A.threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_demo_help(FILE *out) {
    args_help(out, "demo", "[--out DIR] [--quick | --full] [--json] [--sweep-alpha LIST | --continual] [flags]", SPECS,
              N_SPECS);
    fprintf(out,
            "\nStarts from the shipped base (a small Llama pre-trained by `mofo pretrain` on the world's\n"
            "biographies and arithmetic; its world.json names the world) and writes OUT/world (`mofo world`),\n"
            "then fine-tunes each method on OUT/world/math_train.jsonl at each learning rate of its grid\n"
            "(AdamW and MoFO with three seeds) and scores every run on math_test and on the knowledge files.\n"
            "Each method's runs are a curve of task accuracy against knowledge kept; the table reads every\n"
            "curve at the task accuracy that all of them reach (mean and sd over seeds), so that no method\n"
            "wins by learning less. The run of each method with the best math_val exact match is its chosen\n"
            "one (saved in OUT/models/METHOD). Writes OUT/results.json, OUT/results.md, OUT/loss.png and\n"
            "OUT/tradeoff.png (gnuplot; its scripts and data stay beside them). Each run's mofo finetune\n"
            "command is in results.json.\n"
            "--sweep-alpha: MoFO alone at each alpha (results_alpha.*, loss_alpha.png, tradeoff_alpha.png).\n"
            "--continual: each method trains on addition, then subtraction, then multiplication and division\n"
            "(the task split by kind), at the middle rate of its grid, each task's model starting from the\n"
            "last; R[i][j] is the exact match on task j's test questions after task i, OP the mean of the last\n"
            "row, BWT the mean of R[last][j] - R[j][j] over the earlier tasks (results_continual.*).\n");
}

/* The models of a curve go to OUT/models/NAME (spaces and '=' made '_'). */
static void model_dir(const demo *d, const char *name, char *out, size_t cap) {
    snprintf(out, cap, "%s/models/%s", d->out, name);
    for (char *c = out + strlen(d->out) + 8; *c; c++)
        if (*c == ' ' || *c == '=') *c = '_';
}

/* One run of a study: method ms (named name: its curve) at lr with data order seed. */
typedef struct planned_run {
    demo_method ms;
    char name[32];
    double lr;
    int seed;
} planned_run;

/* One run: fine-tunes p's method on data_path and scores it on math_val (val_acc; seed 1 only, the
 * runs that choose), the held-out training examples (val_loss), math_test and the knowledge files
 * (no perplexity: choose), into u. With keep, the trainer is kept in *keep (the caller frees it); else freed. */
static int run_one(demo *d, const planned_run *p, const char *data_path, mofo_demo_run *u, mofo_trainer **keep,
                   mofo_err *err) {
    const demo_method *ms = &p->ms;
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", p->name);
    snprintf(u->method, sizeof u->method, "%s", mofo_method_name(ms->method));
    u->alpha = ms->alpha, u->reg = ms->reg, u->steps = d->steps, u->lr = p->lr, u->seed = p->seed;
    u->loss = malloc((size_t)d->steps * sizeof *u->loss);
    if (!u->loss) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    char out_dir[2300];
    model_dir(d, p->name, out_dir, sizeof out_dir);
    mofo_train_opts o;
    demo_run_opts(d, ms, p->lr, (uint64_t)p->seed, d->base_dir, data_path, out_dir, &o);
    demo_finetune_command(&o, u->command, sizeof u->command);
    mofo_trainer *t = NULL;
    mofo_demo_scores val;
    int rc = mofo_trainer_create(&t, &o, err);
    if (!rc) rc = demo_train(d, t, u->loss, &u->ms_per_step, &u->coverage, err);
    if (!rc) rc = mofo_trainer_eval(t, &u->val_loss, err);
    val.task_acc = NAN;
    if (!rc && p->seed == 1) rc = mofo_demo_evaluate(t->m, t->tok, d->world, MOFO_DEMO_VAL, &val, err);
    if (!rc) rc = mofo_demo_evaluate(t->m, t->tok, d->world, MOFO_DEMO_TASK | MOFO_DEMO_KNOWLEDGE, &u->s, err);
    float *trained = NULL; /* the trained weights: LoRA's merged into a copy */
    if (!rc && !(trained = mofo_trainer_weights(t, err))) rc = err->code;
    if (!rc) mofo_demo_distance(t->m, trained, d->base->params, &u->s);
    if (trained != t->m->params) t->m->be->free(trained);
    if (rc) {
        mofo_err_prefix(err, "%s lr %g seed %d", p->name, p->lr, p->seed);
        mofo_trainer_free(t);
        return rc;
    }
    if (!mofo_method_def_of(o.method)->filtered) u->coverage = NAN; /* dense: all move */
    u->val_acc = val.task_acc;
    char val_txt[32] = "";
    if (isfinite(u->val_acc)) snprintf(val_txt, sizeof val_txt, "val %.1f%%, ", 100 * u->val_acc);
    fprintf(stderr, "[%3.0f s] %d/%d %s lr %g seed %d: %d steps, %.0f ms/step, loss %.3f -> %.3f; %stask %.1f%%, "
                    "knowledge EM %.1f%% MC %.1f%%\n",
            cli_now() - d->t0, demo_next_run(d), d->n_runs_total, p->name, p->lr, p->seed, d->steps, u->ms_per_step,
            (double)u->loss[0], (double)u->loss[d->steps - 1], val_txt, 100 * u->s.task_acc, 100 * u->s.knowledge_em,
            100 * u->s.knowledge_mc);
    if (keep) *keep = t;
    else mofo_trainer_free(t);
    return 0;
}

typedef struct study_jobs {
    demo *d;
    const planned_run *plan; /* (n) */
    const char *data_path;
    mofo_demo_run *runs;     /* (n) run i's results */
    mofo_trainer **kept;     /* (n) the seed-1 runs' trainers, until their curve has chosen */
} study_jobs;

static int study_job(void *ctx, int i, mofo_err *err) {
    study_jobs *s = ctx;
    const planned_run *p = &s->plan[i];
    return run_one(s->d, p, s->data_path, &s->runs[i], p->seed == 1 ? &s->kept[i] : NULL, err);
}

/* Of the runs [first, last) of one curve, the seed-1 run with the best math_val exact match (ties: the
 * smaller rate, the earlier in the plan) is the chosen one; its model is saved in OUT/models/NAME and
 * its perplexity measured (the other runs have none: the curves do not need it). */
static int choose(demo *d, const planned_run *plan, int first, int last, mofo_demo_run *runs, mofo_trainer **kept,
                  mofo_err *err) {
    int chosen = -1;
    for (int i = first; i < last; i++)
        if (kept[i] && (chosen < 0 || runs[i].val_acc > runs[chosen].val_acc)) chosen = i;
    if (chosen < 0) return 0;
    char out_dir[2300];
    model_dir(d, plan[chosen].name, out_dir, sizeof out_dir);
    mofo_demo_run *u = &runs[chosen];
    u->chosen = 1;
    if (demo_make_dir(out_dir)) return mofo_errf(err, MOFO_EIO, "%s: cannot create: %s", out_dir, strerror(errno));
    mofo_demo_scores p;
    int rc = mofo_trainer_save_final(kept[chosen], out_dir, err);
    if (!rc) rc = mofo_demo_evaluate(kept[chosen]->m, kept[chosen]->tok, d->world, MOFO_DEMO_PPL, &p, err);
    if (!rc) u->s.ppl = p.ppl;
    mofo_demo_eval_command(out_dir, d->world, MOFO_DEMO_TASK | MOFO_DEMO_KNOWLEDGE | MOFO_DEMO_PPL, u->eval_command,
                           sizeof u->eval_command);
    return rc;
}

/* writes results.json, results.md and the plots; prints the table (or the JSON) */
static int report(demo *d, mofo_demo_report *r, const char *stem, mofo_err *err) {
    mofo_strbuf js = {0}, md = {0};
    r->seconds = cli_now() - d->t0;
    int rc = mofo_demo_match(r, err);
    if (rc) return rc;
    mofo_demo_json(r, &js);
    mofo_demo_markdown(r, &md);
    char path[2300];
    rc = js.failed || md.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : 0;
    snprintf(path, sizeof path, "%s/%s.json", d->out, stem);
    if (!rc) rc = mofo_write_file_atomic(path, js.data, js.len, err);
    snprintf(path, sizeof path, "%s/%s.md", d->out, stem);
    if (!rc) rc = mofo_write_file_atomic(path, md.data, md.len, err);
    if (!rc) rc = mofo_demo_plot_files(r, d->out, err);
    if (!rc) {
        char cmd[2400];
        const char *x = r->plot_suffix;
        snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot loss%s.gp tradeoff%s.gp 2>&1", d->out, x, x);
        int st = system(cmd);
        if (st != 0)
            fprintf(stderr, "mofo demo: gnuplot failed (status %d): loss%s.png and tradeoff%s.png not drawn; the data "
                            "and scripts are in %s (install gnuplot-nox)\n", st, x, x, d->out);
        if (A.json) {
            fputs(js.data, stdout);
        } else {
            mofo_strbuf tb = {0};
            mofo_demo_table(r, &tb);
            if (tb.data) fputs(tb.data, stdout);
            mofo_sb_free(&tb);
            printf("results in %s/%s.json and %s.md; plots %s/loss%s.png, %s/tradeoff%s.png (%.0f s)\n", d->out, stem,
                   stem, d->out, x, d->out, x, r->seconds);
        }
    }
    mofo_sb_free(&js);
    mofo_sb_free(&md);
    return rc;
}

static int parse_methods(const char *list, int *use) {
    for (int i = 0; i < DEMO_N_METHODS; i++) use[i] = list == NULL;
    if (!list) return 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < DEMO_N_METHODS; i++)
            if (strlen(DEMO_METHODS[i].name) == n && strncmp(p, DEMO_METHODS[i].name, n) == 0) use[i] = found = 1;
        if (!found) {
            fprintf(stderr, "mofo demo: --methods: '%.*s' is not one of adamw, mofo, l1, l2, hft, lora\n", (int)n, p);
            return -1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* "0.05,0.15,1" -> up to cap values in (0, 1]; the count, or -1 after a message */
static int parse_alphas(const char *s, double *out, int cap) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double a = strtod(p, &end);
        if (end == p || errno || !(a > 0 && a <= 1) || (*end && *end != ',') || n == cap) {
            fprintf(stderr, "mofo demo: --sweep-alpha '%s': a comma-separated list of at most %d values in (0, 1]\n", s,
                    cap);
            return -1;
        }
        out[n++] = a;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(stderr, "mofo demo: --sweep-alpha: no value given\n");
    return n ? n : -1;
}

/* The seeds of a curve: one for --quick; in the alpha study --seeds (default one); else --seeds for
 * every method with --full, and otherwise the method's own count with --seeds replacing counts above one. */
static int curve_seeds(const demo_method *ms, int alpha_study) {
    if (A.quick) return 1;
    if (alpha_study) return A.seeds > 0 ? (int)A.seeds : 1;
    int seeds = A.seeds > 0 ? (int)A.seeds : 3;
    return A.full || ms->seeds > 1 ? seeds : 1;
}

/* The methods study (n_alpha == 0) or the alpha study: the plan of every run (each curve's runs
 * together: each seed, each rate of the grid, --quick one), the runs d->jobs at a time, each curve's
 * choice, then the report. */
static int study(demo *d, const int *use, const double *alphas, int n_alpha, const mofo_demo_scores *base,
                 mofo_err *err) {
    mofo_demo_report r = {.base = *base, .kind = n_alpha ? "alpha" : "methods", .plot_suffix = n_alpha ? "_alpha" : ""};
    int n_curves = n_alpha ? n_alpha : DEMO_N_METHODS, n = 0, rc = 0;
    int cap = n_curves * MOFO_DEMO_MAX_SEEDS * DEMO_GRID;
    planned_run *plan = calloc((size_t)cap, sizeof *plan);
    mofo_trainer **kept = calloc((size_t)cap, sizeof *kept);
    r.runs = calloc((size_t)cap, sizeof *r.runs);
    if (!plan || !kept || !r.runs) {
        free(plan), free(kept), free(r.runs);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    int first[DEMO_MAX_CURVES], end[DEMO_MAX_CURVES]; /* curve i: plan[first[i] .. end[i]) */
    for (int i = 0; i < n_curves; i++) {
        first[i] = end[i] = n;
        if (!n_alpha && !use[i]) continue;
        demo_method ms = DEMO_METHODS[n_alpha ? 1 : i];
        char name[32];
        if (n_alpha) ms.alpha = alphas[i], snprintf(name, sizeof name, "mofo a=%g", alphas[i]);
        else snprintf(name, sizeof name, "%s", ms.name);
        for (int seed = 1; seed <= curve_seeds(&ms, n_alpha > 0); seed++)
            for (int g = 0; g < DEMO_GRID; g++) {
                if (d->quick && g != DEMO_QUICK_LR) continue;
                planned_run *p = &plan[n++];
                p->ms = ms, p->lr = ms.lrs[g] * d->lr_scale, p->seed = seed;
                snprintf(p->name, sizeof p->name, "%s", name);
            }
        end[i] = n;
    }
    d->run_no = 0, d->n_runs_total = n;
    char data[2300];
    snprintf(data, sizeof data, "%s/%s", d->world, mofo_world_file_name(MOFO_WF_MATH_TRAIN));
    fprintf(stderr, "%d runs, %d at a time\n", n, d->jobs < n ? d->jobs : n);
    study_jobs s = {d, plan, data, r.runs, kept};
    rc = demo_parallel(n, d->jobs, study_job, &s, err);
    r.n_runs = n;
    for (int i = 0; i < n_curves && !rc; i++) rc = choose(d, plan, first[i], end[i], r.runs, kept, err);
    for (int i = 0; i < n; i++) mofo_trainer_free(kept[i]);
    free(kept), free(plan);
    if (!rc) {
        snprintf(r.settings, sizeof r.settings,
                 "\"base\": \"%.1500s\", \"world_seed\": %llu, \"people\": %d, \"steps\": %d, \"batch\": %d, "
                 "\"seq_len\": %d, \"schedule\": \"linear, warm-up 0.1\", \"quick\": %s, \"val_problems\": %d, "
                 "\"test_problems\": %d, \"lr_scale\": %.17g, \"jobs\": %d, \"matrix_products\": \"%s\"",
                 d->base_dir, (unsigned long long)d->wo.seed, d->wo.n_people, d->steps, d->batch, d->seq_len,
                 d->quick ? "true" : "false", d->wo.n_val, d->wo.n_test, d->lr_scale, d->jobs, mofo_blas_kernel());
        rc = report(d, &r, n_alpha ? "results_alpha" : "results", err);
    }
    mofo_demo_report_free(&r);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    memset(&A, 0, sizeof A);
    A.steps = -1;
    A.lr_scale = 1;
    if (args_parse("demo", argc, argv, SPECS, N_SPECS)) return 2;
    int use[DEMO_N_METHODS];
    double alphas[DEMO_MAX_ALPHAS];
    int n_alpha = 0;
    if (parse_methods(A.methods, use)) return 2;
    if ((A.sweep != NULL) + A.continual + A.full > 1) {
        fprintf(stderr, "mofo demo: --sweep-alpha, --continual and --full are separate studies; give one\n");
        return 2;
    }
    if (A.quick && A.full) {
        fprintf(stderr, "mofo demo: --quick and --full: give one\n");
        return 2;
    }
    if (A.sweep && (n_alpha = parse_alphas(A.sweep, alphas, DEMO_MAX_ALPHAS)) < 0) return 2;
    if (A.threads < 0 || A.jobs < 0 || A.jobs > 256 || A.steps == 0 || A.steps < -1 || A.steps > 1000000 || A.seeds < 0 ||
        A.seeds > MOFO_DEMO_MAX_SEEDS || !(A.lr_scale > 0 && A.lr_scale <= 100)) {
        fprintf(stderr, "mofo demo: --threads must be >= 0, --jobs in 1..256, --steps in 1..1000000, --seeds in 1..%d and --lr-scale in (0, 100]\n",
                MOFO_DEMO_MAX_SEEDS);
        return 2;
    }
    demo *d = calloc(1, sizeof *d);
    if (!d) return demo_fail("out of memory", NULL);
    d->t0 = cli_now();
    d->quick = A.quick;
    d->steps = A.steps > 0 ? (int)A.steps : A.quick ? DEMO_QUICK_STEPS : DEMO_STEPS;
    d->batch = 16, d->seq_len = 256, d->threads = (int)A.threads;
    d->lr_scale = A.lr_scale;
    d->jobs = A.jobs > 0 ? (int)A.jobs : A.threads > 0 ? (int)A.threads : omp_get_num_procs();
    snprintf(d->out, sizeof d->out, "%s", A.out ? A.out : "demo-out");
    snprintf(d->base_dir, sizeof d->base_dir, "%s", A.base ? A.base : MOFO_DEMO_BASE_DIR);
    snprintf(d->world, sizeof d->world, "%s/world", d->out);
    cli_set_threads(d->threads);
    mofo_err err = {0};
    int rc = 0;
    char models[2200]; /* OUT/world is made by mofo_world_write */
    snprintf(models, sizeof models, "%s/models", d->out);
    const char *bad_dir = demo_make_dir(d->out) ? d->out : demo_make_dir(models) ? models : NULL;
    if (bad_dir) {
        fprintf(stderr, "mofo demo: %s: cannot create: %s\n", bad_dir, strerror(errno));
        free(d);
        return 1;
    }
    mofo_demo_scores base;
    if ((rc = demo_make_world(d, &err)) ||
        (rc = mofo_model_load(&d->base, d->base_dir, &err)) || (rc = mofo_tokenizer_load_dir(&d->tok, d->base_dir, &err))) {
        rc = demo_fail("base", &err);
        goto done;
    }
    fprintf(stderr, "mofo demo: base %s (%zu parameters), world of %d people in %s, %d steps of %d examples per run\n"
                    "matrix products: %s\n",
            d->base_dir, d->base->n_floats, d->wo.n_people, d->world, d->steps, d->batch, mofo_blas_kernel());
    if (mofo_demo_evaluate(d->base, d->tok, d->world, MOFO_DEMO_TASK | MOFO_DEMO_KNOWLEDGE | MOFO_DEMO_PPL, &base,
                           &err)) {
        rc = demo_fail("scoring the base", &err);
        goto done;
    }
    base.l2_distance = base.changed_fraction = 0;
    for (int k = 0; k < MOFO_N_KINDS; k++) base.l2_kind[k] = 0;
    fprintf(stderr, "[%3.0f s] base: task %.1f%% of %d, knowledge EM %.1f%% of %d, MC %.1f%% of %d, ppl %.3f\n",
            cli_now() - d->t0, 100 * base.task_acc, base.n_task, 100 * base.knowledge_em, base.n_em,
            100 * base.knowledge_mc, base.n_mc, base.ppl);
    if (A.continual) {
        if (demo_continual(d, use, &base, A.json, &err)) rc = demo_fail("continual", &err);
        goto done;
    }
    if (study(d, use, alphas, n_alpha, &base, &err)) {
        rc = demo_fail(n_alpha ? "alpha study" : "methods", &err);
        goto done;
    }
    if (A.full) { /* the paper's alpha study and the continual study after the methods */
        static const double full_alphas[] = {0.05, 0.1, 0.15, 0.2, 0.5, 1};
        if (study(d, use, full_alphas, 6, &base, &err)) rc = demo_fail("alpha study", &err);
        else if (demo_continual(d, use, &base, A.json, &err)) rc = demo_fail("continual", &err);
    }
done:
    mofo_model_free(d->base);
    mofo_tokenizer_free(d->tok);
    mofo_world_free(&d->w);
    free(d);
    return rc;
}
