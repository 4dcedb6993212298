/* The training loop of the command line, shared by mofo finetune and mofo pretrain: progress on a
 * terminal, metrics as JSONL, validation, checkpoints, resume, Ctrl-C. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/timing.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "text/utf8.h"
#include "train_run.h"

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

int cli_train_run(const mofo_train_opts *o, const cli_train_flags *f) {
    mofo_err err = {0};
    mofo_trainer *t = NULL;
    if (mofo_trainer_create(&t, o, &err)) {
        fprintf(stderr, "mofo %s: %s\n", f->cmd, err.msg);
        return err.code == MOFO_EINVAL ? 2 : 1;
    }
    int rc = 0;
    if (mkdir(f->out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mofo %s: %s: cannot create: %s\n", f->cmd, f->out_dir, strerror(errno));
        mofo_trainer_free(t);
        return 1;
    }
    if (f->resume_dir && mofo_trainer_resume(t, f->resume_dir, &err)) {
        fprintf(stderr, "mofo %s: --resume %s: %s\n", f->cmd, f->resume_dir, err.msg);
        mofo_trainer_free(t);
        return 1;
    }
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", f->out_dir);
    if (t->step > 0 && trim_metrics(mpath, t->step, &err)) {
        fprintf(stderr, "mofo %s: %s\n", f->cmd, err.msg);
        mofo_trainer_free(t);
        return 1;
    }
    FILE *metrics = fopen(mpath, t->step > 0 ? "a" : "w");
    if (!metrics) {
        fprintf(stderr, "mofo %s: %s: cannot open: %s\n", f->cmd, mpath, strerror(errno));
        mofo_trainer_free(t);
        return 1;
    }
    if (!f->quiet)
        fprintf(stderr,
                "mofo %s: %s on %s: %zu train / %zu validation examples, B=%d x %d accum, T=%d, %lld steps "
                "(warm-up %lld), %lld of %lld parameters trainable\n",
                f->cmd, mofo_method_name(o->method), o->data_path, t->train.n, t->val.n, t->B, o->grad_accum, t->T,
                (long long)t->total_steps, (long long)t->warmup_steps, (long long)t->trainable_entries,
                (long long)t->total_entries);
    if (!f->quiet && f->resume_dir) fprintf(stderr, "  resumed from %s at step %lld\n", f->resume_dir, (long long)t->step);

    interrupted = 0;
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once (checkpoints are atomic) */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sa);
    const char *hook = getenv("MOFO_TEST_SIGINT_AT_STEP"); /* test hook: raise SIGINT after that step */
    int64_t sigint_at = hook ? strtoll(hook, NULL, 10) : -1;

    int tty = !f->quiet && isatty(fileno(stderr));
    double t0 = cli_now(), first_loss = NAN, last_loss = NAN, val = NAN;
    int64_t step0 = t->step, tok0 = t->tokens;
    mofo_step_metrics mt = {0};
    mofo_strbuf line = {0};
    while (t->step < t->total_steps && !interrupted) {
        if ((rc = mofo_trainer_step(t, &mt, &err))) {
            fprintf(stderr, "%smofo %s: step %lld: %s\n", tty ? "\n" : "", f->cmd, (long long)t->step + 1, err.msg);
            break;
        }
        if (t->step == sigint_at) raise(SIGINT);
        if (isnan(first_loss)) first_loss = mt.loss;
        last_loss = mt.loss;
        line.len = 0;
        mofo_step_metrics_json(&mt, &line);
        if (line.data) fputs(line.data, metrics);
        int last = t->step == t->total_steps;
        fflush(metrics);
        if (tty) {
            double el = cli_now() - t0, per = el / (double)(t->step - step0);
            char left[32];
            hms(left, sizeof left, per * (double)(t->total_steps - t->step));
            fprintf(stderr, "\rstep %lld/%lld  loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s  left %s   ", (long long)t->step,
                    (long long)t->total_steps, mt.loss, mt.lr, mt.grad_norm, (double)(t->tokens - tok0) / el, left);
        }
        if (t->val.n && ((f->eval_every && t->step % f->eval_every == 0) || last)) {
            if ((rc = mofo_trainer_eval(t, &val, &err))) {
                fprintf(stderr, "%smofo %s: validation: %s\n", tty ? "\n" : "", f->cmd, err.msg);
                break;
            }
            fprintf(metrics, "{\"step\": %lld, \"val_loss\": %.9g}\n", (long long)t->step, val);
            fflush(metrics);
            if (!f->quiet) fprintf(stderr, "%sstep %lld: validation loss %.4f\n", tty ? "\n" : "", (long long)t->step, val);
        }
        if (f->save_every && t->step % f->save_every == 0 && !last && !interrupted && (rc = save_ckpt(t, f, &err))) {
            fprintf(stderr, "%smofo %s: %s\n", tty ? "\n" : "", f->cmd, err.msg);
            break;
        }
    }
    mofo_sb_free(&line);
    fclose(metrics);
    sigaction(SIGINT, &old_sa, NULL);
    if (tty) fprintf(stderr, "\n");
    if (rc == 0 && interrupted) {
        if ((rc = save_ckpt(t, f, &err))) {
            fprintf(stderr, "mofo %s: interrupted at step %lld; saving failed: %s\n", f->cmd, (long long)t->step, err.msg);
        } else {
            fprintf(stderr,
                    "mofo %s: interrupted at step %lld; continue with the same flags and --resume "
                    "%s/checkpoint-%lld\n",
                    f->cmd, (long long)t->step, f->out_dir, (long long)t->step);
            rc = 130;
        }
    } else if (rc == 0) {
        if (f->save_every && (rc = save_ckpt(t, f, &err))) fprintf(stderr, "mofo %s: %s\n", f->cmd, err.msg);
        if (rc == 0 && (rc = mofo_trainer_save_final(t, f->out_dir, &err))) fprintf(stderr, "mofo %s: %s\n", f->cmd, err.msg);
        if (rc == 0 && !f->quiet) {
            double el = cli_now() - t0;
            printf("steps %lld  loss %.4f -> %.4f", (long long)t->step, first_loss, last_loss);
            if (!isnan(val)) printf("  validation loss %.4f", val);
            printf("\ndistance to the %s weights %.6g, entries changed %.2f%%, ever updated %.2f%%\n",
                   o->scratch ? "initial" : "pre-trained", mt.dist_l2, 100 * mt.changed_frac, 100 * mt.coverage);
            printf("%lld trained tokens in %.1f s (%.0f tok/s); model written to %s\n", (long long)(t->tokens - tok0),
                   el, el > 0 ? (double)(t->tokens - tok0) / el : 0.0, f->out_dir);
        }
    }
    mofo_trainer_free(t);
    return rc == 0 || rc == 130 ? rc : 1;
}
