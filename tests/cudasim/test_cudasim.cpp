/* The CPU simulator of tests/cudasim on its own: warp operations give CUDA's results (against
 * values computed here by hand from their definitions), a block reduction through shared memory is
 * exact, and each error it exists to catch is caught: threads of a block at different barriers, a
 * deadlock, a warp operation naming an exited lane, shared memory read before it is written (the
 * poison), device memory copied in the wrong direction or freed twice, a leak at exit. Built with
 * ThreadSanitizer as well (test_cudasim_tsan): then the same checks give no report (blocks that
 * reuse shared memory or meet through atomics do not race), and the race-... arguments run a race
 * that its tests expect reported: between two blocks, and between two threads of one block. */
#include <cuda_runtime.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* ---- kernels ---- */

/* out[(blockIdx.x * blockDim.x + threadIdx.x) * 4 + j]: shfl_up(x, 1), shfl_xor(x, 5), shfl(x, 7),
 * ballot(x odd) of x = lane * lane + blockIdx.x, for every warp of the block. */
__global__ void k_warp_ops(unsigned *out) {
    const int lane = threadIdx.x & 31;
    const unsigned x = (unsigned)(lane * lane) + blockIdx.x;
    const unsigned up = __shfl_up_sync(0xFFFFFFFFu, x, 1), xr = __shfl_xor_sync(0xFFFFFFFFu, x, 5),
                   from7 = __shfl_sync(0xFFFFFFFFu, x, 7), odd = __ballot_sync(0xFFFFFFFFu, x & 1u);
    unsigned *o = out + (blockIdx.x * blockDim.x + threadIdx.x) * 4;
    o[0] = up, o[1] = xr, o[2] = from7, o[3] = odd;
}

/* sum[blockIdx.x] = the sum of in[blockIdx.x * blockDim.x + t] over the block, through shared
 * memory (a tree reduction). */
__global__ void k_block_sum(const long long *in, long long *sum) {
    __shared__ long long part[256];
    const unsigned t = threadIdx.x;
    part[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) part[t] += part[t + half];
        __syncthreads();
    }
    if (t == 0) sum[blockIdx.x] = part[0];
}

/* order[i] = the block that ran i-th. */
__global__ void k_order(unsigned *order, unsigned *next) {
    if (threadIdx.x == 0) order[atomicAdd(next, 1u)] = blockIdx.x;
}

__global__ void k_divergent_barrier(int *out) {
    if (threadIdx.x < 64) __syncthreads();
    else __syncthreads();
    out[threadIdx.x] = 1;
}

/* lane 0 waits at __syncthreads while the other lanes of its warp wait for it in a shuffle */
__global__ void k_deadlock(int *out) {
    int v = (int)threadIdx.x;
    if (threadIdx.x == 0) __syncthreads();
    else v = __shfl_sync(0xFFFFFFFFu, v, 0);
    out[threadIdx.x] = v;
}

__global__ void k_exited_lane(int *out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_sync(0xFFFFFFFFu, (int)threadIdx.x, 0);
}

/* reads shared memory that nothing wrote */
__global__ void k_unwritten_shared(unsigned *out) {
    __shared__ unsigned never_written[64];
    out[threadIdx.x] = never_written[threadIdx.x];
}

/* the same in a template, whose static variables GCC places otherwise (cudasim/shared.ld) */
template <typename T>
__global__ void k_unwritten_shared_template(T *out) {
    __shared__ T never_written[64];
    out[threadIdx.x] = never_written[threadIdx.x];
}

/* ---- races: what the ThreadSanitizer build must report (test_cudasim_tsan race-...) ---- */

/* thread 0 of every block writes out[0] */
__global__ void k_race_between_blocks(int *out) {
    if (threadIdx.x == 0) out[0] = (int)blockIdx.x;
}

/* thread 1 reads the shared word that thread 0 writes, with no barrier between */
__global__ void k_race_in_block(int *out) {
    __shared__ int word;
    if (threadIdx.x == 0) word = 1;
    if (threadIdx.x == 1) out[0] = word;
}

