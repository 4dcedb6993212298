/* mofo demo: fine-tunes the shipped base model on the world's arithmetic with each method, choosing
 * each method's learning rate on math_val, and reports task accuracy against the knowledge kept
 * (src/demo/demo.h for the measurements, src/demo/report.h for the files). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "demo_cli.h"
#include "commands.h"
#include "demo/report.h"
#include "io/atomic_file.h"
#include "io/strbuf.h"
#include "threads.h"
#include "timing.h"

#ifndef MOFO_DEMO_BASE_DIR
#define MOFO_DEMO_BASE_DIR "models/demo-base"
#endif

typedef struct demo_args {
    const char *out, *base, *sweep, *methods;
    int64_t steps, threads;
    int quick, json, continual;
} demo_args;

static demo_args A;
static const arg_spec SPECS[] = {
    {"out", ARG_STR, &A.out, "DIR", "where the world, the models and the results go (default demo-out)"},
    {"quick", ARG_FLAG, &A.quick, NULL, "a smoke run: one learning rate per method, 6 steps"},
    {"json", ARG_FLAG, &A.json, NULL, "print results.json instead of the table"},
    {"base", ARG_STR, &A.base, "DIR", "the base model (default: the shipped " MOFO_DEMO_BASE_DIR ")"},
    {"methods", ARG_STR, &A.methods, "LIST", "comma-separated subset of adamw,mofo,l1,l2,hft,lora (default all)"},
    {"steps", ARG_INT, &A.steps, "N", "fine-tuning steps per run (default 80; --quick 6)"},
    {"sweep-alpha", ARG_STR, &A.sweep, "LIST", "instead: MoFO at each alpha of LIST (e.g. 0.05,0.15,1), the paper's study"},
    {"continual", ARG_FLAG, &A.continual, NULL,
     "instead: three arithmetic tasks in sequence per method; R, OP and BWT as TRACE defines them"},
    {"threads", ARG_INT, &A.threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_demo_help(FILE *out) {
    args_help(out, "demo", "[--out DIR] [--quick] [--json] [--sweep-alpha LIST | --continual] [flags]", SPECS, N_SPECS);
    fprintf(out,
            "\nStarts from the shipped base (a small Llama pre-trained by `mofo pretrain` on the world's\n"
            "biographies; its world.json names the world) and writes OUT/world (`mofo world`), then for each\n"
            "method fine-tunes on OUT/world/math_train.jsonl at each learning rate of the method's grid,\n"
            "keeps the rate with the lowest loss on the 5%% of math_train held out, and scores that model on\n"
            "math_test and on the knowledge files. Writes OUT/results.json, OUT/results.md, OUT/loss.png and\n"
            "OUT/tradeoff.png (gnuplot; its scripts and data stay beside them) and the chosen models in\n"
            "OUT/models/METHOD. Each run's mofo finetune command is in results.json.\n"
            "--sweep-alpha: MoFO alone at each alpha (results_alpha.*, loss_alpha.png, tradeoff_alpha.png). --continual: each method trains\n"
            "on add/subtract, then multiply/divide, then two-step problems (the world's word problems split\n"
            "by kind), at the first rate of its grid, each task's model starting from the last; R[i][j] is\n"
            "the exact match on task j's test problems after task i, OP the mean of the last row, BWT the\n"
            "mean of R[last][j] - R[j][j] over the earlier tasks (results_continual.*).\n");
}

/* Fine-tunes with ms at each learning rate of its grid on data_path, keeps the best on math_val,
 * scores it on the test files, saves it to OUT/models/NAME; fills u (u->loss allocated). */
