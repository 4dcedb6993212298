/* The optimizer step: one core for every rule (AdamW, Lion, SGD-momentum) and every filter.
 *
 * A dense parameter takes one fused pass. A filtered block (see block in internal.h):
 *   pass 1   read only: each entry's new moments and key (the float bits of |score|); count the keys
 *            above and inside the block's bracket around last step's threshold, and keep those
 *            inside; check that every gradient is finite (else the step is refused before anything
 *            is written);
 *   select   where the bracket holds the k-th largest key: that key, by radix select among the
 *            kept ones, becomes the bracket (lo = hi = the threshold);
 *   (peek)   only for blocks whose bracket missed: the keys again, histogram of their top 12 bits;
 *            the bucket holding the k-th largest key becomes the bracket;
 *   pass 2   the moments written, p *= 1 - lr*wd everywhere; keys above the bracket move; keys
 *            inside it (after the select: the ties) are set aside as candidates with their update;
 *   resolve  the exact k-th largest key among the candidates by radix select; move those at or
 *            above it (or exactly k in all, lowest indices first among ties, in MOFO_TIES_EXACT_K).
 * O(n) per block, no sort. Work is split into chunks run by OpenMP threads. Pass 1 prefetches
 * ahead in software. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "flags.h"
#include "internal.h"
#include "kernels.h"
#include "select.h"

#define SMALL_BLOCK 4096 /* blocks up to this size are selected exactly in pass 1 */

typedef struct step_ctx {
    mofo_optim *o;
    const rule_consts *consts; /* (n_params) */
    int64_t t;                 /* this step's number, from 1 */
} step_ctx;

typedef struct tile_buf {
    float delta[TILE], sq[TILE];
    uint32_t keys[TILE];
    uint8_t sel[TILE], cand[TILE]; /* entries that move / that wait for the exact threshold */
} tile_buf;

struct thread_scratch {
    tile_buf tile;
    uint32_t hist[4][MOFO_HIST_BINS];     /* 4 copies: no store-to-load chain on a popular bin */
    int hist_block;                       /* the block hist counts for, or -1 */
    uint32_t small_keys[2 * SMALL_BLOCK]; /* the keys of a small block, and a copy to select on */
    uint32_t *keys;                       /* (cap_keys) candidate keys to select on */
    int64_t cap_keys;
    int64_t keys_need;                    /* the most keys this step asked for */
};

void mofo_optim_free_scratch(mofo_optim *o) {
    for (int i = 0; i < o->scratch_threads; i++) free(o->scratch[i].keys);
    free(o->scratch);
    o->scratch = NULL;
    o->scratch_threads = 0;
}

/* ORs one word of coverage bits into touched (atomically: two chunks may share a word); returns
 * how many were not set before. */
static int64_t or_bits(uint64_t *touched, uint64_t mask) {
    if (!(mask & ~__atomic_load_n(touched, __ATOMIC_RELAXED))) return 0;
    uint64_t old = __atomic_fetch_or(touched, mask, __ATOMIC_RELAXED);
    return __builtin_popcountll(mask & ~old);
}

/* Sets the coverage bits of entries offset..offset+n-1 of a parameter where bits (packed, bit i for
 * entry offset+i) are set, or all of them when bits is NULL; returns how many were new. */
static int64_t mark_touched(uint64_t *touched, int64_t offset, const uint64_t *bits, int64_t n) {
    if (!touched) return 0;
    int64_t newly = 0;
    int shift = (int)(offset & 63);
    uint64_t *dst = touched + (offset >> 6);
    for (int64_t w = 0; w * 64 < n; w++) {
        int64_t take = n - w * 64 < 64 ? n - w * 64 : 64;
        uint64_t mask = bits ? bits[w] : take == 64 ? ~0ull : (1ull << take) - 1;
        newly += or_bits(&dst[w], mask << shift);
        if (shift && (mask >> (64 - shift))) newly += or_bits(&dst[w + 1], mask >> (64 - shift));
    }
    return newly;
}

/* Prefetches x[at + AHEAD .. at + AHEAD + n) (clipped to len) into the cache. Pass 1 reads g and m
 * faster with it (the hardware prefetcher alone keeps too few lines in flight). Measured without
 * gain in the dense parameters' finiteness check, and slower in the passes that also write; they go
 * without. */
#define PREFETCH_AHEAD (2 * TILE)
static inline void prefetch_ahead(const float *x, int64_t at, int64_t n, int64_t len) {
    int64_t end = at + PREFETCH_AHEAD + n < len ? at + PREFETCH_AHEAD + n : len;
    for (int64_t i = at + PREFETCH_AHEAD; i < end; i += 64 / sizeof *x) __builtin_prefetch(x + i, 0, 3);
}

/* The sum of x[0..n), in a loop of its own: a reduction inside the passes' loops keeps GCC 12 from
 * vectorizing them. */
