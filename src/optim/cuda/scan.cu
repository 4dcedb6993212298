/* The read-only passes of the CUDA step (see layout.h for the levels of the selection):
 *   level 0, pass 1: every gradient checked for NaN and infinity (the step is refused before
 *       anything is written); the top digit of the key of every entry of a block of several chunks
 *       counted into its global histogram; a block of one chunk (<= MOFO_CHUNK entries) selected
 *       completely by its thread block, level after level over its own entries, histograms in
 *       shared memory;
 *   levels >= 1: for blocks of several chunks whose pending entries are too many for the stash,
 *       the next digit of the pending entries;
 * and the find kernel that fixes a level of those blocks from the global histograms. */
#include "launch.h"
#include "select.cuh"

/* Adds the level's digit of each pending entry of chunk ci to hist (shared). With CHECK, also
 * records every NaN or infinite gradient in the report. */
template <mofo_rule R, mofo_filter F, bool CHECK>
__device__ void count_chunk(const step_args &a, int ci, const dev_chunk &c, const sel_state &s, int level, uint32_t *hist) {
    const dev_param p = a.params[c.param];
    const dev_consts k = a.consts[c.param];
#pragma unroll 4
    for (int64_t j = threadIdx.x; j < c.len; j += BLOCK) {
        const int64_t i = c.offset + j;
        const float g = load_grad(p, i);
        if (CHECK && is_nonfinite(g)) {
            atomicOr(&a.report->nonfinite, 1u);
            atomicMin(&a.report->first_bad, (unsigned long long)ci << 20 | (unsigned long long)j);
        }
        const uint32_t key = entry_key<R, F>(p, k, i, g), npos = ~(c.block_pos + (uint32_t)j);
        if (classify(s, key, npos) == SEL_PENDING) atomicAdd(&hist[level_digit(level, key, npos)], 1u);
    }
}

/* A dense chunk in pass 1: its gradients checked. */
__device__ void check_chunk(const step_args &a, int ci, const dev_chunk &c) {
    const dev_param p = a.params[c.param];
    for (int64_t j = threadIdx.x; j < c.len; j += BLOCK)
        if (is_nonfinite(load_grad(p, c.offset + j))) {
            atomicOr(&a.report->nonfinite, 1u);
            atomicMin(&a.report->first_bad, (unsigned long long)ci << 20 | (unsigned long long)j);
        }
}

/* One thread block per chunk. */
template <mofo_rule R, mofo_filter F>
__global__ void __launch_bounds__(BLOCK) k_scan(step_args a, int level) {
    __shared__ uint32_t hist[HIST_BINS];
    __shared__ sel_state st;
    const int ci = blockIdx.x;
    const dev_chunk c = a.chunks[ci];
    if (level > 0 && a.report->nonfinite) return;
    if (c.block < 0) {
        if (level == 0) check_chunk(a, ci, c);
        return;
    }
    const dev_block b = a.blocks[c.block];
    if (level > 0 && b.hist_slot < 0) return;
    if (threadIdx.x == 0) st = a.sel[c.block];
    __syncthreads();
    if (level > 0 && (st.done || st.stash || st.last != level - 1)) return; /* not counted from the data now */

    if (b.hist_slot >= 0) { /* a block of several chunks: this chunk's share of one level */
        zero_hist(hist, level_bins(level));
        __syncthreads();
        if (level == 0) count_chunk<R, F, true>(a, ci, c, st, level, hist);
        else count_chunk<R, F, false>(a, ci, c, st, level, hist);
        __syncthreads();
        flush_hist(hist, a.hist + (size_t)b.hist_slot * HIST_BINS, level_bins(level));
        return;
    }
    /* a block of one chunk (level 0): every level here, until its selection is done */
    for (int l = 0; !st.done; l++) {
        zero_hist(hist, level_bins(l));
        __syncthreads();
        if (l == 0) count_chunk<R, F, true>(a, ci, c, st, l, hist);
        else count_chunk<R, F, false>(a, ci, c, st, l, hist);
        __syncthreads();
        sel_advance(&st, l, hist, 0, a.ties_keep);
    }
    if (threadIdx.x == 0) a.sel[c.block] = st;
}

template <mofo_rule R, mofo_filter F>
static void scan_instance(const step_args &a, int n_chunks, int level) {
    KERNEL_LAUNCH_ON(n_chunks, BLOCK, a.stream, (k_scan<R, F>))(a, level);
}

void launch_scan(mofo_rule r, mofo_filter f, const step_args &a, int n_chunks, int level) {
    if (n_chunks > 0) CUDA_DISPATCH(scan_instance, r, f, a, n_chunks, level);
}

/* One thread block per block of several chunks. */
__global__ void __launch_bounds__(BLOCK) k_find(step_args a, const int *multi, int level, int from_stash) {
    if (a.report->nonfinite) return;
    const int b = multi[blockIdx.x];
    sel_state *st = &a.sel[b];
    const sel_state s = *st;
    if (s.last != level - 1 || (level > 0 && (s.done || s.stash != from_stash))) return;
    uint32_t *hist = a.hist + (size_t)a.blocks[b].hist_slot * HIST_BINS;
    sel_advance(st, level, hist, a.blocks[b].stash_cap, a.ties_keep);
    zero_hist(hist, level_bins(level)); /* ready for the next level */
}

void launch_find(const step_args &a, const int *multi, int n_multi, int level, int from_stash) {
    if (n_multi > 0) KERNEL_LAUNCH_ON(n_multi, BLOCK, a.stream, k_find)(a, multi, level, from_stash);
}

__global__ void k_reset(step_args a) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b == 0) *a.report = step_report{0, 0, ~0ull};
    if (b < a.n_blocks) a.sel[b] = sel_state{a.blocks[b].k, 0, 0, -1, 0, 0, 0};
}

void launch_reset(const step_args &a) { KERNEL_LAUNCH_ON((a.n_blocks + BLOCK) / BLOCK, BLOCK, a.stream, k_reset)(a); }
