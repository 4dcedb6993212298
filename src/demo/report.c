/* results.json, results.md and the plot files of `mofo demo` (see report.h). */
#include "demo/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/atomic_file.h"

/* a number for JSON: NaN (not measured) as null */
static void json_num(mofo_strbuf *sb, const char *key, double v, int first) {
    mofo_sb_printf(sb, "%s\"%s\": ", first ? "" : ", ", key);
    if (isfinite(v)) mofo_sb_printf(sb, "%.17g", v); /* round-trips: the tables recompute exactly */
    else mofo_sb_puts(sb, "null");
}

static void json_scores(mofo_strbuf *sb, const mofo_demo_scores *s) {
    json_num(sb, "task_acc", s->task_acc, 1);
    json_num(sb, "knowledge_acc", s->knowledge_acc, 0);
    json_num(sb, "knowledge_em", s->knowledge_em, 0);
    json_num(sb, "knowledge_mc", s->knowledge_mc, 0);
    json_num(sb, "ppl", s->ppl, 0);
    json_num(sb, "l2_distance", s->l2_distance, 0);
}

/* the drop in general capability, in points: base minus the run */
static double drop(const mofo_demo_report *r, const mofo_demo_run *u) {
    return 100 * (r->base.knowledge_acc - u->s.knowledge_acc);
}

void mofo_demo_json(const mofo_demo_report *r, mofo_strbuf *sb) {
    mofo_sb_puts(sb, "{\n  \"base\": {");
    json_scores(sb, &r->base);
    mofo_sb_printf(sb, "},\n  \"%s\": {", r->kind);
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        mofo_sb_puts(sb, i ? ",\n    " : "\n    ");
        mofo_sb_json_string(sb, u->name, strlen(u->name));
        mofo_sb_puts(sb, ": {");
        json_scores(sb, &u->s);
        json_num(sb, "drop", drop(r, u), 0);
        json_num(sb, "ms_per_step", u->ms_per_step, 0);
        json_num(sb, "lr", u->lr, 0);
        json_num(sb, "alpha", u->alpha, 0);
        json_num(sb, "reg", u->reg, 0);
        json_num(sb, "val_loss", u->val_loss, 0);
        json_num(sb, "val_acc", u->val_acc, 0);
        mofo_sb_printf(sb, ", \"method\": \"%s\", \"steps\": %d, \"command\": ", u->method, u->steps);
        mofo_sb_json_string(sb, u->command, strlen(u->command));
        mofo_sb_puts(sb, ", \"eval_command\": ");
        mofo_sb_json_string(sb, u->eval_command, strlen(u->eval_command));
        mofo_sb_puts(sb, ", \"loss\": [");
        for (int k = 0; k < u->steps; k++) mofo_sb_printf(sb, "%s%.5g", k ? ", " : "", (double)u->loss[k]);
        mofo_sb_puts(sb, "]}");
    }
    mofo_sb_printf(sb, "\n  },\n  \"settings\": {%s},\n  \"seconds\": %.1f\n}\n", r->settings, r->seconds);
}

static void pct(mofo_strbuf *sb, double v) {
    if (isfinite(v)) mofo_sb_printf(sb, " %.1f |", 100 * v);
    else mofo_sb_puts(sb, " - |");
}

void mofo_demo_table(const mofo_demo_report *r, mofo_strbuf *sb) {
    mofo_sb_puts(sb, "| run | lr | task acc % | knowledge EM % | knowledge MC % | general % | drop | ppl | L2 to base | ms/step |\n"
                     "|---|---|---|---|---|---|---|---|---|---|\n");
    const mofo_demo_scores *b = &r->base;
    mofo_sb_puts(sb, "| base | - |");
    pct(sb, b->task_acc), pct(sb, b->knowledge_em), pct(sb, b->knowledge_mc), pct(sb, b->knowledge_acc);
    mofo_sb_printf(sb, " - | %.3f | 0 | - |\n", b->ppl);
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        mofo_sb_printf(sb, "| %s | %.3g |", u->name, u->lr);
        pct(sb, u->s.task_acc), pct(sb, u->s.knowledge_em), pct(sb, u->s.knowledge_mc), pct(sb, u->s.knowledge_acc);
        mofo_sb_printf(sb, " %.1f | %.3f | %.3f | %.1f |\n", drop(r, u), u->s.ppl, u->s.l2_distance, u->ms_per_step);
    }
}

