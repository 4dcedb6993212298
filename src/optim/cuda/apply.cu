/* Pass 2 of the CUDA step, the only pass over the data that writes: for every entry the new moments
 * (m, v), the decayed weight, and the update where the entry moves: every entry of a dense
 * parameter, and in a filtered block the entries classify() moves. Entries still pending (their
 * block's selection continues on the stash) are decayed only and appended to the stash with the
 * update they would get. Per chunk: entries moved, the sum of their squared updates, coverage. */
#include "launch.h"

/* Sets the coverage bits of the warp's 32 consecutive entries from first on where `moved`; returns,
 * in lane 0, how many were not set before. */
__device__ __forceinline__ long long mark_warp(unsigned long long *touched, int64_t first, bool moved) {
    const unsigned mask = __ballot_sync(0xFFFFFFFFu, moved);
    if (!mask || (threadIdx.x & 31)) return 0;
    long long newly = 0;
    const int shift = (int)(first & 63);
    unsigned long long *word = touched + (first >> 6);
    const unsigned long long lo = (unsigned long long)mask << shift;
    if (lo & ~load_relaxed(word)) newly += __popcll(lo & ~atomicOr(word, lo));
    const unsigned long long hi = shift > 32 ? (unsigned long long)mask >> (64 - shift) : 0;
    /* the next word exists only where an entry of this warp lies in it */
    if (hi && (hi & ~load_relaxed(word + 1))) newly += __popcll(hi & ~atomicOr(word + 1, hi));
    return newly;
}

/* Appends the warp's pending entries to block b's stash region (one atomic per warp). */
__device__ __forceinline__ void stash_warp(const step_args &a, int b, const dev_block &blk, bool pending, uint32_t key,
                                           uint32_t pos, float delta, int ci) {
    const unsigned mask = __ballot_sync(0xFFFFFFFFu, pending);
    if (!mask) return;
    const int lane = threadIdx.x & 31;
    unsigned long long base = 0;
    if (lane == 0) base = atomicAdd(&a.stash_count[b], (unsigned long long)__popc(mask));
    base = __shfl_sync(0xFFFFFFFFu, base, 0);
    if (pending) {
        const unsigned long long at = base + (unsigned long long)__popc(mask & ((1u << lane) - 1u));
        if (at < (unsigned long long)blk.stash_cap) a.stash[blk.stash_off + (long long)at] = stash_entry{key, pos, delta, (uint32_t)ci};
    }
}

/* Sums v over the thread block (every thread gets the sum). */
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T part[BLOCK / 32];
    for (int d = 16; d > 0; d >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, d);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    T s = 0;
    for (int w = 0; w < BLOCK / 32; w++) s += part[w];
    __syncthreads();
    return s;
}

/* One thread block per chunk; the entries go in rounds of BLOCK so that a warp covers 32
 * consecutive entries (for the coverage bits and the stash). */
template <mofo_rule R, mofo_filter F>
__global__ void __launch_bounds__(BLOCK) k_apply(step_args a) {
    if (a.report->nonfinite) return;
    const int ci = blockIdx.x;
    const dev_chunk c = a.chunks[ci];
    const dev_param p = a.params[c.param];
    const dev_consts k = a.consts[c.param];
    const bool filtered = c.block >= 0;
    sel_state s = {};
    dev_block blk = {};
    if (filtered) {
        s = a.sel[c.block];
        blk = a.blocks[c.block];
    }
    long long moved = 0, newly = 0;
    double sq = 0;
    for (int64_t round = 0; round < c.len; round += BLOCK) {
        const int64_t j = round + threadIdx.x, i = c.offset + j;
        const uint32_t pos = c.block_pos + (uint32_t)j;
        int fate = SEL_SKIP;
        uint32_t key = 0;
        float delta = 0;
        if (j < c.len) {
            const float g = load_grad(p, i);
            float m = p.m[i], v = R == MOFO_RULE_ADAMW ? p.v[i] : 0.0f;
            const rule_out r = rule_entry(R, 1, &k.k, g, &m, &v);
            p.m[i] = m;
            if (R == MOFO_RULE_ADAMW) p.v[i] = v;
            delta = r.delta;
            float w = load_weight(p, i) * k.k.decay;
            if (filtered) {
                key = key_entry(F, g, r.mom, delta, k.rbase, i);
                fate = classify(s, key, ~pos);
            } else {
                fate = SEL_MOVE;
            }
            if (fate == SEL_MOVE) {
                w = w + delta;
                moved++;
                sq += (double)delta * delta;
            }
            store_weight(p, k, i, w, a.stochastic);
        }
        if (p.touched) newly += mark_warp(p.touched, c.offset + round + (threadIdx.x & ~31), fate == SEL_MOVE);
        if (filtered) stash_warp(a, c.block, blk, fate == SEL_PENDING, key, pos, delta, ci);
    }
    moved = block_sum(moved);
    newly = block_sum(newly);
    sq = block_sum(sq);
    if (threadIdx.x == 0) {
        a.chunk_updated[ci] = moved;
        a.chunk_newly[ci] = newly;
        a.chunk_sq[ci] = sq;
    }
}

template <mofo_rule R, mofo_filter F>
static void apply_instance(const step_args &a, int n_chunks) {
    KERNEL_LAUNCH_ON(n_chunks, BLOCK, a.stream, (k_apply<R, F>))(a);
}

void launch_apply(mofo_rule r, mofo_filter f, const step_args &a, int n_chunks) {
    if (n_chunks > 0) CUDA_DISPATCH(apply_instance, r, f, a, n_chunks);
}
