/* The trainer on the CUDA backend (mofo_train_opts.device = MOFO_DEVICE_CUDA: the model, theta0,
 * LoRA's adapters and libmofo's optimizer in device memory) against the same run on the CPU. Built
 * as test_trainer_device_cudasim on the simulator (the engine's CUDA kernels and libmofo's run there
 * as C++; cuBLAS by OpenBLAS), on every machine, and as test_trainer_device on a real GPU where the
 * build has CUDA (exit 77 without a device; the tolerances were measured on the simulator only).
 * For every method, 3 steps of llama-tiny and gpt2-tiny with clipping, weight decay and the l1/l2
 * pull (and for mofo, adamw and lora with bf16 products: against the CPU's bf16 run, and against its
 * fp32 run within bf16's tolerance):
 *   - per step: loss, gradient norm, penalty, updated and changed fractions and the distance from
 *     theta0 against the CPU's (tolerances below, each 10x the error measured);
 *   - the final weights (LoRA: merged) against the CPU's, MoFO's near-tie selection flips counted
 *     apart as in test_train_traj;
 *   - a checkpoint written on the device after step 2 and resumed by a new device trainer: step 3
 *     equal bit for bit to the uninterrupted device run;
 *   - the final model saved from the device loads back (on the host) equal to the device's weights;
 *   - on the simulator, a card too small for each part in turn: the error names it. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "check.h"
#include "token_records.h"
#include "device.h"
#include "eval/adapter.h"
#include "io/safetensors.h"
#include "mofo/engine.h"
#include "train/train.h"

#ifndef MOFO_TEST_DEVICE_CUDA
#error "test_trainer_device runs on the CUDA backend: build it with MOFO_TEST_DEVICE_CUDA"
#endif

#define STEPS 3
#define LR 1e-3

static char tmp[64] = "/tmp/mofo_trainer_device_XXXXXX";

static mofo_trainer *make(const char *model, const char *data, mofo_method method, mofo_device device,
                          mofo_precision prec) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, model);
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.model_dir = dir, o.data_path = data, o.out_dir = tmp, o.method = method, o.device = device;
    o.lr = LR, o.sched = MOFO_SCHED_CONSTANT, o.warmup = 0, o.steps = STEPS, o.batch = 2, o.seq_len = 16;
    o.clip = 0.5, o.weight_decay = 0.01, o.shuffle = 0, o.threads = 2;
    o.reg = method == MOFO_METHOD_L1 || method == MOFO_METHOD_L2 ? 0.05 : 0;
    o.lora_rank = 4, o.lora_alpha = 8, o.precision = prec;
    mofo_trainer *t = NULL;
    mofo_err err = {0};
    CHECK(mofo_trainer_create(&t, &o, &err) == 0, "%s %s on %s (%s): %s", model, mofo_method_name(method),
          mofo_device_name(device), mofo_precision_name(prec), err.msg);
    return t;
}

/* The trained weights on the host (LoRA: merged). */
static float *host_weights(const mofo_trainer *t) {
    mofo_err err = {0};
    float *w = mofo_trainer_weights(t, &err);
    CHECK(w != NULL, "%s", err.msg);
    if (!w) return NULL;
    float *h = test_host_copy(t->m, w, t->m->n_floats);
    if (w != t->m->params) t->m->be->free(w);
    return h;
}

/* |a - b| / max(|b|, floor) */
static double rel(double a, double b, double floor) { return fabs(a - b) / fmax(fabs(b), floor); }

/* One comparison of the device against the CPU: the precisions of their products, the tolerances,
 * and the worst errors seen (printed at the end). */
typedef struct comparison {
    const char *what;
    mofo_precision dev, cpu;
    double loss, norm, dist, moved, changed, weight; /* tolerances, as measured in the table's comments */
    int flips;
    double worst_loss, worst_norm, worst_dist, worst_moved, worst_changed, worst_weight;
    int worst_flips;
} comparison;

