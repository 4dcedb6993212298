/* The CUDA step: the device tables built from the CPU plan (plan.c) at the first step, then per
 * step, on the optimizer's stream (mofo_optim_set_stream; the legacy default stream unless set),
 * with one read back at the end:
 *   upload   this step's per-parameter constants (computed by the CPU's mofo_step_consts), and
 *            the parameters' pointers when mofo_optim_set_param moved them
 *   reset    every block's selection state
 *   scan 0   pass 1, read only: gradients checked; level 0 of every filtered block (one-chunk blocks
 *            selected completely)                                                        (scan.cu)
 *   find 0, then levels 1..last over the data for blocks with too many pending entries
 *   apply    pass 2: moments, decay, moves; pending entries to the stash                 (apply.cu)
 *   levels 1..last over the stash, then the stashed entries that are selected move      (stash.cu)
 *   read     the non-finite flag and the per-chunk statistics (one copy; the step waits for it)
 * A non-finite gradient makes every kernel after pass 1 return at once: nothing is written. */
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "check.h"
#include "launch.h"

#define SR_SALT 0x53524E44ull /* the stochastic-rounding stream's seed differs from the random filter's */

struct cuda_step {
    int n_multi, n_tiles;
    dev_param *params, *params_host;  /* (n_params) device, pinned host (set_param's new pointers) */
    dev_consts *consts, *consts_host; /* (n_params) device, pinned host */
    dev_chunk *chunks;
    dev_block *blocks;
    sel_state *sel;
    uint32_t *hist;                   /* (n_multi, HIST_BINS) */
    stash_entry *stash;
    unsigned long long *stash_count;  /* (n_blocks) */
    int *multi;                       /* (n_multi) the blocks of several chunks */
    stash_tile *tiles;                /* (n_tiles) */
    void *report, *report_host;       /* step_report then chunk_updated, chunk_newly, chunk_sq (n_chunks each) */
    size_t report_bytes;
    rule_consts *rc;                  /* (n_params) host scratch */
};

void mofo_cuda_free_step(mofo_optim *o) {
    cuda_step *cs = o->cuda;
    if (!cs) return;
    cudaFree(cs->params);
    cudaFreeHost(cs->params_host);
    cudaFree(cs->consts);
    cudaFreeHost(cs->consts_host);
    cudaFree(cs->chunks);
    cudaFree(cs->blocks);
    cudaFree(cs->sel);
    cudaFree(cs->hist);
    cudaFree(cs->stash);
    cudaFree(cs->stash_count);
    cudaFree(cs->multi);
    cudaFree(cs->tiles);
    cudaFree(cs->report);
    cudaFreeHost(cs->report_host);
    free(cs->rc);
    free(cs);
    o->cuda = NULL;
}

/* cudaMalloc + upload of n entries of host array src (n may be 0). */
template <typename T>
static int upload(T **dst, const T *src, size_t n, mofo_err *err) {
    CUDA_TRY(cudaMalloc((void **)dst, n ? n * sizeof(T) : 1), err);
    if (n) CUDA_TRY(cudaMemcpy(*dst, src, n * sizeof(T), cudaMemcpyHostToDevice), err);
    return 0;
}

/* The stash of a block of several chunks: room for 1/16 of its entries and 16384 more. Pending
 * entries go there once they are that few; until then the levels run over the data. */
static int64_t stash_cap(int64_t numel) {
    int64_t cap = numel / 16 + 16384;
    return cap < numel ? cap : numel;
}

/* The parameters' table as the kernels read it: pointers into the caller's and the state's arrays. */
static void param_table(const mofo_optim *o, dev_param *hp) {
    for (int i = 0; i < o->n_params; i++) {
        const param_state *p = &o->params[i];
        hp[i] = dev_param{p->data, p->grad, p->master, p->m, p->v, (unsigned long long *)p->touched, p->numel, p->bf16, 0};
    }
}

