/* mofo demo --continual: each method learns three arithmetic tasks in sequence (the world's task
 * split by kind: addition, subtraction, multiplication and division), and the matrix R[i][j] of exact matches on task j's test problems after
 * training task i gives OP and BWT as TRACE (Wang et al. 2023) defines them:
 *   OP  = (1/N) sum_j R[N-1][j]                 (performance after the last task)
 *   BWT = (1/(N-1)) sum_{j<N-1} (R[N-1][j] - R[j][j])  (what later tasks cost the earlier ones)
 * Beside them: the general knowledge (demo.h's knowledge_acc) after each task. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_cli.h"
#include "io/atomic_file.h"
#include "io/strbuf.h"
#include "timing.h"

#define N_TASKS 3

typedef struct task {
    const char *name;
    unsigned kinds; /* bit k: problems of kind k (world.h) */
} task;

static const task TASKS[N_TASKS] = {
    {"add", 1u << MOFO_TASK_ADD},
    {"sub", 1u << MOFO_TASK_SUB},
    {"mul-div", 1u << MOFO_TASK_MUL | 1u << MOFO_TASK_DIV},
};

typedef struct method_result {
    const char *name;
    double lr;
    double R[N_TASKS][N_TASKS];
    double general[N_TASKS]; /* knowledge_acc after each task */
    double op, bwt;
} method_result;

/* OUT/world/continual_NAME_{train,test}.jsonl */
static int write_task_files(demo *d, const task *t, char *train, char *test, size_t cap, mofo_err *err) {
    snprintf(train, cap, "%s/continual_%s_train.jsonl", d->world, t->name);
    snprintf(test, cap, "%s/continual_%s_test.jsonl", d->world, t->name);
    const mofo_world_file f[2] = {MOFO_WF_MATH_TRAIN, MOFO_WF_MATH_TEST};
    const char *path[2] = {train, test};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        mofo_strbuf sb = {0};
        rc = mofo_world_render_kinds(&d->w, f[k], t->kinds, &sb, NULL, err);
        if (!rc) rc = mofo_write_file_atomic(path[k], sb.data, sb.len, err);
        mofo_sb_free(&sb);
    }
    return rc;
}

/* One method through the tasks: stage i starts from stage i-1's model (the base for i = 0). */
static int run_sequence(demo *d, const demo_method *m, char train[][2300], char test[][2300], method_result *res,
                        mofo_err *err) {
    memset(res, 0, sizeof *res);
    res->name = m->name, res->lr = m->lrs[DEMO_CONTINUAL_LR] * d->lr_scale;
    char prev[2400], dir[2400];
    snprintf(prev, sizeof prev, "%s", d->base_dir);
    float *loss = malloc((size_t)d->steps * sizeof *loss);
    if (!loss) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < N_TASKS && !rc; i++) {
        snprintf(dir, sizeof dir, "%s/continual/%s-%d-%s", d->out, m->name, i + 1, TASKS[i].name);
        mofo_train_opts o;
        demo_run_opts(d, m, res->lr, 1, prev, train[i], dir, &o);
        mofo_trainer *t = NULL;
        double ms_step;
        mofo_demo_scores k;
        if ((rc = mofo_trainer_create(&t, &o, err)) || (rc = demo_train(d, t, loss, &ms_step, NULL, err)) ||
            (rc = demo_make_dir(dir) ? mofo_errf(err, MOFO_EIO, "%s: cannot create", dir) : 0) ||
            (rc = mofo_trainer_save_final(t, dir, err)) ||
            (rc = mofo_demo_evaluate(t->m, t->tok, d->world, MOFO_DEMO_KNOWLEDGE, &k, err))) {
            mofo_trainer_free(t);
            break;
        }
        res->general[i] = k.knowledge_acc;
        for (int j = 0; j < N_TASKS && !rc; j++) rc = mofo_demo_evaluate_gen(t->m, t->tok, test[j], &res->R[i][j], NULL, err);
        mofo_trainer_free(t);
        fprintf(stderr, "[%3.0f s] %d/%d %s, task %d (%s): %d steps, %.0f ms/step; R[%d] = %.1f %.1f %.1f, general %.1f%%\n",
                cli_now() - d->t0, demo_next_run(d), d->n_runs_total, m->name, i + 1, TASKS[i].name, d->steps, ms_step,
                i + 1, 100 * res->R[i][0], 100 * res->R[i][1], 100 * res->R[i][2], 100 * res->general[i]);
        snprintf(prev, sizeof prev, "%s", dir);
    }
    free(loss);
    double op = 0, bwt = 0;
    for (int j = 0; j < N_TASKS; j++) op += res->R[N_TASKS - 1][j];
    for (int j = 0; j < N_TASKS - 1; j++) bwt += res->R[N_TASKS - 1][j] - res->R[j][j];
    res->op = op / N_TASKS, res->bwt = bwt / (N_TASKS - 1);
    return rc;
}

typedef struct sequence_jobs {
    demo *d;
    const demo_method *methods[DEMO_N_METHODS]; /* job i: methods[i] through the tasks into res[i] */
    char (*train)[2300], (*test)[2300];
    method_result *res;
} sequence_jobs;

static int sequence_job(void *ctx, int i, mofo_err *err) {
    sequence_jobs *s = ctx;
    int rc = run_sequence(s->d, s->methods[i], s->train, s->test, &s->res[i], err);
    if (rc) mofo_err_prefix(err, "%s", s->methods[i]->name);
    return rc;
}

