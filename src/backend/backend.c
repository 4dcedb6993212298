/* Choosing a backend, and asking it whether its operations succeeded. */
#include "backend/backend.h"

#include "mofo/error.h"

const mofo_backend *mofo_backend_for(mofo_device device, mofo_err *err) {
    switch (device) {
    case MOFO_DEVICE_CPU: return mofo_backend_cpu();
    case MOFO_DEVICE_CUDA: return mofo_backend_cuda(err);
    }
    mofo_errf(err, MOFO_EINVAL, "device %d: cpu or cuda expected", (int)device);
    return NULL;
}

int mofo_backend_check(const mofo_backend *be, mofo_err *err) {
    const char *why = be->failure ? be->failure() : NULL;
    return why ? mofo_errf(err, MOFO_EDEVICE, "%s", why) : 0;
}
