/* The engine's matrix products (src/model/blas.c): the choice of OpenBLAS core from the CPU's
 * features, and every core this CPU can run against a naive triple loop in double precision. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "backend/blas.h"

static void test_decision(void) {
    const mofo_cpu_features none = {false, false}, avx2 = {true, false}, avx512 = {true, true};
    const struct {
        const mofo_cpu_features *f;
        const char *chosen, *expect; /* expect NULL: keep OpenBLAS's choice */
    } CASES[] = {
        {&none, "Prescott", NULL},      {&none, "Core2", NULL},
        {&avx2, "Prescott", "Haswell"}, {&avx2, "Sandybridge", "Haswell"}, {&avx2, "Haswell", NULL},
        {&avx2, "Zen", NULL},           {&avx512, "Prescott", "SkylakeX"},  {&avx512, "Haswell", "SkylakeX"},
        {&avx512, "Zen", "SkylakeX"},   {&avx512, "SkylakeX", NULL},        {&avx512, "Cooperlake", NULL},
        {&avx512, "SapphireRapids", NULL}, {&avx512, "unknown", "SkylakeX"}, {&avx2, "", "Haswell"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const char *got = mofo_blas_core_for(CASES[i].f, CASES[i].chosen);
        int same = got == CASES[i].expect || (got && CASES[i].expect && strcmp(got, CASES[i].expect) == 0);
        CHECK(same, "case %zu (avx2 %d avx512 %d, OpenBLAS chose %s): %s, expected %s", i, CASES[i].f->avx2_fma,
              CASES[i].f->avx512, CASES[i].chosen, got ? got : "keep", CASES[i].expect ? CASES[i].expect : "keep");
    }
    CHECK(mofo_blas_core_width("haswell") == MOFO_VEC_AVX2, "core names are case-insensitive");
    CHECK(mofo_blas_core_width("COOPERLAKE") == MOFO_VEC_AVX512, "Cooperlake is AVX-512");
    CHECK(mofo_blas_core_width("Prescott") == MOFO_VEC_NARROW, "Prescott is SSE3");
    CHECK(mofo_blas_core_width(NULL) == MOFO_VEC_NARROW, "no name");
    CHECK(mofo_blas_force_core("NoSuchCore") == -1, "an unknown core is refused");
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1 << 24))) * 2 - 1;
}

/* C (M,N) = alpha op(A) op(B) + beta C against a double-precision loop. The error of each entry is
 * measured against sum_k |a_ik b_kj| (the scale of fp32 rounding in a K-term dot product); returns
 * the largest such ratio. */
static double gemm_err(bool ta, bool tb, int M, int N, int K, float alpha, float beta, int pad) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int ra = ta ? K : M, rb = tb ? N : K;
    float *A = malloc(sizeof(float) * ra * lda), *B = malloc(sizeof(float) * rb * ldb),
          *C = malloc(sizeof(float) * M * ldc), *C0 = malloc(sizeof(float) * M * ldc);
    for (int i = 0; i < ra * lda; i++) A[i] = frand();
    for (int i = 0; i < rb * ldb; i++) B[i] = frand();
    for (int i = 0; i < M * ldc; i++) C0[i] = C[i] = frand();
    mofo_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b, mag += fabs(a * b);
            }
            double ref = alpha * s + beta * (double)C0[i * ldc + j];
            double scale = fabs(alpha) * mag + fabs(beta * (double)C0[i * ldc + j]) + 1e-30;
            double e = fabs((double)C[i * ldc + j] - ref) / scale;
            if (e > worst) worst = e;
        }
    /* the padding past each row must be untouched */
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            if (C[i * ldc + j] != C0[i * ldc + j]) worst = INFINITY;
    free(A), free(B), free(C), free(C0);
    return worst;
}

/* Bound on gemm_err: measured up to 2.5e-7 here (AMD EPYC family 26, every core, these shapes);
 * 1e-6 is within 10x of that and far below a wrong product (error ~1). */
#define GEMM_TOL 1e-6

static void test_products(const char *core) {
    /* the engine's odd sizes: a vocabulary of 261, head dims, 1-row products of generation (and
     * 1-column ones: both go to sgemv) */
    static const int SHAPES[][3] = {{1, 1, 1},     {1, 261, 128}, {7, 5, 3},      {17, 33, 65},  {64, 261, 128},
                                    {128, 96, 32}, {33, 128, 384}, {100, 300, 77}, {50, 1, 40},   {1, 384, 128},
                                    {2, 1, 3}};
    double worst = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            float alpha = s % 2 ? 1.0f : 0.37f, beta = s % 3 == 0 ? 0.0f : s % 3 == 1 ? 1.0f : -0.5f;
            double e = gemm_err(ta, tb, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], alpha, beta, (int)(s % 3));
            CHECK(e <= GEMM_TOL, "%s: %dx%dx%d trans %d%d: error %.3g of sum|a b|", core, SHAPES[s][0],
                  SHAPES[s][1], SHAPES[s][2], ta, tb, e);
            if (e > worst) worst = e;
        }
    printf("%-10s worst error %.3g of sum|a b|\n", core, worst);
}

int main(void) {
    test_decision();
    /* the engine's own choice first (what mofo_sgemm's first call selects) */
    const char *env = getenv("OPENBLAS_CORETYPE");
    char first[32];
    snprintf(first, sizeof first, "%s", mofo_blas_core());
    printf("kernel: %s\n", mofo_blas_kernel());
    mofo_cpu_features f = mofo_cpu_detect();
    mofo_vec_width have = f.avx512 ? MOFO_VEC_AVX512 : f.avx2_fma ? MOFO_VEC_AVX2 : MOFO_VEC_NARROW;
    if (env) {
        CHECK(strcasecmp(first, env) == 0, "OPENBLAS_CORETYPE=%s is respected (core %s)", env, first);
        CHECK(strstr(mofo_blas_kernel(), "OPENBLAS_CORETYPE") != NULL, "the kernel says why: %s", mofo_blas_kernel());
    } else {
        CHECK(mofo_blas_core_width(first) == have, "the chosen core %s uses the CPU's widest vectors", first);
    }
    test_products(first);
    /* the portable path and every wider one the CPU runs */
    const char *cores[] = {"Prescott", "Haswell", "SkylakeX"};
    for (int i = 0; i < 3; i++) {
        if (mofo_blas_core_width(cores[i]) > have) continue;
        CHECK(mofo_blas_force_core(cores[i]) == 0, "forcing %s", cores[i]);
        CHECK(strcasecmp(mofo_blas_core(), cores[i]) == 0, "core now %s, expected %s", mofo_blas_core(), cores[i]);
        test_products(cores[i]);
    }
    /* the decision applied where OpenBLAS had chosen its portable core (as on a CPU it does not know) */
    if (mofo_blas_force_core("Prescott") == 0) {
        mofo_blas_select_for_cpu();
        CHECK(mofo_blas_core_width(mofo_blas_core()) == have, "from Prescott the selection moved to %s",
              mofo_blas_core());
        if (have != MOFO_VEC_NARROW)
            CHECK(strstr(mofo_blas_kernel(), "selected from CPU features; OpenBLAS chose Prescott") != NULL, "%s",
                  mofo_blas_kernel());
        printf("from Prescott: %s\n", mofo_blas_kernel());
    }
    return CHECK_DONE();
}