static void json_matrix(mofo_strbuf *sb, const method_result *r) {
    mofo_sb_puts(sb, "\"R\": [");
    for (int i = 0; i < N_TASKS; i++) {
        mofo_sb_puts(sb, i ? ", [" : "[");
        for (int j = 0; j < N_TASKS; j++) mofo_sb_printf(sb, "%s%.17g", j ? ", " : "", r->R[i][j]);
        mofo_sb_puts(sb, "]");
    }
    mofo_sb_puts(sb, "], \"general\": [");
    for (int i = 0; i < N_TASKS; i++) mofo_sb_printf(sb, "%s%.17g", i ? ", " : "", r->general[i]);
    mofo_sb_printf(sb, "], \"OP\": %.17g, \"BWT\": %.17g, \"lr\": %g", r->op, r->bwt, r->lr);
}

/* the table: one row per method; R's diagonal and last row, OP, BWT and the knowledge kept */
static void table(const method_result *res, int n, const mofo_demo_scores *base, mofo_strbuf *sb) {
    mofo_sb_puts(sb, "| method | lr |");
    for (int j = 0; j < N_TASKS; j++) mofo_sb_printf(sb, " %s just after %% | %s at the end %% |", TASKS[j].name, TASKS[j].name);
    mofo_sb_puts(sb, " OP % | BWT (points) | general at the end % | drop |\n|---|---|");
    for (int j = 0; j < N_TASKS; j++) mofo_sb_puts(sb, "---|---|");
    mofo_sb_puts(sb, "---|---|---|---|\n");
    for (int k = 0; k < n; k++) {
        const method_result *r = &res[k];
        mofo_sb_printf(sb, "| %s | %.3g |", r->name, r->lr);
        for (int j = 0; j < N_TASKS; j++) mofo_sb_printf(sb, " %.1f | %.1f |", 100 * r->R[j][j], 100 * r->R[N_TASKS - 1][j]);
        mofo_sb_printf(sb, " %.1f | %.1f | %.1f | %.1f |\n", 100 * r->op, 100 * r->bwt, 100 * r->general[N_TASKS - 1],
                       100 * (base->knowledge_acc - r->general[N_TASKS - 1]));
    }
}

int demo_continual(demo *d, const int *use, const mofo_demo_scores *base, int json, mofo_err *err) {
    char train[N_TASKS][2300], test[N_TASKS][2300], dir[2300];
    int rc = 0;
    snprintf(dir, sizeof dir, "%s/continual", d->out);
    if (demo_make_dir(dir)) return mofo_errf(err, MOFO_EIO, "%s: cannot create", dir);
    for (int i = 0; i < N_TASKS && !rc; i++) rc = write_task_files(d, &TASKS[i], train[i], test[i], sizeof train[i], err);
    method_result res[DEMO_N_METHODS];
    sequence_jobs s = {d, {0}, train, test, res};
    int n = 0;
    for (int i = 0; i < DEMO_N_METHODS; i++)
        if (use[i]) s.methods[n++] = &DEMO_METHODS[i];
    d->run_no = 0, d->n_runs_total = n * N_TASKS;
    if (rc || (rc = demo_parallel(n, d->jobs, sequence_job, &s, err))) return rc;
    mofo_strbuf js = {0}, md = {0};
    mofo_sb_puts(&js, "{\n  \"tasks\": [");
    for (int j = 0; j < N_TASKS; j++) mofo_sb_printf(&js, "%s\"%s\"", j ? ", " : "", TASKS[j].name);
    mofo_sb_printf(&js, "],\n  \"base\": {\"knowledge_acc\": %.17g},\n  \"methods\": {", base->knowledge_acc);
    for (int k = 0; k < n; k++) {
        mofo_sb_printf(&js, "%s\n    \"%s\": {", k ? "," : "", res[k].name);
        json_matrix(&js, &res[k]);
        mofo_sb_puts(&js, "}");
    }
    mofo_sb_printf(&js, "\n  },\n  \"steps_per_task\": %d,\n  \"seconds\": %.1f\n}\n", d->steps, cli_now() - d->t0);
    mofo_sb_puts(&md, "# mofo demo --continual: three arithmetic tasks in sequence\n\n"
                      "Each method trains on addition, then subtraction, then multiplication and division, "
                      "each task starting from the model the last one left. \"just after\" is R[j][j], \"at the "
                      "end\" R[last][j]; OP is the mean of the last row, BWT the mean change of the earlier "
                      "tasks from just after to the end (TRACE); general is the knowledge score (mean of "
                      "the numeric facts' exact match and the multiple-choice accuracy), drop = base - end, in "
                      "points.\n\n");
    table(res, n, base, &md);
    mofo_sb_printf(&md, "\nBase general knowledge: %.1f%%. %d steps per task; R in full in results_continual.json.\n",
                   100 * base->knowledge_acc, d->steps);
    snprintf(dir, sizeof dir, "%s/results_continual.json", d->out);
    rc = js.failed || md.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(dir, js.data, js.len, err);
    snprintf(dir, sizeof dir, "%s/results_continual.md", d->out);
    if (!rc) rc = mofo_write_file_atomic(dir, md.data, md.len, err);
    if (!rc) {
        if (json) {
            fputs(js.data, stdout);
        } else {
            mofo_strbuf tb = {0};
            table(res, n, base, &tb);
            if (tb.data) fputs(tb.data, stdout);
            mofo_sb_free(&tb);
            printf("results in %s/results_continual.json and .md\n", d->out);
        }
    }
    mofo_sb_free(&js);
    mofo_sb_free(&md);
    return rc;
}
