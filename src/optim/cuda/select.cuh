/* Block-wide pieces of the radix select: finding the bin of the k-th largest value in a histogram,
 * advancing a block's sel_state by one level, and moving a shared histogram to the global one. All
 * are called by every thread of a BLOCK-thread block. */
#ifndef MOFO_CUDA_SELECT_CUH
#define MOFO_CUDA_SELECT_CUH

#include "layout.h"

typedef struct find_result {
    uint32_t bin;             /* the bin holding the k-th largest value */
    unsigned long long above; /* values in higher bins */
    unsigned long long count; /* values in that bin */
} find_result;

/* hist (nbins, a multiple of BLOCK): the bin of the k-th largest value, 1 <= k <= total. Thread t
 * sums bins [nbins - (t+1)*seg, nbins - t*seg), a scan over the threads gives the counts above
 * each segment, and the one thread whose segment holds the k-th walks it down. */
__device__ inline find_result block_find(const uint32_t *hist, int nbins, unsigned long long k) {
    __shared__ unsigned long long warp_sum[BLOCK / 32];
    __shared__ find_result out;
    const int t = threadIdx.x, seg = nbins / BLOCK, top = nbins - 1 - t * seg;
    unsigned long long sum = 0;
    for (int j = 0; j < seg; j++) sum += hist[top - j];
    unsigned long long x = sum; /* inclusive scan within the warp */
    for (int d = 1; d < 32; d <<= 1) {
        unsigned long long y = __shfl_up_sync(0xFFFFFFFFu, x, d);
        if ((t & 31) >= d) x += y;
    }
    if ((t & 31) == 31) warp_sum[t >> 5] = x;
    if (t == 0) out = find_result{0, 0, 0};
    __syncthreads();
    for (int w = 0; w < (t >> 5); w++) x += warp_sum[w];
    const unsigned long long before = x - sum;
    if (before < k && k <= x) {
        unsigned long long acc = before;
        for (int j = 0; j < seg; j++) {
            uint32_t h = hist[top - j];
            if (acc + h >= k) {
                out = find_result{(uint32_t)(top - j), acc, h};
                break;
            }
            acc += h;
        }
    }
    __syncthreads();
    find_result r = out;
    __syncthreads(); /* out and warp_sum are reused by the next call */
    return r;
}

/* Fixes level `level` of *st from the histogram of that level's digit over the pending entries.
 * A block becomes done when every pending entry of the chosen bin is selected, at the last key
 * level under MOFO_TIES_KEEP, or at the last position level; it turns to the stash when the chosen
 * bin holds at most stash_cap entries. *st may be in shared or global memory. */
__device__ inline void sel_advance(sel_state *st, int level, const uint32_t *hist, long long stash_cap, int ties_keep) {
    sel_state s = *st;
    find_result f = block_find(hist, level_bins(level), (unsigned long long)s.k_rem);
    if (threadIdx.x == 0) {
        uint32_t bits = f.bin << level_shift(level);
        if (level < 3) s.key_prefix |= bits;
        else s.pos_prefix |= bits;
        s.k_rem -= (long long)f.above;
        s.last = level;
        s.done = (long long)f.count == s.k_rem || level == LAST_LEVEL_EXACT || (level == LAST_LEVEL_KEEP && ties_keep);
        if (!s.done && (long long)f.count <= stash_cap) s.stash = 1;
        *st = s;
    }
    __syncthreads();
}

__device__ inline void zero_hist(uint32_t *hist, int nbins) {
    for (int i = threadIdx.x; i < nbins; i += BLOCK) hist[i] = 0;
}

/* Adds a thread block's shared histogram to the global one. */
__device__ inline void flush_hist(const uint32_t *shared_hist, uint32_t *global_hist, int nbins) {
    for (int i = threadIdx.x; i < nbins; i += BLOCK)
        if (shared_hist[i]) atomicAdd(&global_hist[i], shared_hist[i]);
}

#endif
