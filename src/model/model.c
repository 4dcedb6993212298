/* The model: parameter table, checkpoint loading and saving, forward and backward. */
#define _DEFAULT_SOURCE /* M_PI */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "model/block.h"

/* ---- the parameter table (family.c) ---- */

/* Points w's fields into base following the table: each role's tensor, where q's continues with k
 * and v (one (QKV, C) matrix) and gate's with up (one (2 FF, C) matrix), as family.c orders them. */
static void bind(mofo_weights *w, mofo_layer_w *layers, const mofo_param *p, int n, float *base, int L) {
    memset(w, 0, sizeof *w);
    memset(layers, 0, (size_t)L * sizeof *layers);
    w->layer = layers;
    for (int i = 0; i < n; i++) {
        float *ptr = base + p[i].offset;
        mofo_layer_w *ly = p[i].layer >= 0 ? &layers[p[i].layer] : NULL;
        switch (p[i].role) {
        case MOFO_ROLE_EMBED: w->wte = ptr; break;
        case MOFO_ROLE_POS_EMBED: w->wpe = ptr; break;
        case MOFO_ROLE_NORMF_W: w->lnf_w = ptr; break;
        case MOFO_ROLE_NORMF_B: w->lnf_b = ptr; break;
        case MOFO_ROLE_LM_HEAD: w->lm_head = ptr; break;
        case MOFO_ROLE_NORM1_W: ly->ln1_w = ptr; break;
        case MOFO_ROLE_NORM1_B: ly->ln1_b = ptr; break;
        case MOFO_ROLE_Q_W: case MOFO_ROLE_QKV_W: ly->qkv_w = ptr; break;
        case MOFO_ROLE_Q_B: case MOFO_ROLE_QKV_B: ly->qkv_b = ptr; break;
        case MOFO_ROLE_O_W: ly->o_w = ptr; break;
        case MOFO_ROLE_O_B: ly->o_b = ptr; break;
        case MOFO_ROLE_NORM2_W: ly->ln2_w = ptr; break;
        case MOFO_ROLE_NORM2_B: ly->ln2_b = ptr; break;
        case MOFO_ROLE_GATE_W: case MOFO_ROLE_FC_W: ly->fc_w = ptr; break;
        case MOFO_ROLE_GATE_B: case MOFO_ROLE_FC_B: ly->fc_b = ptr; break;
        case MOFO_ROLE_DOWN_W: ly->proj_w = ptr; break;
        case MOFO_ROLE_DOWN_B: ly->proj_b = ptr; break;
        case MOFO_ROLE_K_W: case MOFO_ROLE_V_W: case MOFO_ROLE_K_B: case MOFO_ROLE_V_B: case MOFO_ROLE_UP_W:
        case MOFO_ROLE_UP_B: break; /* continue q's / gate's */
        }
    }
    if (!w->lm_head) w->lm_head = w->wte;
}

/* A model with the table built and parameters allocated (uninitialised) in backend be's memory. */
static int model_new(mofo_model **out, const mofo_model_config *cfg, const mofo_backend *be, mofo_err *err) {
    *out = NULL;
    mofo_model *m = calloc(1, sizeof *m);
    if (!m) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->be = be;
    int rc = mofo_model_param_table(cfg, &m->p, &m->n_p, &m->n_floats, err);
    if (rc) {
        free(m);
        return rc;
    }
    m->w.layer = calloc((size_t)cfg->L, sizeof *m->w.layer);
    m->g.layer = calloc((size_t)cfg->L, sizeof *m->g.layer);
    m->params = m->be->alloc(m->n_floats);
    if (!m->w.layer || !m->g.layer || !m->params) {
        size_t n = m->n_floats;
        mofo_model_free(m);
        return mofo_errf(err, MOFO_ENOMEM, "out of %s memory for the %zu parameters (%.1f MB)", be->name, n,
                         4.0 * (double)n / 1e6);
    }
    bind(&m->w, m->w.layer, m->p, m->n_p, m->params, cfg->L);
    *out = m;
    return 0;
}

void mofo_model_free(mofo_model *m) {
    if (!m) return;
    free(m->config_json);
    free(m->p);
    m->be->free(m->params);
    m->be->free(m->grads);
    m->be->free(m->lora_scratch);
    free(m->w.layer);
    free(m->g.layer);
    m->be->free(m->a.resid);
    free(m);
}

static void drop_grads(mofo_model *m) {
    m->be->free(m->grads);
    m->grads = NULL;
    memset(&m->g, 0, offsetof(mofo_weights, layer));
    memset(m->g.layer, 0, (size_t)m->cfg.L * sizeof *m->g.layer);
}

