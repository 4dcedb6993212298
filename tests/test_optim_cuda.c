/* The CUDA step against the CPU step (which test_optim_fixture checks against PyTorch). Without a
 * CUDA device it prints "skipped: no CUDA device" and exits 77, which ctest shows as skipped.
 *
 * Each case runs the same parameters and gradients through a CPU and a CUDA optimizer and compares,
 * after every step: parameters, m and v bit for bit (both evaluate the same expressions of kernels.h
 * without FMA contraction, as the README states; a failure gives the entries that differ and the
 * relative errors), the entries updated per parameter and per block exactly, coverage exactly, and
 * the update norm within 1e-5 (a sum in another order: measured 0 on the simulator, whose kernels
 * sum in the CPU's order, and never yet on a GPU). Cases: the PyTorch fixtures; random tensors of sizes 1 to 50M
 * (odd sizes, many ties, all entries equal, alpha from 1/numel to 1); every rule, filter,
 * partition and tie mode; bf16 parameters against the CPU on their fp32 master weights (rounded to
 * nearest even: the bf16 bits must equal the CPU's rounded bits); stochastic rounding (each bf16
 * value one of the two neighbours of the master weight); a non-finite gradient refused with nothing
 * written; a state saved on the GPU, resumed on the CPU, saved again and resumed on the GPU; what a
 * binding does (its own stream, gradients moved every step, a state restored by hand).
 * MOFO_CUDA_TEST_QUICK=1 keeps every tensor under 70000 entries (for compute-sanitizer);
 * MOFO_CUDA_TEST_MAX_SIZE=N leaves out the random-tensor sizes above N (for the CPU simulation of
 * the kernels, test_optim_cudasim, which runs ~1000x slower than a GPU);
 * MOFO_CUDA_TEST_OPTION_RULES=N runs the option grid for the first N rules only (for the simulation
 * under ThreadSanitizer: the rules differ in per-thread code only). */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/safetensors.h"
#include "mofo/optim.h"
#include "optim/internal.h"

#define MAX_T 16
#define MAX_STEPS 6

static int quick;
static int64_t max_size = INT64_MAX; /* of the random-tensor sizes */
static int option_rules = 3;        /* the option grid for the first N rules (AdamW, Lion, SGD-momentum) */

#define CU(call)                                                                                    \
    do {                                                                                            \
        cudaError_t e_ = (call);                                                                    \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

/* ---- a case: tensors, their initial values and the gradients of each step ---- */

typedef enum { VALUES_RANDOM, VALUES_TIES, VALUES_EQUAL } values_kind;

typedef struct model {
    int n;
    char names[MAX_T][32];
    int ndim[MAX_T];
    int64_t shape[MAX_T][2];
    int64_t numel[MAX_T];
    float *init[MAX_T];             /* (numel) */
    float *grad[MAX_STEPS][MAX_T];  /* (numel) per step */
    int steps;
    int bf16;                       /* register as bf16 on the GPU (values then are bf16-exact) */
} model;

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}
static float uniform(uint64_t *s) { return (float)(rng(s) >> 40) / (float)(1 << 24) - 0.5f; }

