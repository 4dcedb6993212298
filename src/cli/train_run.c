/* The training loop of the command line, shared by mofo finetune and mofo pretrain: progress on a
 * terminal, metrics as JSONL, validation, checkpoints, resume, Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/load.h"
#include "cli/timing.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "text/utf8.h"
#include "train_run.h"

#include "dist/comm.h"

void cli_train_specs(cli_train_args *a, arg_spec *specs) {
    snprintf(a->help[0], sizeof a->help[0], "peak learning rate, > 0 (default %g)", a->lr);
    snprintf(a->help[1], sizeof a->help[1], "constant | linear | cosine, after the warm-up (default %s)",
             a->sched_default);
    snprintf(a->help[2], sizeof a->help[2], "examples cut to T tokens (default %lld)", (long long)a->seq_len);
    snprintf(a->help[3], sizeof a->help[3], "%s (default %lld)", a->seed_help, (long long)a->seed);
    const arg_spec rows[CLI_TRAIN_N_SPECS] = {
        {"lr", ARG_DOUBLE, &a->lr, "X", a->help[0]},
        {"lr-schedule", ARG_STR, &a->sched, "S", a->help[1]},
        {"warmup", ARG_DOUBLE, &a->warmup, "W", "warm-up: a ratio in (0,1) of the steps, or a number of steps (default 0)"},
        {"epochs", ARG_INT, &a->epochs, "N", "passes over the data (default 1)"},
        {"steps", ARG_INT, &a->steps, "N", "optimizer steps; overrides --epochs"},
        {"batch", ARG_INT, &a->batch, "B", "examples per micro-batch (default 8)"},
        {"grad-accum", ARG_INT, &a->grad_accum, "N", "micro-batches per optimizer step (default 1)"},
        {"seq-len", ARG_INT, &a->seq_len, "T", a->help[2]},
        {"clip", ARG_DOUBLE, &a->clip, "X", "clip the global gradient norm to X; 0 disables (default 1.0)"},
        {"weight-decay", ARG_DOUBLE, &a->weight_decay, "X", "decoupled weight decay on tensors with 2+ dims (default 0)"},
        {"beta1", ARG_DOUBLE, &a->beta1, "X", "default 0.9"},
        {"beta2", ARG_DOUBLE, &a->beta2, "X", "default 0.999 (finetune's lion: 0.99)"},
        {"eps", ARG_DOUBLE, &a->eps, "X", "adamw's epsilon (default 1e-8)"},
        {"seed", ARG_INT, &a->seed, "S", a->help[3]},
        {"no-shuffle", ARG_FLAG, &a->no_shuffle, NULL, "train in file order"},
        {"pack", ARG_FLAG, &a->pack, NULL, "concatenate the shuffled examples into full rows of T tokens (pre-training style)"},
        {"val-split", ARG_DOUBLE, &a->val_split, "F", "hold out this fraction of the data for validation (default 0)"},
        {"eval-every", ARG_INT, &a->eval_every, "N", "validation loss every N steps and at the end (default: end only)"},
        {"save-every", ARG_INT, &a->save_every, "N", "write OUT/checkpoint-STEP every N steps (default: never)"},
        {"resume", ARG_STR, &a->resume_dir, "DIR", "continue from a checkpoint of this run (same flags)"},
        {"threads", ARG_INT, &a->threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
        {"device", ARG_STR, &a->device, "cpu|cuda",
         "where the model trains: cpu (default) or cuda (one process; a build with CUDA and a GPU)"},
        {"precision", ARG_STR, &a->precision, "fp32|tf32|bf16", CLI_PRECISION_HELP},
        {"quiet", ARG_FLAG, &a->quiet, NULL, "no progress line, no summary"},
    };
    memcpy(specs, rows, sizeof rows);
}

int cli_train_apply(const char *cmd, const cli_train_args *a, mofo_train_opts *o, cli_train_flags *f) {
    if (a->sched && mofo_sched_parse(a->sched, &o->sched)) {
        fprintf(stderr, "mofo %s: --lr-schedule '%s': use constant, linear or cosine\n", cmd, a->sched);
        return 2;
    }
    if (a->batch < 1 || a->batch > 1 << 20 || a->grad_accum < 1 || a->grad_accum > 1 << 20 || a->seq_len < 2 ||
        a->seq_len > 1 << 24 || a->steps < 0 || a->epochs < 0 || a->eval_every < 0 || a->save_every < 0 || a->seed < 0) {
        fprintf(stderr, "mofo %s: --batch, --grad-accum, --seq-len, --steps, --epochs, --eval-every, "
                        "--save-every and --seed must be positive (seq-len >= 2)\n", cmd);
        return 2;
    }
    o->lr = a->lr, o->warmup = a->warmup, o->clip = a->clip, o->weight_decay = a->weight_decay;
    o->beta1 = a->beta1, o->beta2 = a->beta2, o->eps = a->eps, o->val_split = a->val_split;
    o->epochs = a->epochs ? a->epochs : 1, o->steps = a->steps, o->batch = (int)a->batch;
    o->grad_accum = (int)a->grad_accum, o->seq_len = (int)a->seq_len, o->seed = (uint64_t)a->seed;
    o->shuffle = !a->no_shuffle, o->pack = a->pack, o->threads = (int)a->threads;
    if (cli_parse_device(cmd, a->device, &o->device) || cli_parse_precision(cmd, a->precision, &o->precision)) return 2;
    *f = (cli_train_flags){.cmd = cmd, .out_dir = o->out_dir, .resume_dir = a->resume_dir,
                           .eval_every = a->eval_every, .save_every = a->save_every, .quiet = a->quiet};
    return 0;
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

static void hms(char *buf, size_t n, double s) {
    long t = s > 0 && s < 1e9 ? (long)s : 0;
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static int save_ckpt(const mofo_trainer *t, const cli_train_flags *f, mofo_err *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoint-%lld", f->out_dir, (long long)t->step);
    int rc = mofo_trainer_save_checkpoint(t, dir, err);
    if (t->rank != 0) return rc;
    if (rc == 0 && !f->quiet && isatty(fileno(stderr))) fprintf(stderr, "\n");
    if (rc == 0 && !f->quiet) fprintf(stderr, "mofo %s: saved %s\n", f->cmd, dir);
    return rc;
}

/* On resume: drops the metrics lines of steps after the checkpoint's (a run resumed from an earlier
 * checkpoint would otherwise log those steps twice); rewritten atomically. */
