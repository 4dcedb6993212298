/* The communicator over MPI (comm.h). Arrays longer than an int's count go in pieces. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dist/comm.h"

struct mofo_comm {
    int rank, size;
    uint64_t sent;
};

enum { PIECE = 1 << 28 }; /* elements per MPI call */

static int check(int rc, const char *what, mofo_err *err) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return mofo_errf(err, MOFO_EIO, "%s failed: %.*s", what, len, msg);
}

int mofo_comm_open(mofo_comm **out, mofo_err *err) {
    *out = NULL;
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return 0; /* no launcher */
    int rc = check(MPI_Init(NULL, NULL), "MPI_Init", err);
    if (rc) return rc;
    mofo_comm *c = calloc(1, sizeof *c);
    if (!c) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    *out = c;
    return 0;
}

void mofo_comm_close(mofo_comm *c) {
    if (!c) return;
    MPI_Finalize();
    free(c);
}

int mofo_comm_rank(const mofo_comm *c) { return c ? c->rank : 0; }
int mofo_comm_size(const mofo_comm *c) { return c ? c->size : 1; }

static int reduce(mofo_comm *c, void *x, size_t n, size_t elem, MPI_Datatype t, MPI_Op op, mofo_err *err) {
    if (!c || c->size == 1) return 0;
    for (size_t at = 0; at < n; at += PIECE) {
        int count = (int)(n - at < PIECE ? n - at : PIECE);
        int rc = check(MPI_Allreduce(MPI_IN_PLACE, (char *)x + at * elem, count, t, op, MPI_COMM_WORLD),
                       "MPI_Allreduce", err);
        if (rc) return rc;
    }
    c->sent += 2 * (uint64_t)(c->size - 1) * n * elem / (uint64_t)c->size;
    return 0;
}

int mofo_comm_sum_f32(mofo_comm *c, float *x, size_t n, mofo_err *err) {
    return reduce(c, x, n, sizeof *x, MPI_FLOAT, MPI_SUM, err);
}
int mofo_comm_sum_f64(mofo_comm *c, double *x, size_t n, mofo_err *err) {
    return reduce(c, x, n, sizeof *x, MPI_DOUBLE, MPI_SUM, err);
}
int mofo_comm_sum_u64(mofo_comm *c, uint64_t *x, size_t n, mofo_err *err) {
    return reduce(c, x, n, sizeof *x, MPI_UINT64_T, MPI_SUM, err);
}
int mofo_comm_max_i32(mofo_comm *c, int32_t *x, size_t n, mofo_err *err) {
    return reduce(c, x, n, sizeof *x, MPI_INT32_T, MPI_MAX, err);
}

int mofo_comm_bcast(mofo_comm *c, void *x, size_t bytes, int root, mofo_err *err) {
    if (!c || c->size == 1) return 0;
    for (size_t at = 0; at < bytes; at += PIECE) {
        int count = (int)(bytes - at < PIECE ? bytes - at : PIECE);
        int rc = check(MPI_Bcast((char *)x + at, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast", err);
        if (rc) return rc;
    }
    c->sent += (uint64_t)(c->size - 1) * bytes / (uint64_t)c->size;
    return 0;
}

int mofo_comm_barrier(mofo_comm *c, mofo_err *err) {
    return !c || c->size == 1 ? 0 : check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", err);
}

void mofo_comm_abort(mofo_comm *c, int status) {
    if (c && c->size > 1) MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

uint64_t mofo_comm_bytes_sent(const mofo_comm *c) { return c ? c->sent : 0; }

const char *mofo_comm_library(void) {
    static char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (!v[0]) {
        MPI_Get_library_version(v, &len);
        for (int i = 0; i < len; i++)
            if (v[i] == ',' || v[i] == '\n') v[i] = 0;
    }
    return v;
}