static float bf16_round(float x) { /* to nearest even, as __float2bfloat16_rn */
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

static float value(values_kind kind, uint64_t *s, float scale) {
    switch (kind) {
    case VALUES_TIES: return scale * (float)((int)(rng(s) % 7) - 3); /* 7 levels: many ties in |.| */
    case VALUES_EQUAL: return scale;
    default: return scale * (uniform(s) + uniform(s) + uniform(s));
    }
}

static void add_tensor(model *md, const char *name, int ndim, int64_t d0, int64_t d1) {
    int t = md->n++;
    snprintf(md->names[t], sizeof md->names[t], "%s", name);
    md->ndim[t] = ndim;
    md->shape[t][0] = d0;
    md->shape[t][1] = d1;
    md->numel[t] = d0 * (ndim == 2 ? d1 : 1);
}

/* Fills the initial values and the gradients of `steps` steps. */
static void fill(model *md, int steps, values_kind kind, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    md->steps = steps;
    for (int t = 0; t < md->n; t++) {
        md->init[t] = malloc((size_t)md->numel[t] * sizeof(float));
        for (int64_t i = 0; i < md->numel[t]; i++) md->init[t][i] = value(VALUES_RANDOM, &s, 0.02f);
        for (int k = 0; k < steps; k++) {
            md->grad[k][t] = malloc((size_t)md->numel[t] * sizeof(float));
            for (int64_t i = 0; i < md->numel[t]; i++) md->grad[k][t][i] = value(kind, &s, 1e-3f);
        }
        if (md->bf16) {
            for (int64_t i = 0; i < md->numel[t]; i++) md->init[t][i] = bf16_round(md->init[t][i]);
            for (int k = 0; k < steps; k++)
                for (int64_t i = 0; i < md->numel[t]; i++) md->grad[k][t][i] = bf16_round(md->grad[k][t][i]);
        }
    }
}

static void free_model(model *md) {
    for (int t = 0; t < md->n; t++) {
        free(md->init[t]);
        for (int k = 0; k < md->steps; k++) free(md->grad[k][t]);
    }
    memset(md, 0, sizeof *md);
}

/* ---- running a case on one device ---- */

typedef struct run {
    mofo_optim *opt;
    int cuda;
    void *p[MAX_T], *g[MAX_T]; /* host arrays, or device arrays (fp32, or bf16 when md->bf16) */
} run;

static void to_bf16(const float *x, uint16_t *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        out[i] = (uint16_t)(u >> 16); /* x is bf16-exact */
    }
}

/* Copies host fp32 values into a run's array (converted to bf16 for a bf16 run). */
static void put(const run *r, const model *md, void *dst, const float *src, int64_t n) {
    if (!r->cuda) {
        memcpy(dst, src, (size_t)n * 4);
    } else if (md->bf16) {
        uint16_t *b = malloc((size_t)n * 2);
        to_bf16(src, b, n);
        CU(cudaMemcpy(dst, b, (size_t)n * 2, cudaMemcpyHostToDevice));
        free(b);
    } else {
        CU(cudaMemcpy(dst, src, (size_t)n * 4, cudaMemcpyHostToDevice));
    }
}

/* A host copy of n fp32 values of a run's state (p: the parameters, or the master weights). */
static float *get(const run *r, const float *src, int64_t n) {
    float *h = malloc((size_t)n * 4);
    if (!src) memset(h, 0, (size_t)n * 4);
    else if (r->cuda) CU(cudaMemcpy(h, src, (size_t)n * 4, cudaMemcpyDeviceToHost));
    else memcpy(h, src, (size_t)n * 4);
    return h;
}

/* An optimizer on the CPU or the GPU (on `stream` there, NULL for the legacy default stream) holding
 * md's tensors, initialised. */
static int start_on(run *r, const mofo_options *o0, const model *md, int cuda, cudaStream_t stream) {
    mofo_options o = *o0;
    mofo_err err = {0};
    memset(r, 0, sizeof *r);
    r->cuda = cuda;
    o.device = cuda ? MOFO_DEVICE_CUDA : MOFO_DEVICE_CPU;
    r->opt = mofo_optim_create(&o, &err);
    CHECK(r->opt != NULL, "%s", err.msg);
    if (!r->opt) return -1;
    if (stream) CHECK(mofo_optim_set_stream(r->opt, stream, &err) == 0, "%s", err.msg);
    for (int t = 0; t < md->n; t++) {
        size_t bytes = (size_t)md->numel[t] * (cuda && md->bf16 ? 2 : 4);
        if (cuda) {
            CU(cudaMalloc(&r->p[t], bytes));
            CU(cudaMalloc(&r->g[t], bytes));
        } else {
            r->p[t] = malloc(bytes);
            r->g[t] = malloc(bytes);
        }
        put(r, md, r->p[t], md->init[t], md->numel[t]);
        int rc = cuda && md->bf16
                     ? mofo_optim_add_param_bf16(r->opt, md->names[t], r->p[t], r->g[t], md->ndim[t], md->shape[t], MOFO_GROUP_AUTO, &err)
                     : mofo_optim_add_param(r->opt, md->names[t], r->p[t], r->g[t], md->ndim[t], md->shape[t], MOFO_GROUP_AUTO, &err);
        CHECK(rc == t, "add %s: %s", md->names[t], err.msg);
    }
    return 0;
}

