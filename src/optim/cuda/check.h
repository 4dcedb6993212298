/* Every CUDA runtime call of the backend goes through CUDA_TRY: on failure the calling function
 * returns MOFO_EDEVICE with a message naming the call, the file and the line. */
#ifndef MOFO_CUDA_CHECK_H
#define MOFO_CUDA_CHECK_H

#include <cuda_runtime.h>

#include "mofo/error.h"

#define CUDA_TRY(call, err)                                                                                   \
    do {                                                                                                      \
        cudaError_t e_ = (call);                                                                              \
        if (e_ != cudaSuccess)                                                                                \
            return mofo_errf(err, MOFO_EDEVICE, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call,            \
                             cudaGetErrorString(e_));                                                         \
    } while (0)

#endif
