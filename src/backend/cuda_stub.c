/* The CUDA backend in a build without CUDA (no nvcc was found): it refuses, saying why. */
#include "backend/backend.h"
#include "mofo/error.h"

const mofo_backend *mofo_backend_cuda(mofo_err *err) {
    mofo_errf(err, MOFO_ENODEV,
              "device cuda: this mofo was built without CUDA (no nvcc was found; see the README, 'On the GPU')");
    return NULL;
}