static int start(run *r, const mofo_options *o, const model *md, int cuda) { return start_on(r, o, md, cuda, NULL); }

static int step(run *r, const model *md, int k, double lr, mofo_err *err) {
    for (int t = 0; t < md->n; t++) put(r, md, r->g[t], md->grad[k][t], md->numel[t]);
    return mofo_optim_step(r->opt, lr, err);
}

static void stop(run *r, const model *md) {
    for (int t = 0; t < md->n; t++) {
        if (r->cuda) {
            cudaFree(r->p[t]);
            cudaFree(r->g[t]);
        } else {
            free(r->p[t]);
            free(r->g[t]);
        }
    }
    mofo_optim_destroy(r->opt);
}

/* The fp32 weights of tensor t: the parameters, or a bf16 run's master weights. */
static float *weights(const run *r, const model *md, int t) {
    return get(r, r->cuda && md->bf16 ? r->opt->params[t].master : (const float *)r->p[t], md->numel[t]);
}

/* ---- comparing ---- */

static int64_t differing(const float *a, const float *b, int64_t n) {
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], 4) != 0;
    return d;
}

/* Parameters, moments and statistics of the GPU run against the CPU run. */
static void compare(const char *label, int k, const run *cpu, const run *gpu, const model *md) {
    for (int t = 0; t < md->n; t++) {
        int64_t n = md->numel[t];
        float *pc = weights(cpu, md, t), *pg = weights(gpu, md, t);
        float *mc = get(cpu, mofo_optim_m(cpu->opt, t), n), *mg = get(gpu, mofo_optim_m(gpu->opt, t), n);
        float *vc = get(cpu, mofo_optim_v(cpu->opt, t), n), *vg = get(gpu, mofo_optim_v(gpu->opt, t), n);
        int64_t dp = differing(pg, pc, n), dm = differing(mg, mc, n), dv = differing(vg, vc, n);
        CHECK(dp == 0 && dm == 0 && dv == 0,
              "%s step %d %s (%lld entries): %lld weights, %lld m, %lld v differ in their bits (rel err %.3g %.3g %.3g)",
              label, k + 1, md->names[t], (long long)n, (long long)dp, (long long)dm, (long long)dv, rel_err(pg, pc, n),
              rel_err(mg, mc, n), rel_err(vg, vc, n));
        if (gpu->cuda && md->bf16) { /* the bf16 parameters are the master weights rounded */
            uint16_t *b = malloc((size_t)n * 2);
            CU(cudaMemcpy(b, gpu->p[t], (size_t)n * 2, cudaMemcpyDeviceToHost));
            int64_t bad = 0;
            for (int64_t i = 0; i < n; i++) {
                float rounded = bf16_round(pc[i]);
                uint32_t u;
                memcpy(&u, &rounded, 4);
                if (gpu->opt->opt.stochastic_rounding) { /* one of the two bf16 neighbours of the master weight */
                    uint32_t w, lo;
                    memcpy(&w, &pg[i], 4);
                    lo = w >> 16;
                    bad += b[i] != lo && b[i] != lo + 1;
                } else {
                    bad += b[i] != (uint16_t)(u >> 16);
                }
            }
            CHECK(bad == 0, "%s step %d %s: %lld bf16 weights are not the rounded master weights", label, k + 1,
                  md->names[t], (long long)bad);
            free(b);
        }
        free(pc), free(pg), free(mc), free(mg), free(vc), free(vg);
    }
    const mofo_stats *sc = mofo_optim_stats(cpu->opt), *sg = mofo_optim_stats(gpu->opt);
    CHECK(sc->step == sg->step && sc->updated == sg->updated && sc->ever_updated == sg->ever_updated,
          "%s step %d: step %lld/%lld updated %lld/%lld ever %lld/%lld", label, k + 1, (long long)sc->step,
          (long long)sg->step, (long long)sc->updated, (long long)sg->updated, (long long)sc->ever_updated,
          (long long)sg->ever_updated);
    for (int t = 0; t < md->n; t++)
        CHECK(sc->param_updated[t] == sg->param_updated[t], "%s step %d %s: updated CPU %lld GPU %lld", label, k + 1,
              md->names[t], (long long)sc->param_updated[t], (long long)sg->param_updated[t]);
    /* the same host code plans both, so the block lists have the same length by construction */
    int64_t block_diff = 0;
    for (int b = 0; b < sc->n_blocks && sc->n_blocks == sg->n_blocks; b++) block_diff += sc->blocks[b].updated != sg->blocks[b].updated;
    CHECK(block_diff == 0, "%s step %d: %lld blocks updated a different count", label, k + 1, (long long)block_diff);
    double en = fabs(sc->update_norm - sg->update_norm) / (sc->update_norm > 0 ? sc->update_norm : 1);
    CHECK(en <= 1e-5, "%s step %d: update norm CPU %.9g GPU %.9g", label, k + 1, sc->update_norm, sg->update_norm);
}

