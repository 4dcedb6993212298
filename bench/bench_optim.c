/* mofo bench optim: the cost of an optimizer step on a GPT-2-small-shaped parameter set (fp32).
 *
 * Rows, each the median of several timed steps after a warm-up step, at 1 and 2 threads:
 *   AdamW        the dense step (libmofo, filter none);
 *   MoFO         alpha 0.15 on 2+-dim tensors, thresholds by radix select;
 *   MoFO (sort)  the same step with thresholds from a full sort of each tensor's |m|;
 *   floor        the traffic of an Adam step without its arithmetic: one pass reading p, g, m, v
 *                and writing p, m, v (28 bytes per parameter), on the same threads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "mofo/optim.h"
#include "optim/internal.h"
#include "cli/timing.h"
#include "optim_shapes.h"

/* GPT-2 small's tensors (124,439,808 entries); other sizes scale the vocabulary and the layer count. */
static int gpt2_shapes(int64_t target, shape **out, int64_t *total) {
    int64_t V = 50257;
    int layers = 12;
    if (target != 124439808) {
        double f = (double)target / 124439808.0;
        V = (int64_t)(V * f) > 256 ? (int64_t)(V * f) : 256;
        layers = (int)lround(12 * f) > 0 ? (int)lround(12 * f) : 1;
    }
    return bench_gpt2_shapes(768, V, 1024, layers, out, total);
}

typedef struct arena {
    float *p, *g;  /* (total) parameters and gradients, all tensors back to back */
    float *m, *v;  /* (total) the floor's stand-ins for the moments */
    float *p0;     /* (total) the initial parameters */
    int64_t total;
} arena;

/* Gradients that change every step, as in training: half of each entry's gradient is drawn afresh
 * (a counter-based hash of the entry and the step) and the whole scale drifts by up to 30%, so the
 * top-k threshold moves from step to step. Untimed; parallel, the same values on any thread count. */
static void change_gradients(arena *a, int step, int threads) {
    float scale = 1.0f + 0.3f * sinf(0.7f * (float)step);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < a->total; i++) {
        uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull ^ ((uint64_t)step << 48);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        float noise = ((float)(z >> 40) / (float)(1 << 24) - 0.5f) * 2e-3f;
        a->g[i] = scale * (0.5f * a->g[i] + 0.5f * noise);
    }
}

/* The median ms of `reps` steps of an optimizer made by `kind` (0 AdamW, 1 MoFO, 2 sort MoFO), after
 * `warmup` untimed steps; *early gets the median of steps 2 to 4 (the momentum still grows from
 * zero, so MoFO's threshold moves and its bracket misses). changing: the gradients change before
 * every step (change_gradients); else the same gradients every step, the bracket's best case. */
static double time_optimizer(int kind, const shape *s, int n, arena *a, int threads, int warmup, int reps,
                             int changing, double *early, mofo_err *err) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.01;
    o.threads = threads;
    if (kind == 0) o.filter = MOFO_FILTER_NONE;
    mofo_optim *opt = mofo_optim_create(&o, err);
    if (!opt) return -1;
    if (kind == 2 && mofo_optim_select_by_sort(opt, err)) return -1;
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = s[i].dims[0] * (s[i].ndim == 2 ? s[i].dims[1] : 1);
        if (mofo_optim_add_param(opt, s[i].name, a->p + off, a->g + off, s[i].ndim, s[i].dims, MOFO_GROUP_AUTO, err) < 0) {
            mofo_optim_destroy(opt);
            return -1;
        }
        off += numel;
    }
    double times[64], first[3];
    if (reps > 64) reps = 64;
    if (warmup < 4) warmup = 4;
    for (int r = -warmup; r < reps; r++) {
        if (changing) change_gradients(a, r + warmup, threads);
        double t0 = (1e3 * cli_now());
        if (mofo_optim_step(opt, 1e-4, err)) {
            mofo_optim_destroy(opt);
            return -1;
        }
        double dt = (1e3 * cli_now()) - t0;
        if (r >= 0) times[r] = dt;
        else if (r + warmup >= 1 && r + warmup <= 3) first[r + warmup - 1] = dt;
    }
    mofo_optim_destroy(opt);
    *early = cli_median(first, 3);
    return cli_median(times, reps);
}

/* The floor of an Adam step: the median ms of a pass that reads p, g, m, v and writes p, m, v (28
 * bytes per parameter) with no arithmetic beyond one add each, on `threads` threads. */
static double floor_ms(float *p, const float *g, float *m, float *v, int64_t n, int threads, int reps) {
    double times[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = (1e3 * cli_now());
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            p[i] += g[i];
            m[i] += g[i];
            v[i] += g[i];
        }
        if (r >= 0) times[r] = (1e3 * cli_now()) - t0;
    }
    return cli_median(times, reps);
}

