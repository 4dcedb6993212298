/* Thread counts for the commands: OpenMP's team and OpenBLAS's pool. The process-wide settings live
 * in the command, never in the library. */
#ifndef MOFO_CLI_THREADS_H
#define MOFO_CLI_THREADS_H

/* n >= 1: use n threads for OpenMP loops and for OpenBLAS; n == 0 leaves the defaults. */
void cli_set_threads(int n);

#endif
