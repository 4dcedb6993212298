/* The optimizer step: one core for every rule (AdamW, Lion, SGD-momentum) and every filter.
 *
 * A dense parameter takes one fused pass. A filtered block takes two passes and a small third:
 *   pass 1  update the moments (AdamW, SGDM) and histogram the first radix digit (top 12 bits) of
 *           each entry's key, the float bits of |score|; the histogram gives the bucket that holds
 *           the k-th largest key and how many keys lie above it;
 *   pass 2  p *= 1 - lr*wd everywhere; entries above the bucket move; entries in the bucket are
 *           set aside as candidates with the update they would get;
 *   resolve the exact k-th largest key among the candidates (radix select) and move those at or
 *           above it (or exactly the first ones, in MOFO_TIES_EXACT_K).
 * No sort, O(n) per block, and every float expression is the same in every path, so a filter with
 * alpha = 1 gives the dense rule's bits. Work is split into chunks (inside one block and one
 * parameter) run by OpenMP; small blocks are resolved by one thread in pass 1. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "select.h"

#define TILE 512          /* entries per inner loop: scratch buffers stay in L1 */
#define SMALL_BLOCK 4096  /* blocks up to this size are selected directly in pass 1 */

/* Per-parameter constants of this step, cast to float as PyTorch casts its Python scalars. */
typedef struct rule_consts {
    float b1, b2, c1, c2; /* c1 = 1-b1, c2 = 1-b2 */
    float eps, bc2s;      /* bc2s = sqrt(1 - b2^t) */
    float neg_step;       /* -lr/(1 - b1^t) for AdamW; -lr otherwise */
    float decay;          /* 1 - lr*wd */
} rule_consts;

typedef enum { PASS_STATE, PASS_APPLY, PASS_DENSE } pass_kind;

/* ---- the update rules on one tile: mom = the momentum the step uses, delta = the update ---- */

static void adamw_tile(const rule_consts *k, int64_t n, int fresh, const float *restrict g, float *restrict m,
                       float *restrict v, float *restrict mom, float *restrict delta) {
    if (fresh)
        for (int64_t i = 0; i < n; i++) {
            m[i] = m[i] + k->c1 * (g[i] - m[i]);  /* torch: exp_avg.lerp_(grad, 1-beta1) */
            v[i] = v[i] * k->b2;                  /* exp_avg_sq.mul_(beta2) */
            v[i] = v[i] + k->c2 * g[i] * g[i];    /*   .addcmul_(grad, grad, value=1-beta2) */
        }
    for (int64_t i = 0; i < n; i++) {
        float h = sqrtf(v[i]) / k->bc2s + k->eps; /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
        mom[i] = m[i];
        delta[i] = k->neg_step * m[i] / h;        /* param.addcdiv_(exp_avg, denom, value=-step_size) */
    }
}

static void lion_tile(const rule_consts *k, int64_t n, int write_m, const float *restrict g, float *restrict m,
                      float *restrict mom, float *restrict delta) {
    for (int64_t i = 0; i < n; i++) {
        float c = k->b1 * m[i] + k->c1 * g[i];
        mom[i] = c;
        delta[i] = k->neg_step * (float)((c > 0) - (c < 0));
    }
    if (write_m)
        for (int64_t i = 0; i < n; i++) m[i] = k->b2 * m[i] + k->c2 * g[i];
}

static void sgdm_tile(const rule_consts *k, int64_t n, int fresh, const float *restrict g, float *restrict m,
                      float *restrict mom, float *restrict delta) {
    if (fresh)
        for (int64_t i = 0; i < n; i++) m[i] = m[i] * k->b1 + g[i];
    for (int64_t i = 0; i < n; i++) {
        mom[i] = m[i];
        delta[i] = k->neg_step * m[i];
    }
}

static void rule_tile(mofo_rule rule, pass_kind pass, const rule_consts *k, int64_t n, const float *g, float *m,
                      float *v, float *mom, float *delta) {
    switch (rule) {
    case MOFO_RULE_ADAMW: adamw_tile(k, n, pass != PASS_APPLY, g, m, v, mom, delta); break;
    case MOFO_RULE_LION: lion_tile(k, n, pass != PASS_STATE, g, m, mom, delta); break;
    case MOFO_RULE_SGDM: sgdm_tile(k, n, pass != PASS_APPLY, g, m, mom, delta); break;
    }
}

