/* Incremental decoding with a KV cache (see infer.h). */
#include "model/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/layers.h"

static size_t fc_width(const mofo_model_config *c) { return c->act == MOFO_ACT_SWIGLU ? 2 * (size_t)c->FF : (size_t)c->FF; }

void mofo_infer_free(mofo_infer *s) {
    if (!s) return;
    free(s->k);
    free(s->v);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->x);
    free(s->ln);
    free(s->stat1);
    free(s->stat2);
    free(s->qkv);
    free(s->atty);
    free(s->r2);
    free(s->fc);
    free(s->fch);
    free(s->att);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

void mofo_infer_reset(mofo_infer *s) { s->pos = 0; }

/* (Re)allocates the row scratch for n rows. */
static int scratch_alloc(mofo_infer *s, const mofo_model_config *c, int n, mofo_err *err) {
    if (n <= s->n_cap) return 0;
    size_t N = (size_t)n, C = c->C, QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD, A = (size_t)c->NH * c->HD;
    float **bufs[] = {&s->x, &s->ln, &s->stat1, &s->stat2, &s->qkv, &s->atty, &s->r2, &s->fc, &s->fch};
    size_t sizes[] = {N * C, N * C, N, N, N * QKV, N * A, N * C, N * fc_width(c), N * (size_t)c->FF};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = malloc(sizes[i] * sizeof(float));
        if (!*bufs[i]) {
            s->n_cap = 0;
            return mofo_errf(err, MOFO_ENOMEM, "out of memory for inference scratch (%d rows)", n);
        }
    }
    s->n_cap = n;
    return 0;
}

int mofo_infer_init(mofo_infer *s, const mofo_model *m, int T_max, mofo_err *err) {
    const mofo_model_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    if (T_max <= 0) return mofo_errf(err, MOFO_EINVAL, "KV cache of %d positions: must be positive", T_max);
    if (c->pos == MOFO_POS_LEARNED && T_max > c->max_T)
        return mofo_errf(err, MOFO_EINVAL, "%d positions exceed the model's %d learned positions", T_max, c->max_T);
    s->T_max = T_max;
    size_t kv = (size_t)c->L * c->NKV * T_max * c->HD;
    s->k = malloc(kv * sizeof(float));
    s->v = malloc(kv * sizeof(float));
    s->att = malloc((size_t)c->NH * T_max * sizeof(float));
    s->logits = malloc((size_t)c->V * sizeof(float));
    int bad = !s->k || !s->v || !s->att || !s->logits;
    if (!bad && c->pos == MOFO_POS_ROPE) {
        size_t half = (size_t)c->HD / 2;
        float *inv = malloc(half * sizeof *inv);
        s->rope_cos = malloc((size_t)T_max * half * sizeof(float));
        s->rope_sin = malloc((size_t)T_max * half * sizeof(float));
        bad = !inv || !s->rope_cos || !s->rope_sin;
        if (!bad) {
            mofo_rope_inv_freq(c, inv);
            rope_table(s->rope_cos, s->rope_sin, T_max, c->HD, inv);
        }
        free(inv);
    }
    if (!bad && scratch_alloc(s, c, 1, err)) bad = 1;
    if (bad) {
        mofo_infer_free(s);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for a KV cache of %d positions (%zu MB)", T_max,
                         2 * kv * sizeof(float) >> 20);
    }
    return 0;
}

static void norm(const mofo_model_config *c, float *out, float *s1, float *s2, const float *inp, const float *w,
                 const float *b, int N) {
    if (c->norm == MOFO_NORM_LAYERNORM)
        layernorm_forward(out, s1, s2, inp, w, b, N, c->C, (float)c->norm_eps);
    else
        rmsnorm_forward(out, s2, inp, w, N, c->C, (float)c->norm_eps);
}

/* Attention of n new rows at positions pos..pos+n-1 over the cache of layer l.
 * qkv (n, QKV), kc/vc (NKV, T_max, HD) of this layer, att scratch (NH, T_max) -> out (n, NH HD) */
