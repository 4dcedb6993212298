/* mofo bench train: training steps (forward + backward + optimizer step) of randomly initialised
 * models shaped like GPT-2 small (124M) or TinyLlama-1.1B, at 1 and 2 threads, with MoFO, dense
 * AdamW or LoRA (the frozen base gets no gradient: one process per method to compare peak RSS).
 *
 * Each row: the median over the timed steps (after one warm-up step) of the whole step and of its
 * parts, tokens per second, and the process's peak RSS so far (--device cuda: the most device
 * memory in use after a step, less what was in use before the model; each part timed to the end
 * of its device work). Memory is also predicted: weights + gradients + the optimizer's two moments
 * (4 floats per parameter) + activations (README formula). */
#define _DEFAULT_SOURCE /* getloadavg */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend/backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/load.h"
#include "cli/threads.h"
#include "model/model.h"
#include "mofo/optim.h"
#include "train/lora.h"
#include "cli/timing.h"
#include "bench_train_ranks.h"

static const char *arch = "gpt2", *size;
static int64_t batch, seq, threads, steps = 3, warmup = 10, ranks;
static const char *device, *precision;
static const char *method = "mofo";
static int json_out;

static const arg_spec SPECS[] = {
    {"arch", ARG_STR, &arch, "gpt2|llama", "model family (default gpt2)"},
    {"size", ARG_STR, &size, "124M|1.1B", "shape: gpt2 124M, llama 1.1B (TinyLlama); 'tiny' for a smoke test"},
    {"batch", ARG_INT, &batch, "B", "sequences per step (default 4 for gpt2, 1 for llama)"},
    {"seq", ARG_INT, &seq, "T", "tokens per sequence (default 64 for gpt2, 128 for llama)"},
    {"threads", ARG_INT, &threads, "N", "one row with N threads (default: rows for 1 and 2)"},
    {"steps", ARG_INT, &steps, "S", "timed steps per row after the warm-up (default 3)"},
    {"warmup", ARG_INT, &warmup, "W", "untimed steps first (default 10): MoFO's bracket settles; steps 2-4 inside "
                                      "them are reported apart as the early regime (early_ms)"},
    {"method", ARG_STR, &method, "M", "mofo (alpha 0.15; the default) | adamw | lora (rank 8 on every linear layer, "
                                      "AdamW on the adapters, the base frozen)"},
    {"ranks", ARG_INT, &ranks, "N", "instead: N processes x 1 thread (mpirun mofo finetune) against 1 x N threads, "
                                    "and the bytes each process sends per step"},
    {"device", ARG_STR, &device, "cpu|cuda", "where the model trains: cpu (default) or cuda (the GPU's time to the end "
     "of each part)"},
    {"precision", ARG_STR, &precision, "fp32|tf32|bf16", CLI_PRECISION_HELP},
    {"json", ARG_FLAG, &json_out, NULL, "one JSON object per row"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void bench_train_help(FILE *out) {
    args_help(out, "bench train", "[--arch gpt2|llama] [--size 124M|1.1B] [--method mofo|adamw|lora] [--batch B] [--seq T] [--steps S] [--warmup W] [--threads N] [--ranks N] [--device cpu|cuda] [--precision fp32|tf32|bf16] [--json]",
              SPECS, N_SPECS);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int bench_train(int argc, char **argv) {
    if (args_parse("bench train", argc, argv, SPECS, N_SPECS)) return 2;
    int llama = strcmp(arch, "llama") == 0;
    if (!size) size = llama ? "1.1B" : "124M";
    if (!batch) batch = llama ? 1 : 4;
    if (!seq) seq = llama ? 128 : 64;
    if (batch < 1 || seq < 2 || steps < 1 || threads < 0 || warmup < 3 || batch * seq > (1 << 24)) {
        fprintf(stderr, "mofo bench train: --batch, --seq and --steps must be positive, --warmup at least 3\n");
        return 2;
    }
    int lora = strcmp(method, "lora") == 0, dense = strcmp(method, "adamw") == 0;
    if (!lora && !dense && strcmp(method, "mofo") != 0) {
        fprintf(stderr, "mofo bench train: --method '%s': use mofo, adamw or lora\n", method);
        return 2;
    }
    mofo_err err = {0};
    mofo_model_config cfg;
    if (mofo_config_preset(&cfg, arch, size, &err)) {
        fprintf(stderr, "mofo bench train: %s\n", err.msg);
        return 2;
    }
    int B = (int)batch, T = (int)seq;
    if (ranks < 0 || (ranks > 0 && B < ranks)) {
        fprintf(stderr, "mofo bench train: --ranks %lld: must be >= 1 and at most --batch\n", (long long)ranks);
        return 2;
    }
    if (cfg.pos == MOFO_POS_LEARNED && T > cfg.max_T) {
        fprintf(stderr, "mofo bench train: --seq %d exceeds the model's %d positions\n", T, cfg.max_T);
        return 2;
    }
    mofo_device dev;
    mofo_precision prec;
    if (cli_parse_device("bench train", device, &dev) || cli_parse_precision("bench train", precision, &prec)) return 2;
    if (ranks > 0 && (dev != MOFO_DEVICE_CPU || prec != MOFO_PRECISION_FP32)) {
        fprintf(stderr, "mofo bench train: --ranks runs on the CPU in fp32 only\n");
        return 2;
    }
    if (ranks > 0) return bench_train_ranks(&cfg, method, B, T, (int)steps, (int)ranks, json_out);
    mofo_model *m = NULL;
    mofo_lora *l = NULL;
    const mofo_backend *be = mofo_backend_for(dev, &err);
    size_t device_base = be ? be->bytes_in_use() : 0, device_peak = device_base; /* 0 on the CPU */
    double t0 = (1e3 * cli_now());
    if (mofo_model_create(&m, &cfg, 1, 0.02f, &err) || mofo_model_to_device(m, dev, &err) ||
        mofo_model_set_precision(m, prec, &err) ||
        (lora ? mofo_lora_create(&l, m, "q,k,v,o,gate,up,down", 8, 16, 1, &err) || mofo_lora_attach(l, m, &err)
              : mofo_model_alloc_grads(m, &err))) {
        fprintf(stderr, "mofo bench train: %s\n", err.msg);
        mofo_lora_free(l);
        mofo_model_free(m);
        return 1;
    }
    double init_ms = (1e3 * cli_now()) - t0;
    int *ids = malloc(sizeof(int) * (size_t)B * T), *tg = malloc(sizeof(int) * (size_t)B * T);
    uint64_t r = 88172645463325252ull;
    for (int i = 0; i < B * T; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        ids[i] = (int)(r % (uint64_t)cfg.V);
    }
    for (int i = 0; i < B * T; i++) tg[i] = (i % T) + 1 < T ? ids[i + 1] : -100;
    double params_m = m->n_floats / 1e6, acts_mb = mofo_model_act_floats(&cfg, B, T) * 4.0 / (1 << 20),
           predicted_mb = m->n_floats * (lora ? 4.0 : 16.0) / (1 << 20) + acts_mb; /* LoRA: weights only */
    if (!json_out) {
        printf("mofo bench train: %s %s (%.1fM parameters) on %s, %s products, B=%d T=%d, %s, %d timed steps per row "
               "after %d warm-up steps\n", arch, size, params_m, mofo_device_name(dev), mofo_precision_name(prec), B, T,
               lora ? "LoRA rank 8 (AdamW on the adapters)" : dense ? "AdamW (dense)" : "MoFO alpha 0.15", (int)steps, (int)warmup);
        int par = openblas_get_parallel();
        const char *wait = getenv("OMP_WAIT_POLICY");
        double load[1] = {0};
        getloadavg(load, 1);
        printf("OpenBLAS %s build%s%s; load average before the run %.2f (other processes share the cores)\n",
               par == 2 ? "OpenMP" : par == 1 ? "pthreads" : "sequential", wait ? ", OMP_WAIT_POLICY=" : "",
               wait ? wait : "", load[0]);
        printf("memory predicted: %s %.0f MB + activations %.0f MB = %.0f MB; init %.1f s\n\n",
               lora ? "weights (adapters aside)" : "weights+grads+m+v", m->n_floats * (lora ? 4.0 : 16.0) / (1 << 20),
               acts_mb, predicted_mb, init_ms / 1e3);
        printf("%7s %11s %10s %11s %12s %10s %14s %12s %8s\n", "threads", "ms/step", "forward", "backward", "optimizer",
               "tokens/s", "steps 2-4 ms", dev == MOFO_DEVICE_CPU ? "peak RSS MB" : "device MB", "loss");
    }
    int t_lo = threads ? (int)threads : 1, t_hi = threads ? (int)threads : 2, rc = 0;
    double *tot = malloc(sizeof(double) * (size_t)steps * 4), *fw = tot + steps, *bw = fw + steps, *op = bw + steps;
    double early[3]; /* steps 2-4 */
    for (int nt = t_lo; nt <= t_hi && rc == 0; nt++) {
        cli_set_threads(nt);
        mofo_options o;
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        o.weight_decay = 0.01;
        o.threads = nt;
        o.device = dev;
        if (lora || dense) o.filter = MOFO_FILTER_NONE;
        mofo_optim *opt = mofo_optim_create(&o, &err);
        if (!opt || (lora ? mofo_lora_register(l, opt, NULL, 0, &err) : mofo_model_register(m, opt, &err))) {
            fprintf(stderr, "mofo bench train: %s\n", err.msg);
            mofo_optim_destroy(opt);
            rc = 1;
            break;
        }
        float loss = NAN, loss_first = NAN; /* the loss of the warm-up step, then of the last */
        for (int s = -(int)warmup; s < steps && rc == 0; s++) { /* s < 0: the warm-up */
            double a = (1e3 * cli_now());
            mofo_model_zero_grads(m);
            if (l) mofo_lora_zero_grads(l);
            rc = mofo_model_forward(m, ids, tg, B, T, &loss, &err);
            double b = (1e3 * cli_now());
            if (s == -(int)warmup) loss_first = loss;
            if (rc == 0) rc = mofo_model_backward(m, ids, tg, &err);
            m->be->sync(); /* the device's backward done before the optimizer's clock starts */
            double c = (1e3 * cli_now());
            if (rc == 0) rc = mofo_optim_step(opt, 1e-4, &err);
            double d = (1e3 * cli_now());
            size_t in_use = m->be->bytes_in_use();
            device_peak = in_use > device_peak ? in_use : device_peak;
            if (s + warmup >= 1 && s + warmup <= 3) early[s + warmup - 1] = d - a;
            if (s >= 0) {
                tot[s] = d - a;
                fw[s] = b - a;
                bw[s] = c - b;
                op[s] = d - c;
            }
        }
        mofo_optim_destroy(opt);
        if (rc) {
            fprintf(stderr, "mofo bench train: %s\n", err.msg);
            break;
        }
        int S = (int)steps;
        double ms = cli_median(tot, S), f = cli_median(fw, S), bk = cli_median(bw, S), om = cli_median(op, S);
        double tps = B * T / (ms / 1e3), rss = peak_rss_mb(), early_ms = cli_median(early, 3);
        double device_mb = (double)(device_peak - device_base) / (1 << 20); /* what this run added on the GPU */
        if (json_out)
            printf("{\"arch\": \"%s\", \"size\": \"%s\", \"method\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", \"batch\": %d, \"seq\": %d, \"threads\": %d, "
                   "\"ms_per_step\": %.1f, \"forward_ms\": %.1f, \"backward_ms\": %.1f, \"optimizer_ms\": %.1f, "
                   "\"tokens_per_s\": %.1f, \"early_ms\": %.1f, \"warmup\": %d, \"peak_rss_mb\": %.0f, \"peak_device_mb\": %.0f, "
                   "\"predicted_mb\": %.0f, "
                   "\"loss_first\": %.4f, \"loss\": %.4f}\n",
                   arch, size, method, mofo_device_name(dev), mofo_precision_name(prec), B, T, nt, ms, f, bk, om, tps, early_ms, (int)warmup, rss, device_mb, predicted_mb, loss_first,
                   loss);
        else
            printf("%7d %11.1f %10.1f %11.1f %12.1f %10.1f %14.1f %12.0f %8.4f\n", nt, ms, f, bk, om, tps, early_ms,
                   dev == MOFO_DEVICE_CPU ? rss : device_mb, loss);
        fflush(stdout);
    }
    free(tot);
    free(ids);
    free(tg);
    mofo_lora_free(l);
    mofo_model_free(m);
    return rc;
}