/* ---- filter keys: the float bits of |score| (their unsigned order is the float order) ---- */

static inline uint32_t abs_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u & 0x7FFFFFFFu;
}

static inline uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The random filter's stream for (seed, step, parameter): counter-based, so a resumed run draws the
 * same masks and threads need no shared state. */
static uint64_t random_base(uint64_t seed, int64_t step, int param) {
    return mix64(seed ^ mix64(((uint64_t)step << 20) ^ (uint64_t)param));
}

static void keys_tile(mofo_filter f, int64_t n, const float *restrict g, const float *restrict mom,
                      const float *restrict delta, uint64_t rbase, int64_t offset, uint32_t *restrict keys) {
    switch (f) {
    case MOFO_FILTER_MOMENTUM:
    case MOFO_FILTER_NONE:
        for (int64_t i = 0; i < n; i++) keys[i] = abs_bits(mom[i]);
        break;
    case MOFO_FILTER_GRADIENT:
        for (int64_t i = 0; i < n; i++) keys[i] = abs_bits(g[i]);
        break;
    case MOFO_FILTER_UPDATE:
        for (int64_t i = 0; i < n; i++) keys[i] = abs_bits(delta[i]);
        break;
    case MOFO_FILTER_RANDOM:
        for (int64_t i = 0; i < n; i++) keys[i] = (uint32_t)(mix64(rbase + (uint64_t)(offset + i)) >> 32);
        break;
    }
}

/* Sets the coverage bits of entries offset..offset+n-1 of a parameter where sel[i] (all when sel is
 * NULL); returns how many were not set before. Atomic: two chunks may share a word. */
static int64_t mark_touched(uint64_t *touched, int64_t offset, const uint8_t *sel, int64_t n) {
    if (!touched) return 0;
    int64_t newly = 0;
    for (int64_t j = 0; j < n;) {
        int64_t e = offset + j;
        int bit = (int)(e & 63);
        int64_t take = 64 - bit < n - j ? 64 - bit : n - j;
        uint64_t mask = 0;
        if (sel) {
            for (int64_t t = 0; t < take; t++) mask |= (uint64_t)sel[j + t] << (bit + t);
        } else {
            mask = (take == 64 ? ~0ull : ((1ull << take) - 1)) << bit;
        }
        if (mask) {
            uint64_t old = __atomic_fetch_or(&touched[e >> 6], mask, __ATOMIC_RELAXED);
            newly += __builtin_popcountll(mask & ~old);
        }
        j += take;
    }
    return newly;
}

/* ---- the plan: blocks and chunks ---- */

static int add_chunks(mofo_optim *o, int *cap, int param, int blk, int64_t offset, int64_t len, mofo_err *err) {
    for (int64_t at = 0; at < len; at += MOFO_CHUNK) {
        if (o->n_chunks == *cap) {
            int ncap = *cap ? 2 * *cap : 64;
            chunk *c = realloc(o->chunks, (size_t)ncap * sizeof *c);
            if (!c) return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
            o->chunks = c;
            *cap = ncap;
        }
        chunk *c = &o->chunks[o->n_chunks++];
        memset(c, 0, sizeof *c);
        c->param = param;
        c->block = blk;
        c->offset = offset + at;
        c->len = len - at < MOFO_CHUNK ? len - at : MOFO_CHUNK;
    }
    return 0;
}

static int new_block(mofo_optim *o, int *cap, int param, int64_t offset, int64_t numel, double alpha, mofo_err *err) {
    if (o->n_blocks == *cap) {
        int ncap = *cap ? 2 * *cap : 16;
        block *b = realloc(o->blocks, (size_t)ncap * sizeof *b);
        mofo_block_stats *s = realloc(o->block_stats, (size_t)ncap * sizeof *s);
        if (b) o->blocks = b;
        if (s) o->block_stats = s;
        if (!b || !s) return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
        *cap = ncap;
    }
    block *b = &o->blocks[o->n_blocks];
    memset(b, 0, sizeof *b);
    b->numel = numel;
    double kf = floor(alpha * (double)numel); /* Python: max(1, int(numel * alpha)) */
    b->k = kf < 1 ? 1 : (int64_t)kf;
    if (b->k > numel) b->k = numel;
    b->first_chunk = o->n_chunks;
    o->block_stats[o->n_blocks] = (mofo_block_stats){param, offset, numel, b->k, 0};
    return o->n_blocks++;
}