/* ---- the checks ---- */

static void warp_ops(void) {
    const int blocks = 3, threads = 64;
    unsigned *d = NULL, h[3 * 64 * 4];
    CHECK(cudaMalloc((void **)&d, sizeof h) == cudaSuccess, "cudaMalloc");
    KERNEL_LAUNCH(blocks, threads, k_warp_ops)(d);
    CHECK(cudaGetLastError() == cudaSuccess, "launch");
    CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess, "copy back");
    int bad = 0;
    for (int b = 0; b < blocks; b++) {
        unsigned odd = 0;
        for (int l = 0; l < 32; l++) odd |= (((unsigned)(l * l) + (unsigned)b) & 1u) << l;
        for (int t = 0; t < threads; t++) {
            const int l = t & 31;
            const unsigned *o = h + (b * threads + t) * 4;
            const int src_up = l >= 1 ? l - 1 : l; /* lanes below the offset keep their own value */
            bad += o[0] != (unsigned)(src_up * src_up) + (unsigned)b;
            bad += o[1] != (unsigned)((l ^ 5) * (l ^ 5)) + (unsigned)b;
            bad += o[2] != 49u + (unsigned)b;
            bad += o[3] != odd;
        }
    }
    CHECK(bad == 0, "%d warp results differ from their definitions", bad);
    cudaFree(d);
}

static void block_sum(void) {
    const int blocks = 5, threads = 256;
    long long h[5 * 256], sums[5], *din = NULL, *dsum = NULL;
    long long want[5] = {0};
    for (int i = 0; i < blocks * threads; i++) {
        h[i] = (long long)i * 7919 % 1000003 - 500000;
        want[i / threads] += h[i];
    }
    cudaMalloc((void **)&din, sizeof h);
    cudaMalloc((void **)&dsum, sizeof sums);
    cudaMemcpy(din, h, sizeof h, cudaMemcpyHostToDevice);
    KERNEL_LAUNCH(blocks, threads, k_block_sum)(din, dsum);
    CHECK(cudaMemcpy(sums, dsum, sizeof sums, cudaMemcpyDeviceToHost) == cudaSuccess, "copy back");
    for (int b = 0; b < blocks; b++) CHECK(sums[b] == want[b], "block %d: sum %lld, expected %lld", b, sums[b], want[b]);
    cudaFree(din);
    cudaFree(dsum);
}

static void block_order(void) {
    enum { BLOCKS = 64 };
    unsigned *d = NULL, h[BLOCKS + 1];
    cudaMalloc((void **)&d, sizeof h);
    cudaMemset(d, 0, sizeof h);
    KERNEL_LAUNCH(BLOCKS, 32, k_order)(d, d + BLOCKS);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int seen[BLOCKS] = {0}, in_order = 1;
    for (int i = 0; i < BLOCKS; i++) {
        if (h[i] < BLOCKS) seen[h[i]]++;
        in_order &= h[i] == (unsigned)i;
    }
    int each_once = 1;
    for (int b = 0; b < BLOCKS; b++) each_once &= seen[b] == 1;
    CHECK(h[BLOCKS] == BLOCKS && each_once, "every block runs once");
    CHECK(!in_order, "the blocks run in a shuffled order (64 blocks in index order: 1 chance in 64!)");
    cudaFree(d);
}

__global__ void k_increment(int *x) { *x += 1; }

/* A kernel the simulator must refuse: the launch fails, and so does every call after it until
 * cudaDeviceReset. */
static void refused(const char *what, void (*launch)(int *)) {
    int *d = NULL;
    cudaMalloc((void **)&d, 1024 * sizeof(int));
    fprintf(stderr, "(%s: the simulator's message is expected)\n", what);
    launch(d);
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure, "%s: the launch fails", what);
    int h = 0;
    CHECK(cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaErrorLaunchFailure, "%s: the failure is sticky", what);
    cudaDeviceReset();
}

