/* Runs a shell command for the command-line tests (include after defining _POSIX_C_SOURCE and
 * check.h). */
#ifndef MOFO_TEST_RUN_CMD_H
#define MOFO_TEST_RUN_CMD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs cmd with its stdout (and its stderr too with with_stderr) captured in DIR/out.txt; returns
 * what it printed (malloc'd, NULL if unreadable) and its exit status in *status (-1 if it did not
 * exit normally). */
static inline char *run_capture(const char *dir, const char *cmd, int with_stderr, int *status) {
    *status = -1;
    char path[400];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    size_t n = strlen(cmd) + strlen(path) + 16;
    char *full = malloc(n);
    if (!full) return NULL;
    snprintf(full, n, "%s >'%s'%s", cmd, path, with_stderr ? " 2>&1" : "");
    int st = system(full);
    free(full);
    *status = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return slurp(path, NULL);
}

#endif
