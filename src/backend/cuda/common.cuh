/* What the CUDA backend's two files share: the sticky failure (the first failed call, with its file and
 * line), the launch shapes, the block reductions and the device scratch for host-side ids and targets.
 * Compiled by nvcc, or as C++ against tests/cudasim (where KERNEL_LAUNCH runs the grid on the CPU). */
#ifndef MOFO_BACKEND_CUDA_COMMON_CUH
#define MOFO_BACKEND_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
}

#ifndef KERNEL_LAUNCH
#define KERNEL_LAUNCH(grid, block, kernel) kernel<<<grid, block>>>
#endif

/* Records the first failure (later ones keep it); returns 1 when the backend has failed. */
int cuda_fail(const char *file, int line, const char *call, const char *why);
int cuda_failed(void);

/* A runtime call: on failure the backend fails and the calling operation returns. */
#define CUDA_OK(call)                                                                   \
    do {                                                                                \
        cudaError_t e_ = (call);                                                        \
        if (e_ != cudaSuccess) {                                                        \
            cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(e_));               \
            return;                                                                     \
        }                                                                               \
    } while (0)
/* After a launch: the launch's own error (a bad configuration), asynchronous ones show later. */
#define CUDA_LAUNCHED() CUDA_OK(cudaGetLastError())

/* Element-wise launches: 256 threads, at most 1024 blocks striding over n (a fixed shape for a given
 * n, so that every run does the same work in the same order). */
enum { THREADS = 256, MAX_BLOCKS = 1024 };
static inline unsigned blocks_for(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    return (unsigned)(b < 1 ? 1 : b > (size_t)MAX_BLOCKS ? (size_t)MAX_BLOCKS : b);
}
#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* The sum over the THREADS threads of a block, in a fixed tree order; every thread gets it. sh: the
 * caller's __shared__ array of THREADS values. */
template <class T>
__device__ T block_sum(T v, T *sh) {
    unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = THREADS / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}
__device__ inline float block_max(float v, float *sh) {
    unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = THREADS / 2; s > 0; s >>= 1) {
        if (t < s && sh[t + s] > sh[t]) sh[t] = sh[t + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* The sum over the 32 lanes of a warp, the same value in every lane. */
__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* C (M, N) = alpha op(A) op(B) + beta C, row-major (the interface's gemm), through cuBLAS: FP32 in
 * cublasSgemm; TF32 and BF16 on the inputs rounded into scratch (rounding.h, as the CPU does), then
 * cublasGemmEx with fp32 accumulation (TF32 or bf16 tensor cores). */
void cuda_gemm(mofo_precision prec, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Device scratch the backend owns, grown as needed: the ids and targets the interface passes as host
 * arrays, attention's row terms, the reductions' per-block partial sums, a rounded product's copies
 * of its two inputs. NULL after a failure. */
typedef enum { SCRATCH_IDS, SCRATCH_ROWS, SCRATCH_PARTS, SCRATCH_ROUND_A, SCRATCH_ROUND_B, N_SCRATCH } scratch_slot;
void *cuda_scratch(scratch_slot slot, size_t bytes);
/* ids (n) host -> the device copy in slot SCRATCH_IDS, or NULL after a failure */
const int *cuda_upload_ids(const int *ids, size_t n);

#endif
