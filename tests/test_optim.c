/* libmofo beyond the fixtures:
 *  - a brute-force reference (full sort of |m| per block, scalar loops) on many sizes, tie patterns,
 *    alphas, partitions, filters and thread counts, over enough steps to use both the bracket and
 *    the histogram path: parameters, m, v bit for bit, and the counts of moved entries exactly;
 *  - the sort-based selection path against the radix path, bit for bit;
 *  - alpha = 1 equals the dense rule bit for bit, for each rule;
 *  - exactly-k mode, the random filter, the name policy, statistics. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mofo/optim.h"
#include "optim/internal.h"

/* ---- deterministic inputs ---- */

static uint64_t rng_state = 12345;
static uint32_t next_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}
static float uniform(void) { return (float)(next_u32() >> 8) / 16777216.0f - 0.5f; }

typedef enum { GRAD_SMOOTH, GRAD_TIES, GRAD_EQUAL } grad_kind;

static void fill_grad(float *g, int64_t n, grad_kind kind) {
    static const float levels[4] = {-0.5f, 0.25f, 0.5f, -0.125f};
    for (int64_t i = 0; i < n; i++)
        g[i] = kind == GRAD_SMOOTH ? uniform() : kind == GRAD_TIES ? levels[next_u32() % 4] : 0.375f;
}

/* ---- the reference: each rule with a sort-based top-k mask, written plainly ---- */

typedef struct ref_param {
    int64_t numel, rows;
    float *p, *m, *v;
    uint8_t *moved; /* (numel) 1 once the entry has moved */
    int filtered;
    double wd;
} ref_param;

static int desc_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* thr = the k-th largest score over the given ranges (one block), k = max(1, floor(alpha * size)) */
static float ref_threshold(float **scores, const int64_t *lens, int nr, double alpha) {
    int64_t total = 0;
    for (int r = 0; r < nr; r++) total += lens[r];
    float *a = malloc((size_t)total * sizeof *a);
    int64_t j = 0;
    for (int r = 0; r < nr; r++)
        for (int64_t i = 0; i < lens[r]; i++) a[j++] = scores[r][i];
    qsort(a, (size_t)total, sizeof *a, desc_float);
    int64_t k = (int64_t)floor(alpha * (double)total);
    if (k < 1) k = 1;
    float thr = a[k - 1];
    free(a);
    return thr;
}

/* The rule of one step, from the formulas of optim.h (AdamW as torch.optim.AdamW evaluates it):
 * updates m (and v) in place and gives the momentum the filter scores and the proposed update. */
static void ref_rule(mofo_rule rule, float g, float *m, float *v, int64_t t, double lr, float *mom, float *delta) {
    if (rule == MOFO_RULE_ADAMW) {
        const double b1 = 0.9, b2 = 0.999;
        *m = *m + (float)(1 - b1) * (g - *m);
        *v = *v * (float)b2;
        *v = *v + (float)(1 - b2) * g * g;
        float h = sqrtf(*v) / (float)sqrt(1 - pow(b2, (double)t)) + 1e-8f;
        *mom = *m;
        *delta = (float)(-(lr / (1 - pow(b1, (double)t)))) * *m / h;
    } else if (rule == MOFO_RULE_LION) { /* c = b1 m + (1-b1) g; p -= lr sign(c); m = b2 m + (1-b2) g */
        float c = 0.9f * *m + (float)(1 - 0.9) * g;
        *mom = c;
        *delta = (float)-lr * (float)((c > 0) - (c < 0));
        *m = 0.99f * *m + (float)(1 - 0.99) * g;
    } else { /* SGD with heavy-ball momentum: m = b1 m + g; p -= lr m */
        *m = *m * 0.9f + g;
        *mom = *m;
        *delta = (float)-lr * *m;
    }
}

