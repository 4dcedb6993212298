/* mofo/optim.h - libmofo: the Momentum-Filtered Optimizer (MoFO, arXiv 2407.20999) and its
 * relatives as a small C library.
 *
 * A step of MoFO is Adam in which, inside each block of parameters, only the fraction alpha of
 * entries with the largest |momentum| move; the moments themselves are updated densely and the
 * decoupled weight decay touches every entry. Per block of n entries, step t >= 1:
 *
 *     p  *= 1 - lr*wd
 *     m   = m + (1-b1)*(g - m);  v = b2*v + (1-b2)*g*g
 *     h   = sqrt(v)/sqrt(1-b2^t) + eps
 *     k   = max(1, floor(alpha*n)); thr = the k-th largest |m| in the block
 *     p  -= lr/(1-b1^t) * m/h   where |m| >= thr  (every entry tied at thr moves)
 *
 * Usage:
 *     mofo_options o;  mofo_options_init(&o, MOFO_RULE_ADAMW);   // MoFO with alpha 0.15
 *     mofo_optim *opt = mofo_optim_create(&o, &err);
 *     mofo_optim_add_param(opt, "wte", w, gw, 2, (int64_t[]){V, C}, MOFO_GROUP_AUTO, &err);
 *     ... each step: fill the gradients, then mofo_optim_step(opt, lr, &err);
 *
 * On a GPU: set o.device = MOFO_DEVICE_CUDA (or mofo_options_set(&o, "device", "cuda", &err)); then
 * data and grad are device pointers (cudaMalloc'd), the moments live in device memory, and
 * mofo_optim_add_param_bf16 registers bf16 parameters with fp32 master weights. Without CUDA in the
 * build or without a device, mofo_optim_create fails with MOFO_ENODEV.
 *
 * No global state: everything lives in the mofo_optim. Functions return 0 or a negative MOFO_E*
 * status and describe the problem in err (which may be NULL). The library never prints or exits.
 * One optimizer must not be used from two threads at once; it runs OpenMP threads itself. */
#ifndef MOFO_OPTIM_H
#define MOFO_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The base update rule. Each can be filtered or dense. */
typedef enum {
    MOFO_RULE_ADAMW, /* Adam with decoupled weight decay (torch.optim.AdamW) */
    MOFO_RULE_LION,  /* Lion (Chen et al. 2023): c = b1*m + (1-b1)*g, p -= lr*sign(c), m = b2*m + (1-b2)*g */
    MOFO_RULE_SGDM   /* SGD with heavy-ball momentum b1: m = b1*m + g, p -= lr*m (decay decoupled) */
} mofo_rule;

/* The score whose top fraction alpha of each block moves. */
typedef enum {
    MOFO_FILTER_MOMENTUM, /* |m| after this step's update (MoFO; for Lion |c|, the momentum it steps on) */
    MOFO_FILTER_GRADIENT, /* |g| */
    MOFO_FILTER_UPDATE,   /* |proposed update|: lr*|m|/h for AdamW (Lion's is the same for every entry) */
    MOFO_FILTER_RANDOM,   /* a uniformly random subset of k entries, drawn afresh each step from seed */
    MOFO_FILTER_NONE      /* no filtering: every parameter is dense */
} mofo_filter;

/* The blocks inside which the top k is taken. */
typedef enum {
    MOFO_PARTITION_TENSOR, /* each tensor is a block (the paper) */
    MOFO_PARTITION_ROWS,   /* groups of rows_per_block rows of the first dimension (e.g. one head) */
    MOFO_PARTITION_MODEL   /* all filtered entries of the model form one block (alpha from the options) */
} mofo_partition;

/* Where the parameters, gradients and state live; chosen when the optimizer is created. */
typedef enum {
    MOFO_DEVICE_CPU, /* host memory, OpenMP threads (the default) */
    MOFO_DEVICE_CUDA /* the current CUDA device's memory; the step runs on mofo_optim_set_stream's stream */
} mofo_device;