static int run_method(demo *d, const demo_method *ms, const char *name, const char *data_path, int what, mofo_demo_run *u,
                      mofo_err *err) {
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->method, sizeof u->method, "%s", mofo_method_name(ms->method));
    u->alpha = ms->alpha, u->reg = ms->reg, u->steps = d->steps, u->val_loss = INFINITY;
    char out_dir[2300];
    snprintf(out_dir, sizeof out_dir, "%s/models/%s", d->out, name);
    for (char *c = out_dir + strlen(d->out) + 8; *c; c++)
        if (*c == ' ' || *c == '=') *c = '_';
    mofo_trainer *best = NULL;
    float *loss = malloc((size_t)d->steps * sizeof *loss);
    if (!loss) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    int rc = 0;
    for (int g = 0; g < 3 && ms->lrs[g] > 0 && !rc; g++) {
        if (d->quick && g > 0) break;
        mofo_train_opts o;
        demo_run_opts(d, ms, ms->lrs[g], d->base_dir, data_path, out_dir, &o);
        d->run_no++;
        fprintf(stderr, "[%3.0f s] %d/%d %s lr %g: %d steps", cli_now() - d->t0, d->run_no, d->n_runs_total, name,
                ms->lrs[g], d->steps);
        fflush(stderr);
        mofo_trainer *t = NULL;
        double ms_step = 0;
        mofo_demo_scores val;
        double vloss = NAN;
        if ((rc = mofo_trainer_create(&t, &o, err)) || (rc = demo_train(t, loss, &ms_step, err)) ||
            (rc = mofo_trainer_eval(t, &vloss, err)) ||
            (rc = mofo_demo_evaluate(t->m, t->tok, d->world, MOFO_DEMO_VAL, NULL, &val, err))) {
            mofo_trainer_free(t);
            break;
        }
        fprintf(stderr, ", %.0f ms/step, loss %.3f -> %.3f, validation loss %.4f, math_val %.1f%%\n", ms_step,
                (double)loss[0], (double)loss[d->steps - 1], vloss, 100 * val.task_acc);
        if (vloss < u->val_loss) { /* ties keep the smaller rate, tried first */
            mofo_trainer_free(best);
            best = t;
            u->val_loss = vloss, u->val_acc = val.task_acc, u->lr = o.lr, u->ms_per_step = ms_step;
            float *keep = u->loss;
            u->loss = loss, loss = keep ? keep : malloc((size_t)d->steps * sizeof *loss);
            demo_finetune_command(&o, u->command, sizeof u->command);
            mofo_demo_eval_command(out_dir, d->world, what, u->eval_command, sizeof u->eval_command);
            if (!loss) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        } else {
            mofo_trainer_free(t);
        }
    }
    free(loss);
    if (!rc && best) {
        if (demo_make_dir(out_dir)) rc = mofo_errf(err, MOFO_EIO, "%s: cannot create: %s", out_dir, strerror(errno));
        if (!rc) rc = mofo_demo_evaluate(best->m, best->tok, d->world, what, d->base->params, &u->s, err);
        if (!rc) rc = mofo_trainer_save_final(best, out_dir, err);
    }
    mofo_trainer_free(best);
    return rc;
}