static void errors(void) {
    refused("threads at different barriers", [](int *d) { KERNEL_LAUNCH(2, 128, k_divergent_barrier)(d); });
    refused("deadlock", [](int *d) { KERNEL_LAUNCH(1, 64, k_deadlock)(d); });
    refused("warp operation naming an exited lane", [](int *d) { KERNEL_LAUNCH(1, 32, k_exited_lane)(d); });

    unsigned *d = NULL, h[64];
    cudaMalloc((void **)&d, sizeof h);
    for (int in_template = 0; in_template < 2; in_template++) {
        cudaMemset(d, 0, sizeof h);
        if (in_template) KERNEL_LAUNCH(1, 64, k_unwritten_shared_template<unsigned>)(d);
        else KERNEL_LAUNCH(1, 64, k_unwritten_shared)(d);
        cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
        int poisoned = 0;
        for (int i = 0; i < 64; i++) poisoned += h[i] == 0xA5A5A5A5u;
        CHECK(poisoned == 64, "unwritten shared memory%s reads as the poison 0xA5A5A5A5 (%d of 64)",
              in_template ? " of a template kernel" : "", poisoned);
    }

    int host[4] = {0};
    fprintf(stderr, "(wrong copies and frees: the simulator's messages are expected)\n");
    CHECK(cudaMemcpy(host, d, sizeof host, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "a host-to-device copy into host memory");
    CHECK(cudaMemcpy(d, host, sizeof host, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "a device-to-host copy into device memory");
    CHECK(cudaMemcpy(host, d + 62, sizeof host, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue, "a copy past an allocation's end");
    CHECK(cudaFree(host) == cudaErrorInvalidValue, "freeing host memory");
    CHECK(cudaFree(d) == cudaSuccess, "freeing");
    CHECK(cudaFree(d) == cudaErrorInvalidValue, "freeing twice");
    CHECK(cudaGetLastError() == cudaErrorInvalidValue && cudaGetLastError() == cudaSuccess, "the last error, then none");

    cudaStream_t s;
    int *x = NULL, one = 1;
    cudaMalloc((void **)&x, sizeof(int));
    CHECK(cudaStreamCreate(&s) == cudaSuccess && cudaMemsetAsync(x, 0, sizeof(int), s) == cudaSuccess, "a stream");
    KERNEL_LAUNCH_ON(1, 1, s, k_increment)(x);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess && cudaMemcpy(&one, x, sizeof one, cudaMemcpyDeviceToHost) == cudaSuccess &&
              one == 1, "a launch on a stream runs (%d)", one);
    fprintf(stderr, "(a destroyed stream: the simulator's messages are expected)\n");
    CHECK(cudaStreamDestroy(s) == cudaSuccess, "destroying a stream");
    KERNEL_LAUNCH_ON(1, 1, s, k_increment)(x);
    CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle, "a launch on a destroyed stream fails");
    CHECK(cudaMemcpy(&one, x, sizeof one, cudaMemcpyDeviceToHost) == cudaSuccess && one == 1, "and does not run (%d)", one);
    CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle && cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle,
          "nor can it be waited for or destroyed again");
    cudaGetLastError();
    cudaFree(x);
}

static void leak(void) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { /* a process that leaves device memory allocated */
        void *p;
        cudaMalloc(&p, 100);
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "a leak at exit makes the process fail (status %d)", status);
}

/* Runs one racy kernel (the ThreadSanitizer build must report it; its test looks for the report). */
static int race(const char *which) {
    const bool between_blocks = strcmp(which, "race-between-blocks") == 0;
    if (!between_blocks && strcmp(which, "race-in-block") != 0) {
        fprintf(stderr, "usage: test_cudasim [race-between-blocks | race-in-block]\n");
        return 2;
    }
    int *d = NULL;
    cudaMalloc((void **)&d, sizeof(int));
    if (between_blocks) KERNEL_LAUNCH(2, 32, k_race_between_blocks)(d);
    else KERNEL_LAUNCH(1, 32, k_race_in_block)(d);
    cudaFree(d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) return race(argv[1]);
    warp_ops();
    block_sum();
    block_order();
    errors();
    leak();
    return CHECK_DONE();
}
