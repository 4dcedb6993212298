/* cudasim: the CPU simulation of the CUDA runtime and of thread blocks that libmofo's kernels need
 * (see include/cuda_runtime.h for what it models and what it cannot). Test code: it prints what went
 * wrong on stderr and reports it through the CUDA error codes, as the runtime would. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <set>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define ASAN 1
#endif
#endif

/* CUDASIM_TSAN: the kernels are built with ThreadSanitizer (this file is not: its bookkeeping is
 * invisible to it). Each thread is a ThreadSanitizer fiber, switched without synchronizing; what
 * orders their memory accesses is what orders them on a GPU: __syncthreads (a release on arrival,
 * an acquire on leaving) and atomics; not the warp operations, which pass values. Launches are
 * ordered one after another (the host's writes before a launch, its blocks' writes before what the
 * host does next). The blocks of one launch are not ordered with each other: two sets of fibers take
 * turns (a fiber's accesses are ordered among themselves, so a block is ordered only after the
 * block two before it in the shuffled order), and each block's shared memory starts with fresh
 * ThreadSanitizer state (the section mapped anew). So it reports the hazards between threads of one
 * block, as compute-sanitizer's racecheck does, and those between blocks that run next to each
 * other, which racecheck does not. */
#ifdef CUDASIM_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin(void); /* in the runtime, not its header */
extern "C" void __tsan_ignore_thread_end(void);
static void hb_release(void *a) { __tsan_release(a); }
static void hb_acquire(void *a) { __tsan_acquire(a); }
#else
static void hb_release(void *) {}
static void hb_acquire(void *) {}
#endif

#if !defined(__x86_64__)
#error "cudasim switches fibers with x86-64 code"
#endif

dim3 threadIdx, blockIdx, blockDim, gridDim;

/* ---- errors ---- */

static cudaError_t last_error = cudaSuccess; /* returned and cleared by cudaGetLastError */
static cudaError_t sticky = cudaSuccess;     /* a failed launch: every later call fails */

/* "cudasim: " then the message, on stderr. */
static void vsay(const char *fmt, va_list ap) {
    fprintf(stderr, "cudasim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
}

/* A runtime call fails with e (not sticky). */
static cudaError_t fail(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsay(fmt, ap);
    va_end(ap);
    last_error = e;
    return e;
}

/* ---- memory: device allocations are tracked, so that copies and frees can be checked ---- */

static std::map<uintptr_t, size_t> device_allocs, host_allocs; /* start -> bytes */

/* Whether [p, p + bytes) lies in one allocation of `allocs` (any byte of it when `any`). */
static bool inside(const std::map<uintptr_t, size_t> &allocs, const void *p, size_t bytes, bool any = false) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin()) return false;
    --it;
    if (any) return a < it->first + it->second;
    return a + bytes <= it->first + it->second;
}

bool cudasim_is_device(const void *p, size_t bytes) { return inside(device_allocs, p, bytes); }

static void leak_check(void) {
    if (device_allocs.empty()) return;
    size_t bytes = 0;
    for (auto &a : device_allocs) bytes += a.second;
    fflush(stdout);
    fprintf(stderr, "cudasim: %zu device allocations (%zu bytes) were never freed\n", device_allocs.size(), bytes);
    _exit(1);
}

/* The simulated card's memory, as an H200's unless cudasim_set_device_bytes says otherwise: a request
 * beyond what is left fails as cudaMalloc does, without asking the host for it (AddressSanitizer
 * aborts on a malloc over 1 TiB instead of returning NULL). */
static size_t device_bytes = (size_t)141 << 30, device_used;

void cudasim_set_device_bytes(size_t bytes) { device_bytes = bytes ? bytes : (size_t)141 << 30; }

