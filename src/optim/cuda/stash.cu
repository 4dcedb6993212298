/* The stash of the CUDA step: after pass 2, the remaining levels of the selection of the blocks
 * whose pending entries went to the stash (histograms over the stash alone, then launch_find), and
 * the final moves of the stashed entries that are selected. */
#include "launch.h"
#include "select.cuh"

/* One thread block per stash tile: the digit of `level` of each pending stashed entry. */
__global__ void __launch_bounds__(BLOCK) k_stash_hist(step_args a, const stash_tile *tiles, int level) {
    __shared__ uint32_t hist[HIST_BINS];
    if (a.report->nonfinite) return;
    const stash_tile t = tiles[blockIdx.x];
    const sel_state s = a.sel[t.block];
    const dev_block blk = a.blocks[t.block];
    if (!s.stash || s.done || s.last != level - 1) return;
    unsigned long long n = a.stash_count[t.block];
    if (n > (unsigned long long)blk.stash_cap) n = (unsigned long long)blk.stash_cap;
    if (t.start >= n) return;
    const unsigned long long end = t.start + STASH_TILE < n ? t.start + STASH_TILE : n;
    zero_hist(hist, level_bins(level));
    __syncthreads();
    for (unsigned long long e = t.start + threadIdx.x; e < end; e += BLOCK) {
        const stash_entry x = a.stash[blk.stash_off + (long long)e];
        if (classify(s, x.key, ~x.pos) == SEL_PENDING) atomicAdd(&hist[level_digit(level, x.key, ~x.pos)], 1u);
    }
    __syncthreads();
    flush_hist(hist, a.hist + (size_t)blk.hist_slot * HIST_BINS, level_bins(level));
}

void launch_stash_hist(const step_args &a, const stash_tile *tiles, int n_tiles, int level) {
    if (n_tiles > 0) KERNEL_LAUNCH_ON(n_tiles, BLOCK, a.stream, k_stash_hist)(a, tiles, level);
}

/* One thread block per stash tile: the stashed entries that are selected move (their weights were
 * decayed in pass 2). */
__global__ void __launch_bounds__(BLOCK) k_stash_apply(step_args a, const stash_tile *tiles) {
    if (a.report->nonfinite) return;
    const stash_tile t = tiles[blockIdx.x];
    const sel_state s = a.sel[t.block];
    const dev_block blk = a.blocks[t.block];
    if (!s.stash) return;
    unsigned long long n = a.stash_count[t.block];
    if (n > (unsigned long long)blk.stash_cap) n = (unsigned long long)blk.stash_cap;
    const unsigned long long end = t.start + STASH_TILE < n ? t.start + STASH_TILE : n;
    for (unsigned long long e = t.start + threadIdx.x; e < end; e += BLOCK) {
        const stash_entry x = a.stash[blk.stash_off + (long long)e];
        if (classify(s, x.key, ~x.pos) != SEL_MOVE) continue;
        const dev_chunk c = a.chunks[x.chunk];
        const dev_param p = a.params[c.param];
        const int64_t i = c.offset + (int64_t)(x.pos - c.block_pos);
        store_weight(p, a.consts[c.param], i, load_weight(p, i) + x.delta, a.stochastic);
        atomicAdd((unsigned long long *)&a.chunk_updated[x.chunk], 1ull);
        atomicAdd(&a.chunk_sq[x.chunk], (double)x.delta * x.delta);
        if (p.touched) {
            const unsigned long long bit = 1ull << (i & 63);
            if (!(atomicOr(&p.touched[i >> 6], bit) & bit)) atomicAdd((unsigned long long *)&a.chunk_newly[x.chunk], 1ull);
        }
    }
}

void launch_stash_apply(const step_args &a, const stash_tile *tiles, int n_tiles) {
    if (n_tiles > 0) KERNEL_LAUNCH_ON(n_tiles, BLOCK, a.stream, k_stash_apply)(a, tiles);
}
