/* mofo bench optim --device cuda: the CUDA step on GPT-2 124M, TinyLlama-1.1B or GPT-2 1.5B shapes.
 *
 * Rows, each the median of --reps steps timed with CUDA events after --warmup steps:
 *   AdamW   the dense step (filter none);
 *   MoFO    alpha 0.15 on the 2+-dim tensors (the default policy);
 *   floor   a device-to-device copy of 14 bytes per parameter: 28 bytes of traffic, what an Adam
 *           step must move (read p, g, m, v; write p, m, v in fp32; in bf16 the master weights,
 *           the bf16 gradient and the bf16 copy of the weights make the same 28 bytes).
 * A step includes its one read back of the statistics. Gradients are fixed random values. */
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/timing.h"
#include "mofo/optim.h"
#include "optim_shapes.h"

#define MAX_REPS 200

static int cuda_ok(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 1;
    fprintf(stderr, "mofo bench optim: %s: %s\n", what, cudaGetErrorString(e));
    return 0;
}

/* Fills n device bytes from a host pattern of random values (bf16: their top halves). */
static int fill_random(void *dst, int64_t n_values, int bf16, uint64_t seed, float scale) {
    enum { PATTERN = 1 << 22 };
    float *h = malloc(PATTERN * sizeof(float));
    if (!h) return 0;
    uint64_t x = seed | 1;
    for (int i = 0; i < PATTERN; i++) {
        float sum = 0;
        for (int j = 0; j < 4; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            sum += (float)(x >> 40) / (float)(1 << 24) - 0.5f;
        }
        h[i] = sum * scale;
    }
    if (bf16) {
        uint16_t *b = (uint16_t *)h; /* in place: entry i's top half lands at 2i bytes, behind the reads */
        for (int i = 0; i < PATTERN; i++) {
            uint32_t u;
            memcpy(&u, &h[i], 4);
            b[i] = (uint16_t)(u >> 16);
        }
    }
    size_t width = bf16 ? 2 : 4;
    int ok = 1;
    for (int64_t at = 0; at < n_values && ok; at += PATTERN) {
        int64_t n = n_values - at < PATTERN ? n_values - at : PATTERN;
        ok = cuda_ok(cudaMemcpy((char *)dst + (size_t)at * width, h, (size_t)n * width, cudaMemcpyHostToDevice), "fill");
    }
    free(h);
    return ok;
}

/* The median ms of `reps` steps (after `warmup`) of AdamW (mofo = 0) or MoFO (mofo = 1). */
static double time_steps(int mofo, const shape *s, int n, void *p, void *g, int bf16, int warmup, int reps) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.device = MOFO_DEVICE_CUDA;
    o.weight_decay = 0.01;
    if (!mofo) o.filter = MOFO_FILTER_NONE;
    mofo_err err = {0};
    mofo_optim *opt = mofo_optim_create(&o, &err);
    size_t width = bf16 ? 2 : 4;
    int64_t off = 0;
    for (int i = 0; i < n && opt; i++) {
        int64_t numel = s[i].dims[0] * (s[i].ndim == 2 ? s[i].dims[1] : 1);
        void *pi = (char *)p + (size_t)off * width, *gi = (char *)g + (size_t)off * width;
        int rc = bf16 ? mofo_optim_add_param_bf16(opt, s[i].name, pi, gi, s[i].ndim, s[i].dims, MOFO_GROUP_AUTO, &err)
                      : mofo_optim_add_param(opt, s[i].name, pi, gi, s[i].ndim, s[i].dims, MOFO_GROUP_AUTO, &err);
        if (rc < 0) {
            mofo_optim_destroy(opt);
            opt = NULL;
        }
        off += numel;
    }
    if (!opt) {
        fprintf(stderr, "mofo bench optim: %s\n", err.msg);
        return -1;
    }
    double times[MAX_REPS];
    cudaEvent_t t0, t1;
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    double result = 0;
    for (int r = -warmup; r < reps; r++) {
        cudaEventRecord(t0, 0);
        if (mofo_optim_step(opt, 1e-4, &err)) {
            fprintf(stderr, "mofo bench optim: %s\n", err.msg);
            result = -1;
            break;
        }
        cudaEventRecord(t1, 0);
        cudaEventSynchronize(t1);
        float ms = 0;
        cudaEventElapsedTime(&ms, t0, t1);
        if (r >= 0) times[r] = ms;
    }
    if (result == 0) result = cli_median(times, reps);
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    mofo_optim_destroy(opt);
    return result;
}

/* The median ms of a device-to-device copy of `bytes` (read plus write: twice that in traffic). */
static double time_copy(size_t bytes, int reps) {
    void *a = NULL, *b = NULL;
    if (!cuda_ok(cudaMalloc(&a, bytes), "allocating the copy's source") ||
        !cuda_ok(cudaMalloc(&b, bytes), "allocating the copy's destination")) {
        cudaFree(a);
        return -1;
    }
    cudaMemset(a, 1, bytes);
    double times[MAX_REPS];
    cudaEvent_t t0, t1;
    cudaEventCreate(&t0);
    cudaEventCreate(&t1);
    for (int r = -2; r < reps; r++) {
        cudaEventRecord(t0, 0);
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0);
        cudaEventRecord(t1, 0);
        cudaEventSynchronize(t1);
        float ms = 0;
        cudaEventElapsedTime(&ms, t0, t1);
        if (r >= 0) times[r] = ms;
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    cudaFree(a);
    cudaFree(b);
    return cli_median(times, reps);
}

