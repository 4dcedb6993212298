/* mofo demo: the shipped base knows its world (>= 500 exact-match and >= 500 multiple-choice items,
 * the scores below), a --quick demo runs end to end and writes every file, every table row and the
 * matched read-out recompute from results.json, the alpha sweep's alpha = 1 equals the AdamW run
 * (MoFO at alpha 1 is AdamW, bit for bit), and bad flags fail with a message. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "run_cmd.h"
#include "demo/demo.h"
#include "demo/matched.h"
#include "demo/world.h"
#include "io/json.h"
#include "text/tokenizer.h"

static char tmp[256];

static char *run(const char *fmt, const char *a, const char *b, int *status) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, MOFO_BIN, a, b);
    return run_capture(tmp, cmd, 1, status);
}

static int exists(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

/* ---- the shipped base ---- */
static void test_base(void) {
    char world[512], path[600];
    snprintf(world, sizeof world, "%s/base-world", tmp);
    snprintf(path, sizeof path, "%s/world.json", MOFO_DEMO_BASE);
    mofo_world_opts o;
    mofo_world w;
    mofo_err err = {0};
    CHECK(mofo_world_opts_read(path, &o, &err) == 0, "%s", err.msg);
    CHECK(mofo_world_build(&w, &o, &err) == 0, "%s", err.msg);
    CHECK(mofo_world_write(&w, world, NULL, &err) == 0, "%s", err.msg);
    mofo_world_free(&w);
    mofo_model *m = NULL;
    mofo_tokenizer *tok = NULL;
    CHECK(mofo_model_load(&m, MOFO_DEMO_BASE, &err) == 0, "%s", err.msg);
    CHECK(mofo_tokenizer_load_dir(&tok, MOFO_DEMO_BASE, &err) == 0, "%s", err.msg);
    if (!m || !tok) return;
    mofo_demo_scores s;
    CHECK(mofo_demo_evaluate(m, tok, world, MOFO_DEMO_KNOWLEDGE | MOFO_DEMO_PPL, &s, &err) == 0, "%s", err.msg);
    printf("shipped base: knowledge EM %.4f, MC %.4f, ppl %.4f (%zu parameters)\n", s.knowledge_em, s.knowledge_mc,
           s.ppl, m->n_floats);
    /* >= 500 items of each kind and >= 90% on both (the targets); checked at the scores measured on
     * the shipped base (92.77% and 99.61%), less 10 items for another machine's rounding */
    CHECK(s.knowledge_em >= 0.90 && s.knowledge_mc >= 0.90, "the base is below 90%% on its world");
    CHECK(s.n_em >= 500 && s.n_mc >= 500, "%d exact-match and %d multiple-choice items", s.n_em, s.n_mc);
    CHECK(s.knowledge_em >= 0.9277 - 10.0 / 512, "knowledge exact match %.4f, measured 0.9277", s.knowledge_em);
    CHECK(s.knowledge_mc >= 0.9961 - 10.0 / 512, "knowledge multiple choice %.4f, measured 0.9961", s.knowledge_mc);
    mofo_model_free(m);
    mofo_tokenizer_free(tok);
}

/* ---- results.json against results.md ---- */
static double num(const mofo_json *obj, const char *key) {
    const mofo_json *v = mofo_json_get(obj, key);
    return v && v->type == MOFO_JSON_NUMBER ? v->number : NAN;
}

static void pct(char *out, size_t cap, double v) {
    if (isfinite(v)) snprintf(out, cap, " %.1f |", 100 * v);
    else snprintf(out, cap, " - |");
}