static cudaError_t alloc(std::map<uintptr_t, size_t> &allocs, void **ptr, size_t bytes) {
    if (sticky) return sticky;
    static bool registered;
    if (!registered) registered = atexit(leak_check) == 0;
    bool device = &allocs == &device_allocs;
    if (device && (device_used > device_bytes || bytes > device_bytes - device_used))
        return fail(cudaErrorMemoryAllocation, "cannot allocate %zu bytes (the simulated card has %zu, %zu in use)",
                    bytes, device_bytes, device_used);
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return fail(cudaErrorMemoryAllocation, "cannot allocate %zu bytes", bytes);
    memset(p, 0xA5, bytes); /* cudaMalloc does not clear */
    allocs[(uintptr_t)p] = bytes;
    if (device) device_used += bytes;
    *ptr = p;
    return cudaSuccess;
}

static cudaError_t release(std::map<uintptr_t, size_t> &allocs, void *p, const char *call) {
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) return fail(cudaErrorInvalidValue, "%s(%p): not a pointer it allocated", call, p);
    if (&allocs == &device_allocs) device_used -= it->second;
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}

extern "C" {

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = sticky ? sticky : last_error;
    last_error = cudaSuccess;
    return e;
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure (cudasim)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    }
    return "unknown error";
}

cudaError_t cudaDeviceSynchronize(void) { return sticky; }

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (sticky) return sticky;
    *free_bytes = device_used > device_bytes ? 0 : device_bytes - device_used;
    *total_bytes = device_bytes;
    return cudaSuccess;
}

cudaError_t cudaDeviceReset(void) {
    for (auto *allocs : {&device_allocs, &host_allocs}) {
        for (auto &a : *allocs) free((void *)a.first);
        allocs->clear();
    }
    device_used = 0;
    last_error = sticky = cudaSuccess;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **ptr, size_t bytes) { return alloc(device_allocs, ptr, bytes); }
cudaError_t cudaFree(void *ptr) { return release(device_allocs, ptr, "cudaFree"); }
cudaError_t cudaMallocHost(void **ptr, size_t bytes) { return alloc(host_allocs, ptr, bytes); }
cudaError_t cudaFreeHost(void *ptr) { return release(host_allocs, ptr, "cudaFreeHost"); }

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (sticky) return sticky;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (bytes == 0) return cudaSuccess;
    if (dst_dev ? !inside(device_allocs, dst, bytes) : inside(device_allocs, dst, bytes, true))
        return fail(cudaErrorInvalidValue, "cudaMemcpy kind %d: destination %p (%zu bytes) is %s", (int)kind, dst, bytes,
                    dst_dev ? "not inside one device allocation" : "device memory");
    if (src_dev ? !inside(device_allocs, src, bytes) : inside(device_allocs, src, bytes, true))
        return fail(cudaErrorInvalidValue, "cudaMemcpy kind %d: source %p (%zu bytes) is %s", (int)kind, src, bytes,
                    src_dev ? "not inside one device allocation" : "device memory");
    memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (!cudasim_stream_ok(stream)) return last_error;
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemset(void *ptr, int value, size_t bytes) {
    if (sticky) return sticky;
    if (bytes && !inside(device_allocs, ptr, bytes))
        return fail(cudaErrorInvalidValue, "cudaMemset: %p (%zu bytes) is not inside one device allocation", ptr, bytes);
    memset(ptr, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t stream) {
    if (!cudasim_stream_ok(stream)) return last_error;
    return cudaMemset(ptr, value, bytes);
}

/* ---- streams: tokens; the work on them ran when it was enqueued ---- */

static std::set<cudaStream_t> streams;

cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    if (sticky) return sticky;
    static uintptr_t next = 0x5000;
    *stream = (cudaStream_t)(next += 16); /* never dereferenced */
    streams.insert(*stream);
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || !streams.erase(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy(%p): not a stream it created", (void *)stream);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!cudasim_stream_ok(stream)) return last_error;
    return sticky;
}

} /* extern "C" */

bool cudasim_stream_ok(cudaStream_t stream) {
    if (!stream || streams.count(stream)) return true;
    fail(cudaErrorInvalidResourceHandle, "stream %p: not a stream it created (or destroyed)", (void *)stream);
    return false;
}

extern "C" {

} /* extern "C" */

/* ---- thread blocks: one fiber per thread ---- */

