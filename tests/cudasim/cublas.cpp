/* cudasim: cuBLAS's sgemm and gemmEx (fp32 or bf16 inputs, fp32 accumulation) on the CPU's BLAS,
 * with the checks a GPU would make fatal: every matrix in device memory (a host pointer passed to
 * cuBLAS is a bug the simulator would otherwise hide) and the leading dimensions cuBLAS requires. */
#include <cblas.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cublas_v2.h"
#include "cuda_runtime.h"
#include "backend/rounding.h"

struct cudasim_cublas {
    int magic;
};

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    *handle = (cublasHandle_t)calloc(1, sizeof(cudasim_cublas));
    if (!*handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    (*handle)->magic = 0x6b1a5;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle || handle->magic != 0x6b1a5) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->magic = 0;
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

/* the elements a column-major (rows, cols) matrix with leading dimension ld spans */
static size_t span(int rows, int cols, int ld) { return cols && rows ? (size_t)(cols - 1) * ld + rows : 0; }

/* The checks and the product of both entry points, on fp32 arrays (elem: the bytes of one entry as the
 * caller stored it, for the device-memory check of its arrays A0, B0). */
static cublasStatus_t gemm(const char *name, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, float alpha, const void *A0, const float *A, int lda, const void *B0,
                           const float *B, int ldb, float beta, float *C, int ldc, size_t elem) {
    if (!handle || handle->magic != 0x6b1a5) return CUBLAS_STATUS_NOT_INITIALIZED;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cudasim: %s: m %d n %d k %d with lda %d ldb %d ldc %d\n", name, m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if ((k && !cudasim_is_device(A0, span(ar, ac, lda) * elem)) || (k && !cudasim_is_device(B0, span(br, bc, ldb) * elem)) ||
        !cudasim_is_device(C, span(m, n, ldc) * sizeof(float))) {
        fprintf(stderr, "cudasim: %s: a matrix (A %p, B %p, C %p) is not all in device memory\n", name, A0, B0,
                (void *)C);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    return gemm("cublasSgemm", handle, ta, tb, m, n, k, *alpha, A, A, lda, B, B, ldb, *beta, C, ldc, sizeof(float));
}

/* A host fp32 copy of n entries of x as stored: bf16 widened, or fp32 rounded to tf32 as the tensor
 * cores read it (to nearest even here; a GPU may truncate, which the backend's already rounded
 * inputs make the same). NULL for n == 0 or when out of memory. */
static float *widened(const void *x, size_t n, cudaDataType_t type, bool tf32) {
    float *f = n ? (float *)malloc(n * sizeof *f) : NULL;
    for (size_t i = 0; f && i < n; i++) {
        if (type == CUDA_R_16BF) {
            uint32_t u = (uint32_t)((const uint16_t *)x)[i] << 16;
            memcpy(&f[i], &u, 4);
        } else {
            f[i] = ((const float *)x)[i];
            if (tf32) f[i] = mofo_round_mantissa(f[i], MOFO_TF32_STORED);
        }
    }
    return f;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    if (Atype != Btype || (Atype != CUDA_R_32F && Atype != CUDA_R_16BF) || Ctype != CUDA_R_32F ||
        (compute != CUBLAS_COMPUTE_32F && !tf32) || (tf32 && Atype != CUDA_R_32F) || algo != CUBLAS_GEMM_DEFAULT) {
        fprintf(stderr, "cudasim: cublasGemmEx: types A %d B %d C %d, compute %d, algo %d not simulated\n", (int)Atype,
                (int)Btype, (int)Ctype, (int)compute, (int)algo);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    size_t elem = Atype == CUDA_R_16BF ? 2 : 4;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    bool shapes_ok = m >= 0 && n >= 0 && k >= 0 && lda >= 1 && ldb >= 1;
    /* the device check comes first in gemm(); widen only what is there to read */
    size_t na = shapes_ok && k ? span(ar, ac, lda) : 0, nb = shapes_ok && k ? span(br, bc, ldb) : 0;
    bool readable = (!na || cudasim_is_device(A, na * elem)) && (!nb || cudasim_is_device(B, nb * elem));
    float *Af = readable ? widened(A, na, Atype, tf32) : NULL, *Bf = readable ? widened(B, nb, Btype, tf32) : NULL;
    if ((na && readable && !Af) || (nb && readable && !Bf)) {
        free(Af), free(Bf);
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    cublasStatus_t st = gemm("cublasGemmEx", handle, ta, tb, m, n, k, *(const float *)alpha, A, Af, lda, B, Bf, ldb,
                             *(const float *)beta, (float *)C, ldc, elem);
    free(Af), free(Bf);
    return st;
}

} /* extern "C" */
