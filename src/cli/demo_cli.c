/* The pieces the studies of `mofo demo` share (see demo_cli.h). */
#include "demo_cli.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timing.h"

/* One grid for the full-model methods, from about 10x below the base's pre-training rate (3e-3) to
 * the rate past which the task stops improving in the demo's steps (measured at 150 steps: AdamW
 * 67% at 5e-4, 74.5% at 8e-4, 64.5% at 1.5e-3; MoFO 48% at 5e-4, 74.5% at 1.5e-3, 59% at 4e-3);
 * LoRA, which moves fewer parameters, 3x larger rates. L1/L2 strengths make the pull of the order of
 * the task loss for the distances these runs travel. AdamW and MoFO, the comparison the demo is
 * about, run three seeds. */
const demo_method DEMO_METHODS[DEMO_N_METHODS] = {
    {"adamw", MOFO_METHOD_ADAMW, NAN, NAN, {3e-4, 7e-4, 1.4e-3}, 3},
    {"mofo", MOFO_METHOD_MOFO, 0.15, NAN, {3e-4, 7e-4, 1.4e-3}, 3},
    {"l1", MOFO_METHOD_L1, NAN, 1e-4, {3e-4, 7e-4, 1.4e-3}, 1},
    {"l2", MOFO_METHOD_L2, NAN, 1e-2, {3e-4, 7e-4, 1.4e-3}, 1},
    {"hft", MOFO_METHOD_HFT, NAN, NAN, {3e-4, 7e-4, 1.4e-3}, 1},
    {"lora", MOFO_METHOD_LORA, NAN, NAN, {1e-3, 2e-3, 4e-3}, 1},
};

int demo_make_dir(const char *dir) { return mkdir(dir, 0777) == 0 || errno == EEXIST ? 0 : -1; }

int demo_fail(const char *what, const mofo_err *err) {
    fprintf(stderr, "mofo demo: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    return 1;
}

int demo_make_world(demo *d, mofo_err *err) {
    char path[2200];
    snprintf(path, sizeof path, "%s/world.json", d->base_dir);
    int rc = mofo_world_opts_read(path, &d->wo, err);
    if (rc) return rc;
    if ((rc = mofo_world_build(&d->w, &d->wo, err))) return rc;
    return mofo_world_write(&d->w, d->world, NULL, err);
}

void demo_run_opts(const demo *d, const demo_method *m, double lr, uint64_t seed, const char *model_dir,
                   const char *data_path, const char *out_dir, mofo_train_opts *o) {
    mofo_train_opts_init(o);
    o->model_dir = model_dir, o->data_path = data_path, o->out_dir = out_dir;
    o->method = m->method;
    if (!isnan(m->alpha)) o->alpha = m->alpha;
    if (!isnan(m->reg)) o->reg = m->reg;
    o->lr = lr;
    o->sched = MOFO_SCHED_LINEAR;
    o->warmup = 0.1;
    o->steps = d->steps;
    o->batch = d->batch;
    o->seq_len = d->seq_len;
    o->seed = seed;
    o->val_split = 0.05; /* the held-out solutions whose loss chooses the learning rate */
    o->tpl = MOFO_TPL_TULU;
    o->threads = d->jobs > 1 ? 1 : d->threads; /* the bits depend on it: the command below repeats it */
    o->merge = 1; /* LoRA: the merged model, which mofo eval and the next task load */
}

void demo_finetune_command(const mofo_train_opts *o, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap,
                                "mofo finetune --model %s --data %s --out %s --method %s --lr %g --steps %lld "
                                "--batch %d --seq-len %d --lr-schedule linear --warmup %g --seed %llu --val-split %g",
                                o->model_dir, o->data_path, o->out_dir, mofo_method_name(o->method), o->lr,
                                (long long)o->steps, o->batch, o->seq_len, o->warmup, (unsigned long long)o->seed,
                                o->val_split);
    if (n < cap && o->threads > 0) n += (size_t)snprintf(out + n, cap - n, " --threads %d", o->threads);
    const mofo_method_def *d = mofo_method_def_of(o->method);
    if (n < cap && d->filtered) n += (size_t)snprintf(out + n, cap - n, " --alpha %g", o->alpha);
    if (n < cap && d->needs_reg) n += (size_t)snprintf(out + n, cap - n, " --reg %g", o->reg);
    if (n < cap && d->adapters) snprintf(out + n, cap - n, " --merge");
}

int demo_train(const demo *d, mofo_trainer *t, float *loss, double *ms_per_step, double *coverage, mofo_err *err) {
    double t0 = cli_now();
    mofo_step_metrics mt = {0};
    int tty = d->jobs <= 1 && isatty(fileno(stderr));
    while (t->step < t->total_steps) {
        int rc = mofo_trainer_step(t, &mt, err);
        if (rc) return rc;
        loss[t->step - 1] = (float)mt.loss;
        if (tty) fprintf(stderr, "\r    step %lld/%lld  loss %.4f   ", (long long)t->step, (long long)t->total_steps, mt.loss);
    }
    if (tty) fprintf(stderr, "\r%40s\r", "");
    *ms_per_step = 1000 * (cli_now() - t0) / (double)t->step;
    if (coverage) *coverage = t->step ? mt.coverage : NAN;
    return 0;
}

int demo_next_run(demo *d) {
    int k;
#pragma omp atomic capture
    k = ++d->run_no;
    return k;
}

int demo_parallel(int n, int jobs, demo_job fn, void *ctx, mofo_err *err) {
    if (n <= 0) return 0;
    int *rcs = calloc((size_t)n, sizeof *rcs);
    mofo_err *errs = calloc((size_t)n, sizeof *errs);
    if (!rcs || !errs) {
        free(rcs), free(errs);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    int failed = 0, team = jobs < 1 ? 1 : jobs < n ? jobs : n;
    omp_set_max_active_levels(1); /* the regions inside a job: one thread each */
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (int i = 0; i < n; i++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        if ((rcs[i] = fn(ctx, i, &errs[i]))) {
#pragma omp atomic write
            failed = 1;
        }
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if ((rc = rcs[i])) *err = errs[i];
    free(rcs), free(errs);
    return rc;
}