void mofo_demo_markdown(const mofo_demo_report *r, mofo_strbuf *sb) {
    mofo_sb_puts(sb, "# mofo demo: fine-tuning on arithmetic, and what the model forgets\n\n");
    mofo_sb_puts(sb, "The base model knows the people of a synthetic world; each run fine-tunes it on arithmetic "
                     "word problems (learning rate: the lowest loss on the 5% of math_train held out), then measures the task (math_test "
                     "exact match) and the general knowledge it kept: exact match on birth years and "
                     "multiple-choice accuracy on birthplace, occupation and food, both asked in phrasings "
                     "never trained on. general = the mean of the two; drop = base general - run general, "
                     "in points; ppl on held-out biographies; L2 = ||theta - theta_base||.\n\n");
    mofo_demo_table(r, sb);
    mofo_sb_printf(sb, "\nSettings: {%s}. Wall time %.0f s.\n\n", r->settings, r->seconds);
    mofo_sb_printf(sb, "Plots: loss%s.png (training loss per step), tradeoff%s.png (task accuracy against general "
                       "knowledge kept). Every number comes from results.json; each run's `command` there "
                     "repeats it with `mofo finetune`, and `mofo eval` rescores the saved models in models/.\n",
                   r->plot_suffix ? r->plot_suffix : "", r->plot_suffix ? r->plot_suffix : "");
}

int mofo_demo_plot_files(const mofo_demo_report *r, const char *dir, mofo_err *err) {
    char path[4200];
    mofo_strbuf sb = {0};
    int most = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].steps > most) most = r->runs[i].steps;
    mofo_sb_puts(&sb, "step"); /* a header row, not a comment: the plot takes its titles from it */
    for (int i = 0; i < r->n_runs; i++) mofo_sb_printf(&sb, "\t\"%s\"", r->runs[i].name);
    mofo_sb_puts(&sb, "\n");
    for (int k = 0; k < most; k++) {
        mofo_sb_printf(&sb, "%d", k + 1);
        for (int i = 0; i < r->n_runs; i++) {
            const mofo_demo_run *u = &r->runs[i];
            if (k < u->steps) mofo_sb_printf(&sb, "\t%.5g", (double)u->loss[k]);
            else mofo_sb_puts(&sb, "\tNaN");
        }
        mofo_sb_puts(&sb, "\n");
    }
    const char *x = r->plot_suffix ? r->plot_suffix : "";
    snprintf(path, sizeof path, "%s/loss%s.dat", dir, x);
    int rc = sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(path, sb.data, sb.len, err);
    sb.len = 0;
    if (!rc) {
        mofo_sb_printf(&sb, "set terminal pngcairo size 900,560 noenhanced\nset output 'loss%s.png'\nset datafile missing 'NaN'\n"
                            "set title 'Training loss on the arithmetic task'\nset xlabel 'step'\nset ylabel 'loss'\n"
                            "set key outside right\nplot", x);
        for (int i = 0; i < r->n_runs; i++)
            mofo_sb_printf(&sb, "%s 'loss%s.dat' using 1:%d with lines lw 2 title columnheader(%d)", i ? "," : "", x, i + 2,
                           i + 2);
        mofo_sb_puts(&sb, "\n");
        snprintf(path, sizeof path, "%s/loss%s.gp", dir, x);
        rc = sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(path, sb.data, sb.len, err);
    }
    sb.len = 0;
    if (!rc) {
        mofo_sb_puts(&sb, "# run\ttask_acc%\tgeneral%\n");
        mofo_sb_printf(&sb, "\"base\"\t%.3f\t%.3f\n", 100 * r->base.task_acc, 100 * r->base.knowledge_acc);
        for (int i = 0; i < r->n_runs; i++)
            mofo_sb_printf(&sb, "\"%s\"\t%.3f\t%.3f\n", r->runs[i].name, 100 * r->runs[i].s.task_acc,
                           100 * r->runs[i].s.knowledge_acc);
        snprintf(path, sizeof path, "%s/tradeoff%s.dat", dir, x);
        rc = sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(path, sb.data, sb.len, err);
    }
    sb.len = 0;
    if (!rc) {
        mofo_sb_printf(&sb, "set terminal pngcairo size 760,560 noenhanced\nset output 'tradeoff%s.png'\n", x);
        mofo_sb_puts(&sb, "set title 'Fine-tuning accuracy against general knowledge kept'\n"
                          "set xlabel 'task accuracy (math_test exact match, %)'\n"
                          "set ylabel 'general knowledge kept (mean of EM and MC, %)'\nset key off\nset grid\n"
                          "set xrange [0:*]\nset yrange [0:100]\nset offsets 0, 2, 0, 0\n");
        mofo_sb_printf(&sb, "plot 'tradeoff%s.dat' using 2:3 with points pt 7 ps 1.5, '' using 2:3:1 with labels offset 0,1\n",
                       x);
        snprintf(path, sizeof path, "%s/tradeoff%s.gp", dir, x);
        rc = sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(path, sb.data, sb.len, err);
    }
    mofo_sb_free(&sb);
    return rc;
}