/* the table row results.md must hold for one chosen run, made from the JSON alone */
static void expected_row(const mofo_json *base, const mofo_json *run, const char *name, char *out, size_t cap) {
    char a[32], b[32], c[32], d[32], e[32], f[32];
    pct(a, sizeof a, num(run, "task_acc")), pct(b, sizeof b, num(run, "knowledge_em"));
    pct(c, sizeof c, num(run, "knowledge_mc")), pct(d, sizeof d, num(run, "knowledge_acc"));
    pct(e, sizeof e, num(run, "changed_fraction")), pct(f, sizeof f, num(run, "coverage"));
    double drop = 100 * (num(base, "knowledge_acc") - num(run, "knowledge_acc"));
    snprintf(out, cap, "| %s | %.3g |%s%s%s%s %.1f | %.3f | %.3f |%s%s %.1f |\n", name, num(run, "lr"), a, b, c, d, drop,
             num(run, "ppl"), num(run, "l2_distance"), e, f, num(run, "ms_per_step"));
}

/* the matched table's row, from the JSON alone */
static void expected_matched_row(const mofo_json *base, const mofo_json *m, const char *name, char *out, size_t cap) {
    char a[32], b[32], d[32];
    pct(a, sizeof a, num(m, "knowledge_acc")), pct(b, sizeof b, num(m, "knowledge_acc_sd"));
    if (isfinite(num(m, "knowledge_acc")))
        snprintf(d, sizeof d, " %.1f |", 100 * (num(base, "knowledge_acc") - num(m, "knowledge_acc")));
    else
        snprintf(d, sizeof d, " - |");
    snprintf(out, cap, "| %s |%s%s %d |%s\n", name, a, b, (int)num(m, "n_seeds"), d);
}

static mofo_json_doc *load_json(const char *dir, const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    size_t len = 0;
    char *text = slurp(p, &len);
    mofo_err err = {0};
    mofo_json_doc *d = text ? mofo_json_parse(text, len, &err) : NULL;
    CHECK(d != NULL, "%s: %s", p, text ? err.msg : "missing");
    free(text);
    return d;
}

/* The matched read-out recomputed from the curves of the JSON: each seed's curve read at the level
 * by mofo_demo_knowledge_at (checked on hand-made curves in test_matched), the mean over seeds. */
static double recompute_matched(const mofo_json *base, const mofo_json *curve, double level, int *n_seeds) {
    mofo_demo_point pts[64];
    double sum = 0;
    int seeds = 0;
    for (int seed = 1; seed <= 8; seed++) {
        int n = 0;
        for (const mofo_json *e = curve ? curve->child : NULL; e && n < 64; e = e->next)
            if ((int)num(e, "seed") == seed) pts[n++] = (mofo_demo_point){num(e, "task_acc"), num(e, "knowledge_acc")};
        if (!n) continue;
        sum += mofo_demo_knowledge_at(pts, n, (mofo_demo_point){num(base, "task_acc"), num(base, "knowledge_acc")}, level);
        seeds++;
    }
    *n_seeds = seeds;
    return seeds ? sum / seeds : NAN;
}