/* Frees the gradients, the activations and the adapters' scratch (made again on first use). */
static void drop_buffers(mofo_model *m) {
    drop_grads(m);
    m->be->free(m->lora_scratch);
    m->lora_scratch = NULL;
    m->lora_scratch_floats = 0;
    m->be->free(m->a.resid);
    memset(&m->a, 0, sizeof m->a);
}

int mofo_model_to_device(mofo_model *m, mofo_device device, mofo_err *err) {
    const mofo_backend *to = mofo_backend_for(device, err), *from = m->be;
    if (!to) return err && err->code ? err->code : MOFO_ENODEV;
    if (to == from) return 0;
    if (m->n_adapters)
        return mofo_errf(err, MOFO_EINVAL, "device %s: the model has adapters; move it before attaching them", to->name);
    if (!from->host && !to->host)
        return mofo_errf(err, MOFO_EINVAL, "device %s: a model moves between the host and one device", to->name);
    float *params = to->alloc(m->n_floats);
    if (!params)
        return mofo_errf(err, MOFO_ENOMEM, "device %s: out of memory for the %zu parameters (%.1f MB)", to->name,
                         m->n_floats, 4.0 * (double)m->n_floats / 1e6);
    if (from->host)
        to->upload(params, m->params, m->n_floats);
    else
        from->download(params, m->params, m->n_floats);
    int rc = mofo_backend_check(from, err);
    if (!rc) rc = mofo_backend_check(to, err);
    if (rc) {
        to->free(params);
        return rc;
    }
    drop_buffers(m);
    from->free(m->params);
    m->params = params;
    m->be = to;
    bind(&m->w, m->w.layer, m->p, m->n_p, m->params, m->cfg.L);
    return 0;
}

mofo_device mofo_model_device(const mofo_model *m) { return m->be->host ? MOFO_DEVICE_CPU : MOFO_DEVICE_CUDA; }

int mofo_model_set_precision(mofo_model *m, mofo_precision p, mofo_err *err) {
    if ((unsigned)p > MOFO_PRECISION_BF16) return mofo_errf(err, MOFO_EINVAL, "matmul precision %d: fp32, tf32 or bf16 expected", (int)p);
    m->precision = p;
    return 0;
}

int mofo_model_alloc_grads(mofo_model *m, mofo_err *err) {
    if (m->grads || m->frozen) return 0;
    m->grads = m->be->alloc(m->n_floats);
    if (!m->grads)
        return mofo_errf(err, MOFO_ENOMEM, "out of %s memory for the gradients (%zu floats, %.1f MB)", m->be->name,
                         m->n_floats, 4.0 * (double)m->n_floats / 1e6);
    bind(&m->g, m->g.layer, m->p, m->n_p, m->grads, m->cfg.L); /* the parameters' layout */
    return 0;
}

void mofo_model_zero_grads(mofo_model *m) {
    if (m->grads) m->be->fill(m->grads, 0.0f, m->n_floats);
}


mofo_param_kind mofo_role_kind(mofo_role r) {
    switch (r) {
    case MOFO_ROLE_EMBED: case MOFO_ROLE_POS_EMBED: return MOFO_KIND_EMBED;
    case MOFO_ROLE_LM_HEAD: return MOFO_KIND_HEAD;
    case MOFO_ROLE_NORM1_W: case MOFO_ROLE_NORM1_B: case MOFO_ROLE_NORM2_W: case MOFO_ROLE_NORM2_B:
    case MOFO_ROLE_NORMF_W: case MOFO_ROLE_NORMF_B: return MOFO_KIND_NORM;
    case MOFO_ROLE_GATE_W: case MOFO_ROLE_UP_W: case MOFO_ROLE_FC_W: case MOFO_ROLE_GATE_B: case MOFO_ROLE_UP_B:
    case MOFO_ROLE_FC_B: case MOFO_ROLE_DOWN_W: case MOFO_ROLE_DOWN_B: return MOFO_KIND_MLP;
    default: return MOFO_KIND_ATTN; /* q/k/v and output projections, their biases */
    }
}

mofo_param_kind mofo_model_param_kind(const mofo_model *m, int i) { return mofo_role_kind(m->p[i].role); }

const char *mofo_param_kind_name(mofo_param_kind k) {
    static const char *const N[MOFO_N_KINDS] = {"embeddings", "attention", "mlp", "norms", "lm_head"};
    return (int)k >= 0 && k < MOFO_N_KINDS ? N[k] : "?";
}