void bench_optim_help(FILE *out) {
    fprintf(out,
            "usage: mofo bench optim [--params N] [--threads N] [--reps N] [--warmup N] [--json]\n\n"
            "Times one optimizer step on a GPT-2-small-shaped parameter set in fp32: AdamW, MoFO (alpha 0.15),\n"
            "MoFO with thresholds from a full sort, and the floor: one pass that reads p, g, m, v and writes\n"
            "p, m, v (28 bytes per parameter), the traffic of an Adam step without its arithmetic, measured\n"
            "in the same run. Medians of --reps steps after a warm-up; AdamW and MoFO again on gradients that\n"
            "change every step (half of each entry redrawn, the scale drifting), as in training.\n\n"
            "  --params N      parameter count, with an optional K/M/B suffix (default 124M: GPT-2 small)\n"
            "  --threads N     run at N threads only (default: 1 and 2)\n"
            "  --reps N        timed steps per row (default 5; the sort row takes at most 3)\n"
            "  --warmup N      untimed steps before them (default 20; the sort row takes 4): the moments\n"
            "                  reach their steady state, as in a fine-tuning run; the MoFO row's first\n"
            "                  steps (2-4), while the momentum still grows from zero, are reported apart\n"
            "  --device cuda   time the CUDA step instead: AdamW, MoFO (alpha 0.15) and a device copy of 14 bytes\n"
            "                  per parameter (28 bytes of traffic, the floor), medians of CUDA-event timings;\n"
            "                  --params 124M (GPT-2), 1.1B (TinyLlama) or 1.5B (GPT-2 XL); --dtype fp32 or bf16\n"
            "                  (bf16 parameters and gradients, fp32 master weights); --reps (20), --warmup (10)\n"
            "  --json          one JSON object (adamw_ms, mofo_ms, mofo_early_ms, sort_mofo_ms, copy_floor_ms (the floor),\n"
            "                  adamw_changing_ms, mofo_changing_ms at the largest thread count, and a row per thread\n"
            "                  count under \"runs\")\n");
}

static int parse_count(const char *s, int64_t *out) {
    char *end;
    double v = strtod(s, &end);
    double mult = 1;
    if (*end == 'K' || *end == 'k') mult = 1e3, end++;
    else if (*end == 'M' || *end == 'm') mult = 1e6, end++;
    else if (*end == 'B' || *end == 'b' || *end == 'G') mult = 1e9, end++;
    if (end == s || *end || !(v > 0)) return -1;
    *out = (int64_t)(v * mult);
    return 0;
}