static comparison FP32 = {
    /* measured (AMD EPYC, OpenBLAS Haswell): loss 9.5e-7 apart, grad norm and penalty 2.0e-5 relative,
     * distance 1.1e-5 relative, changed fraction 1.5e-5 apart, weights 2.1e-6 relative, 0 flips; with
     * the CUDA gains' and biases' gradient summed one thread per column (stop 31): loss 2.4e-6, grad
     * norm 3.8e-5, distance 2.8e-5, changed 2.9e-5, 1 entry moved apart (ties at the threshold that
     * rounding makes or breaks), 3 flips (MoFO, llama-tiny) */
    .what = "fp32 against fp32", .dev = MOFO_PRECISION_FP32, .cpu = MOFO_PRECISION_FP32,
    .loss = 9e-6, .norm = 1e-4, .dist = 1e-4, .moved = 4.5, .changed = 1.4e-4, .weight = 1.5e-5, .flips = 4};
static comparison BF16 = {
    /* bf16 products on both (the same rounding): inputs that differ in fp32's last bits round to
     * different bf16 values now and then, and Adam's normalised steps and MoFO's selection carry that
     * on. measured: loss 7.3e-4 apart, grad norm 1.3e-4 relative, distance 5.6e-5, changed fraction
     * 0 (8.4e-6 with the one-thread-per-column sums), weights 3.5e-5 with 74 flips */
    .what = "bf16 against bf16", .dev = MOFO_PRECISION_BF16, .cpu = MOFO_PRECISION_BF16,
    .loss = 5e-3, .norm = 1e-3, .dist = 5e-4, .moved = 4.5, .changed = 8e-5, .weight = 3e-4, .flips = 700};
static comparison BF16_VS_FP32 = {
    /* the bf16 tolerance: the device's bf16 run against the CPU's fp32 trajectory. measured:
     * loss 1.1e-3 apart, grad norm 1.5e-3 relative, distance 7.7e-4, changed fraction 1.5e-5,
     * weights 3.4e-4 with 1461 flips (LoRA on llama-tiny) */
    .what = "bf16 against fp32", .dev = MOFO_PRECISION_BF16, .cpu = MOFO_PRECISION_FP32,
    .loss = 1e-2, .norm = 1.5e-2, .dist = 7e-3, .moved = 4.5, .changed = 1.4e-4, .weight = 3e-3, .flips = 14000};

