/* Packing byte flags (0 or 1) into bit masks, for the step's tiles: which entries moved, which wait
 * for the exact threshold, which keys lie inside the bracket. */
#ifndef MOFO_OPTIM_FLAGS_H
#define MOFO_OPTIM_FLAGS_H

#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

/* Packs n flags into words[(n+63)/64], bit i of word w for flags[64w + i]; unused bits zero. With
 * AVX2, 32 flags per compare-and-movemask (the portable loop cost pass 2 about 6% of its time). */
static inline void pack_flags(const uint8_t *flags, int64_t n, uint64_t *words) {
    int64_t w = 0;
#ifdef __AVX2__
    const __m256i zero = _mm256_setzero_si256();
    for (; (w + 1) * 64 <= n; w++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(flags + 64 * w));
        __m256i b = _mm256_loadu_si256((const __m256i *)(flags + 64 * w + 32));
        uint32_t ma = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(a, zero));
        uint32_t mb = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(b, zero));
        words[w] = ma | (uint64_t)mb << 32;
    }
#endif
    for (; w * 64 < n; w++) {
        uint64_t mask = 0;
        int64_t base = w * 64, take = n - base < 64 ? n - base : 64;
        if (take == 64) {
            for (int q = 0; q < 8; q++) {
                uint64_t bytes;
                memcpy(&bytes, flags + base + 8 * q, 8);
                mask |= ((bytes * 0x0102040810204080ull) >> 56) << (8 * q);
            }
        } else {
            for (int64_t t = 0; t < take; t++) mask |= (uint64_t)flags[base + t] << t;
        }
        words[w] = mask;
    }
}

#endif
