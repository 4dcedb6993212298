/* cudasim: cuBLAS's sgemm on the CPU's BLAS, with the checks a GPU would make fatal: every matrix in
 * device memory (a host pointer passed to cuBLAS is a bug the simulator would otherwise hide) and the
 * leading dimensions cuBLAS requires. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "cublas_v2.h"
#include "cuda_runtime.h"

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

/* the bytes a column-major (rows, cols) matrix with leading dimension ld spans */
static size_t span(int rows, int cols, int ld) { return cols ? ((size_t)(cols - 1) * ld + rows) * sizeof(float) : 0; }

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc) {
    if (!handle || handle->magic != 0x6b1a5) return CUBLAS_STATUS_NOT_INITIALIZED;
    int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (ar > 1 ? ar : 1) || ldb < (br > 1 ? br : 1) || ldc < (m > 1 ? m : 1)) {
        fprintf(stderr, "cudasim: cublasSgemm: m %d n %d k %d with lda %d ldb %d ldc %d\n", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if ((k && !cudasim_is_device(A, span(ar, ac, lda))) || (k && !cudasim_is_device(B, span(br, bc, ldb))) ||
        !cudasim_is_device(C, span(m, n, ldc))) {
        fprintf(stderr, "cudasim: cublasSgemm: a matrix (A %p, B %p, C %p) is not all in device memory\n", (void *)A,
                (void *)B, (void *)C);
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