static void attend(float *out, float *att, const float *qkv, const float *kc, const float *vc, int n, int pos,
                   int T_max, int NH, int NKV, int HD, int window) {
    int QKV = (NH + 2 * NKV) * HD, A = NH * HD, G = NH / NKV;
    float scale = 1.0f / sqrtf((float)HD);
    for (int t = 0; t < n; t++) {
        int p = pos + t;
        int u0 = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
#pragma omp parallel for
        for (int h = 0; h < NH; h++) {
            int kh = h / G;
            const float *q = qkv + (size_t)t * QKV + (size_t)h * HD;
            float *a = att + (size_t)h * T_max;
            float mx = -INFINITY;
            for (int u = u0; u <= p; u++) {
                const float *k = kc + ((size_t)kh * T_max + u) * HD;
                float sc = 0;
                for (int i = 0; i < HD; i++) sc += q[i] * k[i];
                sc *= scale;
                a[u] = sc;
                if (sc > mx) mx = sc;
            }
            float sum = 0;
            for (int u = u0; u <= p; u++) {
                a[u] = expf(a[u] - mx);
                sum += a[u];
            }
            float inv = 1.0f / sum;
            float *o = out + (size_t)t * A + (size_t)h * HD;
            for (int i = 0; i < HD; i++) o[i] = 0;
            for (int u = u0; u <= p; u++) {
                const float *v = vc + ((size_t)kh * T_max + u) * HD;
                float w = a[u] * inv;
                for (int i = 0; i < HD; i++) o[i] += w * v[i];
            }
        }
    }
}

void mofo_infer_rewind(mofo_infer *s, int pos) {
    if (pos >= 0 && pos < s->pos) s->pos = pos;
}

/* Feeds ids[0..n); the logits of every row into rows (n, V), or with rows NULL the last row's into
 * s->logits. */
static int feed(mofo_infer *s, const mofo_model *m, const int *ids, int n, float *rows, mofo_err *err) {
    const mofo_model_config *c = &m->cfg;
    if (n <= 0) return mofo_errf(err, MOFO_EINVAL, "%d tokens to feed: must be positive", n);
    if (s->pos + n > s->T_max)
        return mofo_errf(err, MOFO_EINVAL, "%d + %d positions exceed the KV cache's %d", s->pos, n, s->T_max);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->V)
            return mofo_errf(err, MOFO_EINVAL, "token id %d is outside the vocabulary (0..%d)", ids[i], c->V - 1);
    int rc = scratch_alloc(s, c, n, err);
    if (rc) return rc;
    int C = c->C, NH = c->NH, NKV = c->NKV, HD = c->HD, QKV = (NH + 2 * NKV) * HD, A = NH * HD, FF = c->FF;
    int FC = (int)fc_width(c), half = HD / 2;
    /* x (n, C): token embeddings (+ learned positions at pos..pos+n-1) */
    for (int t = 0; t < n; t++) {
        float *o = s->x + (size_t)t * C;
        const float *e = m->w.wte + (size_t)ids[t] * C;
        if (c->pos == MOFO_POS_LEARNED) {
            const float *pe = m->w.wpe + (size_t)(s->pos + t) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + pe[i];
        } else {
            memcpy(o, e, (size_t)C * sizeof *o);
        }
    }
    size_t layer_kv = (size_t)NKV * s->T_max * HD;
    for (int l = 0; l < c->L; l++) {
        const mofo_layer_w *w = &m->w.layer[l];
        float *kc = s->k + l * layer_kv, *vc = s->v + l * layer_kv;
        norm(c, s->ln, s->stat1, s->stat2, s->x, w->ln1_w, w->ln1_b, n);
        matmul_forward(s->qkv, s->ln, w->qkv_w, w->qkv_b, n, C, QKV);
        if (c->pos == MOFO_POS_ROPE)
            rope_forward(s->qkv, s->rope_cos + (size_t)s->pos * half, s->rope_sin + (size_t)s->pos * half, 1, n, NH,
                         NKV, HD);
        for (int t = 0; t < n; t++)
            for (int h = 0; h < NKV; h++) {
                const float *row = s->qkv + (size_t)t * QKV;
                size_t at = ((size_t)h * s->T_max + s->pos + t) * HD;
                memcpy(kc + at, row + (size_t)(NH + h) * HD, (size_t)HD * sizeof(float));
                memcpy(vc + at, row + (size_t)(NH + NKV + h) * HD, (size_t)HD * sizeof(float));
            }
        attend(s->atty, s->att, s->qkv, kc, vc, n, s->pos, s->T_max, NH, NKV, HD, c->sliding_window);
        matmul_forward(s->r2, s->atty, w->o_w, w->o_b, n, A, C);
        for (size_t i = 0; i < (size_t)n * C; i++) s->r2[i] += s->x[i];
        norm(c, s->ln, s->stat1, s->stat2, s->r2, w->ln2_w, w->ln2_b, n);
        matmul_forward(s->fc, s->ln, w->fc_w, w->fc_b, n, C, FC);
        if (c->act == MOFO_ACT_SWIGLU)
            swiglu_forward(s->fch, s->fc, n, FF);
        else
            gelu_forward(s->fch, s->fc, (size_t)n * FF);
        matmul_forward(s->x, s->fch, w->proj_w, w->proj_b, n, FF, C);
        for (size_t i = 0; i < (size_t)n * C; i++) s->x[i] += s->r2[i];
    }
    /* the final norm and lm_head: on every row, or on the last one only */
    int first = rows ? 0 : n - 1;
    norm(c, s->ln, s->stat1, s->stat2, s->x + (size_t)first * C, m->w.lnf_w, m->w.lnf_b, n - first);
    matmul_forward(rows ? rows : s->logits, s->ln, m->w.lm_head, NULL, n - first, C, c->V);
    s->pos += n;
    return 0;
}

