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
#include "threads.h"
#include "train/train.h"
#include "train_run.h"

static const char *model_dir, *data_path, *out_dir, *method_s, *optimizer_s, *sched_s, *template_s, *resume_dir;
static const char *lora_targets;
static double lora_alpha;
static int64_t lora_rank;
static int merge;
static double alpha, reg, lr, warmup, clip, wd, beta1, beta2, eps, val_split;
static int64_t epochs, steps, batch, accum, seq_len, seed, eval_every, save_every, threads;
static int no_shuffle, quiet;

static const arg_spec SPECS[] = {
    {"model", ARG_STR, &model_dir, "DIR", "the pre-trained checkpoint (config.json + safetensors); required"},
    {"data", ARG_STR, &data_path, "FILE", "JSONL training data (any format of 'mofo data'); required"},
    {"out", ARG_STR, &out_dir, "DIR", "output: the final model, checkpoint-STEP/, metrics.jsonl; required"},
    {"method", ARG_STR, &method_s, "M", "mofo | adamw | l1 | l2 | hft | lora | lora-mofo (default mofo)"},
    {"alpha", ARG_DOUBLE, &alpha, "A", "mofo: fraction of each tensor updated per step (default 0.15)"},
    {"reg", ARG_DOUBLE, &reg, "R", "l1/l2: strength of the pull toward the pre-trained weights"},
    {"lora-rank", ARG_INT, &lora_rank, "R", "lora: adapter rank (default 8)"},
    {"lora-alpha", ARG_DOUBLE, &lora_alpha, "A", "lora: scale alpha/rank (default 16)"},
    {"lora-targets", ARG_STR, &lora_targets, "LIST", "lora: modules, e.g. q,k,v,o,gate,up,down (the default) or c_attn"},
    {"merge", ARG_FLAG, &merge, NULL, "lora: write the merged model to OUT and the adapter to OUT/adapter"},
    {"optimizer", ARG_STR, &optimizer_s, "O", "base rule under the method: adamw | lion | sgdm (default adamw)"},
    {"lr", ARG_DOUBLE, &lr, "X", "peak learning rate, > 0 (default 1e-5)"},
    {"lr-schedule", ARG_STR, &sched_s, "S", "constant | linear | cosine, after the warm-up (default linear)"},
    {"warmup", ARG_DOUBLE, &warmup, "W", "warm-up: a ratio in (0,1) of the steps, or a number of steps (default 0)"},
    {"epochs", ARG_INT, &epochs, "N", "passes over the data (default 1)"},
    {"steps", ARG_INT, &steps, "N", "optimizer steps; overrides --epochs"},
    {"batch", ARG_INT, &batch, "B", "examples per micro-batch (default 8)"},
    {"grad-accum", ARG_INT, &accum, "N", "micro-batches per optimizer step (default 1)"},
    {"seq-len", ARG_INT, &seq_len, "T", "examples cut to T tokens (default 1024)"},
    {"clip", ARG_DOUBLE, &clip, "X", "clip the global gradient norm to X; 0 disables (default 1.0)"},
    {"weight-decay", ARG_DOUBLE, &wd, "X", "decoupled weight decay on tensors with 2+ dims (default 0)"},
    {"beta1", ARG_DOUBLE, &beta1, "X", "default 0.9"},
    {"beta2", ARG_DOUBLE, &beta2, "X", "default 0.999 (lion: 0.99)"},
    {"eps", ARG_DOUBLE, &eps, "X", "adamw's epsilon (default 1e-8)"},
    {"seed", ARG_INT, &seed, "S", "data order and split (default 42)"},
    {"no-shuffle", ARG_FLAG, &no_shuffle, NULL, "train in file order"},
    {"template", ARG_STR, &template_s, "T", "chat template: tulu | chatml | llama2 | plain (default tulu)"},
    {"val-split", ARG_DOUBLE, &val_split, "F", "hold out this fraction of the data for validation (default 0)"},
    {"eval-every", ARG_INT, &eval_every, "N", "validation loss every N steps and at the end (default: end only)"},
    {"save-every", ARG_INT, &save_every, "N", "write OUT/checkpoint-STEP every N steps (default: never)"},
    {"resume", ARG_STR, &resume_dir, "DIR", "continue from a checkpoint of this run (same flags)"},
    {"threads", ARG_INT, &threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
    {"quiet", ARG_FLAG, &quiet, NULL, "no progress line, no summary"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_finetune_help(FILE *out) {
    args_help(out, "finetune", "--model DIR --data FILE.jsonl --out DIR [flags]", SPECS, N_SPECS);
    fprintf(out,
            "\nMethods: mofo (MoFO: Adam moving only the top alpha of |momentum| in each 2+-dim tensor), adamw\n"
            "(full fine-tuning), l1/l2 (adds reg*sum|w-w0| or reg*sum(w-w0)^2 to the loss), hft (Half\n"
            "Fine-Tuning: embeddings and lm_head frozen; even layers freeze q,k,gate,up, odd layers v,o,down;\n"
            "GPT-2: even layers c_attn and c_fc, odd layers attn.c_proj and mlp.c_proj), lora (PEFT-format\n"
            "adapters, dense AdamW on them), lora-mofo (MoFO on the adapters).\n"
            "Ctrl-C writes OUT/checkpoint-STEP and exits with status 130; --resume continues bit for bit.\n");
}

static void reset_flags(void) {
    model_dir = data_path = out_dir = method_s = optimizer_s = sched_s = template_s = resume_dir = NULL;
    alpha = 0.15, reg = 0, lr = 1e-5, warmup = 0, clip = 1.0, wd = 0, beta1 = beta2 = eps = -1, val_split = 0;
    epochs = 0, steps = 0, batch = 8, accum = 1, seq_len = 1024, seed = 42, eval_every = 0, save_every = 0;
    threads = 0, no_shuffle = 0, quiet = 0;
    lora_targets = NULL, lora_alpha = 16, lora_rank = 8, merge = 0;
}

int cmd_finetune(int argc, char **argv) {
    reset_flags();
    if (args_parse("finetune", argc, argv, SPECS, N_SPECS)) return 2;
    if (!model_dir || !data_path || !out_dir) {
        fprintf(stderr, "mofo finetune: --model, --data and --out are required (see 'mofo help finetune')\n");
        return 2;
    }
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.model_dir = model_dir, o.data_path = data_path, o.out_dir = out_dir;
    if (method_s && mofo_method_parse(method_s, &o.method)) {
        fprintf(stderr, "mofo finetune: --method '%s': use mofo, adamw, l1, l2, hft, lora or lora-mofo\n", method_s);
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
    if (sched_s && mofo_sched_parse(sched_s, &o.sched)) {
        fprintf(stderr, "mofo finetune: --lr-schedule '%s': use constant, linear or cosine\n", sched_s);
        return 2;
    }
    if (template_s && mofo_chat_template_parse(template_s, &o.tpl)) {
        fprintf(stderr, "mofo finetune: --template '%s': use tulu, chatml, llama2 or plain\n", template_s);
        return 2;
    }
    if (batch < 1 || batch > 1 << 20 || accum < 1 || accum > 1 << 20 || seq_len < 2 || seq_len > 1 << 24 || steps < 0 ||
        epochs < 0 || eval_every < 0 || save_every < 0 || seed < 0) {
        fprintf(stderr, "mofo finetune: --batch, --grad-accum, --seq-len, --steps, --epochs, --eval-every, "
                        "--save-every and --seed must be positive (seq-len >= 2)\n");
        return 2;
    }
    o.alpha = alpha, o.reg = reg, o.lr = lr, o.warmup = warmup, o.clip = clip, o.weight_decay = wd;
    o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.val_split = val_split;
    o.epochs = epochs ? epochs : 1, o.steps = steps, o.batch = (int)batch, o.grad_accum = (int)accum;
    if (lora_rank < 1 || lora_rank > 1 << 16) {
        fprintf(stderr, "mofo finetune: --lora-rank %lld: must be in [1, 65536]\n", (long long)lora_rank);
        return 2;
    }
    o.lora_rank = (int)lora_rank, o.lora_alpha = lora_alpha, o.merge = merge;
    if (lora_targets) o.lora_targets = lora_targets;
    o.seq_len = (int)seq_len, o.seed = (uint64_t)seed, o.shuffle = !no_shuffle, o.threads = (int)threads;
    cli_set_threads((int)threads);

    struct stat st, so, sm;
    if (stat(out_dir, &so) == 0 && stat(model_dir, &sm) == 0 && so.st_dev == sm.st_dev && so.st_ino == sm.st_ino) {
        fprintf(stderr, "mofo finetune: --out %s is the --model directory; write the fine-tuned model elsewhere\n", out_dir);
        return 2;
    }
    if (stat(data_path, &st) != 0) {
        fprintf(stderr, "mofo finetune: --data %s: %s\n", data_path, strerror(errno));
        return 1;
    }
    cli_train_flags f = {.cmd = "finetune", .out_dir = out_dir, .resume_dir = resume_dir, .eval_every = eval_every,
                         .save_every = save_every, .quiet = quiet};
    return cli_train_run(&o, &f);
}