static int trim_metrics(const char *path, int64_t step, mofo_err *err) {
    char *text = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    int rc = mofo_read_file(path, &text, &len, err);
    if (rc) return rc;
    mofo_afile af;
    if ((rc = mofo_afile_open(&af, path, err))) {
        free(text);
        return rc;
    }
    for (size_t at = 0; at < len && rc == 0;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (text + at)) + 1 : len - at;
        mofo_json_doc *d = mofo_json_parse(text + at, n, NULL);
        int64_t s = -1;
        if (d) mofo_json_int64(mofo_json_get(mofo_json_root(d), "step"), &s);
        mofo_json_free(d);
        if (s <= step) rc = mofo_afile_write(&af, text + at, n, err);
        at += n;
    }
    free(text);
    if (rc) {
        mofo_afile_abort(&af);
        return rc;
    }
    return mofo_afile_commit(&af, err);
}

/* Under mpirun: a failure on any process ends the whole job (checkpoints are atomic, so the
 * previous one stays intact); the message names the rank. Alone: the status to return. */
static int failed(mofo_comm *comm, const cli_train_flags *f, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[1200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (mofo_comm_size(comm) > 1) {
        fprintf(stderr, "mofo %s: rank %d of %d: %s\n", f->cmd, mofo_comm_rank(comm), mofo_comm_size(comm), msg);
        fflush(stderr);
        mofo_comm_abort(comm, status);
    }
    fprintf(stderr, "mofo %s: %s\n", f->cmd, msg);
    return status;
}

static int run(const mofo_train_opts *o, const cli_train_flags *f, mofo_comm *comm);

int cli_train_run(const mofo_train_opts *o, const cli_train_flags *f) {
    mofo_err err = {0};
    mofo_comm *comm = NULL;
    if (mofo_comm_open(&comm, &err)) return failed(NULL, f, 1, "%s", err.msg);
    int rc = run(o, f, comm);
    mofo_comm_close(comm);
    return rc;
}

static int run(const mofo_train_opts *o, const cli_train_flags *f, mofo_comm *comm) {
    mofo_err err = {0};
    mofo_trainer *t = NULL;
    if (mofo_trainer_create_in(&t, o, comm, &err)) return failed(comm, f, err.code == MOFO_EINVAL ? 2 : 1, "%s", err.msg);
    int rc = 0, lead = t->rank == 0; /* rank 0 prints and writes the metrics */
    if (lead && mkdir(f->out_dir, 0777) != 0 && errno != EEXIST)
        rc = failed(comm, f, 1, "%s: cannot create: %s", f->out_dir, strerror(errno));
    if (!rc && f->resume_dir && mofo_trainer_resume(t, f->resume_dir, &err))
        rc = failed(comm, f, 1, "--resume %s: %s", f->resume_dir, err.msg);
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", f->out_dir);
    if (!rc && lead && t->step > 0 && trim_metrics(mpath, t->step, &err)) rc = failed(comm, f, 1, "%s", err.msg);
    FILE *metrics = NULL;
    if (!rc && lead && !(metrics = fopen(mpath, t->step > 0 ? "a" : "w")))
        rc = failed(comm, f, 1, "%s: cannot open: %s", mpath, strerror(errno));
    if (rc) {
        mofo_trainer_free(t);
        return rc;
    }
    if (lead && !f->quiet && t->world > 1)
        fprintf(stderr, "mofo %s: %d processes (%s), each %d or %d rows of every batch of %d\n", f->cmd, t->world,
                mofo_comm_library(), o->batch / t->world, (o->batch + t->world - 1) / t->world, o->batch);
    if (lead && !f->quiet)
        fprintf(stderr,
                "mofo %s: %s on %s: %zu train / %zu validation examples, B=%d x %d accum, T=%d, %lld steps "
                "(warm-up %lld), %lld of %lld parameters trainable\n",
                f->cmd, mofo_method_name(o->method), o->data_path, t->train.n, t->val.n, t->B, o->grad_accum, t->T,
                (long long)t->total_steps, (long long)t->warmup_steps, (long long)t->trainable_entries,
                (long long)t->total_entries);
    if (lead && !f->quiet) {
        mofo_memory_plan mp;
        mofo_trainer_memory_plan(t, &mp);
        fprintf(stderr, "  memory (%s, %s products): weights %.1f MB, pre-trained copy %.1f MB, gradients %.1f MB, "
                        "optimizer %.1f MB, adapters %.1f MB, activations %.1f MB, rounded inputs %.1f MB: %.1f MB\n",
                mofo_device_name(mofo_model_device(t->m)), mofo_precision_name(o->precision), mp.weights / 1e6,
                mp.reference / 1e6, mp.gradients / 1e6, mp.optimizer / 1e6, mp.adapters / 1e6, mp.activations / 1e6,
                mp.rounding / 1e6, mp.total / 1e6);
    }
    if (lead && !f->quiet && f->resume_dir) fprintf(stderr, "  resumed from %s at step %lld\n", f->resume_dir, (long long)t->step);

    interrupted = 0;
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once (checkpoints are atomic) */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    const char *hook = getenv("MOFO_TEST_SIGINT_AT_STEP"); /* test hook: raise SIGINT after that step */
    int64_t sigint_at = hook ? strtoll(hook, NULL, 10) : -1;

    int tty = lead && !f->quiet && isatty(fileno(stderr));
    double t0 = cli_now(), t1 = 0, first_loss = NAN, last_loss = NAN, val = NAN; /* t1: after the first step */
    uint64_t sent1 = 0;
    int64_t step0 = t->step, tok0 = t->tokens;
    mofo_step_metrics mt = {0};
    mofo_strbuf line = {0};
    while (t->step < t->total_steps && !interrupted) {
        if ((rc = mofo_trainer_step(t, &mt, &err))) {
            if (tty) fprintf(stderr, "\n");
            rc = failed(comm, f, 1, "step %lld: %s", (long long)t->step + 1, err.msg);
            break;
        }
        if (t->step == step0 + 1) t1 = cli_now(), sent1 = mofo_comm_bytes_sent(comm);
        if (t->step == sigint_at) raise(SIGINT);
        int32_t stop = interrupted; /* an interrupt on any process stops every one after this step */
        if (t->world > 1 && mofo_comm_max_i32(comm, &stop, 1, &err) == 0) interrupted = stop;
        if (isnan(first_loss)) first_loss = mt.loss;
        last_loss = mt.loss;
        line.len = 0;
        mofo_step_metrics_json(&mt, &line);
        if (line.data && metrics) fputs(line.data, metrics);
        int last = t->step == t->total_steps;
        if (metrics) fflush(metrics);
        if (tty) {
            double el = cli_now() - t0, per = el / (double)(t->step - step0);
            char left[32];
            hms(left, sizeof left, per * (double)(t->total_steps - t->step));
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  left %s   ", (long long)t->step,
                    (long long)t->total_steps, mt.loss, mt.lr, mt.grad_norm, (double)(t->tokens - tok0) / el, left);
        }
        if (t->val.n && ((f->eval_every && t->step % f->eval_every == 0) || last)) {
            if ((rc = mofo_trainer_eval(t, &val, &err))) {
                if (tty) fprintf(stderr, "\n");
                rc = failed(comm, f, 1, "validation: %s", err.msg);
                break;
            }
            if (metrics) {
                fprintf(metrics, "{\"step\": %lld, \"val_loss\": %.9g}\n", (long long)t->step, val);
                fflush(metrics);
            }
            if (lead && !f->quiet) fprintf(stderr, "%sstep %lld: validation loss %.4f\n", tty ? "\n" : "", (long long)t->step, val);
        }
        if (f->save_every && t->step % f->save_every == 0 && !last && !interrupted && (rc = save_ckpt(t, f, &err))) {
            if (tty) fprintf(stderr, "\n");
            rc = failed(comm, f, 1, "%s", err.msg);
            break;
        }
    }
    double t_last = cli_now();
    uint64_t sent_last = mofo_comm_bytes_sent(comm);
    mofo_sb_free(&line);
    if (metrics) fclose(metrics);
    sigaction(SIGINT, &old_sa, NULL);
    if (tty) fprintf(stderr, "\n");
    if (rc == 0 && interrupted) {
        if ((rc = save_ckpt(t, f, &err))) {
            rc = failed(comm, f, 1, "interrupted at step %lld; saving failed: %s", (long long)t->step, err.msg);
        } else if (!lead) {
            rc = 130;
        } else {
            fprintf(stderr,
                    "mofo %s: interrupted at step %lld; continue with the same flags and --resume "
                    "%s/checkpoint-%lld\n",
                    f->cmd, (long long)t->step, f->out_dir, (long long)t->step);
            rc = 130;
        }
    } else if (rc == 0) {
        if (f->save_every && (rc = save_ckpt(t, f, &err))) rc = failed(comm, f, 1, "%s", err.msg);
        if (rc == 0 && (rc = mofo_trainer_save_final(t, f->out_dir, &err))) rc = failed(comm, f, 1, "%s", err.msg);
        if (rc == 0 && lead && !f->quiet) {
            double el = cli_now() - t0;
            printf("steps %lld  loss %.4f -> %.4f", (long long)t->step, first_loss, last_loss);
            if (!isnan(val)) printf("  validation loss %.4f", val);
            printf("\ndistance to the %s weights %.6g, entries changed %.2f%%, ever updated %.2f%%\n",
                   o->scratch ? "initial" : "pre-trained", mt.dist_l2, 100 * mt.changed_frac, 100 * mt.coverage);
            int64_t later = t->step - step0 - 1; /* steps after the first, which warms up */
            if (later > 0) {
                printf("%.1f ms per step after the first", 1e3 * (t1 > 0 ? t_last - t1 : 0) / (double)later);
                if (t->world > 1)
                    printf("; each process sent %.3f MB per step (ring volume)",
                           (double)(sent_last - sent1) / (double)later / 1e6);
                printf("\n");
            }
            printf("%lld trained tokens in %.1f s (%.0f tok/s); model written to %s\n", (long long)(t->tokens - tok0),
                   el, el > 0 ? (double)(t->tokens - tok0) / el : 0.0, f->out_dir);
        }
    }
    mofo_trainer_free(t);
    return rc == 0 || rc == 130 ? rc : 1;
}