/* Which tensors MOFO_GROUP_AUTO filters and decays. */
typedef enum {
    MOFO_POLICY_NDIM, /* 2+ dims: filtered and decayed; 1 dim: dense, no decay (the default) */
    MOFO_POLICY_NAMES /* the authors' rule: filtered unless the name contains "bias" or "norm";
                         no decay where it contains "norm" or "ln_f" */
} mofo_policy;

/* What happens to entries tied with the k-th largest score. */
typedef enum {
    MOFO_TIES_KEEP,   /* all move, so a block may update more than k (the authors' |m| >= thr) */
    MOFO_TIES_EXACT_K /* exactly k move; among tied entries the lowest indices win */
} mofo_ties;

typedef struct mofo_options {
    mofo_rule rule;
    mofo_filter filter;       /* default MOMENTUM */
    mofo_partition partition; /* default TENSOR */
    int64_t rows_per_block;   /* PARTITION_ROWS only; >= 1 */
    mofo_policy policy;       /* default NDIM */
    mofo_ties ties;           /* default KEEP */
    double alpha;             /* fraction of each block that moves, in (0, 1]; default 0.15 */
    double beta1, beta2;      /* AdamW 0.9/0.999; Lion 0.9/0.99; SGDM momentum beta1 = 0.9 */
    double eps;               /* AdamW only; > 0; default 1e-8 */
    double weight_decay;      /* decoupled; >= 0; default 0 */
    uint64_t seed;            /* the random filter's seed; default 0 */
    int threads;              /* OpenMP threads; 0 = OpenMP's default */
    int track_coverage;       /* keep one bit per entry for mofo_stats.coverage; default 1 */
    mofo_device device;       /* default CPU */
    int stochastic_rounding;  /* bf16 parameters: round the fp32 master weights stochastically (seeded
                                 by seed, step and entry) instead of to nearest; default 0 */
} mofo_options;

/* Defaults for a rule (see the fields). */
MOFO_API void mofo_options_init(mofo_options *o, mofo_rule rule);
/* Sets one option by name from text, as a command line or config file gives it: rule, filter,
 * partition, rows_per_block, policy, ties, alpha, beta1, beta2, eps, weight_decay, seed, threads,
 * track_coverage, device (cpu, cuda), stochastic_rounding (0, 1). An unknown name or a value that
 * does not parse fails and names it. Setting
 * "rule" resets the betas to that rule's defaults. */
MOFO_API int mofo_options_set(mofo_options *o, const char *name, const char *value, mofo_err *err);
/* Checks every field; the message names the first bad option and its allowed range. */
MOFO_API int mofo_options_check(const mofo_options *o, mofo_err *err);

MOFO_API const char *mofo_rule_name(mofo_rule r);
MOFO_API const char *mofo_filter_name(mofo_filter f);
MOFO_API const char *mofo_partition_name(mofo_partition p);
MOFO_API const char *mofo_device_name(mofo_device d);

/* A parameter group: options shared by the tensors registered into it. */
typedef struct mofo_group {
    double lr_scale;     /* the group's lr is lr * lr_scale; >= 0 */
    double weight_decay; /* >= 0 */
    double alpha;        /* in (0, 1]; ignored under PARTITION_MODEL */
    int filtered;        /* 1: top-k filtered; 0: dense update */
} mofo_group;

/* lr_scale 1 and the options' weight decay and alpha; filtered unless the filter is NONE. */
MOFO_API void mofo_group_init(mofo_group *g, const mofo_options *o);

typedef struct mofo_optim mofo_optim;

MOFO_API mofo_optim *mofo_optim_create(const mofo_options *o, mofo_err *err);
MOFO_API void mofo_optim_destroy(mofo_optim *opt);

/* Adds a group; returns its id (>= 0) or a negative status. */
MOFO_API int mofo_optim_add_group(mofo_optim *opt, const mofo_group *g, mofo_err *err);