static void end_block(mofo_optim *o, int blk) {
    block *b = &o->blocks[blk];
    b->n_chunks = o->n_chunks - b->first_chunk;
}

int mofo_optim_plan(mofo_optim *o, mofo_err *err) {
    int ccap = 0, bcap = 0, model_block = -1;
    const mofo_options *op = &o->opt;
    o->param_updated = calloc((size_t)(o->n_params ? o->n_params : 1), sizeof *o->param_updated);
    if (!o->param_updated) return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
    if (op->partition == MOFO_PARTITION_MODEL) {
        int64_t total = 0;
        for (int i = 0; i < o->n_params; i++)
            if (o->groups[o->params[i].group].filtered) total += o->params[i].numel;
        if (total > 0 && (model_block = new_block(o, &bcap, -1, 0, total, op->alpha, err)) < 0) return model_block;
    }
    /* the whole-model block's chunks first (consecutive, in parameter order), then the rest */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < o->n_params; i++) {
            const param_state *p = &o->params[i];
            const mofo_group *g = &o->groups[p->group];
            int rc = 0;
            if (!g->filtered) {
                if (pass == 1) rc = add_chunks(o, &ccap, i, -1, 0, p->numel, err);
            } else if (model_block >= 0) {
                if (pass == 0) rc = add_chunks(o, &ccap, i, model_block, 0, p->numel, err);
            } else if (pass == 1) {
                int64_t rows = op->partition == MOFO_PARTITION_ROWS && p->ndim >= 2 ? p->shape[0] : 1;
                int64_t row_len = p->numel / rows, per = op->partition == MOFO_PARTITION_ROWS ? op->rows_per_block : rows;
                for (int64_t r = 0; r < rows && rc == 0; r += per) {
                    int64_t nr = rows - r < per ? rows - r : per;
                    int b = new_block(o, &bcap, i, r * row_len, nr * row_len, g->alpha, err);
                    if (b < 0) return b;
                    rc = add_chunks(o, &ccap, i, b, r * row_len, nr * row_len, err);
                    end_block(o, b);
                }
            }
            if (rc) return rc;
        }
        if (pass == 0 && model_block >= 0) end_block(o, model_block);
    }
    for (int b = 0; b < o->n_blocks; b++)
        if (o->blocks[b].n_chunks > 1 && !(o->blocks[b].hist = malloc(MOFO_HIST_BINS * sizeof(uint32_t))))
            return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
    o->planned = 1;
    return 0;
}

/* ---- the passes over one chunk ---- */

typedef struct step_ctx {
    mofo_optim *o;
    const rule_consts *consts; /* (n_params) */
    int64_t t;                 /* this step's number, from 1 */
} step_ctx;

typedef struct tile_buf {
    float mom[TILE], delta[TILE];
    uint32_t keys[TILE];
    uint8_t sel[TILE];
} tile_buf;

struct thread_scratch {
    tile_buf tile;
    uint32_t hist[MOFO_HIST_BINS];
    uint32_t small_keys[2 * SMALL_BLOCK]; /* the keys of a small block, and a copy to select on */
};

/* Rule and keys for one tile of a chunk. */
static void tile_keys(const step_ctx *s, const chunk *c, pass_kind pass, int64_t at, int64_t n, tile_buf *tb) {
    const mofo_optim *o = s->o;
    param_state *p = &o->params[c->param];
    int64_t off = c->offset + at;
    rule_tile(o->opt.rule, pass, &s->consts[c->param], n, p->grad + off, p->m + off, p->v ? p->v + off : NULL,
              tb->mom, tb->delta);
    if (pass != PASS_DENSE)
        keys_tile(o->opt.filter, n, p->grad + off, tb->mom, tb->delta, random_base(o->opt.seed, s->t, c->param), off,
                  tb->keys);
}

