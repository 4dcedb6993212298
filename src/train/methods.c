/* The pieces of fine-tuning that are pure functions: schedules, weight differences, metrics lines,
 * tokenizer file copies. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic_file.h"
#include "text/utf8.h"
#include "train.h"

static const char *SCHEDS[] = {"constant", "linear", "cosine"};

int mofo_sched_parse(const char *s, mofo_sched_kind *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, SCHEDS[i]) == 0) return *out = (mofo_sched_kind)i, 0;
    return -1;
}
const char *mofo_sched_name(mofo_sched_kind k) { return (unsigned)k < 3 ? SCHEDS[k] : "?"; }

double mofo_lr_at(mofo_sched_kind k, double lr, int64_t W, int64_t S, int64_t s) {
    if (s < W) return lr * (double)s / (double)(W > 1 ? W : 1);
    double span = (double)(S - W > 1 ? S - W : 1);
    switch (k) {
    case MOFO_SCHED_CONSTANT: return lr;
    case MOFO_SCHED_LINEAR: return lr * fmax(0.0, (double)(S - s) / span);
    case MOFO_SCHED_COSINE: return lr * fmax(0.0, 0.5 * (1.0 + cos(3.14159265358979323846 * (double)(s - W) / span)));
    }
    return lr;
}

int mofo_warmup_steps(double warmup, int64_t S, int64_t *W, mofo_err *err) {
    if (!(warmup >= 0) || !isfinite(warmup)) return mofo_errf(err, MOFO_EINVAL, "warmup %g is negative", warmup);
    if (warmup > 0 && warmup < 1) {
        *W = (int64_t)ceil(warmup * (double)S);
        return 0;
    }
    if (warmup != floor(warmup))
        return mofo_errf(err, MOFO_EINVAL, "warmup %g: give a ratio in (0, 1) or a whole number of steps", warmup);
    *W = (int64_t)warmup;
    return 0;
}

void mofo_diff_accum_on(const mofo_backend *be, mofo_diff *d, const float *a, const float *b, int64_t n) {
    double sums[3];
    be->distance(a, b, (size_t)n, sums);
    d->sq += sums[0], d->base_sq += sums[1], d->changed += (int64_t)sums[2];
    d->numel += n;
}

void mofo_diff_accum(mofo_diff *d, const float *a, const float *b, int64_t n) {
    mofo_diff_accum_on(mofo_backend_for(MOFO_DEVICE_CPU, NULL), d, a, b, n);
}

static void num(mofo_strbuf *sb, const char *key, double v) {
    if (isfinite(v))
        mofo_sb_printf(sb, ", \"%s\": %.9g", key, v);
    else
        mofo_sb_printf(sb, ", \"%s\": null", key);
}

void mofo_step_metrics_json(const mofo_step_metrics *mt, mofo_strbuf *sb) {
    mofo_sb_printf(sb, "{\"step\": %lld", (long long)mt->step);
    num(sb, "epoch", mt->epoch);
    num(sb, "loss", mt->loss);
    num(sb, "lr", mt->lr);
    num(sb, "grad_norm", mt->grad_norm);
    num(sb, "updated_frac", mt->updated_frac);
    num(sb, "coverage", mt->coverage);
    num(sb, "dist_l2", mt->dist_l2);
    num(sb, "changed_frac", mt->changed_frac);
    if (mt->penalty != 0) num(sb, "penalty", mt->penalty);
    mofo_sb_printf(sb, ", \"tokens\": %lld, \"world_size\": %d}\n", (long long)mt->tokens, mt->world_size);
}

int mofo_copy_tokenizer_files(const char *src_dir, const char *dst_dir, mofo_err *err) {
    static const char *files[] = {"tokenizer.json",  "tokenizer_config.json", "special_tokens_map.json",
                                  "generation_config.json", "vocab.json", "merges.txt", "tokenizer.model",
                                  "chat_template.jinja"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, files[i]);
        struct stat st;
        if (stat(src, &st) != 0) continue;
        char *data = NULL;
        size_t len = 0;
        int rc = mofo_read_file(src, &data, &len, err);
        if (rc == 0) rc = mofo_write_file_atomic(dst, data, len, err);
        free(data);
        if (rc) return rc;
    }
    return 0;
}
