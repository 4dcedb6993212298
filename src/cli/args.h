/* Command-line flags for the mofo subcommands: "--name value", "--name=value" and boolean
 * "--name". Every subcommand declares its flags in one table, which also gives `mofo help CMD`. */
#ifndef MOFO_CLI_ARGS_H
#define MOFO_CLI_ARGS_H

#include <stdint.h>
#include <stdio.h>

typedef enum { ARG_STR, ARG_INT, ARG_DOUBLE, ARG_FLAG } arg_kind;

typedef struct arg_spec {
    const char *name;  /* without the leading "--" */
    arg_kind kind;
    void *dest;        /* const char **, int64_t *, double *, int * (set to 1) */
    const char *meta;  /* the value's placeholder in help, e.g. "N" */
    const char *help;  /* one line; mention the default */
} arg_spec;

/* Parses argv[0..argc) against specs. Prints "mofo CMD: ..." naming the bad flag to stderr and
 * returns -1 on an unknown flag, a missing value or a value that does not parse. */
int args_parse(const char *cmd, int argc, char **argv, const arg_spec *specs, int n_specs);
void args_help(FILE *out, const char *cmd, const char *usage, const arg_spec *specs, int n_specs);

#endif