/* Saves the callee-saved registers on the current stack and its pointer at *save, then continues
 * on stack `next` as the cudasim_switch call that saved it there returns (x86-64 System V). */
extern "C" void cudasim_switch(void **save, void *next);
asm(".text\n"
    ".globl cudasim_switch\n"
    ".type cudasim_switch, @function\n"
    "cudasim_switch:\n"
    "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n    popq %rbp\n"
    "    ret\n"
    ".size cudasim_switch, .-cudasim_switch\n");

enum { RUNNING, WAIT_BLOCK, WAIT_WARP, DONE };
enum { MAX_THREADS = 1024, STACK_BYTES = 256 << 10 };

struct fiber {
    void *sp;    /* the saved stack pointer while it does not run */
    void *tsan;  /* its ThreadSanitizer fiber (CUDASIM_TSAN) */
    char *stack; /* STACK_BYTES, a guard page below */
    int state;
    unsigned long long gen; /* the barrier generation it waits to see pass */
    const char *file;       /* where it waits */
    int line;
};

struct barrier {
    int arrived;
    unsigned long long gen;
    char order[2][2]; /* the addresses ThreadSanitizer orders through, by fiber set and the parity of gen */
    const char *file; /* where the first arrival waits: every other must wait there too */
    int line;
};

struct warp {
    barrier bar;
    unsigned mask;
    uint64_t slot[2][32]; /* the posted values, by the parity of bar.gen (the op after next reuses them) */
    unsigned nonzero[2];  /* the lanes that posted a value other than 0 */
};

/* Two sets of fibers, each with its own stacks (CUDASIM_TSAN: its own ThreadSanitizer fibers):
 * there, the blocks of a launch take turns, so that a block is not ordered after the one before it;
 * otherwise every block runs on the first set. */
static fiber fiber_sets[2][MAX_THREADS];
static int fiber_set;                 /* the set of the running block */
static fiber *fibers = fiber_sets[0]; /* fiber_sets[fiber_set] */
static int n_threads, live, cur;
static barrier block_bar;
static warp warps[MAX_THREADS / 32];
static void *scheduler_sp;
#ifdef CUDASIM_TSAN
static void *scheduler_tsan;
#endif
static char launch_start, launch_end; /* the addresses ordering a launch's blocks after the host, and it after them */
static bool aborting;
static void (*kernel_fn)(void *);
static void *kernel_ctx;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

/* AddressSanitizer is told of every switch, so that it checks the fibers' stacks as stacks. */
#ifdef ASAN
static const void *main_stack_bottom;
static size_t main_stack_size;
static void *fake_stack[MAX_THREADS], *scheduler_fake_stack;
#endif

