/* cudasim: the device side of CUDA for the CPU simulation of libmofo's kernels (C++ only).
 *
 * A launch KERNEL_LAUNCH(grid, block, kernel)(args...) runs the grid at once, one thread block after
 * another in a shuffled order; the threads of a block are fibers on the calling thread, switched at
 * __syncthreads and at warp operations (shuffles, ballots), each thread running from one to the next
 * in a shuffled order. So:
 *   - __shared__ variables are static variables, in their own section (../shared.ld), filled with
 *     a poison pattern (0xA5 bytes) before every thread block: a kernel that reads shared memory it
 *     did not write sees garbage, as on a GPU;
 *   - atomics are plain read-modify-writes (nothing runs in between);
 *   - threads of a block that meet at different __syncthreads, a warp operation whose mask names a
 *     lane that has exited or waits elsewhere, and a block whose threads all wait are errors: the
 *     simulator prints where, abandons the launch, and the next runtime call returns
 *     cudaErrorLaunchFailure (sticky, as on a GPU).
 * Races that its switch points hide are what the ThreadSanitizer build (CUDASIM_TSAN, sim.cpp)
 * reports: between threads of a block, and between blocks that run one after the other. What it
 * cannot show: the GPU memory model beyond barriers and relaxed atomics, and speed. The project's
 * kernels, compiled by nvcc, run on a GPU in scripts/device_check.sh. */
#ifndef CUDASIM_RUNTIME_H
#define CUDASIM_RUNTIME_H

#ifndef __cplusplus
#error "cudasim's device side is C++: compile the .cu files as C++"
#endif

#include <stdint.h>
#include <string.h>

#include <tuple>
#include <utility>

#include "cuda_runtime_api.h"

#define __global__ inline
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static __attribute__((section("cudasim_shared")))

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern dim3 threadIdx, blockIdx, blockDim, gridDim; /* of the fiber running now */

/* ---- the simulator (sim.cpp) ---- */

/* Whether [p, p + bytes) lies in one device allocation (for the simulated libraries' checks). */
bool cudasim_is_device(const void *p, size_t bytes);
/* Runs kernel(ctx) for every thread of the grid (block: threads per block, at most 1024). */
void cudasim_run(dim3 grid, dim3 block, void (*kernel)(void *ctx), void *ctx);
void cudasim_syncthreads(const char *file, int line);
/* Every lane of mask posts value; each gets the values of all 32 lanes (0 for lanes outside mask),
 * valid until its next warp operation, and in *nonzero the lanes that posted a value other than 0. */
const uint64_t *cudasim_warp_post(unsigned mask, uint64_t value, unsigned *nonzero, const char *file, int line);

/* The launch: KERNEL_LAUNCH(grid, block, kernel)(args...), as kernel<<<grid, block>>>(args...). */
template <class... P>
struct cudasim_launch {
    dim3 grid, block;
    void (*kernel)(P...);
    bool runs = true; /* false: the launch failed before it started */
    template <class... A>
    void operator()(A &&...args) const {
        if (!runs) return;
        struct call {
            void (*kernel)(P...);
            std::tuple<P...> args; /* by value, as a kernel's arguments */
        } c{kernel, std::tuple<P...>(std::forward<A>(args)...)};
        cudasim_run(grid, block, [](void *ctx) {
            call *c = (call *)ctx;
            std::apply(c->kernel, c->args); /* each thread gets its own copies */
        }, &c);
    }
};
template <class... P>
cudasim_launch<P...> cudasim_launcher(dim3 grid, dim3 block, void (*kernel)(P...)) {
    return cudasim_launch<P...>{grid, block, kernel};
}
#define KERNEL_LAUNCH(grid, block, kernel) cudasim_launcher(grid, block, kernel)
/* KERNEL_LAUNCH_ON(grid, block, stream, kernel)(args...), as kernel<<<grid, block, 0, stream>>>(args...):
 * the grid runs at once; a stream that does not exist fails the launch (cudaGetLastError says so). */
bool cudasim_stream_ok(cudaStream_t stream);
template <class... P>
cudasim_launch<P...> cudasim_launcher_on(dim3 grid, dim3 block, cudaStream_t stream, void (*kernel)(P...)) {
    return cudasim_launch<P...>{grid, block, kernel, cudasim_stream_ok(stream)};
}
#define KERNEL_LAUNCH_ON(grid, block, stream, kernel) cudasim_launcher_on(grid, block, stream, kernel)

#define __syncthreads() cudasim_syncthreads(__FILE__, __LINE__)

/* ---- warp operations ---- */

template <class T>
static inline uint64_t cudasim_bits(T x) {
    static_assert(sizeof(T) <= 8, "warp operations move at most 8 bytes");
    uint64_t u = 0;
    memcpy(&u, &x, sizeof x);
    return u;
}
template <class T>
static inline T cudasim_value(uint64_t u) {
    T x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline int cudasim_lane(void) { return (int)(threadIdx.x & 31); }

template <class T>
static inline T cudasim_shfl(unsigned mask, T x, int src, const char *file, int line) {
    unsigned nonzero;
    return cudasim_value<T>(cudasim_warp_post(mask, cudasim_bits(x), &nonzero, file, line)[src & 31]);
}
#define __shfl_sync(mask, x, src) cudasim_shfl(mask, x, (int)(src), __FILE__, __LINE__)
#define __shfl_up_sync(mask, x, d) \
    cudasim_shfl(mask, x, cudasim_lane() >= (int)(d) ? cudasim_lane() - (int)(d) : cudasim_lane(), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, x, d) cudasim_shfl(mask, x, cudasim_lane() ^ (int)(d), __FILE__, __LINE__)

static inline unsigned cudasim_ballot(unsigned mask, int pred, const char *file, int line) {
    unsigned nonzero;
    cudasim_warp_post(mask, pred != 0, &nonzero, file, line);
    return nonzero;
}
#define __ballot_sync(mask, pred) cudasim_ballot(mask, pred, __FILE__, __LINE__)
/* the lanes of mask wait for each other, and their memory accesses before it happen before theirs after */
void cudasim_syncwarp(unsigned mask, const char *file, int line);
#define __syncwarp(...) cudasim_syncwarp(cudasim_syncwarp_mask(__VA_ARGS__), __FILE__, __LINE__)
static inline unsigned cudasim_syncwarp_mask(unsigned mask = 0xffffffffu) { return mask; }

/* ---- atomics: relaxed, as CUDA's; real atomics, so that ThreadSanitizer sees them as such ---- */

static inline double atomicAdd(double *p, double v) {
    static_assert(sizeof(double) == sizeof(unsigned long long), "double is 64 bits");
    unsigned long long *u = (unsigned long long *)p, old = __atomic_load_n(u, __ATOMIC_RELAXED), sum;
    do {
        sum = cudasim_bits(cudasim_value<double>(old) + v);
    } while (!__atomic_compare_exchange_n(u, &old, sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return cudasim_value<double>(old);
}
template <class T>
static inline T atomicAdd(T *p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
template <class T>
static inline T atomicOr(T *p, T v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
template <class T>
static inline T atomicMin(T *p, T v) {
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (v < old && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    return old;
}

/* ---- CUDA's integer min and max (device functions there) ---- */

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

/* ---- bits ---- */

static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline unsigned __float_as_uint(float x) { return cudasim_value<unsigned>(cudasim_bits(x)); }
static inline float __uint_as_float(unsigned x) { return cudasim_value<float>(cudasim_bits(x)); }

#endif
