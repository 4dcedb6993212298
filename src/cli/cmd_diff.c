/* mofo diff: how far a fine-tuned model moved from its base, per tensor and overall. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "io/strbuf.h"
#include "model/model.h"
#include "train/train.h"

static const char *base_dir, *model_dir;
static int json_out;

static const arg_spec SPECS[] = {
    {"base", ARG_STR, &base_dir, "DIR", "the reference checkpoint (e.g. the pre-trained model); required"},
    {"model", ARG_STR, &model_dir, "DIR", "the checkpoint to compare (e.g. the fine-tuned model); required"},
    {"json", ARG_FLAG, &json_out, NULL, "print one JSON object instead of a table"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_diff_help(FILE *out) {
    args_help(out, "diff", "--base DIR --model DIR [--json]", SPECS, N_SPECS);
    fprintf(out, "\nPer tensor and overall: l2 = ||model - base|| (weights as fp32), rel = l2 / ||base||, and the\n"
                 "fraction of entries whose value differs. Both must have the same tensors and shapes.\n");
}

static void json_row(mofo_strbuf *sb, const char *name, const mofo_diff *d) {
    mofo_sb_puts(sb, "{\"name\": ");
    mofo_sb_json_string(sb, name, strlen(name));
    double rel = d->base_sq > 0 ? sqrt(d->sq / d->base_sq) : (d->sq > 0 ? INFINITY : 0);
    mofo_sb_printf(sb, ", \"numel\": %lld, \"l2\": %.9g, ", (long long)d->numel, sqrt(d->sq));
    if (isfinite(rel))
        mofo_sb_printf(sb, "\"rel\": %.9g", rel);
    else
        mofo_sb_puts(sb, "\"rel\": null");
    mofo_sb_printf(sb, ", \"changed\": %lld, \"changed_frac\": %.9g}", (long long)d->changed,
                   d->numel ? (double)d->changed / (double)d->numel : 0.0);
}

int cmd_diff(int argc, char **argv) {
    base_dir = model_dir = NULL;
    json_out = 0;
    if (args_parse("diff", argc, argv, SPECS, N_SPECS)) return 2;
    if (!base_dir || !model_dir) {
        fprintf(stderr, "mofo diff: --base and --model are required (see 'mofo help diff')\n");
        return 2;
    }
    mofo_err err = {0};
    mofo_model *a = NULL, *b = NULL;
    if (mofo_model_load(&a, base_dir, &err) || mofo_model_load(&b, model_dir, &err)) {
        fprintf(stderr, "mofo diff: %s\n", err.msg);
        mofo_model_free(a);
        return 1;
    }
    int rc = 0;
    if (a->n_p != b->n_p) {
        fprintf(stderr, "mofo diff: %s has %d tensors, %s has %d\n", base_dir, a->n_p, model_dir, b->n_p);
        rc = 1;
    }
    for (int i = 0; i < a->n_p && rc == 0; i++) {
        const mofo_param *q = mofo_model_param(b, a->p[i].name);
        if (!q || q->numel != a->p[i].numel || q->shape[0] != a->p[i].shape[0]) {
            fprintf(stderr, "mofo diff: tensor '%s' is %s in %s\n", a->p[i].name, q ? "of another shape" : "missing",
                    model_dir);
            rc = 1;
        }
    }
    if (rc == 0) {
        mofo_strbuf sb = {0};
        mofo_diff all = {0};
        if (json_out)
            mofo_sb_puts(&sb, "{\"tensors\": [");
        else
            mofo_sb_printf(&sb, "%-48s %10s %12s %10s %9s\n", "tensor", "entries", "l2", "rel", "changed");
        for (int i = 0; i < a->n_p; i++) {
            const mofo_param *p = &a->p[i], *q = mofo_model_param(b, p->name);
            mofo_diff d = {0};
            mofo_diff_accum(&d, a->params + p->offset, b->params + q->offset, p->numel);
            mofo_diff_accum(&all, a->params + p->offset, b->params + q->offset, p->numel);
            if (json_out) {
                if (i) mofo_sb_puts(&sb, ", ");
                json_row(&sb, p->name, &d);
            } else {
                mofo_sb_printf(&sb, "%-48s %10lld %12.6g %10.3g %8.3f%%\n", p->name, (long long)d.numel, sqrt(d.sq),
                               d.base_sq > 0 ? sqrt(d.sq / d.base_sq) : 0.0, 100.0 * (double)d.changed / (double)d.numel);
            }
        }
        if (json_out) {
            mofo_sb_puts(&sb, "], \"total\": ");
            json_row(&sb, "total", &all);
            mofo_sb_puts(&sb, "}\n");
        } else {
            mofo_sb_printf(&sb, "%-48s %10lld %12.6g %10.3g %8.3f%%\n", "total", (long long)all.numel, sqrt(all.sq),
                           all.base_sq > 0 ? sqrt(all.sq / all.base_sq) : 0.0,
                           100.0 * (double)all.changed / (double)all.numel);
        }
        if (sb.failed) {
            fprintf(stderr, "mofo diff: out of memory\n");
            rc = 1;
        } else if (sb.data) {
            fputs(sb.data, stdout);
        }
        mofo_sb_free(&sb);
    }
    mofo_model_free(a);
    mofo_model_free(b);
    return rc;
}