static void dense_chunk(const step_ctx *s, chunk *c, tile_buf *tb) {
    param_state *p = &s->o->params[c->param];
    const float decay = s->consts[c->param].decay;
    double sq = 0;
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_keys(s, c, PASS_DENSE, at, n, tb);
        float *restrict w = p->data + c->offset + at;
        float tsq = 0;
        for (int64_t i = 0; i < n; i++) {
            w[i] = w[i] * decay + tb->delta[i];
            tsq += tb->delta[i] * tb->delta[i];
        }
        sq += tsq;
    }
    c->updated = c->len;
    c->sq_update = sq;
    c->newly = mark_touched(p->touched, c->offset, NULL, c->len);
}

/* Pass 1 of a filtered chunk. A small block (one chunk) is resolved here; otherwise the chunk's
 * histogram goes to hist, or is added to the block's shared one. */
static void state_chunk(const step_ctx *s, chunk *c, tile_buf *tb, uint32_t *hist, uint32_t *small_keys) {
    block *b = &s->o->blocks[c->block];
    int small = b->n_chunks == 1 && b->numel <= SMALL_BLOCK;
    if (!small) memset(hist, 0, MOFO_HIST_BINS * sizeof *hist);
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_keys(s, c, PASS_STATE, at, n, tb);
        if (small)
            memcpy(small_keys + at, tb->keys, (size_t)n * sizeof *tb->keys);
        else
            for (int64_t i = 0; i < n; i++) hist[tb->keys[i] >> MOFO_HIST_SHIFT]++;
    }
    if (small) {
        /* the exact k-th largest key (selection overwrites its input: work on a copy), then the bucket
           and the count above it as a histogram would give them */
        uint32_t *work = small_keys + SMALL_BLOCK;
        memcpy(work, small_keys, (size_t)c->len * sizeof *work);
        uint32_t thr = mofo_kth_largest(work, (size_t)c->len, (size_t)b->k);
        b->bucket = thr >> MOFO_HIST_SHIFT;
        b->above = 0;
        for (int64_t i = 0; i < c->len; i++) b->above += (small_keys[i] >> MOFO_HIST_SHIFT) > b->bucket;
    } else if (b->n_chunks == 1) {
        b->bucket = mofo_hist_find(hist, MOFO_HIST_BITS, b->k, &b->above);
    } else {
        for (int i = 0; i < MOFO_HIST_BINS; i++)
            if (hist[i]) __atomic_fetch_add(&b->hist[i], hist[i], __ATOMIC_RELAXED);
    }
}

static int push_candidate(chunk *c, int64_t offset, uint32_t key, float delta) {
    if (c->n_cand == c->cap_cand) {
        int64_t ncap = c->cap_cand ? 2 * c->cap_cand : 256;
        candidate *nc = realloc(c->cand, (size_t)ncap * sizeof *nc);
        if (!nc) return -1;
        c->cand = nc;
        c->cap_cand = ncap;
    }
    c->cand[c->n_cand++] = (candidate){offset, key, delta, c->param};
    return 0;
}

/* Pass 2 of a filtered chunk: decay everything, move entries above the bucket, keep the bucket's. */
static int apply_chunk(const step_ctx *s, chunk *c, tile_buf *tb) {
    param_state *p = &s->o->params[c->param];
    const float decay = s->consts[c->param].decay;
    const uint32_t bucket = s->o->blocks[c->block].bucket;
    int64_t updated = 0, newly = 0;
    double sq = 0;
    c->n_cand = 0;
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_keys(s, c, PASS_APPLY, at, n, tb);
        float *restrict w = p->data + c->offset + at;
        int64_t tile_upd = 0, tile_cand = 0;
        float tsq = 0;
        for (int64_t i = 0; i < n; i++) {
            uint32_t digit = tb->keys[i] >> MOFO_HIST_SHIFT;
            float d = tb->delta[i], decayed = w[i] * decay;
            int sel = digit > bucket;
            w[i] = sel ? decayed + d : decayed;
            tb->sel[i] = (uint8_t)sel;
            tile_upd += sel;
            tile_cand += digit == bucket;
            tsq += sel ? d * d : 0.0f;
        }
        updated += tile_upd;
        sq += tsq;
        if (tile_cand)
            for (int64_t i = 0; i < n; i++)
                if (tb->keys[i] >> MOFO_HIST_SHIFT == bucket &&
                    push_candidate(c, c->offset + at + i, tb->keys[i], tb->delta[i]))
                    return -1;
        if (tile_upd) newly += mark_touched(p->touched, c->offset + at, tb->sel, n);
    }
    c->updated = updated;
    c->sq_update = sq;
    c->newly = newly;
    return 0;
}

