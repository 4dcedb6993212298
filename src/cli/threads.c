#include "threads.h"

#include <cblas.h>
#include <omp.h>

void cli_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}
