/* Several processes as one job: the communicator the trainer uses for data parallelism (OpenMPI
 * between processes; NCCL between GPUs would be a second implementation of this file's functions).
 * comm_mpi.c implements it over MPI, comm_none.c (a build without MPI) as one process. Every
 * function takes a NULL comm as "one process": sums and broadcasts are then no-ops.
 *
 * Collectives must be called by every process in the same order. Errors as everywhere: 0 or a
 * negative MOFO_E* status, with err naming the call. */
#ifndef MOFO_DIST_COMM_H
#define MOFO_DIST_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/error.h"

typedef struct mofo_comm mofo_comm;

/* Joins the job that mpirun started (MPI_Init when the launcher's environment says there is one;
 * a build without MPI refuses such a launch), else *out = NULL: one process. */
int mofo_comm_open(mofo_comm **out, mofo_err *err);
void mofo_comm_close(mofo_comm *c); /* MPI_Finalize */
int mofo_comm_rank(const mofo_comm *c);
int mofo_comm_size(const mofo_comm *c);
/* Sums x (n) over the processes, in place; the order of the sum is the MPI library's, fixed for a
 * given number of processes. */
int mofo_comm_sum_f32(mofo_comm *c, float *x, size_t n, mofo_err *err);
int mofo_comm_sum_f64(mofo_comm *c, double *x, size_t n, mofo_err *err);
int mofo_comm_sum_u64(mofo_comm *c, uint64_t *x, size_t n, mofo_err *err);
/* The largest of x over the processes (for flags: an error or an interrupt anywhere). */
int mofo_comm_max_i32(mofo_comm *c, int32_t *x, size_t n, mofo_err *err);
/* Copies root's bytes of x to every process. */
int mofo_comm_bcast(mofo_comm *c, void *x, size_t bytes, int root, mofo_err *err);
int mofo_comm_barrier(mofo_comm *c, mofo_err *err);
/* Ends every process of the job with status (after this process printed why). */
void mofo_comm_abort(mofo_comm *c, int status);
/* Bytes this process has sent so far as the ring algorithms send them: an all-reduce of B bytes
 * over N processes 2 (N-1)/N B, a broadcast (N-1)/N B (the volume, not a measurement of the wire). */
uint64_t mofo_comm_bytes_sent(const mofo_comm *c);
/* "OpenMPI 4.1.4" (the library's version string), or the reason there is none. */
const char *mofo_comm_library(void);

#endif
