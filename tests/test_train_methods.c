/* train/ pieces against hand-derived values and finite differences: the learning-rate schedules and
 * warm-up, HFT's frozen set, the L1/L2 pull's gradient (central differences of its value, and inside
 * a trainer step: loss gradient + pull), weight differences. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "train/train.h"

static void schedules(void) {
    struct {
        mofo_sched_kind k;
        int64_t W, S, s;
        double want;
    } c[] = {
        {MOFO_SCHED_CONSTANT, 0, 10, 0, 1.0},   {MOFO_SCHED_CONSTANT, 0, 10, 9, 1.0},
        {MOFO_SCHED_CONSTANT, 4, 10, 0, 0.0},   {MOFO_SCHED_CONSTANT, 4, 10, 1, 0.25},
        {MOFO_SCHED_CONSTANT, 4, 10, 4, 1.0},   {MOFO_SCHED_LINEAR, 0, 10, 0, 1.0},
        {MOFO_SCHED_LINEAR, 0, 10, 5, 0.5},     {MOFO_SCHED_LINEAR, 0, 10, 9, 0.1},
        {MOFO_SCHED_LINEAR, 4, 10, 2, 0.5},     {MOFO_SCHED_LINEAR, 4, 10, 4, 1.0},
        {MOFO_SCHED_LINEAR, 4, 10, 7, 0.5},     {MOFO_SCHED_LINEAR, 4, 10, 9, 1.0 / 6},
        {MOFO_SCHED_COSINE, 2, 10, 1, 0.5},     {MOFO_SCHED_COSINE, 2, 10, 2, 1.0},
        {MOFO_SCHED_COSINE, 2, 10, 4, 0.5 * (1 + sqrt(0.5))}, {MOFO_SCHED_COSINE, 2, 10, 6, 0.5},
        {MOFO_SCHED_COSINE, 2, 10, 8, 0.5 * (1 - sqrt(0.5))}, {MOFO_SCHED_COSINE, 0, 4, 0, 1.0},
        {MOFO_SCHED_COSINE, 0, 4, 2, 0.5},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double got = mofo_lr_at(c[i].k, 2e-3, c[i].W, c[i].S, c[i].s);
        CHECK(fabs(got - 2e-3 * c[i].want) <= 1e-15, "%s W=%lld S=%lld s=%lld: %.17g, want %.17g",
              mofo_sched_name(c[i].k), (long long)c[i].W, (long long)c[i].S, (long long)c[i].s, got, 2e-3 * c[i].want);
    }
    int64_t W = -1;
    mofo_err err = {0};
    CHECK(mofo_warmup_steps(0.1, 25, &W, &err) == 0 && W == 3, "ratio 0.1 of 25: %lld (ceil 2.5 = 3)", (long long)W);
    CHECK(mofo_warmup_steps(0.5, 10, &W, &err) == 0 && W == 5, "ratio 0.5 of 10: %lld", (long long)W);
    CHECK(mofo_warmup_steps(3, 10, &W, &err) == 0 && W == 3, "3 steps: %lld", (long long)W);
    CHECK(mofo_warmup_steps(0, 10, &W, &err) == 0 && W == 0, "no warm-up: %lld", (long long)W);
    CHECK(mofo_warmup_steps(1.5, 10, &W, &err) != 0 && strstr(err.msg, "warmup 1.5"), "1.5: %s", err.msg);
    CHECK(mofo_warmup_steps(-1, 10, &W, &err) != 0, "-1 accepted");
    mofo_sched_kind k;
    mofo_method m;
    CHECK(mofo_sched_parse("cosine", &k) == 0 && k == MOFO_SCHED_COSINE && mofo_sched_parse("step", &k) != 0, "sched");
    CHECK(mofo_method_parse("hft", &m) == 0 && m == MOFO_METHOD_HFT && mofo_method_parse("lora-mofo", &m) == 0 && m == MOFO_METHOD_LORA_MOFO && mofo_method_parse("dora", &m) != 0, "method");
}

static void hft_names(void) {
    const char *frozen[] = {"model.embed_tokens.weight", "lm_head.weight", "model.layers.0.self_attn.q_proj.weight",
                            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.q_proj.bias",
                            "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
                            "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
                            "model.layers.1.mlp.down_proj.weight", "model.layers.12.mlp.up_proj.weight",
                            "transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
                            "transformer.h.0.attn.c_attn.bias", "transformer.h.0.mlp.c_fc.weight",
                            "transformer.h.1.attn.c_proj.weight", "transformer.h.1.mlp.c_proj.bias", "transformer.h.11.mlp.c_proj.weight"};
    const char *trained[] = {"model.norm.weight", "model.layers.0.self_attn.v_proj.weight",
                             "model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight",
                             "model.layers.0.input_layernorm.weight", "model.layers.1.self_attn.q_proj.weight",
                             "model.layers.1.self_attn.k_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                             "model.layers.1.mlp.up_proj.weight", "model.layers.1.post_attention_layernorm.weight",
                             "transformer.ln_f.weight", "transformer.h.0.attn.c_proj.weight",
                             "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.ln_1.weight",
                             "transformer.h.1.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.bias"};
    /* the names as the paper's rule gives them, looked up in the tables of a GPT-2 124M and a
     * TinyLlama-shaped model with q/k/v biases (as Qwen2 has) */
    mofo_model_config gpt2, llama;
    mofo_param *pg = NULL, *pl = NULL;
    int ng = 0, nl = 0;
    mofo_err err = {0};
    CHECK(mofo_config_preset(&gpt2, "gpt2", "124M", &err) == 0 && mofo_config_preset(&llama, "llama", "1.1B", &err) == 0,
          "%s", err.msg);
    llama.qkv_bias = 1;
    CHECK(mofo_model_param_table(&gpt2, &pg, &ng, NULL, &err) == 0 && mofo_model_param_table(&llama, &pl, &nl, NULL, &err) == 0,
          "%s", err.msg);
    for (int want = 0; want < 2; want++) {
        const char **names = want ? frozen : trained;
        size_t n = want ? sizeof frozen / sizeof *frozen : sizeof trained / sizeof *trained;
        for (size_t i = 0; i < n; i++) {
            const mofo_param *p = NULL;
            for (int k = 0; k < ng && !p; k++) p = strcmp(pg[k].name, names[i]) == 0 ? &pg[k] : NULL;
            for (int k = 0; k < nl && !p; k++) p = strcmp(pl[k].name, names[i]) == 0 ? &pl[k] : NULL;
            CHECK(p && !mofo_method_def_of(MOFO_METHOD_HFT)->trains(p) == want, "%s: %s", names[i], !p ? "not in the table" : want ? "trains" : "frozen");
        }
    }
    free(pg);
    free(pl);
}