/* Runs a case on both devices for md->steps steps, comparing after each. */
static void run_case(const char *label, const mofo_options *o, const model *md) {
    run cpu, gpu;
    if (start(&cpu, o, md, 0) || start(&gpu, o, md, 1)) return;
    for (int k = 0; k < md->steps; k++) {
        mofo_err ec = {0}, eg = {0};
        int rc = step(&cpu, md, k, 1e-3, &ec), rg = step(&gpu, md, k, 1e-3, &eg);
        CHECK(rc == 0 && rg == 0, "%s step %d: CPU '%s' GPU '%s'", label, k + 1, ec.msg, eg.msg);
        if (rc || rg) break;
        compare(label, k, &cpu, &gpu, md);
    }
    stop(&cpu, md);
    stop(&gpu, md);
}

/* ---- the cases ---- */

/* The PyTorch fixtures' tensors and gradients (tests/fixtures/optim/). */
static void fixture_cases(void) {
    static const char *names[] = {"w1", "w2", "b1", "ties", "emb", "small"};
    for (int which = 0; which < 2; which++) {
        char path[512];
        snprintf(path, sizeof path, MOFO_FIXTURES "/optim/%s.safetensors", which ? "adamw" : "mofo");
        mofo_st_file *f = NULL;
        mofo_err err = {0};
        CHECK(mofo_st_open(&f, path, &err) == 0, "%s", err.msg);
        if (!f) return;
        model md = {0};
        md.steps = 4;
        int ok = 1;
        for (int t = 0; t < 6 && ok; t++) {
            char key[64];
            snprintf(key, sizeof key, "init/%s", names[t]);
            const mofo_st_tensor *x = mofo_st_find(f, key);
            CHECK(x != NULL, "%s: %s missing", path, key);
            if (!(ok = x != NULL)) break;
            add_tensor(&md, names[t], x->ndim, x->shape[0], x->ndim == 2 ? x->shape[1] : 0);
            md.init[t] = malloc((size_t)x->numel * 4);
            CHECK(mofo_st_to_f32(f, x, md.init[t], x->numel, &err) == 0, "%s", err.msg);
            for (int k = 0; k < 4 && ok; k++) {
                snprintf(key, sizeof key, "grad%d/%s", k + 1, names[t]);
                const mofo_st_tensor *g = mofo_st_find(f, key);
                CHECK(g != NULL && g->numel == x->numel, "%s: %s missing or of another size", path, key);
                if (!(ok = g != NULL && g->numel == x->numel)) break;
                md.grad[k][t] = malloc((size_t)g->numel * 4);
                CHECK(mofo_st_to_f32(f, g, md.grad[k][t], g->numel, &err) == 0, "%s", err.msg);
            }
        }
        mofo_options o;
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        o.weight_decay = 0.01;
        if (which) o.filter = MOFO_FILTER_NONE;
        if (ok) run_case(which ? "fixture adamw" : "fixture mofo", &o, &md);
        free_model(&md);
        mofo_st_close(f);
    }
}

