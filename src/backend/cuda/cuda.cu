/* The CUDA backend of the operations boundary (backend/backend.h): device memory (plain cudaMalloc,
 * never managed), element-wise work, reductions in double with a fixed order, matrix products
 * through cuBLAS (fp32 with CUBLAS_DEFAULT_MATH, no TF32, unless the product's precision asks for TF32
 * or bf16 inputs), and the table; the layers are layers.cu's.
 * Everything runs on the legacy default stream, in order. tests/test_ops.c checks every operation
 * against naive references, on the simulator (tests/cudasim) in CI and on a GPU where there is one. */
#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/rounding.h"
#include "common.cuh"

extern "C" {
#include "mofo/error.h"
}

/* ---- the sticky failure ---- */

static char failure_msg[512];
static int has_failed;

int cuda_fail(const char *file, int line, const char *call, const char *why) {
    if (!has_failed) snprintf(failure_msg, sizeof failure_msg, "%s:%d: %s failed: %s", file, line, call, why);
    has_failed = 1;
    return 1;
}
int cuda_failed(void) { return has_failed; }
static const char *cuda_failure(void) { return has_failed ? failure_msg : NULL; }

/* ---- scratch ---- */

static void *scratch[N_SCRATCH];
static size_t scratch_bytes[N_SCRATCH];

void *cuda_scratch(scratch_slot slot, size_t bytes) {
    if (has_failed) return NULL;
    if (bytes > scratch_bytes[slot]) {
        cudaFree(scratch[slot]);
        scratch[slot] = NULL, scratch_bytes[slot] = 0;
        size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
        cudaError_t e = cudaMalloc(&scratch[slot], want);
        if (e != cudaSuccess) {
            char why[160];
            snprintf(why, sizeof why, "%s (%zu bytes of scratch)", cudaGetErrorString(e), want);
            cuda_fail(__FILE__, __LINE__, "cudaMalloc", why);
            return NULL;
        }
        scratch_bytes[slot] = want;
    }
    return scratch[slot];
}

const int *cuda_upload_ids(const int *ids, size_t n) {
    int *d = (int *)cuda_scratch(SCRATCH_IDS, n * sizeof *ids);
    if (!d) return NULL;
    cudaError_t e = cudaMemcpy(d, ids, n * sizeof *ids, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        cuda_fail(__FILE__, __LINE__, "cudaMemcpy (ids)", cudaGetErrorString(e));
        return NULL;
    }
    return d;
}

/* ---- memory ---- */

static float *cuda_alloc(size_t n) {
    void *p = NULL;
    size_t bytes = (n ? n : 1) * sizeof(float);
    if (has_failed || cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); /* out of memory is the caller's to report, not sticky */
        return NULL;
    }
    if (cudaMemset(p, 0, bytes) != cudaSuccess) {
        cudaFree(p);
        return NULL;
    }
    return (float *)p;
}
static void cuda_free(float *p) {
    if (p) cudaFree(p);
}
static void cuda_upload(float *dst, const float *host, size_t n) {
    if (!has_failed) CUDA_OK(cudaMemcpy(dst, host, n * sizeof *dst, cudaMemcpyHostToDevice));
}
static void cuda_download(float *host, const float *src, size_t n) {
    if (has_failed) {
        memset(host, 0, n * sizeof *host); /* defined contents; the failure says why */
        return;
    }
    CUDA_OK(cudaMemcpy(host, src, n * sizeof *host, cudaMemcpyDeviceToHost));
}
static void cuda_copy(float *dst, const float *src, size_t n) {
    if (!has_failed) CUDA_OK(cudaMemcpy(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice));
}

__global__ void k_fill(float *x, float v, size_t n) {
    GRID_STRIDE(i, n) x[i] = v;
}
static void cuda_fill(float *dst, float value, size_t n) {
    if (has_failed || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_fill)(dst, value, n);
    CUDA_LAUNCHED();
}

__global__ void k_add(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}
static void cuda_add(float *y, const float *x, size_t n) {
    if (has_failed || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_add)(y, x, n);
    CUDA_LAUNCHED();
}

__global__ void k_scale(float *x, float s, size_t n) {
    GRID_STRIDE(i, n) x[i] *= s;
}
static void cuda_scale(float *x, float s, size_t n) {
    if (has_failed || n == 0) return;
    KERNEL_LAUNCH(blocks_for(n), THREADS, k_scale)(x, s, n);
    CUDA_LAUNCHED();
}

/* ---- reductions: each block's partial sum in double, the partials summed in order on the host ---- */

