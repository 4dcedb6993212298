/* The CPU backend: memory is malloc'ed host memory, the layers are cpu_layers.c's, matrix products
 * go through blas.c's sgemm (cpu_layers.c's cpu_gemm rounds their inputs first where asked),
 * element-wise work and reductions are OpenMP loops here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/blas.h"
#include "backend/cpu_layers.h"

static float *cpu_alloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static void cpu_free(float *p) { free(p); }
static void cpu_copy(float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof *dst); }

static void cpu_fill(float *dst, float value, size_t n) {
    if (value == 0.0f && !signbit(value)) {
        memset(dst, 0, n * sizeof *dst);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = value;
}

static void cpu_add(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_scale(float *x, float s, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* Reductions in double over fixed chunks summed in order: the same result on any thread count. */
enum { CHUNKS = 64 };

static double cpu_reduce(const float *x, size_t n, bool squares) {
    double part[CHUNKS];
    size_t per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = (size_t)c * per, hi = lo + per < n ? lo + per : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += squares ? (double)x[i] * x[i] : (double)x[i];
        part[c] = s;
    }
    double s = 0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return s;
}
static double cpu_sum(const float *x, size_t n) { return cpu_reduce(x, n, false); }
static double cpu_sumsq(const float *x, size_t n) { return cpu_reduce(x, n, true); }

static void cpu_distance(const float *a, const float *b, size_t n, double sums[3]) {
    double sq[CHUNKS], bsq[CHUNKS];
    int64_t ch[CHUNKS];
    size_t per = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = (size_t)c * per, hi = lo + per < n ? lo + per : n;
        double s = 0, bs = 0;
        int64_t k = 0;
        for (size_t i = lo; i < hi; i++) {
            double x = (double)b[i] - (double)a[i];
            s += x * x;
            bs += (double)a[i] * a[i];
            uint32_t ua, ub;
            memcpy(&ua, &a[i], 4);
            memcpy(&ub, &b[i], 4);
            k += ua != ub;
        }
        sq[c] = s, bsq[c] = bs, ch[c] = k;
    }
    int64_t changed = 0;
    sums[0] = sums[1] = 0;
    for (int c = 0; c < CHUNKS; c++) sums[0] += sq[c], sums[1] += bsq[c], changed += ch[c];
    sums[2] = (double)changed;
}

static double cpu_penalty_grad(mofo_penalty kind, double reg, const float *theta, const float *theta0, float *g, int64_t n) {
    double pen = 0;
    if (kind == MOFO_PENALTY_L1) {
        for (int64_t i = 0; i < n; i++) {
            float d = theta[i] - theta0[i];
            pen += fabs((double)d);
            g[i] += d > 0 ? (float)reg : d < 0 ? (float)-reg : 0.0f;
        }
        return reg * pen;
    }
    float r2 = (float)(2 * reg);
    for (int64_t i = 0; i < n; i++) {
        float d = theta[i] - theta0[i];
        pen += (double)d * d;
        g[i] += r2 * d;
    }
    return reg * pen;
}

static const char *cpu_failure(void) { return cpu_gemm_failure(); }
static void cpu_close(void) {}
static void cpu_sync(void) {}
static size_t cpu_bytes_in_use(void) { return 0; }

static const mofo_backend CPU = {
    .name = "cpu",
    .host = true,
    .failure = cpu_failure,
    .close = cpu_close,
    .sync = cpu_sync,
    .bytes_in_use = cpu_bytes_in_use,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .add = cpu_add,
    .scale = cpu_scale,
    .sum = cpu_sum,
    .sumsq = cpu_sumsq,
    .penalty_grad = cpu_penalty_grad,
    .distance = cpu_distance,
    .gemm = cpu_gemm,
    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .embed_forward = embed_forward,
    .embed_backward = embed_backward,
    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .rmsnorm_forward = rmsnorm_forward,
    .rmsnorm_backward = rmsnorm_backward,
    .rope_forward = rope_forward,
    .rope_backward = rope_backward,
    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
};

const mofo_backend *mofo_backend_cpu(void) { return &CPU; }