const mofo_param *mofo_model_param(const mofo_model *m, const char *name) {
    for (int i = 0; i < m->n_p; i++)
        if (strcmp(m->p[i].name, name) == 0) return &m->p[i];
    return NULL;
}

void mofo_model_param_file_layout(const mofo_model *m, int i, const float *src, float *out) {
    const mofo_param *p = &m->p[i];
    if (!p->transposed) {
        memcpy(out, src, (size_t)p->numel * sizeof *out);
        return;
    }
    int64_t R = p->shape[0], K = p->shape[1]; /* src (R, K) -> out (K, R) */
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < K; k++) out[k * R + r] = src[r * K + k];
}

/* ---- creation ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float randn(uint64_t *s) {
    double u1 = ((splitmix(s) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* hf: transformers' init (norm gains 1, biases 0); else 1-dim tensors get noise too (gains 1 + N(0, std)) */
static int create(mofo_model **out, const mofo_model_config *cfg, uint64_t seed, float std, int hf, mofo_err *err) {
    *out = NULL;
    int rc = mofo_config_check(cfg, "config", err);
    if (rc) return rc;
    mofo_model *m;
    if ((rc = model_new(&m, cfg, mofo_backend_cpu(), err))) return rc;
    for (int i = 0; i < m->n_p; i++) {
        mofo_param *p = &m->p[i];
        float *d = m->params + p->offset;
        float base = p->ndim == 1 && (strstr(p->name, "norm") || strstr(p->name, "ln_")) && strstr(p->name, "weight")
                         ? 1.0f : 0.0f;
        float sd = hf && p->ndim == 1 ? 0.0f : std;
        /* chunks with their own seeds: the same numbers whatever the thread count */
        int64_t chunk = 1 << 16, n_chunks = (p->numel + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic)
        for (int64_t k = 0; k < n_chunks; k++) {
            uint64_t s = seed ^ ((uint64_t)i << 40) ^ ((uint64_t)k * 0xD1B54A32D192ED03ull);
            int64_t end = (k + 1) * chunk < p->numel ? (k + 1) * chunk : p->numel;
            for (int64_t j = k * chunk; j < end; j++) d[j] = sd == 0.0f ? base : base + sd * randn(&s);
        }
    }
    m->config_json = mofo_config_to_json(cfg);
    if (!m->config_json) {
        mofo_model_free(m);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    m->config_len = strlen(m->config_json);
    *out = m;
    return 0;
}

int mofo_model_create(mofo_model **out, const mofo_model_config *cfg, uint64_t seed, float std, mofo_err *err) {
    return create(out, cfg, seed, std, 0, err);
}

int mofo_model_create_hf_init(mofo_model **out, const mofo_model_config *cfg, uint64_t seed, float std,
                              mofo_err *err) {
    return create(out, cfg, seed, std, 1, err);
}

/* ---- loading ---- */

/* Tensor p from the checkpoint into the model's parameters: on a device, through stage (host memory
 * for the largest tensor). */
static int load_param(mofo_model *m, mofo_param *p, const mofo_ckpt *ck, float *stage, mofo_err *err) {
    const mofo_st_file *f = NULL;
    const mofo_st_tensor *t = mofo_ckpt_find(ck, p->name, &f);
    if (!t && m->cfg.names == MOFO_NAMES_GPT2 && strncmp(p->name, "transformer.", 12) == 0) {
        /* the original OpenAI GPT-2 files have no "transformer." prefix */
        t = mofo_ckpt_find(ck, p->name + 12, &f);
        if (t) memmove(p->name, p->name + 12, strlen(p->name + 12) + 1);
    }
    if (!t) return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' is missing", mofo_ckpt_where(ck), p->name);
    if (t->dtype != MOFO_DT_F32 && t->dtype != MOFO_DT_BF16 && t->dtype != MOFO_DT_F16)
        return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' has dtype %s; F32, BF16 or F16 expected", f->label,
                         p->name, mofo_dtype_name(t->dtype));
    int64_t want[2] = {p->transposed ? p->shape[1] : p->shape[0], p->transposed ? p->shape[0] : p->shape[1]};
    if (t->ndim != p->ndim || t->shape[0] != want[0] || (p->ndim == 2 && t->shape[1] != want[1])) {
        char got[96] = "[", exp[64];
        for (int d = 0; d < t->ndim; d++) {
            size_t k = strlen(got);
            snprintf(got + k, sizeof got - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        }
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (p->ndim == 2)
            snprintf(exp, sizeof exp, "[%lld, %lld]", (long long)want[0], (long long)want[1]);
        else
            snprintf(exp, sizeof exp, "[%lld]", (long long)want[0]);
        return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' has shape %s but config.json implies %s", f->label,
                         p->name, got, exp);
    }
    p->dtype = t->dtype;
    float *dst = m->be->host ? m->params + p->offset : stage;
    int rc = 0;
    if (!p->transposed) {
        rc = mofo_st_to_f32(f, t, dst, p->numel, err);
    } else {
        float *tmp = malloc((size_t)p->numel * sizeof *tmp);
        if (!tmp) return mofo_errf(err, MOFO_ENOMEM, "%s: tensor '%s': out of memory", f->label, p->name);
        rc = mofo_st_to_f32(f, t, tmp, p->numel, err);
        int64_t R = p->shape[0], K = p->shape[1]; /* file (K, R) -> memory (R, K) */
        if (rc == 0)
            for (int64_t k = 0; k < K; k++)
                for (int64_t r = 0; r < R; r++) dst[r * K + k] = tmp[k * R + r];
        free(tmp);
    }
    if (rc == 0 && !m->be->host) m->be->upload(m->params + p->offset, stage, (size_t)p->numel);
    return rc;
}

