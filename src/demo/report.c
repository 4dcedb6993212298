/* results.json, results.md and the plot files of `mofo demo` (see report.h). */
#include "demo/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo/matched.h"
#include "io/atomic_file.h"

/* ---- matched accuracy ---- */
static int name_index(const mofo_demo_report *r, const char *name) {
    for (int i = 0; i < r->n_matched; i++)
        if (strcmp(r->matched[i].name, name) == 0) return i;
    return -1;
}

/* the runs of curve (name, seed) as points; returns the count */
static int curve_points(const mofo_demo_report *r, const char *name, int seed, mofo_demo_point *pts) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (strcmp(r->runs[i].name, name) == 0 && r->runs[i].seed == seed)
            pts[n++] = (mofo_demo_point){r->runs[i].s.task_acc, r->runs[i].s.knowledge_acc};
    return n;
}

/* the distinct seeds of name, ascending, into seeds (at most MOFO_DEMO_MAX_SEEDS); returns the count */
static int seeds_of(const mofo_demo_report *r, const char *name, int *seeds) {
    int n = 0;
    for (int i = 0; i < r->n_runs; i++) {
        if (strcmp(r->runs[i].name, name) != 0) continue;
        int s = r->runs[i].seed, k = 0;
        while (k < n && seeds[k] < s) k++;
        if ((k < n && seeds[k] == s) || n == MOFO_DEMO_MAX_SEEDS) continue;
        memmove(seeds + k + 1, seeds + k, sizeof *seeds * (size_t)(n - k));
        seeds[k] = s, n++;
    }
    return n;
}

int mofo_demo_match(mofo_demo_report *r, mofo_err *err) {
    free(r->matched);
    r->matched = calloc((size_t)r->n_runs + 1, sizeof *r->matched);
    mofo_demo_point *pts = malloc(sizeof *pts * ((size_t)r->n_runs + 1));
    double *best = malloc(sizeof *best * ((size_t)r->n_runs + 1));
    if (!r->matched || !pts || !best) {
        free(pts), free(best);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    r->n_matched = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (name_index(r, r->runs[i].name) < 0) snprintf(r->matched[r->n_matched++].name, 32, "%s", r->runs[i].name);
    int n_curves = 0;
    for (int k = 0; k < r->n_matched; k++) {
        int seeds[MOFO_DEMO_MAX_SEEDS], ns = seeds_of(r, r->matched[k].name, seeds);
        for (int j = 0; j < ns; j++) {
            int n = curve_points(r, r->matched[k].name, seeds[j], pts);
            best[n_curves] = -INFINITY;
            for (int q = 0; q < n; q++)
                if (pts[q].task > best[n_curves]) best[n_curves] = pts[q].task;
            n_curves++;
        }
    }
    r->level = mofo_demo_matched_level(best, n_curves, r->base.task_acc, 0.05);
    mofo_demo_point base = {r->base.task_acc, r->base.knowledge_acc};
    for (int k = 0; k < r->n_matched; k++) {
        mofo_demo_matched *mt = &r->matched[k];
        int seeds[MOFO_DEMO_MAX_SEEDS];
        mt->n_seeds = seeds_of(r, mt->name, seeds);
        for (int j = 0; j < mt->n_seeds; j++) {
            int n = curve_points(r, mt->name, seeds[j], pts);
            mt->per_seed[j] = mofo_demo_knowledge_at(pts, n, base, r->level);
        }
        mofo_demo_mean_sd(mt->per_seed, mt->n_seeds, &mt->knowledge, &mt->sd);
        for (int l = 0; l < MOFO_DEMO_N_LEVELS; l++) { /* NaN where a seed's curve does not get there */
            double x[MOFO_DEMO_MAX_SEEDS];
            for (int j = 0; j < mt->n_seeds; j++) {
                int n = curve_points(r, mt->name, seeds[j], pts);
                x[j] = mofo_demo_knowledge_at(pts, n, base, 0.1 * (l + 1));
            }
            mofo_demo_mean_sd(x, mt->n_seeds, &mt->at[l], &mt->at_sd[l]);
        }
    }
    free(pts), free(best);
    return 0;
}

void mofo_demo_report_free(mofo_demo_report *r) {
    for (int i = 0; i < r->n_runs; i++) free(r->runs[i].loss);
    free(r->runs);
    free(r->matched);
    r->runs = NULL, r->matched = NULL, r->n_runs = r->n_matched = 0;
}

/* ---- JSON ---- */
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
    json_num(sb, "changed_fraction", s->changed_fraction, 0);
    mofo_sb_puts(sb, ", \"l2_by_kind\": {");
    for (int k = 0; k < MOFO_N_KINDS; k++) json_num(sb, mofo_param_kind_name((mofo_param_kind)k), s->l2_kind[k], k == 0);
    mofo_sb_puts(sb, "}");
}

