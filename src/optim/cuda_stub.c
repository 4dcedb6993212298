/* The CUDA backend of a libmofo built without CUDA: every entry point says so. mofo_optim_create
 * calls mofo_cuda_probe first, so the others are never reached. */
#include "backend.h"

#define NO_CUDA "option device: cuda is not available: this libmofo was built without CUDA (nvcc not found)"

int mofo_cuda_probe(mofo_err *err) { return mofo_errf(err, MOFO_ENODEV, NO_CUDA); }
int mofo_cuda_param_init(param_state *p, int with_v, int with_touched, void *stream, mofo_err *err) {
    (void)p, (void)with_v, (void)with_touched, (void)stream;
    return mofo_errf(err, MOFO_ENODEV, NO_CUDA);
}
void mofo_cuda_param_free(param_state *p) { (void)p; }
int mofo_cuda_copy(void *dst, const void *src, size_t bytes, int to_device, mofo_err *err) {
    (void)dst, (void)src, (void)bytes, (void)to_device;
    return mofo_errf(err, MOFO_ENODEV, NO_CUDA);
}
int mofo_cuda_step(mofo_optim *o, double lr, mofo_err *err) {
    (void)o, (void)lr;
    return mofo_errf(err, MOFO_ENODEV, NO_CUDA);
}
void mofo_cuda_free_step(mofo_optim *o) { (void)o; }
