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

static const char *config_s, *tok_dir, *data_path, *out_dir;
static double init_std;
static cli_train_args T; /* the flags shared with mofo finetune */

static const arg_spec OWN[] = {
    {"config", ARG_STR, &config_s, "C",
     "a preset (llama-tiny, llama-demo, llama-1.1B, gpt2-tiny, gpt2-124M) or a config.json (file or folder); required"},
    {"tokenizer", ARG_STR, &tok_dir, "DIR",
     "folder with tokenizer.json, or 'byte': the demo's byte-level tokenizer, written into OUT; required"},
    {"data", ARG_STR, &data_path, "FILE", "JSONL corpus, {\"text\": ...} lines (any format of 'mofo data'); required"},
    {"out", ARG_STR, &out_dir, "DIR", "output: the model, checkpoint-STEP/, metrics.jsonl; required"},
    {"init-std", ARG_DOUBLE, &init_std, "X", "std of the initial matrices (default 0.02, initializer_range)"},
};
#define N_OWN (int)(sizeof OWN / sizeof OWN[0])
#define N_SPECS (N_OWN + CLI_TRAIN_N_SPECS)

static void reset_flags(arg_spec *specs) {
    config_s = tok_dir = data_path = out_dir = NULL;
    init_std = 0.02;
    T = (cli_train_args){.lr = 1e-3, .clip = 1.0, .beta1 = -1, .beta2 = -1, .eps = -1, .batch = 8, .grad_accum = 1,
                         .seq_len = 512, .seed = 42, .seed_help = "the initial weights, the data order and the split",
                         .sched_default = "cosine"};
    memcpy(specs, OWN, sizeof OWN);
    cli_train_specs(&T, specs + N_OWN);
}

void cmd_pretrain_help(FILE *out) {
    arg_spec specs[N_SPECS];
    reset_flags(specs);
    args_help(out, "pretrain", "--config C --tokenizer DIR --data FILE.jsonl --out DIR [flags]", specs, N_SPECS);
    fprintf(out,
            "\nMakes a model of the config with the tokenizer's vocabulary (vocab_size is set to it; a\n"
            "preset's max_position_embeddings is raised to --seq-len), initialised from --seed as\n"
            "transformers does (matrices N(0, init-std), norm gains 1, biases 0), trains every parameter\n"
            "with AdamW on the corpus and writes an HF checkpoint (config.json, model.safetensors in fp32,\n"
            "the tokenizer files) that mofo ppl, eval, generate and finetune load. Ctrl-C writes\n"
            "OUT/checkpoint-STEP; --resume continues bit for bit.\n");
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
                         "--config %s: no such file, and not a preset (llama-tiny, llama-demo, llama-1.1B, gpt2-tiny, gpt2-124M)",
                         config_s);
    snprintf(arch, sizeof arch, "%.*s", (int)(dash - config_s), config_s);
    *preset = 1;
    return mofo_config_preset(cfg, arch, dash + 1, err);
}

int cmd_pretrain(int argc, char **argv) {
    arg_spec specs[N_SPECS];
    reset_flags(specs);
    if (args_parse("pretrain", argc, argv, specs, N_SPECS)) return 2;
    if (!config_s || !tok_dir || !data_path || !out_dir) {
        fprintf(stderr, "mofo pretrain: --config, --tokenizer, --data and --out are required (see 'mofo help pretrain')\n");
        return 2;
    }
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.method = MOFO_METHOD_ADAMW;
    o.sched = MOFO_SCHED_COSINE;
    o.data_path = data_path, o.out_dir = out_dir;
    cli_train_flags f;
    if (cli_train_apply("pretrain", &T, &o, &f)) return 2;
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
    if (preset && cfg.max_T < o.seq_len) cfg.max_T = o.seq_len;
    if (mofo_config_check(&cfg, config_s, &err)) {
        fprintf(stderr, "mofo pretrain: %s\n", err.msg);
        return 2;
    }
    if (stat(data_path, &st) != 0) {
        fprintf(stderr, "mofo pretrain: --data %s: %s\n", data_path, strerror(errno));
        return 1;
    }
    o.scratch = &cfg, o.tokenizer_dir = tok_dir, o.init_seed = o.seed, o.init_std = init_std;
    cli_set_threads(o.threads);
    return cli_train_run(&o, &f);
}
