/* pack_flags against a bit-by-bit reference, for every length up to 3 tiles' worth and random
 * flags. Built twice: as the library is (AVX2 where the machine has it) and without AVX2, so both
 * the vector and the portable loop are checked. */
#include <stdlib.h>

#include "check.h"
#include "optim/flags.h"

#if defined(MOFO_TEST_PORTABLE) && defined(__AVX2__)
#error "the portable build of this test must be compiled without AVX2"
#endif

int main(void) {
    uint8_t flags[1600];
    uint64_t words[26], want[26];
    uint64_t x = 99;
    int ok = 1;
    for (int64_t n = 1; n <= 1600 && ok; n++) {
        for (int64_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            flags[i] = (uint8_t)(n % 3 == 0 ? x >> 63 : (x >> 60) == 0); /* half set, or few */
        }
        memset(want, 0, sizeof want);
        for (int64_t i = 0; i < n; i++) want[i / 64] |= (uint64_t)flags[i] << (i % 64);
        memset(words, 0xAB, sizeof words);
        pack_flags(flags, n, words);
        ok = memcmp(words, want, (size_t)(n + 63) / 64 * sizeof *words) == 0;
        CHECK(ok, "n = %lld: packed words differ from the reference", (long long)n);
    }
#ifdef __AVX2__
    printf("pack_flags: the AVX2 loop (and the portable one for the tails)\n");
#else
    printf("pack_flags: the portable loop\n");
#endif
    return CHECK_DONE();
}