static float tile_sum(const float *restrict x, int64_t n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* One tile of a parameter: n entries from index on. v points at m for rules without v (unused). */
typedef struct tile_io {
    const rule_consts *k;
    const float *g;
    float *m, *v, *w;
    uint64_t rbase; /* the random filter's stream */
    int64_t index, n;
} tile_io;

static tile_io tile_at(const step_ctx *s, const chunk *c, int64_t at, int64_t n) {
    param_state *p = &s->o->params[c->param];
    int64_t off = c->offset + at;
    return (tile_io){&s->consts[c->param], p->grad + off, p->m + off, (p->v ? p->v : p->m) + off, p->data + off,
                     random_base(s->o->opt.seed, s->t, c->param), off, n};
}

/* Pass 1, which writes nothing: the keys to keys[], counts of keys above hi and inside [lo, hi]
 * (flagged in in[]), and whether a gradient is NaN or infinite. */
ALWAYS_INLINE void state_tile_of(mofo_rule R, mofo_filter F, const tile_io *t, uint32_t *restrict keys,
                                 uint8_t *restrict in, uint32_t lo, uint32_t hi, int *above, int *inside,
                                 uint32_t *bad) {
    const float *restrict g = t->g, *restrict m = t->m, *restrict v = t->v;
    int na = 0, ni = 0; /* integer sums vectorize without omp simd (which GCC 12 miscounts here) */
    uint32_t nonfinite = 0;
    for (int64_t i = 0; i < t->n; i++) {
        float mi = m[i], vi = v[i];
        rule_out r = rule_entry(R, F == MOFO_FILTER_UPDATE, t->k, g[i], &mi, &vi);
        uint32_t key = key_entry(F, g[i], r.mom, r.delta, t->rbase, t->index + i);
        keys[i] = key;
        in[i] = (uint8_t)((key >= lo) & (key <= hi));
        na += key > hi;
        ni += in[i];
        nonfinite |= (abs_bits(g[i]) & 0x7F800000u) == 0x7F800000u;
    }
    *above = na;
    *inside = ni;
    *bad = nonfinite;
}
#define STATE_TILE(R, F, ...) state_tile_of(R, F, __VA_ARGS__)

/* The peek: the keys again, nothing written. */
ALWAYS_INLINE void peek_tile_of(mofo_rule R, mofo_filter F, const tile_io *t, uint32_t *restrict keys) {
    const float *restrict g = t->g;
    float *restrict m = t->m, *restrict v = t->v;
    for (int64_t i = 0; i < t->n; i++) {
        float mi = m[i], vi = v[i];
        rule_out r = rule_entry(R, F == MOFO_FILTER_UPDATE, t->k, g[i], &mi, &vi);
        keys[i] = key_entry(F, g[i], r.mom, r.delta, t->rbase, t->index + i);
    }
}
#define PEEK_TILE(R, F, ...) peek_tile_of(R, F, __VA_ARGS__)

/* Pass 2: the state updated, p decayed everywhere and moved where the key is above hi; flags for the entries that moved
 * (sel) and for the keys inside [lo, hi] (cand), whose keys and updates are kept for the exact
 * selection. Returns the sum of the squared updates of the entries that moved. */
ALWAYS_INLINE float apply_tile_of(mofo_rule R, mofo_filter F, const tile_io *t, uint32_t lo, uint32_t hi,
                                  uint32_t *restrict keys, float *restrict delta, uint8_t *restrict sel,
                                  uint8_t *restrict cand, float *restrict sq_buf) {
    const float *restrict g = t->g;
    float *restrict m = t->m, *restrict v = t->v, *restrict w = t->w;
    const float decay = t->k->decay;
#pragma omp simd /* if-converts the selects; no reduction here (GCC 12 miscounts int reductions in omp simd) */
    for (int64_t i = 0; i < t->n; i++) {
        rule_out r = rule_entry(R, 1, t->k, g[i], &m[i], &v[i]);
        float d = r.delta;
        uint32_t key = key_entry(F, g[i], r.mom, d, t->rbase, t->index + i);
        float decayed = w[i] * decay;
        int up = key > hi;
        w[i] = up ? decayed + d : decayed;
        sel[i] = (uint8_t)up;
        sq_buf[i] = up ? d * d : 0.0f;
        keys[i] = key;
        delta[i] = d;
        cand[i] = (uint8_t)((key >= lo) & !up);
    }
    return tile_sum(sq_buf, t->n);
}
#define APPLY_TILE(R, F, out, ...) (out = apply_tile_of(R, F, __VA_ARGS__))

/* A dense parameter: the whole rule in one pass; returns the sum of the squared updates. */
ALWAYS_INLINE float dense_tile_of(mofo_rule R, mofo_filter F, const tile_io *t, float *restrict sq_buf) {
    const float *restrict g = t->g;
    float *restrict m = t->m, *restrict v = t->v, *restrict w = t->w;
    const float decay = t->k->decay;
    (void)F;
#pragma omp simd
    for (int64_t i = 0; i < t->n; i++) {
        float d = rule_entry(R, 1, t->k, g[i], &m[i], &v[i]).delta;
        w[i] = w[i] * decay + d;
        sq_buf[i] = d * d;
    }
    return tile_sum(sq_buf, t->n);
}
#define DENSE_TILE(R, F, out, ...) (out = dense_tile_of(R, F, __VA_ARGS__))

static void dense_chunk(const step_ctx *s, chunk *c, tile_buf *tb) {
    param_state *p = &s->o->params[c->param];
    double sq = 0;
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_io t = tile_at(s, c, at, n);
        float tsq = 0;
        DISPATCH(DENSE_TILE, s->o->opt.rule, MOFO_FILTER_MOMENTUM, tsq, &t, tb->sq);
        sq += tsq;
    }
    c->updated = c->len;
    c->sq_update = sq;
    c->newly = c->covered ? 0 : mark_touched(p->touched, c->offset, NULL, c->len);
    c->covered = 1;
}