int mofo_model_load(mofo_model **out, const char *dir, mofo_err *err) {
    return mofo_model_load_to(out, dir, MOFO_DEVICE_CPU, err);
}

int mofo_model_load_to(mofo_model **out, const char *dir, mofo_device device, mofo_err *err) {
    *out = NULL;
    const mofo_backend *be = mofo_backend_for(device, err);
    if (!be) return err ? err->code : MOFO_ENODEV;
    mofo_ckpt *ck;
    int rc = mofo_ckpt_open(&ck, dir, err);
    if (rc) return rc;
    mofo_model_config cfg;
    rc = mofo_config_parse(&cfg, ck->config, ck->config_len, ck->config_path, err);
    mofo_model *m = NULL;
    float *stage = NULL; /* a device's tensors pass through it one at a time */
    if (rc == 0) rc = model_new(&m, &cfg, be, err);
    if (rc == 0 && !be->host) {
        int64_t most = 0;
        for (int i = 0; i < m->n_p; i++) most = m->p[i].numel > most ? m->p[i].numel : most;
        if (!(stage = malloc((size_t)most * sizeof *stage)))
            rc = mofo_errf(err, MOFO_ENOMEM, "out of memory for a tensor of %lld entries", (long long)most);
    }
    for (int i = 0; rc == 0 && i < m->n_p; i++) rc = load_param(m, &m->p[i], ck, stage, err);
    free(stage);
    if (rc == 0) rc = mofo_backend_check(be, err);
    if (rc == 0) {
        m->config_json = ck->config; /* keep the text as it was */
        m->config_len = ck->config_len;
        ck->config = NULL;
    }
    mofo_ckpt_close(ck);
    if (rc) {
        mofo_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int mofo_model_save(const mofo_model *m, const char *dir, size_t max_shard_bytes, mofo_err *err) {
    const mofo_backend *be = m->be;
    mofo_ckpt_tensor *t = calloc((size_t)m->n_p, sizeof *t);
    float **tmp = calloc((size_t)m->n_p, sizeof *tmp); /* host copies: device tensors, file layouts */
    float *stage = NULL;                                /* a device tensor before its transposition */
    int rc = t && tmp ? 0 : mofo_errf(err, MOFO_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_p && rc == 0; i++) {
        const mofo_param *p = &m->p[i];
        t[i].name = p->name;
        t[i].dtype = p->dtype;
        t[i].ndim = p->ndim;
        t[i].shape[0] = p->transposed ? p->shape[1] : p->shape[0];
        t[i].shape[1] = p->transposed ? p->shape[0] : p->shape[1];
        const float *src = m->params + p->offset;
        t[i].data = src;
        if (be->host && !p->transposed) continue;
        size_t n = (size_t)p->numel;
        if (!(tmp[i] = malloc(n * sizeof *tmp[i])) ||
            (!be->host && p->transposed && !(stage = realloc(stage, n * sizeof *stage)))) {
            rc = mofo_errf(err, MOFO_ENOMEM, "tensor '%s': out of memory for its host copy", p->name);
            break;
        }
        if (!be->host) {
            be->download(p->transposed ? stage : tmp[i], src, n);
            src = stage;
        }
        if (p->transposed) mofo_model_param_file_layout(m, i, src, tmp[i]);
        t[i].data = tmp[i];
    }
    if (rc == 0) rc = mofo_backend_check(be, err);
    if (rc == 0) rc = mofo_ckpt_save(dir, m->config_json, m->config_len, t, m->n_p, max_shard_bytes, err);
    for (int i = 0; tmp && i < m->n_p; i++) free(tmp[i]);
    free(tmp);
    free(stage);
    free(t);
    return rc;
}

/* ---- RoPE ---- */

/* x rounded to bf16 or f16 and back */
static float round_half(float x, mofo_rope_round r) {
    if (r == MOFO_ROPE_ROUND_BF16) {
        uint32_t b = (uint32_t)mofo_f32_to_bf16(x) << 16;
        memcpy(&x, &b, 4);
        return x;
    }
    uint16_t h = mofo_f32_to_f16(x); /* inverse frequencies are positive and at most 1 */
    int e = (h >> 10) & 0x1F, man = h & 0x3FF;
    return e ? ldexpf(1.0f + man / 1024.0f, e - 15) : ldexpf((float)man, -24);
}

static void rope_table(float *cos_t, float *sin_t, int T, int HD, const float *inv_freq) {
    int H2 = HD / 2;
    for (int i = 0; i < H2; i++)
        for (int t = 0; t < T; t++) {
            float ang = (float)t * inv_freq[i]; /* the angle in fp32, as transformers */
            cos_t[(size_t)t * H2 + i] = cosf(ang);
            sin_t[(size_t)t * H2 + i] = sinf(ang);
        }
}

void mofo_rope_inv_freq(const mofo_model_config *c, float *inv) {
    int H2 = c->HD / 2;
    for (int i = 0; i < H2; i++) {
        /* transformers: 1 / theta^(arange(0, HD, 2) / HD) in fp32 */
        double f = (float)(1.0 / pow(c->rope_theta, (double)(2 * i) / c->HD));
        if (c->rope_scaling == MOFO_ROPE_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == MOFO_ROPE_LLAMA3) { /* _compute_llama3_parameters */
            double lo_wl = c->rope_original_max_T / c->rope_low_freq_factor,
                   hi_wl = c->rope_original_max_T / c->rope_high_freq_factor, wl = 2 * M_PI / f;
            if (wl > lo_wl) {
                f /= c->rope_factor;
            } else if (wl >= hi_wl) {
                double s = (c->rope_original_max_T / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - s) * f / c->rope_factor + s * f;
            }
        }
        inv[i] = (float)f;
        /* a model loaded in bf16/f16 by transformers holds the buffer in that dtype */
        if (c->rope_round != MOFO_ROPE_ROUND_NONE) inv[i] = round_half(inv[i], c->rope_round);
    }
}

int mofo_rope_upload(const mofo_backend *be, const mofo_model_config *c, float *cos_t, float *sin_t, int T,
                     mofo_err *err) {
    size_t half = (size_t)c->HD / 2;
    float *inv = malloc(half * sizeof *inv), *host = malloc(2 * (size_t)T * half * sizeof *host);
    if (!inv || !host) {
        free(inv);
        free(host);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for RoPE's tables of %d positions", T);
    }
    mofo_rope_inv_freq(c, inv);
    rope_table(host, host + (size_t)T * half, T, c->HD, inv);
    be->upload(cos_t, host, (size_t)T * half);
    be->upload(sin_t, host + (size_t)T * half, (size_t)T * half);
    free(inv);
    free(host);
    return 0;
}

/* ---- activations ---- */


static size_t act_floats(const mofo_model_config *c, int B, int T, int kept) {
    size_t N = (size_t)B * T, L = (size_t)kept, C = c->C, A = (size_t)c->NH * c->HD, QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD,
           FC = mofo_fc_width(c), FF = c->FF, LSE = (size_t)B * c->NH * T;
    /* kept per layer: the residuals x and r2, the norms' mean and rstd, qkv, lse, atty, fc, act(fc);
     * the norms' outputs once, recomputed by the backward (mofo_block_backward) */
    size_t per_layer = N * (2 * C + 4 + QKV + A + FC + FF) + LSE;
    size_t top = N * C + N * (C + 2) + N * (size_t)c->V + N;
    size_t recomputed = N * 2 * C;
    size_t scratch = N * (3 * C + QKV + A + FC + FF) + 2 * (size_t)T * T + (size_t)T * c->HD;
    return L * per_layer + top + recomputed + scratch;
}

size_t mofo_model_act_floats(const mofo_model_config *c, int B, int T) { return act_floats(c, B, T, c->L); }

size_t mofo_model_rounded_floats(const mofo_model_config *c, int B, int T) {
    size_t N = (size_t)B * T, A = (size_t)c->NH * c->HD, QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD,
           FC = mofo_fc_width(c), C = c->C;
    const size_t lin[5][2] = {{QKV, C}, {C, A}, {FC, C}, {C, (size_t)c->FF}, {(size_t)c->V, C}}; /* (OC, C) */
    size_t first = 0, second = 0;
    for (int i = 0; i < 5; i++) {
        size_t oc = lin[i][0], in = lin[i][1], a = N * (in > oc ? in : oc), b = oc * in > N * in ? oc * in : N * in;
        first = a > first ? a : first;
        second = b > second ? b : second;
    }
    return first + second;
}

/* Activations for B x T keeping `kept` layers' worth (L for training, 1 for evaluation). */
static int acts_alloc(mofo_model *m, int B, int T, int kept, mofo_err *err) {
    mofo_acts *a = &m->a;
    int rc;
    if (a->resid && a->B == B && a->T == T && a->kept >= kept) return 0;
    m->be->free(a->resid);
    memset(a, 0, sizeof *a);
    const mofo_model_config *c = &m->cfg;
    size_t total = act_floats(c, B, T, kept);
    float *base = m->be->alloc(total);
    if (!base) return mofo_errf(err, MOFO_ENOMEM, "out of %s memory for activations (B=%d, T=%d: %.1f MB)", m->be->name, B, T,
                                4.0 * (double)total / 1e6);
    size_t N = (size_t)B * T, L = (size_t)kept, C = c->C, A = (size_t)c->NH * c->HD,
           QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD, FC = mofo_fc_width(c), FF = c->FF, LSE = (size_t)B * c->NH * T;
    float *p = base;
#define TAKE(field, n) (a->field = p, p += (n))
    TAKE(resid, (L + 1) * N * C);
    TAKE(ln1, N * C); /* ln1, ln2: one layer's, recomputed by the backward */
    TAKE(ln1_mean, L * N);
    TAKE(ln1_rstd, L * N);
    TAKE(qkv, L * N * QKV);
    TAKE(lse, L * LSE);
    TAKE(atty, L * N * A);
    TAKE(resid2, L * N * C);
    TAKE(ln2, N * C);
    TAKE(ln2_mean, L * N);
    TAKE(ln2_rstd, L * N);
    TAKE(fc, L * N * FC);
    TAKE(fch, L * N * FF);
    TAKE(lnf, N * C);
    TAKE(lnf_mean, N);
    TAKE(lnf_rstd, N);
    TAKE(logits, N * (size_t)c->V);
    TAKE(losses, N);
    TAKE(dres, N * C);
    TAKE(dres2, N * C);
    TAKE(dln, N * C);
    TAKE(dqkv, N * QKV);
    TAKE(attn_scratch, 2 * (size_t)T * T);
    TAKE(datty, N * A);
    TAKE(dfc, N * FC);
    TAKE(dfch, N * FF);
    TAKE(rope_cos, (size_t)T * (c->HD / 2));
    TAKE(rope_sin, (size_t)T * (c->HD / 2));
#undef TAKE
    a->resid = base;
    a->n_floats = (size_t)(p - base);
    a->B = B;
    a->T = T;
    a->kept = kept;
    if (c->pos == MOFO_POS_ROPE && (rc = mofo_rope_upload(m->be, c, a->rope_cos, a->rope_sin, T, err))) {
        m->be->free(a->resid);
        memset(a, 0, sizeof *a);
        return rc;
    }
    return 0;
}

int mofo_model_set_adapters(mofo_model *m, const mofo_adapter *a, int n, int frozen, mofo_err *err) {
    for (int i = 0; i < n; i++)
        if (a[i].layer < 0 || a[i].layer >= m->cfg.L || (i && a[i].layer < a[i - 1].layer))
            return mofo_errf(err, MOFO_EINVAL, "adapter %d: layer %d out of order or outside 0..%d", i, a[i].layer,
                             m->cfg.L - 1);
    m->adapters = n ? a : NULL;
    m->n_adapters = n;
    m->frozen = frozen;
    if (frozen) drop_grads(m);
    return 0;
}

int mofo_model_lora_max_rank(const mofo_model *m) {
    int r = 0;
    for (int i = 0; i < m->n_adapters; i++) r = m->adapters[i].r > r ? m->adapters[i].r : r;
    return r;
}

/* Scratch for the adapters on N rows. */
static int lora_reserve(mofo_model *m, int N, mofo_err *err) {
    size_t need = 2 * (size_t)N * (size_t)mofo_model_lora_max_rank(m);
    if (need <= m->lora_scratch_floats) return 0;
    m->be->free(m->lora_scratch);
    m->lora_scratch_floats = 0;
    if (!(m->lora_scratch = m->be->alloc(need)))
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for the adapters' scratch (%zu floats)", need);
    m->lora_scratch_floats = need;
    return 0;
}

mofo_block_lora mofo_model_layer_lora(const mofo_model *m, int l, float *scratch) {
    mofo_block_lora v = {.scratch = scratch};
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i].layer == l) {
            if (!v.n) v.a = &m->adapters[i];
            v.n++;
        }
    return v;
}