int bench_optim(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], "--device") == 0 && strcmp(argv[i + 1], "cpu") != 0) {
#ifdef MOFO_HAVE_CUDA
            return bench_optim_cuda(argc, argv);
#else
            fprintf(stderr, "mofo bench optim: --device %s: this mofo was built without CUDA\n", argv[i + 1]);
            return 2;
#endif
        }
    const char *params_arg = "124M";
    const char *device_arg = "cpu";
    int64_t threads = 0, reps = 5, warmup = 20;
    int json = 0;
    arg_spec specs[] = {
        {"params", ARG_STR, &params_arg, "N", "parameter count (default 124M)"},
        {"threads", ARG_INT, &threads, "N", "threads (default: 1 and 2)"},
        {"reps", ARG_INT, &reps, "N", "timed steps per row (default 5)"},
        {"warmup", ARG_INT, &warmup, "N", "untimed steps first (default 20)"},
        {"json", ARG_FLAG, &json, NULL, "print JSON"},
        {"device", ARG_STR, &device_arg, "D", "cpu (default) or cuda"},
    };
    if (args_parse("bench optim", argc, argv, specs, (int)(sizeof specs / sizeof specs[0]))) return 2;
    if (strcmp(device_arg, "cpu") != 0) {
        fprintf(stderr, "mofo bench optim: write the device as '--device %s'\n", device_arg);
        return 2;
    }
    int64_t target;
    if (parse_count(params_arg, &target) || target < 1000) {
        fprintf(stderr, "mofo bench optim: --params: '%s' is not a count like 124M (at least 1K)\n", params_arg);
        return 2;
    }
    if (target == 124000000) target = 124439808; /* "124M" means GPT-2 small exactly */
    if (threads < 0 || threads > 256 || reps < 1) {
        fprintf(stderr, "mofo bench optim: --threads must be 1..256 and --reps >= 1\n");
        return 2;
    }
    shape *s;
    arena a;
    int n = gpt2_shapes(target, &s, &a.total);
    if (n < 0) return 1;
    size_t bytes = (size_t)a.total * sizeof(float);
    a.p = malloc(bytes);
    a.g = malloc(bytes);
    a.m = calloc(1, bytes);
    a.v = calloc(1, bytes);
    a.p0 = malloc(bytes);
    if (!a.p || !a.g || !a.m || !a.v || !a.p0) {
        fprintf(stderr, "mofo bench optim: out of memory for %lld parameters\n", (long long)a.total);
        return 1;
    }
    uint64_t x = 88172645463325252ull; /* xorshift: fixed gradients, roughly normal by summing */
    for (int64_t i = 0; i < a.total; i++) {
        float sum = 0;
        for (int j = 0; j < 4; j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            sum += (float)(x >> 40) / (float)(1 << 24) - 0.5f;
        }
        a.g[i] = sum * 1e-3f;
        a.p[i] = a.p0[i] = sum * 0.02f;
    }
    int thread_list[2] = {1, 2}, n_threads = 2;
    if (threads) thread_list[0] = (int)threads, n_threads = 1;

    double res[2][7]; /* adamw, mofo, sort, floor, mofo's early steps, adamw and mofo on changing gradients */
    mofo_err err = {0};
    if (!json)
        printf("mofo bench optim: %d tensors, %.1fM parameters (fp32), median of %d steps\n\n"
               "threads   adamw ms   mofo ms   mofo steps 2-4 ms   sort-mofo ms   floor ms   mofo/adamw   adamw/floor   sort/mofo"
               "   changing g: adamw ms   mofo ms   mofo/adamw\n",
               n, a.total / 1e6, (int)reps);
    for (int ti = 0; ti < n_threads; ti++) {
        int nt = thread_list[ti];
        res[ti][3] = floor_ms(a.p, a.g, a.m, a.v, a.total, nt, (int)reps);
        memcpy(a.p, a.p0, (size_t)a.total * sizeof(float)); /* every optimizer starts from the same weights */
        for (int kind = 0; kind < 3; kind++) {
            double early = 0;
            res[ti][kind] = time_optimizer(kind, s, n, &a, nt, kind == 2 ? 4 : (int)warmup, kind == 2 && reps > 3 ? 3 : (int)reps,
                                           0, &early, &err);
            if (kind == 1) res[ti][4] = early;
            if (res[ti][kind] < 0) {
                fprintf(stderr, "mofo bench optim: %s\n", err.msg);
                return 1;
            }
        }
        for (int kind = 0; kind < 2; kind++) {
            double early = 0;
            memcpy(a.p, a.p0, (size_t)a.total * sizeof(float));
            /* both changing rows start from the fixed gradients, kept meanwhile in the floor's m */
            if (kind == 0) memcpy(a.m, a.g, (size_t)a.total * sizeof(float));
            else memcpy(a.g, a.m, (size_t)a.total * sizeof(float));
            if ((res[ti][5 + kind] = time_optimizer(kind, s, n, &a, nt, (int)warmup, (int)reps, 1, &early, &err)) < 0) {
                fprintf(stderr, "mofo bench optim: %s\n", err.msg);
                return 1;
            }
        }
        memcpy(a.g, a.m, (size_t)a.total * sizeof(float)); /* the fixed gradients again for the next thread count */
        if (!json)
            printf("%7d %10.1f %9.1f %19.1f %14.1f %10.1f %12.2f %13.2f %11.1f %22.1f %9.1f %12.2f\n", nt, res[ti][0],
                   res[ti][1], res[ti][4], res[ti][2], res[ti][3], res[ti][1] / res[ti][0], res[ti][0] / res[ti][3],
                   res[ti][2] / res[ti][1], res[ti][5], res[ti][6], res[ti][6] / res[ti][5]);
        fflush(stdout);
    }
    int last = n_threads - 1;
    if (json) {
        printf("{\"params\": %lld, \"threads\": %d, \"adamw_ms\": %.3f, \"mofo_ms\": %.3f, \"mofo_early_ms\": %.3f, "
               "\"sort_mofo_ms\": %.3f, \"copy_floor_ms\": %.3f, \"adamw_changing_ms\": %.3f, \"mofo_changing_ms\": %.3f, "
               "\"runs\": [",
               (long long)a.total, thread_list[last], res[last][0], res[last][1], res[last][4], res[last][2], res[last][3],
               res[last][5], res[last][6]);
        for (int ti = 0; ti < n_threads; ti++)
            printf("%s{\"threads\": %d, \"adamw_ms\": %.3f, \"mofo_ms\": %.3f, \"mofo_early_ms\": %.3f, "
                   "\"sort_mofo_ms\": %.3f, \"copy_floor_ms\": %.3f, \"adamw_changing_ms\": %.3f, \"mofo_changing_ms\": %.3f}",
                   ti ? ", " : "", thread_list[ti], res[ti][0], res[ti][1], res[ti][4], res[ti][2], res[ti][3], res[ti][5],
                   res[ti][6]);
        printf("]}\n");
    } else {
        printf("\ntargets: mofo/adamw <= 1.3 (on changing gradients too), adamw/floor <= 1.5\n");
    }
    free(a.p);
    free(a.g);
    free(a.m);
    free(a.v);
    free(a.p0);
    free(s);
    return 0;
}
