/* The CUDA backend as the C library sees it: implemented in cuda/ when the build has CUDA, and by
 * cuda_stub.c (every call fails with MOFO_ENODEV) when it does not. The C code (optim.c, state.c,
 * step.c) keeps the registry, the plan and the file format; the backend owns device memory. */
#ifndef MOFO_OPTIM_BACKEND_H
#define MOFO_OPTIM_BACKEND_H

#include <stddef.h>

#include "internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when a CUDA device is usable; MOFO_ENODEV with the reason otherwise. */
int mofo_cuda_probe(mofo_err *err);
/* Allocates p's state in device memory, zeroed (m, v when with_v, touched when with_touched); a
 * bf16 parameter also gets its fp32 master weights, converted from p->data on `stream` (a
 * cudaStream_t, NULL for the legacy default stream), and waits for them. */
int mofo_cuda_param_init(param_state *p, int with_v, int with_touched, void *stream, mofo_err *err);
/* Frees what mofo_cuda_param_init allocated (the caller's data and grad stay). */
void mofo_cuda_param_free(param_state *p);
/* Copies bytes between host and device memory (to_device: host src to device dst). */
int mofo_cuda_copy(void *dst, const void *src, size_t bytes, int to_device, mofo_err *err);
/* One step on the device; o is planned. On a non-finite gradient nothing is written and the step
 * is refused as on the CPU. */
int mofo_cuda_step(mofo_optim *o, double lr, mofo_err *err);
/* Frees the step's device tables (o->cuda). */
void mofo_cuda_free_step(mofo_optim *o);

#ifdef __cplusplus
}
#endif
#endif