/* From the running fiber back to the scheduler; an exiting fiber is never resumed. */
static void to_scheduler(bool exiting) {
#ifdef CUDASIM_TSAN
    __tsan_switch_to_fiber(scheduler_tsan, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef ASAN
    __sanitizer_start_switch_fiber(exiting ? NULL : &fake_stack[cur], main_stack_bottom, main_stack_size);
#endif
    cudasim_switch(&fibers[cur].sp, scheduler_sp);
#ifdef ASAN
    __sanitizer_finish_switch_fiber(fake_stack[cur], NULL, NULL);
#else
    (void)exiting;
#endif
}

/* From the scheduler to fiber t, until it waits or exits. */
static void resume(int t) {
#ifdef CUDASIM_TSAN
    __tsan_switch_to_fiber(fibers[t].tsan, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef ASAN
    __sanitizer_start_switch_fiber(&scheduler_fake_stack, fibers[t].stack, STACK_BYTES);
#endif
    cudasim_switch(&scheduler_sp, fibers[t].sp);
#ifdef ASAN
    __sanitizer_finish_switch_fiber(scheduler_fake_stack, NULL, NULL);
#endif
}

extern "C" char cudasim_shared_begin[], cudasim_shared_end[]; /* whole pages: shared.ld */

/* The poison: shared memory holds garbage at the start of a thread block. */
__attribute__((no_sanitize("address"))) static void poison_shared(void) {
    /* volatile: not turned into a memset call, which AddressSanitizer would check against the
     * variables' red zones; 8 bytes at a time (the section is whole pages) */
    for (volatile uint64_t *p = (uint64_t *)cudasim_shared_begin; p < (uint64_t *)cudasim_shared_end; p++)
        *p = 0xA5A5A5A5A5A5A5A5ull;
}

/* The launch fails: every later call does too (a sticky error, as on a GPU). */
static void abandon_launch(void) {
    last_error = sticky = cudaErrorLaunchFailure;
    aborting = true;
}

/* An error inside a kernel: reported, the launch abandoned (control goes back to the scheduler). */
static void kernel_fail(const char *fmt, ...) {
    char where[512];
    snprintf(where, sizeof where, "block (%u) thread (%u): %s", blockIdx.x, threadIdx.x, fmt);
    va_list ap;
    va_start(ap, fmt);
    vsay(where, ap);
    va_end(ap);
    abandon_launch();
    to_scheduler(true);
}

/* Waits at barrier b (the block's, or a warp's) until its generation passes; the last arrival of
 * `expected` releases it. `orders`: the barrier orders memory accesses (__syncthreads does; a
 * shuffle or a ballot passes values, not memory order). */
static void wait_at(barrier &b, int expected, int state, bool orders, const char *file, int line) {
    if (b.arrived == 0) {
        b.file = file, b.line = line;
    } else if (b.line != line || (b.file != file && strcmp(b.file, file) != 0)) {
        kernel_fail("waits at %s:%d while other threads of its %s wait at %s:%d", file, line,
                    state == WAIT_BLOCK ? "block" : "warp", b.file, b.line);
    }
    const unsigned long long gen = b.gen;
    if (orders) hb_release(&b.order[fiber_set][gen & 1]);
    if (++b.arrived == expected) {
        b.arrived = 0;
        b.gen++;
    } else {
        fiber &f = fibers[cur];
        f.state = state, f.gen = gen, f.file = file, f.line = line;
        to_scheduler(false);
    }
    /* every arrival's accesses before the barrier happen before this thread's after it; the next
     * barrier's arrivals release to the other address, so they order nothing here */
    if (orders) hb_acquire(&b.order[fiber_set][gen & 1]);
}

void cudasim_syncthreads(const char *file, int line) { wait_at(block_bar, live, WAIT_BLOCK, true, file, line); }

/* A warp operation's meeting: the lanes of mask post their values; orders: the lanes' memory accesses
 * before it happen before theirs after it (__syncwarp; shuffles and ballots order nothing) */
static const uint64_t *warp_meet(unsigned mask, uint64_t value, unsigned *nonzero, bool orders, const char *file,
                                 int line) {
    warp &w = warps[cur / 32];
    const int lane = cur & 31, first = cur & ~31;
    const int buf = (int)(w.bar.gen & 1);
    if (!(mask >> lane & 1u)) kernel_fail("%s:%d: a warp operation whose mask %#x leaves out the calling lane %d", file, line, mask, lane);
    if (w.bar.arrived == 0) { /* the first lane here: the mask is checked and the slots cleared */
        for (int l = 0; l < 32; l++)
            if ((mask >> l & 1u) && (first + l >= n_threads || fibers[first + l].state == DONE))
                kernel_fail("%s:%d: a warp operation whose mask %#x names lane %d, which has exited or does not exist",
                            file, line, mask, l);
        w.mask = mask;
        memset(w.slot[buf], 0, sizeof w.slot[buf]);
        w.nonzero[buf] = 0;
    } else if (w.mask != mask) {
        kernel_fail("%s:%d: lanes of a warp operation give masks %#x and %#x", file, line, w.mask, mask);
    }
    w.slot[buf][lane] = value;
    if (value) w.nonzero[buf] |= 1u << lane;
    wait_at(w.bar, __builtin_popcount(mask), WAIT_WARP, orders, file, line);
    *nonzero = w.nonzero[buf];
    return w.slot[buf];
}

const uint64_t *cudasim_warp_post(unsigned mask, uint64_t value, unsigned *nonzero, const char *file, int line) {
    return warp_meet(mask, value, nonzero, false, file, line);
}

void cudasim_syncwarp(unsigned mask, const char *file, int line) {
    unsigned nonzero;
    warp_meet(mask, 0, &nonzero, true, file, line);
}

/* A fiber starts here (cudasim_switch "returns" into it) and never returns. */
static void fiber_main(void) {
#ifdef ASAN
    __sanitizer_finish_switch_fiber(NULL, &main_stack_bottom, &main_stack_size);
#endif
    hb_acquire(&launch_start);
    kernel_fn(kernel_ctx);
    hb_release(&launch_end);
    fiber &f = fibers[cur];
    f.state = DONE;
    live--;
    const warp &w = warps[cur / 32];
    if (w.bar.arrived > 0 && (w.mask >> (cur & 31) & 1u))
        kernel_fail("exits while lanes of its warp wait for it at %s:%d", w.bar.file, w.bar.line);
    /* the threads that still run may all be waiting at __syncthreads: this exit releases them */
    if (block_bar.arrived > 0 && block_bar.arrived == live) {
        block_bar.arrived = 0;
        block_bar.gen++;
    }
    to_scheduler(true);
    __builtin_unreachable();
}

static bool runnable(const fiber &f, int t) {
    switch (f.state) {
    case RUNNING: return true;
    case WAIT_BLOCK: return block_bar.gen != f.gen;
    case WAIT_WARP: return warps[t / 32].bar.gen != f.gen;
    default: return false;
    }
}

static void report_deadlock(void) {
    fprintf(stderr, "cudasim: block (%u): every thread that has not exited waits and none can go on:\n", blockIdx.x);
    for (int t = 0; t < n_threads; t++) {
        const fiber &f = fibers[t];
        if (f.state == DONE) continue;
        if (t > 0 && fibers[t - 1].state == f.state && fibers[t - 1].line == f.line) continue; /* one line per run */
        fprintf(stderr, "  thread %d (and the next with the same wait): %s at %s:%d\n", t,
                f.state == WAIT_BLOCK ? "__syncthreads" : "warp operation", f.file, f.line);
    }
    abandon_launch();
}

#ifdef CUDASIM_TSAN
/* Maps the shared-memory section anew: ThreadSanitizer's mmap interceptor, called while the
 * thread's accesses are ignored, clears the section's shadow, forgetting the accesses of the blocks
 * before, whose use of the same shared variables is no race with this block's (on a GPU each block
 * has its own). (Not ignoring, it would record a write by the host of the first 1 KiB only.) */
static bool fresh_shared(void) {
    __tsan_ignore_thread_begin();
    void *mapped = mmap(cudasim_shared_begin, (size_t)(cudasim_shared_end - cudasim_shared_begin), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    __tsan_ignore_thread_end();
    if (mapped == MAP_FAILED) {
        fail(cudaErrorLaunchFailure, "cannot map the shared-memory section anew: %s", strerror(errno));
        return false;
    }
    return true;
}
#else
static bool fresh_shared(void) { return true; }
#endif

static void run_block(void) {
    static int order[MAX_THREADS];
    if (!fresh_shared()) {
        abandon_launch();
        return;
    }
    poison_shared();
    for (int t = 0; t < n_threads; t++) {
        fiber &f = fibers[t];
        if (!f.stack) {
            long page = sysconf(_SC_PAGESIZE);
            char *s = (char *)mmap(NULL, STACK_BYTES + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (s == MAP_FAILED || mprotect(s, page, PROT_NONE)) {
                fail(cudaErrorMemoryAllocation, "cannot map a fiber stack");
                abandon_launch();
                return;
            }
            f.stack = s + page;
        }
        /* what cudasim_switch pops: six registers, then fiber_main as the return address; above
         * it, fiber_main's own return address (none), so that it starts with the stack aligned as
         * after a call */
        void **sp = (void **)(f.stack + STACK_BYTES);
        *--sp = NULL;
        *--sp = (void *)fiber_main;
        for (int r = 0; r < 6; r++) *--sp = NULL;
        f.sp = sp;
        f.state = RUNNING;
        order[t] = t;
    }
    live = n_threads;
    block_bar = barrier{};
    for (int w = 0; w < (n_threads + 31) / 32; w++) warps[w].bar = barrier{};
#ifdef CUDASIM_TSAN /* one ThreadSanitizer fiber per thread index and set */
    scheduler_tsan = __tsan_get_current_fiber();
    for (int t = 0; t < n_threads; t++)
        if (!fibers[t].tsan) fibers[t].tsan = __tsan_create_fiber(0);
#endif
    while (live > 0 && !aborting) {
        for (int t = n_threads - 1; t > 0; t--) { /* a new order every round */
            int j = (int)((rng() >> 32) * (uint64_t)(t + 1) >> 32);
            int x = order[t];
            order[t] = order[j];
            order[j] = x;
        }
        bool progressed = false;
        for (int i = 0; i < n_threads && !aborting; i++) {
            const int t = order[i];
            fiber &f = fibers[t];
            if (!runnable(f, t)) continue;
            f.state = RUNNING;
            cur = t;
            threadIdx = dim3((unsigned)t);
            resume(t);
            progressed = true;
        }
        if (!progressed && live > 0 && !aborting) report_deadlock();
    }
#ifdef CUDASIM_TSAN
    if (aborting) /* the threads stopped in an abandoned launch release what they did, as an exit does */
        for (int t = 0; t < n_threads; t++)
            if (fibers[t].state != DONE) {
                __tsan_switch_to_fiber(fibers[t].tsan, __tsan_switch_to_fiber_no_sync);
                hb_release(&launch_end);
                __tsan_switch_to_fiber(scheduler_tsan, __tsan_switch_to_fiber_no_sync);
            }
#endif
}

void cudasim_run(dim3 grid, dim3 block, void (*kernel)(void *ctx), void *ctx) {
    if (sticky) return;
    if (block.x < 1 || block.x > MAX_THREADS || block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1) {
        fail(cudaErrorInvalidValue, "launch of (%u, %u, %u) blocks of (%u, %u, %u) threads: cudasim runs 1-D grids of 1..%d threads per block",
             grid.x, grid.y, grid.z, block.x, block.y, block.z, MAX_THREADS);
        return;
    }
    static bool seeded;
    if (!seeded) {
        seeded = true;
        if (const char *seed = getenv("CUDASIM_SEED")) rng_state = strtoull(seed, NULL, 0) | 1;
    }
    kernel_fn = kernel, kernel_ctx = ctx;
    gridDim = grid, blockDim = block;
    n_threads = (int)block.x;
    /* the blocks in a shuffled order: a kernel must not depend on it */
    unsigned *blocks = (unsigned *)malloc((size_t)grid.x * sizeof *blocks);
    if (!blocks) {
        fail(cudaErrorMemoryAllocation, "launch of %u blocks: out of memory", grid.x);
        return;
    }
    for (unsigned b = 0; b < grid.x; b++) blocks[b] = b;
    for (unsigned b = grid.x; b > 1; b--) {
        unsigned j = (unsigned)((rng() >> 32) * b >> 32), x = blocks[b - 1];
        blocks[b - 1] = blocks[j];
        blocks[j] = x;
    }
    aborting = false;
    hb_release(&launch_start); /* the host's writes before the launch; not ordered: its blocks */
    for (unsigned b = 0; b < grid.x && !aborting; b++) {
        blockIdx = dim3(blocks[b]);
#ifdef CUDASIM_TSAN
        fiber_set = (int)(b & 1);
        fibers = fiber_sets[fiber_set];
#endif
        run_block();
    }
    hb_acquire(&launch_end);
    free(blocks);
#ifdef ASAN
    if (aborting) /* the abandoned fibers' frames stay poisoned on their stacks */
        for (auto &set : fiber_sets)
            for (fiber &f : set)
                if (f.stack) __asan_unpoison_memory_region(f.stack, STACK_BYTES);
#endif
}
