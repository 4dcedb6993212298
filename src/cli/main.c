/* mofo: one command, many subcommands (git style). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "backend/blas.h"
#include "mofo_version.h"

static int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("mofo %s\nmatrix products: %s\n", MOFO_VERSION, mofo_blas_kernel());
    return 0;
}
static void cmd_version_help(FILE *out) { fprintf(out, "usage: mofo version\n\nPrints the version and the matrix-product kernel in use.\n"); }

static int cmd_help(int argc, char **argv);
static void cmd_help_help(FILE *out) { fprintf(out, "usage: mofo help [COMMAND]\n"); }

static const mofo_command COMMANDS[] = {
    {"help", cmd_help, cmd_help_help, "show the commands, or one command's flags"},
    {"version", cmd_version, cmd_version_help, "print the version"},
    {"bench", cmd_bench, cmd_bench_help, "run a benchmark and print its table (mofo bench optim, gemm, train, tokenize)"},
    {"ppl", cmd_ppl, cmd_ppl_help, "perplexity of token ids or text under a model"},
    {"tokenize", cmd_tokenize, cmd_tokenize_help, "encode text or decode ids with a model's tokenizer.json"},
    {"data", cmd_data, cmd_data_help, "load a JSONL data set: formats, template, labels, errors"},
    {"finetune", cmd_finetune, cmd_finetune_help, "fine-tune a model on JSONL data (mofo, adamw, l1, l2, hft, lora, lora-mofo)"},
    {"pretrain", cmd_pretrain, cmd_pretrain_help, "train a model from scratch on a text corpus (AdamW), saved as HF"},
    {"diff", cmd_diff, cmd_diff_help, "L2 distance and entries changed between two checkpoints, per tensor"},
    {"generate", cmd_generate, cmd_generate_help, "continue a prompt: greedy or sampled, with a KV cache"},
    {"eval", cmd_eval, cmd_eval_help, "evaluate a model: perplexity, multiple choice, generation exact match"},
    {"demo", cmd_demo, cmd_demo_help, "fine-tune the shipped base with each method; task accuracy against knowledge kept"},
    {"world", cmd_world, cmd_world_help, "write the synthetic world of mofo demo: biographies, questions, the arithmetic task"},
};
#define N_COMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static const mofo_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0) return &COMMANDS[i];
    return NULL;
}

static void usage(FILE *out) {
    fprintf(out, "mofo %s - fine-tune language models without forgetting (MoFO, arXiv 2407.20999)\n\n"
                 "usage: mofo COMMAND [FLAGS]\n\ncommands:\n", MOFO_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(out, "\n'mofo help COMMAND' lists a command's flags.\n");
}

static int cmd_help(int argc, char **argv) {
    if (argc == 0) {
        usage(stdout);
        return 0;
    }
    const mofo_command *c = find_command(argv[0]);
    if (!c) {
        fprintf(stderr, "mofo help: unknown command '%s'\n", argv[0]);
        return 2;
    }
    c->help(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cmd_help(0, NULL);
    if (strcmp(argv[1], "--version") == 0) return cmd_version(0, NULL);
    const mofo_command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "mofo: unknown command '%s' (see 'mofo help')\n", argv[1]);
        return 2;
    }
    if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        c->help(stdout);
        return 0;
    }
    return c->run(argc - 2, argv + 2);
}