/* The exact threshold of a block whose keys are all in keys[0..n) (kept intact; work is scratch). */
static void settle_exact(block *b, const uint32_t *keys, int64_t n, uint32_t *work) {
    memcpy(work, keys, (size_t)n * sizeof *work);
    uint32_t thr = mofo_kth_largest(work, (size_t)n, (size_t)b->k, 32);
    int64_t above = 0;
    for (int64_t i = 0; i < n; i++) above += keys[i] > thr;
    b->lo = b->hi = thr;
    b->above = above;
    b->settled = SETTLED_EXACT;
}

/* The most keys a bracket may hold for the exact selection among them; beyond, the histogram. A
 * tenth of the block: where gradients change every step the threshold of |m| moves by 4-10% a step,
 * and a bracket wide enough to hold it then holds 3-9% of the keys (GPT-2's matrices, bench optim's
 * changing gradients); selecting among those costs less than the histogram's scattered counts. */
static int64_t bracket_capacity(const block *b) { return 4096 + b->numel / 10; }

/* Appends the n_in keys of a tile flagged in in[] to the chunk's inside_keys after the c->n_inside
 * kept so far, or marks them lost: out of memory, or more than twice the chunk's share of what the
 * block's bracket may hold (which bounds the memory, 0.8 bytes per entry, when a wide bracket holds
 * most keys; a block whose bracket keys crowd into few of its chunks takes the histogram). */
static void keep_inside(chunk *c, const block *b, const uint32_t *keys, const uint8_t *in, int64_t n, int n_in) {
    if (c->inside_lost) return;
    int64_t need = c->n_inside + n_in, limit = 256 + 2 * bracket_capacity(b) * c->len / b->numel;
    if (need > limit) {
        c->inside_lost = 1;
        return;
    }
    if (need > c->cap_inside) {
        int64_t ncap = need > 2 * c->cap_inside ? need + 256 : 2 * c->cap_inside;
        if (ncap > limit) ncap = limit;
        uint32_t *k = realloc(c->inside_keys, (size_t)ncap * sizeof *k);
        if (!k) {
            c->inside_lost = 1;
            return;
        }
        c->inside_keys = k;
        c->cap_inside = ncap;
    }
    uint64_t words[TILE / 64];
    pack_flags(in, n, words);
    uint32_t *out = c->inside_keys + c->n_inside;
    for (int64_t w = 0; w * 64 < n; w++)
        for (uint64_t bits = words[w]; bits; bits &= bits - 1) *out++ = keys[w * 64 + __builtin_ctzll(bits)];
}

/* Adds a thread's histograms to their block's shared one. */
static void flush_hist(mofo_optim *o, thread_scratch *ts) {
    if (ts->hist_block < 0) return;
    block *b = &o->blocks[ts->hist_block];
    for (int i = 0; i < MOFO_HIST_BINS; i++) {
        uint32_t h = ts->hist[0][i] + ts->hist[1][i] + ts->hist[2][i] + ts->hist[3][i];
        if (h) __atomic_fetch_add(&b->hist[i], h, __ATOMIC_RELAXED);
    }
    ts->hist_block = -1;
}

/* Counts n keys' top bits into the thread's histograms, which count for block blk (another block's
 * counts are flushed into its shared histogram first). */
static void hist_add(mofo_optim *o, thread_scratch *ts, int blk, const uint32_t *keys, int64_t n) {
    if (ts->hist_block != blk) {
        flush_hist(o, ts);
        memset(ts->hist, 0, sizeof ts->hist);
        ts->hist_block = blk;
    }
    uint32_t *restrict h0 = ts->hist[0], *restrict h1 = ts->hist[1], *restrict h2 = ts->hist[2],
                      *restrict h3 = ts->hist[3];
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        h0[keys[i] >> MOFO_HIST_SHIFT]++;
        h1[keys[i + 1] >> MOFO_HIST_SHIFT]++;
        h2[keys[i + 2] >> MOFO_HIST_SHIFT]++;
        h3[keys[i + 3] >> MOFO_HIST_SHIFT]++;
    }
    for (; i < n; i++) h0[keys[i] >> MOFO_HIST_SHIFT]++;
}

/* Pass 1 of a filtered chunk: the keys, the counts against the block's bracket and the keys inside
 * it, and the gradient's finiteness (c->bad); nothing is written. A small block keeps its keys and
 * is settled here exactly. */
