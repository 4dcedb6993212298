/* mofo pretrain: train a model from scratch on a JSONL corpus with AdamW, through the fine-tuning
 * trainer (train/train.h, opts.scratch) and the command line's training loop (train_run.c). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "demo/byte_tokenizer.h"
#include "commands.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "text/utf8.h"
#include "threads.h"
#include "train/train.h"
#include "train_run.h"

static const char *config_s, *tok_dir, *data_path, *out_dir, *sched_s, *resume_dir;
static double lr, warmup, clip, wd, beta1, beta2, eps, val_split, init_std;
static int64_t epochs, steps, batch, accum, seq_len, seed, eval_every, save_every, threads;
static int no_shuffle, quiet;

static const arg_spec SPECS[] = {
    {"config", ARG_STR, &config_s, "C",
     "a preset (llama-tiny, llama-1.1B, gpt2-tiny, gpt2-124M) or a config.json (file or folder); required"},
    {"tokenizer", ARG_STR, &tok_dir, "DIR",
     "folder with tokenizer.json, or 'byte': the demo's byte-level tokenizer, written into OUT; required"},
    {"data", ARG_STR, &data_path, "FILE", "JSONL corpus, {\"text\": ...} lines (any format of 'mofo data'); required"},
    {"out", ARG_STR, &out_dir, "DIR", "output: the model, checkpoint-STEP/, metrics.jsonl; required"},
    {"steps", ARG_INT, &steps, "N", "optimizer steps; overrides --epochs"},
    {"epochs", ARG_INT, &epochs, "N", "passes over the data (default 1)"},
    {"batch", ARG_INT, &batch, "B", "examples per micro-batch (default 8)"},
    {"grad-accum", ARG_INT, &accum, "N", "micro-batches per optimizer step (default 1)"},
    {"seq-len", ARG_INT, &seq_len, "T", "examples cut to T tokens (default 512)"},
    {"lr", ARG_DOUBLE, &lr, "X", "peak learning rate, > 0 (default 1e-3)"},
    {"lr-schedule", ARG_STR, &sched_s, "S", "constant | linear | cosine, after the warm-up (default cosine)"},
    {"warmup", ARG_DOUBLE, &warmup, "W", "warm-up: a ratio in (0,1) of the steps, or a number of steps (default 0)"},
    {"clip", ARG_DOUBLE, &clip, "X", "clip the global gradient norm to X; 0 disables (default 1.0)"},
    {"weight-decay", ARG_DOUBLE, &wd, "X", "decoupled weight decay on tensors with 2+ dims (default 0)"},
    {"beta1", ARG_DOUBLE, &beta1, "X", "default 0.9"},
    {"beta2", ARG_DOUBLE, &beta2, "X", "default 0.999"},
    {"eps", ARG_DOUBLE, &eps, "X", "default 1e-8"},
    {"seed", ARG_INT, &seed, "S", "the initial weights, the data order and the split (default 42)"},
    {"init-std", ARG_DOUBLE, &init_std, "X", "std of the initial matrices (default 0.02, initializer_range)"},
    {"no-shuffle", ARG_FLAG, &no_shuffle, NULL, "train in file order"},
    {"val-split", ARG_DOUBLE, &val_split, "F", "hold out this fraction of the data for validation (default 0)"},
    {"eval-every", ARG_INT, &eval_every, "N", "validation loss every N steps and at the end (default: end only)"},
    {"save-every", ARG_INT, &save_every, "N", "write OUT/checkpoint-STEP every N steps (default: never)"},
    {"resume", ARG_STR, &resume_dir, "DIR", "continue from a checkpoint of this run (same flags)"},
    {"threads", ARG_INT, &threads, "N", "threads for OpenMP and OpenBLAS (default: all cores)"},
    {"quiet", ARG_FLAG, &quiet, NULL, "no progress line, no summary"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_pretrain_help(FILE *out) {
    args_help(out, "pretrain", "--config C --tokenizer DIR --data FILE.jsonl --out DIR [flags]", SPECS, N_SPECS);
    fprintf(out,
            "\nMakes a model of the config with the tokenizer's vocabulary (vocab_size is set to it; a\n"
            "preset's max_position_embeddings is raised to --seq-len), initialised from --seed as\n"
            "transformers does (matrices N(0, init-std), norm gains 1, biases 0), trains every parameter\n"
            "with AdamW on the corpus and writes an HF checkpoint (config.json, model.safetensors in fp32,\n"
            "the tokenizer files) that mofo ppl, eval, generate and finetune load. Ctrl-C writes\n"
            "OUT/checkpoint-STEP; --resume continues bit for bit.\n");
}

static void reset_flags(void) {
    config_s = tok_dir = data_path = out_dir = sched_s = resume_dir = NULL;
    lr = 1e-3, warmup = 0, clip = 1.0, wd = 0, beta1 = beta2 = eps = -1, val_split = 0, init_std = 0.02;
    epochs = 0, steps = 0, batch = 8, accum = 1, seq_len = 512, seed = 42, eval_every = 0, save_every = 0;
    threads = 0, no_shuffle = 0, quiet = 0;
}

/* --config: a config.json file, a folder holding one, or ARCH-SIZE (mofo_config_preset) */
static int read_config(mofo_model_config *cfg, int *preset, mofo_err *err) {
    struct stat st;
    *preset = 0;
    if (stat(config_s, &st) == 0) {
        char path[4200];
        snprintf(path, sizeof path, S_ISDIR(st.st_mode) ? "%s/config.json" : "%s", config_s);
        char *text = NULL;
        size_t len = 0;
        int rc = mofo_read_file(path, &text, &len, err);
        if (rc == 0) rc = mofo_config_parse(cfg, text, len, path, err);
        free(text);
        return rc;
    }
    const char *dash = strchr(config_s, '-');
    char arch[32];
    if (!dash || dash - config_s >= (long)sizeof arch)
        return mofo_errf(err, MOFO_EINVAL,
                         "--config %s: no such file, and not a preset (llama-tiny, llama-1.1B, gpt2-tiny, gpt2-124M)",
                         config_s);
    snprintf(arch, sizeof arch, "%.*s", (int)(dash - config_s), config_s);
    *preset = 1;
    return mofo_config_preset(cfg, arch, dash + 1, err);
}