/* Moves the block's candidates whose key reaches the exact k-th largest. */
static int resolve_block(mofo_optim *o, block *b) {
    const chunk *cs = &o->chunks[b->first_chunk];
    int64_t n = 0, need = b->k - b->above; /* 1 <= need <= n */
    for (int i = 0; i < b->n_chunks; i++) n += cs[i].n_cand;
    uint32_t thr = 0;
    if (need < n) {
        uint32_t *keys = malloc((size_t)n * sizeof *keys);
        if (!keys) return -1;
        int64_t j = 0;
        for (int i = 0; i < b->n_chunks; i++)
            for (int64_t q = 0; q < cs[i].n_cand; q++) keys[j++] = cs[i].cand[q].key;
        thr = mofo_kth_largest(keys, (size_t)n, (size_t)need);
        free(keys);
    }
    /* MOFO_TIES_EXACT_K: entries above thr all move; ties at thr move in index order until k */
    int64_t ties_left = need;
    if (o->opt.ties == MOFO_TIES_EXACT_K)
        for (int i = 0; i < b->n_chunks; i++)
            for (int64_t q = 0; q < cs[i].n_cand; q++) ties_left -= cs[i].cand[q].key > thr;
    int64_t moved = 0;
    for (int i = 0; i < b->n_chunks; i++) {
        chunk *c = &o->chunks[b->first_chunk + i];
        double sq = 0;
        for (int64_t q = 0; q < c->n_cand; q++) {
            const candidate *cd = &c->cand[q];
            if (cd->key < thr) continue;
            if (cd->key == thr && o->opt.ties == MOFO_TIES_EXACT_K) {
                if (ties_left == 0) continue;
                ties_left--;
            }
            param_state *p = &o->params[cd->param];
            p->data[cd->offset] = p->data[cd->offset] + cd->delta; /* already decayed in pass 2 */
            sq += (double)cd->delta * cd->delta;
            uint8_t one = 1;
            c->newly += mark_touched(p->touched, cd->offset, &one, 1);
            c->updated++;
            moved++;
        }
        c->sq_update += sq;
    }
    b->updated = b->above + moved;
    return 0;
}

/* ---- the step ---- */

static int all_finite(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        bad |= (u & 0x7F800000u) == 0x7F800000u;
    }
    return !bad;
}

static int check_gradients(mofo_optim *o, int nt, mofo_err *err) {
    int first_bad = INT_MAX;
#pragma omp parallel for num_threads(nt) schedule(dynamic) reduction(min : first_bad)
    for (int ci = 0; ci < o->n_chunks; ci++) {
        const chunk *c = &o->chunks[ci];
        if (!all_finite(o->params[c->param].grad + c->offset, c->len) && ci < first_bad) first_bad = ci;
    }
    if (first_bad == INT_MAX) return 0;
    const chunk *c = &o->chunks[first_bad];
    const param_state *p = &o->params[c->param];
    int64_t i = c->offset;
    while (i < c->offset + c->len && isfinite(p->grad[i])) i++;
    return mofo_errf(err, MOFO_ENONFINITE,
                     "parameter '%s': gradient entry %lld is %s; step %lld refused, parameters and state unchanged",
                     p->name, (long long)i, isnan(p->grad[i]) ? "NaN" : "infinite", (long long)(o->step + 1));
}

static void step_consts(const mofo_optim *o, double lr, int64_t t, rule_consts *out) {
    const mofo_options *op = &o->opt;
    double bc1 = 1.0 - pow(op->beta1, (double)t), bc2 = 1.0 - pow(op->beta2, (double)t);
    for (int i = 0; i < o->n_params; i++) {
        const mofo_group *g = &o->groups[o->params[i].group];
        double lr_p = lr * g->lr_scale;
        rule_consts *k = &out[i];
        k->b1 = (float)op->beta1;
        k->b2 = (float)op->beta2;
        k->c1 = (float)(1.0 - op->beta1);
        k->c2 = (float)(1.0 - op->beta2);
        k->eps = (float)op->eps;
        k->bc2s = (float)sqrt(bc2);
        k->neg_step = (float)(op->rule == MOFO_RULE_ADAMW ? -(lr_p / bc1) : -lr_p);
        k->decay = (float)(1.0 - lr_p * g->weight_decay);
    }
}