typedef enum { RED_SUM, RED_SUMSQ, RED_L1, RED_L2, RED_DISTANCE } reduction;

/* Per block, parts[blockIdx.x] of one sum (three for RED_DISTANCE, gridDim.x apart). RED_SUM,
 * RED_SUMSQ: sum x, sum x^2. RED_L1, RED_L2 (the pull toward theta0): g += the penalty's gradient
 * and the partials of sum |d| or sum d^2, d = theta - theta0 (x = theta). RED_DISTANCE (x from
 * theta0), in one pass: sum (x - theta0)^2, sum theta0^2, and the entries whose bits differ. */
__global__ void k_reduce(reduction kind, const float *x, const float *theta0, float *g, float reg, size_t n,
                         double *parts) {
    __shared__ double sh[THREADS];
    double s = 0, s1 = 0, s2 = 0;
    GRID_STRIDE(i, n) {
        if (kind == RED_SUM) {
            s += x[i];
        } else if (kind == RED_SUMSQ) {
            s += (double)x[i] * x[i];
        } else if (kind == RED_DISTANCE) {
            double d = (double)x[i] - (double)theta0[i];
            s += d * d;
            s1 += (double)theta0[i] * theta0[i];
            s2 += __float_as_uint(x[i]) != __float_as_uint(theta0[i]);
        } else {
            float d = x[i] - theta0[i];
            if (kind == RED_L1) {
                s += fabs((double)d);
                g[i] += d > 0 ? reg : d < 0 ? -reg : 0.0f;
            } else {
                s += (double)d * d;
                g[i] += reg * d; /* reg is 2 reg here */
            }
        }
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) parts[blockIdx.x] = s;
    if (kind == RED_DISTANCE) { /* the same for every thread of the block: the barriers match */
        s1 = block_sum(s1, sh);
        s2 = block_sum(s2, sh);
        if (threadIdx.x == 0) parts[gridDim.x + blockIdx.x] = s1, parts[2 * gridDim.x + blockIdx.x] = s2;
    }
}

/* The kind's sums (out[0], and out[1], out[2] for RED_DISTANCE): the blocks' partials added in order. */
static void reduce_into(reduction kind, const float *x, const float *theta0, float *g, float reg, size_t n,
                        double out[3]) {
    const unsigned k = kind == RED_DISTANCE ? 3 : 1;
    out[0] = out[1] = out[2] = 0;
    if (has_failed || n == 0) return;
    unsigned nb = blocks_for(n);
    double *parts = (double *)cuda_scratch(SCRATCH_PARTS, k * nb * sizeof(double)), host[3 * MAX_BLOCKS];
    if (!parts) return;
    KERNEL_LAUNCH(nb, THREADS, k_reduce)(kind, x, theta0, g, reg, n, parts);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpy(host, parts, k * nb * sizeof(double), cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        cuda_fail(__FILE__, __LINE__, "k_reduce", cudaGetErrorString(e));
        return;
    }
    for (unsigned j = 0; j < k; j++)
        for (unsigned b = 0; b < nb; b++) out[j] += host[j * nb + b];
}
static double reduce(reduction kind, const float *x, const float *theta0, float *g, float reg, size_t n) {
    double out[3];
    reduce_into(kind, x, theta0, g, reg, n, out);
    return out[0];
}
static double cuda_sum(const float *x, size_t n) { return reduce(RED_SUM, x, NULL, NULL, 0, n); }
static double cuda_sumsq(const float *x, size_t n) { return reduce(RED_SUMSQ, x, NULL, NULL, 0, n); }
static double cuda_penalty_grad(mofo_penalty kind, double reg, const float *theta, const float *theta0, float *g,
                                int64_t n) {
    if (kind == MOFO_PENALTY_L1) return reg * reduce(RED_L1, theta, theta0, g, (float)reg, (size_t)n);
    return reg * reduce(RED_L2, theta, theta0, g, (float)(2 * reg), (size_t)n);
}

static void cuda_distance(const float *a, const float *b, size_t n, double sums[3]) {
    reduce_into(RED_DISTANCE, b, a, NULL, 0, n, sums);
}

/* ---- matrix products: cuBLAS, column-major, so the row-major C = op(A) op(B) is C^T = op(B)^T op(A)^T ---- */

static cublasHandle_t blas;

/* x (n) rounded to `stored` mantissa bits: bf16's bits (the top half of the rounded float) or tf32
 * values as floats */
