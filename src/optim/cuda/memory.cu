/* Device memory of the CUDA backend: the probe for a device, each parameter's state (moments,
 * coverage bits, bf16 master weights), and copies for state.c. Plain cudaMalloc, never managed
 * memory. */
#include "../backend.h"
#include "check.h"
#include "layout.h"

int mofo_cuda_probe(mofo_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear it: the runtime keeps the last error otherwise */
        return mofo_errf(err, MOFO_ENODEV, "option device: cuda: no CUDA device (cudaGetDeviceCount: %s)",
                         cudaGetErrorString(e));
    }
    if (n == 0) return mofo_errf(err, MOFO_ENODEV, "option device: cuda: no CUDA device (cudaGetDeviceCount: 0 devices)");
    return 0;
}

__global__ void k_bf16_to_f32(const __nv_bfloat16 *in, float *out, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __bfloat162float(in[i]);
}

static int alloc_zero(void **ptr, size_t bytes, const char *what, const param_state *p, cudaStream_t stream,
                      mofo_err *err) {
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e == cudaSuccess) e = cudaMemsetAsync(*ptr, 0, bytes, stream);
    if (e != cudaSuccess)
        return mofo_errf(err, e == cudaErrorMemoryAllocation ? MOFO_ENOMEM : MOFO_EDEVICE,
                         "parameter '%s': %s:%d: cannot allocate %zu bytes of device memory for %s: %s", p->name,
                         __FILE__, __LINE__, bytes, what, cudaGetErrorString(e));
    return 0;
}

static int param_init(param_state *p, int with_v, int with_touched, cudaStream_t stream, mofo_err *err) {
    size_t n = (size_t)p->numel;
    int rc = alloc_zero((void **)&p->m, n * 4, "m", p, stream, err);
    if (!rc && with_v) rc = alloc_zero((void **)&p->v, n * 4, "v", p, stream, err);
    if (!rc && with_touched) rc = alloc_zero((void **)&p->touched, (n + 63) / 64 * 8, "the coverage bits", p, stream, err);
    if (!rc && p->bf16) {
        rc = alloc_zero((void **)&p->master, n * 4, "the master weights", p, stream, err);
        if (!rc) {
            int blocks = (int)((n + BLOCK - 1) / BLOCK < 65536 ? (n + BLOCK - 1) / BLOCK : 65536);
            KERNEL_LAUNCH_ON(blocks, BLOCK, stream, k_bf16_to_f32)((const __nv_bfloat16 *)p->data, p->master, p->numel);
            CUDA_TRY(cudaGetLastError(), err);
        }
    }
    if (!rc) CUDA_TRY(cudaStreamSynchronize(stream), err);
    return rc;
}

int mofo_cuda_param_init(param_state *p, int with_v, int with_touched, void *stream, mofo_err *err) {
    int rc = param_init(p, with_v, with_touched, (cudaStream_t)stream, err);
    if (rc) mofo_cuda_param_free(p);
    return rc;
}

void mofo_cuda_param_free(param_state *p) {
    cudaFree(p->m);
    cudaFree(p->v);
    cudaFree(p->touched);
    cudaFree(p->master);
    p->m = p->v = p->master = NULL;
    p->touched = NULL;
}

int mofo_cuda_copy(void *dst, const void *src, size_t bytes, int to_device, mofo_err *err) {
    CUDA_TRY(cudaMemcpy(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost), err);
    return 0;
}