static void check_results(const char *dir, const char *stem, const char *kind, int want_runs) {
    char name[64];
    snprintf(name, sizeof name, "%s.json", stem);
    mofo_json_doc *doc = load_json(dir, name);
    if (!doc) return;
    snprintf(name, sizeof name, "%s.md", stem);
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *md = slurp(p, NULL);
    CHECK(md != NULL, "%s missing", p);
    const mofo_json *root = mofo_json_root(doc), *base = mofo_json_get(root, "base"), *runs = mofo_json_get(root, kind);
    const mofo_json *curves = mofo_json_get(root, "curves"), *matched = mofo_json_get(root, "matched");
    CHECK(base && runs && runs->type == MOFO_JSON_OBJECT && (int)runs->count == want_runs, "%s: %s has %zu runs",
          stem, kind, runs ? runs->count : 0);
    CHECK(curves && curves->type == MOFO_JSON_OBJECT && (int)curves->count == want_runs, "%s: %zu curves", stem,
          curves ? curves->count : 0);
    CHECK(num(base, "knowledge_acc") == (num(base, "knowledge_em") + num(base, "knowledge_mc")) / 2,
          "base: knowledge_acc is not the mean of em and mc");
    CHECK(num(root, "n_knowledge_items") == num(root, "n_knowledge_em") + num(root, "n_knowledge_mc") &&
              num(root, "n_knowledge_items") > 0 && isfinite(num(root, "seconds")),
          "%s: n_knowledge_items %g, seconds %g", stem, num(root, "n_knowledge_items"), num(root, "seconds"));
    for (const mofo_json *r = runs ? runs->child : NULL; r && md; r = r->next) {
        char run_name[64], row[512];
        snprintf(run_name, sizeof run_name, "%.*s", (int)r->key_len, r->key);
        for (const char *k = "task_acc\0knowledge_acc\0knowledge_em\0knowledge_mc\0ppl\0l2_distance\0ms_per_step\0"
                             "lr\0val_loss\0val_acc\0drop\0changed_fraction\0seed\0";
             *k; k += strlen(k) + 1)
            CHECK(isfinite(num(r, k)), "%s: %s is not a number", run_name, k);
        /* every run trained: its weights moved (LoRA's merged ones too) */
        CHECK(num(r, "l2_distance") > 0 && num(r, "changed_fraction") > 0, "%s: L2 %g, changed %g: nothing moved",
              run_name, num(r, "l2_distance"), num(r, "changed_fraction"));
        CHECK(fabs(num(r, "drop") - 100 * (num(base, "knowledge_acc") - num(r, "knowledge_acc"))) < 1e-9,
              "%s: drop %.17g is not base - run", run_name, num(r, "drop"));
        CHECK(num(r, "knowledge_acc") == (num(r, "knowledge_em") + num(r, "knowledge_mc")) / 2,
              "%s: knowledge_acc is not the mean of em and mc", run_name);
        const mofo_json *loss = mofo_json_get(r, "loss");
        CHECK(loss && loss->type == MOFO_JSON_ARRAY && (double)loss->count == num(r, "steps") && loss->count > 0,
              "%s: %zu losses for %g steps", run_name, loss ? loss->count : 0, num(r, "steps"));
        const mofo_json *cmd = mofo_json_get(r, "command");
        CHECK(cmd && cmd->type == MOFO_JSON_STRING && strstr(cmd->str, "mofo finetune --model"), "%s: command", run_name);
        expected_row(base, r, run_name, row, sizeof row);
        CHECK(strstr(md, row) != NULL, "%s: results.md lacks the row recomputed from the JSON:\n%s", run_name, row);
        /* the chosen run is one of its curve's runs */
        const mofo_json *curve = mofo_json_get(curves, run_name);
        int found = 0;
        for (const mofo_json *e = curve ? curve->child : NULL; e; e = e->next)
            found |= num(e, "lr") == num(r, "lr") && num(e, "seed") == num(r, "seed") &&
                     num(e, "task_acc") == num(r, "task_acc") && num(e, "knowledge_acc") == num(r, "knowledge_acc");
        CHECK(found, "%s: the chosen run is not on its curve", run_name);
    }
    double level = num(matched, "task_acc");
    const mofo_json *mm = mofo_json_get(matched, "methods");
    CHECK(mm && (int)mm->count == want_runs && level >= 0 && level <= 1, "%s: matched level %g, %zu methods", stem,
          level, mm ? mm->count : 0);
    for (const mofo_json *m = mm ? mm->child : NULL; m && md; m = m->next) {
        char mname[64], row[256];
        snprintf(mname, sizeof mname, "%.*s", (int)m->key_len, m->key);
        const mofo_json *curve = mofo_json_get(curves, mname);
        double best = -1;
        for (const mofo_json *e = curve ? curve->child : NULL; e; e = e->next)
            best = num(e, "task_acc") > best ? num(e, "task_acc") : best;
        CHECK(best >= level, "%s: its best task accuracy %g is below the matched level %g", mname, best, level);
        int n_seeds = 0;
        double want = recompute_matched(base, curve, level, &n_seeds);
        CHECK(fabs(num(m, "knowledge_acc") - want) < 1e-12 && n_seeds == (int)num(m, "n_seeds"),
              "%s: matched knowledge %.17g over %g seeds, recomputed %.17g over %d", mname, num(m, "knowledge_acc"),
              num(m, "n_seeds"), want, n_seeds);
        expected_matched_row(base, m, mname, row, sizeof row);
        CHECK(strstr(md, row) != NULL, "%s: results.md lacks the matched row:\n%s", mname, row);
    }
    free(md);
    mofo_json_free(doc);
}

