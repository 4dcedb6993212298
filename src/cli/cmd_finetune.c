/* mofo finetune: fine-tune a checkpoint on a JSONL data set with MoFO or a method the paper compares
 * it against; the loop (progress, metrics, checkpoints, resume, Ctrl-C) is train_run.c. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "load.h"
#include "threads.h"
#include "train/method.h"
#include "train/train.h"
#include "train_run.h"

static const char *model_dir, *data_path, *out_dir, *method_s, *optimizer_s, *template_s, *lora_targets;
static double alpha, reg, lora_alpha;
static int64_t lora_rank;
static int merge;
static cli_train_args T; /* the flags shared with mofo pretrain */

static const arg_spec OWN[] = {
    {"model", ARG_STR, &model_dir, "DIR", "the pre-trained checkpoint (config.json + safetensors); required"},
    {"data", ARG_STR, &data_path, "FILE", "JSONL training data (any format of 'mofo data'); required"},
    {"out", ARG_STR, &out_dir, "DIR", "output: the final model, checkpoint-STEP/, metrics.jsonl; required"},
    {"method", ARG_STR, &method_s, "M", "the fine-tuning method, one of Methods below (default mofo)"},
    {"alpha", ARG_DOUBLE, &alpha, "A", "mofo: fraction of each tensor updated per step (default 0.15)"},
    {"reg", ARG_DOUBLE, &reg, "R", "l1/l2: strength of the pull toward the pre-trained weights"},
    {"lora-rank", ARG_INT, &lora_rank, "R", "lora: adapter rank (default 8)"},
    {"lora-alpha", ARG_DOUBLE, &lora_alpha, "A", "lora: scale alpha/rank (default 16)"},
    {"lora-targets", ARG_STR, &lora_targets, "LIST", "lora: modules, e.g. q,k,v,o,gate,up,down (the default) or c_attn"},
    {"merge", ARG_FLAG, &merge, NULL, "lora: write the merged model to OUT and the adapter to OUT/adapter"},
    {"optimizer", ARG_STR, &optimizer_s, "O", "base rule under the method: adamw | lion | sgdm (default adamw)"},
    {"template", ARG_STR, &template_s, "T",
     "chat template: auto (default: the model's own chat_template when its directory has one, else tulu) | model | tulu | "
     "chatml | llama2 | plain"},
};
#define N_OWN (int)(sizeof OWN / sizeof OWN[0])
#define N_SPECS (N_OWN + CLI_TRAIN_N_SPECS)

static void reset_flags(arg_spec *specs) {
    model_dir = data_path = out_dir = method_s = optimizer_s = template_s = lora_targets = NULL;
    alpha = 0.15, reg = 0, lora_alpha = 16, lora_rank = 8, merge = 0;
    T = (cli_train_args){.lr = 1e-5, .clip = 1.0, .beta1 = -1, .beta2 = -1, .eps = -1, .batch = 8, .grad_accum = 1,
                         .seq_len = 1024, .seed = 42, .seed_help = "data order and split", .sched_default = "linear"};
    memcpy(specs, OWN, sizeof OWN);
    cli_train_specs(&T, specs + N_OWN);
}

void cmd_finetune_help(FILE *out) {
    arg_spec specs[N_SPECS];
    reset_flags(specs);
    args_help(out, "finetune", "--model DIR --data FILE.jsonl --out DIR [flags]", specs, N_SPECS);
    fprintf(out, "\nMethods (--method):\n");
    for (int i = 0; i < MOFO_N_METHODS; i++) {
        const mofo_method_def *d = mofo_method_def_of((mofo_method)i);
        fprintf(out, "  %-10s %s\n", d->name, d->help);
    }
    fprintf(out, "Ctrl-C writes OUT/checkpoint-STEP and exits with status 130; --resume continues bit for bit.\n");
}

int cmd_finetune(int argc, char **argv) {
    arg_spec specs[N_SPECS];
    reset_flags(specs);
    if (args_parse("finetune", argc, argv, specs, N_SPECS)) return 2;
    if (!model_dir || !data_path || !out_dir) {
        fprintf(stderr, "mofo finetune: --model, --data and --out are required (see 'mofo help finetune')\n");
        return 2;
    }
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.model_dir = model_dir, o.data_path = data_path, o.out_dir = out_dir;
    if (method_s && mofo_method_parse(method_s, &o.method)) {
        fprintf(stderr, "mofo finetune: --method '%s': use %s\n", method_s, mofo_method_names(", "));
        return 2;
    }
    if (optimizer_s) {
        if (strcmp(optimizer_s, "adamw") == 0) o.rule = MOFO_RULE_ADAMW;
        else if (strcmp(optimizer_s, "lion") == 0) o.rule = MOFO_RULE_LION;
        else if (strcmp(optimizer_s, "sgdm") == 0) o.rule = MOFO_RULE_SGDM;
        else {
            fprintf(stderr, "mofo finetune: --optimizer '%s': use adamw, lion or sgdm\n", optimizer_s);
            return 2;
        }
    }
    int tpl, bad_tpl = cli_chat_template("finetune", template_s, model_dir, NULL, MOFO_TPL_TULU, &tpl, NULL);
    if (bad_tpl) return bad_tpl;
    o.tpl = (mofo_chat_template)tpl;
    cli_train_flags f;
    if (cli_train_apply("finetune", &T, &o, &f)) return 2;
    o.alpha = alpha, o.reg = reg;
    if (lora_rank < 1 || lora_rank > 1 << 16) {
        fprintf(stderr, "mofo finetune: --lora-rank %lld: must be in [1, 65536]\n", (long long)lora_rank);
        return 2;
    }
    o.lora_rank = (int)lora_rank, o.lora_alpha = lora_alpha, o.merge = merge;
    if (lora_targets) o.lora_targets = lora_targets;
    cli_set_threads(o.threads);

    struct stat st, so, sm;
    if (stat(out_dir, &so) == 0 && stat(model_dir, &sm) == 0 && so.st_dev == sm.st_dev && so.st_ino == sm.st_ino) {
        fprintf(stderr, "mofo finetune: --out %s is the --model directory; write the fine-tuned model elsewhere\n", out_dir);
        return 2;
    }
    if (stat(data_path, &st) != 0) {
        fprintf(stderr, "mofo finetune: --data %s: %s\n", data_path, strerror(errno));
        return 1;
    }
    return cli_train_run(&o, &f);
}