/* Layer slot k's activations (k = l when training; 0, reused by every layer, when evaluating). */
static mofo_block_acts layer_acts(const mofo_model *m, size_t k) {
    const mofo_model_config *c = &m->cfg;
    const mofo_acts *a = &m->a;
    size_t N = (size_t)a->B * a->T, C = c->C, QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD,
           A = (size_t)c->NH * c->HD, LSE = (size_t)a->B * c->NH * a->T;
    return (mofo_block_acts){.ln1 = a->ln1, /* ln1, ln2: shared by the layers (block.h) */
                             .ln1_mean = a->ln1_mean + k * N,
                             .ln1_rstd = a->ln1_rstd + k * N,
                             .qkv = a->qkv + k * N * QKV,
                             .lse = a->lse + k * LSE,
                             .atty = a->atty + k * N * A,
                             .r2 = a->resid2 + k * N * C,
                             .ln2 = a->ln2,
                             .ln2_mean = a->ln2_mean + k * N,
                             .ln2_rstd = a->ln2_rstd + k * N,
                             .fc = a->fc + k * N * mofo_fc_width(c),
                             .fch = a->fch + k * N * (size_t)c->FF};
}

static int forward(mofo_model *m, const int *inputs, const int *targets, int B, int T, float *loss, int train,
                   mofo_err *err) {
    const mofo_model_config *c = &m->cfg;
    m->a.ready = m->a.logits_ok = 0;
    if (B <= 0 || T <= 0) return mofo_errf(err, MOFO_EINVAL, "batch %d x %d tokens: both must be positive", B, T);
    if (c->pos == MOFO_POS_LEARNED && T > c->max_T)
        return mofo_errf(err, MOFO_EINVAL, "%d tokens exceed the model's %d positions", T, c->max_T);
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= c->V)
            return mofo_errf(err, MOFO_EINVAL, "token id %d at position %d is outside the vocabulary (0..%d)",
                             inputs[i], i, c->V - 1);
        if (targets && targets[i] != -100 && (targets[i] < 0 || targets[i] >= c->V))
            return mofo_errf(err, MOFO_EINVAL, "target %d at position %d is outside the vocabulary and not -100",
                             targets[i], i);
    }
    int rc = acts_alloc(m, B, T, train ? c->L : 1, err);
    if (!rc) rc = lora_reserve(m, B * T, err);
    if (rc) return rc;
    mofo_acts *a = &m->a;
    int N = B * T, C = c->C, L = c->L;
    /* training keeps every layer's activations; evaluation reuses layer 0's and alternates two
     * residual slots */