/* the drop in general capability, in points: base minus the run */
static double drop(const mofo_demo_report *r, double knowledge) { return 100 * (r->base.knowledge_acc - knowledge); }

static void json_run(mofo_strbuf *sb, const mofo_demo_report *r, const mofo_demo_run *u, int full) {
    mofo_sb_puts(sb, "{");
    json_num(sb, "lr", u->lr, 1);
    mofo_sb_printf(sb, ", \"steps\": %d, \"seed\": %d, ", u->steps, u->seed);
    json_scores(sb, &u->s);
    json_num(sb, "drop", drop(r, u->s.knowledge_acc), 0);
    json_num(sb, "coverage", u->coverage, 0);
    json_num(sb, "val_loss", u->val_loss, 0);
    json_num(sb, "val_acc", u->val_acc, 0);
    json_num(sb, "ms_per_step", u->ms_per_step, 0);
    if (full) {
        json_num(sb, "alpha", u->alpha, 0);
        json_num(sb, "reg", u->reg, 0);
        mofo_sb_printf(sb, ", \"method\": \"%s\", \"command\": ", u->method);
        mofo_sb_json_string(sb, u->command, strlen(u->command));
        mofo_sb_puts(sb, ", \"eval_command\": ");
        mofo_sb_json_string(sb, u->eval_command, strlen(u->eval_command));
        mofo_sb_puts(sb, ", \"loss\": [");
        for (int k = 0; k < u->steps; k++) mofo_sb_printf(sb, "%s%.5g", k ? ", " : "", (double)u->loss[k]);
        mofo_sb_puts(sb, "]");
    }
    mofo_sb_puts(sb, "}");
}