#define MOFO_GROUP_AUTO (-1) /* let the options' policy choose filtered/dense and the decay */

/* Registers a tensor (before the first step). data and grad are fp32 arrays of prod(shape) entries,
 * row-major, owned by the caller, and must stay valid while the optimizer lives. The optimizer
 * reads grad and updates data in place. Returns the parameter's index or a negative status. */
MOFO_API int mofo_optim_add_param(mofo_optim *opt, const char *name, float *data, const float *grad,
                         int ndim, const int64_t *shape, int group, mofo_err *err);

/* Registers bf16 parameters (MOFO_DEVICE_CUDA only): data and grad are device arrays of prod(shape)
 * bf16 values (the bits of __nv_bfloat16). The optimizer keeps fp32 master weights, initialised from
 * data now, and fp32 moments; each step updates the master weights and writes them rounded to bf16
 * into data (to nearest even, or stochastically with the option stochastic_rounding). */
MOFO_API int mofo_optim_add_param_bf16(mofo_optim *opt, const char *name, uint16_t *data, const uint16_t *grad, int ndim,
                              const int64_t *shape, int group, mofo_err *err);

/* One step with learning rate lr (>= 0). A NaN or infinite gradient refuses the step: parameters
 * and state stay untouched and the message names the tensor and the entry. */
MOFO_API int mofo_optim_step(mofo_optim *opt, double lr, mofo_err *err);

/* Points parameter i at other arrays of the same shape: for callers whose buffers move between
 * steps, such as a framework that reallocates gradients (a bf16 parameter's bf16 arrays, cast; under
 * CUDA the next step uploads the new pointers). */
MOFO_API int mofo_optim_set_param(mofo_optim *opt, int i, float *data, const float *grad, mofo_err *err);

/* ---- CUDA: the stream, the master weights ----
 * The stream a CUDA optimizer's work runs on: a cudaStream_t, such as PyTorch's current stream
 * (NULL, the default: the legacy default stream). A step enqueues its kernels there, after what the
 * stream already holds (the backward that wrote the gradients), and returns when they are done (it
 * reads a small report back); a bf16 parameter's master weights are initialised on it when the
 * parameter is added, so set it first. It may change between steps. MOFO_EINVAL on a CPU optimizer. */
MOFO_API int mofo_optim_set_stream(mofo_optim *opt, void *stream, mofo_err *err);
/* The fp32 master weights of bf16 parameter i (device memory; NULL for an fp32 parameter): written
 * by a binding that restores a state by hand, like the moments below. */
MOFO_API float *mofo_optim_master(mofo_optim *opt, int i);

/* ---- parameters sharded across processes (DeepSpeed ZeRO, FSDP: each process holds a slice) ----
 * A per-slice top k is not the tensor's top k. Declaring parameter i a slice of a tensor of
 * full_numel entries makes its threshold the k-th largest key of the whole tensor, k = max(1,
 * floor(alpha full_numel)), found exactly by summing the slices' selection histograms with the
 * all-reduce given here: per step, one all-reduce of 1 count, one of 4096 counts per sharded
 * filtered tensor, and two of 1024 counts per such tensor (the three digits of a radix selection),
 * never the moments. Every process must register its slices in the same order and step together,
 * so the calls match. The slices' updates equal the unsharded tensor's bit for bit. CPU, partition
 * TENSOR and ties KEEP only; set before the first step. A non-finite gradient on any process
 * refuses the step on all of them. Statistics (updated, blocks) stay per process. */
/* Sums counts[0..n) over the processes, in place (SUM of unsigned 64-bit integers); returns 0, or
 * non-zero when the communication failed. */