#define RES(l) (a->resid + (size_t)(train ? (l) : (l) % 2) * N * C)
    const mofo_backend *be = m->be;
    be->embed_forward(a->resid, inputs, m->w.wte, c->pos == MOFO_POS_LEARNED ? m->w.wpe : NULL, B, T, C);
    for (int l = 0; l < L; l++) {
        mofo_block_acts la = layer_acts(m, train ? (size_t)l : 0);
        mofo_block_lora lo = mofo_model_layer_lora(m, l, m->lora_scratch);
        mofo_block_forward(be, c, m->precision, &m->w.layer[l], &lo, RES(l + 1), RES(l), &la, B, T, 0, a->rope_cos, a->rope_sin, NULL,
                           a->attn_scratch);
    }
    mofo_norm_forward(be, c, a->lnf, a->lnf_mean, a->lnf_rstd, RES(L), m->w.lnf_w, m->w.lnf_b, N);
#undef RES
    be->matmul_forward(m->precision, a->logits, a->lnf, m->w.lm_head, NULL, N, C, c->V);
    a->logits_ok = 1;
    m->n_valid = 0;
    if (targets) {
        m->n_valid = be->crossentropy_forward(a->losses, a->logits, targets, N, c->V);
        double s = be->sum(a->losses, (size_t)N);
        if (loss) *loss = m->n_valid ? (float)(s / m->n_valid) : NAN;
        a->ready = train;
    } else if (loss) {
        *loss = NAN;
    }
    return mofo_backend_check(be, err);
}

