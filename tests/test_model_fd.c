/* Gradients against finite differences on small random models, one per architecture option:
 * GPT-2 (tied and untied), Llama with GQA and head_dim != C/NH, Qwen2's q/k/v biases with a sliding
 * window, multi-query attention, a tied Llama, Llama's attention and MLP biases.
 *
 * For every parameter tensor: a random direction d (entries +-1) and the central difference
 * (L(p + h d) - L(p - h d)) / 2h, Richardson-extrapolated from h and h/2, against <grad, d>. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model/model.h"

static uint64_t rng = 12345;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double loss_at(mofo_model *m, const int *ids, const int *tg, int B, int T) {
    float l = 0;
    mofo_err err = {0};
    if (mofo_model_forward(m, ids, tg, B, T, &l, &err)) return NAN;
    return l;
}

static void fd_check(const char *label, mofo_model_config c) {
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_create(&m, &c, 7, 0.3f, &err) == 0, "%s: %s", label, err.msg);
    if (!m) return;
    int B = 2, T = 7;
    int ids[14], tg[14];
    for (int i = 0; i < B * T; i++) ids[i] = (int)(rnd() % (uint32_t)c.V);
    for (int i = 0; i < B * T; i++) tg[i] = i % 5 == 3 ? -100 : (int)(rnd() % (uint32_t)c.V); /* some ignored */
    float l0;
    CHECK(mofo_model_forward(m, ids, tg, B, T, &l0, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_backward(m, ids, tg, &err) == 0, "%s", err.msg);
    /* backward needs a forward pass with targets, once */
    CHECK(mofo_model_backward(m, ids, tg, &err) == MOFO_EINVAL, "second backward refused");
    int bad[14];
    memcpy(bad, ids, sizeof bad);
    bad[3] = c.V;
    CHECK(mofo_model_forward(m, bad, tg, B, T, &l0, &err) == MOFO_EINVAL && strstr(err.msg, "vocabulary"),
          "%s: out-of-vocabulary id refused: %s", label, err.msg);
    CHECK(mofo_model_backward(m, ids, tg, &err) == MOFO_EINVAL, "backward after a failed forward refused");
    float *g = malloc(m->n_floats * sizeof *g);
    memcpy(g, m->grads, m->n_floats * sizeof *g);
    double worst = 0;
    const double h = 4e-3;
    for (int i = 0; i < m->n_p; i++) {
        const mofo_param *p = &m->p[i];
        float *w = m->params + p->offset;
        float *save = malloc((size_t)p->numel * sizeof *save);
        signed char *d = malloc((size_t)p->numel);
        memcpy(save, w, (size_t)p->numel * sizeof *save);
        double gd = 0, gn = 0;
        for (int64_t j = 0; j < p->numel; j++) {
            d[j] = rnd() & 1 ? 1 : -1;
            gd += (double)g[p->offset + j] * d[j];
            gn += fabs(g[p->offset + j]);
        }
        double D[2];
        for (int k = 0; k < 2; k++) {
            double hk = k ? h / 2 : h;
            for (int64_t j = 0; j < p->numel; j++) w[j] = save[j] + (float)(hk * d[j]);
            double lp = loss_at(m, ids, tg, B, T);
            for (int64_t j = 0; j < p->numel; j++) w[j] = save[j] - (float)(hk * d[j]);
            double lm = loss_at(m, ids, tg, B, T);
            D[k] = (lp - lm) / (2 * hk);
        }
        memcpy(w, save, (size_t)p->numel * sizeof *save);
        double fd = (4 * D[1] - D[0]) / 3; /* Richardson: the h^2 term cancels */
        /* relative to the gradient's size along any +-1 direction, so that a small <g, d> is fair */
        /* an absolute floor of 2e-4 for fp32 rounding of the loss (~1e-6) divided by h */
        double e = fabs(fd - gd) / (fmax(fabs(gd), 0.05 * gn) + 1e-2);
        CHECK(fabs(fd - gd) <= 2e-2 * fmax(fabs(gd), 0.05 * gn) + 2e-4, "%s: %s: finite difference %.6g, gradient %.6g", label, p->name, fd, gd);
        if (e > worst) worst = e;
        free(save);
        free(d);
    }
    printf("%-32s %3d tensors, worst relative difference %.2g\n", label, m->n_p, worst);
    free(g);
    mofo_model_free(m);
}

static mofo_model_config llama(void) {
    mofo_model_config c;
    mofo_err err;
    mofo_config_preset(&c, "llama", "tiny", &err);
    c.V = 29, c.C = 24, c.L = 2, c.NH = 4, c.NKV = 2, c.HD = 8, c.FF = 40, c.max_T = 16; /* NH*HD = 32 != C */
    c.norm_eps = 1e-5;
    return c;
}

int main(void) {
    mofo_model_config c;
    mofo_err err;
    mofo_config_preset(&c, "gpt2", "tiny", &err);
    c.V = 31, c.C = 16, c.NH = 2, c.NKV = 2, c.HD = 8, c.FF = 64, c.max_T = 9;
    fd_check("gpt2 (tied)", c);
    c.tied = 0;
    fd_check("gpt2 (untied lm_head)", c);

    fd_check("llama GQA, head_dim 8 x 4 != 24", llama());
    c = llama();
    snprintf(c.model_type, sizeof c.model_type, "qwen2");
    c.qkv_bias = 1;
    c.sliding_window = 3;
    fd_check("qwen2 q/k/v biases, window 3", c);
    c = llama();
    c.NKV = 1;
    fd_check("llama MQA (1 kv head)", c);
    c = llama();
    c.tied = 1;
    fd_check("llama tied embeddings", c);
    c = llama();
    c.qkv_bias = c.o_bias = c.mlp_bias = 1;
    c.rope_theta = 500000.0;
    fd_check("llama attention+mlp biases", c);
    return CHECK_DONE();
}
