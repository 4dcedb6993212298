/* Choosing a backend, and asking it whether its operations succeeded. */
#include "backend/backend.h"

#include <string.h>

#include "mofo/error.h"

const mofo_backend *mofo_backend_for(mofo_device device, mofo_err *err) {
    switch (device) {
    case MOFO_DEVICE_CPU: return mofo_backend_cpu();
    case MOFO_DEVICE_CUDA: return mofo_backend_cuda(err);
    }
    mofo_errf(err, MOFO_EINVAL, "device %d: cpu or cuda expected", (int)device);
    return NULL;
}

static const char *PRECISIONS[] = {"fp32", "tf32", "bf16"};

int mofo_precision_parse(const char *s, mofo_precision *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, PRECISIONS[i]) == 0) return *out = (mofo_precision)i, 0;
    return -1;
}
const char *mofo_precision_name(mofo_precision p) { return (unsigned)p < 3 ? PRECISIONS[p] : "?"; }

int mofo_backend_check(const mofo_backend *be, mofo_err *err) {
    const char *why = be->failure ? be->failure() : NULL;
    return why ? mofo_errf(err, MOFO_EDEVICE, "%s", why) : 0;
}