/* One step of the reference over all parameters. partition: 0 tensor, 1 rows (rows_per_block), 2 model.
 * The filter scores |momentum|, |g| or |update|; under the random filter the mask is the one given
 * in random_sel (numel per parameter: what the library chose, whose count the caller checks).
 * updated[i] receives the moved entries of parameter i. */
static void ref_step(ref_param *ps, int np, const float *const *grads, int64_t t, double lr, double alpha,
                     mofo_rule rule, mofo_filter filter, int partition, int64_t rows_per_block,
                     uint8_t *const *random_sel, int64_t *updated) {
    float *score[16], *delta[16];
    for (int i = 0; i < np; i++) {
        score[i] = malloc((size_t)ps[i].numel * sizeof(float));
        delta[i] = malloc((size_t)ps[i].numel * sizeof(float));
        for (int64_t e = 0; e < ps[i].numel; e++) {
            float g = grads[i][e], mom;
            ref_rule(rule, g, &ps[i].m[e], ps[i].v ? &ps[i].v[e] : NULL, t, lr, &mom, &delta[i][e]);
            score[i][e] = fabsf(filter == MOFO_FILTER_GRADIENT ? g : filter == MOFO_FILTER_UPDATE ? delta[i][e] : mom);
        }
    }
    float model_thr = 0;
    if (partition == 2) {
        float *sc[16];
        int64_t lens[16];
        int nr = 0;
        for (int i = 0; i < np; i++)
            if (ps[i].filtered) sc[nr] = score[i], lens[nr++] = ps[i].numel;
        if (nr) model_thr = ref_threshold(sc, lens, nr, alpha);
    }
    for (int i = 0; i < np; i++) {
        float decay = (float)(1.0 - lr * ps[i].wd);
        int64_t row_len = ps[i].numel / ps[i].rows, per = partition == 1 ? rows_per_block : ps[i].rows;
        updated[i] = 0;
        for (int64_t r = 0; r < ps[i].rows; r += per) {
            int64_t lo = r * row_len, len = (r + per < ps[i].rows ? per : ps[i].rows - r) * row_len;
            float *sr = score[i] + lo;
            float thr = !ps[i].filtered || filter == MOFO_FILTER_RANDOM ? 0
                        : partition == 2                              ? model_thr
                                                                      : ref_threshold(&sr, &len, 1, alpha);
            for (int64_t e = lo; e < lo + len; e++) {
                float decayed = ps[i].p[e] * decay;
                int sel = !ps[i].filtered ||
                          (filter == MOFO_FILTER_RANDOM ? random_sel[i][e] != 0 : score[i][e] >= thr);
                ps[i].p[e] = sel ? decayed + delta[i][e] : decayed;
                ps[i].moved[e] |= (uint8_t)sel;
                updated[i] += sel;
            }
        }
        free(score[i]);
        free(delta[i]);
    }
}

/* ---- the comparison ---- */

typedef struct case_spec {
    const char *what;
    int np;
    int64_t shapes[4][2]; /* {rows, cols}; cols 0 means a 1-dim tensor of `rows` entries */
    grad_kind grads;
    double alpha;
    int partition;
    int64_t rows_per_block;
    int threads, steps;
    mofo_rule rule;     /* default (0) AdamW */
    mofo_filter filter; /* default (0) momentum */
} case_spec;

static unsigned settled_seen; /* bit s set once a block was settled by way s (SETTLED_*) */
static int too_wide_seen;     /* a block's next bracket was expected to hold too many keys to keep */