void mofo_demo_json(const mofo_demo_report *r, mofo_strbuf *sb) {
    const mofo_demo_scores *b = &r->base;
    mofo_sb_printf(sb, "{\n  \"seconds\": %.1f,\n  \"n_knowledge_items\": %d, \"n_knowledge_em\": %d, "
                       "\"n_knowledge_mc\": %d, \"n_task_items\": %d,\n  \"base\": {",
                   r->seconds, b->n_em + b->n_mc, b->n_em, b->n_mc, b->n_task);
    json_scores(sb, b);
    mofo_sb_printf(sb, "},\n  \"%s\": {", r->kind);
    int first = 1;
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        if (!u->chosen) continue;
        mofo_sb_puts(sb, first ? "\n    " : ",\n    ");
        first = 0;
        mofo_sb_json_string(sb, u->name, strlen(u->name));
        mofo_sb_puts(sb, ": ");
        json_run(sb, r, u, 1);
    }
    mofo_sb_puts(sb, "\n  },\n  \"curves\": {");
    for (int k = 0; k < r->n_matched; k++) {
        mofo_sb_puts(sb, k ? ",\n    " : "\n    ");
        mofo_sb_json_string(sb, r->matched[k].name, strlen(r->matched[k].name));
        mofo_sb_puts(sb, ": [");
        int n = 0;
        for (int i = 0; i < r->n_runs; i++) {
            if (strcmp(r->runs[i].name, r->matched[k].name) != 0) continue;
            mofo_sb_puts(sb, n++ ? ",\n      " : "\n      ");
            json_run(sb, r, &r->runs[i], 0);
        }
        mofo_sb_puts(sb, "]");
    }
    mofo_sb_puts(sb, "\n  },\n  \"matched\": {");
    json_num(sb, "task_acc", r->level, 1);
    mofo_sb_puts(sb, ", \"read\": \"each (method, seed) curve of runs, the base as its start, reduced to its Pareto "
                     "frontier and linearly interpolated between the nearest runs below and above the level\", \"methods\": {");
    for (int k = 0; k < r->n_matched; k++) {
        const mofo_demo_matched *mt = &r->matched[k];
        mofo_sb_puts(sb, k ? ",\n    " : "\n    ");
        mofo_sb_json_string(sb, mt->name, strlen(mt->name));
        mofo_sb_puts(sb, ": {");
        json_num(sb, "knowledge_acc", mt->knowledge, 1);
        json_num(sb, "knowledge_acc_sd", mt->sd, 0);
        json_num(sb, "drop", drop(r, mt->knowledge), 0);
        mofo_sb_puts(sb, ", \"at_levels\": {");
        for (int l = 0; l < MOFO_DEMO_N_LEVELS; l++) {
            mofo_sb_printf(sb, "%s\"%.1f\": {", l ? ", " : "", 0.1 * (l + 1));
            json_num(sb, "knowledge_acc", mt->at[l], 1);
            json_num(sb, "knowledge_acc_sd", mt->at_sd[l], 0);
            mofo_sb_puts(sb, "}");
        }
        mofo_sb_puts(sb, "}");
        mofo_sb_printf(sb, ", \"n_seeds\": %d, \"per_seed\": [", mt->n_seeds);
        for (int j = 0; j < mt->n_seeds; j++) {
            if (j) mofo_sb_puts(sb, ", ");
            if (isfinite(mt->per_seed[j])) mofo_sb_printf(sb, "%.17g", mt->per_seed[j]);
            else mofo_sb_puts(sb, "null");
        }
        mofo_sb_puts(sb, "]}");
    }
    mofo_sb_printf(sb, "\n  }},\n  \"settings\": {%s}\n}\n", r->settings);
}

/* ---- tables ---- */
static void pct(mofo_strbuf *sb, double v) {
    if (isfinite(v)) mofo_sb_printf(sb, " %.1f |", 100 * v);
    else mofo_sb_puts(sb, " - |");
}