/* the pull's gradient against central differences of the value it returns */
static void penalty_fd(int kind) {
    enum { N = 64 };
    float th[N], th0[N], g[N];
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        th0[i] = (float)((s >> 40) % 2001) / 1000.0f - 1.0f;
        th[i] = th0[i] + (i % 5 == 0 ? 0.0f : (float)((int)((s >> 20) % 201) - 100) / 400.0f);
        g[i] = 0.5f; /* accumulates onto what is there */
    }
    const double reg = 0.3;
    float zero[N];
    memset(zero, 0, sizeof zero);
    double pen = mofo_backend_cpu()->penalty_grad(kind, reg, th, th0, g, N);
    double want = 0;
    for (int i = 0; i < N; i++) {
        double d = (double)(th[i] - th0[i]);
        want += kind == 1 ? fabs(d) : d * d;
    }
    CHECK(fabs(pen - reg * want) <= 1e-12 * fmax(1, pen), "L%d value %.17g vs %.17g", kind, pen, reg * want);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        float d = th[i] - th0[i];
        if (d == 0) {
            CHECK(g[i] == 0.5f, "L%d: gradient %g where theta = theta0", kind, g[i] - 0.5);
            continue;
        }
        const float h = 1.0f / 256; /* exact in float: theta +- h rounds the same way on both sides */
        if (kind == 1 && fabsf(d) <= 2 * h) continue; /* not across the kink */
        float tp[N], tm[N], scratch[N];
        memcpy(tp, th, sizeof th);
        memcpy(tm, th, sizeof th);
        tp[i] += h;
        tm[i] -= h;
        memset(scratch, 0, sizeof scratch);
        double fp = mofo_backend_cpu()->penalty_grad(kind, reg, tp, th0, scratch, N);
        double fm = mofo_backend_cpu()->penalty_grad(kind, reg, tm, th0, scratch, N);
        double fd = (fp - fm) / ((double)tp[i] - (double)tm[i]);
        double an = (double)g[i] - 0.5;
        double e = fabs(fd - an) / fmax(1e-3, fabs(fd));
        worst = fmax(worst, e);
        CHECK(e <= 1e-4, "L%d entry %d: analytic %.9g, finite differences %.9g", kind, i, an, fd);
    }
    printf("L%d pull: gradient vs central differences, worst relative error %.3g\n", kind, worst);
}