static void compare_run(comparison *c, const char *model, const char *data, mofo_method method) {
    const char *name = mofo_method_name(method);
    mofo_trainer *cpu = make(model, data, method, MOFO_DEVICE_CPU, c->cpu),
                 *dev = make(model, data, method, MOFO_DEVICE_CUDA, c->dev);
    if (!cpu || !dev) goto out;
    CHECK(mofo_model_device(dev->m) == MOFO_DEVICE_CUDA && mofo_model_device(cpu->m) == MOFO_DEVICE_CPU,
          "%s %s: the models' devices", model, name);
    for (int s = 0; s < STEPS; s++) {
        mofo_step_metrics mc, md;
        mofo_err ec = {0}, ed = {0};
        int rc = mofo_trainer_step(cpu, &mc, &ec), rd = mofo_trainer_step(dev, &md, &ed);
        CHECK(rc == 0 && rd == 0, "%s %s step %d: CPU '%s' device '%s'", model, name, s + 1, ec.msg, ed.msg);
        if (rc || rd) goto out;
        double el = fabs(md.loss - mc.loss), en = rel(md.grad_norm, mc.grad_norm, 1e-6);
        double ed2 = rel(md.dist_l2, mc.dist_l2, 1e-6), ep = rel(md.penalty, mc.penalty, 1e-9);
        double moved_apart = fabs(md.updated_frac - mc.updated_frac) * (double)cpu->trainable_entries;
        double changed_apart = fabs(md.changed_frac - mc.changed_frac);
        c->worst_loss = fmax(c->worst_loss, el), c->worst_norm = fmax(c->worst_norm, fmax(en, ep));
        c->worst_dist = fmax(c->worst_dist, ed2), c->worst_moved = fmax(c->worst_moved, moved_apart);
        c->worst_changed = fmax(c->worst_changed, changed_apart);
        CHECK(el <= c->loss && en <= c->norm && ep <= c->norm,
              "%s, %s %s step %d: loss %.8g/%.8g norm %.8g/%.8g penalty %.8g/%.8g", c->what, model, name, s + 1,
              md.loss, mc.loss, md.grad_norm, mc.grad_norm, md.penalty, mc.penalty);
        CHECK(ed2 <= c->dist, "%s, %s %s step %d: distance from theta0 %.8g on the device, %.8g on the CPU", c->what,
              model, name, s + 1, md.dist_l2, mc.dist_l2);
        CHECK(moved_apart <= c->moved && md.world_size == 1 && md.tokens == mc.tokens,
              "%s, %s %s step %d: updated %.8g/%.8g tokens %lld/%lld", c->what, model, name, s + 1, md.updated_frac,
              mc.updated_frac, (long long)md.tokens, (long long)mc.tokens);
        CHECK(changed_apart <= c->changed, "%s, %s %s step %d: changed %.8g/%.8g", c->what, model, name, s + 1,
              md.changed_frac, mc.changed_frac);
    }
    float *wc = host_weights(cpu), *wd = host_weights(dev);
    if (wc && wd) {
        const mofo_model *m = cpu->m;
        int flips = 0;
        double sq = 0, ref = 0, key_bias = 0;
        for (int p = 0; p < m->n_p; p++) {
            /* GPT-2's key bias has a zero gradient up to rounding, which Adam turns into steps of up to
             * lr (see test_train_traj): it may move anywhere within them */
            int64_t nk_lo = -1, nk_hi = -1;
            if (m->cfg.names == MOFO_NAMES_GPT2 && strstr(m->p[p].name, "attn.c_attn.bias"))
                nk_lo = m->cfg.C, nk_hi = 2 * (int64_t)m->cfg.C;
            for (int64_t j = 0; j < m->p[p].numel; j++) {
                size_t i = m->p[p].offset + (size_t)j;
                double d = fabs((double)wd[i] - wc[i]);
                if (j >= nk_lo && j < nk_hi) {
                    key_bias = fmax(key_bias, d);
                    continue;
                }
                if (d > 1e-4 && d <= STEPS * LR * 1.01) { /* a selection flip at a near-tie (see test_train_traj) */
                    flips++;
                    continue;
                }
                sq += d * d, ref += (double)wc[i] * wc[i];
            }
        }
        CHECK(key_bias <= 2 * STEPS * LR, "%s, %s %s: GPT-2's key bias moved %g apart", c->what, model, name, key_bias);
        double e = sqrt(sq / fmax(ref, 1e-30));
        c->worst_weight = fmax(c->worst_weight, e);
        c->worst_flips = flips > c->worst_flips ? flips : c->worst_flips;
        CHECK(e <= c->weight && flips <= c->flips, "%s, %s %s: the device's weights are %.3g from the CPU's (%d flips)",
              c->what, model, name, e, flips);
    }
    free(wc), free(wd);
out:
    mofo_trainer_free(cpu);
    mofo_trainer_free(dev);
}

/* Checkpoint after step 2 on the device, resume in a new device trainer: step 3 and the saved final
 * model equal the uninterrupted device run's. */