int cmd_pretrain(int argc, char **argv) {
    reset_flags();
    if (args_parse("pretrain", argc, argv, SPECS, N_SPECS)) return 2;
    if (!config_s || !tok_dir || !data_path || !out_dir) {
        fprintf(stderr, "mofo pretrain: --config, --tokenizer, --data and --out are required (see 'mofo help pretrain')\n");
        return 2;
    }
    if (batch < 1 || batch > 1 << 20 || accum < 1 || accum > 1 << 20 || seq_len < 2 || seq_len > 1 << 24 || steps < 0 ||
        epochs < 0 || eval_every < 0 || save_every < 0 || seed < 0) {
        fprintf(stderr, "mofo pretrain: --batch, --grad-accum, --seq-len, --steps, --epochs, --eval-every, "
                        "--save-every and --seed must be positive (seq-len >= 2)\n");
        return 2;
    }
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.method = MOFO_METHOD_ADAMW;
    o.sched = MOFO_SCHED_COSINE;
    if (sched_s && mofo_sched_parse(sched_s, &o.sched)) {
        fprintf(stderr, "mofo pretrain: --lr-schedule '%s': use constant, linear or cosine\n", sched_s);
        return 2;
    }
    mofo_err err = {0};
    mofo_model_config cfg;
    int preset = 0;
    if (read_config(&cfg, &preset, &err)) {
        fprintf(stderr, "mofo pretrain: %s\n", err.msg);
        return err.code == MOFO_EINVAL ? 2 : 1;
    }
    struct stat st;
    if (strcmp(tok_dir, "byte") == 0 && stat(tok_dir, &st) != 0) { /* the built-in one, into OUT */
        if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "mofo pretrain: %s: cannot create: %s\n", out_dir, strerror(errno));
            return 1;
        }
        if (mofo_byte_tokenizer_write(out_dir, &err)) {
            fprintf(stderr, "mofo pretrain: %s\n", err.msg);
            return 1;
        }
        tok_dir = out_dir;
    }
    mofo_tokenizer *tok = NULL;
    if (mofo_tokenizer_load_dir(&tok, tok_dir, &err)) {
        fprintf(stderr, "mofo pretrain: --tokenizer %s: %s\n", tok_dir, err.msg);
        return 1;
    }
    cfg.V = mofo_tokenizer_vocab_size(tok);
    mofo_tokenizer_free(tok);
    if (preset && cfg.max_T < seq_len) cfg.max_T = (int)seq_len;
    if (mofo_config_check(&cfg, config_s, &err)) {
        fprintf(stderr, "mofo pretrain: %s\n", err.msg);
        return 2;
    }
    if (stat(data_path, &st) != 0) {
        fprintf(stderr, "mofo pretrain: --data %s: %s\n", data_path, strerror(errno));
        return 1;
    }
    o.scratch = &cfg, o.tokenizer_dir = tok_dir, o.init_seed = (uint64_t)seed, o.init_std = init_std;
    o.data_path = data_path, o.out_dir = out_dir;
    o.lr = lr, o.warmup = warmup, o.clip = clip, o.weight_decay = wd;
    o.beta1 = beta1, o.beta2 = beta2, o.eps = eps, o.val_split = val_split;
    o.epochs = epochs ? epochs : 1, o.steps = steps, o.batch = (int)batch, o.grad_accum = (int)accum;
    o.seq_len = (int)seq_len, o.seed = (uint64_t)seed, o.shuffle = !no_shuffle, o.threads = (int)threads;
    cli_set_threads((int)threads);
    cli_train_flags f = {.cmd = "pretrain", .out_dir = out_dir, .resume_dir = resume_dir, .eval_every = eval_every,
                         .save_every = save_every, .quiet = quiet};
    return cli_train_run(&o, &f);
}