typedef int (*mofo_allreduce_fn)(uint64_t *counts, size_t n, void *ctx);
MOFO_API int mofo_optim_set_allreduce(mofo_optim *opt, mofo_allreduce_fn fn, void *ctx, mofo_err *err);
MOFO_API int mofo_optim_set_shard(mofo_optim *opt, int i, int64_t full_numel, mofo_err *err);

/* Per-block statistics of the last step. */
typedef struct mofo_block_stats {
    int param;      /* the parameter the block starts in (PARTITION_MODEL: -1) */
    int64_t offset; /* the block's first entry within that parameter */
    int64_t numel;
    int64_t k;       /* max(1, floor(alpha*numel)) */
    int64_t updated; /* entries that moved this step (k, or more with ties) */
} mofo_block_stats;

typedef struct mofo_stats {
    int64_t step;               /* steps taken so far */
    int64_t entries;            /* all registered entries */
    int64_t updated;            /* entries moved by the last step (dense ones included) */
    int64_t ever_updated;       /* entries moved at least once since step 1 (needs track_coverage) */
    double coverage;            /* ever_updated / entries */
    double update_norm;         /* L2 norm of the last step's update, weight decay excluded */
    int n_blocks;               /* filtered blocks */
    const mofo_block_stats *blocks;
    const int64_t *param_updated; /* per parameter: entries moved by the last step */
} mofo_stats;

/* Valid until the next step or destroy. */
MOFO_API const mofo_stats *mofo_optim_stats(const mofo_optim *opt);
MOFO_API int mofo_optim_n_params(const mofo_optim *opt);
MOFO_API const char *mofo_optim_param_name(const mofo_optim *opt, int i);
/* 1 when parameter i is filtered, 0 when dense. */
MOFO_API int mofo_optim_param_filtered(const mofo_optim *opt, int i);

/* The state (moments, step count, coverage bits, the options that shape it) as a safetensors file
 * with tensors "m/NAME", "v/NAME" (AdamW) and "updated/NAME" (coverage bits), written atomically.
 * Load checks that the file belongs to the same rule and parameters; a resumed run continues bit
 * for bit like the uninterrupted one. */
MOFO_API int mofo_optim_save(const mofo_optim *opt, const char *path, mofo_err *err);
MOFO_API int mofo_optim_load(mofo_optim *opt, const char *path, mofo_err *err);
/* The state of each registered parameter from whichever of the n files holds it (the files of a
 * run whose parameters were split otherwise, e.g. over another number of processes); the files must
 * share rule, step and seed. Everything is checked before anything changes. The brackets of the
 * threshold search start afresh, which changes no result, only the first step's speed. */
MOFO_API int mofo_optim_load_parts(mofo_optim *opt, const char *const *paths, int n, mofo_err *err);

/* Direct access to the moment buffers of parameter i (v is NULL for Lion and SGDM); device pointers
 * under MOFO_DEVICE_CUDA. A state saved on one device loads on the other (bf16 parameters add their
 * master weights, "master/NAME", which only a CUDA optimizer with the same bf16 parameter loads). */
MOFO_API float *mofo_optim_m(mofo_optim *opt, int i);
MOFO_API float *mofo_optim_v(mofo_optim *opt, int i);
/* The coverage bits of parameter i: ceil(numel / 64) words, bit e of word w set once entry 64 w + e
 * has moved; NULL without track_coverage (device memory under CUDA). */
MOFO_API uint64_t *mofo_optim_touched(mofo_optim *opt, int i);
/* A state restored by hand, as a language binding does from its own format: after m, v, the
 * coverage bits (and a bf16 parameter's master weights) have been written through the pointers
 * above, sets the step count (the bias correction's t; >= 0) and recounts the entries ever updated.
 * The threshold brackets, which only save time, start afresh. */
MOFO_API int mofo_optim_restore(mofo_optim *opt, int64_t step, mofo_err *err);
/* sizeof(mofo_options), for bindings that allocate one without the header. */
MOFO_API size_t mofo_options_size(void);

#ifdef __cplusplus
}
#endif
#endif