/* One tensor of n entries (2-D when n factors), alone with a small 1-D one. */
static void single_tensor_model(model *md, int64_t n) {
    int64_t rows = 1;
    for (int64_t d = 7; d >= 2; d--)
        if (n % d == 0 && n / d > 1) {
            rows = d;
            break;
        }
    add_tensor(md, "w", 2, rows, n / rows);
    add_tensor(md, "b", 1, 33, 0);
}

static void size_cases(void) {
    static const int64_t sizes[] = {1, 2, 3, 31, 32, 33, 255, 1000, 4097, 65535, 65536, 65537, 100003, 1048579,
                                    5000011, 50000000};
    static const char *kinds[] = {"random", "ties", "equal"};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        if (n > max_size) break;
        for (int kind = 0; kind < 3; kind++) {
            double alphas[5] = {1.0 / (double)n, 0.15, 1.0, 0.01, 0.5};
            int n_alpha = n >= 10000000 ? 2 : quick ? 3 : 5; /* the largest sizes: 1/numel and 0.15 */
            for (int ai = 0; ai < n_alpha; ai++) {
                for (int ties = 0; ties < 2; ties++) {
                    if (n >= 10000000 && ties) continue;
                    model md = {0};
                    single_tensor_model(&md, n);
                    fill(&md, 3, (values_kind)kind, (uint64_t)(n * 31 + kind * 7 + ai));
                    mofo_options o;
                    mofo_options_init(&o, MOFO_RULE_ADAMW);
                    o.alpha = alphas[ai] > 1 ? 1 : alphas[ai];
                    o.weight_decay = 0.1;
                    o.ties = ties ? MOFO_TIES_EXACT_K : MOFO_TIES_KEEP;
                    char label[128];
                    snprintf(label, sizeof label, "n=%lld %s alpha=%.3g %s", (long long)n, kinds[kind], o.alpha,
                             ties ? "exact-k" : "keep");
                    run_case(label, &o, &md);
                    free_model(&md);
                }
            }
        }
        printf("size %lld done\n", (long long)n);
        fflush(stdout);
    }
}

/* A small model of mixed shapes under every rule, filter, partition and tie mode. */
static void option_cases(void) {
    for (int rule = 0; rule < option_rules; rule++)
        for (int filter = 0; filter < 5; filter++)
            for (int part = 0; part < 3; part++)
                for (int ties = 0; ties < 2; ties++) {
                    model md = {0};
                    add_tensor(&md, "wte", 2, 517, quick ? 48 : 192);
                    add_tensor(&md, "attn", 2, 64, 3 * 64);
                    add_tensor(&md, "ln.weight", 1, 64, 0);
                    add_tensor(&md, "tiny", 2, 2, 3);
                    add_tensor(&md, "mlp", 2, quick ? 300 : 1300, 257);
                    fill(&md, 3, part == 1 ? VALUES_TIES : VALUES_RANDOM, (uint64_t)(rule * 100 + filter * 10 + part));
                    mofo_options o;
                    mofo_options_init(&o, (mofo_rule)rule);
                    o.filter = (mofo_filter)filter;
                    o.partition = (mofo_partition)part;
                    o.rows_per_block = 3;
                    o.ties = ties ? MOFO_TIES_EXACT_K : MOFO_TIES_KEEP;
                    o.weight_decay = 0.05;
                    o.seed = 1234;
                    char label[128];
                    snprintf(label, sizeof label, "%s/%s/%s/%s", mofo_rule_name(o.rule), mofo_filter_name(o.filter),
                             mofo_partition_name(o.partition), ties ? "exact-k" : "keep");
                    run_case(label, &o, &md);
                    free_model(&md);
                }
}

