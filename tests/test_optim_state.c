/* libmofo: Lion and SGD-momentum against hand-computed steps; save, load and continue equals the
 * uninterrupted run bit for bit; and every bad input is refused with a message naming it. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mofo/optim.h"

static char tmpdir[64];

static int close_to(const float *a, const float *b, int n, float tol) {
    for (int i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol) return 0;
    return 1;
}

/* ---- hand-computed steps (derivations in the comments; tolerance 1e-6 absolute) ---- */

static void test_lion_by_hand(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_LION); /* b1 0.9, b2 0.99 */
    o.weight_decay = 0.5;
    o.filter = MOFO_FILTER_NONE;
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    float p[2] = {1, -2}, g[2] = {0.5f, -0.25f};
    mofo_optim_add_param(opt, "w", p, g, 1, (int64_t[]){2}, MOFO_GROUP_AUTO, &err);
    /* step 1, lr 0.1: c = 0.1 g = (0.05, -0.025), sign (1, -1); p = 0.95 p - 0.1 sign = (0.85, -1.8);
       m = 0.01 g = (0.005, -0.0025). (1-dim, so the default policy would not decay: use a group) */
    mofo_optim_destroy(opt);
    opt = mofo_optim_create(&o, &err);
    mofo_group grp;
    mofo_group_init(&grp, &o);
    mofo_optim_add_group(opt, &grp, &err);
    mofo_optim_add_param(opt, "w", p, g, 1, (int64_t[]){2}, 0, &err);
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(close_to(p, (float[]){0.85f, -1.8f}, 2, 1e-6f), "lion step 1: %.7g %.7g", p[0], p[1]);
    CHECK(close_to(mofo_optim_m(opt, 0), (float[]){0.005f, -0.0025f}, 2, 1e-9f), "lion m after step 1");
    CHECK(mofo_optim_v(opt, 0) == NULL, "lion keeps no v");
    /* step 2, g = (-1, -1): c = 0.9 m + 0.1 g = (-0.0955, -0.10225), sign (-1, -1);
       p = 0.95 (0.85, -1.8) + 0.1 = (0.9075, -1.61); m = 0.99 m + 0.01 g = (-0.00505, -0.012475) */
    g[0] = g[1] = -1;
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(close_to(p, (float[]){0.9075f, -1.61f}, 2, 1e-6f), "lion step 2: %.7g %.7g", p[0], p[1]);
    CHECK(close_to(mofo_optim_m(opt, 0), (float[]){-0.00505f, -0.012475f}, 2, 1e-8f), "lion m after step 2");
    mofo_optim_destroy(opt);

    /* filtered Lion, 2x3, alpha 0.34: k = floor(2.04) = 2. m = 0, so c = 0.1 g and the two largest
       |c| are entries 5 (0.09) and 1 (0.06): they move by -0.1 sign(c) = -0.1 and +0.1. */
    o.weight_decay = 0;
    o.filter = MOFO_FILTER_MOMENTUM;
    o.alpha = 0.34;
    opt = mofo_optim_create(&o, &err);
    float q[6] = {0}, h[6] = {0.1f, -0.6f, 0.3f, 0.05f, -0.2f, 0.9f};
    mofo_optim_add_param(opt, "w", q, h, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(close_to(q, (float[]){0, 0.1f, 0, 0, 0, -0.1f}, 6, 1e-7f), "filtered lion: %g %g %g %g %g %g", q[0], q[1],
          q[2], q[3], q[4], q[5]);
    mofo_optim_destroy(opt);
}