int mofo_model_forward(mofo_model *m, const int *inputs, const int *targets, int B, int T, float *loss,
                       mofo_err *err) {
    return forward(m, inputs, targets, B, T, loss, 1, err);
}

int mofo_model_eval(mofo_model *m, const int *inputs, const int *targets, int B, int T, float *loss, mofo_err *err) {
    return forward(m, inputs, targets, B, T, loss, 0, err);
}

int mofo_model_logits(const mofo_model *m, float *out, mofo_err *err) {
    const mofo_acts *a = &m->a;
    if (!a->logits_ok) return mofo_errf(err, MOFO_EINVAL, "no logits: run a forward pass first (a backward consumes them)");
    m->be->download(out, a->logits, (size_t)a->B * a->T * m->cfg.V);
    return mofo_backend_check(m->be, err);
}

int mofo_model_token_losses(const mofo_model *m, float *out, mofo_err *err) {
    const mofo_acts *a = &m->a;
    if (!a->logits_ok) return mofo_errf(err, MOFO_EINVAL, "no losses: run a forward pass with targets first");
    m->be->download(out, a->losses, (size_t)a->B * a->T);
    return mofo_backend_check(m->be, err);
}

void mofo_model_get_info(const mofo_model *m, mofo_model_info *info) {
    const mofo_model_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    snprintf(info->model_type, sizeof info->model_type, "%s", c->model_type);
    info->vocab = c->V, info->channels = c->C, info->layers = c->L, info->heads = c->NH, info->kv_heads = c->NKV;
    info->head_dim = c->HD, info->mlp_width = c->FF, info->max_positions = c->max_T;
    info->n_tensors = m->n_p;
    for (int i = 0; i < m->n_p; i++) info->n_params += m->p[i].numel;
}