static void state_chunk(const step_ctx *s, chunk *c, thread_scratch *ts) {
    block *b = &s->o->blocks[c->block];
    tile_buf *tb = &ts->tile;
    int small = b->n_chunks == 1 && b->numel <= SMALL_BLOCK && !b->sharded;
    int count_hist = b->hist_in_pass1 && !small; /* the bracket missed or is too wide: the histogram now */
    const uint32_t lo = b->lo, hi = b->hi;
    int64_t above = 0;
    c->bad = 0;
    c->n_inside = 0;
    c->inside_lost = 0;
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_io t = tile_at(s, c, at, n);
        prefetch_ahead(t.g - at, at, n, c->len);
        prefetch_ahead(t.m - at, at, n, c->len);
        int na = 0, ni = 0;
        uint32_t nonfinite = 0;
        DISPATCH(STATE_TILE, s->o->opt.rule, s->o->opt.filter, &t, tb->keys, tb->cand, lo, hi, &na, &ni, &nonfinite);
        if (nonfinite) {
            c->bad = 1;
            return; /* the step is refused */
        }
        if (count_hist) hist_add(s->o, ts, c->block, tb->keys, n);
        /* tb->cand holds the tile's inside-the-bracket flags here (pass 2 reuses it for its own) */
        if (ni && !small && !b->sort_keys && b->have_last && !b->too_wide) keep_inside(c, b, tb->keys, tb->cand, n, ni);
        c->n_inside += ni;
        if (b->sort_keys)
            memcpy(b->sort_keys + c->block_pos + at, tb->keys, (size_t)n * sizeof *tb->keys);
        else if (small)
            memcpy(ts->small_keys + at, tb->keys, (size_t)n * sizeof *tb->keys);
        above += na;
    }
    c->n_above = above; /* meaningful when the block has a bracket (have_last) */
    if (small) settle_exact(b, ts->small_keys, c->len, ts->small_keys + SMALL_BLOCK);
}

static int descending(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* select_by_sort: the exact threshold from a full sort of the block's keys. */
static void sort_block(block *b) {
    qsort(b->sort_keys, (size_t)b->numel, sizeof *b->sort_keys, descending);
    b->lo = b->hi = b->sort_keys[b->k - 1];
    b->above = 0;
    while (b->above < b->numel && b->sort_keys[b->above] > b->hi) b->above++;
    b->settled = SETTLED_EXACT;
}

/* The thread's buffer of n keys to select on (grown, kept across steps), or NULL without memory. */
static uint32_t *scratch_keys(thread_scratch *ts, int64_t n) {
    if (n > ts->keys_need) ts->keys_need = n;
    if (n > ts->cap_keys) {
        uint32_t *k = realloc(ts->keys, (size_t)n * sizeof *k);
        if (!k) return NULL;
        ts->keys = k;
        ts->cap_keys = n;
    }
    return ts->keys;
}

/* After pass 1: a block is settled when its bracket holds the k-th largest key, which is then
 * selected among the keys pass 1 kept inside the bracket and becomes the bracket (lo = hi). A block
 * whose keys pass 1 could not keep, or without memory to select on, is left to the histogram. */
static void check_bracket(mofo_optim *o, block *b, thread_scratch *ts) {
    if (b->sort_keys) sort_block(b);
    if (b->settled || !b->have_last) return;
    const chunk *cs = &o->chunks[b->first_chunk];
    int64_t above = 0, inside = 0;
    int lost = b->too_wide;
    for (int i = 0; i < b->n_chunks; i++) {
        above += cs[i].n_above;
        inside += cs[i].n_inside;
        lost |= cs[i].inside_lost;
    }
    b->inside = inside;
    if (lost || !(above < b->k && above + inside >= b->k && inside <= bracket_capacity(b))) return;
    uint32_t *keys = scratch_keys(ts, inside);
    if (!keys) return;
    int64_t j = 0;
    for (int i = 0; i < b->n_chunks; i++) {
        if (!cs[i].n_inside) continue; /* inside_keys may be NULL */
        memcpy(keys + j, cs[i].inside_keys, (size_t)cs[i].n_inside * sizeof *keys);
        j += cs[i].n_inside;
    }
    int low_bits = b->lo == b->hi ? 0 : 32 - __builtin_clz(b->lo ^ b->hi); /* the bits the keys differ in */
    uint32_t thr = mofo_kth_largest(keys, (size_t)inside, (size_t)(b->k - above), low_bits);
    for (int i = 0; i < b->n_chunks; i++)
        for (int64_t q = 0; q < cs[i].n_inside; q++) above += cs[i].inside_keys[q] > thr;
    b->lo = b->hi = thr;
    b->above = above;
    b->settled = SETTLED_BRACKET;
}

/* The bracket from a histogram's bucket holding the k-th largest key. */
static void settle_hist(block *b, const uint32_t *hist) {
    int64_t above;
    uint32_t bucket = mofo_hist_find(hist, MOFO_HIST_BITS, b->k, &above);
    b->lo = bucket << MOFO_HIST_SHIFT;
    b->hi = b->lo | ((1u << MOFO_HIST_SHIFT) - 1);
    b->above = above;
    b->settled = SETTLED_HISTOGRAM;
}

/* The peek of a chunk of an unsettled block: the keys again, counted into the block's histogram
 * (through the thread's, flushed when the thread moves on to another block). */
static void peek_chunk(const step_ctx *s, chunk *c, thread_scratch *ts) {
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_io t = tile_at(s, c, at, n);
        DISPATCH(PEEK_TILE, s->o->opt.rule, s->o->opt.filter, &t, ts->tile.keys);
        hist_add(s->o, ts, c->block, ts->tile.keys, n);
    }
}

