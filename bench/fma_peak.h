/* The machine's fp32 FMA peak, measured: independent chains of fused multiply-adds in the vectors the
 * CPU has, on every thread of an OpenMP team at once. */
#ifndef MOFO_BENCH_FMA_PEAK_H
#define MOFO_BENCH_FMA_PEAK_H

/* GFLOP/s (an FMA counts 2) on `threads` threads: the best of three timed runs of the widest
 * vectors and of the next narrower ones; *isa receives the one that won ("avx512", "avx2", "scalar"). */
double fma_peak_gflops(int threads, const char **isa);

#endif