int mofo_model_backward(mofo_model *m, const int *inputs, const int *targets, mofo_err *err) {
    return mofo_model_backward_over(m, inputs, targets, m->n_valid, err);
}

int mofo_model_backward_over(mofo_model *m, const int *inputs, const int *targets, int64_t n_total, mofo_err *err) {
    const mofo_model_config *c = &m->cfg;
    mofo_acts *a = &m->a;
    if (!a->ready) return mofo_errf(err, MOFO_EINVAL, "backward needs a successful forward pass with targets first");
    int rc = mofo_model_alloc_grads(m, err);
    if (rc) return rc;
    int B = a->B, T = a->T, N = B * T, C = c->C, L = c->L;
    size_t NC = (size_t)N * C;
    if (m->n_valid == 0) return 0; /* nothing counted: zero gradient */
    a->ready = a->logits_ok = 0; /* the logits become their gradient: a second backward would be wrong */
    const mofo_backend *be = m->be;
    be->crossentropy_backward(a->logits, targets, N, c->V, 1.0f / (float)n_total);
    float *dlogits = a->logits;
    be->matmul_backward(m->precision, a->dln, m->g.lm_head, NULL, dlogits, a->lnf, m->w.lm_head, N, C, c->V);
    be->fill(a->dres, 0.0f, NC);
    mofo_norm_backward(be, c, a->dres, m->g.lnf_w, m->g.lnf_b, a->dln, a->resid + (size_t)L * NC, m->w.lnf_w,
                       a->lnf_mean, a->lnf_rstd, N);
    mofo_block_scratch s = {
        .dres2 = a->dres2, .dln = a->dln, .dqkv = a->dqkv, .datty = a->datty, .dfc = a->dfc, .dfch = a->dfch};
    for (int l = L - 1; l >= 0; l--) {
        mofo_block_acts la = layer_acts(m, (size_t)l);
        mofo_block_lora lo = mofo_model_layer_lora(m, l, m->lora_scratch);
        mofo_block_backward(be, c, m->precision, &m->w.layer[l], &m->g.layer[l], &lo, a->dres, a->resid + (size_t)l * NC, &la, &s, B, T,
                            a->rope_cos, a->rope_sin, a->attn_scratch);
    }
    be->embed_backward(m->g.wte, c->pos == MOFO_POS_LEARNED ? m->g.wpe : NULL, a->dres, inputs, B, T, C);
    return mofo_backend_check(be, err);
}
