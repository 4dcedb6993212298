/* Selection of the k-th largest of n 32-bit keys in O(n): MSB-first radix select. The keys are
 * non-negative float bits (whose unsigned order is the float order) or random draws. */
#ifndef MOFO_SELECT_H
#define MOFO_SELECT_H

#include <stddef.h>
#include <stdint.h>

/* Returns the k-th largest (1 <= k <= n) of keys[0..n), which may differ only in their lowest
 * low_bits bits (32: any keys); keys is overwritten (used as scratch). */
uint32_t mofo_kth_largest(uint32_t *keys, size_t n, size_t k, int low_bits);

/* Given a histogram of the first digit (bins of the top `bits` bits), finds the bin holding the
 * k-th largest key: returns the bin and stores how many keys lie in higher bins in *above. */
uint32_t mofo_hist_find(const uint32_t *hist, int bits, int64_t k, int64_t *above);

#endif
