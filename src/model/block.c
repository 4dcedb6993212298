/* The transformer block (see block.h). */
#include "model/block.h"


size_t mofo_fc_width(const mofo_model_config *c) {
    return c->act == MOFO_ACT_SWIGLU ? 2 * (size_t)c->FF : (size_t)c->FF;
}

void mofo_norm_forward(const mofo_backend *be, const mofo_model_config *c, float *out, float *mean, float *rstd, const float *inp,
                       const float *w, const float *b, int N) {
    if (c->norm == MOFO_NORM_LAYERNORM)
        be->layernorm_forward(out, mean, rstd, inp, w, b, N, c->C, (float)c->norm_eps);
    else
        be->rmsnorm_forward(out, rstd, inp, w, N, c->C, (float)c->norm_eps);
}

void mofo_norm_backward(const mofo_backend *be, const mofo_model_config *c, float *dinp, float *dw, float *db, const float *dout,
                        const float *inp, const float *w, const float *mean, const float *rstd, int N) {
    if (c->norm == MOFO_NORM_LAYERNORM)
        be->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, c->C);
    else
        be->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, c->C);
}

int mofo_model_param_site(const mofo_model *m, int i, int *layer, mofo_site *site, int *row0) {
    const mofo_model_config *c = &m->cfg;
    int Q = c->NH * c->HD, KV = c->NKV * c->HD;
    *layer = m->p[i].layer;
    switch (m->p[i].role) {
    case MOFO_ROLE_Q_W: case MOFO_ROLE_QKV_W: *site = MOFO_SITE_QKV, *row0 = 0; return 0;
    case MOFO_ROLE_K_W: *site = MOFO_SITE_QKV, *row0 = Q; return 0;
    case MOFO_ROLE_V_W: *site = MOFO_SITE_QKV, *row0 = Q + KV; return 0;
    case MOFO_ROLE_O_W: *site = MOFO_SITE_O, *row0 = 0; return 0;
    case MOFO_ROLE_GATE_W: case MOFO_ROLE_FC_W: *site = MOFO_SITE_FC, *row0 = 0; return 0;
    case MOFO_ROLE_UP_W: *site = MOFO_SITE_FC, *row0 = c->FF; return 0;
    case MOFO_ROLE_DOWN_W: *site = MOFO_SITE_PROJ, *row0 = 0; return 0;
    default: return -1;
    }
}

/* The adapters of one site: out (N, ldo) += s (x A^T) B^T on their rows; x (N, C). */
static void lora_forward(const mofo_backend *be, mofo_precision prec, const mofo_block_lora *lo, mofo_site site, float *out, int ldo, const float *x, int N) {
    for (int i = 0; lo && i < lo->n; i++) {
        const mofo_adapter *a = &lo->a[i];
        if (a->site != site) continue;
        float *xa = lo->scratch; /* (N, r) */
        be->gemm(prec, false, true, N, a->r, a->C, 1.0f, x, a->C, a->A, a->C, 0.0f, xa, a->r);
        be->gemm(prec, false, true, N, a->OC, a->r, a->scale, xa, a->r, a->B, a->r, 1.0f, out + a->row0, ldo);
    }
}

/* Their backward: dout (N, ldo) the site's output gradient, x (N, C) its input; dx (N, C) +=. */
static void lora_backward(const mofo_backend *be, mofo_precision prec, const mofo_block_lora *lo, mofo_site site, float *dx, const float *dout, int ldo,
                          const float *x, int N) {
    for (int i = 0; lo && i < lo->n; i++) {
        const mofo_adapter *a = &lo->a[i];
        if (a->site != site) continue;
        float *xa = lo->scratch, *dyb = lo->scratch + (size_t)N * a->r; /* (N, r) each */
        const float *dy = dout + a->row0;                                /* (N, OC), row stride ldo */
        be->gemm(prec, false, true, N, a->r, a->C, 1.0f, x, a->C, a->A, a->C, 0.0f, xa, a->r);
        be->gemm(prec, true, false, a->OC, a->r, N, a->scale, dy, ldo, xa, a->r, 1.0f, a->gB, a->r);
        be->gemm(prec, false, false, N, a->r, a->OC, 1.0f, dy, ldo, a->B, a->r, 0.0f, dyb, a->r);
        be->gemm(prec, true, false, a->r, a->C, N, a->scale, dyb, a->r, x, a->C, 1.0f, a->gA, a->C);
        be->gemm(prec, false, false, N, a->C, a->r, a->scale, dyb, a->r, a->A, a->C, 1.0f, dx, a->C);
    }
}

/* Copies the new rows' key and value heads (T, QKV) into cache rows pos0..pos0+T-1 (T_max, 2 NKV HD). */
static void cache_store(const mofo_backend *be, float *cache, const float *qkv, int T, int pos0, int NH, int NKV,
                        int HD) {
    size_t QKV = (size_t)(NH + 2 * NKV) * HD, KV = 2 * (size_t)NKV * HD;
    for (int t = 0; t < T; t++) be->copy(cache + (size_t)(pos0 + t) * KV, qkv + (size_t)t * QKV + (size_t)NH * HD, KV);
}

