/* mofo bench gemm: GFLOP/s of the engine's own matrix products beside the machine's FMA peak.
 *
 * For each linear layer of a model, the three products of one training step, as matmul_forward and
 * matmul_backward call them: forward out (N,OC) = inp (N,C) W^T; backward dinp (N,C) = dout (N,OC) W;
 * dW (OC,C) += dout^T inp. A model's GFLOP/s weights each shape by how often a step runs it (L layers,
 * one lm_head). The peak is measured in the same run on the same threads, before and after the products,
 * the better kept (bench/fma_peak.c). With
 * --cores, the same table for each OpenBLAS core this CPU can run, side by side. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/threads.h"
#include "cli/timing.h"
#include "fma_peak.h"
#include "backend/blas.h"

static int64_t threads, reps = 5;
static int json_out, all_cores;

static const arg_spec SPECS[] = {
    {"threads", ARG_INT, &threads, "N", "threads for the products and the peak (default: OpenMP's, usually all cores)"},
    {"reps", ARG_INT, &reps, "R", "timed repetitions per product, the median kept (default 5)"},
    {"cores", ARG_FLAG, &all_cores, NULL, "also time every OpenBLAS core this CPU can run (Prescott, Haswell, SkylakeX)"},
    {"json", ARG_FLAG, &json_out, NULL, "one JSON object"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void bench_gemm_help(FILE *out) {
    args_help(out, "bench gemm", "[--threads N] [--reps R] [--cores] [--json]", SPECS, N_SPECS);
}

typedef struct {
    const char *name;
    int C, OC, count; /* in features, out features, products of this shape per step */
} linear;

typedef struct {
    const char *name;
    int N; /* rows per product: batch x sequence */
    linear lin[5];
} model_shapes;

/* The demo's base (C 128, 4 layers, fused q/k/v and gate/up, vocabulary 261) at its batch 16 x 256;
 * GPT-2 small (C 768, 12 layers, vocabulary 50257) at mofo bench train's B4 T64. */
static const model_shapes MODELS[] = {
    {"demo", 16 * 256,
     {{"qkv", 128, 384, 4}, {"attn_out", 128, 128, 4}, {"gate_up", 128, 768, 4}, {"down", 384, 128, 4},
      {"lm_head", 128, 261, 1}}},
    {"gpt2-124M", 4 * 64,
     {{"qkv", 768, 2304, 12}, {"attn_out", 768, 768, 12}, {"fc", 768, 3072, 12}, {"proj", 3072, 768, 12},
      {"lm_head", 768, 50257, 1}}},
};
#define N_MODELS (int)(sizeof MODELS / sizeof MODELS[0])
#define N_LIN 5

static void fill(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)((seed >> 40) * (1.0 / (1 << 24))) - 0.5f;
    }
}

/* Median seconds of each of the three products of one shape. */
static int time_linear(int N, const linear *l, double sec[3]) {
    size_t C = (size_t)l->C, OC = (size_t)l->OC;
    float *inp = malloc(sizeof(float) * N * C), *w = malloc(sizeof(float) * OC * C),
          *dout = malloc(sizeof(float) * N * OC), *out = malloc(sizeof(float) * N * OC),
          *dinp = malloc(sizeof(float) * N * C), *dw = calloc(OC * C, sizeof(float));
    double *t = malloc(sizeof(double) * (size_t)reps * 3);
    int ok = inp && w && dout && out && dinp && dw && t;
    if (ok) {
        fill(inp, N * C, 1), fill(w, OC * C, 2), fill(dout, N * OC, 3);
        for (int r = -1; r < reps; r++) { /* one warm-up */
            double a = cli_now();
            mofo_sgemm(false, true, N, l->OC, l->C, 1.0f, inp, l->C, w, l->C, 0.0f, out, l->OC);
            double b = cli_now();
            mofo_sgemm(false, false, N, l->C, l->OC, 1.0f, dout, l->OC, w, l->C, 0.0f, dinp, l->C);
            double c = cli_now();
            mofo_sgemm(true, false, l->OC, l->C, N, 1.0f, dout, l->OC, inp, l->C, 1.0f, dw, l->C);
            double d = cli_now();
            if (r >= 0) t[r] = b - a, t[reps + r] = c - b, t[2 * reps + r] = d - c;
        }
        for (int k = 0; k < 3; k++) sec[k] = cli_median(t + k * reps, (int)reps);
    }
    free(inp), free(w), free(dout), free(out), free(dinp), free(dw), free(t);
    return ok ? 0 : -1;
}