void mofo_demo_table(const mofo_demo_report *r, mofo_strbuf *sb) {
    const mofo_demo_scores *b = &r->base;
    if (isfinite(r->level)) mofo_sb_printf(sb, "General knowledge kept at matched task accuracy %.1f%%:\n\n", 100 * r->level);
    else mofo_sb_puts(sb, "General knowledge kept at matched task accuracy: no level every method reaches\n\n");
    mofo_sb_puts(sb, "| method | general % at that task acc | sd | seeds | drop |\n|---|---|---|---|---|\n");
    for (int k = 0; k < r->n_matched; k++) {
        const mofo_demo_matched *mt = &r->matched[k];
        mofo_sb_printf(sb, "| %s |", mt->name);
        pct(sb, mt->knowledge), pct(sb, mt->sd);
        mofo_sb_printf(sb, " %d |", mt->n_seeds);
        if (isfinite(mt->knowledge)) mofo_sb_printf(sb, " %.1f |\n", drop(r, mt->knowledge));
        else mofo_sb_puts(sb, " - |\n");
    }
    mofo_sb_puts(sb, "\nThe run of each method that validation (math_val exact match) chose:\n\n"
                     "| run | lr | task acc % | knowledge EM % | knowledge MC % | general % | drop | ppl | L2 to base "
                     "| changed % | ever updated % | ms/step |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    mofo_sb_puts(sb, "| base | - |");
    pct(sb, b->task_acc), pct(sb, b->knowledge_em), pct(sb, b->knowledge_mc), pct(sb, b->knowledge_acc);
    mofo_sb_printf(sb, " - | %.3f | 0 | 0 | - | - |\n", b->ppl);
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        if (!u->chosen) continue;
        mofo_sb_printf(sb, "| %s | %.3g |", u->name, u->lr);
        pct(sb, u->s.task_acc), pct(sb, u->s.knowledge_em), pct(sb, u->s.knowledge_mc), pct(sb, u->s.knowledge_acc);
        mofo_sb_printf(sb, " %.1f | %.3f | %.3f |", drop(r, u->s.knowledge_acc), u->s.ppl, u->s.l2_distance);
        pct(sb, u->s.changed_fraction), pct(sb, u->coverage);
        mofo_sb_printf(sb, " %.1f |\n", u->ms_per_step);
    }
    mofo_sb_puts(sb, "\nL2 distance to the base by kind of tensor (the chosen runs):\n\n| run |");
    for (int k = 0; k < MOFO_N_KINDS; k++) mofo_sb_printf(sb, " %s |", mofo_param_kind_name((mofo_param_kind)k));
    mofo_sb_puts(sb, "\n|---|");
    for (int k = 0; k < MOFO_N_KINDS; k++) mofo_sb_puts(sb, "---|");
    mofo_sb_puts(sb, "\n");
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        if (!u->chosen) continue;
        mofo_sb_printf(sb, "| %s |", u->name);
        for (int k = 0; k < MOFO_N_KINDS; k++) mofo_sb_printf(sb, " %.3f |", u->s.l2_kind[k]);
        mofo_sb_puts(sb, "\n");
    }
}

void mofo_demo_markdown(const mofo_demo_report *r, mofo_strbuf *sb) {
    mofo_sb_puts(sb, "# mofo demo: fine-tuning on arithmetic, and what the model forgets\n\n");
    mofo_sb_printf(sb, "The base model knows the people of a synthetic world; each run fine-tunes it on arithmetic "
                       "questions, then measures the task (math_test exact match, %d questions) and the general "
                       "knowledge it kept: exact match on %d numeric facts and multiple-choice accuracy on %d "
                       "others, all asked in phrasings never trained on. general = the mean of the two; drop = base "
                       "general - general, in points; ppl on held-out biographies; L2 = ||theta - theta_base||; "
                       "changed = entries that differ from the base; ever updated = entries the optimizer moved at "
                       "least once (libmofo's coverage).\n\n",
                   r->base.n_task, r->base.n_em, r->base.n_mc);
    mofo_sb_puts(sb, "Each method runs at every learning rate of its grid (and several seeds where given): its runs "
                     "are a curve of task accuracy against general knowledge (tradeoff.png). The first table reads "
                     "every curve at the task accuracy that all of them reach (the curve's Pareto frontier, the "
                     "base as its start, interpolated linearly between the nearest runs below and above the "
                     "level), so that no method wins by learning less; mean and standard deviation over the "
                     "seeds.\n\n");
    mofo_demo_table(r, sb);
    mofo_sb_puts(sb, "\nEvery curve read at other task accuracies (general %, mean over seeds; - where a seed's curve "
                     "does not get there):\n\n| method |");
    for (int l = 0; l < MOFO_DEMO_N_LEVELS; l++) mofo_sb_printf(sb, " at %d%% |", 10 * (l + 1));
    mofo_sb_puts(sb, "\n|---|");
    for (int l = 0; l < MOFO_DEMO_N_LEVELS; l++) mofo_sb_puts(sb, "---|");
    mofo_sb_puts(sb, "\n");
    for (int k = 0; k < r->n_matched; k++) {
        mofo_sb_printf(sb, "| %s |", r->matched[k].name);
        for (int l = 0; l < MOFO_DEMO_N_LEVELS; l++) {
            const mofo_demo_matched *mt = &r->matched[k];
            if (!isfinite(mt->at[l])) mofo_sb_puts(sb, " - |");
            else if (isfinite(mt->at_sd[l])) mofo_sb_printf(sb, " %.1f ± %.1f |", 100 * mt->at[l], 100 * mt->at_sd[l]);
            else mofo_sb_printf(sb, " %.1f |", 100 * mt->at[l]);
        }
        mofo_sb_puts(sb, "\n");
    }
    mofo_sb_puts(sb, "\nEvery run:\n\n| run | seed | lr | task acc % | general % | val acc % | L2 to base |\n"
                     "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->n_runs; i++) {
        const mofo_demo_run *u = &r->runs[i];
        mofo_sb_printf(sb, "| %s | %d | %.3g |", u->name, u->seed, u->lr);
        pct(sb, u->s.task_acc), pct(sb, u->s.knowledge_acc), pct(sb, u->val_acc);
        mofo_sb_printf(sb, " %.3f |\n", u->s.l2_distance);
    }
    mofo_sb_printf(sb, "\nSettings: {%s}. Wall time %.0f s.\n\n", r->settings, r->seconds);
    const char *x = r->plot_suffix ? r->plot_suffix : "";
    mofo_sb_printf(sb, "Plots: loss%s.png (training loss per step of the chosen runs), tradeoff%s.png (every "
                       "method's curve). Every number comes from results.json; each run's `command` there repeats it "
                       "with `mofo finetune`, and `mofo eval` rescores the chosen models saved in models/.\n",
                   x, x);
}