/* writes results.json, results.md and the plots; prints the table (or the JSON) */
static int report(demo *d, mofo_demo_report *r, const char *stem, mofo_err *err) {
    mofo_strbuf js = {0}, md = {0};
    r->seconds = cli_now() - d->t0;
    mofo_demo_json(r, &js);
    mofo_demo_markdown(r, &md);
    char path[2300];
    int rc = js.failed || md.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : 0;
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

int cmd_demo(int argc, char **argv) {
    memset(&A, 0, sizeof A);
    A.steps = -1;
    if (args_parse("demo", argc, argv, SPECS, N_SPECS)) return 2;
    int use[DEMO_N_METHODS];
    double alphas[16];
    int n_alpha = 0;
    if (parse_methods(A.methods, use)) return 2;
    if (A.sweep && A.continual) {
        fprintf(stderr, "mofo demo: --sweep-alpha and --continual are two studies; give one\n");
        return 2;
    }
    if (A.sweep && (n_alpha = parse_alphas(A.sweep, alphas, 16)) < 0) return 2;
    if (A.threads < 0 || A.steps == 0 || A.steps < -1 || A.steps > 1000000) {
        fprintf(stderr, "mofo demo: --threads must be >= 0 and --steps in 1..1000000\n");
        return 2;
    }
    demo *d = calloc(1, sizeof *d);
    if (!d) return demo_fail("out of memory", NULL);
    d->t0 = cli_now();
    d->quick = A.quick;
    d->steps = A.steps > 0 ? (int)A.steps : A.quick ? 6 : 80;
    d->batch = 16, d->seq_len = 256, d->threads = (int)A.threads;
    snprintf(d->out, sizeof d->out, "%s", A.out ? A.out : "demo-out");
    snprintf(d->base_dir, sizeof d->base_dir, "%s", A.base ? A.base : MOFO_DEMO_BASE_DIR);
    snprintf(d->world, sizeof d->world, "%s/world", d->out);
    cli_set_threads(d->threads);
    mofo_err err = {0};
    int rc = 0;
    mofo_demo_report r = {.kind = A.sweep ? "alpha" : "methods", .plot_suffix = A.sweep ? "_alpha" : ""};
    char models[2200]; /* OUT/world is made by mofo_world_write */
    snprintf(models, sizeof models, "%s/models", d->out);
    const char *bad_dir = demo_make_dir(d->out) ? d->out : demo_make_dir(models) ? models : NULL;
    if (bad_dir) {
        fprintf(stderr, "mofo demo: %s: cannot create: %s\n", bad_dir, strerror(errno));
        free(d);
        return 1;
    }
    if ((rc = demo_make_world(d, &err)) ||
        (rc = mofo_model_load(&d->base, d->base_dir, &err)) || (rc = mofo_tokenizer_load_dir(&d->tok, d->base_dir, &err))) {
        rc = demo_fail("base", &err);
        goto done;
    }
    fprintf(stderr, "mofo demo: base %s (%zu parameters), world of %d people in %s, %d steps of %d examples per run\n",
            d->base_dir, d->base->n_floats, d->wo.n_people, d->world, d->steps, d->batch);
    if (mofo_demo_evaluate(d->base, d->tok, d->world, MOFO_DEMO_TASK | MOFO_DEMO_KNOWLEDGE, NULL, &r.base, &err)) {
        rc = demo_fail("scoring the base", &err);
        goto done;
    }
    r.base.l2_distance = 0;
    fprintf(stderr, "[%3.0f s] base: task %.1f%%, knowledge EM %.1f%%, MC %.1f%%, ppl %.3f\n", cli_now() - d->t0,
            100 * r.base.task_acc, 100 * r.base.knowledge_em, 100 * r.base.knowledge_mc, r.base.ppl);
    if (A.continual) {
        if (demo_continual(d, use, &r.base, A.json, &err)) rc = demo_fail("continual", &err);
        goto done;
    }
    char data[2300];
    snprintf(data, sizeof data, "%s/%s", d->world, mofo_world_file_name(MOFO_WF_MATH_TRAIN));
    int n_runs = 0;
    if (A.sweep) {
        n_runs = n_alpha;
    } else {
        for (int i = 0; i < DEMO_N_METHODS; i++) n_runs += use[i];
    }
    r.runs = calloc((size_t)n_runs, sizeof *r.runs);
    if (!r.runs) {
        rc = demo_fail("out of memory", NULL);
        goto done;
    }
    for (int i = 0; i < (A.sweep ? n_alpha : DEMO_N_METHODS); i++) {
        demo_method ms = A.sweep ? DEMO_METHODS[1] : DEMO_METHODS[i];
        if (!A.sweep && !use[i]) continue;
        if (A.sweep) ms.alpha = alphas[i];
        for (int g = 0; g < 3 && ms.lrs[g] > 0; g++) d->n_runs_total += !d->quick || g == 0;
    }
    for (int i = 0; i < (A.sweep ? n_alpha : DEMO_N_METHODS) && !rc; i++) {
        demo_method ms = A.sweep ? DEMO_METHODS[1] : DEMO_METHODS[i];
        char name[32];
        if (A.sweep) {
            ms.alpha = alphas[i];
            snprintf(name, sizeof name, "mofo a=%g", alphas[i]);
        } else {
            if (!use[i]) continue;
            snprintf(name, sizeof name, "%s", ms.name);
        }
        mofo_demo_run *u = &r.runs[r.n_runs];
        if ((rc = run_method(d, &ms, name, data, MOFO_DEMO_TASK | MOFO_DEMO_KNOWLEDGE, u, &err))) {
            rc = demo_fail(name, &err);
            break;
        }
        r.n_runs++;
        fprintf(stderr, "[%3.0f s] %s: lr %g, task %.1f%%, knowledge EM %.1f%%, MC %.1f%%, ppl %.3f, L2 %.3f\n",
                cli_now() - d->t0, name, u->lr, 100 * u->s.task_acc, 100 * u->s.knowledge_em, 100 * u->s.knowledge_mc,
                u->s.ppl, u->s.l2_distance);
    }
    if (!rc) {
        snprintf(r.settings, sizeof r.settings,
                 "\"base\": \"%.1500s\", \"world_seed\": %llu, \"people\": %d, \"steps\": %d, \"batch\": %d, \"seq_len\": %d, "
                 "\"schedule\": \"linear, warm-up 0.1\", \"quick\": %s, \"val_problems\": %d, \"test_problems\": %d",
                 d->base_dir, (unsigned long long)d->wo.seed, d->wo.n_people, d->steps, d->batch, d->seq_len,
                 d->quick ? "true" : "false", d->wo.n_val, d->wo.n_test);
        if (report(d, &r, A.sweep ? "results_alpha" : "results", &err)) rc = demo_fail("writing the results", &err);
    }
done:
    for (int i = 0; i < r.n_runs; i++) free(r.runs[i].loss);
    free(r.runs);
    mofo_model_free(d->base);
    mofo_tokenizer_free(d->tok);
    mofo_world_free(&d->w);
    free(d);
    return rc;
}