static void bf16_cases(void) {
    for (int sr = 0; sr < 2; sr++) {
        model md = {0};
        md.bf16 = 1;
        add_tensor(&md, "w", 2, 301, quick ? 100 : 1000);
        add_tensor(&md, "bias", 1, 301, 0);
        fill(&md, 3, VALUES_RANDOM, 77);
        mofo_options o;
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        o.weight_decay = 0.1;
        o.stochastic_rounding = sr;
        /* the CPU runs fp32 on the bf16 values: its weights are the GPU's master weights */
        run_case(sr ? "bf16 stochastic rounding" : "bf16", &o, &md);
        free_model(&md);
    }
}

/* A NaN or an infinity refuses the step; parameters and moments keep their bits. */
static void nonfinite_case(void) {
    model md = {0};
    add_tensor(&md, "w", 2, 7, quick ? 10000 : 100000);
    add_tensor(&md, "b", 1, 100, 0);
    fill(&md, 2, VALUES_RANDOM, 5);
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    run gpu;
    if (start(&gpu, &o, &md, 1)) return;
    mofo_err err = {0};
    CHECK(step(&gpu, &md, 0, 1e-3, &err) == 0, "%s", err.msg);
    for (int which = 0; which < 2; which++) {
        int t = which ? 1 : 0;
        int64_t at = which ? 99 : 7 * (quick ? 10000 : 100000) - 5;
        md.grad[1][t][at] = which ? INFINITY : NAN;
        float *p0 = get(&gpu, gpu.p[0], md.numel[0]), *m0 = get(&gpu, mofo_optim_m(gpu.opt, 0), md.numel[0]);
        float *v0 = get(&gpu, mofo_optim_v(gpu.opt, 0), md.numel[0]);
        int rc = step(&gpu, &md, 1, 1e-3, &err);
        char want[64];
        snprintf(want, sizeof want, "gradient entry %lld is %s", (long long)at, which ? "infinite" : "NaN");
        CHECK(rc == MOFO_ENONFINITE && strstr(err.msg, want) && strstr(err.msg, md.names[t]), "refusal: %d %s", rc, err.msg);
        float *p1 = get(&gpu, gpu.p[0], md.numel[0]), *m1 = get(&gpu, mofo_optim_m(gpu.opt, 0), md.numel[0]);
        float *v1 = get(&gpu, mofo_optim_v(gpu.opt, 0), md.numel[0]);
        CHECK(!differing(p0, p1, md.numel[0]) && !differing(m0, m1, md.numel[0]) && !differing(v0, v1, md.numel[0]),
              "a refused step wrote");
        CHECK(mofo_optim_stats(gpu.opt)->step == 1, "a refused step counted");
        free(p0), free(m0), free(v0), free(p1), free(m1), free(v1);
        md.grad[1][t][at] = 0;
    }
    stop(&gpu, &md);
    free_model(&md);
}

/* GPU steps 1-2, saved; CPU loads it and takes step 3, saved; GPU loads that and takes step 4: equal
 * to the uninterrupted GPU run. */