static int push_candidate(chunk *c, uint32_t pos, uint32_t key, float delta) {
    if (c->n_cand == c->cap_cand) {
        int64_t ncap = c->cap_cand ? 2 * c->cap_cand : 256;
        candidate *nc = realloc(c->cand, (size_t)ncap * sizeof *nc);
        if (!nc) return -1;
        c->cand = nc;
        c->cap_cand = ncap;
    }
    c->cand[c->n_cand++] = (candidate){key, delta, pos};
    return 0;
}

/* Pass 2 of a filtered chunk: decay everything, move keys above the bracket, keep those inside. */
static int apply_chunk(const step_ctx *s, chunk *c, tile_buf *tb) {
    param_state *p = &s->o->params[c->param];
    const uint32_t lo = s->o->blocks[c->block].lo, hi = s->o->blocks[c->block].hi;
    int64_t updated = 0, newly = 0;
    double sq = 0;
    c->n_cand = 0;
    for (int64_t at = 0; at < c->len; at += TILE) {
        int64_t n = c->len - at < TILE ? c->len - at : TILE;
        tile_io t = tile_at(s, c, at, n);
        const uint32_t *keys = tb->keys;
        const float *d = tb->delta;
        const uint8_t *sel = tb->sel, *cand = tb->cand;
        float tsq = 0;
        DISPATCH(APPLY_TILE, s->o->opt.rule, s->o->opt.filter, tsq, &t, lo, hi, tb->keys, tb->delta, tb->sel, tb->cand,
                 tb->sq);
        sq += tsq;
        uint64_t selw[TILE / 64], candw[TILE / 64];
        pack_flags(sel, n, selw);
        pack_flags(cand, n, candw);
        int64_t tile_upd = 0;
        for (int64_t w = 0; w * 64 < n; w++) {
            tile_upd += __builtin_popcountll(selw[w]);
            for (uint64_t bits = candw[w]; bits; bits &= bits - 1) { /* few entries wait */
                int64_t j = w * 64 + __builtin_ctzll(bits);
                if (push_candidate(c, (uint32_t)(at + j), keys[j], d[j])) return -1;
            }
        }
        updated += tile_upd;
        if (tile_upd) newly += mark_touched(p->touched, c->offset + at, selw, n);
    }
    c->updated = updated;
    c->sq_update = sq;
    c->newly = newly;
    return 0;
}

/* Moves the candidates of chunk c whose key reaches thr (ties at thr: all, or under
 * MOFO_TIES_EXACT_K in index order while *ties_left lasts); returns how many moved. */
static int64_t move_candidates(mofo_optim *o, chunk *c, uint32_t thr, int64_t *ties_left) {
    param_state *p = &o->params[c->param];
    double sq = 0;
    int64_t moved = 0;
    for (int64_t q = 0; q < c->n_cand; q++) {
        const candidate *cd = &c->cand[q];
        if (cd->key < thr) continue;
        if (cd->key == thr && o->opt.ties == MOFO_TIES_EXACT_K) {
            if (*ties_left == 0) continue;
            (*ties_left)--;
        }
        int64_t e = c->offset + cd->pos;
        p->data[e] = p->data[e] + cd->delta; /* already decayed in pass 2 */
        sq += (double)cd->delta * cd->delta;
        uint64_t one = 1;
        c->newly += mark_touched(p->touched, e, &one, 1);
        c->updated++;
        moved++;
    }
    c->sq_update += sq;
    if (c->cap_cand > 4096 && c->n_cand < c->cap_cand / 8) { /* give back a spike's memory */
        int64_t ncap = c->n_cand > 128 ? 2 * c->n_cand : 256;
        candidate *nc = realloc(c->cand, (size_t)ncap * sizeof *nc);
        if (nc) {
            c->cand = nc;
            c->cap_cand = ncap;
        }
    }
    return moved;
}

/* ---- sharded blocks: the whole tensor's threshold from the slices' summed counts ----
 * The keys' top 12 bits come from the peek's histogram, the next 10 and the last 10 from
 * histograms of the candidates (the keys inside that bucket); each histogram is summed over the
 * processes (shard_sum), so every process finds the same threshold, the k-th largest key of the
 * whole tensor. */
#define SHARD_DIGIT_BITS 10
#define SHARD_DIGIT_BINS (1 << SHARD_DIGIT_BITS)

static int shard_sum(mofo_optim *o, size_t n) { return o->allreduce(o->shard_counts, n, o->allreduce_ctx); }

/* The bin (of bins, high to low) holding the need-th largest of the summed counts h; *above gets
 * the count in the higher bins. Returns -1 when the counts hold fewer than need. */
static int find_bin(const uint64_t *h, int bins, int64_t need, int64_t *above) {
    int64_t acc = 0;
    for (int i = bins - 1; i >= 0; i--) {
        if (acc + (int64_t)h[i] >= need) {
            *above = acc;
            return i;
        }
        acc += (int64_t)h[i];
    }
    return -1;
}

/* After the summed peek histograms: each sharded block's bracket is the bucket holding its k-th
 * largest key. Fails (nothing written yet) when the slices' sizes do not add up to the tensor's. */