int mofo_infer_feed(mofo_infer *s, const mofo_model *m, const int *ids, int n, mofo_err *err) {
    return feed(s, m, ids, n, NULL, err);
}

int mofo_infer_feed_rows(mofo_infer *s, const mofo_model *m, const int *ids, int n, float *logits, mofo_err *err) {
    return feed(s, m, ids, n, logits, err);
}

/* ---- sampling ---- */

static uint64_t splitmix64(uint64_t *st) {
    uint64_t z = (*st += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    double p;
    int i;
} prob_idx;

static int by_prob_desc(const void *a, const void *b) {
    const prob_idx *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->i - y->i;
}

int mofo_sample(const float *logits, int V, double temperature, double top_p, uint64_t *rng) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    prob_idx *pi = malloc((size_t)V * sizeof *pi);
    if (!pi) return best; /* no memory for sampling: fall back to the most probable token */
    double sum = 0;
    for (int i = 0; i < V; i++) {
        pi[i].p = exp(((double)logits[i] - logits[best]) / temperature);
        pi[i].i = i;
        sum += pi[i].p;
    }
    qsort(pi, (size_t)V, sizeof *pi, by_prob_desc);
    int keep = V;
    if (top_p > 0 && top_p < 1) {
        double cum = 0;
        for (int i = 0; i < V; i++) {
            cum += pi[i].p / sum;
            if (cum >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double kept = 0;
    for (int i = 0; i < keep; i++) kept += pi[i].p;
    double r = (double)(splitmix64(rng) >> 11) * 0x1.0p-53 * kept;
    int pick = pi[keep - 1].i;
    double cum = 0;
    for (int i = 0; i < keep; i++) {
        cum += pi[i].p;
        if (r < cum) {
            pick = pi[i].i;
            break;
        }
    }
    free(pi);
    return pick;
}

/* ---- generation ---- */

int mofo_generate(mofo_model *m, const int *prompt, int n_prompt, const mofo_gen_opts *o, int **out, int *n_out,
                  mofo_err *err) {
    *out = NULL;
    *n_out = 0;
    const mofo_model_config *c = &m->cfg;
    if (n_prompt <= 0) return mofo_errf(err, MOFO_EINVAL, "an empty prompt: at least one token is needed");
    if (o->max_new < 0) return mofo_errf(err, MOFO_EINVAL, "max_new %d: must not be negative", o->max_new);
    int total = n_prompt + o->max_new;
    if (c->pos == MOFO_POS_LEARNED && total > c->max_T)
        return mofo_errf(err, MOFO_EINVAL, "%d prompt + %d new tokens exceed the model's %d positions", n_prompt,
                         o->max_new, c->max_T);
    int *seq = malloc((size_t)total * sizeof *seq);
    if (!seq) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    memcpy(seq, prompt, (size_t)n_prompt * sizeof *seq);
    int len = n_prompt, rc = 0;
    uint64_t rng = o->seed;
    mofo_infer s;
    memset(&s, 0, sizeof s);
    if (o->max_new > 0) {
        if (o->no_cache)
            rc = mofo_model_eval(m, seq, NULL, 1, len, NULL, err);
        else if (!(rc = mofo_infer_init(&s, m, total, err)))
            rc = mofo_infer_feed(&s, m, seq, len, err);
    }
    while (!rc && len < total) {
        const float *logits = o->no_cache ? m->a.logits + (size_t)(len - 1) * c->V : s.logits;
        int id = mofo_sample(logits, c->V, o->temperature, o->top_p, &rng);
        seq[len++] = id;
        if (id == o->eos) break;
        if (o->on_token && o->on_token(o->ctx, id)) break;
        if (len == total) break;
        if (o->no_cache)
            rc = mofo_model_eval(m, seq, NULL, 1, len, NULL, err);
        else
            rc = mofo_infer_feed(&s, m, &seq[len - 1], 1, err);
    }
    mofo_infer_free(&s);
    if (rc) {
        free(seq);
        return rc;
    }
    *n_out = len - n_prompt;
    memmove(seq, seq + n_prompt, (size_t)*n_out * sizeof *seq);
    *out = seq;
    return 0;
}
