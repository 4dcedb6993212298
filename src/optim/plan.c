/* The plan of a step: the filtered blocks (per tensor, per group of rows, or the whole model) and
 * the chunks that cut the work for the threads (each inside one parameter and one block; the
 * chunks of a block are consecutive and in index order). Built once, at the first step. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int add_chunks(mofo_optim *o, int *cap, int param, int blk, int64_t offset, int64_t len, mofo_err *err) {
    int64_t block_pos = 0; /* where this parameter's entries start inside the block */
    for (int i = blk >= 0 ? o->blocks[blk].first_chunk : o->n_chunks; i < o->n_chunks; i++) block_pos += o->chunks[i].len;
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
        c->block_pos = block_pos + at;
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
                    if (p->full_numel > 0) { /* a slice: the whole tensor's k (partition tensor: one block) */
                        block *bl = &o->blocks[b];
                        double kf = floor(g->alpha * (double)p->full_numel);
                        bl->k = kf < 1 ? 1 : kf > (double)p->full_numel ? p->full_numel : (int64_t)kf;
                        bl->sharded = 1;
                        bl->shard_slot = o->n_sharded;
                        o->block_stats[b].k = bl->k;
                        o->n_sharded++;
                    }
                    rc = add_chunks(o, &ccap, i, b, r * row_len, nr * row_len, err);
                    end_block(o, b);
                }
            }
            if (rc) return rc;
        }
        if (pass == 0 && model_block >= 0) end_block(o, model_block);
    }
    for (int b = 0; b < o->n_blocks; b++) {
        block *bl = &o->blocks[b];
        bl->radius = MOFO_RADIUS_START;
        if (o->select_by_sort && !bl->sharded) {
            if (!(bl->sort_keys = malloc((size_t)bl->numel * sizeof(uint32_t))))
                return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
        } else { /* the peek's, or pass 1's when the bracket keeps missing */
            if (!(bl->hist = malloc(MOFO_HIST_BINS * sizeof(uint32_t))))
                return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
            bl->hist_in_pass1 = 1; /* the first step has no bracket */
        }
    }
    if (o->n_sharded) {
        if (!o->allreduce)
            return mofo_errf(err, MOFO_EINVAL, "%d parameters are sharded but no all-reduce was given "
                                               "(mofo_optim_set_allreduce)", o->n_sharded);
        if (!(o->shard_counts = malloc((1 + (size_t)o->n_sharded * MOFO_HIST_BINS) * sizeof *o->shard_counts)))
            return mofo_errf(err, MOFO_ENOMEM, "out of memory planning the step");
    }
    o->planned = 1;
    return 0;
}