static const mofo_json *run_named(const mofo_json_doc *d, const char *kind, const char *name) {
    return d ? mofo_json_get(mofo_json_get(mofo_json_root(d), kind), name) : NULL;
}

static void test_quick(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/demo", tmp);
    int st;
    char *log = run("'%s' demo --quick --out '%s' --threads 1%s", out, "", &st);
    CHECK(st == 0, "mofo demo --quick: status %d:\n%s", st, log ? log : "");
    CHECK(log && strstr(log, "| base |") && strstr(log, "| mofo |"), "no table printed:\n%s", log ? log : "");
    free(log);
    const char *files[] = {"results.json", "results.md", "loss.png", "tradeoff.png", "loss.gp", "tradeoff.dat",
                           "world/math_train.jsonl", "world/knowledge_gen.jsonl", "world/world.json",
                           "models/mofo/model.safetensors", "models/adamw/config.json", "models/lora/model.safetensors",
                           "models/lora/adapter/adapter_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) CHECK(exists(out, files[i]), "%s/%s missing", out, files[i]);
    check_results(out, "results", "methods", 6);
    /* the run's eval_command, run by hand, prints the scores results.json holds */
    mofo_json_doc *res = load_json(out, "results.json");
    const mofo_json *mo = run_named(res, "methods", "mofo"), *ec = mo ? mofo_json_get(mo, "eval_command") : NULL;
    CHECK(ec && ec->type == MOFO_JSON_STRING && strstr(ec->str, "mofo eval --model"), "mofo: no eval_command");
    if (ec && ec->type == MOFO_JSON_STRING) {
        char cmd[4096], want[3][64];
        snprintf(cmd, sizeof cmd, "PATH='%s':\"$PATH\" && (%s)", MOFO_BIN_DIR, ec->str);
        char *got = run_capture(tmp, cmd, 1, &st);
        snprintf(want[0], sizeof want[0], "exact_match %.4f", num(mo, "task_acc"));
        snprintf(want[1], sizeof want[1], "exact_match %.4f", num(mo, "knowledge_em"));
        snprintf(want[2], sizeof want[2], "acc %.4f", num(mo, "knowledge_mc"));
        CHECK(st == 0 && got && strstr(got, want[0]) && strstr(got, want[1]) && strstr(got, want[2]),
              "eval_command: status %d, want \"%s\", \"%s\", \"%s\" in:\n%s", st, want[0], want[1], want[2],
              got ? got : "");
        free(got);
    }
    mofo_json_free(res);

    /* the alpha study; MoFO at alpha 1 moves every entry: the AdamW run exactly */
    log = run("'%s' demo --quick --out '%s' --threads 1 --sweep-alpha 0.05,1%s", out, "", &st);
    CHECK(st == 0, "mofo demo --sweep-alpha: status %d:\n%s", st, log ? log : "");
    free(log);
    check_results(out, "results_alpha", "alpha", 2);
    CHECK(exists(out, "loss_alpha.png") && exists(out, "tradeoff_alpha.png"), "the sweep's plots are missing");
    mofo_json_doc *m = load_json(out, "results.json"), *a = load_json(out, "results_alpha.json");
    const mofo_json *adamw = run_named(m, "methods", "adamw"), *one = run_named(a, "alpha", "mofo a=1"),
                    *small = run_named(a, "alpha", "mofo a=0.05");
    CHECK(adamw && one && small, "runs missing");
    if (adamw && one && small) {
        for (const char *k = "task_acc\0knowledge_em\0knowledge_mc\0ppl\0l2_distance\0"; *k; k += strlen(k) + 1)
            CHECK(num(adamw, k) == num(one, k), "%s: adamw %.17g, mofo a=1 %.17g", k, num(adamw, k), num(one, k));
        CHECK(num(small, "l2_distance") < num(one, "l2_distance"), "alpha 0.05 moved %.6g, alpha 1 %.6g",
              num(small, "l2_distance"), num(one, "l2_distance"));
    }
    mofo_json_free(m);
    mofo_json_free(a);
}

/* --continual: R is 3x3 per method, OP and BWT recompute from it as TRACE defines them */
static void test_continual(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/cont", tmp);
    int st;
    char *log = run("'%s' demo --quick --out '%s' --threads 1 --continual --methods adamw,mofo%s", out, "", &st);
    CHECK(st == 0 && log && strstr(log, "| mofo |"), "mofo demo --continual: status %d:\n%s", st, log ? log : "");
    free(log);
    mofo_json_doc *d = load_json(out, "results_continual.json");
    const mofo_json *methods = d ? mofo_json_get(mofo_json_root(d), "methods") : NULL;
    CHECK(methods && methods->count == 2, "results_continual.json: %zu methods", methods ? methods->count : 0);
    for (const mofo_json *m = methods ? methods->child : NULL; m; m = m->next) {
        const mofo_json *R = mofo_json_get(m, "R"), *gen = mofo_json_get(m, "general");
        double r[3][3] = {{NAN}}, op = 0, bwt = 0;
        int i = 0;
        for (const mofo_json *row = R ? R->child : NULL; row && i < 3; row = row->next, i++) {
            int j = 0;
            for (const mofo_json *v = row->child; v && j < 3; v = v->next, j++) r[i][j] = v->number;
            CHECK(row->count == 3, "%.*s: R row %d has %zu entries", (int)m->key_len, m->key, i, row->count);
        }
        CHECK(i == 3 && gen && gen->count == 3, "%.*s: R has %d rows, general %zu values", (int)m->key_len, m->key, i,
              gen ? gen->count : 0);
        for (int j = 0; j < 3; j++) op += r[2][j];
        for (int j = 0; j < 2; j++) bwt += r[2][j] - r[j][j];
        CHECK(fabs(num(m, "OP") - op / 3) < 1e-12 && fabs(num(m, "BWT") - bwt / 2) < 1e-12,
              "%.*s: OP %.17g BWT %.17g, recomputed %.17g %.17g", (int)m->key_len, m->key, num(m, "OP"), num(m, "BWT"),
              op / 3, bwt / 2);
    }
    mofo_json_free(d);
    CHECK(exists(out, "results_continual.md") && exists(out, "world/continual_mul-div_test.jsonl") &&
              exists(out, "continual/mofo-3-mul-div/model.safetensors"),
          "continual files missing");
}

static void test_bad_flags(void) {
    struct {
        const char *args, *msg;
        int status;
    } bad[] = {
        {"--methods adamw,sgd", "'sgd'", 2},
        {"--sweep-alpha 0,0.5", "--sweep-alpha", 2},
        {"--sweep-alpha 0.1,2", "--sweep-alpha", 2},
        {"--sweep-alpha x", "--sweep-alpha", 2},
        {"--steps 0", "--steps", 2},
        {"--lr-scale 0", "--lr-scale", 2},
        {"--lr-scale -1", "--lr-scale", 2},
        {"--bogus", "--bogus", 2},
        {"--base /no/such/base", "/no/such/base/world.json", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[512];
        snprintf(out, sizeof out, "%s/bad", tmp);
        int st;
        char *log = run("'%s' demo --quick --out '%s' %s", out, bad[i].args, &st);
        CHECK(st == bad[i].status && log && strstr(log, bad[i].msg) && strstr(log, "mofo demo"),
              "%s: status %d, output \"%s\"", bad[i].args, st, log ? log : "");
        free(log);
    }
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/mofo_test_demo_XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_base();
    test_bad_flags();
    test_quick();
    test_continual();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return CHECK_DONE();
}
