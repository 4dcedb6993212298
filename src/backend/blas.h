/* The engine's matrix products: one sgemm entry point, and the choice of OpenBLAS's kernels made from
 * the CPU's features rather than its model number.
 *
 * Why: OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels by CPU model. A model newer than
 * the library falls back to an older core: Debian 12's 0.3.21 runs Prescott (SSE3) kernels on a Xeon
 * of family 6 model 207 (4.6x slower sgemm) and Haswell (AVX2) kernels on an AVX-512 AMD EPYC of
 * family 26. mofo_blas_init() looks at what the CPU can run (AVX2+FMA, AVX-512 F/BW/DQ/VL) and, where
 * OpenBLAS's own choice uses narrower vectors, re-selects its core before the first product. A core
 * OpenBLAS chose that already uses the widest vectors is kept (its blocking is tuned for the CPU), and
 * an OPENBLAS_CORETYPE set by the user is always respected.
 *
 * Threading: mofo_blas_init() and mofo_blas_force_core() must not run while another thread is inside
 * a BLAS call; mofo_sgemm() calls mofo_blas_init() once (pthread_once) before its first product. */
#ifndef MOFO_MODEL_BLAS_H
#define MOFO_MODEL_BLAS_H

#include <stdbool.h>

/* The vector extensions the kernels can use (each one also enabled by the OS). */
typedef struct {
    bool avx2_fma;  /* AVX2 and FMA3 */
    bool avx512;    /* AVX-512 F, BW, DQ and VL (what OpenBLAS's SkylakeX kernels need) */
} mofo_cpu_features;

/* What the kernels of a core use. */
typedef enum { MOFO_VEC_NARROW /* SSE or AVX */, MOFO_VEC_AVX2, MOFO_VEC_AVX512 } mofo_vec_width;

mofo_cpu_features mofo_cpu_detect(void);

/* The vector width of an OpenBLAS core's kernels ("Haswell" -> AVX2; unknown names -> narrow). */
mofo_vec_width mofo_blas_core_width(const char *core);

/* The decision: the core to select on a CPU with `f` where OpenBLAS chose `chosen`, or NULL to keep
 * OpenBLAS's choice (it already uses the widest vectors the CPU has, or the CPU has neither AVX2+FMA
 * nor AVX-512). */
const char *mofo_blas_core_for(const mofo_cpu_features *f, const char *chosen);

/* Applies the decision once per process (unless OPENBLAS_CORETYPE is set). Safe to call many times. */
void mofo_blas_init(void);
/* Applies the decision now, to whatever core is selected (what mofo_blas_init does the first time). */
void mofo_blas_select_for_cpu(void);

/* Selects the named OpenBLAS core now (for tests and benchmarks: "Prescott", "Haswell", "SkylakeX").
 * Returns 0, or -1 where this OpenBLAS cannot switch cores (not a DYNAMIC_ARCH build) or does not
 * know the name. The caller checks that the CPU can run the core. */
int mofo_blas_force_core(const char *core);

/* The library and core in use, and how it was chosen, e.g.
 * "OpenBLAS 0.3.21 SkylakeX (selected from CPU features; OpenBLAS chose Haswell)". */
const char *mofo_blas_kernel(void);
/* The core alone ("SkylakeX"). */
const char *mofo_blas_core(void);

/* C (M,N) = alpha op(A) op(B) + beta C, row-major; op(A) is (M,K), op(B) is (K,N); lda, ldb, ldc
 * are the row strides of A, B and C as stored. */
void mofo_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

#endif
