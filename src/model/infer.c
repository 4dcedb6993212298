/* Incremental decoding with a KV cache (see infer.h). */
#include "model/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

void mofo_infer_free(mofo_infer *s) {
    if (!s) return;
    if (s->be) {
        s->be->free(s->kv);
        s->be->free(s->rope_cos);
        s->be->free(s->rope_sin);
        s->be->free(s->scratch);
        s->be->free(s->logits);
    }
    memset(s, 0, sizeof *s);
}

void mofo_infer_reset(mofo_infer *s) { s->pos = 0; }

/* (Re)allocates the row scratch for n rows. */
static int scratch_alloc(mofo_infer *s, const mofo_model_config *c, int n, mofo_err *err) {
    if (n <= s->n_cap) return 0;
    size_t N = (size_t)n, C = c->C, QKV = (size_t)(c->NH + 2 * c->NKV) * c->HD, A = (size_t)c->NH * c->HD,
           FC = mofo_fc_width(c), FF = c->FF;
    size_t total = N * (7 * C + 4 + QKV + A + FC + FF + (size_t)c->NH + (size_t)s->T_max + 2 * (size_t)s->lora_r);
    s->be->free(s->scratch);
    s->n_cap = 0;
    float *p = s->scratch = s->be->alloc(total);
    if (!p) return mofo_errf(err, MOFO_ENOMEM, "out of memory for inference scratch (%d rows: %zu MB)", n, total * 4 >> 20);
#define TAKE(field, count) (field = p, p += (count))
    TAKE(s->x, N * C);
    TAKE(s->y, N * C);
    TAKE(s->a.ln1, N * C);
    TAKE(s->a.ln1_mean, N);
    TAKE(s->a.ln1_rstd, N);
    TAKE(s->a.qkv, N * QKV);
    TAKE(s->a.lse, N * (size_t)c->NH);
    TAKE(s->a.atty, N * A);
    TAKE(s->a.r2, N * C);
    TAKE(s->a.ln2, N * C);
    TAKE(s->a.ln2_mean, N);
    TAKE(s->a.ln2_rstd, N);
    TAKE(s->a.fc, N * FC);
    TAKE(s->a.fch, N * FF);
    TAKE(s->attn, N * (size_t)s->T_max);
    TAKE(s->lora, N * 2 * (size_t)s->lora_r);
#undef TAKE
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
    s->be = m->be;
    s->lora_r = mofo_model_lora_max_rank(m);
    size_t kv = (size_t)c->L * T_max * 2 * c->NKV * c->HD, half = (size_t)c->HD / 2;
    s->kv = s->be->alloc(kv);
    s->logits = s->be->alloc((size_t)c->V);
    int bad = !s->kv || !s->logits;
    if (!bad && c->pos == MOFO_POS_ROPE) {
        s->rope_cos = s->be->alloc((size_t)T_max * half);
        s->rope_sin = s->be->alloc((size_t)T_max * half);
        bad = !s->rope_cos || !s->rope_sin || mofo_rope_upload(s->be, c, s->rope_cos, s->rope_sin, T_max, err);
    }
    if (!bad && scratch_alloc(s, c, 1, err)) bad = 1;
    if (bad) {
        mofo_infer_free(s);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for a KV cache of %d positions (%zu MB)", T_max,
                         kv * sizeof(float) >> 20);
    }
    return 0;
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
    if (mofo_model_lora_max_rank(m) > s->lora_r)
        return mofo_errf(err, MOFO_EINVAL, "the model's adapters (rank %d) were attached after its KV cache was made",
                         mofo_model_lora_max_rank(m));
    int rc = scratch_alloc(s, c, n, err);
    if (rc) return rc;
    int C = c->C;
    size_t half = (size_t)c->HD / 2, layer_kv = (size_t)s->T_max * 2 * c->NKV * c->HD;
    const float *cos_t = s->rope_cos ? s->rope_cos + (size_t)s->pos * half : NULL;
    const float *sin_t = s->rope_sin ? s->rope_sin + (size_t)s->pos * half : NULL;
    const mofo_backend *be = m->be;
    be->embed_forward(s->x, ids, m->w.wte, c->pos == MOFO_POS_LEARNED ? m->w.wpe + (size_t)s->pos * C : NULL, 1, n, C);
    for (int l = 0; l < c->L; l++) {
        mofo_block_lora lo = mofo_model_layer_lora(m, l, s->lora);
        mofo_block_forward(be, c, m->precision, &m->w.layer[l], &lo, s->y, s->x, &s->a, 1, n, s->pos, cos_t, sin_t, s->kv + l * layer_kv,
                           s->attn);
        float *t = s->x;
        s->x = s->y;
        s->y = t;
    }
    /* the final norm and lm_head: on every row, or on the last one only */
    int first = rows ? 0 : n - 1;
    mofo_norm_forward(be, c, s->a.ln1, s->a.ln1_mean, s->a.ln1_rstd, s->x + (size_t)first * C, m->w.lnf_w, m->w.lnf_b,
                      n - first);
    be->matmul_forward(m->precision, rows ? rows : s->logits, s->a.ln1, m->w.lm_head, NULL, n - first, C, c->V);
    s->pos += n;
    return mofo_backend_check(be, err);
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
    float *row = malloc((size_t)c->V * sizeof *row); /* the logits sampled from, on the host */
    if (!seq || !row) {
        free(seq);
        free(row);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
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
        m->be->download(row, o->no_cache ? m->a.logits + (size_t)(len - 1) * c->V : s.logits, (size_t)c->V);
        if ((rc = mofo_backend_check(m->be, err))) break;
        int id = mofo_sample(row, c->V, o->temperature, o->top_p, &rng);
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
    free(row);
    if (rc) {
        free(seq);
        return rc;
    }
    *n_out = len - n_prompt;
    memmove(seq, seq + n_prompt, (size_t)*n_out * sizeof *seq);
    *out = seq;
    return 0;
}