__global__ void k_round_bf16(uint16_t *out, const float *x, size_t n) {
    GRID_STRIDE(i, n) out[i] = (uint16_t)(mofo_round_bits(__float_as_uint(x[i]), MOFO_BF16_STORED) >> 16);
}
__global__ void k_round_tf32(float *out, const float *x, size_t n) {
    GRID_STRIDE(i, n) out[i] = mofo_round_mantissa(x[i], MOFO_TF32_STORED);
}

/* The rounded copy, in scratch slot, of the (rows, cols) row-major matrix x with row stride ld (the
 * whole span, gaps included, so that the stride stays); NULL after a failure. */
static const void *rounded(scratch_slot slot, mofo_precision prec, const float *x, int rows, int cols, int ld) {
    size_t n = rows && cols ? (size_t)(rows - 1) * ld + cols : 1;
    bool bf16 = prec == MOFO_PRECISION_BF16;
    void *r = cuda_scratch(slot, n * (bf16 ? sizeof(uint16_t) : sizeof(float)));
    if (!r) return NULL;
    if (bf16)
        KERNEL_LAUNCH(blocks_for(n), THREADS, k_round_bf16)((uint16_t *)r, x, n);
    else
        KERNEL_LAUNCH(blocks_for(n), THREADS, k_round_tf32)((float *)r, x, n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cuda_fail(__FILE__, __LINE__, "k_round", cudaGetErrorString(e));
        return NULL;
    }
    return r;
}

void cuda_gemm(mofo_precision prec, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (has_failed || M == 0 || N == 0) return;
    cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasStatus_t st;
    const char *call = "cublasSgemm";
    if (prec == MOFO_PRECISION_FP32) {
        st = cublasSgemm(blas, opb, opa, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc);
    } else {
        const void *Ar = rounded(SCRATCH_ROUND_A, prec, A, trans_a ? K : M, trans_a ? M : K, lda);
        const void *Br = Ar ? rounded(SCRATCH_ROUND_B, prec, B, trans_b ? N : K, trans_b ? K : N, ldb) : NULL;
        if (!Br) return;
        bool bf16 = prec == MOFO_PRECISION_BF16;
        cudaDataType_t in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
        call = "cublasGemmEx";
        st = cublasGemmEx(blas, opb, opa, N, M, K, &alpha, Br, in, ldb, Ar, in, lda, &beta, C, CUDA_R_32F, ldc,
                          bf16 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS) {
        char why[96];
        snprintf(why, sizeof why, "cuBLAS status %d (M=%d N=%d K=%d, %s)", (int)st, M, N, K, mofo_precision_name(prec));
        cuda_fail(__FILE__, __LINE__, call, why);
    }
}

/* ---- the table ---- */

void cuda_layers_table(mofo_backend *be); /* layers.cu */

static mofo_backend table;

static void cuda_sync(void) {
    if (!has_failed) CUDA_OK(cudaDeviceSynchronize());
}

static size_t cuda_bytes_in_use(void) {
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return total - free_bytes;
}

static void cuda_close(void) {
    for (int s = 0; s < N_SCRATCH; s++) {
        cudaFree(scratch[s]);
        scratch[s] = NULL, scratch_bytes[s] = 0;
    }
    if (blas) cublasDestroy(blas);
    blas = NULL;
}

static void fill_table(mofo_backend *t) {
    t->name = "cuda";
    t->host = false;
    t->failure = cuda_failure;
    t->close = cuda_close;
    t->sync = cuda_sync;
    t->bytes_in_use = cuda_bytes_in_use;
    t->alloc = cuda_alloc;
    t->free = cuda_free;
    t->upload = cuda_upload;
    t->download = cuda_download;
    t->copy = cuda_copy;
    t->fill = cuda_fill;
    t->add = cuda_add;
    t->scale = cuda_scale;
    t->sum = cuda_sum;
    t->sumsq = cuda_sumsq;
    t->penalty_grad = cuda_penalty_grad;
    t->distance = cuda_distance;
    t->gemm = cuda_gemm;
    cuda_layers_table(t);
}

extern "C" const mofo_backend *mofo_backend_cuda(mofo_err *err) {
    if (blas) return &table;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        mofo_errf(err, MOFO_ENODEV, "device cuda: no CUDA device (cudaGetDeviceCount: %s)",
                  e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        return NULL;
    }
    cublasStatus_t st = cublasCreate(&blas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        blas = NULL;
        mofo_errf(err, MOFO_EDEVICE, "device cuda: cublasCreate failed (status %d)", (int)st);
        return NULL;
    }
    fill_table(&table);
    return &table;
}