int mofo_optim_step(mofo_optim *o, double lr, mofo_err *err) {
    if (!(lr >= 0 && isfinite(lr))) return mofo_errf(err, MOFO_EINVAL, "step: lr = %g must be >= 0 and finite", lr);
    if (!o->planned) {
        int rc = mofo_optim_plan(o, err);
        if (rc) return rc;
    }
    int nt = o->opt.threads > 0 ? o->opt.threads : omp_get_max_threads();
    int rc = check_gradients(o, nt, err);
    if (rc) return rc;

    int64_t t = o->step + 1;
    rule_consts *consts = malloc((size_t)(o->n_params ? o->n_params : 1) * sizeof *consts);
    if (!consts) return mofo_errf(err, MOFO_ENOMEM, "step: out of memory");
    step_consts(o, lr, t, consts);
    step_ctx s = {o, consts, t};
    for (int b = 0; b < o->n_blocks; b++)
        if (o->blocks[b].hist) memset(o->blocks[b].hist, 0, MOFO_HIST_BINS * sizeof(uint32_t));

    /* per-thread scratch, allocated before anything moves */
    if (o->scratch_threads < nt) {
        free(o->scratch);
        o->scratch = malloc((size_t)nt * sizeof(thread_scratch));
        o->scratch_threads = o->scratch ? nt : 0;
        if (!o->scratch) {
            free(consts);
            return mofo_errf(err, MOFO_ENOMEM, "step: out of memory for %d threads' scratch", nt);
        }
    }
    thread_scratch *scratch = o->scratch;
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        thread_scratch *ts = &scratch[omp_get_thread_num()];
#pragma omp for schedule(dynamic)
        for (int ci = 0; ci < o->n_chunks; ci++) {
            chunk *c = &o->chunks[ci];
            if (c->block < 0) dense_chunk(&s, c, &ts->tile);
            else state_chunk(&s, c, &ts->tile, ts->hist, ts->small_keys);
        }
#pragma omp single
        for (int b = 0; b < o->n_blocks; b++) {
            block *bl = &o->blocks[b];
            if (bl->hist) bl->bucket = mofo_hist_find(bl->hist, MOFO_HIST_BITS, bl->k, &bl->above);
        }
#pragma omp for schedule(dynamic)
        for (int ci = 0; ci < o->n_chunks; ci++)
            if (o->chunks[ci].block >= 0 && apply_chunk(&s, &o->chunks[ci], &ts->tile)) failed = 1;
#pragma omp for schedule(dynamic)
        for (int b = 0; b < o->n_blocks; b++)
            if (resolve_block(o, &o->blocks[b])) failed = 1;
    }
    free(consts);
    o->step = t;
    if (failed) /* a candidate list could not grow: the state has moved, so the step counts */
        return mofo_errf(err, MOFO_ENOMEM, "step %lld: out of memory for the selection candidates; the step is "
                                           "incomplete", (long long)t);

    /* statistics */
    mofo_stats *st = &o->stats;
    double sq = 0;
    int64_t updated = 0;
    memset(o->param_updated, 0, (size_t)o->n_params * sizeof *o->param_updated);
    for (int ci = 0; ci < o->n_chunks; ci++) {
        const chunk *c = &o->chunks[ci];
        sq += c->sq_update;
        updated += c->updated;
        o->ever_updated += c->newly;
        o->param_updated[c->param] += c->updated;
    }
    for (int b = 0; b < o->n_blocks; b++) o->block_stats[b].updated = o->blocks[b].updated;
    st->step = o->step;
    st->entries = o->entries;
    st->updated = updated;
    st->ever_updated = o->ever_updated;
    st->coverage = o->entries ? (double)o->ever_updated / (double)o->entries : 0;
    st->update_norm = sqrt(sq);
    st->n_blocks = o->n_blocks;
    st->blocks = o->block_stats;
    st->param_updated = o->param_updated;
    return 0;
}