static void test_sgdm_by_hand(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_SGDM); /* momentum 0.9 */
    o.filter = MOFO_FILTER_NONE;
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    float p[2] = {1, -2}, g[2] = {0.5f, -0.25f};
    mofo_optim_add_param(opt, "w", p, g, 1, (int64_t[]){2}, MOFO_GROUP_AUTO, &err);
    /* step 1: m = g; p -= 0.1 m -> (0.95, -1.975) */
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(close_to(p, (float[]){0.95f, -1.975f}, 2, 1e-6f), "sgdm step 1: %.7g %.7g", p[0], p[1]);
    /* step 2, g = (-1, -1): m = 0.9 m + g = (-0.55, -1.225); p = (1.005, -1.8525) */
    g[0] = g[1] = -1;
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);
    CHECK(close_to(p, (float[]){1.005f, -1.8525f}, 2, 1e-6f), "sgdm step 2: %.7g %.7g", p[0], p[1]);
    CHECK(close_to(mofo_optim_m(opt, 0), (float[]){-0.55f, -1.225f}, 2, 1e-6f), "sgdm m");
    mofo_optim_destroy(opt);
}

/* ---- save, load, continue ---- */

#define NT 3
static const int64_t SH[NT][2] = {{200, 300}, {50, 0}, {70000, 2}};
static int64_t n_of(int i) { return SH[i][0] * (SH[i][1] ? SH[i][1] : 1); }

typedef struct model {
    float *p[NT], *g[NT];
    mofo_optim *opt;
} model;

static void model_init(model *m, const mofo_options *o) {
    mofo_err err = {0};
    m->opt = mofo_optim_create(o, &err);
    uint32_t x = 7;
    for (int i = 0; i < NT; i++) {
        m->p[i] = malloc((size_t)n_of(i) * 4);
        m->g[i] = malloc((size_t)n_of(i) * 4);
        for (int64_t e = 0; e < n_of(i); e++) {
            x = x * 1664525u + 1013904223u;
            m->p[i][e] = (float)(x >> 8) / 16777216.0f - 0.5f;
        }
        char name[32];
        snprintf(name, sizeof name, "blocks.%d.w", i);
        CHECK(mofo_optim_add_param(m->opt, name, m->p[i], m->g[i], SH[i][1] ? 2 : 1, SH[i], MOFO_GROUP_AUTO, &err) == i,
              "%s", err.msg);
    }
}

static void model_steps(model *m, int from, int to) {
    mofo_err err = {0};
    for (int t = from; t <= to; t++) {
        for (int i = 0; i < NT; i++)
            for (int64_t e = 0; e < n_of(i); e++) m->g[i][e] = sinf(0.37f * (float)e + (float)t) * (1.0f + 0.1f * (float)i);
        CHECK(mofo_optim_step(m->opt, 1e-3, &err) == 0, "%s", err.msg);
    }
}

static void model_free(model *m) {
    for (int i = 0; i < NT; i++) {
        free(m->p[i]);
        free(m->g[i]);
    }
    mofo_optim_destroy(m->opt);
}