static void resume_run(const char *model, const char *data, mofo_method method) {
    const char *name = mofo_method_name(method);
    char ck[128], fin[128];
    snprintf(ck, sizeof ck, "%s/ck-%s", tmp, name);
    snprintf(fin, sizeof fin, "%s/final-%s", tmp, name);
    mofo_err err = {0};
    mofo_trainer *whole = make(model, data, method, MOFO_DEVICE_CUDA, MOFO_PRECISION_FP32),
                 *a = make(model, data, method, MOFO_DEVICE_CUDA, MOFO_PRECISION_FP32),
                 *b = make(model, data, method, MOFO_DEVICE_CUDA, MOFO_PRECISION_FP32);
    mofo_model *back = NULL;
    float *ww = NULL, *wb = NULL;
    if (!whole || !a || !b) goto out;
    for (int s = 0; s < STEPS; s++) CHECK(mofo_trainer_step(whole, NULL, &err) == 0, "%s", err.msg);
    for (int s = 0; s < 2; s++) CHECK(mofo_trainer_step(a, NULL, &err) == 0, "%s", err.msg);
    CHECK(mofo_trainer_save_checkpoint(a, ck, &err) == 0, "checkpoint on the device: %s", err.msg);
    CHECK(mofo_trainer_resume(b, ck, &err) == 0, "resume on the device: %s", err.msg);
    mofo_step_metrics mw = {0}, mb = {0};
    CHECK(mofo_trainer_step(b, &mb, &err) == 0, "%s", err.msg);
    ww = host_weights(whole), wb = host_weights(b);
    CHECK(ww && wb && memcmp(ww, wb, whole->m->n_floats * sizeof *ww) == 0,
          "%s %s: resumed on the device, step 3 differs from the uninterrupted run", model, name);
    CHECK(mofo_optim_stats(b->opt)->ever_updated == mofo_optim_stats(whole->opt)->ever_updated,
          "%s %s: coverage after resuming", model, name);
    (void)mw;
    /* the final model from the device, loaded back on the host */
    CHECK(mofo_trainer_save_final(whole, fin, &err) == 0, "save from the device: %s", err.msg);
    if (method == MOFO_METHOD_LORA || method == MOFO_METHOD_LORA_MOFO) {
        char base[512];
        snprintf(base, sizeof base, "%s/%s", MOFO_FIXTURES, model);
        CHECK(mofo_model_load(&back, base, &err) == 0, "%s", err.msg);
        CHECK(!back || mofo_adapter_merge(back, fin, NULL, &err) == 0, "the adapter saved from the device: %s", err.msg);
    } else {
        CHECK(mofo_model_load(&back, fin, &err) == 0, "the model saved from the device: %s", err.msg);
    }
    if (back && ww) {
        /* the adapter merged by the loader (W0 + s B A in another order) against the device's merge:
         * measured 6e-8; the full models exactly */
        double worst = 0;
        for (size_t i = 0; i < back->n_floats; i++) worst = fmax(worst, fabs((double)back->params[i] - ww[i]));
        CHECK(worst <= (method == MOFO_METHOD_LORA || method == MOFO_METHOD_LORA_MOFO ? 1e-6 : 0),
              "%s %s: the saved model differs from the device's weights by %g", model, name, worst);
    }
out:
    free(ww), free(wb);
    mofo_model_free(back);
    mofo_trainer_free(whole), mofo_trainer_free(a), mofo_trainer_free(b);
}

#ifdef MOFO_TEST_CUDASIM
/* Out of device memory: the simulated card made too small for the weights, then for the copy of the
 * pre-trained weights, LoRA's adapters and the activations in turn. Each error is MOFO_ENOMEM and
 * names the part, the device and the size (and nothing is left allocated: the simulator fails the
 * process on a leak at exit). */