static void state_case(void) {
    char dir[] = "/tmp/mofo_cuda_XXXXXX", f1[64], f2[64];
    if (!mkdtemp(dir)) {
        CHECK(0, "state round trip: cannot make a temporary directory %s: %s", dir, strerror(errno));
        return;
    }
    snprintf(f1, sizeof f1, "%s/gpu.safetensors", dir);
    snprintf(f2, sizeof f2, "%s/cpu.safetensors", dir);
    model md = {0};
    add_tensor(&md, "w", 2, 300, quick ? 300 : 3000);
    add_tensor(&md, "b", 1, 300, 0);
    fill(&md, 4, VALUES_RANDOM, 9);
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.1;
    run whole, a, b, c;
    mofo_err err = {0};
    if (start(&whole, &o, &md, 1) || start(&a, &o, &md, 1)) return;
    for (int k = 0; k < 4; k++) CHECK(step(&whole, &md, k, 1e-3, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 2; k++) CHECK(step(&a, &md, k, 1e-3, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_save(a.opt, f1, &err) == 0, "%s", err.msg);
    if (start(&b, &o, &md, 0)) return;
    for (int t = 0; t < md.n; t++) { /* the weights travel beside the state */
        float *w = weights(&a, &md, t);
        memcpy(b.p[t], w, (size_t)md.numel[t] * 4);
        free(w);
    }
    CHECK(mofo_optim_load(b.opt, f1, &err) == 0, "GPU state on the CPU: %s", err.msg);
    CHECK(step(&b, &md, 2, 1e-3, &err) == 0, "%s", err.msg);
    CHECK(mofo_optim_save(b.opt, f2, &err) == 0, "%s", err.msg);
    if (start(&c, &o, &md, 1)) return;
    for (int t = 0; t < md.n; t++) put(&c, &md, c.p[t], b.p[t], md.numel[t]);
    CHECK(mofo_optim_load(c.opt, f2, &err) == 0, "CPU state on the GPU: %s", err.msg);
    CHECK(step(&c, &md, 3, 1e-3, &err) == 0, "%s", err.msg);
    for (int t = 0; t < md.n; t++) {
        float *pw = weights(&whole, &md, t), *pc = weights(&c, &md, t);
        float *mw = get(&whole, mofo_optim_m(whole.opt, t), md.numel[t]), *mc = get(&c, mofo_optim_m(c.opt, t), md.numel[t]);
        int64_t dp = differing(pw, pc, md.numel[t]), dm = differing(mw, mc, md.numel[t]);
        CHECK(dp == 0 && dm == 0, "state round trip %s: %lld weights and %lld m differ from the uninterrupted GPU run",
              md.names[t], (long long)dp, (long long)dm);
        free(pw), free(pc), free(mw), free(mc);
    }
    const mofo_stats *sw = mofo_optim_stats(whole.opt), *sc = mofo_optim_stats(c.opt);
    CHECK(sw->step == 4 && sc->step == 4 && sw->ever_updated == sc->ever_updated, "round trip stats: step %lld/%lld ever %lld/%lld",
          (long long)sw->step, (long long)sc->step, (long long)sw->ever_updated, (long long)sc->ever_updated);
    stop(&whole, &md), stop(&a, &md), stop(&b, &md), stop(&c, &md);
    free_model(&md);
    unlink(f1), unlink(f2), rmdir(dir);
}

/* Step k of a binding's run: the gradients in new device arrays (a framework reallocates them), which
 * mofo_optim_set_param points the optimizer at. */
static void moved_step(run *r, const model *md, int k) {
    mofo_err err = {0};
    for (int t = 0; t < md->n; t++) {
        void *g;
        CU(cudaMalloc(&g, (size_t)md->numel[t] * 2));
        put(r, md, g, md->grad[k][t], md->numel[t]);
        CHECK(mofo_optim_set_param(r->opt, t, r->p[t], g, &err) == 0, "%s", err.msg);
        cudaFree(r->g[t]);
        r->g[t] = g;
    }
    CHECK(mofo_optim_step(r->opt, 1e-3, &err) == 0, "step %d: %s", k + 1, err.msg);
}

/* What a language binding does (mofo.torch): bf16 parameters stepped on its own stream, gradients in
 * new arrays at every step, and a state restored by hand (m, v, coverage bits and master weights
 * written through the pointers, then mofo_optim_restore): equal bit for bit to the plain run. */
static void binding_case(void) {
    model md = {0};
    md.bf16 = 1;
    add_tensor(&md, "w", 2, 300, quick ? 300 : 3000);
    add_tensor(&md, "b", 1, 300, 0);
    fill(&md, 4, VALUES_RANDOM, 21);
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.1;
    mofo_err err = {0};
    cudaStream_t stream;
    CU(cudaStreamCreate(&stream));
    run whole, a, b;
    if (start(&whole, &o, &md, 1) || start_on(&a, &o, &md, 1, stream)) return;
    for (int k = 0; k < 4; k++) CHECK(step(&whole, &md, k, 1e-3, &err) == 0, "%s", err.msg);
    for (int k = 0; k < 2; k++) moved_step(&a, &md, k);
    if (start_on(&b, &o, &md, 1, stream)) return;
    for (int t = 0; t < md.n; t++) {
        size_t n = (size_t)md.numel[t];
        CU(cudaMemcpy(b.p[t], a.p[t], n * 2, cudaMemcpyDeviceToDevice));
        CU(cudaMemcpy(mofo_optim_m(b.opt, t), mofo_optim_m(a.opt, t), n * 4, cudaMemcpyDeviceToDevice));
        CU(cudaMemcpy(mofo_optim_v(b.opt, t), mofo_optim_v(a.opt, t), n * 4, cudaMemcpyDeviceToDevice));
        CU(cudaMemcpy(mofo_optim_master(b.opt, t), mofo_optim_master(a.opt, t), n * 4, cudaMemcpyDeviceToDevice));
        CU(cudaMemcpy(mofo_optim_touched(b.opt, t), mofo_optim_touched(a.opt, t), (n + 63) / 64 * 8,
                      cudaMemcpyDeviceToDevice));
    }
    CHECK(mofo_optim_restore(b.opt, 2, &err) == 0, "restore on the GPU: %s", err.msg);
    CHECK(mofo_optim_stats(b.opt)->ever_updated == mofo_optim_stats(a.opt)->ever_updated,
          "restore: ever updated %lld, saved %lld", (long long)mofo_optim_stats(b.opt)->ever_updated,
          (long long)mofo_optim_stats(a.opt)->ever_updated);
    for (int k = 2; k < 4; k++) moved_step(&b, &md, k);
    for (int t = 0; t < md.n; t++) {
        int64_t n = md.numel[t];
        float *pw = weights(&whole, &md, t), *pb = weights(&b, &md, t);
        float *mw = get(&whole, mofo_optim_m(whole.opt, t), n), *mb = get(&b, mofo_optim_m(b.opt, t), n);
        uint16_t *bw = malloc((size_t)n * 2), *bb = malloc((size_t)n * 2);
        CU(cudaMemcpy(bw, whole.p[t], (size_t)n * 2, cudaMemcpyDeviceToHost));
        CU(cudaMemcpy(bb, b.p[t], (size_t)n * 2, cudaMemcpyDeviceToHost));
        int64_t dp = differing(pw, pb, n), dm = differing(mw, mb, n), db = 0;
        for (int64_t i = 0; i < n; i++) db += bw[i] != bb[i];
        CHECK(dp == 0 && dm == 0 && db == 0,
              "binding %s: %lld master weights, %lld m and %lld bf16 weights differ from the plain run", md.names[t],
              (long long)dp, (long long)dm, (long long)db);
        free(pw), free(pb), free(mw), free(mb), free(bw), free(bb);
    }
    const mofo_stats *sw = mofo_optim_stats(whole.opt), *sb = mofo_optim_stats(b.opt);
    CHECK(sw->step == 4 && sb->step == 4 && sw->updated == sb->updated && sw->ever_updated == sb->ever_updated,
          "binding stats: step %lld/%lld updated %lld/%lld ever %lld/%lld", (long long)sw->step, (long long)sb->step,
          (long long)sw->updated, (long long)sb->updated, (long long)sw->ever_updated, (long long)sb->ever_updated);
    stop(&whole, &md), stop(&a, &md), stop(&b, &md);
    CU(cudaStreamDestroy(stream));
    free_model(&md);
}

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    quick = getenv("MOFO_CUDA_TEST_QUICK") && atoi(getenv("MOFO_CUDA_TEST_QUICK"));
    if (getenv("MOFO_CUDA_TEST_MAX_SIZE")) max_size = atoll(getenv("MOFO_CUDA_TEST_MAX_SIZE"));
    if (quick && max_size > 70000) max_size = 70000;
    if (getenv("MOFO_CUDA_TEST_OPTION_RULES")) option_rules = atoi(getenv("MOFO_CUDA_TEST_OPTION_RULES"));
    static const struct {
        const char *name;
        void (*run)(void);
    } groups[] = {{"fixtures", fixture_cases}, {"non-finite", nonfinite_case}, {"state", state_case},
                  {"bf16", bf16_cases},         {"binding", binding_case},     {"options", option_cases},
                  {"sizes", size_cases}};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        groups[i].run();
        printf("%s done\n", groups[i].name);
        fflush(stdout);
    }
    return CHECK_DONE();
}