static int build_tables(mofo_optim *o, cuda_step *cs, mofo_err *err) {
    int rc = 0;
    dev_param *hp = (dev_param *)calloc((size_t)o->n_params + 1, sizeof *hp);
    dev_chunk *hc = (dev_chunk *)calloc((size_t)o->n_chunks + 1, sizeof *hc);
    dev_block *hb = (dev_block *)calloc((size_t)o->n_blocks + 1, sizeof *hb);
    int *multi = (int *)calloc((size_t)o->n_blocks + 1, sizeof *multi);
    if (!hp || !hc || !hb || !multi) rc = mofo_errf(err, MOFO_ENOMEM, "step: out of memory for the device tables");
    if (!rc) param_table(o, hp);
    int64_t stash_total = 0;
    for (int b = 0; b < o->n_blocks && !rc; b++) {
        const block *bl = &o->blocks[b];
        if (bl->numel > (int64_t)UINT32_MAX)
            rc = mofo_errf(err, MOFO_EINVAL, "step: block %d has %lld entries; the CUDA step takes at most 2^32 - 1 per block",
                           b, (long long)bl->numel);
        hb[b] = dev_block{bl->k, 0, 0, -1, 0};
        if (bl->n_chunks > 1) {
            hb[b].hist_slot = cs->n_multi;
            hb[b].stash_off = stash_total;
            hb[b].stash_cap = stash_cap(bl->numel);
            stash_total += hb[b].stash_cap;
            cs->n_tiles += (int)((hb[b].stash_cap + STASH_TILE - 1) / STASH_TILE);
            multi[cs->n_multi++] = b;
        }
    }
    stash_tile *tiles = rc ? NULL : (stash_tile *)calloc((size_t)cs->n_tiles + 1, sizeof *tiles);
    if (!rc && !tiles) rc = mofo_errf(err, MOFO_ENOMEM, "step: out of memory for the device tables");
    for (int i = 0, t = 0; i < cs->n_multi && !rc; i++)
        for (int64_t at = 0; at < hb[multi[i]].stash_cap; at += STASH_TILE) tiles[t++] = stash_tile{multi[i], (uint32_t)at};
    for (int ci = 0; ci < o->n_chunks && !rc; ci++) {
        const chunk *c = &o->chunks[ci];
        hc[ci] = dev_chunk{c->offset, c->len, c->param, c->block, (uint32_t)c->block_pos, 0};
    }
    if (!rc) rc = upload(&cs->params, hp, (size_t)o->n_params, err);
    if (!rc) rc = upload(&cs->chunks, hc, (size_t)o->n_chunks, err);
    if (!rc) rc = upload(&cs->blocks, hb, (size_t)o->n_blocks, err);
    if (!rc) rc = upload(&cs->multi, multi, (size_t)cs->n_multi, err);
    if (!rc) rc = upload(&cs->tiles, tiles, (size_t)cs->n_tiles, err);
    free(hp);
    free(hc);
    free(hb);
    free(multi);
    free(tiles);
    if (rc) return rc;
    CUDA_TRY(cudaMalloc((void **)&cs->consts, ((size_t)o->n_params + 1) * sizeof(dev_consts)), err);
    CUDA_TRY(cudaMallocHost((void **)&cs->consts_host, ((size_t)o->n_params + 1) * sizeof(dev_consts)), err);
    CUDA_TRY(cudaMallocHost((void **)&cs->params_host, ((size_t)o->n_params + 1) * sizeof(dev_param)), err);
    CUDA_TRY(cudaMalloc((void **)&cs->sel, ((size_t)o->n_blocks + 1) * sizeof(sel_state)), err);
    CUDA_TRY(cudaMalloc((void **)&cs->stash_count, ((size_t)o->n_blocks + 1) * sizeof(unsigned long long)), err);
    CUDA_TRY(cudaMalloc((void **)&cs->hist, ((size_t)cs->n_multi + 1) * HIST_BINS * sizeof(uint32_t)), err);
    CUDA_TRY(cudaMalloc((void **)&cs->stash, ((size_t)stash_total + 1) * sizeof(stash_entry)), err);
    cs->report_bytes = sizeof(step_report) + (size_t)o->n_chunks * (2 * sizeof(long long) + sizeof(double));
    CUDA_TRY(cudaMalloc(&cs->report, cs->report_bytes), err);
    CUDA_TRY(cudaMallocHost(&cs->report_host, cs->report_bytes), err);
    if (!(cs->rc = (rule_consts *)malloc(((size_t)o->n_params + 1) * sizeof(rule_consts))))
        return mofo_errf(err, MOFO_ENOMEM, "step: out of memory");
    o->arrays_moved = 0;
    /* the uploads above went on the legacy default stream, which a caller's non-blocking stream does
     * not wait for */
    CUDA_TRY(cudaDeviceSynchronize(), err);
    return 0;
}

static step_args args_of(const mofo_optim *o, const cuda_step *cs) {
    char *r = (char *)cs->report;
    size_t n = (size_t)o->n_chunks;
    step_args a;
    memset(&a, 0, sizeof a);
    a.params = cs->params;
    a.consts = cs->consts;
    a.chunks = cs->chunks;
    a.blocks = cs->blocks;
    a.sel = cs->sel;
    a.hist = cs->hist;
    a.stash = cs->stash;
    a.stash_count = cs->stash_count;
    a.report = (step_report *)r;
    a.chunk_updated = (long long *)(r + sizeof(step_report));
    a.chunk_newly = a.chunk_updated + n;
    a.chunk_sq = (double *)(a.chunk_newly + n);
    a.n_blocks = o->n_blocks;
    a.ties_keep = o->opt.ties == MOFO_TIES_KEEP;
    a.stochastic = o->opt.stochastic_rounding != 0;
    a.stream = (cudaStream_t)o->cuda_stream;
    return a;
}

