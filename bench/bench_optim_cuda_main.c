/* mofo_bench_optim_cuda FLAGS: `mofo bench optim --device cuda FLAGS` in a program of its own, for a
 * build without the engine (MOFO_LIBRARY_ONLY). */
#include "cli/commands.h"

int main(int argc, char **argv) { return bench_optim_cuda(argc - 1, argv + 1); }