/* GFLOP/s of every model's step products on the current core; per shape in `shape` (may be NULL). */
static int time_models(double model_gflops[N_MODELS], double shape[N_MODELS][N_LIN]) {
    for (int mi = 0; mi < N_MODELS; mi++) {
        const model_shapes *ms = &MODELS[mi];
        double flops = 0, sec = 0;
        for (int li = 0; li < N_LIN; li++) {
            const linear *l = &ms->lin[li];
            double s[3], f = 2.0 * ms->N * l->C * l->OC; /* per product */
            if (time_linear(ms->N, l, s)) return -1;
            if (shape) shape[mi][li] = 3 * f / (s[0] + s[1] + s[2]) / 1e9;
            flops += l->count * 3 * f, sec += l->count * (s[0] + s[1] + s[2]);
        }
        model_gflops[mi] = flops / sec / 1e9;
    }
    return 0;
}

int bench_gemm(int argc, char **argv) {
    if (args_parse("bench gemm", argc, argv, SPECS, N_SPECS)) return 2;
    if (threads < 0 || threads > 1024 || reps < 1 || reps > 1000) {
        fprintf(stderr, "mofo bench gemm: --threads must be in 0..1024 and --reps in 1..1000\n");
        return 2;
    }
    int nt = threads ? (int)threads : omp_get_max_threads();
    cli_set_threads(nt);
    mofo_blas_init();
    char kernel[192];
    snprintf(kernel, sizeof kernel, "%s", mofo_blas_kernel());
    const char *isa;
    double peak = fma_peak_gflops(nt, &isa);
    double g[N_MODELS], shape[N_MODELS][N_LIN];
    if (time_models(g, shape)) {
        fprintf(stderr, "mofo bench gemm: out of memory\n");
        return 1;
    }
    /* the clock moves on these machines: the peak is the better of before and after the products */
    const char *isa2;
    double peak2 = fma_peak_gflops(nt, &isa2);
    if (peak2 > peak) peak = peak2, isa = isa2;
    double eff = g[1] / peak;
    if (json_out) {
        printf("{\"threads\": %d, \"kernel\": \"%s\", \"peak_isa\": \"%s\", \"peak_gflops\": %.1f, "
               "\"gflops\": %.1f, \"efficiency\": %.3f, \"demo_gflops\": %.1f, \"shapes\": {",
               nt, kernel, isa, peak, g[1], eff, g[0]);
        for (int mi = 0; mi < N_MODELS; mi++)
            for (int li = 0; li < N_LIN; li++)
                printf("%s\"%s/%s\": %.1f", mi || li ? ", " : "", MODELS[mi].name, MODELS[mi].lin[li].name,
                       shape[mi][li]);
        printf("}}\n");
        return 0;
    }
    printf("mofo bench gemm: %d threads; kernel %s\n", nt, kernel);
    printf("FMA peak measured (%s): %.1f GFLOP/s\n\n", isa, peak);
    printf("%-10s %-9s %7s %6s %6s %6s %9s %8s\n", "model", "product", "N", "C", "OC", "count", "GFLOP/s", "of peak");
    for (int mi = 0; mi < N_MODELS; mi++) {
        for (int li = 0; li < N_LIN; li++) {
            const linear *l = &MODELS[mi].lin[li];
            printf("%-10s %-9s %7d %6d %6d %6d %9.1f %7.0f%%\n", MODELS[mi].name, l->name, MODELS[mi].N, l->C, l->OC,
                   l->count, shape[mi][li], 100 * shape[mi][li] / peak);
        }
        printf("%-10s %-9s %7s %6s %6s %6s %9.1f %7.0f%%\n", MODELS[mi].name, "step", "", "", "", "", g[mi],
               100 * g[mi] / peak);
    }
    if (!all_cores) return 0;
    /* every core the CPU can run, side by side, then back to the engine's choice */
    mofo_cpu_features f = mofo_cpu_detect();
    const char *cores[] = {"Prescott", "Haswell", "Zen", "SkylakeX"};
    char chosen[32];
    snprintf(chosen, sizeof chosen, "%s", mofo_blas_core());
    printf("\n%-10s %14s %14s %8s\n", "core", "demo GFLOP/s", "gpt2 GFLOP/s", "of peak");
    for (int i = 0; i < 4; i++) {
        mofo_vec_width w = mofo_blas_core_width(cores[i]);
        if ((w == MOFO_VEC_AVX2 && !f.avx2_fma) || (w == MOFO_VEC_AVX512 && !f.avx512)) continue;
        if (mofo_blas_force_core(cores[i])) {
            printf("%-10s (this OpenBLAS cannot switch to it)\n", cores[i]);
            continue;
        }
        if (time_models(g, NULL)) return 1;
        printf("%-10s %14.1f %14.1f %7.0f%%\n", cores[i], g[0], g[1], 100 * g[1] / peak);
    }
    mofo_blas_force_core(chosen);
    return 0;
}