static int shard_settle_buckets(mofo_optim *o, mofo_err *err) {
    for (int bi = 0; bi < o->n_blocks; bi++) {
        block *b = &o->blocks[bi];
        if (!b->sharded) continue;
        const uint64_t *h = o->shard_counts + 1 + (size_t)b->shard_slot * MOFO_HIST_BINS;
        uint64_t total = 0;
        for (int i = 0; i < MOFO_HIST_BINS; i++) total += h[i];
        const param_state *p = &o->params[o->chunks[b->first_chunk].param];
        if (total != (uint64_t)p->full_numel)
            return mofo_errf(err, MOFO_EINVAL, "parameter '%s': its slices hold %llu entries in all, not the %lld "
                                               "declared (mofo_optim_set_shard); step %lld refused", p->name,
                             (unsigned long long)total, (long long)p->full_numel, (long long)(o->step + 1));
        int64_t above = 0;
        int bucket = find_bin(h, MOFO_HIST_BINS, b->k, &above);
        b->lo = (uint32_t)bucket << MOFO_HIST_SHIFT;
        b->hi = b->lo | ((1u << MOFO_HIST_SHIFT) - 1);
        b->above = above;
        b->shard_thr = b->lo;
        b->shard_need = b->k - above;
        b->settled = SETTLED_HISTOGRAM;
    }
    return 0;
}

/* Counts sharded block b's candidates that share the digits of shard_thr above bit `shift` + 10,
 * by their digit at shift, into its slot of shard_counts. */
static void shard_count_digit(mofo_optim *o, const block *b, int shift) {
    uint64_t *h = o->shard_counts + (size_t)b->shard_slot * SHARD_DIGIT_BINS;
    memset(h, 0, SHARD_DIGIT_BINS * sizeof *h);
    uint32_t high = b->shard_thr >> (shift + SHARD_DIGIT_BITS);
    for (int i = 0; i < b->n_chunks; i++) {
        const chunk *c = &o->chunks[b->first_chunk + i];
        for (int64_t q = 0; q < c->n_cand; q++) {
            uint32_t key = c->cand[q].key;
            if (key >> (shift + SHARD_DIGIT_BITS) == high) h[(key >> shift) & (SHARD_DIGIT_BINS - 1)]++;
        }
    }
}

/* After the summed digit counts: the digit at shift of each sharded block's threshold. */
static void shard_take_digit(mofo_optim *o, block *b, int shift) {
    int64_t above = 0;
    int d = find_bin(o->shard_counts + (size_t)b->shard_slot * SHARD_DIGIT_BINS, SHARD_DIGIT_BINS, b->shard_need,
                     &above);
    b->shard_thr |= (uint32_t)d << shift;
    b->shard_need -= above;
}

/* A sharded block once its threshold is complete: the candidates at or above it move. */
static int resolve_shard(mofo_optim *o, block *b) {
    int64_t moved = 0, above = 0, no_limit = INT64_MAX;
    for (int i = 0; i < b->n_chunks; i++) above += o->chunks[b->first_chunk + i].updated; /* this slice's, pass 2 */
    for (int i = 0; i < b->n_chunks; i++) moved += move_candidates(o, &o->chunks[b->first_chunk + i], b->shard_thr, &no_limit);
    b->updated = above + moved; /* this slice's */
    return 0;
}

/* Moves the block's candidates whose key reaches the exact k-th largest, then centres next step's
 * bracket on this step's threshold. */
static int resolve_block(mofo_optim *o, block *b, thread_scratch *ts) {
    const chunk *cs = &o->chunks[b->first_chunk];
    if (b->sharded) return resolve_shard(o, b);
    int64_t n = 0, need = b->k - b->above; /* 1 <= need <= n */
    uint32_t thr = UINT32_MAX;             /* need == n: every candidate moves */
    for (int i = 0; i < b->n_chunks; i++) n += cs[i].n_cand;
    if (!scratch_keys(ts, n)) return -1;
    int64_t j = 0;
    for (int i = 0; i < b->n_chunks; i++)
        for (int64_t q = 0; q < cs[i].n_cand; q++) ts->keys[j++] = cs[i].cand[q].key;
    int low_bits = b->lo == b->hi ? 0 : 32 - __builtin_clz(b->lo ^ b->hi); /* the bits candidates differ in */
    thr = mofo_kth_largest(ts->keys, (size_t)n, (size_t)need, low_bits);
    /* MOFO_TIES_EXACT_K: entries above thr all move; ties at thr move in index order until k */
    int64_t ties_left = need;
    if (o->opt.ties == MOFO_TIES_EXACT_K)
        for (int i = 0; i < b->n_chunks; i++)
            for (int64_t q = 0; q < cs[i].n_cand; q++) ties_left -= cs[i].cand[q].key > thr;
    int64_t moved = 0;
    for (int i = 0; i < b->n_chunks; i++) moved += move_candidates(o, &o->chunks[b->first_chunk + i], thr, &ties_left);
    b->updated = b->above + moved;
    /* next step's bracket: centred on the threshold extrapolated from this step's move, twice as
       wide as this step's prediction missed by, shrinking by at most a quarter a step (one small
       miss among larger ones would otherwise narrow it for the next, which then misses) */
    int64_t next = thr;
    b->too_wide = 0;
    if (b->have_last) {
        uint64_t miss = thr > b->center ? thr - b->center : b->center - thr;
        uint64_t r = 2 * miss + MOFO_RADIUS_MIN;
        if (r < b->radius / 4 * 3) r = b->radius / 4 * 3;
        if (r > MOFO_RADIUS_MAX) r = MOFO_RADIUS_MAX;
        /* the keys it will hold, at this step's density: too many (early steps, |m| growing from
           zero), and pass 1 counts the histogram instead of keeping keys it would then drop */
        b->too_wide = (double)b->inside * (double)r / (double)b->radius > (double)bracket_capacity(b);
        b->radius = (uint32_t)r;
        next = 2 * (int64_t)thr - (int64_t)b->last_thr;
    }
    b->center = next < 0 ? 0 : next > UINT32_MAX ? UINT32_MAX : (uint32_t)next;
    b->last_thr = thr;
    b->have_last = 1;
    block_bracket(b);
    return 0;
}