static void test_resume(mofo_rule rule, mofo_filter filter) {
    mofo_options o;
    mofo_options_init(&o, rule);
    o.filter = filter;
    o.seed = 5;
    o.weight_decay = 0.01;
    model a, b;
    model_init(&a, &o);
    model_steps(&a, 1, 8);

    model_init(&b, &o);
    model_steps(&b, 1, 4);
    char path[128];
    snprintf(path, sizeof path, "%s/state.safetensors", tmpdir);
    mofo_err err = {0};
    CHECK(mofo_optim_save(b.opt, path, &err) == 0, "%s", err.msg);
    float *saved_p[NT];
    for (int i = 0; i < NT; i++) {
        saved_p[i] = malloc((size_t)n_of(i) * 4);
        memcpy(saved_p[i], b.p[i], (size_t)n_of(i) * 4);
    }
    model_free(&b);

    /* a fresh process: the model's weights come from its own checkpoint, the state from the file */
    o.seed = 999; /* the file's seed wins: it is part of the state */
    model_init(&b, &o);
    for (int i = 0; i < NT; i++) {
        memcpy(b.p[i], saved_p[i], (size_t)n_of(i) * 4);
        free(saved_p[i]);
    }
    CHECK(mofo_optim_load(b.opt, path, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_stats(b.opt)->step == 4, "step count restored");
    model_steps(&b, 5, 8);
    int same = 1;
    for (int i = 0; i < NT; i++) {
        same &= memcmp(a.p[i], b.p[i], (size_t)n_of(i) * 4) == 0;
        same &= memcmp(mofo_optim_m(a.opt, i), mofo_optim_m(b.opt, i), (size_t)n_of(i) * 4) == 0;
        if (mofo_optim_v(a.opt, i)) same &= memcmp(mofo_optim_v(a.opt, i), mofo_optim_v(b.opt, i), (size_t)n_of(i) * 4) == 0;
    }
    CHECK(same, "%s/%s: resumed run differs from the uninterrupted one", mofo_rule_name(rule), mofo_filter_name(filter));
    const mofo_stats *sa = mofo_optim_stats(a.opt), *sb = mofo_optim_stats(b.opt);
    CHECK(sa->step == 8 && sb->step == 8 && sa->ever_updated == sb->ever_updated && sa->update_norm == sb->update_norm,
          "statistics after resume: ever %lld vs %lld", (long long)sa->ever_updated, (long long)sb->ever_updated);
    model_free(&a);
    model_free(&b);
}

/* ---- bad input ---- */

static void expect(int rc, int want, const mofo_err *err, const char *needle, const char *what) {
    CHECK(rc == want, "%s: status %d, expected %d", what, rc, want);
    CHECK(strstr(err->msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err->msg, needle);
}

static void test_bad_options(void) {
    mofo_options o;
    mofo_err err = {0};
    struct {
        const char *name, *value, *needle;
    } sets[] = {
        {"alpah", "0.1", "unknown option 'alpah'"},
        {"alpha", "abc", "option alpha: 'abc' is not a number"},
        {"filter", "topk", "option filter: 'topk' is not one of momentum, gradient, update, random, none"},
        {"rule", "adam", "option rule: 'adam'"},
        {"seed", "1.5", "option seed: '1.5' is not an integer"},
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        expect(mofo_options_set(&o, sets[i].name, sets[i].value, &err), MOFO_EINVAL, &err, sets[i].needle, sets[i].name);
    }
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    CHECK(mofo_options_set(&o, "alpha", "0.2", &err) == 0 && o.alpha == 0.2, "alpha set");
    CHECK(mofo_options_set(&o, "rule", "lion", &err) == 0 && o.rule == MOFO_RULE_LION && o.beta2 == 0.99, "rule set");
    CHECK(mofo_options_set(&o, "threads", "2", &err) == 0 && o.threads == 2, "threads set");
    CHECK(mofo_options_set(&o, "track_coverage", "0", &err) == 0 && o.track_coverage == 0 && o.threads == 2,
          "track_coverage set");
    CHECK(mofo_options_set(&o, "ties", "exact-k", &err) == 0 && o.ties == MOFO_TIES_EXACT_K, "ties set");
    CHECK(mofo_options_set(&o, "threads", "-1", &err) == MOFO_EINVAL && strstr(err.msg, "option threads"), "%s", err.msg);
    struct {
        const char *name, *value, *needle;
    } checks[] = {
        {"alpha", "0", "alpha = 0 is outside (0, 1]"},     {"alpha", "1.5", "alpha = 1.5 is outside (0, 1]"},
        {"alpha", "nan", "alpha = nan is outside"},        {"eps", "0", "option eps: 0 must be positive"},
        {"eps", "-1e-8", "option eps"},                    {"beta1", "1", "option beta1: 1 is outside [0, 1)"},
        {"beta1", "-0.1", "option beta1"},                 {"beta2", "1", "option beta2: 1 is outside [0, 1)"},
        {"weight_decay", "-1", "option weight_decay"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        CHECK(mofo_options_set(&o, checks[i].name, checks[i].value, &err) == 0, "%s", err.msg);
        expect(mofo_options_check(&o, &err), MOFO_EINVAL, &err, checks[i].needle, checks[i].name);
        CHECK(mofo_optim_create(&o, &err) == NULL, "create refuses %s = %s", checks[i].name, checks[i].value);
    }
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.partition = MOFO_PARTITION_ROWS;
    o.rows_per_block = 0;
    expect(mofo_options_check(&o, &err), MOFO_EINVAL, &err, "rows_per_block", "rows_per_block 0");
}

static void test_bad_params_and_steps(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    float p[6] = {1, 2, 3, 4, 5, 6}, g[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    mofo_group bad;
    mofo_group_init(&bad, &o);
    bad.alpha = 2;
    expect(mofo_optim_add_group(opt, &bad, &err), MOFO_EINVAL, &err, "alpha = 2", "group alpha");
    expect(mofo_optim_add_param(opt, "w", p, g, 2, (int64_t[]){2, 0}, MOFO_GROUP_AUTO, &err), MOFO_EINVAL, &err,
           "parameter 'w': dimension 1 has size 0", "zero dim");
    expect(mofo_optim_add_param(opt, "w", NULL, g, 1, (int64_t[]){6}, MOFO_GROUP_AUTO, &err), MOFO_EINVAL, &err,
           "'w': data or grad is NULL", "NULL data");
    expect(mofo_optim_add_param(opt, "w", p, g, 1, (int64_t[]){6}, 3, &err), MOFO_EINVAL, &err, "group 3 does not exist",
           "bad group");
    CHECK(mofo_optim_add_param(opt, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err) == 0, "%s", err.msg);
    expect(mofo_optim_add_param(opt, "w", p, g, 1, (int64_t[]){6}, MOFO_GROUP_AUTO, &err), MOFO_EINVAL, &err,
           "'w' is registered twice", "duplicate");
    expect(mofo_optim_step(opt, -1e-3, &err), MOFO_EINVAL, &err, "lr = -0.001 must be >= 0", "negative lr");
    expect(mofo_optim_step(opt, NAN, &err), MOFO_EINVAL, &err, "lr = nan", "NaN lr");
    CHECK(mofo_optim_step(opt, 0.1, &err) == 0, "%s", err.msg);

    /* a NaN, then an infinity: refused, nothing changes */
    float p_before[6], m_before[6], v_before[6];
    memcpy(p_before, p, sizeof p);
    memcpy(m_before, mofo_optim_m(opt, 0), sizeof m_before);
    memcpy(v_before, mofo_optim_v(opt, 0), sizeof v_before);
    g[4] = NAN;
    expect(mofo_optim_step(opt, 0.1, &err), MOFO_ENONFINITE, &err, "parameter 'w': gradient entry 4 is NaN", "NaN grad");
    g[4] = 0.5f;
    g[2] = -INFINITY;
    expect(mofo_optim_step(opt, 0.1, &err), MOFO_ENONFINITE, &err, "gradient entry 2 is infinite; step 2 refused", "inf grad");
    CHECK(memcmp(p, p_before, sizeof p) == 0 && memcmp(mofo_optim_m(opt, 0), m_before, sizeof m_before) == 0 &&
              memcmp(mofo_optim_v(opt, 0), v_before, sizeof v_before) == 0 && mofo_optim_stats(opt)->step == 1,
          "a refused step leaves parameters, state and step count untouched");
    expect(mofo_optim_add_param(opt, "late", p, g, 1, (int64_t[]){6}, MOFO_GROUP_AUTO, &err), MOFO_EINVAL, &err,
           "before the first step", "late param");
    mofo_optim_destroy(opt);
}

static void test_bad_state_files(void) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    mofo_err err = {0};
    char path[160], other[160];
    snprintf(path, sizeof path, "%s/good.safetensors", tmpdir);
    float p[6] = {0}, g[6] = {1, 2, 3, 4, 5, 6}, q[4] = {0}, h[4] = {1, 2, 3, 4};
    mofo_optim *a = mofo_optim_create(&o, &err);
    mofo_optim_add_param(a, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    mofo_optim_add_param(a, "b", q, h, 1, (int64_t[]){4}, MOFO_GROUP_AUTO, &err);
    mofo_optim_step(a, 0.1, &err);
    CHECK(mofo_optim_save(a, path, &err) == 0, "%s", err.msg);

    /* a different shape for 'w' */
    mofo_optim *b = mofo_optim_create(&o, &err);
    mofo_optim_add_param(b, "w", p, g, 2, (int64_t[]){3, 2}, MOFO_GROUP_AUTO, &err);
    mofo_optim_add_param(b, "b", q, h, 1, (int64_t[]){4}, MOFO_GROUP_AUTO, &err);
    expect(mofo_optim_load(b, path, &err), MOFO_EFORMAT, &err, "size mismatch: 'm/w' is F32 [2,3] but parameter 'w' needs F32 [3,2]",
           "shape mismatch");
    CHECK(mofo_optim_m(b, 0)[0] == 0, "a failed load changes nothing");
    mofo_optim_destroy(b);
    /* a parameter the file lacks */
    b = mofo_optim_create(&o, &err);
    mofo_optim_add_param(b, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    mofo_optim_add_param(b, "c", q, h, 1, (int64_t[]){4}, MOFO_GROUP_AUTO, &err);
    expect(mofo_optim_load(b, path, &err), MOFO_EFORMAT, &err, "no tensor 'm/c' for parameter 'c'", "missing tensor");
    mofo_optim_destroy(b);
    /* a tensor for no registered parameter */
    b = mofo_optim_create(&o, &err);
    mofo_optim_add_param(b, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    expect(mofo_optim_load(b, path, &err), MOFO_EINVAL, &err, "tensor 'm/b' belongs to no registered parameter", "extra tensor");
    mofo_optim_destroy(b);
    /* another rule */
    mofo_options lion;
    mofo_options_init(&lion, MOFO_RULE_LION);
    b = mofo_optim_create(&lion, &err);
    mofo_optim_add_param(b, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    expect(mofo_optim_load(b, path, &err), MOFO_EINVAL, &err, "the state is for rule 'adamw' but this optimizer uses 'lion'",
           "rule mismatch");
    mofo_optim_destroy(b);
    /* a safetensors file that is no optimizer state, a truncated one, a missing one */
    b = mofo_optim_create(&o, &err);
    mofo_optim_add_param(b, "w", p, g, 2, (int64_t[]){2, 3}, MOFO_GROUP_AUTO, &err);
    expect(mofo_optim_load(b, MOFO_FIXTURES "/optim/mofo.safetensors", &err), MOFO_EFORMAT, &err,
           "not a mofo optimizer state", "foreign file");
    snprintf(other, sizeof other, "%s/truncated.safetensors", tmpdir);
    FILE *in = fopen(path, "rb"), *out = fopen(other, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n / 2, out);
    fclose(in);
    fclose(out);
    expect(mofo_optim_load(b, other, &err), MOFO_EFORMAT, &err, "truncated.safetensors", "truncated");
    expect(mofo_optim_load(b, "/nonexistent/state.safetensors", &err), MOFO_EIO, &err, "/nonexistent/state.safetensors: cannot open",
           "missing file");
    /* saving into a missing directory fails and names the path; nothing is left behind */
    expect(mofo_optim_save(a, "/nonexistent/dir/state.safetensors", &err), MOFO_EIO, &err,
           "/nonexistent/dir/state.safetensors", "save into missing dir");
    mofo_optim_destroy(b);
    mofo_optim_destroy(a);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo-test-state-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_lion_by_hand();
    test_sgdm_by_hand();
    test_resume(MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM);
    test_resume(MOFO_RULE_ADAMW, MOFO_FILTER_RANDOM);
    test_resume(MOFO_RULE_LION, MOFO_FILTER_UPDATE);
    test_resume(MOFO_RULE_SGDM, MOFO_FILTER_GRADIENT);
    test_bad_options();
    test_bad_params_and_steps();
    test_bad_state_files();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}
