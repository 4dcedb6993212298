/* Matrix products through OpenBLAS, its core chosen from the CPU's features (blas.h says why). */
#define _POSIX_C_SOURCE 200809L
#include "backend/blas.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* OpenBLAS's DYNAMIC_ARCH entry points (driver/others/dynamic.c): init reads OPENBLAS_CORETYPE and
 * selects a core, quit forgets it. Weak, so that a BLAS without them (a single-core build) leaves the
 * choice to that library. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

mofo_cpu_features mofo_cpu_detect(void) {
    mofo_cpu_features f = {false, false};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init(); /* its checks include the OS's XSAVE state for the wide registers */
    f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#endif
    return f;
}

/* The x86-64 cores of OpenBLAS 0.3.21 whose kernels use AVX2 or AVX-512 (kernel/x86_64/KERNEL.*). */
static const struct {
    const char *name;
    mofo_vec_width width;
} WIDE_CORES[] = {
    {"Haswell", MOFO_VEC_AVX2},     {"Zen", MOFO_VEC_AVX2},          {"Excavator", MOFO_VEC_AVX2},
    {"SkylakeX", MOFO_VEC_AVX512},  {"Cooperlake", MOFO_VEC_AVX512}, {"SapphireRapids", MOFO_VEC_AVX512},
};

mofo_vec_width mofo_blas_core_width(const char *core) {
    for (size_t i = 0; core && i < sizeof WIDE_CORES / sizeof WIDE_CORES[0]; i++)
        if (strcasecmp(core, WIDE_CORES[i].name) == 0) return WIDE_CORES[i].width;
    return MOFO_VEC_NARROW;
}

const char *mofo_blas_core_for(const mofo_cpu_features *f, const char *chosen) {
    mofo_vec_width have = f->avx512 && f->avx2_fma ? MOFO_VEC_AVX512 : f->avx2_fma ? MOFO_VEC_AVX2 : MOFO_VEC_NARROW;
    if (mofo_blas_core_width(chosen) >= have) return NULL;
    return have == MOFO_VEC_AVX512 ? "SkylakeX" : "Haswell";
}

static char kernel_desc[192];

static const char *corename(void) {
    const char *s = openblas_get_corename();
    return s ? s : "unknown";
}

/* "OpenBLAS 0.3.21" from the library's configuration string. */
static void library_name(char *out, size_t n) {
    const char *cfg = openblas_get_config();
    int words = 0;
    size_t i = 0;
    for (; cfg && cfg[i] && i + 1 < n; i++) {
        if (cfg[i] == ' ' && ++words == 2) break;
        out[i] = cfg[i];
    }
    out[i] = 0;
    if (!i) snprintf(out, n, "OpenBLAS");
}

static void describe(const char *how) {
    char lib[64];
    library_name(lib, sizeof lib);
    snprintf(kernel_desc, sizeof kernel_desc, "%s %s (%s)", lib, corename(), how);
}

/* Re-runs OpenBLAS's selection with OPENBLAS_CORETYPE=core, the caller's environment restored. */
static void switch_core(const char *core) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    char *saved = user ? strdup(user) : NULL;
    setenv("OPENBLAS_CORETYPE", core, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    if (saved) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    free(saved);
}

int mofo_blas_force_core(const char *core) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return -1;
    /* an unknown name makes OpenBLAS fall back to Prescott with a warning on stderr */
    if (strcasecmp(core, "Prescott") != 0 && mofo_blas_core_width(core) == MOFO_VEC_NARROW) return -1;
    char prev[32];
    snprintf(prev, sizeof prev, "%s", corename());
    switch_core(core);
    if (strcasecmp(corename(), core) != 0) { /* a core this build lacks: back to the one before */
        switch_core(prev);
        return -1;
    }
    describe("forced");
    return 0;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void mofo_blas_select_for_cpu(void) {
    char chosen[32];
    snprintf(chosen, sizeof chosen, "%s", corename());
    mofo_cpu_features f = mofo_cpu_detect();
    const char *core = mofo_blas_core_for(&f, chosen);
    if (core && mofo_blas_force_core(core) == 0) {
        char how[96];
        snprintf(how, sizeof how, "selected from CPU features; OpenBLAS chose %s", chosen);
        describe(how);
    } else {
        describe(core ? "OpenBLAS's choice; it could not switch cores" : "OpenBLAS's choice");
    }
}

static void blas_init(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (!user) {
        mofo_blas_select_for_cpu();
        return;
    }
    /* the user's choice stands; say what it costs */
    mofo_cpu_features f = mofo_cpu_detect();
    const char *core = mofo_blas_core_for(&f, corename());
    char how[96];
    snprintf(how, sizeof how, "OPENBLAS_CORETYPE%s%s%s", core ? "; this CPU runs the wider " : "", core ? core : "",
             core ? " kernels" : "");
    describe(how);
}

void mofo_blas_init(void) { pthread_once(&init_once, blas_init); }

const char *mofo_blas_kernel(void) {
    mofo_blas_init();
    return kernel_desc;
}

const char *mofo_blas_core(void) {
    mofo_blas_init();
    return corename();
}

void mofo_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    mofo_blas_init();
    /* One row or one column (generation's decode steps): a matrix-vector product reads the matrix
     * once where sgemm would first copy it into its packed layout (55% of a decode step's time). */
    if (M == 1) { /* c (N) = alpha op(B)^T a + beta c; a's entries are lda apart when A is stored (K,1) */
        cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? N : K, trans_b ? K : N, alpha, B,
                    ldb, A, trans_a ? lda : 1, beta, C, 1);
        return;
    }
    if (N == 1) { /* c (M) = alpha op(A) b + beta c; b's entries are ldb apart when B is stored (K,1) */
        cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_a ? K : M, trans_a ? M : K, alpha, A,
                    lda, B, trans_b ? 1 : ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}
