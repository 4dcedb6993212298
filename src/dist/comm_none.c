/* The communicator of a build without MPI (comm.h): one process. A launch by mpirun is refused, so
 * that N copies of the job do not write into the same folder. */
#include <stdlib.h>

#include "dist/comm.h"

int mofo_comm_open(mofo_comm **out, mofo_err *err) {
    *out = NULL;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK"))
        return mofo_errf(err, MOFO_EINVAL, "started by mpirun, but this mofo was built without MPI (install "
                                           "libopenmpi-dev and rebuild)");
    return 0;
}
void mofo_comm_close(mofo_comm *c) { (void)c; }
int mofo_comm_rank(const mofo_comm *c) { return (void)c, 0; }
int mofo_comm_size(const mofo_comm *c) { return (void)c, 1; }
int mofo_comm_sum_f32(mofo_comm *c, float *x, size_t n, mofo_err *err) { return (void)c, (void)x, (void)n, (void)err, 0; }
int mofo_comm_sum_f64(mofo_comm *c, double *x, size_t n, mofo_err *err) { return (void)c, (void)x, (void)n, (void)err, 0; }
int mofo_comm_sum_u64(mofo_comm *c, uint64_t *x, size_t n, mofo_err *err) { return (void)c, (void)x, (void)n, (void)err, 0; }
int mofo_comm_max_i32(mofo_comm *c, int32_t *x, size_t n, mofo_err *err) { return (void)c, (void)x, (void)n, (void)err, 0; }
int mofo_comm_bcast(mofo_comm *c, void *x, size_t bytes, int root, mofo_err *err) {
    return (void)c, (void)x, (void)bytes, (void)root, (void)err, 0;
}
int mofo_comm_barrier(mofo_comm *c, mofo_err *err) { return (void)c, (void)err, 0; }
void mofo_comm_abort(mofo_comm *c, int status) { (void)c, exit(status); }
uint64_t mofo_comm_bytes_sent(const mofo_comm *c) { return (void)c, 0; }
const char *mofo_comm_library(void) { return "none (built without MPI)"; }
