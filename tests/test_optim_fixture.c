/* libmofo against the authors' PyTorch MoFO and torch.optim.AdamW (tests/fixtures/optim/, made by
 * PyTorch 2.11): parameters, m and v after each of 4 steps within relative error 1e-5 (norm of the
 * difference over the norm of the reference, per tensor), and the number of entries each step
 * updated per tensor equal to the reference's selected_per_step, ties included. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "mofo/optim.h"

#define N_TENSORS 6
static const char *NAMES[N_TENSORS] = {"w1", "w2", "b1", "ties", "emb", "small"};

static float *load(const mofo_st_file *f, const char *fmt, int step, const char *name, const mofo_st_tensor **info) {
    char key[128];
    if (step >= 0) snprintf(key, sizeof key, fmt, step, name);
    else snprintf(key, sizeof key, fmt, name);
    const mofo_st_tensor *t = mofo_st_find(f, key);
    if (!t) {
        fprintf(stderr, "fixture lacks %s\n", key);
        exit(1);
    }
    float *x = malloc((size_t)t->numel * sizeof *x);
    mofo_err err;
    if (mofo_st_to_f32(f, t, x, t->numel, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    if (info) *info = t;
    return x;
}

static void run_fixture(const char *which, int threads) {
    char path[512];
    snprintf(path, sizeof path, MOFO_FIXTURES "/optim/%s.json", which);
    size_t len;
    char *text = slurp(path, &len);
    mofo_err err = {0};
    mofo_json_doc *doc = text ? mofo_json_parse(text, len, &err) : NULL;
    CHECK(doc != NULL, "%s: %s", path, err.msg);
    if (!doc) return;
    const mofo_json *meta = mofo_json_root(doc);
    snprintf(path, sizeof path, MOFO_FIXTURES "/optim/%s.safetensors", which);
    mofo_st_file *f = NULL;
    CHECK(mofo_st_open(&f, path, &err) == 0, "%s", err.msg);
    if (!f) return;

    const mofo_json *alpha = mofo_json_get(meta, "alpha");
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.beta1 = mofo_json_get(meta, "beta1")->number;
    o.beta2 = mofo_json_get(meta, "beta2")->number;
    o.eps = mofo_json_get(meta, "eps")->number;
    o.weight_decay = mofo_json_get(meta, "weight_decay")->number;
    o.threads = threads;
    if (alpha->type == MOFO_JSON_NUMBER) o.alpha = alpha->number;
    else o.filter = MOFO_FILTER_NONE;
    double lr = mofo_json_get(meta, "lr")->number;
    mofo_optim *opt = mofo_optim_create(&o, &err);
    CHECK(opt != NULL, "%s", err.msg);

    float *p[N_TENSORS], *g[N_TENSORS];
    int64_t numel[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++) {
        const mofo_st_tensor *t;
        p[i] = load(f, "init/%s", -1, NAMES[i], &t);
        numel[i] = t->numel;
        g[i] = malloc((size_t)t->numel * sizeof(float));
        CHECK(mofo_optim_add_param(opt, NAMES[i], p[i], g[i], t->ndim, t->shape, MOFO_GROUP_AUTO, &err) == i, "%s",
              err.msg);
        /* the default policy must agree with the fixture's filtered set and decay per tensor */
        int filtered = mofo_json_get(mofo_json_get(meta, "filtered"), NAMES[i])->boolean;
        CHECK(mofo_optim_param_filtered(opt, i) == filtered, "%s: filtered %d", NAMES[i], filtered);
    }
    int steps = (int)mofo_json_get(meta, "steps")->number;
    const mofo_json *sel = mofo_json_get(meta, "selected_per_step")->child;
    for (int s = 1; s <= steps; s++, sel = sel->next) {
        for (int i = 0; i < N_TENSORS; i++) {
            float *gs = load(f, "grad%d/%s", s, NAMES[i], NULL);
            memcpy(g[i], gs, (size_t)numel[i] * sizeof(float));
            free(gs);
        }
        CHECK(mofo_optim_step(opt, lr, &err) == 0, "%s", err.msg);
        const mofo_stats *st = mofo_optim_stats(opt);
        for (int i = 0; i < N_TENSORS; i++) {
            float *rp = load(f, "param%d/%s", s, NAMES[i], NULL), *rm = load(f, "m%d/%s", s, NAMES[i], NULL),
                  *rv = load(f, "v%d/%s", s, NAMES[i], NULL);
            double ep = rel_err(p[i], rp, numel[i]), em = rel_err(mofo_optim_m(opt, i), rm, numel[i]),
                   ev = rel_err(mofo_optim_v(opt, i), rv, numel[i]);
            CHECK(ep <= 1e-5 && em <= 1e-5 && ev <= 1e-5, "%s threads=%d step %d %s: rel err p %.3g m %.3g v %.3g",
                  which, threads, s, NAMES[i], ep, em, ev);
            int64_t want = 0;
            mofo_json_int64(mofo_json_get(sel, NAMES[i]), &want);
            CHECK(st->param_updated[i] == want, "%s step %d %s: updated %lld, reference %lld", which, s, NAMES[i],
                  (long long)st->param_updated[i], (long long)want);
            free(rp);
            free(rm);
            free(rv);
        }
    }
    for (int i = 0; i < N_TENSORS; i++) {
        free(p[i]);
        free(g[i]);
    }
    mofo_optim_destroy(opt);
    mofo_st_close(f);
    mofo_json_free(doc);
    free(text);
}

int main(void) {
    for (int threads = 1; threads <= 2; threads++) {
        run_fixture("mofo", threads);
        run_fixture("adamw", threads);
    }
    return CHECK_DONE();
}