/* inside a step: the gradient the optimizer sees is the loss's plus the pull's */
static void penalty_in_step(int kind) {
    char dir[] = "/tmp/mofo-test-methods-XXXXXX";
    if (!mkdtemp(dir)) return;
    char data[128];
    snprintf(data, sizeof data, "%s/d.jsonl", dir);
    FILE *f = fopen(data, "w");
    if (!f) return;
    fputs("{\"input_ids\": [1, 5, 9, 33, 2, 7, 100, 4]}\n{\"input_ids\": [3, 8, 12, 6, 90]}\n", f);
    fclose(f);
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.model_dir = MOFO_FIXTURES "/llama-tiny";
    o.data_path = data;
    o.method = kind == 1 ? MOFO_METHOD_L1 : MOFO_METHOD_L2;
    o.reg = 0.05;
    o.lr = 1e-3;
    o.batch = 2;
    o.steps = 2;
    o.clip = 0;
    o.shuffle = 0;
    mofo_err err = {0};
    mofo_trainer *t = NULL;
    CHECK(mofo_trainer_create(&t, &o, &err) == 0, "%s", err.msg);
    if (t) {
        mofo_model *m = t->m;
        size_t n = m->n_floats;
        for (size_t i = 0; i < n; i++) m->params[i] += (i % 3 ? 1e-3f : -2e-3f) * (float)(i % 7); /* away from theta0 */
        float *before = malloc(n * sizeof *before), *gref = malloc(n * sizeof *gref);
        memcpy(before, m->params, n * sizeof *before);
        /* the loss gradient on the first batch (both rows, file order) */
        int ids[2 * 8], tg[2 * 8];
        int r0[8] = {1, 5, 9, 33, 2, 7, 100, 4}, r1[8] = {3, 8, 12, 6, 90, 0, 0, 0};
        for (int i = 0; i < 8; i++) {
            ids[i] = r0[i], ids[8 + i] = r1[i];
            tg[i] = i < 7 ? r0[i + 1] : -100;
            tg[8 + i] = i < 4 ? r1[i + 1] : -100;
        }
        mofo_model_zero_grads(m);
        float loss;
        CHECK(t->T == 8 && mofo_model_forward(m, ids, tg, 2, 8, &loss, &err) == 0 &&
                  mofo_model_backward(m, ids, tg, &err) == 0,
              "%s", err.msg);
        memcpy(gref, m->grads, n * sizeof *gref);
        mofo_backend_cpu()->penalty_grad(kind, o.reg, before, t->theta0, gref, (int64_t)n);
        mofo_step_metrics mt;
        CHECK(mofo_trainer_step(t, &mt, &err) == 0, "%s", err.msg);
        CHECK(fabs(mt.loss - loss) <= 1e-6, "step loss %g vs %g", mt.loss, loss);
        CHECK(memcmp(gref, m->grads, n * sizeof *gref) == 0, "L%d: the step's gradient is not loss + pull", kind);
        CHECK(mt.penalty > 0, "penalty %g", mt.penalty);
        free(before);
        free(gref);
    }
    mofo_trainer_free(t);
    unlink(data);
    rmdir(dir);
}

static void diffs(void) {
    float a[] = {1, 2, -0.0f, 3, 4}, b[] = {1, 2.5f, 0.0f, 3, 2};
    mofo_diff d = {0};
    mofo_diff_accum(&d, a, b, 5);
    CHECK(d.numel == 5 && d.changed == 3 && d.sq == 0.25 + 4 && d.base_sq == 30, "diff %lld %lld %g %g",
          (long long)d.numel, (long long)d.changed, d.sq, d.base_sq);
}

int main(void) {
    schedules();
    hft_names();
    penalty_fd(1);
    penalty_fd(2);
    penalty_in_step(1);
    penalty_in_step(2);
    diffs();
    return CHECK_DONE();
}