static void out_of_memory(const char *data) {
    const char *model = "llama-tiny";
    double weights_mb = 0;
    {
        mofo_trainer *t = make(model, data, MOFO_METHOD_MOFO, MOFO_DEVICE_CPU, MOFO_PRECISION_FP32);
        if (!t) return;
        weights_mb = 4.0 * (double)t->m->n_floats / 1e6;
        mofo_trainer_free(t);
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, model);
    static const struct {
        mofo_method method;
        double extra_mb; /* the card: what is in use, the weights and this much */
        const char *expect;
    } cases[] = {{MOFO_METHOD_MOFO, -0.1, "parameters"},
                 {MOFO_METHOD_MOFO, 0.05, "cuda memory for the copy of the pre-trained weights"},
                 {MOFO_METHOD_LORA, 0.0, "cuda memory for the adapter of"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mofo_train_opts o;
        mofo_train_opts_init(&o);
        o.model_dir = dir, o.data_path = data, o.out_dir = tmp, o.method = cases[i].method;
        o.device = MOFO_DEVICE_CUDA, o.steps = 1, o.batch = 2, o.seq_len = 16;
        size_t free_bytes = 0, total = 0; /* the card: what is in use (the backend's scratch) and more */
        cudaMemGetInfo(&free_bytes, &total);
        cudasim_set_device_bytes(total - free_bytes + (size_t)((weights_mb + cases[i].extra_mb) * 1e6));
        mofo_trainer *t = NULL;
        mofo_err err = {0};
        int rc = mofo_trainer_create(&t, &o, &err);
        CHECK(rc == MOFO_ENOMEM && strstr(err.msg, cases[i].expect) && strstr(err.msg, "MB"),
              "a card too small (%s): %d %s", cases[i].expect, rc, err.msg);
        mofo_trainer_free(t);
    }
    cudasim_set_device_bytes(0);
    /* room for everything the trainer makes at the start, but not for the activations */
    mofo_trainer *t = make(model, data, MOFO_METHOD_MOFO, MOFO_DEVICE_CUDA, MOFO_PRECISION_FP32);
    if (t) {
        size_t free_bytes = 0, total = 0;
        cudaMemGetInfo(&free_bytes, &total);
        cudasim_set_device_bytes(total - free_bytes + 4.0 * mofo_model_act_floats(&t->m->cfg, 2, 16) / 2);
        mofo_err err = {0};
        int rc = mofo_trainer_step(t, NULL, &err);
        CHECK(rc == MOFO_ENOMEM && strstr(err.msg, "cuda memory for activations") && strstr(err.msg, "MB"),
              "a card too small for the activations: %d %s", rc, err.msg);
        mofo_trainer_free(t);
    }
    cudasim_set_device_bytes(0);
}
#endif

int main(void) {
    int n_devices = 0;
    if (cudaGetDeviceCount(&n_devices) != cudaSuccess || n_devices == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    if (!mkdtemp(tmp)) {
        perror(tmp);
        return 1;
    }
    static const mofo_method methods[] = {MOFO_METHOD_MOFO, MOFO_METHOD_ADAMW, MOFO_METHOD_L1, MOFO_METHOD_L2,
                                          MOFO_METHOD_HFT,  MOFO_METHOD_LORA,  MOFO_METHOD_LORA_MOFO};
    static const char *models[] = {"llama-tiny", "gpt2-tiny"};
    char data[128];
    for (int k = 0; k < 2; k++) {
        snprintf(data, sizeof data, "%s/%s.jsonl", tmp, models[k]);
        write_token_records(models[k], data);
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) compare_run(&FP32, models[k], data, methods[i]);
        /* bf16 products: the full fine-tune and the adapters */
        static const mofo_method bf16_methods[] = {MOFO_METHOD_MOFO, MOFO_METHOD_ADAMW, MOFO_METHOD_LORA};
        for (size_t i = 0; i < 3; i++) {
            compare_run(&BF16, models[k], data, bf16_methods[i]);
            compare_run(&BF16_VS_FP32, models[k], data, bf16_methods[i]);
        }
    }
    snprintf(data, sizeof data, "%s/%s.jsonl", tmp, models[0]);
    resume_run(models[0], data, MOFO_METHOD_MOFO);
    resume_run(models[0], data, MOFO_METHOD_LORA);
#ifdef MOFO_TEST_CUDASIM
    out_of_memory(data);
#endif
    const comparison *all[] = {&FP32, &BF16, &BF16_VS_FP32};
    for (int i = 0; i < 3; i++)
        printf("device against CPU, %s: loss %.3g, grad norm/penalty %.3g, distance %.3g, weights %.3g, moved %.0f "
               "entries, changed %.3g, %d flips\n", all[i]->what, all[i]->worst_loss, all[i]->worst_norm,
               all[i]->worst_dist, all[i]->worst_weight, all[i]->worst_moved, all[i]->worst_changed, all[i]->worst_flips);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    test_device_close();
    return CHECK_DONE();
}
