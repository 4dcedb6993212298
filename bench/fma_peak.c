/* fma_peak.h. 16 accumulators (12 for AVX2, whose 16 registers also hold the operands) cover the
 * FMA latency times the number of FMA ports on current x86 cores (4 cycles x 2 ports = 8 chains). */
#include "fma_peak.h"

#include <omp.h>

#include "cli/timing.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define X4(s) s(0) s(1) s(2) s(3)
#define X12(s) X4(s) s(4) s(5) s(6) s(7) s(8) s(9) s(10) s(11)
#define X16(s) X12(s) s(12) s(13) s(14) s(15)

__attribute__((target("avx512f"))) static float chains512(long iters) {
#define DECL(j) __m512 a##j = _mm512_set1_ps(1.0f + (j) * 1e-3f);
#define STEP(j) a##j = _mm512_fmadd_ps(a##j, b, c);
#define ADD(j) s = _mm512_add_ps(s, a##j);
    X16(DECL)
    __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f), s = _mm512_setzero_ps();
    for (long i = 0; i < iters; i++) { X16(STEP) }
    X16(ADD)
    return _mm512_reduce_add_ps(s);
#undef DECL
#undef STEP
#undef ADD
}

__attribute__((target("avx2,fma"))) static float chains256(long iters) {
#define DECL(j) __m256 a##j = _mm256_set1_ps(1.0f + (j) * 1e-3f);
#define STEP(j) a##j = _mm256_fmadd_ps(a##j, b, c);
#define ADD(j) s = _mm256_add_ps(s, a##j);
    X12(DECL)
    __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f), s = _mm256_setzero_ps();
    for (long i = 0; i < iters; i++) { X12(STEP) }
    X12(ADD)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
#undef DECL
#undef STEP
#undef ADD
}
#endif

static float chains_scalar(long iters) {
    float a[8] = {1, 1.001f, 1.002f, 1.003f, 1.004f, 1.005f, 1.006f, 1.007f}, s = 0;
    for (long i = 0; i < iters; i++)
        for (int j = 0; j < 8; j++) a[j] = a[j] * 0.9999999f + 1e-7f;
    for (int j = 0; j < 8; j++) s += a[j];
    return s;
}

static volatile float fma_sink;

/* GFLOP/s of one kind of chains (0 scalar, 1 AVX2, 2 AVX-512), the best of three runs. */
static double peak_of(int kind, int threads) {
    const long iters = 20000000;
    const double flops_per_iter = kind == 2 ? 16 * 16 * 2 : kind == 1 ? 12 * 8 * 2 : 8 * 2;
    double best = 0;
    float total = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = cli_now();
#pragma omp parallel num_threads(threads)
        {
            float r;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
            r = kind == 2 ? chains512(iters) : kind == 1 ? chains256(iters) : chains_scalar(iters);
#else
            r = chains_scalar(iters);
#endif
#pragma omp atomic
            total += r;
        }
        double g = threads * iters * flops_per_iter / (cli_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    fma_sink = total; /* keeps the chains' results alive */
    return best;
}

double fma_peak_gflops(int threads, const char **isa) {
    int widest = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) widest = 2;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) widest = 1;
#endif
    /* the widest vectors are not always the fastest (AVX-512 split into two halves on Zen 4, or
     * clocked down): the peak is the best of every kind the CPU runs */
    static const char *names[] = {"scalar", "avx2", "avx512"};
    double best = 0;
    for (int kind = widest; kind >= 0 && kind >= widest - 1; kind--) {
        double g = peak_of(kind, threads);
        if (g > best) best = g, *isa = names[kind];
    }
    return best;
}