void mofo_block_forward(const mofo_backend *be, const mofo_model_config *c, mofo_precision prec, const mofo_layer_w *w, const mofo_block_lora *lora, float *y,
                        const float *x, const mofo_block_acts *a, int B, int T, int pos0, const float *rope_cos,
                        const float *rope_sin, float *cache, float *attn_scratch) {
    int N = B * T, C = c->C, NH = c->NH, NKV = c->NKV, HD = c->HD, A = NH * HD, QKV = (NH + 2 * NKV) * HD,
        FF = c->FF, FC = (int)mofo_fc_width(c);
    mofo_norm_forward(be, c, a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N);
    be->matmul_forward(prec, a->qkv, a->ln1, w->qkv_w, w->qkv_b, N, C, QKV);
    lora_forward(be, prec, lora, MOFO_SITE_QKV, a->qkv, QKV, a->ln1, N);
    if (c->pos == MOFO_POS_ROPE) be->rope_forward(a->qkv, rope_cos, rope_sin, B, T, NH, NKV, HD);
    const float *k = a->qkv + (size_t)NH * HD, *v = a->qkv + (size_t)(NH + NKV) * HD;
    int ldkv = QKV;
    if (cache) {
        cache_store(be, cache, a->qkv, T, pos0, NH, NKV, HD);
        k = cache;
        v = cache + (size_t)NKV * HD;
        ldkv = 2 * NKV * HD;
    }
    be->attention_forward(a->atty, a->lse, a->qkv, QKV, k, v, ldkv, B, T, pos0, NH, NKV, HD, c->sliding_window,
                      attn_scratch);
    be->matmul_forward(prec, a->r2, a->atty, w->o_w, w->o_b, N, A, C);
    lora_forward(be, prec, lora, MOFO_SITE_O, a->r2, C, a->atty, N);
    be->add(a->r2, x, (size_t)N * C);
    mofo_norm_forward(be, c, a->ln2, a->ln2_mean, a->ln2_rstd, a->r2, w->ln2_w, w->ln2_b, N);
    be->matmul_forward(prec, a->fc, a->ln2, w->fc_w, w->fc_b, N, C, FC);
    lora_forward(be, prec, lora, MOFO_SITE_FC, a->fc, FC, a->ln2, N);
    if (c->act == MOFO_ACT_SWIGLU)
        be->swiglu_forward(a->fch, a->fc, N, FF);
    else
        be->gelu_forward(a->fch, a->fc, (size_t)N * FF);
    be->matmul_forward(prec, y, a->fch, w->proj_w, w->proj_b, N, FF, C);
    lora_forward(be, prec, lora, MOFO_SITE_PROJ, y, C, a->fch, N);
    be->add(y, a->r2, (size_t)N * C);
}

void mofo_block_backward(const mofo_backend *be, const mofo_model_config *c, mofo_precision prec, const mofo_layer_w *w,
                         mofo_layer_w *g,
                         const mofo_block_lora *lora, float *dres,
                         const float *x, const mofo_block_acts *a, const mofo_block_scratch *s, int B, int T,
                         const float *rope_cos, const float *rope_sin, float *attn_scratch) {
    int N = B * T, C = c->C, NH = c->NH, NKV = c->NKV, HD = c->HD, A = NH * HD, QKV = (NH + 2 * NKV) * HD,
        FF = c->FF, FC = (int)mofo_fc_width(c);
    size_t NC = (size_t)N * C;
    /* the activations the forward did not keep per layer (block.h): norm1(x), norm2(r2) */
    mofo_norm_forward(be, c, a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, N);
    mofo_norm_forward(be, c, a->ln2, a->ln2_mean, a->ln2_rstd, a->r2, w->ln2_w, w->ln2_b, N);
    /* MLP: y = r2 + proj(act(fc(norm2(r2)))) */
    be->copy(s->dres2, dres, NC);
    be->matmul_backward(prec, s->dfch, g->proj_w, g->proj_b, dres, a->fch, w->proj_w, N, FF, C);
    lora_backward(be, prec, lora, MOFO_SITE_PROJ, s->dfch, dres, C, a->fch, N);
    if (c->act == MOFO_ACT_SWIGLU)
        be->swiglu_backward(s->dfc, a->fc, s->dfch, N, FF);
    else
        be->gelu_backward(s->dfc, a->fc, s->dfch, (size_t)N * FF);
    be->matmul_backward(prec, s->dln, g->fc_w, g->fc_b, s->dfc, a->ln2, w->fc_w, N, C, FC);
    lora_backward(be, prec, lora, MOFO_SITE_FC, s->dln, s->dfc, FC, a->ln2, N);
    mofo_norm_backward(be, c, s->dres2, g->ln2_w, g->ln2_b, s->dln, a->r2, w->ln2_w, a->ln2_mean, a->ln2_rstd, N);
    /* attention: r2 = x + o(attn(qkv(norm1(x)))) */
    be->copy(dres, s->dres2, NC);
    be->matmul_backward(prec, s->datty, g->o_w, g->o_b, s->dres2, a->atty, w->o_w, N, A, C);
    lora_backward(be, prec, lora, MOFO_SITE_O, s->datty, s->dres2, C, a->atty, N);
    be->fill(s->dqkv, 0.0f, (size_t)N * QKV);
    be->attention_backward(s->dqkv, s->datty, a->qkv, a->atty, a->lse, B, T, NH, NKV, HD, c->sliding_window,
                       attn_scratch);
    if (c->pos == MOFO_POS_ROPE) be->rope_backward(s->dqkv, rope_cos, rope_sin, B, T, NH, NKV, HD);
    be->matmul_backward(prec, s->dln, g->qkv_w, g->qkv_b, s->dqkv, a->ln1, w->qkv_w, N, C, QKV);
    lora_backward(be, prec, lora, MOFO_SITE_QKV, s->dln, s->dqkv, QKV, a->ln1, N);
    mofo_norm_backward(be, c, dres, g->ln1_w, g->ln1_b, s->dln, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, N);
}