static void run_case(const case_spec *cs) {
    rng_state = 777;
    mofo_options o;
    mofo_options_init(&o, cs->rule);
    o.filter = cs->filter;
    o.ties = cs->filter == MOFO_FILTER_RANDOM ? MOFO_TIES_EXACT_K : MOFO_TIES_KEEP;
    o.seed = 5;
    o.alpha = cs->alpha;
    o.weight_decay = 0.05;
    o.partition = (mofo_partition)cs->partition;
    o.rows_per_block = cs->rows_per_block ? cs->rows_per_block : 1;
    o.threads = cs->threads;
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    ref_param ref[4];
    float *p[4], *g[4];
    for (int i = 0; i < cs->np; i++) {
        int64_t rows = cs->shapes[i][0], cols = cs->shapes[i][1], n = rows * (cols ? cols : 1);
        p[i] = malloc((size_t)n * sizeof(float));
        g[i] = malloc((size_t)n * sizeof(float));
        ref[i] = (ref_param){n, cols ? rows : 1, malloc((size_t)n * 4), calloc((size_t)n, 4),
                             cs->rule == MOFO_RULE_ADAMW ? calloc((size_t)n, 4) : NULL, calloc((size_t)n, 1), cols != 0,
                             cols ? 0.05 : 0.0};
        for (int64_t e = 0; e < n; e++) p[i][e] = ref[i].p[e] = uniform();
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        int ndim = cols ? 2 : 1;
        CHECK(mofo_optim_add_param(opt, name, p[i], g[i], ndim, cs->shapes[i], MOFO_GROUP_AUTO, &err) == i, "%s",
              err.msg);
    }
    int ok = 1;
    for (int t = 1; t <= cs->steps && ok; t++) {
        /* gradients drift slowly between steps, as in training, with a jump at step 4 */
        for (int i = 0; i < cs->np; i++) {
            if (t == 1 || t == 4) fill_grad(g[i], ref[i].numel, cs->grads);
            else if (cs->grads == GRAD_SMOOTH)
                for (int64_t e = 0; e < ref[i].numel; e += 7) g[i][e] += 0.01f * uniform();
        }
        int64_t want[4];
        float *before[4];
        for (int i = 0; i < cs->np; i++) { /* the random filter's mask: read off the library's step */
            before[i] = malloc((size_t)ref[i].numel * 4);
            memcpy(before[i], p[i], (size_t)ref[i].numel * 4);
        }
        CHECK(mofo_optim_step(opt, 1e-2, &err) == 0, "%s", err.msg);
        uint8_t *sel[4];
        for (int i = 0; i < cs->np; i++) {
            sel[i] = malloc((size_t)ref[i].numel);
            float decay = (float)(1.0 - 1e-2 * ref[i].wd);
            for (int64_t e = 0; e < ref[i].numel; e++) sel[i][e] = p[i][e] != before[i][e] * decay;
        }
        ref_step(ref, cs->np, (const float *const *)g, t, 1e-2, cs->alpha, cs->rule, cs->filter, cs->partition,
                 o.rows_per_block, sel, want);
        for (int i = 0; i < cs->np; i++) {
            if (cs->filter == MOFO_FILTER_RANDOM && ref[i].filtered) { /* exactly k per tensor */
                int64_t k = (int64_t)floor(cs->alpha * (double)ref[i].numel);
                CHECK(want[i] == (k < 1 ? 1 : k), "%s: step %d tensor %d: %lld moved, k = %lld", cs->what, t, i,
                      (long long)want[i], (long long)(k < 1 ? 1 : k));
            }
            free(before[i]);
            free(sel[i]);
        }
        for (int b = 0; b < opt->n_blocks; b++) {
            settled_seen |= 1u << opt->blocks[b].settled;
            too_wide_seen |= opt->blocks[b].too_wide;
        }
        const mofo_stats *st = mofo_optim_stats(opt);
        for (int i = 0; i < cs->np; i++) {
            int64_t n = ref[i].numel;
            int same = memcmp(p[i], ref[i].p, (size_t)n * 4) == 0 && memcmp(mofo_optim_m(opt, i), ref[i].m, (size_t)n * 4) == 0 &&
                       (!ref[i].v || memcmp(mofo_optim_v(opt, i), ref[i].v, (size_t)n * 4) == 0);
            CHECK(same, "%s: step %d tensor %d: p, m, v differ from the reference", cs->what, t, i);
            CHECK(st->param_updated[i] == want[i], "%s: step %d tensor %d: moved %lld, reference %lld", cs->what, t, i,
                  (long long)st->param_updated[i], (long long)want[i]);
            ok &= same && st->param_updated[i] == want[i];
        }
        int64_t ever = 0;
        for (int i = 0; i < cs->np; i++)
            for (int64_t e = 0; e < ref[i].numel; e++) ever += ref[i].moved[e];
        CHECK(st->ever_updated == ever, "%s: step %d: %lld entries ever moved, reference %lld", cs->what, t,
              (long long)st->ever_updated, (long long)ever);
    }
    for (int i = 0; i < cs->np; i++) {
        free(p[i]);
        free(g[i]);
        free(ref[i].p);
        free(ref[i].m);
        free(ref[i].v);
        free(ref[i].moved);
    }
    mofo_optim_destroy(opt);
}

