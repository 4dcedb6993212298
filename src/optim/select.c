#include "select.h"

uint32_t mofo_hist_find(const uint32_t *hist, int bits, int64_t k, int64_t *above) {
    int64_t acc = 0;
    for (int64_t b = ((int64_t)1 << bits) - 1; b >= 0; b--) {
        if (acc + hist[b] >= k) {
            *above = acc;
            return (uint32_t)b;
        }
        acc += hist[b];
    }
    *above = acc; /* unreachable when 1 <= k <= total */
    return 0;
}

uint32_t mofo_kth_largest(uint32_t *keys, size_t n, size_t k, int low_bits) {
    for (int shift = low_bits > 0 ? (low_bits - 1) / 8 * 8 : -8; shift >= 0; shift -= 8) {
        uint32_t hist[256] = {0};
        for (size_t i = 0; i < n; i++) hist[(keys[i] >> shift) & 0xFF]++;
        int64_t above;
        uint32_t d = mofo_hist_find(hist, 8, (int64_t)k, &above);
        k -= (size_t)above;
        /* keep only the keys in digit d, in place */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (((keys[i] >> shift) & 0xFF) == d) keys[m++] = keys[i];
        n = m;
        if (n == k) break; /* every survivor is selected; they all share the prefix so far */
    }
    /* the survivors share every digit fixed so far and the k-th largest key is the smallest of
       them (all equal when every digit was fixed) */
    uint32_t lo = keys[0];
    for (size_t i = 1; i < n; i++)
        if (keys[i] < lo) lo = keys[i];
    return lo;
}
