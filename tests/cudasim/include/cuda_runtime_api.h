/* cudasim: the CUDA runtime calls libmofo and its tests make, on the host, for the CPU simulation
 * of the CUDA backend (tests/cudasim/sim.cpp). "Device memory" is host memory that the simulator
 * tracks: a copy whose direction does not match where its pointers live, a free of memory it did not
 * allocate, or a device allocation never freed (at exit) is reported as an error, as
 * compute-sanitizer would. Only what the project calls is here. */
#ifndef CUDASIM_RUNTIME_API_H
#define CUDASIM_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
} cudaMemcpyKind;

typedef struct CUstream_st *cudaStream_t;

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaDeviceSynchronize(void);
/* Clears the errors (a failed launch's too) and frees every allocation: each test of the simulator
 * itself starts afresh. */
cudaError_t cudaDeviceReset(void);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
/* The simulated card's free and total memory (what cudaMalloc has handed out and not taken back). */
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
/* The simulator's own: the card's memory in bytes (0: an H200's 141 GiB), for tests of running out. */
void cudasim_set_device_bytes(size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemset(void *ptr, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream);
/* Streams: work runs when it is enqueued, so every order a stream promises holds; a stream that was
 * never created (or was destroyed) fails as an invalid resource handle. NULL is the legacy default
 * stream. */
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