/* ---- the step ---- */

static int all_finite(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad |= (abs_bits(x[i]) & 0x7F800000u) == 0x7F800000u;
    return !bad;
}

int mofo_refuse_nonfinite(const mofo_optim *o, int param, int64_t index, float value, mofo_err *err) {
    return mofo_errf(err, MOFO_ENONFINITE,
                     "parameter '%s': gradient entry %lld is %s; step %lld refused, parameters and state unchanged",
                     o->params[param].name, (long long)index, isnan(value) ? "NaN" : "infinite", (long long)(o->step + 1));
}

/* The refusal of a step whose pass 1 found a NaN or an infinity: names the first one. */
static int refuse_step(const mofo_optim *o, mofo_err *err) {
    int ci = 0;
    while (!o->chunks[ci].bad) ci++;
    const chunk *c = &o->chunks[ci];
    const param_state *p = &o->params[c->param];
    int64_t i = c->offset;
    while (i < c->offset + c->len - 1 && isfinite(p->grad[i])) i++;
    return mofo_refuse_nonfinite(o, c->param, i, p->grad[i], err);
}

void mofo_step_consts(const mofo_optim *o, double lr, int64_t t, rule_consts *out) {
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

void mofo_gather_stats(mofo_optim *o) {
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
}

int mofo_optim_step(mofo_optim *o, double lr, mofo_err *err) {
    if (!(lr >= 0 && isfinite(lr))) return mofo_errf(err, MOFO_EINVAL, "step: lr = %g must be >= 0 and finite", lr);
    if (!o->planned) {
        int rc = mofo_optim_plan(o, err);
        if (rc) return rc;
    }
    if (o->opt.device == MOFO_DEVICE_CUDA) return mofo_cuda_step(o, lr, err);
    int nt = o->opt.threads > 0 ? o->opt.threads : omp_get_max_threads();

    /* per-thread scratch and constants, allocated before anything moves */
    if (o->scratch_threads < nt) {
        mofo_optim_free_scratch(o);
        o->scratch = calloc((size_t)nt, sizeof(thread_scratch));
        o->scratch_threads = o->scratch ? nt : 0;
    }
    rule_consts *consts = malloc((size_t)(o->n_params ? o->n_params : 1) * sizeof *consts);
    if (!o->scratch || !consts) {
        free(consts);
        return mofo_errf(err, MOFO_ENOMEM, "step: out of memory for the scratch of %d threads", nt);
    }
    int64_t t = o->step + 1;
    mofo_step_consts(o, lr, t, consts);
    step_ctx s = {o, consts, t};
    int any_unsettled = 0;
    for (int b = 0; b < o->n_blocks; b++) {
        block *bl = &o->blocks[b];
        bl->settled = bl->hist_ready = 0;
        if (bl->hist_in_pass1) memset(bl->hist, 0, MOFO_HIST_BINS * sizeof *bl->hist);
    }

    thread_scratch *scratch = o->scratch;
    int failed = 0, nonfinite = 0, local_nonfinite = 0;
    int comm = 0;          /* sharded: 1 when an all-reduce failed before anything was written, 2 after */
    int shard_refused = 0; /* sharded: the slices' sizes do not add up (err is set) */
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        thread_scratch *ts = &scratch[omp_get_thread_num()];
        ts->hist_block = -1;
        ts->keys_need = 0;
        /* pass 1 reads only: a NaN or infinite gradient anywhere refuses the step before any write */
#pragma omp for schedule(dynamic) reduction(| : nonfinite) nowait
        for (int ci = 0; ci < o->n_chunks; ci++) {
            chunk *c = &o->chunks[ci];
            if (c->block < 0) c->bad = !all_finite(o->params[c->param].grad + c->offset, c->len);
            else state_chunk(&s, c, ts);
            nonfinite |= c->bad;
        }
        flush_hist(o, ts); /* pass 1's histograms */
#pragma omp barrier
        if (o->n_sharded) { /* on any process: every process refuses the step */
#pragma omp single
            {
                local_nonfinite = nonfinite;
                o->shard_counts[0] = (uint64_t)nonfinite;
                if (shard_sum(o, 1)) comm = 1;
                else nonfinite = o->shard_counts[0] != 0;
            }
        }
        if (!nonfinite && !comm) {
#pragma omp for schedule(dynamic) reduction(| : any_unsettled)
            for (int b = 0; b < o->n_blocks; b++) {
                block *bl = &o->blocks[b];
                check_bracket(o, bl, ts);
                if (!bl->settled && bl->hist) {
                    if (bl->hist_in_pass1) bl->hist_ready = 1; /* pass 1 counted them */
                    else memset(bl->hist, 0, MOFO_HIST_BINS * sizeof *bl->hist);
                }
                any_unsettled |= !bl->settled;
            }
            if (any_unsettled) {
                /* the peek: histograms for the blocks whose bracket missed and pass 1 did not count */
#pragma omp for schedule(dynamic) nowait
                for (int ci = 0; ci < o->n_chunks; ci++) {
                    chunk *c = &o->chunks[ci];
                    if (c->block >= 0 && !o->blocks[c->block].settled && !o->blocks[c->block].hist_ready)
                        peek_chunk(&s, c, ts);
                }
                flush_hist(o, ts);
#pragma omp barrier
                if (o->n_sharded) { /* the sharded blocks' histograms summed over the processes */
#pragma omp single
                    {
                        for (int b = 0; b < o->n_blocks; b++)
                            if (o->blocks[b].sharded)
                                for (int i = 0; i < MOFO_HIST_BINS; i++)
                                    o->shard_counts[1 + (size_t)o->blocks[b].shard_slot * MOFO_HIST_BINS + i] =
                                        o->blocks[b].hist[i];
                        if (shard_sum(o, 1 + (size_t)o->n_sharded * MOFO_HIST_BINS)) comm = 1;
                        else if (shard_settle_buckets(o, err)) shard_refused = 1;
                    }
                }
#pragma omp for schedule(dynamic)
                for (int b = 0; b < o->n_blocks; b++)
                    if (!o->blocks[b].settled && o->blocks[b].hist) settle_hist(&o->blocks[b], o->blocks[b].hist);
            }
            if (!comm && !shard_refused) {
#pragma omp for schedule(dynamic)
                for (int ci = 0; ci < o->n_chunks; ci++) {
                    chunk *c = &o->chunks[ci];
                    if (c->block < 0) dense_chunk(&s, c, &ts->tile);
                    else if (apply_chunk(&s, c, &ts->tile)) failed = 1;
                }
                /* sharded blocks: the threshold's last two digits from the candidates, summed */
                for (int shift = SHARD_DIGIT_BITS; o->n_sharded && shift >= 0; shift -= SHARD_DIGIT_BITS) {
#pragma omp for schedule(dynamic)
                    for (int b = 0; b < o->n_blocks; b++)
                        if (o->blocks[b].sharded) shard_count_digit(o, &o->blocks[b], shift);
#pragma omp single
                    if (!comm && shard_sum(o, (size_t)o->n_sharded * SHARD_DIGIT_BINS)) comm = 2;
                    if (comm) break;
#pragma omp for schedule(dynamic)
                    for (int b = 0; b < o->n_blocks; b++)
                        if (o->blocks[b].sharded) shard_take_digit(o, &o->blocks[b], shift);
                }
                if (!comm) {
#pragma omp for schedule(dynamic)
                    for (int b = 0; b < o->n_blocks; b++)
                        if (resolve_block(o, &o->blocks[b], ts)) failed = 1;
                }
                /* give back a spike's memory: kept while a step uses it (pass 1's brackets and the
                   candidates share it; freed and grown again each step, its pages fault anew) */
                if (ts->cap_keys > 65536 && ts->keys_need < ts->cap_keys / 8) {
                    free(ts->keys);
                    ts->keys = NULL;
                    ts->cap_keys = 0;
                }
            }
        }
    }
    free(consts);
    if (!nonfinite && !comm && !shard_refused) /* a block that missed may miss again: pass 1 counts next time */
        for (int b = 0; b < o->n_blocks; b++)
            o->blocks[b].hist_in_pass1 = o->blocks[b].hist && (o->blocks[b].sharded || o->blocks[b].too_wide ||
                                                               o->blocks[b].settled == SETTLED_HISTOGRAM);
    if (comm == 1)
        return mofo_errf(err, MOFO_EIO, "step %lld: the all-reduce of the sharded parameters' counts failed; step "
                                        "refused, parameters and state unchanged", (long long)t);
    if (shard_refused) return err ? err->code : MOFO_EINVAL;
    if (nonfinite && (local_nonfinite || !o->n_sharded)) return refuse_step(o, err);
    if (nonfinite)
        return mofo_errf(err, MOFO_ENONFINITE, "step %lld refused: another process holding a slice of a sharded "
                                               "parameter has a NaN or infinite gradient", (long long)t);
    if (comm == 2) {
        o->step = t;
        return mofo_errf(err, MOFO_EIO, "step %lld: the all-reduce of the sharded parameters' counts failed after "
                                        "the moments moved; the step is incomplete", (long long)t);
    }
    o->step = t;
    if (failed) /* a candidate list could not grow: the state has moved, so the step counts */
        return mofo_errf(err, MOFO_ENOMEM, "step %lld: out of memory for the selection candidates; the step is "
                                           "incomplete", (long long)t);
    mofo_gather_stats(o);
    return 0;
}