/* ---- plots ---- */
static int write(mofo_strbuf *sb, const char *dir, const char *stem, const char *x, const char *ext, mofo_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s%s.%s", dir, stem, x, ext);
    int rc = sb->failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : mofo_write_file_atomic(path, sb->data, sb->len, err);
    sb->len = 0;
    return rc;
}

/* a name gnuplot can take as one word */
static void plot_name(mofo_strbuf *sb, const char *name) {
    for (const char *c = name; *c; c++) mofo_sb_append(sb, *c == ' ' ? "_" : c, 1);
}

int mofo_demo_plot_files(const mofo_demo_report *r, const char *dir, mofo_err *err) {
    const char *x = r->plot_suffix ? r->plot_suffix : "";
    mofo_strbuf sb = {0};
    int most = 0, n_chosen = 0;
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].chosen) n_chosen++, most = r->runs[i].steps > most ? r->runs[i].steps : most;
    mofo_sb_puts(&sb, "step"); /* a header row, not a comment: the plot takes its titles from it */
    for (int i = 0; i < r->n_runs; i++)
        if (r->runs[i].chosen) mofo_sb_printf(&sb, "\t\"%s\"", r->runs[i].name);
    mofo_sb_puts(&sb, "\n");
    for (int k = 0; k < most; k++) {
        mofo_sb_printf(&sb, "%d", k + 1);
        for (int i = 0; i < r->n_runs; i++) {
            const mofo_demo_run *u = &r->runs[i];
            if (!u->chosen) continue;
            if (k < u->steps) mofo_sb_printf(&sb, "\t%.5g", (double)u->loss[k]);
            else mofo_sb_puts(&sb, "\tNaN");
        }
        mofo_sb_puts(&sb, "\n");
    }
    int rc = write(&sb, dir, "loss", x, "dat", err);
    if (!rc) {
        mofo_sb_printf(&sb, "reset\nset terminal pngcairo size 900,560 noenhanced\nset output 'loss%s.png'\nset datafile missing 'NaN'\n"
                            "set title 'Training loss on the arithmetic task (the chosen runs)'\nset xlabel 'step'\n"
                            "set ylabel 'loss'\nset logscale y\nset key outside right\nplot", x);
        for (int i = 0; i < n_chosen; i++)
            mofo_sb_printf(&sb, "%s 'loss%s.dat' using 1:%d with lines lw 2 title columnheader(%d)", i ? "," : "", x, i + 2,
                           i + 2);
        mofo_sb_puts(&sb, "\n");
        rc = write(&sb, dir, "loss", x, "gp", err);
    }
    /* tradeoff.dat: per method two blocks (gnuplot's index 2k and 2k+1): the curve of the mean over
     * seeds at each learning rate, in the grid's order, started at the base; every run */
    if (!rc) {
        for (int k = 0; k < r->n_matched; k++) {
            const char *name = r->matched[k].name;
            double lrs[64], task[64], know[64];
            int count[64], n = 0;
            for (int i = 0; i < r->n_runs; i++) {
                const mofo_demo_run *u = &r->runs[i];
                if (strcmp(u->name, name) != 0) continue;
                int j = 0;
                while (j < n && lrs[j] != u->lr) j++;
                if (j == 64) continue;
                if (j == n) lrs[n] = u->lr, task[n] = know[n] = 0, count[n] = 0, n++;
                task[j] += u->s.task_acc, know[j] += u->s.knowledge_acc, count[j]++;
            }
            for (int j = 0; j < n; j++) task[j] /= count[j], know[j] /= count[j]; /* means */
            mofo_sb_printf(&sb, "# %s: mean over seeds per learning rate (lr task%% general%%)\n0\t%.3f\t%.3f\n", name,
                           100 * r->base.task_acc, 100 * r->base.knowledge_acc);
            for (int j = 0; j < n; j++) mofo_sb_printf(&sb, "%g\t%.3f\t%.3f\n", lrs[j], 100 * task[j], 100 * know[j]);
            mofo_sb_printf(&sb, "\n\n# %s: every run (lr task%% general%% seed)\n", name);
            for (int i = 0; i < r->n_runs; i++) {
                const mofo_demo_run *u = &r->runs[i];
                if (strcmp(u->name, name) == 0)
                    mofo_sb_printf(&sb, "%g\t%.3f\t%.3f\t%d\n", u->lr, 100 * u->s.task_acc, 100 * u->s.knowledge_acc,
                                   u->seed);
            }
            mofo_sb_puts(&sb, "\n\n");
        }
        rc = write(&sb, dir, "tradeoff", x, "dat", err);
    }
    if (!rc) {
        mofo_sb_printf(&sb, "reset\nset terminal pngcairo size 900,620 noenhanced\nset output 'tradeoff%s.png'\n", x);
        mofo_sb_puts(&sb, "set title 'Task accuracy against general knowledge kept (each method over its learning rates)'\n"
                          "set xlabel 'task accuracy (math_test exact match, %)'\n"
                          "set ylabel 'general knowledge kept (mean of EM and MC, %)'\nset key outside right\nset grid\n"
                          "set xrange [0:100]\nset yrange [0:100]\n");
        if (isfinite(r->level))
            mofo_sb_printf(&sb, "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2\n"
                                "set label 'matched: %.0f%%' at %.3f, graph 0.04 offset 0.5,0\n",
                           100 * r->level, 100 * r->level, 100 * r->level, 100 * r->level);
        mofo_sb_puts(&sb, "plot");
        for (int k = 0; k < r->n_matched; k++) {
            mofo_sb_printf(&sb, "%s 'tradeoff%s.dat' index %d using 2:3 with linespoints lw 2 pt 7 lc %d title '", k ? "," : "",
                           x, 2 * k, k + 1);
            plot_name(&sb, r->matched[k].name);
            mofo_sb_printf(&sb, "', '' index %d using 2:3 with points pt 6 ps 0.8 lc %d notitle", 2 * k + 1, k + 1);
        }
        mofo_sb_puts(&sb, "\n");
        rc = write(&sb, dir, "tradeoff", x, "gp", err);
    }
    mofo_sb_free(&sb);
    return rc;
}