static void test_against_reference(void) {
    const case_spec cases[] = {
        {"one entry", 1, {{1, 1}}, GRAD_SMOOTH, 0.15, 0, 0, 1, 3, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"small mixed", 3, {{7, 5}, {9, 0}, {64, 48}}, GRAD_SMOOTH, 0.15, 0, 0, 1, 6, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"block just above the small size", 1, {{4097, 1}}, GRAD_SMOOTH, 0.15, 0, 0, 1, 8, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"one chunk", 1, {{256, 250}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 10, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"many chunks", 2, {{1000, 300}, {300, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 12, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"many chunks, 1 thread", 1, {{700, 333}}, GRAD_SMOOTH, 0.1, 0, 0, 1, 8, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"ties", 2, {{32, 32}, {400, 500}}, GRAD_TIES, 0.15, 0, 0, 2, 6, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"all equal", 1, {{300, 300}}, GRAD_EQUAL, 0.15, 0, 0, 2, 4, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"alpha = 1/numel", 1, {{300, 301}}, GRAD_SMOOTH, 1.0 / (300 * 301), 0, 0, 2, 5, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"alpha = 0.5", 1, {{300, 301}}, GRAD_SMOOTH, 0.5, 0, 0, 2, 5, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"alpha = 1", 1, {{300, 301}}, GRAD_SMOOTH, 1.0, 0, 0, 2, 4, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"rows, 3 per block", 2, {{10, 64}, {100, 700}}, GRAD_SMOOTH, 0.15, 1, 3, 2, 6, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"rows, big blocks", 1, {{1000, 200}}, GRAD_SMOOTH, 0.15, 1, 400, 2, 6, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        {"whole model", 3, {{100, 700}, {64, 48}, {50, 0}}, GRAD_SMOOTH, 0.15, 2, 0, 2, 8, MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM},
        /* the other rules and filters against the same plain reference */
        {"lion", 3, {{300, 200}, {64, 48}, {50, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 6, MOFO_RULE_LION, MOFO_FILTER_MOMENTUM},
        {"lion, rows", 1, {{100, 70}}, GRAD_SMOOTH, 0.2, 1, 7, 2, 5, MOFO_RULE_LION, MOFO_FILTER_MOMENTUM},
        {"sgdm", 3, {{300, 200}, {64, 48}, {50, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 6, MOFO_RULE_SGDM, MOFO_FILTER_MOMENTUM},
        {"sgdm, whole model", 2, {{100, 70}, {33, 9}}, GRAD_SMOOTH, 0.1, 2, 0, 1, 5, MOFO_RULE_SGDM, MOFO_FILTER_MOMENTUM},
        {"gradient filter", 2, {{300, 200}, {50, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 6, MOFO_RULE_ADAMW,
         MOFO_FILTER_GRADIENT},
        {"update filter", 2, {{300, 200}, {50, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 6, MOFO_RULE_ADAMW, MOFO_FILTER_UPDATE},
        {"update filter, sgdm", 1, {{120, 90}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 5, MOFO_RULE_SGDM, MOFO_FILTER_UPDATE},
        {"gradient filter, lion", 1, {{120, 90}}, GRAD_SMOOTH, 0.3, 0, 0, 2, 5, MOFO_RULE_LION, MOFO_FILTER_GRADIENT},
        {"random filter", 2, {{300, 200}, {50, 0}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 6, MOFO_RULE_ADAMW, MOFO_FILTER_RANDOM},
        {"random filter, sgdm", 1, {{120, 90}}, GRAD_SMOOTH, 0.15, 0, 0, 2, 5, MOFO_RULE_SGDM, MOFO_FILTER_RANDOM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    CHECK(settled_seen & (1u << SETTLED_EXACT), "no block was settled from all its keys (small blocks)");
    CHECK(settled_seen & (1u << SETTLED_BRACKET), "no block was settled by selecting among its bracket's keys");
    CHECK(settled_seen & (1u << SETTLED_HISTOGRAM), "no block was settled by the histogram");
    CHECK(too_wide_seen, "no bracket was too wide to keep its keys (pass 1 counting the histogram instead)");
}

/* ---- a generic runner: n steps of an optimizer over fixed tensors ---- */

#define N_T 3
static const int64_t SHAPES[N_T][2] = {{300, 500}, {33, 7}, {128, 0}};

typedef struct run {
    float *p[N_T], *g[N_T];
    mofo_optim *opt;
} run;

static int64_t numel_of(int i) { return SHAPES[i][0] * (SHAPES[i][1] ? SHAPES[i][1] : 1); }

static void run_init(run *r, const mofo_options *o, int sort_select) {
    mofo_err err = {0};
    r->opt = mofo_optim_create(o, &err);
    CHECK(r->opt != NULL, "%s", err.msg);
    if (sort_select) CHECK(mofo_optim_select_by_sort(r->opt, &err) == 0, "%s", err.msg);
    rng_state = 99;
    for (int i = 0; i < N_T; i++) {
        int64_t n = numel_of(i);
        r->p[i] = malloc((size_t)n * 4);
        r->g[i] = malloc((size_t)n * 4);
        for (int64_t e = 0; e < n; e++) r->p[i][e] = uniform();
        char name[32];
        snprintf(name, sizeof name, "layer.%d.weight", i);
        CHECK(mofo_optim_add_param(r->opt, name, r->p[i], r->g[i], SHAPES[i][1] ? 2 : 1, SHAPES[i], MOFO_GROUP_AUTO,
                                   &err) >= 0,
              "%s", err.msg);
    }
}

/* step number t's gradients depend only on t */
static void run_steps(run *r, int from, int to) {
    mofo_err err = {0};
    for (int t = from; t <= to; t++) {
        rng_state = 1000 + (uint64_t)t;
        for (int i = 0; i < N_T; i++)
            for (int64_t e = 0; e < numel_of(i); e++) r->g[i][e] = uniform() + 0.2f * sinf((float)e);
        CHECK(mofo_optim_step(r->opt, 1e-3, &err) == 0, "%s", err.msg);
    }
}

static int same_params(const run *a, const run *b) {
    for (int i = 0; i < N_T; i++)
        if (memcmp(a->p[i], b->p[i], (size_t)numel_of(i) * 4) != 0) return 0;
    return 1;
}

static void run_free(run *r) {
    for (int i = 0; i < N_T; i++) {
        free(r->p[i]);
        free(r->g[i]);
    }
    mofo_optim_destroy(r->opt);
}

static void test_sort_path_and_alpha_one(void) {
    for (int rule = 0; rule < 3; rule++)
        for (int filter = 0; filter < 4; filter++) {
            mofo_options o;
            mofo_options_init(&o, (mofo_rule)rule);
            o.filter = (mofo_filter)filter;
            o.weight_decay = 0.1;
            run radix, sorted;
            run_init(&radix, &o, 0);
            run_init(&sorted, &o, 1);
            run_steps(&radix, 1, 6);
            run_steps(&sorted, 1, 6);
            CHECK(same_params(&radix, &sorted), "rule %s filter %s: radix and sort selection differ",
                  mofo_rule_name(o.rule), mofo_filter_name(o.filter));
            run_free(&radix);
            run_free(&sorted);
        }
    for (int rule = 0; rule < 3; rule++) {
        mofo_options o;
        mofo_options_init(&o, (mofo_rule)rule);
        o.alpha = 1.0;
        o.weight_decay = 0.1;
        run filtered, dense;
        run_init(&filtered, &o, 0);
        o.filter = MOFO_FILTER_NONE;
        run_init(&dense, &o, 0);
        run_steps(&filtered, 1, 5);
        run_steps(&dense, 1, 5);
        CHECK(mofo_optim_param_filtered(filtered.opt, 0) && !mofo_optim_param_filtered(dense.opt, 0), "filtered flags");
        CHECK(same_params(&filtered, &dense), "rule %s: alpha = 1 differs from the dense rule", mofo_rule_name(o.rule));
        run_free(&filtered);
        run_free(&dense);
    }
}

static void test_exact_k(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.ties = MOFO_TIES_EXACT_K;
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    enum { R = 40, C = 50, N = R * C };
    float *p = calloc(N, 4), *g = malloc(N * 4);
    mofo_optim_add_param(opt, "w", p, g, 2, (int64_t[]){R, C}, MOFO_GROUP_AUTO, &err);
    /* entries 0..9 have |g| = 2, all others |g| = 1: k = 300, so 10 large + 290 of the tied ones */
    for (int step = 1; step <= 3; step++) {
        for (int i = 0; i < N; i++) g[i] = i < 10 ? 2.0f : (i % 2 ? 1.0f : -1.0f);
        float before[N];
        memcpy(before, p, sizeof before);
        CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
        const mofo_stats *st = mofo_optim_stats(opt);
        CHECK(st->param_updated[0] == 300 && st->blocks[0].updated == 300 && st->blocks[0].k == 300,
              "exact-k moved %lld of k = 300", (long long)st->param_updated[0]);
        int first_300 = 1;
        for (int i = 0; i < N; i++) first_300 &= (p[i] != before[i]) == (i < 300);
        CHECK(first_300, "step %d: ties broken by index: the 300 lowest indices move", step);
    }
    mofo_optim_destroy(opt);
    /* the same with ties kept: every tied entry moves */
    o.ties = MOFO_TIES_KEEP;
    opt = mofo_optim_create(&o, &err);
    mofo_optim_add_param(opt, "w", p, g, 2, (int64_t[]){R, C}, MOFO_GROUP_AUTO, &err);
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_stats(opt)->param_updated[0] == N, "ties kept: all %d move (got %lld)", N,
          (long long)mofo_optim_stats(opt)->param_updated[0]);
    mofo_optim_destroy(opt);
    free(p);
    free(g);
}

static void test_random_filter(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.filter = MOFO_FILTER_RANDOM;
    o.ties = MOFO_TIES_EXACT_K;
    o.seed = 42;
    run a, b, c;
    run_init(&a, &o, 0);
    run_init(&b, &o, 0);
    o.seed = 43;
    run_init(&c, &o, 0);
    run_steps(&a, 1, 4);
    run_steps(&b, 1, 4);
    run_steps(&c, 1, 4);
    CHECK(same_params(&a, &b), "the same seed gives the same masks");
    CHECK(!same_params(&a, &c), "another seed gives other masks");
    const mofo_stats *st = mofo_optim_stats(a.opt);
    CHECK(st->param_updated[0] == (int64_t)floor(0.15 * 150000), "random: exactly k moved (%lld)", (long long)st->param_updated[0]);
    /* 4 draws of 15%: about 1 - 0.85^4 = 47.8% of the entries of tensor 0 moved at least once */
    double cov = 0;
    float *m = mofo_optim_m(a.opt, 0);
    (void)m;
    int64_t touched = 0;
    param_state *ps = &a.opt->params[0];
    for (int64_t w = 0; w < (150000 + 63) / 64; w++) touched += __builtin_popcountll(ps->touched[w]);
    cov = (double)touched / 150000;
    CHECK(fabs(cov - 0.478) < 0.01, "random masks cover %.3f of tensor 0 after 4 steps, expected 0.478", cov);
    run_free(&a);
    run_free(&b);
    run_free(&c);
}

static void test_policies(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.1;
    o.policy = MOFO_POLICY_NAMES;
    mofo_group g;
    mofo_policy_group(&o, "model.layers.0.input_layernorm.weight", 1, &g);
    CHECK(!g.filtered && g.weight_decay == 0, "names: norm is dense, not decayed");
    mofo_policy_group(&o, "h.0.attn.c_attn.bias", 1, &g);
    CHECK(!g.filtered && g.weight_decay == 0.1, "names: bias is dense and decayed");
    mofo_policy_group(&o, "transformer.ln_f.weight", 1, &g);
    CHECK(g.filtered && g.weight_decay == 0, "names: ln_f is filtered, not decayed");
    mofo_policy_group(&o, "lm_head.weight", 2, &g);
    CHECK(g.filtered && g.weight_decay == 0.1, "names: a matrix is filtered and decayed");
    o.policy = MOFO_POLICY_NDIM;
    mofo_policy_group(&o, "h.0.attn.c_attn.bias", 1, &g);
    CHECK(!g.filtered && g.weight_decay == 0, "ndim: 1-dim is dense, not decayed");
    mofo_policy_group(&o, "wte", 2, &g);
    CHECK(g.filtered && g.weight_decay == 0.1, "ndim: 2-dim is filtered and decayed");
}

static void test_groups_and_stats(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_SGDM);
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    mofo_group half;
    mofo_group_init(&half, &o);
    half.lr_scale = 0.5;
    half.alpha = 0.5;
    int gid = mofo_optim_add_group(opt, &half, &err);
    CHECK(gid == 0, "first group id 0 (%d)", gid);
    float p[8] = {0}, g[8] = {1, -2, 3, -4, 0.5f, 0.25f, 6, -7};
    mofo_optim_add_param(opt, "w", p, g, 2, (int64_t[]){2, 4}, gid, &err);
    CHECK(mofo_optim_step(opt, 0.2, &err) == 0, "%s", err.msg);
    /* SGDM, m = g at step 1; k = 4: |g| = 7, 6, 4, 3 move by -0.1 * g (lr 0.2 * lr_scale 0.5) */
    float want[8] = {0, 0, -0.3f, 0.4f, 0, 0, -0.6f, 0.7f};
    int same = 1;
    for (int i = 0; i < 8; i++) same &= fabsf(p[i] - want[i]) < 1e-7f;
    CHECK(same, "group lr_scale and alpha: %g %g %g %g %g %g %g %g", p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
    const mofo_stats *st = mofo_optim_stats(opt);
    double norm = sqrt(0.09 + 0.16 + 0.36 + 0.49);
    CHECK(fabs(st->update_norm - norm) < 1e-6, "update norm %g, expected %g", st->update_norm, norm);
    CHECK(st->updated == 4 && st->ever_updated == 4 && st->coverage == 0.5, "coverage after step 1: %lld %g",
          (long long)st->ever_updated, st->coverage);
    g[0] = 100; /* step 2: m = 0.9 m + g; entry 0 now has the largest |m| */
    CHECK(mofo_optim_step(opt, 0.2, &err) == 0, "%s", err.msg);
    CHECK(st->ever_updated == 5 && st->step == 2, "coverage after step 2: %lld", (long long)st->ever_updated);
    mofo_optim_destroy(opt);
}

/* A state restored by hand (what the PyTorch binding does): m, v and the coverage bits copied
 * through the pointers into a fresh optimizer, mofo_optim_restore, then both take the same steps:
 * equal bit for bit, with the same coverage; mofo_optim_set_param moves a parameter to other
 * arrays, and the step then reads and writes those. */
static void test_restore_and_set_param(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.01;
    run a, b;
    run_init(&a, &o, 0);
    run_init(&b, &o, 0);
    run_steps(&a, 1, 3);
    mofo_err err = {0};
    for (int i = 0; i < N_T; i++) {
        int64_t n = numel_of(i);
        memcpy(b.p[i], a.p[i], (size_t)n * 4);
        memcpy(mofo_optim_m(b.opt, i), mofo_optim_m(a.opt, i), (size_t)n * 4);
        memcpy(mofo_optim_v(b.opt, i), mofo_optim_v(a.opt, i), (size_t)n * 4);
        memcpy(mofo_optim_touched(b.opt, i), mofo_optim_touched(a.opt, i), (size_t)(n + 63) / 64 * 8);
    }
    CHECK(mofo_optim_restore(b.opt, 3, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_stats(b.opt)->ever_updated == mofo_optim_stats(a.opt)->ever_updated,
          "restored coverage %lld, want %lld", (long long)mofo_optim_stats(b.opt)->ever_updated,
          (long long)mofo_optim_stats(a.opt)->ever_updated);
    CHECK(mofo_optim_restore(b.opt, -1, &err) != 0 && strstr(err.msg, "step -1"), "negative step: %s", err.msg);
    run_steps(&a, 4, 6);
    run_steps(&b, 4, 6);
    CHECK(same_params(&a, &b), "a state restored by hand does not continue bit for bit");
    CHECK(mofo_optim_stats(b.opt)->step == 6 && mofo_optim_stats(b.opt)->ever_updated ==
                                                   mofo_optim_stats(a.opt)->ever_updated,
          "restored run: step %lld", (long long)mofo_optim_stats(b.opt)->step);
    /* parameter 1 moved to copies: the step updates the copies, the old arrays stay */
    int64_t n1 = numel_of(1);
    float *p2 = malloc((size_t)n1 * 4), *g2 = malloc((size_t)n1 * 4), *old = malloc((size_t)n1 * 4);
    memcpy(p2, b.p[1], (size_t)n1 * 4);
    memcpy(old, b.p[1], (size_t)n1 * 4);
    CHECK(mofo_optim_set_param(b.opt, 1, p2, g2, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_set_param(b.opt, 7, p2, g2, &err) != 0 && strstr(err.msg, "parameter 7"), "bad index: %s",
          err.msg);
    rng_state = 1007;
    for (int i = 0; i < N_T; i++) /* step 7's gradients, as run_steps draws them */
        for (int64_t e = 0; e < numel_of(i); e++) {
            float gv = uniform() + 0.2f * sinf((float)e);
            a.g[i][e] = gv;
            (i == 1 ? g2 : b.g[i])[e] = gv;
        }
    CHECK(mofo_optim_step(a.opt, 1e-3, &err) == 0 && mofo_optim_step(b.opt, 1e-3, &err) == 0, "%s", err.msg);
    CHECK(memcmp(p2, a.p[1], (size_t)n1 * 4) == 0 && memcmp(b.p[1], old, (size_t)n1 * 4) == 0,
          "set_param: the step did not move to the new arrays");
    free(p2), free(g2), free(old);
    run_free(&a);
    run_free(&b);
}

int main(void) {
    test_against_reference();
    test_sort_path_and_alpha_one();
    test_exact_k();
    test_random_filter();
    test_policies();
    test_groups_and_stats();
    test_restore_and_set_param();
    return CHECK_DONE();
}