/* The launches of one step (nothing waits). */
static int launch_step(const mofo_optim *o, const cuda_step *cs, const step_args &a, mofo_err *err) {
    const mofo_rule r = o->opt.rule;
    const mofo_filter f = o->opt.filter;
    const int last = o->opt.ties == MOFO_TIES_KEEP ? LAST_LEVEL_KEEP : LAST_LEVEL_EXACT;
    CUDA_TRY(cudaMemsetAsync(cs->report, 0, cs->report_bytes, a.stream), err);
    CUDA_TRY(cudaMemsetAsync(cs->stash_count, 0, ((size_t)o->n_blocks + 1) * sizeof(unsigned long long), a.stream), err);
    CUDA_TRY(cudaMemsetAsync(cs->hist, 0, ((size_t)cs->n_multi + 1) * HIST_BINS * sizeof(uint32_t), a.stream), err);
    launch_reset(a);
    launch_scan(r, f, a, o->n_chunks, 0);
    launch_find(a, cs->multi, cs->n_multi, 0, 0);
    for (int l = 1; l <= last && cs->n_multi; l++) {
        launch_scan(r, f, a, o->n_chunks, l);
        launch_find(a, cs->multi, cs->n_multi, l, 0);
    }
    launch_apply(r, f, a, o->n_chunks);
    for (int l = 1; l <= last && cs->n_multi; l++) {
        launch_stash_hist(a, cs->tiles, cs->n_tiles, l);
        launch_find(a, cs->multi, cs->n_multi, l, 1);
    }
    launch_stash_apply(a, cs->tiles, cs->n_tiles);
    CUDA_TRY(cudaGetLastError(), err);
    return 0;
}

/* The refusal: names the first non-finite gradient entry, read from the device. */
static int refuse(const mofo_optim *o, unsigned long long first_bad, mofo_err *err) {
    const chunk *c = &o->chunks[first_bad >> 20];
    const param_state *p = &o->params[c->param];
    int64_t i = c->offset + (int64_t)(first_bad & ((1u << 20) - 1));
    float value;
    if (p->bf16) {
        uint16_t bits;
        CUDA_TRY(cudaMemcpy(&bits, (const uint16_t *)p->grad + i, 2, cudaMemcpyDeviceToHost), err);
        uint32_t u = (uint32_t)bits << 16;
        memcpy(&value, &u, 4);
    } else {
        CUDA_TRY(cudaMemcpy(&value, p->grad + i, 4, cudaMemcpyDeviceToHost), err);
    }
    return mofo_refuse_nonfinite(o, c->param, i, value, err);
}

int mofo_cuda_step(mofo_optim *o, double lr, mofo_err *err) {
    if (!o->cuda) {
        if (!(o->cuda = (cuda_step *)calloc(1, sizeof(cuda_step))))
            return mofo_errf(err, MOFO_ENOMEM, "step: out of memory");
        int rc = build_tables(o, o->cuda, err);
        if (rc) {
            mofo_cuda_free_step(o);
            return rc;
        }
    }
    cuda_step *cs = o->cuda;
    const step_args a = args_of(o, cs);
    const int64_t t = o->step + 1;
    mofo_step_consts(o, lr, t, cs->rc);
    for (int i = 0; i < o->n_params; i++)
        cs->consts_host[i] = dev_consts{cs->rc[i], random_base(o->opt.seed, t, i), random_base(o->opt.seed ^ SR_SALT, t, i)};
    CUDA_TRY(cudaMemcpyAsync(cs->consts, cs->consts_host, (size_t)o->n_params * sizeof(dev_consts), cudaMemcpyHostToDevice,
                             a.stream), err);
    if (o->arrays_moved) { /* the previous step has finished with the pinned table: it waited */
        param_table(o, cs->params_host);
        CUDA_TRY(cudaMemcpyAsync(cs->params, cs->params_host, (size_t)o->n_params * sizeof(dev_param),
                                 cudaMemcpyHostToDevice, a.stream), err);
        o->arrays_moved = 0;
    }
    int rc = launch_step(o, cs, a, err);
    if (rc) return rc;
    CUDA_TRY(cudaMemcpyAsync(cs->report_host, cs->report, cs->report_bytes, cudaMemcpyDeviceToHost, a.stream), err);
    CUDA_TRY(cudaStreamSynchronize(a.stream), err);

    const step_report *rep = (const step_report *)cs->report_host;
    if (rep->nonfinite) return refuse(o, rep->first_bad, err);
    const size_t n = (size_t)o->n_chunks;
    const long long *updated = (const long long *)((const char *)cs->report_host + sizeof(step_report));
    const long long *newly = updated + n;
    const double *sq = (const double *)(newly + n);
    for (int b = 0; b < o->n_blocks; b++) o->blocks[b].updated = 0;
    for (int ci = 0; ci < o->n_chunks; ci++) {
        chunk *c = &o->chunks[ci];
        c->updated = updated[ci];
        c->newly = newly[ci];
        c->sq_update = sq[ci];
        if (c->block >= 0) o->blocks[c->block].updated += c->updated;
    }
    o->step = t;
    mofo_gather_stats(o);
    return 0;
}