int bench_optim_cuda(int argc, char **argv) {
    const char *params_arg = "124M", *dtype_arg = "fp32", *device_arg = "cuda";
    int64_t reps = 20, warmup = 10;
    int json = 0;
    arg_spec specs[] = {
        {"device", ARG_STR, &device_arg, "D", "cuda"},
        {"params", ARG_STR, &params_arg, "NAME", "124M (GPT-2), 1.1B (TinyLlama) or 1.5B (GPT-2 XL)"},
        {"dtype", ARG_STR, &dtype_arg, "T", "fp32 or bf16 (bf16 parameters and gradients, fp32 master weights)"},
        {"reps", ARG_INT, &reps, "N", "timed steps per row (default 20)"},
        {"warmup", ARG_INT, &warmup, "N", "untimed steps first (default 10)"},
        {"json", ARG_FLAG, &json, NULL, "print JSON"},
    };
    if (args_parse("bench optim", argc, argv, specs, (int)(sizeof specs / sizeof specs[0]))) return 2;
    int bf16 = strcmp(dtype_arg, "bf16") == 0;
    if (strcmp(device_arg, "cuda") != 0 || (!bf16 && strcmp(dtype_arg, "fp32") != 0) || reps < 1 || reps > MAX_REPS ||
        warmup < 0) {
        fprintf(stderr, "mofo bench optim: --device cuda, --dtype fp32|bf16, --reps 1..%d\n", MAX_REPS);
        return 2;
    }
    shape *s = NULL;
    int64_t total = 0;
    int n = bench_named_shapes(params_arg, &s, &total);
    if (n < 0) {
        fprintf(stderr, "mofo bench optim: --params %s: on CUDA one of 124M, 1.1B, 1.5B\n", params_arg);
        return 2;
    }
    int dev = 0;
    struct cudaDeviceProp prop;
    if (!cuda_ok(cudaGetDevice(&dev), "no CUDA device") || !cuda_ok(cudaGetDeviceProperties(&prop, dev), "device properties")) {
        free(s);
        return 1;
    }
    int runtime = 0;
    cudaRuntimeGetVersion(&runtime);
    /* the floor first, while the optimizers' memory is free */
    double floor = time_copy((size_t)total * 14, (int)reps);
    size_t width = bf16 ? 2 : 4;
    void *p = NULL, *g = NULL;
    int ok = floor > 0 && cuda_ok(cudaMalloc(&p, (size_t)total * width), "allocating the parameters") &&
             cuda_ok(cudaMalloc(&g, (size_t)total * width), "allocating the gradients") &&
             fill_random(p, total, bf16, 88172645463325252ull, 0.02f) && fill_random(g, total, bf16, 7, 1e-3f);
    double adamw = ok ? time_steps(0, s, n, p, g, bf16, (int)warmup, (int)reps) : -1;
    double mofo = adamw > 0 ? time_steps(1, s, n, p, g, bf16, (int)warmup, (int)reps) : -1;
    cudaFree(p);
    cudaFree(g);
    free(s);
    if (mofo < 0) return 1;
    if (json) {
        printf("{\"device\": \"cuda\", \"gpu\": \"%s\", \"cuda_runtime\": %d, \"params\": %lld, \"shapes\": \"%s\", "
               "\"dtype\": \"%s\", \"adamw_ms\": %.4f, \"mofo_ms\": %.4f, \"copy_floor_ms\": %.4f, \"mofo_over_adamw\": %.3f, "
               "\"adamw_over_floor\": %.3f, \"floor_tb_per_s\": %.3f}\n",
               prop.name, runtime, (long long)total, params_arg, dtype_arg, adamw, mofo, floor, mofo / adamw, adamw / floor,
               28.0 * (double)total / (floor * 1e9));
    } else {
        printf("mofo bench optim --device cuda: %s, CUDA runtime %d, %s shapes (%.1fM parameters), %s, median of %d steps\n\n"
               "  adamw ms   mofo ms   floor ms   mofo/adamw   adamw/floor\n"
               "%10.3f %9.3f %10.3f %12.2f %13.2f\n\n"
               "floor: a device copy of 14 bytes per parameter (28 bytes of traffic), %.2f TB/s\n"
               "targets: mofo/adamw <= 1.2, adamw/floor <= 1.3\n",
               prop.name, runtime, params_arg, total / 1e6, dtype_arg, (int)reps, adamw, mofo, floor, mofo / adamw,
               adamw / floor, 28.0 * (double)total / (floor * 1e9));
    }
    return 0;
}
