/* The device a test's models run on: the CPU, or the engine's CUDA backend when the test is built
 * as its *_cudasim twin (MOFO_TEST_DEVICE_CUDA, linked with the CUDA simulator of tests/cudasim). */
#ifndef MOFO_TEST_DEVICE_H
#define MOFO_TEST_DEVICE_H

#include <stdlib.h>

#include "backend/backend.h"
#include "model/model.h"

#ifdef MOFO_TEST_DEVICE_CUDA
#define TEST_DEVICE MOFO_DEVICE_CUDA
#else
#define TEST_DEVICE MOFO_DEVICE_CPU
#endif

/* n floats of the model's array src (parameters, gradients, activations) on the host; malloc'd */
static inline float *test_host_copy(const mofo_model *m, const float *src, size_t n) {
    float *h = malloc(n * sizeof *h);
    if (h) m->be->download(h, src, n);
    return h;
}

/* Frees what the device's backend holds itself, after the last model is freed (the simulator
 * reports every device allocation left at exit). */
static inline void test_device_close(void) {
    const mofo_backend *be = mofo_backend_for(TEST_DEVICE, NULL);
    if (be) be->close();
}

#endif
