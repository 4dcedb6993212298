/* The mofo subcommands. Each takes the arguments after its name and returns the exit status;
 * `help` prints its usage. Add a command here and in the table in main.c. */
#ifndef MOFO_CLI_COMMANDS_H
#define MOFO_CLI_COMMANDS_H

#include <stdio.h>

typedef struct mofo_command {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *out);
    const char *summary;
} mofo_command;

int cmd_bench(int argc, char **argv);
void cmd_bench_help(FILE *out);
int cmd_ppl(int argc, char **argv);
void cmd_ppl_help(FILE *out);
int cmd_tokenize(int argc, char **argv);
void cmd_tokenize_help(FILE *out);
int cmd_data(int argc, char **argv);
void cmd_data_help(FILE *out);
int cmd_finetune(int argc, char **argv);
void cmd_finetune_help(FILE *out);
int cmd_pretrain(int argc, char **argv);
void cmd_pretrain_help(FILE *out);
int cmd_diff(int argc, char **argv);
void cmd_diff_help(FILE *out);
int cmd_generate(int argc, char **argv);
void cmd_generate_help(FILE *out);
int cmd_eval(int argc, char **argv);
void cmd_eval_help(FILE *out);
int cmd_demo(int argc, char **argv);
void cmd_demo_help(FILE *out);
int cmd_world(int argc, char **argv);
void cmd_world_help(FILE *out);

/* benchmarks (bench/), reached through `mofo bench NAME` */
int bench_tokenize(int argc, char **argv);
void bench_tokenize_help(FILE *out);
int bench_optim(int argc, char **argv);
void bench_optim_help(FILE *out);
int bench_optim_cuda(int argc, char **argv); /* --device cuda; built with CUDA only */
int bench_train(int argc, char **argv);
void bench_train_help(FILE *out);
int bench_gemm(int argc, char **argv);
void bench_gemm_help(FILE *out);

#endif
