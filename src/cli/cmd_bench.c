/* mofo bench NAME: the benchmark programs of bench/, each printing a table. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *out);
    const char *summary;
} BENCHES[] = {
    {"optim", bench_optim, bench_optim_help, "optimizer step: AdamW, MoFO, sort-based MoFO, the 28-byte floor"},
    {"tokenize", bench_tokenize, bench_tokenize_help, "tokenizer encoding speed, MB/s on one thread"},
    {"gemm", bench_gemm, bench_gemm_help, "the engine's matrix products beside the measured FMA peak, and the kernel"},
    {"train", bench_train, bench_train_help, "training steps (forward, backward, MoFO) of GPT-2 / TinyLlama shapes"},
};
#define N_BENCHES (int)(sizeof BENCHES / sizeof BENCHES[0])

void cmd_bench_help(FILE *out) {
    fprintf(out, "usage: mofo bench NAME [FLAGS]\n\nbenchmarks:\n");
    for (int i = 0; i < N_BENCHES; i++) fprintf(out, "  %-10s %s\n", BENCHES[i].name, BENCHES[i].summary);
    fprintf(out, "\n'mofo help bench' lists them; 'mofo bench NAME --help' gives a benchmark's flags.\n");
}

int cmd_bench(int argc, char **argv) {
    if (argc < 1) {
        cmd_bench_help(stderr);
        return 2;
    }
    for (int i = 0; i < N_BENCHES; i++) {
        if (strcmp(BENCHES[i].name, argv[0]) != 0) continue;
        for (int j = 1; j < argc; j++)
            if (strcmp(argv[j], "--help") == 0) {
                BENCHES[i].help(stdout);
                return 0;
            }
        return BENCHES[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "mofo bench: unknown benchmark '%s' (see 'mofo help bench')\n", argv[0]);
    return 2;
}
